"""The public lookup pages and the operator's delisting-request queue.

Every TXT answer of the blocklist and every listing-caused 550 names
``rbl.lookup_url`` / ``milter.lookup_url`` + the listed key; both default to
``api.public_url + "/lookup/"``, served here:

* ``GET /lookup/`` (``?key=`` redirects): a form to look a key up.
* ``GET /lookup/{key}``: listed or not, why (the reason text), since and until when,
  how many times before, and a form asking for removal.
* ``POST /lookup/{key}`` (form fields ``reason``, ``contact``): files a delisting
  request through the listing store, rate-limited per client like
  ``POST /v1/delist-requests`` (the same counter, ``api.delist_requests_per_hour``),
  and redirects (303) to the request's status page.
* ``GET /lookup/request/{id}``: the request's state (pending, approved, rejected).
  The id is 128 random bits (:meth:`~spamwarden.reputation.store.ListingStore.file_delist_request`):
  knowing the address is the only credential, so the page shows the key, the dates
  and the state, never the requester's contact, address or text.

Pages are English or Vietnamese (:func:`~spamwarden.api.lookup_texts.negotiate`),
self-contained (no external resource, a strict ``Content-Security-Policy``) and
escape everything they echo.

Operator routes (bearer token): ``GET /v1/delisting-requests`` and
``POST /v1/delisting-requests/{id}`` ``{"decision": "approve"|"reject", "note"?}``;
approving delists through the store, so the change stream and the DNS servers follow.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..errors import DelistQueueFull, DelistRequestStale
from ..logs import event
from ..reputation.listings import Listing, normalize_key, utc_iso
from ..reputation.store import DelistRequest
from ._http import (
    ERROR_RESPONSE,
    ApiContext,
    ApiModule,
    BadRequest,
    Message,
    client_ip,
    json_body,
    json_error,
    operator_only,
    rate_client,
    text_field,
)
from .listings import PAGE_PARAMS, file_delist_request, request_object
from .lookup_texts import Language, negotiate, reason_text, text
from .paging import page_limit, parse_request_cursor, request_cursor

__all__ = ["LOOKUP_PATHS", "MAX_CONTACT", "MAX_REASON", "REQUEST_ID_PATTERN", "lookup_module"]

log = logging.getLogger("spamwarden.api")

#: the longest ``reason`` / ``contact`` a request may carry (as ``POST /v1/delist-requests``)
MAX_REASON = 2000
MAX_CONTACT = 254
#: request ids in URLs: hex, 16 (older requests) to 64 characters
REQUEST_ID_PATTERN = "[0-9a-f]{16,64}"

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}h1{font-size:1.5rem}dt{font-weight:600}dd{margin:0 0 .6rem}"
    "input,textarea{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}"
    "button{padding:.4rem 1rem;font:inherit}.listed{color:#a00}.ok{color:#070}"
    ".err{color:#a00;font-weight:600}"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(lang: Language, title: str, body_html: str, *, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    """A whole page; ``title`` is plain text (escaped here), ``body_html`` is markup
    whose values the caller escaped."""
    doc = (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{_e(title)}</h1>\n{body_html}</body></html>\n"
    )
    return web.Response(text=doc, status=status, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, **(headers or {})})


#: for the other HTML pages of the API (the operator console): the same escaping and page
escape = _e
html_page = _page


def _lookup_form(lang: Language, base: str, value: str = "") -> str:
    return (
        f'<form method="get" action="{_e(base)}"><p><label>{_e(text(lang, "form.key"))}<br>'
        f'<input name="key" value="{_e(value)}" maxlength="300" required></label></p>'
        f'<p><button type="submit">{_e(text(lang, "form.button"))}</button></p></form>\n'
    )


def _delist_form(lang: Language, action: str, *, error: str = "", reason: str = "",
                 contact: str = "") -> str:
    err = f'<p class="err">{_e(error)}</p>' if error else ""
    return (
        f"<h2>{_e(text(lang, 'delist.title'))}</h2>\n<p>{_e(text(lang, 'delist.intro'))}</p>\n"
        f'{err}<form method="post" action="{_e(action)}">'
        f'<p><label>{_e(text(lang, "delist.reason"))}<br><textarea name="reason" rows="5" '
        f'maxlength="{MAX_REASON}" required>{_e(reason)}</textarea></label></p>'
        f'<p><label>{_e(text(lang, "delist.contact"))}<br><input name="contact" type="email" '
        f'maxlength="{MAX_CONTACT}" value="{_e(contact)}"></label></p>'
        f'<p><button type="submit">{_e(text(lang, "delist.button"))}</button></p></form>\n'
    )


def _listing_html(lang: Language, key: str, found: Listing) -> str:
    from ..reputation.listings import REASONS

    english = REASONS.get(found.reason, ("", found.reason))[1]
    rows = [
        (text(lang, "reason"), reason_text(lang, found.reason, english)),
        (text(lang, "since"), utc_iso(found.listed_at)),
        (text(lang, "until"), f"{utc_iso(found.expires_at)} ({text(lang, 'until_note')})"),
        (text(lang, "before"), str(max(found.offences - 1, 0))),
    ]
    if found.note:
        rows.append((text(lang, "note"), found.note))
    out = ""
    if found.key != key:
        out += f"<p>{_e(text(lang, 'covered', listed=found.key))}</p>\n"
    out += "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>\n"
    return out


def _status_text(lang: Language, status: str) -> str:
    return text(lang, f"status.{status}") if status in ("pending", "approved", "rejected") else status


def lookup_module(ctx: ApiContext) -> ApiModule:
    """The public lookup pages and the operator's delisting-request queue."""
    routes = web.RouteTableDef()
    cfg = ctx.cfg
    store = ctx.store
    clock = ctx.clock
    base = "/lookup/"

    def language(request: web.Request) -> Language:
        return negotiate(request.headers.get("Accept-Language", ""),
                         request.query.get("lang", ""))

    def key_path(key: str) -> str:
        return base + quote(key, safe="@:")

    @routes.get("/lookup/request/{id}")
    async def request_status(request: web.Request) -> web.StreamResponse:
        lang = language(request)
        rid = request.match_info["id"]
        req: DelistRequest | None = None
        if len(rid) <= 64 and all(c in "0123456789abcdef" for c in rid) and len(rid) >= 16:
            req = await store.get_delist_request(rid)
        if req is None:
            return _page(lang, text(lang, "title.not_found"),
                         f"<p>{_e(text(lang, 'not_found'))}</p>\n" + _lookup_form(lang, base),
                         status=404)
        rows = [
            (text(lang, "request.key"), req.key),
            (text(lang, "request.filed"), utc_iso(req.filed_at)),
            (text(lang, "request.status"), _status_text(lang, req.status)),
        ]
        if req.decided_at:
            rows.append((text(lang, "request.decided"), utc_iso(req.decided_at)))
        body = ("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
                + "</dl>\n" + f"<p>{_e(text(lang, 'request.keep'))}</p>\n"
                + f'<p><a href="{_e(key_path(req.key))}">{_e(req.key)}</a></p>\n')
        return _page(lang, text(lang, "title.request"), body)

    @routes.get("/lookup/")
    async def form(request: web.Request) -> web.StreamResponse:
        lang = language(request)
        wanted = request.query.get("key", "").strip()[:300]
        if wanted:
            raise web.HTTPSeeOther(key_path(wanted))
        return _page(lang, text(lang, "title.form"),
                     f"<p>{_e(text(lang, 'form.intro'))}</p>\n" + _lookup_form(lang, base))

    async def show(request: web.Request, lang: Language, raw: str, *, error: str = "",
                   reason: str = "", contact: str = "", status: int = 200) -> web.Response:
        try:
            key, _ = normalize_key(raw)
        except ValueError:
            return _page(lang, text(lang, "title.bad_key"),
                         f"<p>{_e(text(lang, 'bad_key', key=raw))}</p>\n"
                         + _lookup_form(lang, base, raw), status=400)
        found = await store.find(key, now=clock.now())
        if found is None:
            return _page(lang, text(lang, "title.not_listed", key=key),
                         f'<p class="ok">{_e(text(lang, "not_listed", key=key))}</p>\n'
                         f"<h2>{_e(text(lang, 'another'))}</h2>\n" + _lookup_form(lang, base),
                         status=status)
        body = (_listing_html(lang, key, found)
                + _delist_form(lang, key_path(key), error=error, reason=reason, contact=contact)
                + f"<h2>{_e(text(lang, 'another'))}</h2>\n" + _lookup_form(lang, base))
        return _page(lang, text(lang, "title.listed", key=key), body, status=status)

    @routes.get("/lookup/{key:.+}")
    async def lookup(request: web.Request) -> web.StreamResponse:
        return await show(request, language(request), request.match_info["key"][:300])

    @routes.post("/lookup/{key:.+}")
    async def file_request(request: web.Request) -> web.StreamResponse:
        lang = language(request)
        raw = request.match_info["key"][:300]
        ip = client_ip(request)
        now = clock.now()
        if not await store.rate_allow("delist", rate_client(request),
                                      limit=cfg.api.delist_requests_per_hour, now=now):
            return _page(lang, text(lang, "title.rate"), f"<p>{_e(text(lang, 'rate'))}</p>\n",
                         status=429, headers={"Retry-After": str(3600 - int(now) % 3600)})
        data = await request.post()
        reason = str(data.get("reason", "") or "").strip()
        contact = str(data.get("contact", "") or "").strip()
        error = ""
        if not reason:
            error = text(lang, "delist.missing")
        elif len(reason) > MAX_REASON:
            error = text(lang, "delist.too_long", field=text(lang, "delist.reason"), limit=MAX_REASON)
        elif len(contact) > MAX_CONTACT:
            error = text(lang, "delist.too_long", field=text(lang, "delist.contact"),
                         limit=MAX_CONTACT)
        try:
            key, _ = normalize_key(raw)
        except ValueError:
            return await show(request, lang, raw)
        found = await store.find(key, now=now)
        if error or found is None:
            return await show(request, lang, raw, error=error, reason=reason[:MAX_REASON],
                              contact=contact[:MAX_CONTACT], status=400 if error else 404)
        try:
            req = await file_delist_request(store, cfg, found.key, reason=reason,
                                            contact=contact, client=ip, now=now, via="page",
                                            client_bucket=rate_client(request))
        except DelistQueueFull as exc:
            msg = (text(lang, "key_request_pending", key=exc.key) if exc.mine
                   else text(lang, "key_queue_full", key=exc.key) if exc.key
                   else text(lang, "queue_full"))
            return _page(lang, text(lang, "title.rate"), f"<p>{_e(msg)}</p>\n", status=429)
        raise web.HTTPSeeOther(f"{base}request/{req.id}")

    # -- the operator's queue ---------------------------------------------------------------

    @routes.get("/v1/delisting-requests")
    @operator_only
    async def queue(request: web.Request) -> web.StreamResponse:
        status = request.query.get("status") or None
        if status not in (None, "pending", "approved", "rejected"):
            raise BadRequest(Message("api.request_status"))
        limit = page_limit(request.query)
        after = parse_request_cursor(request.query)
        reqs, nxt = await store.delist_request_page(now=clock.now(), status=status,
                                                    after=after, limit=limit)
        return web.json_response({"requests": [
            {**request_object(r), "status_url": f"{base}request/{r.id}"} for r in reqs],
            "next_cursor": request_cursor(nxt) if nxt is not None else None})

    @routes.post("/v1/delisting-requests/{id}")
    @operator_only
    async def decide(request: web.Request) -> web.StreamResponse:
        rid = request.match_info["id"]
        body = await json_body(request)
        decision = text_field(body, "decision", required=True, limit=10)
        if decision not in ("approve", "reject"):
            raise BadRequest(Message("api.decision"))
        note = text_field(body, "note", required=False, limit=2000)
        current = await store.get_delist_request(rid) if len(rid) <= 64 else None
        if current is None:
            return json_error(404, Message("api.no_such_request"))
        if current.status != "pending":
            return json_error(409, Message("api.already_decided", {"status": current.status}))
        try:
            res = await store.decide_delist_request(rid, approve=decision == "approve",
                                                    note=note, now=clock.now())
        except DelistRequestStale as exc:
            return json_error(409, Message("api.request_stale", {
                "key": exc.key, "since": utc_iso(exc.listed_at)}))
        if res is None:
            return json_error(404, Message("api.no_such_request"))
        new, write = res
        approve = decision == "approve"
        if new.status != ("approved" if approve else "rejected") or (approve and write is None):
            # another operator decided it between the check above and this decision
            return json_error(409, Message("api.already_decided", {"status": new.status}))
        event(log, "delist_request_decided", id=rid, key=new.key, status=new.status)
        return web.json_response({"request": request_object(new),
                                  "delisting": write.op if write else None})

    return ApiModule(name="lookup", routes=routes, paths=LOOKUP_PATHS, schemas={},
                     tags=[{"name": "lookup", "description": "public lookup pages and the "
                            "operator's queue of delisting requests"}])


