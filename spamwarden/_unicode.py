"""Unicode normalization that a sender cannot make slow.

``unicodedata.normalize`` puts each run of combining marks (non-starters) in canonical
order with an insertion sort: a run of n marks of two alternating classes costs n²
steps.  20,000 of them (``a`` then U+0301 U+0323 repeated) take 0.3 s of CPU,
200,000 take 30 s, and any message text can carry them.  Real text has a few marks on a
letter; Unicode's stream-safe text format (UAX #15 §13) bounds a run at 30.  So do we:
a run of more than :data:`MAX_MARKS` non-starters keeps its first :data:`MAX_MARKS`
before it is normalized (what is cut is marks on one letter, which no word, token or
fingerprint reads).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Literal

__all__ = ["MAX_MARKS", "normalized", "stream_safe"]

#: non-starters a run keeps (UAX #15 §13's bound)
MAX_MARKS = 30


def _non_starter_class() -> str:
    """A regex character class of every non-starter: canonical combining class above
    zero, or (U+0F73, U+0F75, U+0F81) a decomposition that begins with one."""
    points = [c for c in range(sys.maxunicode + 1)
              if not 0xD800 <= c < 0xE000 and (
                  unicodedata.combining(chr(c))
                  or unicodedata.combining(unicodedata.normalize("NFD", chr(c))[0]))]
    ranges: list[str] = []
    start = prev = points[0]
    for c in [*points[1:], -1]:
        if c == prev + 1:
            prev = c
            continue
        ranges.append(re.escape(chr(start)) if start == prev
                      else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
        start = prev = c
    return "[" + "".join(ranges) + "]"


@functools.cache
def _long_run() -> re.Pattern[str]:
    """A run of more than :data:`MAX_MARKS` non-starters (built on first use: reading
    the character database takes about 0.2 s, and most processes never need it)."""
    return re.compile(_non_starter_class() + "{" + str(MAX_MARKS + 1) + ",}")


def stream_safe(text: str) -> str:
    """``text`` with every run of more than :data:`MAX_MARKS` non-starters cut to its
    first :data:`MAX_MARKS` (linear: one regex scan)."""
    return _long_run().sub(lambda m: m.group()[:MAX_MARKS], text)


def normalized(form: Literal["NFC", "NFD", "NFKC", "NFKD"], text: str) -> str:
    """``unicodedata.normalize(form, text)`` in linear time: text already in ``form``
    (ASCII, nearly all mail) is returned as it is, other text is made
    :func:`stream_safe` first."""
    if text.isascii() or unicodedata.is_normalized(form, text):
        return text
    return unicodedata.normalize(form, stream_safe(text))
