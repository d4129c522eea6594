"""A site's welcome and block lists: SpamAssassin 4.0's WLBLEval and WelcomeListSubject.

The list lines of a ``local.cf`` (``Mail::SpamAssassin::Conf`` and the
WelcomeListSubject plugin: ``welcomelist_from``, ``blocklist_to``,
``welcomelist_from_rcvd``, ``blocklist_subject``, ``welcomelist_uri_host`` and the rest,
old ``whitelist``/``blacklist`` names included) are read into :class:`WlblLists`;
the evals of ``60_welcomelist.cf`` and ``60_welcomelist_subject.cf``
(USER_IN_WELCOMELIST, USER_IN_BLOCKLIST_TO, SUBJECT_IN_BLOCKLIST, URI_HOST_IN_WELCOMELIST,
...) read them as ``Plugin/WLBLEval.pm`` and ``Plugin/WelcomeListSubject.pm`` do.

An address entry is a glob over the whole address, case-insensitive (ASCII), and a
Subject entry the same kind of glob found anywhere in the Subject (``_globs``: how they
are matched, without backtracking); only the list entries are patterns, the message's
addresses and Subject are text.  The text compared is bounded (:data:`MAX_TEXT`,
:data:`MAX_ADDRESSES`, :data:`MAX_SUBJECT`).  ``welcomelist_bounce_relays`` is read here
and used by VBounce (``_vbounce``).

``*_from_rcvd`` entries also need the relay that handed the message to the site's
trusted relays (the first untrusted relay; with none, any trusted one) to have the
reverse DNS name (the domain or a host under it) or the address the entry names, as
``_check_welcomelist_rcvd`` does: the Received lines below that relay are written by
the sender and are never read.

Deliberate difference: an empty ``welcomelist_subject``/``blocklist_subject`` line,
which SpamAssassin keeps as an empty pattern matching every Subject, adds nothing here
and is reported by ``spamwarden rules --lint``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ._globs import GlobSet, address_glob, ascii_lower, glob_match
from ._uris import uri_host

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["MAX_ADDRESSES", "MAX_ENTRIES", "MAX_SUBJECT", "MAX_TEXT", "WLBL_EVALS", "WlblLists",
           "all_from_addrs", "all_to_addrs", "wlbl_directive"]


class ListData(Protocol):
    """What the list evals read of the rule set (``_evalbase.EvalData`` has it, among more):
    the lists of this module, ``enlist_addrlist``'s lists and ``enlist_uri_host``'s."""

    wlbl: WlblLists
    addrlists: dict[str, list[str]]
    uri_hosts: dict[str, list[str]]


#: entries kept per list (a larger list is cut, with a lint note)
MAX_ENTRIES = 100_000
#: addresses of a message compared (the first ones of all_from_addrs / all_to_addrs)
MAX_ADDRESSES = 256
#: characters of an address compared: a longer one (no valid address is) is not
MAX_TEXT = 4096
#: characters of the Subject searched (the rest is not)
MAX_SUBJECT = 65_536


def _octets(text: str) -> str:
    """A message's text as the rule files are read (one character per octet, Latin-1):
    SpamAssassin compares the message's UTF-8 octets with the octets of the line."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode(
        "latin-1")


# -- the settings -----------------------------------------------------------------------------

