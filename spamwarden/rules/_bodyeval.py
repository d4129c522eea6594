"""SpamAssassin's BodyEval evals, reimplemented from ``Plugin/BodyEval.pm``.

The body's length, ``tvd_vertical_words`` (text written one character a line) and
``multipart_alternative_difference`` (the words of an alternative's HTML part its text
part lacks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import BODY, EvalData, EvalEntry, nargs

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["BODY_EVALS"]


def _body_length(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """BodyEval's check_body_length(MAX): the body's octets as received, at most MAX
    (``<=``: a 128-octet body is __KAM_BODY_LENGTH_LT_128, whatever the name says)."""
    return msg.raw_body_length <= float(a[0])


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


BODY_EVALS: Mapping[str, EvalEntry] = {
    "check_body_length": (BODY, nargs(1, numeric=True), _body_length),
    "tvd_vertical_words": (BODY, nargs(2, numeric=True), _tvd_vertical_words),
    "multipart_alternative_difference": (
        BODY, nargs(2, numeric=True), _mpart_alt_difference),
    "multipart_alternative_difference_count": (
        BODY, nargs(2, numeric=True), _mpart_alt_difference_count),
}
