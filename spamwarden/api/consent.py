"""HTTP routes of the consent registry, mounted by the API application.

The API application loads :func:`consent_module` (named in
``spamwarden.wiring.api_modules``); the OpenAPI description of every
route is :data:`CONSENT_PATHS`. Standalone:
``app.add_routes(ConsentApi.from_config(cfg).routes())``.

Recipients (no bearer token; the signed token in the path is the credential):

* ``GET /u/{token}`` - a small page asking to confirm (a GET never unsubscribes:
  link scanners fetch links);
* ``POST /u/{token}`` - RFC 8058 one-click: records the refusal of that advertiser
  with no further interaction.  With the form field ``scope=all`` it also mails the
  recipient a link (``/a/``) to refuse all advertising: an unsubscribe token is
  issued to an advertiser, so it proves no more than a refusal of that advertiser.
  That mail goes only to a recipient at ``intake.local_domains``, at most once a day
  per recipient and ``consent.max_all_requests_per_day`` a day per advertiser;
* ``GET /a/{token}`` - asks; ``POST /a/{token}`` - records the refusal of all
  advertising (the token was mailed to the recipient only);
* ``GET /r/{token}`` - the records of one advertiser about the recipient and the
  recipient's refusal of all advertising (HTML, or JSON with ``Accept:
  application/json``); never another advertiser's.

Operators (``Authorization: Bearer`` one of ``api.operator_tokens``) and advertisers
(``Bearer`` the token printed at registration, for their own id only):

* ``POST /v1/advertisers`` (operator) - register ``{id, name, contact, domains}``;
  201 with the advertiser's token; ``GET /v1/advertisers`` (operator) - every id;
* ``GET /v1/advertisers/{adv}`` - the advertiser and its counts;
* ``POST /v1/advertisers/{adv}/domains`` (operator) - add ``{domains: [...]}``;
* ``POST /v1/advertisers/{adv}/consents`` - bulk ``{consents: [{recipient, method,
  at, evidence, expires_at, max_per_day}]}``, at most :data:`MAX_BULK`, all or nothing;
  only for recipients at this site's own domains (``intake.local_domains``): a consent
  yields an unsubscribe token, and that token's ``scope=all`` mails the recipient;
* ``GET /v1/advertisers/{adv}/consents?format=json|csv`` - export;
* ``GET /v1/advertisers/{adv}/refusals?since=<unix time>`` - refusals;
* ``GET /v1/advertisers/{adv}/counts`` - consents, refusals, ads delivered;
* ``GET /v1/advertisers/{adv}/recipients/{rcpt}`` - may one more ad go now, and why;
* ``GET /v1/advertisers/{adv}/unsubscribe-url?recipient=`` - URL and the two headers,
  only for a recipient the advertiser holds consent for (else 409);
* ``GET /v1/recipients/{rcpt}`` (operator) - every record of one recipient;
* ``POST /v1/refusals`` (operator) - ``{recipient, advertiser?}``.

Errors are JSON ``{"error": "...", "code": "...", "message": "...", "status": N}`` (the
API's shared :func:`~spamwarden.api._http.json_error`) with 400 (bad input), 401 (no or bad
token, with ``WWW-Authenticate: Bearer``), 403 (another advertiser's data; operator
endpoints when ``api.operator_tokens`` is empty), 404, 409 (domain taken; no consent
for an unsubscribe URL), 413, 503
(store unreachable). Operator tokens are checked by the shared
:func:`~spamwarden.api._http.operator_denied` / :func:`~spamwarden.api._http.token_ok`. Registry calls run in worker threads (``asyncio.to_thread``):
one implementation of every rule, shared with the threaded milter.
"""

from __future__ import annotations

import asyncio
import html as _h
import io
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..config import Config
from ..consent.confirmations import (
    ConfirmationSender,
    all_advertising_request,
    sender_from_config,
)
from ..consent.records import advertiser_json, export_records, iso, parse_time
from ..consent.registry import (
    GLOBAL,
    METHODS,
    ConsentRecord,
    DomainTaken,
    RecipientRecords,
    RedisConsentRegistry,
    UnknownAdvertiser,
    normalize_advertiser_id,
    normalize_recipient,
    registry_from_config,
)
from ..consent.texts import page, text
from ..consent.unsubscribe import (
    InvalidToken,
    TokenSigner,
    list_unsubscribe_headers,
    sibling_url,
    signer_from_config,
    unsubscribe_url,
)
from ..errors import StoreError, StoreUnavailable
from ..i18n import detail
from ..logs import event
from ..mail import normalize_domain
from ._http import (
    ApiContext,
    ApiModule,
    Handler,
    Message,
    bearer_token,
    json_error,
    operator_denied,
    token_ok,
)

