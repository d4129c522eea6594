"""ARC (RFC 8617): chain validation, the local DMARC policy with trusted sealers, sealing.

Every chain is built here with dkimpy and keys made for the test; key records are
served by a StaticResolver (dkimpy's own DNS is never used).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spamwarden.cli import main
from spamwarden.config import Config, config_from_mapping
from spamwarden.errors import ConfigError
from spamwarden.mail import parse_message
from spamwarden.milter.auth import (
    ArcResult,
    AuthResults,
    DmarcResult,
    aar_dmarc_pass,
    authenticate,
    verify_arc,
)
from spamwarden.milter.checks.auth import arc_override, auth_symbols
from spamwarden.milter.headers import render_authentication_results
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.registry import SymbolPoints
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

LIST = "lists.example.org"
LIST_IP = "198.51.100.20"
AUTHSERV = "mx.test.example"

ORIGINAL = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: team@lists.example.org\r\n"
    b"Subject: minutes\r\n"
    b"Date: Sun, 29 Nov 2026 08:00:00 +0000\r\n"
    b"Message-ID: <minutes-1@example.com>\r\n"
    b"\r\n"
    b"The minutes of the meeting.\r\n"
)


@dataclass(frozen=True)
class Key:
    pem: bytes
    record: bytes


def make_key() -> Key:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki))


@pytest.fixture(scope="module")
def author_key() -> Key:
    return make_key()


@pytest.fixture(scope="module")
def list_key() -> Key:
    return make_key()


def world(author: Key, lst: Key, **overrides: object) -> StaticResolver:
    """example.com (p=reject, DKIM) and the list host's SPF and sealing key."""
    zone: dict[tuple[str, str], object] = {
        ("example.com", "TXT"): [b"v=spf1 ip4:192.0.2.0/28 -all"],
        ("sel._domainkey.example.com", "TXT"): [author.record],
        ("_dmarc.example.com", "TXT"): [b"v=DMARC1; p=reject"],
        (LIST, "TXT"): [f"v=spf1 ip4:{LIST_IP} -all".encode()],
        (f"arc._domainkey.{LIST}", "TXT"): [lst.record],
        (f"arc2._domainkey.{LIST}", "TXT"): [lst.record],
    }
    for key, value in overrides.items():
        name, rdtype = key.split("|")
        zone[(name, rdtype)] = value
    return StaticResolver(zone)


def signed_by_author(author: Key, message: bytes = ORIGINAL) -> bytes:
    sig: bytes = dkim.sign(message, b"sel", b"example.com", author.pem,
                           include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                           canonicalize=(b"relaxed", b"simple"))
    return sig + message


def list_hop(lst: Key, message: bytes, *, aar: str, selector: bytes = b"arc",
             modify: bool = True) -> bytes:
    """What a mailing list does: tag the subject, add a footer (breaking the author's
    DKIM), record its own Authentication-Results and seal."""
    if modify:
        message = message.replace(b"Subject: minutes", b"Subject: [team] minutes")
        message = message + b"-- \r\nteam mailing list\r\n"
    head, _, body = message.partition(b"\r\n\r\n")  # the earlier hop's results go
    head = b"".join(f for f in _fields(head + b"\r\n")
                    if not f.startswith(b"Authentication-Results:"))
    message = head + b"\r\n" + body
    with_ar = f"Authentication-Results: {LIST}; {aar}\r\n".encode() + message
    arc_set = dkim.arc_sign(with_ar, selector, LIST.encode(), lst.pem, LIST.encode(),
                            timestamp=1796000000)
    assert len(arc_set) == 3
    return b"".join(arc_set) + with_ar


def relayed(author: Key, lst: Key, *, aar: str | None = None) -> bytes:
    """The author's message as the list passes it on, sealed, with the list's view."""
    return list_hop(lst, signed_by_author(author), aar=aar or (
        "spf=pass smtp.mailfrom=alice@example.com; dkim=pass header.d=example.com; "
        "dmarc=pass header.from=example.com; arc=none"))


def arc_of(raw: bytes, resolver: StaticResolver, **kw: Any) -> ArcResult:
    return verify_arc(raw, resolver, **kw)


# -- chain validation ---------------------------------------------------------------------------


def test_no_arc_is_none_without_a_lookup(author_key: Key, list_key: Key) -> None:
    resolver = world(author_key, list_key)
    assert arc_of(signed_by_author(author_key), resolver).result == "none"
    assert resolver.queries == []


