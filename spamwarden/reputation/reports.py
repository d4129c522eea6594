"""Finding the reported message in a complaint, and what it says about its source.

Pure functions over bytes: no I/O, bounded work, and for any input either a
result or a :class:`~spamwarden.errors.ReportError` whose text is one sentence
a reporter understands (intake sends it back in a ``550 5.6.0`` reply).

:func:`find_original` recognises, in this order:

``bare``
    the message itself, redirected or bounced to the report address by the
    reporter's client (``Resent-*`` header block, RFC 5322 §3.6.6).  Headers
    above the resent block (the reporter's own hops) are dropped.
``arf``
    an RFC 5965 feedback report: ``multipart/report; report-type=feedback-report``
    with a ``message/feedback-report`` part (its fields become :class:`ArfFields`)
    and the original as ``message/rfc822`` or headers only as
    ``text/rfc822-headers`` (RFC 6590 redaction tolerated).
``attached``
    every ``message/rfc822`` part anywhere in the report ("forward as
    attachment" in Gmail, Outlook, Thunderbird, Apple Mail; several messages can
    be forwarded at once: :func:`find_originals`), or a ``*.eml`` attachment of
    another declared type.
``inline``
    an inline forward: the text after a forward marker (Gmail's ``----------
    Forwarded message ---------``, Outlook's ``From:/Sent:`` block, Thunderbird's
    ``-------- Forwarded Message --------``, Apple Mail's ``Begin forwarded
    message:``, and their common translations), with the forwarded header block
    (From, Date/Sent, Subject, To, Reply-To) recovered where present.  Best effort:
    the original is rebuilt as a plain-text message and is never "intact".
``bare`` (again)
    with ``local_domains`` given, a message whose From is not in them is taken
    as re-sent as is (a client's "redirect" without ``Resent-*``), unless it is
    an automatic message (``Auto-Submitted``, RFC 3834) such as an unsubscribe
    request.

:func:`extract_indicators` then turns the original (and ARF fields) into
:class:`~spamwarden.reputation.complaints.Indicators`, and :func:`fingerprint`
identifies the reported message for de-duplication.  The MIME structure comes from
:mod:`spamwarden.mail` (:func:`~spamwarden.mail.walk_entities`), and so does the
reading of ``Received`` fields (:func:`~spamwarden.mail.first_untrusted_hop`,
:func:`~spamwarden.mail.submission`: whether our own MTA received the report from
an authenticated client).

Source IP (``Indicators.source_ip``): the ARF ``Source-IP`` when present and
routable, else the client address of the first ``Received`` hop (topmost
first) that is neither in the trusted relays nor a non-routable address
(RFC 1918, loopback, link-local, CGNAT, ULA; documentation ranges count as
routable so test reports work).
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .._unicode import normalized
from ..errors import ReportError
from ..mail import (
    DEFAULT_AD_LABELS,
    Entity,
    MessageView,
    Network,
    ParseLimits,
    ad_label,
    decode_header_value,
    decoded_body,
    domain_key,
    domain_of_address,
    entity_filename,
    entity_text,
    extract_urls,
    first_untrusted_hop,
    html_to_text,
    is_routable,
    link_domains,
    normalize_domain,
    parse_header_fields,
    parse_message,
    registrable_domain,
    split_head,
    strip_mbox_from,
    unmapped,
    walk_entities,
)
from ..resolver import Resolver
from .complaints import Indicators

__all__ = [
    "ArfFields",
    "Original",
    "ReportLimits",
    "DkimSignatureResult",
    "DkimVerifier",
    "find_original",
    "find_originals",
    "message_view",
    "parse_arf_fields",
    "extract_indicators",
    "fingerprint",
    "delivered_fingerprint",
    "delivered_html_fingerprint",
    "html_fingerprint",
    "is_actionable",
    "verified_domains",
    "NO_ORIGINAL",
    "NOTHING_ACTIONABLE",
    "AUTOMATIC_MESSAGE",
]

#: the sentences reporters get back (after ``550 5.6.0``)
NO_ORIGINAL = (
    "No reported message was found in your report: forward the unwanted message as an "
    "attachment (\"Forward as attachment\"), or forward it inline without editing the "
    "forwarded headers."
)
NOTHING_ACTIONABLE = (
    "The reported message names no sending server, sender domain or link that could be "
    "acted on."
)
AUTOMATIC_MESSAGE = (
    "This is an automatic message (such as an unsubscribe request or an auto-reply), "
    "not a forwarded unwanted message."
)


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """Bounds on the work done for one report."""

    max_bytes: int = 10_240_000
    max_parts: int = 100
    max_depth: int = 8
    max_headers: int = 500
    max_text_chars: int = 200_000
    max_dkim_domains: int = 10
    max_received: int = 50


@dataclass(frozen=True, slots=True)
class ArfFields:
    """The machine-readable part of an RFC 5965 report (§3.1, §3.2; RFC 6591).

    Single fields are ``None`` when absent; ``feedback_type`` and
    ``auth_failure`` are lower-cased.  ``arrival_date`` is a Unix time from
    ``Arrival-Date`` (or the pre-RFC ``Received-Date``).  ``source_ip`` is the
    address alone (a trailing comment such as a host name is dropped) or
    ``None`` when the field is not an IP address.
    """

    feedback_type: str = ""
    user_agent: str | None = None
    version: str | None = None
    original_mail_from: str | None = None
    original_rcpt_to: tuple[str, ...] = ()
    original_envelope_id: str | None = None
    arrival_date: float | None = None
    reporting_mta: str | None = None
    source_ip: str | None = None
    incidents: int = 1
    reported_domains: tuple[str, ...] = ()
    reported_uris: tuple[str, ...] = ()
    authentication_results: tuple[str, ...] = ()
    auth_failure: str | None = None
    delivery_result: str | None = None
    dkim_domain: str | None = None
    dkim_identity: str | None = None
    dkim_selector: str | None = None
    removal_recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Original:
    """The reported message as found in a report.

    :ivar source: how it was found: ``arf``, ``attached``, ``inline`` or ``bare``.
    :ivar message: the original's bytes: a whole message, its header section
        only (``headers_only``), a plain-text message rebuilt from an inline
        forward, or ``b""`` when an ARF report carries no usable copy.
    :ivar intact: the bytes are the message as it was received, so DKIM
        signatures can be re-verified (attached, ARF ``message/rfc822``, bare).
    :ivar arf: the ARF fields, for ``source == "arf"``.
    :ivar extra_urls: links recovered from the HTML of an inline forward.
    :ivar html_message: an inline forward with an HTML part besides its plain one: the
        original rebuilt with the text of that HTML instead (``b""`` otherwise).  A client
        forwards the HTML it showed and writes the plain part from it itself, so this is
        the text the delivered message's HTML alternative had (:func:`html_fingerprint`).
    :ivar notes: what was odd about the report (for logs).
    """

    source: Literal["arf", "attached", "inline", "bare"]
    message: bytes
    intact: bool = False
    headers_only: bool = False
    arf: ArfFields | None = None
    extra_urls: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    html_message: bytes = b""


class DkimSignatureResult(Protocol):
    """One verified DKIM signature as the milter's ``verify_dkim`` returns it."""

    @property
    def result(self) -> str:
        """``pass``, ``fail``, ``neutral``, ... (RFC 8601 §2.7.1)."""
        ...

    @property
    def domain(self) -> str:
        """The signature's ``d=`` domain."""
        ...


