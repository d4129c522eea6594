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

from ._literals import parse_tree

__all__ = ["possessive_line_runs", "repeated_group", "widened"]


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
    while i < n:
        if source[i] == 0x5B:  # "[": a line run, or a class
            m = _LINE_RUN.match(source, i)
            if m:
                out += m.group(0) + b"+"
                i = m.end()
                continue
        j = _piece_end(source, i)
        out += source[i:j]
        i = j
    return bytes(out)


# a bounded repeat {m,n} (or {,n}) outside a class and not escaped; group 1: m
_BOUNDED = re.compile(rb"\{(\d*),\d+\}")
# any counted repeat, {m}, {m,}, {m,n} or {,n}; group 1: m
_COUNTED = re.compile(rb"\{(\d*)(?:,\d*)?\}")


def widened(source: bytes, *, drop_dollars: bool = False, drop_minimums: bool = False) -> bytes:
    """``source`` matching at least what it matches: each bounded repeat ``{m,n}`` made
    ``{m,}`` and, with ``drop_dollars``, each ``$`` before the pattern's end removed.

    Not an equivalent rewrite: a superset, for a prefilter (Hyperscan refuses, or
    compiles for minutes, long patterns with bounded repeats of groups, and refuses a
    ``$`` inside a pattern; without them it compiles them in a second).

    :param source: a Python ``re`` pattern (a translated SpamAssassin regex).
    :param drop_dollars: also remove ``$`` anchors that are not the pattern's last octet.
    :param drop_minimums: every counted repeat (``{m}``, ``{m,}``, ``{m,n}``) made ``+``,
        or ``*`` when m is 0: looser still, and smaller for Hyperscan (each copy a
        minimum asks for is a copy of the repeated group in its automaton).
    :returns: the widened pattern.
    """
    out = bytearray()
    i, n = 0, len(source)
    while i < n:
        b = source[i]
        if b == 0x7B and drop_minimums:  # "{"
            m = _COUNTED.match(source, i)
            if m:
                out += b"*" if int(m.group(1) or b"0") == 0 else b"+"
                i = m.end()
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
        j = _piece_end(source, i)
        out += source[i:j]
        i = j
    return bytes(out)


def repeated_group(source: bytes, flags: int = 0) -> tuple[bytes, int] | None:
    """For a pattern that is one group repeated a fixed number of times, ``(?:X){m}``
    with m >= 2 and X matching no empty string: (``(?:X)``, m); else ``None``.

    SpamAssassin's ``__FILL_THIS_FORM_SHORT1``/``LONG1`` ... are such (three or five form
    fields in a row): too large for Hyperscan whole, while one field is not, and every
    match is a field match followed by the rest, ``(?:X){m-1}``, where that field ends.

    :param source: a Python ``re`` pattern.
    :param flags: the ``re`` flags it is compiled with.
    """
    m = re.fullmatch(rb"(\(\?:.*\))\{(\d+)\}", source, re.DOTALL)
    if m is None or int(m.group(2)) < 2 or _group_end(source) != m.end(1):
        return None
    item, count = m.group(1), int(m.group(2))
    tree = parse_tree(item, flags)
    if tree is None or tree.getwidth()[0] == 0:
        return None
    return item, count


def _group_end(source: bytes) -> int:
    """Where the group opening ``source`` closes (the offset after its ``)``), reading
    escapes and character classes as ``re`` does; -1 if it does not close."""
    depth = 0
    i, n = 0, len(source)
    while i < n:
        b = source[i]
        if b == 0x28:  # "("
            depth += 1
        elif b == 0x29:  # ")"
            depth -= 1
            if depth == 0:
                return i + 1
        i = _piece_end(source, i)
    return -1


def _piece_end(source: bytes, i: int) -> int:
    """Where the lexical piece of a pattern at ``i`` ends, as ``re`` reads it: an escape
    (the backslash and what it escapes), a whole character class (``]`` right after
    ``[`` or ``[^`` is a member, escapes inside are skipped), or one octet.  The
    rewrites step through a pattern by pieces, so only octets outside classes and
    escapes are ever taken for syntax."""
    n = len(source)
    b = source[i]
    if b == 0x5C:  # backslash
        return i + 2
    if b != 0x5B:  # not "["
        return i + 1
    j = i + 1
    if j < n and source[j] == 0x5E:  # "^"
        j += 1
    body = j
    while j < n:
        if source[j] == 0x5C:
            j += 2
            continue
        if source[j] == 0x5D and j > body:  # "]" ends the class unless it comes first
            return j + 1
        j += 1
    return n
