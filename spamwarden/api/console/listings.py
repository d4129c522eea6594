"""``/ui/listings``: the active listings, searched and paged; list a key, delist one or
extend its listing.

The forms write through the same store operations as ``POST /v1/listings``,
``DELETE /v1/listings/{key}`` and ``spamwarden list add`` / ``spamwarden delist``
(:meth:`~spamwarden.reputation.store.AsyncListingStore.add` and ``delist``), so each
write lands in the change stream the DNS server follows, exactly as an API write does.
Keys and durations are checked by the API's own functions
(:func:`~spamwarden.reputation.listings.normalize_key`,
:func:`~spamwarden.api.listings.parse_ttl`); a refused form shows the page again with
the error (status 400) and changes nothing.

The search reads the active keys from the expiry index
(:meth:`~spamwarden.reputation.store.AsyncListingStore.active_keys`, ZSCAN) and decodes
only the listings shown; a search by reason code decodes every listing whose key
matches, since only the listing holds its reason.

Who did it: a delisting's note in the change stream reads ``console: <reason>``; a
listing's note is shown to the public on the lookup page, so it is kept as typed. Every
write is also logged (``operator_listed`` / ``operator_delisted`` with ``via=console``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from ...logs import event
from ...reputation.listings import REASONS, Listing, normalize_key, operator_reason, utc_iso
from .._http import BadRequest, text_field
from ..listings import parse_ttl
from ..lookup import escape
from ._base import Console, Page, html_get, html_post, see_other

__all__ = ["KINDS", "MAX_PAGE_SIZE", "MAX_TTL", "NAV", "ListingQuery", "build", "form_fields",
           "form_ttl", "key_kind", "lookup_href"]

log = logging.getLogger("spamwarden.api")

NAV = Page("/ui/listings", "Listings")
KINDS = ("ip", "cidr", "domain", "address")
#: rows per page at most (the search itself runs over every active listing)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
#: the longest listing the console makes or extends (seconds): a year
MAX_TTL = 365 * 86400.0
#: offered in the duration fields (any duration text up to :data:`MAX_TTL` is accepted)
DURATIONS = ("1d", "7d", "30d", "90d")
_DONE = ("listed", "extended", "delisted", "expired")
_MAX_TEXT = 2000
#: the longest text each form field takes (as the API's fields: longer is refused, not cut)
_LIMITS = {"key": 300, "reason": _MAX_TEXT, "ttl": 100, "note": _MAX_TEXT}


@dataclass(frozen=True)
class ListingQuery:
    """A search of the listings: key substring, kind, reason code, page (from 1), size."""

    q: str = ""
    kind: str = ""
    reason: str = ""
    page: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListingQuery:
        """Read and bound the URL's query; unknown kinds, reasons and numbers fall back
        to "any" / the defaults."""
        kind = query.get("kind", "")
        reason = query.get("reason", "")

        def number(name: str, default: int, top: int) -> int:
            try:
                return max(1, min(int(query.get(name, "")), top))
            except ValueError:
                return default

        return cls(q=query.get("q", "").strip()[:300].lower(),
                   kind=kind if kind in KINDS else "",
                   reason=reason if reason in REASONS else "",
                   page=number("page", 1, 1_000_000),
                   size=number("size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))

    def matches_key(self, key: str) -> bool:
        """Whether a listing under ``key`` may be one this search asks for (the key
        substring and the kind; the reason needs the listing itself)."""
        return (not self.q or self.q in key) and (not self.kind or key_kind(key) == self.kind)

    def matches(self, x: Listing) -> bool:
        """Whether listing ``x`` is one this search asks for."""
        return ((not self.q or self.q in x.key) and (not self.kind or x.kind == self.kind)
                and (not self.reason or x.reason == self.reason))

    def url(self, **change: Any) -> str:
        """This search's page URL, with ``change`` applied (empty values left out)."""
        fields = {"q": self.q, "kind": self.kind, "reason": self.reason,
                  "page": self.page, "size": self.size, **change}
        if fields["page"] == 1:
            del fields["page"]
        if fields["size"] == DEFAULT_PAGE_SIZE:
            del fields["size"]
        return "/ui/listings?" + urlencode({k: v for k, v in fields.items() if v})


