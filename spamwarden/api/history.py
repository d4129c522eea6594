"""``GET /v1/history`` (operator): the milter's verdicts, newest first, from the message
history (:mod:`spamwarden.reputation.history`): the answer to "why was my mail rejected?"."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..reputation.history import MAX_LIMIT, HistoryFilter, aread_history
from ._http import ERROR_RESPONSE, ApiContext, ApiModule, BadRequest, Message, operator_only

__all__ = ["HISTORY_PATHS", "history_module"]

_ACTIONS = ("accept", "tag", "quarantine", "reject", "tempfail")


def history_module(ctx: ApiContext) -> ApiModule:
    """``GET /v1/history?limit=N&queue_id=&rcpt=&action=`` with an operator token."""
    routes = web.RouteTableDef()
    store = ctx.store

    @routes.get("/v1/history")
    @operator_only
    async def history(request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
        except ValueError as exc:
            raise BadRequest(Message("api.limit_number")) from exc
        action = q.get("action", "")
        if action and action not in _ACTIONS:
            raise BadRequest(Message("api.history_action", {"actions": ", ".join(_ACTIONS)}))
        queue_id, rcpt = q.get("queue_id", ""), q.get("rcpt", "")
        if len(queue_id) > 64 or len(rcpt) > 320:
            raise BadRequest(Message("api.history_key_too_long"))
        want = HistoryFilter(queue_id=queue_id, rcpt=rcpt, action=action)
        rows = await aread_history(store.redis, limit=max(1, min(limit, MAX_LIMIT)), want=want)
        return web.json_response({"messages": rows})

    return ApiModule(name="history", routes=routes, paths=HISTORY_PATHS,
                     schemas=HISTORY_SCHEMAS,
                     tags=[{"name": "history", "description": "the milter's verdicts"}])


_OP_ERRORS = {
    "401": {**ERROR_RESPONSE, "description": "no valid operator token"},
    "403": {**ERROR_RESPONSE, "description": "operator endpoints disabled (no tokens configured)"},
    "503": {**ERROR_RESPONSE, "description": "the store is unavailable"},
}

HISTORY_SCHEMAS: dict[str, Any] = {
    "HistoryEntry": {"type": "object", "required": [
        "time", "queue_id", "client_ip", "from", "rcpt", "action", "score", "symbols"],
        "properties": {
            "time": {"type": "number", "description": "Unix seconds"},
            "queue_id": {"type": "string", "description": "Postfix queue id"},
            "client_ip": {"type": "string"}, "helo": {"type": "string"},
            "from": {"type": "string", "description": "envelope sender; empty for <>"},
            "rcpt": {"type": "array", "items": {"type": "string"},
                     "description": "envelope recipients (at most 50)"},
            "rcpt_count": {"type": "integer"},
            "header_from": {"type": "string", "description": "the From address"},
            "subject": {"type": "string", "description": "absent when history.subjects is false"},
            "message_id": {"type": "string"},
            "action": {"type": "string", "enum": list(_ACTIONS)},
            "score": {"type": "number"}, "required": {"type": "number"},
            "reason": {"type": "string"},
            "symbols": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "points": {"type": "number"},
                "detail": {"type": "string"}}}},
            "auth": {"type": ["object", "null"], "description": "SPF, DKIM, DMARC results"},
            "scored": {"type": "boolean"}}},
}

HISTORY_PATHS: dict[str, dict[str, Any]] = {
    "/v1/history": {"get": {
        "tags": ["history"], "operationId": "history", "security": [{"operatorToken": []}],
        "summary": "The milter's verdicts, newest first (operator)",
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50,
                                                        "maximum": MAX_LIMIT}},
            {"name": "queue_id", "in": "query", "schema": {"type": "string"}},
            {"name": "rcpt", "in": "query", "schema": {"type": "string"},
             "description": "an envelope recipient (case-insensitive)"},
            {"name": "action", "in": "query", "schema": {"type": "string",
                                                         "enum": list(_ACTIONS)}}],
        "responses": {"200": {"description": "matching verdicts", "content": {
            "application/json": {"schema": {"type": "object", "properties": {"messages": {
                "type": "array", "items": {"$ref": "#/components/schemas/HistoryEntry"}}}}}}},
            "400": {**ERROR_RESPONSE, "description": "bad limit or action"}, **_OP_ERRORS}}},
}
