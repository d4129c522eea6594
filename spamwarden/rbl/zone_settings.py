"""What the blocklist zone publishes besides its listings: apex, SOA timers, TTLs, who may
transfer it (``[rbl]`` in the configuration).

Kept apart from the responder so that the transfer and export code, which the responder
itself uses, can name it without importing the responder.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["ZoneSettings"]


@dataclass(frozen=True)
class ZoneSettings:
    """What the zone publishes besides the listings (``[rbl]`` in the configuration).

    :param apex: the zone, e.g. ``bl.example.net``.
    :param ns_addresses: A/AAAA of the name server when ``mname`` lies inside the zone.
    """

    apex: str
    lookup_url: str
    ttl: int = 300
    negative_ttl: int = 60
    mname: str = ""
    rname: str = ""
    transfer_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    ns_addresses: tuple[str, ...] = ()
    udp_payload: int = 1232
    refresh: int = 300
    retry: int = 60
    expire: int = 604800
    _allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        apex = self.apex.strip().rstrip(".").lower()
        object.__setattr__(self, "apex", apex)
        object.__setattr__(self, "mname", (self.mname or f"ns1.{apex}").rstrip(".").lower())
        object.__setattr__(self, "rname", (self.rname or f"hostmaster.{apex}").rstrip(".").lower())
        object.__setattr__(self, "_allow", tuple(
            ipaddress.ip_network(a, strict=False) for a in self.transfer_allow))

    def transfer_allowed(self, client: str) -> bool:
        """True when ``client`` (an IP address) may transfer the zone."""
        try:
            ip = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._allow)
