"""A Redis at its ``maxmemory`` (``noeviction``: docs/operations.md, "Redis memory") refuses
every write. Mail must still be answered: what is lost is the after-reply record (the
delivery ledger, volume counts, history), counted and logged, and it resumes when there is
room. Intake's side (451, nothing lost) is in test_intake.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.resolver import StaticResolver
from spamwarden.wiring import build_scanner

pytestmark = pytest.mark.integration

MESSAGE = (b"From: Ann <ann@example.net>\r\nTo: bob@example.vn\r\nSubject: lunch\r\n"
           b"Message-ID: <%d@example.net>\r\n\r\nSee you at noon at the usual place.\r\n")


@pytest.fixture
def full(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=str(redis_server.socket), socket_timeout=2)
    client.config_set("maxmemory-policy", "noeviction")
    try:
        yield client
    finally:
        client.config_set("maxmemory", "0")
        client.close()


def test_a_full_redis_costs_records_never_mail(full: redis.Redis, tmp_path: object,
                                               caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_from_mapping({"service": {"state_dir": str(tmp_path)}}, source="<test>")
    scanner = build_scanner(cfg, resolver=StaticResolver(), redis_client=full)

    def one(n: int) -> str:
        env = Envelope(client_ip=f"192.0.2.{n}", helo="mx.example.net",
                       mail_from="ann@example.net", rcpts=["bob@example.vn"],
                       queue_id=f"4QF{n}")
        verdict = scanner.scan(MESSAGE % n, env)
        scanner.delivered_many([(verdict, env)])
        scanner.record_history([(verdict, env)])
        return str(verdict.action)

    try:
        assert one(1) == "accept"
        keys = full.dbsize()
        assert keys > 0
        full.config_set("maxmemory", str(int(full.info("memory")["used_memory"])))
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            full.set("probe", "x" * 100_000)
        with caplog.at_level(logging.WARNING):
            assert one(2) == "accept"  # answered as any other message
        assert full.dbsize() == keys  # nothing written, nothing half written
        said = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
        for loss in ("volume not recorded", "delivery_record_failed", "history_write_failed"):
            assert loss in said, said
        assert said.count("maxmemory") >= 3, said  # each says why
        full.config_set("maxmemory", "0")
        assert one(3) == "accept"
        assert full.dbsize() > keys  # recorded again once there is room
    finally:
        scanner.close()


AD = (b"From: Shop <news@shop.example>\r\nTo: a@example.vn\r\nSubject: [QC] Autumn sale\r\n"
      b"List-Unsubscribe: <https://shop.example/u/1>\r\n"
      b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nOur catalogue.\r\n")


def test_a_full_redis_still_stops_an_ad_to_a_recipient_who_refused(full: redis.Redis) -> None:
    """The end-of-message check takes each allowed recipient's place under the cap, a
    write a full Redis refuses. The refusal of another recipient, which is only read,
    must still stop the ad (it was dropped with the failed write, and the ad accepted)."""
    import time

    from spamwarden.consent.policy import ConsentPolicy
    from spamwarden.consent.registry import ConsentRecord, RedisConsentRegistry
    from spamwarden.mail import parse_message
    from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult

    registry = RedisConsentRegistry(full, delimiters="+")
    registry.register_advertiser("shop", name="Shop", domains=["shop.example"])
    registry.add_consents([ConsentRecord("shop", "a@example.vn", "form", time.time() - 60,
                                         "form #1")])
    registry.refuse("b@example.vn", adv="shop", channel="one-click")
    policy = ConsentPolicy(config_from_mapping({}), registry, domain_cache_ttl=0, retry_after=0)
    # DKIM authenticates shop (aligned with From); SPF did not pass: checked here only
    auth = AuthResults(spf=None, dkim=(DkimResult(
        "pass", "shop.example", "s1", "rsa-sha256", "AbCd", "",
        covered_headers=("from", "list-unsubscribe", "list-unsubscribe-post")),),
        dmarc=DmarcResult("pass", "shop.example", "shop.example", "none", "none", True, False))
    env = Envelope(mail_from="bounce@esp.example", rcpts=["a@example.vn", "b@example.vn"],
                   queue_id="4QAD")
    full.config_set("maxmemory", str(int(full.info("memory")["used_memory"])))
    names = {s.name for s in policy.check_message(parse_message(AD), env, auth)}
    assert "AD_REFUSED" in names, names
