"""Perl regular expressions, as SpamAssassin rules write them, translated to Python ``re``.

SpamAssassin matches rules against octets, so every pattern here is a ``bytes`` pattern:
``\\w``, ``\\d`` and ``\\s`` keep their ASCII meaning, and ``\\xNN`` escapes match single
octets as they do in Perl.  What cannot be translated faithfully raises
:class:`UntranslatableRegex` with a short reason; the rule is then skipped, never guessed.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

__all__ = ["PerlRegex", "UntranslatableRegex", "split_perl_regex", "translate"]

_OPENERS = {"{": "}", "(": ")", "[": "]", "<": ">"}
_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}|\{,\d+\}")

_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "word": "a-zA-Z0-9_", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
}

# Escapes Python's ``re`` has no meaning for, or a different one.
_UNSUPPORTED_ESCAPES = {
    "G": "\\G anchor", "K": "\\K keep", "Q": "\\Q quoting", "E": "\\E quoting",
    "p": "\\p property", "P": "\\P property", "X": "\\X cluster", "R": "\\R linebreak",
    "N": "\\N", "C": "\\C octet", "g": "\\g reference", "l": "\\l case", "u": "\\u case",
    "L": "\\L case", "U": "\\U case", "H": "\\H", "V": "\\V",
}


class UntranslatableRegex(ValueError):
    """A Perl regex that this translator cannot express in Python ``re``; ``args[0]`` says why."""


@dataclass(frozen=True, slots=True)
class PerlRegex:
    """A translated pattern: ``source`` for ``re`` and Hyperscan, flags as booleans."""

    source: bytes
    ignorecase: bool
    multiline: bool
    dotall: bool

    def compile(self) -> re.Pattern[bytes]:
        """The compiled Python pattern.

        :raises UntranslatableRegex: Python's ``re`` rejects the translated source.
        """
        flags = (re.IGNORECASE if self.ignorecase else 0) | (re.MULTILINE if self.multiline else 0)
        flags |= re.DOTALL if self.dotall else 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return re.compile(self.source, flags)
        except (re.error, OverflowError, RecursionError) as exc:
            raise UntranslatableRegex(f"re: {exc}") from exc


def split_perl_regex(text: str) -> tuple[str, str, str]:
    """Split ``/pat/flags`` or ``m{pat}flags`` into (pattern, flags, rest after the flags).

    :param text: the regex as written in the rule, possibly followed by more text (a
        header rule's ``[if-unset: ...]``).
    :returns: the pattern between the delimiters, the flag letters and the rest.
    :raises UntranslatableRegex: no delimited regex at the start of ``text``.
    """
    text = text.strip()
    if text.startswith("/"):
        opener = "/"
        start = 1
    elif len(text) > 1 and text[0] == "m" and not text[1].isalnum() and not text[1].isspace():
        opener = text[1]
        start = 2
    else:
        raise UntranslatableRegex("not a /regex/")
    closer = _OPENERS.get(opener, opener)
    # the first closer not escaped and, for a bracket pair, not closing a nested opener
    # (an opener that is its own closer never nests: the closer test comes first)
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == closer:
            if depth == 0:
                break
            depth -= 1
        elif c == opener:
            depth += 1
        i += 1
    else:
        raise UntranslatableRegex("unterminated regex")
    end = i
    pat = text[start:end]
    m = re.match(r"[a-zA-Z]*", text[end + 1:])
    flags = m.group(0) if m else ""
    rest = text[end + 1 + len(flags):]
    if opener != "/" and closer == opener:
        pat = pat.replace("\\" + opener, opener) if not opener.isalnum() else pat
    return pat, flags, rest


def translate(pattern: str, flags: str = "") -> PerlRegex:
    """Translate one Perl pattern with its flag letters.

    :param pattern: the text between the delimiters.
    :param flags: Perl flag letters; ``i m s x`` are honoured, ``g o`` ignored.
    :returns: the translated pattern; its ``compile()`` may still reject it.
    :raises UntranslatableRegex: a construct Python cannot express.
    """
    for f in flags:
        if f not in "imsxgoa":
            raise UntranslatableRegex(f"flag /{f}")
    extended = "x" in flags
    out = _Translator(pattern, extended).run()
    try:
        source = out.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UntranslatableRegex("character above \\xff") from exc
    return PerlRegex(source, "i" in flags, "m" in flags, "s" in flags)


def _inline_flags(m: re.Match[str], construct: str) -> tuple[str, str]:
    """The flags an inline ``(?on-off)`` or ``(?on-off:`` turns on and off (a ``^`` at
    the start dropped), ``m`` its match (group 1 on, group 2 off).

    :param construct: how a message names the construct with ``x`` in it.
    :raises UntranslatableRegex: ``x`` (it would change how the rest is read) or a flag
        other than ``i``, ``m`` and ``s``.
    """
    on, off = m.group(1).lstrip("^"), m.group(2) or ""
    if "x" in on or "x" in off:
        raise UntranslatableRegex(f"inline {construct}")
    bad = set(on + off) - set("ims")
    if bad:
        raise UntranslatableRegex(f"inline flag {''.join(sorted(bad))}")
    return on, off


class _Translator:
    def __init__(self, pattern: str, extended: bool) -> None:
        self.p = pattern
        self.x = extended
        self.i = 0
        self.out: list[str] = []
        # one entry per open group: the index in ``out`` of the open ``(?flags:`` we
        # inserted for a mid-pattern ``(?i)``, which must close with the group.
        self.scoped: list[int] = [0]

    def run(self) -> str:
        p = self.p
        n = len(p)
        while self.i < n:
            c = p[self.i]
            if c == "\\":
                self._escape(in_class=False)
            elif c == "[":
                self._char_class()
            elif c == "(":
                self._group_open()
            elif c == ")":
                if len(self.scoped) <= 1:
                    raise UntranslatableRegex("unbalanced )")
                self.out.append(")" * self.scoped.pop() + ")")
                self.i += 1
            elif c == "$" and self.i + 1 < n and (p[self.i + 1].isalpha() or p[self.i + 1] in "{_"):
                raise UntranslatableRegex("variable interpolation")
            elif c == "@" and self.i + 1 < n and (p[self.i + 1].isalpha() or p[self.i + 1] == "{"):
                # Perl would interpolate an array; SpamAssassin's rules mean the character.
                self.out.append("@")
                self.i += 1
            elif self.x and c.isspace():
                self.i += 1
            elif self.x and c == "#":
                j = p.find("\n", self.i)
                self.i = n if j < 0 else j + 1
            elif c == "{":
                m = _QUANTIFIER.match(p, self.i)
                if m:
                    q = m.group(0)
                    self.out.append("{0" + q[1:] if q.startswith("{,") else q)
                    self.i = m.end()
                else:
                    self.out.append("\\{")
                    self.i += 1
            elif c == "}":
                self.out.append("\\}")
                self.i += 1
            else:
                self.out.append(c)
                self.i += 1
        if len(self.scoped) != 1:
            raise UntranslatableRegex("unbalanced (")
        self.out.append(")" * self.scoped[0])
        return "".join(self.out)

    def _group_open(self) -> None:
        p = self.p
        rest = p[self.i:]
        if rest.startswith("(?#"):
            j = p.find(")", self.i)
            if j < 0:
                raise UntranslatableRegex("unterminated comment")
            self.i = j + 1
            return
        if rest.startswith(("(?{", "(??{", "(?(", "(?|", "(?&", "(?R", "(?P>", "(?+", "(*")) or re.match(
            r"\(\?-?\d", rest
        ):
            raise UntranslatableRegex(f"construct {rest[:4]}")
        m = re.match(r"\(\?<([A-Za-z_]\w*)>", rest) or re.match(r"\(\?'([A-Za-z_]\w*)'", rest)
        if m:
            self.out.append(f"(?P<{m.group(1)}>")
            self.i += len(m.group(0))
            self.scoped.append(0)
            return
        m = re.match(r"\(\?([a-zA-Z^]*)(?:-([a-zA-Z]*))?\)", rest)
        if m:  # inline flags (?i) / (?-i) / (?^i)
            on, off = _inline_flags(m, "(?x)")
            # Python only allows global flags at the very start; elsewhere scope them to
            # the rest of the enclosing group, which is what Perl means.
            spec = on + ("-" + off if off else "")
            if spec:
                self.out.append(f"(?{spec}:")
                self.scoped[-1] += 1
            self.i += len(m.group(0))
            return
        m = re.match(r"\(\?([a-zA-Z^]*)(?:-([a-zA-Z]*))?:", rest)
        if m and (m.group(1) or m.group(2)):
            on, off = _inline_flags(m, "(?x:)")
            self.out.append(f"(?{on}{'-' + off if off else ''}:")
            self.i += len(m.group(0))
            self.scoped.append(0)
            return
        for prefix in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
            if rest.startswith(prefix):
                self.out.append(prefix)
                self.i += len(prefix)
                self.scoped.append(0)
                return
        if rest.startswith("(?"):
            raise UntranslatableRegex(f"construct {rest[:4]}")
        self.out.append("(")
        self.i += 1
        self.scoped.append(0)

    def _escape(self, *, in_class: bool) -> None:
        p = self.p
        if self.i + 1 >= len(p):
            raise UntranslatableRegex("trailing backslash")
        c = p[self.i + 1]
        self.i += 2
        if c in _UNSUPPORTED_ESCAPES:
            raise UntranslatableRegex(_UNSUPPORTED_ESCAPES[c])
        if c == "z":
            self.out.append("\\Z")
        elif c == "Z":
            self.out.append("(?=\\n?\\Z)")
        elif c == "h":
            self.out.append("[ \\t]" if not in_class else " \\t")
        elif c == "e":
            self.out.append("\\x1b")
        elif c == "c":
            if self.i >= len(p):
                raise UntranslatableRegex("\\c at end")
            self.out.append(f"\\x{ord(p[self.i].upper()) ^ 64:02x}")
            self.i += 1
        elif c == "x":
            if p[self.i:self.i + 1] == "{":
                j = p.find("}", self.i)
                if j < 0:
                    raise UntranslatableRegex("bad \\x{}")
                try:
                    v = int(p[self.i + 1:j] or "0", 16)
                except ValueError as exc:
                    raise UntranslatableRegex("bad \\x{}") from exc
                self.i = j + 1
            else:
                m = re.match(r"[0-9a-fA-F]{0,2}", p[self.i:])
                digits = m.group(0) if m else ""
                v = int(digits, 16) if digits else 0
                self.i += len(digits)
            if v > 0xFF:
                raise UntranslatableRegex("character above \\xff")
            self.out.append(f"\\x{v:02x}")
        elif c == "o" and p[self.i:self.i + 1] == "{":
            raise UntranslatableRegex("\\o{}")
        elif c == "k":
            m = re.match(r"<(\w+)>|\{(\w+)\}|'(\w+)'", p[self.i:])
            if m is None:
                raise UntranslatableRegex("bad \\k")
            self.out.append(f"(?P={m.group(1) or m.group(2) or m.group(3)})")
            self.i += len(m.group(0))
        elif c == "b" and p[self.i:self.i + 1] == "{":
            raise UntranslatableRegex("\\b{} boundary")
        elif c.isdigit():
            if c == "0" or in_class:
                m = re.match(r"[0-7]{0,2}", p[self.i:])
                digits = c + (m.group(0) if m else "")
            else:
                m = re.match(r"\d*", p[self.i:])
                digits = c + (m.group(0) if m else "")
            self.i += len(digits) - 1
            if c == "0" or in_class or len(digits) > 1:
                # octal: \0, \012, any in a class; Perl reads \10+ as octal unless that
                # many groups exist, which no SpamAssassin rule relies on.
                try:
                    v = int(digits, 8)
                except ValueError as exc:
                    raise UntranslatableRegex("bad octal escape") from exc
                if v > 0xFF:
                    raise UntranslatableRegex("character above \\xff")
                self.out.append(f"\\x{v:02x}")
            else:
                self.out.append("\\" + digits)
        elif c.isalnum():
            if c in "dDwWsSbBAntrfav":
                if c == "b" and in_class:
                    self.out.append("\\x08")
                elif c == "B" and in_class:
                    raise UntranslatableRegex("\\B in class")
                elif c == "A" and in_class:
                    raise UntranslatableRegex("\\A in class")
                else:
                    self.out.append("\\" + c)
            else:
                raise UntranslatableRegex(f"escape \\{c}")
        else:
            self.out.append(re.escape(c) if c != " " else "\\ ")

    def _char_class(self) -> None:
        p = self.p
        n = len(p)
        self.out.append("[")
        self.i += 1
        if p[self.i:self.i + 1] == "^":
            self.out.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= n:
                raise UntranslatableRegex("unterminated character class")
            c = p[self.i]
            if c == "]" and not first:
                self.out.append("]")
                self.i += 1
                return
            first = False
            if c == "\\":
                self._escape(in_class=True)
            elif c == "[":
                m = re.match(r"\[:(\^?)([a-z]+):\]", p[self.i:])
                if m:
                    if m.group(1) or m.group(2) not in _POSIX:
                        raise UntranslatableRegex(f"POSIX class {m.group(0)}")
                    self.out.append(_POSIX[m.group(2)])
                    self.i += len(m.group(0))
                else:
                    self.out.append("\\[")
                    self.i += 1
            elif c == "]":  # a leading ] is literal
                self.out.append("\\]")
                self.i += 1
            elif c in "&~|":
                self.out.append("\\" + c)
                self.i += 1
            elif c == "-" and p[self.i + 1:self.i + 2] == "-":
                self.out.append("\\-")
                self.i += 1
            else:
                self.out.append(c)
                self.i += 1
