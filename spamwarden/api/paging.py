"""Cursor paging of the operator's list routes (``GET /v1/listings``,
``GET /v1/delist-requests``, ``GET /v1/delisting-requests``).

A page answers at most ``limit`` records (default :data:`DEFAULT_LIMIT`, at most
:data:`MAX_LIMIT`) and the cursor of the next page, ``None`` after the last. A cursor
is opaque to clients: the position of the last record of the page in the list's
order (a listing key; a request's index score and id), encoded so that any text a
client sends back is either a position or refused with ``400``. Positions, not
offsets: a record added or removed between two pages shifts nothing, so a record that
stays is answered exactly once.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping

from ._http import BadRequest, Message

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_CURSOR", "page_limit", "key_cursor",
           "parse_key_cursor", "request_cursor", "parse_request_cursor"]

#: records per page when the client names no limit
DEFAULT_LIMIT = 1000
#: records per page at most
MAX_LIMIT = 10_000
#: characters of a cursor at most (a listing key is at most 300)
MAX_CURSOR = 600

_REQUEST_ID = re.compile(r"[0-9a-f]{1,64}\Z")


def page_limit(query: Mapping[str, str], *, default: int = DEFAULT_LIMIT,
               maximum: int = MAX_LIMIT) -> int:
    """The ``limit`` query parameter.

    :param query: the request's query parameters.
    :returns: ``default`` when absent or empty, else the number.
    :raises BadRequest: not a whole number from 1 to ``maximum``.
    """
    raw = query.get("limit", "")
    if raw == "":
        return default
    try:
        n = int(raw)
    except ValueError as exc:
        raise BadRequest(Message("api.page_limit", {"max": maximum})) from exc
    if not 1 <= n <= maximum:
        raise BadRequest(Message("api.page_limit", {"max": maximum}))
    return n


def _encode(prefix: str, text: str) -> str:
    return prefix + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def _decode(prefix: str, raw: str) -> str:
    if len(raw) > MAX_CURSOR or not raw.startswith(prefix):
        raise BadRequest(Message("api.page_cursor"))
    body = raw[len(prefix):]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(Message("api.page_cursor")) from exc


def key_cursor(key: str) -> str:
    """The cursor after the listing ``key``."""
    return _encode("k.", key)


def parse_key_cursor(query: Mapping[str, str]) -> str | None:
    """The listing key of the ``cursor`` query parameter (``None``: the first page).

    :raises BadRequest: not a cursor :func:`key_cursor` gave.
    """
    raw = query.get("cursor", "")
    if raw == "":
        return None
    key = _decode("k.", raw)
    if not key or len(key) > 300 or any(c.isspace() or ord(c) < 32 for c in key):
        raise BadRequest(Message("api.page_cursor"))
    return key


def request_cursor(position: tuple[float, str]) -> str:
    """The cursor after the request at ``position`` (index score, request id)."""
    return _encode("r.", f"{position[0]!r} {position[1]}")


def parse_request_cursor(query: Mapping[str, str]) -> tuple[float, str] | None:
    """The (score, request id) position of the ``cursor`` query parameter.

    :returns: ``None`` for the first page.
    :raises BadRequest: not a cursor :func:`request_cursor` gave.
    """
    raw = query.get("cursor", "")
    if raw == "":
        return None
    text = _decode("r.", raw)
    score, _, rid = text.partition(" ")
    try:
        value = float(score)
    except ValueError as exc:
        raise BadRequest(Message("api.page_cursor")) from exc
    if not math.isfinite(value) or not _REQUEST_ID.match(rid):
        raise BadRequest(Message("api.page_cursor"))
    return value, rid
