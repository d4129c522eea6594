"""Bounded parsing of raw RFC 5322 messages into a :class:`MessageView`.

Pure functions over bytes: no I/O, no exceptions for bad input.  Any byte string
parses to *something*; what could not be decoded is replaced, and every count
(size, headers, MIME parts, URLs, text) is bounded by :class:`ParseLimits`.

The view is built once per message and shared by the milter's scoring, the
classifier's features and the complaint intake, so nobody parses twice.
"""

from __future__ import annotations

import codecs
import email.errors
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import html
import itertools
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from ._boundary import cut_why
from ._domains import domain_of_address, normalize_domain, registrable_domain
from ._params import ParamsMessage, params_cut

__all__ = [
    "ParseLimits",
    "MessageView",
    "Part",
    "parse_message",
    "strip_mbox_from",
    "decode_header_value",
    "html_to_text",
    "extract_urls",
    "ad_label",
    "parse_tag_list",
    "url_domain",
    "DEFAULT_AD_LABELS",
    "MAX_LATE_FROM",
    "valid_text",
]

DEFAULT_AD_LABELS: tuple[str, ...] = ("QC", "ADV", "AD")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what :func:`parse_message` reads."""

    max_bytes: int = 10_240_000
    max_headers: int = 1000
    max_header_bytes: int = 262_144
    #: leaves read, as the rule engine (and SpamAssassin's Message.pm) reads them: text
    #: after a bound is text no check sees, so the bounds are where work is, not lower
    max_parts: int = 1000
    #: Postfix refuses mail nested deeper (``mime_nesting_limit``, 100)
    max_depth: int = 100
    max_text_chars: int = 200_000
    #: URLs kept in ``urls``, and registrable domains in ``url_domains``: the first of
    #: every link's, however many links name domains already kept
    max_urls: int = 100


@dataclass(frozen=True, slots=True)
class Part:
    """One leaf MIME part: its type, declared filename and decoded size."""

    content_type: str
    filename: str | None
    size: int
    disposition: str | None


@dataclass(frozen=True, slots=True)
class MessageView:
    """What spamwarden knows of one message after a bounded parse.

    ``headers`` keeps every header (up to the limit) in order as ``(name,
    value)`` with folding removed and the value undecoded; everything else is
    derived from them and the body.  ``truncated`` says the message was larger
    than ``ParseLimits.max_bytes`` and only its head was read.
    """

    size: int
    truncated: bool
    headers: tuple[tuple[str, str], ...]
    subject: str
    text: str
    html_text: str
    has_html: bool
    has_text_plain: bool
    parts: tuple[Part, ...]
    urls: tuple[str, ...]
    url_domains: tuple[str, ...]
    from_address: str | None
    from_display: str
    from_domain: str | None
    return_path_domain: str | None
    reply_to_domain: str | None
    dkim_domains: tuple[str, ...]
    received: tuple[str, ...]
    message_id: str | None
    defects: tuple[str, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        """Every header called ``name``, in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def ad_label(self, labels: tuple[str, ...] = DEFAULT_AD_LABELS) -> str | None:
        """The advertising label at the start of the subject; see :func:`ad_label`."""
        return ad_label(self.subject, labels)

    @property
    def from_registrable(self) -> str | None:
        """The registrable domain of the From address (RFC 7489 §3.2), or ``None``."""
        return registrable_domain(self.from_domain) if self.from_domain else None


def strip_mbox_from(raw: bytes) -> bytes:
    """Drop a leading mbox ``From `` separator line, which an MTA never passes on."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return b"" if nl < 0 else raw[nl + 1 :]
    return raw


def decode_header_value(value: str | email.header.Header | None) -> str:
    """RFC 2047-decode a header value into text; undecodable parts are replaced.

    Whitespace runs (folding included) collapse to one space.
    """
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        try:
            pieces = email.header.decode_header(text)
            out: list[str] = []
            for chunk, charset in pieces:
                if isinstance(chunk, bytes):
                    out.append(decode_with_charset(chunk, charset))
                else:
                    out.append(chunk)
            text = "".join(out) if len(pieces) > 1 else out[0] if out else ""
        except (email.errors.HeaderParseError, ValueError, LookupError, IndexError):
            pass
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate as ``?``: a raw 8-bit octet of a header the parser
    kept that way (``surrogateescape``) is no text Redis, a hasher or a log can take."""
    return text.encode("utf-8", "replace").decode("utf-8")


