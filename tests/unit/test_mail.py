"""Bounded parsing of hostile input: spamwarden.mail never raises and keeps its bounds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spamwarden.mail import (
    ParseLimits,
    ad_label,
    decode_header_value,
    decode_with_charset,
    extract_urls,
    html_to_text,
    normalize_domain,
    parse_message,
    registrable_domain,
    strip_mbox_from,
    url_domain,
)

SMALL = ParseLimits(max_bytes=4096, max_headers=20, max_header_bytes=1024, max_parts=5,
                    max_depth=3, max_text_chars=500, max_urls=7)


def _check_bounds(view, limits: ParseLimits) -> None:  # type: ignore[no-untyped-def]
    assert len(view.headers) <= limits.max_headers
    assert len(view.parts) <= limits.max_parts
    assert len(view.urls) <= limits.max_urls
    assert len(view.url_domains) <= len(view.urls)
    assert len(view.text) <= limits.max_text_chars + limits.max_parts  # joins add newlines
    assert len(view.html_text) <= limits.max_text_chars
    assert isinstance(view.subject, str)
    for name, value in view.headers:
        assert isinstance(name, str) and isinstance(value, str)


# -- hypothesis: any bytes, and bytes that look like mail ------------------------------------

_header_names = st.sampled_from([
    b"From", b"To", b"Subject", b"Content-Type", b"Content-Transfer-Encoding",
    b"DKIM-Signature", b"Received", b"Return-Path", b"Reply-To", b"MIME-Version", b"X-A",
])
_values = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([
        b"multipart/mixed; boundary=b1", b"multipart/alternative; boundary=\"b1\"",
        b"text/html; charset=utf-8", b"text/plain; charset=x-unknown", b"base64",
        b"quoted-printable", b"=?utf-8?b?W1FDXSBLaHV5ZW4gbWFp?=", b"=?bogus?q?=FF=FE?=",
        b"v=1; d=example.com; s=sel; b=abc", b"<a@b.example>", b"\"Name\" <x@[1.2.3.4]>",
        b"message/rfc822",
    ]),
)
_header = st.builds(lambda n, v, e: n + b": " + v + e, _header_names, _values,
                    st.sampled_from([b"\r\n", b"\n", b"\r\n\t folded\r\n"]))
_body_piece = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([
        b"--b1\r\nContent-Type: text/html\r\n\r\n<a href='http://x.example.co.uk/p'>hi</a>\r\n",
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n",
        b"--b1--\r\n", b"http://www.example.com/path?q=1 ", b"<script>alert(1)</script>",
        b"=E1=BA=A1 =\r\n", b"PGI+aGk8L2I+\r\n",
    ]),
)
_mailish = st.builds(
    lambda mbox, hs, sep, body: mbox + b"".join(hs) + sep + b"".join(body),
    st.sampled_from([b"", b"From sender@example.com Mon Jan  1 00:00:00 2024\n"]),
    st.lists(_header, max_size=12),
    st.sampled_from([b"\r\n", b"\n", b""]),
    st.lists(_body_piece, max_size=10),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=6000))
def test_any_bytes_parse_within_bounds(raw: bytes) -> None:
    view = parse_message(raw, limits=SMALL)
    _check_bounds(view, SMALL)
    stripped = strip_mbox_from(raw)
    assert view.size == len(stripped)
    assert view.truncated == (len(stripped) > SMALL.max_bytes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mailish)
def test_mail_like_bytes_parse_within_bounds(raw: bytes) -> None:
    view = parse_message(raw, limits=SMALL)
    _check_bounds(view, SMALL)
    for d in view.url_domains:
        assert d == d.lower() and d.isascii()
    for d in view.dkim_domains:
        assert normalize_domain(d) == d


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_header_decoding_and_labels_never_raise(text: str) -> None:
    decoded = decode_header_value(text)
    assert "\n" not in decoded and "\r" not in decoded
    ad_label(decoded)
    html_to_text(text, limit=100)
    extract_urls(text, text, limit=5)
    url_domain(text)
    registrable_domain(text)


# -- concrete cases ---------------------------------------------------------------------------


def test_mbox_from_line_is_skipped() -> None:
    raw = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2024\nFrom: a@example.org\nSubject: s\n\nb\n"
    view = parse_message(raw)
    assert view.headers[0] == ("From", "a@example.org")
    assert view.from_domain == "example.org"
    assert view.size == len(raw) - len(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2024\n")


def test_rfc2047_subject_and_ad_label() -> None:
    raw = (b"Subject: =?utf-8?b?W1FDXSBLaHV54bq/biBtw6Np?= =?utf-8?q?_h=C3=B4m_nay?=\r\n"
           b"From: =?iso-8859-1?q?Andr=E9?= <andre@example.fr>\r\n\r\nx\r\n")
    view = parse_message(raw)
    assert view.subject == "[QC] Khuyến mãi hôm nay"
    assert view.ad_label(("QC", "ADV")) == "QC"
    assert view.from_display == "André"
    assert ad_label("Re: Fwd: [ adv ] sale", ("QC", "ADV")) == "ADV"
    assert ad_label("sale [QC]", ("QC",)) is None
    assert ad_label("[QCX] sale", ("QC",)) is None


def test_broken_encoded_word_is_replaced_not_raised() -> None:
    view = parse_message(b"Subject: =?unknown-charset?q?=FF=FE?= tail\n\n")
    assert view.subject.endswith("tail")


def test_html_text_and_urls_with_registrable_domains() -> None:
    raw = (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nVisit www.Shop.Example.co.uk/deal now.\r\n"
        b"--XX\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: "
        b"quoted-printable\r\n\r\n<html><head><title>T</title><style>p{}</style></head>"
        b"<body><p>Hi &amp; welcome</p><script>var u='http://evil.example.net/'</script>"
        b"<a href=3D\"https://click.tracker.example.com/x?id=3D1\">go</a></body></html>\r\n"
        b"--XX--\r\n"
    )
    view = parse_message(raw)
    assert view.has_html and view.has_text_plain
    assert "Hi & welcome" in view.html_text
    assert "alert" not in view.html_text and "evil" not in view.html_text
    assert "https://click.tracker.example.com/x?id=1" in view.urls
    assert set(view.url_domains) >= {"example.com", "example.co.uk"}


def test_crlf_and_lf_give_the_same_view() -> None:
    lf = b"From: a@example.org\nSubject: x\nTo: b@example.net\n\nline one\nline two\n"
    crlf = lf.replace(b"\n", b"\r\n")
    a, b = parse_message(lf), parse_message(crlf)
    assert a.headers == b.headers
    assert a.subject == b.subject == "x"
    assert a.text.replace("\r\n", "\n") == b.text.replace("\r\n", "\n")


def test_folded_headers_unfolded() -> None:
    view = parse_message(b"Subject: one\r\n\ttwo\r\n  three\r\nFrom: a@example.org\r\n\r\n")
    assert view.subject == "one two three"


def test_huge_header_section_is_bounded() -> None:
    limits = ParseLimits(max_header_bytes=10_000, max_headers=50)
    raw = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(5000)) + b"\r\nbody\r\n"
    view = parse_message(raw, limits=limits)
    assert len(view.headers) <= 50
    assert view.defects


def test_one_huge_header_line() -> None:
    raw = b"Subject: " + b"A" * 2_000_000 + b"\r\nFrom: a@example.org\r\n\r\nbody"
    view = parse_message(raw, limits=ParseLimits(max_header_bytes=65536))
    assert len(view.subject) <= 65536
    assert "header section over limit" in view.defects


def test_truncated_message_says_so() -> None:
    raw = b"From: a@example.org\r\n\r\n" + b"x" * 5000
    view = parse_message(raw, limits=ParseLimits(max_bytes=1000))
    assert view.truncated and view.size == len(raw)


def test_deep_nesting_is_bounded() -> None:
    depth = 200
    raw = b"From: a@example.org\r\n"
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    view = parse_message(raw, limits=ParseLimits(max_depth=10))
    assert len(view.parts) <= ParseLimits().max_parts


def test_many_urls_are_capped() -> None:
    body = b" ".join(b"http://h%d.example%d.com/" % (i, i) for i in range(1000))
    view = parse_message(b"From: a@example.org\r\n\r\n" + body, limits=ParseLimits(max_urls=10))
    assert len(view.urls) == 10


def test_links_to_one_domain_push_no_later_domain_out() -> None:
    # a hundred links to the victim's pages first: the spammer's link is still read,
    # for the blocklist lookup and for a complaint about the message
    links = "".join(f'<a href="http://victim-shop.example/{i}">{i}</a>' for i in range(150))
    raw = (b"From: a@example.org\r\nContent-Type: text/html\r\n\r\n"
           + links.encode() + b'<a href="http://spammer.example/">buy</a>')
    view = parse_message(raw)
    assert len(view.urls) == ParseLimits().max_urls
    assert view.url_domains == ("victim-shop.example", "spammer.example")


def test_url_domains_are_bounded_in_count_and_work() -> None:
    limits = ParseLimits(max_urls=5)
    body = " ".join(f"http://h{i}.example{i}.com/" for i in range(20))
    view = parse_message(b"From: a@example.org\r\n\r\n" + body.encode(), limits=limits)
    assert view.url_domains == tuple(f"example{i}.com" for i in range(5))
    body = " ".join(f"http://h{i}.victim-shop.example/" for i in range(100))
    view = parse_message(b"From: a@example.org\r\n\r\n" + body.encode()
                         + b" http://spammer.example/", limits=limits)
    assert view.url_domains == ("victim-shop.example",)
    assert "URL hosts over limit" in view.defects


@pytest.mark.parametrize(("name", "registrable"), [
    ("mail.example.co.uk", "example.co.uk"),
    ("a.b.example.com.vn", "example.com.vn"),
    ("x.blogspot.com", "x.blogspot.com"),      # PSL private section: a shared platform
    ("co.uk", None),
    ("localhost", None),
    ("192.0.2.1", None),
    ("Bücher.Example", "xn--bcher-kva.example"),
    # UTS 46 non-transitional, as browsers: the sharp s stays itself (IDNA 2003: "fass")
    ("faß.example", "xn--fa-hia.example"),
    ("☃.example", "xn--n3h.example"),  # IDNA 2008 refuses it; IDNA 2003's form is kept
    ("bad..example.com", None),
    ("a" * 64 + ".example.com", None),
])
def test_registrable_domain(name: str, registrable: str | None) -> None:
    assert registrable_domain(name) == registrable


@pytest.mark.parametrize(("url", "domain"), [
    ("http://user:pw@Sub.Example.com:8080/x", "example.com"),
    ("https://192.0.2.1/login", None),
    ("www.example.org/path", "example.org"),
    ("http://[::1]/", None),
    # the host a browser goes to: an "@" after "?" or "#" is no userinfo, "\\" is "/"
    ("https://spammer.example#@victim-shop.example/", "spammer.example"),
    ("https://spammer.example?next=@victim-shop.example", "spammer.example"),
    ("https://spammer.example/@victim-shop.example", "spammer.example"),
    ("https:\\\\spammer.example\\@victim-shop.example", "spammer.example"),
    ("https://user@victim-shop.example#frag", "victim-shop.example"),
    ("https://faß.example/login", "xn--fa-hia.example"),
    # the userinfo runs to the last "@" of the authority
    ("http://victim-shop.example@victim-shop.example@spammer.example/", "spammer.example"),
    ("http://victim-shop.example @spammer.example/", "spammer.example"),
    ("http://victim-shop.example@x@spammer.example:8080/", "spammer.example"),
    ("http://victim-shop.example\\@spammer.example/", "victim-shop.example"),
    ("http://victim-shop.example .spammer.example/", None),  # a space ends no host
    # a browser percent-decodes the host
    ("http://%73pammer.example/", "spammer.example"),
    ("http://victim-shop.example%2Espammer.example/", "spammer.example"),
    ("http://victim-shop.example%40spammer.example/", None),  # "@" is no host character
])
def test_url_domain(url: str, domain: str | None) -> None:
    assert url_domain(url) == domain


def _link_domains(markup: str) -> set[str | None]:
    return {url_domain(u) for u in extract_urls("", markup)}


@pytest.mark.parametrize("markup", [
    # a quoted attribute value runs to its closing quote: the other quote, ">" and a
    # space are in the userinfo, and the browser opens spammer.example
    """<a href="http://victim-shop.example'@spammer.example/">x</a>""",
    """<a href='http://victim-shop.example"@spammer.example/'>x</a>""",
    """<a href="http://victim-shop.example>@spammer.example/">x</a>""",
    """<a href="http://victim-shop.example @spammer.example/">x</a>""",
])
def test_quoted_href_is_read_whole(markup: str) -> None:
    assert _link_domains(markup) == {"spammer.example"}


@pytest.mark.parametrize("markup", [
    # a browser drops tabs and newlines from a URL, raw or as character references
    '<a href="http://victim-shop.example\t.spammer.example/">x</a>',
    '<a href="http://victim-shop.example\r\n.spammer.example/">x</a>',
    '<a href="http://victim-shop.example&#9;.spammer.example/">x</a>',
    '<a href="http://victim-shop.example&NewLine;.spammer.example/">x</a>',
    '<a href="ht\ntp://spammer.example/">x</a>',
    '<a href=" h&#x09;ttp://spammer.example/ ">x</a>',
])
def test_tabs_and_newlines_in_a_link_are_dropped(markup: str) -> None:
    assert _link_domains(markup) == {"spammer.example"}


@pytest.mark.parametrize("href", [
    "https:\\\\spammer.example/", "https:/\\spammer.example/", "http:/spammer.example/",
    "http:spammer.example/", "HTTPS:spammer.example",
])
def test_a_link_with_odd_slashes_is_read(href: str) -> None:
    assert _link_domains(f'<a href="{href}">x</a>') == {"spammer.example"}


def test_a_link_inside_an_attribute_value_is_still_found() -> None:
    markup = '<a href="javascript:go(\'http://spammer.example\')">y</a>'
    assert _link_domains(markup) == {"spammer.example"}


@pytest.mark.parametrize(("data", "charset", "text"), [
    ("Tiếng Việt".encode(), None, "Tiếng Việt"),
    ("Tiếng Việt".encode(), " UTF-8 ", "Tiếng Việt"),
    ("é".encode(), "us-ascii", "é"),                    # us-ascii read as UTF-8
    ("é".encode(), "unknown-8bit", "é"),
    ("é".encode("latin-1"), "ISO-8859-1", "é"),
    (b"\xff", "utf-8", "\ufffd"),                       # undecodable: replaced
    ("é".encode(), "no-such-charset", "é"),             # unknown: UTF-8 if valid,
    (b"\x93hi\x94", "no-such-charset", "\u201chi\u201d"),  # else windows-1252
])
def test_decode_with_charset(data: bytes, charset: str | None, text: str) -> None:
    assert decode_with_charset(data, charset) == text


def test_dkim_domains_and_return_path() -> None:
    raw = (b"DKIM-Signature: v=1; a=rsa-sha256; d=Mail.Example.COM; s=s1;\r\n"
           b"\tbh=x; b=y\r\nDKIM-Signature: v=1; d=bad..domain; s=x; b=z\r\n"
           b"Return-Path: <bounce@esp.example.net>\r\nFrom: a@example.com\r\n\r\n")
    view = parse_message(raw)
    assert view.dkim_domains == ("mail.example.com",)
    assert view.return_path_domain == "esp.example.net"


def test_nul_and_8bit_bytes_in_headers() -> None:
    raw = b"Subject: caf\xe9 \x00 menu\r\nFrom: \xff\xfe <a@example.org>\r\n\r\n\x00\xff body"
    view = parse_message(raw)
    assert "caf" in view.subject and "menu" in view.subject
    assert view.from_domain == "example.org"


def test_pathological_subject_and_from_are_decoded_from_a_bounded_prefix() -> None:
    """20,000 encoded words or a 200 KB From: only the first 8 KB are decoded."""
    from spamwarden.mail import parse_message

    raw = (b"From: " + b"a@b.test, " * 20000 + b"\r\nSubject: " + b"=?utf-8?q?ab?= " * 20000
           + b"\r\n\r\nbody\r\n")
    view = parse_message(raw)
    assert view.from_address == "a@b.test"
    assert view.subject.startswith("abab")
    assert len(view.subject) <= 8192
    # the raw header is still there, whole, for whoever needs it
    assert len(view.header("Subject") or "") > 8192


@pytest.mark.parametrize("value", [
    "joe@example.com", "  joe@example.com\t", "Joe Q. Public <joe.q@mail.example.co.uk>",
    "Joe   Public\t<joe@example.com>", '"Public, Joe" <joe@example.com>',
    '"  spaced  " <joe@example.com>', "=?utf-8?B?Sm9zw6k=?= <jose@example.com>",
    "<joe@example.com>", "Ünïcode Name <u@example.com>", "x+tag@example.com",
    # not the simple forms: the stdlib parser decides
    "joe@example.com (Joe)", "Joe <joe@example.com>, Ann <ann@example.com>",
    '"Joe \\"Q\\"" <joe@example.com>', "Joe Smith", "group: a@b.example;",
    "Joe\xa0Smith <joe@example.com>", "joe..x@example.com", "joe@example.com.",
    "Joe <joe@[192.0.2.1]>", "Joe <joe@localhost>",
])
def test_common_from_forms_read_like_the_stdlib_parser(value: str) -> None:
    import email.utils

    from spamwarden.mail._message import _parse_from, _simple_from, decode_header_value

    simple = _simple_from(value)
    if simple is not None:  # the fast path must give what getaddresses gives
        display, addr = email.utils.getaddresses([value])[0]
        assert simple == (display, addr)
    pairs = [(d, a) for d, a in email.utils.getaddresses([value]) if a and "@" in a]
    if pairs:
        assert _parse_from(value) == (pairs[0][1].strip(), decode_header_value(pairs[0][0]))


def test_boundary_matcher_answers_like_feedparsers_compiled_pattern() -> None:
    import email.feedparser
    import random
    import re

    from spamwarden.mail import _boundary, install_boundary_matcher

    assert install_boundary_matcher()  # what the milter and intake do at start-up
    assert isinstance(email.feedparser.re, _boundary._FeedparserRe)
    fake_re = _boundary._FeedparserRe()
    rnd = random.Random(7)
    tails = ["", "--", " ", "\t", "\r\n", "\r", "\n", "--\r\n", "-- \r\n", "x", "\n\n",
             "\r\n\n", "\r\r\n", "-", "---", "--\n\n", " \n"]
    for sep in ["--abc", "--=_Part_1.2", "--a.b+c(d)", "--b*?[]\\^$", "--"]:
        pattern = _boundary._HEAD + re.escape(sep) + _boundary._TAIL
        real, fake = re.compile(pattern), fake_re.compile(pattern)
        assert isinstance(fake, _boundary.BoundaryMatcher)
        for _ in range(2000):
            line = rnd.choice(["", sep, sep[:-1], "x" + sep]) + "".join(
                rnd.choice(tails) for _ in range(rnd.randint(0, 3)))
            a, b = real.match(line), fake.match(line)
            assert bool(a) == bool(b), (sep, line)
            if a and b:
                assert all(a.group(g) == b.group(g) for g in ("sep", "end", "ws", "linesep"))
    assert isinstance(fake_re.compile(r"(?P<sep>x)y"), re.Pattern)  # anything else: re's own


def test_importing_the_parser_leaves_the_standard_library_alone() -> None:
    """The boundary matcher is a server's start-up choice, not a side effect of an import."""
    import subprocess
    import sys

    code = ("import email.feedparser, re, spamwarden.mail, spamwarden.milter.scanner, "
            "spamwarden.reputation.intake; assert email.feedparser.re is re, email.feedparser.re")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _multipart(parts: list[bytes], boundary: bytes = b"b") -> bytes:
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
            + b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
            + b"--" + boundary + b"--\r\n")


