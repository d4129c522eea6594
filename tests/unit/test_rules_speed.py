"""spamwarden.rules: the shortcuts that save CPU per message give what the plain
computation gives, and nothing computed for one message is read for another."""

from __future__ import annotations

import random

from spamwarden.rules import _prepare


def _plain_mail_matches(data: bytes) -> list[tuple[tuple[int, int], bytes]]:
    return [(m.span(), m.group(1)) for m in _prepare._TEXT_MAIL.finditer(data)
            if b"@" in m.group(1)]


def _fast_mail_matches(data: bytes) -> list[tuple[tuple[int, int], bytes]]:
    return [(m.span(), m.group(1)) for m in _prepare._mail_matches(data)
            if b"@" in m.group(1)]


def test_mail_matches_are_those_of_a_full_scan() -> None:
    rnd = random.Random(7)
    samples = [
        b"", b"@", b"a@b.cc", b"mailto:x@y.org", b"(a@b.cc)", b"}a@b.cc", b"\x80a@b.cc",
        b"write to <joe@example.com>, or jane@example.org.", b"x" * 300 + b"@example.com",
        b"mailto:" + b"y" * 3000 + b"@example.com", b"a@b@c.dd e@f.gg",
    ]
    samples += [bytes(rnd.choice(b'ab@.:mailto<>"()[]{}} \n\x80\xa0,|`') for _ in range(60))
                for _ in range(3000)]
    samples += [bytes(rnd.choice(b"b" * 120 + b"@. ") for _ in range(rnd.randint(200, 4000)))
                for _ in range(100)]
    for data in samples:
        assert _fast_mail_matches(data) == _plain_mail_matches(data), data
