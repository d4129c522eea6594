"""Operator routes for recipient settings and the allow/deny lists (``/v1/settings``,
``/v1/allow``, ``/v1/deny``), with their OpenAPI description.  Every route needs an
operator token; the rules live in :mod:`spamwarden.settings` (what an entry is, what
it matches, the bounds), the routes only translate.  The milters see a change within
``settings.refresh``."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from ..logs import event
from ..settings.model import (
    MAX_NOTE,
    THRESHOLD_LIMIT,
    THRESHOLDS,
    SettingsError,
    SettingsSnapshot,
    Thresholds,
    parse_overrides,
    parse_target,
)
from ..settings.store import AsyncSettingsStore, settings_json
from ._http import (
    ERROR_RESPONSE,
    ApiContext,
    ApiModule,
    BadRequest,
    Message,
    detail_message,
    json_body,
    json_error,
    operator_only,
    text_field,
)

__all__ = ["SETTINGS_PATHS", "SETTINGS_SCHEMAS", "settings_module"]

log = logging.getLogger("spamwarden.api")


def settings_module(ctx: ApiContext) -> ApiModule:
    """``/v1/settings``, ``/v1/allow`` and ``/v1/deny`` (operator)."""
    routes = web.RouteTableDef()
    cfg = ctx.cfg
    store = AsyncSettingsStore.from_config(cfg, ctx.store.redis)
    p = cfg.policy
    base = Thresholds(p.tag_threshold, p.quarantine_threshold, p.reject_threshold)

    def target_of(request: web.Request) -> str:
        try:
            return parse_target(request.match_info["target"])
        except SettingsError as exc:
            raise BadRequest(exc) from exc

    @routes.get("/v1/settings")
    @operator_only
    async def list_settings(request: web.Request) -> web.StreamResponse:
        return web.json_response({"settings": settings_json(await store.settings()),
                                  "policy": base.to_json()})

    @routes.get("/v1/settings/{target}")
    @operator_only
    async def show(request: web.Request) -> web.StreamResponse:
        target = target_of(request)
        every = await store.settings()
        snap = SettingsSnapshot(every)
        own = every.get(target)
        return web.json_response({
            "target": target, "own": own.to_json() if own is not None else None,
            "effective": snap.thresholds(target, base,
                                         delimiters=cfg.intake.recipient_delimiter).to_json()})

    @routes.put("/v1/settings/{target}")
    @operator_only
    async def put(request: web.Request) -> web.StreamResponse:
        target = target_of(request)
        body = await json_body(request)
        try:
            over = parse_overrides(body)
        except SettingsError as exc:
            raise BadRequest(exc) from exc
        every = await store.settings()
        every[target] = over
        limits = SettingsSnapshot(every).thresholds(
            target, base, delimiters=cfg.intake.recipient_delimiter)
        if not limits.ordered():
            raise BadRequest(detail_message(400, Message(
                "settings.unordered", {"thresholds": limits.to_json()})))
        try:
            new = await store.put_setting(target, over)
        except SettingsError as exc:
            raise BadRequest(exc) from exc
        event(log, "settings_set", target=target, settings=json.dumps(over.to_json()))
        return web.json_response({"target": target, **over.to_json()},
                                 status=201 if new else 200)

    @routes.delete("/v1/settings/{target}")
    @operator_only
    async def remove(request: web.Request) -> web.StreamResponse:
        target = target_of(request)
        if not await store.remove_setting(target):
            return json_error(404, detail_message(404, Message("settings.no_settings",
                                                                {"target": target})))
        event(log, "settings_removed", target=target)
        return web.json_response({"target": target, "removed": True})

    def list_routes(which: str) -> None:
        @routes.get(f"/v1/{which}")
        @operator_only
        async def entries(request: web.Request) -> web.StreamResponse:
            found = await store.entries(which)
            return web.json_response({"list": which, "entries": [e.to_json() for e in found]})

        @routes.post(f"/v1/{which}")
        @operator_only
        async def add(request: web.Request) -> web.StreamResponse:
            body = await json_body(request)
            entry = text_field(body, "entry", required=True, limit=300)
            note = text_field(body, "note", required=False, limit=MAX_NOTE)
            try:
                stored = await store.put_entry(which, entry, note=note, now=ctx.clock.now())
            except SettingsError as exc:
                raise BadRequest(exc) from exc
            event(log, "settings_entry_added", list=which, entry=stored)
            return web.json_response({"list": which, "entry": stored}, status=201)

        @routes.delete(f"/v1/{which}/{{entry:.+}}")
        @operator_only
        async def delete(request: web.Request) -> web.StreamResponse:
            entry = request.match_info["entry"]
            try:
                removed = await store.remove_entry(which, entry)
            except SettingsError as exc:
                raise BadRequest(exc) from exc
            if not removed:
                return json_error(404, detail_message(404, Message(
                    "settings.not_on_list", {"entry": entry[:300], "which": which})))
            event(log, "settings_entry_removed", list=which, entry=entry[:300])
            return web.json_response({"list": which, "entry": entry, "removed": True})

    list_routes("allow")
    list_routes("deny")
    return ApiModule(name="settings", routes=routes, paths=SETTINGS_PATHS,
                     schemas=SETTINGS_SCHEMAS,
                     tags=[{"name": "settings",
                            "description": "per-recipient thresholds, sender allow and deny"}])


# -- OpenAPI ------------------------------------------------------------------------------------

_SEC: list[dict[str, list[str]]] = [{"operatorToken": []}]
_OP_ERRORS = {
    "401": {**ERROR_RESPONSE, "description": "no valid operator token"},
    "403": {**ERROR_RESPONSE, "description": "operator endpoints disabled (no tokens configured)"},
    "503": {**ERROR_RESPONSE, "description": "the store is unavailable"},
}
_BAD = {**ERROR_RESPONSE, "description": "invalid target, entry or setting, or a bound reached"}


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


_TARGET = {"name": "target", "in": "path", "required": True,
           "description": "a recipient address or domain (a domain covers its subdomains)",
           "schema": {"type": "string", "maxLength": 254}}
_ENTRY = {"name": "entry", "in": "path", "required": True,
          "description": "kind:value, e.g. dkim:partner.example or cidr:192.0.2.0/24",
          "schema": {"type": "string"}}
_NUMBER = {"type": "number", "minimum": -THRESHOLD_LIMIT, "maximum": THRESHOLD_LIMIT}

SETTINGS_SCHEMAS: dict[str, Any] = {
    "Overrides": {"type": "object", "minProperties": 1, "additionalProperties": False,
                  "properties": {name: _NUMBER for name in THRESHOLDS}},
    "TargetSettings": {"type": "object", "required": ["target"], "properties": {
        "target": {"type": "string"}, **{name: _NUMBER for name in THRESHOLDS}}},
    "Thresholds": {"type": "object", "properties": {
        **{name: {"type": "number"} for name in THRESHOLDS},
        "sources": {"type": "array", "items": {"type": "string"},
                    "description": "the targets that applied, most general first"}}},
    "ListEntry": {"type": "object", "properties": {
        "entry": {"type": "string"}, "kind": {"type": "string",
                                              "enum": ["address", "domain", "dkim", "cidr"]},
        "value": {"type": "string"}, "note": {"type": "string"},
        "added": {"type": "number", "description": "Unix seconds"}}},
    "ListEntryIn": {"type": "object", "required": ["entry"], "properties": {
        "entry": {"type": "string", "maxLength": 300,
                  "description": "kind:value, or a bare IP/network, address or domain"},
        "note": {"type": "string", "maxLength": MAX_NOTE}}},
}


def _list_paths(which: str) -> dict[str, dict[str, Any]]:
    what = ("allow: skip to a strong negative score (ALLOWLIST) when the sender is "
            "authenticated as the entry" if which == "allow" else
            "deny: reject (DENYLIST) on any match")
    return {
        f"/v1/{which}": {
            "get": {"tags": ["settings"], "operationId": f"list{which.title()}",
                    "security": _SEC, "summary": f"The {which} list (operator)",
                    "responses": {"200": {"description": "entries", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "list": {"type": "string"}, "entries": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ListEntry"}}}}}}},
                        **_OP_ERRORS}},
            "post": {"tags": ["settings"], "operationId": f"add{which.title()}",
                     "security": _SEC, "summary": f"Add an entry to the {which} list "
                     f"({what}; operator)",
                     "requestBody": {"required": True, "content": _ref("ListEntryIn")},
                     "responses": {"201": {"description": "stored (canonical form)",
                                           "content": {"application/json": {"schema": {
                                               "type": "object", "properties": {
                                                   "list": {"type": "string"},
                                                   "entry": {"type": "string"}}}}}},
                                   "400": _BAD, **_OP_ERRORS}},
        },
        f"/v1/{which}/{{entry}}": {
            "delete": {"tags": ["settings"], "operationId": f"remove{which.title()}",
                       "security": _SEC, "summary": f"Remove an entry from the {which} list "
                       "(operator)", "parameters": [_ENTRY],
                       "responses": {"200": {"description": "removed"}, "400": _BAD,
                                     "404": {**ERROR_RESPONSE, "description": "not listed"},
                                     **_OP_ERRORS}},
        },
    }


SETTINGS_PATHS: dict[str, dict[str, Any]] = {
    "/v1/settings": {"get": {
        "tags": ["settings"], "operationId": "listSettings", "security": _SEC,
        "summary": "Every recipient setting, and [policy]'s thresholds (operator)",
        "responses": {"200": {"description": "settings", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "settings": {"type": "array",
                             "items": {"$ref": "#/components/schemas/TargetSettings"}},
                "policy": {"$ref": "#/components/schemas/Thresholds"}}}}}},
            **_OP_ERRORS}}},
    "/v1/settings/{target}": {
        "get": {"tags": ["settings"], "operationId": "showSettings", "security": _SEC,
                "summary": "A target's own settings and the thresholds in effect for it "
                "(operator)", "parameters": [_TARGET],
                "responses": {"200": {"description": "settings", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "target": {"type": "string"},
                        "own": {"oneOf": [{"$ref": "#/components/schemas/Overrides"},
                                          {"type": "null"}]},
                        "effective": {"$ref": "#/components/schemas/Thresholds"}}}}}},
                    "400": _BAD, **_OP_ERRORS}},
        "put": {"tags": ["settings"], "operationId": "putSettings", "security": _SEC,
                "summary": "Set a recipient address's or domain's thresholds, replacing "
                "its earlier ones (operator)", "parameters": [_TARGET],
                "requestBody": {"required": True, "content": _ref("Overrides")},
                "responses": {"201": {"description": "new target",
                                      "content": _ref("TargetSettings")},
                              "200": {"description": "replaced",
                                      "content": _ref("TargetSettings")},
                              "400": _BAD, **_OP_ERRORS}},
        "delete": {"tags": ["settings"], "operationId": "removeSettings", "security": _SEC,
                   "summary": "Remove a target's settings (operator)", "parameters": [_TARGET],
                   "responses": {"200": {"description": "removed"}, "400": _BAD,
                                 "404": {**ERROR_RESPONSE, "description": "no settings"},
                                 **_OP_ERRORS}},
    },
    **_list_paths("allow"),
    **_list_paths("deny"),
}
