"""A site's welcome and block list lines, as ``Mail::SpamAssassin::Conf`` reads them.

The list lines of a ``local.cf`` (``Conf.pm`` and the WelcomeListSubject plugin:
``welcomelist_from``, ``blocklist_to``, ``welcomelist_from_rcvd``, ``blocklist_subject``,
``welcomelist_uri_host``, ``welcomelist_bounce_relays`` and the rest, old
``whitelist``/``blacklist`` names included) are read into :class:`WlblLists`, each
list bounded (:data:`MAX_ENTRIES`).  The evals that read them are ``_wlbl``'s
(WLBLEval, WelcomeListSubject) and ``_vbounce``'s; the entries are matched as
``_globs`` says.

Deliberate difference: an empty ``welcomelist_subject``/``blocklist_subject`` line,
which SpamAssassin keeps as an empty pattern matching every Subject, adds nothing here
and is reported by ``spamwarden rules --lint``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from ._globs import GlobSet, ascii_lower

__all__ = ["ADDRESS_LISTS", "BRACKETED_RELAY", "MAX_ENTRIES", "WlblLists", "relay_ip_entry",
           "with_old_names", "wlbl_directive"]

#: entries kept per list (a larger list is cut, with a lint note)
MAX_ENTRIES = 100_000

_V = TypeVar("_V")


def with_old_names(table: Mapping[str, _V]) -> dict[str, _V]:
    """``table`` with each name's SpamAssassin 3 spelling added after it, for the same
    value: ``whitelist`` for ``welcomelist``, ``blacklist`` for ``blocklist``
    (SpamAssassin 4.0 reads both, for settings and evals alike).

    :param table: name -> value, names in the new spelling.
    :returns: a new table; a name with neither word is in it once.
    """
    out: dict[str, _V] = {}
    for name, value in table.items():
        out[name] = value
        out[name.replace("welcomelist", "whitelist").replace("blocklist", "blacklist")] = value
    return out


def _settings(*names: str) -> dict[str, str]:
    """Settings that each fill the list of their own name, old names included."""
    return with_old_names({name: name for name in names})


#: address lists (Conf.pm's CONF_TYPE_ADDRLIST), old names included
_ADDR_SETTINGS = _settings("welcomelist_from", "blocklist_from", "welcomelist_to",
                           "more_spam_to", "all_spam_to", "blocklist_to",
                           "welcomelist_allows_relays", "welcomelist_bounce_relays")
_REMOVE_SETTINGS = with_old_names({"unwelcomelist_from": "welcomelist_from",
                                   "unblocklist_from": "blocklist_from"})
_RCVD_SETTINGS = _settings("welcomelist_from_rcvd", "def_welcomelist_from_rcvd")
_RCVD_REMOVE = frozenset({"unwelcomelist_from_rcvd", "unwhitelist_from_rcvd"})
_SUBJECT_SETTINGS = _settings("welcomelist_subject", "blocklist_subject")
_URI_SETTINGS = with_old_names({"welcomelist_uri_host": "WELCOME", "blocklist_uri_host": "BLOCK"})
_DIRECTIVES = frozenset({*_ADDR_SETTINGS, *_REMOVE_SETTINGS, *_RCVD_SETTINGS, *_RCVD_REMOVE,
                         *_SUBJECT_SETTINGS, *_URI_SETTINGS, "delist_uri_host",
                         "enlist_addrlist"})
#: what a line of these directives must hold at least one of (a line without is reported)
_WORDS_WANTED = {**dict.fromkeys([*_ADDR_SETTINGS, *_REMOVE_SETTINGS, *_RCVD_REMOVE],
                                 "one or more addresses"),
                 **dict.fromkeys(_URI_SETTINGS, "one or more host or domain names")}
#: the names of the address lists (``enlist_addrlist`` to one adds to that setting)
ADDRESS_LISTS = frozenset(_ADDR_SETTINGS.values())
_ENLIST = re.compile(r"^\(\s*(\S+?)\s*\)\s+(.+)$", re.DOTALL)
#: a ``*_from_rcvd`` relay entry that is an address: ``[IP]`` or ``[IP]/LENGTH``
BRACKETED_RELAY = re.compile(r"^\[(.*)\](/\d{1,3})?\Z", re.DOTALL)


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
        if m is None or m.group(1) not in ADDRESS_LISTS:
            return False
        key, words = m.group(1), m.group(2).split()
    wanted = _WORDS_WANTED.get(key)
    if wanted is not None and not words:
        note(f"expected {wanted}")
        return True
    if key in _ADDR_SETTINGS:
        entries = lists.addr.setdefault(_ADDR_SETTINGS[key], {})
        for word in words:
            if len(entries) >= MAX_ENTRIES:
                note(f"more than {MAX_ENTRIES} entries: the rest is ignored")
                break
            entries[ascii_lower(word)] = None
        return True
    if key in _REMOVE_SETTINGS:
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
        m = BRACKETED_RELAY.match(domain)
        if m is not None and not _valid_ip_entry(m.group(1) + (m.group(2) or "")):
            note(f"{words[1]} is not an IP address or network: it matches no relay")
        listed = lists.rcvd.setdefault(_RCVD_SETTINGS[key], {})
        if len(listed) < MAX_ENTRIES:
            listed.setdefault(addr, []).append(domain)
        return True
    if key in _RCVD_REMOVE:
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


def relay_ip_entry(text: str) -> str | ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A ``[...]`` entry of a ``*_from_rcvd`` line as ``_check_welcomelist_rcvd``
    compares it.

    :param text: what is between the brackets, the ``/LENGTH`` after them appended
        (:data:`BRACKETED_RELAY`'s two groups).
    :returns: a dotted quad (compared as text), a classful prefix (``"10.1."``), or a
        network (a prefix length or IPv6); ``None`` when it is none of these.
    """
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
    entry = relay_ip_entry(text)
    if isinstance(entry, str) and not entry.endswith("."):
        try:
            ipaddress.IPv4Address(entry)
        except ValueError:
            return False
    return entry is not None