#: Python text codecs that are no MIME charset, and whose decoding takes time in the
#: square of the text (the punycode decoder rebuilds the string for every character it
#: inserts: 45 s for a 1 MB part declaring ``charset=punycode``); read as unknown
_NOT_CHARSETS = frozenset({"punycode", "idna"})


def decode_with_charset(data: bytes, charset: str | None) -> str:
    """Text from octets in a MIME charset (RFC 2045 section 5.1's ``charset``
    parameter, RFC 2047 section 2's encoded-word charset).  Never raises.

    :param data: the octets.
    :param charset: the charset's name, in any case, white space around it ignored;
        ``None``, empty, ``us-ascii``, ``ascii`` and the names of no charset
        (``unknown-8bit``, ``x-unknown``, ``default``) are read as UTF-8.
    :returns: the text, each octet sequence the charset cannot decode replaced by
        U+FFFD; for a charset Python does not know, UTF-8 when the octets are valid
        UTF-8, else windows-1252.
    """
    cs = (charset or "").strip().lower() or "utf-8"
    if cs in ("unknown-8bit", "x-unknown", "default", "us-ascii", "ascii"):
        cs = "utf-8"
    try:
        if codecs.lookup(cs).name in _NOT_CHARSETS:
            raise LookupError(cs)
        return data.decode(cs, "replace")
    except (LookupError, ValueError):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")


_LABEL_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def ad_label(subject: str, labels: tuple[str, ...] = DEFAULT_AD_LABELS) -> str | None:
    """The advertising label (``QC``, ``ADV``, ...) at the start of a decoded subject.

    Case-insensitive, in square brackets, after optional ``Re:``/``Fwd:``
    prefixes and whitespace (Decree 91/2020/ND-CP, art. 11).  Returns the label
    as configured (``"QC"``), or ``None``.
    """
    pat = _LABEL_CACHE.get(labels)
    if pat is None:
        alts = "|".join(re.escape(lbl) for lbl in sorted(labels, key=len, reverse=True))
        pat = re.compile(
            r"^\s*(?:(?:re|fw|fwd|tr|aw|wg)\s*:\s*)*\[\s*(" + alts + r")\s*\]", re.IGNORECASE
        )
        _LABEL_CACHE[labels] = pat
    m = pat.match(subject)
    if not m:
        return None
    found = m.group(1).lower()
    for lbl in labels:
        if lbl.lower() == found:
            return lbl
    return None


# -- HTML and URLs --------------------------------------------------------------------------

# Tag bodies are bounded ({0,2000}, as in _TAGS): an unbounded [^>]* rescans to the end of
# the markup from every "<p" or "<script" when no ">" follows, which is quadratic.
_BLOCK_OPEN = re.compile(r"<(script|style|head|title)\b[^>]{0,2000}>", re.I)
_BLOCK_CLOSE = {name: re.compile(rf"</{name}\s*>", re.I)
                for name in ("script", "style", "head", "title")}
_BREAKS = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h[1-6]|p|div|tr|li|table)\b[^>]{0,2000}>", re.I)
_TAGS = re.compile(r"<[^>]{0,2000}>", re.S)
# An attribute's value as HTML reads it: a quoted one runs to its closing quote (white
# space, ">" and the other quote included: href="http://victim.example'@spam.example/"
# leads to spam.example), an unquoted one to white space or ">".
_HREF = re.compile(
    r"""(?:href|src|action)\s*=\s*"""
    r"""(?:"([^"]{1,2048})|'([^']{1,2048})|([^"'\s>]{1,2048}))""", re.I)
