"""A site's welcome and block lists' evals: SpamAssassin 4.0's WLBLEval and WelcomeListSubject.

The evals of ``60_welcomelist.cf`` and ``60_welcomelist_subject.cf``
(USER_IN_WELCOMELIST, USER_IN_BLOCKLIST_TO, SUBJECT_IN_BLOCKLIST, URI_HOST_IN_WELCOMELIST,
...) read the lists of a ``local.cf`` (``_wlbllists``: ``welcomelist_from``,
``blocklist_to``, ``welcomelist_from_rcvd``, ...) as ``Plugin/WLBLEval.pm`` and
``Plugin/WelcomeListSubject.pm`` do, over PerMsgStatus's ``all_from_addrs`` and
``all_to_addrs`` (found here, once per message).

An address entry is a glob over the whole address, case-insensitive (ASCII), and a
Subject entry the same kind of glob found anywhere in the Subject (``_globs``: how they
are matched, without backtracking); only the list entries are patterns, the message's
addresses and Subject are text.  The text compared is bounded (:data:`MAX_TEXT`,
:data:`MAX_ADDRESSES`, :data:`MAX_SUBJECT`).

``*_from_rcvd`` entries also need the relay that handed the message to the site's
trusted relays (the first untrusted relay; with none, any trusted one) to have the
reverse DNS name (the domain or a host under it) or the address the entry names, as
``_check_welcomelist_rcvd`` does: the Received lines below that relay are written by
the sender and are never read.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import ANY_KIND, HEADER, EvalData, EvalEntry, EvalFn, nargs
from ._globs import GlobSet, address_glob, ascii_lower, glob_match
from ._uris import fqdn_valid, uri_host
from ._wlbllists import ADDRESS_LISTS, BRACKETED_RELAY, relay_ip_entry, with_old_names

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["MAX_ADDRESSES", "MAX_SUBJECT", "MAX_TEXT", "WLBL_EVALS", "all_from_addrs",
           "all_to_addrs"]

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


# -- the message's addresses ------------------------------------------------------------------


def _unfolded(value: str) -> str:
    if "\n" not in value:
        return value
    return re.sub(r"\r?\n", "", re.sub(r"\r?\n[ \t]", "\n ", value))


#: PreparedMessage.addresses keys of all_from_addrs and all_to_addrs (not header names)
_FROM_KEY, _TO_KEY = "\0all_from_addrs", "\0all_to_addrs"
_TOHEADERS = ("To", "Apparently-To", "Delivered-To", "Envelope-Recipients",
               "Apparently-Resent-To", "X-Envelope-To", "Envelope-To", "X-Delivered-To",
               "X-Original-To", "X-Rcpt-To", "X-Real-To", "Cc")
_ADDRESS_FIELDS = frozenset(h.lower() for h in (
    *_TOHEADERS, "Resent-To", "Resent-Cc", "Resent-From", "From", "Envelope-Sender",
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
            if m is not None and m.group(2).isascii() and fqdn_valid(m.group(2).encode()):
                found.append(m.group(1))
        for name in _TOHEADERS:
            found.extend(_header_addrs(fields, msg, name))
    found = msg.addresses[_TO_KEY] = list(dict.fromkeys(found))[:MAX_ADDRESSES]
    return found


def _listed(d: EvalData, name: str, addrs: Sequence[str]) -> bool:
    """WLBLEval's ``_check_welcomelist`` of each address against list ``name``."""
    glob = d.wlbl.matcher(name)
    return glob is not None and any(
        glob.matches(ascii_lower(_octets(a))) for a in addrs if len(a) <= MAX_TEXT)


# -- the relays --------------------------------------------------------------------------------


def _relay_matches(domain: str, ip: str, rdns: str) -> bool:
    """Whether one relay (its address and lower-case reverse DNS name, as the trusted
    relay below it recorded them) is the one a ``*_from_rcvd`` entry names."""
    m = BRACKETED_RELAY.match(domain)
    if m is None:
        return rdns == domain or rdns.endswith("." + domain)
    if not ip:
        return False
    entry = relay_ip_entry(m.group(1) + (m.group(2) or ""))
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


def _rcvd_listed(msg: PreparedMessage, d: EvalData, name: str, addr: str) -> int:
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


def _from_welcomed(msg: PreparedMessage, d: EvalData, *, default: bool) -> int:
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