SPAM_PART = b"Content-Type: text/plain\r\n\r\nCheap pills at http://pills.example.com/buy\r\n"


def test_text_nested_deeper_than_the_parser_reads_is_said_to_be() -> None:
    """Postfix passes mail nested 100 deep (mime_nesting_limit); the parser reads
    MAX_NESTING multiparts deep (each level multiplies its cost) and says when there was
    more: the milter scores that (MIME_TOO_DEEP), so text hidden there does not pay."""
    from spamwarden.mail import NESTED_TOO_DEEP

    depth = 60
    raw = b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += SPAM_PART
    for i in reversed(range(depth)):
        raw += b"--b%d--\r\n" % i
    view = parse_message(raw)
    assert "Cheap pills" not in view.text
    assert NESTED_TOO_DEEP in view.defects


def test_text_after_hundreds_of_empty_parts_is_read() -> None:
    view = parse_message(_multipart([b"\r\n"] * 500 + [SPAM_PART]))
    assert "Cheap pills" in view.text and "http://pills.example.com/buy" in view.urls
    assert len(view.parts) == 501 and "MIME parts over limit" not in view.defects


def test_the_email_package_is_given_at_most_max_delimiters_parts() -> None:
    """A message of empty parts (``--b`` lines) is cut before the stdlib builds them all;
    the readers stop before the cut anyway."""
    from spamwarden.mail import MAX_DELIMITERS, cut_delimiters

    raw = _multipart([b""] * (3 * MAX_DELIMITERS))
    cut = cut_delimiters(raw)
    assert raw.startswith(cut) and cut.count(b"\n--b\r\n") == MAX_DELIMITERS
    view = parse_message(raw)
    assert len(view.parts) == ParseLimits().max_parts and "MIME parts over limit" in view.defects