#: address lists (Conf.pm's CONF_TYPE_ADDRLIST), old names included
_ADDR_SETTINGS = {
    "welcomelist_from": "welcomelist_from", "whitelist_from": "welcomelist_from",
    "blocklist_from": "blocklist_from", "blacklist_from": "blocklist_from",
    "welcomelist_to": "welcomelist_to", "whitelist_to": "welcomelist_to",
    "more_spam_to": "more_spam_to", "all_spam_to": "all_spam_to",
    "blocklist_to": "blocklist_to", "blacklist_to": "blocklist_to",
    "welcomelist_allows_relays": "welcomelist_allows_relays",
    "whitelist_allows_relays": "welcomelist_allows_relays",
    "welcomelist_bounce_relays": "welcomelist_bounce_relays",
    "whitelist_bounce_relays": "welcomelist_bounce_relays",
}
_REMOVE_SETTINGS = {
    "unwelcomelist_from": "welcomelist_from", "unwhitelist_from": "welcomelist_from",
    "unblocklist_from": "blocklist_from", "unblacklist_from": "blocklist_from",
}
_RCVD_SETTINGS = {
    "welcomelist_from_rcvd": "welcomelist_from_rcvd",
    "whitelist_from_rcvd": "welcomelist_from_rcvd",
    "def_welcomelist_from_rcvd": "def_welcomelist_from_rcvd",
    "def_whitelist_from_rcvd": "def_welcomelist_from_rcvd",
}
_RCVD_REMOVE = frozenset({"unwelcomelist_from_rcvd", "unwhitelist_from_rcvd"})
_SUBJECT_SETTINGS = {
    "welcomelist_subject": "welcomelist_subject", "whitelist_subject": "welcomelist_subject",
    "blocklist_subject": "blocklist_subject", "blacklist_subject": "blocklist_subject",
}
_URI_SETTINGS = {
    "welcomelist_uri_host": "WELCOME", "whitelist_uri_host": "WELCOME",
    "blocklist_uri_host": "BLOCK", "blacklist_uri_host": "BLOCK",
}
_DIRECTIVES = frozenset({*_ADDR_SETTINGS, *_REMOVE_SETTINGS, *_RCVD_SETTINGS, *_RCVD_REMOVE,
                         *_SUBJECT_SETTINGS, *_URI_SETTINGS, "delist_uri_host",
                         "enlist_addrlist"})
_ENLIST = re.compile(r"^\(\s*(\S+?)\s*\)\s+(.+)$", re.DOTALL)
_BRACKETED = re.compile(r"^\[(.*)\](/\d{1,3})?\Z", re.DOTALL)


@dataclass
class WlblLists:
    """The list lines read, as Conf.pm keeps them.

    :ivar addr: address list name -> its entries, lower case, in the order added.
    :ivar rcvd: ``welcomelist_from_rcvd`` / ``def_welcomelist_from_rcvd`` -> address
        entry -> the relay names and ``[IP]`` entries it was listed with.
    :ivar subject: ``welcomelist_subject`` / ``blocklist_subject`` -> entries.
    """

    addr: dict[str, dict[str, None]] = field(default_factory=dict)
    rcvd: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    subject: dict[str, dict[str, None]] = field(default_factory=dict)
    _matchers: dict[str, GlobSet] = field(default_factory=dict, repr=False, compare=False)

    def matcher(self, name: str) -> GlobSet | None:
        """The entries of address, ``*_from_rcvd`` or Subject list ``name`` ready to
        match, ``None`` when the list is empty (built on first use: the lists do not
        change once the rule files are read)."""
        found = self._matchers.get(name)
        if found is None:
            entries: Iterable[str] | None = (self.addr.get(name) or self.subject.get(name)
                                             or self.rcvd.get(name))
            if not entries:
                return None
            found = self._matchers[name] = GlobSet(entries, anywhere=name in self.subject)
        return found


