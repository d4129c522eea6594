"""Test messages: plain RFC 5322 bytes with CRLF line ends, and the benchmarks' corpus sample."""

from __future__ import annotations

import email.utils
from pathlib import Path

__all__ = ["DEFAULT_BODY", "corpus_sample", "make_message", "split_message", "status_tests"]


DEFAULT_BODY = ("Hello,\r\n\r\nThe minutes of Tuesday's meeting are below.\r\n\r\n"
                "Regards,\r\nAlice\r\n")


def make_message(*, from_addr: str, subject: str, rcpt: str = "user@test.local",
                 body: str = DEFAULT_BODY,
                 extra_headers: tuple[tuple[str, str], ...] = ()) -> tuple[bytes, str]:
    """A text/plain message and its Message-ID (unique per call).

    Args:
        from_addr: the From header, e.g. "Alice <alice@good.test>"; its domain names the
            Message-ID.
        subject: the Subject header (ASCII).
        rcpt: the To header.
        body: the body, CRLF line ends.
        extra_headers: more (name, value) headers, after the standard ones.
    """
    domain = from_addr.rsplit("@", 1)[1].rstrip(">")
    msgid = email.utils.make_msgid(domain=domain)
    headers = [("From", from_addr), ("To", rcpt), ("Subject", subject),
               ("Date", email.utils.formatdate(localtime=False)), ("Message-ID", msgid),
               ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=us-ascii"),
               *extra_headers]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + "\r\n" + body).encode(), msgid


def split_message(raw: bytes) -> tuple[dict[str, str], str]:
    """Headers (name -> value with folds kept, leading space dropped, as an MTA hands them to
    a milter) and the body, of a CRLF message with unique header names."""
    head, _, body = raw.partition(b"\r\n\r\n")
    headers: dict[str, str] = {}
    name = ""
    for line in head.decode().split("\r\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] += "\r\n" + line
            continue
        name, _, value = line.partition(":")
        headers[name] = value.lstrip(" ")
    return headers, body.decode()


def corpus_sample(shared: Path, n: int) -> list[Path]:
    """``n`` SpamAssassin-corpus message files evenly spaced over the corpus under
    ``shared`` (``corpus/spamassassin/{spam,ham}``), half spam and half ham, in a fixed
    order: the benchmarks' common sample."""
    root = shared / "corpus" / "spamassassin"
    spam = sorted((root / "spam").iterdir())
    ham = sorted((root / "ham").iterdir())
    step_s = max(1, len(spam) // (n // 2))
    step_h = max(1, len(ham) // (n - n // 2))
    return spam[::step_s][: n // 2] + ham[::step_h][: n - n // 2]


def status_tests(status: str) -> list[str]:
    """The rule names of an ``X-Spam-Status`` value, folded or not (the list is broken
    after its commas, as SpamAssassin breaks it), in their order."""
    assert "tests=" in status, status
    listed = status.split("tests=", 1)[1].split("autolearn=", 1)[0]
    return "".join(listed.split()).split(",")