def test_a_sealed_message_passes_and_names_its_sealer(author_key: Key, list_key: Key) -> None:
    res = arc_of(relayed(author_key, list_key), world(author_key, list_key))
    assert (res.result, res.sets, res.sealer) == ("pass", 1, LIST)
    assert aar_dmarc_pass(res.aar, "example.com")


def test_two_hops_pass(author_key: Key, list_key: Key) -> None:
    once = relayed(author_key, list_key)
    twice = list_hop(list_key, once, aar="dmarc=pass header.from=example.com; arc=pass",
                     selector=b"arc2", modify=False)
    res = arc_of(twice, world(author_key, list_key))
    assert (res.result, res.sets) == ("pass", 2)


def test_a_message_modified_after_sealing_fails(author_key: Key, list_key: Key) -> None:
    raw = relayed(author_key, list_key).replace(b"The minutes", b"The altered minutes")
    res = arc_of(raw, world(author_key, list_key))
    assert res.result == "fail" and "Message-Signature" in res.reason


def test_a_forged_seal_fails(author_key: Key, list_key: Key) -> None:
    other = make_key()  # sealed with a key that is not the one published
    raw = list_hop(other, signed_by_author(author_key), aar="dmarc=pass; arc=none")
    assert arc_of(raw, world(author_key, list_key)).result == "fail"


def test_a_missing_key_fails(author_key: Key, list_key: Key) -> None:
    resolver = world(author_key, list_key)
    del resolver.zone[(f"arc._domainkey.{LIST}", "TXT")]
    assert arc_of(relayed(author_key, list_key), resolver).result == "fail"


def test_a_dns_error_is_temperror_not_fail(author_key: Key, list_key: Key) -> None:
    resolver = world(author_key, list_key, **{f"arc._domainkey.{LIST}|TXT": "error"})
    res = arc_of(relayed(author_key, list_key), resolver)
    assert (res.result, res.sealer) == ("temperror", LIST)


def test_an_exhausted_dns_budget_is_temperror(author_key: Key, list_key: Key) -> None:
    res = arc_of(relayed(author_key, list_key), world(author_key, list_key), timeout=0)
    assert res.result == "temperror"


def test_an_incomplete_set_fails(author_key: Key, list_key: Key) -> None:
    raw = relayed(author_key, list_key)
    head, _, body = raw.partition(b"\r\n\r\n")
    kept = [f for f in _fields(head + b"\r\n")
            if not f.lower().startswith(b"arc-authentication-results")]
    res = arc_of(b"".join(kept) + b"\r\n" + body, world(author_key, list_key))
    assert res.result == "fail"


def test_cv_fail_in_the_newest_seal_fails_without_a_lookup(author_key: Key,
                                                           list_key: Key) -> None:
    raw = relayed(author_key, list_key).replace(b"cv=none", b"cv=fail", 1)
    resolver = world(author_key, list_key)
    res = arc_of(raw, resolver)
    assert res.result == "fail" and "cv=fail" in res.reason
    assert resolver.queries == []


def test_an_instance_over_50_fails(author_key: Key, list_key: Key) -> None:
    raw = relayed(author_key, list_key)
    for name in (b"ARC-Seal: i=1;", b"ARC-Message-Signature: i=1;",
                 b"ARC-Authentication-Results: i=1;"):
        raw = raw.replace(name, name.replace(b"i=1", b"i=51"))
    resolver = world(author_key, list_key)
    res = arc_of(raw, resolver)
    assert res.result == "fail" and "i=" in res.reason
    assert resolver.queries == []


def test_a_chain_longer_than_the_bound_fails_without_lookups(author_key: Key,
                                                             list_key: Key) -> None:
    raw = relayed(author_key, list_key)
    resolver = world(author_key, list_key)
    res = arc_of(raw, resolver, max_sets=0)
    assert res.result == "pass"  # max_sets is at least one
    raw2 = list_hop(list_key, raw, aar="dmarc=pass; arc=pass", modify=False)
    res = arc_of(raw2, world(author_key, list_key), max_sets=1)
    assert res.result == "fail" and "more than" in res.reason


