"""Header addresses where SpamAssassin's own parser finds none: its Email::Address::XS
fallback.

``Mail::SpamAssassin::Util::parse_header_addresses`` reads a header with its internal
parser (``_parse_header_addresses``: the ``$header_address_re`` loop, then a last look
for ``<user@host>``); when that finds nothing it asks Email::Address::XS (Debian 12
installs 1.05), whose parser is Dovecot's RFC 5322 address-list reader
(``dovecot-parser.c``), and takes that answer.  Util.pm also asks it when its own
parser finds fewer addresses than the commas suggest and keeps the longer answer:
that case is not read here (the stdlib's reading stands for it).  ``Return-Path: <x@[10.0.0.1] [pi]>``
is such a header: the internal parser reads nothing, Email::Address::XS reads the
mailbox ``x`` at the domain literal and stops at the junk after it.

Two functions, both linear in the text (a scanner, no regex that backtracks):

* :func:`internal_finds_none`: whether the internal parser gives no result at all;
* :func:`xs_addresses`: Email::Address::XS's ``parse`` as ``_parse_header_addresses_xs``
  turns it into a phrase and an address.
"""

from __future__ import annotations

import re

from ._uris import _fqdn_valid as fqdn_valid

__all__ = ["internal_finds_none", "xs_addresses"]

#: Perl's \s on an undecoded header (octets): ASCII white space
_WS = frozenset("\t\n\x0b\x0c\r ")
# $header_address_mailre's plain local part and domain: the characters they exclude
_LOCAL_STOP = frozenset('@<>()[],:;') | _WS
_DOMAIN_STOP = frozenset('"<>()[],:;') | _WS
_PHRASE_STOP = frozenset('",;<')
_DIGITS_DOTS = frozenset("0123456789:.")

#: the group reduction of _parse_header_addresses: s/^[^"()<>]+:\s*(.*?)\s*(?:;.*)?/$1/s
#: (the lazy middle matches nothing: the text after the colon and its white space is
#: kept, unless it starts with ";", which drops the rest)
_GROUP = re.compile(r'^[^"()<>]+:[\t\n\x0b\x0c\r ]*(?:;.*)?', re.DOTALL)
_TRAILING_WS = re.compile(r"[\t\n\x0b\x0c\r ]+\Z")


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _quoted_end(s: str, i: int) -> int:
    """After ``"(?:|(?:[^"\\\\]++|\\\\.)*+)"`` starting at ``s[i] == '"'``, or -1 (the
    ``.`` after a backslash is any character but a newline)."""
    n = len(s)
    i += 1
    while i < n:
        c = s[i]
        if c == '"':
            return i + 1
        if c == "\\":
            if i + 1 >= n or s[i + 1] == "\n":
                return -1
            i += 2
            continue
        i += 1
    return -1


def _comment_end(s: str, i: int) -> int:
    """After ``\\((?:|(?:[^()\\\\]++|\\\\.)*+)\\)`` starting at ``s[i] == '('``, or -1."""
    n = len(s)
    i += 1
    while i < n:
        c = s[i]
        if c == ")":
            return i + 1
        if c == "(":
            return -1
        if c == "\\":
            if i + 1 >= n or s[i + 1] == "\n":
                return -1
            i += 2
            continue
        i += 1
    return -1


def _tail_matches(s: str, i: int) -> bool:
    """Whether ``(?:\\s*\\((comment)\\))?\\s*(?:[,;]|\\z)`` matches at ``i``."""
    j = _skip_ws(s, i)
    if j < len(s) and s[j] == "(":
        k = _comment_end(s, j)
        if k >= 0:
            k = _skip_ws(s, k)
            if k == len(s) or s[k] in ",;":
                return True
    return j == len(s) or s[j] in ",;"


def _domain_end(s: str, at: int) -> int:
    """After the domain of ``$header_address_mailre`` whose "@" is at ``at``, or -1."""
    n = len(s)
    j = at + 1
    if j < n and s[j] == "[":
        k = j + 1
        while k < n and s[k] in _DIGITS_DOTS:
            k += 1
        return k + 1 if k > j + 1 and k < n and s[k] == "]" else -1
    k = j
    while k < n and s[k] not in _DOMAIN_STOP:
        k += 1
    return k if k > j else -1