_URL = re.compile(
    r"""\b((?:https?://|www\.)[^\s<>"'()\[\]{}]{1,2048})""", re.I
)
# The host of a URL as a browser reads it (WHATWG URL, special schemes): the authority
# ends at "/", "\\", "?" or "#", and only an "@" inside it ends a userinfo part, so
# https://spam.example#@victim.example/ leads to spam.example; "\\" counts as "/".  The
# userinfo runs to the authority's last "@" (http://victim.example@x@spam.example/ leads
# to spam.example), and a host is followed by a port, the end of the authority or nothing.
_HOST_IN_URL = re.compile(
    r"^(?:https?:[/\\]*)?(?:[^/\\?#]*@)?([^/\\:?#@\s]+)(?=[/\\:?#]|\Z)", re.I)
# The same searches on lower-cased ASCII text, where a case-sensitive pattern finds the
# same spans several times faster: _HREF as it is, _URL by its start only (each start is
# then matched in full on the original text, which also checks the word boundary).
_HREF_LOWER = re.compile(_HREF.pattern)
_URL_START = re.compile(r"https?://|www\.")


def html_to_text(markup: str, *, limit: int = 200_000) -> str:
    """Visible text of an HTML fragment: scripts, styles, comments and tags dropped,
    entities decoded, whitespace collapsed."""
    markup = markup[: limit * 4]
    markup = _drop_comments(markup)
    markup = _drop_blocks(markup)
    markup = _BREAKS.sub("\n", markup)
    markup = _TAGS.sub(" ", markup)
    text = html.unescape(markup)
    return re.sub(r"[ \t\r\f\v\u00a0]+", " ", text).strip()[:limit]


def _drop_comments(markup: str) -> str:
    """Each ``<!-- ... -->`` replaced by a space, in linear time.

    Same result as ``re.sub(r"<!--.*?-->", " ", markup, flags=re.S)``, whose lazy scan
    restarts at every ``<!--`` and is quadratic when no ``-->`` follows (``"<!--" * 8000``
    took seconds).  Once no ``-->`` follows one start, none follows a later one.
    """
    out: list[str] = []
    pos = 0
    while True:
        start = markup.find("<!--", pos)
        if start < 0:
            break
        end = markup.find("-->", start + 4)
        if end < 0:
            break
        out.append(markup[pos:start])
        out.append(" ")
        pos = end + 3
    out.append(markup[pos:])
    return "".join(out)


def _drop_blocks(markup: str) -> str:
    """Each script/style/head/title element replaced by a space, in linear time.

    An opening tag whose element is never closed is left as it is (and so is every later
    one of that name: no closing tag follows them either), as the former single regex
    ``<(script|...)\\b[^>]*>.*?</\\1\\s*>`` did, without rescanning to the end per tag.
    """
    out: list[str] = []
    pos = search = 0
    unclosed: set[str] = set()
    while True:
        m = _BLOCK_OPEN.search(markup, search)
        if m is None:
            break
        name = m.group(1).lower()
        close = None if name in unclosed else _BLOCK_CLOSE[name].search(markup, m.end())
        if close is None:
            unclosed.add(name)
            search = m.start() + 1
            continue
        out.append(markup[pos:m.start()])
        out.append(" ")
        pos = search = close.end()
    out.append(markup[pos:])
    return "".join(out)


def _href_values(markup: str, starts: set[int] | None = None) -> Iterator[str]:
    """What ``_HREF.finditer(markup)`` captures, in order; where each value's first
    character other than white space stands is added to ``starts``."""
    matches = (_HREF.finditer(markup) if not markup.isascii()
               else _HREF_LOWER.finditer(markup.lower()))
    for m in matches:
        group = m.lastindex or 1
        value = markup[m.start(group):m.end(group)]
        if starts is not None:
            starts.add(m.end(group) - len(value.lstrip()))
        yield value