class DkimVerifier(Protocol):
    """Verifies every DKIM signature of a whole message (RFC 6376 §6.1), fetching
    key records through ``resolver``.

    The milter's ``verify_dkim`` fits (bind its keyword options with
    ``functools.partial``).  Must not raise for bad messages or DNS trouble.
    """

    def __call__(self, raw: bytes, resolver: Resolver) -> Sequence[DkimSignatureResult]: ...


_MESSAGE_HEADERS = {
    "from", "received", "subject", "return-path", "message-id", "date", "dkim-signature",
    "to", "reply-to", "sender",
}


def _looks_like_message(data: bytes, limits: ReportLimits) -> bool:
    head, _ = split_head(data.lstrip(b"\r\n")[:262144])
    headers = parse_header_fields(head, limits.max_headers)
    return any(k.lower() in _MESSAGE_HEADERS for k, _ in headers)


# -- ARF ------------------------------------------------------------------------------------

_IP_TOKEN = re.compile(r"^\[?(?:IPv6:)?([0-9A-Fa-f:.]+?)\]?(?:[\s(;,]|$)")


def _ip_or_none(text: str | None) -> str | None:
    if not text:
        return None
    m = _IP_TOKEN.match(text.strip())
    if not m:
        return None
    try:
        return str(unmapped(ipaddress.ip_address(m.group(1))))  # ::ffff:192.0.2.5 is 192.0.2.5
    except ValueError:
        return None


