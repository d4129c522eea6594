"""authenticate() end to end, and SPF behaviour beyond the openspf suites.

Messages are signed here with dkimpy using keys generated for the test (RSA
and Ed25519); every record is served by a StaticResolver.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass

import dkim
import nacl.signing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spamwarden.mail import parse_message
from spamwarden.milter.auth import (
    SPF_RESULTS,
    AuthResults,
    SpfResult,
    authenticate,
    author_domains,
    check_spf,
)
from spamwarden.resolver import DnsAnswer, StaticResolver

CLIENT = "192.0.2.10"
MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: quarterly report\r\n"
    b"Date: Sun, 29 Nov 2026 08:00:00 +0000\r\n"
    b"Message-ID: <report-1@example.com>\r\n"
    b"List-Unsubscribe: <https://example.com/u/1>\r\n"
    b"\r\n"
    b"The report is attached in spirit.\r\n"
)


@dataclass(frozen=True)
class Keys:
    rsa_pem: bytes
    rsa_record: bytes
    ed_private: bytes
    ed_record: bytes


@pytest.fixture(scope="module")
def keys() -> Keys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    ed = nacl.signing.SigningKey.generate()
    return Keys(
        rsa_pem=pem,
        rsa_record=b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki),
        ed_private=base64.b64encode(bytes(ed)),
        ed_record=b"v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(ed.verify_key)),
    )


def world(keys: Keys, **overrides: object) -> StaticResolver:
    """example.com with SPF, both DKIM keys and p=reject; overrides by (name|type)."""
    zone: dict[tuple[str, str], object] = {
        ("example.com", "TXT"): [b"v=spf1 ip4:192.0.2.0/28 -all"],
        ("rsa._domainkey.example.com", "TXT"): [keys.rsa_record],
        ("ed._domainkey.example.com", "TXT"): [keys.ed_record],
        ("_dmarc.example.com", "TXT"): [b"v=DMARC1; p=reject; rua=mailto:d@example.com"],
        ("mx.example.com", "TXT"): [b"v=spf1 a -all"],
        ("mx.example.com", "A"): [CLIENT],
        ("esp.example.net", "TXT"): [b"v=spf1 ip4:198.51.100.0/24 -all"],
        ("s1._domainkey.esp.example.net", "TXT"): [keys.rsa_record],
    }
    for key, value in overrides.items():
        name, rdtype = key.split("|")
        zone[(name, rdtype)] = value
    return StaticResolver(zone)


def signed(keys: Keys, message: bytes = MESSAGE, *, rsa_domain: bytes = b"example.com",
           selector: bytes = b"rsa", ed: bool = True) -> bytes:
    headers = [b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe"]
    out: bytes = dkim.sign(message, selector, rsa_domain, keys.rsa_pem, include_headers=headers,
                    canonicalize=(b"relaxed", b"relaxed")) + message
    if ed:
        out = dkim.sign(out, b"ed", b"example.com", keys.ed_private,
                        signature_algorithm=b"ed25519-sha256", include_headers=headers[:5],
                        canonicalize=(b"relaxed", b"simple")) + out
    return out


def run(raw: bytes, resolver: StaticResolver, *, ip: str | None = CLIENT,
        mail_from: str = "<bounce@example.com>", helo: str = "mx.example.com",
        **kwargs: object) -> AuthResults:
    return authenticate(raw, parse_message(raw), resolver, client_ip=ip, helo=helo,
                        mail_from=mail_from, **kwargs)  # type: ignore[arg-type]


def test_signed_message_passes_everything(keys: Keys) -> None:
    res = run(signed(keys), world(keys))
    assert res.spf == SpfResult("pass", "mailfrom", "example.com", "bounce@example.com",
                                res.spf.explanation if res.spf else "")
    assert [(d.result, d.domain, d.selector, d.algorithm) for d in res.dkim] == [
        ("pass", "example.com", "ed", "ed25519-sha256"),
        ("pass", "example.com", "rsa", "rsa-sha256"),
    ]
    assert res.dkim[1].key_bits == 2048 and res.dkim[0].key_bits == 256
    assert "list-unsubscribe" in res.dkim[1].covered_headers
    assert "list-unsubscribe" not in res.dkim[0].covered_headers
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.spf_aligned, res.dmarc.dkim_aligned) == (
        "pass", True, True)
    assert (res.dmarc.policy, res.dmarc.applied_policy) == ("reject", "none")


def test_forged_message_from_reject_domain(keys: Keys) -> None:
    # Sent from an unlisted address with a signature the attacker cannot make.
    raw = signed(keys).replace(b"The report", b"Wire money: the report")
    res = run(raw, world(keys), ip="203.0.113.5")
    assert res.spf is not None and res.spf.result == "fail"
    assert [d.result for d in res.dkim] == ["fail", "fail"]
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.applied_policy) == ("fail", "reject")


def test_third_party_signature_does_not_align(keys: Keys) -> None:
    raw = signed(keys, rsa_domain=b"esp.example.net", selector=b"s1", ed=False)
    res = run(raw, world(keys), ip="198.51.100.7", mail_from="b@esp.example.net")
    assert res.spf is not None and res.spf.result == "pass"
    assert [(d.result, d.domain) for d in res.dkim] == [("pass", "esp.example.net")]
    assert res.dmarc is not None and res.dmarc.result == "fail"
    assert not res.dmarc.spf_aligned and not res.dmarc.dkim_aligned


def test_dns_failures_give_temperror_everywhere(keys: Keys) -> None:
    r = world(keys, **{"example.com|TXT": "error", "ed._domainkey.example.com|TXT": "error",
                       "rsa._domainkey.example.com|TXT": "error"})
    res = run(signed(keys), r)
    assert res.spf is not None and res.spf.result == "temperror"
    assert [d.result for d in res.dkim] == ["temperror", "temperror"]
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.applied_policy) == ("temperror", "")
    r2 = world(keys, **{"_dmarc.example.com|TXT": "error"})
    assert run(signed(keys), r2).dmarc.result == "temperror"  # type: ignore[union-attr]


def test_null_sender_checks_helo(keys: Keys) -> None:
    res = run(signed(keys), world(keys), mail_from="<>")
    assert res.spf == SpfResult("pass", "helo", "mx.example.com", "postmaster@mx.example.com",
                                res.spf.explanation if res.spf else "")
    assert res.dmarc is not None and res.dmarc.spf_aligned


def test_unsigned_without_client_ip(keys: Keys) -> None:
    res = run(MESSAGE, world(keys), ip=None)
    assert res.spf is None and res.dkim == ()
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.applied_policy) == ("fail", "reject")


def test_precomputed_spf_is_reused(keys: Keys) -> None:
    r = world(keys)
    given = SpfResult("pass", "mailfrom", "example.com", "bounce@example.com")
    res = run(signed(keys), r, spf_result=given)
    assert res.spf is given
    assert ("example.com", "TXT") not in r.queries


def test_truncated_message_is_not_verified(keys: Keys) -> None:
    from spamwarden.mail import ParseLimits

    raw = signed(keys)
    view = parse_message(raw, limits=ParseLimits(max_bytes=len(raw) - 10))
    assert view.truncated
    res = authenticate(raw[: len(raw) - 10], view, world(keys), client_ip=CLIENT,
                       helo="mx.example.com", mail_from="bounce@example.com")
    assert [(d.result, d.domain, d.selector) for d in res.dkim] == [
        ("neutral", "example.com", "ed"), ("neutral", "example.com", "rsa")]
    assert res.dmarc is not None and res.dmarc.result == "pass"  # SPF still aligns


def test_from_fields_with_different_domains_each_meet_their_policy(keys: Keys) -> None:
    """RFC 7489 §6.6.1: every author domain's policy applies and the strictest wins. It
    was permerror (0.5 points): a forged From of a p=reject domain beside one of the
    sender's own went through."""
    raw = signed(keys).replace(b"To: bob", b"From: ceo@evil.example\r\nTo: bob", 1)
    res = run(raw, world(keys))  # example.com passes (SPF); evil.example has no policy
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.from_domain) == ("none", "evil.example")
    assert "the strictest of 2 From domains" in res.dmarc.reason
    forged = MESSAGE.replace(b"From: Alice <alice@example.com>",
                             b"From: deals@evil.example\r\nFrom: CEO <ceo@example.com>")
    res = run(forged, world(keys), ip="203.0.113.5", mail_from="<x@evil.example>")
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.applied_policy, res.dmarc.from_domain) == (
        "fail", "reject", "example.com")


