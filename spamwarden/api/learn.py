"""``POST /v1/learn`` (operator): a user filed a message as spam or not spam (an IMAP
mailbox move, ``docs/dovecot.md``); store it as the complaint intake stores a report of it
to ``report@`` / ``ham@`` by that user
(:meth:`~spamwarden.reputation.intake.ComplaintIntake.learn`).

The body is the raw message (any content type, at most ``intake.max_message_bytes``);
``kind`` (``spam`` or ``ham``) and ``user`` (the mailbox owner's address) come from the
query or from the ``X-Learn-Kind`` / ``X-Learn-User`` headers.  An operator token
(``api.operator_tokens``) may file messages for any local user, as the ``spamwarden
learn`` command can; a user's own learn token (``spamwarden learn-token ADDR``,
:mod:`spamwarden.reputation.learn_tokens`) only for that user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..config import Config
from ..reputation.intake import ComplaintIntake
from ..reputation.learn_tokens import PREFIX as LEARN_TOKEN_PREFIX
from ..reputation.learn_tokens import learn_token_ok
from ._http import (
    ERROR_RESPONSE,
    ApiContext,
    ApiModule,
    BadRequest,
    Message,
    bearer_token,
    detail_message,
    json_error,
    operator_denied,
    request_language,
)

__all__ = ["LEARN_PATHS", "learn_module"]

_KINDS = ("spam", "ham")
_CHUNK = 65536


def _default_intake(cfg: Config, client: Any) -> ComplaintIntake:
    from ..reputation.deliveries import RedisDeliveryLookup
    from ..reputation.intake import RedisComplaintStore

    store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                training_ttl=cfg.reputation.training_ttl)
    return ComplaintIntake(cfg, store, deliveries=RedisDeliveryLookup(client))


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes.

    :raises web.HTTPRequestEntityTooLarge: it is longer.
    """
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))


def learn_module(
    ctx: ApiContext, *, make_intake: Callable[[Config, Any], ComplaintIntake] | None = None,
) -> ApiModule:
    """``POST /v1/learn?kind=spam|ham&user=ADDR`` with an operator token, or the user's
    own learn token.

    :param ctx: the API context (its listing store's Redis client is used).
    :param make_intake: builds the intake policy over a Redis client
        (:func:`spamwarden.wiring.learner`); default: one without DKIM re-verification.
    """
    routes = web.RouteTableDef()
    intake = (make_intake or _default_intake)(ctx.cfg, ctx.store.redis)
    limit = ctx.cfg.intake.max_message_bytes

    cfg = ctx.cfg
    delimiters = cfg.intake.recipient_delimiter
    key: bytes | None = None

    def user_token_ok(token: str, user: str) -> bool:
        nonlocal key
        if key is None:
            from ..consent.unsubscribe import load_token_key

            key = load_token_key(cfg)
        return learn_token_ok(key, token, user, delimiters=delimiters)

    @routes.post("/v1/learn")
    async def learn(request: web.Request) -> web.StreamResponse:
        kind = request.query.get("kind") or request.headers.get("X-Learn-Kind") or ""
        user = request.query.get("user") or request.headers.get("X-Learn-User") or ""
        token = bearer_token(request) or ""
        if token.startswith(LEARN_TOKEN_PREFIX):
            if len(user) > 320 or not user_token_ok(token, user):
                return json_error(401, Message("api.learn_token_wrong"),
                                  headers={"WWW-Authenticate": 'Bearer realm="spamwarden"'})
        else:
            denied = operator_denied(request, cfg.api.operator_tokens)
            if denied is not None:
                return denied
        kind = kind.strip().lower()
        if kind not in _KINDS:
            raise BadRequest(Message("api.learn_kind"))
        if not user.strip() or len(user) > 320:
            raise BadRequest(Message("api.learn_user"))
        raw = await _read_body(request, limit)
        if not raw:
            raise BadRequest(Message("api.learn_body"))
        out = await intake.learn(kind, user, raw)  # type: ignore[arg-type]
        said = out.text or out.message
        if out.status == "refused":
            return json_error(403, detail_message(403, said))
        if out.status == "unusable":
            return json_error(422, detail_message(422, said))
        if out.status == "rate_limited":
            return json_error(429, detail_message(429, said), headers={"Retry-After": "3600"})
        if out.status == "store_failed":
            return json_error(503, detail_message(503, said), headers={"Retry-After": "5"})
        # the outcome's sentence in the request's language, as an error's message is
        language = request_language(request)
        return web.json_response({
            "id": out.complaint_id, "status": out.status, "kind": kind,
            "reporter": out.reporter, "matched": out.match in ("matched", "fbl"),
            "match": out.match,
            "message": out.text.render(language) if out.text else out.message,
        }, status=201 if out.status in ("added", "unmatched") else 200,
           headers={"Content-Language": language})

    # a bearer token is required (an operator's, or the user's own): not a public route
    setattr(learn, "operator_only", True)  # noqa: B010 - not in the handler's static type
    return ApiModule(name="learn", routes=routes, paths=LEARN_PATHS, schemas=LEARN_SCHEMAS,
                     tags=[{"name": "learn", "description": "users filing mail as spam or not"}])