def _mailre_end(s: str, i: int) -> int:
    """After the longest ``$header_address_mailre`` at ``i``, or -1 (a shorter domain
    ends before a domain character, where nothing that may follow it matches)."""
    n = len(s)
    if i < n and s[i] == '"':
        j = _quoted_end(s, i)
        if 0 <= j < n and s[j] == "@" and (end := _domain_end(s, j)) >= 0:
            return end
    # the quoted local part failed: the plain one (which may start with a double quote)
    j = i
    while j < n and s[j] not in _LOCAL_STOP:
        j += 1
    if j == i or j >= n or s[j] != "@":
        return -1
    return _domain_end(s, j)


def _phrase_ends(s: str, i: int) -> list[int]:
    """The ends of ``(?:"quoted"|[^",;<]++)+`` from ``i``: one per repetition, the
    longest last (each run of unquoted characters is taken whole)."""
    n = len(s)
    ends: list[int] = []
    while i < n:
        if s[i] == '"':
            j = _quoted_end(s, i)
            if j < 0:
                break
        elif s[i] in _PHRASE_STOP:
            break
        else:
            j = i
            while j < n and s[j] not in _PHRASE_STOP:
                j += 1
        ends.append(j)
        i = j
    return ends


class _Runs:
    """The runs of non-spaces of a text, and from where each was read for
    :func:`_angle_ends`: a ">" inside a run closes an enclosure whose ``\\S+`` starts
    before it in that run, so a run read from one start need not be read again from a
    later one (each octet read once, over all the enclosures: linear on
    ``<a><a><a>...``)."""

    def __init__(self, s: str) -> None:
        n = len(s)
        end = [n] * (n + 1)
        for p in range(n - 1, -1, -1):
            end[p] = p if s[p] in _WS else end[p + 1]
        self.end = end
        self.read_from: dict[int, int] = {}


def _angle_ends(s: str, i: int, *, first: bool, runs: _Runs) -> list[int]:
    r"""The ends of ``<\s*([^>\@]*\S+|\s*)\s*>`` (``first``) or of a repeated
    enclosure ``<\s*(?:(?:"quoted")?\S+|\s*)\s*>`` starting at ``s[i] == '<'``: each
    ``>`` that may close it, but those an earlier call gave already."""
    n = len(s)
    ends: list[int] = []
    j = _skip_ws(s, i + 1)
    if j < n and s[j] == ">":
        ends.append(j + 1)  # the empty enclosure
    starts = [j]
    if not first and j < n and s[j] == '"':
        q = _quoted_end(s, j)
        if q >= 0:
            starts.append(q)
    if first:
        # [^>@]* then \S+: \S+ starts at or before the first ">" or "@" (k), in any
        # run of non-spaces from j on
        k = j
        while k < n and s[k] not in ">@":
            k += 1
        starts = []
        a = j
        while a <= k and a < n:
            if s[a] in _WS:
                a += 1
                continue
            starts.append(a)
            a = runs.end[a]
    for start in starts:
        if start >= n or s[start] in _WS:
            continue
        # \S+ from start: a ">" inside the run closes it, else white space and ">"
        b = runs.end[start]
        before = runs.read_from.get(b)
        if before is not None and before <= start:
            continue
        runs.read_from[b] = start
        stop = b if before is None else before + 1
        m = s.find(">", start + 1, stop)
        while m >= 0:
            ends.append(m + 1)
            m = s.find(">", m + 1, stop)
        if before is None:
            e = _skip_ws(s, b)
            if e < n and s[e] == ">":
                ends.append(e + 1)
    return ends


