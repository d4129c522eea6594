"""Header addresses as SpamAssassin reads them: Util.pm's ``parse_header_addresses``.

PerMsgStatus's ``:addr`` and ``:name``, and every eval that asks for a header's
addresses, read them with ``Mail::SpamAssassin::Util::parse_header_addresses``: its
own parser first (``_parse_header_addresses``: the ``$header_address_re`` loop, then
a last look for ``<user@host>`` in what the loop left), else Email::Address::XS (Debian
12 installs 1.05), whose parser is Dovecot's RFC 5322 address-list reader
(``dovecot-parser.c``), when its own finds nothing or fewer addresses than the commas
suggest and Email::Address::XS finds more.  So ``Return-Path: <x@[10.0.0.1] [pi]>``
is the address ``x@[10.0.0.1]`` (Email::Address::XS stops at the junk after the
domain literal) and ``From: Pharmacy Program@example.com`` no address but a phrase.

* :func:`parse_header_addresses`: the reading, (phrase, address) pairs;
* :func:`internal_addresses`: ``_parse_header_addresses``;
* :func:`xs_addresses`: Email::Address::XS's ``parse`` as ``_parse_header_addresses_xs``
  turns it into phrases and addresses.

All read a text in time linear in its length: ``$header_address_re`` is matched by a
scanner that finds the match Perl's backtracking finds without trying each way to
close its ``<...>`` parts (exponential on ``<a>,(c)<b><b><b>...``).  Checked against
the Perl functions on every address header of the corpus and on random texts of
address punctuation: the internal parser agrees on all of them; Email::Address::XS's
reading here follows an earlier dovecot-parser.c and differs from 1.05 on some
malformed texts (a phrase cut at another place; never on a corpus header).
"""

from __future__ import annotations

import bisect
import re

from ._uris import fqdn_valid

__all__ = ["general_addresses", "internal_addresses", "parse_header_addresses",
           "xs_addresses"]

#: Perl's \s on an undecoded header (octets): ASCII white space
_WS = frozenset("\t\n\x0b\x0c\r ")
#: what an unquoted run of a phrase stops at
_PHRASE_STOP = frozenset('",;<')

#: the group reduction of _parse_header_addresses: s/^[^"()<>]+:\s*(.*?)\s*(?:;.*)?/$1/s
#: (the lazy middle matches nothing: the text after the colon and its white space is
#: kept, unless it starts with ";", which drops the rest)
_GROUP = re.compile(r'^[^"()<>]+:[\t\n\x0b\x0c\r ]*(?:;.*)?', re.DOTALL)
_GT = re.compile(">")
_GT_AT = re.compile("[>@]")
_QUOTED = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_COMMENT = re.compile(r"\((?:[^()\\]++|\\.)*+\)")
_WS_RUN = re.compile("[\t\n\x0b\x0c\r ]+")
_PHRASE_RUN = re.compile('[^",;<]+')
# $header_address_mailre's plain local part and domain, and an address literal's inside
_LOCAL_RUN = re.compile(r"[^@<>()\[\],:;\t\n\x0b\x0c\r ]+")
_DOMAIN_RUN = re.compile(r'[^"<>()\[\],:;\t\n\x0b\x0c\r ]+')
_LITERAL_RUN = re.compile(r"[0-9:.]+")
_WS_RE = re.compile("[\t\n\x0b\x0c\r ]")


def _skip_ws(s: str, i: int) -> int:
    m = _WS_RUN.match(s, i)
    return i if m is None else m.end()


def _quoted_end(s: str, i: int) -> int:
    """After ``"(?:|(?:[^"\\\\]++|\\\\.)*+)"`` starting at ``s[i] == '"'``, or -1 (the
    ``.`` after a backslash is any character but a newline)."""
    m = _QUOTED.match(s, i)
    return -1 if m is None else m.end()


def _comment_end(s: str, i: int) -> int:
    """After ``\\((?:|(?:[^()\\\\]++|\\\\.)*+)\\)`` starting at ``s[i] == '('``, or -1."""
    m = _COMMENT.match(s, i)
    return -1 if m is None else m.end()


def _tail_end(s: str, i: int) -> tuple[int, str | None]:
    """Where ``(?:\\s*\\((comment)\\))?\\s*(?:[,;]|\\z)`` at ``i`` ends (after the
    comma or semicolon, else at the end), and the comment it read; (-1, None) when it
    does not match there (the comment is tried first, as the ``?`` is greedy)."""
    n = len(s)
    j = _skip_ws(s, i)
    if j < n and s[j] == "(":
        k = _comment_end(s, j)
        if k >= 0:
            e = _skip_ws(s, k)
            if e == n:
                return n, s[j + 1:k - 1]
            if s[e] in ",;":
                return e + 1, s[j + 1:k - 1]
    if j == n:
        return n, None
    if s[j] in ",;":
        return j + 1, None
    return -1, None


