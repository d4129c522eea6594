"""What every route module of the API shares: the application keys, :class:`ApiModule`
and :class:`ApiContext`, JSON errors, operator bearer-token auth, the client's address
and request-body parsing.

Route modules (:mod:`.listings`, :mod:`.consent`) import this; :mod:`.app` assembles
them. Errors are JSON objects (:func:`json_error`)::

    {"error": "<English text>", "code": "<machine code>", "message": "<text>", "status": N}

``code`` is stable and never changes with the language (an id of
:mod:`spamwarden.i18n` without its ``api.`` group); ``error`` is the English text, as
it always was, for clients that read it; ``message`` is in the request's language
(:func:`request_language`: ``Accept-Language`` when it names one of ours, else
``i18n.language``), chosen by the application's middleware (:func:`localize_error`).
Operator endpoints use :func:`operator_only` (or :func:`operator_denied` where a
route also accepts another credential).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..config import Config
from ..i18n import Message, negotiate
from ..i18n import detail as i18n_detail
from ..mail import unmapped
from ..reputation.store import AsyncListingStore, Clock

__all__ = [
    "ApiModule",
    "ApiContext",
    "BadRequest",
    "CONFIG_KEY",
    "STORE_KEY",
    "CLOCK_KEY",
    "MAX_BODY",
    "ERROR_RESPONSE",
    "ERROR_SCHEMA",
    "ErrorResponse",
    "Handler",
    "Message",
    "as_message",
    "detail_message",
    "json_error",
    "localize_error",
    "request_language",
    "client_ip",
    "rate_client",
    "token_ok",
    "bearer_token",
    "operator_denied",
    "operator_only",
    "json_body",
    "text_field",
]

CONFIG_KEY = web.AppKey("spamwarden_config", Config)
STORE_KEY = web.AppKey("spamwarden_listing_store", AsyncListingStore)
CLOCK_KEY = web.AppKey("spamwarden_clock", object)

#: the largest request body accepted (bytes)
MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: OpenAPI: the error object every route answers with
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "code", "message", "status"], "properties": {
        "error": {"type": "string", "description": "the English text (never localised)"},
        "code": {"type": "string", "description": "machine code, the same in every language"},
        "message": {"type": "string",
                    "description": "the text in Accept-Language if en or vi, else i18n.language"},
        "status": {"type": "integer"}}}
#: OpenAPI: a response carrying :data:`ERROR_SCHEMA` (add a ``description``)
ERROR_RESPONSE: dict[str, Any] = {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}


@dataclass(frozen=True)
class ApiContext:
    """What a module factory gets: configuration, clock and the listing store."""

    cfg: Config
    clock: Clock
    store: AsyncListingStore


@dataclass(frozen=True)
class ApiModule:
    """A set of routes and their OpenAPI description.

    :param routes: aiohttp route definitions (``web.RouteTableDef`` or a list of
        ``web.get(...)`` etc.).
    :param paths: OpenAPI ``paths`` entries for exactly these routes.
    :param schemas: OpenAPI ``components.schemas`` the paths refer to.
    :param on_startup: / ``on_cleanup``: app signal handlers (open / close clients).
    """

    name: str
    routes: Sequence[web.AbstractRouteDef]
    paths: Mapping[str, Mapping[str, Any]]
    schemas: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[Mapping[str, str]] = ()
    on_startup: Sequence[Callable[[web.Application], Awaitable[None]]] = ()
    on_cleanup: Sequence[Callable[[web.Application], Awaitable[None]]] = ()



# -- shared helpers --------------------------------------------------------------------------


#: the generic message of a status whose error text comes from a lower layer
_GENERIC = {400: "api.bad_request", 401: "api.unauthorized", 403: "api.forbidden",
            404: "api.not_found", 409: "api.conflict", 413: "api.too_large",
            422: "api.unprocessable", 429: "api.rate_limited", 503: "api.unavailable"}


def detail_message(status: int, detail: str | Message | BaseException) -> Message:
    """A detail from a lower layer (a validation's text, an exception raised with a
    catalogue :class:`Message`, :func:`spamwarden.i18n.detail`) inside the generic
    message of ``status``: the machine code stays the status's (``bad_request``), the
    English is the detail alone, and another language renders the detail too."""
    if isinstance(detail, BaseException):
        detail = i18n_detail(detail)
    return Message(_GENERIC.get(status, "api.error"), {"detail": detail})


def as_message(status: int, message: str | Message | BaseException) -> Message:
    """``message`` as a catalogue :class:`Message`: a catalogue message is the error
    itself; a plain text or an exception is a detail (:func:`detail_message`)."""
    if isinstance(message, Message):
        return message
    return detail_message(status, message)


class ErrorResponse(web.Response):
    """A JSON error (see the module docstring), rendered in English until
    :meth:`localize` picks the request's language.

    :param status: the HTTP status.
    :param message: what went wrong.
    :param extra: further members of the object.
    """

    def __init__(self, status: int, message: Message, *, extra: Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> None:
        self.error_message = message
        self._code = status
        self._extra = dict(extra)
        super().__init__(status=status, headers=headers, content_type="application/json",
                         text=self._render("en"))

    def _render(self, language: str) -> str:
        m = self.error_message
        return json.dumps({"error": m.render("en"), "code": m.code,
                           "message": m.render(language), "status": self._code,
                           **self._extra})

    def localize(self, language: str) -> None:
        """Render ``message`` in ``language`` and say so (``Content-Language``,
        RFC 9110 §8.5)."""
        self.text = self._render(language)
        self.headers["Content-Language"] = language


def json_error(status: int, message: str | Message | BaseException,
               **extra: Any) -> web.Response:
    """A JSON error response (see the module docstring).

    :param status: the HTTP status.
    :param message: a catalogue :class:`Message`, or a plain English detail or a lower
        layer's exception (wrapped in the generic message of ``status``,
        :func:`as_message`).
    :param extra: further members; ``headers=`` is the response's headers instead.
    :returns: an :class:`ErrorResponse` (English until the middleware localises it).
    """
    headers = extra.pop("headers", None)
    return ErrorResponse(status, as_message(status, message), extra=extra, headers=headers)


def request_language(request: web.Request) -> str:
    """The language of the request's error messages: its ``Accept-Language``
    (RFC 9110 §12.5.4) when that names one of :data:`spamwarden.i18n.LANGUAGES`, else
    ``i18n.language``."""
    return negotiate(request.headers.get("Accept-Language", ""),
                     default=request.app[CONFIG_KEY].i18n.language)


@web.middleware
async def localize_error(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Middleware (outermost): an :class:`ErrorResponse` gets its ``message`` in
    :func:`request_language`."""
    response = await handler(request)
    if isinstance(response, ErrorResponse):
        response.localize(request_language(request))
    return response


