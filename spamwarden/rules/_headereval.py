"""SpamAssassin's HeaderEval evals, reimplemented from ``Plugin/HeaderEval.pm``.

The header counts and characters (``check_header_count_range``, ``check_illegal_chars``),
the Subject (all capitals, the recipient's name in it, faraway charsets), the Date
against the Received headers (``check_for_shifted_date``, Util.pm's date parser), the
Message-ID and envelope sender of ratware, the forged Received headers of the big
webmail providers (AOL, Hotmail, Eudoramail, Yahoo, Juno, Gmail), and the To/Cc lists
(``sorted_recipients``, ``similar_recipients``).
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import (
    HEADER,
    IP_ADDRESS,
    EvalData,
    EvalEntry,
    base_domain,
    header_addr,
    nargs,
    num,
    valid_domain,
)
from ._locales import charset_ok_for_locales, ok_locales

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["HEADER_EVALS"]


def _header_count_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    lname = a[0].lower()
    n = sum(1 for k, _ in msg.headers if k.lower() == lname)
    return float(a[1]) <= n <= float(a[2])


_ILLEGAL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]")
_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_SPACE = re.compile(rb"[^ \t\n\r\f\x0b]")


def _illegal_chars(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HeaderEval's check_illegal_chars (4.0): of a header's raw value (``ALL``: the
    header section as sent), the octets RFC 2045 does not allow (C0 controls but TAB,
    LF, CR; DEL and above) make at least ``ratio`` of it and number ``count``; never
    for valid UTF-8 without controls; one cent, pound or registered sign in the
    Subject is exempt."""
    hdr = a[0][:-4] if a[0].endswith(":raw") else a[0]
    text = msg.header_text(hdr, raw=True)
    data = (text or "").encode("utf-8", "surrogateescape")
    if _NOT_SPACE.search(data) is None:  # (Perl's \S of octets)
        return False
    if not data.isascii() and _CONTROLS.search(data) is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return False  # non-ASCII, valid UTF-8
    illegal = len(_ILLEGAL.findall(data))
    if illegal > 0 and hdr.lower() == "subject":
        if sum(data.count(c) for c in (b"\xa2", b"\xa3", b"\xae")) == 1:
            illegal -= 1
    return illegal / len(data) >= float(a[1]) and illegal >= float(a[2])


