"""What every console page shares: the session, the CSRF check, the page frame and the
OpenAPI entries of HTML routes.

Redis keys (hash tag ``{sw}``):

``sw:{sw}:ui:session:<sha256 of the session id>``
    string, JSON ``{"csrf", "token_hash", "created"}`` of one signed-in browser;
    TTL :data:`SESSION_TTL` (8 hours), not renewed. Only a hash of the id is stored,
    so reading Redis does not give a usable cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from aiohttp import web

from ...config import Config
from ...reputation.intake import ComplaintIntake
from ...reputation.store import store_error
from .._http import ApiContext
from ..lookup import escape, html_page

__all__ = [
    "COOKIE",
    "SESSION_TTL",
    "Console",
    "Page",
    "html_get",
    "html_post",
    "see_other",
    "session_key",
    "token_hash",
    "operator_label",
]

COOKIE = "sw_ui"
SESSION_TTL = 8 * 3600


def session_key(session_id: str) -> str:
    """The Redis key of a session (a hash of its id, never the id itself)."""
    return "sw:{sw}:ui:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def token_hash(token: str) -> str:
    """The SHA-256 of an operator token, as a session records it."""
    return hashlib.sha256(token.encode()).hexdigest()


def operator_label(sess: Mapping[str, Any]) -> str:
    """Which operator token a session signed in with, for the log: the first 12 hex
    digits of the token's SHA-256 (tokens have no names; the token itself is never
    logged, and the prefix tells the configured tokens apart)."""
    return str(sess.get("token_hash", ""))[:12]


def see_other(location: str) -> web.Response:
    """A ``303 See Other`` to ``location`` that no cache keeps."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


@dataclass(frozen=True)
class Page:
    """One entry of the console's navigation bar: ``href`` and its ``label``."""

    href: str
    label: str


class Console:
    """The signed-in side of the console, shared by every page module.

    :param ctx: the API's configuration, clock and listing store.
    :param nav: the navigation bar, in order.
    :param make_intake: builds the intake policy over a Redis client, as ``POST
        /v1/learn`` has it (``wiring.learner``); None: pages build a plain one.
    """

    def __init__(self, ctx: ApiContext, nav: Sequence[Page], *,
                 make_intake: Callable[[Config, Any], ComplaintIntake] | None = None) -> None:
        self.ctx = ctx
        self.make_intake = make_intake
        self.cfg = ctx.cfg
        self.store = ctx.store
        self.clock = ctx.clock
        self.secure = ctx.cfg.api.public_url.lower().startswith("https://")
        self._nav = ('<nav><p>' + " · ".join(
            f'<a href="{escape(p.href)}">{escape(p.label)}</a>' for p in nav) + "</p></nav>\n")

    async def session(self, request: web.Request) -> dict[str, Any] | None:
        """The request's session record, or None when it has none (or its token was
        removed from ``api.operator_tokens``).

        :raises SpamwardenError: Redis is unreachable.
        """
        sid = request.cookies.get(COOKIE, "")
        if not sid or len(sid) > 100:
            return None
        try:
            raw = await self.store.redis.get(session_key(sid))
        except redis.RedisError as exc:
            raise store_error(exc) from exc
        if not raw:
            return None
        data: dict[str, Any] = json.loads(raw)
        # a token removed from api.operator_tokens ends its sessions
        if not any(hmac.compare_digest(data.get("token_hash", ""), token_hash(t))
                   for t in self.cfg.api.operator_tokens if t):
            return None
        return data

    async def require(self, request: web.Request) -> dict[str, Any]:
        """The session, or a redirect to the sign-in page (raised as ``HTTPSeeOther``)."""
        sess = await self.session(request)
        if sess is None:
            raise web.HTTPSeeOther("/ui/login", headers={"Cache-Control": "no-store"})
        return sess

    async def form(self, request: web.Request, sess: dict[str, Any]) -> Any:
        """The posted form, once its ``csrf`` field matches the session's (constant-time).

        :raises web.HTTPForbidden: the CSRF token is missing or wrong.
        """
        data = await request.post()
        given = str(data.get("csrf", ""))
        if not given or not hmac.compare_digest(given, sess["csrf"]):
            raise web.HTTPForbidden(text="CSRF token missing or wrong")
        return data

    @staticmethod
    def csrf_field(sess: dict[str, Any]) -> str:
        """The hidden form field carrying the session's CSRF token."""
        return f'<input type="hidden" name="csrf" value="{escape(sess["csrf"])}">'

    def page(self, title: str, body: str, *, sess: dict[str, Any] | None = None,
             status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """A console page: the navigation bar and a sign-out button when signed in."""
        if sess is None:
            return html_page("en", title, body, status=status, headers=headers)
        logout = ('<form method="post" action="/ui/logout">' + self.csrf_field(sess)
                  + '<button type="submit">Sign out</button></form>\n')
        return html_page("en", title, self._nav + body + logout, status=status,
                         headers=headers)


_HTML = {"text/html": {"schema": {"type": "string"}}}


def html_get(summary: str, op: str, *, query: Sequence[str] = (),
             path_params: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI entry of a console page (GET)."""
    entry: dict[str, Any] = {
        "tags": ["console"], "operationId": op, "summary": summary,
        "responses": {"200": {"description": "the page", "content": _HTML},
                      "303": {"description": "not signed in: to /ui/login"}}}
    params = ([{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
               for n in path_params]
              + [{"name": n, "in": "query", "schema": {"type": "string"}} for n in query])
    if params:
        entry["parameters"] = params
    return {"get": entry}


def html_post(summary: str, op: str, *, path_params: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI entry of a console form target (POST, CSRF-checked)."""
    entry: dict[str, Any] = {
        "tags": ["console"], "operationId": op, "summary": summary,
        "responses": {"303": {"description": "done; to the next page"},
                      "403": {"description": "CSRF token missing or wrong"}}}
    if path_params:
        entry["parameters"] = [{"name": n, "in": "path", "required": True,
                                "schema": {"type": "string"}} for n in path_params]
    return {"post": entry}
