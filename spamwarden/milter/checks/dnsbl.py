"""Third-party DNSBLs of the client IP (``rbl.third_party_zones``): ``RBL_THIRD_PARTY``.

The lookups need only the client IP, so they start at MAIL FROM on the lookup
threads (at the end of message when nothing started early) and are read after
authentication.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from ..dnsbl import ThirdPartyDnsbl
from ..interfaces import Envelope, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "DnsblCheck"]

_G = "dnsbl"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("RBL_THIRD_PARTY", 3.0, "client IP is on a third-party DNSBL", _G),
    SymbolSpec("RBL_THIRD_PARTY_LOOKUP_FAILED", 0.0, "third-party DNSBL lookup failed", _G,
               lookup_failure="dnsbl"),
)


class DnsblCheck(CheckBase):
    """Asks ``rbl.third_party_zones`` about the client IP."""

    def __init__(self, parts: Components) -> None:
        cfg = parts.cfg
        self.client = ThirdPartyDnsbl(parts.resolver, cfg.rbl.third_party_zones,
                                      timeout=cfg.dns.timeout)
        self.points = parts.points
        self.lookups = parts.lookups

    def symbols_for(self, client_ip: str) -> list[Symbol]:
        """The symbols of ``client_ip`` (runs the lookups)."""
        answer = self.client.lookup(client_ip)
        out: list[Symbol] = []
        if answer.listed:
            out.append(self.points.make("RBL_THIRD_PARTY", "; ".join(answer.listed)))
        if answer.failed:
            out.append(self.points.make("RBL_THIRD_PARTY_LOOKUP_FAILED",
                                        ",".join(answer.failed)))
        return out

    def at_envelope(self, env: Envelope) -> Future[Any] | None:
        if not env.client_ip:
            return None
        return self.lookups.submit(self.symbols_for, env.client_ip)

    def begin(self, msg: MessageContext) -> None:
        early = msg.early
        job = early.jobs.get("dnsbl") if early is not None else None
        if job is None and msg.env.client_ip:
            job = self.lookups.submit(self.symbols_for, msg.env.client_ip)
        if job is not None:
            msg.jobs["dnsbl"] = job

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        job = msg.jobs.get("dnsbl")
        if job is None:
            return ()
        symbols: list[Symbol] = self.lookups.result(job, default=[])
        return symbols


def _build(parts: Components) -> DnsblCheck | None:
    return DnsblCheck(parts) if parts.cfg.rbl.third_party_zones else None


CHECK = CheckDecl(
    name="dnsbl",
    order=40,
    symbols=SYMBOLS,
    phases=frozenset({Phase.ENVELOPE, Phase.MESSAGE}),
    build=_build,
)
