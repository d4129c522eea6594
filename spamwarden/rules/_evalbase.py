"""What the eval modules share: the settings evals read, the form of an eval and its entry.

Each SpamAssassin plugin's evals live in a module of their own (``_headereval``,
``_mimeeval``, ...), each with a table of its evals (name -> rule kinds, a check of the
arguments, the function) that ``_evals`` makes into its registry.  What several of them
read the same way is here: PerMsgStatus's addresses (``get('NAME:addr')``, EnvelopeFrom),
RegistryBoundaries' registered domain and Util.pm's valid domain, Constants.pm's IP
address patterns, and the argument checks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..mail import registrable_domain
from ._auth import AuthLists
from ._prepare import header_with_modifiers
from ._uris import _domain_valid, trim_domain
from ._wlbllists import WlblLists

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["ANY_KIND", "BODY", "HEADER", "IP_ADDRESS", "IP_PRIVATE", "IS_IPV4", "RAWBODY_OR_BODY",
           "RAWBODY_SCAN", "EvalData", "EvalEntry", "EvalFn", "addresses", "base_domain",
           "envelope_from", "header_addr", "nargs", "num", "perl_re", "valid_domain", "valid_re"]


class EvalData(Protocol):
    """The settings evals read: freemail domains and the ``enlist_*`` lists."""

    freemail_domains: set[str]
    addrlists: dict[str, list[str]]
    uri_hosts: dict[str, list[str]]
    wlbl: WlblLists
    auth_lists: AuthLists
    #: Conf.pm's ``ok_locales`` ("all": every charset is fine)
    ok_locales: str
    #: ``util_rb_2tld`` / ``util_rb_3tld`` (``None``: no line; the Public Suffix List)
    two_level_domains: set[str] | None
    three_level_domains: set[str] | None


EvalFn = Callable[["PreparedMessage", EvalData, Sequence[str]], bool]
#: an eval as a plugin module lists it: (rule kinds, a check of its arguments, the function)
EvalEntry = tuple[frozenset[str], Callable[[Sequence[str]], bool], EvalFn]


def valid_re(text: str) -> bool:
    """Whether ``text`` compiles as a pattern (an eval argument checked when read)."""
    try:
        perl_re(text)
    except re.error:
        return False
    return True


def num(s: str) -> bool:
    """Whether an eval argument reads as a number."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def addresses(msg: PreparedMessage, header: str) -> list[str]:
    """The addresses of a header (its ``@`` ones, lower case), found once per message."""
    found = msg.addresses.get(header)
    if found is None:
        value = msg.header_text(header)
        found = [a.lower() for _, a in msg.address_pairs(value) if "@" in a] if value else []
        msg.addresses[header] = found
    return found


#: octets of text FreeMail reads for addresses (and HTMLEval for the tags present)
RAWBODY_SCAN = 500_000


@functools.lru_cache(maxsize=64)
def perl_re(text: str) -> re.Pattern[str]:
    """An eval argument's pattern, compiled once."""
    return re.compile(text)


def envelope_from(msg: PreparedMessage) -> str | None:
    """SpamAssassin's EnvelopeFrom address, lower case (``None``: unknown or empty)."""
    found = addresses(msg, "EnvelopeFrom")
    return found[0] if found else None


def header_addr(msg: PreparedMessage, name: str) -> str:
    """``get('NAME:addr')``: the first address of a header, '' when there is none."""
    return header_with_modifiers(msg, name, raw=False, addr=True, display=False) or ""


def valid_domain(name: str, tlds: frozenset[str] | None) -> bool:
    """Util.pm's ``is_domain_valid``: a name with a dot, no white space, under one of
    ``tlds`` (``None``: the Public Suffix List's)."""
    return _domain_valid(name.encode("utf-8", "surrogateescape"), tlds)


def base_domain(name: str, d: EvalData) -> str:
    """RegistryBoundaries' split_domain: the registered domain of a host name, by the
    rule files' ``util_rb_2tld``/``util_rb_3tld`` lines (without any: by the Public
    Suffix List)."""
    if d.two_level_domains is not None or d.three_level_domains is not None:
        return trim_domain(name, d.two_level_domains or set(), d.three_level_domains or set())
    return registrable_domain(name, private=False) or name


_IPV4_OCTET = r"(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)"
_IPV4 = r"\b" + r"\.".join([_IPV4_OCTET] * 4) + r"\b"
#: Constants.pm's IP_ADDRESS, reduced: an IPv4 address or an IPv6-looking run
IP_ADDRESS = r"(?:\b(?<!:)" + r"\.".join([_IPV4_OCTET] * 4) + r"\b" \
    + r"|(?<![a-f0-9:])(?:[a-f0-9]{1,4}:){1,7}[a-f0-9:.]*[a-f0-9])"
IS_IPV4 = re.compile(r"^" + _IPV4 + r"$")
IP_PRIVATE = re.compile(
    r"^(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168"
    r"|100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\..*$")


def nargs(n: int, *, numeric: bool = False) -> Callable[[Sequence[str]], bool]:
    """An argument check: ``n`` arguments, each a number or ``undef`` when ``numeric``."""
    def check(a: Sequence[str]) -> bool:
        return len(a) == n and (not numeric or all(num(x) or x == "undef" for x in a))
    return check


#: the rule kinds an eval may appear in
HEADER = frozenset({"header"})
#: every kind: an eval whose "type does not matter" (WLBLEval's and VBounce's list checks)
ANY_KIND = frozenset({"header", "body", "rawbody", "uri", "full"})
BODY = frozenset({"body"})
RAWBODY_OR_BODY = frozenset({"rawbody", "body"})
