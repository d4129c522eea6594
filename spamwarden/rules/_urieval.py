"""SpamAssassin's URIEval eval, reimplemented from ``Plugin/URIEval.pm``.

``check_uri_truncated`` (URI_TRUNCATED): a URI longer than SpamAssassin keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import BODY, HEADER, EvalData, EvalEntry, nargs
from ._uris import MAX_URI_LENGTH, _canonical_forms, _tag_attrs, valid_tlds

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["URI_EVALS"]


def _uri_truncated(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """URIEval's ``check_uri_truncated`` (URI_TRUNCATED): a URI of the HTML parts, or a
    form of one the URI list adds, was longer than 8192 octets (SpamAssassin keeps its
    first 8192).  Only a URI kept at exactly 8192 octets can be one: then the links
    are read again to tell."""
    if not msg.html_links or max(map(len, msg.uris), default=0) < MAX_URI_LENGTH:
        return False
    for tags in msg.html_links:
        for _name, rest in tags:
            if len(rest) < MAX_URI_LENGTH - 16:
                continue
            for value in _tag_attrs(rest.encode("utf-8", "surrogateescape")).values():
                value = value.strip(b" \t\n\r\f\x0b\xa0")
                if len(value) > MAX_URI_LENGTH:
                    return True
                if len(value) > MAX_URI_LENGTH - 64 and any(
                        len(u) > MAX_URI_LENGTH
                        for forms in _canonical_forms(value, msg.tlds or valid_tlds())
                        for u in forms):
                    return True
    return False


URI_EVALS: Mapping[str, EvalEntry] = {
    "check_uri_truncated": (BODY | HEADER | frozenset({"uri"}), nargs(0), _uri_truncated),
}