def _domain_end(s: str, at: int) -> int:
    """After the domain of ``$header_address_mailre`` whose "@" is at ``at``, or -1."""
    n = len(s)
    j = at + 1
    if j < n and s[j] == "[":
        m = _LITERAL_RUN.match(s, j + 1)
        if m is None or m.end() >= n or s[m.end()] != "]":
            return -1
        return m.end() + 1
    m = _DOMAIN_RUN.match(s, j)
    return -1 if m is None else m.end()


def _mailre_ends(s: str, i: int) -> list[int]:
    """Where ``$header_address_mailre`` at ``i`` may end, in the order Perl tries them:
    with a quoted local part, then with a plain one (which may start with a double
    quote); each with the longest domain (a shorter one ends before a domain
    character, where nothing that may follow it matches)."""
    n = len(s)
    out: list[int] = []
    if i < n and s[i] == '"':
        j = _quoted_end(s, i)
        if 0 <= j < n and s[j] == "@" and (end := _domain_end(s, j)) >= 0:
            out.append(end)
    m = _LOCAL_RUN.match(s, i)
    j = i if m is None else m.end()
    if j > i and j < n and s[j] == "@" and (end := _domain_end(s, j)) >= 0 \
            and end not in out:
        out.append(end)
    return out


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
            m = _PHRASE_RUN.match(s, i)
            j = i if m is None else m.end()
        ends.append(j)
        i = j
    return ends


class _Matcher:
    """``$header_address_re`` on one header text: where it matches at a position and
    what it captures, as Perl's backtracking finds it, in linear time.

    The enclosure part ``<...>`` and the repeated enclosures after it may close at many
    a ">" (``\\S+`` may hold ">"), and Perl tries them longest first: trying each in
    turn is exponential on ``<a>,(c)<b><b><b>...``.  Whether the rest of the pattern
    matches after a ">" depends only on where that ">" is, so that is computed once
    for every ">" (from the end backwards); Perl's first choice is then the
    first closing ">" in its order after which the rest matches.
    """

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)
        self._quotes: dict[int, int] = {}
        self._spaces = [m.start() for m in _WS_RE.finditer(s)]
        # the good q (q follows a ">", and the repeated enclosures, the comment and the
        # end of the pattern match from q), found from the end backwards: _neg holds
        # them negated (ascending) for bisect
        self._neg: list[int] = []
        for m in reversed([m.end() for m in _GT.finditer(s)]):
            if _tail_end(s, m)[0] >= 0 or self._next(m) > 0:
                self._neg.append(-m)

    def run_end(self, p: int) -> int:
        """Where the run of non-spaces at ``p`` ends."""
        spaces = self._spaces
        k = bisect.bisect_left(spaces, p)
        return spaces[k] if k < len(spaces) else self.n

    def _last_good(self, lo: int, hi: int) -> int:
        """The largest good q in [lo, hi], 0 when there is none."""
        neg = self._neg
        k = bisect.bisect_left(neg, -hi)
        return -neg[k] if k < len(neg) and -neg[k] >= lo else 0

    def _quote(self, j: int) -> int:
        found = self._quotes.get(j)
        if found is None:
            found = self._quotes[j] = _quoted_end(self.s, j)
        return found

    def _starts(self, j: int) -> list[int]:
        """Where the ``\\S+`` of a repeated enclosure starting its content at ``j`` may
        start: after a quoted string (tried first), then at ``j``."""
        s, n = self.s, self.n
        out = []
        if j < n and s[j] == '"':
            qe = self._quote(j)
            if 0 <= qe < n and s[qe] not in _WS:
                out.append(qe)
        if j < n and s[j] not in _WS:
            out.append(j)
        return out

    def _next(self, q: int) -> int:
        """The first repeated enclosure after ``q`` (its end) after which the rest
        matches, in Perl's order; 0 when there is none (the good ends past ``q`` must
        be known)."""
        s, n = self.s, self.n
        r = _skip_ws(s, q)
        if r >= n or s[r] != "<":
            return 0
        j = _skip_ws(s, r + 1)
        good = self._is_good
        for start in self._starts(j):
            b = self.run_end(start)
            e = _skip_ws(s, b)
            if e < n and s[e] == ">" and good(e + 1):
                return e + 1
            # a ">" inside the run, the last one first: ends start + 2 .. b
            found = self._last_good(start + 2, b)
            if found:
                return found
        if j < n and s[j] == ">" and good(j + 1):
            return j + 1
        return 0

    def _is_good(self, q: int) -> bool:
        neg = self._neg
        k = bisect.bisect_left(neg, -q)
        return k < len(neg) and neg[k] == -q

    def angle(self, a: int) -> tuple[int, int, str | None] | None:
        """The first enclosure ``<\\s*([^>\\@]*\\S+|\\s*)\\s*>`` at ``a`` after which the
        rest matches: (end of its content, end of the whole match, comment).

        Perl's order: ``[^>@]*`` takes all up to the first ">" or "@" (k), ``\\S+``
        the run of non-spaces there, longest first (white space then ">" after the
        run, then each ">" inside it, the last first); then ``\\S+`` in the run before
        k when k is a ">" after white space; then the empty enclosure."""
        s, n = self.s, self.n
        j = _skip_ws(s, a + 1)
        m = _GT_AT.search(s, j)
        k = n if m is None else m.start()
        cands: list[tuple[int, int]] = []  # (close end, content end), in Perl's order
        if k < n:
            b = self.run_end(k)
            run_start = k
            while run_start > j and s[run_start - 1] not in _WS:
                run_start -= 1
            e = _skip_ws(s, b)
            if e < n and s[e] == ">":
                cands.append((e + 1, b))
            # of the ">" inside the run, the first in Perl's order after which the
            # rest matches is the last such one
            inside = self._last_good(max(k, run_start + 1) + 1, b)
            if inside:
                cands.append((inside, inside - 1))
            if s[k] == ">" and run_start == k:
                # \\S+ in an earlier run, white space, then this ">"
                p = k
                while p > j and s[p - 1] in _WS:
                    p -= 1
                if p > j:
                    cands.append((k + 1, p))
        if j < n and s[j] == ">":
            cands.append((j + 1, j))
        for close, content_end in cands:
            if self._is_good(close):
                q = close
                while (nxt := self._next(q)) > 0:
                    q = nxt
                end, comment = _tail_end(s, q)
                return content_end, end, comment
        return None

    def match(self, p: int) -> tuple[int, list[str | None]] | None:
        """``$header_address_re`` at ``p`` (its ``^`` there): the end of the match and
        the captures $1 to $5, or ``None``."""
        s, n = self.s, self.n
        i = _skip_ws(s, p)
        phrase = _phrase_ends(s, i) if i < n and s[i] != "<" else []
        a = _skip_ws(s, phrase[-1]) if phrase else i
        if a < n and s[a] == "<":
            found = self.angle(a)
            if found is not None:
                content_end, end, comment = found
                j = _skip_ws(s, a + 1)
                return end, [s[i:phrase[-1]] if phrase else None, s[j:content_end],
                             None, None, comment]
        for m in _mailre_ends(s, i):
            end, comment = _tail_end(s, m)
            if end >= 0:
                return end, [None, None, s[i:m], None, comment]
        if not phrase:
            phrase = _phrase_ends(s, i)
        for e in reversed(phrase):
            end, comment = _tail_end(s, e)
            if end >= 0:
                return end, [None, None, None, s[i:e], comment]
        if i > p:
            # \s* gives back one white space: a phrase of it, before what no phrase
            # may start with
            end, comment = _tail_end(s, i)
            if end >= 0 and (i == n or s[i] in _PHRASE_STOP):
                return end, [None, None, None, s[i - 1:i], comment]
        return None