def form_ttl(text: str, *, required: bool) -> float | None:
    """The duration typed into a console form, checked like the API's ``ttl`` and
    bounded by :data:`MAX_TTL`.

    :param text: ``"7d"``, ``"36h"``, seconds; empty means the escalating default.
    :param required: an empty field is an error (extending needs a duration).
    :returns: seconds, or ``None`` for the default.
    :raises ValueError: a message for the operator.
    """
    text = text.strip()
    if not text:
        if required:
            raise ValueError("a duration is required, e.g. 7d")
        return None
    ttl = parse_ttl(text)
    if ttl is not None and ttl > MAX_TTL:
        raise ValueError("ttl: at most 365 days")
    return ttl


def key_kind(key: str) -> str:
    """The kind of a listing key as :func:`~spamwarden.reputation.listings.normalize_key`
    writes it (``ip``, ``cidr``, ``domain`` or ``address``), read from its shape.

    Domains never contain ``:`` or ``/`` nor are an IPv4 address, so only keys made of
    digits and dots need parsing.
    """
    if "@" in key:
        return "address"
    if "/" in key:
        return "cidr"
    if ":" in key:
        return "ip"
    if key.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(key)
            return "ip"
        except ValueError:
            pass
    return "domain"


def form_fields(data: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """The stripped text fields ``names`` of a posted form, checked as the API checks
    its JSON fields (:func:`~spamwarden.api._http.text_field`; empty when absent).

    :raises ValueError: a field is not text or is longer than its limit.
    """
    out = {}
    for name in names:
        try:
            out[name] = text_field(data, name, required=False, limit=_LIMITS[name])
        except BadRequest as exc:
            raise ValueError(str(exc)) from exc
    return out


def _options(values: Sequence[str], selected: str, *, blank: str,
             labels: Mapping[str, str] | None = None) -> str:
    return (f'<option value="">{escape(blank)}</option>' + "".join(
        f'<option value="{escape(v)}"{" selected" if v == selected else ""}>'
        f'{escape((labels or {}).get(v, v))}</option>' for v in values))


def lookup_href(key: str) -> str:
    """The public lookup page of ``key`` (a CIDR's slash escaped in the path)."""
    return "/lookup/" + quote(key, safe="")


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the listings routes; return their OpenAPI paths."""
    store, clock = ui.store, ui.clock
    durations = ('<datalist id="durations">'
                 + "".join(f'<option value="{d}">' for d in DURATIONS) + "</datalist>\n")

    reason_labels = {code: f"{code}: {text}" for code, (_, text) in REASONS.items()}

    def add_form(sess: dict[str, Any], values: Mapping[str, str], error: str) -> str:
        return (
            '<h2 id="add">List a key</h2>\n'
            + (f'<p class="err">{escape(error)}</p>\n' if error else "")
            + '<form method="post" action="/ui/listings">' + ui.csrf_field(sess) +
            '<p><label>Key (IP, CIDR, domain or address) <input name="key" required '
            f'maxlength="300" value="{escape(values.get("key", ""))}"></label></p>'
            '<p><label>Reason <select name="reason">'
            + _options(list(REASONS), values.get("reason", ""), labels=reason_labels,
                       blank="the operator's reason for the kind") + '</select></label></p>'
            '<p><label>Duration (e.g. 7d; empty: the escalating default) <input name="ttl" '
            f'list="durations" maxlength="20" value="{escape(values.get("ttl", ""))}"></label></p>'
            '<p><label>Note (shown on the public lookup page) <input name="note" '
            f'maxlength="{_MAX_TEXT}" value="{escape(values.get("note", ""))}"></label></p>'
            '<p><button type="submit">List</button></p></form>\n')

    def row(x: Listing, csrf: str) -> str:
        key = escape(x.key)
        return (
            f'<tr><td><a href="{escape(lookup_href(x.key))}">{key}</a></td>'
            f"<td>{escape(x.kind)}</td><td>{escape(x.reason)}</td>"
            f"<td>{escape(utc_iso(x.listed_at))}</td><td>{escape(utc_iso(x.expires_at))}</td>"
            f"<td>{x.offences}</td><td>{escape(x.note)}</td>"
            f'<td><form method="post" action="/ui/listings/delist">{csrf}'
            f'<input type="hidden" name="key" value="{key}">'
            f'<input name="reason" required maxlength="{_MAX_TEXT}" placeholder="why" '
            f'aria-label="why delist {key}">'
            '<button type="submit">Delist</button></form></td>'
            f'<td><form method="post" action="/ui/listings/extend">{csrf}'
            f'<input type="hidden" name="key" value="{key}">'
            '<input name="ttl" required list="durations" maxlength="20" placeholder="7d" '
            f'aria-label="keep {key} listed for">'
            '<button type="submit">Extend</button></form></td></tr>')

    async def render(request: web.Request, sess: dict[str, Any], *, error: str = "",
                     values: Mapping[str, str] | None = None,
                     status: int = 200) -> web.Response:
        want = ListingQuery.from_query(request.query)
        now = clock.now()
        if not (want.q or want.kind or want.reason):
            # no search: the count and one page of the key index, whatever the store holds
            total = await store.active_count(now=now)
            pages = max(1, -(-total // want.size))
            page = min(want.page, pages)
            shown, _ = await store.listing_page(after=None, limit=want.size, now=now,
                                                offset=(page - 1) * want.size)
        else:
            # keys first (the expiry index); only the listings shown are read and decoded,
            # unless the reason, which only the listing holds, is searched for
            keys = [k for k in await store.active_keys(now=now) if want.matches_key(k)]
            found = ([x for x in await store.get_many(keys, now=now) if want.matches(x)]
                     if want.reason else None)
            total = len(found) if found is not None else len(keys)
            pages = max(1, -(-total // want.size))
            page = min(want.page, pages)
            window = slice((page - 1) * want.size, page * want.size)
            shown = (found[window] if found is not None
                     else await store.get_many(keys[window], now=now))
        csrf = ui.csrf_field(sess)
        done = request.query.get("done", "")
        parts = []
        if error:
            parts.append(f'<p class="err" role="alert">{escape(error)}</p>\n')
        elif done in _DONE and want.q:
            parts.append(f'<p class="ok">{escape(want.q)}: {escape(done)}.</p>\n')
        parts.append(
            '<form method="get" action="/ui/listings"><p>'
            f'<label>Key contains <input name="q" maxlength="300" value="{escape(want.q)}">'
            '</label> <label>Kind <select name="kind">'
            + _options(KINDS, want.kind, blank="any") + '</select></label> '
            '<label>Reason <select name="reason">'
            + _options(list(REASONS), want.reason, blank="any") + '</select></label> '
            f'<label>Per page <input name="size" type="number" min="1" max="{MAX_PAGE_SIZE}" '
            f'value="{want.size}"></label> <button type="submit">Search</button></p></form>\n')
        first = (page - 1) * want.size + 1 if shown else 0
        nav = []
        if page > 1:
            nav.append(f'<a href="{escape(want.url(page=page - 1))}" rel="prev">previous</a>')
        if page < pages:
            nav.append(f'<a href="{escape(want.url(page=page + 1))}" rel="next">next</a>')
        parts.append(
            durations + "<table><tr><th>key</th><th>kind</th><th>reason</th><th>since</th>"
            "<th>until</th><th>times</th><th>note</th><th>delist</th><th>extend</th></tr>"
            + "".join(row(x, csrf) for x in shown) + "</table>\n"
            f"<p>{first}–{first + len(shown) - 1 if shown else 0} of {total} matching "
            f"listing(s); page {page} of {pages}. {' · '.join(nav)}</p>\n")
        # a refused listing form shows its error beside the form too
        parts.append(add_form(sess, values or {}, error if values is not None else ""))
        return ui.page("Listings", "".join(parts), sess=sess, status=status)

    async def refused(request: web.Request, sess: dict[str, Any], message: str,
                      values: Mapping[str, str] | None = None, *,
                      status: int = 400) -> web.Response:
        return await render(request, sess, error=message, values=values, status=status)

    def done(key: str, op: str) -> web.Response:
        return see_other("/ui/listings?" + urlencode({"q": key, "done": op}))

    @routes.get("/ui/listings")
    async def listings(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        return await render(request, sess)

    @routes.post("/ui/listings")
    async def add(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        data = await ui.form(request, sess)
        names = ("key", "reason", "ttl", "note")
        echo = {k: str(data.get(k, ""))[:_LIMITS[k]] for k in names}
        try:
            values = form_fields(data, names)
            key, kind = normalize_key(values["key"])
        except ValueError as exc:
            return await refused(request, sess, str(exc), echo)
        code = values["reason"]
        if code and code not in REASONS:
            return await refused(request, sess, f"unknown reason {code!r}", echo)
        try:
            ttl = form_ttl(values["ttl"], required=False)
        except ValueError as exc:
            return await refused(request, sess, str(exc), echo)
        reason = code or operator_reason(kind)
        w = await store.add(key, kind=kind, reason=reason, note=values["note"], ttl=ttl,
                            now=clock.now())
        event(log, "operator_listed", key=key, op=w.op, reason=reason, via="console")
        return done(key, w.op)

    @routes.post("/ui/listings/delist")
    async def delist(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        data = await ui.form(request, sess)
        try:
            values = form_fields(data, ("key", "reason"))
            key, _ = normalize_key(values["key"])
        except ValueError as exc:
            return await refused(request, sess, str(exc))
        reason = values["reason"]
        if not reason:
            return await refused(request, sess, f"{key}: say why it is delisted (the reason "
                                 "is kept in the change stream)")
        w = await store.delist(key, note=f"console: {reason}", now=clock.now())
        if w.op == "absent":
            return await refused(request, sess, f"{key} is not listed", status=404)
        event(log, "operator_delisted", key=key, op=w.op, via="console")
        return done(key, w.op)

    @routes.post("/ui/listings/extend")
    async def extend(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        data = await ui.form(request, sess)
        try:
            values = form_fields(data, ("key", "ttl"))
            key, _ = normalize_key(values["key"])
            ttl = form_ttl(values["ttl"], required=True)
        except ValueError as exc:
            return await refused(request, sess, str(exc))
        now = clock.now()
        current = await store.get(key, now=now)
        if current is None:
            return await refused(request, sess, f"{key} is not listed", status=404)
        # the listing keeps its reason and note; only its end moves (to now + ttl)
        w = await store.add(key, kind=current.kind, reason=current.reason, note=current.note,
                            ttl=ttl, now=now)
        event(log, "operator_listed", key=key, op=w.op, reason=current.reason, via="console")
        return done(key, w.op)

    return {
        "/ui/listings": {
            **html_get("Active listings: search by key substring, kind and reason, paged",
                       "consoleListings", query=("q", "kind", "reason", "page", "size")),
            **html_post("List a key (form fields csrf, key, reason, ttl, note); 400: the "
                        "page again with the error", "consoleListingAdd"),
        },
        "/ui/listings/delist": html_post("Delist a key now (form fields csrf, key, reason)",
                                         "consoleListingDelist"),
        "/ui/listings/extend": html_post(
            "Extend a listing to now + ttl (form fields csrf, key, ttl)", "consoleListingExtend"),
    }
