"""SpamAssassin's SPF and DKIM evals and the welcome-lists built on them.

Reimplemented from SpamAssassin 4.0's ``Plugin/SPF.pm``, ``Plugin/DKIM.pm`` and the
``welcomelist_auth`` lists of ``Conf.pm``, over the :class:`~._authfacts.AuthFacts` a
caller gives (the milter's own SPF and DKIM results): nothing is looked up here.

* SPF (``check_for_spf_*``): SpamAssassin evaluates SPF for the first external relay
  and the envelope sender it finds (SPF.pm ``_get_sender``: that relay's recorded
  envelope-from, else EnvelopeFrom unless a trusted relay handled the message).  The
  caller's result counts only when it is about the same relay (its address) and the
  same sender; otherwise the evals have no result, as SpamAssassin with no DNS.  The
  HELO identity (``check_for_spf_helo_*``) counts only when the caller evaluated it
  (the milter does for a null MAIL FROM) for that relay's HELO, and never for a HELO
  that is an address literal or has no dot (SPF.pm skips those).
* DKIM (``check_dkim_*``): DKIM_SIGNED for any signature, DKIM_VALID for one that
  verified, the ``(domains...)`` forms and DKIM_VALID_AU matching the domain of each
  signature's AUID (``i=``, else ``d=``) as DKIM.pm does, the author domains being
  those of every From address.
* ``welcomelist_auth`` / ``def_welcomelist_auth`` (both SPF and DKIM), ``*_from_spf``
  (the envelope sender, with an SPF pass) and ``*_from_dkim`` (the author, with a
  valid signature by the author's domain or the listed signing domain), and their
  ``unwelcomelist_*`` and ``whitelist`` spellings: :class:`AuthLists`.

Without facts (``PreparedMessage.auth`` is ``None``) every eval here is false: with
network tests off SpamAssassin skips the ``net`` ones, and ``__DKIM_DEPENDABLE`` (not
``net``) is false without a verifier.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar

from ._authfacts import SPF_RESULTS, AuthFacts, DkimSignature
from ._globs import address_glob, glob_regex
from ._prepare import header_with_modifiers
from ._wlbllists import with_old_names

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["AUTH_EVALS", "AUTH_LIST_DIRECTIVES", "AuthEvalFn", "AuthLists", "ListData",
           "auth_list_line"]

#: the address lists (SpamAssassin's setting names; the ``whitelist`` spellings are read
#: into them)
ADDRESS_LISTS = ("welcomelist_auth", "def_welcomelist_auth", "welcomelist_from_spf",
                 "def_welcomelist_from_spf")
#: the lists of an address and its acceptable signing domains
DKIM_LISTS = ("welcomelist_from_dkim", "def_welcomelist_from_dkim")

#: directive -> (what it does, the list(s) it acts on), aliases included (Conf.pm,
#: SPF.pm and DKIM.pm ``aliases``)
_DIRECTIVES: dict[str, tuple[str, tuple[str, ...]]] = with_old_names({
    **{name: ("add", (name,)) for name in ADDRESS_LISTS},
    **{name: ("dkim", (name,)) for name in DKIM_LISTS},
    "unwelcomelist_auth": ("remove", ("welcomelist_auth", "def_welcomelist_auth")),
    "unwelcomelist_from_spf": ("remove", ("welcomelist_from_spf", "def_welcomelist_from_spf")),
    "unwelcomelist_from_dkim": ("undkim", DKIM_LISTS),
})
#: every directive :func:`auth_list_line` reads
AUTH_LIST_DIRECTIVES = frozenset(_DIRECTIVES)

_MAX_ENTRIES = 20_000


def address_pattern(addr: str) -> str:
    """The regex SpamAssassin makes of a list address (Conf/Parser.pm ``add_to_addrlist``):
    NUL, backslash and ``(`` made ``_``, every other character but letters, digits,
    ``_``, ``*`` and ``?`` escaped, ``?`` any character, a run of ``*`` any string;
    anchored at both ends."""
    text = re.sub(r"[\x00\\(]", "_", addr.lower())
    text = re.sub(r"([^*?_a-zA-Z0-9])", r"\\\1", text)
    text = re.sub(r"\*+", ".*", text.replace("?", "."))
    return f"^{text}$"


_Payload = TypeVar("_Payload")
#: a domain part read as a literal by the index (no glob character, nothing replaced)
_LITERAL_DOMAIN = re.compile(r"[^*?\x00\\(@]+")


class _Entries(Generic[_Payload]):
    """A list's entries indexed by the domain they can match, so an address is tried
    against a few patterns instead of every one (Debian's def_welcomelist_auth has
    about 900): ``x@d`` entries under d, ``x@*.d`` ones under ``*.d``, the rest (other
    globs in the domain, no ``@``) tried always.  An address can only match an entry
    ending in ``@d`` when its domain (after its last ``@``) is d, and one ending in
    ``@*.d`` (or ``.d``) when its domain ends in ``.d``: the index drops no match."""

    def __init__(self, entries: Mapping[str, _Payload]) -> None:
        self.by_domain: dict[str, list[tuple[re.Pattern[str], _Payload]]] = {}
        self.anywhere: list[tuple[re.Pattern[str], _Payload]] = []
        for addr, payload in entries.items():
            # the lists' own glob matcher: :func:`address_pattern`'s matches, without
            # backtracking into a star (an entry such as ``*a*a*a*b@d`` against a long
            # From address written by a sender)
            item = (re.compile(glob_regex(address_glob(addr))), payload)
            local, at, domain = addr.rpartition("@")
            key = domain[2:] if domain.startswith("*.") else domain
            if at and _LITERAL_DOMAIN.fullmatch(key):
                self.by_domain.setdefault(("*." if key != domain else "") + key,
                                          []).append(item)
            else:
                self.anywhere.append(item)

    def matching(self, addr: str) -> list[_Payload]:
        """The payloads of every entry a lower-case address matches, in list order
        within each index slot."""
        out: list[_Payload] = []
        bare = addr[:-1] if addr.endswith("\n") else addr  # as ``$`` ends before one
        if "@" in addr:
            domain = addr.rpartition("@")[2]
            slots = [self.by_domain.get(domain, ())]
            dot = domain.find(".")
            while dot >= 0:
                slots.append(self.by_domain.get("*." + domain[dot + 1:], ()))
                dot = domain.find(".", dot + 1)
            for slot in slots:
                out.extend(payload for rx, payload in slot if rx.match(bare))
        out.extend(payload for rx, payload in self.anywhere if rx.match(bare))
        return out


@dataclass
class AuthLists:
    """The ``welcomelist_auth``, ``*_from_spf`` and ``*_from_dkim`` lists as read.

    :ivar addresses: list name (:data:`ADDRESS_LISTS`) -> lower-case address -> its
        pattern (:func:`address_pattern`), in the order read.
    :ivar dkim: list name (:data:`DKIM_LISTS`) -> lower-case address -> the signing
        domains accepted for it (``""``: the author's own domain), in the order read.
    """

    addresses: dict[str, dict[str, str]] = field(
        default_factory=lambda: {name: {} for name in ADDRESS_LISTS})
    dkim: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {name: {} for name in DKIM_LISTS})
    #: list name -> its entries indexed (:class:`_Entries`), made on first use
    _index: dict[str, _Entries[str]] = field(default_factory=dict, repr=False,
                                             compare=False)
    _dkim_index: dict[str, _Entries[list[str]]] = field(default_factory=dict, repr=False,
                                                        compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def compile(self) -> None:
        """Compile every list's patterns now (the engine does before the milter forks),
        so no message pays for it."""
        for name in ADDRESS_LISTS:
            self._entries(name)
        for name in DKIM_LISTS:
            self._dkim_entries(name)

    def _entries(self, name: str) -> _Entries[str]:
        return self._indexed(self._index, self.addresses, name)

    def _dkim_entries(self, name: str) -> _Entries[list[str]]:
        return self._indexed(self._dkim_index, self.dkim, name)

    def _indexed(self, index: dict[str, _Entries[_Payload]],
                 lists: Mapping[str, Mapping[str, _Payload]], name: str) -> _Entries[_Payload]:
        """List ``name`` of ``lists`` indexed, from ``index`` or made and kept there."""
        found = index.get(name)
        if found is None:
            found = _Entries(lists[name])
            with self._lock:
                index[name] = found
        return found

    def listed(self, name: str, addr: str) -> bool:
        """Whether a lower-case address matches an entry of an address list."""
        return bool(addr) and bool(self._entries(name).matching(addr))

    def has(self, name: str, addr: str) -> bool:
        """SPF.pm ``_wlcheck``: the address is an entry itself, or matches one."""
        return addr in self.addresses[name] or self.listed(name, addr)

    def signing_domains(self, name: str, addr: str) -> list[str]:
        """The signing domains a DKIM list accepts for a lower-case author address
        (every matching entry's; ``""`` for the author's own domain)."""
        return [d for domains in self._dkim_entries(name).matching(addr) for d in domains]

    def _changed(self, name: str) -> None:
        with self._lock:
            self._index.pop(name, None)
            self._dkim_index.pop(name, None)


_DKIM_VALUE = re.compile(r"^(\S+)(?:\s+(\S+))?$")


def auth_list_line(lists: AuthLists, key: str, rest: str) -> str | None:
    """Read one ``welcomelist_auth``-family line into ``lists``, as Conf.pm, SPF.pm and
    DKIM.pm read it.

    :param key: the directive, lower case (one of :data:`AUTH_LIST_DIRECTIVES`).
    :param rest: the rest of the line.
    :returns: what is wrong with the line (it then changes nothing), else ``None``.
    """
    kind, names = _DIRECTIVES[key]
    value = rest.strip()
    if not value:
        return f"{key}: expected an address"
    if kind in ("dkim", "undkim"):
        m = _DKIM_VALUE.match(value)
        if m is None:
            return f"{key}: expected an address and at most one signing domain"
        addr, sdid = m.group(1).lower(), (m.group(2) or "").lower()
        for name in names:
            entries = lists.dkim[name]
            if kind == "dkim":
                if addr in entries:
                    entries[addr].append(sdid)
                elif len(entries) < _MAX_ENTRIES:
                    entries[addr] = [sdid]
            elif addr in entries:  # DKIM.pm remove_from_addrlist_dkim
                kept = [d for d in entries[addr] if d != sdid]
                if kept:
                    entries[addr] = kept
                else:
                    del entries[addr]
            lists._changed(name)
        return None
    for name in names:
        entries2 = lists.addresses[name]
        for addr in value.split():
            addr = addr.lower()
            if kind == "add":
                if len(entries2) < _MAX_ENTRIES:
                    entries2[addr] = address_pattern(addr)
            else:
                entries2.pop(addr, None)
        lists._changed(name)
    return None


class ListData(Protocol):
    """What the welcome-list evals read from the rule set: its :class:`AuthLists`.

    The part of ``_evalbase.EvalData`` these evals need, declared here because
    ``_evalbase`` imports this module (for :class:`AuthLists`): importing ``EvalData``
    would close an import loop.  An ``EvalData`` is a ``ListData``.
    """

    auth_lists: AuthLists


#: an eval here: (the prepared message, the rule set's data, the rule's arguments) -> hit
AuthEvalFn = Callable[["PreparedMessage", ListData, Sequence[str]], bool]


# -- the facts as SpamAssassin would have found them ----------------------------------------


class _Hop(NamedTuple):
    ip: str
    helo: str
    envfrom: str


_RELAY = re.compile(r"\[ ip=(\S*) rdns=\S* helo=(\S*) by=\S* ident=\S* envfrom=(\S*) ")
#: a HELO SPF.pm does not check: an address literal, or a name without a dot
_UNCHECKED_HELO = re.compile(r"^[\[!]?\d+\.\d+\.\d+\.\d+[\]!]?$|^[^.]+$")


def _first_external(msg: PreparedMessage) -> _Hop | None:
    m = _RELAY.match(msg.relay_info().external)
    return None if m is None else _Hop(*m.groups())


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


class _Spf(NamedTuple):
    mailfrom: str | None  # the MAIL FROM identity's result, None: none
    helo: str | None  # the HELO identity's result, None: none
    sender: str  # SPF.pm's spf_sender, lower case ("": none)


_NO_SPF = _Spf(None, None, "")


def _spf(msg: PreparedMessage) -> _Spf:
    """The SPF results SpamAssassin would have reached for this message, from the
    caller's (SPF.pm ``_get_sender`` and ``_check_spf``); found once per message."""
    found = msg.auth_spf
    if found is None:
        found = msg.auth_spf = _find_spf(msg)
    return _Spf(*found)


def _find_spf(msg: PreparedMessage) -> _Spf:
    facts = msg.auth
    if facts is None:
        return _NO_SPF
    hop = _first_external(msg)
    if hop is None or not _same_ip(hop.ip, facts.client_ip):
        return _NO_SPF  # not the relay the caller checked: SpamAssassin checks that one
    if hop.envfrom:
        sender = hop.envfrom.lower()
    elif msg.relay_info().n_trusted > 0:
        sender = ""  # "relayed through one or more trusted relays"
    else:
        sender = (header_with_modifiers(msg, "EnvelopeFrom", raw=False, addr=True,
                                        display=False) or "").lower()
    mailfrom = facts.spf_mailfrom
    if (mailfrom not in SPF_RESULTS or not sender
            or sender != facts.mail_from.lower()):
        mailfrom = None
    helo = facts.spf_helo
    if (helo not in SPF_RESULTS or not hop.helo or _UNCHECKED_HELO.match(hop.helo)
            or hop.helo.lower() != facts.helo.lower()):
        helo = None
    return _Spf(mailfrom, helo, sender)


def _spf_result(result: str, *, helo: bool) -> AuthEvalFn:
    def check(msg: PreparedMessage, _d: object, _a: Sequence[str]) -> bool:
        found = _spf(msg)
        return (found.helo if helo else found.mailfrom) == result
    check.__name__ = f"check_for_spf_{'helo_' if helo else ''}{result}"
    return check


def _spf_welcomelist(names: tuple[str, str]) -> AuthEvalFn:
    """SPF.pm ``_check_spf_welcomelist``: the envelope sender is listed and passed SPF."""
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        found = _spf(msg)
        if found.mailfrom != "pass" or not found.sender:
            return False
        return any(d.auth_lists.has(name, found.sender) for name in names)
    return check


# -- DKIM -------------------------------------------------------------------------------


def _authors(msg: PreparedMessage) -> list[str]:
    """DKIM.pm ``_get_authors``: every address of every From field."""
    out: list[str] = []
    for k, v in msg.headers:
        if k.lower() == "from":
            out.extend(a for _, a in msg.address_pairs(v) if a)
    return out


_AUTHOR_DOMAIN = re.compile(r"@([^@]+?)[ \t]*\Z", re.DOTALL)


def _author_domains(msg: PreparedMessage) -> set[str]:
    out = set()
    for a in _authors(msg):
        m = _AUTHOR_DOMAIN.search(a)
        if m:
            out.add(m.group(1).lower())
    return out


_SDID = re.compile(r"@(\S+)")


def _sdid(sig: DkimSignature) -> str | None:
    """The domain DKIM.pm compares: the AUID's domain (``i=``, which defaults to
    ``@d=``), else ``d=``; ``None`` when there is none."""
    if sig.identity:
        m = _SDID.search(sig.identity)
        return m.group(1).lower() if m else None
    return sig.domain.lower() or None


def _valid(facts: AuthFacts) -> bool:
    """DKIM.pm's ``dkim_valid``: a signature with a selector verified."""
    return any(s.valid and s.selector for s in facts.dkim)


_SUBDOMAINS = re.compile(r"^\*?\.(.*)\Z", re.DOTALL)


def _domain_listed(sdid: str, domains: Sequence[str]) -> bool:
    for ad in domains:
        m = _SUBDOMAINS.match(ad)
        if m:  # "*.example.com" or ".example.com": the domain or a subdomain of it
            d = m.group(1).lower()
            if sdid == d or sdid.endswith("." + d):
                return True
        elif sdid == ad.lower():
            return True
    return False


def _signed_by(msg: PreparedMessage, facts: AuthFacts, *, valid: bool, author: bool,
               domains: Sequence[str]) -> bool:
    """DKIM.pm ``_check_dkim_signed_by``."""
    authors = _author_domains(msg) if author else set()
    for sig in facts.dkim:
        if valid and not sig.valid:
            continue
        sdid = _sdid(sig)
        if sdid is None or (author and sdid not in authors):
            continue
        if not domains or _domain_listed(sdid, domains):
            return True
    return False


def _dkim_signed(msg: PreparedMessage, _d: object, a: Sequence[str]) -> bool:
    facts = msg.auth
    if facts is None or not facts.dkim:
        return False
    return not a or _signed_by(msg, facts, valid=False, author=False, domains=a)


def _dkim_valid(msg: PreparedMessage, _d: object, a: Sequence[str]) -> bool:
    facts = msg.auth
    if facts is None or not _valid(facts):
        return False
    return not a or _signed_by(msg, facts, valid=True, author=False, domains=a)


def _dkim_valid_author(msg: PreparedMessage, _d: object, a: Sequence[str]) -> bool:
    facts = msg.auth
    if facts is None:
        return False
    authors = _author_domains(msg)
    if not any(s.valid and s.selector and _sdid(s) in authors for s in facts.dkim):
        return False  # no valid author-domain signature at all
    return _signed_by(msg, facts, valid=True, author=True, domains=a)


_ENVFROM_DOMAIN = re.compile(r"@(\S+)")


def _dkim_valid_envelopefrom(msg: PreparedMessage, _d: object, _a: Sequence[str]) -> bool:
    facts = msg.auth
    if facts is None:
        return False
    env = header_with_modifiers(msg, "EnvelopeFrom", raw=False, addr=True, display=False)
    m = _ENVFROM_DOMAIN.search(env or "")
    if m is None or not _valid(facts):
        return False
    return _signed_by(msg, facts, valid=True, author=False, domains=[m.group(1).lower()])


def _dkim_dependable(msg: PreparedMessage, _d: object, _a: Sequence[str]) -> bool:
    facts = msg.auth
    return facts is not None and facts.dkim_dependable


_LAST_AT = re.compile(r"@([^@]*)\Z", re.DOTALL)
_AUTHOR_AT = re.compile(r"@([^@]+)\Z", re.DOTALL)
_STAR_DOT = re.compile(r"^\*?\.", re.DOTALL)


def _sdid_accepted(sdid: str, acceptable: str, author: str) -> bool:
    """DKIM.pm ``_wlcheck_list``'s match of one signature with one list entry: with no
    signing domain listed, the author's own domain; else the listed one (``*.d`` or
    ``.d``: a subdomain of d)."""
    if not acceptable:
        m = _AUTHOR_AT.search(author)
        return m is not None and sdid == m.group(1).lower()
    m = _LAST_AT.search(acceptable)
    if m:
        acceptable = m.group(1)
    if _STAR_DOT.match(acceptable):
        rest = _STAR_DOT.sub("", acceptable)
        return sdid.lower().endswith("." + rest.lower())
    return sdid == acceptable.lower()


def _dkim_welcomelisted(msg: PreparedMessage, lists: AuthLists) -> frozenset[str]:
    """DKIM.pm ``_check_dkim_welcomelist``: the lists (of :data:`ADDRESS_LISTS`'s auth
    ones and :data:`DKIM_LISTS`) with an entry for an author that a valid signature
    satisfies."""
    facts = msg.auth
    if facts is None or not _valid(facts):
        return frozenset()
    wanted: list[tuple[str, str, str]] = []  # (author, acceptable signing domain, list)
    for author in _authors(msg):
        low = author.lower()
        for name in DKIM_LISTS:
            wanted.extend((author, d, name) for d in lists.signing_domains(name, low))
        for name in ("def_welcomelist_auth", "welcomelist_auth"):
            if lists.listed(name, low):
                wanted.append((author, "", name))
    found: set[str] = set()
    if not wanted:
        return frozenset()
    for sig in facts.dkim:
        sdid = _sdid(sig)
        if not sig.selector or not sig.valid or sdid is None:
            continue
        for author, acceptable, name in wanted:
            if name not in found and _sdid_accepted(sdid, acceptable, author):
                found.add(name)
    return frozenset(found)


def _dkim_welcomelist(names: tuple[str, str]) -> AuthEvalFn:
    def check(msg: PreparedMessage, d: ListData, _a: Sequence[str]) -> bool:
        if msg.auth is None:
            return False
        found = msg.auth_welcomelisted
        if found is None:  # once per message: both rules read it
            found = msg.auth_welcomelisted = _dkim_welcomelisted(msg, d.auth_lists)
        return not found.isdisjoint(names)
    return check


def _no_args(a: Sequence[str]) -> bool:
    return not a


def _domains(a: Sequence[str]) -> bool:
    return all(x and x != "undef" for x in a)


_HEADER = frozenset({"header"})
_FULL = frozenset({"full"})

#: name -> (rule kinds, argument check, function), made into EvalSpecs by _evals
AUTH_EVALS: Mapping[str, tuple[frozenset[str], Callable[[Sequence[str]], bool],
                               AuthEvalFn]] = {
    **{f"check_for_spf_{r}": (_HEADER, _no_args, _spf_result(r, helo=False))
       for r in sorted(SPF_RESULTS)},
    **{f"check_for_spf_helo_{r}": (_HEADER, _no_args, _spf_result(r, helo=True))
       for r in sorted(SPF_RESULTS)},
    **with_old_names({f"check_for_{d}spf_welcomelist_from": (
        _HEADER, _no_args,
        _spf_welcomelist((f"{d}welcomelist_from_spf", f"{d}welcomelist_auth")))
       for d in ("", "def_")}),
    **with_old_names({f"check_for_{d}dkim_welcomelist_from": (
        _HEADER, _no_args,
        _dkim_welcomelist((f"{d}welcomelist_from_dkim", f"{d}welcomelist_auth")))
       for d in ("", "def_")}),
    "check_dkim_signed": (_FULL, _domains, _dkim_signed),
    "check_dkim_valid": (_FULL, _domains, _dkim_valid),
    "check_dkim_verified": (_FULL, _domains, _dkim_valid),
    "check_dkim_valid_author_sig": (_FULL, _domains, _dkim_valid_author),
    "check_dkim_valid_envelopefrom": (_FULL, _no_args, _dkim_valid_envelopefrom),
    "check_dkim_dependable": (_FULL, _no_args, _dkim_dependable),
}
