"""SpamAssassin's FreeMail evals, reimplemented from ``Plugin/FreeMail.pm``.

Whether the From, a header or the Reply-To is an address at a free mail provider
(``freemail_domains``), and ``check_freemail_replyto``, which may go on to read the
addresses of the body: FreeMail's ``_parse_body``, whose side effect on the body lines
the body rules then match is reproduced by :func:`freemail_stripped_lines`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import (
    BODY,
    HEADER,
    RAWBODY_SCAN,
    EvalData,
    EvalEntry,
    addresses,
    envelope_from,
    nargs,
    perl_re,
    valid_re,
)
from ._uris import text_uris, uri_tld_alternation, valid_tlds
from ._wlbl import all_from_addrs

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["FREEMAIL_EVALS", "freemail_edits_body", "freemail_stripped_lines"]


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[-1].strip(".>").lower()


# FreeMail's default welcomelist: role and machine addresses that are never "freemail";
# its last branch, ``.+=.+=.+@``, is :func:`_equals_before_at` (as a regex it backtracks
# in the cube of the address: 9 s for a 2 KB ``x@a=a=a...``)
_FREEMAIL_WELCOME = re.compile(
    r"^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master"
    r"|undisclosed.*|request-[a-f0-9]{16}|bounced?-"
    r"|[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}))@",
    re.IGNORECASE)
# FreeMail's $skip_replyto_envfrom: bulk envelope senders (mailing lists, bounces); its
# last branch, ``.+=.+@`` searched anywhere, is :func:`_equals_before_at` too
_BULK_ENVFROM = re.compile(
    r"(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
    r"|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies))@",
    re.IGNORECASE)


def _equals_before_at(text: str, equals: int) -> bool:
    """Whether ``^.+=.+=.+@`` (``equals`` 2, matched at the start) or ``.+=.+@``
    (``equals`` 1, searched anywhere) matches ``text``, in one pass: ``.`` takes no
    newline, so a match lies in one line, and the first ``=`` past the line's first
    character and the last ``@`` of the line leave it the most room."""
    lines = text.split("\n", 1)[:1] if equals == 2 else text.split("\n")
    for line in lines:
        at = line.rfind("@")
        first = line.find("=", 1, max(at - 1, 0))
        if at < 0 or first < 0:
            continue
        if equals == 1:
            return True  # (first <= at - 2: one character between "=" and "@")
        last = line.rfind("=", first + 2, at - 1)
        if last >= 0:
            return True
    return False


def _bulk_envfrom(envfrom: str) -> bool:
    """FreeMail's ``$skip_replyto_envfrom`` test."""
    return _BULK_ENVFROM.search(envfrom) is not None or _equals_before_at(envfrom, 1)


def _welcome(addr: str) -> bool:
    """FreeMail's default welcomelist test."""
    return _FREEMAIL_WELCOME.match(addr) is not None or _equals_before_at(addr, 2)
_URL_WITH_AT = re.compile(r"<?https?://\S{0,255}(?:@|%40)\S{0,255}", re.IGNORECASE)
_URL_WITH_AT_B = re.compile(_URL_WITH_AT.pattern.encode(), re.IGNORECASE)


class _EmailPatterns:
    """FreeMail's ``email_regex`` for one set of valid top-level domains (it ends with
    RegistryBoundaries' ``valid_tlds_re``), and the patterns built on it."""

    def __init__(self, tlds: frozenset[str]) -> None:
        email = (r"(?=.{0,64}@)(?<![a-z0-9!#$%&'*+/=?^_`{|}~-])"
                 r"([a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                 r"@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}"
                 r"(?<![a-z0-9-])" + uri_tld_alternation(tlds)
                 + r"(?!(?:[a-z0-9-]|\.[a-z0-9])))")
        quoted = (r"<?(?<!mailto:)" + email
                  + r"(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)")
        self.email = re.compile(email, re.IGNORECASE)
        self.quoted = re.compile(quoted, re.IGNORECASE)
        self.quoted_octets = re.compile(quoted.encode(), re.IGNORECASE)
        self.href_mailto = re.compile(r"""<a\s[^>]*?href\s*=\s*["']?\s*mailto:""" + email,
                                      re.IGNORECASE)


