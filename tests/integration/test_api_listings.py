"""The HTTP API with a real Redis through aiohttp's test server: public lookup, delisting
requests with a rate limit, operator endpoints with and without a token, the OpenAPI contract."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio
from aiohttp import test_utils, web

from spamwarden.api import ApiModule, operator_only
from spamwarden.api.app import build_app
from spamwarden.api.listings import listings_module
from spamwarden.api.lookup import lookup_module
from spamwarden.config import config_from_mapping
from spamwarden.reputation.store import AsyncListingStore

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
TOKEN = "op-token-1-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ManualClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


Scenario = Callable[[test_utils.TestClient, AsyncListingStore, ManualClock], Awaitable[None]]


def run_api(redis_url: str, scenario: Scenario, *, tokens: tuple[str, ...] = (TOKEN,),
            modules: list[Any] | None = None, **api: Any) -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": list(tokens),
                                       "public_url": "https://bl.example.net",
                                       "delist_requests_per_hour": 3, **api}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        clock = ManualClock()
        app = build_app(cfg, store, clock=clock, modules=modules)
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            await scenario(client, store, clock)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


def test_public_lookup_listed_and_not_listed(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add("192.0.2.0/24", reason="complaints", now=T0)
        r = await c.get("/v1/listings/192.0.2.77")
        assert r.status == 200
        body = await r.json()
        assert body["listed"] is True and body["key"] == "192.0.2.77"
        assert body["listing"]["key"] == "192.0.2.0/24"
        assert body["listing"]["since"] == "2027-01-15T08:00:00Z"
        assert body["listing"]["code"] == "127.0.0.2"
        assert body["delisting"]["request_url"] == "https://bl.example.net/v1/delist-requests"
        for path in ("/v1/listings/192.0.2.0/24", "/v1/listings/192.0.2.0%2F24"):
            cidr = await (await c.get(path)).json()
            assert (cidr["key"], cidr["kind"], cidr["listed"]) == ("192.0.2.0/24", "cidr", True)
        r = await c.get("/v1/listings/clean.example")
        assert (await r.json()) == {"key": "clean.example", "kind": "domain", "listed": False,
                                    "listing": None}
        r = await c.get("/v1/listings/not%20a%20key")
        assert r.status == 400 and "error" in await r.json()
        clock.t = T0 + 86400  # expired: no longer listed, even before the worker reaps it
        assert (await (await c.get("/v1/listings/192.0.2.77")).json())["listed"] is False

    run_api(redis_url, scenario)


def test_delist_request_flow_with_rate_limit_and_operator_approval(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add("spam-shop.example", reason="domain-complaints", now=T0)
        r = await c.post("/v1/delist-requests", json={"key": "www.spam-shop.example",
                                                      "reason": "we fixed our list",
                                                      "contact": "ops@spam-shop.example"})
        assert r.status == 202
        req = await r.json()
        assert req["key"] == "spam-shop.example" and req["status"] == "pending"
        r = await c.post("/v1/delist-requests", json={"key": "clean.example", "reason": "x"})
        assert r.status == 404
        r = await c.post("/v1/delist-requests", json={"key": "spam-shop.example"})
        assert r.status == 400  # no reason
        r = await c.post("/v1/delist-requests", json={"key": "spam-shop.example", "reason": "y"})
        assert r.status == 429  # fourth request this hour from this client
        assert "Retry-After" in r.headers
        # nobody but an operator sees or decides requests
        assert (await c.get("/v1/delist-requests")).status == 401
        assert (await c.post(f"/v1/delist-requests/{req['id']}/approve")).status == 401
        r = await c.get("/v1/delist-requests?status=pending", headers=AUTH)
        pending = await r.json()
        assert [p["id"] for p in pending] == [req["id"]]
        assert pending[0]["reason"] == "we fixed our list"
        r = await c.post(f"/v1/delist-requests/{req['id']}/approve", headers=AUTH,
                         json={"note": "looks fixed"})
        assert r.status == 200
        d = await r.json()
        assert d["delisting"] == "delisted" and d["request"]["status"] == "approved"
        assert (await store.find("spam-shop.example", now=T0)) is None
        r = await c.post(f"/v1/delist-requests/{req['id']}/approve", headers=AUTH)
        assert r.status == 409
        assert (await c.post("/v1/delist-requests/nope/reject", headers=AUTH)).status == 404
        changes = await store.changes()
        assert [(x.op, x.note) for x in changes][-1] == ("delisted", "looks fixed")

    run_api(redis_url, scenario)


def test_a_request_filed_against_an_ended_listing_cannot_end_a_later_one(
        redis_url: str) -> None:
    """A request filed during one listing, left pending while that listing expired and the
    key was listed again (a new offence): approving it would have delisted the new
    listing. It is refused with 409 saying why and stays pending, to be rejected."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add("spam-shop.example", reason="domain-complaints", now=T0, ttl=3600)
        r = await c.post("/v1/delist-requests", json={"key": "spam-shop.example",
                                                      "reason": "fixed", "contact": ""})
        assert r.status == 202
        rid = (await r.json())["id"]
        clock.t = T0 + 7200  # the first listing has ended; a new offence lists it again
        await store.delist("spam-shop.example", note="expired", now=clock.t)
        await store.add("spam-shop.example", reason="domain-complaints", now=clock.t,
                        ttl=172800)
        for path in (f"/v1/delist-requests/{rid}/approve", f"/v1/delisting-requests/{rid}"):
            r = await c.post(path, headers=AUTH, json={"decision": "approve"})
            err = await r.json()
            assert (r.status, err["code"]) == (409, "request_stale"), err
            assert "2027-01-15T10:00:00Z" in err["error"] and "spam-shop.example" in err["error"]
        assert (await store.find("spam-shop.example", now=clock.t)) is not None
        assert (await store.get_delist_request(rid)).status == "pending"
        r = await c.post(f"/v1/delist-requests/{rid}/reject", headers=AUTH, json={"note": "old"})
        assert r.status == 200 and (await r.json())["request"]["status"] == "rejected"
        # a request filed during the listing in force is approved as always
        r = await c.post("/v1/delist-requests", json={"key": "spam-shop.example",
                                                      "reason": "fixed now", "contact": ""})
        rid = (await r.json())["id"]
        r = await c.post(f"/v1/delist-requests/{rid}/approve", headers=AUTH)
        assert r.status == 200 and (await r.json())["delisting"] == "delisted"

    run_api(redis_url, scenario, modules=[listings_module, lookup_module])


