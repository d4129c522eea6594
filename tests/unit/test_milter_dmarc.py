"""DMARC (RFC 7489): policy discovery, alignment, sp=, pct=, DNS failures."""

from __future__ import annotations

import pytest

from spamwarden.milter.auth import (
    DkimResult,
    SpfResult,
    check_dmarc,
    identifiers_aligned,
    parse_dmarc_record,
)
from spamwarden.resolver import StaticResolver


def spf(result: str, domain: str, scope: str = "mailfrom") -> SpfResult:
    return SpfResult(result, scope, domain, f"bounce@{domain}")


def dkim(result: str, domain: str) -> DkimResult:
    return DkimResult(result, domain, "sel", "rsa-sha256", "abcdefgh")


def zone(**records: object) -> StaticResolver:
    """``example_com="v=DMARC1; p=reject"`` -> TXT at _dmarc.example.com."""
    z: dict[tuple[str, str], object] = {}
    for name, value in records.items():
        key = ("_dmarc." + name.replace("_", "."), "TXT")
        z[key] = value if value == "error" else (
            [v.encode() for v in value] if isinstance(value, list) else [str(value).encode()])
    return StaticResolver(z)


REJECT = zone(example_com="v=DMARC1; p=reject; rua=mailto:d@example.com")


@pytest.mark.parametrize(
    ("mode", "identifier", "aligned"),
    [
        ("r", "example.com", True),
        ("r", "mail.example.com", True),
        ("r", "a.b.example.com", True),
        ("r", "example.net", False),
        ("r", "notexample.com", False),
        ("s", "example.com", True),
        ("s", "mail.example.com", False),
        ("r", "EXAMPLE.COM.", True),
    ],
)
def test_alignment_modes(mode: str, identifier: str, aligned: bool) -> None:
    assert identifiers_aligned(identifier, "example.com", mode) is aligned


def test_relaxed_alignment_uses_the_public_suffix_list() -> None:
    assert identifiers_aligned("mail.example.co.uk", "news.example.co.uk", "r")
    assert not identifiers_aligned("other.co.uk", "example.co.uk", "r")
    # A PSL private suffix: two users of one platform are different organizations.
    assert not identifiers_aligned("alice.github.io", "bob.github.io", "r")


def test_dkim_aligned_pass() -> None:
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("fail", "evil.example"),
                      dkim=[dkim("pass", "mail.example.com")])
    assert (got.result, got.dkim_aligned, got.spf_aligned) == ("pass", True, False)
    assert (got.policy, got.applied_policy) == ("reject", "none")
    assert got.org_domain == "example.com" and got.record_domain == "example.com"


def test_spf_aligned_pass() -> None:
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("pass", "bounces.example.com"),
                      dkim=[])
    assert (got.result, got.spf_aligned, got.dkim_aligned) == ("pass", True, False)


def test_helo_identity_aligns_for_null_sender() -> None:
    got = check_dmarc(REJECT, from_domain="example.com",
                      spf=spf("pass", "mx.example.com", scope="helo"), dkim=[])
    assert got.result == "pass" and got.spf_aligned


def test_unaligned_passes_fail_with_the_policy() -> None:
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("pass", "bulk.example.net"),
                      dkim=[dkim("pass", "esp.example.net"), dkim("fail", "example.com")])
    assert (got.result, got.policy, got.applied_policy) == ("fail", "reject", "reject")
    assert not got.spf_aligned and not got.dkim_aligned


def test_strict_alignment() -> None:
    r = zone(example_com="v=DMARC1; p=quarantine; adkim=s; aspf=s")
    sub = check_dmarc(r, from_domain="example.com", spf=spf("pass", "mail.example.com"),
                      dkim=[dkim("pass", "mail.example.com")])
    assert (sub.result, sub.applied_policy) == ("fail", "quarantine")
    exact = check_dmarc(r, from_domain="example.com", spf=spf("fail", "example.com"),
                        dkim=[dkim("pass", "example.com")])
    assert exact.result == "pass"


def test_subdomain_policy_from_org_domain_record() -> None:
    r = zone(example_com="v=DMARC1; p=none; sp=reject")
    got = check_dmarc(r, from_domain="news.example.com", spf=None, dkim=[])
    assert (got.result, got.policy, got.applied_policy) == ("fail", "reject", "reject")
    assert (got.from_domain, got.org_domain, got.record_domain) == (
        "news.example.com", "example.com", "example.com")
    # The org domain itself gets p=.
    top = check_dmarc(r, from_domain="example.com", spf=None, dkim=[])
    assert (top.policy, top.applied_policy) == ("none", "none")


def test_subdomain_without_sp_inherits_p() -> None:
    got = check_dmarc(REJECT, from_domain="a.b.example.com", spf=None, dkim=[])
    assert (got.policy, got.applied_policy) == ("reject", "reject")


def test_subdomain_own_record_wins_and_uses_p() -> None:
    r = zone(example_com="v=DMARC1; p=reject; sp=reject",
             news_example_com="v=DMARC1; p=none; sp=quarantine")
    got = check_dmarc(r, from_domain="news.example.com", spf=None, dkim=[])
    assert (got.policy, got.record_domain) == ("none", "news.example.com")
    assert r.queries == [("_dmarc.news.example.com", "TXT")]


