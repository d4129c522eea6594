"""The milter adapter (Milter.testctx.TestCtx) with the consent policy over a real Redis and
an injected clock: per-recipient RCPT refusals, the rolling 24 h cap across a day, a refusal
taking effect at once, and the registry going away and coming back."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator, Sequence
from typing import Any

import Milter
import Milter.test
import mime
import pytest
import redis
from Milter import testctx
from redis.backoff import NoBackoff
from redis.retry import Retry

from spamwarden.config import config_from_mapping
from spamwarden.consent.policy import ConsentPolicy
from spamwarden.consent.registry import ConsentRecord, RedisConsentRegistry
from spamwarden.mail import MessageView
from spamwarden.milter.app import SpamwardenMilter
from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult, SpfResult
from spamwarden.milter.scanner import Scanner
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.resolver import StaticResolver
from tests.support.replies import CONSENT_REFUSED

pytestmark = pytest.mark.integration

DAY = 86400.0
T0 = 1_800_000_000.0
A, B = "a@test.example", "b@test.example"
COVERED = ("from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post")


def ad(subject: str = "[QC] Autumn catalogue") -> bytes:
    return (
        "From: Shop <news@shop.example>\n"
        "To: a@test.example\n"
        f"Subject: {subject}\n"
        "Message-ID: <1@shop.example>\n"
        "List-Unsubscribe: <https://u.example/u/TOKEN>\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
        "\n"
        "Our autumn catalogue is out.\n"
    ).encode()


#: what SPF answers for the envelope sender in these tests ("pass" unless a test forges)
SPF_ANSWER = {"result": "pass", "asked": 0}


def shop_spf(resolver: Any, *, ip: str, mail_from: str, helo: str,
             timeout: float) -> SpfResult:
    """SPF for ``news@shop.example`` from 192.0.2.7 (auth.check_spf's signature)."""
    SPF_ANSWER["asked"] = int(SPF_ANSWER["asked"]) + 1
    return SpfResult(str(SPF_ANSWER["result"]), "mailfrom", "shop.example", mail_from)


def shop_auth(raw: bytes, view: MessageView, resolver: Any, **kw: Any) -> AuthResults:
    """SPF and an aligned DKIM signature covering the one-click headers both pass;
    with SPF failing (a forged envelope), no signature either."""
    spf = kw.get("spf_result")
    if spf is not None and spf.result != "pass":
        return AuthResults(spf=spf, dkim=(), dmarc=DmarcResult(
            "fail", "shop.example", "shop.example", "none", "none", False, False))
    return AuthResults(
        spf=SpfResult("pass", "mailfrom", "shop.example", kw["mail_from"]),
        dkim=(DkimResult("pass", "shop.example", "s1", "rsa-sha256", "AbCd", "",
                         covered_headers=COVERED),),
        dmarc=DmarcResult("pass", "shop.example", "shop.example", "none", "none", True, True),
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Ctx(testctx.TestCtx):
    def quarantine(self, reason: str) -> None:  # Postfix hold: not used here
        raise AssertionError(f"unexpected quarantine: {reason}")


def feed(ctx: Ctx, raw: bytes, rcpts: Sequence[str]) -> tuple[int, list[int]]:
    """One transaction like Postfix drives it: refused recipients do not end it."""
    ctx._setsymval("i", "4QID")
    assert ctx._connect(host="mail.shop.example", helo="mail.shop.example",
                        ip="192.0.2.7") == Milter.CONTINUE
    msg = mime.message_from_file(io.BytesIO(raw))
    ctx._msg = msg
    ctx._body = None
    assert ctx._envfrom("<news@shop.example>") == Milter.CONTINUE
    codes = [ctx._envrcpt(f"<{r}>") for r in rcpts]
    if all(c != Milter.CONTINUE for c in codes):
        return codes[-1], codes
    for name, value in msg.items():
        assert ctx._header(name, value) == Milter.CONTINUE
    _, body = msg.as_bytes().split(b"\n\n", 1)
    assert ctx._feed_body(io.BytesIO(body)) == Milter.CONTINUE
    return ctx._eom(), codes


@pytest.fixture
def world(redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Any, RedisConsentRegistry, Clock, ConsentPolicy]]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0))
    clock = Clock()
    registry = RedisConsentRegistry(client, clock=clock, delimiters="+")
    registry.register_advertiser("shop", name="Shop", domains=["shop.example"])
    registry.add_consents([ConsentRecord("shop", A, "form", T0 - 60, "form #1")])
    cfg = config_from_mapping({"milter": {"authserv_id": "mx.test.example"}}, source="<test>")
    policy = ConsentPolicy(cfg, registry, clock=clock, domain_cache_ttl=0, retry_after=0)
    SPF_ANSWER.update(result="pass", asked=0)
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=shop_auth, policies=[policy],
                      spf=shop_spf)
    monkeypatch.setattr(Milter, "factory", functools.partial(SpamwardenMilter, scanner))
    try:
        yield Ctx, registry, clock, policy
    finally:
        client.close()


