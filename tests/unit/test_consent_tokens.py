"""One-click unsubscribe tokens (RFC 8058), the key file, and the consent texts."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from spamwarden.config import Config, ConsentConfig, ServiceConfig
from spamwarden.consent.registry import normalize_advertiser_id, normalize_recipient
from spamwarden.consent.texts import TEXTS, page, smtp_text, text
from spamwarden.consent.unsubscribe import (
    KEY_FILE,
    InvalidToken,
    TokenSigner,
    list_unsubscribe_headers,
    load_token_key,
    signer_from_config,
    unsubscribe_url,
)

KEY = b"k" * 32


def test_round_trip_binds_advertiser_and_recipient() -> None:
    s = TokenSigner(KEY)
    tok = s.make("shop", "a@example.test")
    claims = s.verify(tok)
    assert (claims.purpose, claims.advertiser, claims.recipient) == ("u", "shop", "a@example.test")
    assert s.make("shop", "a@example.test") == tok  # deterministic: same link every time
    assert s.make("shop", "b@example.test") != tok


def test_forged_and_altered_tokens_are_refused() -> None:
    s = TokenSigner(KEY)
    tok = s.make("shop", "a@example.test")
    other = TokenSigner(b"x" * 32).make("shop", "a@example.test")
    payload, mac = tok.split(".")
    victim = TokenSigner(KEY).make("shop", "b@example.test").split(".")[0]
    for bad in (
        other,  # signed with another key
        f"{victim}.{mac}",  # someone else's address with my signature
        f"{payload}.{mac[:-2]}AA",
        f"{payload}.",
        payload,
        "",
        "a.b.c",
        "x" * 2000,
        "é.é",
        f"{payload}.{mac}%",
    ):
        with pytest.raises(InvalidToken):
            s.verify(bad)


def test_lookup_tokens_are_not_unsubscribe_tokens() -> None:
    s = TokenSigner(KEY)
    look = s.lookup_token("shop", "a@example.test")
    claims = s.verify(look, purpose="r")
    assert (claims.advertiser, claims.recipient) == ("shop", "a@example.test")
    with pytest.raises(InvalidToken):
        s.verify(look)
    with pytest.raises(InvalidToken):
        s.verify(s.make("shop", "a@example.test"), purpose="r")


def test_each_purpose_is_bound_as_it_must_be() -> None:
    """Lookup tokens name an advertiser (they read only its records); refuse-all tokens name
    none (they are mailed to the recipient); neither is accepted for another purpose."""
    s = TokenSigner(KEY)
    with pytest.raises(InvalidToken):
        s.verify(s.make("", "a@example.test", purpose="r"), purpose="r")
    every = s.all_advertising_token("a@example.test")
    assert s.verify(every, purpose="a").recipient == "a@example.test"
    for purpose in ("u", "r"):
        with pytest.raises(InvalidToken):
            s.verify(every, purpose=purpose)  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        s.verify(s.make("shop", "a@example.test", purpose="a"), purpose="a")
    with pytest.raises(InvalidToken):
        s.verify(s.make("shop", "a@example.test"), purpose="a")


def test_short_key_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short")


def _cfg(tmp_path: Path, **consent: object) -> Config:
    return Config(
        service=ServiceConfig(state_dir=str(tmp_path / "state")),
        consent=dataclasses.replace(ConsentConfig(), **consent),  # type: ignore[arg-type]
    )


def test_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    k1 = load_token_key(cfg)
    path = cfg.state_path(KEY_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(k1) == 64
    assert load_token_key(cfg) == k1  # a second process reads the same key
    tok = signer_from_config(cfg).make("shop", "a@example.test")
    assert signer_from_config(cfg).verify(tok).advertiser == "shop"


def test_configured_key_wins(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, token_key="a configured secret key")
    assert load_token_key(cfg) == b"a configured secret key"
    assert not cfg.state_path(KEY_FILE).exists()


def test_url_and_headers(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, token_key="0123456789abcdef", unsubscribe_base_url="https://u.test/u")
    s = signer_from_config(cfg)
    url = unsubscribe_url(cfg, s, "shop", "a@example.test")
    assert url.startswith("https://u.test/u/")
    assert s.verify(url.rsplit("/", 1)[1]).recipient == "a@example.test"
    assert list_unsubscribe_headers(url) == [
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


def test_normalisation() -> None:
    assert normalize_recipient(" <An@Example.TEST> ", "+") == "an@example.test"
    assert normalize_recipient("a@bücher.test", "+") == "a@xn--bcher-kva.test"
    for bad in ("", "a", "a@@b.test", "a b@c.test", "@c.test", "a@", "a@localhost"):
        with pytest.raises(ValueError):
            normalize_recipient(bad, "+")
    # one mailbox, one record: quotes that are not needed, extensions, case
    for form in ('"an"@x.test', '"a\\n"@x.test', "An+news@X.test", "an+a+b@x.test",
                 "an+" + "x" * 80 + "@x.test", "an-shop@x.test"):
        assert normalize_recipient(form, "+-") == "an@x.test", form
    assert normalize_recipient("an-shop@x.test", "+") == "an-shop@x.test"  # "+" only
    assert normalize_recipient("an+shop@x.test", "") == "an+shop@x.test"  # no delimiter
    assert normalize_recipient("+news@x.test", "+") == "+news@x.test"  # nothing before it
    # what no record can hold: quotes that are needed, control characters, long parts
    for bad in ('"a b"@x.test', '"a@b"@x.test', "a\x08b@x.test", "a\x7f@x.test",
                "a\x1b[2J@x.test", "a" * 65 + "@x.test", ".a@x.test"):
        with pytest.raises(ValueError):
            normalize_recipient(bad, "+")
    assert normalize_advertiser_id(" Shop-VN ") == "shop-vn"
    for bad in ("", "-x", "a b", "x" * 65, "a/b", "*"):
        with pytest.raises(ValueError):
            normalize_advertiser_id(bad)


def test_every_text_exists_in_both_languages() -> None:
    assert set(TEXTS["en"]) == set(TEXTS["vi"])


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_smtp_texts_are_one_ascii_line(lang: str) -> None:
    for key in TEXTS[lang]:
        if key.startswith(("smtp.", "sym.")):
            s = smtp_text(lang, key, rcpt="a@example.test", advertiser="shop", sent=3, cap=3,
                          check_url="http://x/", count=2, label="QC", labels="QC/ADV",
                          reasons="AD_REFUSED")
            assert s.isascii() and "\n" not in s and s == s.strip(), key


def test_pages_escape_values() -> None:
    body = text("vi", "page.confirm.body", advertiser="<b>Shop</b>", rcpt="a@example.test")
    html = page("vi", "page.confirm.title", body)
    assert "&lt;b&gt;Shop&lt;/b&gt;" in html and "<b>Shop" not in html
    assert 'lang="vi"' in html and "Hủy đăng ký" in html
    assert text("fr", "page.done.title") == "Unsubscribed"  # unknown language: English
