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


def test_html_attribute_and_tag_caches_are_keyed_by_the_whole_text() -> None:
    from spamwarden.rules import _html

    first = _html._attrs(b' face="Arial" size=2')
    again = _html._attrs(b' face="Arial" size=2')
    other = _html._attrs(b' face="Comic Sans" size=2')
    assert first == again == {b"face": b"Arial", b"size": b"2"}
    assert other[b"face"] == b"Comic Sans"
    assert _html._tag_info(b"FONT") == ("font", True, False)
    assert _html._tag_info(b"o:p") == ("o:p", True, True)
    assert _html._tag_info(b"blink") == ("blink", False, False)


def test_html_results_of_one_part_do_not_reach_the_next() -> None:
    from spamwarden.rules._html import parse_html

    hidden = parse_html(b'<body bgcolor=white><font color="#ffffff">hidden</font>'
                        b'<font color=nocolour>odd</font><img width=10 height=10></body>')
    plain = parse_html(b"<body><p>plain <b>text</b></p></body>")
    assert hidden.font_low_contrast and hidden.font_invalid_color and hidden.image_area
    assert not plain.font_low_contrast and not plain.font_invalid_color
    assert plain.image_area == 0 and plain.inside == {"body": 0, "p": 0, "b": 0}
