"""The advertising-consent registry (Decree 91/2020/ND-CP): advertisers, consent
records, refusals and the rolling daily send counters, in Redis.

Rules it holds (the numbers are settings in ``[consent]``):

* an advertiser owns *sending domains*; a message is attributed to it only when
  SPF or DKIM authenticates one of them aligned with ``From``
  (:func:`attribute_advertiser`, DMARC relaxed alignment, RFC 7489 §3.1);
* a consent record (advertiser × recipient) has a method (``form``, ``reply``,
  ``call``, ``app`` — the decree's four), a time, evidence, an optional expiry
  and an optional higher daily limit the recipient agreed to;
* a refusal (advertiser × recipient) or a global do-not-email entry (recipient
  refuses all advertising) always wins over consent, is recorded with its time
  and channel, and can be confirmed to the recipient exactly once;
* at most ``consent.max_ads_per_day`` ads per advertiser × recipient in any
  rolling 24 h window, counted only for delivered mail.

Nothing here deletes a consent or refusal record: they outlive
``consent.retention`` by construction; the audit stream is trimmed only past it.

Redis key scheme (every key carries the hash tag ``{sw}``, so the Lua scripts
that touch several keys run on Redis Cluster too; ``<adv>`` is an advertiser id,
``<rcpt>`` a normalised address, see :func:`normalize_recipient`):

=====================================  ============================================================
key                                    what
=====================================  ============================================================
``sw:{sw}:advertisers``                set of advertiser ids
``sw:{sw}:adv:<adv>``                  hash: ``name``, ``contact``, ``domains`` (JSON list),
                                       ``created_at``, ``token_sha256`` (of the advertiser's API
                                       bearer token; the token itself is never stored)
``sw:{sw}:adv-domains``                hash: registrable sending domain -> advertiser id
``sw:{sw}:consent:<adv>``              hash: recipient -> JSON :class:`ConsentRecord` fields
``sw:{sw}:refusal:<adv>``              hash: recipient -> JSON :class:`RefusalRecord` fields
``sw:{sw}:dne``                        hash: recipient -> JSON :class:`RefusalRecord` (global
                                       do-not-email list: refuses all advertising)
``sw:{sw}:rcpt-adv:<rcpt>``            set: advertiser ids holding a consent or refusal of the
                                       recipient (the recipient's own lookup)
``sw:{sw}:sent:<adv>:<rcpt>``          sorted set: one member per delivered ad, score = time;
                                       members older than the window are dropped on every write;
                                       TTL = the window (ephemeral)
``sw:{sw}:adv-stats:<adv>``            hash: ``sent`` (ads delivered, all time)
``sw:{sw}:adv-sent:<adv>:<hour>``      integer: ads delivered in one clock hour (``<hour>`` = Unix
                                       time // 3600); TTL the window + 1 h (ephemeral: the
                                       last-24-hours count, :meth:`RedisConsentRegistry.counts`)
``sw:{sw}:all-request:<rcpt>``         string: a request to refuse all advertising was mailed to
                                       the recipient; TTL one day (ephemeral: at most one such
                                       mail per recipient per day)
``sw:{sw}:all-requests:<adv>:<day>``   integer: such requests mailed for the advertiser's
                                       one-click links on one UTC day (``<day>`` = Unix time //
                                       86400); TTL two days (ephemeral)
``sw:{sw}:consent-log``                stream: one entry per consent, refusal and confirmation
                                       (``op``, ``advertiser``, ``recipient``, ``at``, ``detail``);
                                       entries are trimmed only when older than the retention
=====================================  ============================================================

Every read-modify-write is one Lua script (atomic on the server), so several
milters and the API can act on the same recipient at once.  The scripts are
files in ``spamwarden/consent/lua/``, each opening with its KEYS, ARGV and result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    runtime_checkable,
)

from .._lua import lua_script
from ..config import Config
from ..errors import StoreError, StoreUnavailable
from ..i18n import Message
from ..mail import fold_extension, normalize_domain, registrable_domain, unquote_local

if TYPE_CHECKING:
    from ..milter.auth import AuthResults

__all__ = [
    "METHODS",
    "GLOBAL",
    "Advertiser",
    "ConsentRecord",
    "RefusalRecord",
    "RecipientState",
    "RecipientRecords",
    "AdvertiserCounts",
    "ConsentStore",
    "RedisConsentRegistry",
    "ConsentError",
    "DomainTaken",
    "UnknownAdvertiser",
    "normalize_recipient",
    "hold_member",
    "HOLD_SECONDS",
    "all_requests_key",
    "normalize_advertiser_id",
    "attribute_advertiser",
    "aligned_authenticated_domains",
    "ADVERTISERS_KEY",
    "DOMAINS_KEY",
    "DNE_KEY",
    "LOG_KEY",
    "advertiser_key",
    "consent_key",
    "refusal_key",
    "recipient_index_key",
    "sent_key",
    "stats_key",
    "sent_hour_key",
    "all_request_key",
    "registry_from_config",
    "AdComplaintRefusals",
]

#: the decree's four ways of obtaining consent
METHODS: tuple[str, ...] = ("form", "reply", "call", "app")
#: the advertiser id used in refusal records of the global do-not-email list
GLOBAL = "*"
#: the rolling window of the daily cap
DAY = 86400.0

ADVERTISERS_KEY = "sw:{sw}:advertisers"
DOMAINS_KEY = "sw:{sw}:adv-domains"
DNE_KEY = "sw:{sw}:dne"
LOG_KEY = "sw:{sw}:consent-log"


def advertiser_key(adv: str) -> str:
    """The hash holding advertiser ``adv``'s record (name, contact, domains, token hash)."""
    return f"sw:{{sw}}:adv:{adv}"