@pytest.mark.parametrize("padding", [
    b"".join(b"X-Pad-%d: y\r\n" % i for i in range(1000)),  # past the field limit
    b"X-Pad: " + b"y" * 300_000 + b"\r\n",  # past the header byte limit
])
def test_a_from_field_after_header_padding_is_still_evaluated(keys: Keys,
                                                              padding: bytes) -> None:
    """1,000 fields or 256 KB before the From field hid it: DMARC found no From domain
    (none, 0 points) and a forged p=reject From was delivered."""
    forged = padding + MESSAGE.replace(b"From: Alice <alice@example.com>",
                                       b"From: CEO <ceo@example.com>")
    view = parse_message(forged)
    assert view.from_domain == "example.com"
    assert "From field past the header limits" in view.defects
    res = run(forged, world(keys), ip="203.0.113.5", mail_from="<x@evil.example>")
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.applied_policy) == ("fail", "reject")
    # and a second, different From before the padding's end counts too
    both = b"From: deals@evil.example\r\n" + forged
    res = run(both, world(keys), ip="203.0.113.5", mail_from="<x@evil.example>")
    assert res.dmarc is not None
    assert (res.dmarc.result, res.dmarc.from_domain) == ("fail", "example.com")


def test_at_most_five_author_domains_are_evaluated_and_the_last_always() -> None:
    froms = "".join(f"From: a@d{i}.example\r\n" for i in range(8)) + "From: a@d0.example\r\n"
    view = parse_message((froms + "To: b@example.net\r\n\r\nhi\r\n").encode())
    assert author_domains(view) == ["d0.example", "d1.example", "d2.example", "d3.example",
                                    "d4.example"]
    view = parse_message((froms + "From: ceo@bank.example\r\n\r\nhi\r\n").encode())
    assert author_domains(view) == ["d0.example", "d1.example", "d2.example", "d3.example",
                                    "bank.example"]


