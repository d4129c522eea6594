"""The consent commands (`advertiser add`, `consent add|export`, `refuse`, `unsubscribe-url`)
against a real Redis, run through the CLI entry point."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from spamwarden.cli import main
from spamwarden.consent.records import parse_time
from spamwarden.consent.unsubscribe import TokenSigner

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    path = tmp_path / "sw.toml"
    path.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
        '[consent]\ntoken_key = "cli-test-key-0123456789"\n'
        'unsubscribe_base_url = "https://u.example/u/"\n'
    )
    return str(path)


def run(capsys: pytest.CaptureFixture[str], config: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--config", config])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, out, _ = run(capsys, config, "advertiser", "add", "shop", "--name", "Shop VN",
                       "--domain", "mail.shop.test", "--domain", "shop2.test")
    assert code == 0 and "shop.test, shop2.test" in out and "api token (shown once)" in out
    code, _, err = run(capsys, config, "advertiser", "add", "rival", "--name", "R",
                       "--domain", "shop.test")
    assert code == 2 and "registered to advertiser shop" in err
    code, out, _ = run(capsys, config, "consent", "add", "shop", "A@Example.test",
                       "--method", "reply", "--evidence", "Re: yes", "--at",
                       "2026-03-01T08:00:00Z", "--expires", "365d", "--max-per-day", "5")
    assert code == 0
    code, _, err = run(capsys, config, "consent", "add", "nobody", "a@example.test",
                       "--method", "form")
    assert code == 2 and "no advertiser" in err
    code, out, _ = run(capsys, config, "refuse", "b@example.test", "--advertiser", "shop")
    assert code == 0 and "advertising from shop" in out and "recorded" in out
    code, out, _ = run(capsys, config, "refuse", "c@example.test")
    assert code == 0 and "all advertising" in out
    code, out, _ = run(capsys, config, "refuse", "c@example.test")
    assert "already recorded" in out

    code, out, _ = run(capsys, config, "consent", "export", "shop", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["kind"], r["recipient"]) for r in rows] == [
        ("consent", "a@example.test"), ("refusal", "b@example.test")]
    assert rows[0]["method"] == "reply" and rows[0]["at"] == "2026-03-01T08:00:00Z"
    assert rows[0]["expires_at"] == "2027-03-01T08:00:00Z" and rows[0]["max_per_day"] == "5"
    code, out, _ = run(capsys, config, "consent", "export", "shop", "--format", "json")
    data = json.loads(out)
    assert data[0]["evidence"] == "Re: yes" and data[1]["channel"] == "cli"

    code, out, _ = run(capsys, config, "unsubscribe-url", "shop", "A@example.test")
    url = out.strip()
    assert code == 0 and url.startswith("https://u.example/u/")
    claims = TokenSigner(b"cli-test-key-0123456789").verify(url.rsplit("/", 1)[1])
    assert (claims.advertiser, claims.recipient) == ("shop", "a@example.test")
    code, out, _ = run(capsys, config, "unsubscribe-url", "shop", "a@example.test", "--headers")
    assert out.splitlines() == [f"List-Unsubscribe: <{url}>",
                                "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    code, out, _ = run(capsys, config, "advertiser", "show", "shop")
    shown = json.loads(out)
    assert (shown["consents"], shown["refusals"]) == (1, 1)


def test_parse_time() -> None:
    assert parse_time("1800000000", now=0) == 1_800_000_000
    assert parse_time("2027-01-15", now=0) == parse_time("2027-01-15T00:00:00Z", now=0)
    assert parse_time("2d", now=100.0) == 100.0 + 172800
    with pytest.raises(ValueError):
        parse_time("next tuesday", now=0)


def test_the_printed_unsubscribe_url_is_served_by_the_api(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The link `unsubscribe-url` prints, opened on the real API application: the page
    answers and the one-click POST records the refusal (a link the API does not serve
    would silently break the recipient's refusal)."""
    import asyncio

    import redis.asyncio

    from spamwarden.api.app import build_app
    from spamwarden.config import load_config
    from spamwarden.reputation.store import AsyncListingStore
    from spamwarden.wiring import api_modules

    from .test_consent_api import ApiServer, request

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    path = tmp_path / "sw.toml"
    base = (f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
            '[api]\noperator_tokens = ["operator-secret-token"]\n'
            '[consent]\ntoken_key = "cli-test-key-0123456789"\n')
    path.write_text(base)
    store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
    server = ApiServer(build_app(load_config(path), store, modules=api_modules()))
    server.start()
    try:
        path.write_text(base + f'unsubscribe_base_url = "{server.base}/u/"\n')
        assert run(capsys, str(path), "advertiser", "add", "shop", "--name", "Shop",
                   "--domain", "shop.test")[0] == 0
        code, out, _ = run(capsys, str(path), "unsubscribe-url", "shop", "a@example.test")
        url = out.strip()
        assert code == 0 and url.startswith(f"{server.base}/u/")
        status, page, _ = request(url)
        assert status == 200 and "<form" in page
        status, _, _ = request(url, method="POST", form={"List-Unsubscribe": "One-Click"})
        assert status == 200
        status, body, _ = request(f"{server.base}/v1/advertisers/shop/recipients/a@example.test",
                                  token="operator-secret-token")
        assert status == 200 and json.loads(body)["status"] == "refused"
    finally:
        server.stop()
        asyncio.run(store.aclose())

    # the mistake this guards against is refused before any link is printed
    path.write_text(base + f'unsubscribe_base_url = "{server.base}"\n')
    code, _, err = run(capsys, str(path), "config-check")
    assert code != 0 and "consent.unsubscribe_base_url" in err and "/u/" in err