def wlbl_directive(lists: WlblLists, uri_hosts: dict[str, list[str]], key: str, rest: str,
                   origin: str, notes: list[tuple[str, str]]) -> bool:
    """Read one list line into ``lists`` (and ``uri_hosts`` for the URI host lists).

    :param lists: the lists read so far.
    :param uri_hosts: ``enlist_uri_host``'s lists (``WELCOME`` and ``BLOCK`` are
        ``welcomelist_uri_host``'s and ``blocklist_uri_host``'s, as in Conf.pm).
    :param key: the directive, lower case; ``rest`` the rest of the line.
    :param origin: ``file:line`` for the notes.
    :param notes: where a line that is not understood is reported (``rules --lint``).
    :returns: whether the line was a list line (read, or reported as malformed).
    """
    if key not in _DIRECTIVES:
        return False
    words = rest.split()

    def note(text: str) -> None:
        notes.append((origin, f"{key}: {text}"))

    if key == "enlist_addrlist":
        # enlisting to a list named like a setting is that setting (Conf.pm)
        m = _ENLIST.match(rest.strip())
        if m is None or m.group(1) not in _ADDR_SETTINGS.values():
            return False
        key, words = m.group(1), m.group(2).split()
    if key in _ADDR_SETTINGS:
        if not words:
            note("expected one or more addresses")
            return True
        entries = lists.addr.setdefault(_ADDR_SETTINGS[key], {})
        for word in words:
            if len(entries) >= MAX_ENTRIES:
                note(f"more than {MAX_ENTRIES} entries: the rest is ignored")
                break
            entries[ascii_lower(word)] = None
        return True
    if key in _REMOVE_SETTINGS:
        if not words:
            note("expected one or more addresses")
            return True
        entries = lists.addr.get(_REMOVE_SETTINGS[key], {})
        for word in words:
            entries.pop(ascii_lower(word), None)
        return True
    if key in _RCVD_SETTINGS:
        if len(words) != 2:
            note("expected an address and a relay's host or domain name or [IP address], "
                 f"got {len(words)} value(s): the line is ignored")
            return True
        addr, domain = ascii_lower(words[0]), ascii_lower(words[1])
        m = _BRACKETED.match(domain)
        if m is not None and not _valid_ip_entry(m.group(1) + (m.group(2) or "")):
            note(f"{words[1]} is not an IP address or network: it matches no relay")
        listed = lists.rcvd.setdefault(_RCVD_SETTINGS[key], {})
        if len(listed) < MAX_ENTRIES:
            listed.setdefault(addr, []).append(domain)
        return True
    if key in _RCVD_REMOVE:
        if not words:
            note("expected one or more addresses")
            return True
        for name in ("welcomelist_from_rcvd", "def_welcomelist_from_rcvd"):
            for word in words:
                lists.rcvd.get(name, {}).pop(ascii_lower(word), None)
        return True
    if key in _SUBJECT_SETTINGS:
        value = ascii_lower(rest.strip())
        if not value:
            # SpamAssassin keeps an empty pattern, which matches every Subject
            note("expected a text to find in the Subject: the line is ignored (SpamAssassin"
                 " would match every Subject)")
            return True
        entries = lists.subject.setdefault(_SUBJECT_SETTINGS[key], {})
        if len(entries) < MAX_ENTRIES:
            entries[value] = None
        return True
    if key in _URI_SETTINGS:
        if not words:
            note("expected one or more host or domain names")
            return True
        hosts = uri_hosts.setdefault(_URI_SETTINGS[key], [])
        hosts.extend(ascii_lower(w) for w in words[:MAX_ENTRIES - len(hosts)])
        return True
    if key == "delist_uri_host":
        m = re.match(r"^(?:\(\s*(\S+?)\s*\)\s+)?(.+)$", rest.strip(), re.DOTALL)
        if m is None:
            note("expected host or domain names")
            return True
        gone = {w[1:] if w.startswith("!") else w for w in ascii_lower(m.group(2)).split()}
        for name in [m.group(1)] if m.group(1) else list(uri_hosts):
            if name in uri_hosts:
                uri_hosts[name] = [h for h in uri_hosts[name]
                                   if (h[1:] if h.startswith("!") else h) not in gone]
        return True
    return False


# -- the message's addresses ------------------------------------------------------------------


def _unfolded(value: str) -> str:
    if "\n" not in value:
        return value
    return re.sub(r"\r?\n", "", re.sub(r"\r?\n[ \t]", "\n ", value))


#: PreparedMessage.addresses keys of all_from_addrs and all_to_addrs (not header names)
_FROM_KEY, _TO_KEY = "\0all_from_addrs", "\0all_to_addrs"
_TO_HEADERS = ("To", "Apparently-To", "Delivered-To", "Envelope-Recipients",
               "Apparently-Resent-To", "X-Envelope-To", "Envelope-To", "X-Delivered-To",
               "X-Original-To", "X-Rcpt-To", "X-Real-To", "Cc")
_ADDRESS_FIELDS = frozenset(h.lower() for h in (
    *_TO_HEADERS, "Resent-To", "Resent-Cc", "Resent-From", "From", "Envelope-Sender",
    "Resent-Sender", "X-Envelope-From", "Received", "Reply-To"))