def _from_in_welcomelist(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    return _from_welcomed(msg, d, default=False) > 0


def _from_in_default_welcomelist(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    return _from_welcomed(msg, d, default=True) > 0


def _forged_in_welcomelist(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    return (_from_welcomed(msg, d, default=False) < 0
            and _from_welcomed(msg, d, default=True) == 0)


def _forged_in_default_welcomelist(msg: PreparedMessage, d: EvalData,
                                   _a: Sequence[str]) -> bool:
    return (_from_welcomed(msg, d, default=True) < 0
            and _from_welcomed(msg, d, default=False) == 0)


def _from_list(name: str) -> EvalFn:
    def check(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
        return d.wlbl.matcher(name) is not None and _listed(d, name, all_from_addrs(msg))
    return check


def _to_list(name: str) -> EvalFn:
    def check(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
        return d.wlbl.matcher(name) is not None and _listed(d, name, all_to_addrs(msg))
    return check


@functools.lru_cache(maxsize=64)
def _enlisted(entries: tuple[str, ...]) -> GlobSet:
    """An ``enlist_addrlist`` list ready to match (kept for the lists seen last)."""
    return GlobSet(entries)


def _named_list(d: EvalData, name: str) -> GlobSet | None:
    """The list ``check_*_in_list(NAME)`` reads (Conf.pm's ``$conf->{NAME}``): a list
    setting's own (``enlist_addrlist (blocklist_to) ...`` adds to ``blocklist_to``), else
    the ``enlist_addrlist`` list NAME; ``None`` when it has no entries."""
    if name in ADDRESS_LISTS:
        return d.wlbl.matcher(name)
    entries = d.addrlists.get(name)
    return _enlisted(tuple(entries)) if entries else None


def _in_named_list(d: EvalData, name: str, addrs: Sequence[str]) -> bool:
    """WLBLEval's ``_check_welcomelist`` of each address against list ``name``: the
    address (ASCII lower case) is an entry, or matches an entry's glob (Parser.pm's
    ``add_to_addrlist``: ``*`` and ``?`` the only wildcards, ``[...]`` and the rest
    themselves)."""
    glob = _named_list(d, name)
    return glob is not None and any(
        glob.matches(ascii_lower(_octets(x))) for x in addrs if len(x) <= MAX_TEXT)


def _to_in_list(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_to_in_list(LIST)``: an address of all_to_addrs is on LIST."""
    return _in_named_list(d, a[0], all_to_addrs(msg))


def _from_in_list(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_from_in_list(LIST)``: an address of all_from_addrs (every
    address of the first Resent-From field when it has any, else those of From,
    Envelope-Sender, Resent-Sender, X-Envelope-From and the envelope sender) is on LIST."""
    return _in_named_list(d, a[0], all_from_addrs(msg))


def _replyto_in_list(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """WLBLEval's ``check_replyto_in_list(LIST)``: ``get('Reply-To:addr')`` in scalar
    context, the first address of the Reply-To fields, is on LIST."""
    first = _header_addrs(_fields(msg), msg, "Reply-To")[:1]
    return _in_named_list(d, a[0], first)


def _subject_list(name: str) -> EvalFn:
    def check(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
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


def _uri_host_list(name: str) -> EvalFn:
    def check(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
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


#: eval name -> (rule kinds, argument check, function); old names too (SpamAssassin
#: 4.0 registers both)
WLBL_EVALS: Mapping[str, EvalEntry] = with_old_names({
    "check_from_in_welcomelist": (HEADER, nargs(0), _from_in_welcomelist),
    "check_from_in_default_welcomelist": (HEADER, nargs(0), _from_in_default_welcomelist),
    "check_forged_in_welcomelist": (HEADER, nargs(0), _forged_in_welcomelist),
    "check_forged_in_default_welcomelist": (HEADER, nargs(0), _forged_in_default_welcomelist),
    "check_from_in_blocklist": (HEADER, nargs(0), _from_list("blocklist_from")),
    "check_to_in_welcomelist": (HEADER, nargs(0), _to_list("welcomelist_to")),
    "check_to_in_blocklist": (HEADER, nargs(0), _to_list("blocklist_to")),
    "check_to_in_more_spam": (HEADER, nargs(0), _to_list("more_spam_to")),
    "check_to_in_all_spam": (HEADER, nargs(0), _to_list("all_spam_to")),
    "check_subject_in_welcomelist": (HEADER, nargs(0), _subject_list("welcomelist_subject")),
    "check_subject_in_blocklist": (HEADER, nargs(0), _subject_list("blocklist_subject")),
    "check_to_in_list": (HEADER, nargs(1), _to_in_list),
    "check_from_in_list": (HEADER, nargs(1), _from_in_list),
    "check_replyto_in_list": (HEADER, nargs(1), _replyto_in_list),
    # "type does not matter" (WLBLEval.pm): 60_welcomelist.cf has them as body rules
    "check_uri_host_in_welcomelist": (ANY_KIND, nargs(0), _uri_host_list("WELCOME")),
    "check_uri_host_in_blocklist": (ANY_KIND, nargs(0), _uri_host_list("BLOCK")),
})
