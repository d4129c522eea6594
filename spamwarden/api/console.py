"""The operator console at ``/ui/``: message history, listings and the delisting queue
in a browser, for support staff answering "why was my mail rejected?".

Sign-in: the operator types one of ``api.operator_tokens`` at ``/ui/login``; the
console then keeps a server-side session and gives the browser only its random id,
in a cookie that is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui/`` and ``Secure``
when ``api.public_url`` is https. Every form that changes something carries the
session's CSRF token (checked in constant time) besides the cookie; sign-in attempts
are rate-limited per client (:data:`LOGIN_ATTEMPTS_PER_HOUR`). Removing a token from
``api.operator_tokens`` ends the sessions opened with it at their next request.

Redis keys (hash tag ``{sw}``):

``sw:{sw}:ui:session:<sha256 of the session id>``
    string, JSON ``{"csrf", "token_hash", "created"}`` of one signed-in browser;
    TTL :data:`SESSION_TTL` (8 hours), not renewed. Only a hash of the id is stored,
    so reading Redis does not give a usable cookie.

Pages are English only and, like the lookup pages, self-contained and escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import redis
from aiohttp import web

from ..reputation.history import MAX_LIMIT, HistoryFilter, aread_history
from ..reputation.listings import utc_iso
from ..reputation.store import store_error
from ._http import ApiContext, ApiModule, client_ip, token_ok
from .lookup import REQUEST_ID_PATTERN, escape, html_page

__all__ = [
    "CONSOLE_PATHS",
    "COOKIE",
    "LOGIN_ATTEMPTS_PER_HOUR",
    "SESSION_TTL",
    "console_module",
    "session_key",
]

COOKIE = "sw_ui"
SESSION_TTL = 8 * 3600
LOGIN_ATTEMPTS_PER_HOUR = 20
_ACTIONS = ("accept", "tag", "quarantine", "reject", "tempfail")


def session_key(session_id: str) -> str:
    """The Redis key of a session (a hash of its id, never the id itself)."""
    return "sw:{sw}:ui:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_NAV = ('<p><a href="/ui/">Home</a> · <a href="/ui/history">History</a> · '
        '<a href="/ui/listings">Listings</a> · <a href="/ui/requests">Delisting requests</a></p>\n')


def _page(title: str, body: str, *, status: int = 200, csrf: str = "",
          headers: dict[str, str] | None = None) -> web.Response:
    logout = (f'<form method="post" action="/ui/logout"><input type="hidden" name="csrf" '
              f'value="{escape(csrf)}"><button type="submit">Sign out</button></form>\n'
              if csrf else "")
    return html_page("en", title, (_NAV if csrf else "") + body + logout, status=status,
                     headers=headers)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def console_module(ctx: ApiContext) -> ApiModule:
    """The ``/ui/`` pages."""
    routes = web.RouteTableDef()
    cfg = ctx.cfg
    store = ctx.store
    clock = ctx.clock
    secure = cfg.api.public_url.lower().startswith("https://")

    async def session(request: web.Request) -> dict[str, Any] | None:
        sid = request.cookies.get(COOKIE, "")
        if not sid or len(sid) > 100:
            return None
        try:
            raw = await store.redis.get(session_key(sid))
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        if not raw:
            return None
        data: dict[str, Any] = json.loads(raw)
        # a token removed from api.operator_tokens ends its sessions
        if not any(hmac.compare_digest(data.get("token_hash", ""), _token_hash(t))
                   for t in cfg.api.operator_tokens if t):
            return None
        return data

    def to_login() -> web.Response:
        return _see_other("/ui/login")

    async def form_with_csrf(request: web.Request, sess: dict[str, Any]) -> Any:
        data = await request.post()
        given = str(data.get("csrf", ""))
        if not given or not hmac.compare_digest(given, sess["csrf"]):
            raise web.HTTPForbidden(text="CSRF token missing or wrong")
        return data

    def login_page(error: str = "", status: int = 200) -> web.Response:
        err = f'<p class="err">{escape(error)}</p>' if error else ""
        return _page("spamwarden console: sign in", err + (
            '<form method="post" action="/ui/login"><p><label>Operator token<br>'
            '<input name="token" type="password" autocomplete="off" maxlength="200" required>'
            '</label></p><p><button type="submit">Sign in</button></p></form>\n'), status=status)

    @routes.get("/ui/login")
    async def login_form(request: web.Request) -> web.StreamResponse:
        return login_page()

    @routes.post("/ui/login")
    async def login(request: web.Request) -> web.StreamResponse:
        now = clock.now()
        if not await store.rate_allow("ui-login", client_ip(request),
                                      limit=LOGIN_ATTEMPTS_PER_HOUR, now=now):
            return login_page("Too many sign-in attempts from your address; try later.", 429)
        if not any(cfg.api.operator_tokens):
            return login_page("The console is disabled: api.operator_tokens is empty.", 403)
        data = await request.post()
        token = str(data.get("token", ""))[:200]
        if not token_ok(token, cfg.api.operator_tokens):
            return login_page("That is not an operator token.", 401)
        sid = secrets.token_urlsafe(32)
        record = {"csrf": secrets.token_urlsafe(32), "token_hash": _token_hash(token),
                  "created": now}
        try:
            await store.redis.set(session_key(sid), json.dumps(record), ex=SESSION_TTL)
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        resp = _see_other("/ui/")
        resp.set_cookie(COOKIE, sid, max_age=SESSION_TTL, path="/ui/", httponly=True,
                        samesite="Strict", secure=secure)
        return resp

    @routes.post("/ui/logout")
    async def logout(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is not None:
            await form_with_csrf(request, sess)
            try:
                await store.redis.delete(session_key(request.cookies[COOKIE]))
            except redis.RedisError as exc:
                raise store_error(exc) from exc
        resp = _see_other("/ui/login")
        resp.del_cookie(COOKIE, path="/ui/")
        return resp

    @routes.get("/ui/")
    async def home(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is None:
            return to_login()
        pending = await store.delist_requests(now=clock.now(), status="pending", limit=1000)
        body = (f"<p>{len(pending)} delisting request(s) waiting.</p>\n"
                '<form method="get" action="/ui/history"><p><label>Find a message by queue id '
                '<input name="queue_id" maxlength="64"></label> '
                '<button type="submit">Find</button></p></form>\n')
        return _page("spamwarden console", body, csrf=sess["csrf"])

    @routes.get("/ui/history")
    async def history(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is None:
            return to_login()
        q = request.query
        queue_id, rcpt, action = (q.get("queue_id", "")[:64], q.get("rcpt", "")[:320],
                                  q.get("action", ""))
        if action not in _ACTIONS:
            action = ""
        try:
            limit = max(1, min(int(q.get("limit", "100")), MAX_LIMIT))
        except ValueError:
            limit = 100
        rows = await aread_history(store.redis, limit=limit, want=HistoryFilter(
            queue_id=queue_id, rcpt=rcpt, action=action))
        options = "".join(f'<option{" selected" if a == action else ""}>{a}</option>'
                          for a in ("",) + _ACTIONS)
        form = ('<form method="get" action="/ui/history"><p>'
                f'<label>Queue id <input name="queue_id" value="{escape(queue_id)}" '
                'maxlength="64"></label> '
                f'<label>Recipient <input name="rcpt" value="{escape(rcpt)}" maxlength="320">'
                f'</label> <label>Action <select name="action">{options}</select></label> '
                '<button type="submit">Search</button></p></form>\n')
        if queue_id and len(rows) == 1:
            return _page(f"Message {queue_id}", form + _detail(rows[0]), csrf=sess["csrf"])
        table = "".join(
            f"<tr><td>{escape(utc_iso(float(e.get('time', 0))))}</td>"
            f'<td><a href="/ui/history?{escape(urlencode({"queue_id": e.get("queue_id", "")}))}">'
            f"{escape(e.get('queue_id', ''))}</a></td><td>{escape(e.get('action', ''))}</td>"
            f"<td>{escape(e.get('score', ''))}</td><td>{escape(e.get('client_ip', ''))}</td>"
            f"<td>{escape(e.get('from', ''))}</td><td>{escape(', '.join(e.get('rcpt', ())))}</td>"
            f"<td>{escape(e.get('subject', ''))}</td></tr>" for e in rows)
        body = form + (
            "<table><tr><th>time</th><th>queue id</th><th>action</th><th>score</th>"
            "<th>client</th><th>from</th><th>to</th><th>subject</th></tr>"
            f"{table}</table>\n<p>{len(rows)} message(s).</p>\n")
        return _page("Message history", body, csrf=sess["csrf"])

    @routes.get("/ui/listings")
    async def listings(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is None:
            return to_login()
        items = await store.all(now=clock.now())
        rows = "".join(
            f'<tr><td><a href="/lookup/{escape(x.key.replace("/", "%2F"))}">{escape(x.key)}</a>'
            f"</td><td>{escape(x.reason)}</td><td>{escape(utc_iso(x.listed_at))}</td>"
            f"<td>{escape(utc_iso(x.expires_at))}</td><td>{x.offences}</td>"
            f"<td>{escape(x.note)}</td></tr>" for x in items[:1000])
        body = ("<table><tr><th>key</th><th>reason</th><th>since</th><th>until</th>"
                f"<th>times</th><th>note</th></tr>{rows}</table>\n"
                f"<p>{len(items)} active listing(s){'; the first 1000 shown' if len(items) > 1000 else ''}.</p>\n")
        return _page("Listings", body, csrf=sess["csrf"])

    @routes.get("/ui/requests")
    async def requests_page(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is None:
            return to_login()
        reqs = await store.delist_requests(now=clock.now(), status="pending", limit=1000)
        csrf = escape(sess["csrf"])
        rows = "".join(
            f"<tr><td>{escape(utc_iso(r.filed_at))}</td><td>{escape(r.key)}</td>"
            f"<td>{escape(r.reason)}</td><td>{escape(r.contact)}</td><td>{escape(r.client)}</td>"
            f'<td><form method="post" action="/ui/requests/{escape(r.id)}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<input name="note" placeholder="note" maxlength="2000"> '
            '<button name="decision" value="approve">Approve (delist)</button> '
            '<button name="decision" value="reject">Reject</button></form></td></tr>'
            for r in reqs)
        body = ("<table><tr><th>filed</th><th>key</th><th>what they fixed</th><th>contact</th>"
                f"<th>client</th><th>decide</th></tr>{rows}</table>\n"
                f"<p>{len(reqs)} pending request(s).</p>\n")
        return _page("Delisting requests", body, csrf=sess["csrf"])

    @routes.post("/ui/requests/{id:" + REQUEST_ID_PATTERN + "}")
    async def decide(request: web.Request) -> web.StreamResponse:
        sess = await session(request)
        if sess is None:
            return to_login()
        data = await form_with_csrf(request, sess)
        decision = str(data.get("decision", ""))
        if decision not in ("approve", "reject"):
            raise web.HTTPBadRequest(text="decision must be approve or reject")
        rid = request.match_info["id"]
        current = await store.get_delist_request(rid)
        if current is not None and current.status == "pending":
            await store.decide_delist_request(rid, approve=decision == "approve",
                                              note=str(data.get("note", ""))[:2000],
                                              now=clock.now())
        raise web.HTTPSeeOther("/ui/requests")

    return ApiModule(name="console", routes=routes, paths=CONSOLE_PATHS,
                     tags=[{"name": "console", "description": "the operator console (HTML; "
                            "session cookie after signing in with an operator token)"}])


def _detail(e: dict[str, Any]) -> str:
    auth = e.get("auth") or {}
    parts = []
    for name in ("spf", "dmarc"):
        a = auth.get(name)
        if a:
            parts.append(f"{name}={a.get('result')} ({a.get('domain')})")
    parts += [f"dkim={d.get('result')} ({d.get('domain')})" for d in auth.get("dkim", ())]
    rows = [
        ("time", utc_iso(float(e.get("time", 0)))), ("queue id", e.get("queue_id", "")),
        ("action", e.get("action", "")), ("score", f"{e.get('score')} / {e.get('required')}"),
        ("reason", e.get("reason", "")), ("client", f"{e.get('client_ip')} ({e.get('helo')})"),
        ("envelope from", e.get("from", "")), ("recipients", ", ".join(e.get("rcpt", ()))),
        ("From", e.get("header_from", "")), ("Subject", e.get("subject", "(not kept)")),
        ("Message-ID", e.get("message_id", "")), ("authentication", "; ".join(parts)),
    ]
    syms = "".join(f"<tr><td>{escape(s.get('name'))}</td><td>{escape(s.get('points'))}</td>"
                   f"<td>{escape(s.get('detail'))}</td></tr>" for s in e.get("symbols", ()))
    return ("<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
            + "</dl>\n<table><tr><th>symbol</th><th>points</th><th>detail</th></tr>"
            + syms + "</table>\n")


_HTML = {"text/html": {"schema": {"type": "string"}}}


def _get(summary: str, op: str) -> dict[str, Any]:
    return {"get": {"tags": ["console"], "operationId": op, "summary": summary,
                    "responses": {"200": {"description": "the page", "content": _HTML},
                                  "303": {"description": "not signed in: to /ui/login"}}}}


def _post(summary: str, op: str) -> dict[str, Any]:
    return {"post": {"tags": ["console"], "operationId": op, "summary": summary,
                     "responses": {"303": {"description": "done; to the next page"},
                                   "403": {"description": "CSRF token missing or wrong"}}}}


CONSOLE_PATHS: dict[str, dict[str, Any]] = {
    "/ui/login": {
        "get": {"tags": ["console"], "operationId": "consoleLoginForm",
                "summary": "Sign-in form (operator token)",
                "responses": {"200": {"description": "the form", "content": _HTML}}},
        "post": {"tags": ["console"], "operationId": "consoleLogin",
                 "summary": "Sign in: form field token; sets the HttpOnly, SameSite=Strict "
                            "session cookie",
                 "responses": {"303": {"description": "signed in; to /ui/"},
                               "401": {"description": "not an operator token", "content": _HTML},
                               "429": {"description": "too many attempts", "content": _HTML}}}},
    "/ui/logout": _post("Sign out (form field csrf)", "consoleLogout"),
    "/ui/": _get("Console home", "consoleHome"),
    "/ui/history": {"get": {**_get("Message history search; one queue id shows the message",
                                   "consoleHistory")["get"],
                            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                                           for n in ("queue_id", "rcpt", "action", "limit")]}},
    "/ui/listings": _get("Active listings", "consoleListings"),
    "/ui/requests": _get("Pending delisting requests with approve / reject", "consoleRequests"),
    "/ui/requests/{id}": {"post": {**_post("Decide a request (form fields csrf, decision, note)",
                                           "consoleDecide")["post"],
                                   "parameters": [{"name": "id", "in": "path", "required": True,
                                                   "schema": {"type": "string"}}]}},
}