def _valid_parsed_address(addr: str) -> bool:
    """Util.pm's ``_valid_parsed_address``."""
    return not addr.startswith('""@') and addr.count('"') != 1


# _parse_header_addresses' clean-ups of a phrase and an address
_PHRASE_PARTS = re.compile(r'"((?:[^"\\]|\\.)*)"|([^"]+)', re.DOTALL)
_COMMENTS = re.compile(r"\((?:[^()\\]|\\.)*\)", re.DOTALL)
_UNESCAPE_ONE = re.compile(r"\\(?!\\)")


def _first_at(address: str) -> str:
    """``s/^(([^\\@]*)\\@([^\\@]*)).*/$1/``: cut before a second "@"."""
    at = address.find("@")
    second = address.find("@", at + 1) if at >= 0 else -1
    return address if second < 0 else address[:second]
_MAILRE_HOST = re.compile(r"^[^@]*@([^@]*)")


def _mailre_whole(text: str) -> bool:
    """``$text =~ /^$header_address_mailre$/`` (``$``: also before a final newline)."""
    body = text[:-1] if text.endswith("\n") else text
    return len(body) > 0 and len(body) in _mailre_ends(body, 0)


def _host_valid(host: str) -> bool:
    """``is_fqdn_valid(idn_to_ascii($host), 1)`` for an ASCII host; a non-ASCII one is
    taken as invalid (Util.pm would convert it with libidn2 first)."""
    return host.isascii() and fqdn_valid(host.encode("ascii"))


