"""SpamAssassin's relay pseudo-headers (``X-Spam-Relays-Trusted``, ``-Untrusted``,
``-Internal``, ``-External``) from the ``Received`` header fields.

A reduced ``Mail::SpamAssassin::Message::Metadata::Received``: the clauses every relay
line shares (``id``, ``helo=``/``HELO``, ``by``, the authenticated-submission markers,
``envelope-from``) are read as SpamAssassin reads them; the client part (HELO, reverse
DNS name, IP address) is read from the common Sendmail, Postfix, Exim, qmail and
Microsoft forms, not from each of the dozens of formats SpamAssassin knows.

Trust follows ``Received.pm``.  With neither ``trusted_networks`` nor ``internal_networks``
in the rule files it is inferred: relays are trusted from the top while their client
address is private or they authenticated; the first other one and all below it are
untrusted (and external).  With either set (:class:`RelayNetworks`, read by the rule
parser), a relay stays trusted while its address is in ``trusted_networks`` (127/8 and
::1 always are) or it authenticated, and internal while also in ``internal_networks``;
one list set alone stands for the other; from a relay in ``msa_networks`` down, every
relay keeps the trust it has.  Each relay is rendered
``[ ip=... rdns=... helo=... by=... ident=... envfrom=... intl=0|1 id=... auth=... msa=0|1 ]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["NetSet", "RelayNetworks", "Relays", "checked_networks", "parse_net", "parse_relays"]

_MAX_RECEIVED = 50
_IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IP = r"(?:IPv6:)?(?:" + _IP4 + r"|[0-9a-fA-F]*:[0-9a-fA-F:.]+)"
_PRIVATE = re.compile(
    r"^(?:(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168"
    r"|100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\..*"
    r"|::1|fe[89ab][0-9a-f]?:.*|f[cd][0-9a-f]{2}:.*)$", re.IGNORECASE)
_DATE_TAIL = re.compile(
    r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ "
    r"(?:J(?:an|u[nl])|Feb|Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$")
_HELO_CHARS = r"[-A-Za-z0-9.^+_&:=?!@%*$\\/]"
_HELO_EQ = re.compile(r"\bhelo=(" + _HELO_CHARS + r"+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)")
_HELO_CMD = re.compile(r"\b(?:HELO|EHLO) (" + _HELO_CHARS + r"+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)")
_AUTH_WITH = re.compile(r" with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)",
                        re.IGNORECASE)
_GMAIL_SUBMIT = re.compile(
    r" by mx\.google\.com with ESMTPS id [a-z0-9]{1,4}sm[0-9]{2,9}[a-z]{3}\.[0-9]{1,3}"
    r"\.[0-9]{4}\.(?:[0-6][0-9]\.){4}[0-6][0-9]")
_GMAIL_TLS = re.compile(r"\(version=([^ ]+) cipher=([^)]+)\)")
_FETCHER = re.compile(r"with (?:POP3|IMAP)")
_STRIP = re.compile(r"[\s\x00#\[\]()<>|]")

_WITH_HTTP = re.compile(r"\bwith HTTP\b")
_HTTP_IP = r"^(" + _IP + r") \(\[" + _IP + r"\]\)() by$"
_HTTP_IP_BY = re.compile(r"^" + _IP + r" \(\[" + _IP + r"\]\) by \S+")
_HELO_EQ_FORM = r"^(\S+) \(\[(" + _IP + r")\](?::\d+)? helo=\S+\)"
_HELO_EQ_BY = re.compile(r"^\S+ \(\[" + _IP + r"\] helo=\S+\) by \S+ with ")
_CGP_VERIFIED = r"^(\S+) \(\[(" + _IP + r")\] verified\)"
_CGP_VERIFIED_BY = re.compile(r"^\S+ \(\[" + _IP + r"\] verified\) by \S+ \(")
_CGP_ACCOUNT = r"^\[(" + _IP + r")\] \((?:account \S+ )?(?:HELO|EHLO) (\S*)\) by$"
_CGP_ACCOUNT_BY = re.compile(r"^\[" + _IP + r"\] \((?:account \S+ )?(?:HELO|EHLO) \S*\) by \S+ \(")
_QPSMTPD = r"^(\S+) \((?:HELO|EHLO) \S*\) \(\[?(" + _IP + r")\]?\)"
_QPSMTPD_BY = re.compile(r"^\S+ \((?:HELO|EHLO) [^)]*\) \((?:\S*@)?\[?" + _IP
                         + r"\]?\).* by \S+ ")
_MDAEMON = r"^(\S+) \[(" + _IP + r")\] by$"
_MDAEMON_BY = re.compile(r"^\S+ \[" + _IP + r"\] by \S+ \[" + _IP + r"\] with ")
_BRACKET_HELO = r"^(\S+) \(\[(" + _IP + r")\]\)"
_BRACKET_HELO_BY = re.compile(r"^\S+ \(\[" + _IP + r"(?:[.:]\d+)?\]\).*? by \S+ ")
_GMX_FORM = r"^(\S+) \((?:HELO|EHLO) (\S*)\) \[(" + _IP + r")\] by$"
_GMX_BY = re.compile(r"^\S+ \((?:HELO|EHLO) \S*\) \[" + _IP
                     + r"\] by \S+ \([^)]+\) with (?:ESMTP|SMTP)")
_IDENT_IP = r"^(\S+) \((\S*)@\[(" + _IP + r")\][^)]*\)"
_IDENT_IP_BY = re.compile(r"^\S+ \(\S*@\[" + _IP + r"\].*\) by \S+ \(")
_IDENT_HOST = r"^(\S+) \((\S*)@\[?(" + _IP + r")\]?\)"
_IDENT_HOST_BY = re.compile(r"^\S+ \(\S*@\[?" + _IP + r"\]?\).* by \S+ ")
_HOST_IP = r"^(\S+) \((?:\S*@)?(" + _IP + r")\)"
# Received.pm's forms of "host (ip) by" read something after the receiving host: with
# the date cut, "by mx.example.net; 24 Apr 2002 ..." is in none of them (unparseable)
_HOST_IP_BY = re.compile(r"^\S+ \((?:\S*@)?" + _IP + r"\) by \S+ ")
# Received.pm's forms with the client's address first (parse_received_line) each read
# what follows the receiving host: "ip by host with ", "ip by host (SMTPL" or
# "(InterScan", "ip (HELO helo) by host ", "ip (comment) by host with ", and Hotmail's
# "by host.hotmail.msn.com "; "ip by host (Centrum Mail) with HTTP" is in none of them
# (Received.pm's "\S+ by \S+ (" handover then skips it)
_IP_FIRST = r"^(" + _IP4 + r")(?: \((?:HELO|EHLO) \S*\)| \([A-Za-z][^)]+\))? by$"
_IP_FIRST_BY = re.compile(
    r"^" + _IP4 + r"(?: by \S+ (?:with |\((?:SMTPL|InterScan)\b)"
    r"| \((?:HELO|EHLO) \S*\) by \S+ | \([A-Za-z][^)]+\) by \S+ with )")
_SMAP = r"^(\S+)\((" + _IP + r")\)() by$"
_SMAP_BY = re.compile(r"^\S+\(" + _IP + r"\) by \S+ via smap ")
_SMAP_HELO = r"^(\S+)\((" + _IP + r"), (?:HELO|EHLO) (\S*)\) by$"
_SMAP_HELO_BY = re.compile(r"^\S+\(" + _IP + r", (?:HELO|EHLO) \S*\) by \S+ via smap ")
_RDNS_IP = r"^(\S+)\((" + _IP + r")\)()"
_RDNS_IP_BY = re.compile(r"^\S+\(" + _IP + r"\) by \S+ ")
_SPACE_IP = r"^\S+ \( \[(" + _IP + r")\]\)"
_SPACE_IP_BY = re.compile(r"^\S+ \( \[" + _IP + r"\]\).*? by \S+ ")
_BRACKET_IP = r"^\[(" + _IP + r")\]"
_BRACKET_IP_BY = re.compile(
    r"^\[" + _IP + r"\](?: by \S+ | by \S+ via HTTP$| \([^)]+\) by \S+ "
    r"|\S+ \((?:HELO|EHLO) \S*\) by \S+ )")
_HELO_GUESS = re.compile(r"(\S+)[^-A-Za-z0-9.]")
_HOTMAIL_BY = re.compile(r"by \S+\.hotmail\.msn\.com ")
# Received.pm's "(helo [ip]) by host " and "([ip]) by host " / "(ip) by host "
_PAREN_HELO_IP = r"^\((\S+) \[(" + _IP + r")\]\) by$"
_PAREN_IP = r"^\(\[?(" + _IP + r")\]?\) by$"
_PAREN_BY = re.compile(r"^\((?:\S+ \[" + _IP + r"\]|\[?" + _IP + r"\]?)\) by \S+ ")

# client forms, tried in order on the text after "from " (SpamAssassin's, reduced)
_FORMS: tuple[tuple[re.Pattern[str], tuple[str, ...], bool], ...] = tuple(
    (re.compile(p), groups, looked_up) for p, groups, looked_up in (
        # SpamAssassin's line for an originating_ip_headers field
        (r"^X-Originating-IP: (" + _IP + r") by$", ("ip",), False),
        # webmail "ip ([ip]) by host ... with HTTP": no HELO (only where
        # _HTTP_IP_BY reads the whole line)
        (_HTTP_IP, ("ip", "helo"), False),
        # GMX: rdns (EHLO helo) [ip] by host (x) with SMTP (only where _GMX_BY reads
        # the whole line; Received.pm reads it before the forms below would)
        (_GMX_FORM, ("rdns", "helo", "ip"), False),
        # Sendmail: helo (ident@[ip]) - no reverse DNS name (only where _IDENT_IP_BY
        # reads "...) by host (")
        (_IDENT_IP, ("helo", "ident", "ip"), True),
        # else qmail's "rdns (ident@[ip]) ... by host ": the name is the HELO too (only
        # where _IDENT_HOST_BY reads the whole line)
        (_IDENT_HOST, ("rdns", "ident", "ip"), True),
        # Sendmail: helo (rdns [ip]) / helo (ident@rdns [ip]) / helo (rdns [ip] (may be forged))
        (r"^(\S+) \((?:(\S*)@)?(\S+) \[(" + _IP + r")\][^)]*\)", ("helo", "ident", "rdns", "ip"),
         True),
        # Postfix: helo (rdns[ip]), helo (unknown[ip])
        (r"^(\S+) \((\S+)\[(" + _IP + r")\]\)", ("helo", "rdns", "ip"), True),
        # Exim: rdns ([ip] helo=x), [ip] (helo=x) (the first only where _HELO_EQ_BY
        # reads "...) by host with " as Received.pm's form does)
        (_HELO_EQ_FORM, ("rdns", "ip"), True),
        # (Received.pm's "[ip] (x) by host " form records no lookup)
        (r"^\[(" + _IP + r")\](?::\d+)? \(helo=\S+\)", ("ip",), False),
        # qmail / qpsmtpd: rdns (HELO helo) (ip) / [ip]
        # (a lookup where _QPSMTPD_BY reads "...) by host " as Received.pm's form
        # does; its qmail forms are read before, in parse_received)
        (_QPSMTPD, ("rdns", "ip"), True),
        (r"^(\S+) \((?:HELO|EHLO) \S*\) \[(" + _IP + r")\]", ("rdns", "ip"), False),
        # Sendmail / Microsoft without a name: helo ([ip]) / helo (ip); with more
        # after the address ("([ip] (may be forged))") in none of Received.pm's forms
        # that record a lookup
        # (a lookup only where _BRACKET_HELO_BY reads "...]) ... by host " as
        # Received.pm's Sendmail forms do; else the next form, no lookup)
        (_BRACKET_HELO, ("helo", "ip"), True),
        # CommuniGate Pro: "host ([ip] verified) by host (": a looked-up name that is
        # the HELO too (only where _CGP_VERIFIED_BY reads the whole line)
        (_CGP_VERIFIED, ("rdns", "ip"), True),
        (r"^(\S+) \(\[(" + _IP + r")\][^)]*\)", ("helo", "ip"), False),
        # "host (ip) by": the name is both the reverse DNS name and the HELO (Received.pm,
        # bug 2744); Scalix and Microsoft SMTP Server write the HELO only (_branch_forms);
        # only where _HOST_IP_BY reads the whole line
        (_HOST_IP, ("rdns", "ip"), True),
        # smap and csmap: "rdns(ip) by host via smap ", "rdns(ip, HELO helo) by host via
        # smap ", "rdns(ip) by host ": no HELO but the one named (only where
        # _SMAP_BY / _SMAP_HELO_BY / _RDNS_IP_BY reads the whole line)
        (_SMAP, ("rdns", "ip", "helo"), True),
        (_SMAP_HELO, ("rdns", "ip", "helo"), True),
        (_RDNS_IP, ("rdns", "ip", "helo"), False),
        # "ip ( [ip]) as user x by host ": Received.pm's form names no HELO (only
        # where _SPACE_IP_BY reads the whole line)
        (_SPACE_IP, ("ip",), False),
        # (helo [ip]) by / ([ip]) by / (ip) by: Received.pm's forms with the client
        # part in parentheses (only where _PAREN_BY reads the whole line)
        (_PAREN_HELO_IP, ("helo", "ip"), False),
        (_PAREN_IP, ("ip",), False),
        # MDaemon: "helo [ip] by host [ip] with ": a lookup (only where _MDAEMON_BY
        # reads the whole line)
        (_MDAEMON, ("helo", "ip"), True),
        # helo [ip] / [ip] / ip
        (r"^(\S+) \[(" + _IP + r")\]", ("helo", "ip"), False),
        # CommuniGate Pro: "[ip] (account x HELO helo) by host (" (only where
        # _CGP_ACCOUNT_BY reads the whole line)
        (_CGP_ACCOUNT, ("ip", "helo"), False),
        # [ip]: Received.pm's forms of it read past the receiving host (only where
        # _BRACKET_IP_BY reads the whole line)
        (_BRACKET_IP, ("ip",), False),
        # ip by / ip (HELO helo) by / ip (comment) by: Received.pm's forms with the
        # address first
        # (only where _IP_FIRST_BY or _HOTMAIL_BY reads the whole line)
        (_IP_FIRST, ("ip",), False),
    )
)
# qmail: "rdns (HELO helo) (ident@ip) by host with SMTP"; without HELO the name is both
_QMAIL = re.compile(
    r"^\S+(?: \((?:HELO|EHLO) \S*\))? \((?:\S+@)?\[?" + _IP + r"\]?\)"
    r"(?: \(envelope-sender <\S+>\))? by \S+(?: \(.+\))* with (?:.* )?(?:SMTP|QMQP)(?! id )")
_ENV = r"(?: \(envelope-sender <\S+>\))? by "
_QMAIL_FORMS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(p), g) for p, g in (
        (r"^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \((\S*)@\[?(" + _IP + r")\]?\)" + _ENV,
         ("rdns", "helo", "ident", "ip")),
        (r"^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \(\[?(" + _IP + r")\]?\)" + _ENV,
         ("rdns", "helo", "ip")),
        (r"^(\S+) \((\S*)@\[?(" + _IP + r")\]?\)" + _ENV, ("rdns", "ident", "ip")),
        (r"^(\S+) \(\[?(" + _IP + r")\]?\)" + _ENV, ("rdns", "ip")),
    )
)
_SENDMAIL_BY = re.compile(r"^\S+ \(\S+ \[[^\]]+\](?:.*\) by \S+ \(|\) by \S+ with \S+ \()")
_ANY_IP = re.compile(r"\[(" + _IP + r")\]")
# "from" lines with no address that SpamAssassin skips rather than counting unparseable:
# local submissions and handovers (Received.pm's "return 0" forms, the common ones)
_LOCAL_FORM = re.compile(
    r"^(?:\S+@localhost\) by |[^\s@]+@[^)]+\) by \S+\(jqueuemail\)"
    r"|\S+ \([^\s@]+@(?:localhost|127\.0\.0\.1)\) by \S+ \(|\S+ \S+ by \S+ with local-e?smtp "
    r"|\S+@\S+ by |Unknown/Local \(|localhost \((?:\S+@)?localhost[)\[]"
    r"|\S+ \((?:\S+@)?(?:localhost|127\.0\.0\.1)\) |\(AUTH: \S+\) by \S+ with "
    r"|\S+ by \S+ with local|\S+ by \S+ (?:with|via|for|\()|\S+ (?:(?:with|via|for) \S+"
    r"|\(unverified\)) by\b|\S+ id \S+$|mail pickup service by |.*\(LSMTP for "
    r"|localhost \(localhost \[\[UNIX: localhost\]\]\) by |\S+ \(\S+\) by \S+ \(Content Technologies )")


@dataclass(frozen=True, slots=True)
class Relays:
    """The four pseudo-header values (relays joined by one space; ``""``: none)."""

    trusted: str
    untrusted: str
    internal: str
    external: str
    #: how many Received headers from the top are trusted (SpamAssassin's
    #: last_trusted_relay_index + 1): ALL-EXTERNAL starts at the next one
    trusted_received: int = 0
    #: the same for internal ones (ALL-EXTERNAL starts after them)
    internal_received: int = 0
    #: relays on each side, and ``from`` lines no relay could be read from
    #: (RelayEval's ALL_TRUSTED, NO_RELAYS)
    n_trusted: int = 0
    n_untrusted: int = 0
    n_unparseable: int = 0
    #: the envelope sender the last untrusted relay (else the first trusted one)
    #: recorded, ``None`` when it recorded none (EnvelopeFrom's first source)
    envfrom: str | None = None
    #: reverse DNS names WLBLEval's check_mailfrom_matches_rcvd compares the envelope
    #: sender's domain with: the first untrusted relay's, else every trusted one's
    match_rdns: tuple[str, ...] = ()
    #: (address, lower-case reverse DNS name) of the relays WLBLEval's ``*_from_rcvd``
    #: entries are compared with: those of ``match_rdns`` that a Received line records
    #: (an X-Originating-IP field, which the sender writes, is never one)
    match_hops: tuple[tuple[str, str], ...] = ()
    #: the untrusted relays in order (RelayEval's ``relays_untrusted``; ``looked_up``
    #: with an empty ``rdns`` is Received.pm's ``no_reverse_dns``)
    untrusted_relays: tuple[_Relay, ...] = ()

    def get(self, name: str) -> str | None:
        """The value for a pseudo-header name (lower case), ``None`` for another name."""
        return {"x-spam-relays-trusted": self.trusted,
                "x-spam-relays-untrusted": self.untrusted,
                "x-spam-relays-internal": self.internal,
                "x-spam-relays-external": self.external}.get(name)


@dataclass(frozen=True, slots=True)
class _Relay:
    ip: str
    rdns: str
    helo: str
    by: str
    ident: str
    envfrom: str
    id: str
    auth: str
    #: whether the line named an envelope sender at all (``envfrom`` may be "")
    envfrom_found: bool = False
    #: whether the line's form is one whose MTA looks the client's name up (Received.pm's
    #: ``mta_looked_up_dns``): no name then means the client has none
    looked_up: bool = False

    def render(self, internal: bool, msa: bool = False) -> str:
        return (f"[ ip={self.ip} rdns={self.rdns} helo={self.helo} by={self.by} "
                f"ident={self.ident} envfrom={self.envfrom} intl={int(internal)} "
                f"id={self.id} auth={self.auth} msa={int(msa)} ]")


def _sendmail_auth(text: str) -> bool:
    """Whether Received.pm's Sendmail pattern (above) matches ``text``, in one pass: the
    match lies in the first line (``.`` takes no newline), and each part of it is best
    found at its earliest place after the one before."""
    line = text.split("\n", 1)[0]
    if not line.startswith("from "):
        return False
    # the earliest end of "])" / "] (...))" / ")]" and its space, past "from "
    end = -1
    close = -1  # the first ")" at or past the last place looked from (found once each)
    at = line.find("]", 5)
    while at >= 0 and (end < 0 or at < end):
        if line.startswith(") ", at + 1):
            found = at + 3
        elif line.startswith(" (", at + 1):
            if close < at + 3:
                close = line.find(")", at + 3)
                if close < 0:
                    close = len(line)
            found = close + 3 if line.startswith(")) ", close) else -1
        else:
            found = -1
        if found >= 0 and (end < 0 or found < end):
            end = found
        at = line.find("]", at + 1)
    at = line.find(")] ", 5)
    if at >= 0 and (end < 0 or at + 3 < end):
        end = at + 3
    if end < 0:
        return False
    p = line.find("(", end)
    q = line.find("authenticated", p + 1) if p >= 0 else -1
    r = line.find(")", q + 13) if q >= 0 else -1
    return r >= 0 and line.find(" by", r + 1) >= 0


# the patterns parse_received applies to each line, compiled once
_TRAILING_SEMI = re.compile(r"(?:\s?;)+$")
_FROM = re.compile(r"^\(?from ", re.IGNORECASE)
_LOCAL_FOR = re.compile(r"\bwith local for\b")
_FROM_BY = re.compile(r"^from (\S+) by [^\s;]+ ?;", re.IGNORECASE)
_BRACKET_IP4 = re.compile(r"^\[[\d.]+\]$")
_ID = re.compile(r" id <?([^\s<>;]{3,})")
_BY = re.compile(r" by (\S+)(?:[^-A-Za-z0-9;.]|$)")
# Received.pm's Sendmail test, ^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by,
# is _sendmail_auth: as a regex it backtracks in the fourth power of the line (9 s for a
# 3.4 KB line of "(authenticated) ")
_CRITICAL_PATH_AUTH = re.compile(
    r"\) by .+ \(\d{1,2}\.\d\.\d{3}(?:\.\d{1,3})?\) \(authenticated as .+\) id ")
_COMMUNIGATE = re.compile(r"CommuniGate Pro (?:HTTP|SMTP|XIMSS|IMAP)")
_EXCHANGE_DAV = re.compile(r" with Microsoft Exchange Server HTTP-DAV\b")
_VIA_HTTP = re.compile(r" \(via (HTTP.?)\)(?: |;|$)", re.IGNORECASE)
_POSTFIX_AUTH = re.compile(r"\) \(Authenticated sender: \S+\) by \S+ \(([^)]+)\) with ")
_ENVFROM = re.compile(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", re.IGNORECASE)
_IPV6_PREFIX = re.compile(r"^ipv6:", re.IGNORECASE)
_LEADING_ANGLE = re.compile(r"^\s*<*")
_TRAILING_ANGLE = re.compile(r">*\s*$")


_IPV4_MAPPED = re.compile(r"^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$", re.IGNORECASE)


def _may_name_envfrom(text: str) -> bool:
    """Whether ``_ENVFROM`` can match: an ASCII text holds one of its keywords in some
    case (a case-insensitive Unicode match can also take U+017F for "s", U+212A for
    "k": other text is always searched)."""
    if not text.isascii():
        return True
    low = text.lower()
    return "return-path" in low or "envelope-" in low


def _cut_date(text: str) -> str:
    """``_DATE_TAIL.sub("", text)`` for text with single spaces, searching only its last
    seven words where it can: the date and the separator run before it end within the
    last six, and a match starting after the first octet searched cannot start earlier
    (the octet before it is no separator).  Otherwise the whole text is searched."""
    i = len(text)
    for _ in range(7):
        i = text.rfind(" ", 0, i)
        if i < 0:
            return _DATE_TAIL.sub("", text)
    m = _DATE_TAIL.search(text, i)
    if m is None:
        return text
    if m.start() > i:
        return text[:m.start()]
    return _DATE_TAIL.sub("", text)


def _clean(text: str) -> str:
    return _STRIP.sub("!", text)


_SMTPSVC = re.compile(r"^(\S*) \(\[(" + _IP + r")\][^)]{0,40}\) by (\S+) with Microsoft SMTPSVC")
_MS_SMTP_SERVER = re.compile(r" with (?:Microsoft SMTP Server|mapi id) (?:\([^)]+\) )?"
                             r"\d+\.\d+\.\d+\.\d+(?:$| )")
_EXIM_FORMS = (
    (re.compile(r"^\[(" + _IP + r")\] \((.*?)\) by (\S+) "), ("ip", "sub")),
    (re.compile(r"^(\S+) \(\[(" + _IP + r")\](.*?)\) by (\S+) "), ("rdns", "ip", "sub")),
    (re.compile(r"^(\S+) \[(" + _IP + r")\](?::\d+)? by (\S+) "), ("rdns", "ip")),
)
_MS_SMTP_SERVER_FORM = re.compile(r"^(\S+) \(\[?(" + _IP + r")(?:%[A-Z0-9._~-]*)?\]?\) by (\S+) ")
_SCALIX = re.compile(r"^(\S+) \( ?(" + _IP + r")\) by (\S+)")
# Lotus Domino never records the client's reverse DNS name (Received.pm, bug 5926)
_DOMINO = re.compile(r"^(\S+) \(\[(" + _IP + r")\]\) by (\S+) \(Lotus")
# Obtuse smtpd: rdns(ip), claiming to be "helo" via SMTP by host,
_OBTUSE = re.compile(r'^(\S+)\((' + _IP + r')\)(?:, claiming to be "(\S+)")? via \S+ by (\S+),')
_EXIM_LOCAL = re.compile(r"\bwith local(?:-\S+)? ")
_COURIER_AUTH = re.compile(r"^.*?(?:\]\)|\)\]) \(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5) \S+"
                           r"(?:, .*?)?\) by ")
_GMX_AUTH = re.compile(r"^\S* \((?:HELO|EHLO) (\S*)\) \[" + _IP
                       + r"\] by (mail\.gmx\.(?:net|com)) \([^)]+\) with (ESMTP|SMTP)")
# SquirrelMail's and NaSMail's webmail submission: the first address followed by
# "by host with HTTP" is the client's (Received.pm, bugs 6549, 6783)
# (an IPv6-looking address is tried only where a run of its characters starts: linear)
_SQUIRREL = re.compile(r"(\b(?<!:)" + _IP4 + r"|(?<![0-9a-fA-F:.])[0-9a-fA-F]*:[0-9a-fA-F:.]+)"
                       r"\b(?![.-]).{10,80}by (\S+) with HTTP")
_YAHOO_LOGIN = re.compile(r"^(\S+) \((?:HELO|EHLO) (\S*)\) \((?:(\S+)@)?(" + _IP
                          + r").*?\) by (\S+) with ")


def _branch_forms(text: str) -> tuple[dict[str, str], str]:
    """The client part of the lines Received.pm reads in a branch of its own before its
    general forms (``text`` is what follows "from "), and the authentication marks it
    reads that the general ones do not: Microsoft SMTPSVC and SMTP Server, Scalix and
    Lotus Domino
    (the HELO only: no reverse DNS lookup), Exim (the name before the address is the
    reverse DNS name and, without ``helo=``, the HELO), Yahoo's authenticated
    submission, Obtuse smtpd, SquirrelMail; Courier's and GMX's authentication.  ({}, "") when none applies;
    ``{"skip": "1"}`` for a line Received.pm ignores (Exim's local submissions)."""
    auth = ""
    # (the Courier pattern holds "(AUTH: ", case-sensitive: without it, no match)
    m = _COURIER_AUTH.match(text) if "(AUTH: " in text else None
    if m:
        auth = m.group(1)
    else:
        m = _GMX_AUTH.match(text)
        if m:
            auth = f"GMX ({m.group(3)} / {m.group(2)})"
    if " (SquirrelMail authenticated user " in text or " (NaSMail authenticated user " in text:
        # (Received.pm reads this form before every other; no name was looked up)
        m = _SQUIRREL.search(text)
        if m:
            return {"ip": m.group(1), "by": m.group(2), "nolookup": "1"}, auth
    helo_only = None
    if " SMTPSVC" in text:
        helo_only = _SMTPSVC.match(text)
    elif _MS_SMTP_SERVER.search(text):
        helo_only = _MS_SMTP_SERVER_FORM.match(text)
    elif "Scalix SMTP Relay" in text:
        helo_only = _SCALIX.match(text)
    elif "Exim" in text:
        if _EXIM_LOCAL.search(text):
            return {"skip": "1"}, auth
        for pattern, groups in _EXIM_FORMS:
            m = pattern.match(text)
            if m is None:
                continue
            got = dict(zip(groups, m.groups()))
            sub = got.pop("sub", "")
            if "rdns" in got:
                got["helo"] = got["rdns"]
            h = re.search(r"helo=(\S+)", sub)
            if h:
                got["helo"] = h.group(1)
            i = re.search(r"ident=(\S*)", sub)
            if i:
                got["ident"] = i.group(1)
            return got, auth
        return {}, auth
    elif " (Lotus Domino " in text and " (Postfix) with" not in text:
        # (Received.pm's branches are one chain: Postfix's comes before Domino's)
        helo_only = _DOMINO.match(text)
    else:
        # Received.pm tries its qmail form (rdns "unknown": no lookup) before Yahoo's
        # submission form (a looked-up client), which a qmail line with a HELO matches too
        m = None if _QMAIL.match(text) else _YAHOO_LOGIN.match(text)
        if m:
            return {"rdns": m.group(1), "helo": m.group(2), "ip": m.group(4),
                    "ident": m.group(3) or ""}, auth
        m = _OBTUSE.match(text) if " via " in text else None
        if m:
            return {"rdns": m.group(1), "ip": m.group(2), "helo": m.group(3) or "",
                    "by": m.group(4)}, auth
        return {}, auth
    if helo_only is None:
        return {}, auth
    return {"helo": helo_only.group(1), "ip": helo_only.group(2)}, auth


def parse_received(line: str) -> _Relay | Literal[False, "unparseable"] | None:
    """One relay from a ``Received`` value; ``False`` for a mail fetcher's handover
    (fetchmail, getmail: ``with POP3`` / ``with IMAP``); ``None`` when it is not one
    SpamAssassin would use (local handovers); ``"unparseable"`` for a ``from`` line
    with no IP address that is not a known local form."""
    text = " ".join(line.split())
    if text.endswith(";"):  # (the pattern ends in ";" at the end: nothing else to cut)
        text = _TRAILING_SEMI.sub("", text)
    if not _FROM.match(text) or ("with local for" in text and _LOCAL_FOR.search(text)):
        return None
    m = _FROM_BY.match(text)
    if m and not _BRACKET_IP4.match(m.group(1)):
        return None
    text = _cut_date(text).replace(")by ", ") by ")
    m = _ID.search(text)
    rid = m.group(1) if m else ""
    # (each HELO pattern holds its literal text, case-sensitive: absent, no match)
    m = _HELO_EQ.search(text) if "helo=" in text else None
    if m is None and ("HELO " in text or "EHLO " in text):
        m = _HELO_CMD.search(text)
    helo = m.group(1) if m else ""
    m = _BY.search(text)
    by = m.group(1) if m else ""
    auth = ""
    m = _AUTH_WITH.search(text)
    gmail = _GMAIL_TLS.search(text) if _GMAIL_SUBMIT.search(text) else None
    if " by " in text and m:
        auth = m.group(1)
    elif gmail:
        auth = f"GMail - transport={gmail.group(1)} cipher={gmail.group(2)}"
    elif "authenticated" in text and _sendmail_auth(text):
        auth = "Sendmail"
    elif " (authenticated as " in text and _CRITICAL_PATH_AUTH.search(text):
        auth = "CriticalPath"
    elif "(Authenticated sender: " in text and (m := _POSTFIX_AUTH.search(text)):
        auth = m.group(1) if m.group(1) == "Postfix" else f"Postfix ({m.group(1)})"
    # Received.pm's chain goes on: CommuniGate Pro's "(account ...)", Exchange's
    # HTTP-DAV, a "(via HTTP)" comment (bugs 6495, 7101)
    elif " (account " in text and _COMMUNIGATE.search(text):
        auth = "Communigate"
    elif _EXCHANGE_DAV.search(text):
        auth = "HTTP-DAV"
    elif " by " in text and (m := _VIA_HTTP.search(text)):
        auth = m.group(1)
    if not text.startswith("from "):
        # Received.pm's forms are read under "s/^from //" (lower case); "FROM " has
        # simta's form, "(from " Norton AntiVirus Gateway's, any other case none
        return _not_from_forms(text, helo=helo, by=by, rid=rid, auth=auth)
    text = _FROM.sub("", text)
    if _FETCHER.search(text):
        return False
    env_m = _ENVFROM.search(text) if _may_name_envfrom(text) else None
    envfrom = env_m.group(1) if env_m else ""
    client = text.split(" by ", 1)[0] + " by"
    branch, branch_auth = _branch_forms(text)
    if branch.get("skip"):
        return None
    auth = auth or branch_auth
    found = dict(branch)
    if not found and _QMAIL.match(text):
        for pattern, groups in _QMAIL_FORMS:
            m = pattern.match(text)
            if m:
                found = {g: (m.group(i + 1) or "") for i, g in enumerate(groups)}
                if "helo" not in found:
                    found["helo"] = found["rdns"]
                break
    # of the branch forms, Yahoo's authenticated submission and Obtuse smtpd name a
    # looked-up client (qmail's forms: only when the name is not "unknown", and then
    # there is one)
    looked_up = bool(branch) and not branch.get("nolookup") and not (
        " SMTPSVC" in text or "Scalix SMTP Relay" in text or "Exim" in text
        or " (Lotus Domino " in text
        or _MS_SMTP_SERVER.search(text) is not None)
    for pattern, groups, form_looked_up in () if found else _FORMS:
        m = pattern.match(client)
        if m and pattern.pattern == _HOST_IP and not _HOST_IP_BY.match(text):
            continue
        if m and pattern.pattern == _BRACKET_HELO and not _BRACKET_HELO_BY.match(text):
            continue
        if m and pattern.pattern == _MDAEMON and not _MDAEMON_BY.match(text):
            continue
        if m and pattern.pattern == _QPSMTPD and not _QPSMTPD_BY.match(text):
            form_looked_up = False
        if m and ((pattern.pattern == _HTTP_IP
                   and not (_HTTP_IP_BY.match(text) and _WITH_HTTP.search(text)))
                  or (pattern.pattern == _HELO_EQ_FORM and not _HELO_EQ_BY.match(text))
                  or (pattern.pattern == _CGP_VERIFIED
                      and not (" (CommuniGate Pro" in text and _CGP_VERIFIED_BY.match(text)))
                  or (pattern.pattern == _CGP_ACCOUNT and not _CGP_ACCOUNT_BY.match(text))):
            continue
        if m and ((pattern.pattern == _GMX_FORM and not _GMX_BY.match(text))
                  or (pattern.pattern == _IDENT_IP and not _IDENT_IP_BY.match(text))
                  or (pattern.pattern == _IDENT_HOST and not _IDENT_HOST_BY.match(text))):
            continue
        if (m and pattern.pattern == _IP_FIRST and not _IP_FIRST_BY.match(text)
                and not _HOTMAIL_BY.search(text)):
            continue
        if m and pattern.pattern in (_PAREN_HELO_IP, _PAREN_IP) and not _PAREN_BY.match(text):
            continue
        if m and pattern.pattern == _SPACE_IP and not _SPACE_IP_BY.match(text):
            continue
        if m and pattern.pattern == _BRACKET_IP and not _BRACKET_IP_BY.match(text):
            continue
        if m and ((pattern.pattern == _SMAP and not _SMAP_BY.match(text))
                  or (pattern.pattern == _SMAP_HELO and not _SMAP_HELO_BY.match(text))
                  or (pattern.pattern == _RDNS_IP and not _RDNS_IP_BY.match(text))):
            continue
        if m:
            found = {g: (m.group(i + 1) or "") for i, g in enumerate(groups)}
            if "(may be forged)" in m.group(0) and not _SENDMAIL_BY.match(text):
                # a name that did not resolve back: SpamAssassin keeps it only in
                # Sendmail's own form ("by host (version)"); the line is in none of
                # its forms that record a lookup (its fall-through reads it)
                found["rdns"] = ""
                form_looked_up = False
            looked_up = looked_up or form_looked_up
            break
    if "ip" not in found:
        # in none of the forms: Received.pm's forms to ignore ("STUFF TO IGNORE",
        # return 0) come before its fall-through to any [address] in the line, so
        # "COL112-DS40([65.55.34.208]) by host with ..." is a handover it skips
        if _LOCAL_FORM.search(text):
            return None
        m = _ANY_IP.search(client)
        if m is None:
            # with no [address] either, a line Received.pm cannot parse
            return "unparseable"
        found = {"ip": m.group(1)}
        guess = _HELO_GUESS.match(text) if not helo else None
        if guess is not None:
            # Received.pm, at the end of its "from" forms: "if at this point we still
            # haven't figured out the HELO string, see if we can't just guess"
            helo = guess.group(1)
    ip = _IPV6_PREFIX.sub("", found["ip"])
    # an IPv4-mapped IPv6 address is read as the IPv4 one (Received.pm)
    if ":" in ip:
        ip = _IPV4_MAPPED.sub(r"\1", ip)
    rdns = found.get("rdns", "").rstrip(".")
    if rdns.lower() == "unknown" or rdns.startswith("["):
        rdns = ""
    by = branch.get("by", by)
    if "helo" in branch:
        helo = branch["helo"]  # Received.pm's branch forms set the HELO themselves
    elif not helo:
        # a form naming the client once ("host (ip)"): that name is the HELO too
        helo = found.get("helo", found.get("rdns", ""))
    ident = found.get("ident", "")
    if rdns and ident.startswith("IDENT:"):
        # Sendmail's "helo (IDENT:user@rdns [ip])": the IDENT: prefix goes
        ident = ident[6:]
    if envfrom:
        envfrom = _TRAILING_ANGLE.sub("", _LEADING_ANGLE.sub("", envfrom))
    return _Relay(ip=_clean(ip), rdns=_clean(rdns), helo=_clean(helo), by=_clean(by.rstrip(";")),
                  ident=_clean(ident),
                  envfrom=_clean(envfrom), id=rid,
                  auth=auth, envfrom_found=bool(env_m), looked_up=bool(looked_up))


_SIMTA = re.compile(r"(\S+) \((\S+) \[(" + _IP + r")\]\) BY (\S+) "
                    r"(?:\([^)]+\) WITH SMTP )?ID <?(\S+?)>?(?: FOR <[^>]+>)?$")
_NAVGW = re.compile(r"(\S*) \[(" + _IP + r")\]\) by (\S+) \(NAVGW .*?\) with ")
_PAREN_FROM_LOCAL = re.compile(r"\S+@localhost\) by \S+ "
                               r"|[^\s@]+@[^)]+\) by \S+\(jqueuemail\) id [^\s;]+")


def _not_from_forms(text: str, *, helo: str, by: str, rid: str, auth: str,
                    ) -> _Relay | Literal["unparseable"] | None:
    """A Received line that does not start with "from " in lower case, as
    parse_received_line reads it outside its "from" forms: simta's "FROM helo (rdns
    [ip]) BY host ID id", Norton AntiVirus Gateway's "(from helo [ip]) by host (NAVGW",
    the "(from user@localhost) by" handovers it skips, else the fall-through: any
    [address] in the line with the receiving host (no HELO guessed, no envelope
    sender read)."""
    ip = ""
    rdns = ""
    looked_up = False
    if text.startswith("FROM "):
        m = _SIMTA.match(text, 5)
        if m is not None:
            helo, rdns, ip, by, rid = m.groups()
            rdns = "" if rdns == "unverified" else rdns
            looked_up = True
    elif text.startswith("(from "):
        m = _NAVGW.match(text, 6)
        if m is not None:
            helo, ip, by = m.groups()
        elif _PAREN_FROM_LOCAL.match(text, 6):
            return None
    if not ip:
        m = _ANY_IP.search(text)
        if m is None or not by:
            return "unparseable"
        ip = m.group(1)
    ip = _IPV6_PREFIX.sub("", ip)
    if ":" in ip:
        ip = _IPV4_MAPPED.sub(r"\1", ip)
    rdns = rdns.rstrip(".")
    if rdns.lower() == "unknown" or rdns.startswith("["):
        rdns = ""
    return _Relay(ip=_clean(ip), rdns=_clean(rdns), helo=_clean(helo), by=_clean(by.rstrip(";")),
                  ident="", envfrom="", id=rid, auth=auth, looked_up=looked_up)


#: SpamAssassin's default originating_ip_headers: webmail client addresses, read as one
#: more relay below the Received ones
_ORIGINATING = ("x-yahoo-post-ip", "x-originating-ip", "x-apparently-from", "x-senderip")

_OCTET = r"(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)"
_H = r"[a-f0-9]{1,4}"
#: Constants.pm's IP_ADDRESS, whole: an IPv4 address (no leading zero in an octet,
#: "20.23.7.08" is none), an IPv4-mapped IPv6 one or an IPv6 one
_SA_IP_ADDRESS = re.compile(
    r"(?:\b(?<!:)" + r"\.".join([_OCTET] * 4) + r"\b"
    r"|(?:IPv6:|(?<![a-f0-9:]))(?:"
    r"(?:(?:" + _H + r":){6}|::(?:" + _H + r":){0,5}|(?:" + _H + r":){1,5}:"
    r"|" + _H + r"::(?:" + _H + r":){1,4}|(?:" + _H + r":){2}:(?:" + _H + r":){1,3}"
    r"|(?:" + _H + r":){3}:(?:" + _H + r":){1,2}|(?:" + _H + r":){4}:" + _H + r":)"
    + r"\.".join([_OCTET] * 4)
    + r"|(?:" + _H + r":){7}" + _H + r"|:(?::" + _H + r"){1,7}|(?:" + _H + r":){1,7}:"
    r"|" + _H + r":(?::" + _H + r"){1,6}|(?:" + _H + r":){2}(?::" + _H + r"){1,5}"
    r"|(?:" + _H + r":){3}(?::" + _H + r"){1,4}|(?:" + _H + r":){4}(?::" + _H + r"){1,3}"
    r"|(?:" + _H + r":){5}(?::" + _H + r"){1,2}|(?:" + _H + r":){6}:" + _H + r"|::)"
    r"(?![a-f0-9:]))", re.IGNORECASE)


def parse_relays(headers: Sequence[tuple[str, str]],
                 networks: RelayNetworks | None = None) -> Relays:
    """The relay pseudo-headers for a message's header fields.

    :param headers: ``(name, value)`` in message order; the Received ones (at most 50)
        top first, then one line per originating_ip_headers field with an address.
    :param networks: the rule files' ``trusted_networks``, ``internal_networks`` and
        ``msa_networks``; ``None`` or none configured: trust is inferred as SpamAssassin
        infers it (trusted while the client address is private or authenticated).
    :returns: trusted, untrusted, internal and external relays, as SpamAssassin's
        ``Received.pm`` renders them for those settings.
    """
    named = [(k.lower(), v) for k, v in headers]  # (each name lower-cased once)
    lines = [v for k, v in named if k == "received"][:_MAX_RECEIVED]
    n_received = len(lines)
    for name in _ORIGINATING:
        # Received.pm: get_header in scalar context, the last field of the name; an
        # address in it by Constants.pm's IP_ADDRESS, else no relay
        last = next((v for k, v in reversed(named) if k == name), None)
        m = _SA_IP_ADDRESS.search(last) if last else None
        if m:
            lines.append(f"from X-Originating-IP: {m.group(0)}")
    judge = _Judge(networks)
    trusted: list[str] = []
    untrusted: list[str] = []
    internal: list[str] = []
    external: list[str] = []
    allow_fetcher = True  # SpamAssassin's allow_mailfetch_markers
    index = 0  # Received lines counted as trusted
    internal_index = 0  # ... and as internal
    unparseable = 0
    first_untrusted: _Relay | None = None
    untrusted_relays: list[_Relay] = []
    last_trusted_relay: _Relay | None = None
    trusted_relays: list[_Relay] = []
    # the relays of the originating_ip_headers lines, which the sender writes
    originating: set[int] = set()
    for number, line in enumerate(lines):
        relay = parse_received(line)
        if relay == "unparseable":
            unparseable += 1
            relay = None
        if not isinstance(relay, _Relay):
            if relay is False and allow_fetcher:
                # a mail fetcher below trusted relays: the parse starts again from here
                trusted, internal, external = [], [], []
                trusted_relays = []
                last_trusted_relay = None
            index += judge.in_trusted
            internal_index += judge.in_internal
            continue
        if number >= n_received:
            originating.add(id(relay))
        msa = judge.step(relay)
        text = relay.render(judge.in_internal, msa)
        if judge.in_trusted:
            trusted.append(text)
            last_trusted_relay = relay
            trusted_relays.append(relay)
            index += 1
        else:
            untrusted.append(text)
            untrusted_relays.append(relay)
            if first_untrusted is None:
                first_untrusted = relay
        allow_fetcher = judge.in_trusted
        if judge.in_internal:
            internal.append(text)
            internal_index += 1
        else:
            external.append(text)
    # PerMsgStatus's get_envelope_from: the last untrusted relay's, else the first
    # trusted one's (the originating one), when it has "@" or is empty
    hop = first_untrusted or last_trusted_relay
    envfrom = hop.envfrom if hop is not None and hop.envfrom_found else None
    if envfrom is not None and envfrom and envfrom.find("@") <= 0:
        envfrom = None
    hops = [first_untrusted] if first_untrusted else trusted_relays
    return Relays(trusted=" ".join(trusted), untrusted=" ".join(untrusted),
                  internal=" ".join(internal), external=" ".join(external),
                  trusted_received=index, internal_received=internal_index,
                  n_trusted=len(trusted), n_untrusted=len(untrusted),
                  n_unparseable=unparseable, envfrom=envfrom,
                  match_rdns=tuple(r.rdns.lower() for r in hops),
                  match_hops=tuple((r.ip, r.rdns.lower()) for r in hops
                                   if id(r) not in originating),
                  untrusted_relays=tuple(untrusted_relays))


class _Judge:
    """Received.pm's walk down the relays: whether each one is still trusted and
    internal, and whether it is an MSA (from which everything below keeps the trust
    and internality it has)."""

    def __init__(self, networks: RelayNetworks | None) -> None:
        self.in_trusted = True
        self.in_internal = True
        self.found_msa = False
        self.nets = networks.effective() if networks is not None else None

    def step(self, relay: _Relay) -> bool:
        """Judge one relay (the next one down); True when it is an MSA."""
        if not self.in_trusted or self.found_msa:
            return False
        if self.nets is None:  # nothing configured: SpamAssassin's inference
            if not (_PRIVATE.match(relay.ip) or relay.auth):
                self.in_trusted = self.in_internal = False
            return False
        trusted, internal, msa = self.nets
        if not relay.auth and not trusted.contains_ip(relay.ip):
            self.in_trusted = self.in_internal = False  # not trusted: not internal
            return False
        if self.in_internal and not relay.auth and not internal.contains_ip(relay.ip):
            self.in_internal = False
        if msa.contains_ip(relay.ip):
            self.found_msa = True
            return True
        return False


# -- trusted_networks, internal_networks, msa_networks ---------------------------------------

#: one entry of a network list: the network (an IPv4 one as its ``::ffff:0:0/96``
#: image, as NetSet.pm compares both kinds), and whether it is an exclusion (``!``)
Net = tuple[ipaddress.IPv6Network, bool]
_IPV4_FULL = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)$")
_IPV4_PARTIAL = (
    (re.compile(r"^(\d+)\.(\d+)\.(\d+)\.?$"), 24),
    (re.compile(r"^(\d+)\.(\d+)\.?$"), 16),
    (re.compile(r"^(\d+)\.?$"), 8),
)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
#: at most this many entries per list (a rule file is trusted input, but bounded)
MAX_NETS = 10_000


