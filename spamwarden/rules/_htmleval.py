"""SpamAssassin's HTMLEval evals, reimplemented from ``Plugin/HTMLEval.pm``.

Over the values HTML.pm finds in each text/html part (``_html.parse_html``): the tags
present and their balance, the flags of ``html_test`` (HTML_MESSAGE, embeds, a mailto
form, bad fonts), the ranges of ``html_range``, images and their share of the text,
comments and titles, and the title against the Subject.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import BODY, RAWBODY_SCAN, EvalData, EvalEntry, nargs, num
from ._html import HtmlResults, matches_around_comments, parse_html
from ._render import decoded_length

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["HTML_EVALS", "html_parts", "title_text"]


def _html_tag_exists(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HTMLEval's html_tag_exists(TAG): the tag opens or closes in a text/html part."""
    if msg.html_tags is None:
        tags: set[str] = set()
        for i, part in enumerate(msg.parts):
            if part.effective_type == "text/html":
                html = _without_not_tags(msg.part_body(i)[:RAWBODY_SCAN])
                # (each distinct spelling lower-cased once: tags repeat many times)
                tags.update(t.lower().decode("ascii") for t in set(_HTML_TAG.findall(html)))
        msg.html_tags = frozenset(tags)
    return a[0].lower() in msg.html_tags


_HTML_TAG = re.compile(rb"</?([A-Za-z][A-Za-z0-9]{0,15})(?=[\s/>])")
# what HTML::Parser reports no tag in: comments, and the content of the elements it
# reads as literal text up to their end tag (a <script> inside an <iframe> is text).
# A comment ends at the next "--", white space and ">" (hparser.c), else, with none
# after it, at the first ">" as any "<!...>" ("<!--#rotate>" hides no tag after it).
# ``<!--.*?--\s*>|<!--[^>]*>?|(<(iframe|...)\b[^>]*>).*?(?=</\2\s*>|\Z)`` written to be
# tried only at a "<" and to take runs of octets that cannot end it at a time (the
# same matches: the lazy scans stop at the first "--" ">" or "</name>", or the end);
# past the last "--" ">" of the part the first alternative is left out
# (_without_not_tags), so that an unclosed "<!--" is not followed to the end each time
_NOT_TAGS_REST = (rb"<!--[^>]*+>?"
                  rb"|(<(iframe|textarea|xmp|title|script|style)\b[^>]*>)"
                  rb"[^<]*+(?:<(?!/\2\s*>)[^<]*+)*+")
_NOT_TAGS = re.compile(rb"(?=<)(?:<!--(?:[^-]++|-(?!-\s*>))*+--\s*>|" + _NOT_TAGS_REST + rb")",
                       re.IGNORECASE | re.DOTALL)
_NOT_TAGS_NO_CLOSE = re.compile(rb"(?=<)(?:" + _NOT_TAGS_REST + rb")", re.IGNORECASE | re.DOTALL)


def _without_not_tags(html: bytes) -> bytes:
    """The part with its comments and literal elements' content taken out (each
    literal element's opening tag kept)."""
    out: list[bytes] = []
    pos = 0
    for m in matches_around_comments(html, _NOT_TAGS, _NOT_TAGS_NO_CLOSE,
                                     past_last_gt=b"<!--"):
        out.append(html[pos:m.start()])
        out.append(m.group(1) or b"")
        pos = m.end()
    out.append(html[pos:])
    return b"".join(out)


def html_parts(msg: PreparedMessage) -> list[HtmlResults]:
    """HTMLEval's ``html_all``: the values of each text/html part, parsed once."""
    if msg.html is None:
        msg.html = [parse_html(msg.part_body(i)) for i, p in enumerate(msg.parts)
                    if p.effective_type == "text/html"]
        # (the renderer counted HTML.pm's obfuscation)
        rendered = [i for i, p in enumerate(msg.parts) if p.effective_type == "text/html"]
        for h, i in zip(msg.html, rendered):
            h.obfuscation = msg.part_texts.get(i, ("", "", False, 0))[3]
            h.length = decoded_length(msg.parts[i], msg.part_body(i))
    return msg.html


_HTML_FLAGS = {"html": None, "embeds": "embeds", "form_action_mailto": "form_action_mailto",
               "font_face_bad": "font_face_bad", "font_low_contrast": "font_low_contrast",
               "font_invalid_color": "font_invalid_color"}