def _fields(msg: PreparedMessage) -> dict[str, list[str]]:
    """The raw values of the header fields the lists read, by lower-case name."""
    out: dict[str, list[str]] = {}
    for k, v in msg.headers:
        lname = k.lower()
        if lname in _ADDRESS_FIELDS:
            out.setdefault(lname, []).append(v)
    return out


def _header_addrs(fields: dict[str, list[str]], msg: PreparedMessage, name: str, *,
                  first: bool = False) -> list[str]:
    """``get('NAME:addr')`` in list context (``:first:addr`` with ``first``): the
    addresses of every header of that name (of the first), read from the raw value;
    a word without ``@`` is a display name, no address (Util.pm's
    ``parse_header_addresses``: ``Reply-To: undisclosed`` has none)."""
    values = fields.get(name.lower(), [])
    if first:
        values = values[:1]
    out: list[str] = []
    for v in values:
        out.extend(a for _, a in msg.address_pairs(_unfolded(v)) if "@" in a)
        if len(out) >= MAX_ADDRESSES:
            break
    return out


def all_from_addrs(msg: PreparedMessage) -> list[str]:
    """PerMsgStatus's ``all_from_addrs``: the addresses of the first Resent-From
    field when it has any (a list resending), else those of From, Envelope-Sender,
    Resent-Sender and X-Envelope-From and the envelope sender, runs of dots made
    one, each once (at most :data:`MAX_ADDRESSES`; found once per message)."""
    found = msg.addresses.get(_FROM_KEY)
    if found is not None:
        return found
    fields = _fields(msg)
    found = _header_addrs(fields, msg, "Resent-From", first=True)
    if not found:
        found = [a for h in ("From", "Envelope-Sender", "Resent-Sender", "X-Envelope-From")
                 for a in _header_addrs(fields, msg, h)]
        env = msg.envelope_sender()
        if env:
            found.extend(a for _, a in msg.address_pairs(env) if a)
        found = [re.sub(r"\.+", ".", a) for a in found]
    found = msg.addresses[_FROM_KEY] = list(dict.fromkeys(found))[:MAX_ADDRESSES]
    return found


_RCVD_FOR = re.compile(r" for <?(\S+@(\S+?))>?;")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
def _fqdn_valid(host: str) -> bool:
    """Util.pm's ``is_fqdn_valid`` of an ASCII name: two labels or more, each a DNS
    label (``_`` only below the second level), 253 characters at most."""
    host = ascii_lower(host).rstrip(".")
    if len(host) > 253:
        return False
    labels = host.split(".")
    if len(labels) < 2:
        return False
    for i, label in enumerate(labels):
        if not 1 <= len(label) <= 63 or not _LABEL.match(label):
            return False
        if i >= len(labels) - 2 and "_" in label:
            return False
    return True


def all_to_addrs(msg: PreparedMessage) -> list[str]:
    """PerMsgStatus's ``all_to_addrs``: the addresses of the first Resent-To and
    Resent-Cc fields when there are any, else the ``for <address>`` of the top three
    Received fields (with a valid domain) and the addresses of To, Apparently-To,
    Delivered-To, ... X-Real-To and Cc, each once (at most :data:`MAX_ADDRESSES`)."""
    done = msg.addresses.get(_TO_KEY)
    if done is not None:
        return done
    fields = _fields(msg)
    found = _header_addrs(fields, msg, "Resent-To", first=True) + _header_addrs(
        fields, msg, "Resent-Cc", first=True)
    if not found:
        for line in fields.get("received", [])[:3]:
            m = _RCVD_FOR.search(_unfolded(line[:MAX_TEXT]))
            if m is not None and _fqdn_valid(m.group(2)):
                found.append(m.group(1))
        for name in _TO_HEADERS:
            found.extend(_header_addrs(fields, msg, name))
    found = msg.addresses[_TO_KEY] = list(dict.fromkeys(found))[:MAX_ADDRESSES]
    return found


def _listed(d: ListData, name: str, addrs: Sequence[str]) -> bool:
    """WLBLEval's ``_check_welcomelist`` of each address against list ``name``."""
    glob = d.wlbl.matcher(name)
    return glob is not None and any(
        glob.matches(ascii_lower(_octets(a))) for a in addrs if len(a) <= MAX_TEXT)


