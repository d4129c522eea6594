"""SpamAssassin ``eval:`` tests that need no network, reimplemented from their plugins.

The most frequent pure evals in SpamAssassin's shipped rules (HeaderEval, BodyEval,
MIMEEval, WLBLEval lists, FreeMail).  Each entry names the rule kinds it may appear in
and checks its arguments when rules are read, so an unsupported argument skips the rule
with a reason instead of failing at scan time.  Every other eval is skipped.
"""

from __future__ import annotations

import calendar
import functools
import html
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..mail import registrable_domain
from ._auth import AUTH_EVALS, AuthLists
from ._html import HtmlResults, parse_html
from ._prepare import header_with_modifiers
from ._uris import trim_domain, uri_host, uri_tld_alternation, valid_tlds
from ._wlbl import WLBL_EVALS, WlblLists, all_from_addrs

if TYPE_CHECKING:
    from ._mime import MimePart
    from ._prepare import PreparedMessage

__all__ = ["EVALS", "IMPLEMENTED_EVALS", "EvalData", "parse_eval_args", "run_eval"]


class EvalData(Protocol):
    """The settings evals read: freemail domains and the ``enlist_*`` lists."""

    freemail_domains: set[str]
    addrlists: dict[str, list[str]]
    uri_hosts: dict[str, list[str]]
    wlbl: WlblLists
    auth_lists: AuthLists
    #: Conf.pm's ``ok_locales`` ("all": every charset is fine)
    ok_locales: str
    #: ``util_rb_2tld`` / ``util_rb_3tld`` (``None``: no line; the Public Suffix List)
    two_level_domains: set[str] | None
    three_level_domains: set[str] | None


EvalFn = Callable[["PreparedMessage", EvalData, Sequence[str]], bool]


@dataclass(frozen=True, slots=True)
class EvalSpec:
    """An implemented eval: rule kinds, a check of its arguments, the function."""

    kinds: frozenset[str]
    check: Callable[[Sequence[str]], bool]
    fn: EvalFn


_ARG = re.compile(r"""\s*(?:'([^']*)'|"([^"]*)"|([^,'"\s]+))\s*(?:,|$)""")


def parse_eval_args(text: str) -> tuple[str, ...]:
    """The arguments of ``eval:fn(...)`` as strings (quotes removed, ``undef`` kept).

    :raises ValueError: text that is not a comma-separated list of simple values.
    """
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ARG.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos:pos + 20]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return tuple(out)


def _valid_re(text: str) -> bool:
    try:
        _perl_re(text)
    except re.error:
        return False
    return True


def _num(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _addresses(msg: PreparedMessage, header: str) -> list[str]:
    found = msg.addresses.get(header)
    if found is None:
        value = msg.header_text(header)
        found = [a.lower() for _, a in msg.address_pairs(value) if "@" in a] if value else []
        msg.addresses[header] = found
    return found


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[-1].strip(".>").lower()


# -- HeaderEval ------------------------------------------------------------------------------


def _header_count_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    lname = a[0].lower()
    n = sum(1 for k, _ in msg.headers if k.lower() == lname)
    return float(a[1]) <= n <= float(a[2])


#: octets of text FreeMail reads for addresses
RAWBODY_SCAN = 500_000
_ILLEGAL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]")
_ALL_SKIP = re.compile(rb"^(?:X-.*|Subject|From|To|Cc|Received|Content-Type|Date):.*\n?",
                       re.IGNORECASE | re.MULTILINE)


