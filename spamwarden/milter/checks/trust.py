"""Mail that is scored and tagged but never refused or held: from a trusted sender
(SMTP AUTH, ``milter.trusted_networks``: ``ALL_TRUSTED``) or only to the complaint
intake's addresses (``TO_REPORT_ADDRESS``: forwarded spam, there to be reported)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ...config import Config
from ...mail import canonical_address
from ..interfaces import Envelope, Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "TrustCheck"]

_G = "trust"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("ALL_TRUSTED", 0.0, "sender authenticated or in milter.trusted_networks", _G,
               never_refuse="trusted sender"),
    SymbolSpec("TO_REPORT_ADDRESS", 0.0,
               "every recipient is an intake address (report, ham, optout)", _G,
               never_refuse="report address"),
)


class TrustCheck(CheckBase):
    """Trusted senders and intake-only recipients."""

    def __init__(self, cfg: Config, parts: Components | None = None) -> None:
        self._trusted_networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in cfg.milter.trusted_networks
        )
        self._intake_addresses = cfg.intake.addresses()
        self._make = parts.points.make if parts is not None else None

    def trusted_reason(self, env: Envelope) -> str:
        """Why the sender is trusted (SMTP AUTH, ``milter.trusted_networks``), or ``""``.

        Mail from a trusted sender is scored and tagged like any other, but never
        refused, held or tempfailed: locally submitted mail would otherwise bounce
        on its own domain's SPF.
        """
        if env.authenticated:
            return "SMTP AUTH"
        if env.client_ip and self._trusted_networks:
            try:
                ip = ipaddress.ip_address(env.client_ip)
            except ValueError:
                return ""
            for net in self._trusted_networks:
                if ip.version == net.version and ip in net:
                    return f"client in {net}"
        return ""

    def only_intake_recipients(self, env: Envelope) -> bool:
        """Every recipient is a complaint-intake address (``intake.report_address``,
        ``ham_address``, ``optout_address``; :meth:`IntakeConfig.addresses`).

        One other recipient and the message is treated like any other, and so is a
        message with more recipients than the envelope keeps (any of the rest may be
        another).
        """
        if not env.rcpts or not self._intake_addresses or env.rcpts_cut:
            return False
        # the form intake routes recipients in (IDNA domain, case, quotes folded)
        return all(canonical_address(r) in self._intake_addresses for r in env.rcpts)

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        assert self._make is not None
        out: list[Symbol] = []
        trusted = self.trusted_reason(msg.env)
        if trusted:
            out.append(self._make("ALL_TRUSTED", trusted))
        if self.only_intake_recipients(msg.env):
            out.append(self._make("TO_REPORT_ADDRESS", "every recipient is an [intake] address"))
        return out


def _build(parts: Components) -> TrustCheck:
    return TrustCheck(parts.cfg, parts)


CHECK = CheckDecl(
    name="trust",
    order=90,
    symbols=SYMBOLS,
    phases=frozenset({Phase.MESSAGE}),
    build=_build,
)