def consent_key(adv: str) -> str:
    """The hash of advertiser ``adv``'s consent records: recipient -> JSON."""
    return f"sw:{{sw}}:consent:{adv}"


def refusal_key(adv: str) -> str:
    """The refusal hash of ``adv``; :data:`GLOBAL` gives the do-not-email list."""
    return DNE_KEY if adv == GLOBAL else f"sw:{{sw}}:refusal:{adv}"


def recipient_index_key(rcpt: str) -> str:
    """The set of advertiser ids holding a consent or refusal of recipient ``rcpt``."""
    return f"sw:{{sw}}:rcpt-adv:{rcpt}"


def sent_key(adv: str, rcpt: str) -> str:
    """The sorted set of ads delivered from ``adv`` to ``rcpt`` inside the window (TTL)."""
    return f"sw:{{sw}}:sent:{adv}:{rcpt}"


def sent_hour_key(adv: str, hour: int) -> str:
    """The count of ads ``adv`` delivered in clock hour ``hour`` (Unix time // 3600; TTL)."""
    return f"sw:{{sw}}:adv-sent:{adv}:{hour}"


def all_request_key(rcpt: str) -> str:
    """Set (one day) when a request to refuse all advertising was mailed to ``rcpt``."""
    return f"sw:{{sw}}:all-request:{rcpt}"


def all_requests_key(adv: str, day: int) -> str:
    """The counter of requests to refuse all advertising mailed for ``adv``'s links on
    ``day`` (Unix time // 86400)."""
    return f"sw:{{sw}}:all-requests:{adv}:{day}"


def stats_key(adv: str) -> str:
    """The hash of advertiser ``adv``'s all-time totals (``sent``)."""
    return f"sw:{{sw}}:adv-stats:{adv}"


# -- errors ---------------------------------------------------------------------------------


class ConsentError(StoreError):
    """The consent registry refused the request."""


class DomainTaken(ConsentError):
    """The sending domain belongs to another advertiser."""


class UnknownAdvertiser(ConsentError):
    """No advertiser is registered with this id."""


# -- values ---------------------------------------------------------------------------------

_ADV_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LOCAL_RE = re.compile(r"^[^\s\x00-\x1f\x7f@<>\"(),;:\\\[\]]{1,64}$")


def normalize_advertiser_id(text: str) -> str:
    """Lower-case advertiser id: letters, digits, ``.``, ``_``, ``-``; up to 64.

    :raises ValueError: the id is empty or has other characters.
    """
    adv = text.strip().lower()
    if not _ADV_ID_RE.match(adv):
        raise ValueError(Message("registry.advertiser_id", {"value": repr(text)}))
    return adv


def normalize_recipient(addr: str, delimiters: str) -> str:
    """The form a recipient address is stored under: ``local@domain``, lower-case,
    angle brackets dropped, domain in IDNA, address extension folded away.

    Local parts are compared case-insensitively, as every large mailbox provider
    does; a consent given as ``An@Example.vn`` holds for ``an@example.vn``.  One
    mailbox has one record whatever form a sender writes it in: a quoted local part
    whose text needs no quotes is the same address (``"an"@x`` is ``an@x``, RFC 5321
    §4.1.2), and an address extension after any of ``delimiters`` (Postfix's
    ``recipient_delimiter``, ``intake.recipient_delimiter``) is dropped, so a refusal
    by ``an@x`` holds for ``an+news@x`` and consent for ``an+shop@x`` is consent of
    ``an@x``.

    :raises ValueError: not an address a mailbox can be stored under (a local part
        that needs quotes, control characters, over 64 octets once folded).
    """
    a = addr.strip().strip("<>").strip()
    local, at, dom = a.rpartition("@")
    if not at:
        raise ValueError(Message("registry.not_address", {"value": repr(addr)}))
    local = fold_extension(unquote_local(local), delimiters)
    domain = normalize_domain(dom)
    if domain is None or not _LOCAL_RE.match(local) or local.startswith("."):
        raise ValueError(Message("registry.not_address", {"value": repr(addr)}))
    return f"{local.lower()}@{domain}"


