"""The text of a message's parts as SpamAssassin renders it for its body rules.

``Mail::SpamAssassin::Message::Node::rendered`` and ``Mail::SpamAssassin::HTML``: every
text/plain and text/html leaf, attachments included (SpamAssassin reads every other
``text/*`` type but calendar and vCard as text/plain), in message order, one newline
between parts.  An HTML part is rendered as HTML.pm renders it: the text between tags
with each white-space run made one space, nothing for the tags themselves but these,
which stand for white space (``br`` and ``div`` a newline, ``p``, ``hr``, ``blockquote``,
``pre`` and ``title`` a blank line, list items and table cells a space), the text of
``<script>`` and ``<style>``, comments and declarations left out, entities decoded.
It is not HTML::Parser: a tag broken across the rules of HTML can be read differently.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._html import ELEMENTS

if TYPE_CHECKING:
    from ._mime import MimePart

__all__ = ["LINK_TAGS", "decode_text", "decoded_length", "render_html", "rendered_parts_text"]

#: octets of a part rendered (SpamAssassin's body_part_scan_size is 50,000, after rendering)
MAX_PART = 500_000
#: tokens read in one part
MAX_TOKENS = 50_000

_TOKEN = re.compile(
    r"<!--"                                                   # comment: comment_end()
    r"|<![^>]*+(?:>|\Z)|<\?[^>]*+(?:>|\Z)"                    # declaration, processing
    # a tag, its attributes read as hparser.c's parse_start reads them (see
    # spamwarden.rules._html): a quote opens a string only where a value starts
    r"|<(/?)([A-Za-z][^\s/>]*+)"
    r"([^\s>]*+\s*+"
    r"(?>[^\s>][^\s=>]*+\s*+"
    r"(?:=\s*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\s>]*+)\s*+|(?!=)))*+)>"
    # a tag never finished (no ">", or a value's quote never closed): HTML::Parser's
    # eof reports the rest of the part as one comment
    r"|<(?=/?[A-Za-z]).*\Z",
    re.DOTALL)
# HTML::Parser reads these elements' content as literal text up to their end tag;
# SpamAssassin shows none of script's and style's
_LITERAL = {name: re.compile(f"</{name}\\s*>", re.IGNORECASE)
            for name in ("script", "style", "iframe", "textarea", "xmp", "title")}
_HIDDEN = frozenset({"script", "style"})
_COMMENT_CLOSE = re.compile(r"--\s*>")
# HTML.pm's obfuscation test: a character neither white space nor ASCII punctuation
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_NUMERIC_REF = re.compile(r"&#(?:([0-9]{1,7})|[xX]([0-9a-fA-F]{1,6}));?")
_SELF_CLOSING = re.compile(r"<(\w+)\s*/>")
_SPACES = re.compile(r"[ \t\n\r\f\x0b]+")
_NEWLINE_TAGS = frozenset({"br", "div"})
# ``^(?:li|t[hd]|d[td]|embed|h\d)$`` of the names in _ELEMENTS (the only ones asked)
_SPACE_TAGS = frozenset(("li", "th", "td", "dd", "dt", "embed", "h1", "h2", "h3", "h4", "h5",
                         "h6"))
_BLANK_LINE_TAGS = frozenset({"p", "hr", "blockquote", "pre", "listing", "plaintext", "xmp",
                              "title"})
# HTML.pm's %elements and %tricks (tags it renders without counting them valid): other
# tags are not read at all
_ELEMENTS = ELEMENTS | {"bgsound", "embed", "listing", "plaintext", "xmp"}


def last_comment_close(markup: str) -> int:
    """Where the last ``--`` + white space + ``>`` of the markup starts (-1: none), for
    :func:`comment_end`."""
    last = -1
    for m in _COMMENT_CLOSE.finditer(markup):
        last = m.start()
    return last


def comment_end(markup: str, start: int, last_close: int) -> int:
    """Where the comment opened by ``<!--`` at ``start`` ends, as HTML::Parser reads it:
    after the next ``--`` + white space + ``>``; when none follows, after the first ``>``
    (or at the end).  ``last_close``: :func:`last_comment_close` of the markup, so that
    comments never closed cost no scan to the end each."""
    if last_close >= start + 4:
        m = _COMMENT_CLOSE.search(markup, start + 4)
        if m is not None:
            return m.end()
    gt = markup.find(">", start + 4)
    return len(markup) if gt < 0 else gt + 1


#: the start tags HTML.pm reads links from (``html_uri``); a table or body tag only with
#: a background
LINK_TAGS = frozenset("a area link img frame iframe embed script bgsound form base meta".split())
_BACKGROUND_TAGS = frozenset(("body", "table", "tr", "td"))


def render_html(markup: str, links: list[tuple[str, str]] | None = None,
                counts: dict[str, int] | None = None) -> str:
    """HTML.pm's rendered text of one decoded text/html part (see the module text).

    :param links: when given, each start tag of :data:`LINK_TAGS` (and each ``body``,
        ``table``, ``tr``, ``td`` with a background) is appended to it, as its lower-case
        name and its attribute text, in order, for ``spamwarden.rules._uris``.
    :param counts: when given, ``counts["obfuscation"]`` is set to HTML.pm's count of
        text pieces that start with a letter or digit right after a piece that ends
        with one (a word cut by a tag or comment: ``obfuscation_ratio``).
    """
    markup = markup[:MAX_PART].replace("&nbsp;", " ")
    if "/>" in markup:  # (the pattern ends in it)
        markup = _SELF_CLOSING.sub(r"<\1>", markup)
    markup = markup.replace("\u201c", '"').replace("\u201d", '"')
    out: list[str] = []
    white: list[bool] = []  # whether each piece of ``out`` stands for a tag's white space

    def whitespace(piece: str) -> None:
        if out and not white[-1] and out[-1].endswith(" "):
            out[-1] = out[-1][:-1]
        out.append(piece)
        white.append(True)

    obfuscation = 0

    def text(piece: str) -> None:
        nonlocal obfuscation
        piece = _unescape(piece)
        if out:
            first, last = piece[:1], out[-1][-1:]
            if (first and last and not first.isspace() and not last.isspace()
                    and first not in _ASCII_PUNCT and last not in _ASCII_PUNCT):
                obfuscation += 1
        piece = _SPACES.sub(" ", piece)
        if out and white[-1] and piece.startswith(" "):
            piece = piece[1:]
        out.append(piece)
        white.append(False)

    pos = 0
    last_close = -2  # last_comment_close(markup), found at the first comment
    for _ in range(MAX_TOKENS):
        m = _TOKEN.search(markup, pos)
        if m is None:
            break
        if m.start() > pos:
            text(markup[pos:m.start()])
        pos = m.end()
        slash, name, attrs = m.groups()
        if name is None:
            if m.group(0) == "<!--":
                if last_close == -2:
                    last_close = last_comment_close(markup)
                pos = comment_end(markup, m.start(), last_close)
            continue  # comments, declarations
        name = name.lower()
        if name not in _ELEMENTS:
            continue  # tags no browser knows
        closing = slash == "/"
        if links is not None and not closing and (
                name in LINK_TAGS
                or (name in _BACKGROUND_TAGS and "background" in attrs.lower())):
            links.append((name, attrs))
        if name in _NEWLINE_TAGS:
            whitespace("\n")
        elif name in _BLANK_LINE_TAGS:
            whitespace("\n\n")
        elif name in _SPACE_TAGS:
            whitespace(" ")
        if not closing and name in _LITERAL:
            end = _LITERAL[name].search(markup, pos)
            stop = end.start() if end else len(markup)
            if name not in _HIDDEN and stop > pos:
                text(markup[pos:stop])
            pos = stop
    if pos < len(markup):
        text(markup[pos:])
    if counts is not None:
        counts["obfuscation"] = obfuscation
    return "".join(out)


def _char(m: re.Match[str]) -> str:
    code = int(m.group(1)) if m.group(1) else int(m.group(2), 16)
    return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else m.group(0)


def _unescape(text: str) -> str:
    """Entities decoded as HTML::Parser decodes them: a numeric reference is that code
    point (&#149; is U+0095, not the Windows-1252 bullet), named ones as HTML names."""
    if "&" not in text:
        return text
    return html.unescape(_NUMERIC_REF.sub(_char, text))


_WIDE = re.compile("[^\x00-\xff]")
_W1252 = re.compile(r"^(?:iso-?8859-1|windows-1252|cp1252)$", re.IGNORECASE)


# the 7-bit charsets whose octets are not their ASCII text (ISO-2022's escapes, UTF-7's
# and HZ's shifts), by the names Perl's Encode::find_encoding knows them by -> the
# Python codec ("hz-gb-2312" is EUC-CN there, "iso-2022-jp-2" unknown: kept as octets)
_SEVEN_BIT_CODECS = {"iso-2022-jp": "iso2022_jp", "iso-2022-jp-1": "iso2022_jp_1",
                     "iso-2022-kr": "iso2022_kr", "utf-7": "utf-7", "utf7": "utf-7",
                     "hz": "hz"}


def _decode_seven_bit(data: bytes, charset: str | None) -> str:
    """All-ASCII octets as ``_normalize`` gives them: decoded by a declared 7-bit
    charset (ISO-2022-JP, UTF-7, HZ), strictly; else as they are (US-ASCII or a
    charset ASCII is a subset of; one Encode cannot read them by; UTF-16, which
    Node.pm guesses the byte order of, is left as octets)."""
    text = data.decode("ascii")
    codec = _SEVEN_BIT_CODECS.get((charset or "").strip().lower())
    if codec is None:
        return text
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, ValueError):
        return text