# -- SPF details ------------------------------------------------------------------------------

SPF_ZONE = StaticResolver({
    ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"],
    ("soft.example.org", "TXT"): [b"v=spf1 ?all"],
    ("inc.example.org", "TXT"): [b"v=spf1 include:broken.example.org -all"],
    ("broken.example.org", "TXT"): "error",
})


@pytest.mark.parametrize(
    ("ip", "mail_from", "expected"),
    [
        ("192.0.2.1", "a@example.org", "pass"),
        ("2001:db8::5", "a@example.org", "pass"),
        ("::ffff:192.0.2.1", "a@example.org", "pass"),
        ("198.51.100.1", "a@example.org", "softfail"),
        ("198.51.100.1", "a@soft.example.org", "neutral"),
        ("198.51.100.1", "a@nothing.example.org", "none"),
        ("198.51.100.1", "a@inc.example.org", "temperror"),
        ("not-an-ip", "a@example.org", "permerror"),
    ],
)
def test_spf_results(ip: str, mail_from: str, expected: str) -> None:
    assert check_spf(SPF_ZONE, ip=ip, mail_from=mail_from, helo="h.example").result == expected


def test_spf_accepts_angle_brackets_and_reports_identity() -> None:
    got = check_spf(SPF_ZONE, ip="192.0.2.1", mail_from=" <Bob@Example.org> ", helo="h")
    assert (got.result, got.scope, got.domain, got.mail_from) == (
        "pass", "mailfrom", "example.org", "Bob@Example.org")