def test_rcpt_refusals_cap_and_the_next_day(world: Any) -> None:
    ctx_cls, registry, clock, _ = world
    ctx = ctx_cls()
    rc, codes = feed(ctx, ad(), [A, B])
    assert codes == [Milter.CONTINUE, Milter.REJECT] and rc == Milter.ACCEPT
    assert registry.sent_in_window("shop", A, now=clock.now) == 1
    assert registry.sent_in_window("shop", B, now=clock.now) == 0
    for hour in (1, 2):
        clock.now = T0 + hour * 3600
        rc, _ = feed(ctx_cls(), ad(), [A])
        assert rc == Milter.ACCEPT
    clock.now = T0 + 3 * 3600
    ctx = ctx_cls()
    rc, codes = feed(ctx, ad(), [A])
    assert codes == [Milter.REJECT]
    assert ctx._reply is not None and ctx._reply[:2] == CONSENT_REFUSED.milter
    assert "limit is 3" in ctx._reply[2]
    assert registry.sent_in_window("shop", A, now=clock.now) == 3  # refused: not counted
    clock.now = T0 + DAY + 1  # the first send has left the window
    rc, codes = feed(ctx_cls(), ad(), [A])
    assert codes == [Milter.CONTINUE] and rc == Milter.ACCEPT


def test_refusal_takes_effect_at_once(world: Any) -> None:
    ctx_cls, registry, _, _ = world
    assert feed(ctx_cls(), ad(), [A])[0] == Milter.ACCEPT
    registry.refuse(A, adv="shop", channel="one-click")
    ctx = ctx_cls()
    _, codes = feed(ctx, ad(), [A])
    assert codes == [Milter.REJECT] and "refused advertising from shop" in ctx._reply[2]


def test_unlabelled_ad_rejected_at_end_of_message(world: Any) -> None:
    ctx_cls, registry, _, _ = world
    ctx = ctx_cls()
    rc, codes = feed(ctx, ad("Autumn catalogue"), [A])
    assert codes == [Milter.CONTINUE] and rc == Milter.REJECT
    assert ctx._reply[0] == "550" and "AD_UNLABELLED" in ctx._reply[2]
    assert registry.sent_in_window("shop", A, now=T0) == 0
    # the place it took under the cap at end of message was given back with the refusal
    assert registry.recipient_state("shop", A, now=T0, default_cap=3).sent == 0


def test_registry_down_accepts_says_so_and_counts_later(
        world: Any, redis_server: EmbeddedRedis) -> None:
    ctx_cls, registry, clock, policy = world
    assert feed(ctx_cls(), ad(), [A])[0] == Milter.ACCEPT  # the advertiser map is known
    redis_server.stop()
    ctx = ctx_cls()
    rc, codes = feed(ctx, ad(), [A, B])
    # no rejection on consent grounds (B has none), and the headers say why
    assert codes == [Milter.CONTINUE, Milter.CONTINUE] and rc == Milter.ACCEPT
    status = _added(ctx, "X-Spam-Status")
    assert "AD_REGISTRY_FAIL" in status and "AD_NO_CONSENT" not in status
    assert policy.pending_counts == 1
    redis_server.start()
    clock.now += 60
    assert feed(ctx_cls(), ad(), [A])[0] == Milter.ACCEPT
    assert policy.pending_counts == 0
    # the delivery made while Redis was down was counted when it came back
    assert registry.sent_in_window("shop", A, now=clock.now) == 3
    assert registry.sent_in_window("shop", B, now=clock.now) == 1


def _added(ctx: Any, name: str) -> str:
    """The value of a header the milter added (TestCtx keeps them on the message)."""
    values = ctx._msg.get_all(name) or []
    return " ".join(" ".join(str(v).split()) for v in values)


def test_messages_at_the_same_moment_cannot_all_fit_under_the_cap(world: Any) -> None:
    """Ten of the advertiser's ads to one recipient reach the end of message before any
    is answered (parallel sessions): only three fit under the cap, each takes its place
    at once, and the sends replace the holds without counting twice. A message held but
    never delivered gives its place back after HOLD_SECONDS."""
    from spamwarden.consent.registry import HOLD_SECONDS
    from spamwarden.mail import parse_message
    from spamwarden.milter.interfaces import Envelope

    _, registry, clock, policy = world
    view = parse_message(ad())
    envs = [Envelope(mail_from="news@shop.example", rcpts=[A], queue_id=f"Q{n}")
            for n in range(10)]
    auth = shop_auth(b"", view, None, mail_from="news@shop.example")
    verdicts = [{s.name for s in policy.check_message(view, e, auth)} for e in envs]
    fitted = [e for e, names in zip(envs, verdicts, strict=True) if "AD_OVER_CAP" not in names]
    assert len(fitted) == 3, verdicts
    for e in fitted:
        policy.delivered(view, e, auth)
    assert registry.sent_in_window("shop", A, now=clock.now) == 3
    assert registry.counts("shop").sent == 3
    # the next day: one message is held and never delivered (refused for another reason)
    clock.now += DAY + 1
    held = Envelope(mail_from="news@shop.example", rcpts=[A], queue_id="QH")
    assert "AD_OVER_CAP" not in {s.name for s in policy.check_message(view, held, auth)}
    assert registry.recipient_state("shop", A, now=clock.now, default_cap=3).sent == 1
    assert registry.sent_in_window("shop", A, now=clock.now) == 0  # held, not sent
    clock.now += HOLD_SECONDS + 1
    assert registry.recipient_state("shop", A, now=clock.now, default_cap=3).sent == 0


