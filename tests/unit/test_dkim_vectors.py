"""DKIM vectors (RFC 6376, RFC 8463 Ed25519) through ``verify_dkim``.

Signed messages and keys come from the dkimpy 1.1.8 test data in
tests/data/suites/dkim/, plus the RFC 8463 Appendix A.3 message itself
(tests/data/auth/rfc8463-a3.eml); key records are served by a StaticResolver.
"""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spamwarden.milter.auth import DKIM_RESULTS, DkimResult, verify_dkim
from spamwarden.resolver import StaticResolver
from tests.conftest import DATA, data_path

# RFC 8463 Appendix A.2 (the Ed25519 key is RFC 8032 §7.1 TEST 1).
BRISBANE = b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
ED25519TEST_PUB = b"v=DKIM1; k=ed25519; p=yi50DjK5O9pqbFpNHklsv9lqaS0ArSYu02qp1S0DW1Y="


@pytest.fixture(scope="module")
def vectors() -> Path:
    return data_path("suites", "dkim", "dkimpy-1.1.8", "data")


def _read(vectors: Path, name: str) -> bytes:
    return (vectors / name).read_bytes()


def _resolver(vectors: Path, **extra: object) -> StaticResolver:
    zone: dict[tuple[str, str], object] = {
        ("brisbane._domainkey.football.example.com", "TXT"): [BRISBANE],
        ("test._domainkey.football.example.com", "TXT"): [_read(vectors, "test.txt").strip()],
        ("sed._domainkey.test.ex", "TXT"): [_read(vectors, "eximtest.dns").strip()],
        ("test._domainkey.example.com", "TXT"): [_read(vectors, "test.txt").strip()],
        ("big._domainkey.example.com", "TXT"): [
            _read(vectors, "2048_testkey_wo_markers.pub.txt").strip()],
        ("ed._domainkey.example.com", "TXT"): [ED25519TEST_PUB],
    }
    for name, value in extra.items():
        zone[(name, "TXT")] = value
    return StaticResolver(zone)


def _results(dkim_results: tuple[DkimResult, ...]) -> list[str]:
    return [r.result for r in dkim_results]


def _tamper_body(msg: bytes) -> bytes:
    assert b"We lost the game" in msg or b"content" in msg or b"test message" in msg
    return (msg.replace(b"We lost the game", b"We won the game")
            .replace(b"content", b"c0ntent").replace(b"test message", b"best message"))


def _tamper_from(msg: bytes) -> bytes:
    """Change the display name of From, which every vector signs."""
    out, n = re.subn(rb"(?m)^From: ", b"From: Someone Else ", msg, count=1)
    assert n == 1
    return out


VECTORS = [
    # (source, file, expected results in header order)
    ("dkimpy", "rfc6376.signed.msg", ["pass", "pass"]),          # Ed25519 + RSA, simple/simple
    ("dkimpy", "rfc6376.signed.rsa.msg", ["pass"]),
    ("dkimpy", "ed25519test2.msg", ["pass"]),                    # Exim's RFC 8463 prototype
    ("local", "rfc8463-a3.eml", ["pass", "pass"]),              # RFC 8463 Appendix A.3
]


def _load_vector(vectors: Path, source: str, name: str) -> bytes:
    return _read(vectors, name) if source == "dkimpy" else (DATA / "auth" / name).read_bytes()


@pytest.mark.parametrize(("source", "name", "expected"), VECTORS)
def test_vector_verifies(vectors: Path, source: str, name: str, expected: list[str]) -> None:
    msg = _load_vector(vectors, source, name)
    got = verify_dkim(msg, _resolver(vectors))
    assert _results(got) == expected, got


@pytest.mark.parametrize(("source", "name", "expected"), VECTORS)
def test_vector_with_changed_body_fails(vectors: Path, source: str, name: str,
                                       expected: list[str]) -> None:
    msg = _tamper_body(_load_vector(vectors, source, name))
    got = verify_dkim(msg, _resolver(vectors))
    assert _results(got) == ["fail"] * len(expected)
    assert all(r.reason == "body hash mismatch" for r in got)


@pytest.mark.parametrize(("source", "name", "expected"), VECTORS)
def test_vector_with_changed_signed_header_fails(vectors: Path, source: str, name: str,
                                                 expected: list[str]) -> None:
    msg = _tamper_from(_load_vector(vectors, source, name))
    got = verify_dkim(msg, _resolver(vectors))
    assert _results(got) == ["fail"] * len(expected)
    assert all(r.reason == "signature did not verify" for r in got)