def _illegal_chars(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    hdr = a[0]
    text = msg.header_text(hdr, raw=True)
    if not text:
        return False
    data = text.encode("utf-8", "surrogateescape")
    if hdr.lower() == "all":
        data = _ALL_SKIP.sub(b"", data)
    if not data:
        return False
    illegal = len(_ILLEGAL.findall(data))
    return illegal / len(data) >= float(a[1]) and illegal >= float(a[2])


def _missing_to(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return not (msg.header_exists("To") or msg.header_exists("Apparently-To"))


def _parse_flags(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    if a[0] == "missing_head_body_separator":
        return not msg.has_separator
    return any(d in ("header section over limit", "too many headers") for d in msg.view.defects)


# HeaderEval's reply and forward prefixes (bug 6805) and Constants.pm's
# CHARSETS_LIKELY_TO_FP_AS_CAPS
_SUBJECT_PREFIXES = re.compile(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+", re.I)
_CAPS_CHARSETS = re.compile(r"=\?[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|"
                            r"windows-1251|georgianps|pt154|tis)[-_a-z0-9]*\?", re.I)


def _subject_all_caps(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's subject_is_all_caps: a Subject of two words or more and 10
    characters, its reply/forward prefixes left out, whose letters are all capitals;
    never for a Subject encoded in a charset whose text reads as capitals (Big5, ...)."""
    subject = _SUBJECT_PREFIXES.sub("", (msg.header_text("Subject") or "").strip())
    if not re.search(r"\s", subject) or len(subject) < 10:
        return False
    if _CAPS_CHARSETS.search(msg.header_text("Subject", raw=True) or ""):
        return False
    letters = re.sub(r"[^a-zA-Z]", "", subject)
    return bool(letters) and letters == letters.upper()


_TEMPLATE_OK = re.compile(r"^(?:x-vms-to|x-uidl|x-face|to|cc|from|subject|references|in-reply-to|"
                          r"(?:x-|resent-|x-original-)?message-id):", re.IGNORECASE)


_TEMPLATE_TAG = re.compile(r"%[A-Z][A-Z_-]")


def _unresolved_template(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    for k, v in msg.headers:
        if "%" not in v and "%" not in k:  # (the tag starts with a %)
            continue
        line = f"{k}: {v}"
        if _TEMPLATE_TAG.search(line) and not _TEMPLATE_OK.match(line):
            return True
    return False


# Util.pm's %TZ: the zone names parse_rfc822_date knows (any other counts as -0000)
_TZ_NAMES = {
    "UT": 0, "UTC": 0, "NDT": -230, "AST": -400, "ADT": -300, "NST": -330, "EST": -500,
    "EDT": -400, "CST": -600, "CDT": -500, "MST": -700, "MDT": -600, "PST": -800,
    "PDT": -700, "HST": -1000, "AKST": -900, "AKDT": -800, "HADT": -900, "HAST": -1000,
    "GMT": 0, "BST": 100, "IST": 100, "WET": 0, "WEST": 100, "CET": 100, "CEST": 200,
    "EET": 200, "EEST": 300, "MSK": 300, "MSD": 400, "MET": 100, "MEZ": 100, "MEST": 200,
    "MESZ": 200, "BRST": -200, "BRT": -300, "AEST": 1000, "AEDT": 1100, "ACST": 930,
    "ACDT": 1030, "AWST": 800, "NZST": 1200, "NZDT": 1300, "JST": 900, "KST": 900,
    "HKT": 800, "SGT": 800, "PHT": 800, "IDT": 300}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_MON = "(?P<m>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DATE_FORMS = (  # tried in this order, the first match wins
    re.compile(rf" (?P<d>\d+) {_MON} (?P<y>\d{{4}}) ", re.I | re.A),
    re.compile(rf" {_MON} +(?P<d>\d+) \d+:\d+:\d+ (?P<y>\d{{4}}) ", re.I | re.A),
    re.compile(rf" (?P<d>\d+) {_MON} (?P<y>\d{{2,3}}) ", re.I | re.A))
_DATE_HMS = re.compile(r" (\d?\d):(\d\d)(:(\d\d))? ", re.A)
_DATE_NUMZONE = re.compile(r" ([-+])(\d\d)(\d\d) ", re.A)
_DATE_NAMEZONE = re.compile(r"\b([A-Z]{2,4}(?:-DST)?)\b", re.A)


def _parse_date(text: str) -> float | None:
    """Seconds since the epoch of an RFC 5322 date as Util.pm's ``parse_rfc822_date``
    reads it (None: no day, month and year found), quirks included: a numeric zone
    needs its sign (``0530`` and ``-400`` count as -0000), a name outside its table
    too; a two-digit year under 50 is 20xx; an hour over 23 is 23, a day past the
    month's end the 1st of the next; years outside 1970-2037 are clamped."""
    s = re.sub(r"\s+", " ", re.sub(r", *", " ", f" {text} "))
    for pattern in _DATE_FORMS:
        m = pattern.search(s)
        if m:
            break
    else:
        return None
    s = s[:m.start()] + " " + s[m.end():]
    day, month = int(m.group("d")), _MONTHS.index(m.group("m").lower()) + 1
    year_text = m.group("y")
    year = int(year_text)
    if len(year_text) == 2 and year < 50:
        year += 2000
    elif len(year_text) != 4:
        year += 1900
    hour = minute = second = 0
    m = _DATE_HMS.search(s)
    if m:
        s = s[:m.start()] + " " + s[m.end():]
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(4) or 0)
    zone = 0
    m = _DATE_NUMZONE.search(s)
    if m:
        zone = (int(m.group(2)) * 60 + int(m.group(3))) * 60 * (-1 if m.group(1) == "-" else 1)
    else:
        m = _DATE_NAMEZONE.search(s)
        if m and m.group(1) in _TZ_NAMES:
            hhmm = _TZ_NAMES[m.group(1)]
            zone = (abs(hhmm) // 100 * 60 + abs(hhmm) % 100) * 60 * (-1 if hhmm < 0 else 1)
    second, minute, hour = min(second, 59), min(minute, 59), min(hour, 23)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > (30 if month in (4, 6, 9, 11) else (29 if leap else 28) if month == 2 else 31):
        day, month = 1, month + 1
        if month > 12:
            month, year = 1, year + 1
    year = min(max(year, 1970), 2037)
    if day < 1:  # Time::Local croaks
        return None
    when = calendar.timegm((year, month, day, hour, minute, second))
    return float(max(when - zone, 0) if zone > 0 else when - zone)


_RCVD_DATE = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)")
_RCVD_LOCAL = re.compile(r"\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)"
                         r"|qmail \d+ invoked by uid \d+")
_RCVD_FETCHMAIL = re.compile(r"\bby localhost with \w+ \(fetchmail-[\d.]+")


def _date_diff(msg: PreparedMessage) -> float:
    """Date header time minus the Received header time nearest to it, in seconds (0:
    unknown): HeaderEval's ``_check_date_diff``.  Resent-Date wins over Date; every
    Received header with a date counts except a leading local or fetchmail hop; the
    oldest one is left out when it equals the Date; the smallest absolute difference is
    kept."""
    when = None
    for name in ("Resent-Date", "Date"):
        for k, v in msg.headers:
            if k.lower() == name.lower() and v.strip():
                when = _parse_date(v.strip())
                if when is not None:
                    break
        if when is not None:
            break
    if when is None:
        return 0.0
    received = [v for k, v in msg.headers if k.lower() == "received" and v.strip()]
    if not received:
        return 0.0
    local = []
    if _RCVD_LOCAL.search(received[0]):
        local.append(received.pop(0))
    if received and _RCVD_FETCHMAIL.search(received[0]):
        received.pop(0)
    elif local:
        received.insert(0, local.pop())
    times = []
    for r in received[:100]:
        m = _RCVD_DATE.search(r)
        t = _parse_date(m.group(1)) if m else None
        if t is not None:
            times.append(t)
    if not times:
        return 0.0
    diffs = [when - t for t in times]
    if len(diffs) > 1 and diffs[-1] == 0:
        diffs.pop()
    return min(diffs, key=abs)


def _shifted_date(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    diff = msg.memo.get("date_diff")
    if diff is None:
        diff = msg.memo["date_diff"] = _date_diff(msg)
    lo, hi = a[0], a[1]
    return (lo == "undef" or diff >= 3600 * float(lo)) and (hi == "undef" or diff < 3600 * float(hi))


_OUTLOOK_MID = re.compile(r"^<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@")


def _outlook_message_id(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_outlook_message_id (MSGID_OUTLOOK_INVALID): an Outlook-style
    Message-ID whose time part is more than 250 units (about 30 hours) away from both
    the Date and the first dated Received header."""
    m = _OUTLOOK_MID.match(msg.header_text("MESSAGEID") or "")
    if m is None:
        return False
    token = int(m.group(1), 16)

    def far(when: float | None) -> bool:
        return abs(token - int((when or 0.0) * 0.0023283064365387 + 27111902.8329849)) >= 250

    if not far(_parse_date(msg.header_text("Date") or "")):
        return False
    for value in msg.headers:
        if value[0].lower() == "received":
            d = _RCVD_DATE.search(" ".join(value[1].split()))
            if d:
                return far(_parse_date(d.group(1)))
    return far(None)


_FOLD = re.compile(r"\r?\n[ \t]+")


def _unfolded(msg: PreparedMessage, name: str) -> str | None:
    text = msg.header_text(name)
    if text is None or ("\n " not in text and "\n\t" not in text):  # nothing folded
        return text
    return _FOLD.sub(" ", text)


def _received_hdr_remover(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's gated_through_received_hdr_remover: an ezmlm list that drops
    Received headers, no Received header at all, or MSN groups."""
    rcvd = _unfolded(msg, "Received")
    listed = _unfolded(msg, "Mailing-List")
    if (listed is not None and rcvd is not None
            and re.search(r"^contact \S+@\S+; run by ezmlm$", listed, re.M)
            and re.search(r"^mailing list \S+@\S+", _unfolded(msg, "Delivered-To") or "", re.M)
            and re.search(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+", rcvd)):
        return True
    return rcvd is None or re.search(r"from groups\.msn\.com \(\S+\.msn\.com ", rcvd) is not None


def _ratware_name_id(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_ratware_name_id: a Message-ID of 28 capitals and the From
    address, with that address quoted in From as ``"name" <address>``."""
    m = re.search(r"<[A-Z]{28}\.([^>]+?)>", msg.header_text("MESSAGEID") or "")
    return m is not None and re.search(
        r'"[^"]+"\s*<' + re.escape(m.group(1)) + ">", msg.header_text("From") or "") is not None


def _ratware_envelope_from(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_ratware_envelope_from (RATWARE_EFROM): the envelope sender is
    ``<to-domain>.<to-user>@...``, the domain the registered domain of the first To
    address (RegistryBoundaries' ``trim_domain``), under a valid top-level domain."""
    to, env = _header_addr(msg, "To"), _header_addr(msg, "EnvelopeFrom")
    if not to or not env or re.match(r"SRS\d[=+-]", env, re.I):
        return False
    m = re.match(r"^([^@]+)@(.+)$", to)
    if m is None:
        return False
    user = m.group(1)
    dom = _ratware_domain(m.group(2), d, msg.tlds)
    if dom is None:
        return False
    if env.isascii() and user.isascii():
        return _ratware_found(env, dom, user)
    return _ratware_pattern(dom, user).search(env) is not None


def _ratware_domain(name: str, d: EvalData, tlds: frozenset[str] | None) -> str | None:
    """``trim_domain`` of a To address's domain as check_ratware_envelope_from takes it
    (IDN labels in their ``xn--`` form first), ``None`` when ``is_domain_valid`` refuses
    it (no dot, white space, a top-level domain not in ``tlds``) or it is no IDN name."""
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    dom = _base_domain(name.lower(), d)
    return dom if _valid_domain(dom, tlds) else None


@functools.lru_cache(maxsize=64)
def _ratware_pattern(dom: str, user: str) -> re.Pattern[str]:
    """HeaderEval's pattern, ``\b<domain>.<user>@`` without regard to case."""
    return re.compile(r"\b" + re.escape(dom) + "." + re.escape(user) + "@", re.I)


def _ascii_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _ratware_found(env: str, dom: str, user: str) -> bool:
    """Whether :func:`_ratware_pattern` finds a match in ``env``, all three ASCII (where
    ignoring case is comparing lower case), without compiling a pattern per recipient:
    each ``<user>@`` found is checked for the domain, any one character but a newline,
    and a word boundary before it."""
    low, dom, tail = env.lower(), dom.lower(), user.lower() + "@"
    j = low.find(tail)
    while j >= 0:
        i = j - 1 - len(dom)
        if (i >= 0 and low[j - 1] != "\n" and low.startswith(dom, i)
                and (i > 0 and _ascii_word(low[i - 1])) != (i < len(low)
                                                             and _ascii_word(low[i]))):
            return True
        j = low.find(tail, j + 1)
    return False


# -- WLBLEval lists and FreeMail ------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _host_sets(listed: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(listed hosts, hosts excluded with ``!``) of one ``enlist_uri_host`` list."""
    return (frozenset(x for x in listed if not x.startswith("!")),
            frozenset(x[1:] for x in listed if x.startswith("!")))


@functools.lru_cache(maxsize=2048)
def _host_candidates(host: str) -> frozenset[str]:
    """A host name and each domain above it, lower case (``a.b.c``: itself, ``b.c``, ``c``):
    the text after each dot, sliced rather than joined again label by label.  Kept for
    hosts seen before (bounded): the same hosts come back message after message."""
    name = host.lower().rstrip(".")
    found = [name]
    dot = name.find(".")
    while dot >= 0:
        found.append(name[dot + 1:])
        dot = name.find(".", dot + 1)
    return frozenset(found)


def _uri_host_candidates(msg: PreparedMessage) -> list[frozenset[str]]:
    """:func:`_host_candidates` of each distinct host of the message's URIs (found
    once per message; not to be changed): the hosts WLBLEval's ``check_uri_host_listed``
    reads, valid host names and IP addresses of the URIs that are not ``mailto:``."""
    found = msg.uri_host_candidates
    if found is None:
        hosts: dict[str, None] = {}
        for u in msg.uris:
            host = uri_host(u, tlds=msg.tlds) if u[:7].lower() != b"mailto:" else None
            if host is not None:
                hosts[host] = None
        found = msg.uri_host_candidates = list(dict.fromkeys(
            _host_candidates(h) for h in hosts))
    return found


def _uri_host_listed(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    hosts, negated = _host_sets(tuple(d.uri_hosts.get(a[0].upper(), [])))
    return any(not (c & negated) and bool(c & hosts) for c in _uri_host_candidates(msg))


# FreeMail's default welcomelist: role and machine addresses that are never "freemail"
_FREEMAIL_WELCOME = re.compile(
    r"^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master"
    r"|undisclosed.*|request-[a-f0-9]{16}|bounced?-"
    r"|[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})"
    r"|.+=.+=.+)@", re.IGNORECASE)
# FreeMail's $skip_replyto_envfrom: bulk envelope senders (mailing lists, bounces)
_BULK_ENVFROM = re.compile(
    r"(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
    r"|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@",
    re.IGNORECASE)
_URL_WITH_AT = re.compile(r"<?https?://\S{0,255}(?:@|%40)\S{0,255}", re.IGNORECASE)
_URL_WITH_AT_B = re.compile(_URL_WITH_AT.pattern.encode(), re.IGNORECASE)


class _EmailPatterns:
    """FreeMail's ``email_regex`` for one set of valid top-level domains (it ends with
    RegistryBoundaries' ``valid_tlds_re``), and the patterns built on it."""

    def __init__(self, tlds: frozenset[str]) -> None:
        email = (r"(?=.{0,64}@)(?<![a-z0-9!#$%&'*+/=?^_`{|}~-])"
                 r"([a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                 r"@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}"
                 r"(?<![a-z0-9-])" + uri_tld_alternation(tlds)
                 + r"(?!(?:[a-z0-9-]|\.[a-z0-9])))")
        quoted = (r"<?(?<!mailto:)" + email
                  + r"(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)")
        self.email = re.compile(email, re.IGNORECASE)
        self.quoted = re.compile(quoted, re.IGNORECASE)
        self.quoted_octets = re.compile(quoted.encode(), re.IGNORECASE)
        self.href_mailto = re.compile(r"""<a\s[^>]*?href\s*=\s*["']?\s*mailto:""" + email,
                                      re.IGNORECASE)


@functools.lru_cache(maxsize=4)
def _email_patterns(tlds: frozenset[str] | None) -> _EmailPatterns:
    """The :class:`_EmailPatterns` of ``tlds`` (``None``: the Public Suffix List's),
    compiled once per set."""
    return _EmailPatterns(tlds or valid_tlds())


def _is_freemail(addr: str, domains: set[str]) -> bool:
    if not addr or _FREEMAIL_WELCOME.match(addr):
        return False
    dom = _domain(addr)
    if dom in domains:
        return True
    wild = _freemail_wildcards(domains)
    return wild is not None and wild.match(dom) is not None


# id of a rule set's freemail_domains -> (that set, its wildcard entries as one regex);
# the set is kept so an id is never reused for another one while cached.
_WILDCARDS: dict[int, tuple[set[str], int, re.Pattern[str] | None]] = {}


def _freemail_wildcards(domains: set[str]) -> re.Pattern[str] | None:
    cached = _WILDCARDS.get(id(domains))
    if cached is not None and cached[0] is domains and cached[1] == len(domains):
        return cached[2]
    # FreeMail: "*" stands for one label's characters ([^.]*), "?" for any one character
    wild = sorted(p for p in domains if "*" in p or "?" in p)
    rx = re.compile("(?:" + "|".join(
        re.escape(p).replace(r"\*", "[^.]*").replace(r"\?", ".") for p in wild) + r")\Z"
    ) if wild else None
    if len(_WILDCARDS) > 16:
        _WILDCARDS.clear()
    _WILDCARDS[id(domains)] = (domains, len(domains), rx)
    return rx


def _freemail_from(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    return any(_is_freemail(x.lower(), d.freemail_domains) for x in all_from_addrs(msg))


@functools.lru_cache(maxsize=64)
def _perl_re(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _freemail_header(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """FreeMail's check_freemail_header(HEADER[, REGEX]): a freemail address in the
    header (EnvelopeFrom: the envelope sender) that matches REGEX when given."""
    name = a[0]
    if name.lower() == "envelopefrom":
        env = _envelope_from(msg)
        addrs = [env] if env else []
    else:
        addrs = _addresses(msg, name.split(":")[0])
    rx = _perl_re(a[1]) if len(a) > 1 else None
    return any(_is_freemail(x, d.freemail_domains) and (rx is None or rx.search(x))
               for x in addrs)


def _envelope_from(msg: PreparedMessage) -> str | None:
    """SpamAssassin's EnvelopeFrom address, lower case (``None``: unknown or empty)."""
    found = _addresses(msg, "EnvelopeFrom")
    return found[0] if found else None


def _header_addr(msg: PreparedMessage, name: str) -> str:
    """``get('NAME:addr')``: the first address of a header, '' when there is none."""
    return header_with_modifiers(msg, name, raw=False, addr=True, display=False) or ""


def _env_and_hdr_from(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_for_matching_env_and_hdr_from: EnvelopeFrom and From have the
    same address (two absent ones match too)."""
    return _header_addr(msg, "EnvelopeFrom").lower() == _header_addr(msg, "From").lower()


_SECOND_LEVEL = re.compile(r"^.+\.([^.]+\.[^.]+)$", re.DOTALL)


def _second_level(addr: str) -> str:
    m = re.search(r"@([^@]*)\Z", addr)
    return _SECOND_LEVEL.sub(r"\1", m.group(1)) if m else ""


def _equal_from_domains(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_equal_from_domains (HEADER_FROM_DIFFERENT_DOMAINS): the last
    two labels of the From and EnvelopeFrom domains differ (both known)."""
    ours = _second_level(_header_addr(msg, "From"))
    env = _second_level(_header_addr(msg, "EnvelopeFrom"))
    return bool(ours) and bool(env) and ours.lower() != env.lower()


def _base_domain(name: str, d: EvalData) -> str:
    """RegistryBoundaries' split_domain: the registered domain of a host name, by the
    rule files' ``util_rb_2tld``/``util_rb_3tld`` lines (without any: by the Public
    Suffix List)."""
    if d.two_level_domains is not None or d.three_level_domains is not None:
        return trim_domain(name, d.two_level_domains or set(), d.three_level_domains or set())
    return registrable_domain(name, private=False) or name


def _mailfrom_matches_rcvd(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """WLBLEval's check_mailfrom_matches_rcvd (__RP_MATCHES_RCVD): the envelope
    sender's registered domain is that of the first untrusted relay's reverse DNS name
    (with no untrusted relay, of any trusted one's)."""
    m = re.search(r"@([^@]+\.[^@]+)\Z", _header_addr(msg, "EnvelopeFrom"))
    if m is None:
        return False
    domain = _base_domain(m.group(1).lower(), d)
    return any(rdns and _base_domain(rdns, d) == domain for rdns in msg.relay_info().match_rdns)


# -- RelayEval ---------------------------------------------------------------------------


def _all_trusted(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """ALL_TRUSTED: trusted relays only, none untrusted or unparseable."""
    r = msg.relay_info()
    return bool(r.n_trusted) and not r.n_untrusted and not r.n_unparseable


def _no_relays(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """NO_RELAYS: no relay at all (nor an unparseable Received line)."""
    r = msg.relay_info()
    return not (r.n_trusted or r.n_untrusted or r.n_unparseable)


def _relays_unparseable(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return bool(msg.relay_info().n_unparseable)


def _body_emails(msg: PreparedMessage) -> list[str]:
    """The addresses FreeMail's ``_parse_body`` reads, in order, lower case (found once
    per message; not to be changed).  Every pattern needs an ``@``: text without one is
    not searched."""
    found = msg.body_emails
    if found is not None:
        return found
    emails: dict[str, None] = {}
    pats = _email_patterns(msg.tlds)
    for i, part in enumerate(msg.parts):
        if part.content_type == "text/html":
            data = msg.part_body(i)[:RAWBODY_SCAN]
            if b"@" not in data:
                continue
            for m in pats.href_mailto.finditer(data.decode("utf-8", "replace")):
                emails[m.group(1).lower()] = None
    text = msg.view.text[:RAWBODY_SCAN]
    if "@" in text:
        text = pats.quoted.sub(" ", _URL_WITH_AT.sub(" ", text))
        for m in pats.email.finditer(text):
            emails[m.group(1).lower()] = None
            if len(emails) >= 40:
                break
    found = msg.body_emails = list(emails)
    return found


def _body_freemails(msg: PreparedMessage, d: EvalData) -> list[str] | None:
    """FreeMail's ``_parse_body``: freemail addresses of mailto links and of the text
    (not those in ``<>``, in URLs or before ``wrote:``); ``None`` past its limits
    (5 addresses, 3 freemails)."""
    free: list[str] = []
    for n, addr in enumerate(_body_emails(msg), 1):
        if n == 5:
            return None
        if _is_freemail(addr, d.freemail_domains):
            free.append(addr)
            if len(free) == 3:
                return None
    return free


def _replyto_verdict(msg: PreparedMessage, d: EvalData, what: str) -> bool | None:
    """check_freemail_replyto's answer from the headers alone; ``None``: it goes on to
    read the body (``_parse_body``)."""
    envfrom = _envelope_from(msg)
    if envfrom is not None and _BULK_ENVFROM.search(envfrom):
        return False
    froms, replies = _addresses(msg, "From")[:1], _addresses(msg, "Reply-To")[:1]
    free = d.freemail_domains
    reply_free = any(_is_freemail(x, free) for x in replies)
    from_free = any(_is_freemail(x, free) for x in froms)
    if from_free and reply_free and not any(f in replies for f in froms):
        return True
    if what == "replyto":
        if not reply_free:
            return False
    elif replies and not reply_free:
        return False
    elif not from_free:
        return False
    return None


def _freemail_replyto(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """FreeMail's check_freemail_replyto('replyto' or 'reply'): From and Reply-To
    different freemail addresses, or a freemail Reply-To ('reply': else a freemail From
    and no Reply-To) and another freemail in the body."""
    verdict = _replyto_verdict(msg, d, a[0])
    if verdict is not None:
        return verdict
    body = _body_freemails(msg, d)
    if not body:
        return False
    replies = _addresses(msg, "Reply-To")[:1]
    reply_free = any(_is_freemail(x, d.freemail_domains) for x in replies)
    compared = replies if a[0] == "replyto" or reply_free else _addresses(msg, "From")[:1]
    return any(b != r for b in body for r in compared)


def freemail_edits_body(msg: PreparedMessage, d: EvalData, whats: Sequence[str]) -> bool:
    """Whether FreeMail's ``_parse_body`` runs for this message (one of the
    check_freemail_replyto forms ``whats`` a rule set runs gets past the headers).

    ``_parse_body`` strips, in place, the URLs holding an ``@`` and the addresses in
    ``<>`` or before a ``word:`` from the very body lines the body rules then match
    (its ``foreach (@$body) { s{...}{ }gi }`` aliases them), as the head evals run
    before the body rules: see :func:`freemail_stripped_lines`."""
    return any(_replyto_verdict(msg, d, w) is None for w in whats)


def freemail_stripped_lines(lines: Sequence[bytes],
                            tlds: frozenset[str] | None = None) -> list[bytes]:
    """The body lines as FreeMail's ``_parse_body`` leaves them: each URL holding an
    ``@`` (or ``%40``) and each address in ``<>`` or followed by ``wrote:``-like text
    replaced by a space (octets, ASCII classes, as Perl matches them); an address
    ends in a top-level domain of ``tlds`` (``None``: the Public Suffix List's)."""
    quoted = _email_patterns(tlds).quoted_octets
    out = []
    for line in lines:
        if b"@" in line or b"%40" in line:
            line = quoted.sub(b" ", _URL_WITH_AT_B.sub(b" ", line))
        out.append(line)
    return out


# -- HeaderEval's and RelayEval's forged-Received tests ---------------------------------------


_IPV4_OCTET = r"(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)"
_IPV4 = r"\b" + r"\.".join([_IPV4_OCTET] * 4) + r"\b"
#: Constants.pm's IP_ADDRESS, reduced: an IPv4 address or an IPv6-looking run
_IP_ADDRESS = r"(?:\b(?<!:)" + r"\.".join([_IPV4_OCTET] * 4) + r"\b" \
    + r"|(?<![a-f0-9:])(?:[a-f0-9]{1,4}:){1,7}[a-f0-9:.]*[a-f0-9])"
_IS_IPV4 = re.compile(r"^" + _IPV4 + r"$")
_IP_PRIVATE = re.compile(
    r"^(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168"
    r"|100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\..*$")
_RELAY_FIELDS = re.compile(r"\[ ip=(\S*) rdns=(\S*) helo=(\S*) by=(\S*) ")


def _received_spaced(msg: PreparedMessage, name: str = "Received") -> str:
    """``$pms->get(NAME)`` with white space runs made one space, "" when absent."""
    return " ".join((msg.header_text(name) or "").split())


def _from_addr(msg: PreparedMessage) -> str:
    return header_with_modifiers(msg, "From", raw=False, addr=True, display=False) or ""


def _fake_aol_relay(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_for_fake_aol_relay_in_rcvd (__FORGED_AOL_RCVD): AOL's relay
    host name format in a Received header that is not AOL's own relay line."""
    rcvd = _received_spaced(msg)
    if not re.search(r" rly-[a-z][a-z]\d\d\.", rcvd, re.I):
        return False
    return not (re.search(r"/AOL-\d+\.\d+\.\d+\)", rcvd)
                or re.search(r"ESMTP id (?:RELAY|MAILRELAY|MAILIN)", rcvd))


def _msn_groups(msg: PreparedMessage) -> bool:
    """HeaderEval's check_for_msn_groups_headers: mail an MSN group relayed."""
    m = re.search(r"<(\S+)\@groups\.msn\.com>", msg.header_text("To") or "", re.I)
    if m is None:
        return False
    listname = m.group(1)
    srv = re.search(r"from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b",
                    msg.header_text("Received") or "")
    if srv is None:
        return False
    mid = msg.header_text("Message-Id") or ""
    if listname == "notifications":
        return re.search(r"^<\S+\@" + re.escape(srv.group(1)) + ">", mid) is not None
    env = header_with_modifiers(msg, "EnvelopeFrom", raw=False, addr=True, display=False)
    return (re.search(r"^<" + re.escape(listname) + r"-\S+\@groups\.msn\.com>", mid) is not None
            and re.search(re.escape(listname) + r"-bounce\@groups\.msn\.com", env or "")
            is not None)


def _hotmail_forgery(msg: PreparedMessage) -> tuple[bool, bool]:
    """HeaderEval's ``_check_for_forged_hotmail_received_headers``: (a Received header
    HELO'd as hotmail.com that is not Hotmail's, a hotmail.com From with no Hotmail
    Received header)."""
    cached = msg.memo.get("hotmail_forgery")
    if cached is not None:
        return cached == 1, cached == 2
    result = 0.0
    rcvd = _received_spaced(msg)
    ip_hdr = msg.header_text("X-Originating-Ip")
    orig_hdr = msg.header_text("X-OriginatorOrg")
    ip = ip_hdr is not None and re.search(_IP_ADDRESS, ip_hdr, re.I) is not None
    orig = orig_hdr is not None and re.search(r"hotmail\.com|msonline\-outlook", orig_hdr) is not None
    if not (re.search(r"from mail pickup service by hotmail\.com with Microsoft SMTPSVC;", rcvd)
            or _msn_groups(msg) or _received_hdr_remover(msg, _NO_DATA, ())
            or (ip and re.search(r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ )]",
                                 rcvd))
            or (orig and re.search(r"from \S*\.outbound\.protection\.outlook\.com "
                                   r"\(\S+\.outbound\.protection\.outlook\.com[ )]", rcvd))
            or (orig and re.search(r"from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \("
                                   + _IP_ADDRESS + r"\)", rcvd, re.I))
            or (ip and re.search(r"from \S*\.hotmail.com \(\[" + _IP_ADDRESS + r"\][ ):]",
                                 rcvd, re.I))
            or (ip and re.search(r"from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;", rcvd))
            or (ip and re.search(r"from \[66\.218.\S+\] by \S+\.yahoo\.com", rcvd))):
        if re.search(r"(?:from |HELO |helo=)\S*hotmail\.com\b", rcvd):
            result = 1.0
        elif re.search(r"\bhotmail\.com$", _from_addr(msg), re.I):
            result = 2.0
    msg.memo["hotmail_forgery"] = result
    return result == 1, result == 2


def _forged_hotmail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_hotmail_received_headers (__FORGED_HOTMAIL_RCVD)."""
    return _hotmail_forgery(msg)[0]


def _no_hotmail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_no_hotmail_received_headers (FORGED_HOTMAIL_RCVD2)."""
    return _hotmail_forgery(msg)[1]


def _forged_eudoramail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_eudoramail_received_headers (__FORGED_EUDORAMAIL_RCVD)."""
    if not re.search(r"\beudoramail\.com$", _from_addr(msg), re.I):
        return False
    ip_hdr = msg.header_text("X-Sender-Ip")
    ip = ip_hdr is not None and re.search(_IP_ADDRESS, ip_hdr, re.I) is not None
    if _received_hdr_remover(msg, _NO_DATA, ()):
        return False
    return not (re.search(r"by \S*whowhere.com;", _received_spaced(msg)) and ip)


def _forged_yahoo(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_yahoo_received_headers (FORGED_YAHOO_RCVD): a yahoo.com From
    without Yahoo's own Received lines or relay."""
    addr = _from_addr(msg)
    if not re.search(r"\byahoo\.com$", addr, re.I):
        return False
    rcvd = _received_spaced(msg)
    if (msg.header_text("Resent-From") or "") != "" and (msg.header_text("Resent-To") or "") != "":
        xrcvd = _received_spaced(msg, "X-Received")
        rcvd = xrcvd or rcvd
    if _received_hdr_remover(msg, _NO_DATA, ()):
        return False
    relays = msg.relay_info()
    if (re.search(r" rdns=\S+\.yahoo\.com ", relays.trusted)
            or re.search(r"^[^\]]+ rdns=\S+\.yahoo\.com ", relays.untrusted)):
        return False
    if (re.search(r"by web\S+\.mail\S*\.yahoo\.com via HTTP", rcvd)
            or re.search(r"by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP", rcvd)
            or re.search(r"by smtp\S+\.yahoo\.com with SMTP", rcvd)
            or re.search(r"from \[" + _IP_ADDRESS
                         + r"\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP", rcvd, re.I)):
        return False
    if (re.search(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b", rcvd)
            and re.search(r"\@reply\.yahoo\.com$", addr, re.I)):
        return False
    return not re.search(
        r"by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+", rcvd)


def _forged_juno(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_juno_received_headers (__FORGED_JUNO_RCVD)."""
    if not re.search(r"\bjuno\.com$", _from_addr(msg), re.I):
        return False
    if _received_hdr_remover(msg, _NO_DATA, ()):
        return False
    xorig = msg.header_text("X-Originating-IP") or ""
    xmailer = msg.header_text("X-Mailer") or ""
    rcvd = msg.header_text("Received") or ""
    if xorig != "":
        if (not re.search(r"from.*\b(?:juno|untd)\.com.*[\[(]" + _IP_ADDRESS + r"[\])].*by",
                          rcvd, re.I)
                and not re.search(r" cookie\.(?:juno|untd)\.com ", rcvd)):
            return True
        if "Juno " not in xmailer:
            return True
    else:
        if re.search(r"from.*\bmail\.com.*\[" + _IP_ADDRESS + r"\].*by", rcvd, re.I):
            if not re.search(r"\bmail\.com", xmailer):
                return True
        elif re.search(r"from (webmail\S+\.untd\.com) \(\1 \[" + _IP_ADDRESS + r"\]\) by",
                       rcvd, re.I):
            if not re.search(r"^Webmail Version \d", xmailer):
                return True
        else:
            return True
        if not re.search(_IP_ADDRESS, xorig, re.I):
            return True
    return False


def _forged_gmail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_gmail_received_headers (FORGED_GMAIL_RCVD): a gmail.com From
    without Google's X-Received line or its long X-Gm-Message-State and
    X-Google-Smtp-Source fields."""
    if not re.search(r"\bgmail\.com$", _from_addr(msg), re.I):
        return False
    xreceived = msg.header_text("X-Received") or ""
    if (re.search(r"by 10\.\S+ with SMTP id \S+", xreceived)
            or re.search(r"by 2002:a\d\d:\w+:\S+ with SMTP id \S+", xreceived)
            or re.search(r"by smtp\.googlemail\.com with ESMTPSA id \S+",
                         msg.header_text("Received") or "")):
        return False
    return not (len(msg.header_text("X-Gm-Message-State") or "") >= 60
                and len(msg.header_text("X-Google-Smtp-Source") or "") >= 60)


def _untrusted_relays(msg: PreparedMessage) -> list[tuple[str, str, str, str]]:
    """(ip, rdns, helo, by) of each untrusted relay, from X-Spam-Relays-Untrusted."""
    return _RELAY_FIELDS.findall(msg.relay_info().untrusted)


def _helo_ip_mismatch(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's helo_ip_mismatch (RCVD_HELO_IP_MISMATCH): an untrusted relay whose
    HELO is a public IPv4 address outside the /24 of its own public address."""
    for ip, _rdns, helo, _by in _untrusted_relays(msg):
        if not _IS_IPV4.match(helo) or _IP_PRIVATE.match(helo):
            continue
        prefix = re.match(r"^(\d+\.\d+\.\d+\.)", helo)
        if (_IS_IPV4.match(ip) and not _IP_PRIVATE.match(ip) and helo != ip
                and prefix is not None and not ip.startswith(prefix.group(1))):
            return True
    return False


def _hostname_to_domain(host: str) -> str:
    """RelayEval's hostname_to_domain: the last two labels (three for a two-letter TLD
    other than ie, fr, de), an address unchanged."""
    if not re.search(r"[a-zA-Z]", host):
        return host
    labels = host.split(".")
    if len(labels) > 1 and re.search(r"(?:\S{3,}|ie|fr|de)", labels[-1]):
        return ".".join(labels[-2:])
    if len(labels) > 2:
        return ".".join(labels[-3:])
    return host


_HOSTNAME = re.compile(r"^\w+(?:[\w.-]+\.)+\w+$")


def _forged_received_trail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's check_for_forged_received_trail (__FORGED_RCVD_TRAIL): more than one
    untrusted relay whose ``by`` domain is not the reverse-DNS domain of the relay
    below it."""
    relays = _untrusted_relays(msg)
    by = [_hostname_to_domain(r[3].lower()) for r in relays]
    frm: list[str | None] = [_hostname_to_domain(r[1].lower()) for r in relays]
    mismatch = 0
    for i, (ip, _rdns, _helo, _by) in enumerate(relays):
        if not _HOSTNAME.match(by[i]):
            continue
        if re.match(r"^localhost(?:\.localdomain)?$", frm[i] or "") and ip == "127.0.0.1":
            frm[i] = None
        prev = frm[i - 1] if i > 0 else None
        if (prev is not None and _HOSTNAME.match(prev) and by[i] != prev
                and not (by[i] == "msn.com" and prev == "hotmail.com")):
            mismatch += 1
    return mismatch > 1


class _NoData:
    freemail_domains: set[str] = set()
    addrlists: dict[str, list[str]] = {}
    uri_hosts: dict[str, list[str]] = {}
    wlbl: WlblLists = WlblLists()
    auth_lists: AuthLists = AuthLists()
    ok_locales: str = "all"
    two_level_domains: set[str] | None = None
    three_level_domains: set[str] | None = None


_NO_DATA = _NoData()


# -- BodyEval and MIMEEval ------------------------------------------------------------------


_UPPER = bytes(range(65, 91))
_LOWER_OR_DIGIT = bytes(range(97, 123)) + b"0123456789"
_SPACED = re.compile(rb"\S\s+\S")
_BASE64_START = re.compile(rb"(?:[A-Za-z0-9+/=]{60,76} ){2}")
_SHIFT_JIS = re.compile(rb"\x1b\$B.*\x1b\(B", re.DOTALL)
# Constants.pm's CHARSETS_LIKELY_TO_FP_AS_CAPS, matched whole
_CAPS_FP_CHARSET = re.compile(r"[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|"
                              r"windows-1251|georgianps|pt154|tis)[-_a-z0-9]*\n?\Z",
                              re.IGNORECASE)


def _charset_fp_as_caps(msg: PreparedMessage) -> bool:
    """MIMEEval's ``body_charset_is_likely_to_fp``: the message's Content-Type or a MIME
    part names a charset whose text reads as capitals (KOI8, the Japanese, Chinese and
    Cyrillic ones, TIS-620...)."""
    charsets: list[str] = []
    ctype = msg.header_text("Content-Type")
    if ctype is not None:
        charsets.extend(m.group(1) for rx in _CT_CHARSET for m in [rx.search(ctype)] if m)
        del charsets[1:]  # get_charset_from_ct_line: the first form found
    for p in msg.parts:
        m = _PART_CHARSET.search(" ".join(_first_header(p.headers, "content-type").split()))
        if m and re.search(r"[a-z]", m.group(1), re.IGNORECASE):
            charsets.append(m.group(1).lower())
    return any(_CAPS_FP_CHARSET.match(c) for c in charsets)


def _uppercase_ratio(msg: PreparedMessage) -> float:
    """MIMEEval's check_for_uppercase value: the percentage of capitals among the
    letters and digits (digits count as lower case) of the body lines with a space
    between words, lines opening with two base64-looking words and Shift-JIS escapes
    left out; 0 under 200 octets or for a charset likely to read as capitals."""
    cached = msg.memo.get("uppercase")
    if cached is not None:
        return cached
    ratio = 0.0
    if not _charset_fp_as_caps(msg):
        # (the lines kept, joined: their lengths and counts add up)
        text = b"".join(_SHIFT_JIS.sub(b"", line) if b"\x1b$B" in line else line
                        for line in msg.body
                        if _SPACED.search(line) and not _BASE64_START.match(line))
        length = len(text)
        lower = length - len(text.translate(None, _LOWER_OR_DIGIT))
        upper = length - len(text.translate(None, _UPPER))
        if length >= 200 and upper + lower:
            ratio = upper / (upper + lower) * 100
    msg.memo["uppercase"] = ratio
    return ratio


def _uppercase(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    return float(a[0]) < _uppercase_ratio(msg) <= float(a[1])


def _body_length(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """BodyEval's check_body_length(MAX): the body's octets as received, at most MAX
    (``<=``: a 128-octet body is __KAM_BODY_LENGTH_LT_128, whatever the name says)."""
    return msg.raw_body_length <= float(a[0])


def _base64_length(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    longest = 0
    for p in msg.parts:
        if p.encoding == "base64":
            for line in p.encoded.splitlines():
                longest = max(longest, len(line.rstrip()))
    lo = float(a[0])
    hi = float(a[1]) if len(a) > 1 else float("inf")
    return longest >= lo and longest <= hi


_MIME_FLAGS = ("mime_base64_count", "mime_qp_count", "mime_attachment",
               "mime_base64_encoded_text", "mime_qp_long_line")


_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]*)""", re.IGNORECASE)
_ASCII_CHARSET = re.compile(r"us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|"
                            r"iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii")
# QP escapes of characters that need no escaping (MIMEEval's "excessive QP")
_QP_NEEDLESS = re.compile(rb"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])")
_QP_TRAILING = re.compile(rb"((?:=09|=20)+)\s*$")


_MIME_FIELDS = frozenset({"content-transfer-encoding", "content-disposition", "content-type"})


def _mime_flags(msg: PreparedMessage) -> dict[str, float]:
    """MIMEEval's ``_check_attachments`` flags over the MIME leaves."""
    flags = dict.fromkeys(_MIME_FLAGS, 0.0)
    qp_bytes = qp_count = 0
    for p in msg.parts:
        # the first of each (lower case, stripped, as MIMEEval reads them), in one pass
        first: dict[str, str] = {}
        for k, v in p.headers:
            lk = k.lower()
            if lk in _MIME_FIELDS and lk not in first:
                first[lk] = v.strip().lower()
        cte = first.get("content-transfer-encoding", "")
        cd = first.get("content-disposition", "")
        m = _CHARSET.search(first.get("content-type", ""))
        charset = m.group(1) if m else ""
        if "base64" in cte:
            flags["mime_base64_count"] += 1
        elif "quoted-printable" in cte:
            flags["mime_qp_count"] += 1
        if "attachment" in cd:
            flags["mime_attachment"] += 1
        if (p.content_type.startswith("text") and "base64" in cte
                and (not charset or _ASCII_CHARSET.search(charset))
                and not re.match(r"attachment|inline", cd)):
            flags["mime_base64_encoded_text"] = 1
        if cte != "quoted-printable":
            continue
        if b"SPAM: " not in p.encoded:
            # the loop below, over the whole part: no line is skipped, the lines'
            # lengths add up to the part's, an escape never spans lines, and a trailing
            # =09/=20 run is itself needless escapes (so only lines with one are read)
            data = p.encoded
            if max(map(len, data.splitlines()), default=0) + 1 > 79:
                flags["mime_qp_long_line"] = 1
            qp_bytes += len(data)
            qp_count += len(_QP_NEEDLESS.findall(data))
            if b"=09" in data or b"=20" in data:
                for line in data.splitlines(keepends=True):
                    t = _QP_TRAILING.search(line) if b"=" in line else None
                    if t:
                        qp_count -= len(t.group(1)) // 3
            continue
        for line in p.encoded.splitlines(keepends=True):
            if line.startswith(b"SPAM: "):
                continue
            if len(line.rstrip(b"\r\n")) + 1 > 79:
                flags["mime_qp_long_line"] = 1
            qp_bytes += len(line)
            if b"=" in line:
                n = len(_QP_NEEDLESS.findall(line))
                if n:
                    t = _QP_TRAILING.search(line)
                    qp_count += n - (len(t.group(1)) // 3 if t else 0)
    if qp_bytes:
        flags["mime_qp_count"] = float(qp_count)
    return flags


def _for_mime(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    key = "mime:" + a[0]
    if key not in msg.memo:
        msg.memo.update({"mime:" + k: v for k, v in _mime_flags(msg).items()})
    return msg.memo[key] > 0


def _html_tag_exists(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HTMLEval's html_tag_exists(TAG): the tag opens or closes in a text/html part."""
    if msg.html_tags is None:
        tags: set[str] = set()
        for i, part in enumerate(msg.parts):
            if part.content_type == "text/html":
                html = _NOT_TAGS.sub(_opening_tag, msg.part_body(i)[:RAWBODY_SCAN])
                # (each distinct spelling lower-cased once: tags repeat many times)
                tags.update(t.lower().decode("ascii") for t in set(_HTML_TAG.findall(html)))
        msg.html_tags = frozenset(tags)
    return a[0].lower() in msg.html_tags


_HTML_TAG = re.compile(rb"</?([A-Za-z][A-Za-z0-9]{0,15})(?=[\s/>])")
# what HTML::Parser reports no tag in: comments, and the content of the elements it
# reads as literal text up to their end tag (a <script> inside an <iframe> is text).
# ``<!--.*?(?:-->|\Z)|(<(iframe|...)\b[^>]*>).*?(?=</\2\s*>|\Z)`` written to be
# tried only at a "<" and to take runs of octets that cannot end it at a time (the
# same matches: the lazy scans stop at the first "-->" or "</name>", or the end)
_NOT_TAGS = re.compile(rb"(?=<)(?:<!--[^-]*+(?:-(?!->)[^-]*+)*+(?:-->|\Z)"
                       rb"|(<(iframe|textarea|xmp|title|script|style)\b[^>]*>)"
                       rb"[^<]*+(?:<(?!/\2\s*>)[^<]*+)*+)", re.IGNORECASE | re.DOTALL)


def _opening_tag(m: re.Match[bytes]) -> bytes:
    return m.group(1) or b""


def _html_parts(msg: PreparedMessage) -> list[HtmlResults]:
    """HTMLEval's ``html_all``: the values of each text/html part, parsed once."""
    if msg.html is None:
        msg.html = [parse_html(msg.part_body(i)) for i, p in enumerate(msg.parts)
                    if p.content_type == "text/html"]
        # (the renderer counted HTML.pm's obfuscation)
        rendered = [i for i, p in enumerate(msg.parts) if p.content_type == "text/html"]
        for h, i in zip(msg.html, rendered):
            h.obfuscation = msg.part_texts.get(i, ("", "", False, 0))[3]
    return msg.html


_HTML_FLAGS = {"html": None, "embeds": "embeds", "form_action_mailto": "form_action_mailto",
               "font_face_bad": "font_face_bad", "font_low_contrast": "font_low_contrast",
               "font_invalid_color": "font_invalid_color"}


def _html_test(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_test(NAME): HTML_MESSAGE ('html': any text/html part), embeds, a mailto
    form, a bad font face."""
    attr = _HTML_FLAGS[a[0]]
    return any(attr is None or getattr(h, attr) for h in _html_parts(msg))


def _in_range(value: float | None, lo: str, hi: str) -> bool:
    if value is None:
        return False
    return value > float(lo) and (hi == "inf" or value <= float(hi))


_HTML_RANGES = frozenset({"length", "closed_extra_ratio", "bad_tag_ratio", "non_element_ratio",
                          "obfuscation_ratio", "max_size"})


def _html_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_range(NAME, MIN, MAX): MIN < value <= MAX in some text/html part."""
    return any(_in_range(h.value(a[0]), a[1], a[2]) for h in _html_parts(msg))


_COMPARE = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "==": float.__eq__, "!=": float.__ne__, "<": float.__lt__, "<=": float.__le__,
    ">": float.__gt__, ">=": float.__ge__}


def _compare(value: float, expr: str) -> bool:
    m = _COMPARE.match(expr)
    return m is not None and _OPS[m.group(1)](value, float(m.group(2)))


def _html_eval(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_eval('length', EXPR): a text/html part's length compared as EXPR says."""
    return any(_compare(float(h.length), a[1]) for h in _html_parts(msg))


def _html_tag_balance(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_tag_balance(TAG, EXPR): opened minus closed TAGs compared as EXPR says."""
    tag = a[0].lower()
    return any(tag in h.inside and _compare(float(h.inside[tag]), a[1])
               for h in _html_parts(msg))


def _html_image_only(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_image_only(MIN, MAX): a part with an <img> whose length is in (MIN, MAX]."""
    return any("img" in h.inside and _in_range(float(h.length), a[0], a[1])
               for h in _html_parts(msg))


def _html_image_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_image_ratio(MIN, MAX): non-space text characters per image pixel."""
    return any(h.image_area > 0 and _in_range(h.non_space_len / h.image_area, a[0], a[1])
               for h in _html_parts(msg))


def _html_text_match(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_text_match(WHAT, REGEX): ('anchor', '<img>') an image inside a link;
    ('comment' or 'title', REGEX) a comment or title of a text/html part matching."""
    parts = _html_parts(msg)
    if a[0] == "anchor":
        return any(h.link_image for h in parts)
    rx = _perl_bytes_re(a[1])
    return any(rx.search(t) for h in parts for t in (h.comment if a[0] == "comment" else h.title))


@functools.lru_cache(maxsize=64)
def _perl_bytes_re(text: str) -> re.Pattern[bytes]:
    return re.compile(text.encode("utf-8"))


def _text_match_args(a: Sequence[str]) -> bool:
    if a == ("anchor", "<img>"):
        return True
    if len(a) != 2 or a[0] not in ("comment", "title"):
        return False
    try:
        _perl_bytes_re(a[1])
    except re.error:
        return False
    return True


def _mime_html(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return msg.view.has_html


def _mime_html_only(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return msg.view.has_html and not msg.view.has_text_plain


_MIME_PARSE_FLAGS = frozenset({"mime_epilogue_exists", "missing_mime_headers",
                               "missing_mime_head_body_separator"})
_PARSE_FLAGS = _MIME_PARSE_FLAGS | {"missing_head_body_separator", "truncated_header"}


def _msg_parse_flags(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's check_msg_parse_flags(FLAG): a flag Message.pm set while parsing; the
    MIME ones (T_TVD_MIME_EPI, T_TVD_MIME_NO_HEADERS, MISSING_MIME_HB_SEP) come from the
    multipart parts (``PreparedMessage.mime_flags``)."""
    if a[0] in _MIME_PARSE_FLAGS:
        return a[0] in msg.mime_flags
    return _parse_flags(msg, d, a)


_SA_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)""", re.IGNORECASE)
_NOT_PLAIN_TEXT = frozenset({"text/html", "text/calendar", "text/x-vcard"})
_ASCII_ILLEGAL = re.compile(rb"[\x00\x0d\x80-\xff]")


def _ascii_text_illegal(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's check_for_ascii_text_illegal (PP_MIME_FAKE_ASCII_TEXT): a text/plain
    leaf (SpamAssassin reads every text/* but HTML, calendar and vCard as text/plain)
    whose charset is us-ascii or unset, with a NUL, a CR or an 8-bit octet in its
    encoded lines.  A message with CRLF line ends has them made LF first, as
    SpamAssassin does."""
    for p, data in _plain_text_leaves(msg):
        # the last Content-Type, as Util.pm's parse_content_type takes it
        ctype = _last_field(p, "content-type")
        if ctype is None:
            charset: str | None = "us-ascii"
        else:
            m = _SA_CHARSET.search(" ".join(ctype.split()))
            charset = m.group(1).lower() if m else None
        if charset not in (None, "us-ascii"):
            continue
        if _ASCII_ILLEGAL.search(data):
            return True
    return False


def _plain_text_leaves(msg: PreparedMessage) -> Iterator[tuple[MimePart, bytes]]:
    """The leaves MIMEEval's ``_check_attachments`` reads as text/plain (every text/*
    but HTML, calendar and vCard), each with its encoded lines; a message with CRLF line
    ends has them made LF first, as SpamAssassin does."""
    crlf = msg.raw[:msg.raw.find(b"\n") + 1].endswith(b"\r\n")
    for p in msg.parts:
        if p.content_type.startswith("text/") and p.content_type not in _NOT_PLAIN_TEXT:
            yield p, (p.encoded.replace(b"\r\n", b"\n") if crlf else p.encoded)


def _last_field(part: MimePart, name: str) -> str | None:
    """A part's last field ``name`` (lower case), as ``get_header`` answers for one."""
    return next((v for k, v in reversed(part.headers) if k.lower() == name), None)


def _any(_a: Sequence[str]) -> bool:
    return True


def _nargs(n: int, *, numeric: bool = False) -> Callable[[Sequence[str]], bool]:
    def check(a: Sequence[str]) -> bool:
        return len(a) == n and (not numeric or all(_num(x) or x == "undef" for x in a))
    return check


_H = frozenset({"header"})
_B = frozenset({"body"})
_R = frozenset({"rawbody", "body"})
EVALS: Mapping[str, EvalSpec] = {
    "check_header_count_range": EvalSpec(
        _H, lambda a: len(a) == 3 and _num(a[1]) and _num(a[2]), _header_count_range),
    "check_illegal_chars": EvalSpec(
        _H, lambda a: len(a) == 3 and _num(a[1]) and _num(a[2]), _illegal_chars),
    "check_for_missing_to_header": EvalSpec(_H, _nargs(0), _missing_to),
    "check_msg_parse_flags": EvalSpec(
        _H | _B, lambda a: len(a) == 1 and a[0] in _PARSE_FLAGS, _msg_parse_flags),
    "subject_is_all_caps": EvalSpec(_H, _nargs(0), _subject_all_caps),
    "check_unresolved_template": EvalSpec(_H, _nargs(0), _unresolved_template),
    "check_for_shifted_date": EvalSpec(_H, _nargs(2, numeric=True), _shifted_date),
    "check_freemail_from": EvalSpec(_H, _nargs(0), _freemail_from),
    "check_freemail_header": EvalSpec(
        _H, lambda a: len(a) == 1 or (len(a) == 2 and _valid_re(a[1])), _freemail_header),
    "check_freemail_replyto": EvalSpec(
        _H | _B, lambda a: a in (("replyto",), ("reply",)), _freemail_replyto),
    "check_uri_host_listed": EvalSpec(frozenset({"header", "body", "uri"}), _nargs(1), _uri_host_listed),
    "check_for_uppercase": EvalSpec(_B, _nargs(2, numeric=True), _uppercase),
    "check_body_length": EvalSpec(_B, _nargs(1, numeric=True), _body_length),
    "check_base64_length": EvalSpec(
        _B, lambda a: len(a) in (1, 2) and all(_num(x) for x in a), _base64_length),
    "check_for_mime": EvalSpec(_R, lambda a: len(a) == 1 and a[0] in _MIME_FLAGS, _for_mime),
    "html_tag_exists": EvalSpec(_B, lambda a: len(a) == 1 and a[0].isalnum(), _html_tag_exists),
    "check_for_mime_html": EvalSpec(_B, _nargs(0), _mime_html),
    "html_test": EvalSpec(_B, lambda a: len(a) == 1 and a[0] in _HTML_FLAGS, _html_test),
    "html_range": EvalSpec(
        _B, lambda a: len(a) == 3 and a[0] in _HTML_RANGES and _num(a[1])
        and (_num(a[2]) or a[2] == "inf"), _html_range),
    "html_eval": EvalSpec(
        _B, lambda a: len(a) == 2 and a[0] == "length" and bool(_COMPARE.match(a[1])),
        _html_eval),
    "html_tag_balance": EvalSpec(
        _B, lambda a: len(a) == 2 and a[0].isalnum() and bool(_COMPARE.match(a[1])),
        _html_tag_balance),
    "html_image_only": EvalSpec(_B, _nargs(2, numeric=True), _html_image_only),
    "html_image_ratio": EvalSpec(_B, _nargs(2, numeric=True), _html_image_ratio),
    "html_text_match": EvalSpec(_B, _text_match_args, _html_text_match),
    "check_for_matching_env_and_hdr_from": EvalSpec(_H, _nargs(0), _env_and_hdr_from),
    "check_equal_from_domains": EvalSpec(_H, _nargs(0), _equal_from_domains),
    "check_mailfrom_matches_rcvd": EvalSpec(_H, _nargs(0), _mailfrom_matches_rcvd),
    "check_outlook_message_id": EvalSpec(_H, _nargs(0), _outlook_message_id),
    "gated_through_received_hdr_remover": EvalSpec(_H, _nargs(0), _received_hdr_remover),
    "check_ratware_name_id": EvalSpec(_H, _nargs(0), _ratware_name_id),
    "check_ratware_envelope_from": EvalSpec(_H, _nargs(0), _ratware_envelope_from),
    "check_all_trusted": EvalSpec(_H, _nargs(0), _all_trusted),
    "check_no_relays": EvalSpec(_H, _nargs(0), _no_relays),
    "check_relays_unparseable": EvalSpec(_H, _nargs(0), _relays_unparseable),
    "check_for_mime_html_only": EvalSpec(_B, _nargs(0), _mime_html_only),
    "check_for_ascii_text_illegal": EvalSpec(_B, _nargs(0), _ascii_text_illegal),
    "check_for_fake_aol_relay_in_rcvd": EvalSpec(_H, _nargs(0), _fake_aol_relay),
    "check_for_forged_hotmail_received_headers": EvalSpec(_H, _nargs(0), _forged_hotmail),
    "check_for_no_hotmail_received_headers": EvalSpec(_H, _nargs(0), _no_hotmail),
    "check_for_forged_eudoramail_received_headers": EvalSpec(_H, _nargs(0), _forged_eudoramail),
    "check_for_forged_yahoo_received_headers": EvalSpec(_H, _nargs(0), _forged_yahoo),
    "check_for_forged_juno_received_headers": EvalSpec(_H, _nargs(0), _forged_juno),
    "check_for_forged_gmail_received_headers": EvalSpec(_H, _nargs(0), _forged_gmail),
    "helo_ip_mismatch": EvalSpec(_H, _nargs(0), _helo_ip_mismatch),
    "check_for_forged_received_trail": EvalSpec(_H, _nargs(0), _forged_received_trail),
}
#: (rule kind, eval function) pairs that can run.
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


#: what an eval that fails raises: no hit (:func:`run_eval`, and the engine's own calls)
EVAL_ERRORS = (ValueError, TypeError, IndexError, OverflowError, UnicodeError, re.error)


def run_eval(name: str, msg: PreparedMessage, data: EvalData, args: Sequence[str], *,
             kind: str = "") -> bool:
    """Run one implemented eval.

    :param kind: the rule's kind (``body``, ``rawbody``, ...): image_to_text_ratio reads
        the text that kind is given.
    :returns: whether the rule hits; a failure inside the eval counts as no hit.
    """
    try:
        if name == "image_to_text_ratio":
            return image_to_text_ratio(msg, kind, args)
        return bool(EVALS[name].fn(msg, data, args))
    except EVAL_ERRORS:
        return False



# -- HeaderEval: recipients ----------------------------------------------------------------

_TOCC_SORTED_COUNT = 7
_TOCC_SIMILAR_COUNT = 5
_TOCC_SIMILAR_LENGTH = 2
_MAX_RECIPIENTS = 256


def _check_recipients(msg: PreparedMessage) -> tuple[bool, float]:
    """HeaderEval's ``_check_recipients``: (the recipients are sorted, how alike they
    are), found once per message.

    The addresses of every To then Cc header (Bcc's too when they are fewer than five),
    as written, next-door repeats dropped (case aside), at most 256.  Sorted: seven or
    more, in code-point order.  Alike: with five or more, the share of address pairs
    whose first two characters agree, plus those whose domains differ but start with
    the same two characters.
    """
    memo = msg.memo
    if "tocc_similar" in memo:
        return bool(memo["tocc_sorted"]), memo["tocc_similar"]
    values: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
    for k, v in msg.headers:
        found = values.get(k.lower())
        if found is not None:
            found.append(v)
    inputs: list[str] = []
    for names in (("to", "cc"), ("bcc",)):
        for name in names:
            for v in values[name]:
                inputs.extend(a for _, a in msg.address_pairs(v) if a)
        if len(inputs) >= _TOCC_SIMILAR_COUNT:
            break
    address: list[str] = []
    previous = ""
    for current in inputs:
        if current in ("", "0"):  # (Perl's loop ends at a false value)
            break
        if current.lower() != previous.lower():
            address.append(current)
            previous = current
            if len(address) == _MAX_RECIPIENTS:
                break
    is_sorted = len(address) >= _TOCC_SORTED_COUNT and address == sorted(address)
    similar = 0.0
    if len(address) >= _TOCC_SIMILAR_COUNT:
        user = [a[:_TOCC_SIMILAR_LENGTH] for a in address]
        # (Perl's map drops an address without "@": the lists then no longer line up)
        fqhn = [a.split("@", 1)[1] for a in address if "@" in a]
        host = [h[:_TOCC_SIMILAR_LENGTH] for h in fqhn]
        hits = combinations = 0
        n = len(address)
        for i in range(n):
            for j in range(i + 1, n):
                if user[i] == user[j]:
                    hits += 1
                hi = host[i] if i < len(host) else ""
                hj = host[j] if j < len(host) else ""
                fi = fqhn[i] if i < len(fqhn) else ""
                fj = fqhn[j] if j < len(fqhn) else ""
                if hi == hj and fi != fj:
                    hits += 1
                combinations += 1
        similar = hits / combinations
    memo["tocc_sorted"] = float(is_sorted)
    memo["tocc_similar"] = similar
    return is_sorted, similar


def _sorted_recipients(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return _check_recipients(msg)[0]


def _similar_recipients(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    similar = _check_recipients(msg)[1]
    return ((a[0] == "undef" or similar >= float(a[0]))
            and (a[1] == "undef" or similar < float(a[1])))


# -- BodyEval: vertical words ---------------------------------------------------------------


def _tvd_vertical_words(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """BodyEval's ``tvd_vertical_words``: the highest share of spaces among the other
    octets of a body line over five octets long (100 when spaces are more), -1 without
    such a line; ``min <= value < max`` (a max of 100 or more reads 101)."""
    value = msg.memo.get("tvd_vertical_words")
    if value is None:
        value = -1.0
        for line in msg.body:
            n = len(line)  # (octets: SpamAssassin's lines are octets here)
            if n <= 5:
                continue
            spaces = line.count(b" ")
            others = n - spaces
            pct = 100 if spaces > others or others == 0 else (100 * spaces) // others
            value = max(value, float(pct))
        msg.memo["tvd_vertical_words"] = value
    low, high = float(a[0]), float(a[1])
    if high >= 100:
        high = 101
    return low <= value < high


EVALS = {
    **EVALS,
    "tvd_vertical_words": EvalSpec(_B, _nargs(2, numeric=True), _tvd_vertical_words),
    "sorted_recipients": EvalSpec(_H, _nargs(0), _sorted_recipients),
    "similar_recipients": EvalSpec(_H, _nargs(2, numeric=True), _similar_recipients),
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- BodyEval: multipart/alternative difference --------------------------------------------

_WORD = re.compile(r"\w")


def _alternative_difference(msg: PreparedMessage) -> tuple[float, float, float]:
    """BodyEval's ``_multipart_alternative_difference``: (the highest share, in per cent,
    of an alternative's HTML words its text parts do not hold as often, then the number
    of distinct HTML and text words of the last alternative with HTML words), found once
    per message.  Words are white-space separated tokens holding a word character; an
    HTML part without words but with an ``<img>`` counts one word.  A message that is
    one alternative of text/html and text/calendar (a meeting request) is left out."""
    memo = msg.memo
    if "madiff" in memo:
        return memo["madiff"], memo["madiff_html"], memo["madiff_text"]
    madiff = madiff_html = madiff_text = 0.0
    groups = sorted({k for p in msg.parts for k in p.alternatives})
    calendar = (
        len(msg.parts) == 2
        and [(p.content_type, p.depth) for p in msg.parts]
        == [("text/html", 1), ("text/calendar", 1)]
        and msg.parts[0].alternatives == (0,) == msg.parts[1].alternatives)
    if groups and not calendar:
        for group in groups:
            html: dict[str, int] = {}
            text: dict[str, int] = {}
            for i, part in enumerate(msg.parts):
                if group not in part.alternatives or not part.content_type.startswith("text"):
                    continue
                found = msg.part_texts.get(i)
                if found is None:
                    continue
                kind, rendered, has_img, _ = found
                counts = html if kind == "text/html" else text
                for w in rendered.split():
                    if _WORD.search(w):
                        counts[w] = counts.get(w, 0) + 1
                if kind == "text/html" and not html and has_img:
                    html["\n"] = 1
            orig = len(html)
            if orig == 0:
                continue
            madiff_html, madiff_text = float(orig), float(len(text))
            left = sum(1 for k, v in html.items() if not (k in text and v - text[k] < 1))
            madiff = max(madiff, left / orig * 100)
    memo["madiff"], memo["madiff_html"], memo["madiff_text"] = madiff, madiff_html, madiff_text
    return madiff, madiff_html, madiff_text


def _mpart_alt_difference(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    diff = _alternative_difference(msg)[0]
    return ((float(a[0]) == 0 or diff > float(a[0]))
            and (a[1] == "undef" or diff <= float(a[1])))


def _mpart_alt_difference_count(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    _, html, text = _alternative_difference(msg)
    if not html > float(a[1]):
        return False
    return text / html > float(a[0])


EVALS = {
    **EVALS,
    "multipart_alternative_difference": EvalSpec(
        _B, _nargs(2, numeric=True), _mpart_alt_difference),
    "multipart_alternative_difference_count": EvalSpec(
        _B, _nargs(2, numeric=True), _mpart_alt_difference_count),
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- HTMLEval: title and Subject -----------------------------------------------------------


def _html_title_subject_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HTMLEval's ``html_title_subject_ratio(RATIO)``: in some text/html part, a title
    longer than RATIO times the Subject (as ``get('Subject')`` gives it, newline
    included); never without a Subject."""
    subject = msg.header_text("Subject")
    if not subject:
        return False
    size = len(subject)
    ratio = float(a[0])
    for h in _html_parts(msg):
        longest = max((len(_title_text(t)) / size for t in h.title if t), default=0.0)
        if longest > ratio:
            return True
    return False


def _title_text(raw: bytes) -> str:
    """A title's text as HTML::Parser reports it: decoded, entities too."""
    text = raw.decode("utf-8", "surrogateescape")
    return html.unescape(text) if "&" in text else text


EVALS = {
    **EVALS,
    "html_title_subject_ratio": EvalSpec(_B, _nargs(1, numeric=True), _html_title_subject_ratio),
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- WLBLEval and WelcomeListSubject: a site's welcome and block lists (_wlbl) --------------

EVALS = {
    **EVALS,
    **{name: EvalSpec(kinds, check, fn) for name, (kinds, check, fn) in WLBL_EVALS.items()},
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- SPF and DKIM: SpamAssassin's SPF.pm and DKIM.pm evals over the caller's results --------

EVALS = {
    **EVALS,
    **{name: EvalSpec(kinds, check, fn) for name, (kinds, check, fn) in AUTH_EVALS.items()},
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- MIMEEval, HeaderEval, HTTPSMismatch, URIEval, RelayEval, Locales, ImageInfo ------------


def _mime_multipart_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's ``check_mime_multipart_ratio(MIN, MAX)`` (MIME_HTML_MOSTLY): in a
    message holding a multipart/alternative, the encoded size of the last text/plain
    leaf over that of the last text/html leaf (leaves that are not attachments, from
    the first multipart/alternative on) is in [MIN, MAX); 1.0 when either is missing
    or the HTML one is empty."""
    ratio = msg.memo.get("mime_multipart_ratio")
    if ratio is None:
        ratio = msg.memo["mime_multipart_ratio"] = _multipart_ratio(msg)
    return float(a[0]) <= ratio < float(a[1])


def _first_header(part_headers: Sequence[tuple[str, str]], name: str) -> str:
    for k, v in part_headers:
        if k.lower() == name:
            return v
    return ""


def _multipart_ratio(msg: PreparedMessage) -> float:
    # _check_attachments counts a leaf's raw lines once it has met a
    # multipart/alternative (walking the tree in order): the leaves from the first one
    # inside an alternative on (an empty multipart/alternative is not seen)
    start = next((i for i, p in enumerate(msg.parts) if p.alternatives), None)
    if start is None:
        return 1.0
    text: int | None = None
    html: int | None = None
    for p in reversed(msg.parts[start:]):
        if "attachment" in _first_header(p.headers, "content-disposition").strip().lower():
            continue  # (its size is never defined)
        if p.content_type not in ("text/plain", "text/html"):
            continue
        # Message.pm keeps a leaf's lines without the line end before the boundary
        size = max(len(p.encoded) - (1 if p.depth else 0), 0)
        if html is None and p.content_type == "text/html":
            html = size
        elif text is None and p.content_type == "text/plain":
            text = size
        if html is not None and text is not None:
            break
    if text is not None and html:
        return text / html
    return 1.0


def _to_in_subject(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HeaderEval's ``check_for_to_in_subject('user'|'address')`` (LOCALPART_IN_SUBJECT):
    the Subject (as ``get`` gives it, newline included) is the To address's local part
    alone, "Re:"/"Fw:" and at most one word then it, it followed by punctuation (the
    local part in its own case), or ", " it and punctuation at the end; 'address':
    the whole address as a word anywhere in the Subject."""
    full_to = header_with_modifiers(msg, "To", raw=False, addr=True, display=False)
    if not full_to:
        return False
    subject = msg.header_text("Subject") or ""
    if a[0] == "address":
        return re.search(r"\b" + re.escape(full_to) + r"\b", subject, re.IGNORECASE) is not None
    local = full_to.split("@", 1)[0]
    if local.lower() not in subject.lower():
        return False  # (each form holds it: no pattern to build)
    q = re.escape(local)
    end = r"(?=\n?\Z)"  # Perl's $ without /m
    rx = (rf"^(?:(?:re|fw):\s*(?:\w+\s+)?{q}{end}|(?-i:{q})\s*[,:;!?-](?:{end}|\s)"
          rf"|{q}{end}|,\s*{q}[,:;!?-]{end})")
    return re.match(rx, subject, re.IGNORECASE) is not None


_IS_IP = re.compile(r"^(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F]*:[0-9a-fA-F:.]+)$")
_HTTP_HOST = re.compile(rb"^https?://([^/:?#]+)", re.IGNORECASE)
_HTTPS_IN_TEXT = re.compile(r"https://([^\s/:?#]+)", re.IGNORECASE)


def _valid_domain(name: str, tlds: frozenset[str] | None) -> bool:
    from ._uris import _domain_valid
    return _domain_valid(name.encode("utf-8", "surrogateescape"), tlds)


def _https_http_mismatch(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """HTTPSMismatch's ``check_https_http_mismatch(MIN, MAX)`` (HTTPS_HTTP_MISMATCH): in
    some text/html part, a link to an http(s) host (not an address) whose anchor text
    names an ``https://`` host of another registered domain, with MIN (1 when 0) to
    below MAX links holding anchor text."""
    lo = float(a[0]) if len(a) > 0 and float(a[0]) else 1.0
    hi = float(a[1]) if len(a) > 1 and a[1] != "undef" else None
    for h in _html_parts(msg) if msg.uris else ():
        # the anchor texts naming an https host, first: most parts have none
        named: dict[bytes, list[str]] = {}
        for uri, texts in h.anchors.items():
            for pieces in texts:
                text = b"".join(pieces)
                if b"&" not in text and b"ttps" not in text.lower():
                    continue
                found = _HTTPS_IN_TEXT.search(_title_text(text))
                if found is not None:
                    named.setdefault(uri, []).append(found.group(1))
        if not named:
            continue
        hit = False
        anchors = 0
        for uri in h.anchors:
            domain = _link_domain(uri, msg.tlds, d)
            if domain is None:
                continue
            anchors += 1
            for https in named.get(uri, ()):
                if not _IS_IP.match(https):
                    https = _base_domain(https.lower(), d)
                    if not _valid_domain(https, msg.tlds):
                        continue
                if https != domain:
                    hit = True
                    break
        if hit and anchors >= lo and (hi is None or anchors < hi):
            return True
    return False


def _link_domain(uri: bytes, tlds: frozenset[str] | None, d: EvalData) -> str | None:
    """The registered domain of an http(s) link's host, ``None`` for another link, an
    address or a domain under no valid top-level domain (HTTPSMismatch's ``$uri``)."""
    m = _HTTP_HOST.match(uri)
    if m is None:
        return None
    host = m.group(1).decode("utf-8", "surrogateescape")
    if _IS_IP.match(host):
        return None
    domain = _base_domain(host.lower(), d)
    return domain if _valid_domain(domain, tlds) else None


def _uri_truncated(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """URIEval's ``check_uri_truncated`` (URI_TRUNCATED): a URI of the HTML parts, or a
    form of one the URI list adds, was longer than 8192 octets (SpamAssassin keeps its
    first 8192).  Only a URI kept at exactly 8192 octets can be one: then the links
    are read again to tell."""
    from ._uris import MAX_URI_LENGTH, _canonical_forms, _tag_attrs, valid_tlds
    if not msg.html_links or max(map(len, msg.uris), default=0) < MAX_URI_LENGTH:
        return False
    for tags in msg.html_links:
        for _name, rest in tags:
            if len(rest) < MAX_URI_LENGTH - 16:
                continue
            for value in _tag_attrs(rest.encode("utf-8", "surrogateescape")).values():
                value = value.strip(b" \t\n\r\f\x0b\xa0")
                if len(value) > MAX_URI_LENGTH:
                    return True
                if len(value) > MAX_URI_LENGTH - 64 and any(
                        len(u) > MAX_URI_LENGTH
                        for forms in _canonical_forms(value, msg.tlds or valid_tlds())
                        for u in forms):
                    return True
    return False


_DOTCOM_HELO = re.compile(r"(?:\.|^)(?:lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com"
                          r"|excite\.com|caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com"
                          r"|drizzle\.com)\Z", re.IGNORECASE)


def _no_rdns_dotcom_helo(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's ``check_for_no_rdns_dotcom_helo`` (NO_RDNS_DOTCOM_HELO): the last
    untrusted relay on a public address has a big-dotcom HELO (hotmail.com, aol.com,
    yahoo.com, ...) and no reverse DNS name though its MTA looks names up.  (RelayEval
    sets the flag afresh for each such relay, so only the last one counts.)"""
    for relay in reversed(msg.relay_info().untrusted_relays):
        if _IP_PRIVATE.match(relay.ip):
            continue
        return (relay.looked_up and not relay.rdns
                and _DOTCOM_HELO.search(relay.helo) is not None)
    return False


# -- ok_locales (Locales.pm) ---------------------------------------------------------------

_CHARSETS_FOR_LOCALE = {
    "ja": "EUCJP JISX020119760 JISX020819830 JISX020819900 JISX020819970 JISX021219900 "
          "JISX021320001 JISX021320002 SHIFT_JIS SHIFTJIS ISO2022JP SJIS JIS7 JISX0201 "
          "JISX0208 JISX0212",
    "ko": "EUCKR KSC56011987",
    **dict.fromkeys(("ru", "ka", "tg", "be", "uk", "bg"),
                    "KOI8R KOI8U KOI8T ISOIR111 CP1251 GEORGIANPS CP1251 PT154 CP866"),
    "th": "TIS620",
    "zh": "GB1988 GB2312 GB231219800 GB18030 GBK BIG5HKSCS BIG5 EUCTW ISO2022CN",
}
_ALWAYS_OK_CHARSET = re.compile(r"USASCII\Z|ASCII\Z|ISO8859|ISO10646|UTF|UCS|CP125|WINDOWS"
                                r"|IBM852\Z|UNICODE11UTF[78]|XUNKNOWN\Z|ISO\Z")


def _locales(d: EvalData) -> list[str] | None:
    """``ok_locales`` as a list, ``None`` for "all" (every charset is then fine).  The
    process's LANG/LC_* that SpamAssassin adds are not: a daemon's environment must
    not change scores."""
    return _split_locales(d.ok_locales)


@functools.lru_cache(maxsize=16)
def _split_locales(text: str) -> list[str] | None:
    locales = text.split()
    return None if "all" in locales else locales


def charset_ok_for_locales(charset: str, locales: Sequence[str]) -> bool:
    """Locales.pm's ``is_charset_ok_for_locales``: Latin, Unicode and Windows charsets
    always; else one the locales' scripts use (ja, ko, zh, th, Cyrillic)."""
    cs = re.sub(r"[^A-Z0-9]", "", charset.upper())
    cs = cs[2:] if cs.startswith("3D") else cs  # (broken by quoted-printable)
    if _ALWAYS_OK_CHARSET.match(cs):
        return True
    for locale in locales:
        if locale == "C":
            locale = "en"
        locale = re.sub(r"^([a-z][a-z]).*\Z", r"\1", locale, flags=re.DOTALL)
        ok = _CHARSETS_FOR_LOCALE.get(locale)
        if ok is not None and cs in ok.split(" "):
            return True
    return False


_HIGH_OCTETS = bytes(range(0x80, 0x100))
_CT_CHARSET = (re.compile(r'charset="([^"]+)"', re.IGNORECASE),
               re.compile(r"charset='([^']+)'", re.IGNORECASE),
               re.compile(r"charset=(\S+)", re.IGNORECASE))


def _faraway_charset(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's ``check_for_faraway_charset`` (CHARSET_FARAWAY): the message's
    Content-Type names a charset not fine for ``ok_locales`` and the body text has
    more octets above 127 (over three) than below."""
    locales = _locales(d)
    ctype = msg.header_text("Content-Type")
    if locales is None or ctype is None:
        return False
    charset = next((m.group(1) for rx in _CT_CHARSET for m in [rx.search(ctype)] if m), None)
    if charset is None or charset_ok_for_locales(charset, locales):
        return False
    high = sum(len(line) - len(line.translate(None, _HIGH_OCTETS)) for line in msg.body)
    total = sum(len(line) for line in msg.body) + max(len(msg.body) - 1, 0)
    return total - high <= high and high > 3


_ENCODED_WORD = re.compile(r"=\?(.+?)\?.\?.*?\?=")


def _faraway_in_headers(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's ``check_for_faraway_charset_in_headers`` (CHARSET_FARAWAY_HEADER): an
    encoded word of a From or Subject field names a charset not fine for
    ``ok_locales``."""
    locales = _locales(d)
    if locales is None:
        return False
    for name in ("from", "subject"):
        for value in msg._values(name):
            for m in _ENCODED_WORD.finditer(value):
                if not charset_ok_for_locales(m.group(1), locales):
                    return True
    return False


_PART_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)""", re.IGNORECASE)


def _mime_faraway(msg: PreparedMessage, d: EvalData) -> bool:
    """MIMEEval's ``mime_faraway_charset``: some MIME part's charset (with a letter in
    it) is not fine for ``ok_locales``."""
    locales = _locales(d)
    if locales is None:
        return False
    for p in msg.parts:
        ctype = " ".join(_first_header(p.headers, "content-type").split())
        m = _PART_CHARSET.search(ctype)
        charset = m.group(1).lower() if m else ""
        if re.search(r"[a-z]", charset) and not charset_ok_for_locales(charset, locales):
            return True
    return False


def _for_mime_more(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """check_for_mime's other flags: ``mime_faraway_charset``; ``mimepart_limit_exceeded``
    is never true, as in SpamAssassin 4.0 (Message.pm sets it on the message, the eval
    reads the per-message status, where it never is)."""
    if a[0] == "mime_faraway_charset":
        return _mime_faraway(msg, d)
    if a[0] == "mimepart_limit_exceeded":
        return False
    return _for_mime(msg, d, a)


def _html_charset_faraway(_m: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HTMLEval's ``html_charset_faraway`` (__HTML_CHARSET_FARAWAY): never true in
    SpamAssassin 4.0, whatever ``ok_locales`` says: HTML.pm notes the ``<meta>``
    charsets on the parser but does not put them in the results HTMLEval reads."""
    return False


# -- ImageInfo --------------------------------------------------------------------------

_IMAGE_TYPES = {"image/gif": "gif", "image/png": "png", "image/jpeg": "jpeg",
                "image/jpg": "jpeg"}


@dataclass
class _Images:
    count: dict[str, int]
    pixels: dict[str, float]
    dims: dict[str, set[tuple[int, int]]]


_NO_IMAGES = _Images(count=dict.fromkeys(("all", "gif", "png", "jpeg"), 0),
                     pixels=dict.fromkeys(("all", "gif", "png", "jpeg"), 0.0),
                     dims={"all": set(), "gif": set(), "png": set(), "jpeg": set()})


def _images(msg: PreparedMessage) -> _Images:
    """ImageInfo's ``_get_images``: per type (gif, png, jpeg, all) the base64 image
    leaves counted, their pixels added up and their (height, width) sizes."""
    found = msg.image_info
    if isinstance(found, _Images):
        return found
    if not any(p.content_type in _IMAGE_TYPES for p in msg.parts):
        msg.image_info = _NO_IMAGES
        return _NO_IMAGES
    from ._imageinfo import gif_size, jpeg_size, png_size
    images = _Images(count=dict.fromkeys(("all", "gif", "png", "jpeg"), 0),
                     pixels=dict.fromkeys(("all", "gif", "png", "jpeg"), 0.0),
                     dims={"all": set(), "gif": set(), "png": set(), "jpeg": set()})
    for i, p in enumerate(msg.parts):
        kind = _IMAGE_TYPES.get(p.content_type)
        if kind is None or p.encoding != "base64":
            continue
        data = msg.part_body(i)
        size = (gif_size(data[:13]) if kind == "gif" else
                png_size(data) if kind == "png" else jpeg_size(data))
        images.count[kind] += 1
        images.count["all"] += 1
        if size is not None:
            images.pixels[kind] += size[0] * size[1]
            images.pixels["all"] += size[0] * size[1]
            images.dims[kind].add(size)
            images.dims["all"].add(size)
    msg.image_info = images
    return images


def _result_check(lo: str, hi: str | None, value: float, *, no_max_equal: bool = False) -> bool:
    """ImageInfo's ``result_check``: MIN <= value <= MAX (MAX itself excluded when asked)."""
    if value < float(lo):
        return False
    if hi is not None and value > float(hi):
        return False
    return not (no_max_equal and hi is not None and value == float(hi))


def _image_count(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_count(TYPE, MIN[, MAX])``: how many TYPE images (gif, png, jpeg, all)."""
    return _result_check(a[1], a[2] if len(a) > 2 else None, _images(msg).count[a[0]])


def _pixel_coverage(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``pixel_coverage(TYPE, MIN[, MAX])``: the TYPE images' pixels added up."""
    return _result_check(a[1], a[2] if len(a) > 2 else None, _images(msg).pixels[a[0]])


def _image_size_exact(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_size_exact(TYPE, HEIGHT, WIDTH)``: a TYPE image of that size."""
    return (int(a[1]), int(a[2])) in _images(msg).dims[a[0]]


def _image_size_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_size_range(TYPE, MINH, MINW[, MAXH, MAXW])``: a TYPE image within."""
    for h, w in _images(msg).dims[a[0]]:
        if h < float(a[1]) or w < float(a[2]):
            continue
        if len(a) > 3 and h > float(a[3]):
            continue
        if len(a) > 4 and w > float(a[4]):
            continue
        return True
    return False


def image_to_text_ratio(msg: PreparedMessage, kind: str, a: Sequence[str]) -> bool:
    """``image_to_text_ratio(TYPE, MIN, MAX)``: the text's length (the rendered body for
    a body rule, the decoded text parts for a rawbody one) over the TYPE images'
    pixels, MIN <= ratio < MAX; never without text or pixels."""
    pixels = _images(msg).pixels[a[0]]
    if pixels <= 0:
        return False
    textlen = sum(map(len, msg.rawbody if kind == "rawbody" else msg.body))
    if textlen <= 0:
        return False
    return _result_check(a[1], a[2], textlen / pixels, no_max_equal=True)


def _image_to_text_ratio_body(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    return image_to_text_ratio(msg, "body", a)


_IMAGE_TYPE_ARG = ("all", "gif", "png", "jpeg")


def _image_args(low: int, high: int) -> Callable[[Sequence[str]], bool]:
    def check(a: Sequence[str]) -> bool:
        return (low <= len(a) <= high and a[0] in _IMAGE_TYPE_ARG
                and all(_num(x) for x in a[1:]))
    return check


EVALS = {
    **EVALS,
    "check_mime_multipart_ratio": EvalSpec(_B, _nargs(2, numeric=True), _mime_multipart_ratio),
    "check_for_to_in_subject": EvalSpec(
        _H, lambda a: a in (("user",), ("address",)), _to_in_subject),
    "check_https_http_mismatch": EvalSpec(
        _B, lambda a: len(a) <= 2 and all(_num(x) or x == "undef" for x in a),
        _https_http_mismatch),
    "check_uri_truncated": EvalSpec(_B | _H | frozenset({"uri"}), _nargs(0), _uri_truncated),
    "check_for_no_rdns_dotcom_helo": EvalSpec(_H, _nargs(0), _no_rdns_dotcom_helo),
    "check_for_faraway_charset": EvalSpec(_B, _nargs(0), _faraway_charset),
    "check_for_faraway_charset_in_headers": EvalSpec(_H, _nargs(0), _faraway_in_headers),
    "html_charset_faraway": EvalSpec(_B, _nargs(0), _html_charset_faraway),
    "check_for_mime": EvalSpec(
        _R, lambda a: len(a) == 1 and (a[0] in _MIME_FLAGS or a[0] in (
            "mime_faraway_charset", "mimepart_limit_exceeded")), _for_mime_more),
    "image_count": EvalSpec(_R, _image_args(2, 3), _image_count),
    "pixel_coverage": EvalSpec(_R, _image_args(2, 3), _pixel_coverage),
    "image_size_exact": EvalSpec(_R, _image_args(3, 3), _image_size_exact),
    "image_size_range": EvalSpec(_R, _image_args(3, 5), _image_size_range),
    "image_to_text_ratio": EvalSpec(_R, _image_args(3, 3), _image_to_text_ratio_body),
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


# -- MIMEEval: Unicode entities in plain text ----------------------------------------------

_UNICODE_ENTITY = re.compile(rb"&#x[0-9A-F]{4};")
_SA_RATIO = re.compile(r"\d{0,3}\.\d{1,3}")


def _unicode_ratio(msg: PreparedMessage) -> float | None:
    """MIMEEval's ``mime_text_unicode_ratio``: over the encoded lines of every text/plain
    leaf sent as 7bit, 8bit or without a transfer encoding, the ``&#xHHHH;`` entities
    (upper-case hex, as its pattern is written) per octet left once they are taken
    out; ``None`` when there are no such octets."""
    if "unicode_ratio" in msg.memo:  # -1: no such octets
        known = msg.memo["unicode_ratio"]
        return None if known < 0 else known
    normal = entities = 0
    for p, data in _plain_text_leaves(msg):
        cte = _last_field(p, "content-transfer-encoding") or ""
        if cte.strip().lower() not in ("", "7bit", "8bit"):
            continue
        found = len(_UNICODE_ENTITY.findall(data))
        entities += found
        normal += len(data) - 8 * found  # an entity is 8 octets
    ratio = entities / normal if normal else None
    msg.memo["unicode_ratio"] = -1.0 if ratio is None else ratio
    return ratio


def _abundant_unicode_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's ``check_abundant_unicode_ratio(RATIO)`` (PP_TOO_MUCH_UNICODE02/05): a
    plain-text part written in HTML's ``&#xHHHH;`` entities instead of an encoding a
    mail reader decodes, at a ratio of at least RATIO."""
    ratio = _unicode_ratio(msg)
    return ratio is not None and ratio >= float(a[0])


EVALS = {
    **EVALS,
    "check_abundant_unicode_ratio": EvalSpec(
        _B, lambda a: len(a) == 1 and _SA_RATIO.fullmatch(a[0]) is not None,
        _abundant_unicode_ratio),
}
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)
