"""The in-memory blocklist index: IPv4, IPv6, CIDR blocks and domains.

Memory is planned for millions of listings (the target is at most 200 bytes of
process RSS per listing, index included):

- exact IPv4 addresses live in two parallel sorted arrays, ``array('I')`` of
  addresses and ``array('Q')`` of packed values: 12 bytes per listing, binary
  search for lookups and for "is anything listed under this prefix" (empty
  non-terminals, RFC 8020 / RFC 9156).  A table of where each /16 starts in
  the array (256 KiB, built at each full load) narrows the search to a dozen
  entries; each insert or removal since the load widens that window by one,
  and after :data:`V4_HINT_DRIFT` of them the table is dropped until the next
  full load;
- exact IPv6 addresses in a dict ``int -> packed`` plus a sorted list of keys;
- CIDR blocks in one dict per prefix length (``network int -> (packed, key)``),
  probed longest prefix first, plus a sorted list of block starts; for IPv4 a
  byte per /20 (1 MiB, only once a block is listed) says whether any block
  touches it, so most unlisted addresses skip the probes (a removal leaves
  the byte set: it only costs the probes, until the next full load);
- domains in a dict ``bytes -> packed`` and a count of listed names under each
  proper suffix.

A *packed* value is ``expires_ms << 8 | reason index``: expiry is checked when
answering, so a listing stops matching at its ``expires_at`` even before an
``expired`` change arrives.  Matching rules (documented in docs/dnsbl.md): an
exact address beats a CIDR block, a longer prefix beats a shorter one, a domain
matches itself and every name under it and the longest listed suffix wins; an
expired match falls through to the next less specific one.
"""

from __future__ import annotations

import ipaddress
import socket
from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..reputation.listings import REASONS, KeyKind, reason_code

__all__ = ["DnsblZone", "ReasonEntry", "IndexEntry", "TEST_REASON", "FOREVER_MS", "V4_HINT_DRIFT"]

#: Expiry used for permanent entries (the RFC 5782 test points): far beyond any real date.
FOREVER_MS = 1 << 50
TEST_REASON = "test-point"
#: Inserts and removals of exact IPv4 addresses after which the /16 start table is dropped.
V4_HINT_DRIFT = 4096
#: The IPv4 block filter has one byte per 2**V4_UNIT_SHIFT addresses (a /20).
V4_UNIT_SHIFT = 12

_V4_TEST_LISTED = 0x7F000002
_V4_TEST_UNLISTED = 0x7F000001
_V6_TEST_LISTED = int(ipaddress.IPv6Address("::ffff:7f00:2"))
_V6_TEST_UNLISTED = int(ipaddress.IPv6Address("::ffff:7f00:1"))
_DOMAIN_TEST_LISTED = b"test"
_DOMAIN_TEST_UNLISTED = b"invalid"