@pytest.mark.parametrize("fields", [
    b"ARC-Seal: garbage\r\n",
    b"ARC-Seal: i=abc; cv=none\r\n",
    b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n",
    (b"ARC-Seal: i=0; cv=none\r\nARC-Message-Signature: i=0\r\n"
     b"ARC-Authentication-Results: i=0; x\r\n"),
    b"ARC-Seal: i=1; cv=none; d=x.example; s=s; a=rsa-sha256; b=AAAA\r\n" * 2
    + b"ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA; b=AA\r\n"
    + b"ARC-Authentication-Results: i=1; x.example; dmarc=pass\r\n",
    (b"ARC-Seal: i=1; cv=none; d=x.example; s=s; a=rsa-sha256; b=AAAA\r\n"
     b"ARC-Message-Signature: i=1 ; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA; b=AA\r\n"
     b"ARC-Authentication-Results: i=1; x.example; dmarc=pass\r\n"),
    b"ARC-Seal: i=2; cv=pass; d=x.example; s=s; a=rsa-sha256; b=AAAA\r\n",
])
def test_malformed_chains_fail_and_never_raise(fields: bytes, author_key: Key,
                                               list_key: Key) -> None:
    resolver = world(author_key, list_key, **{"s._domainkey.x.example|TXT": [list_key.record]})
    res = arc_of(fields + ORIGINAL, resolver)
    assert res.result == "fail", res


def test_the_authentication_results_say_arc(author_key: Key, list_key: Key) -> None:
    raw = relayed(author_key, list_key)
    res = authenticate(raw, parse_message(raw), world(author_key, list_key), client_ip=LIST_IP,
                       helo=LIST, mail_from=f"team-bounces@{LIST}")
    assert res.arc is not None and res.arc.result == "pass"
    text = render_authentication_results(AUTHSERV, res, Envelope(client_ip=LIST_IP, helo=LIST))
    assert f"arc=pass (1 set, sealer {LIST}) smtp.remote-ip={LIST_IP}" in text
    assert "dmarc=fail" in text
    plain = authenticate(ORIGINAL, parse_message(ORIGINAL), world(author_key, list_key),
                         client_ip=None, helo="", mail_from="")
    assert plain.arc is not None and plain.arc.result == "none"
    assert "arc=none" in render_authentication_results(AUTHSERV, plain, Envelope())


# -- what a recorded ARC-Authentication-Results says ----------------------------------------------


@pytest.mark.parametrize(("aar", "ok"), [
    (f"i=1; {LIST}; spf=pass smtp.mailfrom=a@example.com; dmarc=pass header.from=example.com",
     True),
    (f"i=1; {LIST}; dmarc=pass (p=reject) header.from=Example.COM.", True),
    (f"i=1; {LIST}; dmarc=pass", True),
    (f"i=1; {LIST}; dmarc=fail header.from=example.com", False),
    (f"i=1; {LIST}; dmarc=pass header.from=other.example", False),
    (f"i=1; {LIST}; dmarc=pass header.from=example.com; dmarc=fail", False),
    (f"i=1; {LIST}; spf=pass; dkim=pass (dmarc=pass)", False),
    (f"i=1; {LIST} (dmarc=pass); none", False),
    ("", False),
])
def test_aar_dmarc_pass(aar: str, ok: bool) -> None:
    assert aar_dmarc_pass(aar, "example.com") is ok


@pytest.mark.parametrize("written", ["ví-dụ.vn", "VÍ-DỤ.VN.", "xn--v-d-rma6749a.vn"])
@pytest.mark.parametrize("from_domain", ["xn--v-d-rma6749a.vn", "ví-dụ.vn"])
def test_aar_dmarc_pass_for_an_internationalized_from_domain(written: str,
                                                             from_domain: str) -> None:
    """A sealer that recorded DMARC's pass for an SMTPUTF8 message may name the From
    domain as the U-label it was written in; it is the same domain as the A-label the
    DMARC check here names (DmarcResult.from_domain is normalised), so the recorded
    pass counts, as it does whatever the case."""
    assert aar_dmarc_pass(f"i=1; {LIST}; dmarc=pass header.from={written}", from_domain)
    assert not aar_dmarc_pass(f"i=1; {LIST}; dmarc=pass header.from=mail.{written}",
                              from_domain)


# -- local DMARC policy and trusted sealers ------------------------------------------------------


def cfg(**milter: Any) -> Config:
    return config_from_mapping({"milter": {"authserv_id": AUTHSERV, **milter},
                                "dns": {"timeout": 0.5}}, source="<test>")


def scan(raw: bytes, resolver: StaticResolver, config: Config) -> Any:
    scanner = Scanner(config, resolver=resolver, lookup_threads=0)
    try:
        env = Envelope(client_ip=LIST_IP, helo=LIST, mail_from=f"team-bounces@{LIST}",
                       rcpts=["bob@test.example"])
        return scanner.scan(raw, env)
    finally:
        scanner.close()


