"""The consent routes served over real HTTP on 127.0.0.1, backed by a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from aiohttp import web

from spamwarden.api.consent import ConsentApi
from spamwarden.config import ApiConfig, Config, ConsentConfig, IntakeConfig
from spamwarden.consent.registry import ConsentRecord, RedisConsentRegistry
from spamwarden.consent.unsubscribe import TokenSigner

pytestmark = pytest.mark.integration

OPERATOR = "operator-secret-token"
A, B = "a@example.test", "b@example.test"
#: consent is kept only for this site's own recipients (``intake.local_domains``)
LOCAL = dataclasses.replace(IntakeConfig(), local_domains=("example.test",))


class ApiServer:
    """An aiohttp app with the consent routes on 127.0.0.1:<any port>, in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "API did not start"

    def stop(self) -> None:
        async def cleanup() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request(
    url: str, *, method: str = "GET", body: Any = None, token: str | None = None,
    form: dict[str, str] | None = None, accept: str | None = None,
) -> tuple[int, str, dict[str, str]]:
    data = None
    headers: dict[str, str] = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        exc.close()
        return exc.code, text, dict(exc.headers)


@pytest.fixture
def setup(redis_url: str) -> Iterator[tuple[ApiServer, RedisConsentRegistry, TokenSigner, str]]:
    client = redis.Redis.from_url(redis_url)
    cfg = Config(
        api=dataclasses.replace(ApiConfig(), operator_tokens=(OPERATOR,)),
        consent=dataclasses.replace(ConsentConfig(), token_key="0123456789abcdef0123"),
        intake=LOCAL,
    )
    reg = RedisConsentRegistry(client, delimiters="+")
    signer = TokenSigner(cfg.consent.token_key.encode())
    api = ConsentApi(cfg, reg, signer)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.add_routes(api.routes())
    server = ApiServer(app)
    server.start()
    _, adv_token = reg.register_advertiser("shop", name="Shop VN", domains=["shop.test"],
                                           new_token=True)
    assert adv_token
    try:
        yield server, reg, signer, adv_token
    finally:
        server.stop()
        client.close()


def test_one_click_post_records_the_refusal(setup: Any) -> None:
    server, reg, signer, _ = setup
    tok = signer.make("shop", A)
    status, page, headers = request(f"{server.base}/u/{tok}")
    assert status == 200 and "Shop VN" in page and A in page and "<form" in page
    assert reg.refusal(A, adv="shop") is None  # GET never unsubscribes
    status, page, headers = request(f"{server.base}/u/{tok}", method="POST",
                                    form={"List-Unsubscribe": "One-Click"})
    assert status == 200 and "Shop VN" in page
    assert headers["Cache-Control"] == "no-store"
    rec = reg.refusal(A, adv="shop")
    assert rec is not None and rec.channel == "one-click" and rec.confirmed_at > 0
    assert reg.refusal(A) is None  # only that advertiser
    # a second POST is harmless
    status, _, _ = request(f"{server.base}/u/{tok}", method="POST",
                           form={"List-Unsubscribe": "One-Click"})
    assert status == 200


def test_one_click_with_an_empty_body_and_scope_all(setup: Any) -> None:
    server, reg, signer, _ = setup
    status, _, _ = request(f"{server.base}/u/{signer.make('shop', B)}", method="POST")
    assert status == 200 and reg.refusal(B, adv="shop") is not None
    status, page, _ = request(f"{server.base}/u/{signer.make('shop', A)}", method="POST",
                              form={"List-Unsubscribe": "One-Click", "scope": "all"})
    # scope=all refuses this advertiser now; all advertising only on the recipient's own
    # confirmation (test_scope_all_from_an_advertisers_link_needs_the_recipients_own_confirmation)
    assert status == 200 and reg.refusal(A, adv="shop") is not None
    assert reg.refusal(A) is None