def client_ip(request: web.Request) -> str:
    """The client's IP address: the TCP peer or, when the peer is one of
    ``api.trusted_proxies``, the right-most ``X-Forwarded-For`` entry that is not.

    Every ``X-Forwarded-For`` line is read, joined in order (RFC 9110 §5.3): a proxy that
    appends a line of its own leaves the client's line in front, and whatever the client
    wrote is to the left of what the trusted proxies added. The entries are walked from
    the right past trusted proxies; an entry that is not an address stops the walk (the
    last trusted address stands), and when every entry is a trusted proxy the left-most
    is the client.
    """
    peer = request.remote or "unknown"
    cfg = request.app[CONFIG_KEY]
    if not cfg.api.trusted_proxies or peer == "unknown":
        return peer
    try:
        nets = [ipaddress.ip_network(n, strict=False) for n in cfg.api.trusted_proxies]
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(addr in n for n in nets):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    for entry in reversed(forwarded.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        try:
            addr = ipaddress.ip_address(entry)
        except ValueError:
            break
        if not any(addr in n for n in nets):
            break
    return str(addr)


def rate_client(request: web.Request) -> str:
    """The bucket a rate limit counts the client in: its IPv4 address, or the network of
    ``api.ipv6_rate_prefix`` bits (default /64) around its IPv6 address, as one site
    usually holds a whole /64 (an IPv4-mapped address counts as the IPv4 address).
    Logs name :func:`client_ip` itself."""
    ip = client_ip(request)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    addr = unmapped(addr)
    if isinstance(addr, ipaddress.IPv6Address):
        prefix = request.app[CONFIG_KEY].api.ipv6_rate_prefix
        if prefix < 128:
            return str(ipaddress.IPv6Network((addr, prefix), strict=False))
    return str(addr)


def token_ok(given: str, tokens: Sequence[str]) -> bool:
    """Whether ``given`` is one of ``tokens``; every token is compared, each in constant
    time (:func:`hmac.compare_digest`), so the answer's timing tells nothing."""
    if not given:  # an empty credential is never one of ours, whatever the list holds
        return False
    ok = False
    g = given.encode("utf-8", "replace")
    for t in tokens:  # every token compared, in constant time each
        if t:
            ok |= hmac.compare_digest(g, t.encode())
    return ok


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), or ``None``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def operator_denied(request: web.Request, tokens: Sequence[str]) -> web.Response | None:
    """Why the request may not use an operator endpoint, or ``None`` when it may.

    :param request: the request (its ``Authorization: Bearer`` header is read).
    :param tokens: the accepted operator tokens (``api.operator_tokens``).
    :returns: ``None`` for a valid operator token; else the JSON error to send: 403 when
        ``tokens`` is empty (operator endpoints disabled), 401 with ``WWW-Authenticate``
        (RFC 6750 §3) for a missing or wrong token.
    """
    if not any(tokens):
        return json_error(403, Message("api.operator_disabled"))
    token = bearer_token(request)
    if token is None or not token_ok(token, tokens):
        return json_error(401, Message("api.operator_token_required"),
                          headers={"WWW-Authenticate": 'Bearer realm="spamwarden"'})
    return None