def _mapped(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(_MAPPED.network_address) | int(ip))


def parse_net(word: str) -> list[Net]:
    """One ``trusted_networks`` word as NetSet.pm's ``add_cidr`` reads it.

    ``!`` excludes; ``a.b.c.d``, ``a.b.c.d/len`` or ``a.b.c.d/mask``; the partial forms
    ``a.``, ``a.b``, ``a.b.c.`` (/8, /16, /24 implied); IPv6 with or without brackets,
    ``/len`` (default /128), an interface scope ignored; ``first-last`` ranges (read by
    SpamAssassin only with Net::CIDR::Lite installed) as the networks covering them.

    :returns: the networks (several for a range); ``[]`` for a word that is none.
    """
    exclude = word.startswith("!")
    cidr = word[1:].strip() if exclude else word.strip()
    if "-" in cidr:
        first, _, last = cidr.partition("-")
        try:
            lo, hi = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
            ranges = list(ipaddress.summarize_address_range(lo, hi))
        except (ValueError, TypeError):
            return []
        return [n for r in ranges for n in parse_net(("!" if exclude else "") + str(r))]
    masklen: str | None = None
    if "/" in cidr:
        cidr, masklen = cidr.split("/", 1)
    if cidr.startswith("[") and cidr.endswith("]"):
        cidr = cidr[1:-1]
    cidr = re.sub(r"%[A-Za-z0-9._~-]*$", "", cidr)
    try:
        if re.match(r"^\d+(?:\.|$)", cidr):
            m = _IPV4_FULL.match(cidr)
            if m:
                octets, implied = [int(x) for x in m.groups()], 32
            else:
                for pattern, length in _IPV4_PARTIAL:
                    m = pattern.match(cidr)
                    if m:
                        octets, implied = [int(x) for x in m.groups()], length
                        break
                else:
                    return []
                octets += [0] * (4 - len(octets))
            if any(o > 255 for o in octets):
                return []
            v4 = ipaddress.IPv4Network((".".join(map(str, octets)),
                                        masklen if masklen is not None else implied),
                                       strict=False)
            return [(ipaddress.IPv6Network((_mapped(v4.network_address), 96 + v4.prefixlen)),
                     exclude)]
        v6 = ipaddress.IPv6Network((cidr, int(masklen) if masklen is not None else 128),
                                   strict=False)
    except ValueError:
        return []
    return [(v6, exclude)]


