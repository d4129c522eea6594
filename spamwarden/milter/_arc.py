"""ARC (RFC 8617): verifying a message's chain of custody, and sealing it when we relay.

Verification runs over dkimpy's ARC code with its DNS function injected, as
:mod:`._dkim` does for DKIM: every key record is fetched through our
:class:`~spamwarden.resolver.Resolver` (vetted by :func:`._dkim._fetch_key`),
never through dkimpy's own DNS.  Results (RFC 8617 §4.4, §10):

* ``none``      - the message has no ARC header field;
* ``pass``      - every ARC-Seal verified, the newest ARC-Message-Signature
  verified, and the seals' ``cv=`` values are consistent (§5.2);
* ``fail``      - anything else: a seal or the newest AMS does not verify, a
  key is missing, a set is incomplete or duplicated, a seal says ``cv=fail``,
  ``i=`` is over 50 (§4.2.1), or the chain has more sets than we verify;
* ``temperror`` - a key could not be fetched now (or the DNS budget ran out):
  the sender is not blamed for our DNS.

The work is bounded: a message without the text ``ARC-Seal`` in its header
section costs one scan of the header bytes; a chain longer than ``max_sets``
is ``fail`` without a lookup; a newest seal saying ``cv=fail`` is ``fail``
without a lookup; each key name is fetched once per message, all within one
DNS budget.

Sealing (§5.1) uses dkimpy's ``ARC.sign`` over the message with our
``Authentication-Results`` on top: the ARC-Authentication-Results copy our
results, the ARC-Message-Signature signs the message as we pass it on, the
ARC-Seal signs the chain.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from ..errors import ConfigError
from ..logs import event
from ..mail import domain_key, parse_tag_list, strip_mbox_from
from ..resolver import Resolver
from ._dkim import _fetch_key, _Key, share_body_hashes, too_many_signed_names

__all__ = [
    "ARC_HEADERS",
    "ARC_RESULTS",
    "MAX_INSTANCE",
    "ArcResult",
    "ArcSealer",
    "aar_dmarc_pass",
    "load_signing_key",
    "verify_arc",
]

#: RFC 8617 §10 results, plus ``temperror`` for a key we could not fetch now.
ARC_RESULTS = ("pass", "fail", "none", "temperror")
#: RFC 8617 §4.2.1: ``i=`` is at most 50.
MAX_INSTANCE = 50
#: The header fields of an ARC set, in the order they go on top of a message.
ARC_HEADERS = ("ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results")

_quiet = logging.getLogger("spamwarden.milter.auth.arcpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
log = logging.getLogger("spamwarden.milter")

_SEAL_NAME = re.compile(rb"arc-seal", re.IGNORECASE)
_ARC_NAMES = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The outcome of ARC chain validation for one message.

    :ivar result: see the module docstring.
    :ivar sets: the highest ``i=`` seen (the number of ARC sets of a sound chain).
    :ivar sealer: ``d=`` of the newest ARC-Seal, as :func:`~spamwarden.mail.domain_key`
        writes it (``""`` when none).
    :ivar aar: the newest set's ARC-Authentication-Results value (what the
        sealer says it found), bounded; ``""`` unless the chain passed.
    :ivar reason: a few words on why, when not ``pass``.
    """

    result: str
    sets: int = 0
    sealer: str = ""
    aar: str = ""
    reason: str = ""


NO_ARC = ArcResult("none", reason="no ARC header fields")


class _TempDns(Exception):
    """A key lookup failed temporarily: the chain is ``temperror``, not ``fail``."""