def test_a_long_boundary_is_counted_too() -> None:
    from spamwarden.mail import MAX_DELIMITERS, cut_delimiters

    boundary = b"=_" + b"x" * 1000
    raw = _multipart([b""] * (MAX_DELIMITERS + 10), boundary=boundary)
    assert cut_delimiters(raw).count(b"\n--" + boundary + b"\r\n") == MAX_DELIMITERS


def test_lines_starting_with_two_dashes_are_not_delimiters() -> None:
    """Signatures, SQL comments, rules of dashes: only a declared boundary counts."""
    from spamwarden.mail import MAX_DELIMITERS, cut_delimiters

    text = b"Content-Type: text/plain\r\n\r\n" + b"-- a comment\r\n" * (2 * MAX_DELIMITERS)
    raw = _multipart([text, SPAM_PART])
    assert cut_delimiters(raw) is raw
    view = parse_message(raw)
    assert "Cheap pills" in view.text


def test_delimiter_lines_are_matched_as_the_email_package_matches_them() -> None:
    from spamwarden.mail import cut_delimiters

    head = b'Content-Type: multipart/mixed; boundary="a b"\r\n\r\n'
    lines = [b"--a b", b"--a b \t", b"--a b--", b"--a b-- ", b"--a bc", b"--xa b", b" --a b"]
    counted = []
    for line in lines:
        # the line, then one delimiter: cut (at the limit of 1) if the line is one too
        data = head + line + b"\r\nx\r\n--a b\r\nx\r\n"
        if cut_delimiters(data, 1) != data:
            counted.append(line)
    assert counted == [b"--a b", b"--a b \t", b"--a b--", b"--a b-- "]


