"""``spamwarden quarantine list|show|release|delete``: the hold queue from the mail host's
shell, over the same :class:`~spamwarden.quarantine.HoldQueue` as the console's
``/ui/quarantine`` page (:class:`~spamwarden.quarantine.PostfixQueue`, ``[quarantine]``).

Every queue id given is checked (:func:`~spamwarden.quarantine.check_queue_id`) before
any command runs: one bad id and nothing runs.  Each release or delete is logged with
its queue id and who ran it (``SUDO_USER``, else the login name).

Exit status: 0 done; 1 a Postfix command failed, a message is not on hold, learning
refused it, or the quarantine is not configured (the reason is printed); 2 a bad queue id
or bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TextIO

from .config import Config
from .errors import QuarantineError, QuarantineUnavailable, SpamwardenError
from .logs import event
from .quarantine import (
    HeldMessage,
    HoldQueue,
    LearnHam,
    PostfixQueue,
    check_queue_id,
    ham_learner,
    release_as_ham,
)

__all__ = ["EX_BAD_ID", "HistoryLookup", "SHOW_BYTES", "cmd_delete", "cmd_list",
           "cmd_release", "cmd_show", "printable"]

log = logging.getLogger("spamwarden.quarantine")

EX_BAD_ID = 2
#: bytes of a held message ``show`` reads at most (its header is shown from them)
SHOW_BYTES = 64 * 1024
#: a history entry older than the message's arrival by more than this is another message
#: that had the same (reused) short queue id
_HISTORY_SLACK = 300.0

#: the newest history entries of a queue id, newest first (raises StoreError)
HistoryLookup = Callable[[str], list[dict[str, Any]]]

_PROG = "spamwarden quarantine"


def _who() -> str:
    """Who runs the command, for the log: the sudo caller, else the login name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences of a hostile header) shown as
    ``\\xNN``, so that printing a held message's header cannot drive the terminal."""
    return "".join(c if c in "\t\n" or (c.isprintable() and c not in "\x7f") else
                   f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def _iso(t: float) -> str:
    from .reputation.listings import utc_iso

    return utc_iso(t)


def _as_json(m: HeldMessage) -> dict[str, Any]:
    return {"queue_id": m.queue_id, "arrival_time": m.arrival_time,
            "arrived": _iso(m.arrival_time), "size": m.size, "sender": m.sender,
            "recipients": list(m.recipients), "rcpt_count": m.rcpt_count}


def _rcpts(m: HeldMessage) -> str:
    more = f",+{m.rcpt_count - len(m.recipients)}" if m.rcpt_count > len(m.recipients) else ""
    return ",".join(m.recipients) + more


def _queue(cfg: Config, queue: HoldQueue | None) -> HoldQueue:
    return queue if queue is not None else PostfixQueue(cfg.quarantine)


def _run(coro: Coroutine[Any, Any, int], err: TextIO) -> int:
    """Run one command's coroutine; a quarantine that is not configured is exit 1."""
    try:
        return asyncio.run(coro)
    except QuarantineUnavailable as exc:
        print(f"{_PROG}: the quarantine is not configured: {exc} (see [quarantine] and "
              "docs/operations.md, Quarantine)", file=err)
        return 1


def _checked_ids(raw: Sequence[str], cfg: Config, err: TextIO) -> list[str] | None:
    """The queue ids, each checked, duplicates dropped; ``None`` (after one line on
    ``err``) when any is not a queue id or there are more than ``quarantine.max_messages``."""
    bad = []
    for text in raw:
        try:
            check_queue_id(text)
        except QuarantineError:
            bad.append(text)
    if bad:
        shown = ", ".join(repr(printable(b[:64])) for b in bad[:5])
        print(f"{_PROG}: not a Postfix queue id: {shown}; nothing was done", file=err)
        return None
    ids = list(dict.fromkeys(raw))
    if len(ids) > cfg.quarantine.max_messages:
        print(f"{_PROG}: {len(ids)} queue ids, more than quarantine.max_messages "
              f"{cfg.quarantine.max_messages}; nothing was done", file=err)
        return None
    return ids


def cmd_list(args: argparse.Namespace, cfg: Config, *, queue: HoldQueue | None = None,
             out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``spamwarden quarantine list [--json]``: the held messages, in Postfix's order.

    :param queue: the hold queue (default: Postfix's, ``[quarantine]``).
    :returns: the exit status (0 also when nothing is held).
    """
    out, err = out or sys.stdout, err or sys.stderr

    async def main() -> int:
        try:
            held = await _queue(cfg, queue).held()
        except QuarantineUnavailable:
            raise
        except QuarantineError as exc:
            print(f"{_PROG}: cannot list the hold queue: {exc}", file=err)
            return 1
        if args.json:
            print(json.dumps([_as_json(m) for m in held], ensure_ascii=False), file=out)
            return 0
        for m in held:
            print(f"{m.queue_id:<16} {_iso(m.arrival_time)} {m.size:>9} "
                  f"<{printable(m.sender)}> -> {printable(_rcpts(m))}", file=out)
        cut = " (quarantine.max_messages reached)" if len(held) >= cfg.quarantine.max_messages \
            else ""
        print(f"{len(held)} message(s) held{cut}", file=err)
        return 0

    return _run(main(), err)


def _history(cfg: Config) -> HistoryLookup:
    def look(queue_id: str) -> list[dict[str, Any]]:
        from .redisconn import sync_client
        from .reputation.history import HistoryFilter, read_history

        client = sync_client(cfg)
        try:
            return read_history(client, limit=5, want=HistoryFilter(queue_id=queue_id))
        finally:
            client.close()

    return look


def _header(raw: bytes) -> tuple[str, bool]:
    """The header section of ``raw`` (the start of a message), and whether it was cut."""
    end = raw.find(b"\n\n")
    crlf = raw.find(b"\r\n\r\n")
    if crlf >= 0 and (end < 0 or crlf < end):
        end = crlf
    if end < 0:
        return raw.decode("utf-8", "replace"), len(raw) >= SHOW_BYTES
    return raw[:end].decode("utf-8", "replace"), False


def _verdict_line(entry: dict[str, Any]) -> str:
    syms = ", ".join(f"{s.get('name')}({float(s.get('points', 0)):g})"
                     for s in entry.get("symbols", ()) if isinstance(s, dict)) or "none"
    return (f"{entry.get('action')} score {float(entry.get('score', 0)):.1f}"
            f"/{float(entry.get('required', 0)):.1f}: {entry.get('reason', '')}\n"
            f"symbols:    {syms}")


def cmd_show(args: argparse.Namespace, cfg: Config, *, queue: HoldQueue | None = None,
             history: HistoryLookup | None = None, out: TextIO | None = None,
             err: TextIO | None = None) -> int:
    """``spamwarden quarantine show ID [--json]``: one held message's envelope, its
    header (at most :data:`SHOW_BYTES` read) and the milter's verdict on it from the
    message history (:mod:`spamwarden.reputation.history`), when the history has it.

    :param queue: the hold queue (default: Postfix's).
    :param history: finds history entries by queue id (default: Redis).
    :returns: the exit status.
    """
    out, err = out or sys.stdout, err or sys.stderr
    ids = _checked_ids([args.queue_id], cfg, err)
    if ids is None:
        return EX_BAD_ID
    qid = ids[0]
    look = history or _history(cfg)

    async def main() -> int:
        q = _queue(cfg, queue)
        try:
            held = {m.queue_id: m for m in await q.held()}
            if qid not in held:
                print(f"{_PROG}: {qid} is not in the hold queue", file=err)
                return 1
            raw = await q.head(qid, max_bytes=SHOW_BYTES)
        except QuarantineUnavailable:
            raise
        except QuarantineError as exc:
            print(f"{_PROG}: {qid}: {exc}", file=err)
            return 1
        m = held[qid]
        entry: dict[str, Any] | None = None
        note = ""
        try:
            entries = look(qid)
        except SpamwardenError as exc:
            entries, note = [], f"not read: {exc}"
        for e in entries:
            if float(e.get("time", 0)) >= m.arrival_time - _HISTORY_SLACK:
                entry = e
                break
        header, cut = _header(raw)
        if args.json:
            print(json.dumps({"message": _as_json(m), "history": entry,
                              "header": header, "header_cut": cut}, ensure_ascii=False),
                  file=out)
            return 0
        lines = [f"queue id:   {m.queue_id}", f"arrived:    {_iso(m.arrival_time)}",
                 f"size:       {m.size} bytes", f"sender:     <{printable(m.sender)}>",
                 f"recipients: {printable(_rcpts(m))}"]
        if entry is not None:
            lines.append("verdict:    " + printable(_verdict_line(entry)))
        else:
            lines.append("verdict:    " + (note or "no history entry (history.ttl passed, or "
                                           "the milter could not record it)"))
        lines.append("")
        lines.append(printable(header))
        if cut:
            lines.append(f"[header cut at {SHOW_BYTES} bytes]")
        print("\n".join(lines), file=out)
        return 0

    return _run(main(), err)


def _each(ids: list[str], act: Callable[[str], Coroutine[Any, Any, str | None]], *,
          done: str, name: str, out: TextIO, err: TextIO,
          cleanup: Callable[[], Awaitable[None]] | None = None) -> int:
    """Run ``act`` on each queue id in turn; one line per id, one log line per id;
    then ``cleanup`` (in the same event loop), whatever happened."""
    who = _who()

    async def main() -> int:
        try:
            return await each()
        finally:
            if cleanup is not None:
                await cleanup()

    async def each() -> int:
        status = 0
        for qid in ids:
            try:
                refused = await act(qid)
            except QuarantineUnavailable:
                raise
            except QuarantineError as exc:
                event(log, f"quarantine_{name}_failed", logging.WARNING, queue_id=qid,
                      by=who, error=str(exc))
                print(f"{_PROG}: {qid}: {exc}", file=err)
                status = 1
                continue
            if refused:
                event(log, f"quarantine_{name}_refused", logging.WARNING, queue_id=qid,
                      by=who, why=refused)
                print(f"{_PROG}: {qid}: not learned, not released: {refused}", file=err)
                status = 1
                continue
            event(log, f"quarantine_{name}", queue_id=qid, by=who)
            print(f"{qid}: {done}", file=out)
        return status

    return _run(main(), err)


def cmd_release(args: argparse.Namespace, cfg: Config, *, queue: HoldQueue | None = None,
                learn: LearnHam | None = None,
                make_intake: Callable[[Config, Any], Any] | None = None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``spamwarden quarantine release [--learn-ham] ID...``: take each message off hold
    (``postsuper -H``, then ``postqueue -i``); with ``--learn-ham`` first file it as not
    spam as ``quarantine.learn_user`` (:func:`~spamwarden.quarantine.release_as_ham`:
    nothing is released when learning did not store it).

    :param queue: the hold queue (default: Postfix's).
    :param learn: files a message as not spam (default: :func:`ham_learner` over the
        intake policy ``make_intake`` builds over Redis).
    :param make_intake: builds the intake policy over a Redis client
        (:func:`spamwarden.wiring.learner`; needed with ``--learn-ham`` unless ``learn``
        is given).
    :returns: the exit status.
    """
    out, err = out or sys.stdout, err or sys.stderr
    ids = _checked_ids(args.queue_ids, cfg, err)
    if ids is None:
        return EX_BAD_ID
    q = _queue(cfg, queue)
    if not args.learn_ham:
        async def release(qid: str) -> str | None:
            await q.release(qid)
            return None

        return _each(ids, release, done="released", name="release", out=out, err=err)

    clients: list[Any] = []

    def intake() -> Any:
        from .redisconn import async_client

        if make_intake is None:
            raise QuarantineError("no intake policy to learn through")
        clients.append(async_client(cfg))
        return make_intake(cfg, clients[0])

    ham = learn or ham_learner(cfg, intake)

    async def learn_release(qid: str) -> str | None:
        return await release_as_ham(q, qid, learn=ham, max_bytes=cfg.intake.max_message_bytes)

    async def close() -> None:
        for client in clients:
            await client.aclose()

    return _each(ids, learn_release, done="learned as not spam and released",
                 name="release_ham", out=out, err=err, cleanup=close)


def cmd_delete(args: argparse.Namespace, cfg: Config, *, queue: HoldQueue | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``spamwarden quarantine delete ID...``: delete each held message
    (``postsuper -d ID hold``: only from the hold queue).

    :param queue: the hold queue (default: Postfix's).
    :returns: the exit status.
    """
    out, err = out or sys.stdout, err or sys.stderr
    ids = _checked_ids(args.queue_ids, cfg, err)
    if ids is None:
        return EX_BAD_ID
    q = _queue(cfg, queue)

    async def delete(qid: str) -> str | None:
        await q.delete(qid)
        return None

    return _each(ids, delete, done="deleted", name="delete", out=out, err=err)