def _header_section_has_seal(raw: bytes) -> bool:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    end = min(ends) if ends else len(raw)
    return _SEAL_NAME.search(raw, 0, end) is not None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def verify_arc(
    raw: bytes,
    resolver: Resolver,
    *,
    max_sets: int = 10,
    timeout: float = 5.0,
    lookup_timeout: float | None = None,
    min_rsa_bits: int = 1024,
) -> ArcResult:
    """Validate the ARC chain of ``raw`` (RFC 8617 §5.2).

    :param raw: the message as received (CRLF or LF; a leading mbox ``From `` line
        is ignored).
    :param resolver: key records (TXT at ``<s>._domainkey.<d>``) are fetched
        through it, once per name per message.
    :param max_sets: chains with more ARC sets are ``fail`` without verifying
        (at most :data:`MAX_INSTANCE` are valid anyway).
    :param timeout: DNS budget for all key lookups of this message (seconds).
    :param lookup_timeout: cap for one lookup (default: the resolver's
        ``timeout`` attribute when it has one).
    :param min_rsa_bits: smaller RSA keys do not verify.
    :returns: the :class:`ArcResult`; :data:`NO_ARC` for a message without ARC.
    :raises: nothing for malformed messages, chains or DNS trouble.
    """
    raw = strip_mbox_from(raw)
    if not _header_section_has_seal(raw):
        return NO_ARC
    try:
        arc = dkim.ARC(raw, logger=_quiet, minkey=min_rsa_bits)
        share_body_hashes(arc)
        names = [n.lower() for n, _v in arc.headers]
        if not any(n in _ARC_NAMES for n in names):
            return NO_ARC  # the text was in another field's value
        newest, instances = arc.sorted_arc_headers()
    except (dkim.DKIMException, IndexError, ValueError, TypeError) as exc:
        return ArcResult("fail", reason=f"message header unparsable: {_short(exc)}")
    count = sum(n in _ARC_NAMES for n in names)
    if newest == 0 or len(instances) != count:
        return ArcResult("fail", reason="an ARC header field without a valid i= (RFC 8617 §4.2.1)")
    if newest > MAX_INSTANCE or any(i < 1 for i, _h in instances):
        return ArcResult("fail", sets=newest,
                         reason=f"i= outside 1..{MAX_INSTANCE} (RFC 8617 §4.2.1)")
    if newest > max(1, max_sets) or count > 3 * newest:
        return ArcResult("fail", sets=newest,
                         reason=f"{newest} ARC sets, {count} fields: more than verified here")
    seal = next((v for i, (n, v) in instances if i == newest and n.lower() == b"arc-seal"), None)
    if seal is None:
        return ArcResult("fail", sets=newest, reason=f"no ARC-Seal for i={newest}")
    seal_tags = parse_tag_list(_text(seal))
    sealer = domain_key(seal_tags.get("d", ""))
    if seal_tags.get("cv", "").strip().lower() == "fail":
        return ArcResult("fail", sets=newest, sealer=sealer,
                         reason=f"ARC-Seal i={newest} says the chain failed (cv=fail)")
    for i, (n, v) in instances:
        # dkimpy verifies every set's message signature: each h= is bounded first.
        if n.lower() == b"arc-message-signature":
            too_many = too_many_signed_names(parse_tag_list(_text(v)))
            if too_many:
                return ArcResult("fail", sets=newest, sealer=sealer,
                                 reason=f"ARC-Message-Signature i={i}: {too_many}")
    if lookup_timeout is None:
        hint = getattr(resolver, "timeout", None)
        lookup_timeout = float(hint) if isinstance(hint, (int, float)) and hint > 0 else None
    refused: list[str] = []
    dnsfunc = _dnsfunc(resolver, deadline=time.monotonic() + timeout,
                       lookup_timeout=lookup_timeout, refused=refused)
    try:
        cv, data, why = arc.verify(dnsfunc=dnsfunc)
    except _TempDns as exc:
        return ArcResult("temperror", sets=newest, sealer=sealer, reason=str(exc))
    except (dkim.DKIMException, IndexError, ValueError, TypeError, KeyError) as exc:
        return ArcResult("fail", sets=newest, sealer=sealer, reason=_short(exc))
    if cv == dkim.CV_Pass:
        aar = _text(data[0].get("aar-value", b"")) if data else ""
        return ArcResult("pass", sets=newest, sealer=sealer, aar=aar.strip()[:2048])
    reason = _text(why) + (f" ({refused[0]})" if refused else "")
    return ArcResult("fail", sets=newest, sealer=sealer, reason=_short(Exception(reason)))