@functools.lru_cache(maxsize=4)
def _email_patterns(tlds: frozenset[str] | None) -> _EmailPatterns:
    """The :class:`_EmailPatterns` of ``tlds`` (``None``: the Public Suffix List's),
    compiled once per set."""
    return _EmailPatterns(tlds or valid_tlds())


def _is_freemail(addr: str, domains: set[str]) -> bool:
    if not addr or _welcome(addr):
        return False
    dom = _domain(addr)
    if dom in domains:
        return True
    wild = _freemail_wildcards(domains)
    return wild is not None and wild.match(dom) is not None


# id of a rule set's freemail_domains -> (that set, its wildcard entries as one regex);
# the set is kept so an id is never reused for another one while cached.
_WILDCARDS: dict[int, tuple[set[str], int, re.Pattern[str] | None]] = {}


def _freemail_wildcards(domains: set[str]) -> re.Pattern[str] | None:
    cached = _WILDCARDS.get(id(domains))
    if cached is not None and cached[0] is domains and cached[1] == len(domains):
        return cached[2]
    # FreeMail: "*" stands for one label's characters ([^.]*), "?" for any one character
    wild = sorted(p for p in domains if "*" in p or "?" in p)
    rx = re.compile("(?:" + "|".join(
        re.escape(p).replace(r"\*", "[^.]*").replace(r"\?", ".") for p in wild) + r")\Z"
    ) if wild else None
    if len(_WILDCARDS) > 16:
        _WILDCARDS.clear()
    _WILDCARDS[id(domains)] = (domains, len(domains), rx)
    return rx