def test_spf_time_budget_gives_temperror() -> None:
    got = check_spf(SPF_ZONE, ip="192.0.2.1", mail_from="a@example.org", helo="h", timeout=0)
    assert got.result == "temperror"


def test_spf_passes_the_remaining_budget_to_each_lookup() -> None:
    seen: list[float | None] = []

    class Recording:
        timeout = 2.0

        def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
            seen.append(timeout)
            return DnsAnswer("ok", (b"v=spf1 -all",))

    check_spf(Recording(), ip="192.0.2.1", mail_from="a@example.org", helo="h", timeout=20)
    assert seen and all(t is not None and 0 < t <= 2.0 for t in seen)
    seen.clear()
    check_spf(Recording(), ip="192.0.2.1", mail_from="a@example.org", helo="h", timeout=0.5)
    assert seen and all(t is not None and 0 < t <= 0.5 for t in seen)


def test_concurrent_checks_use_their_own_resolver() -> None:
    """Threads with different zones never see each other's answers (no global hook)."""
    passing = StaticResolver({("example.org", "TXT"): [b"v=spf1 +all"]})
    failing = StaticResolver({("example.org", "TXT"): [b"v=spf1 -all"]})
    wrong: list[str] = []
    start = threading.Barrier(8)

    def worker(resolver: StaticResolver, want: str) -> None:
        start.wait(timeout=10)
        for _ in range(200):
            got = check_spf(resolver, ip="192.0.2.1", mail_from="a@example.org", helo="h")
            if got.result != want:
                wrong.append(got.result)

    threads = [threading.Thread(target=worker, args=(passing, "pass") if i % 2 else
                                (failing, "fail")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []


_SPF_TERMS = st.sampled_from([
    "a", "mx", "ptr", "-all", "~all", "?all", "+all", "include:%{d}", "exists:%{i}.%{l}.x.example",
    "redirect=%{o}", "exp=%{d}", "a:%{h}/24", "mx//64", "ip4:1.2.3.4/33", "ip6:::1/129", "a:..",
    "%{z}", "include:", "a/0", "exp=", "%%", "%{ir}.%{v}._spf.%{d2}", "ptr:%{p}", "a:%{c}",
])
_SPF_RECORDS = st.lists(st.one_of(_SPF_TERMS, st.text(max_size=12)), max_size=8).map(
    lambda terms: "v=spf1 " + " ".join(terms))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SPF_RECORDS, _SPF_RECORDS, st.text(max_size=30), st.text(max_size=20),
       st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:1.2.3.4", "x"]))
def test_spf_hostile_records_and_identities_never_raise(top: str, inc: str, mail_from: str,
                                                        helo: str, ip: str) -> None:
    zone = StaticResolver({
        ("example.org", "TXT"): [top.encode("utf-8", "replace")],
        ("x.example.org", "TXT"): [inc.encode("utf-8", "replace")],
        ("example.org", "A"): ["192.0.2.1"],
        ("example.org", "MX"): [(10, "x.example.org")],
        ("x.example.org", "A"): ["192.0.2.9"],
        ("1.2.0.192.in-addr.arpa", "PTR"): ["x.example.org"],
    })
    for sender in (mail_from, "a@example.org", mail_from + "@example.org", ""):
        got = check_spf(zone, ip=ip, mail_from=sender, helo=helo.strip() or "example.org")
        assert got.result in SPF_RESULTS
        assert got.scope in ("helo", "mailfrom")
        if sender == "" or sender == "a@example.org":
            assert got.scope == ("helo" if sender == "" else "mailfrom")