__all__ = ["ConsentApi", "MAX_BULK", "consent_module", "CONSENT_PATHS"]

log = logging.getLogger("spamwarden.api.consent")

#: consent records accepted in one bulk request
MAX_BULK = 10_000

def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex",
                 "Referrer-Policy": "no-referrer"},
    )


def _consent_json(c: ConsentRecord) -> dict[str, Any]:
    return {
        "advertiser": c.advertiser, "recipient": c.recipient, "method": c.method,
        "at": iso(c.at), "evidence": c.evidence, "expires_at": iso(c.expires_at) or None,
        "max_per_day": c.max_per_day or None, "recorded_at": iso(c.recorded_at),
    }


def _refusal_json(r: Any) -> dict[str, Any]:
    return {
        "advertiser": None if r.advertiser == GLOBAL else r.advertiser,
        "all_advertising": r.advertiser == GLOBAL, "recipient": r.recipient,
        "at": iso(r.at), "channel": r.channel, "confirmed_at": iso(r.confirmed_at) or None,
    }


def _records_json(rr: RecipientRecords) -> dict[str, Any]:
    return {
        "recipient": rr.recipient,
        "consents": [_consent_json(c) for c in rr.consents],
        "refusals": [_refusal_json(r) for r in rr.refusals],
    }


