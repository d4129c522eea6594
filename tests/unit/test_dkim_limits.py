"""What one signature may cost: bounds on the keys and signatures DKIM and ARC accept.

Keys are made here: real ones with ``cryptography``, and RSA public keys with a chosen
modulus and exponent written out in DER by hand (no library makes a key with a
100,000-bit exponent).  Records are served by a StaticResolver.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any, NoReturn

import dkim
import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spamwarden.milter.auth import verify_arc, verify_dkim
from spamwarden.resolver import StaticResolver
from tests.support.dnszone import generate_dkim_key
from tests.unit.test_arc import LIST, Key, list_hop, make_key, signed_by_author

MESSAGE = (b"From: a@sender.example\r\nTo: b@example.net\r\nSubject: hi\r\n"
           b"Message-ID: <1@sender.example>\r\n\r\nhello\r\n")


def _der_len(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 8) // 8, "big")
    return b"\x02" + _der_len(len(b)) + b


def rsa_record(modulus_bits: int, exponent: int) -> bytes:
    """A key record holding a bare RSAPublicKey (which dkimpy accepts) with a random
    odd modulus of ``modulus_bits`` and the given exponent."""
    n = secrets.randbits(modulus_bits) | (1 << (modulus_bits - 1)) | 1
    body = _der_int(n) + _der_int(exponent)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(b"\x30" + _der_len(len(body)) + body)


def huge_exponent(bits: int) -> int:
    return secrets.randbits(bits) | (1 << (bits - 1)) | 1


@pytest.fixture(scope="module")
def pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@pytest.fixture
def no_rsa_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if dkimpy gets as far as the RSA operation."""
    def refuse(*_a: Any, **_k: Any) -> NoReturn:
        pytest.fail("RSA arithmetic ran on a key that should have been refused")

    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_verify", refuse)
    monkeypatch.setattr(dkim.crypto, "RSASSA_PKCS1_v1_5_verify", refuse)
    monkeypatch.setattr(dkim.crypto, "rsa_encrypt", refuse)


def signed(pem: bytes, message: bytes = MESSAGE, **kw: Any) -> bytes:
    headers = kw.pop("include_headers", [b"from", b"to", b"subject"])
    sig: bytes = dkim.sign(message, b"sel", b"sender.example", pem, include_headers=headers,
                           **kw)
    return sig + message


def zone(record: bytes) -> StaticResolver:
    return StaticResolver({("sel._domainkey.sender.example", "TXT"): [record]})


# -- the key --------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_a_huge_public_exponent_is_permerror_without_rsa_arithmetic(pem: bytes) -> None:
    # 8,000 bits: the record is no longer than a large real key's
    (res,) = verify_dkim(signed(pem), zone(rsa_record(2048, huge_exponent(8000))))
    assert res.result == "permerror"
    assert "public exponent too large" in res.reason
    assert res.key_bits == 2048


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_a_100000_bit_exponent_is_refused_by_its_length_alone(pem: bytes) -> None:
    (res,) = verify_dkim(signed(pem), zone(rsa_record(4096, huge_exponent(100_000))))
    assert res.result == "permerror" and "key too large" in res.reason


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_an_exponent_just_over_32_bits_is_permerror(pem: bytes) -> None:
    (res,) = verify_dkim(signed(pem), zone(rsa_record(2048, 2**32 + 1)))
    assert res.result == "permerror" and "public exponent too large" in res.reason


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_a_modulus_over_8192_bits_is_permerror(pem: bytes) -> None:
    (res,) = verify_dkim(signed(pem), zone(rsa_record(8200, 65537)))
    assert res.result == "permerror" and "key too large" in res.reason


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_a_key_record_too_long_for_any_allowed_key_is_permerror(pem: bytes) -> None:
    # a 64 KB modulus: refused before dkimpy's (quadratic) integer parsing
    (res,) = verify_dkim(signed(pem), zone(rsa_record(400_000, 65537)))
    assert res.result == "permerror" and "key too large" in res.reason


def test_keys_at_the_bounds_are_still_verified(pem: bytes) -> None:
    # an 8192-bit modulus and a 32-bit exponent are used (here they do not match the
    # signing key, so the signature fails: it was checked, not refused)
    for record in (rsa_record(8192, 65537), rsa_record(2048, 2**32 - 1)):
        (res,) = verify_dkim(signed(pem), zone(record))
        assert res.result == "fail", res


def test_an_ordinary_key_still_passes_and_small_keys_are_still_policy(pem: bytes) -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=1024)
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    own = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)
    (res,) = verify_dkim(signed(own), zone(record))
    assert (res.result, res.key_bits) == ("pass", 1024)
    (res,) = verify_dkim(signed(own), zone(record), min_rsa_bits=2048)
    assert res.result == "policy"