# -- OpenAPI ------------------------------------------------------------------------------------

_HTML = {"text/html": {"schema": {"type": "string"}}}
_OP_ERRORS = {
    "401": {**ERROR_RESPONSE, "description": "no valid operator token"},
    "403": {**ERROR_RESPONSE, "description": "operator endpoints disabled (no tokens configured)"},
    "503": {**ERROR_RESPONSE, "description": "the store is unavailable"},
}
_SEC: list[dict[str, list[str]]] = [{"operatorToken": []}]
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "an IP address, a CIDR block (/ may be %2F), a domain or a mail address"}
_LANG = {"name": "lang", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["en", "vi"]},
         "description": "the page language; default from Accept-Language"}
_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"}}

LOOKUP_PATHS: dict[str, dict[str, Any]] = {
    "/lookup/": {"get": {
        "tags": ["lookup"], "operationId": "lookupForm",
        "summary": "A page with a form to look a key up (?key= redirects to its page)",
        "parameters": [{"name": "key", "in": "query", "required": False,
                        "schema": {"type": "string"}}, _LANG],
        "responses": {"200": {"description": "the form", "content": _HTML},
                      "303": {"description": "to /lookup/{key}"}}}},
    "/lookup/{key}": {
        "get": {
            "tags": ["lookup"], "operationId": "lookupPage",
            "summary": "Is this key listed, why, since and until when; a form asking for removal",
            "parameters": [_KEY, _LANG],
            "responses": {"200": {"description": "the page (listed or not)", "content": _HTML},
                          "400": {"description": "not a key we list", "content": _HTML},
                          "503": _OP_ERRORS["503"]}},
        "post": {
            "tags": ["lookup"], "operationId": "lookupRequestDelisting",
            "summary": "Ask for removal (form post; rate-limited per client IP)",
            "parameters": [_KEY, _LANG],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["reason"], "properties": {
                        "reason": {"type": "string", "maxLength": MAX_REASON},
                        "contact": {"type": "string", "maxLength": MAX_CONTACT}}}}}},
            "responses": {"303": {"description": "filed; to the request's status page "
                                                 "/lookup/request/{id}"},
                          "400": {"description": "no reason, or too long", "content": _HTML},
                          "404": {"description": "the key is not listed", "content": _HTML},
                          "429": {"description": "too many requests from this client",
                                  "content": _HTML},
                          "503": _OP_ERRORS["503"]}}},
    "/lookup/request/{id}": {"get": {
        "tags": ["lookup"], "operationId": "delistingRequestStatus",
        "summary": "The state of a delisting request (the unguessable id is the credential)",
        "parameters": [_ID, _LANG],
        "responses": {"200": {"description": "key, dates, pending/approved/rejected",
                              "content": _HTML},
                      "404": {"description": "no such request", "content": _HTML}}}},
    "/v1/delisting-requests": {"get": {
        "tags": ["lookup"], "operationId": "listDelistingRequests", "security": _SEC,
        "summary": "Delisting requests, oldest first, with their status page, one page at a "
                   "time (operator)",
        "description": (
            "Pending requests by time filed, decided ones by time decided, all by time "
            "filed; at most `limit` and `next_cursor` (null after the last page), to pass "
            "back as `cursor`. A request whose status does not change is answered exactly "
            "once across the pages; a client that sends no cursor gets the first page."),
        "parameters": [{"name": "status", "in": "query", "schema": {
            "type": "string", "enum": ["pending", "approved", "rejected"]}}, *PAGE_PARAMS],
        "responses": {"200": {"description": "requests", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"requests": {
                "type": "array", "items": {"allOf": [
                    {"$ref": "#/components/schemas/DelistRequest"},
                    {"type": "object", "properties": {"status_url": {"type": "string"}}}]}},
                "next_cursor": {"type": ["string", "null"]}}}}}},
            "400": {**ERROR_RESPONSE, "description": "bad status, limit or cursor"},
            **_OP_ERRORS}}},
    "/v1/delisting-requests/{id}": {"post": {
        "tags": ["lookup"], "operationId": "decideDelistingRequest", "security": _SEC,
        "summary": "Approve (the key is delisted now, DNS follows) or reject a request (operator)",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["decision"], "properties": {
                "decision": {"type": "string", "enum": ["approve", "reject"]},
                "note": {"type": "string", "maxLength": 2000}}}}}},
        "responses": {"200": {"description": "decided", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Decision"}}}},
            "400": {**ERROR_RESPONSE, "description": "no or bad decision"},
            "404": {**ERROR_RESPONSE, "description": "no such request"},
            "409": {**ERROR_RESPONSE, "description": "already decided, or an approval of a "
                    "request filed against a listing that has ended since"}, **_OP_ERRORS}}},
}