LEARN_SCHEMAS: dict[str, Any] = {
    "Learned": {"type": "object", "required": ["id", "status", "kind", "reporter", "matched"],
                "properties": {
                    "id": {"type": "string", "description": "the complaint id"},
                    "status": {"type": "string", "enum": ["added", "duplicate", "unmatched"],
                               "description": "unmatched: a learn that matched no "
                               "delivery here to the user; kept, lists nothing, not learned"},
                    "kind": {"type": "string", "enum": list(_KINDS)},
                    "reporter": {"type": "string"},
                    "matched": {"type": "boolean",
                                "description": "it matched a delivery to the user"},
                    "match": {"type": "string"},
                    "message": {"type": "string", "description": "the outcome in "
                                "Accept-Language if en or vi, else i18n.language"}}},
}

LEARN_PATHS: dict[str, dict[str, Any]] = {
    "/v1/learn": {"post": {
        "tags": ["learn"], "operationId": "learn", "security": [{"operatorToken": []}],
        "summary": "A user filed a message as spam or not spam (operator token, or the "
                   "user's own learn token from `spamwarden learn-token`)",
        "description": "Stores the message as a report of it to report@ (spam) or ham@ (ham) "
        "by the user: a spam learn counts only when it matches a delivery here to the user; "
        "training examples are capped per user and day.",
        "parameters": [
            {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(_KINDS)},
             "description": "or the X-Learn-Kind header"},
            {"name": "user", "in": "query", "schema": {"type": "string"},
             "description": "the mailbox owner (an address at intake.local_domains), or the "
             "X-Learn-User header"},
            {"name": "X-Learn-Kind", "in": "header", "schema": {"type": "string"}},
            {"name": "X-Learn-User", "in": "header", "schema": {"type": "string"}}],
        "requestBody": {"required": True, "description": "the message as the user has it",
                        "content": {"message/rfc822": {"schema": {"type": "string",
                                                                  "format": "binary"}}}},
        "responses": {
            "200": {"description": "already stored (counted once)", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Learned"}}}},
            "201": {"description": "stored", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Learned"}}}},
            "400": {**ERROR_RESPONSE, "description": "missing kind, user or body"},
            "401": {**ERROR_RESPONSE, "description": "no valid operator token"},
            "403": {**ERROR_RESPONSE, "description": "operator endpoints disabled, or the "
                    "user is not at intake.local_domains"},
            "413": {**ERROR_RESPONSE, "description": "larger than intake.max_message_bytes"},
            "422": {**ERROR_RESPONSE, "description": "not a message"},
            "429": {**ERROR_RESPONSE, "description": "intake.reporter_rate reached"},
            "503": {**ERROR_RESPONSE, "description": "the store is unavailable"}}}},
}