class ConsentApi:
    """The consent routes over one registry and token signer.

    :param cfg: the configuration (``[consent]``, ``api.operator_tokens``).
    :param registry: the consent registry.
    :param signer: one-click / lookup token signer.
    :param sender: delivers the request to confirm a refusal of all advertising
        (``consent.confirmation_relay``); ``None``: the page tells the recipient to
        mail ``ALL`` to the opt-out address instead.
    :param from_addr: the sender address of that request.
    """

    def __init__(self, cfg: Config, registry: RedisConsentRegistry, signer: TokenSigner, *,
                 sender: ConfirmationSender | None = None, from_addr: str = "") -> None:
        self.cfg = cfg
        self.registry = registry
        self.signer = signer
        self.sender = sender
        self.from_addr = from_addr or "postmaster@localhost"
        self.lang = cfg.consent.language
        self.local_domains = _site_domains(cfg)
        self._operator_tokens = tuple(t for t in cfg.api.operator_tokens if t)

    @classmethod
    def from_config(cls, cfg: Config, *, client: Any | None = None) -> ConsentApi:
        """Routes over the configured Redis (``client``: a sync ``redis.Redis``).

        :raises ConfigError: the token key is unusable.
        """
        sender, from_addr = sender_from_config(cfg)
        return cls(cfg, registry_from_config(cfg, client), signer_from_config(cfg),
                   sender=sender, from_addr=from_addr)

    def routes(self) -> list[web.RouteDef]:
        """The route table to ``app.add_routes(...)``."""
        g = self._guard
        return [
            web.get("/u/{token}", g(self.unsubscribe_page)),
            web.post("/u/{token}", g(self.unsubscribe_post)),
            web.get("/a/{token}", g(self.refuse_all_page)),
            web.post("/a/{token}", g(self.refuse_all_post)),
            web.get("/r/{token}", g(self.recipient_page)),
            web.post("/v1/advertisers", g(self.advertiser_create)),
            web.get("/v1/advertisers", g(self.advertiser_list)),
            web.get("/v1/advertisers/{adv}", g(self.advertiser_get)),
            web.post("/v1/advertisers/{adv}/domains", g(self.advertiser_domains)),
            web.post("/v1/advertisers/{adv}/consents", g(self.consents_submit)),
            web.get("/v1/advertisers/{adv}/consents", g(self.consents_export)),
            web.get("/v1/advertisers/{adv}/refusals", g(self.refusals_list)),
            web.get("/v1/advertisers/{adv}/counts", g(self.counts)),
            web.get("/v1/advertisers/{adv}/recipients/{rcpt}", g(self.recipient_state)),
            web.get("/v1/advertisers/{adv}/unsubscribe-url", g(self.unsubscribe_url)),
            web.get("/v1/recipients/{rcpt}", g(self.recipient_records)),
            web.post("/v1/refusals", g(self.refusal_create)),
        ]

    # -- plumbing ------------------------------------------------------------------------------

    def _guard(self, handler: Handler) -> Handler:
        """Map registry errors to HTTP answers (a store error is never a 500 page)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except StoreUnavailable as exc:
                event(log, "consent_api_store_unavailable", path=request.path, error=str(exc))
                return json_error(503, Message("api.registry_unavailable"),
                                  headers={"Retry-After": "5"})
            except UnknownAdvertiser as exc:
                return json_error(404, exc)
            except DomainTaken as exc:
                return json_error(409, exc)
            except StoreError as exc:
                event(log, "consent_api_store_error", path=request.path, error=str(exc))
                return json_error(503, Message("api.registry_failed"))
            except ValueError as exc:  # a bad id or address found deeper down
                return json_error(400, exc)

        wrapped.__name__ = handler.__name__
        if handler.__name__ not in ("unsubscribe_page", "unsubscribe_post", "recipient_page",
                                    "refuse_all_page", "refuse_all_post"):
            wrapped.operator_only = True  # type: ignore[attr-defined]  # needs a bearer token
        return wrapped

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _who(self, request: web.Request, adv: str) -> str | web.Response:
        """``"operator"``, ``"advertiser"`` (a valid token of ``adv``), or the error response."""
        token = bearer_token(request)
        if token is None:
            return json_error(401, Message("api.token_missing"),
                              headers={"WWW-Authenticate": 'Bearer realm="spamwarden"'})
        if token_ok(token, self._operator_tokens):
            return "operator"
        if await self._run(self.registry.check_advertiser_token, adv, token):
            return "advertiser"
        return json_error(403, Message("api.token_wrong_advertiser"))

    async def _operator(self, request: web.Request) -> web.Response | None:
        """``None`` for an operator token, else the shared operator error (401 / 403)."""
        return operator_denied(request, self._operator_tokens)

    async def _advertiser(self, request: web.Request) -> tuple[str, web.Response | None]:
        try:
            adv = normalize_advertiser_id(request.match_info["adv"])
        except ValueError as exc:
            return "", json_error(400, exc)
        who = await self._who(request, adv)
        if isinstance(who, web.Response):
            return adv, who
        if await self._run(self.registry.advertiser, adv) is None:
            return adv, json_error(404, Message("api.no_advertiser", {"advertiser": repr(adv)}))
        return adv, None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nested deeper than the parser goes, within the body limit
            return json_error(400, Message("api.body_not_object"))
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, Message("api.body_too_large"))
        if not isinstance(data, dict):
            return json_error(400, Message("api.body_not_object"))
        return data

    # -- recipients ----------------------------------------------------------------------------

    def _is_local(self, rcpt: str) -> bool:
        """Whether the normalised address ``rcpt`` is at one of this site's domains."""
        return rcpt.rpartition("@")[2] in self.local_domains

    def _claims(self, request: web.Request, purpose: str = "u") -> Any:
        try:
            return self.signer.verify(request.match_info["token"], purpose=purpose)  # type: ignore[arg-type]
        except InvalidToken:
            return None

    def _invalid_page(self) -> web.Response:
        body = text(self.lang, "page.invalid.body")
        return _html(page(self.lang, "page.invalid.title", body), status=403)

    async def _advertiser_name(self, adv: str) -> str:
        a = await self._run(self.registry.advertiser, adv)
        return a.name if a is not None and a.name else adv

    async def unsubscribe_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /u/{token}``: a page confirming the unsubscribe; only the POST unsubscribes."""
        claims = self._claims(request)
        if claims is None:
            return self._invalid_page()
        name = await self._advertiser_name(claims.advertiser)
        lang = self.lang
        body = text(lang, "page.confirm.body", advertiser=name, rcpt=claims.recipient)
        form = (
            f'<form method="post"><input type="hidden" name="List-Unsubscribe" '
            f'value="One-Click"><p><label><input type="checkbox" name="scope" value="all"> '
            f'{_h.escape(text(lang, "page.confirm.all", rcpt=claims.recipient))}</label></p>'
            f'<p><button type="submit">{_h.escape(text(lang, "page.confirm.button"))}'
            "</button></p></form>\n"
        )
        return _html(page(lang, "page.confirm.title", body, extra_html=form))

    async def unsubscribe_post(self, request: web.Request) -> web.StreamResponse:
        """RFC 8058 §3.2: the POST alone records the refusal (body
        ``List-Unsubscribe=One-Click``; no cookie, no redirect, no second step)."""
        claims = self._claims(request)
        if claims is None:
            event(log, "unsubscribe_token_invalid", peer=request.remote)
            return self._invalid_page()
        scope = ""
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
                scope = str(form.get("scope", ""))
            except ValueError:
                scope = ""
        # The token proves a refusal of its advertiser, nothing more: it was issued to that
        # advertiser. Refusing all advertising takes the recipient's own confirmation.
        adv = claims.advertiser
        rec, created = await self._run(
            self.registry.refuse, claims.recipient, adv=adv, channel="one-click"
        )
        first = await self._run(self.registry.claim_confirmation, claims.recipient, adv=adv)
        event(log, "unsubscribed", advertiser=adv, rcpt=claims.recipient, new=created,
              confirmed=first, all_requested=scope == "all")
        when = iso(rec.at).replace("T", " ").rstrip("Z")[:19]
        name = await self._advertiser_name(adv)
        if scope == "all":
            body = await self._request_all(claims.recipient, adv=adv, advertiser_name=name)
        else:
            body = text(self.lang, "page.done.body", advertiser=name, rcpt=claims.recipient,
                        when=when)
        link = (
            f'<p><a href="../r/{self.signer.lookup_token(adv, claims.recipient)}">'
            f'{_h.escape(text(self.lang, "page.lookup.link", rcpt=claims.recipient))}</a></p>\n'
        )
        return _html(page(self.lang, "page.done.title", body, extra_html=link))

    async def _request_all(self, rcpt: str, *, adv: str, advertiser_name: str) -> str:
        """Mail ``rcpt`` the link refusing all advertising; the page text saying so, or
        why nothing is sent.

        The request was made with ``adv``'s unsubscribe token, which ``adv`` holds: it is
        mailed only to this site's own recipients, at most once a day per recipient and
        ``consent.max_all_requests_per_day`` a day for ``adv``'s links, so that an
        advertiser cannot have the site mail addresses of its choice.
        """
        if not self._is_local(rcpt):
            event(log, "refuse_all_request_not_local", logging.WARNING, advertiser=adv,
                  rcpt=rcpt)
            return text(self.lang, "page.all_not_local.body", advertiser=advertiser_name,
                        rcpt=rcpt)
        by_mail = text(self.lang, "page.all_by_mail.body", advertiser=advertiser_name,
                       rcpt=rcpt, optout=self._optout_address())
        if self.sender is None:
            return by_mail
        # Not claimed: mailed already today, and the page points at that message.
        if await self._run(self.registry.claim_all_request, rcpt):
            limit = self.cfg.consent.max_all_requests_per_day
            if not await self._run(self.registry.claim_advertiser_all_request, adv,
                                   limit=limit):
                event(log, "refuse_all_request_capped", logging.WARNING, advertiser=adv,
                      rcpt=rcpt, limit=limit)
                return by_mail
            url = sibling_url(self.cfg, "a", self.signer.all_advertising_token(rcpt))
            msg = all_advertising_request(self.cfg, rcpt, url, sender=self.from_addr)
            try:
                await self._run(self.sender.send, msg)
                event(log, "refuse_all_requested", advertiser=adv, rcpt=rcpt)
            except OSError as exc:  # smtplib.SMTPException is an OSError
                event(log, "refuse_all_request_failed", logging.WARNING, advertiser=adv,
                      rcpt=rcpt, error=str(exc))
        return text(self.lang, "page.all_mailed.body", advertiser=advertiser_name, rcpt=rcpt)

    def _optout_address(self) -> str:
        address = self.cfg.intake.optout_address
        if "@" in address:
            return address
        domains = self.cfg.intake.local_domains
        return f"{address}@{domains[0]}" if domains else address

    async def refuse_all_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /a/{token}``: ask the recipient to confirm; only the POST records it."""
        claims = self._claims(request, "a")
        if claims is None:
            return self._invalid_page()
        body = text(self.lang, "page.confirm_all.body", rcpt=claims.recipient)
        form = (
            '<form method="post"><p><button type="submit">'
            f'{_h.escape(text(self.lang, "page.confirm_all.button"))}</button></p></form>\n'
        )
        return _html(page(self.lang, "page.confirm_all.title", body, extra_html=form))

    async def refuse_all_post(self, request: web.Request) -> web.StreamResponse:
        """``POST /a/{token}``: record the recipient's refusal of all advertising (the
        token was mailed to the recipient only); the page is its confirmation."""
        claims = self._claims(request, "a")
        if claims is None:
            event(log, "refuse_all_token_invalid", peer=request.remote)
            return self._invalid_page()
        rec, created = await self._run(
            self.registry.refuse, claims.recipient, adv=GLOBAL, channel="mail-link"
        )
        first = await self._run(self.registry.claim_confirmation, claims.recipient, adv=GLOBAL)
        event(log, "unsubscribed", advertiser=GLOBAL, rcpt=claims.recipient, new=created,
              confirmed=first)
        when = iso(rec.at).replace("T", " ").rstrip("Z")[:19]
        body = text(self.lang, "page.done_all.body", rcpt=claims.recipient, when=when)
        return _html(page(self.lang, "page.done.title", body))

    async def recipient_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /r/{token}``: the token's advertiser's records about the recipient and the
        recipient's refusal of all advertising (HTML, or JSON); never another advertiser's."""
        claims = self._claims(request, "r")
        if claims is None:
            return self._invalid_page()
        rr = await self._run(self.registry.recipient_records, claims.recipient)
        seen = (claims.advertiser, GLOBAL)
        rr = RecipientRecords(
            rr.recipient,
            tuple(c for c in rr.consents if c.advertiser == claims.advertiser),
            tuple(r for r in rr.refusals if r.advertiser in seen),
        )
        data = _records_json(rr)
        if "application/json" in request.headers.get("Accept", ""):
            return _json(data)
        rows = "".join(
            f"<li>{_h.escape(c['advertiser'])}: {_h.escape(c['method'])} {_h.escape(c['at'])}</li>"
            for c in data["consents"]
        ) or "<li>-</li>"
        refs = "".join(
            f"<li>{_h.escape(r['advertiser'] or '*')}: {_h.escape(r['channel'])} "
            f"{_h.escape(r['at'])}</li>"
            for r in data["refusals"]
        ) or "<li>-</li>"
        extra = (
            f"<h2>{_h.escape(text(self.lang, 'page.lookup.consents'))}</h2><ul>{rows}</ul>"
            f"<h2>{_h.escape(text(self.lang, 'page.lookup.refusals'))}</h2><ul>{refs}</ul>\n"
        )
        return _html(page(self.lang, "page.lookup.title", claims.recipient, extra_html=extra))

    # -- operators and advertisers -------------------------------------------------------------

    async def advertiser_create(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/advertisers`` (operator): register an advertiser; its API token shown once."""
        if (denied := await self._operator(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        domains = body.get("domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            return json_error(400, Message("api.domains_list"))
        try:
            existing = await self._run(self.registry.advertiser, str(body.get("id", "")))
            adv, token = await self._run(
                self.registry.register_advertiser, str(body.get("id", "")),
                name=str(body.get("name", "")), contact=str(body.get("contact", "")),
                domains=domains[:100], new_token=existing is None or bool(body.get("new_token")),
            )
        except ValueError as exc:
            return json_error(400, exc)
        out = {"id": adv.id, "name": adv.name, "contact": adv.contact,
               "domains": list(adv.domains), "created_at": iso(adv.created_at)}
        if token:
            out["token"] = token
        return _json(out, 201 if existing is None else 200)

    async def advertiser_list(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers`` (operator): every advertiser."""
        if (denied := await self._operator(request)) is not None:
            return denied
        ids = await self._run(self.registry.advertisers)
        return _json({"advertisers": ids})

    async def advertiser_get(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}``: one advertiser, its domains and counts."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        a = await self._run(self.registry.advertiser, adv)
        c = await self._run(self.registry.counts, adv)
        return _json(advertiser_json(a, c))

    async def advertiser_domains(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/advertisers/{adv}/domains``: add sending domains to an advertiser."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        if (denied := await self._operator(request)) is not None:
            return json_error(403, Message("api.operator_adds_domains"))
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        domains = body.get("domains")
        if not isinstance(domains, list) or not domains or not all(
                isinstance(d, str) for d in domains):
            return json_error(400, Message("api.domains_nonempty"))
        a = await self._run(self.registry.advertiser, adv)
        try:
            a, _ = await self._run(self.registry.register_advertiser, adv, name=a.name,
                                   contact=a.contact, domains=domains[:100])
        except ValueError as exc:
            return json_error(400, exc)
        return _json({"id": a.id, "domains": list(a.domains)})

    async def consents_submit(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/advertisers/{adv}/consents``: file up to ``MAX_BULK`` consent records."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        items = body.get("consents")
        if not isinstance(items, list) or not items:
            return json_error(400, Message("api.consents_nonempty"))
        if len(items) > MAX_BULK:
            return json_error(413, Message("api.consents_limit", {"limit": MAX_BULK}))
        now = time.time()
        records: list[ConsentRecord] = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ValueError(Message("registry.item_not_object"))
                if item.get("method") not in METHODS:
                    raise ValueError(Message("registry.item_method",
                                             {"methods": ", ".join(METHODS)}))
                rcpt = normalize_recipient(str(item.get("recipient", "")), self.registry.delimiters)
                if not self._is_local(rcpt):
                    return json_error(400, Message("api.consent_not_local", {
                        "index": i, "rcpt": rcpt,
                        "domains": ", ".join(self.local_domains) or "none configured"}))
                records.append(ConsentRecord(
                    advertiser=adv,
                    recipient=rcpt,
                    method=str(item.get("method", "")),
                    at=_time(item.get("at"), now),
                    evidence=str(item.get("evidence", "")),
                    expires_at=_time(item.get("expires_at"), 0.0),
                    max_per_day=int(item.get("max_per_day") or 0),
                ))
            except (ValueError, TypeError) as exc:
                return json_error(400, Message("api.consent_item",
                                               {"index": i, "detail": detail(exc)}))
        try:
            n = await self._run(self.registry.add_consents, records)
        except ValueError as exc:
            return json_error(400, exc)
        return _json({"stored": n})

    async def consents_export(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}/consents``: its consent and refusal records (JSON or CSV)."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            return json_error(400, Message("api.export_format"))
        buf = io.StringIO()
        await self._run(export_records, self.registry, adv, fmt, buf)
        return web.Response(
            text=buf.getvalue(), charset="utf-8",
            content_type="text/csv" if fmt == "csv" else "application/json",
        )

    async def refusals_list(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}/refusals``: its refusals recorded since ``?since=``."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return json_error(400, Message("api.since"))
        recs = await self._run(lambda: [r for r in self.registry.refusals(adv) if r.at >= since])
        return _json({"refusals": [_refusal_json(r) for r in recs]})

    async def counts(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}/counts``: consents, refusals and ads sent."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        c = await self._run(self.registry.counts, adv)
        return _json({"advertiser": adv, "consents": c.consents, "refusals": c.refusals,
                      "sent": c.sent})

    async def recipient_state(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}/recipients/{rcpt}``: whether an ad may go to ``rcpt`` now."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        try:
            rcpt = normalize_recipient(request.match_info["rcpt"], self.registry.delimiters)
        except ValueError as exc:
            return json_error(400, exc)
        state = await self._run(
            self.registry.recipient_state, adv, rcpt, now=self.registry.clock(),
            default_cap=self.cfg.consent.max_ads_per_day,
        )
        consent = await self._run(self.registry.consent, adv, rcpt)
        refusal = await self._run(self.registry.refusal, rcpt, adv=adv)
        refusal_all = await self._run(self.registry.refusal, rcpt)
        return _json({
            "advertiser": adv, "recipient": rcpt, "status": state.status,
            "may_send": state.allowed, "sent_24h": state.sent, "cap": state.cap,
            "consent": _consent_json(consent) if consent else None,
            "refusal": _refusal_json(refusal) if refusal else None,
            "refused_all": _refusal_json(refusal_all) if refusal_all else None,
        })

    async def unsubscribe_url(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/advertisers/{adv}/unsubscribe-url?recipient=``: one-click URL and headers."""
        adv, denied = await self._advertiser(request)
        if denied is not None:
            return denied
        try:
            rcpt = normalize_recipient(request.query.get("recipient", ""),
                                       self.registry.delimiters)
        except ValueError as exc:
            return json_error(400, exc)
        # A token refuses on the recipient's behalf: issue one only where the advertiser
        # may mail the recipient at all, never for any address it names.
        if await self._run(self.registry.consent, adv, rcpt) is None:
            return json_error(409, Message("api.no_consent",
                                               {"rcpt": rcpt, "advertiser": adv}))
        url = unsubscribe_url(self.cfg, self.signer, adv, rcpt)
        return _json({"url": url, "headers": dict(list_unsubscribe_headers(url))})

    async def recipient_records(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/recipients/{rcpt}`` (operator): everything held about a recipient."""
        if (denied := await self._operator(request)) is not None:
            return denied
        try:
            rcpt = normalize_recipient(request.match_info["rcpt"], self.registry.delimiters)
        except ValueError as exc:
            return json_error(400, exc)
        rr = await self._run(self.registry.recipient_records, rcpt)
        return _json(_records_json(rr))

    async def refusal_create(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/refusals`` (operator): record a refusal of one advertiser or of all ads."""
        if (denied := await self._operator(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        adv = body.get("advertiser") or GLOBAL
        try:
            if adv != GLOBAL and await self._run(self.registry.advertiser, str(adv)) is None:
                return json_error(404, Message("api.no_advertiser", {"advertiser": repr(adv)}))
            rec, created = await self._run(
                self.registry.refuse, str(body.get("recipient", "")), adv=str(adv),
                channel=str(body.get("channel") or "api")[:32],
            )
        except ValueError as exc:
            return json_error(400, exc)
        return _json({"refusal": _refusal_json(rec), "new": created}, 201 if created else 200)


def _site_domains(cfg: Config) -> tuple[str, ...]:
    """This site's own domains, ``intake.local_domains``, normalised as recipients' are
    (:func:`~spamwarden.consent.registry.normalize_recipient`); empty: none, and then no
    consent is kept and no request to refuse all advertising is mailed."""
    out: list[str] = []
    for d in cfg.intake.local_domains:
        n = normalize_domain(d)
        if n is not None and n not in out:
            out.append(n)
    return tuple(out)


def _time(value: Any, default: float) -> float:
    """A JSON time: Unix seconds or ISO 8601 text; ``None`` gives ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError("a time, not a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    return parse_time(str(value), now=default or time.time())



# -- the API application's module -----------------------------------------------------------

_SEC: list[dict[str, list[str]]] = [{"operatorToken": []}]
_ERRREF = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_OBJ = {"application/json": {"schema": {"type": "object"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _param(name: str, where: str = "path", *, required: bool = True,
           desc: str = "") -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "required": required,
                         "schema": {"type": "string"}}
    if desc:
        p["description"] = desc
    return p


def _op(op_id: str, summary: str, *, token: bool, params: list[dict[str, Any]] | None = None,
        body: bool = False, ok: str = "200", html: bool = False,
        errors: tuple[str, ...] = ()) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "done", "content": _HTML if html else _OBJ}}
    codes = set(errors) | {"503"}
    if token:
        codes |= {"401", "403"}
    for code in sorted(codes):
        responses[code] = {"description": {
            "400": "bad input", "401": "no valid bearer token",
            "403": "the token is not valid for this resource (or the link is not valid)",
            "404": "no such advertiser", "409": "a domain belongs to another advertiser",
            "413": "too many records", "503": "the consent registry is unavailable",
        }[code], "content": _HTML if html and code == "403" else _ERRREF}
    op: dict[str, Any] = {"tags": ["consent"], "operationId": op_id, "summary": summary,
                          "responses": responses}
    if token:
        op["security"] = _SEC
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": _OBJ}
    return op


_TOKEN = _param("token", desc="a signed token from a List-Unsubscribe URL")
_ADV = _param("adv", desc="advertiser id")
_BOTH = " (operator, or the advertiser's own token)"

CONSENT_PATHS: dict[str, dict[str, Any]] = {
    "/u/{token}": {
        "get": _op("unsubscribePage", "Ask the recipient to confirm (never unsubscribes)",
                   token=False, params=[_TOKEN], html=True, errors=("403",)),
        "post": _op("unsubscribeOneClick", "RFC 8058 one-click unsubscribe: records the refusal",
                    token=False, params=[_TOKEN], html=True, errors=("403",)),
    },
    "/a/{token}": {
        "get": _op("refuseAllPage", "Ask the recipient to confirm refusing all advertising",
                   token=False, params=[_param("token", desc="a token mailed to the recipient")],
                   html=True, errors=("403",)),
        "post": _op("refuseAllConfirmed", "Record the recipient's refusal of all advertising",
                    token=False, params=[_param("token", desc="a token mailed to the recipient")],
                    html=True, errors=("403",)),
    },
    "/r/{token}": {
        "get": _op("recipientRecordsPage", "One advertiser's records about a recipient and "
                   "the recipient's refusal of all advertising",
                   token=False, params=[_param("token", desc="a lookup token")], html=True,
                   errors=("403",)),
    },
    "/v1/advertisers": {
        "get": _op("listAdvertisers", "Every advertiser id (operator)", token=True),
        "post": _op("registerAdvertiser", "Register an advertiser and its sending domains "
                    "(operator); the answer carries its API token once", token=True, body=True,
                    ok="201", errors=("400", "409")),
    },
    "/v1/advertisers/{adv}": {
        "get": _op("getAdvertiser", "An advertiser, its domains and counts" + _BOTH, token=True,
                   params=[_ADV], errors=("400", "404")),
    },
    "/v1/advertisers/{adv}/domains": {
        "post": _op("addAdvertiserDomains", "Add sending domains (operator)", token=True,
                    params=[_ADV], body=True, errors=("400", "404", "409")),
    },
    "/v1/advertisers/{adv}/consents": {
        "post": _op("submitConsents", "Submit consent records in bulk, all or nothing" + _BOTH,
                    token=True, params=[_ADV], body=True, errors=("400", "404", "413")),
        "get": _op("exportConsents", "Export consent and refusal records (json or csv)" + _BOTH,
                   token=True, params=[_ADV, _param("format", "query", required=False)],
                   errors=("400", "404")),
    },
    "/v1/advertisers/{adv}/refusals": {
        "get": _op("listRefusals", "Refusals of this advertiser's ads" + _BOTH, token=True,
                   params=[_ADV, _param("since", "query", required=False, desc="Unix time")],
                   errors=("400", "404")),
    },
    "/v1/advertisers/{adv}/counts": {
        "get": _op("advertiserCounts", "Consents, refusals and ads delivered" + _BOTH,
                   token=True, params=[_ADV], errors=("400", "404")),
    },
    "/v1/advertisers/{adv}/recipients/{rcpt}": {
        "get": _op("recipientState", "May one more ad go to this recipient now, and why" + _BOTH,
                   token=True, params=[_ADV, _param("rcpt")], errors=("400", "404")),
    },
    "/v1/advertisers/{adv}/unsubscribe-url": {
        "get": _op("unsubscribeUrl", "The one-click URL and headers for a recipient" + _BOTH,
                   token=True, params=[_ADV, _param("recipient", "query")],
                   errors=("400", "404", "409")),
    },
    "/v1/recipients/{rcpt}": {
        "get": _op("recipientRecords", "Every consent and refusal of a recipient (operator)",
                   token=True, params=[_param("rcpt")], errors=("400",)),
    },
    "/v1/refusals": {
        "post": _op("recordRefusal", "Record a refusal of one advertiser or of all "
                    "advertising (operator)", token=True, body=True, ok="201",
                    errors=("400", "404")),
    },
}


def consent_module(ctx: ApiContext) -> ApiModule:
    """The API application's module (:class:`~spamwarden.api._http.ApiModule`) with
    the consent routes and their OpenAPI description.

    :param ctx: the API's ``ApiContext`` (its ``cfg`` is used; the consent
        registry opens its own Redis client, closed with the application).
    :raises ConfigError: the token key is unusable.
    """
    api = ConsentApi.from_config(ctx.cfg)
    if not api.local_domains:
        event(log, "intake.local_domains is empty: every consent will be refused",
              logging.WARNING)

    async def close(app: web.Application) -> None:
        close_fn = getattr(api.registry.client, "close", None)
        if close_fn is not None:
            await asyncio.to_thread(close_fn)

    return ApiModule(
        name="consent",
        routes=api.routes(),
        paths=CONSENT_PATHS,
        tags=[{"name": "consent", "description": "advertising consent and one-click "
               "unsubscribe (Decree 91/2020/ND-CP)"}],
        on_cleanup=[close],
    )
