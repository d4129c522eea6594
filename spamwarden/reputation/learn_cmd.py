"""``spamwarden learn --spam|--ham --user ADDR [FILE|-]``: a user filed a message as spam or
not spam (an IMAP mailbox move, ``docs/dovecot.md``); store it as the complaint intake
stores a report of it to ``report@`` / ``ham@`` by that user
(:meth:`~spamwarden.reputation.intake.ComplaintIntake.learn`).

The command is operator-local (whoever runs it can read the configuration and reach
Redis), so ``--user`` is believed as intake believes a submission host in
``intake.trusted_networks``: give it only to programs that know who the user is (the IMAP
server's sieve ``pipe``).

Exit status (``sysexits.h``): 0 stored (the complaint id and whether it matched a
delivery are printed), 65 (``EX_DATAERR``) unusable input (no message, larger than
``intake.max_message_bytes``, a user not at ``intake.local_domains``), 75
(``EX_TEMPFAIL``) Redis trouble or ``intake.reporter_rate`` reached: try again later.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from ..config import Config
from ..errors import SpamwardenError
from .intake import ComplaintIntake, LearnOutcome

__all__ = ["cmd_learn", "EX_OK", "EX_DATAERR", "EX_TEMPFAIL"]

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75


def _read(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``stream`` (one more tells "too large")."""
    return stream.read(limit + 1)


async def _learn(cfg: Config, kind: str, user: str, raw: bytes,
                 make_intake: Callable[[Config, Any], ComplaintIntake]) -> LearnOutcome:
    from ..redisconn import async_client

    client = async_client(cfg)
    try:
        return await make_intake(cfg, client).learn(kind, user, raw)  # type: ignore[arg-type]
    finally:
        await client.aclose()


def cmd_learn(args: argparse.Namespace, cfg: Config, *,
              make_intake: Callable[[Config, Any], ComplaintIntake]) -> int:
    """Run ``spamwarden learn`` (see the module docstring for the exit status).

    :param args: ``spam``/``ham``, ``user``, ``file`` (``-``: standard input).
    :param make_intake: builds the intake policy over a Redis client
        (:func:`spamwarden.wiring.learner`).
    :returns: the exit status.
    """
    kind = "spam" if args.spam else "ham"
    limit = cfg.intake.max_message_bytes
    try:
        if args.file in (None, "-"):
            raw = _read(sys.stdin.buffer, limit)
        else:
            with open(args.file, "rb") as f:
                raw = _read(f, limit)
    except OSError as exc:
        print(f"spamwarden learn: cannot read {args.file}: {exc.strerror or exc}",
              file=sys.stderr)
        return EX_DATAERR
    if not raw.strip():
        print("spamwarden learn: no message given (empty input)", file=sys.stderr)
        return EX_DATAERR
    try:
        out = asyncio.run(_learn(cfg, kind, args.user or "", raw, make_intake))
    except SpamwardenError as exc:
        print(f"spamwarden learn: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    if out.status in ("refused", "unusable"):
        print(f"spamwarden learn: not stored: {out.message}", file=sys.stderr)
        return EX_DATAERR
    if out.status in ("store_failed", "rate_limited"):
        print(f"spamwarden learn: not stored: {out.message}", file=sys.stderr)
        return EX_TEMPFAIL
    matched = "yes" if out.match in ("matched", "fbl") else f"no ({out.match or 'no-delivery'})"
    print(f"{kind} {out.status} id={out.complaint_id} reporter={out.reporter} "
          f"matched={matched}: {out.message}")
    return EX_OK
