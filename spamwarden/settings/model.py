"""Per-recipient thresholds and sender allow/deny lists: pure functions and values.

**Recipient settings.**  A *target* is a recipient address (``alice@example.org``)
or a recipient domain (``example.org``, which also covers its subdomains).  Each
target may override any of ``[policy]``'s ``tag_threshold``,
``quarantine_threshold`` and ``reject_threshold`` (:class:`Overrides`).  The
thresholds for one recipient (:meth:`SettingsSnapshot.thresholds`) start from
``[policy]``, then apply, from the most general to the most specific, every
matching parent domain, the domain, the address without its extension
(``alice+news@`` → ``alice@``), then the address itself: an address entry that
sets only ``tag_threshold`` keeps its domain's ``reject_threshold``.

**Allow and deny entries**, ``kind:value``:

========  ============================  ========================================
kind      allow matches when            deny matches when
========  ============================  ========================================
cidr      the client IP is inside       the client IP is inside
dkim      a *verified* DKIM ``d=`` is   a *verified* DKIM ``d=`` is the domain
          the domain or under it        or under it
domain    the From domain is the        the From domain or the MAIL FROM domain
          domain or under it **and**    is the domain or under it
          From is authenticated
address   the From address is it        the From or MAIL FROM address is it
          **and** From is authenticated
========  ============================  ========================================

"From is authenticated" means SPF passed for a MAIL FROM domain aligned with the
From domain, or a DKIM signature verified for an aligned ``d=`` (relaxed
alignment, RFC 7489 §3.1) - DMARC's own test, whether or not the domain
publishes a DMARC record.  So a forged From of an allow-listed partner is
scored like any other mail, while a deny entry applies to any match: forging a
denied name gains nothing.

Every input is bounded and normalised here (:func:`parse_entry`,
:func:`parse_target`, :func:`parse_overrides`); bad input raises
:class:`SettingsError` with a sentence saying what was expected.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SpamwardenError
from ..i18n import Message
from ..mail import canonical_address, fold_extension, normalize_domain

__all__ = [
    "KINDS",
    "LISTS",
    "MAX_ADDRESS",
    "MAX_NOTE",
    "THRESHOLD_LIMIT",
    "THRESHOLDS",
    "Identity",
    "Overrides",
    "SettingsError",
    "SettingsSnapshot",
    "Thresholds",
    "entry_text",
    "parse_entry",
    "parse_overrides",
    "parse_target",
]

Kind = Literal["address", "domain", "dkim", "cidr"]
#: the kinds of allow/deny entries
KINDS: tuple[Kind, ...] = ("address", "domain", "dkim", "cidr")
#: the two lists
LISTS: tuple[str, ...] = ("allow", "deny")
#: the longest address accepted (RFC 5321 §4.5.3.1.3: a path is 256 octets with its <>)
MAX_ADDRESS = 254
_MAX_LOCAL = 64  # RFC 5321 §4.5.3.1.1
#: the longest note kept with an entry
MAX_NOTE = 200
#: the overridable ``[policy]`` settings
THRESHOLDS: tuple[str, ...] = ("tag_threshold", "quarantine_threshold", "reject_threshold")
#: thresholds must lie within ±this
THRESHOLD_LIMIT = 1000.0
_MAX_LABELS = 127


class SettingsError(SpamwardenError):
    """A setting, target or allow/deny entry is not valid."""


# -- parsing and normalising -----------------------------------------------------------------


def _domain(text: str, what: Message) -> str:
    if len(text) > 253 * 4:
        raise SettingsError(Message("settings.domain_too_long", {"what": what}))
    norm = normalize_domain(text)
    if norm is None:
        raise SettingsError(Message("settings.not_domain", {"what": what,
                                                            "value": repr(text[:80])}))
    return norm


def _address(text: str) -> str:
    if len(text) > MAX_ADDRESS:
        raise SettingsError(Message("settings.address_too_long", {"limit": MAX_ADDRESS}))
    local, sep, dom = text.rpartition("@")
    if not sep or not local or any(c.isspace() or c in "<>,;" for c in local):
        raise SettingsError(Message("settings.not_address", {"value": repr(text[:80])}))
    if len(local) > _MAX_LOCAL:
        raise SettingsError(Message("settings.local_too_long",
                                    {"value": repr(text[:80]), "limit": _MAX_LOCAL}))
    return f"{local.lower()}@{_domain(dom, Message('settings.what.address_domain'))}"


def parse_target(text: str) -> str:
    """A recipient address or domain, normalised (lower case, IDNA A-labels).

    :param text: ``alice@example.org``, ``example.org`` or ``bücher.example``.
    :returns: the normalised target.
    :raises SettingsError: neither a mail address nor a domain name, or too long.
    """
    if not isinstance(text, str):
        raise SettingsError(Message("settings.target_not_string"))
    t = text.strip().strip("<>").strip()
    if not t:
        raise SettingsError(Message("settings.target_required"))
    return _address(t) if "@" in t else _domain(t, Message("settings.what.target"))


def parse_entry(text: str) -> tuple[Kind, str]:
    """An allow/deny entry: ``kind:value``, or a bare value whose kind is guessed.

    A bare value with ``@`` is an ``address``; one with ``/`` or ``:``, or only
    digits and dots, is a ``cidr``; anything else a ``domain``; ``dkim:`` must be
    written out.

    :param text: e.g. ``dkim:partner.example``, ``192.0.2.0/24``, ``cidr:2001:db8::/32``,
        ``news@shop.example``, ``domain:shop.example``.
    :returns: ``(kind, normalised value)``; a network keeps only its network bits
        (``192.0.2.7/24`` → ``192.0.2.0/24``), an address is ``/32`` or ``/128``.
    :raises SettingsError: unknown kind, or a value that is not of its kind.
    """
    if not isinstance(text, str):
        raise SettingsError(Message("settings.entry_not_string"))
    t = text.strip()
    if not t:
        raise SettingsError(Message("settings.entry_required"))
    if len(t) > MAX_ADDRESS + 10:
        raise SettingsError(Message("settings.entry_too_long", {"limit": MAX_ADDRESS}))
    kind: str = ""
    value = t
    head, sep, rest = t.partition(":")
    if sep and head.lower() in KINDS:
        kind, value = head.lower(), rest.strip()
    elif sep and head.isalpha() and "." not in head and "@" not in t and not _is_ip(t):
        raise SettingsError(Message("settings.entry_kind",
                                    {"kind": repr(head), "kinds": ", ".join(KINDS)}))
    if not kind:
        # something shaped like an address or network is one, so a typo in it is
        # reported as a bad network rather than as a bad domain
        kind = ("address" if "@" in value else
                "cidr" if "/" in value or ":" in value or _is_ip(value)
                or value.replace(".", "").isdigit() else "domain")
    if kind == "cidr":
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise SettingsError(Message("settings.not_network",
                                        {"value": repr(value[:80])})) from exc
        return "cidr", str(net)
    if kind == "address":
        return "address", _address(value.strip("<>"))
    return ("dkim" if kind == "dkim" else "domain"), _domain(
        value, Message("settings.what.entry", {"kind": kind}))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def entry_text(kind: str, value: str) -> str:
    """The canonical ``kind:value`` form of an entry (the Redis field, what is shown)."""
    return f"{kind}:{value}"


# -- recipient settings ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overrides:
    """What one target changes; ``None`` keeps what applies above it."""

    tag_threshold: float | None = None
    quarantine_threshold: float | None = None
    reject_threshold: float | None = None

    def to_json(self) -> dict[str, float]:
        """The settings that are set, by name."""
        return {k: v for k in THRESHOLDS if (v := getattr(self, k)) is not None}

    @property
    def empty(self) -> bool:
        """Nothing is overridden."""
        return not self.to_json()


def parse_overrides(values: Mapping[str, Any]) -> Overrides:
    """:class:`Overrides` from a mapping (a JSON body, the CLI's options, Redis).

    :param values: any of :data:`THRESHOLDS` → a number, or ``None`` to leave unset.
    :raises SettingsError: an unknown name, not a number, not finite, beyond
        ±:data:`THRESHOLD_LIMIT`, or nothing set at all.
    """
    if not isinstance(values, Mapping):
        raise SettingsError(Message("settings.not_object"))
    unknown = sorted(str(k) for k in values if k not in THRESHOLDS)
    if unknown:
        raise SettingsError(Message("settings.unknown", {"name": repr(unknown[0][:40]),
                                                          "names": ", ".join(THRESHOLDS)}))
    out: dict[str, float] = {}
    for name in THRESHOLDS:
        v = values.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SettingsError(Message("settings.not_number", {"name": name}))
        f = float(v)
        if not math.isfinite(f) or abs(f) > THRESHOLD_LIMIT:
            raise SettingsError(Message("settings.range",
                                        {"name": name, "limit": f"{THRESHOLD_LIMIT:g}"}))
        out[name] = f
    if not out:
        raise SettingsError(Message("settings.none_set", {"names": ", ".join(THRESHOLDS)}))
    return Overrides(**out)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds in effect for one recipient.

    :ivar sources: the targets that contributed, most general first (``()``:
        ``[policy]`` alone); not part of equality, so two recipients with the same
        thresholds share a transaction whatever entries gave them.
    """

    tag_threshold: float
    quarantine_threshold: float
    reject_threshold: float
    sources: tuple[str, ...] = field(default=(), compare=False)

    def apply(self, over: Overrides, source: str) -> Thresholds:
        """These thresholds with ``over`` on top."""
        return Thresholds(
            over.tag_threshold if over.tag_threshold is not None else self.tag_threshold,
            (over.quarantine_threshold if over.quarantine_threshold is not None
             else self.quarantine_threshold),
            over.reject_threshold if over.reject_threshold is not None else self.reject_threshold,
            (*self.sources, source),
        )

    def ordered(self) -> bool:
        """``tag <= quarantine <= reject``, as ``[policy]`` requires."""
        return self.tag_threshold <= self.quarantine_threshold <= self.reject_threshold

    def to_json(self) -> dict[str, Any]:
        """The three thresholds and their sources."""
        return {"tag_threshold": self.tag_threshold,
                "quarantine_threshold": self.quarantine_threshold,
                "reject_threshold": self.reject_threshold, "sources": list(self.sources)}


# -- allow / deny ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """What a message says about its sender, as the lists need it.

    :ivar client_ip: the SMTP client's address, or ``None``.
    :ivar mail_from: the MAIL FROM address, lower case ("" for ``<>``).
    :ivar from_address: the From address, lower case ("" when none).
    :ivar from_domain: the From domain, normalised ("" when none).
    :ivar from_authenticated: SPF or DKIM passed aligned with the From domain.
    :ivar dkim_domains: the ``d=`` of every signature that verified.
    """

    client_ip: str | None = None
    mail_from: str = ""
    from_address: str = ""
    from_domain: str = ""
    from_authenticated: bool = False
    dkim_domains: tuple[str, ...] = ()


class _List:
    """One list's entries, indexed for per-message matching in O(labels + prefix lengths)."""

    __slots__ = ("addresses", "domains", "dkim", "nets", "entries")

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self.entries: dict[str, None] = {}
        self.addresses: set[str] = set()
        self.domains: set[str] = set()
        self.dkim: set[str] = set()
        # (version, prefix length) → network addresses as integers
        self.nets: dict[tuple[int, int], set[int]] = {}
        for kind, value in entries:
            self.entries[entry_text(kind, value)] = None
            if kind == "address":
                self.addresses.add(value)
            elif kind == "domain":
                self.domains.add(value)
            elif kind == "dkim":
                self.dkim.add(value)
            elif kind == "cidr":
                net = ipaddress.ip_network(value, strict=False)
                self.nets.setdefault((net.version, net.prefixlen), set()).add(
                    int(net.network_address))

    def ip(self, client_ip: str | None) -> str:
        """The ``cidr:`` entry holding ``client_ip``, or ""."""
        if not client_ip or not self.nets:
            return ""
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return ""
        bits = 32 if ip.version == 4 else 128
        n = int(ip)
        for (version, plen), nets in self.nets.items():
            if version != ip.version:
                continue
            base = n >> (bits - plen) << (bits - plen) if plen else 0
            if base in nets:
                return entry_text("cidr", _net(base, plen, version))
        return ""

    def proven(self, who: Identity) -> str:
        """The entry matching what the message proves whoever sent it, allow and deny
        alike: the client network, then a verified DKIM ``d=``; or ""."""
        hit = self.ip(who.client_ip)
        if hit:
            return hit
        for d in who.dkim_domains:
            hit = self.under(d, self.dkim)
            if hit:
                return entry_text("dkim", hit)
        return ""

    @staticmethod
    def under(name: str, domains: set[str]) -> str:
        """The entry of ``domains`` that is ``name`` or a parent of it, or ""."""
        if not name or not domains:
            return ""
        labels = name.split(".")[-_MAX_LABELS:]
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            if candidate in domains:
                return candidate
        return ""


def _net(base: int, plen: int, version: int) -> str:
    addr = ipaddress.IPv4Address(base) if version == 4 else ipaddress.IPv6Address(base)
    return f"{addr}/{plen}"


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] if "@" in address else ""