# -- the relays --------------------------------------------------------------------------------


def _relay_ip_entry(text: str) -> str | ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A ``[...]`` entry of a ``*_from_rcvd`` line as ``_check_welcomelist_rcvd``
    compares it: a dotted quad (compared as text), a classful prefix (``"10.1."``),
    or a network (a prefix length or IPv6); ``None`` when it is none of these."""
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text):
        return text
    if re.fullmatch(r"[\d.]+", text):
        return re.sub(r"\.*\Z", ".", text, count=1)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _valid_ip_entry(text: str) -> bool:
    """Whether a ``[...]`` entry can match a relay (a dotted quad of octets, a classful
    prefix, or a network)."""
    entry = _relay_ip_entry(text)
    if isinstance(entry, str) and not entry.endswith("."):
        try:
            ipaddress.IPv4Address(entry)
        except ValueError:
            return False
    return entry is not None


def _relay_matches(domain: str, ip: str, rdns: str) -> bool:
    """Whether one relay (its address and lower-case reverse DNS name, as the trusted
    relay below it recorded them) is the one a ``*_from_rcvd`` entry names."""
    m = _BRACKETED.match(domain)
    if m is None:
        return rdns == domain or rdns.endswith("." + domain)
    if not ip:
        return False
    entry = _relay_ip_entry(m.group(1) + (m.group(2) or ""))
    if entry is None:
        return False
    if isinstance(entry, str):
        if entry.endswith("."):
            return ip.startswith(entry)
        return ip == entry
    try:
        addr = ipaddress.ip_address(ip[5:] if ip.lower().startswith("ipv6:") else ip)
    except ValueError:
        return False
    return addr.version == entry.version and addr in entry


def _rcvd_listed(msg: PreparedMessage, d: ListData, name: str, addr: str) -> int:
    """WLBLEval's ``_check_welcomelist_rcvd``: 1 when an entry of list ``name`` matches
    the address and the relay, -1 when entries match the address only (a forgery,
    unless ``welcomelist_allows_relays`` lists the address), else 0."""
    listed = d.wlbl.rcvd.get(name)
    if not listed:
        return 0
    hops = msg.relay_info().match_hops
    if not hops:
        return 0
    addr = ascii_lower(_octets(addr))
    if len(addr) > MAX_TEXT:
        return 0
    glob = d.wlbl.matcher(name)
    if glob is None or not glob.matches(addr):  # (no entry holds the address)
        return 0
    forged = 0
    for entry, domains in listed.items():
        if not glob_match(address_glob(entry), addr):
            continue
        for domain in domains:
            if any(_relay_matches(domain, ip, rdns) for ip, rdns in hops):
                return 1
        forged = -1
    if forged:
        allows = d.wlbl.matcher("welcomelist_allows_relays")
        if allows is not None and allows.matches(addr):
            forged = 0
    return forged


def _from_welcomed(msg: PreparedMessage, d: ListData, *, default: bool) -> int:
    """``_check_from_in_welcomelist`` (``welcomelist_from`` or ``welcomelist_from_rcvd``)
    or ``_check_from_in_default_welcomelist`` (``def_welcomelist_from_rcvd``) over
    all_from_addrs: 1 listed, -1 listed for other relays only, 0 not listed."""
    key = "wlbl_default" if default else "wlbl_from"
    if key in msg.memo:
        return int(msg.memo[key])
    name = "def_welcomelist_from_rcvd" if default else "welcomelist_from_rcvd"
    result = 0
    if d.wlbl.rcvd.get(name) or (not default and d.wlbl.matcher("welcomelist_from")):
        for addr in all_from_addrs(msg):
            if not default and _listed(d, "welcomelist_from", [addr]):
                result = 1
                break
            found = _rcvd_listed(msg, d, name, addr)
            if found == 1:
                result = 1
                break
            if found == -1:
                result = -1
    msg.memo[key] = float(result)
    return result


# -- the evals ---------------------------------------------------------------------------------


def _from_in_welcomelist(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
    return _from_welcomed(msg, d, default=False) > 0


def _from_in_default_welcomelist(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
    return _from_welcomed(msg, d, default=True) > 0


def _forged_in_welcomelist(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
    return (_from_welcomed(msg, d, default=False) < 0
            and _from_welcomed(msg, d, default=True) == 0)


def _forged_in_default_welcomelist(msg: PreparedMessage, d: ListData,
                                   _a: Sequence[str]) -> bool:
    return (_from_welcomed(msg, d, default=True) < 0
            and _from_welcomed(msg, d, default=False) == 0)


def _from_list(name: str) -> Callable[[PreparedMessage, ListData, Sequence[str]], bool]:
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        return d.wlbl.matcher(name) is not None and _listed(d, name, all_from_addrs(msg))
    return check


def _to_list(name: str) -> Callable[[PreparedMessage, ListData, Sequence[str]], bool]:
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        return d.wlbl.matcher(name) is not None and _listed(d, name, all_to_addrs(msg))
    return check


@functools.lru_cache(maxsize=64)
def _enlisted(entries: tuple[str, ...]) -> GlobSet:
    """An ``enlist_addrlist`` list ready to match (kept for the lists seen last)."""
    return GlobSet(entries)


def _named_list(d: ListData, name: str) -> GlobSet | None:
    """The list ``check_*_in_list(NAME)`` reads (Conf.pm's ``$conf->{NAME}``): a list
    setting's own (``enlist_addrlist (blocklist_to) ...`` adds to ``blocklist_to``), else
    the ``enlist_addrlist`` list NAME; ``None`` when it has no entries."""
    if name in _ADDR_SETTINGS.values():
        return d.wlbl.matcher(name)
    entries = d.addrlists.get(name)
    return _enlisted(tuple(entries)) if entries else None


def _in_named_list(d: ListData, name: str, addrs: Sequence[str]) -> bool:
    """WLBLEval's ``_check_welcomelist`` of each address against list ``name``: the
    address (ASCII lower case) is an entry, or matches an entry's glob (Parser.pm's
    ``add_to_addrlist``: ``*`` and ``?`` the only wildcards, ``[...]`` and the rest
    themselves)."""
    glob = _named_list(d, name)
    return glob is not None and any(
        glob.matches(ascii_lower(_octets(x))) for x in addrs if len(x) <= MAX_TEXT)


def _to_in_list(msg: PreparedMessage, d: ListData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_to_in_list(LIST)``: an address of all_to_addrs is on LIST."""
    return _in_named_list(d, a[0], all_to_addrs(msg))