def internal_addresses(value: str) -> list[tuple[str | None, str | None]]:
    """Util.pm's ``_parse_header_addresses``: (phrase, address) of each address its
    ``$header_address_re`` loop reads, then of each ``<user@host>`` in what it left.

    :param value: the header text, unfolded.
    :returns: the pairs (``None``: undefined), in order.
    """
    s = value.rstrip("\t\n\x0b\x0c\r ")
    if "\\\\" in s:
        s = s.replace("\\\\", "")
    if ":" in s:
        s = _GROUP.sub("", s, count=1)
    if not s.strip("\t\n\x0b\x0c\r "):
        return []
    matcher = _Matcher(s)
    out: list[tuple[str | None, str | None]] = []
    p = 0
    while p < len(s) or not out:
        found = matcher.match(p)
        if found is None:
            break
        end, (c1, c2, c3, c4, comment) = found
        p = end
        phrase = c1 if c1 is not None else c4
        address = c2 if c2 is not None else c3
        if c2 is not None:
            address = _COMMENTS.sub("", c2) if "(" in c2 else c2
            if not _mailre_whole(address):
                address = None
        if address is not None and not _valid_parsed_address(address):
            address = None
        if phrase is not None:
            parts: list[str] = []
            for m in _PHRASE_PARTS.finditer(phrase):
                if m.group(1) is not None:
                    parts.append(_UNESCAPE_ONE.sub("", m.group(1)).replace("\\\\", "\\"))
                else:
                    parts.append(_COMMENTS.sub("", m.group(2)))
            phrase = "".join(parts)
            host = _MAILRE_HOST.match(phrase)
            if (address is None and _mailre_whole(phrase) and _valid_parsed_address(phrase)
                    and host is not None and _host_valid(host.group(1))):
                address, phrase = phrase, None
            elif address is not None and phrase == address or phrase == "":
                phrase = None
        if phrase is None and comment is not None:
            phrase = comment
        if address is not None:
            address = _first_at(address)
        out.append((phrase, address))
        if end >= len(s):
            break
    rest = s[p:]
    if "@" in rest:
        # the last look: <user@host> anywhere in what the loop left
        i = rest.find("<")
        while i >= 0:
            nxt = i + 1
            for m_end in _mailre_ends(rest, i + 1):
                if m_end < len(rest) and rest[m_end] == ">":
                    address = rest[i + 1:m_end]
                    nxt = m_end + 1
                    if _valid_parsed_address(address):
                        out.append((None, _first_at(address)))
                    break
            i = rest.find("<", nxt)
    return out


# The forms most header values take, read without the general parser: a bare address,
# and one address in <> after nothing, a plain phrase or a quoted one.  What each gives is
# what the general reading gives (tests/unit/test_rules_headeraddr.py holds them equal on
# every address header of the corpus and on random values of these characters).
_SIMPLE_ADDR = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9._-]+"
_SIMPLE_BARE = re.compile(r"[ \t]*(" + _SIMPLE_ADDR + r")[ \t]*")
_SIMPLE_ANGLE = re.compile(
    r"[ \t]*(?:\"([A-Za-z0-9 .'_-]*)\"|([A-Za-z0-9.'_-]+(?: [A-Za-z0-9.'_-]+)*))?"
    r"( ?)<(" + _SIMPLE_ADDR + r")>[ \t]*")


def _simple_form(value: str) -> list[tuple[str, str]] | None:
    """The pair of a value in one of the common forms above, else ``None``."""
    m = _SIMPLE_BARE.fullmatch(value)
    if m is not None:
        return [("", m.group(1))]
    m = _SIMPLE_ANGLE.fullmatch(value)
    if m is None:
        return None
    quoted, plain, space, address = m.groups()
    phrase = quoted if quoted is not None else plain
    return [("" if phrase is None and not space else (phrase or "") + space, address)]


def parse_header_addresses(value: str) -> list[tuple[str, str]]:
    """Util.pm's ``parse_header_addresses`` with Email::Address::XS installed:
    ``_parse_header_addresses``' reading, unless it finds nothing or fewer addresses
    than the commas suggest and Email::Address::XS finds more (its ``$maybe_nested``,
    a scalar match counted ``>= 2``, is never true).

    :param value: the header text, unfolded.
    :returns: (phrase, address) of each address, "" for an undefined one.
    """
    if all(c in _WS for c in value):
        return []
    simple = _simple_form(value) if len(value) <= 998 else None
    if simple is not None:
        return simple
    return general_addresses(value)


def general_addresses(value: str) -> list[tuple[str, str]]:
    """:func:`parse_header_addresses` without the common-form shortcut: its own reading,
    else Email::Address::XS's where that finds more."""
    found = internal_addresses(value)
    if not found or len(found) < value.count(",") + 1:
        xs = xs_addresses(value)
        if len(xs) > len(found):
            return xs
    return [(phrase or "", address or "") for phrase, address in found]


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
