"""MIME boundary lines matched without compiling a regular expression per message.

The standard library's MIME parser (``email.feedparser``) compiles a new regular expression
for every multipart boundary it meets::

    (?P<sep>--BOUNDARY)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$

Boundaries are random per message, so ``re``'s cache never helps, and compiling that
pattern costs about a millisecond of CPU: more than the rest of parsing the message.
Nearly all mail with HTML is multipart.

:func:`install` gives ``email.feedparser`` a stand-in for the ``re`` module that
recognises exactly this pattern and returns :class:`BoundaryMatcher`, which answers
``match(line)`` as the compiled pattern would (the groups feedparser reads included),
from string operations.  Every other pattern goes to ``re.compile`` unchanged.

:func:`cut_delimiters` bounds how many parts feedparser builds: it cuts a message
before its :data:`MAX_DELIMITERS` + 1-th boundary delimiter line.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DELIMITERS", "MAX_NESTING", "NESTED_TOO_DEEP", "TOO_MANY_PARTS", "BoundaryMatcher",
           "cut_delimiters", "cut_why", "install"]

#: boundary delimiter lines given to the email package's MIME parser at most
MAX_DELIMITERS = 5_000
#: lines starting with "--" given to it at most, whatever they are
MAX_DASH_LINES = 100_000
#: multiparts open inside one another given to it at most: it checks every line
#: against every open boundary, so a 1 MB part 99 levels deep (Postfix's
#: mime_nesting_limit is 100) cost 3.8 s of CPU against 0.19 s flat
MAX_NESTING = 20
# a boundary declared in a Content-Type, as long as Postfix passes one
# (mime_boundary_length_limit); the RFC 2231 form is caught by MAX_DASH_LINES
_DECLARED = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,2048})"|([^\s;"]{1,2048}))""",
                       re.IGNORECASE)
# and in RFC 2231's forms (boundary*=charset'lang'value, boundary*0=first-piece): the
# delimiter lines of such a boundary start with what is read here
_DECLARED_2231 = re.compile(
    rb"""boundary\*(?:0\*?)?\s*=\s*(?:"([^"\r\n]{1,2048})"|([^\s;"]{1,2048}))""",
    re.IGNORECASE)
#: RFC 2231 boundaries read at most (each is a prefix every delimiter line is tried with)
_MAX_PREFIXES = 100

_HEAD = "(?P<sep>"
_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
# what may follow the separator's optional "--" and blanks, and the line end it means:
# the pattern's optional line end, then "$" (the end, or just before a last "\n")
_LINE_ENDS = {"": None, "\n": "\n", "\r": "\r", "\r\n": "\r\n", "\n\n": "\n", "\r\n\n": "\r\n"}


class BoundaryMatch:
    """What feedparser reads of a match: its groups, by name."""

    __slots__ = ("_groups",)

    def __init__(self, sep: str, end: str | None, ws: str, linesep: str | None) -> None:
        self._groups = {"sep": sep, "end": end, "ws": ws, "linesep": linesep}

    def group(self, name: str) -> str | None:
        return self._groups[name]


class BoundaryMatcher:
    """``re.compile(pattern).match`` for feedparser's boundary pattern of ``separator``."""

    __slots__ = ("pattern", "separator")

    def __init__(self, separator: str, pattern: str) -> None:
        self.separator = separator
        self.pattern = pattern

    def match(self, line: str) -> BoundaryMatch | None:
        sep = self.separator
        if not line.startswith(sep):
            return None
        i = len(sep)
        end = None
        if line.startswith("--", i):
            end, i = "--", i + 2
        j = i
        while j < len(line) and line[j] in " \t":
            j += 1
        rest = line[j:]
        if rest not in _LINE_ENDS:
            return None  # without the "--" the rest would start with "-": no match either
        return BoundaryMatch(sep, end, line[i:j], _LINE_ENDS[rest])