def _nested(depth: int, inner: bytes, *, declare: bytes = b'boundary="b%d"') -> bytes:
    """``inner`` inside ``depth`` multiparts, each the only part of the one around it."""
    out = [b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; " + declare % 0 + b"\r\n\r\n"]
    for i in range(1, depth):
        out.append(b"--b%d\r\nContent-Type: multipart/mixed; " % (i - 1) + declare % i
                   + b"\r\n\r\n")
    out.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\n" % (depth - 1) + inner)
    out += [b"\r\n--b%d--" % i for i in reversed(range(depth))]
    return b"".join(out) + b"\r\n"


@pytest.mark.parametrize("declare", [b'boundary="b%d"', b"BOUNDARY*=us-ascii''b%d",
                                     b'boundary*0="b%d"'])
def test_multiparts_are_read_twenty_deep_and_no_deeper(declare: bytes) -> None:
    """The email package checks every line against every boundary open around it: a
    1 MB part 99 multiparts deep cost 3.8 s of CPU. What lies deeper than MAX_NESTING
    is not read (RFC 2231's ways of declaring a boundary included)."""
    from spamwarden.mail import MAX_NESTING, NESTED_TOO_DEEP

    inner = b"Cheap pills at http://pills.example.com/buy\r\n"
    view = parse_message(_nested(MAX_NESTING, inner, declare=declare))
    assert "Cheap pills" in view.text and not view.defects
    deep = parse_message(_nested(MAX_NESTING + 1, inner * 1000, declare=declare))
    assert "Cheap pills" not in deep.text
    assert NESTED_TOO_DEEP in deep.defects
    # siblings are not depth: a hundred multiparts side by side are read whole
    siblings = b"".join(b"--top\r\nContent-Type: multipart/alternative; boundary=\"s%d\"\r\n"
                        b"\r\n--s%d\r\nContent-Type: text/plain\r\n\r\npart %d\r\n--s%d--\r\n"
                        % (i, i, i, i) for i in range(100))
    flat = parse_message(b"Content-Type: multipart/mixed; boundary=top\r\n\r\n" + siblings
                         + b"--top\r\nContent-Type: text/plain\r\n\r\n" + inner + b"--top--\r\n")
    assert "Cheap pills" in flat.text and "part 99" in flat.text and not flat.defects


def test_address_local_part_helpers() -> None:
    from spamwarden.mail import fold_extension, unquote_local

    assert fold_extension("an+news", "+") == "an"
    assert fold_extension("a-b+c", "+-") == "a"
    assert fold_extension("+news", "+") == "+news"  # as Postfix: no empty local part
    assert fold_extension("an+news", "") == "an+news"
    assert unquote_local('"an"') == "an"
    assert unquote_local('"a\\"b c"') == 'a"b c'
    assert unquote_local("an") == "an"
    assert unquote_local('"unclosed') == '"unclosed'


@pytest.mark.parametrize("href", [
    "https://www.google.com/url?q=https://spam-shop.example/buy&amp;sa=D",
    "https://www.google.com/url?q=https%3A%2F%2Fspam-shop.example%2Fbuy&amp;sa=D",
    "https://out.example/?u=https%253A%252F%252Fspam-shop.example%252Fbuy",
    "https://out.example/go/http://spam-shop.example/buy",
])
def test_a_redirectors_target_is_a_link_domain(href: str) -> None:
    """A spammer links through an open redirector (the link's host is a big site, its
    target the spammer's, written into the query as is or percent-encoded): the target
    is one of the message's link domains, after the redirector's, so it is looked up
    and reports count against it. Only the redirector was read."""
    raw = (b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
           + f'<a href="{href}">offer</a>'.encode())
    view = parse_message(raw)
    assert "spam-shop.example" in view.url_domains
    assert view.url_domains.index("spam-shop.example") == 1
    # a parameter that only names a scheme, or a URL without one, adds nothing
    plain = parse_message(raw.replace(href.encode(), b"https://shop.example/?ref=https&x=1"))
    assert plain.url_domains == ("shop.example",)


def test_a_redirectors_target_behind_other_targets_is_read() -> None:
    """Parameters the redirector ignores, each holding a URL, written before the one it
    follows: the target is still read (up to eight targets a link); the search is
    bounded per link and per message, so a message of thousands of such links is cheap."""
    decoys = "&".join(f"p{i}=https://decoy{i}.example/" for i in range(5))
    href = f"https://www.google.com/url?{decoys}&amp;q=https://spam-shop.example/buy"
    raw = (b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
           + f'<a href="{href}">offer</a>'.encode())
    assert "spam-shop.example" in parse_message(raw).url_domains
    # each of 3,000 links holds 16 places a scheme is written: 1,000 are looked at in all
    many = "".join(f'<a href="https://r{i}.example/?' + "&".join(
        f"u{j}=https:x" for j in range(16)) + '">x</a>' for i in range(3000))
    view = parse_message(b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
                         + many.encode())
    assert len(view.url_domains) == 100