def decode_text(data: bytes, charset: str | None) -> str:
    """A text part's octets as characters, as Node.pm's ``_normalize`` decodes them:
    all-ASCII as is, but for a 7-bit charset such as ISO-2022-JP, decoded; else valid
    UTF-8 whatever the declared charset; else the declared charset (ISO-8859-1 read as
    Windows-1252), strictly; else Windows-1252."""
    if data.isascii():
        return _decode_seven_bit(data, charset)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = (charset or "us-ascii").strip()
    codec = "cp1252" if _W1252.match(declared) else declared
    if not re.match(r"^(?:us-)?ascii$|^utf-?8$", declared, re.IGNORECASE):
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    return data.decode("cp1252", "replace")


_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?([^"';\s]*)""", re.IGNORECASE)
_NOT_RENDERED = frozenset({"text/calendar", "text/x-vcard"})


def _part_charset(part: MimePart) -> str | None:
    """The charset of the part's last Content-Type, ``None`` when it names none."""
    ctype = next((v for k, v in reversed(part.headers) if k.lower() == "content-type"), "")
    m = _CHARSET.search(ctype)
    return m.group(1) if m else None


def decoded_length(part: MimePart, data: bytes) -> int:
    """HTML.pm's ``length`` of a text/html part: the characters of its decoded text,
    as Node.pm's ``rendered`` gives HTML::Parser the text ``_normalize`` decoded from
    the part's charset (``normalize_charset``, on by default), not its octets: a
    page in Big5 or UTF-8 is shorter than its octets.

    :param part: the MIME leaf (its Content-Type names the charset).
    :param data: the leaf's octets, transfer encoding undone.
    :returns: the length in characters (octets past :data:`MAX_PART` count one each).
    """
    if data.isascii():
        return len(data)
    head = data[:MAX_PART]
    return len(decode_text(head, _part_charset(part))) + len(data) - len(head)


def _rendered_type(part: MimePart) -> str | None:
    # Node.pm's rendered reads the effective type: a part named page.html is HTML
    ctype = part.effective_type
    if not ctype.startswith("text/") or ctype in _NOT_RENDERED:
        return None
    return "text/html" if ctype == "text/html" else "text/plain"


def rendered_parts_text(parts: Sequence[MimePart], decode: Callable[[MimePart], bytes],
                        links: list[list[tuple[str, str]]] | None = None,
                        texts: dict[int, tuple[str, str, bool, int]] | None = None,
                        ) -> tuple[str, bool]:
    """The text SpamAssassin's body rules read before it is cut into lines: each text
    leaf rendered, a newline before each leaf after the first text (Message.pm's
    ``get_body_text_array_common``).

    :param parts: the message's MIME leaves, in order.
    :param decode: the transfer decoding of a leaf (``decode_part``).
    :param links: when given, one list per text/html leaf is appended to it, with the
        leaf's link tags (:func:`render_html`).
    :param texts: when given, receives each rendered leaf by its index: its type
        (text/html or text/plain), its text (Node.pm's ``rendered``) and, for HTML,
        whether it has an ``<img>`` tag and its ``obfuscation`` count.
    :returns: the text, and whether Perl holds it as characters: a part with 8-bit
        octets was decoded, or a character above U+00FF came out of an entity.  If not,
        SpamAssassin's lines are the text's Latin-1 octets and only ASCII white space
        is white space.
    """
    text = ""
    wide = False
    for index, part in enumerate(parts):
        if text:
            text += "\n"
        kind = _rendered_type(part)
        if kind is None:
            continue
        data = decode(part)[:MAX_PART]
        wide = wide or not data.isascii()
        decoded = decode_text(data, _part_charset(part))
        if kind == "text/html":
            found: list[tuple[str, str]] | None = None
            if links is not None or texts is not None:
                found = []
            if links is not None and found is not None:
                links.append(found)
            counts: dict[str, int] = {}
            rendered = render_html(decoded, found, counts)
            text += rendered
            if texts is not None:
                texts[index] = (kind, rendered, any(t == "img" for t, _ in found or ()),
                                counts["obfuscation"])
        else:
            text += decoded
            if texts is not None:
                texts[index] = (kind, decoded, False, 0)
    return text, wide or _WIDE.search(text) is not None