@dataclass(frozen=True, slots=True)
class Advertiser:
    """A registered advertiser and its verified sending domains (registrable)."""

    id: str
    name: str
    contact: str = ""
    domains: tuple[str, ...] = ()
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """Prior consent of one recipient to one advertiser's ads.

    ``at`` is when the recipient consented (as filed), ``recorded_at`` when the
    registry learnt of it; ``expires_at`` 0 means no expiry; ``max_per_day`` 0
    means the configured cap, more when the recipient agreed to more.
    """

    advertiser: str
    recipient: str
    method: str
    at: float
    evidence: str = ""
    expires_at: float = 0.0
    max_per_day: int = 0
    recorded_at: float = 0.0

    def to_json(self) -> str:
        """The hash value stored under the recipient in ``consent:<adv>`` (without the two keys)."""
        d = asdict(self)
        del d["advertiser"], d["recipient"]
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, advertiser: str, recipient: str, text: str | bytes) -> ConsentRecord:
        """Read back :meth:`to_json` for ``advertiser`` and ``recipient``.

        :raises ValueError: ``text`` is not JSON (``json.JSONDecodeError``) or a field has the wrong type.
        """
        d = json.loads(text)
        return cls(
            advertiser=advertiser,
            recipient=recipient,
            method=str(d.get("method", "")),
            at=float(d.get("at", 0.0)),
            evidence=str(d.get("evidence", "")),
            expires_at=float(d.get("expires_at", 0.0)),
            max_per_day=int(d.get("max_per_day", 0)),
            recorded_at=float(d.get("recorded_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class RefusalRecord:
    """A recipient's refusal of one advertiser (``advertiser == GLOBAL``: of all).

    ``channel`` says how it came: ``one-click``, ``optout-mail``, ``complaint``,
    ``cli``, ``api``. ``confirmed_at`` is when the single confirmation went to
    the recipient (0: not yet).
    """

    advertiser: str
    recipient: str
    at: float
    channel: str
    confirmed_at: float = 0.0

    def to_json(self) -> str:
        """The hash value stored under the recipient in ``refusal:<adv>`` or ``dne``."""
        return json.dumps(
            {"at": self.at, "channel": self.channel, "confirmed_at": self.confirmed_at},
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, advertiser: str, recipient: str, text: str | bytes) -> RefusalRecord:
        """Read back :meth:`to_json` for ``advertiser`` and ``recipient``.

        :raises ValueError: ``text`` is not JSON (``json.JSONDecodeError``) or a field has the wrong type.
        """
        d = json.loads(text)
        return cls(
            advertiser=advertiser,
            recipient=recipient,
            at=float(d.get("at", 0.0)),
            channel=str(d.get("channel", "")),
            confirmed_at=float(d.get("confirmed_at", 0.0)),
        )


Status = Literal["ok", "no_consent", "consent_expired", "refused", "refused_all", "over_cap"]


@dataclass(frozen=True, slots=True)
class RecipientState:
    """What the registry says about sending one more ad to one recipient.

    ``sent`` is the number of ads delivered in the last 24 h, ``cap`` the limit
    that applies (the recipient's own when it agreed to more).
    """

    status: Status
    sent: int = 0
    cap: int = 0

    @property
    def allowed(self) -> bool:
        """Whether an ad may be delivered (``status == "ok"``)."""
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class RecipientRecords:
    """Everything the registry holds about one recipient (their own lookup)."""

    recipient: str
    consents: tuple[ConsentRecord, ...]
    refusals: tuple[RefusalRecord, ...]


@dataclass(frozen=True, slots=True)
class AdvertiserCounts:
    """Totals for one advertiser: recipients with a consent, with a refusal, ads
    delivered all time and in the last 24 hours (the current clock hour and the 23
    before it; 0 when not asked for)."""

    advertiser: str
    consents: int
    refusals: int
    sent: int
    sent_24h: int = 0


@runtime_checkable
class ConsentStore(Protocol):
    """What the milter policy, the API, intake and the worker need of the registry.

    Every method raises :class:`~spamwarden.errors.StoreUnavailable` when the store
    cannot be reached and :class:`~spamwarden.errors.StoreError` for other store
    trouble; callers decide what that means (the milter: no consent rejections).
    """

    def domain_map(self) -> dict[str, str]:
        """Registrable sending domain -> advertiser id, for every advertiser."""
        ...

    def recipient_state(
        self, adv: str, rcpt: str, *, now: float, default_cap: int, hold: str = ""
    ) -> RecipientState:
        """Refusal, consent and the rolling 24 h count for one recipient; with ``hold``
        (a message's id) and room under the cap, that message takes one of the day's
        ads at once (see :data:`HOLD_SECONDS`)."""
        ...

    def record_sends(self, adv: str, rcpts: Sequence[str], *, now: float, ref: str,
                     hold: str = "") -> None:
        """Count one delivered ad per recipient (rolling window), in place of the
        message's ``hold``."""
        ...

    def release_holds(self, adv: str, rcpts: Sequence[str], *, hold: str) -> None:
        """Give back the places a message not delivered took under the cap."""
        ...

    def refuse(
        self, rcpt: str, *, adv: str = GLOBAL, channel: str, now: float
    ) -> tuple[RefusalRecord, bool]:
        """Record a refusal; returns the record in force and whether it is new."""
        ...


Clock = Callable[[], float]


# -- attribution ----------------------------------------------------------------------------


def aligned_authenticated_domains(auth: AuthResults | None,
                                  from_domain: str | None) -> list[str]:
    """Registrable domains that SPF (``pass``) or DKIM (``pass``) authenticated and
    that align with the ``From`` domain (DMARC relaxed alignment, RFC 7489 §3.1).

    :param auth: the milter's SPF/DKIM/DMARC results, or ``None`` (nothing aligned).
    :param from_domain: the RFC 5322 ``From`` domain.
    :returns: the aligned registrable domains, DKIM first, no duplicates.
    """
    if not from_domain or auth is None:
        return []
    org = registrable_domain(from_domain)
    if org is None:
        return []
    out: list[str] = []
    for sig in auth.dkim:
        if str(sig.result).lower() == "pass":
            d = registrable_domain(str(sig.domain or ""))
            if d == org and d not in out:
                out.append(d)
    spf = auth.spf
    if spf is not None and str(spf.result).lower() == "pass":
        d = registrable_domain(str(spf.domain or ""))
        if d == org and d not in out:
            out.append(d)
    return out


def attribute_advertiser(
    domains: Iterable[str], domain_map: dict[str, str]
) -> tuple[str, str] | None:
    """The first ``(advertiser id, domain)`` owning one of the authenticated
    aligned ``domains`` (see :func:`aligned_authenticated_domains`), or ``None``."""
    for d in domains:
        adv = domain_map.get(d)
        if adv:
            return adv, d
    return None


def advertiser_domain(domain: str) -> str:
    """The registrable form a sending domain is registered under.

    :raises ValueError: not a domain, or a public suffix.
    """
    norm = normalize_domain(domain)
    reg = registrable_domain(norm) if norm else None
    if reg is None:
        raise ValueError(Message("registry.not_registrable", {"value": repr(domain)}))
    return reg


# -- Lua: files in lua/, each opening with its KEYS, ARGV and result ----------------------------

#: Seconds a message's hold on one of a recipient's ads of the day counts while nothing
#: replaces or releases it.  The milter answers within the scan's own bounds
#: (``rules.timeout``, 15 s), then counts a delivered ad (which replaces the hold) or
#: releases the hold of a message it refused or deferred; this bounds a hold whose
#: release was lost (Redis away at that moment, the process gone).
HOLD_SECONDS = 60


def hold_member(queue_id: str, instance: str) -> str:
    """The member a message's hold is kept under (``""``: no hold without a queue id).

    :param instance: what tells this milter from the others sharing the registry
        (:class:`~spamwarden.consent.policy.ConsentPolicy` draws one at random): Postfix's
        queue ids are unique only on one host, and the hold is taken, replaced and
        released by the same milter.
    """
    return f"h:{instance}:{queue_id}" if queue_id and queue_id != "-" else ""


_STATE_LUA = lua_script("spamwarden.consent", "consent_state")
_QUOTA_LUA = lua_script("spamwarden.consent", "all_request_quota")
_SEND_LUA = lua_script("spamwarden.consent", "consent_send")
_REFUSE_LUA = lua_script("spamwarden.consent", "consent_refuse")
_CONFIRM_LUA = lua_script("spamwarden.consent", "consent_confirm")
_CONSENT_LUA = lua_script("spamwarden.consent", "consent_grant")
_REGISTER_LUA = lua_script("spamwarden.consent", "advertiser_register")


# -- the Redis registry ---------------------------------------------------------------------


class RedisConsentRegistry:
    """The registry over a synchronous ``redis.Redis`` client (thread-safe).

    The asyncio services (API, intake, worker) call it through
    ``asyncio.to_thread`` so there is one implementation of every rule.

    :param client: a ``redis.Redis`` (``decode_responses`` off or on).
    :param retention: seconds the audit stream keeps entries (``consent.retention``).
    :param window: the rolling window of the daily cap, seconds.
    :param clock: wall-clock time source (injected in tests).
    :param delimiters: address-extension delimiters folded out of recipients
        (``intake.recipient_delimiter``; :func:`normalize_recipient`).
    """

    def __init__(
        self,
        client: Any,
        *,
        retention: float = 365 * DAY,
        window: float = DAY,
        clock: Clock = time.time,
        delimiters: str,
    ) -> None:
        self.client = client
        self.delimiters = delimiters
        self.retention = retention
        self.window = window
        self.clock = clock
        self._state = client.register_script(_STATE_LUA)
        self._quota = client.register_script(_QUOTA_LUA)
        self._send = client.register_script(_SEND_LUA)
        self._refuse = client.register_script(_REFUSE_LUA)
        self._confirm = client.register_script(_CONFIRM_LUA)
        self._consent = client.register_script(_CONSENT_LUA)
        self._register = client.register_script(_REGISTER_LUA)

    # -- plumbing

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"consent registry unreachable: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"consent registry failed: {exc}") from exc

    def _scan(self, key: str, limit: int) -> Iterable[tuple[str, bytes]]:
        """HSCAN a hash, at most ``limit`` fields; store errors wrapped."""
        import redis

        n = 0
        try:
            for k, v in self.client.hscan_iter(key, count=500):
                if n >= limit:
                    return
                n += 1
                yield _s(k), v
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"consent registry unreachable: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"consent registry failed: {exc}") from exc

    def _log_min_id(self) -> str:
        """Oldest audit-stream id to keep: wall time minus the retention (the
        stream ids are the server's clock, not the injected one)."""
        return str(max(0, int((time.time() - self.retention) * 1000)))

    # -- advertisers

    def register_advertiser(
        self,
        adv_id: str,
        *,
        name: str,
        contact: str = "",
        domains: Sequence[str] = (),
        replace_domains: bool = False,
        new_token: bool = False,
    ) -> tuple[Advertiser, str | None]:
        """Create or update an advertiser and add sending domains.

        :param adv_id: see :func:`normalize_advertiser_id`.
        :param domains: sending domains; stored in registrable form.
        :param replace_domains: the domain list replaces the current one
            (domains dropped from it stay owned until re-registered elsewhere).
        :param new_token: issue a new API bearer token (printed once, stored hashed).
        :returns: the advertiser and the new token (``None`` unless issued).
        :raises ValueError: bad id or domain.
        :raises DomainTaken: a domain belongs to another advertiser.
        :raises StoreError: store trouble.
        """
        adv = normalize_advertiser_id(adv_id)
        doms = [advertiser_domain(d) for d in domains]
        token = secrets.token_urlsafe(32) if new_token else None
        token_hash = hashlib.sha256(token.encode()).hexdigest() if token else ""
        res = self._call(
            self._register,
            keys=[advertiser_key(adv), ADVERTISERS_KEY, DOMAINS_KEY],
            args=[adv, name, contact, repr(self.clock()), token_hash,
                  "1" if replace_domains else "0", *doms],
        )
        status = _s(res[0])
        if status == "taken":
            raise DomainTaken(Message("registry.domain_taken",
                                      {"domain": _s(res[1]), "advertiser": _s(res[2])}))
        got = self.advertiser(adv)
        assert got is not None
        return got, token

    def advertiser(self, adv_id: str) -> Advertiser | None:
        """The advertiser, or ``None`` when not registered.

        :raises StoreError: store trouble.
        """
        try:
            adv = normalize_advertiser_id(adv_id)
        except ValueError:
            return None
        h = self._call(self.client.hgetall, advertiser_key(adv))
        if not h:
            return None
        d = {_s(k): _s(v) for k, v in h.items()}
        return Advertiser(
            id=adv,
            name=d.get("name", ""),
            contact=d.get("contact", ""),
            domains=tuple(json.loads(d.get("domains", "[]") or "[]")),
            created_at=float(d.get("created_at", "0") or 0),
        )

    def advertisers(self) -> list[str]:
        """Every registered advertiser id, sorted."""
        return sorted(_s(x) for x in self._call(self.client.smembers, ADVERTISERS_KEY))

    def check_advertiser_token(self, adv_id: str, token: str) -> bool:
        """Constant-time check of an advertiser's API bearer token."""
        try:
            adv = normalize_advertiser_id(adv_id)
        except ValueError:
            return False
        stored = self._call(self.client.hget, advertiser_key(adv), "token_sha256")
        if not stored:
            return False
        given = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        return hmac.compare_digest(given, _s(stored))

    def domain_map(self) -> dict[str, str]:
        """Registrable sending domain -> advertiser id."""
        h = self._call(self.client.hgetall, DOMAINS_KEY)
        return {_s(k): _s(v) for k, v in h.items()}

    # -- consent

    def add_consents(self, records: Sequence[ConsentRecord]) -> int:
        """Store consent records (replacing an earlier record of the same pair).

        A refusal in force is not lifted by a consent record: refusals always win.

        :raises ValueError: a record has a bad method, recipient or time.
        :raises UnknownAdvertiser: the advertiser is not registered.
        :raises StoreError: store trouble.
        :returns: how many records were stored.
        """
        by_adv: dict[str, list[ConsentRecord]] = {}
        now = self.clock()
        for r in records:
            if r.method not in METHODS:
                raise ValueError(Message("registry.method", {"value": repr(r.method),
                                                             "methods": ", ".join(METHODS)}))
            if r.at <= 0 or r.at > now + 86400:
                raise ValueError(Message("registry.time", {"value": repr(r.at)}))
            if r.expires_at and r.expires_at <= r.at:
                raise ValueError(Message("registry.expiry"))
            if r.max_per_day < 0:
                raise ValueError(Message("registry.max_per_day"))
            rec = ConsentRecord(
                advertiser=normalize_advertiser_id(r.advertiser),
                recipient=normalize_recipient(r.recipient, self.delimiters),
                method=r.method,
                at=r.at,
                evidence=r.evidence[:4000],
                expires_at=r.expires_at,
                max_per_day=r.max_per_day,
                recorded_at=now,
            )
            by_adv.setdefault(rec.advertiser, []).append(rec)
        total = 0
        for adv, recs in by_adv.items():
            if not self._call(self.client.sismember, ADVERTISERS_KEY, adv):
                raise UnknownAdvertiser(Message("registry.unknown_advertiser",
                                                {"advertiser": repr(adv)}))
            for start in range(0, len(recs), 500):
                chunk = recs[start : start + 500]
                args: list[str] = [adv, repr(now), self._log_min_id()]
                for rec in chunk:
                    args += [rec.recipient, rec.to_json()]
                keys = [consent_key(adv), LOG_KEY] + [
                    recipient_index_key(rec.recipient) for rec in chunk
                ]
                total += int(self._call(self._consent, keys=keys, args=args))
        return total

    def consent(self, adv: str, rcpt: str) -> ConsentRecord | None:
        """The consent record of one pair, or ``None``."""
        adv, rcpt = normalize_advertiser_id(adv), normalize_recipient(rcpt, self.delimiters)
        raw = self._call(self.client.hget, consent_key(adv), rcpt)
        return ConsentRecord.from_json(adv, rcpt, raw) if raw else None

    def consents(self, adv: str, *, limit: int = 1_000_000) -> Iterable[ConsentRecord]:
        """Every consent record of an advertiser (for export), streamed with HSCAN."""
        adv = normalize_advertiser_id(adv)
        for k, v in self._scan(consent_key(adv), limit):
            yield ConsentRecord.from_json(adv, k, v)

    # -- refusals

    def refuse(
        self, rcpt: str, *, adv: str = GLOBAL, channel: str, now: float | None = None
    ) -> tuple[RefusalRecord, bool]:
        """Record that ``rcpt`` refuses ``adv``'s ads (:data:`GLOBAL`: all ads).

        Takes effect for every milter at once (the milter reads it per recipient).
        A second refusal keeps the first record (its time and channel).

        :returns: the record in force and whether this call created it.
        :raises ValueError: bad recipient or advertiser id.
        :raises StoreError: store trouble.
        """
        rcpt = normalize_recipient(rcpt, self.delimiters)
        if adv != GLOBAL:
            adv = normalize_advertiser_id(adv)
        at = self.clock() if now is None else now
        rec = RefusalRecord(advertiser=adv, recipient=rcpt, at=at, channel=channel)
        res = self._call(
            self._refuse,
            keys=[refusal_key(adv), recipient_index_key(rcpt), LOG_KEY],
            args=[rcpt, rec.to_json(), adv, repr(at), self._log_min_id(),
                  "refusal" if adv != GLOBAL else "refusal-all"],
        )
        created = int(res[0]) == 1
        return RefusalRecord.from_json(adv, rcpt, res[1]), created

    def refusal(self, rcpt: str, *, adv: str = GLOBAL) -> RefusalRecord | None:
        """The refusal record of one pair (or the global one), or ``None``."""
        rcpt = normalize_recipient(rcpt, self.delimiters)
        if adv != GLOBAL:
            adv = normalize_advertiser_id(adv)
        raw = self._call(self.client.hget, refusal_key(adv), rcpt)
        return RefusalRecord.from_json(adv, rcpt, raw) if raw else None

    def refusals(self, adv: str, *, limit: int = 1_000_000) -> Iterable[RefusalRecord]:
        """Every refusal of an advertiser (advertisers learn of refusals this way)."""
        if adv != GLOBAL:
            adv = normalize_advertiser_id(adv)
        for k, v in self._scan(refusal_key(adv), limit):
            yield RefusalRecord.from_json(adv, k, v)

    def claim_all_request(self, rcpt: str, *, ttl: float = DAY) -> bool:
        """``True`` at most once per ``ttl`` seconds per recipient: the caller may then
        mail ``rcpt`` the request to confirm a refusal of all advertising (a link
        anyone holding an unsubscribe token can press must not flood the mailbox).

        :raises StoreError: store trouble.
        """
        rcpt = normalize_recipient(rcpt, self.delimiters)
        return bool(self._call(self.client.set, all_request_key(rcpt), repr(self.clock()),
                               nx=True, ex=max(1, int(ttl))))

    def claim_advertiser_all_request(self, adv: str, *, limit: int) -> bool:
        """``True`` for at most ``limit`` requests to refuse all advertising mailed a UTC
        day for ``adv``'s one-click links (``consent.max_all_requests_per_day``): an
        advertiser holds its recipients' unsubscribe tokens and could otherwise have the
        site mail every one of them.  ``False`` counts nothing.

        :raises ValueError: not an advertiser id.
        :raises StoreError: store trouble.
        """
        key = all_requests_key(normalize_advertiser_id(adv), int(self.clock() // DAY))
        return int(self._call(self._quota, keys=[key], args=[limit, int(2 * DAY)])) == 1

    def claim_confirmation(self, rcpt: str, *, adv: str = GLOBAL) -> bool:
        """Mark the refusal as confirmed to the recipient; ``True`` exactly once per
        refusal (the caller then sends or shows the single confirmation)."""
        rcpt = normalize_recipient(rcpt, self.delimiters)
        if adv != GLOBAL:
            adv = normalize_advertiser_id(adv)
        res = self._call(
            self._confirm,
            keys=[refusal_key(adv), LOG_KEY],
            args=[rcpt, repr(self.clock()), self._log_min_id(), adv],
        )
        return int(res) == 1

    # -- the milter's questions

    def recipient_state(
        self, adv: str, rcpt: str, *, now: float, default_cap: int, hold: str = ""
    ) -> RecipientState:
        """Refusal, consent and the rolling 24 h count for one recipient, in one
        atomic script. Order: global refusal, refusal of ``adv``, no consent,
        expired consent, over the cap.

        :param hold: a message's id (:func:`hold_member`): when the state is ``ok``,
            the message takes one of the day's ads in the same script, so messages
            checked at the same moment cannot all fit under the cap; its send
            (:meth:`record_sends` with the same ``hold``) replaces the hold, and a
            message never delivered stops counting after :data:`HOLD_SECONDS`.
        :raises ValueError: bad recipient.
        :raises StoreError: store trouble.
        """
        adv, rcpt = normalize_advertiser_id(adv), normalize_recipient(rcpt, self.delimiters)
        res = self._call(
            self._state,
            keys=[DNE_KEY, refusal_key(adv), consent_key(adv), sent_key(adv, rcpt)],
            args=[rcpt, repr(now), repr(self.window), str(default_cap), hold,
                  str(HOLD_SECONDS)],
        )
        return RecipientState(
            status=_s(res[0]),  # type: ignore[arg-type]
            sent=int(_s(res[1])),
            cap=int(float(_s(res[2]))),
        )

    def record_sends(self, adv: str, rcpts: Sequence[str], *, now: float, ref: str,
                     hold: str = "") -> None:
        """Count one delivered ad for each recipient (atomic, rolling window).

        :param ref: identifies the message (queue id); members are unique anyway.
        :param hold: the message's hold taken by :meth:`recipient_state`, replaced by
            the send so the ad counts once.
        :raises StoreError: store trouble.
        """
        adv = normalize_advertiser_id(adv)
        keys = self._sent_keys(adv, rcpts)
        if not keys:
            return
        member = f"{now!r}:{ref}:{uuid.uuid4().hex[:12]}"
        self._call(
            self._send, keys=[*keys, stats_key(adv), sent_hour_key(adv, int(now // 3600))],
            args=[repr(now), repr(self.window), member, math.ceil(self.window) + 3600, hold],
        )

    def _sent_keys(self, adv: str, rcpts: Sequence[str]) -> list[str]:
        """The daily-count keys of ``adv``'s ads to ``rcpts`` (addresses no record can
        hold are left out)."""
        keys: list[str] = []
        for r in rcpts:
            try:
                keys.append(sent_key(adv, normalize_recipient(r, self.delimiters)))
            except ValueError:
                continue
        return keys

    def release_holds(self, adv: str, rcpts: Sequence[str], *, hold: str) -> None:
        """Remove a message's holds (:meth:`recipient_state`) for ``rcpts``: it was not
        delivered, so its places under the cap are free again.

        :raises StoreError: store trouble.
        """
        adv = normalize_advertiser_id(adv)
        keys = self._sent_keys(adv, rcpts)
        if not keys or not hold:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zrem(key, hold)
        self._call(pipe.execute)

    def sent_in_window(self, adv: str, rcpt: str, *, now: float) -> int:
        """Ads delivered to ``rcpt`` by ``adv`` in the window ending at ``now`` (holds of
        messages not yet delivered are not counted here; the cap counts them)."""
        key = sent_key(normalize_advertiser_id(adv), normalize_recipient(rcpt, self.delimiters))
        members = self._call(self.client.zrangebyscore, key, f"({now - self.window!r}", "+inf")
        return sum(1 for m in members if not _s(m).startswith("h:"))

    # -- lookups

    def recipient_records(self, rcpt: str) -> RecipientRecords:
        """Every consent and refusal of one recipient (the decree's lookup)."""
        rcpt = normalize_recipient(rcpt, self.delimiters)
        advs = sorted(_s(a) for a in self._call(self.client.smembers, recipient_index_key(rcpt)))
        advs = [a for a in advs if a != GLOBAL][:10_000]
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(DNE_KEY, rcpt)
        for a in advs:
            pipe.hget(consent_key(a), rcpt)
            pipe.hget(refusal_key(a), rcpt)
        res = self._call(pipe.execute)
        refusals: list[RefusalRecord] = []
        consents: list[ConsentRecord] = []
        if res[0]:
            refusals.append(RefusalRecord.from_json(GLOBAL, rcpt, res[0]))
        for i, a in enumerate(advs):
            c, r = res[1 + 2 * i], res[2 + 2 * i]
            if c:
                consents.append(ConsentRecord.from_json(a, rcpt, c))
            if r:
                refusals.append(RefusalRecord.from_json(a, rcpt, r))
        return RecipientRecords(rcpt, tuple(consents), tuple(refusals))

    def counts(self, adv: str) -> AdvertiserCounts:
        """Consents, refusals and ads delivered (all time) for one advertiser."""
        adv = normalize_advertiser_id(adv)
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(consent_key(adv))
        pipe.hlen(refusal_key(adv))
        pipe.hget(stats_key(adv), "sent")
        c, r, s = self._call(pipe.execute)
        return AdvertiserCounts(adv, int(c), int(r), int(_s(s)) if s else 0)

    def refusing_all(self) -> int:
        """How many recipients refuse all advertising (the do-not-email list).

        :raises StoreError: store trouble.
        """
        return int(self._call(self.client.hlen, DNE_KEY))

    def counts_many(self, advs: Sequence[str], *, now: float | None = None
                    ) -> list[AdvertiserCounts]:
        """:meth:`counts` of several advertisers in one round trip, with the ads
        delivered in the last 24 hours (hourly counters, so the current clock hour and
        the 23 before it).

        :param advs: advertiser ids (at most 10,000 are read).
        :param now: the time the last 24 hours end at (default: the registry's clock).
        :returns: one :class:`AdvertiserCounts` per id, in order.
        :raises StoreError: store trouble.
        """
        ids = [normalize_advertiser_id(a) for a in advs[:10_000]]
        hour = int((self.clock() if now is None else now) // 3600)
        pipe = self.client.pipeline(transaction=False)
        for adv in ids:
            pipe.hlen(consent_key(adv))
            pipe.hlen(refusal_key(adv))
            pipe.hget(stats_key(adv), "sent")
            pipe.mget([sent_hour_key(adv, h) for h in range(hour - 23, hour + 1)])
        res = self._call(pipe.execute) if ids else []
        out = []
        for i, adv in enumerate(ids):
            c, r, s, hours = res[4 * i: 4 * i + 4]
            out.append(AdvertiserCounts(adv, int(c), int(r), int(_s(s)) if s else 0,
                                        sum(int(_s(v)) for v in hours if v is not None)))
        return out


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def registry_from_config(cfg: Config, client: Any | None = None) -> RedisConsentRegistry:
    """The Redis registry of this configuration (``client``: a ``redis.Redis``;
    default :func:`~spamwarden.redisconn.sync_client`)."""
    from ..redisconn import sync_client

    return RedisConsentRegistry(
        client if client is not None else sync_client(cfg), retention=cfg.consent.retention,
        delimiters=cfg.intake.recipient_delimiter,
    )


# -- complaints about ads -------------------------------------------------------------------


class AdComplaintRefusals:
    """Turns a complaint about an ad into the reporter's refusal of the advertiser
    (Decree 91/2020/ND-CP: a recipient who reports an ad no longer wants it).

    The worker calls it for every complaint; it acts only on ``spam`` complaints
    whose reported message carried an ad label and is attributable to a
    registered advertiser: a DKIM-verified domain aligned with ``From`` first,
    else the ``From`` domain itself (the advertiser the recipient saw: for a complaint
    matched to a delivery, the proven From when DMARC passed, else the From of the
    reported copy, ``Indicators.seen_from_domain``), and only when intake identified
    the reporter (``reporter_verified``: a SASL login or a trusted submission host),
    whose identity (an address) is the recipient refusing.

    :param registry: the consent registry.
    :param confirm: called with each new refusal (sends the single confirmation).

    Built from configuration by :func:`spamwarden.consent.optout.ad_complaint_hook_from_config`.
    """

    def __init__(
        self,
        registry: RedisConsentRegistry,
        *,
        confirm: Callable[[RefusalRecord], object] | None = None,
    ) -> None:
        self.registry = registry
        self.confirm = confirm

    def advertiser_of(self, complaint: Any) -> str | None:
        """The advertiser a complaint is about, or ``None`` (not an ad, not ours).

        :raises StoreError: store trouble.
        """
        ind = getattr(complaint, "indicators", None)
        if getattr(complaint, "kind", "") != "spam" or ind is None or not ind.ad_label:
            return None
        # the From the reporter saw: their refusal of that advertiser binds only them, so
        # it need not be the authenticated From a listing would need
        seen = ind.from_domain or getattr(ind, "seen_from_domain", None)
        from_org = registrable_domain(seen) if seen else None
        if from_org is None:
            return None
        domains = self.registry.domain_map()
        for d in ind.dkim_verified:
            org = registrable_domain(d)
            if org == from_org and org in domains:
                return domains[org]
        return domains.get(from_org)

    def record(self, complaint: Any) -> RefusalRecord | None:
        """Record the refusal for one complaint; idempotent (a replayed complaint
        keeps the first record). Returns the refusal in force, or ``None``.

        :raises StoreError: store trouble (the worker retries the entry).
        """
        if not getattr(complaint, "reporter_verified", False):
            return None  # a forged reporter must not refuse advertising for someone else
        adv = self.advertiser_of(complaint)
        if adv is None:
            return None
        # the address the ad was delivered to: a SASL login without a domain is a user
        # at one of the local domains, which only the matched delivery says
        address = getattr(complaint, "delivered_to", "") or complaint.reporter
        try:
            rcpt = normalize_recipient(address, self.registry.delimiters)
        except ValueError:
            return None
        rec, created = self.registry.refuse(
            rcpt, adv=adv, channel="complaint", now=float(complaint.received_at) or None
        )
        if created and self.confirm is not None:
            self.confirm(rec)
        return rec

    async def __call__(self, complaint: Any) -> RefusalRecord | None:
        """:meth:`record` from asyncio code (runs in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.record, complaint)
