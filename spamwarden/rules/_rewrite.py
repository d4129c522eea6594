"""Equivalent rewrites of translated patterns that make Python ``re`` backtrack less.

Only the ``re`` side is rewritten (Hyperscan does not backtrack); a rewrite must give
exactly the matches of the pattern it replaces.

``[^\\n]+\\n`` → ``[^\\n]++\\n`` (likewise ``*`` and ``{m,n}``): a run of non-newlines
followed by a required newline can only end at a newline, so giving characters back
to it can never help the match and a possessive quantifier, which does not give any
back, finds the same matches.  SpamAssassin's header rules over ``ALL`` spell "any
lines in between" as ``(?:[^\\n]+\\n+)*``; ``re`` tried every shorter length of every
line on every backtrack (``__SUBJ_HAS_TO_2``: about 0.1 ms per message, 15 µs after).
"""

from __future__ import annotations

import re

__all__ = ["possessive_line_runs"]

# [^\n] with a greedy quantifier, then a newline that must be there (not ? * or {m,n})
_LINE_RUN = re.compile(rb"\[\^\\n\](?:\+|\*|\{\d+(?:,\d*)?\}|\{,\d+\})(?=\\n(?![?*{]))")


def possessive_line_runs(source: bytes) -> bytes:
    """``source`` with each greedy ``[^\\n]`` run that a required ``\\n`` follows made
    possessive; escapes and character classes are skipped as ``re`` reads them.

    :param source: a Python ``re`` pattern (a translated SpamAssassin regex).
    :returns: an equivalent pattern (``source`` itself when nothing applies).
    """
    if b"[^\\n]" not in source:
        return source
    out = bytearray()
    i, n = 0, len(source)
    in_class, class_body = False, 0
    while i < n:
        b = source[i]
        if b == 0x5C:  # backslash: the escape and what it escapes
            out += source[i:i + 2]
            i += 2
            continue
        if in_class:
            if b == 0x5D and i > class_body:  # "]" ends the class unless it comes first
                in_class = False
            out.append(b)
            i += 1
            continue
        if b == 0x5B:  # "[" opens a class
            m = _LINE_RUN.match(source, i)
            if m:
                out += m.group(0) + b"+"
                i = m.end()
                continue
            j = i + 1
            if j < n and source[j] == 0x5E:  # "^"
                j += 1
            in_class, class_body = True, j
            out += source[i:j]
            i = j
            continue
        out.append(b)
        i += 1
    return bytes(out)


# a bounded repeat {m,n} (or {,n}) outside a class and not escaped; group 1: m
_BOUNDED = re.compile(rb"\{(\d*),\d+\}")


def widened(source: bytes, *, drop_dollars: bool = False) -> bytes:
    """``source`` matching at least what it matches: each bounded repeat ``{m,n}`` made
    ``{m,}`` and, with ``drop_dollars``, each ``$`` before the pattern's end removed.

    Not an equivalent rewrite: a superset, for a prefilter (Hyperscan refuses, or
    compiles for minutes, long patterns with bounded repeats of groups, and refuses a
    ``$`` inside a pattern; without them it compiles them in a second).

    :param source: a Python ``re`` pattern (a translated SpamAssassin regex).
    :param drop_dollars: also remove ``$`` anchors that are not the pattern's last octet.
    :returns: the widened pattern.
    """
    out = bytearray()
    i, n = 0, len(source)
    in_class, class_body = False, 0
    while i < n:
        b = source[i]
        if b == 0x5C:  # backslash: the escape and what it escapes
            out += source[i:i + 2]
            i += 2
            continue
        if in_class:
            if b == 0x5D and i > class_body:  # "]" ends the class unless it comes first
                in_class = False
            out.append(b)
            i += 1
            continue
        if b == 0x5B:  # "[" opens a class
            j = i + 1
            if j < n and source[j] == 0x5E:  # "^"
                j += 1
            in_class, class_body = True, j
            out += source[i:j]
            i = j
            continue
        if b == 0x7B:  # "{"
            m = _BOUNDED.match(source, i)
            if m:
                out += b"{" + (m.group(1) or b"0") + b",}"
                i = m.end()
                continue
        if b == 0x24 and drop_dollars and i < n - 1:  # "$"
            i += 1
            continue
        out.append(b)
        i += 1
    return bytes(out)