def _first_match(s: str) -> bool:
    """Whether ``$header_address_re`` matches at the start of ``s`` (each way it may
    match tried once: the ends of each enclosure, then of the repeated ones)."""
    n = len(s)
    i = _skip_ws(s, 0)
    # name-addr: an optional phrase, "<...>", repeated enclosures, then the tail; the
    # phrase may start with white space (\s* gives it back)
    phrase = _phrase_ends(s, 0)
    lt = {i}
    if phrase:
        lt.add(_skip_ws(s, phrase[-1]))
    runs = _Runs(s)
    for p in lt:
        if p >= n or s[p] != "<":
            continue
        seen: set[int] = set()
        todo = _angle_ends(s, p, first=True, runs=runs)
        while todo:
            q = todo.pop()
            if q in seen:
                continue
            seen.add(q)
            if _tail_matches(s, q):
                return True
            r = _skip_ws(s, q)
            if r < n and s[r] == "<":
                todo.extend(_angle_ends(s, r, first=False, runs=runs))
    # a lone address, else a lone phrase
    end = _mailre_end(s, i)
    if end >= 0 and _tail_matches(s, end):
        return True
    return any(_tail_matches(s, e) for e in phrase)


def _valid_parsed_address(addr: str) -> bool:
    """Util.pm's ``_valid_parsed_address``."""
    return not addr.startswith('""@') and addr.count('"') != 1


def internal_finds_none(value: str) -> bool:
    """Whether Util.pm's ``_parse_header_addresses`` returns nothing for ``value``: its
    first ``$header_address_re`` match fails (the loop ends with no result) and no
    ``<user@host>`` its last look reads is a valid one.

    :param value: the header text, unfolded.
    :returns: ``True`` when SpamAssassin asks Email::Address::XS instead.
    """
    s = _TRAILING_WS.sub("", value).replace("\\\\", "")
    s = _GROUP.sub("", s, count=1)
    if all(c in _WS for c in s):
        return True
    if _first_match(s):
        return False
    if "@" not in s:
        return True
    i = s.find("<")
    while i >= 0:
        end = _mailre_end(s, i + 1)
        if end >= 0 and end < len(s) and s[end] == ">" and _valid_parsed_address(s[i + 1:end]):
            return False
        i = s.find("<", i + 1)
    return True


# -- Email::Address::XS (dovecot-parser.c) --------------------------------------------

def _is_atext(c: str) -> bool:
    """dovecot-parser.c's ``IS_ATEXT``: letters, digits, ``!#$%&'*+-/=?^_`{|}~``
    and every octet above 127."""
    return c.isascii() and (c.isalnum() or c in "!#$%&'*+-/=?^_`{|}~") or not c.isascii()