def test_no_record_is_none() -> None:
    r = StaticResolver({})
    got = check_dmarc(r, from_domain="news.example.com", spf=spf("fail", "x.example"), dkim=[])
    assert (got.result, got.policy, got.applied_policy) == ("none", "", "")
    assert r.queries == [("_dmarc.news.example.com", "TXT"), ("_dmarc.example.com", "TXT")]


def test_non_dmarc_txt_records_are_ignored() -> None:
    r = zone(example_com=["v=spf1 -all", "google-site-verification=abc",
                          "v=DMARC1; p=quarantine"])
    got = check_dmarc(r, from_domain="example.com", spf=None, dkim=[])
    assert (got.result, got.policy) == ("fail", "quarantine")
    assert check_dmarc(zone(example_com="v=spf1 -all"), from_domain="example.com", spf=None,
                       dkim=[]).result == "none"


def test_multiple_records_mean_no_policy_and_no_fallback() -> None:
    r = zone(news_example_com=["v=DMARC1; p=reject", "v=DMARC1; p=none"],
             example_com="v=DMARC1; p=reject")
    got = check_dmarc(r, from_domain="news.example.com", spf=None, dkim=[])
    assert (got.result, got.policy, got.applied_policy) == ("none", "", "")
    assert "2 DMARC records" in got.reason
    assert ("_dmarc.example.com", "TXT") not in r.queries


@pytest.mark.parametrize("failing", ["example_com", "news_example_com"])
def test_dns_failure_is_temperror(failing: str) -> None:
    got = check_dmarc(zone(**{failing: "error"}), from_domain="news.example.com",
                      spf=spf("fail", "evil.example"), dkim=[])
    assert (got.result, got.policy, got.applied_policy) == ("temperror", "", "")


def test_aligned_temporary_failure_is_temperror_not_fail() -> None:
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("temperror", "example.com"),
                      dkim=[dkim("fail", "example.com")])
    assert (got.result, got.applied_policy) == ("temperror", "")
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("fail", "example.com"),
                      dkim=[dkim("temperror", "mail.example.com")])
    assert got.result == "temperror"
    # A temporary failure of an unaligned identifier cannot rescue the message.
    got = check_dmarc(REJECT, from_domain="example.com", spf=spf("temperror", "evil.example"),
                      dkim=[])
    assert (got.result, got.applied_policy) == ("fail", "reject")


def test_pct_sampling_is_deterministic_and_downgrades() -> None:
    r = zone(example_com="v=DMARC1; p=reject; pct=50")
    applied = [check_dmarc(r, from_domain="example.com", spf=None, dkim=[],
                           message_key=f"<{i}@example.com>").applied_policy for i in range(200)]
    assert set(applied) == {"reject", "quarantine"}
    assert 60 <= applied.count("reject") <= 140
    again = [check_dmarc(r, from_domain="example.com", spf=None, dkim=[],
                         message_key=f"<{i}@example.com>").applied_policy for i in range(200)]
    assert again == applied
    q = zone(example_com="v=DMARC1; p=quarantine; pct=0")
    got = check_dmarc(q, from_domain="example.com", spf=None, dkim=[], message_key="<x@y>")
    assert (got.result, got.policy, got.applied_policy, got.pct) == ("fail", "quarantine",
                                                                     "none", 0)
    full = zone(example_com="v=DMARC1; p=reject; pct=100")
    assert all(check_dmarc(full, from_domain="example.com", spf=None, dkim=[],
                           message_key=f"<{i}@x>").applied_policy == "reject" for i in range(50))


@pytest.mark.parametrize(
    ("text", "p", "sp", "adkim", "aspf", "pct"),
    [
        ("v=DMARC1; p=reject", "reject", "reject", "r", "r", 100),
        ("v=DMARC1;p=Quarantine;sp=none;adkim=s;aspf=s;pct=20", "quarantine", "none", "s", "s",
         20),
        ("v=DMARC1; p=bogus; rua=mailto:a@example.com", "none", "none", "r", "r", 100),
        ("v=DMARC1; p=bogus", "", "", "r", "r", 100),
        ("v=DMARC1; p=reject; sp=bogus; adkim=x; pct=500", "reject", "reject", "r", "r", 100),
        ("v=DMARC1; p=reject; pct=abc", "reject", "reject", "r", "r", 100),
    ],
)
def test_record_parsing(text: str, p: str, sp: str, adkim: str, aspf: str, pct: int) -> None:
    rec = parse_dmarc_record(text)
    assert (rec.p, rec.sp, rec.adkim, rec.aspf, rec.pct) == (p, sp, adkim, aspf, pct)


def test_record_without_policy_gives_none() -> None:
    got = check_dmarc(zone(example_com="v=DMARC1; rua=; adkim=s"), from_domain="example.com",
                      spf=None, dkim=[])
    assert (got.result, got.policy) == ("none", "")


@pytest.mark.parametrize("from_domain", [None, "", "localhost", "[192.0.2.1]", "bad..name"])
def test_unusable_from_domain(from_domain: str | None) -> None:
    r = StaticResolver({})
    got = check_dmarc(r, from_domain=from_domain, spf=None, dkim=[])
    assert got.result == "none"
    assert r.queries == []


def test_public_suffix_from_domain_does_not_fall_back() -> None:
    r = StaticResolver({})
    got = check_dmarc(r, from_domain="co.uk", spf=None, dkim=[])
    assert got.result == "none"
    assert r.queries == [("_dmarc.co.uk", "TXT")]
