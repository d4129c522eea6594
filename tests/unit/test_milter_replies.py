"""The milter's reply texts in i18n.language (spamwarden/milter/replies.py), through the
pymilter adapter with a context that refuses what libmilter and Postfix would refuse."""

from __future__ import annotations

import functools
from typing import Any

import Milter
import pytest

from spamwarden.config import Config, config_from_mapping
from spamwarden.milter.app import SpamwardenMilter
from spamwarden.milter.interfaces import Symbol
from spamwarden.milter.replies import reason_text, reject_text, tempfail_text
from spamwarden.milter.scanner import Scanner, Verdict
from spamwarden.resolver import StaticResolver
from tests.support.replies import MILTER_ERROR_TEMPFAIL, MILTER_REJECT, MILTER_TEMPFAIL
from tests.unit.test_milter_app import HAM, FakeListings, RecordingCtx, fake_auth, feed

LOOKUP = "https://bl.example.net/lookup/"


class SmtpSafeCtx(RecordingCtx):
    """Refuses a reply text an MTA would not pass on: a byte outside printable ASCII
    (RFC 5321 §4.2 without SMTPUTF8; Postfix and libmilter), a lone ``%`` (libmilter
    treats the text as a format)."""

    def setreply(self, rcode: str, xcode: str, *msg: str) -> None:
        for m in msg:
            if not all(" " <= ch <= "~" for ch in m):
                raise AssertionError(f"non-ASCII or control byte in an SMTP reply: {m!r}")
            if any(len(run) % 2 for run in m.split("%%") if "%" in run) or \
                    m.replace("%%", "").count("%"):
                raise AssertionError(f"lone % in a milter reply: {m!r}")
        super().setreply(rcode, xcode, *msg)


def test_the_checking_context_refuses_what_an_mta_refuses() -> None:
    ctx = SmtpSafeCtx()
    with pytest.raises(AssertionError, match="non-ASCII"):
        ctx.setreply("550", "5.7.1", "Thư của bạn bị từ chối")
    with pytest.raises(AssertionError, match="lone %"):
        ctx.setreply("550", "5.7.1", "100% spam")
    ctx.setreply("550", "5.7.1", "Thu cua ban bi tu choi 100%% spam")


def cfg_for(language: str, **milter: Any) -> Config:
    return config_from_mapping({
        "milter": {"authserv_id": "mx.test.example", "lookup_url": LOOKUP, **milter},
        "dns": {"timeout": 0.5},
        "i18n": {"language": language},
    }, source="<test>")


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(scanner: Scanner) -> SmtpSafeCtx:
        monkeypatch.setattr(Milter, "factory", functools.partial(SpamwardenMilter, scanner))
        return SmtpSafeCtx()

    return use


def test_dmarc_reject_in_vietnamese(install: Any) -> None:
    scanner = Scanner(cfg_for("vi"), resolver=StaticResolver(),
                      authenticate=fake_auth(dmarc="fail", policy="reject", applied="reject"))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.REJECT
    assert ctx._reply == (*MILTER_REJECT.milter,
                          "Thu cua ban bi tu choi vi bi xac dinh la thu rac: thu khong dat "
                          "DMARC va chinh sach DMARC cua example.org la tu choi "
                          f"(DMARC_REJECT); xem chi tiet tai {LOOKUP}")


def test_the_same_rejection_in_english_is_unchanged(install: Any) -> None:
    scanner = Scanner(cfg_for("en"), resolver=StaticResolver(),
                      authenticate=fake_auth(dmarc="fail", policy="reject", applied="reject"))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.REJECT
    assert ctx._reply == (*MILTER_REJECT.milter,
                          "message rejected as spam: DMARC policy of example.org is reject "
                          f"and the message fails it (DMARC_REJECT); see {LOOKUP}")


def test_score_reject_in_vietnamese_keeps_symbols_and_listed_key(install: Any) -> None:
    listings = FakeListings({"192.0.2.7": "listed", "example.org": "listed",
                             "example.net": "listed"})
    scanner = Scanner(cfg_for("vi"), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings)
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.REJECT
    code, xcode, line = ctx._reply
    assert (code, xcode) == MILTER_REJECT.milter
    assert line.startswith("Thu cua ban bi tu choi vi bi xac dinh la thu rac: "
                           "diem thu rac 16.4 >= 15.0 (")
    assert "DBL_OWN" in line and "RBL_OWN" in line
    assert line.endswith(f"; xem chi tiet tai {LOOKUP}example.org")