def names(verdict: Any) -> set[str]:
    return {s.name for s in verdict.symbols}


def test_a_trusted_sealer_overrides_a_p_reject_failure(author_key: Key, list_key: Key) -> None:
    verdict = scan(relayed(author_key, list_key), world(author_key, list_key),
                   cfg(arc_trusted_sealers=[LIST.upper() + "."]))
    assert verdict.action != "reject"
    assert {"DMARC_ARC_OVERRIDE", "ARC_PASS"} <= names(verdict)
    assert "DMARC_REJECT" not in names(verdict)
    assert "dmarc=fail" in verdict.add_headers[0][1]  # the truth is still told


def test_without_trust_the_same_message_is_refused(author_key: Key, list_key: Key) -> None:
    for sealers in ([], ["other.example"], ["example.org"]):  # the parent is not the sealer
        verdict = scan(relayed(author_key, list_key), world(author_key, list_key),
                       cfg(arc_trusted_sealers=sealers))
        assert verdict.action == "reject", sealers
        assert {"DMARC_REJECT", "ARC_PASS"} <= names(verdict)
        assert "DMARC_ARC_OVERRIDE" not in names(verdict)


def test_a_broken_chain_from_a_trusted_sealer_is_refused(author_key: Key,
                                                         list_key: Key) -> None:
    raw = relayed(author_key, list_key).replace(b"The minutes", b"Buy now")
    verdict = scan(raw, world(author_key, list_key), cfg(arc_trusted_sealers=[LIST]))
    assert verdict.action == "reject"
    assert {"DMARC_REJECT", "ARC_FAIL"} <= names(verdict)


def test_an_unsealed_modified_copy_is_refused(author_key: Key, list_key: Key) -> None:
    modified = signed_by_author(author_key).replace(b"The minutes", b"The [team] minutes")
    verdict = scan(modified, world(author_key, list_key), cfg(arc_trusted_sealers=[LIST]))
    assert verdict.action == "reject"
    assert "DMARC_REJECT" in names(verdict)
    assert not any(n.startswith("ARC_") for n in names(verdict))


def test_a_trusted_sealer_that_saw_no_dmarc_pass_does_not_override(author_key: Key,
                                                                   list_key: Key) -> None:
    for aar in ("spf=fail smtp.mailfrom=alice@example.com; dmarc=fail header.from=example.com",
                "dmarc=pass header.from=elsewhere.example",
                "spf=pass smtp.mailfrom=alice@example.com"):
        raw = relayed(author_key, list_key, aar=aar + "; arc=none")
        verdict = scan(raw, world(author_key, list_key), cfg(arc_trusted_sealers=[LIST]))
        assert verdict.action == "reject", aar
        assert "DMARC_ARC_OVERRIDE" not in names(verdict)


def test_a_temporary_dns_error_never_overrides_nor_refuses(author_key: Key,
                                                          list_key: Key) -> None:
    resolver = world(author_key, list_key, **{f"arc._domainkey.{LIST}|TXT": "error"})
    verdict = scan(relayed(author_key, list_key), resolver, cfg(arc_trusted_sealers=[LIST]))
    assert verdict.action == "tempfail"  # the override may apply when DNS answers
    assert {"DMARC_ARC_TEMPFAIL", "ARC_TEMPERROR"} <= names(verdict)
    assert not {"DMARC_ARC_OVERRIDE", "DMARC_REJECT"} & names(verdict)
    untrusted = scan(relayed(author_key, list_key), resolver, cfg())
    assert untrusted.action == "reject"
    assert {"DMARC_REJECT", "ARC_TEMPERROR"} <= names(untrusted)


def _dmarc_fail(applied: str, arc: ArcResult | None = None) -> AuthResults:
    return AuthResults(spf=None, dkim=(), arc=arc, dmarc=DmarcResult(
        "fail", "example.com", "example.com", applied, applied, False, False))


