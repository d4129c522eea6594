"""SpamAssassin's RelayEval evals, reimplemented from ``Plugin/RelayEval.pm``.

Over the trusted and untrusted relays of the Received headers (``PreparedMessage.relay_info``):
ALL_TRUSTED, NO_RELAYS, unparseable Received lines, a HELO that is another public
address, a trail of Received headers whose names do not follow each other, and a big
webmail HELO without reverse DNS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import HEADER, IP_PRIVATE, IS_IPV4, EvalData, EvalEntry, nargs

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["RELAY_EVALS"]


def _all_trusted(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """ALL_TRUSTED: trusted relays only, none untrusted or unparseable."""
    r = msg.relay_info()
    return bool(r.n_trusted) and not r.n_untrusted and not r.n_unparseable


def _no_relays(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """NO_RELAYS: no relay at all (nor an unparseable Received line)."""
    r = msg.relay_info()
    return not (r.n_trusted or r.n_untrusted or r.n_unparseable)


def _relays_unparseable(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    return bool(msg.relay_info().n_unparseable)


_RELAY_FIELDS = re.compile(r"\[ ip=(\S*) rdns=(\S*) helo=(\S*) by=(\S*) ")


def _untrusted_relays(msg: PreparedMessage) -> list[tuple[str, str, str, str]]:
    """(ip, rdns, helo, by) of each untrusted relay, from X-Spam-Relays-Untrusted."""
    return _RELAY_FIELDS.findall(msg.relay_info().untrusted)


def _helo_ip_mismatch(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's helo_ip_mismatch (RCVD_HELO_IP_MISMATCH): an untrusted relay whose
    HELO is a public IPv4 address outside the /24 of its own public address."""
    for ip, _rdns, helo, _by in _untrusted_relays(msg):
        if not IS_IPV4.match(helo) or IP_PRIVATE.match(helo):
            continue
        prefix = re.match(r"^(\d+\.\d+\.\d+\.)", helo)
        if (IS_IPV4.match(ip) and not IP_PRIVATE.match(ip) and helo != ip
                and prefix is not None and not ip.startswith(prefix.group(1))):
            return True
    return False


def _hostname_to_domain(host: str) -> str:
    """RelayEval's hostname_to_domain: the last two labels (three for a two-letter TLD
    other than ie, fr, de), an address unchanged."""
    if not re.search(r"[a-zA-Z]", host):
        return host
    labels = host.split(".")
    if len(labels) > 1 and re.search(r"(?:\S{3,}|ie|fr|de)", labels[-1]):
        return ".".join(labels[-2:])
    if len(labels) > 2:
        return ".".join(labels[-3:])
    return host


_NAME_CHARS = re.compile(r"[\w.-]+")
_WORD = re.compile(r"\w+")


def _hostname_like(host: str) -> bool:
    """Whether RelayEval's ``^\\w+(?:[\\w.-]+\\.)+\\w+$`` matches ``host``, without its
    exponential backtracking (6.6 s for a ``by`` host of 40 dots): the last label is
    what follows the last dot, and at least two name characters, the first a word
    character, come before it."""
    if host.endswith("\n"):
        host = host[:-1]  # ($ matches before a final newline)
    dot = host.rfind(".")
    return (dot >= 2 and _WORD.match(host) is not None
            and _NAME_CHARS.fullmatch(host, 0, dot) is not None
            and _WORD.fullmatch(host, dot + 1) is not None)


def _forged_received_trail(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's check_for_forged_received_trail (__FORGED_RCVD_TRAIL): more than one
    untrusted relay whose ``by`` domain is not the reverse-DNS domain of the relay
    below it."""
    relays = _untrusted_relays(msg)
    by = [_hostname_to_domain(r[3].lower()) for r in relays]
    frm: list[str | None] = [_hostname_to_domain(r[1].lower()) for r in relays]
    mismatch = 0
    for i, (ip, _rdns, _helo, _by) in enumerate(relays):
        if not _hostname_like(by[i]):
            continue
        if re.match(r"^localhost(?:\.localdomain)?$", frm[i] or "") and ip == "127.0.0.1":
            frm[i] = None
        prev = frm[i - 1] if i > 0 else None
        if (prev is not None and _hostname_like(prev) and by[i] != prev
                and not (by[i] == "msn.com" and prev == "hotmail.com")):
            mismatch += 1
    return mismatch > 1


_DOTCOM_HELO = re.compile(r"(?:\.|^)(?:lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com"
                          r"|excite\.com|caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com"
                          r"|drizzle\.com)\Z", re.IGNORECASE)


def _no_rdns_dotcom_helo(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """RelayEval's ``check_for_no_rdns_dotcom_helo`` (NO_RDNS_DOTCOM_HELO): the last
    untrusted relay on a public address has a big-dotcom HELO (hotmail.com, aol.com,
    yahoo.com, ...) and no reverse DNS name though its MTA looks names up.  (RelayEval
    sets the flag afresh for each such relay, so only the last one counts.)"""
    for relay in reversed(msg.relay_info().untrusted_relays):
        if IP_PRIVATE.match(relay.ip):
            continue
        return (relay.looked_up and not relay.rdns
                and _DOTCOM_HELO.search(relay.helo) is not None)
    return False


RELAY_EVALS: Mapping[str, EvalEntry] = {
    "check_all_trusted": (HEADER, nargs(0), _all_trusted),
    "check_no_relays": (HEADER, nargs(0), _no_relays),
    "check_relays_unparseable": (HEADER, nargs(0), _relays_unparseable),
    "helo_ip_mismatch": (HEADER, nargs(0), _helo_ip_mismatch),
    "check_for_forged_received_trail": (HEADER, nargs(0), _forged_received_trail),
    "check_for_no_rdns_dotcom_helo": (HEADER, nargs(0), _no_rdns_dotcom_helo),
}