def _date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_tz(text)
        return float(email.utils.mktime_tz(parsed)) if parsed else None
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def parse_arf_fields(text: str, *, max_headers: int = 500) -> ArfFields:
    """The fields of a ``message/feedback-report`` body (RFC 5965 §3.1-3.3)."""
    fields = parse_header_fields(text.encode("utf-8", "replace"), max_headers)

    def one(name: str) -> str | None:
        lname = name.lower()
        for k, v in fields:
            if k.lower() == lname and v:
                return v
        return None

    def many(name: str) -> tuple[str, ...]:
        lname = name.lower()
        return tuple(v for k, v in fields if k.lower() == lname and v)

    reporting = one("Reporting-MTA")
    if reporting and ";" in reporting:
        reporting = reporting.split(";", 1)[1].strip()
    try:
        incidents = max(1, int(one("Incidents") or "1"))
    except ValueError:
        incidents = 1
    ftype = (one("Feedback-Type") or "").strip().lower()
    failure = one("Auth-Failure")
    return ArfFields(
        feedback_type=ftype,
        user_agent=one("User-Agent"),
        version=one("Version"),
        original_mail_from=one("Original-Mail-From"),
        original_rcpt_to=many("Original-Rcpt-To"),
        original_envelope_id=one("Original-Envelope-Id"),
        arrival_date=_date(one("Arrival-Date") or one("Received-Date")),
        reporting_mta=reporting,
        source_ip=_ip_or_none(one("Source-IP")),
        incidents=incidents,
        reported_domains=many("Reported-Domain"),
        reported_uris=many("Reported-URI"),
        authentication_results=many("Authentication-Results"),
        auth_failure=failure.strip().lower() if failure else None,
        delivery_result=one("Delivery-Result"),
        dkim_domain=one("DKIM-Domain"),
        dkim_identity=one("DKIM-Identity"),
        dkim_selector=one("DKIM-Selector"),
        removal_recipients=many("Removal-Recipient"),
    )


def _arf_useful(arf: ArfFields) -> bool:
    return bool(arf.source_ip or arf.original_mail_from or arf.reported_domains
                or arf.reported_uris or arf.dkim_domain)


def _from_arf(entities: list[Entity], idx: int, limits: ReportLimits) -> Original:
    arf = parse_arf_fields(entity_text(entities[idx]), max_headers=limits.max_headers)
    notes: list[str] = []
    for ent in entities[idx + 1:] + entities[:idx]:
        ctype = ent.ctype
        if ctype == "message/rfc822":
            data = decoded_body(ent)
            if _looks_like_message(data, limits):
                return Original("arf", data, intact=True, arf=arf)
            notes.append("message/rfc822 part holds no message (redacted?)")
        elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
            data = decoded_body(ent)
            head, _ = split_head(data.lstrip(b"\r\n"))
            if parse_header_fields(head, limits.max_headers):
                return Original("arf", head + b"\r\n\r\n", headers_only=True, arf=arf)
    if not _arf_useful(arf):
        raise ReportError(NO_ORIGINAL)
    notes.append("no copy of the original; ARF fields only")
    return Original("arf", b"", arf=arf, notes=tuple(notes))


# -- inline forwards ------------------------------------------------------------------------

_FORWARD_MARKER = re.compile(
    r"^[ \t>]*(?:"
    r"-{3,}\s*(?:Forwarded message|Original Message|Forwarded Message|"
    r"Weitergeleitete Nachricht|Ursprüngliche Nachricht|Message transféré|Message d'origine|"
    r"Mensaje reenviado|Mensaje original|Messaggio inoltrato|Mensagem encaminhada|"
    r"Thư đã chuyển tiếp|Tin nhắn đã chuyển tiếp|Thư chuyển tiếp|Пересылаемое сообщение|"
    r"Doorgestuurd bericht)\s*-{3,}"
    r"|Begin forwarded message:|Début du message réexpédié :|Anfang der weitergeleiteten Nachricht:"
    r"|_{10,}"
    r")\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_HTML_FORWARD_MARKER = re.compile(
    r"gmail_quote|divRplyFwdMsg|moz-forward-container|OLK_SRC_BODY_SECTION|appendonsend|"
    r"Forwarded message|Forwarded Message|Begin forwarded message|Original Message",
    re.IGNORECASE,
)
_FIELD_NAMES = {
    "from": "From", "von": "From", "de": "From", "từ": "From", "da": "From", "van": "From",
    "от": "From",
    "subject": "Subject", "betreff": "Subject", "objet": "Subject", "asunto": "Subject",
    "oggetto": "Subject", "assunto": "Subject", "chủ đề": "Subject", "tiêu đề": "Subject",
    "onderwerp": "Subject", "тема": "Subject",
    "date": "Date", "sent": "Date", "datum": "Date", "gesendet": "Date", "envoyé": "Date",
    "enviado": "Date", "inviato": "Date", "ngày": "Date", "đã gửi": "Date", "gửi": "Date",
    "verzonden": "Date", "дата": "Date", "отправлено": "Date", "date d'envoi": "Date",
    "to": "To", "an": "To", "à": "To", "para": "To", "a": "To", "tới": "To", "đến": "To",
    "aan": "To", "кому": "To",
    "cc": "Cc", "reply-to": "Reply-To", "antwort an": "Reply-To", "répondre à": "Reply-To",
}
_FIELD_LINE = re.compile(r"^[ \t>]*\*?([^\W\d_][\w' -]{0,18}?)\*?\s*:\*?[ \t]*(.*)$")
_MAILTO = re.compile(r"[\[<]mailto:([^\]>\s]+)[\]>]", re.I)