def test_one_client_cannot_take_all_of_a_keys_places_in_the_queue(redis_url: str) -> None:
    """A key has api.max_pending_delist_requests_per_key places (3). One client filed all
    three and the listed party's own request got 429, again after each rejection: a
    client now has one pending request of a key, and gets its place back when it is
    decided."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add("victim.example", reason="url-complaints", now=T0)
        body = {"key": "victim.example", "reason": "we never sent that", "contact": ""}
        attacker = {"X-Forwarded-For": "198.51.100.7"}
        r = await c.post("/v1/delist-requests", json=body, headers=attacker)
        assert r.status == 202
        first = (await r.json())["id"]
        r = await c.post("/v1/delist-requests", json=body, headers=attacker)
        err = await r.json()
        assert (r.status, err["code"]) == (429, "delist_request_pending"), err
        assert "victim.example" in err["error"]
        r = await c.post("/lookup/victim.example", data={"reason": "again"}, headers=attacker)
        assert r.status == 429 and "already waiting" in await r.text()
        r = await c.post("/v1/delist-requests", json=body,
                         headers={"X-Forwarded-For": "192.0.2.80"})
        assert r.status == 202  # the listed party's own request finds a place
        r = await c.post(f"/v1/delist-requests/{first}/reject", headers=AUTH, json={})
        assert r.status == 200
        r = await c.post("/v1/delist-requests", json=body, headers=attacker)
        assert r.status == 202  # decided: the client's place is free again

    run_api(redis_url, scenario, modules=[listings_module, lookup_module],
            trusted_proxies=["127.0.0.1/32", "::1/128"], delist_requests_per_hour=20)


def test_a_full_request_queue_answers_429_and_only_pending_requests_fill_it(
        redis_url: str) -> None:
    """Filed from many addresses, requests for one key stop at
    api.max_pending_delist_requests_per_key, and all of them at
    api.max_pending_delist_requests; decided requests never count. Either answer is 429
    saying why, not a store error."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add_many(["192.0.2.1", "192.0.2.2", "192.0.2.3"], reason="manual", now=T0)
        ids = [(await store.file_delist_request("192.0.2.1", reason="fixed", contact="",
                                                client=f"198.51.100.{i}", now=T0)).id
               for i in range(2)]
        body = {"key": "192.0.2.1", "reason": "we fixed it"}
        r = await c.post("/v1/delist-requests", json=body)
        err = await r.json()
        assert (r.status, err["code"]) == (429, "delist_key_queue_full"), err
        assert "192.0.2.1" in err["error"] and "waiting" in err["error"]
        assert "Retry-After" not in r.headers
        # a decided request frees its place
        await store.decide_delist_request(ids[0], approve=False, note="no", now=T0 + 1)
        r = await c.post("/v1/delist-requests", json=body)
        assert r.status == 202
        # the whole queue: three pending
        await store.file_delist_request("192.0.2.2", reason="x", contact="", client="c",
                                        now=T0 + 1)
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.3", "reason": "x"})
        err = await r.json()
        assert (r.status, err["code"]) == (429, "delist_queue_full"), err
        assert "waiting" in err["error"]
        await store.decide_delist_request(ids[1], approve=True, note="ok", now=T0 + 2)
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.3", "reason": "x"})
        assert r.status == 202

    run_api(redis_url, scenario, delist_requests_per_hour=10, max_pending_delist_requests=3,
            max_pending_delist_requests_per_key=2)


