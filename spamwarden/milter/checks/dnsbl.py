"""Third-party DNSBLs: one symbol per ``[[rbl.external]]`` list, and the deprecated
``rbl.third_party_zones`` (``RBL_THIRD_PARTY``).

Each external list is a symbol named by its ``name`` (declared through
``configured_symbols``: the registry, ``[policy.symbols]`` and ``spamwarden symbols``
know it as soon as the configuration is read) scoring the points of the highest
configured code it answers, and ``<name>_LOOKUP_FAILED`` (0 points, counted as a
failed lookup) when any of its lookups for the message failed or was refused.

``ip`` lists need only the client IP: their lookups start at MAIL FROM on the lookup
threads (at the end of message when nothing started early).  ``sender`` lists are
asked about the envelope sender's and the From header's registrable domains, ``url``
lists about the registrable domains of linked URLs (at most
``rbl.external_max_names`` each), at the start of end-of-message processing; all
are read after authentication.  One job per query, each bounded by ``dns.timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from ...config import Config, ExternalList
from ...errors import ConfigError
from ...mail import domain_of_address, registrable_domain
from ..dnsbl import ExternalDnsbl, ExternalOutcome, ThirdPartyDnsbl
from ..interfaces import Envelope, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "DnsblCheck", "external_symbols"]

_G = "dnsbl"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("RBL_THIRD_PARTY", 3.0,
               "client IP is on a third-party DNSBL (deprecated rbl.third_party_zones)", _G),
    SymbolSpec("RBL_THIRD_PARTY_LOOKUP_FAILED", 0.0, "third-party DNSBL lookup failed", _G,
               lookup_failure="dnsbl"),
)

_KINDS = {"ip": "client IP", "sender": "a sender domain", "url": "a linked domain"}


def failure_symbol(entry: ExternalList) -> str:
    """The failed-lookup symbol of an external list: ``<name>_LOOKUP_FAILED``."""
    return f"{entry.name}_LOOKUP_FAILED"


def external_symbols(cfg: Config) -> tuple[SymbolSpec, ...]:
    """The symbols of ``[[rbl.external]]``: ``<name>`` (default points: its highest
    code's; the answer decides) and ``<name>_LOOKUP_FAILED`` (0).

    :raises ConfigError: a name is one of the built-in symbols.
    """
    from ..registry import declared_symbols

    ours = {s.name for s in declared_symbols()}
    out: list[SymbolSpec] = []
    for entry in cfg.rbl.external:
        for name in (entry.name, failure_symbol(entry)):
            if name in ours:
                raise ConfigError(f"{cfg.source}: rbl.external: the name {entry.name} "
                                  f"makes {name}, a built-in symbol; choose another name")
        out.append(SymbolSpec(entry.name, max(entry.codes.values(), default=0.0),
                              f"{_KINDS[entry.kind]} is on {entry.zone} (points by answer)",
                              _G))
        out.append(SymbolSpec(failure_symbol(entry), 0.0,
                              f"{entry.zone} lookup failed or was refused", _G,
                              lookup_failure="dnsbl"))
    return tuple(out)


class DnsblCheck(CheckBase):
    """Asks the external lists and ``rbl.third_party_zones``."""

    def __init__(self, parts: Components) -> None:
        cfg = parts.cfg
        self.legacy = (ThirdPartyDnsbl(parts.resolver, cfg.rbl.third_party_zones,
                                       timeout=cfg.dns.timeout)
                       if cfg.rbl.third_party_zones else None)
        self.external = tuple(ExternalDnsbl(parts.resolver, e, timeout=cfg.dns.timeout)
                              for e in cfg.rbl.external)
        self.max_names = cfg.rbl.external_max_names
        self.points = parts.points
        self.lookups = parts.lookups

    def symbols_for(self, client_ip: str) -> list[Symbol]:
        """The ``rbl.third_party_zones`` symbols of ``client_ip`` (runs the lookups)."""
        if self.legacy is None:
            return []
        answer = self.legacy.lookup(client_ip)
        out: list[Symbol] = []
        if answer.listed:
            out.append(self.points.make("RBL_THIRD_PARTY", "; ".join(answer.listed)))
        if answer.failed:
            out.append(self.points.make("RBL_THIRD_PARTY_LOOKUP_FAILED",
                                        ",".join(answer.failed)))
        return out

    def _ip_jobs(self, client_ip: str) -> dict[str, Any]:
        """Start every IP lookup: the legacy zones' job and one job per ``ip`` list."""
        jobs: dict[str, Any] = {}
        if self.legacy is not None:
            jobs["legacy"] = self.lookups.submit(self.symbols_for, client_ip)
        for i, client in enumerate(self.external):
            if client.entry.kind == "ip" and client.name_for(client_ip) is not None:
                jobs[f"{i}:{client_ip}"] = self.lookups.submit(client.lookup, client_ip)
        return jobs

    def _names(self, kind: str, msg: MessageContext) -> list[str]:
        """The domains a ``sender`` or ``url`` list is asked about, at most
        ``rbl.external_max_names``."""
        found: dict[str, None] = {}
        if kind == "sender":
            env = msg.env
            candidates = [domain_of_address(env.mail_from) if env.mail_from else None,
                          msg.view.from_domain]
        else:
            candidates = list(msg.view.url_domains)
        for d in candidates:
            reg = registrable_domain(d) if d else None
            if reg:
                found[reg] = None
            if len(found) >= self.max_names:
                break
        return list(found)

    def at_envelope(self, env: Envelope) -> Future[Any] | None:
        if not env.client_ip:
            return None
        jobs = self._ip_jobs(env.client_ip)
        if not jobs:
            return None
        done: Future[Any] = Future()
        done.set_result(jobs)  # the jobs run on; begin() takes them over
        return done

    def begin(self, msg: MessageContext) -> None:
        early = msg.early
        started = early.jobs.get("dnsbl") if early is not None else None
        jobs: dict[str, Any] = dict(started.result()) if started is not None else {}
        if started is None and msg.env.client_ip:
            jobs = self._ip_jobs(msg.env.client_ip)
        for i, client in enumerate(self.external):
            if client.entry.kind == "ip":
                continue
            for name in self._names(client.entry.kind, msg):
                jobs[f"{i}:{name}"] = self.lookups.submit(client.lookup, name)
        if jobs:
            msg.jobs["dnsbl"] = jobs

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        jobs: dict[str, Any] | None = msg.jobs.get("dnsbl")
        if not jobs:
            return ()
        out: list[Symbol] = []
        if "legacy" in jobs:
            out.extend(self.lookups.result(jobs["legacy"], default=[
                self.points.make("RBL_THIRD_PARTY_LOOKUP_FAILED", "lookup budget")]))
        for i, client in enumerate(self.external):
            prefix = f"{i}:"
            listed: list[tuple[str, ExternalOutcome]] = []
            failed: list[str] = []
            for key, job in jobs.items():
                if not key.startswith(prefix):
                    continue
                asked = key[len(prefix):]
                outcome: ExternalOutcome = self.lookups.result(
                    job, default=ExternalOutcome("failed", reason="lookup budget"))
                if outcome.status == "listed":
                    listed.append((asked, outcome))
                elif outcome.status == "failed":
                    failed.append(f"{asked} ({outcome.reason})")
            entry = client.entry
            if listed:
                best = max(o.points for _, o in listed)
                detail = "; ".join(f"{entry.zone} {k} {','.join(o.codes[:3])}"
                                   for k, o in listed[:3])
                out.append(self.points.apply(Symbol(entry.name, best, detail)))
            if failed:
                out.append(self.points.make(failure_symbol(entry),
                                            f"{entry.zone}: " + ", ".join(failed[:3])))
        return out


def _build(parts: Components) -> DnsblCheck | None:
    rbl = parts.cfg.rbl
    return DnsblCheck(parts) if rbl.third_party_zones or rbl.external else None


CHECK = CheckDecl(
    name="dnsbl",
    order=40,
    symbols=SYMBOLS,
    phases=frozenset({Phase.ENVELOPE, Phase.MESSAGE}),
    build=_build,
    configured_symbols=external_symbols,
)
