"""The operator console at ``/ui/``: message history, listings and the delisting queue
in a browser, for support staff answering "why was my mail rejected?".

One module per page group (:mod:`.auth`, :mod:`.history`, :mod:`.listings`,
:mod:`.requests`, …), each with a ``NAV`` entry (or None) and a ``build(ui, routes)``
that adds its routes and returns their OpenAPI paths; :class:`._base.Console` is what
they share (the session, the CSRF check, the page frame). Adding a page is adding a
module and naming it in :data:`PAGES`.

Sign-in and sessions: :mod:`.auth`. Every form that changes something carries the
session's CSRF token (checked in constant time) besides the cookie. Removing a token
from ``api.operator_tokens`` ends the sessions opened with it at their next request.

Pages are English only and, like the lookup pages, self-contained and escaped: no
script, style sheet or font is fetched from anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...config import Config
from ...reputation.intake import ComplaintIntake
from .._http import ApiContext, ApiModule
from . import auth, charts, consent, history, listings, quarantine, requests, unmatched
from ._base import COOKIE, SESSION_TTL, Console, Page, session_key

__all__ = [
    "COOKIE",
    "PAGES",
    "SESSION_TTL",
    "console_module",
    "session_key",
]

#: the page modules, in navigation order
PAGES = (
    auth,
    history,
    listings,
    requests,
    unmatched,
    consent,
    charts,
    quarantine,
)


def console_module(ctx: ApiContext, *,
                   make_intake: Callable[[Config, Any], ComplaintIntake] | None = None
                   ) -> ApiModule:
    """The ``/ui/`` pages.

    :param ctx: the API's configuration, clock and listing store.
    :param make_intake: the intake policy ``POST /v1/learn`` uses (``wiring.learner``),
        for the quarantine's release-and-learn.
    :returns: the console's routes and their OpenAPI description.
    """
    nav = [Page("/ui/", "Home")] + [p.NAV for p in PAGES if p.NAV is not None]
    ui = Console(ctx, nav, make_intake=make_intake)
    routes = web.RouteTableDef()
    paths: dict[str, Any] = {}
    for module in PAGES:
        paths.update(module.build(ui, routes))
    return ApiModule(name="console", routes=routes, paths=paths,
                     tags=[{"name": "console", "description": "the operator console (HTML; "
                            "session cookie after signing in with an operator token)"}])