class _FeedparserRe:
    """The ``re`` module as ``email.feedparser`` sees it once :func:`install` ran."""

    escape = staticmethod(re.escape)

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        if (flags == 0 and isinstance(pattern, str) and pattern.startswith(_HEAD)
                and pattern.endswith(_TAIL)):
            escaped = pattern[len(_HEAD):-len(_TAIL)]
            separator = _UNESCAPE.sub(r"\1", escaped)
            if re.escape(separator) == escaped:  # exactly feedparser's pattern
                return BoundaryMatcher(separator, pattern)
        return re.compile(pattern, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


def install() -> bool:
    """Give ``email.feedparser`` the boundary matcher; ``False`` when its source does not
    build boundaries the expected way (nothing is changed then)."""
    import inspect
    from email import feedparser

    if isinstance(getattr(feedparser, "re", None), _FeedparserRe):
        return True
    try:
        source = inspect.getsource(getattr(feedparser.FeedParser, "_parsegen"))  # noqa: B009 - private, untyped
    except (OSError, TypeError):
        return False
    if "'(?P<sep>' + re.escape(separator) +" not in source or _TAIL not in source:
        return False
    setattr(feedparser, "re", _FeedparserRe())  # noqa: B010 - not in the module's stubs
    return True


#: :func:`cut_why`'s reasons
TOO_MANY_PARTS = "MIME parts over limit"
NESTED_TOO_DEEP = f"MIME multiparts nested over {MAX_NESTING} deep"


def cut_delimiters(data: bytes, limit: int = MAX_DELIMITERS,
                   nesting: int = MAX_NESTING) -> bytes:
    """:func:`cut_why`'s data."""
    return cut_why(data, limit, nesting)[0]


def cut_why(data: bytes, limit: int = MAX_DELIMITERS,
            nesting: int = MAX_NESTING) -> tuple[bytes, str]:
    """``data`` cut before its ``limit`` + 1-th boundary delimiter line, or before the
    first delimiter line of a multipart nested ``nesting`` + 1 deep: what the email
    package is given to parse.

    The email package builds every part of a message before anything bounds how many
    are read: ten megabytes of empty parts (``--b`` lines) took it 11 s and 580 MB, and
    the rules' parse as much again. Both readers stop long before ``limit`` parts
    (:class:`~spamwarden.mail.ParseLimits`' ``max_parts``, the rules' 1,000 leaves), so
    a message is cut only where no reader would look. It also checks every line against
    every boundary open around it (:data:`MAX_NESTING`). A delimiter line is ``--``, a
    boundary some Content-Type in ``data`` declares, perhaps ``--``, then white space;
    other lines starting with ``--`` (signatures, SQL comments) are text and not
    counted, up to :data:`MAX_DASH_LINES` of them.

    :returns: the data and why it was cut (:data:`TOO_MANY_PARTS`,
        :data:`NESTED_TOO_DEEP`): ``(data, "")`` itself when it has no more delimiter lines
        than ``limit`` and no multipart deeper than ``nesting``.
    """
    lines = data.count(b"\n--") + 1  # (every such line but a first one follows a newline)
    if lines <= limit and lines <= nesting:
        return data, ""
    declared = {m.group(1) or m.group(2) for m in _DECLARED.finditer(data)}
    prefixes: list[bytes] = []
    for m in _DECLARED_2231.finditer(data):
        value = m.group(1) or m.group(2)
        if value.count(b"'") >= 2:  # charset'language'value
            value = value.split(b"'", 2)[2]
        value = value.split(b"%", 1)[0]  # (what percent-encoding leaves as it is)
        if value and value not in prefixes and len(prefixes) < _MAX_PREFIXES:
            prefixes.append(value)

    def boundary(token: bytes) -> bool:
        return token in declared or any(token.startswith(p) for p in prefixes)

    found = dashes = 0
    open_: list[bytes] = []  # the boundaries open around this line, outermost first
    at = 0 if data.startswith(b"--") else data.find(b"\n--")
    while at >= 0:
        start = at if data.startswith(b"--", at) else at + 1
        end = data.find(b"\n", start)
        line = data[start + 2:len(data) if end < 0 else end].rstrip(b" \t\r")
        dashes += 1
        closing = line.endswith(b"--") and boundary(line[:-2])
        token = line[:-2] if closing else line
        if closing or boundary(line):
            found += 1
            if token in open_:  # a part of an open multipart: the ones inside it ended
                del open_[open_.index(token) + (0 if closing else 1):]
            elif not closing:
                open_.append(token)
                if len(open_) > nesting:
                    return data[:start], NESTED_TOO_DEEP
        if found > limit or dashes > MAX_DASH_LINES:
            return data[:start], TOO_MANY_PARTS
        at = data.find(b"\n--", start + 2)
    return data, ""
