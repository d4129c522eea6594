"""The structural MIME layer and Received reading of spamwarden.mail, on their own."""

from __future__ import annotations

from spamwarden.mail import (
    decoded_body,
    entity_filename,
    parse_content_type,
    received_helo_and_ip,
    walk_entities,
)

NESTED = (
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment;\r\n filename*0*=utf-8''r%C3%A9;\r\n filename*1=port.eml\r\n"
    b"\r\naGVsbG8=\r\n"
    b"--outer--\r\n"
)


def test_walk_gives_every_entity_in_document_order_with_leaves_byte_exact() -> None:
    ents = walk_entities(NESTED, max_parts=100, max_depth=8, max_headers=100)
    assert [(e.ctype, e.depth) for e in ents] == [
        ("multipart/mixed", 0), ("text/plain", 1), ("multipart/alternative", 1),
        ("text/html", 2), ("application/octet-stream", 1),
    ]
    assert ents[0].body == b"" and ents[2].body == b""  # split multiparts keep no copy
    assert ents[1].body == b"first"
    assert ents[3].body == b"<p>second</p>"
    assert decoded_body(ents[4]) == b"hello"
    assert entity_filename(ents[4]) == "réport.eml"


def test_walk_bounds_depth_and_parts() -> None:
    shallow = walk_entities(NESTED, max_parts=100, max_depth=1, max_headers=100)
    assert [e.ctype for e in shallow] == [
        "multipart/mixed", "text/plain", "multipart/alternative", "application/octet-stream"]
    assert shallow[2].body.startswith(b"--inner")  # not split: a leaf at the depth limit
    assert len(walk_entities(NESTED, max_parts=2, max_depth=8, max_headers=100)) == 2


def test_content_type_joins_rfc2231_continuations() -> None:
    ctype, params = parse_content_type(
        "Message/RFC822; name*0*=utf-8''%5Bspam%5D; name*1=\" x.eml\"; charset=\"a\\\"b\"")
    assert ctype == "message/rfc822"
    assert params == {"name": "[spam] x.eml", "charset": 'a"b'}
    assert parse_content_type("not a type") == ("text/plain", {})


def test_received_helo_and_ip_of_a_from_clause() -> None:
    assert received_helo_and_ip(
        "from mx.example.com (mx.example.com [192.0.2.7]) by mail.test with ESMTPS"
    ) == ("mx.example.com", "192.0.2.7")
    assert received_helo_and_ip("from x ([IPv6:2001:db8::1]) by y") == ("x", "2001:db8::1")
    assert received_helo_and_ip("by mail.test (Postfix, from userid 1000)") is None