def _from_in_list(msg: PreparedMessage, d: ListData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_from_in_list(LIST)``: an address of all_from_addrs (every
    address of the first Resent-From field when it has any, else those of From,
    Envelope-Sender, Resent-Sender, X-Envelope-From and the envelope sender) is on LIST."""
    return _in_named_list(d, a[0], all_from_addrs(msg))


def _replyto_in_list(msg: PreparedMessage, d: ListData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_replyto_in_list(LIST)``: ``get('Reply-To:addr')`` in scalar
    context, the first address of the Reply-To fields, is on LIST."""
    first = _header_addrs(_fields(msg), msg, "Reply-To")[:1]
    return _in_named_list(d, a[0], first)


def _subject_list(name: str) -> Callable[[PreparedMessage, ListData, Sequence[str]], bool]:
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        glob = d.wlbl.matcher(name)
        if glob is None:
            return False
        subject = _subject(msg)[:MAX_SUBJECT]
        return subject != "" and glob.found_in(ascii_lower(_octets(subject)))
    return check


def _subject(msg: PreparedMessage) -> str:
    """``get('Subject')``: each Subject field unfolded, its white space kept (the
    engine's decoded header text makes runs of it one space, which SpamAssassin does not:
    ``cheap?pills`` is not in "cheap  pills"); a field with encoded-words decoded."""
    out: list[str] = []
    for k, v in msg.headers:
        if k.lower() == "subject":
            if "=?" in v:
                return msg.header_text("Subject") or ""
            out.append(_unfolded(v).strip(" \t") + "\n")
    return "".join(out)


_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+\Z")


def _query_keys(host: str) -> list[str]:
    """The names ``_check_uri_host_listed`` looks a URI host up by: an address literal
    or IPv4 address itself, else the name and each domain above it, the last 11."""
    m = re.match(r"^\[(.*)\]\Z", host, re.DOTALL)
    if m is not None:
        return [m.group(1)]
    if _IPV4.match(host):
        return [host]
    keys: list[str] = []
    h = host
    while True:
        if len(keys) > 10:
            keys.pop(0)
        keys.append(h)
        dot = h.find(".")
        if dot < 0:
            break
        h = h[dot + 1:]
    return keys


@functools.lru_cache(maxsize=64)
def _verdicts(entries: tuple[str, ...]) -> dict[str, bool]:
    """An ``enlist_uri_host`` list as Conf.pm's hash: host -> listed (``!host``: not);
    a later line for the same host wins."""
    return {e[1:] if e.startswith("!") else e: not e.startswith("!") for e in entries}


def _uri_host_list(name: str) -> Callable[[PreparedMessage, ListData, Sequence[str]], bool]:
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        entries = d.uri_hosts.get(name)
        if not entries:
            return False
        verdicts = _verdicts(tuple(entries))
        hosts: dict[str, None] = {}
        for u in msg.uris:
            if u[:7].lower() != b"mailto:":
                host = uri_host(u, tlds=msg.tlds)
                if host:
                    hosts[host] = None
        for host in hosts:
            for key in _query_keys(host):
                verdict = verdicts.get(key)
                if verdict is not None:
                    if verdict:
                        return True
                    break
        return False
    return check


def _none(a: Sequence[str]) -> bool:
    return len(a) == 0


def _one(a: Sequence[str]) -> bool:
    return len(a) == 1


_Fn = Callable[["PreparedMessage", ListData, Sequence[str]], bool]
_HEADER = frozenset({"header"})
_ANY = frozenset({"header", "body", "rawbody", "uri", "full"})
#: eval name -> (rule kinds, argument check, function); old names too (SpamAssassin
#: 4.0 registers both)
WLBL_EVALS: dict[str, tuple[frozenset[str], Callable[[Sequence[str]], bool], _Fn]] = {}
for _names, _kinds, _fn in [
    (("check_from_in_welcomelist", "check_from_in_whitelist"), _HEADER, _from_in_welcomelist),
    (("check_from_in_default_welcomelist", "check_from_in_default_whitelist"), _HEADER,
     _from_in_default_welcomelist),
    (("check_forged_in_welcomelist", "check_forged_in_whitelist"), _HEADER,
     _forged_in_welcomelist),
    (("check_forged_in_default_welcomelist", "check_forged_in_default_whitelist"), _HEADER,
     _forged_in_default_welcomelist),
    (("check_from_in_blocklist", "check_from_in_blacklist"), _HEADER,
     _from_list("blocklist_from")),
    (("check_to_in_welcomelist", "check_to_in_whitelist"), _HEADER, _to_list("welcomelist_to")),
    (("check_to_in_blocklist", "check_to_in_blacklist"), _HEADER, _to_list("blocklist_to")),
    (("check_to_in_more_spam",), _HEADER, _to_list("more_spam_to")),
    (("check_to_in_all_spam",), _HEADER, _to_list("all_spam_to")),
    (("check_subject_in_welcomelist", "check_subject_in_whitelist"), _HEADER,
     _subject_list("welcomelist_subject")),
    (("check_subject_in_blocklist", "check_subject_in_blacklist"), _HEADER,
     _subject_list("blocklist_subject")),
    (("check_to_in_list",), _HEADER, _to_in_list),
    (("check_from_in_list",), _HEADER, _from_in_list),
    (("check_replyto_in_list",), _HEADER, _replyto_in_list),
    # "type does not matter" (WLBLEval.pm): 60_welcomelist.cf has them as body rules
    (("check_uri_host_in_welcomelist", "check_uri_host_in_whitelist"), _ANY,
     _uri_host_list("WELCOME")),
    (("check_uri_host_in_blocklist", "check_uri_host_in_blacklist"), _ANY,
     _uri_host_list("BLOCK")),
]:
    for _name in _names:
        WLBL_EVALS[_name] = (_kinds, _one if _name.endswith("_in_list") else _none, _fn)
