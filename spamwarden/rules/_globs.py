"""The globs of a site's address and Subject lists: Parser.pm's ``add_to_addrlist`` entries.

An address entry is a glob over the whole address, case-insensitive (ASCII): ``*`` any
run of characters, ``?`` one character, everything else itself (Parser.pm's
``add_to_addrlist``: ``\\``, ``(`` and NUL stand for ``_``).  A Subject entry is the
same kind of glob found anywhere in the Subject.  Only the list entries are patterns:
an address or Subject in the message is text, so ``*@example.com`` in a From field is
the address of that name, not a wildcard.  The globs are matched without backtracking
into a star (the text between stars taken where it first occurs: ``str.find`` in
:func:`glob_match`, atomic groups in :func:`glob_regex`), so no entry costs more than its
length times the text's; the callers bound the text.

Used by the welcome and block lists (``_wlbllists``, ``_wlbl``), VBounce's bounce relays
(``_vbounce``) and the SPF/DKIM welcome lists (``_auth``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["GlobSet", "address_glob", "ascii_lower", "glob_match", "glob_regex"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Perl's ``lc`` on octets: ASCII letters only (how entries and the text matched
    against them are lowered)."""
    return text.translate(_ASCII_LOWER)

def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` is matched by the glob ``pattern`` as a whole.

    Parser.pm's ``^...$`` regex of an entry: ``*`` any run of characters but a newline,
    ``?`` one character but a newline; ``$`` also matches before a final newline.  The
    text between the stars is found leftmost, piece after piece (enough for globs), by
    ``str.find`` or a fixed-length pattern: no backtracking over the stars, so no entry
    costs more than its length times the text's.

    :param pattern: the entry, already lower case.
    :param text: the address or line, already lower case.
    """
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text:
        return False
    pieces = pattern.split("*")
    first, last = pieces[0], pieces[-1]
    if len(pieces) == 1:
        return len(text) == len(first) and _piece_at(first, text, 0)
    end = len(text) - len(last)
    if end < len(first) or not _piece_at(first, text, 0) or not _piece_at(last, text, end):
        return False
    pos = len(first)
    for piece in pieces[1:-1]:
        if piece:
            found = _piece_find(piece, text, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
    return True


def _piece_at(piece: str, text: str, at: int) -> bool:
    """Whether ``piece`` (``?`` any character) is ``text`` at ``at``."""
    if "?" not in piece:
        return text.startswith(piece, at)
    return at + len(piece) <= len(text) and all(
        c == "?" or c == text[at + i] for i, c in enumerate(piece))


def _piece_find(piece: str, text: str, start: int, end: int) -> int:
    """Where ``piece`` (``?`` any character) first is in ``text[start:end]``, -1 if not."""
    if "?" not in piece:
        return text.find(piece, start, end)
    m = _piece_regex(piece).search(text, start, end)
    return -1 if m is None else m.start()


def _piece_pattern(piece: str) -> str:
    """A glob piece as a regular expression: ``?`` any character, the rest itself."""
    return "".join("." if c == "?" else re.escape(c) for c in piece)


@functools.lru_cache(maxsize=1024)
def _piece_regex(piece: str) -> re.Pattern[str]:
    return re.compile(_piece_pattern(piece), re.DOTALL)


def address_glob(entry: str) -> str:
    """Parser.pm's "paranoia": NUL, backslash and ``(`` of an entry match ``_``."""
    return re.sub(r"[\x00\\(]", "_", entry)


#: globs joined into one regular expression
_GLOBS_PER_REGEX = 500


def glob_regex(glob: str, *, anywhere: bool = False) -> str:
    """:func:`glob_match` of ``glob`` as a regular expression for ``re.match`` on a
    text without newlines: each piece after a star is taken where it first occurs, in
    an atomic group (``(?>.*?PIECE)``), so the expression never backtracks into a star
    and costs at most the glob's length times the text's.

    :param glob: the entry (lower case).
    :param anywhere: found anywhere in the text (a Subject entry) rather than matching
        all of it.
    """
    pieces = glob.split("*")
    if anywhere:
        return "".join(f"(?>.*?{_piece_pattern(p)})" for p in pieces if p)
    if len(pieces) == 1:
        return _piece_pattern(pieces[0]) + r"\Z"
    middle = "".join(f"(?>.*?{_piece_pattern(p)})" for p in pieces[1:-1] if p)
    return f"{_piece_pattern(pieces[0])}{middle}.*{_piece_pattern(pieces[-1])}\\Z"


class GlobSet:
    """A list's entries ready to match: exact ones in a set, ``*TEXT`` ones by their
    tail, the rest in regular expressions of :func:`glob_regex` (a few hundred each).

    :param entries: the list's entries (lower case).
    :param anywhere: Subject entries (found anywhere in a line, as written) rather than
        address entries (the whole address, Parser.pm's "paranoia" applied).
    """

    def __init__(self, entries: Iterable[str], *, anywhere: bool = False) -> None:
        self.entries = frozenset(entries)
        tails: dict[int, set[str]] = {}
        others: list[str] = []
        exact: set[str] = set()
        for entry in sorted(self.entries):
            if anywhere:
                others.append(glob_regex(entry, anywhere=True))
                continue
            g = address_glob(entry)
            tail = g.lstrip("*")
            if "*" not in g and "?" not in g:
                exact.add(g)
            elif g.startswith("*") and "*" not in tail and "?" not in tail:
                tails.setdefault(len(tail), set()).add(tail)
            else:
                others.append(glob_regex(g))
        self.exact = frozenset(exact)
        self.tails = {k: frozenset(v) for k, v in tails.items()}
        self.regexes = [re.compile("(?:" + "|".join(others[i:i + _GLOBS_PER_REGEX]) + ")")
                        for i in range(0, len(others), _GLOBS_PER_REGEX)]

    def matches(self, addr: str) -> bool:
        """Whether an address (lower case) is listed: Parser.pm's key lookup, then
        each entry's ``^glob$``."""
        if addr in self.entries:
            return True
        bare = addr[:-1] if addr.endswith("\n") else addr
        if bare in self.exact:
            return True
        if "\n" in bare:
            return False
        for size, tails in self.tails.items():
            if size <= len(bare) and bare[len(bare) - size:] in tails:
                return True
        return any(rx.match(bare) is not None for rx in self.regexes)

    def found_in(self, text: str) -> bool:
        """Whether an entry is found anywhere in ``text`` (lower case; WelcomeListSubject's
        unanchored regex, which cannot match across a newline)."""
        return any(rx.match(line) is not None for line in text.split("\n")
                   for rx in self.regexes)