class _Parser:
    """dovecot-parser.c's ``rfc822_parser_context`` and
    ``message_address_parser_context``: the functions return 1 (more data), 0 (end of
    data) or -1 (invalid), and skip white space and comments after a value."""

    def __init__(self, data: str) -> None:
        self.s = data
        self.i = 0
        self.n = len(data)
        self.comment = ""
        self.name: str | None = None
        self.mailbox: str | None = None
        self.domain: str | None = None
        self.addr_comment: str | None = None
        self.route: str | None = None
        self.invalid = False
        self.out: list[tuple[str | None, str | None, str | None, str | None, bool]] = []

    def cur(self) -> str:
        return self.s[self.i] if self.i < self.n else "\0"

    def skip_comment(self) -> int:
        level = 1
        self.comment = ""
        self.i += 1
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if c == "(":
                level += 1
            elif c == ")":
                level -= 1
                if level == 0:
                    self.comment += self.s[start:self.i]
                    self.i += 1
                    return 1 if self.i != self.n else 0
            elif c == "\\":
                self.comment += self.s[start:self.i]
                start = self.i + 1
                self.i += 1
                if self.i == self.n:
                    return -1
            self.i += 1
        return -1

    def skip_lwsp(self) -> int:
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
                continue
            if c != "(":
                break
            if self.skip_comment() < 0:
                return -1
        return 1 if self.i != self.n else 0

    def dot_atom(self) -> tuple[int, str]:
        if self.i >= self.n or not _is_atext(self.s[self.i]):
            return -1, ""
        out = ""
        start = self.i
        self.i += 1
        while self.i < self.n:
            if _is_atext(self.s[self.i]):
                self.i += 1
                continue
            out += self.s[start:self.i]
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret, out
            if self.s[self.i] != ".":
                return 1, out
            self.i += 1
            out += "."
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret, out
            start = self.i
        return 0, out + self.s[start:self.i]

    def quoted_string(self) -> tuple[int, str]:
        self.i += 1
        out = ""
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if c == '"':
                out += self.s[start:self.i]
                self.i += 1
                return self.skip_lwsp(), out
            if c == "\n":
                piece = self.s[start:self.i]
                out += piece[:-1] if piece.endswith("\r") else piece
                start = self.i + 1
            elif c == "\\":
                self.i += 1
                if self.i == self.n:
                    return -1, out
                out += self.s[start:self.i - 1]
                start = self.i
            self.i += 1
        return -1, out

    def atom_or_dot(self) -> tuple[int, str]:
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if _is_atext(c) or c == ".":
                self.i += 1
                continue
            word = self.s[start:self.i]
            return self.skip_lwsp(), word
        return 0, self.s[start:self.i]

    def phrase(self) -> tuple[int, str]:
        if self.i == self.n:
            return 0, ""
        if self.s[self.i] == ".":
            return -1, ""
        out = ""
        while True:
            ret, word = self.quoted_string() if self.s[self.i] == '"' else self.atom_or_dot()
            out += word
            if ret <= 0:
                return ret, out
            c = self.s[self.i]
            if not _is_atext(c) and c not in '".':
                break
            out += " "
        return self.skip_lwsp(), out

    def domain_literal(self) -> tuple[int, str]:
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\":
                self.i += 1
                if self.i == self.n:
                    break
            elif c == "[" and self.i > start:
                # not dtext (RFC 5322 3.4.1): Email::Address::XS 1.05 stops there
                return -1, ""
            elif c == "]":
                self.i += 1
                literal = self.s[start:self.i]
                return self.skip_lwsp(), literal
            self.i += 1
        return -1, ""

    def parse_domain_text(self) -> tuple[int, str]:
        self.i += 1  # the "@"
        if self.skip_lwsp() <= 0:
            return -1, ""
        if self.s[self.i] == "[":
            return self.domain_literal()
        return self.dot_atom()

    def local_part(self) -> int:
        if self.s[self.i] == '"':
            ret, text = self.quoted_string()
        else:
            ret, text = self.dot_atom()
        if ret < 0:
            return -1
        self.mailbox = text
        return ret

    def domain_part(self) -> int:
        ret, text = self.parse_domain_text()
        if ret < 0:
            return -1
        self.domain = text
        return ret

    def domain_list(self) -> int:
        route = ""
        while True:
            if self.i == self.n:
                return 0
            if self.s[self.i] != "@":
                break
            if route:
                route += ","
            route += "@"
            ret, text = self.parse_domain_text()
            route += text
            if ret <= 0:
                return ret
            while self.skip_lwsp() > 0 and self.s[self.i] == ",":
                self.i += 1
        self.route = route
        return 1

    def angle_addr(self) -> int:
        self.i += 1  # the "<"
        ret = self.skip_lwsp()
        if ret <= 0:
            return ret
        if self.s[self.i] == "@":
            if self.domain_list() <= 0 or self.cur() != ":":
                self.route = "INVALID_ROUTE"
                return -1
            self.i += 1
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
        ret = self.local_part()
        if ret <= 0:
            return ret
        if self.s[self.i] == "@":
            ret = self.domain_part()
            if ret <= 0:
                return ret
        if self.s[self.i] != ">":
            return -1
        self.i += 1
        return self.skip_lwsp()

    def name_addr(self) -> int:
        ret, text = self.phrase()
        if ret <= 0 or self.s[self.i] != "<":
            return -1
        self.name = text or None
        self.comment = ""
        if self.angle_addr() < 0:
            self.invalid = True
        if self.comment:
            self.addr_comment = self.comment
        return 1 if self.i != self.n else 0

    def addr_spec(self) -> int:
        self.comment = ""
        ret = self.local_part() if self.i < self.n else 0
        if ret <= 0:
            self.invalid = True
        if ret != 0 and self.cur() == "@":
            ret2 = self.domain_part()
            if ret2 <= 0:
                ret = ret2
        if self.comment:
            self.addr_comment = self.comment
        return ret

    def add(self) -> None:
        self.out.append((self.name, self.mailbox, self.domain, self.addr_comment,
                         self.invalid))
        self.name = self.mailbox = self.domain = self.addr_comment = self.route = None
        self.invalid = False

    def add_fixed(self) -> None:
        if self.mailbox is None:
            self.mailbox = ""
            self.invalid = True
        if self.domain is None:
            self.domain = ""
            self.invalid = True
        self.add()

    def mailbox_(self) -> int:
        start = self.i
        ret = self.name_addr()
        if ret < 0:
            self.name = self.route = self.mailbox = self.domain = self.addr_comment = None
            self.i = start
            ret = self.addr_spec()
            if self.invalid and self.name is None and self.mailbox is not None \
                    and self.domain is None:
                self.name, self.mailbox = self.mailbox, None
        if ret < 0:
            self.invalid = True
        self.add_fixed()
        return ret

    def group(self) -> int:
        ret, text = self.phrase()
        if ret <= 0 or self.s[self.i] != ":":
            return -1
        self.i += 1
        ret = self.skip_lwsp()
        if ret <= 0:
            self.invalid = True
        # the group's start and end: marks, not addresses (parse_email_addresses
        # leaves groups out)
        self.name = self.mailbox = self.domain = self.addr_comment = self.route = None
        self.invalid = False
        if ret > 0 and self.s[self.i] != ";":
            while True:
                if self.mailbox_() <= 0:
                    ret = -1
                    break
                if self.cur() != ",":
                    break
                self.i += 1
                if self.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if self.cur() != ";":
                ret = -1
            else:
                self.i += 1
                ret = self.skip_lwsp()
        self.invalid = False
        return 0 if ret == 0 else 1

    def address(self) -> int:
        start = self.i
        ret = self.group()
        if ret < 0:
            self.i = start
            ret = self.mailbox_()
        return ret

    def address_list(self) -> None:
        while True:
            ret = self.address()
            if ret == 0:
                break
            if self.cur() != ",":
                break
            self.i += 1
            ret = self.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.add_fixed()
                break


