"""API error messages per language, through aiohttp's test server and a real Redis.

Every JSON error keeps its English ``error`` and its machine ``code`` whatever the
language; ``message`` follows Accept-Language when it names en or vi, else i18n.language."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.config import config_from_mapping
from spamwarden.reputation.store import AsyncListingStore

pytestmark = pytest.mark.integration

TOKEN = "op-token-1-0123456789"
VI = {"Accept-Language": "vi-VN,vi;q=0.9"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}

Scenario = Callable[[test_utils.TestClient], Awaitable[None]]


def run_api(redis_url: str, scenario: Scenario, *, language: str) -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": [TOKEN],
                                       "public_url": "https://bl.example.net"},
                               "i18n": {"language": language}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        client = test_utils.TestClient(test_utils.TestServer(build_app(cfg, store)))
        await client.start_server()
        try:
            await scenario(client)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


async def _error(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = await r.json()
    assert set(body) >= {"error", "code", "message", "status"}
    assert body["status"] == r.status
    return body


def test_errors_follow_the_configured_language(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.1", "reason": "fixed"})
        assert r.status == 404
        assert r.headers["Content-Language"] == "vi"
        assert await _error(r) == {
            "error": "192.0.2.1 is not listed", "code": "not_listed", "status": 404,
            "message": "192.0.2.1 không nằm trong danh sách chặn"}

        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.1"})
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "field_required")
        assert body["message"] == "Thiếu trường bắt buộc reason"
        assert body["error"] == "reason is required"

        r = await c.post("/v1/listings", json={"key": "192.0.2.1", "reason": "x"})
        body = await _error(r)
        assert (r.status, body["code"]) == (401, "operator_token_required")
        assert body["message"] == "Cần mã truy cập (bearer token) của người vận hành"
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="spamwarden"'

        # a detail written by a lower layer: English inside a Vietnamese frame
        r = await c.get("/v1/listings/not a key!")
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "bad_request")
        assert body["message"] == "Yêu cầu không hợp lệ: " + body["error"]

    run_api(redis_url, scenario, language="vi")


def test_accept_language_chooses_over_the_setting(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.1", "reason": "x"},
                         headers=EN)
        body = await _error(r)
        assert r.headers["Content-Language"] == "en"
        assert body["message"] == body["error"] == "192.0.2.1 is not listed"
        # a language we do not have: the setting's
        r = await c.post("/v1/delist-requests", json={"key": "192.0.2.1", "reason": "x"},
                         headers={"Accept-Language": "fr-FR,de;q=0.5"})
        assert (await _error(r))["message"] == "192.0.2.1 không nằm trong danh sách chặn"

    run_api(redis_url, scenario, language="vi")


def test_english_site_answers_a_vietnamese_client_in_vietnamese(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.post("/v1/delist-requests", data=b"[1]", headers=VI)
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "body_not_object")
        assert body["message"] == "Nội dung yêu cầu phải là một đối tượng JSON"
        r = await c.post("/v1/delist-requests", data=b"[1]")
        body = await _error(r)
        assert body["message"] == body["error"] == "the body must be a JSON object"
        assert r.headers["Content-Language"] == "en"

    run_api(redis_url, scenario, language="en")


def test_store_down_503_in_vietnamese(redis_url: str, redis_server: Any) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        redis_server.stop()
        r = await c.get("/v1/listings/192.0.2.1")
        body = await _error(r)
        assert (r.status, body["code"]) == (503, "store_unavailable")
        assert body["message"].startswith("Tạm thời không truy cập được kho dữ liệu")
        assert r.headers["Retry-After"] == "5"

    run_api(redis_url, scenario, language="vi")