@pytest.mark.parametrize(("on_error", "expected"), [
    ("tempfail", ("451", "4.3.0", "Bo loc thu rac tam thoi khong hoat dong, vui long gui lai sau")),
    ("reject", ("550", "5.3.0", "Khong the kiem tra thu cua ban")),
])
def test_internal_error_replies_in_vietnamese(install: Any, on_error: str,
                                              expected: tuple[str, str, str]) -> None:
    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("hỏng")

    scanner = Scanner(cfg_for("vi", on_error=on_error), resolver=StaticResolver(),
                      authenticate=broken)
    ctx = install(scanner)
    feed(ctx, HAM)
    assert ctx._reply == expected
    if on_error == "tempfail":
        assert ctx._reply[:2] == MILTER_ERROR_TEMPFAIL.milter


@pytest.mark.parametrize("language", ["en", "vi"])
def test_a_non_ascii_reason_never_reaches_the_reply(install: Any, language: str) -> None:
    from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult, SpfResult

    def auth(raw: bytes, view: Any, resolver: Any, **kw: Any) -> AuthResults:
        # the DMARC detail names an internationalised domain: UTF-8 in the reason
        return AuthResults(
            spf=SpfResult("fail", "mailfrom", "ví-dụ.vn", kw["mail_from"]),
            dkim=(DkimResult("fail", "ví-dụ.vn", "sel", "rsa-sha256", "AbCd"),),
            dmarc=DmarcResult("fail", "ví-dụ.vn", "ví-dụ.vn", "reject", "reject", False, False),
        )

    scanner = Scanner(cfg_for(language, lookup_url="https://bl.example.net/tra-cứu/"),
                      resolver=StaticResolver(), authenticate=auth)
    ctx = install(scanner)  # SmtpSafeCtx fails the test on any byte outside ASCII
    assert feed(ctx, HAM)[0] == Milter.REJECT
    assert ctx._reply[:2] == MILTER_REJECT.milter
    assert "DMARC_REJECT" in ctx._reply[2], ctx._reply


# -- the pure texts -------------------------------------------------------------------------


def _verdict(action: str, symbol: Symbol, **kw: Any) -> Verdict:
    return Verdict(action=action, score=symbol.points, required=5.0,  # type: ignore[arg-type]
                   symbols=(symbol,), reason=kw.pop("reason", "why in English"),
                   add_headers=(), remove_headers=(), main_symbol=symbol.name, **kw)


def test_tempfail_text_per_language() -> None:
    cfg = cfg_for("vi")
    v = _verdict("tempfail", Symbol("DMARC_ARC_TEMPFAIL", 0.0, "detail", "tempfail"),
                 reason="DMARC policy of example.org is reject ... (DMARC_ARC_TEMPFAIL)")
    assert tempfail_text("en", v, cfg) == (
        "try again later: DMARC policy of example.org is reject ... (DMARC_ARC_TEMPFAIL)")
    assert tempfail_text("vi", v, cfg) == (
        "Thu cua ban tam thoi chua duoc nhan, vui long gui lai sau: thu khong dat DMARC cua "
        "? va tam thoi chua xac minh duoc chuoi ARC cua ben niem phong tin cay "
        "(DMARC_ARC_TEMPFAIL)")
    assert MILTER_TEMPFAIL.milter == ("451", "4.7.1")


def test_a_forcing_symbol_without_its_own_sentence_is_named() -> None:
    cfg = cfg_for("vi")
    v = _verdict("reject", Symbol("SETTINGS_DENY", 100.0, "sender on the deny list", "reject"))
    assert reason_text("vi", v, cfg) == "thu khong dat kiem tra SETTINGS_DENY"
    assert reason_text("en", v, cfg) == "why in English"
    assert reject_text("vi", v, cfg) == (
        "Thu cua ban bi tu choi vi bi xac dinh la thu rac: thu khong dat kiem tra "
        f"SETTINGS_DENY; xem chi tiet tai {LOOKUP}")


def test_deny_list_rejection_has_its_own_sentence() -> None:
    v = _verdict("reject", Symbol("DENYLIST", 20.0, "deny-listed from:x@spam.example", "reject"))
    assert reason_text("vi", v, cfg_for("vi")) == (
        "nguoi gui nam trong danh sach chan cua he thong nay (DENYLIST)")


def test_x_spam_headers_do_not_change_with_the_language(install: Any) -> None:
    # they are read by filters (Sieve, procmail) and SpamAssassin-aware tools: machine text
    added = {}
    for language in ("en", "vi"):
        listings = FakeListings({"192.0.2.7": "listed"})
        scanner = Scanner(cfg_for(language), resolver=StaticResolver(),
                          authenticate=fake_auth(), listings=listings)
        ctx = install(scanner)
        feed(ctx, HAM)
        added[language] = [(f, v) for f, v, _ in ctx.added if f.startswith("X-Spam-")]
    names = [f for f, _ in added["en"]]
    assert "X-Spam-Status" in names and "X-Spam-Reasons" in names
    assert added["vi"] == added["en"]
    reasons = dict(added["vi"])["X-Spam-Reasons"]
    assert reasons.startswith("action=") and "RBL_OWN=" in reasons and reasons.isascii()