def operator_only(handler: Handler) -> Handler:
    """Decorator: the request must carry ``Authorization: Bearer <operator token>``
    (one of the application's ``api.operator_tokens``); see :func:`operator_denied`.
    """

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        denied = operator_denied(request, request.app[CONFIG_KEY].api.operator_tokens)
        if denied is not None:
            return denied
        return await handler(request)

    setattr(wrapped, "operator_only", True)  # noqa: B010 - not in the wrapper's static type
    return wrapped


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (at most :data:`MAX_BODY` bytes).

    :raises BadRequest: not a JSON object (also JSON nested deeper than the parser's
        recursion limit, which a body far below :data:`MAX_BODY` can be).
    :raises web.HTTPRequestEntityTooLarge: too long.
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        body = await request.json()
    except (ValueError, RecursionError) as exc:
        raise BadRequest(Message("api.body_not_object")) from exc
    if not isinstance(body, dict):
        raise BadRequest(Message("api.body_not_object"))
    return body


class BadRequest(Exception):
    """Turned into a 400 JSON error by the application's middleware.

    :param message: a catalogue :class:`Message`, or a plain English detail or a lower
        layer's exception (:func:`as_message`).
    """

    def __init__(self, message: str | Message | BaseException) -> None:
        self.message = as_message(400, message)
        super().__init__(self.message.render("en"))


def text_field(body: Mapping[str, Any], name: str, *, required: bool, limit: int) -> str:
    """The stripped string field ``name`` of a JSON body (absent or null: empty).

    :raises BadRequest: not a string, missing while ``required``, longer than ``limit``.
    """
    v = body.get(name, "")
    if v is None:
        v = ""
    if not isinstance(v, str):
        raise BadRequest(Message("api.field_not_string", {"name": name}))
    v = v.strip()
    if required and not v:
        raise BadRequest(Message("api.field_required", {"name": name}))
    if len(v) > limit:
        raise BadRequest(Message("api.field_too_long", {"name": name, "limit": limit}))
    return v
