"""SpamAssassin ``eval:`` tests that need no network, reimplemented from their plugins.

The registry of the implemented evals, and the evals of FreeMail, WLBLEval's
``enlist_*`` lists, RelayEval, URIEval, BodyEval and ImageInfo.  Those of HeaderEval,
MIMEEval, HTMLEval and HTTPSMismatch are each in a module named for their plugin, which
lists them; what the eval modules share is in ``_evalbase``.  Each entry names the rule
kinds it may appear in and checks its arguments when rules are read, so an unsupported
argument skips the rule with a reason instead of failing at scan time.  Every other eval
is skipped.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._auth import AUTH_EVALS
from ._evalbase import (
    BODY,
    HEADER,
    IP_PRIVATE,
    IS_IPV4,
    RAWBODY_OR_BODY,
    RAWBODY_SCAN,
    EvalData,
    EvalEntry,
    EvalFn,
    addresses,
    all_from_addrs,
    base_domain,
    envelope_from,
    header_addr,
    nargs,
    num,
    perl_re,
    valid_re,
)
from ._headereval import HEADER_EVALS
from ._htmleval import HTML_EVALS
from ._httpsmismatch import HTTPS_MISMATCH_EVALS
from ._mimeeval import MIME_EVALS
from ._uris import uri_host, uri_tld_alternation, valid_tlds
from ._wlbl import WLBL_EVALS

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["EVALS", "IMPLEMENTED_EVALS", "EvalData", "parse_eval_args", "run_eval"]


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


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[-1].strip(".>").lower()


@functools.lru_cache(maxsize=256)
def _glob_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a list of shell globs (SpamAssassin's address lists)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _any_glob_hit(addrs: Sequence[str], patterns: Sequence[str]) -> bool:
    """Whether one of ``addrs`` matches one of the globs (their regex looked up once)."""
    if not addrs:
        return False
    rx = _glob_regex(tuple(patterns))
    return rx is not None and any(rx.match(x) is not None for x in addrs)


def _from_in_list(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    return _any_glob_hit(all_from_addrs(msg), d.addrlists.get(a[0].upper(), []))


def _replyto_in_list(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    return _any_glob_hit(addresses(msg, "Reply-To"), d.addrlists.get(a[0].upper(), []))


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
    return any(_is_freemail(x, d.freemail_domains) for x in all_from_addrs(msg))


def _freemail_header(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """FreeMail's check_freemail_header(HEADER[, REGEX]): a freemail address in the
    header (EnvelopeFrom: the envelope sender) that matches REGEX when given."""
    name = a[0]
    if name.lower() == "envelopefrom":
        env = envelope_from(msg)
        addrs = [env] if env else []
    else:
        addrs = addresses(msg, name.split(":")[0])
    rx = perl_re(a[1]) if len(a) > 1 else None
    return any(_is_freemail(x, d.freemail_domains) and (rx is None or rx.search(x))
               for x in addrs)


def _mailfrom_matches_rcvd(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """WLBLEval's check_mailfrom_matches_rcvd (__RP_MATCHES_RCVD): the envelope
    sender's registered domain is that of the first untrusted relay's reverse DNS name
    (with no untrusted relay, of any trusted one's)."""
    m = re.search(r"@([^@]+\.[^@]+)\Z", header_addr(msg, "EnvelopeFrom"))
    if m is None:
        return False
    domain = base_domain(m.group(1).lower(), d)
    return any(rdns and base_domain(rdns, d) == domain for rdns in msg.relay_info().match_rdns)


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
    envfrom = envelope_from(msg)
    if envfrom is not None and _BULK_ENVFROM.search(envfrom):
        return False
    froms, replies = addresses(msg, "From")[:1], addresses(msg, "Reply-To")[:1]
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
    replies = addresses(msg, "Reply-To")[:1]
    reply_free = any(_is_freemail(x, d.freemail_domains) for x in replies)
    compared = replies if a[0] == "replyto" or reply_free else addresses(msg, "From")[:1]
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


_RELAY_FIELDS = re.compile(r"\[ ip=(\S*) rdns=(\S*) helo=(\S*) by=(\S*) ")


def _untrusted_relays(msg: PreparedMessage) -> list[tuple[str, str, str, str]]:
    """(ip, rdns, helo, by) of each untrusted relay, from X-Spam-Relays-Untrusted."""
    return _RELAY_FIELDS.findall(msg.relay_info().untrusted)


def _helo_ip_mismatch(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's helo_ip_mismatch (RCVD_HELO_IP_MISMATCH): an untrusted relay whose
    HELO is a public IPv4 address outside the /24 of its own public address."""
    for ip, _rdns, helo, _by in _untrusted_relays(msg):
        if not IS_IPV4.match(helo) or IP_PRIVATE.match(helo):
            continue
        prefix = re.match(r"^(\d+\.\d+\.\d+\.)", helo)
        if (IS_IPV4.match(ip) and not IP_PRIVATE.match(ip) and helo != ip
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


def _body_length(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """BodyEval's check_body_length(MAX): the body's octets as received, at most MAX
    (``<=``: a 128-octet body is __KAM_BODY_LENGTH_LT_128, whatever the name says)."""
    return msg.raw_body_length <= float(a[0])


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
    except (ValueError, TypeError, IndexError, OverflowError, UnicodeError, re.error):
        return False


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
        if IP_PRIVATE.match(relay.ip):
            continue
        return (relay.looked_up and not relay.rdns
                and _DOTCOM_HELO.search(relay.helo) is not None)
    return False


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
                and all(num(x) for x in a[1:]))
    return check


#: the evals of this module
_OWN_EVALS: Mapping[str, EvalEntry] = {
    "check_from_in_list": (HEADER, nargs(1), _from_in_list),
    "check_replyto_in_list": (HEADER, nargs(1), _replyto_in_list),
    "check_freemail_from": (HEADER, nargs(0), _freemail_from),
    "check_freemail_header": (
        HEADER, lambda a: len(a) == 1 or (len(a) == 2 and valid_re(a[1])),
        _freemail_header),
    "check_freemail_replyto": (
        HEADER | BODY, lambda a: a in (("replyto",), ("reply",)),
        _freemail_replyto),
    "check_uri_host_listed": (frozenset({"header", "body", "uri"}), nargs(1), _uri_host_listed),
    "check_body_length": (BODY, nargs(1, numeric=True), _body_length),
    "check_mailfrom_matches_rcvd": (HEADER, nargs(0), _mailfrom_matches_rcvd),
    "check_all_trusted": (HEADER, nargs(0), _all_trusted),
    "check_no_relays": (HEADER, nargs(0), _no_relays),
    "check_relays_unparseable": (HEADER, nargs(0), _relays_unparseable),
    "helo_ip_mismatch": (HEADER, nargs(0), _helo_ip_mismatch),
    "check_for_forged_received_trail": (HEADER, nargs(0), _forged_received_trail),
    "tvd_vertical_words": (BODY, nargs(2, numeric=True), _tvd_vertical_words),
    "multipart_alternative_difference": (BODY, nargs(2, numeric=True), _mpart_alt_difference),
    "multipart_alternative_difference_count": (
        BODY, nargs(2, numeric=True),
        _mpart_alt_difference_count),
    "check_uri_truncated": (BODY | HEADER | frozenset({"uri"}), nargs(0), _uri_truncated),
    "check_for_no_rdns_dotcom_helo": (HEADER, nargs(0), _no_rdns_dotcom_helo),
    "image_count": (RAWBODY_OR_BODY, _image_args(2, 3), _image_count),
    "pixel_coverage": (RAWBODY_OR_BODY, _image_args(2, 3), _pixel_coverage),
    "image_size_exact": (RAWBODY_OR_BODY, _image_args(3, 3), _image_size_exact),
    "image_size_range": (RAWBODY_OR_BODY, _image_args(3, 5), _image_size_range),
    "image_to_text_ratio": (RAWBODY_OR_BODY, _image_args(3, 3), _image_to_text_ratio_body),
}


#: each plugin module's evals; an eval name is listed by one of them only
_TABLES: tuple[Mapping[str, EvalEntry], ...] = (
    _OWN_EVALS, HEADER_EVALS, MIME_EVALS, HTML_EVALS, HTTPS_MISMATCH_EVALS, WLBL_EVALS,
    AUTH_EVALS)
EVALS: Mapping[str, EvalSpec] = {
    name: EvalSpec(kinds, check, fn)
    for table in _TABLES for name, (kinds, check, fn) in table.items()}
#: (rule kind, eval function) pairs that can run.
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)