@pytest.mark.parametrize(("setting", "symbol", "demand", "verdict"), [
    ("reject", "DMARC_REJECT", "reject", "reject"),
    ("quarantine", "DMARC_QUARANTINE", "quarantine", "quarantine"),
    ("score", "DMARC_REJECT", "", "reject"),  # 15 points reach the reject threshold
])
def test_dmarc_reject_action(setting: str, symbol: str, demand: str, verdict: str) -> None:
    from spamwarden.milter.policy import decide

    syms = auth_symbols(_dmarc_fail("reject"), SymbolPoints(), reject_spf_fail=False,
                        dmarc_reject_action=setting)
    assert [(s.name, s.action) for s in syms if s.name.startswith("DMARC")] == [
        (symbol, demand)]
    config = cfg(dmarc_reject_action=setting)
    assert decide(syms, config.policy, config.milter).action == verdict
    lowered = SymbolPoints({"DMARC_REJECT": 4.0})
    syms = auth_symbols(_dmarc_fail("reject"), lowered, reject_spf_fail=False,
                        dmarc_reject_action=setting)
    assert decide(syms, config.policy, config.milter).action == (
        "accept" if setting == "score" else verdict)


def test_dmarc_reject_action_is_checked_by_the_configuration() -> None:
    assert cfg().milter.dmarc_reject_action == "reject"
    with pytest.raises(ConfigError, match="dmarc_reject_action"):
        cfg(dmarc_reject_action="drop")
    with pytest.raises(ConfigError, match="arc_trusted_sealers"):
        cfg(arc_trusted_sealers=["not a domain"])


def test_the_override_covers_quarantine_too_and_only_from_a_passing_chain() -> None:
    good = ArcResult("pass", 1, LIST, f"i=1; {LIST}; dmarc=pass header.from=example.com")
    trusted = frozenset({LIST})
    syms = auth_symbols(_dmarc_fail("quarantine", good), SymbolPoints(), reject_spf_fail=False,
                        trusted_sealers=trusted)
    assert [s.name for s in syms if s.name.startswith("DMARC")] == ["DMARC_ARC_OVERRIDE"]
    assert all(not s.action for s in syms)
    for bad in (ArcResult("fail", 1, LIST, good.aar), ArcResult("temperror", 1, LIST, good.aar),
                ArcResult("none"), ArcResult("pass", 1, "", good.aar)):
        assert arc_override(_dmarc_fail("reject", bad), trusted) == ""
    assert arc_override(_dmarc_fail("reject", good), frozenset()) == ""
    assert arc_override(_dmarc_fail("reject", good), frozenset({"example.org"})) == ""


# -- sealing -------------------------------------------------------------------------------------


def key_file(tmp_path: Path, key: Key) -> Path:
    path = tmp_path / "arc.pem"
    path.write_bytes(key.pem)
    return path


def sealing_cfg(path: Path, **milter: Any) -> Config:
    return config_from_mapping({
        "milter": {"authserv_id": AUTHSERV, **milter},
        "dns": {"timeout": 0.5},
        "arc": {"sign": True, "selector": "seal", "domain": "relay.test.example",
                "key": str(path)},
    }, source="<test>")


def delivered(raw: bytes, verdict: Any) -> bytes:
    """``raw`` with the verdict's header edits applied as the milter applies them:
    fields of ON_TOP inserted at the top one after another, the others appended."""
    from spamwarden.milter.headers import ON_TOP

    head, _, body = raw.partition(b"\r\n\r\n")
    top: list[bytes] = []
    bottom: list[bytes] = []
    for name, value in verdict.add_headers:
        line = f"{name}: {value}".replace("\n", "\r\n").encode() + b"\r\n"
        if name in ON_TOP:
            top.insert(0, line)
        else:
            bottom.append(line)
    return b"".join(top) + head + b"\r\n" + b"".join(bottom) + b"\r\n" + body


def dnsfunc_of(resolver: StaticResolver) -> Any:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        answer = resolver.query(name.decode().rstrip("."), "TXT")
        return answer.records[0] if answer.status == "ok" else None

    return dnsfunc


def test_our_seal_verifies_with_dkimpy(tmp_path: Path, author_key: Key, list_key: Key) -> None:
    ours = make_key()
    resolver = world(author_key, list_key, **{"seal._domainkey.relay.test.example|TXT":
                                              [ours.record]})
    raw = signed_by_author(author_key)
    verdict = scan(raw, resolver, sealing_cfg(key_file(tmp_path, ours)))
    added = [n for n, _v in verdict.add_headers]
    assert added[:4] == ["Authentication-Results", "ARC-Authentication-Results",
                         "ARC-Message-Signature", "ARC-Seal"]
    out = delivered(raw, verdict)
    assert out.startswith(b"ARC-Seal: i=1; cv=none;")
    cv, _results, why = dkim.arc_verify(out, dnsfunc=dnsfunc_of(resolver))
    assert cv == dkim.CV_Pass, why
    res = verify_arc(out, resolver)
    assert (res.result, res.sealer) == ("pass", "relay.test.example")
    assert f"i=1; {AUTHSERV};" in res.aar and "arc=none" in res.aar