def test_unsigned_header_may_be_added_but_a_second_from_may_not(vectors: Path) -> None:
    msg = _read(vectors, "rfc6376.signed.msg")
    added = msg.replace(b"\nTo: ", b"\nX-Mailing-List: dinner\nTo: ", 1)
    assert _results(verify_dkim(added, _resolver(vectors))) == ["pass", "pass"]
    second_from = msg.replace(b"\nTo: ", b"\nFrom: Evil <e@evil.example>\nTo: ", 1)
    assert _results(verify_dkim(second_from, _resolver(vectors))) == ["fail", "fail"]


def test_modified_signature_header_fails(vectors: Path) -> None:
    # dkimpy's copy of the RSA signature with t= removed and x= added.
    got = verify_dkim(_read(vectors, "rfc6376.signed.no_t.msg"), _resolver(vectors))
    assert _results(got) == ["fail"]


def test_result_fields(vectors: Path) -> None:
    ed, rsa = verify_dkim(_read(vectors, "rfc6376.signed.msg"), _resolver(vectors))
    assert (ed.domain, ed.selector, ed.algorithm, ed.key_bits) == (
        "football.example.com", "brisbane", "ed25519-sha256", 256)
    assert (rsa.domain, rsa.selector, rsa.algorithm, rsa.key_bits) == (
        "football.example.com", "test", "rsa-sha256", 1024)
    assert ed.header_b == "9/dsDChY" and rsa.header_b == "icKcLSEZ"
    assert rsa.covered_headers == ("from", "to", "subject", "date", "message-id", "from",
                                   "subject", "date")
    assert rsa.identity == "@football.example.com"


@pytest.mark.parametrize(
    ("key_file", "selector", "algorithm", "bits"),
    [
        ("test.private", "test", b"rsa-sha256", 1024),
        ("2048_testkey.key", "big", b"rsa-sha256", 2048),
        ("ed25519test.key", "ed", b"ed25519-sha256", 256),
    ],
)
@pytest.mark.parametrize("canon", [(b"simple", b"simple"), (b"relaxed", b"relaxed"),
                                   (b"relaxed", b"simple")])
def test_signed_with_vector_keys_verifies(vectors: Path, key_file: str, selector: str,
                                          algorithm: bytes, bits: int,
                                          canon: tuple[bytes, bytes]) -> None:
    msg = _read(vectors, "test.message")
    sig = dkim.sign(msg, selector.encode(), b"example.com", _read(vectors, key_file),
                    signature_algorithm=algorithm, canonicalize=canon)
    got = verify_dkim(sig + msg, _resolver(vectors))
    assert [(r.result, r.key_bits) for r in got] == [("pass", bits)]
    assert _results(verify_dkim(sig + _tamper_body(msg), _resolver(vectors))) == ["fail"]


def test_dns_error_is_temperror_not_missing_key(vectors: Path) -> None:
    msg = _read(vectors, "rfc6376.signed.msg")
    r = _resolver(vectors, **{"brisbane._domainkey.football.example.com": "error"})
    ed, rsa = verify_dkim(msg, r)
    assert (ed.result, rsa.result) == ("temperror", "pass")
    assert "failed" in ed.reason


def test_missing_key_is_permerror(vectors: Path) -> None:
    msg = _read(vectors, "rfc6376.signed.rsa.msg")
    empty = StaticResolver({})
    (res,) = verify_dkim(msg, empty)
    assert res.result == "permerror" and "nxdomain" in res.reason
    nodata = StaticResolver({("test._domainkey.football.example.com", "A"): ["192.0.2.1"]})
    (res,) = verify_dkim(msg, nodata)
    assert res.result == "permerror" and "nodata" in res.reason


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (b"v=DKIM1; k=rsa; p=", "revoked"),
        ("badk.txt", "unusable"),
        ("badversion.txt", "unusable"),
        ("test_bad.txt", "unusable"),
        (BRISBANE, "does not match"),   # an Ed25519 key for an RSA signature
    ],
)
def test_unusable_key_is_permerror(vectors: Path, record: bytes | str, why: str) -> None:
    data = _read(vectors, record).strip() if isinstance(record, str) else record
    msg = _read(vectors, "rfc6376.signed.rsa.msg")
    r = StaticResolver({("test._domainkey.football.example.com", "TXT"): [data]})
    (res,) = verify_dkim(msg, r)
    assert res.result == "permerror", res
    assert why in res.reason


def test_small_rsa_key_and_sha1_are_policy(vectors: Path) -> None:
    msg = _read(vectors, "test.message")
    sig = dkim.sign(msg, b"test", b"example.com", _read(vectors, "test.private"))
    (res,) = verify_dkim(sig + msg, _resolver(vectors), min_rsa_bits=2048)
    assert res.result == "policy" and "1024" in res.reason
    sha1 = dkim.sign(msg, b"test", b"example.com", _read(vectors, "test.private"),
                     signature_algorithm=b"rsa-sha1")
    (res,) = verify_dkim(sha1 + msg, _resolver(vectors))
    assert res.result == "policy" and "rsa-sha1" in res.reason