def _dnsfunc(resolver: Resolver, *, deadline: float, lookup_timeout: float | None,
             refused: list[str] | None = None) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``: the vetted key record through our resolver; raises
    :class:`_TempDns` on a temporary failure (dkimpy lets it through: it only
    catches its own exceptions), ``None`` when there is no usable key (``fail``;
    dkimpy then does no signature arithmetic).  Why a key that was found is not
    used (e.g. its exponent is too large) is added to ``refused``."""
    keys: dict[str, _Key] = {}

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        qname = _text(name).rstrip(".").lower()
        key = keys.get(qname)
        if key is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TempDns("DNS time budget for ARC exhausted")
            limit = remaining if lookup_timeout is None else min(lookup_timeout, remaining)
            key = _fetch_key(resolver, qname, timeout=limit)
            keys[qname] = key
            if key.refused and refused is not None:
                refused.append(f"key at {qname}: {key.reason}")
        if key.result == "temperror":
            raise _TempDns(key.reason)
        return key.record

    return dnsfunc


def aar_dmarc_pass(aar: str, from_domain: str) -> bool:
    """Whether an ARC-Authentication-Results value records ``dmarc=pass`` for
    ``from_domain`` (RFC 8617 §4.1.1: ``i=N; authserv-id; resinfo...``).

    Every ``dmarc`` result in it must be ``pass``, at least one must be, and a
    ``header.from`` property, when given, must name ``from_domain``.
    """
    want = domain_key(from_domain)
    text = aar
    for _ in range(5):  # nested comments come out a level at a time
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    parts = [p.strip() for p in text.split(";")]
    found = False
    for part in parts[2:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        if method.strip().lower() != "dmarc":
            continue
        if result.strip().lower() != "pass":
            return False
        for word in words[1:]:
            ptype, _, value = word.partition("=")
            if ptype.lower() == "header.from" and domain_key(value.strip('"')) != want:
                return False
        found = True
    return found


# -- sealing ------------------------------------------------------------------------------------


def load_signing_key(path: str) -> bytes:
    """Read and parse the PEM private key ARC seals with (``arc.key``).

    :returns: the PEM bytes as dkimpy takes them.
    :raises ConfigError: the file cannot be read or holds no usable private key.
    """
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"arc.key = {path!r}: cannot read: {exc.strerror}") from exc
    try:
        parse_pem_private_key(pem)
    except (UnparsableKeyError, ValueError, IndexError, TypeError) as exc:
        raise ConfigError(f"arc.key = {path!r}: not a PEM RSA private key: {_short(exc)}") from exc
    return pem


class ArcSealer:
    """Adds our ARC set to messages we pass on (RFC 8617 §5.1).

    :param selector: ``s=`` of the seal; the public key is at ``<s>._domainkey.<d>``.
    :param domain: ``d=`` of the seal (the sealer others may trust).
    :param key: the PEM private key (:func:`load_signing_key`).
    :param authserv_id: ours: the ``Authentication-Results`` copied into the AAR.
    :param clock: seconds since the epoch for ``t=`` (tests).
    """

    def __init__(self, *, selector: str, domain: str, key: bytes, authserv_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.strip().rstrip(".").encode("ascii")
        self.key = key
        self.authserv_id = authserv_id.encode("utf-8")
        self._clock = clock

    def seal(self, raw: bytes, auth_results: str) -> tuple[tuple[str, str], ...]:
        """The ARC set for ``raw`` carrying our ``Authentication-Results`` value.

        :param raw: the message as we pass it on, without our headers.
        :param auth_results: the value of our ``Authentication-Results`` (with an
            ``arc=`` result: ``none``, ``pass`` or ``fail``; ``temperror`` is not a
            chain validation status, so such a message is not sealed).
        :returns: ``(name, value)`` in :data:`ARC_HEADERS` order (ARC-Seal first:
            the one that goes on top); ``()`` when the message cannot be sealed
            (its chain is beyond repair, or the key failed).
        """
        raw = strip_mbox_from(raw)
        head, sep, body = _split(raw)
        # Incoming Authentication-Results are not signed by the AMS (RFC 8617 §4.1.2)
        # and must not be mistaken for ours in the AAR: only ours goes in.
        lines = [h for h in _fields(head) if not h.lower().startswith(b"authentication-results:")]
        value = auth_results.replace("\r\n", "\n").replace("\n", "\r\n")
        ours = b"Authentication-Results: " + value.encode("utf-8", "replace") + b"\r\n"
        message = ours + b"".join(lines) + sep + body
        try:
            out = dkim.arc_sign(message, self.selector, self.domain, self.key, self.authserv_id,
                                timestamp=int(self._clock()), logger=_quiet)
        except (dkim.DKIMException, ValueError, IndexError, TypeError, KeyError) as exc:
            event(log, "arc_seal_failed", logging.WARNING, error=_short(exc))
            return ()
        if not out:
            # dkimpy seals nothing when it cannot read our Authentication-Results.
            event(log, "arc_seal_skipped", logging.WARNING,
                  reason="no ARC set made for the message")
            return ()
        found: dict[str, str] = {}
        for field in out:
            name, _, val = field.partition(b":")
            found[_text(name).strip().lower()] = _text(val).strip().replace("\r\n", "\n")
        if not all(n.lower() in found for n in ARC_HEADERS):
            return ()
        return tuple((n, found[n.lower()]) for n in ARC_HEADERS)


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header section with its last line end, the empty line, body)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            half = len(sep) // 2
            return raw[: i + half], raw[i + half: i + len(sep)], raw[i + len(sep):]
    return raw, b"\r\n", b""


def _fields(head: bytes) -> Sequence[bytes]:
    """The header fields of ``head``, each with its continuation lines."""
    out: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line
        else:
            out.append(line)
    return out