def test_the_delisting_rate_limit_holds_behind_a_proxy_and_per_ipv6_64(redis_url: str) -> None:
    """A client cannot pick its rate-limit bucket: neither with an X-Forwarded-For line of
    its own in front of the one the trusted proxy appends, nor with the many addresses of
    its IPv6 /64."""
    from multidict import CIMultiDict

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        for i in range(12):
            await store.add(f"192.0.2.{i}", reason="manual", now=T0)
        codes = []
        for i in range(5):
            headers = CIMultiDict([("X-Forwarded-For", f"10.66.{i}.1"),
                                   ("X-Forwarded-For", "198.51.100.77")])
            r = await c.post("/v1/delist-requests", headers=headers,
                             json={"key": f"192.0.2.{i}", "reason": "fixed"})
            codes.append(r.status)
        assert codes == [202, 202, 202, 429, 429]
        codes = []
        for i in range(5):
            r = await c.post("/v1/delist-requests",
                             headers={"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"},
                             json={"key": f"192.0.2.{5 + i}", "reason": "fixed"})
            codes.append(r.status)
        assert codes == [202, 202, 202, 429, 429]
        pending = await store.delist_requests(now=T0, status="pending")
        assert {q.client for q in pending} >= {"2001:db8:1:2::1", "198.51.100.77"}

    run_api(redis_url, scenario, trusted_proxies=["127.0.0.0/8"])


def test_a_deeply_nested_body_is_a_bad_request_not_a_server_error(redis_url: str) -> None:
    """JSON nested deeper than the parser's recursion limit, well within the 64 KiB body
    limit, is answered like any malformed body."""
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        await store.add("192.0.2.9", reason="manual", now=T0)
        deep = "[" * 30_000 + "]" * 30_000
        for path, headers in (("/v1/delist-requests", {}), ("/v1/listings", AUTH)):
            r = await c.post(path, data=deep,
                             headers={**headers, "Content-Type": "application/json"})
            assert r.status == 400, path
            assert (await r.json())["code"] == "body_not_object"

    run_api(redis_url, scenario)