class SettingsSnapshot:
    """Every recipient setting and list entry at one moment; immutable, shared by threads.

    :param policies: target → :class:`Overrides` (targets as :func:`parse_target` gives).
    :param allow: / ``deny``: ``(kind, value)`` pairs as :func:`parse_entry` gives.
    :param version: the store's change counter this snapshot was read at (0: none).
    """

    def __init__(self, policies: Mapping[str, Overrides] | None = None,
                 allow: Iterable[tuple[str, str]] = (), deny: Iterable[tuple[str, str]] = (),
                 *, version: int = 0) -> None:
        self.policies: Mapping[str, Overrides] = dict(policies or {})
        self.version = version
        self._allow = _List(allow)
        self._deny = _List(deny)

    @property
    def empty(self) -> bool:
        """No settings and no entries: nothing to do per message."""
        return not (self.policies or self._allow.entries or self._deny.entries)

    def entries(self, which: str) -> tuple[str, ...]:
        """The ``kind:value`` entries of the ``allow`` or ``deny`` list."""
        return tuple((self._allow if which == "allow" else self._deny).entries)

    @classmethod
    def from_raw(cls, policies: Mapping[str, str], allow: Iterable[str], deny: Iterable[str],
                 *, version: int = 0, static_allow: Iterable[str] = (),
                 static_deny: Iterable[str] = ()) -> tuple[SettingsSnapshot, int]:
        """A snapshot from stored text: targets → JSON overrides, entries ``kind:value``.

        :returns: the snapshot and how many stored items were skipped as invalid
            (written by hand or by another version; never fatal).
        """
        bad = 0
        pol: dict[str, Overrides] = {}
        for target, raw in policies.items():
            try:
                pol[parse_target(target)] = parse_overrides(json.loads(raw))
            except (SettingsError, ValueError, TypeError):
                bad += 1
        lists: list[list[tuple[str, str]]] = [[], []]
        for i, items in enumerate(((*static_allow, *allow), (*static_deny, *deny))):
            for item in items:
                try:
                    lists[i].append(parse_entry(item))
                except SettingsError:
                    bad += 1
        return cls(pol, lists[0], lists[1], version=version), bad

    # -- recipients --------------------------------------------------------------------------

    def thresholds(self, rcpt: str, base: Thresholds, *, delimiters: str) -> Thresholds:
        """The thresholds for recipient ``rcpt`` (see the module documentation).

        :param rcpt: the RCPT TO address, with or without ``<>``; a bare domain gives
            what every address there gets unless it has settings of its own.
        :param base: ``[policy]``'s thresholds.
        :param delimiters: address-extension delimiters (``intake.recipient_delimiter``).
        :returns: ``base`` when no target matches.
        """
        if not self.policies:
            return base
        # one spelling per mailbox (<ceo@x.>, "ceo"@x, ceo%x@relay are ceo@x): a sender
        # must not pick the thresholds by how it writes the address
        address = canonical_address(rcpt[: MAX_ADDRESS * 2])[:MAX_ADDRESS]
        local, _, dom = address.rpartition("@")
        result = base
        if dom:
            labels = dom.rstrip(".").split(".")[-_MAX_LABELS:]
            for i in range(len(labels) - 1):  # most general first, one label left out
                candidate = ".".join(labels[len(labels) - 2 - i:])
                over = self.policies.get(candidate)
                if over is not None:
                    result = result.apply(over, candidate)
        if local:
            bare = fold_extension(local, delimiters)
            names = (f"{bare}@{dom}", address) if bare != local else (address,)
            for name in names:
                over = self.policies.get(name)
                if over is not None:
                    result = result.apply(over, name)
        return result

    # -- senders -----------------------------------------------------------------------------

    def allowed(self, who: Identity) -> str:
        """The first allow entry ``who`` matches (``kind:value``), or ""."""
        lst = self._allow
        if not lst.entries:
            return ""
        hit = lst.proven(who)
        if hit:
            return hit
        if who.from_authenticated:
            if who.from_address in lst.addresses:
                return entry_text("address", who.from_address)
            hit = lst.under(who.from_domain, lst.domains)
            if hit:
                return entry_text("domain", hit)
        return ""

    def denied(self, who: Identity) -> str:
        """The first deny entry ``who`` matches (``kind:value``), or ""; authenticated
        or not."""
        lst = self._deny
        if not lst.entries:
            return ""
        hit = lst.proven(who)
        if hit:
            return hit
        for addr in (who.from_address, who.mail_from):
            if addr and addr in lst.addresses:
                return entry_text("address", addr)
        for dom in (who.from_domain, _domain_of(who.mail_from)):
            hit = lst.under(dom, lst.domains)
            if hit:
                return entry_text("domain", hit)
        return ""
