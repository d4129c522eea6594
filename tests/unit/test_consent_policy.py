"""The milter's consent rules against an in-memory registry (same Protocol as Redis)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from spamwarden.config import Config, ConsentConfig
from spamwarden.consent.policy import (
    ConsentPolicy,
    one_click_unsubscribe,
    unsubscribe_signed,
)
from spamwarden.consent.registry import (
    GLOBAL,
    ConsentStore,
    RecipientState,
    RefusalRecord,
    aligned_authenticated_domains,
)
from spamwarden.errors import StoreUnavailable
from spamwarden.mail import parse_message, spf_vouches
from spamwarden.milter.interfaces import Envelope, MessagePolicy

NOW = 1_800_000_000.0


@dataclass
class Spf:
    result: str
    domain: str
    scope: str = "mailfrom"


@dataclass
class Dkim:
    result: str
    domain: str
    selector: str = "s1"
    covered_headers: tuple[str, ...] = ()


@dataclass
class Auth:
    spf: Spf | None = None
    dkim: tuple[Dkim, ...] = ()


@dataclass
class FakeStore:
    """In-memory ConsentStore: the rules a real registry applies, without Redis."""

    domains: dict[str, str] = field(default_factory=dict)
    consents: dict[tuple[str, str], int] = field(default_factory=dict)  # -> max_per_day
    refusals: set[tuple[str, str]] = field(default_factory=set)
    sends: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("fake registry down")

    def domain_map(self) -> dict[str, str]:
        self._check()
        return dict(self.domains)

    def recipient_state(
        self, adv: str, rcpt: str, *, now: float, default_cap: int, hold: str = ""
    ) -> RecipientState:
        self._check()
        if (GLOBAL, rcpt) in self.refusals:
            return RecipientState("refused_all", 0, default_cap)
        if (adv, rcpt) in self.refusals:
            return RecipientState("refused", 0, default_cap)
        if (adv, rcpt) not in self.consents:
            return RecipientState("no_consent", 0, default_cap)
        cap = self.consents[(adv, rcpt)] or default_cap
        n = sum(1 for t in self.sends.get((adv, rcpt), []) if t > now - 86400)
        return RecipientState("over_cap" if n >= cap else "ok", n, cap)

    def record_sends(self, adv: str, rcpts: Sequence[str], *, now: float, ref: str,
                     hold: str = "") -> None:
        self._check()
        for r in rcpts:
            self.sends.setdefault((adv, r.strip("<>").lower()), []).append(now)

    def release_holds(self, adv: str, rcpts: Sequence[str], *, hold: str) -> None:
        self._check()

    def refuse(
        self, rcpt: str, *, adv: str = GLOBAL, channel: str, now: float
    ) -> tuple[RefusalRecord, bool]:
        self._check()
        new = (adv, rcpt) not in self.refusals
        self.refusals.add((adv, rcpt))
        return RefusalRecord(adv, rcpt, now, channel), new


AD = (
    b"From: Shop <news@shop.test>\r\n"
    b"To: a@example.test\r\n"
    b"Subject: [QC] Sale today\r\n"
    b"List-Unsubscribe: <https://api.test/u/TOKEN>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n"
    b"Buy now.\r\n"
)
SIGNED = Auth(
    spf=Spf("pass", "bounce.shop.test"),
    dkim=(Dkim("pass", "shop.test", covered_headers=(
        "from", "subject", "list-unsubscribe", "list-unsubscribe-post")),),
)


def SPF_OF_ENVELOPE() -> Spf:
    """SPF passed for the envelope domain :func:`env` uses by default."""
    return Spf("pass", "bounce.shop.test")


def cfg(**consent: object) -> Config:
    return Config(consent=dataclasses.replace(ConsentConfig(), **consent))  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeStore:
    s = FakeStore(domains={"shop.test": "shop"})
    s.consents[("shop", "a@example.test")] = 0
    return s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy(store: FakeStore, clock: Clock) -> ConsentPolicy:
    return ConsentPolicy(cfg(), store, clock=clock, domain_cache_ttl=0, retry_after=0)


def env(*rcpts: str, mail_from: str = "bounce@bounce.shop.test") -> Envelope:
    return Envelope(mail_from=mail_from, rcpts=list(rcpts), queue_id="Q1")


def names(symbols: Sequence[object]) -> set[str]:
    return {s.name for s in symbols}  # type: ignore[attr-defined]


def test_is_a_message_policy(policy: ConsentPolicy) -> None:
    assert isinstance(policy, MessagePolicy)
    assert isinstance(FakeStore(), ConsentStore)


def test_rcpt_with_consent_passes_and_without_is_rejected(policy: ConsentPolicy) -> None:
    e = env()
    assert policy.check_rcpt(e, "<a@example.test>", sender_spf=SPF_OF_ENVELOPE) is None
    d = policy.check_rcpt(e, "<b@example.test>", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and not d.temporary and d.symbol == "AD_NO_CONSENT"
    assert "b@example.test" in d.text and "shop" in d.text
    assert "/v1/advertisers/shop/recipients/b@example.test" in d.text
    assert d.text.isascii()


def test_rcpt_of_other_senders_is_not_checked(policy: ConsentPolicy) -> None:
    assert policy.check_rcpt(env(mail_from="x@other.test"), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    assert policy.check_rcpt(env(mail_from=""), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None


def test_rcpt_requires_consent_off_leaves_consent_to_end_of_message(
    store: FakeStore, clock: Clock
) -> None:
    p = ConsentPolicy(cfg(rcpt_requires_consent=False), store, clock=clock)
    assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    store.refusals.add(("shop", "b@example.test"))
    assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is not None


@pytest.mark.parametrize("who", ["shop", GLOBAL])
def test_refusal_rejects_at_rcpt(policy: ConsentPolicy, store: FakeStore, who: str) -> None:
    store.refusals.add((who, "a@example.test"))
    d = policy.check_rcpt(env(), "a@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and d.symbol == "AD_REFUSED"
    assert "refuse" in d.text


def test_cap_counts_only_delivered_and_rolls_over(
    policy: ConsentPolicy, store: FakeStore, clock: Clock
) -> None:
    view = parse_message(AD)
    e = env("a@example.test")
    for i in range(3):
        assert policy.check_rcpt(e, "a@example.test", sender_spf=SPF_OF_ENVELOPE) is None, i
        policy.delivered(view, e, SIGNED)
        clock.now += 60
    d = policy.check_rcpt(e, "a@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and d.symbol == "AD_OVER_CAP" and "3" in d.text
    clock.now = NOW + 86400 + 1  # the first send left the window
    assert policy.check_rcpt(e, "a@example.test", sender_spf=SPF_OF_ENVELOPE) is None


def test_recipient_agreed_to_more(policy: ConsentPolicy, store: FakeStore) -> None:
    store.consents[("shop", "a@example.test")] = 5
    store.sends[("shop", "a@example.test")] = [NOW - 10] * 4
    assert policy.check_rcpt(env(), "a@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    store.sends[("shop", "a@example.test")].append(NOW - 5)
    assert policy.check_rcpt(env(), "a@example.test", sender_spf=SPF_OF_ENVELOPE) is not None


def test_labelled_signed_ad_with_consent_is_clean(policy: ConsentPolicy) -> None:
    syms = policy.check_message(parse_message(AD), env("a@example.test"), SIGNED)
    assert names(syms) == {"AD_LABELLED"}
    assert all(s.points == 0 for s in syms)


def test_unlabelled_ad_from_advertiser(policy: ConsentPolicy) -> None:
    raw = AD.replace(b"[QC] ", b"")
    syms = policy.check_message(parse_message(raw), env("a@example.test"), SIGNED)
    assert names(syms) == {"AD_UNLABELLED"}
    (s,) = syms
    assert s.points >= 15 and "shop" in s.detail and "[QC/ADV]" in s.detail


def test_label_is_matched_after_rfc2047_decoding(policy: ConsentPolicy) -> None:
    raw = AD.replace(b"[QC] Sale today", b"=?utf-8?b?W3FjXSBLaHV54bq/biBtw6Np?=")
    syms = policy.check_message(parse_message(raw), env("a@example.test"), SIGNED)
    assert names(syms) == {"AD_LABELLED"}


def test_no_one_click_unsubscribe(policy: ConsentPolicy) -> None:
    raw = AD.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    syms = policy.check_message(parse_message(raw), env("a@example.test"), SIGNED)
    assert "AD_NO_UNSUBSCRIBE" in names(syms)
    raw = AD.replace(b"<https://api.test/u/TOKEN>", b"<mailto:optout@shop.test>")
    syms = policy.check_message(parse_message(raw), env("a@example.test"), SIGNED)
    assert "AD_NO_UNSUBSCRIBE" in names(syms)


def test_unsubscribe_not_covered_by_dkim(policy: ConsentPolicy) -> None:
    auth = Auth(
        spf=Spf("pass", "shop.test"),
        dkim=(Dkim("pass", "shop.test", covered_headers=("from", "subject")),
              Dkim("fail", "shop.test", covered_headers=(
                  "list-unsubscribe", "list-unsubscribe-post"))),
    )
    syms = policy.check_message(parse_message(AD), env("a@example.test"), auth)
    assert names(syms) == {"AD_LABELLED", "AD_UNSIGNED_UNSUBSCRIBE"}


def test_consent_refusal_and_cap_at_end_of_message(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    # envelope sender of an ESP (not the advertiser's domain): only DKIM attributes it
    e = env("a@example.test", "b@example.test", "c@example.test", mail_from="b@esp.test")
    store.refusals.add((GLOBAL, "c@example.test"))
    syms = policy.check_message(parse_message(AD), e, SIGNED)
    assert names(syms) == {"AD_LABELLED", "AD_NO_CONSENT", "AD_REFUSED"}
    no = next(s for s in syms if s.name == "AD_NO_CONSENT")
    assert no.points >= 15 and "1 recipient" in no.detail
    store.sends[("shop", "a@example.test")] = [NOW - 1] * 3
    syms = policy.check_message(parse_message(AD), env("a@example.test"), SIGNED)
    assert names(syms) == {"AD_LABELLED", "AD_OVER_CAP"}


def test_attribution_needs_alignment_and_a_pass(policy: ConsentPolicy) -> None:
    view = parse_message(AD)
    # DKIM by the advertiser's domain but From elsewhere: not aligned
    other_from = parse_message(AD.replace(b"news@shop.test", b"news@other.test"))
    assert policy.message_advertiser(other_from, SIGNED) == (None, True)
    # a failing signature and SPF fail attribute nothing
    bad = Auth(spf=Spf("fail", "shop.test"), dkim=(Dkim("fail", "shop.test"),))
    assert policy.message_advertiser(view, bad) == (None, True)
    # SPF alone, aligned relaxed (subdomain of the registered domain)
    assert policy.message_advertiser(view, Auth(spf=Spf("pass", "mail.shop.test"))) == (
        "shop", True)


def test_labelled_ad_from_unknown_advertiser(policy: ConsentPolicy) -> None:
    raw = AD.replace(b"news@shop.test", b"news@unknown.test")
    auth = Auth(dkim=(Dkim("pass", "unknown.test", covered_headers=(
        "list-unsubscribe", "list-unsubscribe-post")),))
    e = env("a@example.test", mail_from="x@unknown.test")
    syms = policy.check_message(parse_message(raw), e, auth)
    assert names(syms) == {"AD_LABELLED", "AD_UNKNOWN_ADVERTISER"}


def test_ordinary_mail_gets_no_ad_symbols(policy: ConsentPolicy) -> None:
    raw = b"From: a@friend.test\r\nSubject: lunch?\r\n\r\nhi\r\n"
    e = env("a@example.test", mail_from="a@friend.test")
    assert policy.check_message(parse_message(raw), e, Auth(spf=Spf("pass", "friend.test"))) == []


def test_registry_down_never_rejects_and_says_so(store: FakeStore, clock: Clock) -> None:
    p = ConsentPolicy(cfg(), store, clock=clock, domain_cache_ttl=0, retry_after=0)
    assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is not None  # map cached once
    store.down = True
    assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    syms = p.check_message(parse_message(AD), env("b@example.test"), SIGNED)
    assert "AD_REGISTRY_FAIL" in names(syms)
    assert not names(syms) & {"AD_NO_CONSENT", "AD_REFUSED", "AD_OVER_CAP"}
    assert all(s.action == "" for s in syms)


def test_registry_down_tempfails_known_advertisers_when_configured(
    store: FakeStore, clock: Clock
) -> None:
    p = ConsentPolicy(cfg(on_registry_error="tempfail"), store, clock=clock, domain_cache_ttl=0,
                      retry_after=0)
    p.domain_map()
    store.down = True
    d = p.check_rcpt(env(), "a@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and d.temporary and d.symbol == "AD_REGISTRY_FAIL"
    assert p.check_rcpt(env(mail_from="x@other.test"), "a@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    syms = p.check_message(parse_message(AD), env("a@example.test"), SIGNED)
    fail = next(s for s in syms if s.name == "AD_REGISTRY_FAIL")
    assert fail.action == "tempfail"


def test_counts_missed_while_down_are_written_when_back(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    view = parse_message(AD)
    policy.domain_map()
    store.down = True
    policy.delivered(view, env("a@example.test"), SIGNED)
    policy.delivered(view, env("a@example.test"), SIGNED)
    assert policy.pending_counts == 2 and not store.sends
    store.down = False
    policy.delivered(view, env("a@example.test"), SIGNED)
    assert policy.pending_counts == 0
    assert len(store.sends[("shop", "a@example.test")]) == 3


def test_delivered_ignores_non_advertisers(policy: ConsentPolicy, store: FakeStore) -> None:
    raw = b"From: a@friend.test\r\nSubject: [QC] hi\r\n\r\nhi\r\n"
    policy.delivered(parse_message(raw), env("a@example.test", mail_from="a@friend.test"),
                     Auth(spf=Spf("pass", "friend.test")))
    assert store.sends == {}


def test_disabled_does_nothing(store: FakeStore) -> None:
    p = ConsentPolicy(cfg(enabled=False), store)
    assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    assert p.check_message(parse_message(AD), env("b@example.test"), SIGNED) == []


def test_vietnamese_smtp_texts_are_ascii(store: FakeStore, clock: Clock) -> None:
    p = ConsentPolicy(cfg(language="vi"), store, clock=clock)
    d = p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and "Nghi dinh 91/2020/ND-CP" in d.text and d.text.isascii()


def test_refusal_follows_i18n_language_when_consent_language_is_unset(
        store: FakeStore, clock: Clock) -> None:
    from spamwarden.config import I18nConfig

    site = Config(i18n=I18nConfig(language="vi"))
    p = ConsentPolicy(site, store, clock=clock)
    d = p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and "Nghi dinh 91/2020/ND-CP" in d.text
    english = ConsentPolicy(cfg(), store, clock=clock).check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE)
    assert english is not None and "Decree 91/2020/ND-CP" in english.text


def test_one_click_and_signed_helpers() -> None:
    view = parse_message(AD)
    assert one_click_unsubscribe(view) == "https://api.test/u/TOKEN"
    both = parse_message(AD.replace(
        b"<https://api.test/u/TOKEN>", b"<mailto:x@shop.test>, <https://api.test/u/T2>"))
    assert one_click_unsubscribe(both) == "https://api.test/u/T2"
    plain = parse_message(AD.replace(b"https://api.test/u/", b"http://127.0.0.1:8891/u/"))
    assert one_click_unsubscribe(plain) is None
    assert one_click_unsubscribe(plain, own_base_url="http://127.0.0.1:8891/u/") == (
        "http://127.0.0.1:8891/u/TOKEN")
    assert unsubscribe_signed(SIGNED)
    assert not unsubscribe_signed(Auth())
    assert aligned_authenticated_domains(SIGNED, "shop.test") == ["shop.test"]
    assert aligned_authenticated_domains(SIGNED, None) == []


def test_unreachable_registry_is_not_asked_again_at_once(store: FakeStore, clock: Clock) -> None:
    calls: list[str] = []
    real = store.recipient_state

    def counting(*a: object, **k: object) -> RecipientState:
        calls.append("x")
        return real(*a, **k)  # type: ignore[arg-type]

    store.recipient_state = counting  # type: ignore[method-assign]
    p = ConsentPolicy(cfg(), store, clock=clock, domain_cache_ttl=60, retry_after=60)
    p.domain_map()
    store.down = True
    for _ in range(5):
        assert p.check_rcpt(env(), "b@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    assert len(calls) == 1  # the first failure opens the breaker for retry_after


def test_own_one_click_link_must_be_signed_for_the_advertiser(
    store: FakeStore, clock: Clock
) -> None:
    from spamwarden.consent.unsubscribe import TokenSigner

    signer = TokenSigner(b"k" * 32)
    c = cfg(unsubscribe_base_url="https://api.test/u/")
    p = ConsentPolicy(c, store, clock=clock, signer=signer)
    good = AD.replace(b"TOKEN", signer.make("shop", "a@example.test").encode())
    assert names(p.check_message(parse_message(good), env("a@example.test"), SIGNED)) == {
        "AD_LABELLED"}
    other = AD.replace(b"TOKEN", signer.make("other", "a@example.test").encode())
    forged = AD.replace(b"TOKEN", TokenSigner(b"x" * 32).make("shop", "a@example.test").encode())
    for raw in (AD, other, forged):
        syms = p.check_message(parse_message(raw), env("a@example.test"), SIGNED)
        assert "AD_NO_UNSUBSCRIBE" in names(syms)


# -- an advertiser's ad must not reach a recipient through another form of its address ----


@pytest.mark.parametrize("rcpt", ['"an"@example.test', "<An+news@Example.TEST>",
                                  "an+" + "x" * 70 + "@example.test"])
def test_refusal_holds_for_every_form_of_the_address(
    policy: ConsentPolicy, store: FakeStore, rcpt: str
) -> None:
    """A quoted local part that needs no quotes and an address extension are the same
    mailbox: the refusal of an@ rejects them all, at RCPT and at end of message."""
    store.refusals.add((GLOBAL, "an@example.test"))
    d = policy.check_rcpt(env(rcpt), rcpt, sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and d.symbol == "AD_REFUSED", d
    assert "AD_REFUSED" in names(policy.check_message(parse_message(AD), env(rcpt), SIGNED))


@pytest.mark.parametrize("rcpt", ['"a b"@example.test', '"x\\"@example.test',
                                  "a\x08b@example.test", "a" * 65 + "@example.test"])
def test_an_address_no_record_can_hold_is_refused_for_an_advertiser(
    policy: ConsentPolicy, store: FakeStore, rcpt: str
) -> None:
    """No consent can be on record for such an address, so an advertiser's ad to it is
    refused, never let through unchecked."""
    d = policy.check_rcpt(env(rcpt), rcpt, sender_spf=SPF_OF_ENVELOPE)
    assert d is not None and d.symbol == "AD_NO_CONSENT" and not d.temporary, d
    assert "send to the plain address" in d.text
    symbols = policy.check_message(parse_message(AD), env(rcpt), SIGNED)
    assert "AD_NO_CONSENT" in names(symbols)
    # other senders' mail to such an address is none of the consent rules' business
    assert policy.check_rcpt(env(rcpt, mail_from="a@friend.test"), rcpt, sender_spf=SPF_OF_ENVELOPE) is None


def test_a_forged_envelope_sender_spends_no_advertisers_cap(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    """A stranger writing MAIL FROM:<bounce@shop.test> (SPF fails) with its own From:
    the message is not shop's, so it counts against nobody's daily cap."""
    forged = AD.replace(b"news@shop.test", b"news@stranger.test")
    stranger = Auth(spf=Spf("fail", "shop.test"),
                    dkim=(Dkim("pass", "stranger.test"),))
    for _ in range(5):
        policy.delivered(parse_message(forged), env("a@example.test", mail_from="b@shop.test"),
                         stranger)
    assert store.sends == {}
    assert policy.check_rcpt(env("a@example.test"), "a@example.test", sender_spf=SPF_OF_ENVELOPE) is None
    # the same envelope with SPF passing for it is shop's own mail, and counts
    policy.delivered(parse_message(forged), env("a@example.test", mail_from="b@shop.test"),
                     Auth(spf=Spf("pass", "shop.test")))
    assert len(store.sends[("shop", "a@example.test")]) == 1
    # SPF passing for another domain than the envelope's proves nothing about it
    policy.delivered(parse_message(forged), env("a@example.test", mail_from="b@shop.test"),
                     Auth(spf=Spf("pass", "stranger.test")))
    assert len(store.sends[("shop", "a@example.test")]) == 1


def test_counts_flushed_by_threads_at_once_are_written_once(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    """libmilter's threads deliver at the same time: each delivered ad is counted once,
    however many threads write the kept counts together."""
    import threading
    import time as _time

    real = store.record_sends

    def slow(*a: object, **k: object) -> None:
        _time.sleep(0.002)  # the store's round trip, during which others flush
        real(*a, **k)  # type: ignore[arg-type]

    store.record_sends = slow  # type: ignore[method-assign]
    view = parse_message(AD)
    threads = [threading.Thread(target=policy.delivered,
                                args=(view, env("a@example.test"), SIGNED)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.sends[("shop", "a@example.test")]) == 6
    assert policy.pending_counts == 0


# -- what a forged envelope sender learns --------------------------------------------------


@pytest.mark.parametrize("spf", [
    None,                                        # SPF not evaluated or no answer in time
    Spf("fail", "bounce.shop.test"),
    Spf("softfail", "bounce.shop.test"),
    Spf("none", "bounce.shop.test"),
    Spf("pass", "bounce.shop.test", scope="helo"),  # the HELO name's, not the sender's
    Spf("pass", "stranger.test"),                # passed, for another domain
])
def test_rcpt_tells_an_unverified_sender_nothing_about_the_recipient(
    policy: ConsentPolicy, store: FakeStore, spf: Spf | None
) -> None:
    """Anyone can write MAIL FROM:<x@shop's domain>. Were the RCPT reply to follow the
    recipient's state, a stranger could read from it who refused shop, who consented
    and how many ads they had today. Only a sender SPF vouches for hears it."""
    store.refusals.add(("shop", "c@example.test"))
    store.sends[("shop", "a@example.test")] = [NOW - 1] * 3  # a@ is over the cap
    asked: list[int] = []

    def sender_spf() -> Spf | None:
        asked.append(1)
        return spf

    e = env()
    for rcpt in ("a@example.test", "b@example.test", "c@example.test"):
        assert policy.check_rcpt(e, rcpt, sender_spf=sender_spf) is None, rcpt
    assert asked  # the answer was asked for, not assumed
    # the sender SPF vouches for hears each state, as before
    got = [policy.check_rcpt(e, r, sender_spf=SPF_OF_ENVELOPE)
           for r in ("a@example.test", "b@example.test", "c@example.test")]
    assert [d.symbol if d else None for d in got] == ["AD_OVER_CAP", "AD_NO_CONSENT",
                                                      "AD_REFUSED"]


def test_rcpt_of_other_senders_never_asks_for_spf(policy: ConsentPolicy) -> None:
    """SPF is waited for at RCPT only for a registered advertiser's envelope."""
    def boom() -> Spf:
        raise AssertionError("SPF asked for mail of no advertiser")

    assert policy.check_rcpt(env(mail_from="x@other.test"), "b@example.test",
                             sender_spf=boom) is None