class HoldingCtx(testctx.TestCtx):
    """Records a Postfix hold (smfi_quarantine) instead of failing the test."""

    held: list[str]

    def quarantine(self, reason: str) -> None:
        self.held = [*getattr(self, "held", []), reason]


def test_a_forged_advertiser_envelope_reads_no_recipients_choice(world: Any) -> None:
    """MAIL FROM:<news@shop.example> from a host SPF fails for, to a recipient who
    refused shop, one without consent and one who consented: every RCPT and the end of
    message answer what any recipient would get, so the sender learns nothing of their
    choices; the refusing recipient still does not get the ad (it is held)."""
    _, registry, clock, _ = world
    registry.refuse(B, adv="shop", channel="one-click")
    SPF_ANSWER["result"] = "fail"
    answers = []
    for rcpts in ([A], [B], ["c@test.example"]):
        ctx = HoldingCtx()
        rc, codes = feed(ctx, ad(), rcpts)  # type: ignore[arg-type]
        answers.append((codes, rc))
        if rcpts != [A]:
            assert getattr(ctx, "held", []), rcpts  # not delivered to who may not get it
            assert "AD_UNVERIFIED_HELD" in _added(ctx, "X-Spam-Status")
    assert answers == [([Milter.CONTINUE], Milter.ACCEPT)] * 3
    assert SPF_ANSWER["asked"] == 3  # once per transaction: RCPT's answer served the end
    # nothing was counted against shop's cap by mail shop never sent
    assert registry.sent_in_window("shop", A, now=clock.now) == 0
    # shop itself (SPF passes) is told at RCPT, as the decree's refusal requires
    SPF_ANSWER["result"] = "pass"
    ctx = HoldingCtx()
    _, codes = feed(ctx, ad(), [B])  # type: ignore[arg-type]
    assert codes == [Milter.REJECT] and "refused advertising from shop" in ctx._reply[2]


def test_two_hosts_with_the_same_queue_id_each_take_a_place(world: Any) -> None:
    """Several MX hosts share one registry, and Postfix's short queue ids are unique
    only on one host: two ads checked at the same moment on two hosts under the same
    queue id must take two places under the cap, and one's delivery must not free the
    other's place."""
    from spamwarden.consent.policy import ConsentPolicy
    from spamwarden.mail import parse_message
    from spamwarden.milter.interfaces import Envelope

    _, registry, clock, policy = world
    other_host = ConsentPolicy(policy.cfg, registry, clock=clock, domain_cache_ttl=0,
                               retry_after=0)
    view = parse_message(ad())
    auth = shop_auth(b"", view, None, mail_from="news@shop.example")
    env = Envelope(mail_from="news@shop.example", rcpts=[A], queue_id="4QSAME")
    for p in (policy, other_host):
        assert "AD_OVER_CAP" not in {s.name for s in p.check_message(view, env, auth)}
    assert registry.recipient_state("shop", A, now=clock.now, default_cap=3).sent == 2
    policy.delivered(view, env, auth)  # the first host's send replaces only its own hold
    assert registry.sent_in_window("shop", A, now=clock.now) == 1
    assert registry.recipient_state("shop", A, now=clock.now, default_cap=3).sent == 2


def test_an_advertiser_submitting_through_this_site_is_refused_at_rcpt(world: Any) -> None:
    """An advertiser that logs in (SMTP AUTH) to submit from an address its SPF does not
    list: the end of message never refuses or holds a trusted sender's mail, so the RCPT
    refusal is what stops its ad to a recipient who refused it. The site knows who it
    is, so it is told, as an SPF-vouched sender is."""
    ctx_cls, registry, _, _ = world
    registry.refuse(B, adv="shop", channel="one-click")
    SPF_ANSWER["result"] = "softfail"  # a home or office address, not in shop's record
    ctx = HoldingCtx()
    ctx._setsymval("{auth_authen}", "shop-sender")
    _, codes = feed(ctx, ad(), [A, B])  # type: ignore[arg-type]
    assert codes == [Milter.CONTINUE, Milter.REJECT]
    assert "refused advertising from shop" in ctx._reply[2]
