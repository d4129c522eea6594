"""Signing in and out, and the console's home page.

Sign-in: the operator types one of ``api.operator_tokens`` at ``/ui/login``; the
console then keeps a server-side session and gives the browser only its random id,
in a cookie that is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui/`` and ``Secure``
when ``api.public_url`` is https. Sign-in attempts are rate-limited per client
(``api.login_attempts_per_hour``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import redis
from aiohttp import web

from ...reputation.store import store_error
from .._http import rate_client, token_ok
from ..lookup import escape
from ._base import (
    COOKIE,
    SESSION_TTL,
    Console,
    html_get,
    html_post,
    see_other,
    session_key,
    token_hash,
)

__all__ = ["NAV", "build"]

NAV = None


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the sign-in, sign-out and home routes; return their OpenAPI paths."""
    store, cfg, clock = ui.store, ui.cfg, ui.clock

    def login_page(error: str = "", status: int = 200) -> web.Response:
        err = f'<p class="err">{escape(error)}</p>' if error else ""
        return ui.page("spamwarden console: sign in", err + (
            '<form method="post" action="/ui/login"><p><label>Operator token<br>'
            '<input name="token" type="password" autocomplete="off" maxlength="200" required>'
            '</label></p><p><button type="submit">Sign in</button></p></form>\n'), status=status)

    @routes.get("/ui/login")
    async def login_form(request: web.Request) -> web.StreamResponse:
        return login_page()

    @routes.post("/ui/login")
    async def login(request: web.Request) -> web.StreamResponse:
        now = clock.now()
        if not await store.rate_allow("ui-login", rate_client(request),
                                      limit=cfg.api.login_attempts_per_hour, now=now):
            return login_page("Too many sign-in attempts from your address; try later.", 429)
        if not any(cfg.api.operator_tokens):
            return login_page("The console is disabled: api.operator_tokens is empty.", 403)
        data = await request.post()
        token = str(data.get("token", ""))[:200]
        if not token_ok(token, cfg.api.operator_tokens):
            return login_page("That is not an operator token.", 401)
        sid = secrets.token_urlsafe(32)
        record = {"csrf": secrets.token_urlsafe(32), "token_hash": token_hash(token),
                  "created": now}
        try:
            await store.redis.set(session_key(sid), json.dumps(record), ex=SESSION_TTL)
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        resp = see_other("/ui/")
        resp.set_cookie(COOKIE, sid, max_age=SESSION_TTL, path="/ui/", httponly=True,
                        samesite="Strict", secure=ui.secure)
        return resp

    @routes.post("/ui/logout")
    async def logout(request: web.Request) -> web.StreamResponse:
        sess = await ui.session(request)
        if sess is not None:
            await ui.form(request, sess)
            try:
                await store.redis.delete(session_key(request.cookies[COOKIE]))
            except redis.RedisError as exc:
                raise store_error(exc) from exc
        resp = see_other("/ui/login")
        resp.del_cookie(COOKIE, path="/ui/")
        return resp

    @routes.get("/ui/")
    async def home(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        pending = await store.count_delist_requests(status="pending")
        body = (f"<p>{pending} delisting request(s) waiting.</p>\n"
                '<form method="get" action="/ui/history"><p><label>Find a message by queue id '
                '<input name="queue_id" maxlength="64"></label> '
                '<button type="submit">Find</button></p></form>\n')
        return ui.page("spamwarden console", body, sess=sess)

    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/ui/login": {
            "get": {"tags": ["console"], "operationId": "consoleLoginForm",
                    "summary": "Sign-in form (operator token)",
                    "responses": {"200": {"description": "the form", "content": html}}},
            "post": {"tags": ["console"], "operationId": "consoleLogin",
                     "summary": "Sign in: form field token; sets the HttpOnly, SameSite=Strict "
                                "session cookie",
                     "responses": {"303": {"description": "signed in; to /ui/"},
                                   "401": {"description": "not an operator token",
                                           "content": html},
                                   "429": {"description": "too many attempts", "content": html}}}},
        "/ui/logout": html_post("Sign out (form field csrf)", "consoleLogout"),
        "/ui/": html_get("Console home", "consoleHome"),
    }
