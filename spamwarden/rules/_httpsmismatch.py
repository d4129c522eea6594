"""SpamAssassin's HTTPSMismatch eval, reimplemented from ``Plugin/HTTPSMismatch.pm``.

``check_https_http_mismatch`` (HTTPS_HTTP_MISMATCH): a link whose anchor text names an
``https://`` host of another registered domain than the link's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import BODY, EvalData, EvalEntry, base_domain, num, valid_domain
from ._htmleval import html_parts, title_text

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["HTTPS_MISMATCH_EVALS"]


_IS_IP = re.compile(r"^(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F]*:[0-9a-fA-F:.]+)$")
_HTTP_HOST = re.compile(rb"^https?://([^/:?#]+)", re.IGNORECASE)
_HTTPS_IN_TEXT = re.compile(r"https://([^\s/:?#]+)", re.IGNORECASE)


def _https_http_mismatch(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """HTTPSMismatch's ``check_https_http_mismatch(MIN, MAX)`` (HTTPS_HTTP_MISMATCH): in
    some text/html part, a link to an http(s) host (not an address) whose anchor text
    names an ``https://`` host of another registered domain, with MIN (1 when 0) to
    below MAX links holding anchor text."""
    lo = float(a[0]) if len(a) > 0 and float(a[0]) else 1.0
    hi = float(a[1]) if len(a) > 1 and a[1] != "undef" else None
    for h in html_parts(msg) if msg.uris else ():
        # the anchor texts naming an https host, first: most parts have none
        named: dict[bytes, list[str]] = {}
        for uri, texts in h.anchors.items():
            for pieces in texts:
                text = b"".join(pieces)
                if b"&" not in text and b"ttps" not in text.lower():
                    continue
                found = _HTTPS_IN_TEXT.search(title_text(text))
                if found is not None:
                    named.setdefault(uri, []).append(found.group(1))
        if not named:
            continue
        hit = False
        anchors = 0
        for uri in h.anchors:
            domain = _link_domain(uri, msg.tlds, d)
            if domain is None:
                continue
            anchors += 1
            for https in named.get(uri, ()):
                if not _IS_IP.match(https):
                    https = base_domain(https.lower(), d)
                    if not valid_domain(https, msg.tlds):
                        continue
                if https != domain:
                    hit = True
                    break
        if hit and anchors >= lo and (hi is None or anchors < hi):
            return True
    return False


def _link_domain(uri: bytes, tlds: frozenset[str] | None, d: EvalData) -> str | None:
    """The registered domain of an http(s) link's host, ``None`` for another link, an
    address or a domain under no valid top-level domain (HTTPSMismatch's ``$uri``)."""
    m = _HTTP_HOST.match(uri)
    if m is None:
        return None
    host = m.group(1).decode("utf-8", "surrogateescape")
    if _IS_IP.match(host):
        return None
    domain = base_domain(host.lower(), d)
    return domain if valid_domain(domain, tlds) else None


HTTPS_MISMATCH_EVALS: Mapping[str, EvalEntry] = {
    "check_https_http_mismatch": (
        BODY, lambda a: len(a) <= 2 and all(num(x) or x == "undef" for x in a),
        _https_http_mismatch),
}
