"""Text every match of a pattern must contain: a cheap test before ``re`` runs it.

``re`` tries a pattern at every position of a unit; a pattern such as
``^[^>].*?<a href=`` (``tflags multiple``, counted over every 2-4 KB rawbody piece)
costs tens of microseconds a message even where the text has no link at all.  Every
match of it contains ``<a href=``, so a unit without that text (``bytes.__contains__``,
a fast search) cannot match and is not given to ``re``.

:func:`required_literals` reads Python's parse tree of the translated pattern and
returns alternatives of which every match contains at least one, lower-cased (the unit
is lower-cased to test them: ASCII only, as ``re`` folds case on octets), or ``None``
when it finds nothing long enough.  It is conservative: only literal runs the pattern
cannot skip count (not inside optional repeats, look-arounds or conditionals; a branch
counts only when each of its alternatives has one).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# Python's own regex parser (the one ``re.compile`` uses), private but stable in 3.11+;
# the rule modules that read a pattern's structure all read it through this module
_p: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")
#: the parser's opcodes (``LITERAL``, ``AT``, ``AT_BEGINNING`` ...)
sre_constants: Any = _c

__all__ = ["MIN_LITERAL", "literal_set", "parse_tree", "required_literals", "sre_constants"]

#: what Python's parser raises for a pattern it cannot read (or nests too deep)
_PARSE_ERRORS = (re.error, RecursionError, OverflowError, ValueError, TypeError)


def parse_tree(source: bytes, flags: int = 0) -> Any | None:
    """Python's parse tree of a pattern (``re._parser.parse``: ``.data`` its items,
    ``.getwidth()`` its shortest and longest match, ``.state.flags``), or ``None`` when
    the parser cannot read it."""
    try:
        return _p.parse(source, flags)
    except _PARSE_ERRORS:
        return None

#: shorter required text is too common to be worth testing for
MIN_LITERAL = 3

_Candidate = tuple[bytes, ...]


def required_literals(source: bytes, flags: int = 0) -> _Candidate | None:
    """Alternatives (lower-cased octets) of which every match of ``source`` contains
    one, or ``None``.

    :param source: the pattern as ``re`` compiles it (octets).
    :param flags: ``re`` flags it is compiled with.
    """
    tree = parse_tree(source, flags)
    if tree is None:
        return None
    try:
        return _best(_sequence(tree.data))
    except RecursionError:  # pragma: no cover - absurdly nested pattern
        return None


def _best(cands: list[_Candidate]) -> _Candidate | None:
    best: _Candidate | None = None
    for c in cands:
        if min(len(x) for x in c) < MIN_LITERAL:
            continue
        if best is None or min(len(x) for x in c) > min(len(x) for x in best):
            best = c
    return best


def _sequence(items: Any) -> list[_Candidate]:
    """Candidates from a sequence of parse items: each literal run, and what the items
    every match must pass through require."""
    out: list[_Candidate] = []
    run = bytearray()

    def flush() -> None:
        if run:
            out.append((bytes(run).lower(),))
            run.clear()

    for op, av in items:
        if op is _c.LITERAL:
            run.append(av)
            continue
        flush()
        if op is _c.SUBPATTERN:
            out.extend(_sequence(av[3].data))
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            out.extend(_sequence(av.data))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if av[0] >= 1:
                out.extend(_sequence(av[2].data))
        elif op is _c.BRANCH:
            alts = [_best(_sequence(b.data)) for b in av[1]]
            if alts and all(a is not None for a in alts):
                out.append(tuple(dict.fromkeys(x for a in alts if a for x in a)))
        # anything else (classes, ANY, anchors, look-arounds, conditionals, group
        # references) requires no particular text
    flush()
    return out


#: literal sets larger than this are not expanded
MAX_LITERAL_SET = 256


def literal_set(source: bytes, flags: int = 0) -> tuple[bytes, ...] | None:
    """The strings a pattern matches, when it matches only a few fixed strings none of
    which can overlap another occurrence of itself or of another one (no string holds
    another, no end of one begins one): ``re``'s non-overlapping matches in a text are
    then every occurrence of each, and their number the sum of ``bytes.count``.

    :param source: the pattern as ``re`` compiles it (octets); only literals, classes of
        literals and ranges, alternatives and groups (no case folding, no anchors).
    :param flags: ``re`` flags it is compiled with; ``re.IGNORECASE`` gives ``None``.
    :returns: the strings, or ``None``.
    """
    if flags & re.IGNORECASE:
        return None
    tree = parse_tree(source, flags)
    try:
        found = _expand(tree.data) if tree is not None else None
    except _PARSE_ERRORS:
        return None
    if not found or b"" in found:
        return None
    strings = tuple(dict.fromkeys(found))
    for a in strings:
        for b in strings:
            if a != b and a in b:
                return None
            # a proper end of a that begins b: two occurrences could overlap
            if any(b.startswith(a[i:]) for i in range(1, len(a))):
                return None
    return strings


def _expand(items: Any) -> list[bytes] | None:
    out = [b""]
    for op, av in items:
        if op is _c.LITERAL:
            alts = [bytes([av])]
        elif op is _c.IN:
            alts = []
            for item_op, item in av:
                if item_op is _c.LITERAL:
                    alts.append(bytes([item]))
                elif item_op is _c.RANGE:
                    alts.extend(bytes([c]) for c in range(item[0], item[1] + 1))
                else:  # a negated class, a category (\w, \s ...)
                    return None
        elif op is _c.BRANCH:
            alts = []
            for branch in av[1]:
                sub = _expand(branch.data)
                if sub is None:
                    return None
                alts.extend(sub)
        elif op is _c.SUBPATTERN and not av[1] and not av[2]:  # no inline flags
            sub = _expand(av[3].data)
            if sub is None:
                return None
            alts = sub
        else:
            return None
        out = [o + a for o in out for a in alts]
        if len(out) > MAX_LITERAL_SET:
            return None
    return out
