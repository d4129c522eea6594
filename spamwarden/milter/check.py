"""``spamwarden check``: the milter's pipeline run offline on one message file.

The same :class:`~spamwarden.milter.scanner.Scanner` the milter uses, built the
same way (resolver from ``[dns]``, classifier and listing store when
configured and available, else reported as unavailable).  The envelope comes
from the options; what they leave out is taken from the message itself where
it can be: the client IP and HELO from the topmost ``Received`` header that
names an IP, MAIL FROM from ``Return-Path``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from ..mail import MessageView, received_helo_and_ip, strip_mbox_from
from .interfaces import Envelope
from .scanner import Scanner
from .verdict import Verdict

if TYPE_CHECKING:
    from .auth import AuthResults

__all__ = ["envelope_for_file", "format_verdict", "scan_file", "to_crlf"]

def to_crlf(raw: bytes) -> bytes:
    """Every line ending as CRLF, the form Postfix hands to a milter (and DKIM signs).

    Two replacements, not ``re.sub``: that built a piece for every line, about 90 times
    the message in memory for one of short lines (891 MB for 10 MB of ``x``)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def envelope_for_file(
    view: MessageView,
    *,
    client_ip: str | None,
    helo: str | None,
    mail_from: str | None,
    rcpts: Sequence[str] = (),
) -> tuple[Envelope, list[str]]:
    """The envelope for an offline check, and notes on what was taken from headers.

    :returns: ``(envelope, notes)``; each note says which field came from which header.
    """
    notes: list[str] = []
    if client_ip is None or helo is None:
        for received in view.received[:5]:
            found = received_helo_and_ip(received)
            if found:
                if client_ip is None:
                    client_ip = found[1]
                    notes.append(f"client IP {client_ip} from the top Received header")
                if helo is None:
                    helo = found[0]
                    notes.append(f"HELO {helo} from the top Received header")
                break
    known = mail_from is not None
    if mail_from is None:
        rp = view.header("Return-Path")
        if rp is not None:
            mail_from = rp.strip().strip("<>")
            notes.append(f"MAIL FROM <{mail_from}> from Return-Path")
    env = Envelope(
        client_ip=client_ip,
        helo=helo or "",
        mail_from=mail_from or "",
        rcpts=list(rcpts),
        mail_from_known=known,
    )
    return env, notes


def scan_file(
    scanner: Scanner,
    raw: bytes,
    *,
    client_ip: str | None = None,
    helo: str | None = None,
    mail_from: str | None = None,
    rcpts: Sequence[str] = (),
) -> tuple[Verdict, Envelope, list[str]]:
    """Scan a message file's bytes as the milter would see them.

    A leading mbox ``From `` line is dropped and line ends become CRLF.
    :returns: ``(verdict, envelope used, notes on the envelope)``.
    """
    raw = to_crlf(strip_mbox_from(raw))
    view = scanner.parse(raw)
    env, notes = envelope_for_file(
        view, client_ip=client_ip, helo=helo, mail_from=mail_from, rcpts=rcpts
    )
    if len(raw) > scanner.cfg.milter.max_message_bytes:
        verdict = scanner.not_scored(
            env, view.headers, f"message larger than {scanner.cfg.milter.max_message_bytes} bytes"
        )
    else:
        verdict = scanner.scan(raw, env, view=view)
    return verdict, env, notes


def _auth_lines(auth: AuthResults | None) -> list[str]:
    if auth is None:
        return ["  (authentication did not run)"]
    lines = []
    spf = auth.spf
    if spf is not None:
        lines.append(
            f"  spf={spf.result} scope={spf.scope} domain={spf.domain}"
            + (f" ({spf.explanation})" if spf.explanation else "")
        )
    for d in auth.dkim:
        lines.append(
            f"  dkim={d.result} d={d.domain} s={d.selector} a={d.algorithm}"
            + (f" ({d.reason})" if d.reason else "")
        )
    dmarc = auth.dmarc
    if dmarc is not None:
        lines.append(
            f"  dmarc={dmarc.result} from={dmarc.from_domain} "
            f"p={dmarc.policy} applied={dmarc.applied_policy}"
            + (f" ({dmarc.reason})" if dmarc.reason else "")
        )
    return lines or ["  (no results)"]


def format_verdict(
    verdict: Verdict, env: Envelope, notes: Sequence[str], *, as_json: bool, out: IO[str]
) -> None:
    """Print the verdict: text for people, or one JSON object with ``as_json``."""
    if as_json:
        obj = verdict.to_dict()
        obj["envelope"] = {
            "client_ip": env.client_ip, "helo": env.helo, "mail_from": env.mail_from,
            "rcpts": list(env.rcpts),
        }
        obj["envelope_notes"] = list(notes)
        out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        return
    w = out.write
    w(f"action: {verdict.action}\n")
    w(f"score: {verdict.score:.1f} (tag {verdict.required:.1f})\n")
    w(f"reason: {verdict.reason}\n")
    w(f"envelope: client_ip={env.client_ip or '-'} helo={env.helo or '-'} "
      f"mail_from=<{env.mail_from}>\n")
    for n in notes:
        w(f"  ({n})\n")
    w("symbols:\n")
    for s in sorted(verdict.symbols, key=lambda s: (-s.points, s.name)):
        extra = f" [{s.action}]" if s.action else ""
        w(f"  {s.points:7.2f} {s.name}{extra}" + (f"  {s.detail}" if s.detail else "") + "\n")
    if not verdict.symbols:
        w("  (none)\n")
    w("auth:\n")
    for line in _auth_lines(verdict.auth):
        w(line + "\n")
    if verdict.unavailable:
        w("unavailable: " + "; ".join(verdict.unavailable) + "\n")
    w("headers:\n")
    for name, index in verdict.remove_headers:
        w(f"  - {name}[{index}]\n")
    for name, value in verdict.add_headers:
        w(f"  + {name}: {value}\n")