def _field(line: str) -> tuple[str, str] | None:
    m = _FIELD_LINE.match(line)
    if not m:
        return None
    name = _FIELD_NAMES.get(m.group(1).strip().lower())
    if name is None:
        return None
    value = m.group(2).strip().strip("*").strip()
    return name, _MAILTO.sub(lambda mm: f"<{mm.group(1)}>", value)


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int] | None:
    """A forwarded header block starting at ``lines[start]`` (blank lines skipped first)."""
    i = start
    while i < len(lines) and not lines[i].strip(" \t>"):
        i += 1
        if i - start > 3:
            return None
    found: dict[str, str] = {}
    last: str | None = None
    extra = 0
    while i < len(lines) and len(found) < 8:
        line = lines[i]
        if not line.strip(" \t>"):
            break
        f = _field(line)
        if f is not None and not f[1] and i + 1 < len(lines) and _field(lines[i + 1]) is None:
            f = (f[0], lines[i + 1].strip(" \t>"))  # a table cell on its own line (HTML)
            i += 1
        if f is not None:
            found.setdefault(f[0], f[1])
            last = f[0]
            extra = 0
        elif last is not None and extra < 3 and last in ("To", "Cc"):
            found[last] += " " + line.strip(" \t>")  # a wrapped recipient list
            extra += 1
        else:
            break
        i += 1
    if len(found) < 2 or "From" not in found and "Subject" not in found:
        return None
    return found, i


def _find_inline(text: str) -> tuple[dict[str, str], str] | None:
    # the markers and field names are spelled composed (``Chủ đề``); a client may write
    # them decomposed, and the fingerprint reads the text composed anyway
    text = _composed(text)
    lines = text.replace("\r\n", "\n").split("\n")[:20000]
    marker = _FORWARD_MARKER.search(text.replace("\r\n", "\n"))
    candidates: list[int] = []
    if marker is not None:
        candidates.append(text.replace("\r\n", "\n")[: marker.start()].count("\n") + 1)
    # Outlook desktop puts the header block under a rule or nothing at all
    candidates += [i for i, line in enumerate(lines) if (f := _field(line)) and f[0] == "From"][:5]
    for start in candidates:
        block = _header_block(lines, start)
        if block is None:
            continue
        headers, end = block
        body_lines = lines[end:]
        quoted = [ln for ln in body_lines if ln.strip()]
        if quoted and all(ln.lstrip().startswith(">") for ln in quoted):
            body_lines = [re.sub(r"^\s*>\s?", "", ln) for ln in body_lines]
        return headers, "\n".join(body_lines).strip("\n")
    return None


def _html_lines(text: str) -> str:
    """The lines of an HTML forward's text, stripped, for :func:`_find_inline`.

    Markup leaves whitespace-only lines between ``<br>``-separated header lines and
    between a table's name and value cells: such a blank line is dropped.  One blank line
    is kept where the header block ends (Gmail's ``To:`` line, then the original), else
    the original's first lines would be read as a wrapped recipient list.
    """
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    for i, line in enumerate(lines):
        if line:
            out.append(line)
            continue
        if not out or not out[-1]:
            continue
        nxt = next((x for x in lines[i + 1:i + 20] if x), "")
        prev = _field(out[-1])
        if (prev is not None and not prev[1]) or _field(nxt) is not None:
            continue  # inside the header block
        out.append("")
    return "\n".join(out)


#: characters of one field of an inline forward's header block kept in the rebuilt copy
#: (the parser decodes at most 8,192 of a Subject)
_MAX_INLINE_FIELD = 8192


