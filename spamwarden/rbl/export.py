"""The zone as records (for AXFR) and as files other servers load: rbldnsd and RPZ.

Every export answers like the live server (docs/dnsbl.md):

- zone transfer: an exact listing is a name with A and TXT; a CIDR block becomes
  wildcards at the next label boundary (``*.2.1.ip`` for ``1.2.0.0/16``, two
  for a /15, exact names past /24); a domain is the name plus ``*.name``.  Where
  a name inside a block or a listed domain exists anyway (an empty non-terminal
  above a more specific listing), the wildcard would stop applying (RFC 4592
  §2.2.1), so the transfer adds the covering answer there too;
- rbldnsd: ``ip4trie`` and ``ip6trie`` (longest prefix wins, like the server)
  and a ``dnset`` with ``.domain`` entries (the domain and everything under it);
- RPZ (for resolvers): each listed domain and its subdomains answer NXDOMAIN
  (``CNAME .``), RFC-less but documented by ISC (draft-vixie-dnsop-dns-rpz).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .wire import T_A, T_TXT, a_rdata, encode_name, txt_rdata
from .zone import TEST_REASON, DnsblZone, IndexEntry

if TYPE_CHECKING:
    from .responder import DnsblResponder, ZoneSettings

__all__ = ["transfer_records", "export_rbldnsd", "export_rpz", "RBLDNSD_FILES"]

RBLDNSD_FILES = {"ip4": "ip4trie", "ip6": "ip6trie", "dbl": "dnset"}

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


def transfer_records(zone: DnsblZone, settings: "ZoneSettings", responder: "DnsblResponder", *,
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


def _rbldnsd_value(responder: "DnsblResponder", zone: DnsblZone, entry: IndexEntry) -> str:
    ri = zone.reasons.index(entry.reason)
    text = responder.txt_text(ri, entry.key).replace("\n", " ")
    # rbldnsd expands "$" in TXT templates to the queried address.
    text = text.replace("$", "%24")
    return f":{entry.reason.code}:{text}"


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)
                fh.write("\n")
        os.chmod(tmp, 0o644)  # rbldnsd drops privileges to its own user; it must read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _soa_line(settings: "ZoneSettings", serial: int) -> str:
    s = settings
    return (f"$SOA {s.ttl} {s.mname}. {s.rname}. {serial & 0xFFFFFFFF or 1} {s.refresh} "
            f"{s.retry} {s.expire} {s.negative_ttl}")


def export_rbldnsd(zone: DnsblZone, responder: "DnsblResponder", directory: Path) -> dict[str, Path]:
    """Write rbldnsd data files ``ip4``, ``ip6`` and ``dbl`` into ``directory``.

    Serve them with ``rbldnsd ... ip.<zone>:ip4trie:DIR/ip4 ip.<zone>:ip6trie:DIR/ip6
    dbl.<zone>:dnset:DIR/dbl``.  Files are replaced atomically (rbldnsd reloads
    changed files by itself) and readable by everyone.

    :returns: file kind -> path.
    :raises OSError: the directory cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    s = responder.settings
    now_ms = int(time.time() * 1000)
    head = [f"$TTL {s.ttl}", _soa_line(s, zone.serial), f"$NS {s.ttl} {s.mname}."]
    ip4: list[str] = list(head) + ["!127.0.0.1"]
    ip6: list[str] = list(head) + ["!::ffff:7f00:1"]
    dbl: list[str] = list(head) + ["!invalid"]
    for entry in zone.entries(now_ms):
        value = _rbldnsd_value(responder, zone, entry)
        if entry.kind == "domain":
            dbl.append(f".{entry.key} {value}")
        elif ":" in entry.key:
            ip6.append(f"{entry.key if '/' in entry.key else entry.key + '/128'} {value}")
        else:
            ip4.append(f"{entry.key if '/' in entry.key else entry.key + '/32'} {value}")
    paths = {}
    for name, lines in (("ip4", ip4), ("ip6", ip6), ("dbl", dbl)):
        path = directory / name
        _write_atomic(path, lines)
        paths[name] = path
    return paths


def export_rpz(zone: DnsblZone, responder: "DnsblResponder", path: Path, *,
               origin: str | None = None) -> int:
    """Write a Response Policy Zone: every listed domain and its subdomains answer NXDOMAIN.

    IP listings are about mail senders, not about what resolvers return, so
    they are left out; so are the RFC 5782 test points.

    :param origin: the RPZ zone name (default ``rpz.<zone>``).
    :returns: the number of domains written.
    :raises OSError: the file cannot be written.
    """
    s = responder.settings
    origin = (origin or f"rpz.{s.apex}").rstrip(".")
    now_ms = int(time.time() * 1000)
    serial = zone.serial & 0xFFFFFFFF or 1
    lines = [
        f"$ORIGIN {origin}.",
        f"$TTL {s.ttl}",
        f"@ SOA {s.mname}. {s.rname}. {serial} {s.refresh} {s.retry} {s.expire} {s.negative_ttl}",
        f"@ NS {s.mname}.",
    ]
    count = 0
    for entry in zone.entries(now_ms):
        if entry.kind != "domain" or entry.reason.reason == TEST_REASON:
            continue
        lines.append(f"{entry.key} CNAME .")
        lines.append(f"*.{entry.key} CNAME .")
        count += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lines)
    return count