def _compose(mailbox: str, domain: str) -> str:
    """Email::Address::XS's ``compose_address``: the mailbox quoted unless it is a
    dot-atom (atext, single dots inside), with ``"`` and ``\\`` escaped."""
    if (all(_is_atext(c) or c == "." for c in mailbox) and not mailbox.startswith(".")
            and not mailbox.endswith(".") and ".." not in mailbox):
        return f"{mailbox}@{domain}"
    quoted = "".join("\\" + c if c in '"\\' else c for c in mailbox)
    return f'"{quoted}"@{domain}'


def xs_addresses(value: str) -> list[tuple[str, str]]:
    """``(phrase, address)`` of each address Email::Address::XS's ``parse`` reads in
    ``value``, as Util.pm's ``_parse_header_addresses_xs`` keeps them: the phrase, else
    the comment, else "" (the input itself when there is no address either); the
    address "" when the mailbox or the domain is missing.

    :param value: the header text, unfolded.
    :returns: the pairs, in order.
    """
    text = value.replace("\\\\", "")
    parser = _Parser(text)
    if parser.skip_lwsp() <= 0:
        return []
    parser.address_list()
    out: list[tuple[str, str]] = []
    for name, mailbox, domain, comment, _ in parser.out:
        user = mailbox or None
        host = domain or None
        address = _compose(user, host) if user is not None and host is not None else None
        phrase = name
        if (address is None and user is None and comment is None and phrase is not None
                and _valid_parsed_address(phrase)
                and (m := _BARE.fullmatch(phrase)) is not None
                and fqdn_valid(m.group(2).encode("utf-8", "surrogateescape"))):
            # Util.pm's workaround of Email::Address::XS's bug 5201 (a quoted phrase
            # that is an address); idn_to_ascii not applied (a non-ASCII host is not
            # one here)
            address, phrase = phrase, None
        if phrase is None and comment is not None:
            phrase = comment
        if phrase is None and address is None:
            phrase = text
        out.append((phrase or "", address or ""))
    return out


_BARE = re.compile(r"([^\s@]+)@([^\s@]+)")
