"""SpamAssassin ``eval:`` tests that need no network, reimplemented from their plugins.

The registry of the implemented evals, and the evals of BodyEval and ImageInfo.  Those
of HeaderEval, MIMEEval, HTMLEval, HTTPSMismatch, FreeMail, WLBLEval's ``enlist_*``
lists, RelayEval and URIEval are each in a module named for their plugin, which lists
them; what the eval modules share is in ``_evalbase``.  Each entry names the rule kinds
it may appear in and checks its arguments when rules are read, so an unsupported
argument skips the rule with a reason instead of failing at scan time.  Every other eval
is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._auth import AUTH_EVALS
from ._evalbase import BODY, RAWBODY_OR_BODY, EvalData, EvalEntry, EvalFn, nargs, num
from ._freemail import FREEMAIL_EVALS, freemail_edits_body, freemail_stripped_lines
from ._headereval import HEADER_EVALS
from ._htmleval import HTML_EVALS
from ._httpsmismatch import HTTPS_MISMATCH_EVALS
from ._mimeeval import MIME_EVALS
from ._relayeval import RELAY_EVALS
from ._urieval import URI_EVALS
from ._wlbl import WLBL_EVALS
from ._wlbleval import WLBLEVAL_EVALS

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["EVALS", "IMPLEMENTED_EVALS", "EvalData", "freemail_edits_body",
           "freemail_stripped_lines", "parse_eval_args", "run_eval"]


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
    "check_body_length": (BODY, nargs(1, numeric=True), _body_length),
    "tvd_vertical_words": (BODY, nargs(2, numeric=True), _tvd_vertical_words),
    "multipart_alternative_difference": (BODY, nargs(2, numeric=True), _mpart_alt_difference),
    "multipart_alternative_difference_count": (
        BODY, nargs(2, numeric=True),
        _mpart_alt_difference_count),
    "image_count": (RAWBODY_OR_BODY, _image_args(2, 3), _image_count),
    "pixel_coverage": (RAWBODY_OR_BODY, _image_args(2, 3), _pixel_coverage),
    "image_size_exact": (RAWBODY_OR_BODY, _image_args(3, 3), _image_size_exact),
    "image_size_range": (RAWBODY_OR_BODY, _image_args(3, 5), _image_size_range),
    "image_to_text_ratio": (RAWBODY_OR_BODY, _image_args(3, 3), _image_to_text_ratio_body),
}


#: each plugin module's evals; an eval name is listed by one of them only
_TABLES: tuple[Mapping[str, EvalEntry], ...] = (
    _OWN_EVALS, HEADER_EVALS, MIME_EVALS, HTML_EVALS, HTTPS_MISMATCH_EVALS, FREEMAIL_EVALS,
    WLBLEVAL_EVALS, RELAY_EVALS, URI_EVALS, WLBL_EVALS, AUTH_EVALS)
EVALS: Mapping[str, EvalSpec] = {
    name: EvalSpec(kinds, check, fn)
    for table in _TABLES for name, (kinds, check, fn) in table.items()}
#: (rule kind, eval function) pairs that can run.
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)
