"""The delivery ledger on a real Redis (and a three-node Redis Cluster): what the milter
records is what intake finds, every key expires, and store trouble never fails the mail."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from spamwarden.config import config_from_mapping
from spamwarden.errors import StoreError
from spamwarden.mail import parse_message
from spamwarden.redisconn import EmbeddedRedis, async_client, sync_client
from spamwarden.reputation.deliveries import (
    MAX_CANDIDATES,
    Delivery,
    Match,
    RedisDeliveryLedger,
    RedisDeliveryLookup,
    content_key,
    delivery_of,
    message_id_hash,
    message_key,
)
from spamwarden.reputation.reports import delivered_fingerprint, delivered_html_fingerprint
from tests.conftest import DATA
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration

VIEW = parse_message((DATA / "reports" / "original-signed.eml").read_bytes())
FP = delivered_fingerprint(VIEW)
HTML_FP = delivered_html_fingerprint(VIEW)
MID = "<20241103140107.4f2a9c@mail.promo-shop.example>"


def delivery(*rcpts: str) -> Delivery:
    d = delivery_of(VIEW, fingerprint=FP, html_fingerprint=HTML_FP, client_ip="192.0.2.77",
                    mail_from="", rcpts=rcpts, auth=None, at=1_800_000_000.0, queue_id="4XyZ",
                    delimiters="+")
    assert d is not None
    return d


def scenario(url: str) -> None:
    cfg = config_from_mapping({"redis": {"url": url}})
    client = sync_client(cfg)
    client.flushall()
    ledger = RedisDeliveryLedger(client, ttl=600)
    d = delivery("alice@example.vn", "bob@example.vn")
    ledger.record_many([d])
    assert ledger.failed == 0
    keys = [k.decode() for k in client.keys("sw:{sw}:dlv:*")]
    # the record; the plain and HTML content and the Message-ID indexes, per recipient too
    assert HTML_FP and len(keys) == 1 + 3 + 2 * 3
    assert all(0 < client.ttl(k) <= 600 for k in keys)

    async def lookups() -> list[str]:
        aclient = async_client(cfg)
        try:
            lookup = RedisDeliveryLookup(aclient)
            got = [
                await lookup.match("alice@example.vn", fingerprint=FP, message_id=MID),
                await lookup.match("bob@example.vn", fingerprint=FP, message_id=None),
                await lookup.match("bob@example.vn", fingerprint=None, message_id=MID),
                await lookup.match("carol@example.vn", fingerprint=FP, message_id=MID),
                await lookup.match("alice@example.vn", fingerprint="0" * 32, message_id=MID),
                await lookup.match("alice@example.vn", fingerprint="0" * 32, message_id=None),
                # an inline forward read from its HTML
                await lookup.match("bob@example.vn", fingerprint=HTML_FP, message_id=None),
            ]
            assert got[0].delivery == got[6].delivery == d
            return [m.status for m in got]
        finally:
            await aclient.aclose()

    assert asyncio.run(lookups()) == ["matched", "matched", "matched", "not-a-recipient",
                                      "disagree", "no-delivery", "matched"]
    client.close()


def test_ledger_on_redis(redis_url: str) -> None:
    scenario(redis_url)


def test_ledger_on_a_cluster(redis_cluster: LocalCluster) -> None:
    scenario(redis_cluster.url)


def test_store_trouble(redis_server: EmbeddedRedis) -> None:
    cfg = config_from_mapping({"redis": {"url": redis_server.url, "timeout": 0.5}})
    client = sync_client(cfg)
    redis_server.stop()
    ledger = RedisDeliveryLedger(client, ttl=600)
    ledger.record_many([delivery("alice@example.vn")])  # logged and counted, never raised
    assert ledger.failed == 1

    async def lookup() -> None:
        aclient = async_client(cfg)
        try:
            await RedisDeliveryLookup(aclient).match("alice@example.vn", fingerprint=FP,
                                                     message_id=MID)
        finally:
            await aclient.aclose()

    with pytest.raises(StoreError):
        asyncio.run(lookup())
    client.close()
    redis_server.start()


def test_the_newest_deliveries_of_one_text_to_a_recipient_are_kept(redis_url: str) -> None:
    """Each recipient's index holds the ids of the newest MAX_CANDIDATES deliveries of a
    content, oldest first, with the window's TTL; one delivery leaves one id, as the
    indexes held before."""
    cfg = config_from_mapping({"redis": {"url": redis_url}})
    client = sync_client(cfg)
    ledger = RedisDeliveryLedger(client, ttl=600)
    many = [dataclasses.replace(delivery("alice@example.vn"), id=f"d{i}", at=float(i),
                                client_ip=f"192.0.2.{i}") for i in range(MAX_CANDIDATES + 2)]
    ledger.record_many(many[:1])
    key = content_key(FP, "alice@example.vn")
    assert client.get(key) == b"d0"
    ledger.record_many(many[1:])
    ledger.record_many(many[-1:])  # the same delivery again: once, and newest
    assert ledger.failed == 0
    assert client.get(key).decode().split() == [d.id for d in many[2:]]
    assert 0 < client.ttl(key) <= 600
    assert client.get(message_key(message_id_hash(MID), "alice@example.vn")).decode().split() \
        == [d.id for d in many[2:]]

    async def match(who: str) -> Any:
        aclient = async_client(cfg)
        try:
            return await RedisDeliveryLookup(aclient).match(who, fingerprint=FP, message_id=None)
        finally:
            await aclient.aclose()

    found = asyncio.run(match("alice@example.vn"))
    # eight look-alikes from eight addresses: none of the addresses is what all proved
    assert found == Match("matched", found.delivery, candidates=MAX_CANDIDATES)
    assert found.delivery is not None and found.delivery.client_ip is None
    client.close()


def test_a_recipient_with_a_raw_8bit_octet_loses_no_other_delivery(redis_url: str) -> None:
    """Postfix without SMTPUTF8 passes a recipient holding a raw 8-bit octet (a lone
    surrogate here): its index keys could not be written, and the milter's whole batch
    of delivery records, other senders' messages included, was lost."""
    cfg = config_from_mapping({"redis": {"url": redis_url}})
    client = sync_client(cfg)
    ledger = RedisDeliveryLedger(client, ttl=600)
    odd = delivery("b\udcffob@example.vn")
    ledger.record_many([delivery("alice@example.vn"), odd])
    assert ledger.failed == 0
    assert client.get(content_key(FP, "alice@example.vn")) is not None
    assert client.get(content_key(FP, "b?ob@example.vn")) is not None
    client.close()
