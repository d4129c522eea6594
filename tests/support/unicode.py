"""Spellings of one text: Vietnamese as windows-1258 writes it, and runs of combining
marks (what ``spamwarden._unicode`` bounds)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

#: Vietnamese tone marks: windows-1258 writes them as combining characters after the letter
TONES = "\u0300\u0301\u0303\u0309\u0323"


def cp1258_spelling(text: str) -> str:
    """``text`` as windows-1258 spells it: the letter (precomposed where the code page
    has it: â, ê, ô, ơ, ư, đ), then its tone mark as a combining character."""
    out = []
    for ch in text:
        try:
            ch.encode("cp1258")
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        parts = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in parts if c in TONES)
        out.append(unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONES))
                   + tones)
    return "".join(out)


def longest_mark_run(text: str,
                     normalize: Callable[[str, str], str] = unicodedata.normalize) -> int:
    """The longest run of combining marks (non-starters) in ``text`` decomposed.

    :param normalize: ``unicodedata.normalize`` (a test that replaces it passes the real
        one, saved before)."""
    best = run = 0
    for ch in normalize("NFD", text):
        run = run + 1 if unicodedata.combining(ch) else 0
        best = max(best, run)
    return best
