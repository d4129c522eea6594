"""API error messages per language, through aiohttp's test server and a real Redis.

Every JSON error keeps its English ``error`` and its machine ``code`` whatever the
language; ``message`` follows Accept-Language when it names en or vi, else i18n.language."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api.app import build_app
from spamwarden.api.consent import consent_module
from spamwarden.api.learn import learn_module
from spamwarden.api.settings import settings_module
from spamwarden.config import config_from_mapping
from spamwarden.mail import parse_message
from spamwarden.reputation.deliveries import RedisDeliveryLedger, delivery_of
from spamwarden.reputation.reports import delivered_fingerprint
from spamwarden.reputation.store import AsyncListingStore

pytestmark = pytest.mark.integration

TOKEN = "op-token-1-0123456789"
VI = {"Accept-Language": "vi-VN,vi;q=0.9"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}

Scenario = Callable[[test_utils.TestClient], Awaitable[None]]


def run_api(redis_url: str, scenario: Scenario, *, language: str,
            modules: list[Any] | None = None) -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": [TOKEN],
                                       "public_url": "https://bl.example.net"},
                               "intake": {"local_domains": ["example.vn"]},
                               "redis": {"url": redis_url},
                               "consent": {"token_key": "0123456789abcdef0123"},
                               "i18n": {"language": language}})

    async def main() -> None:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        client = test_utils.TestClient(test_utils.TestServer(
            build_app(cfg, store, modules=modules)))
        await client.start_server()
        try:
            await scenario(client)
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


def _deliver(redis_url: str, raw: bytes, rcpt: str) -> None:
    """Record ``raw`` as the milter does when it delivers it to ``rcpt``."""
    view = parse_message(raw)
    d = delivery_of(view, fingerprint=delivered_fingerprint(view), client_ip="192.0.2.77",
                    mail_from="x@shop.example", rcpts=[rcpt], auth=None, at=time.time(),
                    queue_id="4XmS", delimiters="+")
    assert d is not None
    client = redis.Redis.from_url(redis_url)
    try:
        RedisDeliveryLedger(client, ttl=600).record_many([d])
    finally:
        client.close()


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

        # a detail written by a lower layer: the generic code, the English as before,
        # the detail in Vietnamese inside the Vietnamese frame
        r = await c.get("/v1/listings/not a key!")
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "bad_request")
        assert body["error"] == ("'not a key!' is not an IP address, a CIDR block or a "
                                 "domain name")
        assert body["message"] == ("Yêu cầu không hợp lệ: 'not a key!' không phải là địa chỉ "
                                   "IP, dải CIDR hay tên miền")
        # aiohttp's own refusals: the reason phrase stays the English error
        r = await c.get("/v1/no-such-thing")
        body = await _error(r)
        assert (r.status, body["code"], body["error"]) == (404, "not_found", "Not Found")
        assert body["message"] == "Không tìm thấy: đường dẫn này không tồn tại"
        r = await c.delete("/v1/openapi.json")
        body = await _error(r)
        assert (r.status, body["code"], body["error"]) == (405, "error", "Method Not Allowed")
        assert body["message"] == "Lỗi: đường dẫn này không hỗ trợ phương thức HTTP đã dùng"
        # one the catalogue does not hold (the ipaddress module's): English in the frame
        r = await c.post("/v1/listings", json={"key": "300.0.0.0/8", "reason": "x"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "bad_request")
        assert body["message"] == "Yêu cầu không hợp lệ: " + body["error"]
        assert "300.0.0.0/8" in body["error"]

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


# -- details written by lower layers, each with its own Vietnamese -----------------------------

OP = {"Authorization": f"Bearer {TOKEN}"}


def test_settings_validation_in_vietnamese(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.put("/v1/settings/alice@example.vn", json={"tag_threshold": "high"},
                        headers=OP)
        body = await _error(r)
        # the machine code and the English are what they always were
        assert (r.status, body["code"]) == (400, "bad_request")
        assert body["error"] == "tag_threshold must be a number"
        assert body["message"] == "Yêu cầu không hợp lệ: tag_threshold phải là một số"

        r = await c.put("/v1/settings/not a domain!", json={"tag_threshold": 3}, headers=OP)
        body = await _error(r)
        assert body["error"] == ("target 'not a domain!' is not a domain name such as "
                                 "example.org")
        assert body["message"] == ("Yêu cầu không hợp lệ: đối tượng áp dụng 'not a domain!' "
                                   "không phải là tên miền (ví dụ: example.org)")

        r = await c.post("/v1/deny", json={"entry": "ip:192.0.2.1"}, headers=OP)
        body = await _error(r)
        assert body["error"] == ("unknown entry kind 'ip': expected one of address, domain, "
                                 "dkim, cidr")
        assert body["message"] == ("Yêu cầu không hợp lệ: không có loại mục 'ip': phải là "
                                   "một trong các loại address, domain, dkim, cidr")

        r = await c.delete("/v1/settings/nobody.example.vn", headers=OP)
        body = await _error(r)
        assert (r.status, body["code"]) == (404, "not_found")
        assert body["error"] == "nobody.example.vn has no settings"
        assert body["message"] == "Không tìm thấy: nobody.example.vn chưa có thiết lập riêng nào"

        # the same error for an English client
        r = await c.put("/v1/settings/alice@example.vn", json={"tag_threshold": "high"},
                        headers={**OP, **EN})
        body = await _error(r)
        assert body["message"] == body["error"] == "tag_threshold must be a number"

    run_api(redis_url, scenario, language="vi", modules=[settings_module])


def test_learn_outcomes_in_vietnamese(redis_url: str) -> None:
    raw = (b"From: Shop <deals@shop.example>\r\nTo: alice@example.vn\r\n"
           b"Subject: hello i18n\r\nMessage-ID: <i18n-learn-1@shop.example>\r\n\r\nHi\r\n")
    delivered = raw.replace(b"i18n-learn-1@", b"i18n-learn-2@").replace(b"Hi", b"Hello")

    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.post("/v1/learn?kind=ham&user=eve@elsewhere.example", data=raw, headers=OP)
        body = await _error(r)
        assert (r.status, body["code"]) == (403, "forbidden")
        assert body["error"] == ("'eve@elsewhere.example' is not an address at example.vn "
                                 "(intake.local_domains)")
        assert body["message"] == ("Không được phép: 'eve@elsewhere.example' không phải là "
                                   "địa chỉ thuộc example.vn (intake.local_domains)")

        r = await c.post("/v1/learn?kind=ham&user=alice@example.vn", data=b"no header\r\n",
                         headers=OP)
        body = await _error(r)
        assert (r.status, body["code"]) == (422, "unprocessable")
        assert body["error"] == "no message header section was found"
        assert body["message"] == ("Không xử lý được yêu cầu: Không tìm thấy phần tiêu đề "
                                   "của thư")

        # a message never delivered here teaches nothing, and says so
        r = await c.post("/v1/learn?kind=ham&user=alice@example.vn", data=raw, headers=OP)
        assert r.status == 201 and (await r.json())["message"] == (
            "Đã lưu, nhưng hệ thống không học gì từ thư này: gần đây hệ thống không chuyển "
            "thư nào như vậy")
        # a stored learn says so in the request's language too
        _deliver(redis_url, delivered, "alice@example.vn")
        r = await c.post("/v1/learn?kind=ham&user=alice@example.vn", data=delivered, headers=OP)
        assert r.status == 201 and r.headers["Content-Language"] == "vi"
        assert (await r.json())["message"] == "Đã lưu"
        r = await c.post("/v1/learn?kind=ham&user=alice@example.vn", data=delivered,
                         headers={**OP, **EN})
        assert r.status == 200 and r.headers["Content-Language"] == "en"
        assert (await r.json())["message"] == "already stored; counted once"

    run_api(redis_url, scenario, language="vi", modules=[learn_module])


def test_consent_validation_in_vietnamese(redis_url: str) -> None:
    async def scenario(c: test_utils.TestClient) -> None:
        r = await c.post("/v1/advertisers", json={"id": "bad id!"}, headers=OP)
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "bad_request")
        assert body["error"] == ("advertiser id 'bad id!': use 1-64 letters, digits, '.', '_' "
                                 "or '-' (starting with a letter or digit)")
        assert body["message"] == (
            "Yêu cầu không hợp lệ: mã nhà quảng cáo 'bad id!' không hợp lệ: hãy dùng 1-64 "
            "chữ cái, chữ số, '.', '_' hoặc '-' (bắt đầu bằng chữ cái hoặc chữ số)")

        r = await c.get("/v1/recipients/nobody", headers=OP)
        body = await _error(r)
        assert body["error"] == "not an email address: 'nobody'"
        assert body["message"] == ("Yêu cầu không hợp lệ: không phải là địa chỉ thư điện tử: "
                                   "'nobody'")

        r = await c.post("/v1/advertisers", json={"id": "shop-i18n", "domains": ["shop.vn"]},
                         headers=OP)
        assert r.status in (200, 201), await r.text()
        r = await c.post("/v1/advertisers/shop-i18n/consents", headers=OP, json={
            "consents": [{"recipient": "an@example.vn", "method": "fax"}]})
        body = await _error(r)
        assert (r.status, body["code"]) == (400, "consent_item")
        assert body["error"] == "consents[0]: method must be one of form, reply, call, app"
        assert body["message"] == ("Bản ghi consents[0] không hợp lệ: method phải là một "
                                   "trong form, reply, call, app")

    run_api(redis_url, scenario, language="vi", modules=[consent_module])