def _clean_header_value(name: str, value: str) -> str:
    """One field of an inline forward's header block, for the rebuilt copy: white space
    collapsed, folded into lines under 998 octets (RFC 5322 §2.1.1) instead of cut, so a
    Subject, or a From address after a display name, of over 998 characters is read
    whole; a From field cut at :data:`_MAX_INLINE_FIELD` keeps its address."""
    whole = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    text = whole[:_MAX_INLINE_FIELD]
    if name.lower() == "from" and len(whole) > len(text):
        address = _from_address(whole)
        if address:
            text = f"{text[:_MAX_INLINE_FIELD - len(address) - 3]} <{address}>"
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= 900:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\r\n ".join(lines)


def _from_inline(entities: list[Entity], limits: ReportLimits) -> Original | None:
    plain: str | None = None
    markup: str | None = None
    for ent in entities:
        ctype = ent.ctype
        if entity_filename(ent) or (ent.get("Content-Disposition") or "").lower().startswith("attach"):
            continue
        if ctype == "text/plain" and plain is None:
            plain = entity_text(ent)[: limits.max_text_chars * 2]
        elif ctype == "text/html" and markup is None:
            markup = entity_text(ent)[: limits.max_text_chars * 4]
    html_text = ""
    if markup is not None:
        html_text = _html_lines(html_to_text(markup, limit=limits.max_text_chars))
    text = plain if plain is not None else html_text
    if not text:
        return None
    found = _find_inline(text)
    if found is None:
        return None
    headers, body = found
    html_message = b""
    if plain is not None and html_text:
        # the client wrote its plain part from the HTML it forwards (links as "text <url>",
        # its own marks): the HTML's text is what the delivered HTML alternative said
        in_html = _find_inline(html_text)
        if in_html is not None and in_html[1] != body:
            html_message = _rebuilt(headers, in_html[1])
    extra: tuple[str, ...] = ()
    if markup:
        m = _HTML_FORWARD_MARKER.search(markup)
        if m is not None:
            urls = extract_urls("", markup[m.start():], limit=200)
            extra = tuple(u for u in urls if not u.lower().startswith("mailto:"))
    return Original("inline", _rebuilt(headers, body), extra_urls=extra,
                    html_message=html_message)


def _rebuilt(headers: dict[str, str], body: str) -> bytes:
    """A plain-text message of an inline forward's header block and text."""
    lines = [f"{name}: {_clean_header_value(name, value)}" for name, value in headers.items()]
    lines.append("MIME-Version: 1.0")
    lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode(
        "utf-8", "replace"
    )


# -- bare re-sent messages ------------------------------------------------------------------

_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.M)


def _cut_above_resent(raw: bytes) -> bytes:
    """Drop the header lines above the topmost ``Resent-*`` field (the re-sender's hops)."""
    head, _ = split_head(raw)
    for m in _HEADER_LINE.finditer(head):
        if m.group(1).lower().startswith(b"resent-"):
            return raw[m.start():]
    return raw


def _is_automatic(root: Entity) -> bool:
    auto = (root.get("Auto-Submitted") or "no").strip().lower()
    return not auto.startswith("no") or root.get("X-Apple-Unsubscribe") is not None


def _from_domain_is_local(root: Entity, local_domains: Sequence[str]) -> bool:
    addr = _from_address(root.get("From"))
    dom = domain_of_address(addr) if addr else None
    if dom is None:
        return True
    return _in_domains(dom, local_domains)


def _in_domains(domain: str, domains: Iterable[str]) -> bool:
    for d in domains:
        nd = domain_key(d)
        if domain == nd or domain.endswith("." + nd):
            return True
    return False


# -- finding the original -------------------------------------------------------------------


def find_original(
    raw: bytes,
    *,
    local_domains: Sequence[str] = (),
    limits: ReportLimits = ReportLimits(),
) -> Original:
    """Find the reported message in a report (see the module docstring for the forms).

    :param raw: the report as received (DATA content).
    :param local_domains: the operator's domains; with them, a message whose
        From is elsewhere counts as a bare re-sent original.
    :param limits: bounds on sizes and MIME structure.
    :returns: the :class:`Original` (the first, when several are attached).
    :raises ReportError: no usable original; the text is for the reporter.
    """
    return find_originals(raw, local_domains=local_domains, limits=limits, max_originals=1)[0]