def test_forged_token_is_refused(setup: Any) -> None:
    server, reg, signer, _ = setup
    forged = TokenSigner(b"not the key at all!!").make("shop", A)
    payload_b = signer.make("shop", B).split(".")[0]
    mac_a = signer.make("shop", A).split(".")[1]
    for tok in (forged, f"{payload_b}.{mac_a}", "garbage", "a" * 3000):
        status, page, _ = request(f"{server.base}/u/{tok}", method="POST",
                                  form={"List-Unsubscribe": "One-Click"})
        assert status == 403, tok
    assert reg.refusal(A, adv="shop") is None and reg.refusal(B, adv="shop") is None
    # a lookup token is not an unsubscribe token
    status, _, _ = request(f"{server.base}/u/{signer.lookup_token('shop', A)}", method="POST")
    assert status == 403


def test_vietnamese_pages(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cfg = Config(consent=dataclasses.replace(ConsentConfig(), token_key="k" * 20, language="vi"))
    reg = RedisConsentRegistry(client, delimiters="+")
    reg.register_advertiser("shop", name="Shop VN", domains=["shop.test"])
    signer = TokenSigner(b"k" * 20)
    app = web.Application()
    app.add_routes(ConsentApi(cfg, reg, signer).routes())
    server = ApiServer(app)
    server.start()
    try:
        status, page, _ = request(f"{server.base}/u/{signer.make('shop', A)}")
        assert status == 200 and "Hủy đăng ký" in page and 'lang="vi"' in page
    finally:
        server.stop()
        client.close()


def test_recipient_lookup_page(setup: Any) -> None:
    server, reg, signer, _ = setup
    reg.add_consents([ConsentRecord("shop", A, "form", 1_700_000_000.0, "form #1")])
    reg.refuse(A, channel="optout-mail")
    status, body, _ = request(f"{server.base}/r/{signer.lookup_token('shop', A)}",
                              accept="application/json")
    data = json.loads(body)
    assert status == 200 and data["recipient"] == A
    assert data["consents"][0]["method"] == "form"
    assert data["refusals"][0]["all_advertising"] is True
    status, _, _ = request(f"{server.base}/r/{signer.make('shop', A)}")
    assert status == 403


def test_advertiser_registration_and_auth(setup: Any) -> None:
    server, reg, _, adv_token = setup
    url = f"{server.base}/v1/advertisers"
    body = {"id": "news", "name": "News", "domains": ["news.test"]}
    assert request(url, method="POST", body=body)[0] == 401
    assert request(url, method="POST", body=body, token=adv_token)[0] == 401
    status, text, _ = request(url, method="POST", body=body, token=OPERATOR)
    assert status == 201
    news_token = json.loads(text)["token"]
    assert reg.domain_map()["news.test"] == "news"
    status, text, _ = request(url, method="POST", token=OPERATOR,
                              body={"id": "rival", "name": "R", "domains": ["shop.test"]})
    assert status == 409 and "shop" in json.loads(text)["error"]
    # an advertiser sees only itself
    assert request(f"{url}/shop", token=news_token)[0] == 403
    status, text, _ = request(f"{url}/news", token=news_token)
    assert status == 200 and json.loads(text)["domains"] == ["news.test"]
    assert request(f"{url}/news/domains", method="POST", token=news_token,
                   body={"domains": ["more.test"]})[0] == 403
    status, text, _ = request(f"{url}/news/domains", method="POST", token=OPERATOR,
                              body={"domains": ["more.test"]})
    assert status == 200 and json.loads(text)["domains"] == ["news.test", "more.test"]
    assert request(f"{url}/nobody", token=OPERATOR)[0] == 404
    status, text, _ = request(url, token=OPERATOR)
    assert json.loads(text)["advertisers"] == ["news", "shop"]


def test_bulk_consent_lookups_and_counts(setup: Any) -> None:
    server, reg, signer, adv_token = setup
    url = f"{server.base}/v1/advertisers/shop"
    records = [{"recipient": f"user{i}@example.test", "method": "form",
                "at": "2026-01-02T03:04:05Z", "evidence": f"form {i}"} for i in range(300)]
    status, text, _ = request(f"{url}/consents", method="POST", token=adv_token,
                              body={"consents": records})
    assert status == 200 and json.loads(text) == {"stored": 300}
    bad = records[:2] + [{"recipient": "x@example.test", "method": "fax"}]
    status, text, _ = request(f"{url}/consents", method="POST", token=adv_token,
                              body={"consents": bad})
    assert status == 400 and "consents[2]" in json.loads(text)["error"]
    assert reg.consent("shop", "x@example.test") is None
    reg.refuse("user1@example.test", adv="shop", channel="one-click")
    status, text, _ = request(f"{url}/counts", token=adv_token)
    assert json.loads(text) == {"advertiser": "shop", "consents": 300, "refusals": 1, "sent": 0}
    status, text, _ = request(f"{url}/refusals", token=adv_token)
    assert [r["recipient"] for r in json.loads(text)["refusals"]] == ["user1@example.test"]
    status, text, _ = request(f"{url}/recipients/user1@example.test", token=adv_token)
    data = json.loads(text)
    assert data["status"] == "refused" and data["may_send"] is False
    status, text, _ = request(f"{url}/recipients/user2@example.test", token=adv_token)
    data = json.loads(text)
    assert (data["status"], data["may_send"], data["cap"]) == ("ok", True, 3)
    assert data["consent"]["at"] == "2026-01-02T03:04:05Z"
    status, text, headers = request(f"{url}/consents?format=csv", token=adv_token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert len(text.strip().splitlines()) == 1 + 300 + 1
    status, text, _ = request(f"{url}/unsubscribe-url?recipient=user2@example.test",
                              token=adv_token)
    data = json.loads(text)
    assert signer.verify(data["url"].rsplit("/", 1)[1]).recipient == "user2@example.test"
    assert data["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    status, text, _ = request(f"{server.base}/v1/recipients/user1@example.test",
                              token=OPERATOR)
    assert json.loads(text)["refusals"][0]["channel"] == "one-click"
    assert request(f"{server.base}/v1/recipients/user1@example.test",
                   token=adv_token)[0] == 401


def test_operator_refusal_and_bad_bodies(setup: Any) -> None:
    server, reg, _, _ = setup
    url = f"{server.base}/v1/refusals"
    status, text, _ = request(url, method="POST", token=OPERATOR, body={"recipient": A})
    assert status == 201 and json.loads(text)["refusal"]["all_advertising"] is True
    assert reg.refusal(A) is not None
    assert request(url, method="POST", token=OPERATOR, body={"recipient": "nope"})[0] == 400
    assert request(url, method="POST", token=OPERATOR, body=[1, 2])[0] == 400


def test_a_deeply_nested_body_is_a_bad_request(setup: Any) -> None:
    """Nested deeper than the parser's recursion limit, within the 64 KiB body limit:
    answered like any malformed body."""
    server, _, _, adv_token = setup
    raw = "[" * 30_000 + "]" * 30_000
    for url, token in ((f"{server.base}/v1/refusals", OPERATOR),
                       (f"{server.base}/v1/advertisers/shop/consents", adv_token)):
        req = urllib.request.Request(url, data=raw.encode(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 400, url
        assert json.loads(err.value.read())["code"] == "body_not_object"
        err.value.close()


def test_store_down_is_503(setup: Any, redis_server: Any) -> None:
    server, _, _, adv_token = setup
    redis_server.stop()
    status, text, _ = request(f"{server.base}/v1/advertisers/shop/counts", token=OPERATOR)
    assert status == 503 and "unavailable" in json.loads(text)["error"]


def test_consent_module_in_the_api_application(redis_url: str, monkeypatch: Any,
                                               tmp_path: Any) -> None:
    """The API application loads the consent module: its routes are served and every
    one of them is in the OpenAPI document, token-protected ones with security."""
    from aiohttp import test_utils

    from spamwarden.api.app import build_app
    from spamwarden.config import config_from_mapping
    from spamwarden.reputation.store import AsyncListingStore
    from spamwarden.wiring import api_modules

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({
        "service": {"state_dir": str(tmp_path)},
        "api": {"operator_tokens": [OPERATOR]},
    })

    async def main() -> None:
        import redis.asyncio

        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=api_modules())
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            doc = await (await client.get("/v1/openapi.json")).json()
            for route in app.router.routes():
                if route.method == "HEAD" or route.resource is None:
                    continue
                path, method = route.resource.canonical, route.method.lower()
                if not path.startswith(("/u/", "/a/", "/r/", "/v1/advertisers", "/v1/recipients",
                                        "/v1/refusals")):
                    continue
                op = doc["paths"][path][method]
                assert bool(getattr(route.handler, "operator_only", False)) == (
                    "security" in op), (path, method)
            r = await client.post("/v1/advertisers", json={"id": "shop", "name": "Shop",
                                                           "domains": ["shop.test"]},
                                  headers={"Authorization": f"Bearer {OPERATOR}"})
            assert r.status == 201
            from spamwarden.consent.unsubscribe import signer_from_config

            tok = signer_from_config(cfg).make("shop", A)
            r = await client.post(f"/u/{tok}", data={"List-Unsubscribe": "One-Click"})
            assert r.status == 200
            r = await client.get(f"/v1/advertisers/shop/recipients/{A}",
                                 headers={"Authorization": f"Bearer {OPERATOR}"})
            assert (await r.json())["status"] == "refused"
        finally:
            await client.close()
            await store.aclose()

    asyncio.run(main())


# -- nobody reaches another advertiser's data, nobody unsubscribes someone else ---------------


class MailSink:
    """An aiosmtpd handler keeping what it receives (the confirmation relay)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def mail_consent() -> dict[str, Any]:
    """Further ``[consent]`` settings of ``mail_setup`` (a test parametrizes it)."""
    return {}


@pytest.fixture
def mail_setup(redis_url: str, mail_consent: dict[str, Any]) -> Iterator[
        tuple[ApiServer, RedisConsentRegistry, TokenSigner, str, MailSink]]:
    """Like ``setup``, with ``consent.confirmation_relay`` a real SMTP server on 127.0.0.1."""
    from aiosmtpd.controller import Controller

    from tests.support.net import free_port

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    client = redis.Redis.from_url(redis_url)
    cfg = Config(
        api=dataclasses.replace(ApiConfig(), operator_tokens=(OPERATOR,)),
        consent=dataclasses.replace(
            ConsentConfig(), token_key="0123456789abcdef0123",
            unsubscribe_base_url="https://mx.example.test/u/",
            confirmation_relay=f"127.0.0.1:{port}", confirmation_from="postmaster@example.test",
            **mail_consent),
        intake=LOCAL,
    )
    reg = RedisConsentRegistry(client, delimiters="+")
    api = ConsentApi.from_config(cfg, client=client)
    app = web.Application()
    app.add_routes(api.routes())
    server = ApiServer(app)
    server.start()
    _, adv_token = reg.register_advertiser("shop", name="Shop VN", domains=["shop.test"],
                                           new_token=True)
    try:
        yield server, reg, api.signer, str(adv_token), sink
    finally:
        server.stop()
        client.close()
        controller.stop()


def test_an_advertiser_token_reaches_only_its_own_advertiser(setup: Any) -> None:
    server, reg, _, shop_token = setup
    reg.register_advertiser("rival", name="Rival", domains=["rival.test"])
    reg.add_consents([ConsentRecord("rival", A, "form", 1_700_000_000.0, "rival evidence")])
    url = f"{server.base}/v1/advertisers/rival"
    attempts = [
        ("GET", url, None), ("GET", f"{url}/consents", None),
        ("GET", f"{url}/consents?format=csv", None), ("GET", f"{url}/refusals", None),
        ("GET", f"{url}/counts", None), ("GET", f"{url}/recipients/{A}", None),
        ("GET", f"{url}/unsubscribe-url?recipient={A}", None),
        ("POST", f"{url}/consents", {"consents": [{"recipient": B, "method": "form"}]}),
        ("POST", f"{url}/domains", {"domains": ["more.test"]}),
    ]
    for method, u, body in attempts:
        status, text, _ = request(u, method=method, body=body, token=shop_token)
        assert status == 403, (method, u, status)
        assert "rival evidence" not in text
    assert reg.consent("rival", B) is None and reg.advertiser("rival").domains == ("rival.test",)
    for method, u, body in attempts[:7]:  # the operator reaches every advertiser
        assert request(u, method=method, body=body, token=OPERATOR)[0] == 200, u


def test_unsubscribe_url_only_for_a_recipient_the_advertiser_holds_consent_for(
    setup: Any,
) -> None:
    server, reg, signer, shop_token = setup
    url = f"{server.base}/v1/advertisers/shop/unsubscribe-url"
    for token in (shop_token, OPERATOR):
        status, text, headers = request(f"{url}?recipient={A}", token=token)
        assert status == 409, text
        assert headers["Content-Type"].startswith("application/json")
        assert "consent" in json.loads(text)["error"] and "url" not in json.loads(text)
    reg.add_consents([ConsentRecord("shop", A, "form", 1_700_000_000.0, "form #1")])
    status, text, _ = request(f"{url}?recipient={A}", token=shop_token)
    assert status == 200
    tok = json.loads(text)["url"].rsplit("/", 1)[1]
    # the genuine path: the recipient's one-click POST records the refusal of that advertiser
    status, _, _ = request(f"{server.base}/u/{tok}", method="POST",
                           form={"List-Unsubscribe": "One-Click"})
    assert status == 200 and reg.refusal(A, adv="shop") is not None
    assert reg.refusal(A) is None


def test_unsubscribe_and_lookup_tokens_never_read_another_advertisers_evidence(
    setup: Any,
) -> None:
    server, reg, signer, shop_token = setup
    reg.register_advertiser("rival", name="Rival", domains=["rival.test"])
    reg.add_consents([ConsentRecord("rival", A, "form", 1_700_000_000.0, "rival evidence"),
                      ConsentRecord("shop", A, "app", 1_700_000_000.0, "shop evidence")])
    status, text, _ = request(
        f"{server.base}/v1/advertisers/shop/unsubscribe-url?recipient={A}", token=shop_token)
    tok = json.loads(text)["url"].rsplit("/", 1)[1]
    status, done, _ = request(f"{server.base}/u/{tok}", method="POST")
    assert status == 200
    link = done.split('href="../r/', 1)[1].split('"', 1)[0]
    for accept, own in (("application/json", "shop evidence"), (None, "shop: app")):
        status, body, _ = request(f"{server.base}/r/{link}", accept=accept)
        assert status == 200
        assert "rival" not in body.lower() and own in body
    data = json.loads(request(f"{server.base}/r/{link}", accept="application/json")[1])
    assert [c["advertiser"] for c in data["consents"]] == ["shop"]
    assert [r["advertiser"] for r in data["refusals"]] == ["shop"]
    # a lookup token bound to no advertiser (as earlier versions made them) reads nothing
    status, body, _ = request(f"{server.base}/r/{signer.make('', A, purpose='r')}",
                              accept="application/json")
    assert status == 403 and "rival" not in body
    # a lookup token is bound to its recipient as well
    status, body, _ = request(f"{server.base}/r/{signer.make('shop', B, purpose='r')}",
                              accept="application/json")
    assert status == 200 and "evidence" not in body


def test_scope_all_from_an_advertisers_link_needs_the_recipients_own_confirmation(
    mail_setup: Any,
) -> None:
    import email
    import email.policy

    server, reg, signer, shop_token, sink = mail_setup
    reg.add_consents([ConsentRecord("shop", A, "form", 1_700_000_000.0, "form #1")])
    tok = signer.make("shop", A)
    status, page, _ = request(f"{server.base}/u/{tok}", method="POST",
                              form={"List-Unsubscribe": "One-Click", "scope": "all"})
    assert status == 200
    assert reg.refusal(A) is None  # an advertiser-issued token never refuses all advertising
    assert reg.refusal(A, adv="shop") is not None  # what the link itself proves
    assert A in page and "message" in page
    assert len(sink.messages) == 1
    rcpts, raw = sink.messages[0]
    assert rcpts == [A]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    url = next(w for w in body.split() if w.startswith("https://mx.example.test/a/"))
    confirm = url.rsplit("/", 1)[1]
    # the same POST again does not mail the recipient again (at most one request a day)
    request(f"{server.base}/u/{tok}", method="POST", form={"scope": "all"})
    assert len(sink.messages) == 1
    # the confirmation link: GET only asks, POST records the refusal of all advertising
    status, page, _ = request(f"{server.base}/a/{confirm}")
    assert status == 200 and "<form" in page and reg.refusal(A) is None
    status, page, _ = request(f"{server.base}/a/{confirm}", method="POST")
    assert status == 200
    rec = reg.refusal(A)
    assert rec is not None and rec.channel == "mail-link"
    # neither an unsubscribe token nor a lookup token is a confirmation token
    for other in (tok, signer.make("shop", A, purpose="r"), signer.make("", B, purpose="u")):
        assert request(f"{server.base}/a/{other}", method="POST")[0] == 403
    assert reg.refusal(B) is None


def test_scope_all_without_a_confirmation_relay_says_how_to_refuse_all(setup: Any) -> None:
    server, reg, signer, _ = setup
    status, page, _ = request(f"{server.base}/u/{signer.make('shop', A)}", method="POST",
                              form={"List-Unsubscribe": "One-Click", "scope": "all"})
    assert status == 200 and "ALL" in page and "optout" in page
    assert reg.refusal(A) is None and reg.refusal(A, adv="shop") is not None


# -- consent and the mail it leads to are for this site's own recipients only ----------------


def test_consent_is_refused_for_a_recipient_outside_this_sites_domains(setup: Any) -> None:
    """An advertiser's token must not make the server mail the world: a consent (which
    yields an unsubscribe token, whose scope=all mails the address) is kept only for
    ``intake.local_domains``; the whole request is refused, naming the address."""
    server, reg, _, adv_token = setup
    url = f"{server.base}/v1/advertisers/shop/consents"
    items = [{"recipient": A, "method": "form"},
             {"recipient": "victim@third-party.example", "method": "form"}]
    for token in (adv_token, OPERATOR):
        status, text, _ = request(url, method="POST", token=token, body={"consents": items})
        err = json.loads(text)
        assert (status, err["code"]) == (400, "consent_not_local"), text
        assert "consents[1]" in err["error"] and "victim@third-party.example" in err["error"]
        assert "example.test" in err["error"] and "intake.local_domains" in err["error"]
    assert reg.consent("shop", A) is None  # all or nothing
    assert reg.consent("shop", "victim@third-party.example") is None
    # a subdomain is another domain
    status, text, _ = request(url, method="POST", token=adv_token, body={"consents": [
        {"recipient": "x@mail.example.test", "method": "form"}]})
    assert status == 400 and json.loads(text)["code"] == "consent_not_local"
    # the site's own recipients, in any case of the domain
    status, text, _ = request(url, method="POST", token=adv_token, body={"consents": [
        {"recipient": "C@Example.TEST", "method": "form"}]})
    assert (status, json.loads(text)) == (200, {"stored": 1})


def test_no_local_domains_means_no_consent_is_kept(redis_url: str) -> None:
    """Without ``intake.local_domains`` no recipient is this site's: every consent is
    refused (never every address in the world accepted)."""
    client = redis.Redis.from_url(redis_url)
    cfg = Config(api=dataclasses.replace(ApiConfig(), operator_tokens=(OPERATOR,)),
                 consent=dataclasses.replace(ConsentConfig(), token_key="k" * 20))
    reg = RedisConsentRegistry(client, delimiters="+")
    reg.register_advertiser("shop", name="Shop VN", domains=["shop.test"])
    app = web.Application()
    app.add_routes(ConsentApi(cfg, reg, TokenSigner(b"k" * 20)).routes())
    server = ApiServer(app)
    server.start()
    try:
        status, text, _ = request(f"{server.base}/v1/advertisers/shop/consents", method="POST",
                                  token=OPERATOR,
                                  body={"consents": [{"recipient": A, "method": "form"}]})
        err = json.loads(text)
        assert (status, err["code"]) == (400, "consent_not_local")
        assert A in err["error"] and "none configured" in err["error"]
        assert reg.consent("shop", A) is None
    finally:
        server.stop()
        client.close()


def test_scope_all_never_mails_a_recipient_outside_this_sites_domains(
    mail_setup: Any,
) -> None:
    """A consent kept before the rule (or for a domain since dropped from
    ``intake.local_domains``) still unsubscribes, but scope=all mails nobody there."""
    server, reg, signer, _, sink = mail_setup
    far = "victim@third-party.example"
    reg.add_consents([ConsentRecord("shop", far, "form", 1_700_000_000.0, "old")])
    status, page, _ = request(f"{server.base}/u/{signer.make('shop', far)}", method="POST",
                              form={"List-Unsubscribe": "One-Click", "scope": "all"})
    assert status == 200 and reg.refusal(far, adv="shop") is not None
    assert far in page and "not an address of this site" in page
    assert sink.messages == []


@pytest.mark.parametrize("mail_consent", [{"max_all_requests_per_day": 2}])
def test_scope_all_mails_are_capped_per_advertiser_and_day(
    mail_setup: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """An advertiser holding consents of many local recipients cannot make the server
    mail all of them: past ``consent.max_all_requests_per_day`` the page says how to
    refuse all advertising by mail, nothing is sent, and the refusal is logged."""
    server, reg, signer, _, sink = mail_setup
    rcpts = [f"user{i}@example.test" for i in range(4)]
    reg.add_consents([ConsentRecord("shop", r, "form", 1_700_000_000.0, "form") for r in rcpts])
    pages = []
    with caplog.at_level("INFO", logger="spamwarden.api.consent"):
        for r in rcpts:
            status, page, _ = request(f"{server.base}/u/{signer.make('shop', r)}",
                                      method="POST", form={"scope": "all"})
            assert status == 200 and reg.refusal(r, adv="shop") is not None
            pages.append(page)
    assert [m[0] for m in sink.messages] == [[rcpts[0]], [rcpts[1]]]
    assert all("ALL" in p and "optout" in p for p in pages[2:])
    capped = [r for r in caplog.records if r.getMessage() == "refuse_all_request_capped"]
    assert [r.fields["rcpt"] for r in capped] == rcpts[2:]  # type: ignore[attr-defined]
    assert all(r.fields["advertiser"] == "shop" for r in capped)  # type: ignore[attr-defined]
    # another advertiser's count is its own
    reg.register_advertiser("news", name="News", domains=["news.test"])
    reg.add_consents([ConsentRecord("news", rcpts[3], "form", 1_700_000_000.0, "form")])
    reg.client.delete(f"sw:{{sw}}:all-request:{rcpts[3]}")
    request(f"{server.base}/u/{signer.make('news', rcpts[3])}", method="POST",
            form={"scope": "all"})
    assert [m[0] for m in sink.messages][-1] == [rcpts[3]]


def test_the_api_folds_recipients_at_the_sites_delimiters_only(redis_url: str) -> None:
    """A site whose address extensions start at "-" (intake.recipient_delimiter, as its
    Postfix's recipient_delimiter): an+shop@ is a mailbox of its own, not an@. Consent
    an advertiser uploads for it must be an+shop@'s, not given to an@ who never
    consented; and the state the API reports is the one the milter checks."""
    client = redis.Redis.from_url(redis_url)
    cfg = Config(api=dataclasses.replace(ApiConfig(), operator_tokens=(OPERATOR,)),
                 consent=dataclasses.replace(ConsentConfig(), token_key="0123456789abcdef0123"),
                 intake=dataclasses.replace(LOCAL, recipient_delimiter="-"))
    reg = RedisConsentRegistry(client, delimiters="-")
    app = web.Application()
    app.add_routes(ConsentApi(cfg, reg, TokenSigner(cfg.consent.token_key.encode())).routes())
    server = ApiServer(app)
    server.start()
    try:
        _, adv_token = reg.register_advertiser("shop", name="Shop VN", domains=["shop.test"],
                                               new_token=True)
        url = f"{server.base}/v1/advertisers/shop"
        status, _, _ = request(f"{url}/consents", method="POST", token=adv_token,
                               body={"consents": [{"recipient": "an+shop@example.test",
                                                   "method": "form"}]})
        assert status == 200
        assert reg.consent("shop", "an+shop@example.test") is not None
        assert reg.consent("shop", "an@example.test") is None
        status, text, _ = request(f"{url}/recipients/an+shop@example.test", token=adv_token)
        assert status == 200
        state = json.loads(text)
        assert state["recipient"] == "an+shop@example.test" and state["consent"] is not None
        # and a "-" extension is folded, as the milter folds it
        status, text, _ = request(f"{url}/recipients/an-news@example.test", token=adv_token)
        assert json.loads(text)["recipient"] == "an@example.test"
    finally:
        server.stop()
        client.close()