def _html_test(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_test(NAME): HTML_MESSAGE ('html': any text/html part), embeds, a mailto
    form, a bad font face."""
    attr = _HTML_FLAGS[a[0]]
    return any(attr is None or getattr(h, attr) for h in html_parts(msg))


def _in_range(value: float | None, lo: str, hi: str) -> bool:
    if value is None:
        return False
    return value > float(lo) and (hi == "inf" or value <= float(hi))


_HTML_RANGES = frozenset({"length", "closed_extra_ratio", "bad_tag_ratio", "non_element_ratio",
                          "obfuscation_ratio", "max_size"})


def _html_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_range(NAME, MIN, MAX): MIN < value <= MAX in some text/html part."""
    return any(_in_range(h.value(a[0]), a[1], a[2]) for h in html_parts(msg))


_COMPARE = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "==": float.__eq__, "!=": float.__ne__, "<": float.__lt__, "<=": float.__le__,
    ">": float.__gt__, ">=": float.__ge__}


def _compare(value: float, expr: str) -> bool:
    m = _COMPARE.match(expr)
    return m is not None and _OPS[m.group(1)](value, float(m.group(2)))


def _html_eval(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_eval('length', EXPR): a text/html part's length compared as EXPR says."""
    return any(_compare(float(h.length), a[1]) for h in html_parts(msg))


def _html_tag_balance(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_tag_balance(TAG, EXPR): opened minus closed TAGs compared as EXPR says."""
    tag = a[0].lower()
    return any(tag in h.inside and _compare(float(h.inside[tag]), a[1])
               for h in html_parts(msg))


def _html_image_only(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_image_only(MIN, MAX): a part with an <img> whose length is in (MIN, MAX]."""
    return any("img" in h.inside and _in_range(float(h.length), a[0], a[1])
               for h in html_parts(msg))


def _html_image_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_image_ratio(MIN, MAX): non-space text characters per image pixel."""
    return any(h.image_area > 0 and _in_range(h.non_space_len / h.image_area, a[0], a[1])
               for h in html_parts(msg))


def _html_text_match(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """html_text_match(WHAT, REGEX): ('anchor', '<img>') an image inside a link;
    ('comment' or 'title', REGEX) a comment or title of a text/html part matching."""
    parts = html_parts(msg)
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


def _html_title_subject_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """HTMLEval's ``html_title_subject_ratio(RATIO)``: in some text/html part, a title
    longer than RATIO times the Subject (as ``get('Subject')`` gives it, newline
    included, in UTF-8 octets as Node.pm's ``_decode_header`` leaves it); never without
    a Subject."""
    subject = msg.header_text("Subject")
    if not subject:
        return False
    size = len(subject.encode("utf-8", "surrogateescape"))
    ratio = float(a[0])
    for h in html_parts(msg):
        longest = max((len(title_text(t)) / size for t in h.title if t), default=0.0)
        if longest > ratio:
            return True
    return False


def title_text(raw: bytes) -> str:
    """A title's text as HTML::Parser reports it: decoded, entities too."""
    text = raw.decode("utf-8", "surrogateescape")
    return html.unescape(text) if "&" in text else text


def _html_charset_faraway(_m: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """HTMLEval's ``html_charset_faraway`` (__HTML_CHARSET_FARAWAY): never true in
    SpamAssassin 4.0, whatever ``ok_locales`` says: HTML.pm notes the ``<meta>``
    charsets on the parser but does not put them in the results HTMLEval reads."""
    return False


HTML_EVALS: Mapping[str, EvalEntry] = {
    "html_tag_exists": (BODY, lambda a: len(a) == 1 and a[0].isalnum(), _html_tag_exists),
    "html_test": (BODY, lambda a: len(a) == 1 and a[0] in _HTML_FLAGS, _html_test),
    "html_range": (
        BODY, lambda a: len(a) == 3 and a[0] in _HTML_RANGES and num(a[1])
        and (num(a[2]) or a[2] == "inf"), _html_range),
    "html_eval": (
        BODY, lambda a: len(a) == 2 and a[0] == "length" and bool(_COMPARE.match(a[1])),
        _html_eval),
    "html_tag_balance": (
        BODY, lambda a: len(a) == 2 and a[0].isalnum() and bool(_COMPARE.match(a[1])),
        _html_tag_balance),
    "html_image_only": (BODY, nargs(2, numeric=True), _html_image_only),
    "html_image_ratio": (BODY, nargs(2, numeric=True), _html_image_ratio),
    "html_text_match": (BODY, _text_match_args, _html_text_match),
    "html_title_subject_ratio": (BODY, nargs(1, numeric=True), _html_title_subject_ratio),
    "html_charset_faraway": (BODY, nargs(0), _html_charset_faraway),
}
