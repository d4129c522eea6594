"""Looser forms of ReplaceTags' look-alike letters, for a prefilter Hyperscan takes.

``25_replace.cf`` spells each letter as every character that looks like it: ``<A>`` is
``a``, ``A``, ``@``, Latin-1 accented forms, and some ten alternatives of two to four
octets (UTF-8 Cyrillic, Greek, mathematical letters) and HTML entities (``&#1072;``).
The sextortion rules of ``72_active.cf`` (``__YOUR_PERSONAL``, ``__HOURS_DEADLINE``,
``__MY_MALWARE`` ...) write whole sentences in these letters and become patterns of
37,000 to 224,000 characters: over Hyperscan's length limit even as a prefilter, and
0.8 ms a message for the seven in ``re``.

:func:`looser_tag` rewrites one tag value so that it matches at least what the value
matches, but is short: every alternative made only of octets ``\\x80``-``\\xff`` (at
most four) becomes one ``[\\x80-\\xff]{m,n}``; every alternative that is an entity
(``&`` + letters, digits or ``#`` + ``;``) becomes one ``&[\\#0-9A-Za-z]{m,n};``; a
character class mixing ASCII and high octets keeps its ASCII members (the high ones
are covered by the run above).  Everything else is kept as written.  Expanded with the
looser letters, the seven rules are 2,200 to 13,500 characters, and Hyperscan compiles
them as a prefilter: ``re`` then runs the exact pattern only on the text units the
prefilter matched (:mod:`._engine`'s side databases).  Each rewrite is checked on
Python's parse tree of the translated alternative, so a value the rewrite does not
understand stays as it is: looser only where it is sure to be a superset.
"""

from __future__ import annotations

from typing import Any

from ._literals import parse_tree, sre_constants
from ._regex import UntranslatableRegex, translate

__all__ = ["looser_tag"]

_C = sre_constants
# the octets an entity's name may hold (``&#1072;``, ``&#xa0;``, ``&nbsp;``)
_ENTITY_OCTETS = frozenset(b"#0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# wider alternatives are kept as written (a look-alike letter is at most four octets)
_MAX_HIGH = 4
_MAX_ENTITY = 16


def looser_tag(value: str) -> str:
    """A tag value that matches at least what ``value`` matches (see the module).

    :param value: a ``replace_tag`` value, Perl regex syntax (``(?:[aA@]|[\\xd0][\\x90])``).
    :returns: the looser value, Perl syntax; ``value`` itself when it is not an
        alternation or nothing in it can be loosened.
    """
    alts = _alternatives(value)
    if alts is None or len(alts) < 2:
        return value
    kept: list[str] = []
    high: list[tuple[int, int]] = []
    entity: list[tuple[int, int]] = []
    for alt in alts:
        tree = _tree(alt)
        shape = _shape(tree) if tree is not None else None
        if shape is None:
            kept.append(alt)
        elif shape[0] == "high":
            high.append(shape[1:])
        elif shape[0] == "entity":
            entity.append(shape[1:])
        else:  # a class mixing ASCII and high octets: its ASCII members, and one octet
            kept.append(_class(shape[1]))
            high.append((1, 1))
    if not high and not entity:
        return value
    if high:
        lo, hi = min(h[0] for h in high), max(h[1] for h in high)
        kept.append(f"[\\x80-\\xff]{{{lo},{hi}}}")
    if entity:
        lo, hi = min(e[0] for e in entity), max(e[1] for e in entity)
        kept.append(f"&[\\#0-9A-Za-z]{{{lo},{hi}}};")
    return "(?:" + "|".join(kept) + ")"


def _alternatives(value: str) -> list[str] | None:
    """The top-level alternatives of ``value`` (one enclosing ``(?:...)`` removed), or
    ``None`` when its brackets do not balance."""
    if value.startswith("(?:") and value.endswith(")"):
        inner = _split(value[3:-1])
        if inner is not None:
            return inner
    return _split(value)


def _split(text: str) -> list[str] | None:
    """``text`` split at each ``|`` outside groups and classes; ``None`` when a group
    closes that did not open here, or one stays open."""
    out: list[str] = []
    depth, start, i, n = 0, 0, 0, len(text)
    in_class = False
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            # a "]" first in the class (after an optional "^") is a member
            i += 2 if text[i + 1:i + 2] == "]" else 3 if text[i + 1:i + 3] == "^]" else 1
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
        elif c == "|" and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    if depth or in_class:
        return None
    out.append(text[start:])
    return out


def _tree(alt: str) -> Any | None:
    try:
        rx = translate(alt, "i")
        return parse_tree(rx.source, rx.compile().flags)
    except UntranslatableRegex:
        return None


def _shape(tree: Any) -> tuple[Any, ...] | None:
    """("high", shortest, longest), ("entity", shortest name, longest name), ("mixed",
    ASCII octets) or ``None``: what the alternative is, by its parse tree."""
    octets = _octets(tree.data)
    if not octets:
        return None
    lo, hi = tree.getwidth()
    if min(octets) >= 0x80 and hi <= _MAX_HIGH:
        return ("high", lo, hi)
    items = list(tree.data)
    if (len(items) >= 3 and items[0] == (_C.LITERAL, 0x26) and items[-1] == (_C.LITERAL, 0x3B)
            and hi <= _MAX_ENTITY):
        name = _octets(items[1:-1])
        if name and name <= _ENTITY_OCTETS and lo > 2:
            return ("entity", lo - 2, hi - 2)
    if len(items) == 1 and items[0][0] is _C.IN and min(octets) < 0x80 <= max(octets):
        return ("mixed", frozenset(o for o in octets if o < 0x80))
    return None


def _octets(items: Any) -> set[int] | None:
    """Every octet the items may match, or ``None`` when one may match any of many (a
    negated class, ``.``, ``\\w``, an anchor, ...): those are kept as written."""
    out: set[int] = set()
    for op, av in items:
        if op is _C.LITERAL:
            out.add(av)
        elif op is _C.IN:
            for sub, arg in av:
                if sub is _C.LITERAL:
                    out.add(arg)
                elif sub is _C.RANGE:
                    out.update(range(arg[0], arg[1] + 1))
                else:
                    return None
        elif op is _C.SUBPATTERN or op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
            inner = _octets(av[-1])
            if inner is None:
                return None
            out |= inner
        elif op is _C.BRANCH:
            for branch in av[1]:
                inner = _octets(branch)
                if inner is None:
                    return None
                out |= inner
        else:
            return None
    return out


def _class(octets: frozenset[int]) -> str:
    """A Perl character class of ``octets``: letters and digits as they are, the rest
    as ``\\xNN``."""
    return "[" + "".join(chr(o) if chr(o).isalnum() else f"\\x{o:02x}"
                         for o in sorted(octets)) + "]"
