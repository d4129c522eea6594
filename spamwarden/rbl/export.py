"""The zone as records (for AXFR) and as files other servers load: rbldnsd and RPZ.

Every export answers like the live server (docs/dnsbl.md):

- zone transfer (spamwarden/rbl/transfer.py): an exact listing is a name with A and TXT; a CIDR block becomes
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

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .transfer import transfer_records
from .zone import TEST_REASON, DnsblZone, IndexEntry

if TYPE_CHECKING:
    from .responder import DnsblResponder
    from .zone_settings import ZoneSettings

__all__ = ["transfer_records", "export_rbldnsd", "export_rpz", "RBLDNSD_FILES"]

RBLDNSD_FILES = {"ip4": "ip4trie", "ip6": "ip6trie", "dbl": "dnset"}

def _rbldnsd_value(responder: DnsblResponder, zone: DnsblZone, entry: IndexEntry) -> str:
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


def _soa_line(settings: ZoneSettings, serial: int) -> str:
    s = settings
    return (f"$SOA {s.ttl} {s.mname}. {s.rname}. {serial & 0xFFFFFFFF or 1} {s.refresh} "
            f"{s.retry} {s.expire} {s.negative_ttl}")


def export_rbldnsd(zone: DnsblZone, responder: DnsblResponder, directory: Path) -> dict[str, Path]:
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


def export_rpz(zone: DnsblZone, responder: DnsblResponder, path: Path, *,
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