def find_originals(
    raw: bytes,
    *,
    local_domains: Sequence[str] = (),
    limits: ReportLimits = ReportLimits(),
    max_originals: int = 10,
) -> list[Original]:
    """Every reported message in a report: several when several messages were
    forwarded as attachments at once (Gmail, Outlook and Thunderbird allow it),
    else the one :func:`find_original` finds.

    :param max_originals: at most this many are returned (the first ones).
    :returns: one or more :class:`Original`, in the order of the report.
    :raises ReportError: no usable original; the text is for the reporter.
    """
    raw = strip_mbox_from(raw[: limits.max_bytes])
    entities = walk_entities(raw, max_parts=limits.max_parts, max_depth=limits.max_depth,
                             max_headers=limits.max_headers)
    root = entities[0]
    if not root.headers:
        raise ReportError(NO_ORIGINAL)
    if any(k.lower() in ("resent-from", "resent-sender") for k, _ in root.headers):
        if _is_automatic(root):
            raise ReportError(AUTOMATIC_MESSAGE)
        return [Original("bare", _cut_above_resent(raw), intact=True)]
    for i, ent in enumerate(entities):
        if ent.ctype == "message/feedback-report":
            return [_from_arf(entities, i, limits)]
    attached: list[Original] = []
    for ent in entities[1:]:
        ctype = ent.ctype
        name = entity_filename(ent).lower()
        if ctype == "message/rfc822" or (
            name.endswith(".eml") and not ctype.startswith("multipart")
        ):
            data = decoded_body(ent)
            if _looks_like_message(data, limits):
                attached.append(Original("attached", data, intact=True))
                if len(attached) >= max(1, max_originals):
                    break
    if attached:
        return attached
    inline = _from_inline(entities, limits)
    if inline is not None:
        return [inline]
    if local_domains and not _from_domain_is_local(root, local_domains):
        if _is_automatic(root):
            raise ReportError(AUTOMATIC_MESSAGE)
        return [Original("bare", raw, intact=True, notes=("no Resent-* fields",))]
    raise ReportError(NO_ORIGINAL)


# -- indicators -------------------------------------------------------------------------------

_ANGLE_ADDR = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")


def _from_address(value: str | None) -> str | None:
    """The address of a From field; the angle-addr wins over a display name that
    looks like an address."""
    if not value:
        return None
    text = decode_header_value(value)
    found = _ANGLE_ADDR.findall(text)
    if found:
        return str(found[-1]).strip()
    try:
        # The stdlib address parser is slow on long inputs (a field of megabytes took
        # seconds); a real address list is far shorter than this.
        pairs = email.utils.getaddresses([text[:8192]])
    # RecursionError: the stdlib address parser recurses once per ":" group, so a
    # header of a thousand colons exhausts the stack.
    except (ValueError, IndexError, TypeError, RecursionError):
        pairs = []
    for _, addr in pairs:
        if addr and "@" in addr:
            return addr.strip()
    # Bounded runs (RFC 5321 §4.5.3.1: local part <= 64, domain <= 255 octets): an unbounded
    # [...]+ rescans to the end from every start of a long run without "@" (quadratic).
    m = re.search(r"[\w.+%=-]{1,64}@[\w.-]{1,255}", text)
    return m.group(0) if m else None


def _registrable_of_address(addr: str | None) -> str | None:
    if not addr:
        return None
    dom = domain_of_address(addr.strip().strip("<>"))
    return registrable_domain(dom) if dom else None


def message_view(
    original: Original, *, max_urls: int = 50, limits: ReportLimits = ReportLimits()
) -> MessageView | None:
    """The bounded parse of the original (``None`` when there is no copy); pass it to
    :func:`extract_indicators` and :func:`fingerprint` to parse once."""
    if not original.message:
        return None
    return parse_message(
        original.message,
        limits=ParseLimits(max_bytes=limits.max_bytes, max_urls=max(1, max_urls),
                           max_text_chars=limits.max_text_chars),
    )


def verified_domains(results: Sequence[DkimSignatureResult]) -> tuple[str, ...]:
    """The ``d=`` of every signature that passed, normalised, in order."""
    out: dict[str, None] = {}
    for r in results:
        if getattr(r, "result", "") == "pass":
            d = normalize_domain(getattr(r, "domain", "") or "")
            if d:
                out[d] = None
    return tuple(out)