def test_from_must_be_signed(vectors: Path) -> None:
    msg = _read(vectors, "rfc6376.signed.rsa.msg")
    unsigned_from = msg.replace(b"h=from : to : subject : \r\n date : message-id : from : "
                                b"subject : date;", b"h=to : subject : \r\n date;")
    unsigned_from = unsigned_from.replace(b"h=from : to : subject : \n date : message-id : "
                                          b"from : subject : date;", b"h=to : subject : \n date;")
    assert unsigned_from != msg
    (res,) = verify_dkim(unsigned_from, _resolver(vectors))
    assert res.result == "permerror" and "From" in res.reason


def test_unsigned_message_gives_no_results(vectors: Path) -> None:
    assert verify_dkim(_read(vectors, "test.message"), _resolver(vectors)) == ()


def test_signatures_are_bounded_and_keys_fetched_once(vectors: Path) -> None:
    msg = _read(vectors, "test.message")
    key = _read(vectors, "test.private")
    signed = msg
    for _ in range(3):
        signed = dkim.sign(signed, b"test", b"example.com", key) + signed
    r = _resolver(vectors)
    got = verify_dkim(signed, r, max_signatures=2)
    assert _results(got) == ["pass", "pass"]
    assert r.queries.count(("test._domainkey.example.com", "TXT")) == 1


def test_exhausted_budget_is_temperror(vectors: Path) -> None:
    got = verify_dkim(_read(vectors, "rfc6376.signed.msg"), _resolver(vectors), timeout=0)
    assert _results(got) == ["temperror", "temperror"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b" leading continuation\r\nDKIM-Signature: v=1\r\n\r\nbody",
        b"DKIM-Signature: garbage\r\nFrom: a@b.example\r\n\r\nx",
        (b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=!!!!\r\n"
         b"From: a@x.example\r\n\r\nx"),
        (b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n"
         b"From: a@x.example\r\n\r\nx"),
    ],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    got = verify_dkim(raw, StaticResolver({("s._domainkey.x.example", "TXT"): "error"}))
    assert all(r.result in ("permerror", "temperror", "fail") for r in got)
    if b"DKIM-Signature" in raw:
        assert got


def test_expired_signature_is_policy() -> None:
    raw = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=x.example; s=s;\r\n"
           b" t=1000; x=2000; h=from; bh=AAAA; b=AAAA\r\n"
           b"From: a@x.example\r\n\r\nbody\r\n")
    r = StaticResolver({})
    (res,) = verify_dkim(raw, r)
    assert (res.result, res.domain, res.selector, res.header_b) == ("policy", "x.example", "s",
                                                                    "AAAA")
    assert "x=" in res.reason
    assert r.queries == []  # no key lookup for a signature we would not accept anyway


_TAG_NAMES = st.sampled_from(["v", "a", "b", "bh", "d", "s", "h", "i", "l", "q", "t", "x", "c"])
_TAG_VALUES = st.one_of(
    st.sampled_from(["1", "rsa-sha256", "ed25519-sha256", "rsa-sha1", "AAAA", "x.example", "s",
                     "from:to", "@x.example", "10", "dns/txt", "99999999999", "relaxed/relaxed",
                     "bogus/x", "-1", ""]),
    st.text(max_size=10),
)
_KEY_RECORDS = st.sampled_from([b"v=DKIM1; p=", b"k=ed25519; p=AAAA", b"garbage",
                                b"k=foo; p=AAAA", b"s=tlsrpt; p=AAAA", b"v=DKIM1; k=rsa; p=AAAA"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_TAG_NAMES, _TAG_VALUES), max_size=12), _KEY_RECORDS,
       st.binary(max_size=60), st.text(max_size=40))
def test_random_signatures_never_raise(tags: list[tuple[str, str]], key: bytes, body: bytes,
                                       extra_headers: str) -> None:
    sig = "; ".join(f"{k}={v}" for k, v in tags).encode("utf-8", "replace")
    raw = (b"DKIM-Signature: " + sig + b"\r\n" + extra_headers.encode("utf-8", "replace")
           + b"\r\nFrom: a@x.example\r\n\r\n" + body)
    got = verify_dkim(raw, StaticResolver({("s._domainkey.x.example", "TXT"): [key]}))
    assert all(r.result in DKIM_RESULTS and r.result != "pass" for r in got)