def _url_matches(text: str, skip: set[int] | None = None) -> Iterator[str]:
    """What ``_URL.finditer(text)`` captures, in order, but for the matches that start
    at a place in ``skip``: on ASCII text, each place a URL can start is found in the
    lower-cased copy and matched in full there only."""
    if not text.isascii():
        for m in _URL.finditer(text):
            if skip is None or m.start(1) not in skip:
                yield m.group(1)
        return
    lower = text.lower()
    pos = 0
    while True:
        start = _URL_START.search(lower, pos)
        if start is None:
            return
        found = _URL.match(text, start.start())
        if found is None:
            pos = start.start() + 1
            continue
        if skip is None or found.start(1) not in skip:
            yield found.group(1)
        pos = found.end()


#: what a browser drops from a URL before parsing it (WHATWG URL parsing): the C0
#: controls and spaces around it, and every ASCII tab and newline within it
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")


def _as_browsers_read(value: str) -> str:
    """An attribute value (or URL) as a browser parses it: character references
    decoded, then white space around it and tabs and newlines in it dropped, so
    href="http://victim.example&#9;.spam.example/" is http://victim.example.spam.example/."""
    value = html.unescape(value).strip(_C0_OR_SPACE)
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.translate(_TAB_OR_NEWLINE)
    return value


def _all_urls(text: str, markup: str) -> Iterator[str]:
    """Every URL of :func:`extract_urls`, in its order."""
    seen: set[str] = set()
    # Markup is searched for URLs that are no attribute (in scripts, say, or inside a
    # redirect's query), but not again at the start of an attribute value: the value
    # read whole is the link, and the piece a search finds, http://victim.example of
    # href="http://victim.example<TAB>.spam.example/", is none.
    hrefs: set[int] = set()
    for found in (_href_values(markup, hrefs), _url_matches(text),
                  _url_matches(markup, hrefs)):
        for value in found:
            url = _as_browsers_read(value).rstrip(".,;:!?'\">")
            low = url.lower()
            # http: and https: with any slashes, or none: a browser reads the host of
            # https:\\spam.example, http:/spam.example and http:spam.example alike
            if low.startswith(("http:", "https:", "www.")) and url not in seen:
                seen.add(url)
                yield url


def extract_urls(text: str, markup: str = "", *, limit: int = 100) -> tuple[str, ...]:
    """URLs in plain text and HTML attributes, de-duplicated in order, at most ``limit``."""
    return tuple(itertools.islice(_all_urls(text, markup), max(1, limit)))


#: distinct link hosts, and links, read per message for its ``url_domains``, per domain
#: kept: the bounds on the work of a message of thousands of links
_HOSTS_PER_DOMAIN = 10
_URLS_PER_DOMAIN = 100