def net_text(net: ipaddress.IPv6Network) -> str:
    """A network as written: an IPv4 one as ``a.b.c.d/len``."""
    if net.subnet_of(_MAPPED):
        v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
        return f"{v4}/{net.prefixlen - 96}"
    return str(net)


def _address(ip: str) -> ipaddress.IPv6Address | None:
    text = re.sub(r"%[A-Za-z0-9:._-]+$", "", ip.strip("[]"))
    text = _IPV6_PREFIX.sub("", text)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _mapped(addr) if isinstance(addr, ipaddress.IPv4Address) else addr


@dataclass(frozen=True, slots=True)
class NetSet:
    """A network list (NetSet.pm without Net::Patricia: the first entry holding an
    address decides, so more specific entries, exclusions first, go before wider ones)."""

    nets: tuple[Net, ...] = ()

    def contains_ip(self, ip: str) -> bool:
        """Whether the first entry holding ``ip`` includes it (``False``: none holds it,
        or ``ip`` is no address)."""
        addr = _address(ip)
        if addr is None:
            return False
        for net, exclude in self.nets:
            if addr in net:
                return not exclude
        return False

    def contains_net(self, other: ipaddress.IPv6Network) -> bool:
        """NetSet.pm's ``contains_net``: the first entry holding all of ``other`` is an
        inclusion."""
        for net, exclude in self.nets:
            if other.subnet_of(net):
                return not exclude
        return False