def test_operator_endpoints_need_a_valid_token(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        body = {"key": "203.0.113.5", "reason": "trap hits", "ttl": "2h"}
        r = await c.post("/v1/listings", json=body)
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await c.post("/v1/listings", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status == 401
        r = await c.post("/v1/listings", json=body, headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status == 401
        r = await c.post("/v1/listings", json=body, headers=AUTH)
        assert r.status == 201
        w = await r.json()
        assert w["op"] == "listed" and w["listing"]["reason"] == "manual"
        assert w["listing"]["note"] == "trap hits"
        assert w["listing"]["expires_at"] - w["listing"]["listed_at"] == 7200
        r = await c.post("/v1/listings", json={"key": "203.0.113.5", "reason": "manual",
                                               "ttl": 60}, headers=AUTH)
        assert r.status == 200 and (await r.json())["op"] == "extended"
        r = await c.post("/v1/listings", json={"key": "x", "reason": "r"}, headers=AUTH)
        assert r.status == 400
        r = await c.get("/v1/listings", headers=AUTH)
        listing = await r.json()
        assert listing["total"] == 1 and listing["listings"][0]["key"] == "203.0.113.5"
        assert (await c.delete("/v1/listings/203.0.113.5")).status == 401
        assert (await c.delete("/v1/listings/203.0.113.5", headers=AUTH)).status == 400
        r = await c.delete("/v1/listings/203.0.113.5?reason=mistake", headers=AUTH)
        assert r.status == 200 and (await r.json())["op"] == "delisted"
        r = await c.delete("/v1/listings/203.0.113.5", headers=AUTH, json={"reason": "again"})
        assert r.status == 404

    run_api(redis_url, scenario)


def test_without_configured_tokens_operator_endpoints_are_disabled(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        r = await c.get("/v1/listings", headers=AUTH)
        assert r.status == 403
        assert "operator_tokens" in (await r.json())["error"]
        assert (await c.get("/v1/listings/192.0.2.1")).status == 200

    run_api(redis_url, scenario, tokens=())


def test_every_route_is_in_the_openapi_document(redis_url: str) -> None:
    extra_routes = web.RouteTableDef()

    @extra_routes.get("/v1/extra/{thing}")
    @operator_only
    async def extra(request: web.Request) -> web.StreamResponse:
        return web.json_response({"thing": request.match_info["thing"]})

    module = ApiModule(name="extra", routes=extra_routes, paths={
        "/v1/extra/{thing}": {"get": {"operationId": "extra", "security": [{"operatorToken": []}],
                                      "responses": {"200": {"description": "ok"}}}}})

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        from spamwarden.api.listings import listings_module

        doc = await (await c.get("/v1/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        registered = set()
        for route in c.server.app.router.routes():
            if route.method == "HEAD":
                continue
            path = route.resource.canonical if route.resource else ""
            registered.add((path, route.method.lower()))
            assert path in doc["paths"], path
            assert route.method.lower() in doc["paths"][path], (path, route.method)
        documented = {(p, m) for p, item in doc["paths"].items() for m in item}
        assert documented == registered
        # operator routes say so in the document, public ones do not
        for path, item in doc["paths"].items():
            for method, op in item.items():
                handler = next(r.handler for r in c.server.app.router.routes()
                               if r.resource and r.resource.canonical == path
                               and r.method.lower() == method)
                assert bool(getattr(handler, "operator_only", False)) == ("security" in op), (
                    path, method)
                for ref in _refs(op):
                    assert ref.split("/")[-1] in doc["components"]["schemas"], ref
        assert (await c.get("/v1/extra/a")).status == 401
        assert (await (await c.get("/v1/extra/a", headers=AUTH)).json()) == {"thing": "a"}
        assert listings_module  # the default module is in use too
        assert (await c.get("/v1/health")).status == 200

    from spamwarden.api.listings import listings_module

    run_api(redis_url, scenario, modules=[listings_module, module])


def _refs(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        out = [obj["$ref"]] if "$ref" in obj else []
        for v in obj.values():
            out += _refs(v)
        return out
    if isinstance(obj, list):
        return [r for v in obj for r in _refs(v)]
    return []


def test_store_down_gives_503_not_an_answer(redis_url: str, redis_server: Any) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        redis_server.stop()
        r = await c.get("/v1/listings/192.0.2.1")
        assert r.status == 503
        assert (await c.get("/v1/health")).status == 503

    run_api(redis_url, scenario)


def test_served_application_documents_every_route(redis_url: str, monkeypatch: Any,
                                                  tmp_path: Any) -> None:
    """What `spamwarden api` serves (every module of wiring.api_modules): each route, method
    included, is in /v1/openapi.json and every documented operation is served."""
    from spamwarden.wiring import api_modules

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({"service": {"state_dir": str(tmp_path)},
                               "api": {"operator_tokens": [TOKEN]}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=api_modules())
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            doc = await (await client.get("/v1/openapi.json")).json()
            served = {(r.resource.canonical, r.method.lower()) for r in app.router.routes()
                      if r.method != "HEAD" and r.resource is not None}
            documented = {(p, m) for p, item in doc["paths"].items() for m in item
                          if m in ("get", "post", "put", "patch", "delete")}
            assert served == documented
            assert ("/v1/listings/{key}", "get") in served
            for ref in _refs(doc["paths"]):
                assert ref.split("/")[-1] in doc["components"]["schemas"], ref
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


def test_metrics_count_listing_changes(redis_url: str) -> None:
    from prometheus_client import REGISTRY

    def changes(op: str) -> float:
        return REGISTRY.get_sample_value("spamwarden_listing_changes_total", {"op": op}) or 0.0

    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        before = changes("listed"), changes("delisted")
        assert (await c.post("/v1/listings", json={"key": "192.0.2.1", "reason": "x"},
                             headers=AUTH)).status == 201
        assert (await c.delete("/v1/listings/192.0.2.1?reason=y", headers=AUTH)).status == 200
        assert (changes("listed"), changes("delisted")) == (before[0] + 1, before[1] + 1)
        # the API faces the internet (delisting, unsubscribe): metrics need the operator token
        r = await c.get("/metrics")
        assert r.status == 401 and "spamwarden_" not in await r.text()
        assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"})
                ).status == 401
        r = await c.get("/metrics", headers=AUTH)
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        assert "spamwarden_listing_changes_total" in await r.text()

    run_api(redis_url, scenario)


def test_metrics_are_disabled_without_operator_tokens(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient, store: AsyncListingStore, clock: ManualClock) -> None:
        r = await c.get("/metrics")
        assert r.status == 403 and "spamwarden_" not in await r.text()

    run_api(redis_url, scenario, tokens=())


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer  ", "bearer \t", ""])
def test_an_empty_bearer_is_never_an_operator(redis_url: str, header: str) -> None:
    """Even with an empty string among the tokens (config-check refuses it; a Config built in
    code need not go through it), an empty credential authorises nothing."""
    import dataclasses

    async def main() -> None:
        cfg = config_from_mapping({})
        cfg = dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, operator_tokens=("",)))
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store)
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            headers = {"Authorization": header} if header else {}
            r = await client.get("/v1/listings", headers=headers)
            assert r.status in (401, 403), await r.text()
            r = await client.get("/metrics", headers=headers)
            assert r.status in (401, 403)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


def test_token_ok_refuses_empty_credentials() -> None:
    from spamwarden.api._http import token_ok

    assert not token_ok("", ("",))
    assert not token_ok("", ("a-real-token-0123456789",))
    assert token_ok("a-real-token-0123456789", ("", "a-real-token-0123456789"))
