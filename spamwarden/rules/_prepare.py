"""A message as SpamAssassin's rules see it: header values, body, rawbody, URIs, full text.

Mirrors ``Mail::SpamAssassin::PerMsgStatus``: the body is the decoded, rendered text
with the Subject as its first line, one line per paragraph with white-space runs made
one space; rawbody is the decoded but unrendered text parts in 2-4 KB pieces; ``full``
is the raw message.  Everything is octets (UTF-8 for decoded text), as SpamAssassin matches octets.
The parsing work already done for a :class:`~spamwarden.mail.MessageView` is reused; the
raw MIME parts are walked once more here for rawbody and MIME part headers.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import email.message
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass, field

from ..mail import MessageView, ParamsMessage, cut_delimiters, decode_with_charset
from ._authfacts import AuthFacts
from ._headeraddr import parse_header_addresses
from ._html import HtmlResults
from ._mime import MimePart
from ._relays import RelayNetworks, Relays, parse_relays
from ._render import rendered_parts_text
from ._uris import uri_list

__all__ = ["MimePart", "PreparedMessage", "body_start", "prepare_message"]

#: SpamAssassin 4's body_part_scan_size and rawbody_part_scan_size (octets per part).
BODY_PART_SCAN_SIZE = 50_000
RAWBODY_PART_SCAN_SIZE = 500_000
FULL_SCAN_SIZE = 1_000_000
#: MIME leaves read: Message.pm's limit of 1,000 parts (its ``_parse_multipart`` stops
#: at a multipart's 1,000th part, without MIMEPART_LIMIT_EXCEEDED, which never hits in
#: 4.0), here for the whole message, since a limit per multipart would not bound a
#: nested one; docs/rules-measurements.md has the cost of a message at the limit
_MAX_PARTS = 1000


@dataclass
class PreparedMessage:
    """The parts of one message each rule kind reads (all octets)."""

    view: MessageView
    raw: bytes
    headers: tuple[tuple[str, str], ...]
    body: list[bytes]
    rawbody: list[bytes]
    uris: list[bytes]
    full: bytes
    parts: list[MimePart]
    has_separator: bool
    raw_body_length: int
    _cache: dict[tuple[str, bool], str | None] = field(default_factory=dict)
    #: lower-cased header name -> its values in order, built on first use
    _by_name: dict[str, list[str]] | None = None
    #: (header name, raw, display) -> ``:addr`` / ``:name`` result
    _addr_cache: dict[tuple[str, bool, bool], str | None] = field(default_factory=dict)
    #: header text -> its (display name, address) pairs
    _pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: raw header value -> RFC 2047-decoded (the same value is read by many rules)
    _decoded_values: dict[str, str] = field(default_factory=dict)
    #: lower-cased header name -> its values as Message.pm keeps them (:raw), built on
    #: first use from ``raw``
    _raw_by_name: tuple[dict[str, list[str]], str] | None = None
    #: raw or not -> every header field as a line (ALL, ALL-EXTERNAL)
    _lines: dict[bool, list[str]] = field(default_factory=dict)
    #: values evals compute once per message (several rules read them)
    memo: dict[str, float] = field(default_factory=dict)
    #: the rules whose matching ran out of the engine's time limit (``TIME_LIMIT_EXCEEDED``)
    late_rules: tuple[str, ...] = ()
    #: "" (matching never took ``slow_lane.after``), "taken" (it went on in the engine's
    #: slow lane) or "busy" (no place there: it stopped)
    slow_lane: str = ""
    #: header name -> the addresses in it, lower case (evals read From many times)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    #: the X-Spam-Relays-* values, built when a rule first reads one
    relays: Relays | None = None
    #: the rule files' trusted/internal/msa networks the relays are judged by (the
    #: engine sets its own before the first rule runs); ``None``: trust is inferred
    networks: RelayNetworks | None = None
    #: the tags seen in the text/html parts (html_tag_exists), found once
    html_tags: frozenset[str] | None = None
    #: the SMTP MAIL FROM address when the caller knows it (the milter): EnvelopeFrom
    #: is then that address, as with SpamAssassin's ``envelope_sender_header``
    envelope_from: str | None = None
    #: HTMLEval's results for the text/html parts, built when a rule first asks
    html: list[HtmlResults] | None = None
    #: each distinct URI host with the domains above it, found when an eval first asks
    uri_host_candidates: list[frozenset[str]] | None = None
    #: the addresses of the text and mailto links FreeMail reads, found when first asked
    body_emails: list[str] | None = None
    #: Message.pm's MIME parse flags (``mime_epilogue_exists``, ``missing_mime_headers``)
    mime_flags: frozenset[str] = frozenset()
    #: index in ``parts`` -> that part decoded (:func:`decode_part`): the text parts
    #: from preparation, the others when first asked (:meth:`part_body`)
    part_bodies: dict[int, bytes] = field(default_factory=dict)
    #: each rendered text leaf by index: (text/html or text/plain, Node.pm's rendered
    #: text, an HTML part with an <img> tag, its HTML.pm obfuscation count)
    part_texts: dict[int, tuple[str, str, bool, int]] = field(default_factory=dict)
    #: the receiving MTA's SPF and DKIM results when the caller has them (the milter):
    #: the SPF_*, DKIM_* and auth welcome-list evals read them; ``None``: none hit
    auth: AuthFacts | None = None
    #: the SPF results as SpamAssassin would have reached them (MAIL FROM's, HELO's, the
    #: envelope sender), and the DKIM welcome-lists satisfied: found once, when a rule
    #: first asks (spamwarden.rules._auth)
    auth_spf: tuple[str | None, str | None, str] | None = None
    auth_welcomelisted: frozenset[str] | None = None
    #: each text/html leaf's link tags (``render_html``'s ``links``), as the URI list
    #: read them (URIEval's check_uri_truncated reads them again)
    html_links: list[list[tuple[str, str]]] = field(default_factory=list)
    #: ImageInfo's image counts, pixels and sizes, found when an eval first asks
    image_info: object = None
    #: the valid top-level domains ``uris`` were read with (the rule files'
    #: ``util_rb_tld`` lines); ``None``: the Public Suffix List's
    tlds: frozenset[str] | None = None

    def part_body(self, index: int) -> bytes:
        """``decode_part(self.parts[index])``, decoded once per message (the HTML parse,
        the tag list and FreeMail read the same text/html parts)."""
        found = self.part_bodies.get(index)
        if found is None:
            found = self.part_bodies[index] = decode_part(self.parts[index])
        return found

    def header_text(self, name: str, *, raw: bool = False) -> str | None:
        """A header's value as SpamAssassin's ``get`` gives it, ``None`` when absent.

        Several headers of one name are joined, each ending in a newline; ``ALL`` is
        every header as ``Name: value``; ``ToCc`` is To, ``", "``, Cc; ``MESSAGEID`` joins
        the message-id headers.

        :param name: a header name or one of SpamAssassin's pseudo-headers above.
        :param raw: undecoded (``:raw``); otherwise RFC 2047 encoded-words are decoded.
        """
        key = (name.lower(), raw)
        if key in self._cache:
            return self._cache[key]
        lname = key[0]

        def values(n: str) -> list[str]:
            if raw:
                return self._raw_values(n.lower())
            return [self._decoded(v) for v in self._values(n.lower())]

        result: str | None
        if lname == "envelopefrom":
            result = self.envelope_sender()
        elif lname.startswith("x-spam-relays-"):
            result = self._relays().get(lname)
        elif lname in ("all-external", "all-untrusted"):
            # the header fields from the first untrusted (external) Received header down
            relays = self._relays()
            skip = (relays.internal_received if lname == "all-external"
                    else relays.trusted_received)
            out: list[str] = []
            seen = 0
            for (k, _), line in zip(self.headers, self._header_lines(raw)):
                if k.lower() == "received":
                    seen += 1
                if seen > skip:
                    out.append(line)
            result = "".join(out) or None
        elif lname == "all":
            # (ALL:raw is the header section as sent: Message.pm's pristine fields)
            result = self._raw_section()[1] if raw else "".join(self._header_lines(raw))
        elif lname == "tocc":
            to, cc = values("To"), values("Cc")
            if not to and not cc:
                result = None
            else:
                result = "".join(v + "\n" for v in to).rstrip("\n")
                if result.strip() and cc:
                    result += ", "
                result += "".join(v + "\n" for v in cc)
        elif lname == "messageid":
            ids = [v for n in ("Message-Id", "Resent-Message-Id", "X-Message-Id")
                   for v in values(n)]
            result = "".join(v + "\n" for v in ids) if ids else None
        else:
            vals = values(name)
            result = "".join(v + "\n" for v in vals) if vals else None
        self._cache[key] = result
        return result

    def _decoded(self, value: str) -> str:
        """A header value RFC 2047-decoded (each distinct value once per message).

        Without an encoded-word, white space stays as it is: Node.pm's
        ``_decode_header`` only unfolds and trims (``Subject: Call me     93910``
        keeps its run of spaces, which ``/^.{16}/`` and ``/from: \\S{5}/`` see)."""
        found = self._decoded_values.get(value)
        if found is None:
            found = self._decoded_values[value] = decoded_header(value)
        return found

    def _header_lines(self, raw: bool) -> list[str]:
        """Each header field as ``Name: value\\n`` (decoded unless ``raw``), made once:
        ALL and ALL-EXTERNAL are both built from them."""
        lines = self._lines.get(raw)
        if lines is None:
            lines = self._lines[raw] = [f"{k}: {v if raw else self._decoded(v)}\n"
                                        for k, v in self.headers]
        return lines

    def envelope_sender(self) -> str | None:
        """SpamAssassin's EnvelopeFrom (PerMsgStatus ``get_envelope_from``), ``None``
        when unknown: the MAIL FROM given to :func:`prepare_message`; else the envelope
        sender the last untrusted relay recorded in its Received line; else
        X-Envelope-From, Envelope-Sender or Return-Path, each only when no Received
        header comes before any header of that name (a list may have resent the
        message with another one).
        """
        key = ("\0envelopefrom", True)
        if key in self._cache:
            return self._cache[key]
        found = self._envelope_sender()
        self._cache[key] = found
        return found

    def _envelope_sender(self) -> str | None:
        if self.envelope_from is not None:
            env = self.envelope_from
            return env if env == "" or env.find("@") > 0 else None
        relayed = self._relays().envfrom
        if relayed is not None:
            return relayed
        x_sender = self._values("x-sender")
        if x_sender and "@" in _address(self, x_sender[0], display=False) and any(
                "(fetchmail" in v for v in self._values("received")):
            return None
        names = [k.lower() for k, _ in self.headers]
        for name, final in (("x-envelope-from", True), ("envelope-sender", False),
                            ("return-path", False)):
            vals = self._values(name)
            # the first header's address, undecoded (get("Return-Path:first:addr")); a
            # header without one ("Return-Path: <>", "yyyy") is no source at all
            found = _address(self, vals[0], display=False) if vals else ""
            if not found:
                continue
            # (Perl's /^Received:.*?^Return-Path:/smi on ALL: a Received header before
            # any header of the name, the last one included, not only the first)
            last = len(names) - 1 - names[::-1].index(name)
            if "received" in names[:last]:
                if final:
                    return None
                continue
            return found
        return None

    def relay_info(self) -> Relays:
        """The relays parsed from the Received headers (parsed once)."""
        return self._relays()

    def _relays(self) -> Relays:
        if self.relays is None:
            self.relays = parse_relays(self.headers, self.networks)
        return self.relays

    def header_exists(self, name: str) -> bool:
        """Whether a header of that name is present (``exists:``); for the pseudo-headers
        (``ToCc``, ``ALL``, ``MESSAGEID``) whether they have a value, as SpamAssassin's
        ``exists:`` asks ``get`` for a defined value.  ``ALL`` and ``MESSAGEID`` are
        upper case there (``exists:MessageID`` asks for a header of that name)."""
        if name in ("ALL", "MESSAGEID") or name.lower() == "tocc":
            return self.header_text(name, raw=True) is not None
        lname = name.lower()
        return bool(self._values(lname))

    def address_pairs(self, value: str) -> list[tuple[str, str]]:
        """(phrase, address) of each address in a header text (newlines read as
        spaces), as Util.pm's ``parse_header_addresses`` reads them ("" where it has
        none); read once per text and message.
        """
        pairs = self._pairs.get(value)
        if pairs is None:
            pairs = self._pairs[value] = parse_header_addresses(value.replace("\n", " "))
        return pairs

    def _raw_values(self, lname: str) -> list[str]:
        """The values of the headers named ``lname`` as ``get("NAME:raw")`` gives them
        (Node.pm's ``get_header`` with ``raw``): the text after the colon as sent, its
        leading and trailing white space kept, each fold made one space.  Where the
        header section does not read the same way here and in Message.pm (another
        count of fields of that name), the unfolded values."""
        ours = self._values(lname)
        if not ours:
            return ours
        found = self._raw_section()[0].get(lname)
        if found is None or len(found) != len(ours):
            return ours
        return [_RAW_FOLD.sub(" ", v).removesuffix("\n") for v in found]

    def _raw_section(self) -> tuple[dict[str, list[str]], str]:
        """:func:`sa_raw_headers` of the message, read once."""
        found = self._raw_by_name
        if found is None:
            found = self._raw_by_name = sa_raw_headers(self.raw)
        return found

    def _values(self, lname: str) -> list[str]:
        """The raw values of the headers named ``lname`` (lower case), in order."""
        index = self._by_name
        if index is None:
            index = {}
            for k, v in self.headers:
                index.setdefault(k.lower(), []).append(v)
            self._by_name = index
        return index.get(lname, [])


def _address(msg: PreparedMessage, value: str, *, display: bool) -> str:
    """The first address (``:addr``) or phrase (``:name``) in a header value, as
    PerMsgStatus's ``_get`` takes them from ``parse_header_addresses`` (an address
    without either is skipped)."""
    for name, addr in msg.address_pairs(value):
        found = name if display else addr
        if found:
            return found
    return ""


def _modifier_lines(msg: PreparedMessage, lname: str, *, raw: bool) -> list[str] | None:
    """The lines PerMsgStatus's ``_get`` reads addresses or names from: one per header
    of the name, undecoded (``:addr`` and ``:name`` ask Message.pm's ``raw_header``);
    the pseudo-headers' values as ``get`` builds them (ToCc: each To, then each Cc,
    decoded unless ``:raw``).  ``None`` when there is none."""
    if lname == "tocc":
        lines = [v if raw else msg._decoded(v)
                 for n in ("to", "cc") for v in msg._values(n)]
        return lines or None
    if (lname in ("envelopefrom", "messageid", "all") or lname.startswith("x-spam-relays-")
            or lname.startswith("all-")):
        value = msg.header_text(lname, raw=raw)
        return None if value is None else [value]
    return msg._values(lname) or None


def header_with_modifiers(msg: PreparedMessage, name: str, *, raw: bool, addr: bool,
                          display: bool) -> str | None:
    """A header value with SpamAssassin's ``:raw``, ``:addr`` and ``:name`` applied.

    ``:addr`` and ``:name`` read each header of the name on its own, undecoded, as
    PerMsgStatus's ``_get`` does (two Return-Path headers are two addresses, the first
    one counts; an encoded-word in an address stays encoded); a ``:name`` is then
    decoded unless ``:raw``.

    :returns: the value, or ``None`` when the header is absent.
    """
    if not (addr or display):
        return msg.header_text(name, raw=raw)
    key = (name.lower(), raw, display)
    cache = msg._addr_cache  # the message's own memo, per header and modifier
    if key in cache:
        return cache[key]
    lines = _modifier_lines(msg, key[0], raw=raw)
    result = None
    if lines is not None:
        result = ""
        for line in lines:
            if msg.address_pairs(line):
                result = _address(msg, line, display=display)
                if result:
                    break
    if display and not raw and result:
        result = msg._decoded(result)
    if display and not raw and result and _PERL_OCTET_SPACE.fullmatch(result) is None:
        # PerMsgStatus's :name: white space runs made one space, the ends stripped,
        # single quotes around the whole removed; its \s is ASCII's (the decoded name
        # is UTF-8 octets there: an ideographic space between two words stays)
        result = _PERL_OCTET_SPACE.sub(" ", result).strip("\t\n\x0b\x0c\r ")
        if len(result) >= 2 and result[0] == "'" and "'" in result[1:] and result.endswith("'"):
            result = result[1:-1]
    cache[key] = result
    return result


# Perl's \s on an octet string: ASCII white space only
_PERL_OCTET_SPACE = re.compile("[\t\n\x0b\x0c\r ]+")


def header_rule_value(msg: PreparedMessage, name: str, *, raw: bool, addr: bool,
                      display: bool) -> str | None:
    """The text a ``header`` rule matches: :func:`header_with_modifiers`, except that
    ``:addr`` gives every address of every header of the name, one a line: Check.pm
    joins the list ``get`` returns with newlines (``From: a@x.example, b@y.example``
    has white space there), while an eval asking for one value gets the first.

    :returns: the value, or ``None`` when the header is absent.
    """
    first = header_with_modifiers(msg, name, raw=raw, addr=addr, display=display)
    if not addr or display or not first:
        return first
    key = ("\0all " + name.lower(), raw, False)
    cache = msg._addr_cache
    if key in cache:
        return cache[key]
    lines = _modifier_lines(msg, name.lower(), raw=raw) or []
    found = [a for line in lines for _, a in msg.address_pairs(line) if a]
    result = "\n".join(found) if found else first
    cache[key] = result
    return result


def _truncate(data: bytes, limit: int = RAWBODY_PART_SCAN_SIZE) -> bytes:
    """A decoded part cut after ``limit`` octets as ``get_decoded_body_text_array`` cuts
    it: at the next newline, else ``>``, else space within 1 KB, else at ``limit``."""
    if len(data) <= limit:
        return data
    for sep in (b"\n", b">", b" "):
        i = data.find(sep, limit)
        if 0 <= i and i - limit <= 1024:
            return data[:i + 1]
    return data[:limit]


# Perl's \s on a character string (normalize_charset is on in SpamAssassin 4)
_PERL_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PARAGRAPH_GAP = re.compile(f"\n+[{_PERL_SPACE}]*\n+")
_SPACE_RUN = re.compile(f"[{_PERL_SPACE}]+")
# the runs _SPACE_RUN.sub(" ", ...) changes: all but a lone space (most of them), so
# those are not replaced by themselves; a run starts with a space or another one
_SPACE_RUN_TO_CUT = re.compile(f" [{_PERL_SPACE}]+|[{_PERL_SPACE.replace(' ', '')}][{_PERL_SPACE}]*")
_LINE_END = re.compile(rb"(?<=\n)")
_ASCII_GAP = re.compile("\n+[\t\n\x0b\x0c\r ]*\n+")
_ASCII_RUN = re.compile("[\t\n\x0b\x0c\r ]+")


def _lines(data: bytes) -> list[bytes]:
    """``_LINE_END.split(data)``: the lines, each keeping its newline (the last one what
    follows the last newline), with a plain split instead of a look-behind tried at
    every octet."""
    pieces = data.split(b"\n")
    last = pieces.pop()
    out = [piece + b"\n" for piece in pieces]
    out.append(last)
    return out


# the characters str.split() takes for white space that Perl's \s does not (of Unicode
# text), and that ASCII's does not either (of Latin-1 text; any above U+00FF too, which
# such text does not have)
_SPLIT_ONLY_WIDE = re.compile("[\x1c-\x1f]")
_SPLIT_ONLY_LATIN1 = re.compile("[\x1c-\x1f\x85\xa0\u0100-\U0010ffff]")


def _space_runs_made_one(text: str) -> str:
    """Each white-space run of ``text`` made one space, as ``_SPACE_RUN.sub(" ", text)``
    (``_ASCII_RUN`` for Latin-1 text) makes it, by ``str.split``: the caller checks
    that the text has none of the characters only ``str.split`` takes for white space
    (``_SPLIT_ONLY_*``).  A regex substitution replaces each lone space between
    words with itself; the split and join costs a third of that."""
    words = text.split()
    if not words:
        return " " if text else ""
    out = " ".join(words)
    if text[0].isspace():
        out = " " + out
    if text[-1].isspace():
        out += " "
    return out


def rendered_lines(text: str, *, wide: bool = True) -> list[bytes]:
    """The rendered text as the lines SpamAssassin scans (Message.pm's
    ``get_body_text_array_common``): a paragraph break (newlines with only white space
    between) is one newline, every other white-space run one space, and each line keeps
    its newline and any one space left at its ends; a line over 2 KB is cut after its
    last space within the first 2 KB (``split_into_array_of_short_lines``).

    :param wide: whether Perl holds the text as characters (UTF-8 octets, Unicode white
        space); else its octets are Latin-1 and white space is ASCII's
        (:func:`~spamwarden.rules._render.rendered_parts_text`).
    """
    # (a message with CRLF line ends has them made LF when SpamAssassin reads it)
    text = text.replace("\r\n", "\n")
    if wide:  # (_SPACE_RUN_TO_CUT.sub is _SPACE_RUN.sub without replacing lone spaces)
        text = _PARAGRAPH_GAP.sub("\0", text)
        text = (_space_runs_made_one(text) if _SPLIT_ONLY_WIDE.search(text) is None
                else _SPACE_RUN_TO_CUT.sub(" ", text)).replace("\0", "\n")
        data = text.encode("utf-8", "surrogateescape")
    else:
        text = _ASCII_GAP.sub("\0", text)
        text = (_space_runs_made_one(text) if _SPLIT_ONLY_LATIN1.search(text) is None
                else _ASCII_RUN.sub(" ", text)).replace("\0", "\n")
        data = text.encode("latin-1", "replace")
    out: list[bytes] = []
    for line in _lines(data):
        while len(line) > MAX_BODY_LINE_LENGTH:
            cut = line.rfind(b" ", 0, MAX_BODY_LINE_LENGTH + 1) + 1 or MAX_BODY_LINE_LENGTH
            out.append(line[:cut])
            line = line[cut:]
        if line:
            out.append(line)
    return out


#: SpamAssassin's MAX_BODY_LINE_LENGTH (Constants.pm)
MAX_BODY_LINE_LENGTH = 2048


def short_paragraphs(text: bytes) -> list[bytes]:
    """A rawbody part in the pieces SpamAssassin scans (Message.pm's
    ``split_into_array_of_short_paragraphs``): the whole part up to 2 KB, else pieces of
    2 to 4 KB, each cut after the first newline (else ``>``, else space) past its
    first 2 KB.  A pattern sees a piece at a time: ``^`` without ``/m`` is the start of
    a piece, ``\\s`` crosses the newlines inside one."""
    size = MAX_BODY_LINE_LENGTH
    n = len(text)
    if n <= size:
        return [text]
    out: list[bytes] = []
    ofs = 0
    while n - ofs > 2 * size:
        for sep in (b"\n", b">", b" "):
            j = text.find(sep, ofs + size)
            if 0 <= j and j - ofs + 1 <= 2 * size:
                break
        else:
            j = ofs + size
        out.append(text[ofs:j + 1])
        ofs = j + 1
    if ofs < n:
        out.append(text[ofs:])
    return out


_MIME_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition")


class _SaMessage(ParamsMessage):
    """A MIME part that makes the email package read only what Message.pm reads as a
    message: multipart/* has parts, message/rfc822 and message/global hold a message;
    any other message/* part (delivery-status, disposition-notification,
    feedback-report, partial, external-body) is a leaf (Message.pm's ``parse_body``,
    bug 7125), where the email package would read header blocks or a message from
    it.  While parsing, such a part answers application/octet-stream; its declared
    type is :func:`declared_type`'s."""

    def get_content_type(self) -> str:
        ctype = super().get_content_type()
        if ctype.startswith("message/") and ctype not in _MESSAGE_TYPES:
            return "application/octet-stream"
        return ctype


_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})


def declared_type(part: email.message.Message) -> str:
    """The part's content type as the email package reads its Content-Type (lower
    case; text/plain or message/rfc822 by default), whatever :class:`_SaMessage`
    answered while parsing."""
    return email.message.Message.get_content_type(part)


def _single_part(raw: bytes, body: bytes) -> email.message.Message | None:
    """The message ``raw`` (MIME header fields, blank line, ``body``) when it is one part:
    its header fields parsed alone and ``body`` set as the payload, which is what the
    full parse ends with (the parser joins back the lines it splits), without feeding
    the body through it line by line.  ``None`` for multipart and ``message/*`` (and
    header fields the parser found defects in): those need the full parse."""
    head = email.parser.BytesParser(_SaMessage, policy=email.policy.compat32).parsebytes(
        raw[:len(raw) - len(body)], headersonly=True)
    if head.get_content_maintype() in ("multipart", "message") or head.defects:
        return None
    head.set_payload(body.decode("ascii", "surrogateescape"))
    return head


# a run of more than 20 lines holding only white space (Perl's \s on octets), the last
# one perhaps without its newline
_BLANK_RUN = re.compile(rb"(?:^[\t\x0b\x0c\r ]*\n){20,}[\t\x0b\x0c\r ]+\Z"
                        rb"|(?:^[\t\x0b\x0c\r ]*\n){21,}(?:[\t\x0b\x0c\r ]+\Z)?", re.MULTILINE)
_MAX_BLANK_LINES = 20
# what any such run holds: a newline, then 20 blank lines
_BLANK_HINT = re.compile(rb"\n(?:[\t\x0b\x0c\r ]*\n){20}")


def squash_blank_runs(body: bytes) -> bytes:
    """The body as Message.pm's ``new`` hands it to the MIME parser: each run of more
    than 20 blank lines cut to 20, its first line and its last 19 kept (a run the body
    starts with keeps its first two: the loop stops at the top line); the full
    message (``full``, the raw body length) is read before this.

    :param body: the message body as received.
    :returns: the body, unchanged when no run is that long.
    """
    if _BLANK_HINT.search(body) is None:  # (most bodies: no run that long)
        return body
    out: list[bytes] = []
    pos = 0
    for m in _BLANK_RUN.finditer(body):
        start, end = m.span()
        newlines = body.count(b"\n", start, end)
        lines = newlines + (body[end - 1] != 10)
        if lines <= _MAX_BLANK_LINES:
            continue
        first = 2 if start == 0 else 1  # the lines kept at the top
        cut_from = start
        for _ in range(first):
            cut_from = body.index(b"\n", cut_from, end) + 1
        # the start of the run's line number lines - 19: after its newline number
        # lines - 19, the (newlines - (lines - 19) + 1)-th from the end
        cut_to = end
        for _ in range(newlines - (lines - (_MAX_BLANK_LINES - 1)) + 1):
            cut_to = body.rindex(b"\n", start, cut_to)
        out.append(body[pos:cut_from])
        pos = cut_to + 1
    if not out:
        return body
    out.append(body[pos:])
    return b"".join(out)


def _walk_parts(headers: tuple[tuple[str, str], ...], body: bytes,
                flags: set[str] | None = None) -> tuple[list[MimePart], bool]:
    """The MIME leaves; the top-level headers are already parsed, so only the MIME ones
    are given to the email package again (most of its cost is header parsing).
    ``flags`` receives Message.pm's MIME parse flags (:func:`_mime_parse_flags`)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() in _MIME_HEADERS)
    raw = head.encode("utf-8", "surrogateescape") + b"\r\n" + body
    try:
        msg = _single_part(raw, body) or email.message_from_bytes(
            cut_delimiters(raw), _SaMessage, policy=email.policy.compat32)
    except (email.errors.MessageError, ValueError, TypeError, IndexError, LookupError,
            RecursionError) as exc:  # pragma: no cover - compat32 is lenient
        del exc
        return [], False
    parts: list[MimePart] = []
    first_end = body.find(b"\n")
    crlf = body[first_end - 1:first_end + 1] == b"\r\n" if first_end > 0 else False
    places = _leaf_places(msg) if msg.is_multipart() else {}
    # the number a multipart/alternative found below gets (after those of places)
    next_group = 1 + max((g for alts, _ in places.values() for g in alts), default=-1)
    try:
        for part in msg.walk():
            if len(parts) >= _MAX_PARTS:
                break
            if part.is_multipart():
                # Message.pm sets its flags in _parse_multipart, for multipart/* only:
                # the email package also gives message/rfc822 (the message inside) and
                # message/delivery-status (its blocks of fields) a list of parts
                if flags is not None and part.get_content_maintype() == "multipart":
                    _mime_parse_flags(part, flags)
                continue
            payload = part.get_payload(decode=False)
            if not isinstance(payload, str):
                continue
            place = places.get(id(part), ((), 0))
            if part.get_content_maintype() == "multipart":
                # no boundary found: Message.pm's _parse_multipart keeps the whole body
                # as one part whose header fields are the lines it starts with
                found = _boundless_part(part, place, group=next_group)
                if found is None:
                    continue
                part, place = found
                next_group += 1
            # get_payload decodes 8-bit octets by the part's charset (U+FFFD where it
            # cannot); the text the parser stored holds them as received
            stored = getattr(part, "_payload", payload)
            encoded = (stored if isinstance(stored, str) else payload).encode(
                "utf-8", "surrogateescape")
            if crlf:  # Message.pm makes a CRLF message's line ends LF
                encoded = encoded.replace(b"\r\n", b"\n")
            if part is not msg and id(part) in places:
                # a part of a multipart keeps the line end before its boundary, which
                # the email package gives to the boundary (RFC 2046, 5.1.1)
                encoded += b"\n"
            disp = str(part.get("Content-Disposition", "")).lower()
            fields = headers if part is msg else tuple((k, str(v)) for k, v in part.items())
            parts.append(MimePart(
                headers=fields,
                content_type=declared_type(part),
                encoding=str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower(),
                encoded=encoded,
                is_attachment=disp.startswith("attachment") or part.get_filename() is not None,
                alternatives=place[0],
                depth=place[1],
                name=part_name(fields),
            ))
    except (email.errors.MessageError, ValueError, TypeError, IndexError, LookupError,
            RecursionError, AttributeError):
        pass
    return parts, True


def _boundless_part(part: email.message.Message, place: tuple[tuple[int, ...], int], *,
                    group: int,
                    ) -> tuple[email.message.Message, tuple[tuple[int, ...], int]] | None:
    """The part Message.pm's ``_parse_multipart`` makes of a multipart whose opening
    boundary is not found (or that names none): the whole body, its leading header
    lines read as the part's fields, text/plain when they declare no type (its
    "ignore preamble ... unless there's no boundary"); the email package leaves such a
    multipart as one text.  ``None`` where that part would be parsed further (a
    multipart or message type, a multipart/digest parent) or where the multipart's
    text ends a part of its parent (the line end before the parent's boundary, which
    Message.pm keeps, is not in it): left as they were.

    :param part: the multipart, its payload one string.
    :param place: its place (multipart/alternative ancestors, depth) as a leaf.
    :param group: the number it gets as a multipart/alternative.
    :returns: the part and its place: one level deeper, inside the multipart.
    """
    stored = getattr(part, "_payload", None)
    if not isinstance(stored, str) or part.get_content_subtype() == "digest":
        return None
    sub = email.message_from_string(stored, _SaMessage, policy=email.policy.compat32)
    if sub.get_content_maintype() in ("multipart", "message"):
        return None
    alternatives, depth = place
    if part.get_content_subtype() == "alternative":
        alternatives = (*alternatives, group)
    return sub, (alternatives, depth + 1)


# Message.pm's _parse_normal reads a part's name from Content-Disposition first (any
# "name=", "filename=" included), then Util.pm's parse_content_type from Content-Type
_DISPOSITION_NAME = re.compile(r'name=\s*"?([^";]+)"?', re.IGNORECASE)
_TYPE_NAME = re.compile(r"""\b(?:file)?name\s*=\s*["']?(.*?)["']?(?:;|$)""",
                        re.IGNORECASE | re.ASCII)
_TYPE_NAME_CONTINUED = re.compile(r"\b(?:file)?name\*0\s*=", re.IGNORECASE | re.ASCII)
_TYPE_NAME_PIECE = re.compile(r"""\b(?:file)?name\*(\d{1,9})\s*=\s*["']?(.*?)["']?(?:;|$)""",
                              re.IGNORECASE | re.ASCII)


def part_name(fields: tuple[tuple[str, str], ...]) -> str:
    """A MIME leaf's name as Message.pm's ``_parse_normal`` reads it, "" for none.

    The last Content-Disposition's first ``name=`` (``filename=`` too), up to a quote
    or ``;``; else the last Content-Type's ``name=`` or ``filename=`` parameter as
    Util.pm's ``parse_content_type`` reads it, its RFC 2231 continuations
    (``name*0=``, ``name*1=`` ...) joined in order when there is no plain one.  Both
    values are read as Node.pm's ``header`` gives them: unfolded, trimmed, encoded
    words decoded (at most 8,192 characters, :func:`decoded_header`).

    :param fields: the part's header fields (raw values), in order.
    :returns: the name, as in the field (Node.pm's ``effective_type`` reads it).
    """
    disp = next((v for k, v in reversed(fields) if k.lower() == "content-disposition"), "")
    m = _DISPOSITION_NAME.search(decoded_header(disp)) if "=" in disp else None
    if m is not None:
        return m.group(1)
    ctype = next((v for k, v in reversed(fields) if k.lower() == "content-type"), "")
    if "name" not in ctype.lower():
        return ""
    ctype = decoded_header(ctype)
    m = _TYPE_NAME.search(ctype)
    name = m.group(1) if m is not None else ""
    if (not name or name == "0") and _TYPE_NAME_CONTINUED.search(ctype):
        pieces = {int(p.group(1)): p.group(2) for p in _TYPE_NAME_PIECE.finditer(ctype)}
        name = "".join(pieces[i] for i in sorted(pieces))
    # (Perl's "0" is false: _parse_normal then keeps no name)
    return "" if name == "0" else name


def _leaf_places(msg: email.message.Message) -> dict[int, tuple[tuple[int, ...], int]]:
    """Each leaf's multipart/alternative ancestors (numbered in message order) and
    multipart depth, by ``id``, as :class:`MimePart`'s ``alternatives`` and ``depth``."""
    out: dict[int, tuple[tuple[int, ...], int]] = {}
    count = [0]

    def walk(part: email.message.Message, alternatives: tuple[int, ...], depth: int) -> None:
        if len(out) >= _MAX_PARTS or depth > 50:
            return
        if not part.is_multipart():
            out[id(part)] = (alternatives, depth)
            return
        if part.get_content_type() == "multipart/alternative":
            alternatives = (*alternatives, count[0])
            count[0] += 1
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else ():
            if isinstance(sub, email.message.Message):
                walk(sub, alternatives, depth + 1)

    walk(msg, (), 0)
    return out


_NOT_BLANK_OR_DOT = re.compile(r"[^\s.]")


def _mime_parse_flags(part: email.message.Message, flags: set[str]) -> None:
    """Message.pm's ``_parse_multipart`` flags for one multipart: ``mime_epilogue_exists``
    (a line after the closing boundary with more than white space and dots),
    ``missing_mime_headers`` (a part whose first line after its boundary is not a
    header field) and ``missing_mime_head_body_separator`` (a part's header section
    ended by a line that is neither a header field nor blank)."""
    if part.epilogue and _NOT_BLANK_OR_DOT.search(part.epilogue):
        flags.add("mime_epilogue_exists")
    payload = part.get_payload()
    if not isinstance(payload, list):
        return
    for sub in payload:
        if not isinstance(sub, email.message.Message):
            continue
        if not sub.keys():
            flags.add("missing_mime_headers")
        if any(isinstance(d, email.errors.MissingHeaderBodySeparatorDefect)
               for d in sub.defects):
            flags.add("missing_mime_head_body_separator")


def decode_part(part: MimePart) -> bytes:
    """A MIME leaf's body with its transfer encoding undone, as Node.pm's ``decode``
    undoes it (base64 by Util.pm's ``base64_decode``: text after the padding, a
    mailing list's footer below a base64 part, is decoded too)."""
    data = part.encoded
    if part.encoding == "base64":
        data = _b64_decode_octets(data)
        # SpamAssassin turns CRLF into LF in decoded text (Node.pm ``decode``)
        if part.content_type.startswith(("text/", "message/")):
            data = data.replace(b"\r\n", b"\n")
        return data
    if part.encoding == "quoted-printable":
        return qp_decode(data)
    return data


def _without_trailing_blanks(data: bytes) -> bytes:
    """``re.sub(rb"[ \\t]+(?=\\r?\\n)", b"", data)`` line by line: as a pattern it tried a
    long run of blanks not followed by a line end again from each of its blanks (11 s for
    40 KB of them)."""
    lines = data.split(b"\n")
    for i in range(len(lines) - 1):  # (the last piece ends no line)
        line = lines[i]
        if line.endswith(b"\r"):
            lines[i] = line[:-1].rstrip(b" \t") + b"\r"
        else:
            lines[i] = line.rstrip(b" \t")
    return b"\n".join(lines)


_QP_SOFT_BREAK = re.compile(rb"=\r?\n")
_QP_ESCAPE = re.compile(rb"=([0-9a-fA-F]{2})")
# two hex digits, either case -> the octet they write
_QP_OCTETS = {f"{a}{b}".encode(): bytes((int(a + b, 16),))
              for a in "0123456789abcdefABCDEF" for b in "0123456789abcdefABCDEF"}


def qp_decode(data: bytes) -> bytes:
    """Quoted-printable decoded as SpamAssassin decodes it (Util.pm ``qp_decode``, then
    Node.pm's CRLF to LF): white space at the end of a line is deleted first (RFC 2045,
    section 6.7, rule 3), then soft line breaks, then ``=XX`` escapes in either case."""
    if b" \n" in data or b"\t\n" in data or b" \r\n" in data or b"\t\r\n" in data:
        data = _without_trailing_blanks(data)  # (only then is there any)
    data = _QP_SOFT_BREAK.sub(b"", data)
    if b"=" in data:
        # _QP_ESCAPE.sub, without a call per escape: a match never holds a second "=",
        # so each "=" starts one exactly when the two octets after it are hex digits
        pieces = data.split(b"=")
        out = [pieces[0]]
        for piece in pieces[1:]:
            octet = _QP_OCTETS.get(piece[:2])
            out.append(b"=" + piece if octet is None else octet + piece[2:])
        data = b"".join(out)
    return data.replace(b"\r\n", b"\n")


def decoded_header(value: str) -> str:
    """A header value as Node.pm's ``header`` gives it, at most 8,192 characters:
    encoded words decoded (:func:`sa_decode_words`); white space kept as it is (the
    value comes unfolded) and invalid UTF-8 replaced."""
    if "\n" in value:  # a MIME part's field as the email package keeps it, folded
        value = _FOLD.sub(" ", value).strip()
    value = sa_header_octets(value[:8192])
    return sa_decode_words(value) if "=?" in value else value


def sa_header_octets(value: str) -> str:
    """A header text whose octets are not all valid UTF-8 as Node.pm's ``_normalize``
    reads it (declared UTF-8, no charset detector installed): the whole of it as
    Windows-1252 (an octet that has no character there: U+FFFD).

    :param value: text with surrogate escapes for the octets read (``surrogateescape``).
    :returns: the text.
    """
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_WORD = r"=\?[A-Za-z0-9*_-]+\?[bqBQ]\?[^?]*\?="
_ENCODED_WORD = re.compile(r"=\?([A-Za-z0-9*_-]+)\?([bqBQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(rf"({_WORD})[\t\n\x0b\x0c\r ]+(?={_WORD})")
_B64_WHOLE = re.compile(rb"[A-Za-z0-9+/=]{2,}={0,2}")
_B64_INNER_PAD = re.compile(rb"=+(?!=*$)")


def _b64_decode(text: str) -> bytes:
    """Util.pm's ``base64_decode`` of a text (:func:`_b64_decode_octets`)."""
    return _b64_decode_octets(text.encode("latin-1", "replace"))


def _b64_decode_octets(data: bytes) -> bytes:
    """Util.pm's ``base64_decode``: white space dropped; a text of whole quads decoded
    with any ``=`` run before the end read as ``A``s; any other has its other
    characters dropped, its final padding cut, an ``=`` inside read as ``/`` (the
    uuencode table's last entry) and a lone last character dropped."""
    data = data.translate(None, b"\t\n\x0b\x0c\r ")
    if len(data) % 4 == 0 and _B64_WHOLE.fullmatch(data):
        if b"=" in data.rstrip(b"="):
            data = _B64_INNER_PAD.sub(lambda m: b"A" * len(m.group()), data)
    else:
        data = data.translate(None, _NOT_B64).rstrip(b"=").replace(b"=", b"/")
        if len(data) % 4 == 1:
            data = data[:-1]
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


# the octets base64_decode drops before decoding (all but the 65 of its alphabet)
_NOT_B64 = bytes(c for c in range(256) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/=")))


def sa_decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded as Node.pm's ``_decode_header`` decodes them:
    white space between two encoded words dropped, adjacent words of one charset
    joined before their octets are decoded (a character split over two words), all
    other text kept as it is (no white space collapsed: a decoded newline stays);
    ``=?charset?Q?...?=`` with ``_`` read as a space.

    :param value: an unfolded header value.
    :returns: the decoded text.
    """
    value = _BETWEEN_WORDS.sub(r"\1", value)
    out: list[str] = []
    charset = ""  # of the encoded words read but not yet decoded
    octets = bytearray()
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        if m.start() > pos or (charset and m.group(1).lower() != charset):
            if charset:
                out.append(decode_with_charset(bytes(octets), charset.split("*", 1)[0]))
                octets.clear()
            out.append(value[pos:m.start()])
        charset = m.group(1).lower()
        data = m.group(3)
        if m.group(2) in "bB":
            octets += _b64_decode(data)
        else:
            octets += qp_decode(data.replace("_", "=20").encode("utf-8", "surrogateescape"))
        pos = m.end()
    if charset:
        out.append(decode_with_charset(bytes(octets), charset.split("*", 1)[0]))
    out.append(value[pos:])
    return "".join(out)


_FOLD = re.compile(r"\r?\n[ \t]+")


def _subject_line(headers: tuple[tuple[str, str], ...]) -> str:
    """The body's first line: the last Subject as Node.pm's ``header`` gives it, folds
    made one space and the ends stripped, the spaces inside kept (encoded words
    decoded as :func:`sa_decode_words` decodes them: what they hold kept as it is)."""
    values = [v for k, v in headers if k.lower() == "subject"]
    if not values:
        return ""
    value = values[-1]
    if "=?" in value:
        return decoded_header(_FOLD.sub(" ", value[:8192]).strip())
    return sa_header_octets(re.sub(r"\r?\n[ \t]+", " ", value[:8192]).strip())


#: the longest added Received value (octets): a host name and HELO are at most 255
_MAX_RECEIVED_LINE = 1000


# Node.pm's get_header with raw: each line end followed by white space is one space
_RAW_FOLD = re.compile(r"\r?\n[ \t\n\r\f\x0b]+")
# Message.pm's valid field name (printable US-ASCII but the colon, WSP before the colon)
_SA_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]+[ \t]*:")
#: Constants.pm's MAX_HEADER_KEY_LENGTH, MAX_HEADER_VALUE_LENGTH
_MAX_HEADER_KEY = 256
_MAX_HEADER_VALUE = 8192
#: octets of a header section read for its raw values (ParseLimits.max_header_bytes)
_MAX_RAW_HEAD = 262_144


def sa_raw_headers(raw: bytes) -> tuple[dict[str, list[str]], str]:
    """Message.pm's ``raw_headers``: each header field's value as sent, by lower-case
    name, in order; and ``get("ALL:raw")``: the fields as sent (``pristine_headers``
    without lines of folding before the first field or the empty line that ends them).

    As Message.pm's header loop: a line starting with a space or tab continues the
    field; a field's name is what comes before its first colon (trailing WSP cut, at
    most 256 characters), its value all after it, line ends included (CR LF made LF
    when the message's first or last line ends in CR LF), at most 8,192 characters; a
    line without a colon is no field; the section ends at an empty line, a line
    starting with ``--``, or the fourth line that is not a valid field.  At most the
    first 256 KB are read.

    :param raw: the message (no mbox ``From`` line).
    :returns: lower-case name -> values, and the fields' text.
    """
    nl = raw.find(b"\n")
    first = raw[:nl + 1] if nl >= 0 else raw
    last_line = raw[raw.rfind(b"\n", 0, len(raw) - 1) + 1:]
    crlf = b"\r\n" in first or b"\r\n" in last_line
    # the empty line that ends the section: LF; with CR LF line ends, CR LF or LF (the
    # lone LF is made CR LF first); only the text before it is decoded
    endings = ("\r\n", "\n") if crlf else ("\n",)
    end = raw.find(b"\n\n", 0, _MAX_RAW_HEAD)
    if crlf:
        at = raw.find(b"\n\r\n", 0, _MAX_RAW_HEAD)
        end = at if end < 0 or 0 <= at < end else end
    text = raw[:end + 1 if end >= 0 else _MAX_RAW_HEAD].decode("utf-8", "surrogateescape")
    out: dict[str, list[str]] = {}

    def add(field_text: str) -> None:
        key, colon, value = field_text.partition(":")
        if not colon:
            return
        if crlf:
            value = value.replace("\r\n", "\n")
        key = key.rstrip(" \t")[:_MAX_HEADER_KEY]
        out.setdefault(key.lower(), []).append(value[:_MAX_HEADER_VALUE])

    current: str | None = None
    errors = 0
    fields: list[str] = []  # the pristine text of each field (ALL:raw)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i < len(lines) - 1:
            line += "\n"
        elif not line:
            break
        if line[:1] in (" ", "\t"):
            current = (current or "") + line
            if fields:
                fields.append(line)
            continue
        if current is not None:
            add(current)
            current = None
        if line in endings or line.startswith("--"):
            break
        if _SA_FIELD.match(line) is None:
            errors += 1
            if errors > 3:
                break
        current = line
        fields.append(line)
    if current is not None:
        add(current)
    return out, "".join(fields)


def body_start(raw: bytes) -> int | None:
    """Where the body starts: the end of the first ``\\r?\\n\\r?\\n`` (``None``: none),
    found with two ``find`` calls instead of the regex (tried at every header octet).
    The first such run holds the first newline followed by a newline or CR LF; it ends
    after that second newline."""
    lf, crlf = raw.find(b"\n\n"), raw.find(b"\n\r\n")
    at = lf if crlf < 0 or 0 <= lf < crlf else crlf
    if at < 0:
        return None
    return at + 2 if raw[at + 1:at + 2] == b"\n" else at + 3


def prepare_message(view: MessageView, raw: bytes, *,
                    envelope_from: str | None = None,
                    received: str | None = None,
                    auth: AuthFacts | None = None,
                    tlds: frozenset[str] | None = None) -> PreparedMessage:
    """Build what the rules read from a parsed message and its raw bytes.

    :param view: ``spamwarden.mail.parse_message(raw)``.
    :param raw: the message as received (a leading mbox ``From`` line is tolerated).
    :param envelope_from: the SMTP MAIL FROM address without ``<>`` ("" for the null
        sender) when known; ``None``: EnvelopeFrom is read from the headers as
        SpamAssassin reads it.
    :param received: the value of the ``Received`` field the receiving MTA writes for
        this connection, when the caller saw the message before the MTA added it (a
        milter): the rules see it as the first header field, as SpamAssassin sees it
        after the MTA (``view`` and the message itself are not changed).
    :param auth: SPF and DKIM results for the message (:class:`AuthFacts`) when the
        caller verified them; ``None`` (an offline check): the SPF and DKIM evals hit
        nothing, as in SpamAssassin with network tests off.
    :param tlds: the valid top-level domains of the URI list (the rule set's
        ``valid_tlds``); ``None``: the Public Suffix List's.
    :returns: the prepared message; never raises for malformed mail.
    """
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        raw = raw[nl + 1:] if nl >= 0 else b""
    headers = view.headers
    if received is not None:
        value = " ".join(received.split())[:_MAX_RECEIVED_LINE]
        headers = (("Received", value), *headers)
        eol = b"\r\n" if raw[:raw.find(b"\n") + 1].endswith(b"\r\n") else b"\n"
        raw = b"Received: " + value.encode("utf-8", "surrogateescape") + eol + raw
    body_at = body_start(raw)
    has_separator = body_at is not None
    raw_body = raw[body_at:] if body_at is not None else b""
    mime_flags: set[str] = set()
    parts, _ = _walk_parts(view.headers, squash_blank_runs(raw_body[:FULL_SCAN_SIZE * 10]),
                           mime_flags)
    # the text parts as SpamAssassin renders them (HTML by HTML.pm's rules, text
    # attachments included); the parsed view's text when the MIME walk found no part
    bodies: dict[int, bytes] = {}  # part index -> decoded, kept as part_bodies
    index = {id(part): i for i, part in enumerate(parts)}

    def decoded_part(part: MimePart) -> bytes:  # each text leaf decoded once
        i = index[id(part)]
        data = bodies.get(i)
        if data is None:
            data = bodies[i] = decode_part(part)
        return data

    links: list[list[tuple[str, str]]] = []  # each text/html part's link tags
    texts: dict[int, tuple[str, str, bool, int]] = {}  # each text leaf rendered, by index
    body_text, wide = (rendered_parts_text(parts, decoded_part, links, texts) if parts
                       else (view.text, True))
    body = [(_subject_line(view.headers) + "\n").encode("utf-8", "surrogateescape")]
    body.extend(rendered_lines(body_text[:BODY_PART_SCAN_SIZE * 4], wide=wide))
    rawbody: list[bytes] = []
    for part in parts:
        # SpamAssassin's get_decoded_body_text_array: every text/* or message/* leaf
        # by its effective type (a part named page.htm too), attachments included,
        # but not text/calendar
        if (not part.effective_type.startswith(("text/", "message/"))
                or part.content_type == "text/calendar"):
            continue
        rawbody.extend(short_paragraphs(_truncate(decoded_part(part))))
    # PerMsgStatus's get_uri_list: the body text's and the HTML parts' links
    uris = uri_list(body, links, tlds=tlds)
    return PreparedMessage(
        view=view,
        raw=raw,
        headers=headers,
        body=body,
        rawbody=rawbody,
        uris=uris,
        full=raw[:FULL_SCAN_SIZE],
        parts=parts,
        has_separator=has_separator,
        raw_body_length=len(raw_body),
        envelope_from=envelope_from,
        mime_flags=frozenset(mime_flags),
        part_bodies=bodies,
        part_texts=texts,
        auth=auth,
        html_links=links,
        tlds=tlds,
    )
