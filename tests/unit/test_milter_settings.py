"""ALLOWLIST / DENYLIST (spamwarden/milter/checks/settings.py), per-recipient thresholds in
the verdict and the 452 4.5.3 split at RCPT, through the pymilter adapter (TestCtx)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import Milter
import Milter.test  # before the adapter reads Milter.NOREPLY (STYLE.md)
import pytest

from spamwarden.config import config_from_mapping
from spamwarden.i18n import smtp_text, text
from spamwarden.milter.app import SpamwardenMilter
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver
from spamwarden.settings.model import Overrides, SettingsSnapshot, parse_entry
from tests.support.replies import MILTER_REJECT, SETTINGS_SPLIT
from tests.unit.test_milter_app import HAM, RecordingCtx, fake_auth, feed, make_cfg


class FixedSettings:
    """A SettingsSource holding one snapshot."""

    def __init__(self, policies: Mapping[str, Overrides] | None = None,
                 allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.snap = SettingsSnapshot(policies, [parse_entry(a) for a in allow],
                                     [parse_entry(d) for d in deny])

    def current(self) -> SettingsSnapshot:
        return self.snap


def scanner(settings: FixedSettings | None, **auth: Any) -> Scanner:
    return Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(**auth),
                   settings=settings, lookup_threads=0)


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(sc: Scanner) -> RecordingCtx:
        monkeypatch.setattr(Milter, "factory", functools.partial(SpamwardenMilter, sc))
        return RecordingCtx()

    yield use


def names(ctx: RecordingCtx) -> str:
    return ctx.header_value("X-Spam-Status") or ""


# -- allow -------------------------------------------------------------------------------------


def test_forged_from_of_an_allow_listed_domain_is_still_scored(install: Any) -> None:
    # From: alice@example.org, but SPF fails and nothing is DKIM-signed: not authenticated.
    allow = FixedSettings(allow=["domain:example.org", "alice@example.org"])
    forged = install(scanner(allow, spf="fail", dkim=[], dmarc="fail"))
    rc, _ = feed(forged, HAM)
    assert "ALLOWLIST" not in names(forged)
    plain = install(scanner(None, spf="fail", dkim=[], dmarc="fail"))
    feed(plain, HAM)
    assert plain.header_value("X-Spam-Score") == forged.header_value("X-Spam-Score")


def test_authenticated_from_of_an_allow_listed_domain_is_allowed(install: Any) -> None:
    ctx = install(scanner(FixedSettings(allow=["domain:example.org"]), spf="pass"))
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.ACCEPT
    status = names(ctx)
    assert "ALLOWLIST" in status and status.startswith("No, score=-2")


def test_client_network_allows_whatever_the_authentication(install: Any) -> None:
    ctx = install(scanner(FixedSettings(allow=["192.0.2.0/24"]), spf="fail", dmarc="fail"))
    feed(ctx, HAM, ip="192.0.2.7")
    assert "ALLOWLIST" in names(ctx)
    other = install(scanner(FixedSettings(allow=["192.0.2.0/24"]), spf="fail", dmarc="fail"))
    feed(other, HAM, ip="198.51.100.7")
    assert "ALLOWLIST" not in names(other)


# -- deny --------------------------------------------------------------------------------------


def test_deny_by_verified_dkim_domain_rejects(install: Any) -> None:
    ctx = install(scanner(FixedSettings(deny=["dkim:example.org"]), dkim=["pass"]))
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.REJECT
    assert ctx._reply[:2] == MILTER_REJECT.milter
    assert "deny-listed dkim:example.org" in " ".join(ctx._reply[2:])


def test_deny_by_dkim_needs_a_verified_signature(install: Any) -> None:
    ctx = install(scanner(FixedSettings(deny=["dkim:example.org"]), dkim=["fail"]))
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.ACCEPT and "DENYLIST" not in names(ctx)


def test_deny_by_from_domain_applies_unauthenticated(install: Any) -> None:
    ctx = install(scanner(FixedSettings(deny=["example.org"]), spf="fail", dmarc="fail"))
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.REJECT


# -- per-recipient thresholds and the split ------------------------------------------------------


STRICT = {"test.example": Overrides(tag_threshold=-50.0, quarantine_threshold=900.0,
                                    reject_threshold=900.0)}


def test_recipient_thresholds_decide_the_verdict(install: Any) -> None:
    ctx = install(scanner(FixedSettings(STRICT), dkim=["pass"]))
    rc, _ = feed(ctx, HAM, rcpts=("bob@test.example",))
    assert rc == Milter.ACCEPT
    assert names(ctx).startswith("Yes, score=-0.7 required=-50.0")
    assert ctx.header_value("X-Spam-Flag") == "YES"
    plain = install(scanner(FixedSettings(STRICT), dkim=["pass"]))
    feed(plain, HAM, rcpts=("bob@elsewhere.example",))
    assert names(plain).startswith("No, score=-0.7 required=5.0")


def test_recipient_with_other_thresholds_is_split_with_452(install: Any) -> None:
    ctx = install(scanner(FixedSettings(STRICT), dkim=["pass"]))
    rc, rcpt_codes = feed(ctx, HAM, rcpts=("bob@test.example", "carol@elsewhere.example",
                                           "dave@test.example"))
    assert rcpt_codes == [Milter.CONTINUE, Milter.TEMPFAIL, Milter.CONTINUE]
    assert rc == Milter.ACCEPT
    assert names(ctx).startswith("Yes, ")  # bob's and dave's thresholds


def test_split_reply_code_and_text(install: Any) -> None:
    ctx = install(scanner(FixedSettings(STRICT)))
    ctx._setsymval("i", "4Q")
    ctx._connect(host="mail.example.org", helo="mail.example.org", ip="192.0.2.7")
    ctx._envfrom("<alice@example.org>")
    assert ctx._envrcpt("<carol@elsewhere.example>") == Milter.CONTINUE
    assert ctx._envrcpt("<bob@test.example>") == Milter.TEMPFAIL
    assert ctx._reply[:2] == SETTINGS_SPLIT.milter
    assert ctx._reply[2] == TEMPFAIL_TEXT


TEMPFAIL_TEXT = text("en", "milter.rcpt_split")


def test_same_thresholds_share_a_transaction(install: Any) -> None:
    same = {"a.example": Overrides(tag_threshold=3.0), "b.example": Overrides(tag_threshold=3.0)}
    ctx = install(scanner(FixedSettings(same)))
    _, rcpt_codes = feed(ctx, HAM, rcpts=("x@a.example", "y@b.example"))
    assert rcpt_codes == [Milter.CONTINUE, Milter.CONTINUE]


def test_trusted_senders_are_never_split(install: Any) -> None:
    sc = Scanner(make_cfg(trusted_networks=["192.0.2.0/24"]), resolver=StaticResolver(),
                 authenticate=fake_auth(), settings=FixedSettings(STRICT), lookup_threads=0)
    ctx = install(sc)
    _, rcpt_codes = feed(ctx, HAM, rcpts=("carol@elsewhere.example", "bob@test.example"))
    assert rcpt_codes == [Milter.CONTINUE, Milter.CONTINUE]


def vi_scanner(settings: FixedSettings, **auth: Any) -> Scanner:
    cfg = config_from_mapping({"milter": {"authserv_id": "mx.test.example"},
                               "i18n": {"language": "vi"}})
    return Scanner(cfg, resolver=StaticResolver(), authenticate=fake_auth(**auth),
                   settings=settings, lookup_threads=0)


def test_split_reply_follows_the_reply_language(install: Any) -> None:
    ctx = install(vi_scanner(FixedSettings(STRICT)))
    feed(ctx, HAM, rcpts=("carol@elsewhere.example", "bob@test.example"))
    assert ctx._reply[:2] == SETTINGS_SPLIT.milter
    assert ctx._reply[2] == smtp_text("vi", "milter.rcpt_split")
    assert ctx._reply[2].isascii() and ctx._reply[2] != TEMPFAIL_TEXT


def test_translated_reject_names_the_recipients_threshold(install: Any) -> None:
    block = {"test.example": Overrides(tag_threshold=-100.0, quarantine_threshold=-100.0,
                                       reject_threshold=-100.0)}
    ctx = install(vi_scanner(FixedSettings(block), dkim=["pass"]))
    rc, _ = feed(ctx, HAM, rcpts=("bob@test.example",))
    assert rc == Milter.REJECT
    assert ">= -100.0" in ctx._reply[2], ctx._reply


# -- one spelling per mailbox ---------------------------------------------------------------


STRICT_CEO = {"ceo@test.example": Overrides(tag_threshold=-50.0, quarantine_threshold=900.0,
                                            reject_threshold=900.0)}


@pytest.mark.parametrize("rcpt", ["ceo@test.example", "CEO@test.example.", '"ceo"@test.example',
                                  "ceo%test.example@test.example"])
def test_an_address_threshold_holds_however_the_sender_writes_it(install: Any,
                                                                  rcpt: str) -> None:
    """Postfix delivers <ceo@test.example.>, <"ceo"@test.example> and
    <ceo%test.example@test.example> to ceo@test.example: the sender must not pick the
    domain's or [policy]'s thresholds by spelling the recipient another way."""
    ctx = install(scanner(FixedSettings(STRICT_CEO), dkim=["pass"]))
    feed(ctx, HAM, rcpts=(rcpt,))
    assert names(ctx).startswith("Yes, score=-0.7 required=-50.0"), rcpt


@pytest.mark.parametrize("sender", ["alice@example.org", "Alice@Example.org.",
                                    '"alice"@example.org'])
def test_an_address_deny_entry_holds_however_the_sender_writes_it(install: Any,
                                                                  sender: str) -> None:
    ctx = install(scanner(FixedSettings(deny=["alice@example.org"]), spf="fail",
                          dmarc="fail"))
    rc, _ = feed(ctx, HAM.replace(b"alice@example.org", sender.encode()), sender=sender)
    assert rc == Milter.REJECT, sender


def signed_by(domain: str) -> Any:
    """Authentication where only a DKIM signature with ``d=<domain>`` (as written in the
    signature) verified: SPF and DMARC fail."""
    from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult, SpfResult

    def authenticate(raw: bytes, view: Any, resolver: Any, **kw: Any) -> AuthResults:
        return AuthResults(
            spf=SpfResult("fail", "mailfrom", "example.org", kw["mail_from"]),
            dkim=(DkimResult("pass", domain, "sel", "rsa-sha256", "AbCd/+12"),),
            dmarc=DmarcResult("fail", "example.org", "example.org", "none", "none", False,
                              False),
        )

    return authenticate


@pytest.mark.parametrize("d", ["ví-dụ.vn", "VÍ-DỤ.VN", "xn--v-d-rma6749a.vn.",
                               "mail.ví-dụ.vn"])
def test_a_dkim_deny_entry_holds_however_the_signature_writes_d(install: Any, d: str) -> None:
    """A signature's d= may be a U-label (RFC 8616 §4; the key is fetched at its A-label,
    so it verifies) or end in a dot: ``dkim:ví-dụ.vn`` (kept as its A-label) must still
    match it, or a denied signer escapes the list by how it writes its own name."""
    sc = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=signed_by(d),
                 settings=FixedSettings(deny=["dkim:ví-dụ.vn"]), lookup_threads=0)
    ctx = install(sc)
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.REJECT, d
    assert "deny-listed dkim:xn--v-d-rma6749a.vn" in " ".join(ctx._reply[2:])