def extract_indicators(
    original: Original,
    *,
    trusted_relays: Sequence[Network] = (),
    max_urls: int = 50,
    ad_labels: tuple[str, ...] = DEFAULT_AD_LABELS,
    dkim_verified: Sequence[str] = (),
    limits: ReportLimits = ReportLimits(),
    view: MessageView | None = None,
) -> Indicators:
    """What the original says about its source.

    :param original: from :func:`find_original`.
    :param trusted_relays: Received hops from these are skipped.
    :param max_urls: at most this many URL registrable domains.
    :param ad_labels: subject labels that mark an advertisement.
    :param dkim_verified: ``d=`` values whose signatures were re-verified (pass).
    :param view: :func:`message_view` of the original, when already made.
    :returns: the indicators; ARF fields win over the copy of the message for
        the source IP and the MAIL FROM domain (RFC 5965 §3.2).
    """
    if view is None:
        view = message_view(original, max_urls=max_urls, limits=limits)
    arf = original.arf
    source_ip: str | None = None
    if arf is not None and arf.source_ip and is_routable(arf.source_ip, ()):
        source_ip = arf.source_ip
    if source_ip is None and view is not None:
        source_ip = first_untrusted_hop(view.received, trusted_relays,
                                        max_hops=limits.max_received)
    mail_from = _registrable_of_address(arf.original_mail_from if arf else None)
    if mail_from is None and view is not None and original.source != "inline":
        mail_from = _registrable_of_address(view.header("Return-Path"))
    from_address = _from_address(view.header("From")) if view is not None else None
    from_dom = domain_of_address(from_address) if from_address else None
    dkim: dict[str, None] = {}
    if view is not None:
        for d in view.dkim_domains:
            dkim[d] = None
    if arf is not None and arf.dkim_domain:
        for piece in re.split(r"[;,\s]+", arf.dkim_domain):
            named = normalize_domain(piece)
            if named:
                dkim[named] = None
    dkim_list = tuple(dkim)[: limits.max_dkim_domains]
    verified = tuple(d for d in (normalize_domain(x) for x in dkim_verified) if d and d in dkim)
    urls: dict[str, None] = {}
    sources: list[Iterable[str]] = []
    if view is not None:
        sources.append(view.url_domains)
    sources.append(d for u in original.extra_urls for d in link_domains(u))
    if arf is not None:
        sources.append(
            d for u in arf.reported_uris if u.lower().startswith(("http://", "https://"))
            for d in link_domains(u)
        )
    for src in sources:
        for d in src:
            if len(urls) >= max_urls:
                break
            urls[d] = None
    subject = view.subject[:998] if view is not None else ""
    return Indicators(
        source_ip=source_ip,
        mail_from_domain=mail_from,
        from_domain=registrable_domain(from_dom) if from_dom else None,
        from_address=from_address.lower()[:320] if from_address else None,
        dkim_domains=dkim_list,
        dkim_verified=verified,
        url_domains=tuple(urls),
        ad_label=ad_label(subject, ad_labels) if subject else None,
        subject=subject,
    )


def is_actionable(ind: Indicators) -> bool:
    """True when the indicators name something a listing could be about."""
    return bool(ind.source_ip or ind.mail_from_domain or ind.from_domain or ind.dkim_domains
                or ind.url_domains)


_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|tr|aw|wg|sv|vs)\s*:\s*)+", re.I)
_WORD = re.compile(r"\w+")
#: ASCII bytes to themselves lower-cased when ``\w`` matches them (letters, digits, ``_``),
#: every other byte to a space: on ASCII text ``translate`` + ``split`` finds the words
#: ``_WORD`` finds, without a string object per word.
_ASCII_WORDS = bytes(
    c if chr(c).isascii() and (chr(c).isalnum() or c == 0x5F) else 0x20 for c in range(256)
).lower()


def _composed(text: str) -> str:
    """``text`` in Unicode's composed form (NFC).  One text has several spellings that
    Unicode holds equivalent: windows-1258 writes a Vietnamese tone mark as a combining
    character after its letter, where UTF-8 mail writes the composed letter, and what
    forwards a copy (a client's editor, a webmail's HTML cleaner, a copy and paste) may
    write either.  A word does not run across a combining mark, so the words of the two
    spellings differed.  Text already composed (nearly all mail) is returned as it is,
    and so keeps the fingerprint it always had; a run of over 30 marks on one letter is
    cut first (:func:`~spamwarden._unicode.normalized`: a sender cannot make it slow)."""
    return normalized("NFC", text)


#: characters of a body a fingerprint composes (:func:`_composed`) before it keeps the
#: first 200,000: a decomposed Vietnamese letter takes up to three
_COMPOSE_CHARS = 800_000


def _words(body: str) -> bytes:
    """The words of ``body`` (the first 200,000 characters of it composed) lower-cased,
    joined by one space, UTF-8:
    ``" ".join(_WORD.findall(_composed(_composed(body).lower()[:200_000])))`` encoded
    (composing the first :data:`_COMPOSE_CHARS` only)."""
    if body.isascii():  # \w on ASCII is [A-Za-z0-9_]; lower() keeps the length
        return b" ".join(body[:200_000].encode("ascii").translate(_ASCII_WORDS).split())
    # lower() maps each character to one or more: the first 200,000 of the lowered text
    # come from the first 200,000 of the text
    text = _composed(_composed(body[:_COMPOSE_CHARS])[:200_000].lower()[:200_000])
    return " ".join(_WORD.findall(text)).encode("utf-8", "replace")