@dataclass(frozen=True, slots=True)
class ReasonEntry:
    """A reason as answered: its name, A record and human text."""

    reason: str
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One entry of the index, for exports and zone transfers."""

    key: str
    kind: KeyKind
    reason: ReasonEntry
    expires_ms: int


def _expires_ms(expires_at: float) -> int:
    if expires_at != expires_at or expires_at <= 0:  # NaN or nonsense: already expired
        return 0
    return min(int(expires_at * 1000), FOREVER_MS)


def _v4_int(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")


def _v4_text(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))


def _v6_text(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


class _Networks:
    """CIDR blocks of one address family: one dict per prefix length, longest first."""

    __slots__ = ("bits", "by_len", "lens", "starts")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.by_len: dict[int, dict[int, tuple[int, str]]] = {}
        self.lens: list[int] = []  # descending
        self.starts: list[int] = []  # sorted, one per block

    def put(self, network: int, plen: int, packed: int, key: str) -> None:
        table = self.by_len.get(plen)
        if table is None:
            table = self.by_len[plen] = {}
            self.lens = sorted(self.by_len, reverse=True)
        if network not in table:
            insort(self.starts, network)
        table[network] = (packed, key)

    def remove(self, network: int, plen: int) -> None:
        table = self.by_len.get(plen)
        if table is None or table.pop(network, None) is None:
            return
        i = bisect_left(self.starts, network)
        if i < len(self.starts) and self.starts[i] == network:
            del self.starts[i]
        if not table:
            del self.by_len[plen]
            self.lens = sorted(self.by_len, reverse=True)

    def match(self, address: int, now_ms: int) -> tuple[int, str] | None:
        """(packed, key) of the longest active block containing ``address``."""
        bits = self.bits
        for plen in self.lens:
            hit = self.by_len[plen].get(address >> (bits - plen) << (bits - plen))
            if hit is not None and hit[0] >> 8 > now_ms:
                return hit
        return None

    def covering(self, address: int, plen_max: int, now_ms: int) -> tuple[int, str] | None:
        """(packed, key) of the longest active block of length <= ``plen_max`` holding ``address``."""
        bits = self.bits
        for plen in self.lens:
            if plen <= plen_max:
                hit = self.by_len[plen].get(address >> (bits - plen) << (bits - plen))
                if hit is not None and hit[0] >> 8 > now_ms:
                    return hit
        return None

    def intersects(self, lo: int, hi: int, plen_max: int) -> bool:
        """True when a block overlaps [lo, hi], the range of a prefix of length ``plen_max``."""
        i = bisect_left(self.starts, lo)
        if i < len(self.starts) and self.starts[i] <= hi:
            return True
        bits = self.bits
        for plen in self.lens:
            if plen <= plen_max and (lo >> (bits - plen) << (bits - plen)) in self.by_len[plen]:
                return True
        return False

    def __len__(self) -> int:
        return sum(len(t) for t in self.by_len.values())

    def items(self) -> Iterator[tuple[int, int, int, str]]:
        for plen, table in self.by_len.items():
            for network, (packed, key) in table.items():
                yield network, plen, packed, key


class DnsblZone:
    """The listings as the DNS server answers them.

    Not thread-safe; the server mutates it from its event loop only.

    :param reasons: reason name -> (A record, text); defaults to the shared table.
    """

    def __init__(self, reasons: dict[str, tuple[str, str]] | None = None) -> None:
        self._reasons: list[ReasonEntry] = []
        self._reason_index: dict[tuple[str, str], int] = {}
        self._reason_defaults = dict(REASONS if reasons is None else reasons)
        self._reason(TEST_REASON, "127.0.0.2", "RFC 5782 test point")
        for name, (code, text) in self._reason_defaults.items():
            self._reason(name, code, text)
        self._v4_keys = array("I")
        self._v4_vals = array("Q")
        #: index in _v4_keys of the first address of each /16 (65537 entries), or empty
        self._v4_hint = array("I")
        #: inserts and removals of _v4_keys since _v4_hint was built
        self._v4_drift = 0
        self._v4_nets = _Networks(32)
        #: one byte per /20: non-zero when an IPv4 block may cover part of it (None: no blocks yet)
        self._v4_units: bytearray | None = None
        self._v6: dict[int, int] = {}
        self._v6_keys: list[int] = []
        self._v6_nets = _Networks(128)
        self._domains: dict[bytes, int] = {}
        self._suffixes: dict[bytes, int] = {}
        self._pending_keys = array("I")
        self._pending_vals = array("Q")
        self.serial = 0
        self._put_test_points()

    # -- reasons ---------------------------------------------------------------------------

    @property
    def reasons(self) -> list[ReasonEntry]:
        """Every reason the index knows, by index (index 0 is the test point)."""
        return self._reasons

    def _reason(self, reason: str, code: str, text: str) -> int:
        k = (reason, code)
        idx = self._reason_index.get(k)
        if idx is None:
            if len(self._reasons) >= 255:
                # The packed value keeps 8 bits for the reason; an absurd number of
                # distinct reasons shares the last slot rather than corrupting others.
                return 254
            idx = len(self._reasons)
            self._reasons.append(ReasonEntry(reason, code, text))
            self._reason_index[k] = idx
        return idx

    def reason_index(self, reason: str, kind: KeyKind) -> int:
        """Index of a reason, registering a reason that is not in the table."""
        code = reason_code(reason, kind)
        text = self._reason_defaults.get(reason, (code, reason))[1]
        return self._reason(reason, code, text)

    # -- updates ---------------------------------------------------------------------------

    def _put_test_points(self) -> None:
        packed = FOREVER_MS << 8  # reason 0
        self._v4_insert(_V4_TEST_LISTED, packed)
        self._v6_insert(_V6_TEST_LISTED, packed)
        self._domain_insert(_DOMAIN_TEST_LISTED, packed)

    def put(self, key: str, kind: KeyKind, reason: str, expires_at: float) -> None:
        """List (or re-list) a normalized key.

        :param key: as produced by ``normalize_key``.
        :param kind: ``ip``, ``cidr`` or ``domain``.
        :raises ValueError: the key does not parse as its kind.
        """
        if kind not in ("ip", "cidr", "domain"):
            return  # e.g. mailbox addresses: not published in DNS
        packed = _expires_ms(expires_at) << 8 | self.reason_index(reason, kind)
        if kind == "domain":
            self._domain_insert(key.lower().rstrip(".").encode("ascii"), packed)
            return
        net = ipaddress.ip_network(key, strict=False)
        plen = net.prefixlen
        value = int(net.network_address)
        if net.version == 4:
            if plen == 32:
                self._v4_insert(value, packed)
            else:
                self._v4_nets.put(value, plen, packed, str(net))
                self._v4_mark_units(value, plen)
        else:
            if plen == 128:
                self._v6_insert(value, packed)
            else:
                self._v6_nets.put(value, plen, packed, str(net))

    def remove(self, key: str, kind: KeyKind) -> None:
        """Delist a key; unknown keys are ignored.  Test points cannot be removed.

        :raises ValueError: the key does not parse as its kind.
        """
        if kind not in ("ip", "cidr", "domain"):
            return
        if kind == "domain":
            name = key.lower().rstrip(".").encode("ascii")
            if name != _DOMAIN_TEST_LISTED and self._domains.pop(name, None) is not None:
                self._suffix_update(name, -1)
            return
        net = ipaddress.ip_network(key, strict=False)
        plen = net.prefixlen
        value = int(net.network_address)
        if net.version == 4:
            if plen == 32:
                if value != _V4_TEST_LISTED:
                    i = bisect_left(self._v4_keys, value)
                    if i < len(self._v4_keys) and self._v4_keys[i] == value:
                        del self._v4_keys[i]
                        del self._v4_vals[i]
                        self._v4_moved()
            else:
                self._v4_nets.remove(value, plen)
        elif plen == 128:
            if value != _V6_TEST_LISTED and self._v6.pop(value, None) is not None:
                i = bisect_left(self._v6_keys, value)
                del self._v6_keys[i]
        else:
            self._v6_nets.remove(value, plen)

    def _v4_insert(self, value: int, packed: int) -> None:
        keys = self._v4_keys
        i = bisect_left(keys, value)
        if i < len(keys) and keys[i] == value:
            self._v4_vals[i] = packed
        else:
            keys.insert(i, value)
            self._v4_vals.insert(i, packed)
            self._v4_moved()

    def _v4_moved(self) -> None:
        self._v4_drift += 1
        if self._v4_drift > V4_HINT_DRIFT and self._v4_hint:
            self._v4_hint = array("I")  # the window would be too wide to help

    def _v4_build_hint(self) -> None:
        """Where each /16 starts in the sorted IPv4 array (for :meth:`v4_find`)."""
        keys = self._v4_keys
        hint = array("I", bytes(4 * 65537))
        i = 0
        for top in range(65536):
            i = bisect_left(keys, top << 16, i)
            hint[top] = i
        hint[65536] = len(keys)
        self._v4_hint = hint
        self._v4_drift = 0

    def v4_find(self, address: int) -> int:
        """``bisect_left`` of ``address`` in the sorted exact IPv4 addresses."""
        hint = self._v4_hint
        if not hint:
            return bisect_left(self._v4_keys, address)
        top = address >> 16
        drift = self._v4_drift
        lo = hint[top] - drift
        hi = hint[top + 1] + drift
        n = len(self._v4_keys)
        return bisect_left(self._v4_keys, address, max(0, lo), min(n, hi))

    def _v4_mark_units(self, network: int, plen: int) -> None:
        units = self._v4_units
        if units is None:
            units = self._v4_units = bytearray(1 << (32 - V4_UNIT_SHIFT))
        first = network >> V4_UNIT_SHIFT
        last = (network | ((1 << (32 - plen)) - 1)) >> V4_UNIT_SHIFT
        units[first:last + 1] = b"\x01" * (last - first + 1)

    def _v6_insert(self, value: int, packed: int) -> None:
        if value not in self._v6:
            insort(self._v6_keys, value)
        self._v6[value] = packed

    def _domain_insert(self, name: bytes, packed: int) -> None:
        if name not in self._domains:
            self._suffix_update(name, 1)
        self._domains[name] = packed

    def _suffix_update(self, name: bytes, delta: int) -> None:
        pos = name.find(b".")
        while pos >= 0:
            suffix = name[pos + 1:]
            count = self._suffixes.get(suffix, 0) + delta
            if count > 0:
                self._suffixes[suffix] = count
            else:
                self._suffixes.pop(suffix, None)
            pos = name.find(b".", pos + 1)

    def bulk_load(self, entries: Iterable[tuple[str, KeyKind, str, float]]) -> None:
        """Replace the whole index (start-up or a full reload); test points stay.

        Same as :meth:`begin_load`, :meth:`load_batch`, :meth:`finish_load`.
        """
        self.begin_load()
        self.load_batch(entries)
        self.finish_load()

    def begin_load(self) -> None:
        """Empty the index and start a bulk load (exact IPv4 addresses are sorted once at the end)."""
        self._v4_nets = _Networks(32)
        self._v4_units = None
        self._v6 = {}
        self._v6_keys = []
        self._v6_nets = _Networks(128)
        self._domains = {}
        self._suffixes = {}
        self._v4_keys = array("I")
        self._v4_vals = array("Q")
        self._v4_hint = array("I")
        self._v4_drift = 0
        self._pending_keys = array("I")
        self._pending_vals = array("Q")

    def load_batch(self, entries: Iterable[tuple[str, KeyKind, str, float]]) -> int:
        """Add entries during a bulk load; entries that do not parse are skipped.

        :returns: how many were skipped.
        """
        pk, pv = self._pending_keys, self._pending_vals
        skipped = 0
        for key, kind, reason, expires_at in entries:
            try:
                if kind == "ip" and ":" not in key:
                    pk.append(_v4_int(key))
                    pv.append(_expires_ms(expires_at) << 8 | self.reason_index(reason, kind))
                else:
                    self.put(key, kind, reason, expires_at)
            except (ValueError, OSError, UnicodeError, OverflowError, TypeError):
                skipped += 1
        return skipped

    def finish_load(self) -> None:
        """Sort the exact IPv4 addresses of a bulk load into the index; duplicates keep the last."""
        pk, pv = self._pending_keys, self._pending_vals
        order = sorted(range(len(pk)), key=pk.__getitem__)
        keys = array("I")
        vals = array("Q")
        prev = -1
        for i in order:
            k = pk[i]
            if k == prev:
                vals[-1] = pv[i]
            else:
                keys.append(k)
                vals.append(pv[i])
                prev = k
        del order
        self._pending_keys = array("I")
        self._pending_vals = array("Q")
        self._v4_keys, self._v4_vals = keys, vals
        self._put_test_points()
        self._v4_build_hint()

    # -- lookups ---------------------------------------------------------------------------

    def lookup_v4(self, address: int, now_ms: int) -> tuple[int, str | int] | None:
        """(reason index, listing key) for an IPv4 address, or None when not listed.

        The key is the address as an int for an exact listing, the CIDR text otherwise.
        """
        if address == _V4_TEST_UNLISTED:
            return None
        keys = self._v4_keys
        i = self.v4_find(address)
        if i < len(keys) and keys[i] == address:
            packed = self._v4_vals[i]
            if packed >> 8 > now_ms:
                return packed & 0xFF, address
        if self._v4_nets.lens:
            hit = self._v4_nets.match(address, now_ms)
            if hit is not None:
                return hit[0] & 0xFF, hit[1]
        return None

    def lookup_v6(self, address: int, now_ms: int) -> tuple[int, str] | None:
        """(reason index, listing key) for an IPv6 address, or None when not listed."""
        if address == _V6_TEST_UNLISTED:
            return None
        packed = self._v6.get(address)
        if packed is not None and packed >> 8 > now_ms:
            return packed & 0xFF, _v6_text(address)
        if self._v6_nets.lens:
            hit = self._v6_nets.match(address, now_ms)
            if hit is not None:
                return hit[0] & 0xFF, hit[1]
        return None

    def lookup_domain(self, name: bytes, now_ms: int) -> tuple[int, str] | None:
        """(reason index, listed domain) for a lower-case name: itself or its longest listed suffix."""
        if name == _DOMAIN_TEST_UNLISTED:
            return None
        domains = self._domains
        pos = -1
        while True:
            suffix = name[pos + 1:] if pos >= 0 else name
            packed = domains.get(suffix)
            if packed is not None and packed >> 8 > now_ms:
                return packed & 0xFF, suffix.decode("ascii", "replace")
            pos = name.find(b".", pos + 1)
            if pos < 0:
                return None

    def v4_prefix_exists(self, prefix: int, octets: int) -> bool:
        """True when some listing lies under the first ``octets`` (1-3) octets ``prefix``."""
        shift = 32 - 8 * octets
        lo = prefix << shift
        hi = lo | ((1 << shift) - 1)
        keys = self._v4_keys
        i = bisect_left(keys, lo)
        if i < len(keys) and keys[i] <= hi:
            return True
        return self._v4_nets.intersects(lo, hi, 8 * octets)

    def v6_prefix_exists(self, prefix: int, nibbles: int) -> bool:
        """True when some listing lies under the first ``nibbles`` (1-31) nibbles ``prefix``."""
        shift = 128 - 4 * nibbles
        lo = prefix << shift
        hi = lo | ((1 << shift) - 1)
        i = bisect_left(self._v6_keys, lo)
        if i < len(self._v6_keys) and self._v6_keys[i] <= hi:
            return True
        return self._v6_nets.intersects(lo, hi, 4 * nibbles)

    def domain_has_children(self, name: bytes) -> bool:
        """True when some listed domain lies strictly under ``name`` (an empty non-terminal)."""
        return name in self._suffixes

    # -- iteration -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of listings, test points included."""
        return (len(self._v4_keys) + len(self._v4_nets) + len(self._v6) + len(self._v6_nets)
                + len(self._domains))

    def entries(self, now_ms: int) -> Iterator[IndexEntry]:
        """Every active listing, test points included (for exports and zone transfers)."""
        reasons = self._reasons
        for value, packed in zip(self._v4_keys, self._v4_vals):
            if packed >> 8 > now_ms:
                yield IndexEntry(_v4_text(value), "ip", reasons[packed & 0xFF], packed >> 8)
        for nets in (self._v4_nets, self._v6_nets):
            for _network, _plen, packed, key in nets.items():
                if packed >> 8 > now_ms:
                    yield IndexEntry(key, "cidr", reasons[packed & 0xFF], packed >> 8)
        for value, packed in self._v6.items():
            if packed >> 8 > now_ms:
                yield IndexEntry(_v6_text(value), "ip", reasons[packed & 0xFF], packed >> 8)
        for name, packed in self._domains.items():
            if packed >> 8 > now_ms:
                yield IndexEntry(name.decode("ascii", "replace"), "domain",
                                 reasons[packed & 0xFF], packed >> 8)


def v4_key_text(key: str | int) -> str:
    """The listing key of a :meth:`DnsblZone.lookup_v4` result as text."""
    return _v4_text(key) if isinstance(key, int) else key