@pytest.mark.usefixtures("no_rsa_arithmetic")
def test_arc_refuses_a_huge_exponent_sealing_key(author_key: Key) -> None:
    lst = make_key()
    raw = list_hop(lst, signed_by_author(author_key), aar="dmarc=pass; arc=none")
    resolver = StaticResolver({
        ("sel._domainkey.example.com", "TXT"): [author_key.record],
        (f"arc._domainkey.{LIST}", "TXT"): [rsa_record(2048, huge_exponent(8000))],
    })
    res = verify_arc(raw, resolver)
    assert res.result == "fail"
    assert "public exponent too large" in res.reason


@pytest.fixture(scope="module")
def author_key() -> Key:
    return make_key()


# -- the h= tag -----------------------------------------------------------------------------


def forbid_header_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if dkimpy looks up h= names in the header from now on (signing
    does too: call this once the message is signed)."""
    def refuse(*_a: Any, **_k: Any) -> NoReturn:
        pytest.fail("dkimpy selected headers for a signature that should have been refused")

    monkeypatch.setattr(dkim, "select_headers", refuse)


def many_names(count: int) -> list[bytes]:
    """``from``, then names absent from the message (each a scan of the whole header)."""
    return [b"from"] + [b"x-absent-%d" % i for i in range(count - 1)]


def test_a_signature_listing_over_100_header_names_is_permerror(
        pem: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = zone(rsa_record(2048, 65537))
    raw = signed(pem, include_headers=many_names(101))
    forbid_header_selection(monkeypatch)
    (res,) = verify_dkim(raw, resolver)
    assert res.result == "permerror"
    assert "101 header names" in res.reason
    assert res.covered_headers == ()   # not carried further
    assert resolver.queries == []      # refused before the key lookup


def test_a_signature_listing_100_header_names_is_verified(pem: bytes) -> None:
    key = generate_dkim_key("sender.example", "sel")
    (res,) = verify_dkim(signed(key.private_key, include_headers=many_names(100)),
                         zone(key.record.encode()))
    assert res.result == "pass"


def test_arc_refuses_a_message_signature_listing_over_100_names(
        author_key: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    lst = make_key()
    message = signed_by_author(author_key)
    with_ar = f"Authentication-Results: {LIST}; dmarc=pass\r\n".encode() + message
    arc_set = dkim.arc_sign(with_ar, b"arc", LIST.encode(), lst.pem, LIST.encode(),
                            include_headers=many_names(101), timestamp=1796000000)
    resolver = StaticResolver({(f"arc._domainkey.{LIST}", "TXT"): [lst.record]})
    forbid_header_selection(monkeypatch)
    res = verify_arc(b"".join(arc_set) + with_ar, resolver)
    assert res.result == "fail"
    assert "101 header names" in res.reason
    assert resolver.queries == []


def test_the_body_is_hashed_once_however_many_signatures_and_seals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """dkimpy canonicalized and hashed the whole body again for each DKIM signature and
    each ARC set's message signature: a sender signing a 10 MB body five times with its
    own key cost five times the CPU (ten ARC sets, ten times). Results are unchanged."""
    import dkim.canonicalization as canon

    from tests.unit.test_arc import relayed, world

    calls: list[int] = []
    for cls in (canon.Simple, canon.Relaxed):
        real = cls.canonicalize_body

        def counted(body: bytes, real: Any = real) -> bytes:
            calls.append(len(body))
            return real(body)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "canonicalize_body", staticmethod(counted))
    author, lst = make_key(), make_key()
    raw = signed_by_author(author)
    for selector in (b"s2", b"s3", b"s4", b"s5"):  # four more signatures, the same key
        raw = dkim.sign(raw, selector, b"example.com", author.pem,
                        include_headers=[b"from", b"subject"],
                        canonicalize=(b"relaxed", b"simple")) + raw
    zone = {(f"{s}._domainkey.example.com", "TXT"): [author.record]
            for s in ("sel", "s2", "s3", "s4", "s5")}
    calls.clear()
    results = verify_dkim(raw, StaticResolver(zone))
    assert [r.result for r in results] == ["pass"] * 5
    assert len(calls) == 1  # one canonicalization (relaxed/simple's simple body)
    calls.clear()
    tampered = raw + b"more text\r\n"
    assert [r.reason for r in verify_dkim(tampered, StaticResolver(zone))] == [
        "body hash mismatch"] * 5
    assert len(calls) == 1
    sealed = relayed(author, lst)
    for _ in range(3):  # three more hops seal without changing the message
        sealed = list_hop(lst, sealed, aar="arc=pass", selector=b"arc2", modify=False)
    calls.clear()
    res = verify_arc(sealed, world(author, lst))
    assert (res.result, res.sets) == ("pass", 4)
    assert len(calls) == 1
