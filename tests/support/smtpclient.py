"""Sending test mail with swaks and reading what the server answered."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .net import LOOPBACK

__all__ = ["SwaksResult", "swaks"]


# swaks marks server lines "<-  " (ok) or "<** " (error reply), client lines " -> ".
_REPLY = re.compile(r"^<(?:-|\*\*) +(\d{3})[ -](.*)$")


@dataclass(frozen=True)
class SwaksResult:
    """What swaks did.

    Attributes:
        returncode: swaks' exit code (0 success; 23 error after MAIL FROM, 24 after RCPT,
            25 after DATA; see swaks(1) "EXIT CODES").
        transcript: the whole SMTP transcript swaks printed.
    """

    returncode: int
    transcript: str

    @property
    def replies(self) -> list[tuple[int, str]]:
        """Every server reply line as (code, text), in order."""
        out = []
        for line in self.transcript.splitlines():
            m = _REPLY.match(line)
            if m:
                out.append((int(m.group(1)), m.group(2)))
        return out

    @property
    def errors(self) -> list[str]:
        """The server's error lines ("<** ..."), without the marker."""
        return [line[3:].strip() for line in self.transcript.splitlines()
                if line.startswith("<**")]

    @property
    def queue_id(self) -> str | None:
        """The Postfix queue id from "250 2.0.0 Ok: queued as ID", when the message was taken."""
        m = re.search(r"queued as ([0-9A-Za-z]+)", self.transcript)
        return m.group(1) if m else None


def swaks(port: int, *, mail_from: str, rcpt_to: str, data: bytes | Path | None = None,
          helo: str = "client.test", host: str = LOOPBACK, timeout: float = 60) -> SwaksResult:
    """Send one message with swaks to host:port.

    Args:
        port: the SMTP port.
        mail_from: the envelope sender ("" for the null sender).
        rcpt_to: the envelope recipient.
        data: the whole message (headers and body) as bytes or a file; None: swaks' own.
        helo: the EHLO name.
        timeout: seconds for swaks as a whole (and its per-command timeout).

    Returns:
        The exit code and transcript; swaks failing on an SMTP error is not an exception.
    """
    args = ["swaks", "--server", host, "--port", str(port), "--helo", helo,
            "--from", mail_from or "<>", "--to", rcpt_to, "--timeout", f"{int(timeout)}s",
            "--hide-informational"]
    stdin: bytes | None = None
    if isinstance(data, Path):
        args += ["--data", str(data)]
    elif data is not None:
        args += ["--data", "-"]
        stdin = data
    done = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout + 10,
                          check=False)
    text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    return SwaksResult(done.returncode, text)
