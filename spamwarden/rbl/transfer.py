"""The zone as DNS records: full transfers (AXFR, RFC 5936) and the journal of
incremental ones (IXFR, RFC 1995).

Both the server (responder) and the file exports use these records, so a
secondary that transfers the zone answers like the server itself.  Records
are ``(owner wire, type, TTL, RDATA)`` tuples.

The journal keeps, per sub-zone, what each change did to the records: the
records of one listing's names before and after it.  That is exact only when
no other listing shapes those names (a CIDR block around an address, a listed
parent domain or listed names below): such a change is journaled as "no
difference known", and an IXFR across it gets the full zone instead.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .wire import T_A, T_TXT, a_rdata, encode_name, txt_rdata
from .zone import DnsblZone

if TYPE_CHECKING:
    from .zone_settings import ZoneSettings

__all__ = ["Record", "TxtSource", "transfer_records", "listing_records", "IxfrJournal",
           "section_of"]


class TxtSource(Protocol):
    """Gives the TXT text of a listing, so transfers and live answers agree."""

    def txt_text(self, reason_index: int, key: str) -> str:
        """The TXT text of a listing with reason ``reason_index`` and key ``key``."""
        ...


Record = tuple[bytes, int, int, bytes]


def _v4_labels(value: int, octets: int) -> str:
    parts = [str((value >> (24 - 8 * i)) & 0xFF) for i in range(octets)]
    return ".".join(reversed(parts))


def _v6_labels(value: int, nibbles: int) -> str:
    text = f"{value:032x}"[:nibbles]
    return ".".join(reversed(text))


class _Family:
    def __init__(self, bits: int, label_bits: int) -> None:
        self.bits = bits
        self.label_bits = label_bits
        self.levels = bits // label_bits

    def name(self, value: int, level: int) -> str:
        if self.bits == 32:
            return _v4_labels(value, level)
        return _v6_labels(value, level)


_V4 = _Family(32, 8)
_V6 = _Family(128, 4)


def transfer_records(zone: DnsblZone, settings: ZoneSettings, responder: TxtSource, *,
                     section: str, now_ms: int) -> Iterator[Record]:
    """Every record of ``ip.<apex>`` or ``dbl.<apex>`` but SOA and NS, as (owner wire, type, TTL, RDATA).

    :param zone: the index.
    :param settings: apex and TTLs.
    :param responder: gives the TXT text, so transfers and live answers agree.
    :param now_ms: entries expired at this time are left out.
    :param section: ``ip`` or ``dbl``.
    """
    ttl = settings.ttl
    ip_suffix = f"ip.{settings.apex}"
    dbl_suffix = f"dbl.{settings.apex}"
    reasons = zone.reasons
    index_of = {id(r): i for i, r in enumerate(reasons)}

    def pair(owner: str, entry_reason_index: int, key: str) -> Iterator[Record]:
        wire = encode_name(owner)
        yield wire, T_A, ttl, a_rdata(reasons[entry_reason_index].code)
        yield wire, T_TXT, ttl, txt_rdata(responder.txt_text(entry_reason_index, key))

    emitted_wild: set[str] = set()
    v4_nodes: set[tuple[int, int]] = set()
    v6_nodes: set[tuple[int, int]] = set()
    domains: list[str] = []
    for entry in zone.entries(now_ms):
        if (entry.kind == "domain") != (section == "dbl"):
            continue
        ri = index_of[id(entry.reason)]
        if entry.kind == "domain":
            domains.append(entry.key)
            yield from pair(f"{entry.key}.{dbl_suffix}", ri, entry.key)
            wild = f"*.{entry.key}.{dbl_suffix}"
            emitted_wild.add(wild)
            yield from pair(wild, ri, entry.key)
            continue
        net = ipaddress.ip_network(entry.key, strict=False)
        fam = _V4 if net.version == 4 else _V6
        nodes = v4_nodes if net.version == 4 else v6_nodes
        value = int(net.network_address)
        plen = net.prefixlen
        level = -(-plen // fam.label_bits)  # labels needed to reach the block
        if level >= fam.levels:
            # exact names: an address, or a block smaller than one label (<= 8 names for v6,
            # 128 for v4); the live lookup decides, so a more specific listing keeps its answer
            lookup = zone.lookup_v4 if net.version == 4 else zone.lookup_v6
            for i in range(1 << (fam.bits - plen)):
                hit = lookup(value + i, now_ms)
                if hit is not None and (plen == fam.bits or hit[1] == entry.key):
                    yield from pair(f"{fam.name(value + i, fam.levels)}.{ip_suffix}", hit[0], entry.key)
            nodes.add((value >> fam.label_bits, fam.levels - 1))
            continue
        # wildcards at the label boundary below the block; the covering pass emits them
        step = 1 << (fam.bits - level * fam.label_bits)
        for i in range(1 << (level * fam.label_bits - plen)):
            nodes.add(((value + i * step) >> (fam.bits - level * fam.label_bits), level))
    # Names that exist above more specific listings break wildcards of covering blocks.
    for fam, nodes, nets in ((_V4, v4_nodes, zone._v4_nets), (_V6, v6_nodes, zone._v6_nets)):
        if not nets.lens:
            continue
        seen: set[tuple[int, int]] = set()
        for node_value, level in nodes:
            for lvl in range(level, 0, -1):
                anc = node_value >> ((level - lvl) * fam.label_bits)
                if (anc, lvl) in seen:
                    break
                seen.add((anc, lvl))
                lo = anc << (fam.bits - lvl * fam.label_bits)
                hit = nets.covering(lo, lvl * fam.label_bits, now_ms)
                if hit is None:
                    continue
                wild = f"*.{fam.name(lo, lvl)}.{ip_suffix}"
                if wild not in emitted_wild:
                    emitted_wild.add(wild)
                    yield from pair(wild, hit[0] & 0xFF, hit[1])
    listed = set(domains)
    for name in domains:
        pos = name.find(".")
        while pos >= 0:
            parent = name[pos + 1:]
            pos = name.find(".", pos + 1)
            if parent in listed:
                break
            hit = zone.lookup_domain(parent.encode("ascii"), now_ms)
            if hit is None:
                continue
            listed.add(parent)
            yield from pair(f"{parent}.{dbl_suffix}", hit[0], hit[1])
            wild = f"*.{parent}.{dbl_suffix}"
            if wild not in emitted_wild:
                emitted_wild.add(wild)
                yield from pair(wild, hit[0], hit[1])


def section_of(key: str, kind: str) -> str:
    """The sub-zone a listing lives in: ``dbl`` for domains, ``ip`` for addresses and blocks."""
    return "dbl" if kind == "domain" else "ip"


def listing_records(zone: DnsblZone, settings: ZoneSettings, txt: TxtSource, *, key: str,
                    kind: str, now_ms: int) -> frozenset[Record] | None:
    """The records a full transfer holds for one listing's names, or None when unknown.

    None when other listings shape the same names (RFC 4592 wildcards and empty
    non-terminals): a CIDR block (itself, or around the address), a domain with a
    listed parent or listed names below it.

    :param key: the listing key as in the change stream (normalized).
    :param kind: ``ip``, ``cidr`` or ``domain``.
    :returns: the records (empty when the key is not listed), or None.
    """
    ttl = settings.ttl
    reasons = zone.reasons

    def pair(owner: str, ri: int, text_key: str) -> frozenset[Record]:
        wire = encode_name(owner)
        return frozenset(((wire, T_A, ttl, a_rdata(reasons[ri].code)),
                          (wire, T_TXT, ttl, txt_rdata(txt.txt_text(ri, text_key)))))

    try:
        if kind == "domain":
            name = key.lower().rstrip(".").encode("ascii")
            parent = name.partition(b".")[2]
            if parent and zone.lookup_domain(parent, now_ms) is not None:
                return None
            if zone.domain_has_children(name):
                return None
            packed = zone._domains.get(name)
            if packed is None or packed >> 8 <= now_ms:
                return frozenset()
            text = name.decode("ascii")
            owner = f"{text}.dbl.{settings.apex}"
            return pair(owner, packed & 0xFF, text) | pair("*." + owner, packed & 0xFF, text)
        if kind not in ("ip", "cidr"):
            return frozenset()  # not published in DNS
        net = ipaddress.ip_network(key, strict=False)
    except (ValueError, UnicodeError):
        return frozenset()
    value = int(net.network_address)
    if net.version == 4:
        if net.prefixlen != 32 or zone._v4_nets.covering(value, 32, now_ms) is not None:
            return None
        keys = zone._v4_keys
        i = zone.v4_find(value)
        if i >= len(keys) or keys[i] != value:
            return frozenset()
        packed = zone._v4_vals[i]
        fam, text = _V4, str(net.network_address)
    else:
        if net.prefixlen != 128 or zone._v6_nets.covering(value, 128, now_ms) is not None:
            return None
        found = zone._v6.get(value)
        if found is None:
            return frozenset()
        packed = found
        fam, text = _V6, str(net.network_address)
    if packed >> 8 <= now_ms:
        return frozenset()
    return pair(f"{fam.name(value, fam.levels)}.ip.{settings.apex}", packed & 0xFF, text)


@dataclass
class _Journal:
    base: int  # the oldest serial the journal leads on from
    entries: deque[tuple[int, frozenset[Record], frozenset[Record]]] = field(default_factory=deque)


class IxfrJournal:
    """What the last changes did to each sub-zone's records, for IXFR (RFC 1995 §4).

    Serials are the zone serial (one per change, shared by ``ip`` and ``dbl``): a
    change to one sub-zone moves the other's serial without changing its records.

    :param size: changes kept per sub-zone; older ones are forgotten.
    """

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._zones: dict[str, _Journal] = {}

    def reset(self, serial: int) -> None:
        """Forget everything: the zone was loaded in full at ``serial``."""
        self._zones = {section: _Journal(serial) for section in ("ip", "dbl")}

    def record(self, section: str, serial: int, deleted: frozenset[Record] | None,
               added: frozenset[Record] | None) -> None:
        """Note the change that made ``serial`` (the previous serial plus one).

        :param deleted: records the change removed from ``section``; None: unknown.
        :param added: records it added; None: unknown (the journal restarts at ``serial``).
        """
        journal = self._zones.get(section)
        if journal is None or deleted is None or added is None:
            self._zones[section] = _Journal(serial)
            return
        common = deleted & added
        journal.entries.append((serial, deleted - common, added - common))
        while len(journal.entries) > self.size:
            journal.base = journal.entries.popleft()[0]

    def since(self, section: str, serial: int, current: int) -> tuple[list[Record], list[Record]] | None:
        """Records deleted and added in ``section`` from ``serial`` to ``current``.

        :returns: (deleted, added), condensed (RFC 1995 §5); None when the journal
            does not reach back to ``serial`` (the caller sends the whole zone).
        """
        journal = self._zones.get(section)
        if journal is None or serial < journal.base or serial > current:
            return None
        deleted: dict[Record, None] = {}
        added: dict[Record, None] = {}
        for entry_serial, gone, new in journal.entries:
            if entry_serial <= serial:
                continue
            for rec in gone:
                if rec in added:
                    del added[rec]
                else:
                    deleted[rec] = None
            for rec in new:
                if rec in deleted:
                    del deleted[rec]
                else:
                    added[rec] = None
        return list(deleted), list(added)