def _freemail_from(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    return any(_is_freemail(x.lower(), d.freemail_domains) for x in all_from_addrs(msg))


def _freemail_header(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """FreeMail's check_freemail_header(HEADER[, REGEX]): a freemail address in the
    header (EnvelopeFrom: the envelope sender) that matches REGEX when given."""
    name = a[0]
    if name.lower() == "envelopefrom":
        env = envelope_from(msg)
        addrs = [env] if env else []
    else:
        addrs = addresses(msg, name.split(":")[0])
    rx = perl_re(a[1]) if len(a) > 1 else None
    return any(_is_freemail(x, d.freemail_domains) and (rx is None or rx.search(x))
               for x in addrs)


def _body_emails(msg: PreparedMessage) -> list[str]:
    """The addresses FreeMail's ``_parse_body`` reads, in order, lower case (found once
    per message; not to be changed).  Every pattern needs an ``@``: text without one is
    not searched."""
    found = msg.body_emails
    if found is not None:
        return found
    emails: dict[str, None] = {}
    pats = _email_patterns(msg.tlds)
    parsed: set[bytes] | None = None  # the text's URIs, read at the first mailto link
    for i, part in enumerate(msg.parts):
        if part.effective_type == "text/html":
            data = msg.part_body(i)[:RAWBODY_SCAN]
            if b"@" not in data:
                continue
            html = data.decode("utf-8", "replace")
            for m in pats.href_mailto.finditer(html):
                # a link whose URI the text also gives ("mailto:" and the address the
                # link shows) is one of get_uri_detail_list's "parsed" URIs too, which
                # _parse_body skips: the text's scan decides on that address
                if html[m.end():m.end() + 1] in ("\"", "'", " ", ">", ""):
                    if parsed is None:
                        parsed = set(text_uris(msg.body, tlds=msg.tlds))
                    if b"mailto:" + m.group(1).encode("utf-8", "replace") in parsed:
                        continue
                emails[m.group(1).lower()] = None
    text = msg.view.text[:RAWBODY_SCAN]
    if "@" in text:
        text = pats.quoted.sub(" ", _URL_WITH_AT.sub(" ", text))
        for m in pats.email.finditer(text):
            emails[m.group(1).lower()] = None
            if len(emails) >= 40:
                break
    found = msg.body_emails = list(emails)
    return found


def _body_freemails(msg: PreparedMessage, d: EvalData) -> list[str] | None:
    """FreeMail's ``_parse_body``: freemail addresses of mailto links and of the text
    (not those in ``<>``, in URLs or before ``wrote:``); ``None`` past its limits
    (5 addresses, 3 freemails)."""
    free: list[str] = []
    for n, addr in enumerate(_body_emails(msg), 1):
        if n == 5:
            return None
        if _is_freemail(addr, d.freemail_domains):
            free.append(addr)
            if len(free) == 3:
                return None
    return free


def _replyto_verdict(msg: PreparedMessage, d: EvalData, what: str) -> bool | None:
    """check_freemail_replyto's answer from the headers alone; ``None``: it goes on to
    read the body (``_parse_body``)."""
    envfrom = envelope_from(msg)
    if envfrom is not None and _bulk_envfrom(envfrom):
        return False
    froms, replies = addresses(msg, "From")[:1], addresses(msg, "Reply-To")[:1]
    free = d.freemail_domains
    reply_free = any(_is_freemail(x, free) for x in replies)
    from_free = any(_is_freemail(x, free) for x in froms)
    if from_free and reply_free and not any(f in replies for f in froms):
        return True
    if what == "replyto":
        if not reply_free:
            return False
    elif replies and not reply_free:
        return False
    elif not from_free:
        return False
    return None


def _freemail_replyto(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """FreeMail's check_freemail_replyto('replyto' or 'reply'): From and Reply-To
    different freemail addresses, or a freemail Reply-To ('reply': else a freemail From
    and no Reply-To) and another freemail in the body."""
    verdict = _replyto_verdict(msg, d, a[0])
    if verdict is not None:
        return verdict
    body = _body_freemails(msg, d)
    if not body:
        return False
    replies = addresses(msg, "Reply-To")[:1]
    reply_free = any(_is_freemail(x, d.freemail_domains) for x in replies)
    compared = replies if a[0] == "replyto" or reply_free else addresses(msg, "From")[:1]
    return any(b != r for b in body for r in compared)


def freemail_edits_body(msg: PreparedMessage, d: EvalData, whats: Sequence[str]) -> bool:
    """Whether FreeMail's ``_parse_body`` runs for this message (one of the
    check_freemail_replyto forms ``whats`` a rule set runs gets past the headers).

    ``_parse_body`` strips, in place, the URLs holding an ``@`` and the addresses in
    ``<>`` or before a ``word:`` from the very body lines the body rules then match
    (its ``foreach (@$body) { s{...}{ }gi }`` aliases them), as the head evals run
    before the body rules: see :func:`freemail_stripped_lines`."""
    edits = any(_replyto_verdict(msg, d, w) is None for w in whats)
    if edits:
        _body_emails(msg)  # (it reads the text's URIs from the lines before the edit)
    return edits


def freemail_stripped_lines(lines: Sequence[bytes],
                            tlds: frozenset[str] | None = None) -> list[bytes]:
    """The body lines as FreeMail's ``_parse_body`` leaves them: each URL holding an
    ``@`` (or ``%40``) and each address in ``<>`` or followed by ``wrote:``-like text
    replaced by a space (octets, ASCII classes, as Perl matches them); an address
    ends in a top-level domain of ``tlds`` (``None``: the Public Suffix List's)."""
    quoted = _email_patterns(tlds).quoted_octets
    out = []
    for line in lines:
        if b"@" in line or b"%40" in line:
            line = quoted.sub(b" ", _URL_WITH_AT_B.sub(b" ", line))
        out.append(line)
    return out


FREEMAIL_EVALS: Mapping[str, EvalEntry] = {
    "check_freemail_from": (HEADER, nargs(0), _freemail_from),
    "check_freemail_header": (
        HEADER, lambda a: len(a) == 1 or (len(a) == 2 and valid_re(a[1])),
        _freemail_header),
    "check_freemail_replyto": (
        HEADER | BODY, lambda a: a in (("replyto",), ("reply",)),
        _freemail_replyto),
}
