"""DKIM verification (RFC 6376, RSA and RFC 8463 Ed25519) over dkimpy.

dkimpy asks a ``dnsfunc`` for the key record and turns every DNS problem into
"no key", which would make a timeout look like a permanent failure.  So the key
record is fetched here first, through our :class:`Resolver`, and classified:

* ``error``             -> ``temperror`` (the sender can't be blamed; retry later)
* ``nxdomain``/``nodata`` -> ``permerror`` (no key: RFC 6376 §6.1.2)
* a record dkimpy cannot use (revoked ``p=``, bad syntax, wrong ``k=``) -> ``permerror``

and only then handed to dkimpy through a ``dnsfunc`` that returns it.  Each
signature gets its own :class:`DkimResult` (RFC 8601 §2.7.1 names):

* ``pass``      - the signature verified;
* ``fail``      - the signature or the body hash did not verify;
* ``policy``    - it verified (or could have) but we do not accept it: an RSA key
  under ``min_rsa_bits``, ``rsa-sha1`` (RFC 8301 §3.1), an expired ``x=``, a
  ``t=`` in the future;
* ``neutral``   - not evaluated (over ``max_signatures`` is *not* reported; a
  message too large to verify is, by :func:`~spamwarden.milter.auth.authenticate`);
* ``permerror`` - the signature or key is unusable;
* ``temperror`` - the key could not be fetched now.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import dkim

from ..mail import parse_tag_list, strip_mbox_from
from ..resolver import Resolver

__all__ = ["DKIM_RESULTS", "DkimResult", "verify_dkim"]

#: RFC 8601 §2.7.1 results, plus ``none`` for "no signature".
DKIM_RESULTS = ("pass", "fail", "neutral", "policy", "temperror", "permerror", "none")

_quiet = logging.getLogger("spamwarden.milter.auth.dkimpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

_KEY_ALGORITHM = {"rsa-sha256": "rsa", "rsa-sha1": "rsa", "ed25519-sha256": "ed25519"}
_WS = re.compile(r"\s+")

#: The largest RSA modulus accepted (bits).  dkimpy verifies in pure Python, holding
#: the GIL: the cost grows with the modulus, and no signer uses more than 4096 bits.
MAX_RSA_BITS = 8192
#: The largest RSA public exponent accepted.  Real keys use 65537 (or 3); the cost of
#: one verification grows with the exponent's length, and a key published with a
#: 100,000-bit exponent would take minutes of CPU, freezing every thread of the process.
MAX_RSA_EXPONENT = 2**32 - 1
#: The longest decoded ``p=`` an accepted RSA key can need: the DER of an 8192-bit
#: modulus and a 32-bit exponent is about 1,060 bytes.  Longer ones are refused before
#: dkimpy parses them (its integer parsing is quadratic in the length).
_MAX_RSA_KEY_BYTES = 2048
#: The most header field names a signature's ``h=`` may list.  dkimpy scans the whole
#: header section once for each name it does not find, so the cost is names x fields:
#: 6,000 names against 10,000 fields took 2.6 s of CPU for one signature.  Real
#: signers list a few dozen names at most, oversigned ones (listed twice) included.
MAX_SIGNED_HEADER_NAMES = 100


@dataclass(frozen=True, slots=True)
class DkimResult:
    """The outcome for one DKIM-Signature header field.

    :ivar result: see the module docstring.
    :ivar domain: the signing domain ``d=`` (lower-case).
    :ivar selector: ``s=``.
    :ivar algorithm: ``a=``, e.g. ``rsa-sha256`` or ``ed25519-sha256``.
    :ivar header_b: the first 8 characters of ``b=`` (RFC 6008) to tell
        signatures apart in Authentication-Results.
    :ivar reason: why, in a few words, when not ``pass``.
    :ivar covered_headers: the ``h=`` list, lower-case, in order.
    :ivar identity: ``i=`` (the AUID), ``@<d>`` when absent.
    :ivar key_bits: size of the public key when it was fetched (RSA bits, 256
        for Ed25519), else 0.
    """

    result: str
    domain: str
    selector: str
    algorithm: str
    header_b: str
    reason: str = ""
    covered_headers: tuple[str, ...] = ()
    identity: str = ""
    key_bits: int = 0


@dataclass(frozen=True, slots=True)
class _Key:
    """A fetched key record, or why there is none (``result``/``reason``)."""

    record: bytes | None
    bits: int = 0
    ktag: str = ""
    result: str = ""
    reason: str = ""
    #: found, but refused as too costly to verify with
    refused: bool = False


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def too_many_signed_names(tags: dict[str, str]) -> str:
    """Why a signature's ``h=`` (from :func:`~spamwarden.mail.parse_tag_list`) lists
    too many names to verify (:data:`MAX_SIGNED_HEADER_NAMES`), or ``""``."""
    h = tags.get("h")
    count = h.count(":") + 1 if h is not None else 0
    if count > MAX_SIGNED_HEADER_NAMES:
        return f"h= lists {count} header names, over {MAX_SIGNED_HEADER_NAMES}"
    return ""


def _skeleton(header_value: bytes, *, result: str, reason: str,
              covered: bool = True) -> DkimResult:
    """A result from a leniently parsed signature, for signatures dkimpy rejects;
    ``covered=False`` leaves out the ``h=`` names."""
    tags = parse_tag_list(_text(header_value))
    d = tags.get("d", "").lower()
    return DkimResult(
        result=result,
        domain=d,
        selector=tags.get("s", ""),
        algorithm=tags.get("a", "").lower(),
        header_b=tags.get("b", "")[:8],
        reason=reason,
        covered_headers=tuple(h.strip().lower() for h in tags.get("h", "").split(":")
                              if h.strip()) if covered else (),
        identity=tags.get("i", f"@{d}" if d else ""),
    )


def _fetch_key(
    resolver: Resolver, name: str, *, timeout: float
) -> _Key:
    """Look up and vet the key record at ``name`` (RFC 6376 §3.6.2, §6.1.2)."""
    answer = resolver.query(name, "TXT", timeout=timeout)
    if answer.status == "error":
        return _Key(None, result="temperror",
                    reason=f"key lookup failed: {answer.reason or 'DNS error'}")
    if answer.status != "ok":
        return _Key(None, result="permerror", reason=f"no key at {name} ({answer.status})")
    records = [r if isinstance(r, bytes) else str(r).encode("utf-8") for r in answer.records]
    # Several TXT records at a key name are undefined (RFC 6376 §3.6.2.2); use the
    # first that looks like a key.
    record = next((r for r in records if b"p=" in r), records[0])
    tags = parse_tag_list(_text(record))
    if "p" in tags and tags["p"] == "":
        return _Key(None, result="permerror", reason="key revoked (empty p=)")
    size = len(tags.get("p", "")) * 3 // 4
    if tags.get("k", "rsa").lower() == "rsa" and size > _MAX_RSA_KEY_BYTES:
        return _Key(None, result="permerror", refused=True,
                    reason=f"key too large ({size} bytes, over {_MAX_RSA_KEY_BYTES})")
    try:
        pk, bits, ktag, _tlsrpt = dkim.evaluate_pk(name.encode("ascii", "replace"), record)
    except (dkim.DKIMException, binascii.Error, ValueError, TypeError, IndexError) as exc:
        return _Key(None, result="permerror", reason=f"unusable key record: {_short(exc)}")
    if ktag is None:
        return _Key(None, result="permerror", reason="key not for email (s= tag)")
    if ktag == b"rsa":
        too_costly = _rsa_too_costly(pk)
        if too_costly:
            return _Key(None, bits=int(bits or 0), result="permerror", reason=too_costly,
                        refused=True)
    return _Key(record, bits=int(bits or 0),
                ktag=ktag.decode() if isinstance(ktag, bytes) else str(ktag))


def _rsa_too_costly(pk: Any) -> str:
    """Why an RSA public key (dkimpy's ``{"modulus", "publicExponent"}``) is refused
    before any signature arithmetic, or ``""`` when it is usable."""
    try:
        modulus = int(pk["modulus"])
        exponent = int(pk["publicExponent"])
    except (KeyError, TypeError, ValueError):
        return "unusable key record: incomplete RSA public key"
    if modulus.bit_length() > MAX_RSA_BITS:
        return f"key too large ({modulus.bit_length()} bits, over {MAX_RSA_BITS})"
    if exponent > MAX_RSA_EXPONENT:
        return f"public exponent too large ({exponent.bit_length()} bits, over 32)"
    return ""


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


_SIGNATURE_NAME = re.compile(rb"dkim-signature", re.IGNORECASE)


def _has_signature_field(raw: bytes) -> bool:
    """Whether the header section (up to the first empty line, CRLF or LF) holds
    the text ``DKIM-Signature`` anywhere: a superset of "has a DKIM-Signature
    field", found without copying or parsing the message."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    end = min(ends) if ends else len(raw)
    return _SIGNATURE_NAME.search(raw, 0, end) is not None


def verify_dkim(
    raw: bytes,
    resolver: Resolver,
    *,
    max_signatures: int = 5,
    timeout: float = 5.0,
    lookup_timeout: float | None = None,
    min_rsa_bits: int = 1024,
) -> tuple[DkimResult, ...]:
    """Verify every DKIM-Signature of ``raw`` (RFC 6376 §6.1), topmost first.

    :param raw: the message as received (CRLF or LF line ends; a leading mbox
        ``From `` line is ignored).  Pass the whole message: a cut body fails.
    :param resolver: key records are fetched through it (TXT at
        ``<s>._domainkey.<d>``), once per name per message.
    :param max_signatures: verify at most this many signatures; later ones are
        ignored (RFC 6376 §6.1 lets verifiers limit the work).
    :param timeout: DNS budget for all key lookups of this message (seconds);
        a signature whose lookup would start after it is ``temperror``.
    :param lookup_timeout: cap for one lookup (default: the resolver's
        ``timeout`` attribute when it has one).
    :param min_rsa_bits: smaller RSA keys give ``policy`` (RFC 8301 §3.2).
    :returns: one :class:`DkimResult` per verified signature; ``()`` when the
        message has no DKIM-Signature.
    :raises: nothing for malformed messages, signatures or DNS trouble.
    """
    raw = strip_mbox_from(raw)
    if not _has_signature_field(raw):
        return ()  # nothing to verify: skip parsing the message a second time
    if lookup_timeout is None:
        hint = getattr(resolver, "timeout", None)
        lookup_timeout = float(hint) if isinstance(hint, (int, float)) and hint > 0 else None
    try:
        signer = dkim.DKIM(raw, logger=_quiet, minkey=min_rsa_bits, timeout=int(timeout) or 1)
    except (dkim.DKIMException, IndexError, ValueError) as exc:
        head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
        if b"dkim-signature" not in head:
            return ()
        return (DkimResult("permerror", "", "", "", "",
                           reason=f"message header unparsable: {_short(exc)}"),)
    sig_headers = [(n, v) for n, v in signer.headers if n.lower() == b"dkim-signature"]
    deadline = time.monotonic() + timeout
    keys: dict[str, _Key] = {}
    share_body_hashes(signer)  # (a body hash mismatch: "fail", below)
    results: list[DkimResult] = []
    for idx in range(min(len(sig_headers), max(0, max_signatures))):
        results.append(
            _verify_one(signer, idx, sig_headers[idx][1], resolver, keys=keys,
                        deadline=deadline, lookup_timeout=lookup_timeout)
        )
    return tuple(results)


def share_body_hashes(signer: Any) -> None:
    """Make ``signer`` (a ``dkim.DKIM`` or ``dkim.ARC``) hash its body once per
    canonicalization, algorithm and ``l=`` (:class:`_BodyHashes`): each ARC set's message
    signature hashed the whole body again, 5 s of CPU for ten sets over 10 MB."""
    bodies = _BodyHashes(signer.body)
    verify_sig = signer.verify_sig

    def shared(sig: dict[bytes, bytes], include_headers: Any, sig_header: Any,
               dnsfunc: Any) -> Any:
        if b"bh" in sig:
            ok = bodies.matches(sig)
            if ok is False:
                raise dkim.ValidationError("body hash mismatch")
            if ok:  # settled: dkimpy hashes the body only when bh= is among the tags
                sig = {k: v for k, v in sig.items() if k != b"bh"}
        return verify_sig(sig, include_headers, sig_header, dnsfunc)

    signer.verify_sig = shared


class _BodyHashes:
    """A message's body hashes, each computed once: per canonicalization, hash algorithm
    and ``l=``.  dkimpy canonicalizes and hashes the whole body again for every signature,
    so a sender signing a 10 MB body five times (with its own key) cost five times the
    CPU of one signature (0.7 s each)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._canonical: dict[bytes, bytes] = {}
        self._digests: dict[tuple[bytes, bytes, int | None], bytes] = {}

    def matches(self, sig: dict[bytes, bytes]) -> bool | None:
        """Whether the body hash ``sig``'s ``bh=`` names is this body's; ``None`` when
        the tags cannot be read here (dkimpy then decides, and says why)."""
        try:
            policy = dkim.CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
            hasher = dkim.HASH_ALGORITHMS[sig[b"a"]]
            length = int(sig[b"l"]) if b"l" in sig else None
            expected = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]), validate=True)
        except (dkim.DKIMException, KeyError, ValueError, TypeError, binascii.Error):
            return None
        if length is not None and length < 0:
            return None
        name = policy.body_algorithm.name
        key = (name, sig[b"a"], length)
        digest = self._digests.get(key)
        if digest is None:
            canonical = self._canonical.get(name)
            if canonical is None:
                canonical = self._canonical[name] = policy.canonicalize_body(self.body)
            digest = self._digests[key] = hasher(
                canonical if length is None else canonical[:length]).digest()
        return digest == expected


def _verify_one(
    signer: Any,
    idx: int,
    header_value: bytes,
    resolver: Resolver,
    *,
    keys: dict[str, _Key],
    deadline: float,
    lookup_timeout: float | None,
) -> DkimResult:
    too_many = too_many_signed_names(parse_tag_list(_text(header_value)))
    if too_many:
        return _skeleton(header_value, result="permerror", reason=too_many, covered=False)
    try:
        prep = signer.verify_headerprep(idx)
    except dkim.ValidationError as exc:
        msg = str(exc)
        result = "policy" if ("x= value is past" in msg or "in the future" in msg) else "permerror"
        return _skeleton(header_value, result=result, reason=_short(exc))
    except (dkim.DKIMException, ValueError, TypeError, IndexError, KeyError) as exc:
        return _skeleton(header_value, result="permerror", reason=_short(exc))
    sig, include_headers, sig_headers = prep
    d = _text(sig[b"d"]).lower()
    selector = _text(sig[b"s"])
    algorithm = _text(sig[b"a"]).lower()
    covered = tuple(_text(h) for h in include_headers if h)
    b_value = _WS.sub("", _text(sig[b"b"]))
    identity = _text(sig[b"i"]) if b"i" in sig else f"@{d}"

    def outcome(res: str, reason: str = "", bits: int = 0) -> DkimResult:
        return DkimResult(res, d, selector, algorithm, b_value[:8], reason, covered,
                          identity, bits)

    if b"from" not in include_headers:
        return outcome("permerror", "From is not signed (RFC 6376 §5.4)")
    name = f"{selector}._domainkey.{d}"
    key = keys.get(name)
    if key is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return outcome("temperror", "DNS time budget for DKIM exhausted")
        timeout = remaining if lookup_timeout is None else min(lookup_timeout, remaining)
        key = _fetch_key(resolver, name, timeout=timeout)
        keys[name] = key
    if key.record is None:
        return outcome(key.result, key.reason, key.bits)
    if _KEY_ALGORITHM.get(algorithm) != key.ktag:
        return outcome("permerror", f"key type {key.ktag} does not match a={algorithm}",
                      key.bits)
    record = key.record

    def dnsfunc(_name: bytes, timeout: float = 5) -> bytes:
        return record

    try:
        ok = signer.verify_sig(sig, include_headers, sig_headers[idx], dnsfunc)
    except dkim.ValidationError as exc:
        msg = str(exc)
        if "body hash mismatch" in msg:
            return outcome("fail", "body hash mismatch", key.bits)
        return outcome("permerror", _short(exc), key.bits)
    except dkim.KeyFormatError as exc:
        if "too small" in str(exc):
            return outcome("policy", f"RSA key of {key.bits} bits is too small", key.bits)
        return outcome("permerror", _short(exc), key.bits)
    except (dkim.DKIMException, binascii.Error, ValueError, TypeError, IndexError,
            KeyError) as exc:
        return outcome("permerror", _short(exc), key.bits)
    if not ok:
        return outcome("fail", "signature did not verify", key.bits)
    if algorithm == "rsa-sha1":
        return outcome("policy", "rsa-sha1 is not accepted (RFC 8301 §3.1)", key.bits)
    return outcome("pass", "", key.bits)