def test_unverified_action_reject_answers_anyone_as_before(
    store: FakeStore, clock: Clock
) -> None:
    p = ConsentPolicy(cfg(unverified_action="reject"), store, clock=clock)
    store.refusals.add(("shop", "c@example.test"))
    d = p.check_rcpt(env(), "c@example.test", sender_spf=lambda: Spf("fail", "bounce.shop.test"))
    assert d is not None and d.symbol == "AD_REFUSED"
    e = env("c@example.test", mail_from="bounce@shop.test")
    syms = p.check_message(parse_message(AD), e, Auth(spf=Spf("fail", "shop.test")))
    assert "AD_REFUSED" in names(syms) and "AD_UNVERIFIED_HELD" not in names(syms)


def _forged_outcome(policy: ConsentPolicy, rcpt: str) -> tuple[float, str]:
    """Points and the strongest forced action of a forged ad in shop's name to
    ``rcpt``: SPF fails for the envelope, no DKIM, From shop's."""
    e = env(rcpt, mail_from="bounce@shop.test")
    syms = policy.check_message(parse_message(AD), e, Auth(spf=Spf("fail", "shop.test")))
    actions = sorted({s.action for s in syms if s.action})
    return sum(s.points for s in syms), ",".join(actions)


def test_an_unverified_ad_to_a_recipient_who_refused_is_held_with_the_same_reply(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    """At end of message too, the forged sender's answer must not depend on the
    recipient: the ad is held (a 250, like any other recipient's), never refused on
    the recipient's account, and the refusing recipient still does not receive it."""
    store.refusals.add(("shop", "c@example.test"))
    store.refusals.add((GLOBAL, "d@example.test"))
    store.sends[("shop", "a@example.test")] = [NOW - 1] * 3
    store.consents[("shop", "e@example.test")] = 0
    consenting = _forged_outcome(policy, "e@example.test")
    for rcpt in ("a@example.test", "b@example.test", "c@example.test", "d@example.test"):
        points, action = _forged_outcome(policy, rcpt)
        assert points == consenting[0], rcpt  # the score never follows the recipient
        assert action == "quarantine", rcpt
    e = env("c@example.test", mail_from="bounce@shop.test")
    syms = policy.check_message(parse_message(AD), e, Auth(spf=Spf("fail", "shop.test")))
    held = next(s for s in syms if s.name == "AD_UNVERIFIED_HELD")
    assert held.points == 0 and held.action == "quarantine" and "AD_REFUSED" in held.detail
    assert not names(syms) & {"AD_REFUSED", "AD_NO_CONSENT", "AD_OVER_CAP"}
    assert consenting[1] == ""  # the consenting recipient's copy is not held


def test_an_envelope_advertiser_spf_vouches_for_takes_its_place_under_the_cap(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    """Mail SPF passes for the advertiser's envelope domain counts against its cap
    (:meth:`sending_advertiser`), so it takes its place at the check as well: else
    parallel messages would all fit under the cap."""
    holds: list[str] = []
    real = store.recipient_state

    def recording(adv: str, rcpt: str, **kw: object) -> RecipientState:
        holds.append(str(kw.get("hold", "")))
        return real(adv, rcpt, **kw)  # type: ignore[arg-type]

    store.recipient_state = recording  # type: ignore[method-assign]
    other_from = parse_message(AD.replace(b"news@shop.test", b"news@esp.test"))
    e = env("a@example.test", mail_from="bounce@shop.test")
    policy.check_message(other_from, e, Auth(spf=Spf("pass", "shop.test")))
    assert holds and holds[-1]
    policy.check_message(other_from, e, Auth(spf=Spf("fail", "shop.test")))
    assert holds[-1] == ""  # an unverified one reads the state, spending nothing
    # refused for another reason, the verified one gives its place back at once
    released: list[tuple[str, str]] = []
    store.release_holds = lambda adv, rcpts, *, hold: released.append(  # type: ignore[method-assign]
        (adv, hold))
    policy.released(other_from, e, Auth(spf=Spf("pass", "shop.test")))
    assert released == [("shop", holds[-2])]


def test_a_recipient_the_registry_fails_for_does_not_hide_another_ones_refusal(
    policy: ConsentPolicy, store: FakeStore
) -> None:
    """One recipient's state cannot be read or its place not taken (a write refused by a
    full Redis, a timeout in the middle): the refusals read for the others still stop
    the ad. It was answered with AD_REGISTRY_FAIL alone, and so accepted."""
    store.refusals.add(("shop", "c@example.test"))
    real = store.recipient_state
    fail = {"with_hold": True, "always": False}

    def flaky(adv: str, rcpt: str, **kw: object) -> RecipientState:
        if rcpt == "a@example.test" and (fail["always"] or (fail["with_hold"] and kw.get("hold"))):
            from spamwarden.errors import StoreError
            raise StoreError("command not allowed when used memory > 'maxmemory'")
        return real(adv, rcpt, **kw)  # type: ignore[arg-type]

    store.recipient_state = flaky  # type: ignore[method-assign]
    e = env("c@example.test", "a@example.test", mail_from="b@esp.test")
    # the place under a@'s cap could not be taken, but a@'s state reads: consent, so fine
    syms = policy.check_message(parse_message(AD), e, SIGNED)
    assert names(syms) == {"AD_LABELLED", "AD_REFUSED"}, syms
    # a@'s state cannot be read at all: c@'s refusal still counts, and the failure shows
    fail["always"] = True
    syms = policy.check_message(parse_message(AD), e, SIGNED)
    assert names(syms) == {"AD_LABELLED", "AD_REFUSED", "AD_REGISTRY_FAIL"}, syms


@pytest.mark.parametrize("trusted", ["sasl", "network"])
def test_a_sender_this_site_trusts_is_told_and_counted(store: FakeStore, clock: Clock,
                                                       trusted: str) -> None:
    """A trusted sender (SMTP AUTH, milter.trusted_networks) is never refused or held at
    end of message: RCPT is where its ad to a refusing recipient stops, and its ads
    count against the cap, whatever SPF says of the address it submits from."""
    c = Config(consent=ConsentConfig(), milter=dataclasses.replace(
        Config().milter, trusted_networks=("198.51.100.0/24",)))
    p = ConsentPolicy(c, store, clock=clock, domain_cache_ttl=0, retry_after=0)
    store.refusals.add(("shop", "c@example.test"))
    e = env("a@example.test", mail_from="bounce@shop.test")
    if trusted == "sasl":
        e.authenticated = True
    else:
        e.client_ip = "198.51.100.7"

    def spf_fails() -> Spf:
        return Spf("softfail", "shop.test")

    d = p.check_rcpt(e, "c@example.test", sender_spf=spf_fails)
    assert d is not None and d.symbol == "AD_REFUSED"
    other_from = parse_message(AD.replace(b"news@shop.test", b"news@esp.test"))
    p.delivered(other_from, e, Auth(spf=spf_fails()))
    assert len(store.sends[("shop", "a@example.test")]) == 1
    # the same from a client nobody trusts: not told, not counted
    stranger = env("a@example.test", mail_from="bounce@shop.test")
    assert p.check_rcpt(stranger, "c@example.test", sender_spf=spf_fails) is None
    p.delivered(other_from, stranger, Auth(spf=spf_fails()))
    assert len(store.sends[("shop", "a@example.test")]) == 1


@pytest.mark.parametrize("mail_from", ["qc@ví-dụ.vn", "qc@xn--v-d-rma6749a.vn", "qc@VÍ-DỤ.VN"])
def test_spf_vouches_for_an_internationalized_envelope_domain(mail_from: str) -> None:
    """An SMTPUTF8 envelope sender under its own IDN domain: SPF passes for it (pyspf
    reports the domain as written, ``ví-dụ.vn``), and it vouches as the same domain in
    ASCII form does. It did not: the two spellings were compared as they were, so an
    advertiser with a Vietnamese domain name was always "unverified"."""
    from spamwarden.milter._spf import check_spf
    from spamwarden.resolver import StaticResolver

    record = ["v=spf1 ip4:192.0.2.1 -all"]
    resolver = StaticResolver({("xn--v-d-rma6749a.vn", "TXT"): record,
                               ("ví-dụ.vn", "TXT"): record})
    res = check_spf(resolver, ip="192.0.2.1", mail_from=mail_from, helo="mail.example.com")
    assert res.result == "pass", res
    assert spf_vouches(res, mail_from)
    assert spf_vouches(res, f"<{mail_from}>")
    assert not spf_vouches(res, "qc@other.vn")
    failed = check_spf(resolver, ip="192.0.2.9", mail_from=mail_from, helo="mail.example.com")
    assert failed.result == "fail" and not spf_vouches(failed, mail_from)