def _urls_and_domains(text: str, markup: str, limit: int,
                      defects: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The first ``limit`` URLs of :func:`extract_urls` and the first ``limit`` distinct
    registrable domains of every URL's host, not only of those URLs': links to domains
    already seen (a hundred to victim.example/1, /2, ...) push no later domain out.  A
    redirector's target written into a link (:func:`_url_hosts`) counts as a host of
    its own, after the redirector's.  The search stops, saying so in ``defects``, after
    ``limit`` times :data:`_HOSTS_PER_DOMAIN` distinct hosts or :data:`_URLS_PER_DOMAIN`
    URLs."""
    urls: list[str] = []
    domains: dict[str, None] = {}
    hosts: set[str] = set()
    budget = [_MAX_NESTED_TRIES_PER_MESSAGE]
    for seen, url in enumerate(_all_urls(text, markup)):
        if len(urls) < limit:
            urls.append(url)
        elif len(domains) >= limit:
            break
        if seen >= limit * _URLS_PER_DOMAIN:
            defects.append("URLs over limit")
            break
        for host in _url_hosts(url, budget):
            if host in hosts:
                continue
            if len(hosts) >= limit * _HOSTS_PER_DOMAIN:
                defects.append("URL hosts over limit")
                return tuple(urls), tuple(domains)
            hosts.add(host)
            reg = _host_domain(host)
            if reg and len(domains) < limit:
                domains[reg] = None
    return tuple(urls), tuple(domains)


#: where a URL written into another one starts: a scheme, as is or percent-encoded
#: (once or twice)
_NESTED_URL = re.compile(r"https?(?::|%3a|%253a)", re.I)
#: redirect targets read from one link at most (a spammer may write others' before its own)
_MAX_NESTED = 8
#: places a scheme is written looked at, at most: in one link, and in one message
_MAX_NESTED_TRIES = 16
_MAX_NESTED_TRIES_PER_MESSAGE = 1000


def _url_hosts(url: str, budget: list[int] | None = None) -> list[str]:
    """The host of a URL, then those of the URLs written into its path or query (an
    open redirector's target: https://www.google.com/url?q=https://spam.example/ leads
    to spam.example, and so does its percent-encoded form, once or twice encoded).

    :param budget: a one-item list, the places a scheme is written still to be looked at
        in this message; each one looked at here is taken from it."""
    out = []
    host = _url_host(url)
    if host is not None:
        out.append(host)
    nested = 0
    for m in itertools.islice(_NESTED_URL.finditer(url, 1), _MAX_NESTED_TRIES):
        if nested >= _MAX_NESTED or (budget is not None and budget[0] <= 0):
            break
        if budget is not None:
            budget[0] -= 1
        # a host never holds "&": in a query, the target ends at the next parameter
        inner = url[m.start():].split("&", 1)[0]
        for _ in range(2):
            if "%" not in inner:
                break
            inner = urllib.parse.unquote(inner, errors="replace")
        target = _url_host(inner.split("&", 1)[0])  # and "%26" decoded
        if target is not None:
            out.append(target)
            nested += 1
    return out


def _url_host(url: str) -> str | None:
    """The host of a URL, percent-decoded as a browser decodes it (WHATWG host parsing:
    http://%65vil.example/ is evil.example)."""
    m = _HOST_IN_URL.match(url)
    if not m:
        return None
    host = m.group(1)
    return urllib.parse.unquote(host, errors="replace") if "%" in host else host


def _host_domain(host: str) -> str | None:
    """Registrable domain of a link's host as written (IP hosts give ``None``)."""
    norm = normalize_domain(host)
    return registrable_domain(norm) if norm else None


def url_domain(url: str) -> str | None:
    """Registrable domain of a URL's host (IP hosts give ``None``)."""
    host = _url_host(url)
    return _host_domain(host) if host else None


def link_domains(url: str) -> tuple[str, ...]:
    """Registrable domains a link leads to, as a message view reads them: its host's,
    then those of the redirect targets written into it (:func:`_url_hosts`), without
    repeats."""
    return tuple(dict.fromkeys(d for d in map(_host_domain, _url_hosts(url)) if d))


# -- DKIM tag lists -------------------------------------------------------------------------


def parse_tag_list(value: str) -> dict[str, str]:
    """Parse an RFC 6376 §3.2 tag list (``k=v; k=v``) leniently; whitespace removed."""
    tags: dict[str, str] = {}
    for item in value.split(";"):
        if "=" not in item:
            continue
        k, v = item.split("=", 1)
        k = k.strip()
        if k and k not in tags:
            tags[k] = "".join(v.split())
    return tags


# -- the parser -----------------------------------------------------------------------------

_MAX_DECODED_HEADER = 8192
_HEADER_SPLIT = re.compile(rb"\r?\n\r?\n")
# RFC 5322 section 3.6.8: printable US-ASCII except ":" (already split off)
_FIELD_NAME = re.compile(r"[!-~]+\Z")


def _mime_head(headers: list[tuple[str, str]], names: list[str]) -> bytes:
    """Only the header fields that shape the MIME tree (RFC 2045 section 3).

    The MIME parser needs nothing else; handing it trace fields (dozens of
    ``Received`` lines) only costs time.

    :param names: the header names in lower case, in the same order.
    """
    return b"\n".join(
        f"{k}: {v}".encode("utf-8", "surrogateescape")
        for lname, (k, v) in zip(names, headers)
        if lname.startswith("content-") or lname == "mime-version"
    )


def _mime_tree(mime_head: bytes, body: bytes,
               defects: list[str] | None = None) -> email.message.Message:
    """The stdlib's MIME tree of a message (its MIME header fields, then the body);
    ``defects`` says when :func:`cut_why` cut it (too many parts, or nested too deep).

    A message that is not multipart (nor ``message/*``) is one part whose payload is the
    body as it stands: its header fields are parsed alone and the body set as the
    payload, which is what the full parse ends with, without feeding the body through
    the parser line by line."""
    if mime_head:
        head = email.parser.BytesParser(ParamsMessage, policy=email.policy.compat32).parsebytes(
            mime_head + b"\n\n", headersonly=True)
    else:
        head = ParamsMessage(policy=email.policy.compat32)  # text/plain by default
    if head.get_content_maintype() not in ("multipart", "message") and not head.defects:
        head.set_payload(body.decode("ascii", "surrogateescape"))
        return head
    cut, why = cut_why(mime_head + b"\n\n" + body)
    if why and defects is not None and why not in defects:
        defects.append(why)
    return email.parser.BytesParser(ParamsMessage, policy=email.policy.compat32).parsebytes(cut)


def _split_head_body(raw: bytes) -> tuple[bytes, bytes]:
    m = _HEADER_SPLIT.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def _unfold_headers(head: bytes, limits: ParseLimits) -> tuple[list[tuple[str, str]], list[str]]:
    headers: list[tuple[str, str]] = []
    defects: list[str] = []
    beyond = b""  # the header section past the byte limit: only its From fields are read
    if len(head) > limits.max_header_bytes:
        head, beyond = head[: limits.max_header_bytes], head[limits.max_header_bytes:]
        defects.append("header section over limit")
    name: str | None = None
    value: list[str] = []
    add = headers.append
    field_name = _FIELD_NAME.match
    max_headers = limits.max_headers
    # One decode for the whole section: a line feed never sits inside a UTF-8 sequence,
    # so this gives each line what decoding it alone would.
    lines = head.decode("utf-8", "surrogateescape").split("\n")
    stopped = -1  # the line the field limit stopped at
    for at, text in enumerate(lines):
        if text.endswith("\r"):
            text = text.rstrip("\r")
        if name is not None:
            if text.startswith((" ", "\t")):  # a folded continuation
                value.append(text.strip())
                continue
            add((name, value[0] if len(value) == 1 else " ".join(filter(None, value))))
            if len(headers) >= max_headers:
                defects.append("too many headers")
                name, stopped = None, at
                break
        if ":" in text:
            n, v = text.split(":", 1)
            n = n.strip()
            if n and field_name(n):
                name, value = n, [v.strip()]
                continue
        name = None
        if text.strip():
            defects.append("malformed header line")
    if name is not None:
        add((name, value[0] if len(value) == 1 else " ".join(filter(None, value))))
    if stopped >= 0 or beyond:
        # padding must not hide the author: the From fields past either limit are kept
        # (DMARC, the several-domains check and every rule read them); past the byte
        # limit, from the start of the line it cut
        tail = ("\n".join(lines[stopped:]) if stopped >= 0 else lines[-1]) + beyond.decode(
            "utf-8", "surrogateescape")
        late = _late_from_fields(tail)
        if late:
            headers.extend(late)
            defects.append("From field past the header limits")
    return headers, defects


#: a From field's first line (case as it comes), and its continuation lines
_LATE_FROM = re.compile(r"^[Ff][Rr][Oo][Mm][ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.MULTILINE)
#: From fields kept from past the header limits (one is right; more are an attack)
MAX_LATE_FROM = 10
#: and the characters of each
_LATE_FROM_CHARS = 2048


def _late_from_fields(text: str) -> list[tuple[str, str]]:
    """The From fields of header text that no limit let the parser read: at most
    :data:`MAX_LATE_FROM`, each unfolded and cut to :data:`_LATE_FROM_CHARS`."""
    out: list[tuple[str, str]] = []
    for m in _LATE_FROM.finditer(text):
        value = " ".join(x.strip() for x in m.group(1).replace("\r", "").split("\n"))
        out.append(("From", value.strip()[:_LATE_FROM_CHARS]))
        if len(out) >= MAX_LATE_FROM:
            break
    return out


def parse_message(raw: bytes, *, limits: ParseLimits = ParseLimits()) -> MessageView:
    """Parse raw message bytes into a :class:`MessageView` within ``limits``.

    A leading mbox ``From `` line is skipped.  Never raises for any input:
    malformed structure is recorded in ``defects``.
    """
    raw = strip_mbox_from(raw)
    size = len(raw)
    truncated = size > limits.max_bytes
    if truncated:
        raw = raw[: limits.max_bytes]
    head, body = _split_head_body(raw)
    headers, defects = _unfold_headers(head, limits)
    names = [k.lower() for k, _ in headers]
    firsts: dict[str, str] = {}
    for lname, (_, v) in zip(names, headers):
        firsts.setdefault(lname, v)

    def first(name: str) -> str | None:
        return firsts.get(name.lower())

    # Header values past a few KB are junk or an attack on the decoders' cost; no real
    # subject or address list needs more, and the raw header stays in ``headers``.
    subject = decode_header_value((first("Subject") or "")[:_MAX_DECODED_HEADER])
    from_address, from_display = _parse_from(first("From"))
    from_domain = domain_of_address(from_address) if from_address else None
    rp = first("Return-Path")
    return_path_domain = domain_of_address(rp) if rp else None
    rt = first("Reply-To")
    reply_to_domain = None
    if rt:
        rt_addr, _ = _parse_from(rt)
        reply_to_domain = domain_of_address(rt_addr) if rt_addr else None
    dkim_domains: list[str] = []
    for lname, (_, v) in zip(names, headers):
        if lname == "dkim-signature":
            d = normalize_domain(parse_tag_list(v).get("d", ""))
            if d and d not in dkim_domains:
                dkim_domains.append(d)
    received = tuple(v for lname, (_, v) in zip(names, headers) if lname == "received")
    mid = first("Message-ID")

    texts: list[str] = []
    htmls: list[str] = []
    html_plain: dict[str, str] = {}  # an HTML part's text, converted with the whole budget
    parts: list[Part] = []
    has_html = has_plain = False
    try:
        mime_head = _mime_head(headers, names)
        msg = _mime_tree(mime_head, body, defects)
        budget = [limits.max_text_chars]
        for part in _walk(msg, limits, defects):
            if params_cut(part) and "content parameters over limit" not in defects:
                defects.append("content parameters over limit")
            ctype = (part.get_content_type() or "text/plain").lower()
            filename = _safe(part.get_filename)
            disp = _safe(part.get_content_disposition)
            payload = _payload_bytes(part)
            parts.append(Part(ctype, filename, len(payload), disp))
            if disp == "attachment" or filename:
                continue
            if ctype == "text/plain" or ctype == "text/html":
                charset = _safe(part.get_content_charset)
                text = decode_with_charset(payload, charset)[: budget[0] * 4]
                if ctype == "text/html":
                    has_html = True
                    htmls.append(text)
                    plain = html_to_text(text, limit=budget[0])
                    if budget[0] == limits.max_text_chars:
                        html_plain[text] = plain
                else:
                    has_plain = True
                    plain = text[: budget[0]]
                texts.append(plain)
                budget[0] -= len(plain)
                if budget[0] <= 0:
                    defects.append("text over limit")
                    break
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError,
            RecursionError, IndexError, KeyError, AssertionError, UnicodeError) as exc:
        defects.append(f"MIME parse error: {type(exc).__name__}")

    text = "\n".join(texts)
    html_blob = "\n".join(htmls)
    urls, url_domains = _urls_and_domains(text, html_blob, max(1, limits.max_urls), defects)
    return MessageView(
        size=size,
        truncated=truncated,
        headers=tuple(headers),
        subject=subject,
        text=text,
        html_text=(html_plain[html_blob] if len(htmls) == 1 and html_blob in html_plain
                   else html_to_text(html_blob, limit=limits.max_text_chars) if html_blob
                   else ""),
        has_html=has_html,
        has_text_plain=has_plain,
        parts=tuple(parts),
        urls=urls,
        url_domains=url_domains,
        from_address=from_address,
        from_display=from_display,
        from_domain=from_domain,
        return_path_domain=return_path_domain,
        reply_to_domain=reply_to_domain,
        dkim_domains=tuple(dkim_domains),
        received=received,
        message_id=mid,
        defects=tuple(defects),
    )


def _safe(fn: Callable[[], _T]) -> _T | None:
    """``fn()``, or ``None`` when the stdlib email package chokes on a malformed header."""
    try:
        return fn()
    except (ValueError, LookupError, TypeError, AttributeError, IndexError, UnicodeError,
            email.errors.MessageError):
        return None


def _walk(
    msg: email.message.Message, limits: ParseLimits, defects: list[str]
) -> list[email.message.Message]:
    """Leaf parts, depth-first, bounded in count and depth (no recursion on input)."""
    out: list[email.message.Message] = []
    stack: list[tuple[email.message.Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > limits.max_depth:
            defects.append("MIME nesting over limit")
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            for sub in reversed(payload):
                if isinstance(sub, email.message.Message):
                    stack.append((sub, depth + 1))
        else:
            out.append(part)
            if len(out) >= limits.max_parts:
                if "MIME parts over limit" not in defects:
                    defects.append("MIME parts over limit")
                break
    return out


def _payload_bytes(part: email.message.Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError, UnicodeError, IndexError):
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


# The forms nearly every From takes, read without the stdlib's character-by-character
# address parser: "a@b.c", "Name <a@b.c>", "\"Name\" <a@b.c>" (plain dot-atom addresses,
# no comments, quotes only around the whole name).  Anything else goes to getaddresses.
_DOT_ATOM_ADDR = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_PHRASE_WORD = r"[^\s\"(),:;<>@\[\]\\]+"
_FROM_BARE = re.compile(rf"[ \t]*({_DOT_ATOM_ADDR})[ \t]*\Z")
_FROM_NAMED = re.compile(
    rf"[ \t]*((?:{_PHRASE_WORD}(?:[ \t]+{_PHRASE_WORD})*)?)[ \t]*<({_DOT_ATOM_ADDR})>[ \t]*\Z")
_FROM_QUOTED = re.compile(rf'[ \t]*"([^"\\\r\n]*)"[ \t]*<({_DOT_ATOM_ADDR})>[ \t]*\Z')


def _simple_from(value: str) -> tuple[str, str] | None:
    """``(display, address)`` of the common From forms, as ``getaddresses`` gives them;
    ``None`` for anything else."""
    m = _FROM_BARE.match(value)
    if m:
        return "", m.group(1)
    m = _FROM_NAMED.match(value)
    if m:
        return " ".join(m.group(1).split()), m.group(2)
    m = _FROM_QUOTED.match(value)
    if m:
        return m.group(1), m.group(2)
    return None


def _parse_from(value: str | None) -> tuple[str | None, str]:
    if not value:
        return None, ""
    value = value[:_MAX_DECODED_HEADER]
    simple = _simple_from(value) if len(value) <= 998 else None
    if simple is not None:
        return simple[1], decode_header_value(simple[0])
    try:
        # The stdlib address parser is slow on long inputs (a field of megabytes took
        # seconds); a real address list is far shorter than this.
        pairs = email.utils.getaddresses([value[:8192]])
    # RecursionError: the stdlib address parser recurses once per ":" group, so a
    # header of a thousand colons exhausts the stack.
    except (ValueError, IndexError, TypeError, RecursionError):
        pairs = []
    for display, addr in pairs:
        if addr and "@" in addr:
            return addr.strip(), decode_header_value(display)
    # Bounded runs (RFC 5321 §4.5.3.1: local part <= 64, domain <= 255 octets): an unbounded
    # [...]+ rescans to the end from every start of a long run without "@" (quadratic).
    m = re.search(r"[\w.+%-]{1,64}@[\w.-]{1,255}", value)
    if m:
        return m.group(0), ""
    return None, decode_header_value(value)