#: 127.0.0.0/8 and ::1: always in trusted_networks and internal_networks
LOOPBACK: tuple[Net, ...] = tuple(n for w in ("127.0.0.0/8", "::1") for n in parse_net(w))


@dataclass(frozen=True, slots=True)
class RelayNetworks:
    """The rule files' ``trusted_networks``, ``internal_networks`` and ``msa_networks``
    (Conf.pm), as read: each list starts with :data:`LOOPBACK` (not ``msa_networks``);
    ``*_configured`` says whether a line set it since the last ``clear_*``."""

    trusted: NetSet = NetSet(LOOPBACK)
    internal: NetSet = NetSet(LOOPBACK)
    msa: NetSet = NetSet()
    trusted_configured: bool = False
    internal_configured: bool = False

    @property
    def configured(self) -> bool:
        """Whether trust is configured rather than inferred."""
        return self.trusted_configured or self.internal_configured

    def effective(self) -> tuple[NetSet, NetSet, NetSet] | None:
        """(trusted, internal, msa) as Received.pm uses them, ``None`` when neither list
        is configured: one configured list stands for the other too."""
        if not self.configured:
            return None
        trusted = self.trusted if self.trusted_configured else self.internal
        internal = self.internal if self.internal_configured else self.trusted
        return trusted, internal, self.msa