def _missing_to(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return not (msg.header_exists("To") or msg.header_exists("Apparently-To"))


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
    # HeaderEval.pm reads each line of get("ALL"): the fields decoded, so a newline an
    # encoded word decodes to starts a line no field name exempts
    if not any("%" in v or "=?" in v or "%" in k for k, v in msg.headers):
        return False  # (no tag, and no encoded word to decode to one)
    text = msg.header_text("ALL") or ""
    if "%" not in text:  # (the tag starts with a %)
        return False
    return any(_TEMPLATE_TAG.search(line) and not _TEMPLATE_OK.match(line)
               for line in text.split("\n") if "%" in line)


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
    """The eval of :func:`_gated_through_remover`."""
    return _gated_through_remover(msg)


def _gated_through_remover(msg: PreparedMessage) -> bool:
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
    to, env = header_addr(msg, "To"), header_addr(msg, "EnvelopeFrom")
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
    dom = base_domain(name.lower(), d)
    return dom if valid_domain(dom, tlds) else None


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


def _env_and_hdr_from(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_for_matching_env_and_hdr_from: EnvelopeFrom and From have the
    same address (two absent ones match too)."""
    return header_addr(msg, "EnvelopeFrom").lower() == header_addr(msg, "From").lower()


_SECOND_LEVEL = re.compile(r"^.+\.([^.]+\.[^.]+)$", re.DOTALL)


def _second_level(addr: str) -> str:
    m = re.search(r"@([^@]*)\Z", addr)
    return _SECOND_LEVEL.sub(r"\1", m.group(1)) if m else ""


def _equal_from_domains(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's check_equal_from_domains (HEADER_FROM_DIFFERENT_DOMAINS): the last
    two labels of the From and EnvelopeFrom domains differ (both known)."""
    ours = _second_level(header_addr(msg, "From"))
    env = _second_level(header_addr(msg, "EnvelopeFrom"))
    return bool(ours) and bool(env) and ours.lower() != env.lower()


def _received_spaced(msg: PreparedMessage, name: str = "Received") -> str:
    """``$pms->get(NAME)`` with white space runs made one space, "" when absent."""
    return " ".join((msg.header_text(name) or "").split())


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
    env = header_addr(msg, "EnvelopeFrom")
    return (re.search(r"^<" + re.escape(listname) + r"-\S+\@groups\.msn\.com>", mid) is not None
            and re.search(re.escape(listname) + r"-bounce\@groups\.msn\.com", env)
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
    ip = ip_hdr is not None and re.search(IP_ADDRESS, ip_hdr, re.I) is not None
    orig = orig_hdr is not None and re.search(r"hotmail\.com|msonline\-outlook", orig_hdr) is not None
    if not (re.search(r"from mail pickup service by hotmail\.com with Microsoft SMTPSVC;", rcvd)
            or _msn_groups(msg) or _gated_through_remover(msg)
            or (ip and re.search(r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ )]",
                                 rcvd))
            or (orig and re.search(r"from \S*\.outbound\.protection\.outlook\.com "
                                   r"\(\S+\.outbound\.protection\.outlook\.com[ )]", rcvd))
            or (orig and re.search(r"from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \("
                                   + IP_ADDRESS + r"\)", rcvd, re.I))
            or (ip and re.search(r"from \S*\.hotmail.com \(\[" + IP_ADDRESS + r"\][ ):]",
                                 rcvd, re.I))
            or (ip and re.search(r"from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;", rcvd))
            or (ip and re.search(r"from \[66\.218.\S+\] by \S+\.yahoo\.com", rcvd))):
        if re.search(r"(?:from |HELO |helo=)\S*hotmail\.com\b", rcvd):
            result = 1.0
        elif re.search(r"\bhotmail\.com$", header_addr(msg, "From"), re.I):
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
    if not re.search(r"\beudoramail\.com$", header_addr(msg, "From"), re.I):
        return False
    ip_hdr = msg.header_text("X-Sender-Ip")
    ip = ip_hdr is not None and re.search(IP_ADDRESS, ip_hdr, re.I) is not None
    if _gated_through_remover(msg):
        return False
    return not (re.search(r"by \S*whowhere.com;", _received_spaced(msg)) and ip)


def _forged_yahoo(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_yahoo_received_headers (FORGED_YAHOO_RCVD): a yahoo.com From
    without Yahoo's own Received lines or relay."""
    addr = header_addr(msg, "From")
    if not re.search(r"\byahoo\.com$", addr, re.I):
        return False
    rcvd = _received_spaced(msg)
    if (msg.header_text("Resent-From") or "") != "" and (msg.header_text("Resent-To") or "") != "":
        xrcvd = _received_spaced(msg, "X-Received")
        rcvd = xrcvd or rcvd
    if _gated_through_remover(msg):
        return False
    relays = msg.relay_info()
    if (re.search(r" rdns=\S+\.yahoo\.com ", relays.trusted)
            or re.search(r"^[^\]]+ rdns=\S+\.yahoo\.com ", relays.untrusted)):
        return False
    if (re.search(r"by web\S+\.mail\S*\.yahoo\.com via HTTP", rcvd)
            or re.search(r"by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP", rcvd)
            or re.search(r"by smtp\S+\.yahoo\.com with SMTP", rcvd)
            or re.search(r"from \[" + IP_ADDRESS
                         + r"\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP", rcvd, re.I)):
        return False
    if (re.search(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b", rcvd)
            and re.search(r"\@reply\.yahoo\.com$", addr, re.I)):
        return False
    return not re.search(
        r"by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+", rcvd)


def _forged_juno(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_juno_received_headers (__FORGED_JUNO_RCVD)."""
    if not re.search(r"\bjuno\.com$", header_addr(msg, "From"), re.I):
        return False
    if _gated_through_remover(msg):
        return False
    xorig = msg.header_text("X-Originating-IP") or ""
    xmailer = msg.header_text("X-Mailer") or ""
    rcvd = msg.header_text("Received") or ""
    if xorig != "":
        if (not re.search(r"from.*\b(?:juno|untd)\.com.*[\[(]" + IP_ADDRESS + r"[\])].*by",
                          rcvd, re.I)
                and not re.search(r" cookie\.(?:juno|untd)\.com ", rcvd)):
            return True
        if "Juno " not in xmailer:
            return True
    else:
        if re.search(r"from.*\bmail\.com.*\[" + IP_ADDRESS + r"\].*by", rcvd, re.I):
            if not re.search(r"\bmail\.com", xmailer):
                return True
        elif re.search(r"from (webmail\S+\.untd\.com) \(\1 \[" + IP_ADDRESS + r"\]\) by",
                       rcvd, re.I):
            if not re.search(r"^Webmail Version \d", xmailer):
                return True
        else:
            return True
        if not re.search(IP_ADDRESS, xorig, re.I):
            return True
    return False


def _forged_gmail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """check_for_forged_gmail_received_headers (FORGED_GMAIL_RCVD): a gmail.com From
    without Google's X-Received line or its long X-Gm-Message-State and
    X-Google-Smtp-Source fields."""
    if not re.search(r"\bgmail\.com$", header_addr(msg, "From"), re.I):
        return False
    xreceived = msg.header_text("X-Received") or ""
    if (re.search(r"by 10\.\S+ with SMTP id \S+", xreceived)
            or re.search(r"by 2002:a\d\d:\w+:\S+ with SMTP id \S+", xreceived)
            or re.search(r"by smtp\.googlemail\.com with ESMTPSA id \S+",
                         msg.header_text("Received") or "")):
        return False
    return not (len(msg.header_text("X-Gm-Message-State") or "") >= 60
                and len(msg.header_text("X-Google-Smtp-Source") or "") >= 60)


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


def _to_in_subject(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HeaderEval's ``check_for_to_in_subject('user'|'address')`` (LOCALPART_IN_SUBJECT):
    the Subject (as ``get`` gives it, newline included) is the To address's local part
    alone, "Re:"/"Fw:" and at most one word then it, it followed by punctuation (the
    local part in its own case), or ", " it and punctuation at the end; 'address':
    the whole address as a word anywhere in the Subject."""
    full_to = header_addr(msg, "To")
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


_ENCODED_WORD = re.compile(r"=\?(.+?)\?.\?.*?\?=")


def _faraway_in_headers(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """HeaderEval's ``check_for_faraway_charset_in_headers`` (CHARSET_FARAWAY_HEADER): an
    encoded word of a From or Subject field names a charset not fine for
    ``ok_locales``."""
    locales = ok_locales(d)
    if locales is None:
        return False
    for name in ("from", "subject"):
        for value in msg._values(name):
            for m in _ENCODED_WORD.finditer(value):
                if not charset_ok_for_locales(m.group(1), locales):
                    return True
    return False


def _field_and_range(a: Sequence[str]) -> bool:
    """The arguments (FIELD, MIN, MAX) of check_header_count_range and
    check_illegal_chars."""
    return len(a) == 3 and num(a[1]) and num(a[2])


HEADER_EVALS: Mapping[str, EvalEntry] = {
    "check_header_count_range": (HEADER, _field_and_range, _header_count_range),
    "check_illegal_chars": (HEADER, _field_and_range, _illegal_chars),
    "check_for_missing_to_header": (HEADER, nargs(0), _missing_to),
    "subject_is_all_caps": (HEADER, nargs(0), _subject_all_caps),
    "check_unresolved_template": (HEADER, nargs(0), _unresolved_template),
    "check_for_shifted_date": (HEADER, nargs(2, numeric=True), _shifted_date),
    "check_for_matching_env_and_hdr_from": (HEADER, nargs(0), _env_and_hdr_from),
    "check_equal_from_domains": (HEADER, nargs(0), _equal_from_domains),
    "check_outlook_message_id": (HEADER, nargs(0), _outlook_message_id),
    "gated_through_received_hdr_remover": (HEADER, nargs(0), _received_hdr_remover),
    "check_ratware_name_id": (HEADER, nargs(0), _ratware_name_id),
    "check_ratware_envelope_from": (HEADER, nargs(0), _ratware_envelope_from),
    "check_for_fake_aol_relay_in_rcvd": (HEADER, nargs(0), _fake_aol_relay),
    "check_for_forged_hotmail_received_headers": (HEADER, nargs(0), _forged_hotmail),
    "check_for_no_hotmail_received_headers": (HEADER, nargs(0), _no_hotmail),
    "check_for_forged_eudoramail_received_headers": (HEADER, nargs(0), _forged_eudoramail),
    "check_for_forged_yahoo_received_headers": (HEADER, nargs(0), _forged_yahoo),
    "check_for_forged_juno_received_headers": (HEADER, nargs(0), _forged_juno),
    "check_for_forged_gmail_received_headers": (HEADER, nargs(0), _forged_gmail),
    "sorted_recipients": (HEADER, nargs(0), _sorted_recipients),
    "similar_recipients": (HEADER, nargs(2, numeric=True), _similar_recipients),
    "check_for_to_in_subject": (HEADER, lambda a: a in (("user",), ("address",)), _to_in_subject),
    "check_for_faraway_charset_in_headers": (HEADER, nargs(0), _faraway_in_headers),
}
