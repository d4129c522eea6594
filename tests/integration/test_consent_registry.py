"""The consent registry against a real Redis: Lua scripts, key scheme, TTLs, the
complaint and optout@ refusal channels."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from spamwarden.consent.optout import REPLIES as OPTOUT_REPLIES
from spamwarden.consent.optout import OptoutHandler
from spamwarden.consent.records import export_records, iso
from spamwarden.consent.registry import (
    GLOBAL,
    LOG_KEY,
    AdComplaintRefusals,
    ConsentRecord,
    ConsentStore,
    DomainTaken,
    RedisConsentRegistry,
    UnknownAdvertiser,
    sent_key,
)
from spamwarden.consent.unsubscribe import TokenSigner
from spamwarden.errors import StoreUnavailable
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.complaints import Complaint, Indicators
from spamwarden.reputation.intake import IntakeRequest
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0
A, B, C = "a@example.test", "b@example.test", "c@example.test"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reg(client: redis.Redis, clock: Clock) -> RedisConsentRegistry:
    r = RedisConsentRegistry(client, clock=clock, delimiters="+")
    r.register_advertiser("shop", name="Shop VN", domains=["mail.shop.test"])
    r.add_consents([ConsentRecord("shop", A, "form", NOW - 100, "signup form #7")])
    return r


def state(reg: RedisConsentRegistry, rcpt: str, now: float = NOW) -> tuple[str, int, int]:
    s = reg.recipient_state("shop", rcpt, now=now, default_cap=3)
    return s.status, s.sent, s.cap


def test_protocol_and_key_scheme(reg: RedisConsentRegistry, client: redis.Redis) -> None:
    assert isinstance(reg, ConsentStore)
    reg.record_sends("shop", [A], now=NOW, ref="Q1")
    reg.refuse(B, adv="shop", channel="cli")
    reg.refuse(C, channel="cli")
    keys = sorted(k.decode() for k in client.keys("*"))
    assert keys and all(k.startswith("sw:{sw}:") for k in keys), keys
    assert set(keys) == {
        "sw:{sw}:advertisers", "sw:{sw}:adv:shop", "sw:{sw}:adv-domains",
        "sw:{sw}:consent:shop", "sw:{sw}:refusal:shop", "sw:{sw}:dne",
        "sw:{sw}:rcpt-adv:a@example.test", "sw:{sw}:rcpt-adv:b@example.test",
        "sw:{sw}:rcpt-adv:c@example.test", "sw:{sw}:sent:shop:a@example.test",
        "sw:{sw}:adv-stats:shop", "sw:{sw}:consent-log", "sw:{sw}:adv-sent:shop:500000",
    }
    # only the send counters are ephemeral; consent and refusal records are kept
    ttl = client.pttl(sent_key("shop", A))
    assert 86_400_000 < ttl <= 86_460_000
    assert 86_400 < client.ttl("sw:{sw}:adv-sent:shop:500000") <= 90_000
    for k in keys:
        if k not in (sent_key("shop", A), "sw:{sw}:adv-sent:shop:500000"):
            assert client.ttl(k) == -1, k


def test_domains_are_registrable_and_owned_once(reg: RedisConsentRegistry) -> None:
    assert reg.domain_map() == {"shop.test": "shop"}
    with pytest.raises(DomainTaken):
        reg.register_advertiser("rival", name="Rival", domains=["news.shop.test"])
    assert reg.advertiser("rival") is None  # nothing half-written
    adv, _ = reg.register_advertiser("shop", name="Shop VN", domains=["shop2.test"])
    assert adv.domains == ("shop.test", "shop2.test")
    with pytest.raises(ValueError):
        reg.register_advertiser("shop", name="x", domains=["com"])
    with pytest.raises(UnknownAdvertiser):
        reg.add_consents([ConsentRecord("nobody", A, "form", NOW)])


def test_advertiser_token_is_stored_hashed(reg: RedisConsentRegistry, client: redis.Redis) -> None:
    _, token = reg.register_advertiser("t1", name="T", new_token=True)
    assert token and reg.check_advertiser_token("t1", token)
    assert not reg.check_advertiser_token("t1", token + "x")
    assert not reg.check_advertiser_token("shop", token)
    assert token.encode() not in b"".join(client.hvals("sw:{sw}:adv:t1"))


def test_states_in_order(reg: RedisConsentRegistry) -> None:
    assert state(reg, A) == ("ok", 0, 3)
    assert state(reg, B) == ("no_consent", 0, 3)
    reg.add_consents([ConsentRecord("shop", B, "call", NOW - 50, expires_at=NOW - 1)])
    assert state(reg, B)[0] == "consent_expired"
    reg.refuse(A, adv="shop", channel="one-click")
    assert state(reg, A)[0] == "refused"
    reg.refuse(A, channel="cli")
    assert state(reg, A)[0] == "refused_all"


def test_refusal_wins_over_later_consent(reg: RedisConsentRegistry, clock: Clock) -> None:
    reg.refuse(A, adv="shop", channel="one-click")
    clock.now += 3600
    reg.add_consents([ConsentRecord("shop", A, "app", clock.now)])
    assert state(reg, A, clock.now)[0] == "refused"


def test_rolling_window_cap(reg: RedisConsentRegistry) -> None:
    for i in range(3):
        assert state(reg, A, NOW + i * 3600)[0] == "ok"
        reg.record_sends("shop", [A, B], now=NOW + i * 3600, ref=f"Q{i}")
    assert state(reg, A, NOW + 3 * 3600) == ("over_cap", 3, 3)
    # the first send leaves the window exactly 24 h later
    assert state(reg, A, NOW + 86400) == ("ok", 2, 3)
    assert reg.sent_in_window("shop", A, now=NOW + 86400 + 2 * 3600) == 0
    assert reg.counts("shop").sent == 6


def test_counts_of_many_advertisers_with_the_last_24_hours(reg: RedisConsentRegistry,
                                                           client: redis.Redis) -> None:
    reg.register_advertiser("mall", name="Mall", domains=["mall.example"])
    reg.add_consents([ConsentRecord("shop", A, "form", NOW - 10),
                      ConsentRecord("shop", B, "app", NOW - 10)])
    reg.refuse(A, adv="mall", channel="reply", now=NOW)
    hour = int(NOW // 3600) * 3600.0
    reg.record_sends("shop", [A, B], now=hour - 23 * 3600, ref="old-but-counted")
    reg.record_sends("shop", [A], now=hour - 24 * 3600, ref="too-old")
    reg.record_sends("shop", [B], now=hour + 10, ref="now")
    reg.record_sends("mall", [A, B, "c@example.net"], now=hour - 3600, ref="m")
    shop, mall = reg.counts_many(["shop", "mall"], now=hour + 3599)
    assert (shop.consents, shop.refusals, shop.sent, shop.sent_24h) == (2, 0, 4, 3)
    assert (mall.consents, mall.refusals, mall.sent, mall.sent_24h) == (0, 1, 3, 3)
    # an hour later the oldest hour has left the last 24 hours
    assert [c.sent_24h for c in reg.counts_many(["shop", "mall"], now=hour + 3600)] == [1, 3]
    assert reg.counts_many([]) == []
    # the hourly counters are ephemeral: kept for the window and one hour
    ttl = client.ttl(f"sw:{{sw}}:adv-sent:shop:{int(hour // 3600)}")
    assert 86400 < ttl <= 86400 + 3600


def test_recipient_may_agree_to_more(reg: RedisConsentRegistry) -> None:
    reg.add_consents([ConsentRecord("shop", A, "form", NOW - 10, max_per_day=5)])
    for i in range(4):
        reg.record_sends("shop", [A], now=NOW + i, ref="q")
    assert state(reg, A, NOW + 10) == ("ok", 4, 5)
    reg.record_sends("shop", [A], now=NOW + 5, ref="q")
    assert state(reg, A, NOW + 10) == ("over_cap", 5, 5)


def test_refusal_first_record_kept_and_confirmed_once(
    reg: RedisConsentRegistry, clock: Clock, client: redis.Redis
) -> None:
    rec, new = reg.refuse(A, adv="shop", channel="one-click")
    assert new and rec.channel == "one-click" and rec.at == NOW
    clock.now += 10
    rec2, new2 = reg.refuse(A, adv="shop", channel="optout-mail")
    assert not new2 and rec2.channel == "one-click" and rec2.at == NOW
    assert reg.claim_confirmation(A, adv="shop") is True
    assert reg.claim_confirmation(A, adv="shop") is False
    assert reg.refusal(A, adv="shop").confirmed_at == NOW + 10  # type: ignore[union-attr]
    assert reg.claim_confirmation(B, adv="shop") is False  # nothing to confirm
    ops = [e[1][b"op"] for e in client.xrange(LOG_KEY)]
    assert ops == [b"consent", b"refusal", b"confirmed"]


def test_recipient_lookup_and_export(reg: RedisConsentRegistry) -> None:
    reg.register_advertiser("other", name="Other", domains=["other.test"])
    reg.add_consents([ConsentRecord("other", A, "reply", NOW - 5, "Re: yes please")])
    reg.refuse(A, adv="other", channel="complaint")
    reg.refuse(A, channel="optout-mail")
    rr = reg.recipient_records("A@Example.TEST")
    assert [(c.advertiser, c.method) for c in rr.consents] == [("other", "reply"), ("shop", "form")]
    assert [(r.advertiser, r.channel) for r in rr.refusals] == [
        (GLOBAL, "optout-mail"), ("other", "complaint")]
    buf = io.StringIO()
    assert export_records(reg, "shop", "csv", buf) == 1
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["recipient"] == A and rows[0]["evidence"] == "signup form #7"
    assert rows[0]["at"] == iso(NOW - 100) and rows[0]["kind"] == "consent"
    buf = io.StringIO()
    assert export_records(reg, "other", "json", buf) == 2
    data = json.loads(buf.getvalue())
    assert {d["kind"] for d in data} == {"consent", "refusal"}


def test_bad_records_refused(reg: RedisConsentRegistry) -> None:
    for rec in (
        ConsentRecord("shop", B, "fax", NOW),
        ConsentRecord("shop", "not-an-address", "form", NOW),
        ConsentRecord("shop", B, "form", NOW + 10 * 86400),
        ConsentRecord("shop", B, "form", NOW, expires_at=NOW - 1),
    ):
        with pytest.raises(ValueError):
            reg.add_consents([rec])
    assert reg.consent("shop", B) is None


def test_unreachable_store_raises_store_unavailable(clock: Clock, tmp_path: object) -> None:
    c = redis.Redis(unix_socket_path="/nonexistent/redis.sock", socket_timeout=0.2,
                    retry=Retry(NoBackoff(), 0))
    reg = RedisConsentRegistry(c, clock=clock, delimiters="+")
    with pytest.raises(StoreUnavailable):
        reg.domain_map()
    with pytest.raises(StoreUnavailable):
        reg.recipient_state("shop", A, now=NOW, default_cap=3)
    with pytest.raises(StoreUnavailable):
        list(reg.consents("shop"))


def test_complaint_about_an_ad_is_a_refusal(reg: RedisConsentRegistry) -> None:
    hook = AdComplaintRefusals(reg)

    def complaint(kind: str = "spam", verified: bool = True, **ind: object) -> Complaint:
        base: dict[str, object] = dict(from_domain="shop.test", ad_label="QC",
                                       dkim_verified=("shop.test",))
        base.update(ind)
        return Complaint(id="c1", kind=kind, reporter=B, received_at=NOW + 5,  # type: ignore[arg-type]
                         fingerprint="f", indicators=Indicators(**base),  # type: ignore[arg-type]
                         reporter_verified=verified)

    # a reporter nobody identified (a forged envelope sender) refuses nothing for anyone
    assert hook.record(complaint(verified=False)) is None
    assert state(reg, B)[0] != "refused"
    assert hook.record(complaint("ham")) is None
    assert hook.record(complaint(ad_label=None)) is None
    assert hook.record(complaint(from_domain="else.test", dkim_verified=())) is None
    rec = asyncio.run(hook(complaint()))
    assert rec is not None and rec.advertiser == "shop" and rec.channel == "complaint"
    assert state(reg, B)[0] == "refused"
    # unverified but the From the recipient saw is the advertiser's: still their refusal
    assert hook.record(complaint(dkim_verified=())) is not None


def _optout(reg: RedisConsentRegistry, raw: bytes, *, local: bool = True,
            authenticated: bool = True) -> str:
    handler = OptoutHandler(reg, TokenSigner(b"k" * 32), local_domains=("example.test",))
    req = IntakeRequest(reporter=B, recipient="optout@example.test", raw=raw,
                        authenticated=authenticated, local_reporter=local)
    return asyncio.run(handler(req))


def test_optout_from_an_unidentified_sender_records_nothing(reg: RedisConsentRegistry) -> None:
    reply = _optout(reg, b"From: b@example.test\r\nSubject: ALL\r\n\r\nstop\r\n",
                    authenticated=False)
    assert reply == OPTOUT_REPLIES["not_authenticated"]
    assert reply.startswith("550 5.7.1 ") and "unsubscribe link" in reply
    assert reg.refusal(B) is None


def test_optout_all(reg: RedisConsentRegistry) -> None:
    reply = _optout(reg, b"From: b@example.test\r\nSubject: ALL\r\n\r\nstop\r\n")
    assert reply.startswith("250 ") and "all advertising" in reply
    assert reg.refusal(B) is not None
    reply = _optout(reg, b"From: b@example.test\r\nSubject: ALL\r\n\r\nstop\r\n")
    assert reply.startswith("250 ") and "already" in reply


def test_optout_vietnamese_all(reg: RedisConsentRegistry) -> None:
    raw = ("From: b@example.test\r\nSubject: tất cả quảng cáo\r\n\r\n-\r\n").encode()
    assert _optout(reg, raw).startswith("250 ")
    assert reg.refusal(B) is not None


@pytest.mark.parametrize("form", ["NFD", "NFC"])
@pytest.mark.parametrize("subject", ["Tất cả quảng cáo", "TẤT CẢ", "Re: tất cả.", "tât cả"])
def test_optout_vietnamese_all_however_it_is_typed(reg: RedisConsentRegistry, subject: str,
                                                  form: str) -> None:
    """A Vietnamese keyboard set to write decomposed Unicode (letters, then combining
    tone marks) and one that writes composed letters type the same words, as does a
    user who puts one mark on the wrong letter: each refuses all advertising. The
    decomposed spelling used to get 550 (no advertiser named)."""
    import unicodedata

    subject = unicodedata.normalize(form, subject)
    raw = f"From: b@example.test\r\nSubject: {subject}\r\n\r\n-\r\n".encode()
    reply = _optout(reg, raw)
    assert reply.startswith("250 ") and "all advertising" in reply, reply
    assert reg.refusal(B) is not None


def test_optout_forwarded_ad_names_the_advertiser(reg: RedisConsentRegistry) -> None:
    raw = (
        b"From: b@example.test\r\nSubject: Fwd: [QC] Sale\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: text/plain\r\n\r\nno more please\r\n--XX\r\n"
        b"Content-Type: message/rfc822\r\n\r\n"
        b"From: Shop <news@mail.shop.test>\r\nTo: b@example.test\r\nSubject: [QC] Sale\r\n"
        b"Message-ID: <1@shop.test>\r\nDate: Mon, 1 Jan 2027 00:00:00 +0000\r\n\r\nBuy\r\n"
        b"--XX--\r\n"
    )
    reply = _optout(reg, raw)
    assert reply.startswith("250 ") and "shop" in reply, reply
    assert reg.refusal(B, adv="shop") is not None and reg.refusal(B) is None


def test_optout_token_and_subject(reg: RedisConsentRegistry) -> None:
    tok = TokenSigner(b"k" * 32).make("shop", B)
    raw = f"From: b@example.test\r\nSubject: stop\r\n\r\nhttps://x.test/u/{tok}\r\n".encode()
    assert _optout(reg, raw).startswith("250 ")
    assert reg.refusal(B, adv="shop") is not None
    reg.register_advertiser("other", name="Other", domains=["other.test"])
    assert _optout(reg, b"From: b@example.test\r\nSubject: unsubscribe other\r\n\r\n.\r\n")[
        :3] == "250"
    assert reg.refusal(B, adv="other") is not None


def test_optout_refusals(reg: RedisConsentRegistry) -> None:
    assert _optout(reg, b"From: b@example.test\r\nSubject: hello\r\n\r\nhi\r\n").startswith("550 ")
    assert _optout(reg, b"Subject: ALL\r\n\r\n.\r\n", local=False).startswith("550 5.7.1")
    assert reg.refusal(B) is None


def test_optout_store_down_is_a_temporary_failure(clock: Clock) -> None:
    c = redis.Redis(unix_socket_path="/nonexistent/redis.sock", socket_timeout=0.2,
                    retry=Retry(NoBackoff(), 0))
    reply = _optout(RedisConsentRegistry(c, clock=clock, delimiters="+"),
                    b"From: b@example.test\r\nSubject: other\r\n\r\n.\r\n")
    assert reply.startswith("451 ")


def test_data_survives_a_restart(redis_server: EmbeddedRedis, clock: Clock) -> None:
    c = redis.Redis.from_url(redis_server.url)
    reg = RedisConsentRegistry(c, clock=clock, delimiters="+")
    reg.register_advertiser("shop", name="Shop", domains=["shop.test"])
    reg.add_consents([ConsentRecord("shop", A, "form", NOW - 1)])
    reg.refuse(B, adv="shop", channel="cli")
    c.close()
    redis_server.stop()
    redis_server.start()
    c = redis.Redis.from_url(redis_server.url)
    reg = RedisConsentRegistry(c, clock=clock, delimiters="+")
    assert reg.consent("shop", A) is not None and reg.refusal(B, adv="shop") is not None
    c.close()


class Sink:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    from aiosmtpd.controller import Controller

    from tests.support.net import free_port

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def test_refusal_by_mail_and_complaint_confirmed_once(
    reg: RedisConsentRegistry, smtp_sink: tuple[Sink, int]
) -> None:
    import dataclasses
    import email
    import functools

    from spamwarden.config import Config, ConsentConfig
    from spamwarden.consent.confirmations import SmtpConfirmationSender, confirm_once

    sink, port = smtp_sink
    cfg = Config(consent=dataclasses.replace(ConsentConfig(), language="vi"))
    confirm = functools.partial(confirm_once, cfg, reg, sender=SmtpConfirmationSender(
        f"127.0.0.1:{port}"), from_addr="postmaster@example.test")
    handler = OptoutHandler(reg, TokenSigner(b"k" * 32), confirm=confirm)
    req = IntakeRequest(reporter=B, recipient="optout@example.test", authenticated=True,
                        raw=b"From: b@example.test\r\nSubject: shop\r\n\r\n.\r\n",
                        local_reporter=True)
    assert asyncio.run(handler(req)).startswith("250 ")
    assert asyncio.run(handler(req)).startswith("250 ")  # again: no second confirmation
    assert len(sink.messages) == 1
    mail_from, rcpts, content = sink.messages[0]
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert mail_from in ("<>", "") and rcpts == [B] and "Shop VN" in str(msg["Subject"])
    body = msg.get_content()
    assert "optout-mail" in body and "Buy" not in body and "duy nhất" in body
    assert str(msg["Auto-Submitted"]) == "auto-replied"

    hook = AdComplaintRefusals(reg, confirm=confirm)
    c = Complaint(id="c2", kind="spam", reporter=C, received_at=NOW, fingerprint="f",
                  indicators=Indicators(from_domain="shop.test", ad_label="QC"),
                  reporter_verified=True)
    assert hook.record(c) is not None and hook.record(c) is not None
    assert [m[1] for m in sink.messages] == [[B], [C]]


def test_every_script_runs_on_a_redis_cluster(redis_cluster: LocalCluster) -> None:
    """All keys carry the {sw} hash tag, so every multi-key script and pipeline of the
    registry runs on Redis Cluster (one slot)."""
    from spamwarden.config import config_from_mapping
    from spamwarden.redisconn import sync_client

    client = sync_client(config_from_mapping({"redis": {"url": redis_cluster.url}}))
    clock = Clock()
    reg = RedisConsentRegistry(client, clock=clock, delimiters="+")
    reg.register_advertiser("shop", name="Shop", domains=["shop.test"])
    reg.add_consents([ConsentRecord("shop", A, "form", NOW - 1)])
    reg.record_sends("shop", [A, B], now=NOW, ref="q")
    assert reg.recipient_state("shop", A, now=NOW, default_cap=3, hold="h:q2").sent == 1
    reg.release_holds("shop", [A, B], hold="h:q2")
    assert reg.claim_advertiser_all_request("shop", limit=1)
    assert not reg.claim_advertiser_all_request("shop", limit=1)
    reg.refuse(B, adv="shop", channel="cli")
    assert reg.claim_confirmation(B, adv="shop")
    assert state(reg, A) == ("ok", 1, 3) and state(reg, B)[0] == "refused"
    rr = reg.recipient_records(A)
    assert len(rr.consents) == 1
    assert reg.counts("shop").sent == 2
    assert [c.recipient for c in reg.consents("shop")] == [A]
    client.close()


def test_one_mailbox_one_record_whatever_the_address_form(
    client: redis.Redis, clock: Clock
) -> None:
    """Consent filed for several extensions of one mailbox is one consent with one
    daily cap, and a refusal by the mailbox holds for each of its forms."""
    reg = RedisConsentRegistry(client, clock=clock, delimiters="+")
    reg.register_advertiser("shop", name="Shop VN", domains=["mail.shop.test"])
    reg.add_consents([ConsentRecord("shop", f"an+{n}@example.test", "form", NOW - 100, "f")
                      for n in range(3)])
    assert [r.recipient for r in reg.consents("shop")] == ["an@example.test"]
    for n, form in enumerate(("an+0@example.test", '"an"@example.test', "AN+2@example.test")):
        reg.record_sends("shop", [form], now=NOW, ref=f"Q{n}")
    assert state(reg, "an+9@example.test") == ("over_cap", 3, 3)
    reg.refuse('"an"@example.test', channel="api", now=NOW)
    assert state(reg, "an+news@example.test")[0] == "refused_all"
    # a site without address extensions keeps "+" as part of the mailbox name
    plain = RedisConsentRegistry(client, clock=clock, delimiters="")
    assert plain.recipient_state("shop", "an+0@example.test", now=NOW,
                                 default_cap=3).status == "no_consent"


def test_a_complaint_from_a_login_without_a_domain_refuses_for_its_mailbox(
    reg: RedisConsentRegistry,
) -> None:
    """A SASL login ``carol`` reports an ad delivered to carol@example.test: the refusal
    is recorded for the address the matched delivery was made to."""
    hook = AdComplaintRefusals(reg)
    c = Complaint(id="c3", kind="spam", reporter="carol", received_at=NOW, fingerprint="f",
                  indicators=Indicators(from_domain="shop.test", ad_label="QC"),
                  reporter_verified=True, match="matched", delivery="d1",
                  delivered_to="carol@example.test")
    rec = hook.record(c)
    assert rec is not None and rec.recipient == "carol@example.test"
    assert state(reg, "carol@example.test")[0] == "refused"
    # the field survives the complaint stream
    assert Complaint.from_fields(c.to_fields()).delivered_to == "carol@example.test"