def test_we_extend_an_existing_chain(tmp_path: Path, author_key: Key, list_key: Key) -> None:
    ours = make_key()
    resolver = world(author_key, list_key, **{"seal._domainkey.relay.test.example|TXT":
                                              [ours.record]})
    raw = relayed(author_key, list_key)
    verdict = scan(raw, resolver, sealing_cfg(key_file(tmp_path, ours),
                                              arc_trusted_sealers=[LIST]))
    out = delivered(raw, verdict)
    cv, _results, why = dkim.arc_verify(out, dnsfunc=dnsfunc_of(resolver))
    assert cv == dkim.CV_Pass, why
    res = verify_arc(out, resolver)
    assert (res.result, res.sets, res.sealer) == ("pass", 2, "relay.test.example")


def test_forged_authentication_results_never_reach_our_aar(tmp_path: Path, author_key: Key,
                                                           list_key: Key) -> None:
    ours = make_key()
    resolver = world(author_key, list_key, **{"seal._domainkey.relay.test.example|TXT":
                                              [ours.record]})
    raw = (f"Authentication-Results: {AUTHSERV}; spf=pass smtp.mailfrom=x@forged.example\r\n"
           .encode() + signed_by_author(author_key))
    verdict = scan(raw, resolver, sealing_cfg(key_file(tmp_path, ours)))
    aar = dict(verdict.add_headers)["ARC-Authentication-Results"]
    assert "forged.example" not in aar
    assert f"smtp.mailfrom=team-bounces@{LIST}" in aar and "dmarc=pass" in aar


def test_nothing_is_sealed_on_temperror_or_refusal(tmp_path: Path, author_key: Key,
                                                   list_key: Key) -> None:
    ours = make_key()
    resolver = world(author_key, list_key, **{f"arc._domainkey.{LIST}|TXT": "error"})
    verdict = scan(relayed(author_key, list_key), resolver,
                   sealing_cfg(key_file(tmp_path, ours)))
    assert not any(n.startswith("ARC-") for n, _v in verdict.add_headers)


def test_sealing_needs_a_usable_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="arc.sign"):
        config_from_mapping({"arc": {"sign": True}}, source="<test>")
    missing = sealing_cfg(tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match="cannot read"):
        Scanner(missing, resolver=StaticResolver(), lookup_threads=0)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")
    conf = tmp_path / "spamwarden.toml"
    conf.write_text(f'[arc]\nsign = true\nselector = "s"\ndomain = "relay.test.example"\n'
                    f'key = "{garbage}"\n')
    assert main(["config-check", "--config", str(conf)]) != 0
    assert "arc.key" in capsys.readouterr().err
    good = key_file(tmp_path, make_key())
    conf.write_text(f'[arc]\nsign = true\nselector = "s"\ndomain = "relay.test.example"\n'
                    f'key = "{good}"\n')
    assert main(["config-check", "--config", str(conf)]) == 0


def _fields(head: bytes) -> list[bytes]:
    out: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line
        else:
            out.append(line)
    return out


@pytest.mark.parametrize("entry", ["lists.ví-dụ.vn", "Lists.VÍ-DỤ.VN.", "lists.xn--v-d-rma6749a.vn"])
def test_a_trusted_sealer_written_as_an_idn_trusts_its_seals(entry: str) -> None:
    """``milter.arc_trusted_sealers`` may name a sealer as its U-label; its ARC-Seal's
    ``d=`` (compared as the A-label) is the same sealer, and it vouches as an ASCII
    entry does. The entry was only lower-cased, so such a sealer was never trusted."""
    from types import SimpleNamespace

    from spamwarden.milter.checks.auth import arc_override, trusted_sealer_names

    sealer = "lists.xn--v-d-rma6749a.vn"
    auth = SimpleNamespace(
        arc=SimpleNamespace(result="pass", sealer=sealer,
                            aar=f"i=1; {sealer}; dmarc=pass header.from=ví-dụ.vn"),
        dmarc=SimpleNamespace(from_domain="xn--v-d-rma6749a.vn"))
    trusted = trusted_sealer_names([entry, " "])
    assert trusted == {sealer}
    assert arc_override(auth, trusted) == sealer  # type: ignore[arg-type]
    assert arc_override(auth, trusted_sealer_names(["ví-dụ.vn"])) == ""  # type: ignore[arg-type]