def fingerprint(
    original: Original, *, limits: ReportLimits = ReportLimits(), view: MessageView | None = None
) -> str:
    """A stable identity of the reported message, for de-duplication.

    SHA-256 over the From address, the subject without ``Re:``/``Fwd:``
    prefixes and the body's words (lower-cased, in Unicode's composed form,
    whitespace and markup ignored), so the same message forwarded twice, as an
    attachment or inline, gives the same value, whichever of its canonically
    equivalent spellings the forwarding client wrote.  Header-only copies add the
    Message-ID; an ARF report without a copy uses its Source-IP, Original-Mail-From,
    Arrival-Date and Original-Envelope-Id.  32 hex digits.
    """
    h = hashlib.sha256()
    if view is None:
        view = message_view(original, max_urls=1, limits=limits)
    if view is not None:
        body = view.text or view.html_text
        if view.has_text_plain and view.html_text and body.endswith(view.html_text):
            body = body[: -len(view.html_text)]  # the plain alternative alone
        h.update(_content(view, body))
    if original.arf is not None and (view is None or original.headers_only):
        a = original.arf
        h.update("\0".join([
            a.source_ip or "", a.original_mail_from or "", repr(a.arrival_date),
            a.original_envelope_id or "", ",".join(a.reported_domains),
        ]).encode("utf-8", "replace"))
    return h.hexdigest()[:32]


#: characters of the subject a fingerprint reads: the parser decodes the first 8,192
#: characters of a Subject field, which hold at least about 550 characters of text
#: however it is encoded, and an inline forward's header block holds all of it
FINGERPRINT_SUBJECT_CHARS = 256


def _content(view: MessageView, body: str, *, message_id: bool = True) -> bytes:
    """What :func:`fingerprint` hashes of a message: the From address, the subject without
    prefixes and the words of ``body`` (the Message-ID too when there are no words, unless
    ``message_id`` is false: a copy without one is hashed with none)."""
    from_address = _composed((_from_address(view.header("From")) or "").lower())
    subject = " ".join(_composed(_SUBJECT_PREFIX.sub("", _composed(view.subject)).lower()).split())
    words = _words(body)
    data = (b"v1\0" + from_address.encode() + b"\0"
            + subject[:FINGERPRINT_SUBJECT_CHARS].encode() + b"\0" + words)
    if not words:
        mid = (view.message_id or "") if message_id else ""
        data += b"\0" + mid.strip().encode("utf-8", "replace")
    return data


def delivered_fingerprint(view: MessageView) -> str:
    """:func:`fingerprint` of a whole message as the milter parsed it at delivery: the
    value a later report of the same message gives when forwarded as it was (attached,
    bounced, ARF, or inline by a client that forwards the plain alternative)."""
    return fingerprint(Original("bare", b"", intact=True), view=view)


def delivered_html_fingerprint(view: MessageView) -> str:
    """The fingerprint an inline forward of a message gives when read from the HTML it
    forwarded (:func:`html_fingerprint`); ``""`` where that is sure to be
    :func:`fingerprint`'s value without hashing (one alternative, with words or without
    a Message-ID).  It may still equal that value (alternatives of the same words):
    :func:`~spamwarden.reputation.deliveries.delivery_of` keeps one of two equal values.

    Clients that forward inline forward the HTML they showed and write their own plain
    text of it: the HTML alternative's words count, however the plain alternative differs
    (filler, links written out, a footer).  An inline forward carries no Message-ID, so a
    message without words (an image and a link) is hashed without its Message-ID too."""
    both = view.has_text_plain and bool(view.html_text)
    body = view.html_text if both else (view.text or view.html_text)
    if not both and (not view.message_id or _WORD.search(body[:200_000]) is not None):
        return ""  # the text :func:`fingerprint` reads, and a Message-ID it does not add
    return hashlib.sha256(_content(view, body, message_id=False)).hexdigest()[:32]


def html_fingerprint(original: Original, *, limits: ReportLimits = ReportLimits()) -> str:
    """The fingerprint of an inline forward read from its HTML part
    (:attr:`Original.html_message`), ``""`` when it has none: compared with the
    delivered :func:`fingerprint` and :func:`delivered_html_fingerprint`."""
    if not original.html_message:
        return ""
    return fingerprint(Original("inline", original.html_message), limits=limits)