def checked_networks(networks: RelayNetworks) -> tuple[RelayNetworks, list[tuple[str, Net]]]:
    """Conf::Parser's ``lint_trusted_networks``: every (not excluded) entry of
    ``internal_networks`` and ``msa_networks`` must lie in ``trusted_networks`` (in
    ``internal_networks`` for ``msa_networks`` when only that is configured); one that
    does not is dropped.

    :returns: the lists with such entries dropped, and each dropped entry as
        ``(list name, entry)`` (``internal_networks`` or ``msa_networks``).
    """
    if networks.trusted_configured:
        against, against_name = networks.trusted, "trusted_networks"
    elif networks.internal_configured:
        against, against_name = networks.internal, "internal_networks"
    else:
        return networks, []
    dropped: list[tuple[str, Net]] = []
    lists = {"internal_networks": (networks.internal, networks.internal_configured),
             "msa_networks": (networks.msa, bool(networks.msa.nets))}
    kept: dict[str, NetSet] = {}
    for name, (nets, configured) in lists.items():
        kept[name] = nets
        if not configured or name == against_name:
            continue
        valid = []
        for entry in nets.nets:
            net, exclude = entry
            if not exclude and not against.contains_net(net):
                dropped.append((name, entry))
            else:
                valid.append(entry)
        kept[name] = NetSet(tuple(valid))
    return (RelayNetworks(networks.trusted, kept["internal_networks"], kept["msa_networks"],
                          networks.trusted_configured, networks.internal_configured),
            dropped)
