"""Report parsing (spamwarden.reputation.reports): ARF fields, Received hops, inline forwards,
authentication marks, fingerprints, and hostile input."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spamwarden.errors import ReportError
from spamwarden.mail import (
    Submission,
    first_untrusted_hop,
    header_fields,
    parse_networks,
    received_client_ip,
    submission,
    submission_authenticated,
)
from spamwarden.reputation.complaints import Indicators
from spamwarden.reputation.reports import (
    NO_ORIGINAL,
    Original,
    ReportLimits,
    extract_indicators,
    find_original,
    fingerprint,
    is_actionable,
    verified_domains,
)
from tests.conftest import DATA, data_path
from tests.support.unicode import cp1258_spelling, longest_mark_run

TRUSTED = parse_networks(["127.0.0.0/8", "::1/128"])
REPORTS = DATA / "reports"


# -- ARF fields against stalwart's expected parses --------------------------------------------

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _ws(text: str | None) -> str | None:
    return " ".join(text.split()) if text is not None else None


@pytest.mark.parametrize("name", ["001", "002", "003", "004", "005"])
def test_arf_fields_match_stalwart(name: str) -> None:
    folder = data_path("arf", "stalwart_mail-auth")
    expected = json.loads((folder / f"{name}.json").read_text())
    original = find_original((folder / f"{name}.eml").read_bytes())
    arf = original.arf
    assert arf is not None and original.source == "arf"
    # stalwart's enum names ("AuthFailure", "BodyHash") are the RFC 5965 / 6591 tokens
    assert arf.feedback_type == _CAMEL.sub("-", expected["feedback_type"]).lower()
    assert arf.user_agent == expected["user_agent"]
    assert int(float(arf.version or "0")) == expected["version"]
    assert arf.arrival_date == expected["arrival_date"]
    assert arf.original_mail_from == expected["original_mail_from"]
    assert list(arf.original_rcpt_to) == ([expected["original_rcpt_to"]]
                                          if expected["original_rcpt_to"] else [])
    assert arf.original_envelope_id == expected["original_envelope_id"]
    assert arf.reporting_mta == expected["reporting_mta"]
    assert arf.source_ip == expected["source_ip"]
    assert arf.incidents == expected["incidents"]
    assert list(arf.reported_domains) == expected["reported_domain"]
    assert list(arf.reported_uris) == expected["reported_uri"]
    assert [_ws(a) for a in arf.authentication_results] == [
        _ws(a) for a in expected["authentication_results"]]
    failure = expected["auth_failure"]
    assert arf.auth_failure == (None if failure == "Unspecified" else failure.lower())
    assert arf.dkim_domain == expected["dkim_domain"]
    assert arf.dkim_identity == expected["dkim_identity"]
    assert arf.dkim_selector == expected["dkim_selector"]
    if expected["headers"] is not None:  # text/rfc822-headers: the header section, unfolded
        assert original.headers_only and not original.intact
        want = header_fields(expected["headers"].encode())
        assert header_fields(original.message) == want
    else:
        assert original.intact and not original.headers_only


# -- Received hops --------------------------------------------------------------------------------


@pytest.mark.parametrize("value,ip", [
    ("from mail.example.net (mail.example.net [192.0.2.1]) by mx.example.com with ESMTP id 1",
     "192.0.2.1"),
    ("from [192.0.2.222] ([192.0.2.222:222] helo=mta-2.example.org) by example.org", "192.0.2.222"),
    ("from 127.0.0.1  (EHLO mx8.example.com) (192.0.2.8) by mta34.mail.yahoo.com with SMTP",
     "192.0.2.8"),
    ("from smtp.example.com ([203.0.113.245]) by R7038-AA.example.com over TLS", "203.0.113.245"),
    ("from x (x [IPv6:2001:db8::25]) by mx.example.com", "2001:db8::25"),
    ("from x (x [IPv6:::ffff:192.0.2.7]) by mx.example.com", "192.0.2.7"),
    ("from [203.0.113.225] by rx-smtp-22.example.com; Thu, 29 Apr 2015", "203.0.113.225"),
    ("by box.example.name (Postfix, from userid 116) id CF8FA658E0", None),
    ("from localhost by mx.example.com (from [192.0.2.9])", None),
    ("from unknown (HELO 300.1.1.1) (999.1.1.1) by x", None),
    ("", None),
])
def test_received_client_ip(value: str, ip: str | None) -> None:
    assert received_client_ip(value) == ip


def test_first_untrusted_hop_skips_trusted_and_private() -> None:
    chain = [
        "from localhost (localhost [127.0.0.1]) by mx.example.vn",
        "from mx1 (mx1 [10.20.0.5]) by mbox.example.vn",
        "by mx.example.vn (Postfix, from userid 0)",
        "from evil (evil [198.51.100.23]) by mx1.example.vn",
        "from inner (inner [203.0.113.9]) by evil",
    ]
    assert first_untrusted_hop(chain, TRUSTED) == "198.51.100.23"
    assert first_untrusted_hop(chain, parse_networks(["198.51.100.0/24"])) == "203.0.113.9"
    assert first_untrusted_hop(chain[:3], TRUSTED) is None


def test_submission_authenticated() -> None:
    def hops(*values: str) -> list[tuple[str, str]]:
        return [("Received", v) for v in values] + [("Subject", "x")]

    postfix = ("from x (x [203.0.113.7]) (Authenticated sender: alice) by mail.example.vn "
               "with ESMTPSA")
    assert submission_authenticated(hops(postfix), TRUSTED)
    assert submission_authenticated(hops("from x (x [203.0.113.7]) by m with ESMTPA id 1"), TRUSTED)
    # re-injected by our own content filter: the submission hop is one further down, and
    # only when the operator says how many hops the filter adds
    reinjected = hops("from localhost (localhost [127.0.0.1]) by m with ESMTP", postfix)
    assert submission_authenticated(reinjected, own_hops=1)
    assert not submission_authenticated(reinjected, TRUSTED)
    assert not submission_authenticated(hops("from x (x [203.0.113.7]) by m with ESMTPS"), TRUSTED)
    # an authenticated-looking field below a hop from the internet was written by others
    assert not submission_authenticated(
        hops("from evil (evil [203.0.113.66]) by m with ESMTP", postfix), TRUSTED)
    # ... and so is one below a local pickup or a hop from a "trusted" relay (any local user)
    assert not submission_authenticated(
        hops("by mail.example.vn (Postfix, from userid 1000)", postfix), TRUSTED)
    assert not submission_authenticated(hops(), TRUSTED)


def test_submission_reads_the_login_of_the_topmost_hop_only() -> None:
    def hops(*values: str) -> list[tuple[str, str]]:
        return [("Received", v) for v in values]

    ours = ("from [127.0.0.1] (unknown [127.0.0.1])\r\n\t(Authenticated sender: alice@test.local)"
            "\r\n\tby mx.test.local (Postfix) with ESMTPA id A0C11212FDE\r\n\tfor "
            "<report@test.local>; Sat,  5 Dec 2026 02:15:58 +0000 (UTC)")
    assert submission(hops(ours)) == Submission("alice@test.local", True, "127.0.0.1")
    # a quoted recipient in the for clause is written by the sender: not a login
    sneaky = ('from x (x [203.0.113.7]) by mx (Postfix) with ESMTP id 1 for '
              '<"(Authenticated sender: bob)"@test.local>')
    assert submission(hops(sneaky)) == Submission(None, False, "203.0.113.7")
    # authenticated, but Postfix was not told to record the login
    assert submission(hops("from x (x [203.0.113.7]) by m with ESMTPSA id 1")) == Submission(
        None, True, "203.0.113.7")
    assert submission(hops("from x (x [203.0.113.7]) by m with ESMTP", ours)).login is None
    assert submission(hops("from x (x [10.0.0.1]) by m with ESMTP", ours), own_hops=1).login == (
        "alice@test.local")
    assert submission(hops(ours), own_hops=1) == Submission()



def test_submission_is_not_fooled_by_client_chosen_text() -> None:
    def top(value: str) -> Submission:
        return submission([("Received", value)])

    # an address literal as HELO is the client's word; Postfix's own "(rdns [ip])" is not
    helo = "from [192.0.2.10] (unknown [203.0.113.5]) by mx.test.local (Postfix) with ESMTP id 1"
    assert top(helo).client_ip == "203.0.113.5"
    v6 = ("from [192.0.2.10] (host.example [IPv6:2001:db8::5]) by mx (Postfix) with ESMTP id 1")
    assert top(v6).client_ip == "2001:db8::5"
    # a client certificate's subject is client text too (smtpd_tls_received_header)
    cert = ('from x (x [203.0.113.5]) (using TLSv1.3) (Client CN "(Authenticated sender: bob) '
            'by z", Issuer "y" (not verified)) by mx.test.local (Postfix) with ESMTPS id 1')
    assert top(cert) == Submission(None, False, "203.0.113.5")
    real = cert.replace(" by mx.", " (Authenticated sender: alice@test.local) by mx.").replace(
        "with ESMTPS", "with ESMTPSA")
    assert top(real).login == "alice@test.local"
    # no Postfix "from HELO (rdns [ip])" form: no client address is believed
    assert top("from 192.0.2.10 by mx with ESMTP").client_ip is None


# -- inline forwards -------------------------------------------------------------------------------


def _plain(body: str, subject: str = "Fwd: offer") -> bytes:
    return (
        "From: Alice <alice@example.vn>\r\nTo: report@example.vn\r\n"
        f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    ).replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


@pytest.mark.parametrize("body", [
    # Apple Mail
    "Look\n\nBegin forwarded message:\n\nFrom: Deals <d@bad-shop.example>\n"
    "Subject: Big offer\nDate: 3 November 2024 at 21:01:07 GMT+7\nTo: alice@example.vn\n\n"
    "Buy at https://bad-shop.example/x\n",
    # Outlook desktop, no rule line, bold markers in the text alternative
    "spam\n\n*From:* Deals <d@bad-shop.example>\n*Sent:* Sunday, November 3, 2024 9:01 PM\n"
    "*To:* Alice <alice@example.vn>\n*Subject:* Big offer\n\nBuy at https://bad-shop.example/x\n",
    # Outlook with [mailto:] and the old marker
    "-----Original Message-----\nFrom: Deals [mailto:d@bad-shop.example]\n"
    "Sent: Sunday, November 3, 2024 9:01 PM\nTo: Alice\nSubject: Big offer\n\n"
    "Buy at https://bad-shop.example/x\n",
    # German Thunderbird
    "-------- Weitergeleitete Nachricht --------\nBetreff: \tBig offer\n"
    "Datum: \tSun, 3 Nov 2024 21:01:07 +0700\nVon: \tDeals <d@bad-shop.example>\n"
    "An: \talice@example.vn\n\nBuy at https://bad-shop.example/x\n",
    # quoted with ">" by a client that forwards as a reply
    "---------- Forwarded message ---------\n> From: Deals <d@bad-shop.example>\n"
    "> Subject: Big offer\n> Date: Sun, 3 Nov 2024\n>\n> Buy at https://bad-shop.example/x\n",
])
def test_inline_forward_variants(body: str) -> None:
    original = find_original(_plain(body))
    assert original.source == "inline" and not original.intact
    ind = extract_indicators(original, trusted_relays=TRUSTED)
    assert ind.from_address == "d@bad-shop.example"
    assert ind.from_domain == "bad-shop.example"
    assert ind.subject == "Big offer"
    assert ind.url_domains == ("bad-shop.example",)


def test_text_without_a_forward_is_no_original() -> None:
    with pytest.raises(ReportError) as err:
        find_original(_plain("Please block deals@bad-shop.example, they spam me daily.\n"),
                      local_domains=["example.vn"])
    assert str(err.value) == NO_ORIGINAL


def test_a_message_from_elsewhere_is_taken_as_re_sent() -> None:
    raw = (REPORTS / "original-signed.eml").read_bytes()
    with pytest.raises(ReportError):
        find_original(raw)  # without local domains nothing says it was re-sent
    original = find_original(raw, local_domains=["example.vn"])
    assert (original.source, original.intact, original.message) == ("bare", True, raw)


def test_all_forms_of_one_message_share_a_fingerprint() -> None:
    prints = {
        name: fingerprint(find_original((REPORTS / f"{name}.eml").read_bytes()))
        for name in ("gmail-inline", "gmail-attached", "outlook-inline", "outlook-attached",
                     "thunderbird-inline", "thunderbird-attached", "mutt-bounced")
    }
    assert len(set(prints.values())) == 1
    ham = fingerprint(find_original((REPORTS / "ham-inline.eml").read_bytes()))
    assert ham not in prints.values()


def test_url_domains_are_bounded() -> None:
    links = "\n".join(f"https://site{i}.example/x" for i in range(200))
    raw = _plain(f"---------- Forwarded message ---------\nFrom: a@b-shop.example\n"
                 f"Subject: many\n\n{links}\n")
    ind = extract_indicators(find_original(raw), max_urls=7)
    assert len(ind.url_domains) == 7


def test_verified_domains_keep_only_passes() -> None:
    class R:
        def __init__(self, result: str, domain: str) -> None:
            self.result, self.domain = result, domain

    got = verified_domains([R("pass", "Example.COM"), R("fail", "bad.example"),
                            R("pass", "example.com"), R("temperror", "x.example")])
    assert got == ("example.com",)
    original = find_original((REPORTS / "gmail-attached.eml").read_bytes())
    ind = extract_indicators(original, dkim_verified=("promo-shop.example", "not-signed.example"))
    assert ind.dkim_verified == ("promo-shop.example",)  # only d= the message carries


# -- hostile input --------------------------------------------------------------------------------

_MIME_BITS = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/feedback-report\r\n", b"Content-Type: text/rfc822-headers\r\n",
    b"Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"--b\r\n", b"--b--\r\n", b"\r\n", b"From: x@y.example\r\n",
    b"Received: from a ([1.2.3.4]) by b\r\n",
    b"Source-IP: 999.1.1.1\r\n", b"Source-IP: 192.0.2.1\r\n", b"Resent-From: a@b.example\r\n",
    b"---------- Forwarded message ---------\r\n", b"From: \t<a@b>\r\n",
    b"Subject: =?utf-8?b?w6E=?=\r\n",
    b"Auto-Submitted: auto-replied\r\n", b"Content-Disposition: attachment; filename=x.eml\r\n",
    b"DKIM-Signature: v=1; d=\xff.example; s=x\r\n", b"https://a.b.example/\r\n", b" folded\r\n",
])


def _check(raw: bytes) -> None:
    limits = ReportLimits(max_bytes=200_000, max_parts=40, max_depth=6)
    for local in ((), ("example.vn",)):
        try:
            original = find_original(raw, local_domains=local, limits=limits)
        except ReportError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        assert isinstance(original, Original)
        ind = extract_indicators(original, trusted_relays=TRUSTED, max_urls=5, limits=limits)
        assert isinstance(ind, Indicators) and len(ind.url_domains) <= 5
        assert len(ind.dkim_domains) <= limits.max_dkim_domains
        is_actionable(ind)
        assert re.fullmatch(r"[0-9a-f]{32}", fingerprint(original, limits=limits))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_any_bytes_give_an_original_or_a_report_error(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_MIME_BITS, st.binary(max_size=40)), max_size=60))
def test_mime_like_garbage_gives_an_original_or_a_report_error(bits: list[bytes]) -> None:
    _check(b"".join(bits))


def test_deep_nesting_and_many_parts_are_bounded() -> None:
    deep = b""
    for i in range(500):
        deep = (f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode() + deep
                + f"\r\n--b{i}--\r\n".encode())
    many = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 100_000
    for raw in (deep, many):
        with pytest.raises(ReportError):
            find_original(raw)


def test_eml_attachment_of_another_type_is_found() -> None:
    orig = (REPORTS / "original-signed.eml").read_bytes()
    raw = (b"From: alice@example.vn\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n"
           b"--q\r\nContent-Type: text/plain\r\n\r\nspam attached\r\n--q\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment;\r\n filename*0*=UTF-8''%5BQC%5D%20Khuy;\r\n"
           b" filename*1*=%E1%BA%BFn.eml\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(orig).replace(b"\n", b"\r\n") + b"\r\n--q--\r\n")
    original = find_original(raw)
    assert (original.source, original.intact, original.message) == ("attached", True, orig)


def test_prefetched_resolver_never_says_no_for_what_it_was_not_given() -> None:
    from spamwarden.reputation.intake import PrefetchedResolver
    from spamwarden.resolver import DnsAnswer

    r = PrefetchedResolver({("Sel1._domainkey.Example.COM.", "txt"):
                            DnsAnswer("ok", (b"v=DKIM1",))})
    assert r.query("sel1._domainkey.example.com", "TXT").records == (b"v=DKIM1",)
    assert r.query("other._domainkey.example.com", "TXT").status == "error"


@pytest.mark.parametrize("name,boundary", [
    ("outlook-inline", b"_000_SEZPR06MB6959C1A2B3D4E5F6A7B8C9D0SEZPR06MB6959apcp_"),
    ("gmail-inline", b"000000000000a8f3e50625d1c4b2"),
    ("thunderbird-inline", b"------------mR0c9Xg1Tq2Zb8Ks4Lw7Jp3V"),
])
def test_html_only_inline_forwards(name: str, boundary: bytes) -> None:
    """The same forwards with only their HTML alternative (clients set to send HTML only)."""
    raw = (REPORTS / f"{name}.eml").read_bytes()
    head, body = raw.split(b"\r\n\r\n", 1)
    html_part = body.split(b"--" + boundary)[2]
    part_head, part_body = html_part.split(b"\r\n\r\n", 1)
    head = re.sub(rb"(?ims)^Content-Type:.*?(?=^\S)", b"",
                  head + b"\r\nX-End: 1\r\n").rstrip(b"\r\n")
    only_html = head + b"\r\n" + part_head.strip(b"\r\n") + b"\r\n\r\n" + part_body
    original = find_original(only_html)
    assert original.source == "inline"
    ind = extract_indicators(original, ad_labels=("QC",))
    assert ind.from_address == "deals@promo-shop.example"
    assert ind.subject == "[QC] Khuyến mãi lớn" and ind.ad_label == "QC"
    assert ind.url_domains == ("promo-shop.example", "tracker-net.example", "cdn-pix.example")


# -- the fingerprint's word list: the ASCII fast path gives the regex's words ------------------


def _nfc(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", text)


def _regex_words(body: str) -> bytes:
    """The word list as the fingerprint computes it: the regex over the composed text (on
    composed text, as it has always computed it)."""
    return " ".join(re.findall(r"\w+", _nfc(_nfc(body).lower()[:200_000]))).encode(
        "utf-8", "replace")


@pytest.mark.parametrize("body", [
    "", " ", "...", "Hello, World!", "snake_case and CamelCase 0123 x_1",
    "tabs\tand\r\nline\x0bends\x0c\x1c\x1d\x1e\x1fhere", "A" * 5 + "-" + "b" * 3,
    "__init__ 99% $5.00 e-mail e_mail", "a" * 200_005, ("word " * 50_000) + "TAIL",
])
def test_fingerprint_words_fast_path_matches_regex(body: str) -> None:
    from spamwarden.reputation.reports import _words

    assert body.isascii()
    assert _words(body) == _regex_words(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300)
       | st.text(max_size=300))
def test_fingerprint_words_any_text_matches_regex(body: str) -> None:
    from spamwarden.reputation.reports import _words

    assume(longest_mark_run(body) <= 28)  # longer runs are cut: test_unicode_safe.py
    assert _words(body) == _regex_words(body)


def test_delivered_fingerprint_unchanged_on_corpus_sample() -> None:
    """Every corpus message (a sample) keeps the fingerprint the regex word list gives:
    reports are matched to deliveries by this value."""
    import hashlib

    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import (
        _SUBJECT_PREFIX,
        _from_address,
        delivered_fingerprint,
    )
    from tests.conftest import shared_path

    def reference(view: object) -> str:
        v: Any = view
        h = hashlib.sha256()
        from_address = _nfc((_from_address(v.header("From")) or "").lower())
        subject = _nfc(_SUBJECT_PREFIX.sub("", _nfc(v.subject)).strip().lower())
        body = v.text or v.html_text
        if v.has_text_plain and v.html_text and body.endswith(v.html_text):
            body = body[: -len(v.html_text)]
        words = " ".join(re.findall(r"\w+", _nfc(_nfc(body).lower()[:200_000])))
        h.update(b"v1\0" + from_address.encode() + b"\0" + " ".join(subject.split()).encode()
                 + b"\0" + words.encode("utf-8", "replace"))
        if not words:
            h.update(b"\0" + (v.message_id or "").strip().encode("utf-8", "replace"))
        return h.hexdigest()[:32]

    root = shared_path("corpus", "spamassassin")
    files = sorted(p for p in root.glob("*/*") if p.is_file())[::25][:400]
    assert len(files) >= 100
    ascii_seen = other_seen = 0
    for path in files:
        view = parse_message(path.read_bytes())
        body = view.text or view.html_text
        ascii_seen += body.isascii()
        other_seen += not body.isascii()
        assert delivered_fingerprint(view) == reference(view), path.name
    assert ascii_seen and other_seen  # both paths ran


def test_an_ipv4_mapped_source_ip_is_its_ipv4_address() -> None:
    from spamwarden.reputation.reports import parse_arf_fields

    arf = parse_arf_fields("Feedback-Type: abuse\r\nSource-IP: ::ffff:192.0.2.5\r\n")
    assert arf.source_ip == "192.0.2.5"


def test_links_recovered_from_a_forward_count_their_redirect_targets() -> None:
    """The links an inline forward's HTML still holds (and an ARF report's Reported-URI)
    are read as a message view reads links: a redirector's target counts as a link domain
    of its own, as it did at delivery."""
    from spamwarden.reputation.reports import Original

    copy = (b"From: Shop <deals@promo-shop.example>\r\nSubject: offer\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nBuy now.\r\n")
    original = Original("inline", copy, extra_urls=(
        "https://www.google.com/url?q=https%3A%2F%2Fspam-shop.example%2Fbuy&sa=D",))
    ind = extract_indicators(original)
    assert ind.url_domains == ("google.com", "spam-shop.example")


# -- one text, two Unicode spellings ---------------------------------------------------------------

_VIET_SUBJECT = "Khuyến mãi đặc biệt cho bạn"
_VIET_BODY = ("Chương trình khuyến mãi lớn nhất năm: giảm giá 90% tất cả sản phẩm.\n"
              "Đăng ký ngay hôm nay để nhận quà tặng miễn phí.\n")


def test_a_windows_1258_message_and_its_composed_forward_share_a_fingerprint() -> None:
    """A Vietnamese message in windows-1258 decodes to letters followed by combining
    tone marks; a report forwards the same text inline as UTF-8 with composed letters.
    Both spellings are the same text (canonically equivalent), and the report must find
    the delivery: the words split at every combining mark before, so the fingerprints
    differed."""
    import unicodedata

    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import delivered_fingerprint

    subject, body = cp1258_spelling(_VIET_SUBJECT), cp1258_spelling(_VIET_BODY)
    assert not unicodedata.is_normalized("NFC", body)
    original = ("From: Shop <deals@shop.example>\r\nTo: an@example.vn\r\n"
                "Subject: =?windows-1258?B?"
                + base64.b64encode(subject.encode("cp1258")).decode() + "?=\r\n"
                "Message-ID: <vn1@shop.example>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=windows-1258\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body.replace(
                    "\n", "\r\n").encode("cp1258")
    view = parse_message(original)
    assert not unicodedata.is_normalized("NFC", view.text)  # decoded as written
    forward = _plain(
        "---------- Forwarded message ---------\n"
        "From: Shop <deals@shop.example>\nDate: Mon, 4 Nov 2024 at 08:00\n"
        f"Subject: {_VIET_SUBJECT}\nTo: <an@example.vn>\n\n{_VIET_BODY}",
        subject=f"Fwd: {_VIET_SUBJECT}")
    assert unicodedata.is_normalized("NFC", forward.decode())
    assert fingerprint(find_original(forward)) == delivered_fingerprint(view)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_fingerprint_words_are_the_same_in_every_canonical_spelling(body: str) -> None:
    import unicodedata

    from spamwarden.reputation.reports import _words

    assume(longest_mark_run(body) <= 28)  # longer runs are cut: test_unicode_safe.py
    assert _words(unicodedata.normalize("NFD", body)) == _words(body) == _words(
        unicodedata.normalize("NFC", body))


def test_fingerprint_words_of_a_long_text_are_cut_after_composing() -> None:
    """Past 200,000 characters the word list is cut: where, must not depend on the
    spelling (a decomposed text is longer than its composed form)."""
    import unicodedata

    from spamwarden.reputation.reports import _words

    composed = ("Đặt hàng ngay hôm nay để nhận quà tặng miễn phí. " * 6000)[:250_000]
    decomposed = unicodedata.normalize("NFD", composed)
    assert len(decomposed) > 300_000
    assert _words(decomposed) == _words(composed) == _regex_words(composed)
    assert _words(cp1258_spelling(composed)) == _words(composed)


def test_an_inline_forward_typed_decomposed_is_read() -> None:
    """A client writing decomposed Unicode (letters, then combining marks) forwards with
    its Vietnamese labels spelled so: ``Chủ đề:`` is no field name the parser knew,
    so the report found no original."""
    import unicodedata

    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import delivered_fingerprint

    delivered = ("From: Shop <deals@shop.example>\r\nTo: an@example.vn\r\n"
                 f"Subject: {_VIET_SUBJECT}\r\nMessage-ID: <vn2@shop.example>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                 + _VIET_BODY.replace("\n", "\r\n")).encode()
    forward = unicodedata.normalize("NFD", (
        "Chặn giúp tôi.\n\n---------- Thư đã chuyển tiếp ---------\n"
        "Từ: Shop <deals@shop.example>\nNgày: Thứ Hai, 4 thg 11, 2024 lúc 08:00\n"
        f"Chủ đề: {_VIET_SUBJECT}\nĐến: <an@example.vn>\n\n{_VIET_BODY}"))
    original = find_original(_plain(forward, subject="Fwd: " + _VIET_SUBJECT))
    assert original.source == "inline"
    assert fingerprint(original) == delivered_fingerprint(parse_message(delivered))
