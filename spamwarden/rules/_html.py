"""The values SpamAssassin's HTML parser (``Mail::SpamAssassin::HTML``) records for one
text/html part, as HTMLEval's tests read them.

A single regex pass over the decoded part, not a DOM: tags (open ``+1``, close ``-1``,
with the few attributes the tests read), comments and declarations are found in order,
the text between them is counted.  The values are SpamAssassin's: ``length`` (octets
given to the parser), ``inside`` (open minus close per tag, never below 0),
``image_area`` (width x height of each ``<img>`` with both, 200 for an unreadable side,
percentages of an 800x600 screen), ``non_space_len`` (non-space characters of the text
outside ``<script>``/``<style>``, an entity counting one), whether an ``<img>`` appears
inside a link (the ``anchor`` texts holding ``<img>``), closing tags with nothing open
(``closed_extra_ratio``), tags that are not HTML elements (``bad_tag_ratio``,
``non_element_ratio``), ``<object>``/``<embed>``, a ``mailto:`` form action and font
faces no reader has (``font_face_bad``).  Text colours and sizes (the style stack behind
``font_low_contrast``, ``max_size``) are not followed.

The work is bounded: at most ``MAX_HTML`` octets of a part are read (SpamAssassin reads
all of it) and at most ``MAX_TAGS`` tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["MAX_HTML", "MAX_TAGS", "HtmlResults", "parse_html"]

#: octets of one part read, tags counted
MAX_HTML = 500_000
MAX_TAGS = 20_000

# HTML::Parser's tokens: comments, declarations / processing instructions, tags
_TOKEN = re.compile(
    rb"<!--.*?(?:-->|\Z)"
    rb"|<![^>]*>|<\?[^>]*>"
    rb"|<(/?)([A-Za-z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.DOTALL)
_ATTR = re.compile(rb"""([^\s=/>"']+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_ENTITY = re.compile(rb"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
_SPACE = b" \t\n\r\x0b"
_SIZE = re.compile(rb"^(\d+)(%)?$")
# HTML.pm's font face names a reader's fonts could have (else font_face_bad)
_FACE_OK = re.compile(
    rb"""^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?\Z""",
    re.IGNORECASE)

# HTML.pm's %elements (strict, loose, non-standard); o:p, st1:x count as elements too
ELEMENTS = frozenset((
    "a abbr acronym address area b base bdo big blockquote body br button caption cite "
    "code col colgroup dd del dfn div dl dt em fieldset form h1 h2 h3 h4 h5 h6 head hr "
    "html i img input ins kbd label legend li link map meta noscript object ol optgroup "
    "option p param pre q samp script select small span strong style sub sup table tbody "
    "td textarea tfoot th thead title tr tt ul var "
    "applet basefont center dir font frame frameset iframe isindex menu noframes s strike u "
    "nobr x-sigsep x-tab").split())
_NAMESPACE = re.compile(r"^(?:o|st\d):[\w-]+/?$")


@dataclass
class HtmlResults:
    """One text/html part's values (see the module text)."""

    length: int = 0
    inside: dict[str, int] = field(default_factory=dict)
    image_area: int = 0
    non_space_len: int = 0
    link_image: bool = False
    embeds: bool = False
    font_face_bad: bool = False
    form_action_mailto: bool = False
    tags: int = 0
    elements: int = 0
    tags_seen: int = 0
    elements_seen: int = 0
    closed_extra: int = 0

    def value(self, name: str) -> float | None:
        """A numeric result by HTMLEval's name, ``None`` when SpamAssassin has none."""
        if name == "length":
            return float(self.length)
        if name == "image_area":
            return float(self.image_area)
        if name == "non_space_len":
            return float(self.non_space_len)
        if not self.tags:
            return None
        if name == "closed_extra_ratio":
            return self.closed_extra / self.tags
        if name == "bad_tag_ratio":
            return (self.tags - self.elements) / self.tags
        if name == "non_element_ratio" and self.tags_seen:
            return (self.tags_seen - self.elements_seen) / self.tags_seen
        return None


def _attrs(text: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for m in _ATTR.finditer(text[:4096]):
        key = m.group(1).lower()
        if key not in out:
            out[key] = m.group(2) or m.group(3) or m.group(4) or b""
    return out


def _text_len(text: bytes) -> int:
    """Non-space characters of a text run (an entity counts one)."""
    if b"&" in text:
        text = _ENTITY.sub(b"x", text)
    return len(text) - sum(text.count(bytes((c,))) for c in _SPACE)


def _side(value: bytes | None, percent_of: int) -> int:
    m = _SIZE.match(value.strip()) if value is not None else None
    if m is None:
        return 0
    n = int(m.group(1))
    return n * percent_of if m.group(2) else n


def parse_html(data: bytes) -> HtmlResults:
    """HTMLEval's values for one decoded text/html part.

    :param data: the part's body, transfer encoding undone.
    :returns: the values; never raises.
    """
    r = HtmlResults(length=len(data))
    data = data[:MAX_HTML]
    inside = r.inside
    pos = 0
    raw_until = b""  # inside <script>/<style>: text up to this closing tag is not text
    for m in _TOKEN.finditer(data):
        if raw_until:
            # the contents of <script>/<style> are not parsed for tags
            if m.group(2) is None or m.group(1) != b"/" or m.group(2).lower() != raw_until:
                continue
        elif m.start() > pos:
            r.non_space_len += _text_len(data[pos:m.start()])
        pos = m.end()
        if m.group(2) is None:
            continue
        if r.tags >= MAX_TAGS:
            break
        tag = m.group(2).lower().decode("latin-1")
        num = -1 if m.group(1) else 1
        namespace = _NAMESPACE.match(tag) is not None
        if tag in ELEMENTS or namespace:
            r.elements += 1
            if tag not in inside:
                r.elements_seen += 1
        r.tags += 1
        if tag not in inside:
            r.tags_seen += 1
        n = inside.get(tag, 0) + num
        if n < 0:
            n = 0
            r.closed_extra += 1
        inside[tag] = n
        if num == 1 and tag in ("script", "style"):
            raw_until = tag.encode()
        elif num == -1 and raw_until:
            raw_until = b""
        if namespace or num != 1:
            continue
        if tag == "img":
            if inside.get("a", 0) > 0:
                r.link_image = True
            attrs = _attrs(m.group(3))
            if b"width" in attrs and b"height" in attrs:
                width = _side(attrs[b"width"], 8) or 200
                height = _side(attrs[b"height"], 6) or 200
                r.image_area += width * height
        elif tag == "font":
            face = _attrs(m.group(3)).get(b"face")
            if face is not None and not _FACE_OK.match(face):
                r.font_face_bad = True
        elif tag in ("object", "embed"):
            r.embeds = True
        elif tag == "form":
            action = _attrs(m.group(3)).get(b"action")
            if action is not None and b"mailto:" in action.lower():
                r.form_action_mailto = True
    if not raw_until and pos < len(data):
        r.non_space_len += _text_len(data[pos:])
    return r
