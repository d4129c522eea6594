"""Own listings (complaint-fed): the client IP → ``RBL_OWN``; envelope, From and
verified DKIM ``d=`` registrable domains → ``DBL_OWN``; URL domains → ``URIBL_OWN``.

A failed lookup gives ``*_LOOKUP_FAILED``: never clean and never listed.  The
lookup (one Redis HMGET) is sent before authentication and read after it, so
Redis works while the milter does; after delivery the sources' volume is counted
(the complaint rate is complaints over volume): the client IP and only the names the
message authenticated (:func:`~spamwarden.mail.authenticated_domains`),
the same names a complaint about it can count against, so forged mail naming a domain
adds nothing to that domain's volume.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...logs import event
from ...mail import MessageView, authenticated_domains, domain_of_address, registrable_domain
from ...metrics import timed
from ..interfaces import BatchedVolume, Envelope, StartsLookups, Symbol
from ..registry import CheckBase, CheckDecl, Components, Delivered, MessageContext, Phase
from ..symbols import SymbolSpec

if TYPE_CHECKING:
    from ...reputation.lookup import ListingOutcome
    from ..auth import AuthResults

__all__ = ["CHECK", "MAX_URL_DOMAINS", "SYMBOLS", "ListingsCheck", "sender_domains"]

log = logging.getLogger("spamwarden.milter")

# URL domains looked up per message: every one the view holds (ParseLimits.max_urls), so
# links to many other sites put before a listed one do not hide it (one round trip).
MAX_URL_DOMAINS = 100

_G = "listings"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("RBL_OWN", 6.0, "client IP is on our blocklist", _G),
    SymbolSpec("DBL_OWN", 6.0, "a sender domain is on our blocklist", _G),
    SymbolSpec("URIBL_OWN", 5.0, "a linked domain is on our blocklist", _G),
    SymbolSpec("RBL_LOOKUP_FAILED", 0.0, "client IP blocklist lookup failed", _G,
               lookup_failure="listing"),
    SymbolSpec("DBL_LOOKUP_FAILED", 0.0, "sender domain blocklist lookup failed", _G,
               lookup_failure="listing"),
    SymbolSpec("URIBL_LOOKUP_FAILED", 0.0, "linked domain blocklist lookup failed", _G,
               lookup_failure="listing"),
)

# (listed symbol, failed symbol) per kind of indicator
_CLIENT = ("RBL_OWN", "RBL_LOOKUP_FAILED")
_SENDER = ("DBL_OWN", "DBL_LOOKUP_FAILED")
_LINKED = ("URIBL_OWN", "URIBL_LOOKUP_FAILED")


def sender_domains(view: MessageView, env: Envelope, auth: AuthResults | None) -> list[str]:
    """Registrable domains of the envelope sender, the From header and each
    verified DKIM ``d=``, without repeats, in that order."""
    found: dict[str, None] = {}
    candidates: list[str | None] = [
        domain_of_address(env.mail_from) if env.mail_from else None,
        view.from_domain,
    ]
    if auth is not None:
        for sig in auth.dkim:
            if str(sig.result).lower() == "pass":
                candidates.append(sig.domain)
    for d in candidates:
        reg = registrable_domain(d) if d else None
        if reg:
            found[reg] = None
    return list(found)


class ListingsCheck(CheckBase):
    """The own-listing lookups of one message, and its volume after delivery."""

    def __init__(self, parts: Components) -> None:
        assert parts.listings is not None
        self.listings = parts.listings
        self.points = parts.points
        self.lookups = parts.lookups
        self._max_dkim = parts.cfg.milter.max_dkim_signatures
        # Optional capabilities, checked once.
        self._begin = parts.listings if isinstance(parts.listings, StartsLookups) else None
        self._batched = parts.listings if isinstance(parts.listings, BatchedVolume) else None

    # -- end of message ---------------------------------------------------------------------

    def begin(self, msg: MessageContext) -> None:
        keys = self._keys(msg.view, msg.env)
        if keys:
            msg.jobs["listings"] = self._start(keys)

    def _keys(self, view: MessageView, env: Envelope) -> list[str]:
        """Every key the lookups may need, known before authentication: client IP,
        envelope and From registrable domains, the ``d=`` of every DKIM signature
        (only verified ones count later) and URL domains."""
        keys: dict[str, None] = {}
        if env.client_ip:
            keys[env.client_ip] = None
        for d in sender_domains(view, env, None):
            keys[d] = None
        for d in view.dkim_domains[: self._max_dkim]:
            reg = registrable_domain(d)
            if reg:
                keys[reg] = None
        for d in view.url_domains[:MAX_URL_DOMAINS]:
            keys[d] = None
        return list(keys)

    def _start(self, keys: Sequence[str]) -> Any:
        """Send the lookup of ``keys`` (a store that :class:`StartsLookups`), else run
        it on the lookup threads; read by :meth:`_outcomes`."""
        if self._begin is None:
            return self.lookups.submit(self._lookup, keys)
        try:
            return self._begin.begin_lookup(keys)
        except Exception as exc:  # noqa: BLE001 - it promises not to raise; see _lookup
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return None

    def _outcomes(self, job: Any) -> Mapping[str, ListingOutcome]:
        """The outcomes of :meth:`_start`'s job; ``{}`` (every key failed) when it
        raised or outlived its budget."""
        if self._begin is None:
            outcomes: Mapping[str, ListingOutcome] = self.lookups.result(job, default={})
            return outcomes
        if job is None:  # sending raised
            return {}
        try:
            with timed("listing"):
                outcomes = job.result()
            return outcomes
        except Exception as exc:  # noqa: BLE001 - see _lookup
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return {}

    def _lookup(self, keys: Sequence[str]) -> Mapping[str, ListingOutcome]:
        """Outcomes of ``keys``; ``{}`` (every key failed) if the store raises, which
        it promises not to: a failed lookup is never listed and never clean."""
        try:
            with timed("listing"):
                return self.listings.lookup_many(keys)
        except Exception as exc:  # noqa: BLE001 - see above
            event(log, "lookup_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return {}

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        """``RBL_OWN`` / ``DBL_OWN`` / ``URIBL_OWN`` and ``*_LOOKUP_FAILED`` from the
        outcomes; a DKIM ``d=`` counts only when its signature verified."""
        if "listings" not in msg.jobs:
            return ()
        outcomes = self._outcomes(msg.jobs["listings"])
        view, env = msg.view, msg.env
        senders = sender_domains(view, env, msg.auth)
        missing = [d for d in senders if d not in outcomes]
        if missing:  # a verified d= the header scan did not see: look it up now
            outcomes = {**outcomes, **self._lookup(missing)}
        groups: list[tuple[tuple[str, str], list[str]]] = []
        if env.client_ip:
            groups.append((_CLIENT, [env.client_ip]))
        groups.append((_SENDER, senders))
        sender_set = set(senders)
        groups.append(
            (_LINKED, [d for d in view.url_domains[:MAX_URL_DOMAINS] if d not in sender_set])
        )
        out: list[Symbol] = []
        for (listed_name, failed_name), ks in groups:
            listed = [o for k in ks if (o := outcomes.get(k)) is not None and o.status == "listed"]
            failed = [
                k for k in ks
                if (o := outcomes.get(k)) is None or o.status not in ("listed", "not_listed")
            ]
            if listed:
                detail = ", ".join(
                    f"{o.key}" + (f" ({o.reason})" if o.reason else "")
                    for o in listed[:5]
                )
                out.append(self.points.make(listed_name, detail, key=str(listed[0].key)))
            if failed:
                out.append(self.points.make(failed_name, ", ".join(failed[:5])))
        return out

    def finish(self, msg: MessageContext) -> None:
        job = msg.jobs.get("listings")
        if self._begin is not None and job is not None:
            try:
                job.discard()  # no-op once the answer was read
            except Exception as exc:  # noqa: BLE001 - only frees a connection
                log.debug("discarding a listing lookup failed: %s", exc)

    # -- after delivery ---------------------------------------------------------------------

    def delivered(self, batch: Sequence[Delivered]) -> None:
        """Count each message's sources (client IP, the domains it authenticated); in
        one round trip when the store takes several (:class:`BatchedVolume`)."""
        volume: list[list[str]] = []
        for item in batch:
            try:
                env = item.env
                keys = [env.client_ip] if env.client_ip else []
                keys += authenticated_domains(env.mail_from or "", item.verdict.auth)
                if keys and self._batched is not None:
                    volume.append(keys)
                elif keys:
                    self.listings.record_volume(keys)
            except Exception as exc:  # noqa: BLE001 - one message's count must not stop the rest
                event(log, "delivery_count_failed", logging.ERROR,
                      queue_id=item.env.queue_id or None, error=f"{type(exc).__name__}: {exc}")
        if volume and self._batched is not None:
            self._batched.record_volume_many(volume)


def _build(parts: Components) -> ListingsCheck | None:
    return ListingsCheck(parts) if parts.listings is not None else None


CHECK = CheckDecl(
    name="listings",
    order=30,
    symbols=SYMBOLS,
    phases=frozenset({Phase.MESSAGE, Phase.DELIVERED}),
    build=_build,
)
