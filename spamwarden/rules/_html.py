"""The values SpamAssassin's HTML parser (``Mail::SpamAssassin::HTML``) records for one
text/html part, as HTMLEval's tests read them.

A single regex pass over the decoded part, not a DOM: tags (open ``+1``, close ``-1``,
with the few attributes the tests read), comments and declarations are found in order,
the text between them is counted.  The values are SpamAssassin's: ``length`` (octets
given to the parser; HTMLEval's ``html_parts`` sets the characters of the decoded
text, as HTML.pm counts them), ``inside`` (open minus close per tag, never below 0),
``image_area`` (width x height of each ``<img>`` with both, 200 for an unreadable side,
percentages of an 800x600 screen), ``non_space_len`` (non-space characters of the text
outside ``<script>``/``<style>``, an entity counting one), whether an ``<img>`` appears
inside a link (the ``anchor`` texts holding ``<img>``), closing tags with nothing open
(``closed_extra_ratio``), tags that are not HTML elements (``bad_tag_ratio``,
``non_element_ratio``), ``<object>``/``<embed>``, a ``mailto:`` form action and font
faces no reader has (``font_face_bad``), and HTML.pm's text style stack (colours and
sizes set by ``<font>``, ``<body>``, table cells and ``style`` attributes) for text hard
to see (``font_low_contrast``), colours no browser reads (``font_invalid_color``) and
the largest font size (``max_size``), and each link's anchor texts (``uri_detail``'s
``anchor_text``: the text inside each ``<a>``, ``<img>\n`` for an image).

The work is bounded: at most ``MAX_HTML`` octets of a part are read (SpamAssassin reads
all of it) and at most ``MAX_TAGS`` tags.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["MAX_HTML", "MAX_TAGS", "HtmlResults", "parse_html"]

#: octets of one part read, tags counted
MAX_HTML = 500_000
MAX_TAGS = 20_000
MAX_COMMENTS = 100

# HTML::Parser's tokens: comments, declarations / processing instructions, tags.  A
# start tag's attributes are read as hparser.c's parse_start reads them: a name (any
# octets but white space, "=" and ">", its first one may be "="), then perhaps "=" and
# a value; a quote opens a string only where a value starts (``color=#66FF66"`` is a
# value with a quote in it, not the start of a string running into the next tags).
# Possessive and atomic: each attribute is read one way only, as the C loop reads it.
_TOKEN_TAIL = (
    # (a declaration or processing instruction with no ">" is the rest of the part)
    rb"<![^>]*+(?:>|\Z)|<\?[^>]*+(?:>|\Z)"
    rb"|<(/?)([A-Za-z][^\s/>]*+)"
    rb"([^\s>]*+\s*+"  # the rest of the tag name (hparser.c's names hold "/"), white space
    rb"(?>[^\s>][^\s=>]*+\s*+"
    rb"(?:=\s*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\s>]*+)\s*+|(?!=)))*+)>"
    # a tag never finished (no ">", or a value's quote never closed): HTML::Parser's
    # eof reports the rest of the part as one comment
    rb"|<(?=/?[A-Za-z]).*\Z")
# A comment ends at the next "--", white space and ">" (hparser.c); with none after it,
# HTML::Parser ends it at the first ">" as any "<!...>" (_TOKEN's next alternative):
# "<!--#rotate>" is one comment and the tags after it are read.  _TOKEN_NO_CLOSE is
# used past the last "--" ">" of the part, so that each unclosed "<!--" is not
# followed to the end of the part (quadratic on "<!--a><!--a>...")
_TOKEN = re.compile(rb"<!--.*?--\s*>|" + _TOKEN_TAIL, re.DOTALL)
_TOKEN_NO_CLOSE = re.compile(_TOKEN_TAIL, re.DOTALL)
_COMMENT_CLOSE = re.compile(rb"--\s*>")
_ATTR = re.compile(rb"""([^\s=/>"']+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_ENTITY = re.compile(rb"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
_SPACE = b" \t\n\r\x0b"
_SIZE = re.compile(rb"^(\d+)(%)?$")
_DECLARATION = re.compile(rb"<!(?:doctype|\[|entity|element|attlist)", re.IGNORECASE)
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


# HTML.pm's %html_color: the colour names browsers know
_COLOR_NAMES = (
    "aqua=00ffff black=000000 blue=0000ff fuchsia=ff00ff gray=808080 green=008000 "
    "lime=00ff00 maroon=800000 navy=000080 olive=808000 purple=800080 red=ff0000 "
    "silver=c0c0c0 teal=008080 white=ffffff yellow=ffff00 aliceblue=f0f8ff "
    "antiquewhite=faebd7 aqua=00ffff aquamarine=7fffd4 azure=f0ffff beige=f5f5dc "
    "bisque=ffe4c4 black=000000 blanchedalmond=ffebcd blue=0000ff blueviolet=8a2be2 "
    "brown=a52a2a burlywood=deb887 cadetblue=5f9ea0 chartreuse=7fff00 chocolate=d2691e "
    "coral=ff7f50 cornflowerblue=6495ed cornsilk=fff8dc crimson=dc143c cyan=00ffff "
    "darkblue=00008b darkcyan=008b8b darkgoldenrod=b8860b darkgray=a9a9a9 "
    "darkgreen=006400 darkgrey=a9a9a9 darkkhaki=bdb76b darkmagenta=8b008b "
    "darkolivegreen=556b2f darkorange=ff8c00 darkorchid=9932cc darkred=8b0000 "
    "darksalmon=e9967a darkseagreen=8fbc8f darkslateblue=483d8b darkslategray=2f4f4f "
    "darkslategrey=2f4f4f darkturquoise=00ced1 darkviolet=9400d3 deeppink=ff1493 "
    "deepskyblue=00bfff dimgray=696969 dimgrey=696969 dodgerblue=1e90ff firebrick=b22222 "
    "floralwhite=fffaf0 forestgreen=228b22 fuchsia=ff00ff gainsboro=dcdcdc "
    "ghostwhite=f8f8ff gold=ffd700 goldenrod=daa520 gray=808080 green=008000 "
    "greenyellow=adff2f grey=808080 honeydew=f0fff0 hotpink=ff69b4 indianred=cd5c5c "
    "indigo=4b0082 ivory=fffff0 khaki=f0e68c lavender=e6e6fa lavenderblush=fff0f5 "
    "lawngreen=7cfc00 lemonchiffon=fffacd lightblue=add8e6 lightcoral=f08080 "
    "lightcyan=e0ffff lightgoldenrodyellow=fafad2 lightgray=d3d3d3 lightgreen=90ee90 "
    "lightgrey=d3d3d3 lightpink=ffb6c1 lightsalmon=ffa07a lightseagreen=20b2aa "
    "lightskyblue=87cefa lightslategray=778899 lightslategrey=778899 "
    "lightsteelblue=b0c4de lightyellow=ffffe0 lime=00ff00 limegreen=32cd32 linen=faf0e6 "
    "magenta=ff00ff maroon=800000 mediumaquamarine=66cdaa mediumblue=0000cd "
    "mediumorchid=ba55d3 mediumpurple=9370db mediumseagreen=3cb371 mediumslateblue=7b68ee "
    "mediumspringgreen=00fa9a mediumturquoise=48d1cc mediumvioletred=c71585 "
    "midnightblue=191970 mintcream=f5fffa mistyrose=ffe4e1 moccasin=ffe4b5 "
    "navajowhite=ffdead navy=000080 oldlace=fdf5e6 olive=808000 olivedrab=6b8e23 "
    "orange=ffa500 orangered=ff4500 orchid=da70d6 palegoldenrod=eee8aa palegreen=98fb98 "
    "paleturquoise=afeeee palevioletred=db7093 papayawhip=ffefd5 peachpuff=ffdab9 "
    "peru=cd853f pink=ffc0cb plum=dda0dd powderblue=b0e0e6 purple=800080 red=ff0000 "
    "rosybrown=bc8f8f royalblue=4169e1 saddlebrown=8b4513 salmon=fa8072 sandybrown=f4a460 "
    "seagreen=2e8b57 seashell=fff5ee sienna=a0522d silver=c0c0c0 skyblue=87ceeb "
    "slateblue=6a5acd slategray=708090 slategrey=708090 snow=fffafa springgreen=00ff7f "
    "steelblue=4682b4 tan=d2b48c teal=008080 thistle=d8bfd8 tomato=ff6347 "
    "turquoise=40e0d0 violet=ee82ee wheat=f5deb3 white=ffffff whitesmoke=f5f5f5 "
    "yellow=ffff00 yellowgreen=9acd32"
)
_COLORS = dict(pair.split("=") for pair in _COLOR_NAMES.split())
_TEXT_STYLE = frozenset("body font table tr th td big small basefont marquee span p div a".split())
_OK_ATTRIBUTES = {
    "basefont": ("color", "face", "size"), "body": ("text", "bgcolor", "link", "alink", "vlink",
                                                    "background"),
    "font": ("color", "face", "size"), "marquee": ("bgcolor", "background"),
    "table": ("bgcolor", "style"), "td": ("bgcolor", "style"), "th": ("bgcolor", "style"),
    "tr": ("bgcolor", "style"), "span": ("style",), "p": ("style",), "div": ("style",),
    "a": ("style",)}
# the attributes each tag's text style reads, with their names as octets
_OK_ATTRIBUTE_KEYS = {tag: tuple((name, name.encode()) for name in names)
                      for tag, names in _OK_ATTRIBUTES.items()}
_RELATIVE_SIZE = re.compile(r"^\s*([+-]\d+)")
_ABSOLUTE_SIZE = re.compile(r"^\s*(\d+)")
_HEX = re.compile(r"^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$")
_VISIBLE = re.compile(rb"[^ \t\n\r\f\x0b]")
_LEADING_NUMBER = re.compile(rb"^\s*(\d+)")


_HEX_CHARS = re.compile(r"^[#a-f0-9]*$")
_RGB_ANY = re.compile(r"rgb\([\d%, ]*\)")
_RGB_PERCENT = re.compile(r"rgb\((\d+)%,\s*(\d+)%,\s*(\d+)%\s*\)")
_RGB_NUMBERS = re.compile(r"rgb\((\d+),\s*(\d+),\s*(\d+)\s*\)")
_NOT_HEX = re.compile(r"[^a-f0-9]")
# HTML.pm's style patterns, without /s: "." stops at a newline, so a declaration whose
# value runs over a line (``color: red\n blue``) sets nothing
_CSS_COLOR = re.compile(r"^\s*(background-)?color:\s*(.+?)\s*$", re.I)
_IMPORTANT = re.compile(r"\s*!\s*important$")
_NOT_RGB_DIGITS = re.compile(r"[^0-9,]")
_CSS_BACKGROUND = re.compile(r"^\s*background:\s*(.+?)\s*$")
_CSS_OTHER = re.compile(r"^\s*([a-z_-]+)\s*:\s*(\S.*?)\s*$", re.I)


@functools.lru_cache(maxsize=1024)
def name_to_rgb(value: str) -> str:
    """HTML.pm's name_to_rgb: ``#rrggbb`` for a colour name, ``#hex`` or ``rgb(...)``,
    else ``invalid`` (kept for the values seen last: pages repeat their colours)."""
    color = value.lower().strip()
    named = _COLORS.get(color)
    if named is not None:
        return "#" + named
    if not _HEX_CHARS.match(color) and not _RGB_ANY.search(color):
        return "invalid"
    m = _RGB_PERCENT.search(color)
    if m:
        color = "#" + "".join(f"{int(int(x) / 100 * 255):02x}" for x in m.groups())
    m = _RGB_NUMBERS.search(color)
    if m:
        color = "#" + "".join(f"{int(x):02x}" for x in m.groups())
    if not color.startswith("#"):
        return "invalid"
    color = _NOT_HEX.sub("", color)
    if len(color) > 6:
        color = color[:6]
    if 3 < len(color) < 6:
        color = color[:3]
    if len(color) % 3:
        color += "0" * (3 - len(color) % 3)
    if len(color) == 3:
        color = "".join(c + c for c in color)
    return "#" + color


def _css_background(value: str) -> list[str]:
    """The values of the bottom layer of a CSS ``background`` (HTML.pm's
    parse_css_background): layers split at commas, values at spaces, outside
    parentheses and quotes."""
    layers: list[list[str]] = []
    tokens: list[str] = []
    token = ""
    stack: list[str] = []
    for ch in value[:1024]:
        if stack:
            token += ch
            if (stack[-1] == "(" and ch == ")") or (stack[-1] in "\"'" and ch == stack[-1]):
                stack.pop()
                if not stack and ch == ")":
                    tokens.append(token)
                    token = ""
            elif stack[-1] == "(" and ch in "\"'":
                stack.append(ch)
        elif ch == " ":
            if token:
                tokens.append(token)
            token = ""
        elif ch in "(\"'":
            token += ch
            stack.append(ch)
        elif ch == ",":
            if token:
                tokens.append(token)
            token = ""
            layers.append(tokens)
            tokens = []
        else:
            token += ch
    if token:
        tokens.append(token)
    if tokens:
        layers.append(tokens)
    return layers[-1] if layers else []


class _Styles:
    """HTML.pm's text style stack: colours and sizes of the text being read."""

    def __init__(self) -> None:
        self.basefont = 3
        self.stack: list[dict[str, str | int]] = [
            {"tag": "default", "fgcolor": "#000000", "bgcolor": "#ffffff", "size": 3}]
        self.max_size = 3
        self.opened: dict[str, int] = {}  # tag -> entries of the stack with it
        self.low_contrast = False
        self.invalid_color = False
        #: (text colour, background) -> its _color_effect
        self.effects: dict[tuple[str, str], int] = {}

    def tag(self, tag: str, attrs: Mapping[bytes, bytes], num: int) -> None:
        if tag == "th":
            tag = "td"
        stack = self.stack
        opened = self.opened
        if num != 1:
            if tag != "body" and opened.get(tag):
                while len(stack) > 1:  # (_pop, inline: most tags close)
                    top = str(stack.pop()["tag"])
                    opened[top] -= 1
                    if top == tag:
                        break
            return
        if tag == "basefont":
            base = _LEADING_NUMBER.match(attrs.get(b"size", b""))
            if b"size" in attrs and base:
                self.basefont = int(base.group(1))
                return
        if tag in ("td", "tr") and opened.get(tag):
            closes = ("font", "td") if tag == "td" else ("font", "td", "tr")
            while len(stack) > 1 and stack[-1]["tag"] in closes:
                self._pop()
        new = dict(stack[-1])
        new["tag"] = tag
        if tag in ("big", "small"):
            new["size"] = int(new["size"]) + (1 if tag == "big" else -1)
            self._push(new, tag)
            return
        for name, key in _OK_ATTRIBUTE_KEYS.get(tag, ()) if attrs else ():
            raw = attrs.get(key)
            if raw is None:
                continue
            value = raw.decode("latin-1")
            if name in ("text", "color"):
                new["fgcolor"] = name_to_rgb(value)
            elif name == "size":
                m = _RELATIVE_SIZE.match(value)
                if m:
                    new["size"] = self.basefont + int(m.group(1))
                else:
                    m = _ABSOLUTE_SIZE.match(value)
                    if m:
                        new["size"] = int(m.group(1))
            elif name == "style":
                self._style(new, value)
            elif name != "bgcolor":  # HTML.pm converts bgcolor but never applies it
                new[name] = value
            self.max_size = max(self.max_size, int(new["size"]))
        if len(stack) < 1000:  # (_push, inline: most tags open)
            stack.append(new)
            opened[tag] = opened.get(tag, 0) + 1

    def _push(self, new: dict[str, str | int], tag: str) -> None:
        if len(self.stack) < 1000:
            self.stack.append(new)
            self.opened[tag] = self.opened.get(tag, 0) + 1

    def _pop(self) -> str:
        tag = str(self.stack.pop()["tag"])
        self.opened[tag] -= 1
        return tag

    def _style(self, new: dict[str, str | int], style: str) -> None:
        for part in style.split(";"):
            m = _CSS_COLOR.match(part)
            if m:
                which = "bgcolor" if m.group(1) else "fgcolor"
                value = _IMPORTANT.sub("", m.group(2).lower())
                if "rgb" in value:
                    rgb = (_NOT_RGB_DIGITS.sub("", value).split(",") + ["", "", ""])[:3]
                    new[which] = "#" + "".join(
                        f"{min(int(x), 255) if x else 0:02x}" for x in rgb)
                elif value != "inherit":
                    new[which] = value if value == "transparent" else name_to_rgb(value)
                continue
            m = _CSS_BACKGROUND.match(part)
            if m:
                for value in _css_background(m.group(1).lower()):
                    color = name_to_rgb(value)
                    if color != "invalid":
                        new["bgcolor"] = color
                        break
                continue
            m = _CSS_OTHER.match(part)
            if m:
                new["style_" + m.group(1)] = m.group(2)
        if new["bgcolor"] == "transparent":
            new["bgcolor"] = self.stack[-1]["bgcolor"]
        if new["fgcolor"] == "transparent":
            new["fgcolor"] = new["bgcolor"]

    def text(self, text: bytes) -> None:
        """HTML.pm's html_font_invisible for a run of text with something visible."""
        if self.low_contrast and self.invalid_color:
            return
        top = self.stack[-1]
        key = (str(top["fgcolor"]), str(top["bgcolor"]))
        effect = self.effects.get(key)
        if effect is None:
            effect = self.effects[key] = _color_effect(*key)
        # the visibility test only matters where the colours have an effect
        if effect and _VISIBLE.search(text.replace(b"\xc2\xa0", b"")):
            if effect == _LOW_CONTRAST:
                self.low_contrast = True
            else:
                self.invalid_color = True


_LOW_CONTRAST, _INVALID_COLOR = 1, 2


def _color_effect(fg: str, bg: str) -> int:
    """What visible text in these colours says: hard to see (``_LOW_CONTRAST``), a
    colour no browser reads (``_INVALID_COLOR``) or nothing (0)."""
    if fg[-6:] == bg[-6:]:
        return _LOW_CONTRAST
    f, b = _HEX.match(fg), _HEX.match(bg)
    if f and b:
        r, g, bl = (int(x, 16) - int(y, 16) for x, y in zip(f.groups(), b.groups()))
        if ((0.2126 * r) ** 2 + (0.7152 * g) ** 2 + (0.0722 * bl) ** 2) ** 0.5 < 12:
            return _LOW_CONTRAST
    if fg == "invalid" or bg == "invalid":
        return _INVALID_COLOR
    return 0


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
    font_low_contrast: bool = False
    font_invalid_color: bool = False
    max_size: int = 3
    #: the comments (``<!-- ... -->``, at most ``MAX_COMMENTS``) and titles' text
    comment: list[bytes] = field(default_factory=list)
    title: list[bytes] = field(default_factory=list)
    form_action_mailto: bool = False
    tags: int = 0
    elements: int = 0
    tags_seen: int = 0
    elements_seen: int = 0
    closed_extra: int = 0
    #: words cut by a tag (HTML.pm's ``obfuscation``, counted by the renderer)
    obfuscation: int = 0
    #: each ``<a>``'s link (href, entities decoded, white space stripped, at most 8192
    #: octets; "" without one) -> one list of text pieces per ``<a>`` with it (HTML.pm's
    #: ``uri_detail`` ``anchor_text``, its entities not yet decoded)
    anchors: dict[bytes, list[list[bytes]]] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """A numeric result by HTMLEval's name, ``None`` when SpamAssassin has none."""
        if name == "length":
            return float(self.length)
        if name == "image_area":
            return float(self.image_area)
        if name == "non_space_len":
            return float(self.non_space_len)
        if name == "max_size":
            return float(self.max_size)
        if not self.tags:
            return None
        if name == "closed_extra_ratio":
            return self.closed_extra / self.tags
        if name == "bad_tag_ratio":
            return (self.tags - self.elements) / self.tags
        if name == "obfuscation_ratio" and self.obfuscation:
            return self.obfuscation / self.tags
        if name == "non_element_ratio" and self.tags_seen:
            return (self.tags_seen - self.elements_seen) / self.tags_seen
        return None


# a tag's attribute text -> its attributes (tags repeat within and across messages)
_ATTRS: dict[bytes, Mapping[bytes, bytes]] = {}


def _attrs(text: bytes) -> Mapping[bytes, bytes]:
    """A tag's attributes, names lower case, the first of a name kept (not to be changed:
    the same mapping is given for the same text)."""
    found = _ATTRS.get(text)
    if found is not None:
        return found
    out: dict[bytes, bytes] = {}
    for key, double, single, bare in _ATTR.findall(text[:4096]):
        key = key.lower()
        if key not in out:
            out[key] = double or single or bare or b""
    if len(_ATTRS) >= 2048:  # bounded: the texts are the sender's
        _ATTRS.clear()
    if len(text) <= 1024:
        _ATTRS[text] = out
    return out


def _text_len(text: bytes) -> int:
    """Non-space characters of the text (an entity counts one)."""
    if b"&" in text:
        text = _ENTITY.sub(b"x", text)
    return len(text.translate(None, _SPACE))


def _side(value: bytes | None, percent_of: int) -> int:
    m = _SIZE.match(value.strip()) if value is not None else None
    if m is None:
        return 0
    n = int(m.group(1))
    return n * percent_of if m.group(2) else n


# a tag's name as read -> (lower case, an HTML element (or o:p, st1:x), such a namespaced one)
_TAG_INFO: dict[bytes, tuple[str, bool, bool]] = {}


def _tag_info(name: bytes) -> tuple[str, bool, bool]:
    tag = name.lower().decode("latin-1")
    namespace = ":" in tag and _NAMESPACE.match(tag) is not None
    info = (tag, tag in ELEMENTS or namespace, namespace)
    if len(_TAG_INFO) >= 4096:  # bounded: names are the sender's
        _TAG_INFO.clear()
    _TAG_INFO[name] = info
    return info


_MAX_URI_LENGTH = 8192  # SpamAssassin's MAX_URI_LENGTH (HTML.pm's canon_uri)
_URI_SPACE = b" \t\n\r\f\x0b\xa0"


def _link_attrs(text: bytes) -> dict[bytes, bytes]:
    """A tag's attributes with their entities decoded, as HTML::Parser gives them."""
    from ._uris import _tag_attrs
    return _tag_attrs(text)


def matches_around_comments(data: bytes, pattern: re.Pattern[bytes],
                            no_close: re.Pattern[bytes], *,
                            past_last_gt: bytes | None = None) -> Iterator[re.Match[bytes]]:
    """The successive matches of ``pattern`` in a part, and of ``no_close`` (the same
    without its branch for a comment ending at ``--``, white space and ``>``) once the
    search starts within four octets of the part's last such close or after it: past
    it no comment can close, and ``pattern`` would follow each unclosed ``<!--`` to the
    end of the part (quadratic on ``<!--a><!--a>...``).

    :param past_last_gt: for a pattern none of whose matches needs anything past its
        start but a ``>`` (a tag must close) except one starting with this text (an
        unclosed ``<!--``, matched to the end): the searches stop at the part's last
        ``>``, each match found is matched again on the whole part for its real end,
        and past that ``>`` only this text is looked for. Without it, each ``<script``
        of a run with no ``>`` after it was scanned to the end (quadratic: 12 s for
        500 KB of ``<script ``)."""
    last_close = -1
    for found in _COMMENT_CLOSE.finditer(data):
        last_close = found.start()
    end = data.rfind(b">") + 1 if past_last_gt is not None else len(data)
    at = 0
    while True:
        if pattern is not no_close and at + 4 > last_close:
            pattern = no_close
        m = pattern.search(data, at, end) if at < end else None
        if m is not None and end < len(data):
            m = pattern.match(data, m.start())  # (it matches: its end, on the whole part)
        if m is None:
            if past_last_gt is None:
                return
            start = data.find(past_last_gt, max(at, end))
            m = pattern.match(data, start) if start >= 0 else None
            if m is None:
                return
        at = m.end()
        yield m


def _tokens(data: bytes) -> Iterator[re.Match[bytes]]:
    """HTML::Parser's tokens of a part in order: ``_TOKEN``'s matches, with
    ``_TOKEN_NO_CLOSE`` past the part's last comment close."""
    return matches_around_comments(data, _TOKEN, _TOKEN_NO_CLOSE)


def parse_html(data: bytes) -> HtmlResults:
    """HTMLEval's values for one decoded text/html part.

    :param data: the part's body, transfer encoding undone.
    :returns: the values; never raises.
    """
    r = HtmlResults(length=len(data))
    # HTML.pm's parse turns each "&nbsp;" into a space before HTML::Parser reads the
    # text (after counting the length): white-on-white &nbsp; is no visible text
    data = data[:MAX_HTML].replace(b"&nbsp;", b" ")
    inside = r.inside
    pos = 0
    raw_until = b""  # inside <script>/<style>: text up to this closing tag is not text
    text: list[bytes] = []
    styles = _Styles()
    anchor: list[bytes] | None = None  # the text pieces of the last <a> (anchor_last)
    # (the counts are kept in locals while reading, set on r at the end)
    tags = elements = tags_seen = elements_seen = closed_extra = 0
    for m in _tokens(data):
        close, name, rest = m.groups()
        if raw_until:
            # the contents of <script>/<style> are not parsed for tags
            if name is None or close != b"/" or name.lower() != raw_until:
                continue
        else:
            start = m.start()
            if start > pos:
                chunk = data[pos:start]
                text.append(chunk)
                styles.text(chunk)
                if r.title and inside.get("title", 0) > 0:
                    r.title[-1] += chunk[:4096]
                if anchor is not None and inside.get("a", 0) > 0:
                    anchor.append(chunk)
        pos = m.end()
        if name is None:
            # comments, and "<!...>" that is neither a declaration nor a marked section
            # (HTML::Parser reports those as comments too)
            tok = m.group(0)
            if (not tok.startswith(b"<?") and len(r.comment) < MAX_COMMENTS
                    and not _DECLARATION.match(tok)):
                r.comment.append(tok[:4096])
            continue
        if tags >= MAX_TAGS:
            break
        info = _TAG_INFO.get(name)
        if info is None:
            info = _tag_info(name)
        tag, element, namespace = info
        num = -1 if close else 1
        if element:
            elements += 1
            if tag not in inside:
                elements_seen += 1
        tags += 1
        n = inside.get(tag)
        if n is None:
            tags_seen += 1
            n = 0
        n += num
        if n < 0:
            n = 0
            closed_extra += 1
        inside[tag] = n
        if num == 1 and tag in ("script", "style"):
            raw_until = tag.encode()
        elif num == -1 and raw_until:
            raw_until = b""
        if namespace:
            continue
        if tag in _TEXT_STYLE:
            styles.tag(tag, _attrs(rest) if num == 1 and b"=" in rest and tag in _OK_ATTRIBUTES
                       else {}, num)
        if num != 1:
            continue
        if tag == "title" and len(r.title) < MAX_COMMENTS:
            r.title.append(b"")
        elif tag == "img":
            if inside.get("a", 0) > 0:
                r.link_image = True
                if anchor is not None:
                    anchor.append(b"<img>\n")
            attrs = _attrs(rest)
            if b"width" in attrs and b"height" in attrs:
                width = _side(attrs[b"width"], 8) or 200
                height = _side(attrs[b"height"], 6) or 200
                r.image_area += width * height
        elif tag == "font":
            face = _attrs(rest).get(b"face")
            if face is not None and not _FACE_OK.match(face):
                r.font_face_bad = True
        elif tag in ("object", "embed"):
            r.embeds = True
        elif tag == "a":
            href = (_attrs(rest) if len(rest) < 4000 else _link_attrs(rest)).get(b"href")
            if href is not None and b"&" in href:
                href = _link_attrs(rest).get(b"href")
            key = b"" if href is None else href.strip(_URI_SPACE)[:_MAX_URI_LENGTH]
            anchor = []
            r.anchors.setdefault(key, []).append(anchor)
        elif tag == "form":
            action = _attrs(rest).get(b"action")
            if action is not None and b"mailto:" in action.lower():
                r.form_action_mailto = True
    if not raw_until and pos < len(data):
        text.append(data[pos:])
        styles.text(text[-1])
        if anchor is not None and inside.get("a", 0) > 0:
            anchor.append(data[pos:])
    r.tags, r.elements, r.tags_seen, r.elements_seen = tags, elements, tags_seen, elements_seen
    r.closed_extra = closed_extra
    r.font_low_contrast, r.font_invalid_color = styles.low_contrast, styles.invalid_color
    r.max_size = styles.max_size
    r.non_space_len = _text_len(b" ".join(text))
    return r
