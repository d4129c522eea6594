"""Domain names: normalisation and registrable domains (Public Suffix List).

The PSL comes from the maintained ``publicsuffixlist`` package, which ships the
list; nothing is fetched at run time.
"""

from __future__ import annotations

import functools
import ipaddress
import re

import idna
from publicsuffixlist import PublicSuffixList

__all__ = [
    "normalize_domain",
    "registrable_domain",
    "is_private_suffix_domain",
    "domain_of_address",
    "domain_key",
    "is_ip_literal",
]

_psl = PublicSuffixList(only_icann=False)
_psl_icann = PublicSuffixList(only_icann=True)
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


@functools.lru_cache(maxsize=65536)
def normalize_domain(name: str) -> str | None:
    """Lower-case ASCII (IDNA / punycode) form of a host name, or ``None``.

    Trailing dots are dropped; a name with an empty or over-long label, a label
    with characters DNS host names cannot carry, or more than 253 octets is
    ``None``.  IP literals are not domains and give ``None``.
    """
    name = name.strip().rstrip(".").lower()
    if not name or len(name) > 253 * 4:
        return None
    if not name.isascii():
        ascii_name = _to_ascii(name)
        if ascii_name is None:
            return None
        name = ascii_name
    if len(name) > 253:
        return None
    labels = name.split(".")
    if len(labels) < 2:
        return None
    if not all(_LABEL_RE.match(label) for label in labels):
        return None
    if is_ip_literal(name):
        return None
    return name


def _to_ascii(name: str) -> str | None:
    """The ASCII form of an internationalised host name as browsers compute it (UTS 46,
    non-transitional: ``faß.example`` is ``xn--fa-hia.example``, not IDNA 2003's
    ``fass.example``, so a link is named by the host it leads to); a name UTS 46 refuses
    but IDNA 2003 takes (some symbols) gets IDNA 2003's form; ``None`` when neither does.
    """
    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        pass
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


_QUOTED_LOCAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_ATOM_TEXT = re.compile(r"^[^\s\x00-\x1f\x7f@<>\"(),;:\\\[\]]+$")


def unquote_local(local: str) -> str:
    """The text of a quoted local part (RFC 5321 §4.1.2 Quoted-string: the quotes
    removed, quoted pairs undone); any other local part as it is."""
    quoted = _QUOTED_LOCAL.match(local)
    return _QUOTED_PAIR.sub(r"\1", quoted.group(1)) if quoted else local


def fold_extension(local: str, delimiters: str) -> str:
    """``local`` cut at the first of ``delimiters`` (Postfix's ``recipient_delimiter``,
    ``intake.recipient_delimiter``: ``an+news`` is ``an``); a local part that starts with
    a delimiter is kept whole, as Postfix keeps it."""
    cuts = [i for i in (local.find(d) for d in delimiters) if i > 0]
    return local[: min(cuts)] if cuts else local


def domain_key(name: str) -> str:
    """One spelling of a domain name for comparing it: :func:`normalize_domain`'s (a
    U-label and its A-label are one name), or, for a name that function does not read
    (``localhost``, one label), the name lower-cased without a trailing dot."""
    return normalize_domain(name) or name.strip().lower().rstrip(".")


def canonical_address(addr: str) -> str:
    """One spelling of a mailbox address for comparing it with settings and lists: angle
    brackets and case dropped, a quoted local part that needs no quotes unquoted
    (``"ceo"@x``), the domain normalised (a trailing dot dropped, IDNA), and Postfix's
    percent hack undone (``ceo%x@relay`` is ``ceo@x``, as Postfix rewrites it with
    ``allow_percent_hack``).  An address it cannot read is returned lower-cased as
    given, so it compares equal to nothing it should not."""
    a = addr.strip().strip("<>").strip()
    local, at, dom = a.rpartition("@")
    if not at:
        return a.lower()
    text = unquote_local(local)
    if text != local and _ATOM_TEXT.match(text):  # quotes that are not needed
        local = text
    if "%" in local and "@" not in local:
        local, _, dom = local.rpartition("%")
    domain = normalize_domain(dom)
    return f"{local}@{domain}".lower() if domain and local else a.lower()


def is_ip_literal(text: str) -> bool:
    """True when ``text`` is an IPv4 or IPv6 address (optionally bracketed)."""
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
        if t.lower().startswith("ipv6:"):
            t = t[5:]
    try:
        ipaddress.ip_address(t)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=65536)
def registrable_domain(name: str, *, private: bool = True) -> str | None:
    """The registrable domain ("organizational domain", RFC 7489 §3.2) of ``name``.

    :param private: honour the PSL's private section (``blogspot.com`` is a
        suffix, so ``x.blogspot.com`` is registrable).  DMARC uses the whole
        list; blocklisting uses it so a shared platform is never listed whole.
    :returns: e.g. ``example.co.uk`` for ``mail.example.co.uk``; ``None`` for
        a public suffix itself or an invalid name.
    """
    norm = normalize_domain(name)
    if norm is None:
        return None
    psl = _psl if private else _psl_icann
    result: str | None = psl.privatesuffix(norm)
    return result


def is_private_suffix_domain(name: str) -> bool:
    """True when ``name`` sits under a PSL *private* suffix (a shared platform)."""
    norm = normalize_domain(name)
    if norm is None:
        return False
    return _psl.privatesuffix(norm) != _psl_icann.privatesuffix(norm)


def domain_of_address(addr: str) -> str | None:
    """Normalised domain part of an address such as ``<user@Example.COM>``."""
    addr = addr.strip().strip("<>").strip()
    if "@" not in addr:
        return None
    return normalize_domain(addr.rsplit("@", 1)[1])
