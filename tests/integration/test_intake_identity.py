"""Reporter identity at intake: the person (SASL login, or a trusted submission host's
envelope sender), not the envelope string; one person counts once in de-duplication,
the rate limit and the worker's distinct-reporter count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis
import redis.asyncio

from spamwarden.redisconn import sync_client
from spamwarden.reputation.engine import ListingEngine, ListingPolicy
from spamwarden.reputation.intake import (
    REPLIES,
    example_index_key,
    example_quota_key,
    rate_key,
    reporter_identity,
)
from spamwarden.reputation.store import AsyncListingStore, ListingStore, window_keys
from tests.integration.test_intake import REPORTS, RunningIntake, _as_login, _variant
from tests.integration.test_intake import start_intake as start_intake

pytestmark = pytest.mark.integration

RAW = (REPORTS / "gmail-attached.eml").read_bytes()  # submitted with login alice@example.vn


def _unauthenticated(raw: bytes) -> bytes:
    return _as_login(raw, None).replace(b"with ESMTPSA", b"with ESMTPS")


def test_reporter_identity_folds_case_and_extensions() -> None:
    assert reporter_identity("<Alice+1@Example.VN>", delimiters="+") == "alice@example.vn"
    assert reporter_identity("alice-x@example.vn", delimiters="+-") == "alice@example.vn"
    assert reporter_identity("alice-x@example.vn", delimiters="+") == "alice-x@example.vn"
    # as Postfix does
    assert reporter_identity("+list@example.vn", delimiters="+") == "+list@example.vn"
    assert reporter_identity("Bob", delimiters="+") == "bob"
    assert reporter_identity("bob+2", delimiters="") == "bob+2"
    # the domain as the ledger writes recipients: one person however a login spells it
    assert reporter_identity("Mallory@Example.ORG.", delimiters="+") == "mallory@example.org"
    assert reporter_identity("an@b\u00fccher.example", delimiters="+") == "an@xn--bcher-kva.example"
    # a raw 8-bit octet (kept by the parser as a lone surrogate) is text Redis can take
    assert reporter_identity("ma\udcffllory", delimiters="+").encode("utf-8") == b"ma?llory"


def test_unauthenticated_report_is_refused_by_default(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(require_auth=True)
    assert intake.cfg.intake.require_auth
    code, text = intake.send(_unauthenticated(RAW))
    assert (code, text) == (550, REPLIES["auth_required"][4:])
    assert text.startswith("5.7.1 Reports are accepted only from users logged in")
    # authenticated (ESMTPSA) but Postfix did not record who: refused, and says why
    code, text = intake.send(_as_login(RAW, None))
    assert (code, text) == (550, REPLIES["login_unknown"][4:])
    # a login written below a hop from anywhere else is not ours
    forged = (b"Received: from evil.example (evil.example [203.0.113.66])\r\n"
              b"\tby mail.example.vn (Postfix) with ESMTP id 1\r\n" + RAW)
    assert intake.send(forged)[0] == 550
    local = (b"Received: by mail.example.vn (Postfix, from userid 1000)\r\n" + RAW)
    assert intake.send(local)[0] == 550
    assert intake.complaints() == []


def test_one_login_under_several_senders_is_one_reporter(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(require_auth=True, reporter_rate=2)
    raw = _as_login(RAW, "Alice@Example.VN")
    first = intake.send(raw, sender="m1@example.vn")
    again = [intake.send(raw, sender=s) for s in ("m2@example.vn", "m3@example.vn",
                                                    "alice+1@example.vn", "Alice@example.vn")]
    assert first[0] == 250
    [c] = intake.complaints()
    assert (c.reporter, c.reporter_verified) == ("alice@example.vn", True)
    assert again == [(250, REPLIES["duplicate"].format(id=c.id)[4:])] * 4
    # and one rate counter: the third distinct report from the same login waits
    assert intake.send(_variant(raw, 1), sender="m2@example.vn")[0] == 250
    code, _ = intake.send(_variant(raw, 2), sender="m3@example.vn")
    assert code == 450
    assert {c.reporter for c in intake.complaints()} == {"alice@example.vn"}
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert r.get(rate_key("alice@example.vn")) == b"2"
        assert r.exists(rate_key("m1@example.vn"), rate_key("m2@example.vn")) == 0
    finally:
        r.close()


def test_without_require_auth_extensions_and_case_fold(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(require_auth=False)
    raw = _unauthenticated(RAW)
    replies = [intake.send(raw, sender=s) for s in ("alice+1@example.vn", "alice+2@example.vn",
                                                    "Alice@example.vn")]
    assert [code for code, _ in replies] == [250, 250, 250]
    [c] = intake.complaints()
    assert (c.reporter, c.reporter_verified) == ("alice@example.vn", False)
    # an unidentified reporter's original never becomes a training example
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert r.zcard(example_index_key("spam")) == 0
    finally:
        r.close()


def test_trusted_submission_host_identifies_by_envelope_sender(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(require_auth=True, trusted_networks=["192.0.2.10/32"])
    webmail = (b"Received: from webmail.example.vn (webmail.example.vn [192.0.2.10])\r\n"
               b"\tby mail.example.vn (Postfix) with ESMTP id 2\r\n" + _unauthenticated(RAW))
    assert intake.send(webmail, sender="Bob+spam@example.vn")[0] == 250
    [c] = intake.complaints()
    assert c.reporter == "bob@example.vn"
    # the same message from any other host is not identified
    other = webmail.replace(b"[192.0.2.10]", b"[192.0.2.11]")
    assert intake.send(_variant(other, 1), sender="bob@example.vn")[0] == 550


def test_worker_counts_one_login_once(
    start_intake: Callable[..., RunningIntake], redis_url: str
) -> None:
    intake = start_intake(require_auth=True)
    # three different messages from the same spam source, one login, three senders
    for n, sender in enumerate(("m1@example.vn", "m2@example.vn", "m3@example.vn")):
        code, text = intake.send(_variant(_as_login(RAW, "carol@example.vn"), n), sender=sender)
        assert code == 250, text
    assert len(intake.complaints()) == 3

    async def drain_and_list(engine: ListingEngine, store: ListingStore) -> set[str]:
        for _ in range(100):
            if await engine.run_once(block_ms=1) == 0 and not engine._replaying:
                break
        return {x.key for x in store.all()}

    async def main() -> None:
        settings = {"listing_ttl": 86400.0, "max_listing_ttl": 8 * 86400.0,
                    "window": 7 * 86400.0}
        astore = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url), **settings)
        # the sample's message was never delivered here: this test counts identities only
        engine = ListingEngine(astore, ListingPolicy(local_domains=["example.vn"],
                                                     require_delivered=False),
                               min_reporters=3, min_complaint_rate=0.001, consumer="w1")
        await engine.setup()
        sync = ListingStore(redis.Redis.from_url(redis_url), **settings)
        try:
            assert "promo-shop.example" not in await drain_and_list(engine, sync)
            c_key, r_key = window_keys("promo-shop.example")
            assert (sync.redis.zcard(c_key), sync.redis.zcard(r_key)) == (3, 1)
            # two more people: now three reporters
            for n, login in ((10, "dave@example.vn"), (11, "erin@example.vn")):
                code, _ = intake.send(_variant(_as_login(RAW, login), n), sender=login)
                assert code == 250
            assert "promo-shop.example" in await drain_and_list(engine, sync)
        finally:
            await astore.aclose()
            sync.redis.close()

    asyncio.run(main())


def test_examples_per_reporter_are_capped(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(require_auth=True)
    cap = intake.cfg.training.max_examples_per_reporter
    raw = _as_login(RAW, "alice@example.vn")
    for n in range(cap + 5):
        assert intake.send(_variant(raw, n))[0] == 250
    assert len(intake.complaints()) == cap + 5  # every report still counts as a complaint
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert r.zcard(example_index_key("spam")) == cap
        assert r.get(example_quota_key("alice@example.vn")) == str(cap).encode()
        assert 0 < r.ttl(example_quota_key("alice@example.vn")) <= 86400
    finally:
        r.close()
    # another person still teaches
    assert intake.send(_variant(_as_login(RAW, "bob@example.vn"), 99),
                       sender="bob@example.vn")[0] == 250
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert r.zcard(example_index_key("spam")) == cap + 1
    finally:
        r.close()


# -- the learning guard: what one person (or a forger) can teach the online model ------------


def _spam_probability_after(intake: RunningIntake, reports: list[tuple[str, bytes]]) -> float:
    """Send ham@ reports ((envelope sender, report) pairs) while the milter's feedback
    follower polls between them, as it does once a minute; the shipped model's spam
    probability for the reported spam afterwards."""
    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import find_original
    from spamwarden.training.classifier import default_model_path
    from spamwarden.training.feedback import FeedbackFollower, RedisFeedbackSource
    from spamwarden.training.model import load_model

    model = load_model(default_model_path())
    client = redis.Redis.from_url(intake.redis_url)
    follower = FeedbackFollower(model, RedisFeedbackSource(client), interval=3600)
    try:
        for n, (sender, raw) in enumerate(reports):
            intake.send(raw, sender=sender, rcpt="ham@example.vn")
            if n % 10 == 9:
                follower.poll_once()
        follower.poll_once()
    finally:
        client.close()
    original = find_original(RAW, local_domains=("example.vn",))
    return model.spam_probability(parse_message(original.message))


def _fresh_redis(intake: RunningIntake) -> None:
    client = redis.Redis.from_url(intake.redis_url)
    try:
        client.flushall()
    finally:
        client.close()


def test_a_flood_of_ham_reports_teaches_no_more_than_one_report(
    start_intake: Callable[..., RunningIntake]
) -> None:
    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import find_original
    from spamwarden.training.classifier import default_model_path
    from spamwarden.training.model import load_model

    original = find_original(RAW, local_domains=("example.vn",))
    before = load_model(default_model_path()).spam_probability(parse_message(original.message))
    intake = start_intake(require_auth=True)
    ham = _as_login(RAW, "mallory@example.vn")

    one = _spam_probability_after(intake, [("mallory@example.vn", ham)])
    assert one < before  # one ham report does teach something
    _fresh_redis(intake)
    # 150 reports of the same spam by one login, under 150 of its addresses and +tags
    senders = [f"mallory+{n}@example.vn" for n in range(150)]
    flood = _spam_probability_after(intake, [(s, ham) for s in senders])
    assert flood == pytest.approx(one, abs=1e-9)
    _fresh_redis(intake)
    # 150 forged senders without a login: refused at intake, the model does not move
    forged = _as_login(RAW, None).replace(b"with ESMTPSA", b"with ESMTPS")
    for n in range(3):
        code, text = intake.send(forged, sender=f"user{n}@example.vn", rcpt="ham@example.vn")
        assert (code, text) == (550, REPLIES["auth_required"][4:])
    untouched = _spam_probability_after(
        intake, [(f"user{n}@example.vn", forged) for n in range(150)])
    assert untouched == pytest.approx(before, abs=1e-12)
    assert intake.complaints() == []
