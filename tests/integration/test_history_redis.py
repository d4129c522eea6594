"""The message history on a real Redis: one batch in one pipeline, capped and aged out,
subjects off for privacy, newest-first queries with filters, store trouble never raised."""

from __future__ import annotations

import json

import pytest
import redis

from spamwarden.errors import StoreError
from spamwarden.mail import parse_message
from spamwarden.milter.interfaces import Envelope, Symbol
from spamwarden.milter.scanner import Verdict
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.history import (
    HISTORY_KEY,
    HistoryFilter,
    HistoryRecorder,
    read_history,
)

pytestmark = pytest.mark.integration

RAW = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: secret plans\r\n"
       b"Message-ID: <m1@example.org>\r\n\r\nhello\r\n")


def verdict(action: str = "accept", score: float = 1.5) -> Verdict:
    return Verdict(action, score, 5.0, (Symbol("BAYES_50", 1.5, "<script>x</script>"),),  # type: ignore[arg-type]
                   "why", (), (), view=parse_message(RAW))


def env(qid: str, *rcpts: str) -> Envelope:
    return Envelope(client_ip="192.0.2.7", helo="mx.example.org", mail_from="alice@example.org",
                    rcpts=list(rcpts or ["bob@example.net"]), queue_id=qid)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_batches_capped_aged_and_queried(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = Clock(1_800_000_000.0)  # the entries' time; ages are cut on Redis' clock
    rec = HistoryRecorder(client, max_entries=100_000, ttl=3600, clock=clock)
    items = [(verdict(), env(f"Q{i}")) for i in range(5)]
    items.append((verdict("reject", 12.0), env("QR", "Carol@Example.net", *[f"r{i}@x.test" for i in range(60)])))
    assert rec.record(items) == 6
    assert client.xlen(HISTORY_KEY) == 6
    assert 0 < client.ttl(HISTORY_KEY) <= 3600
    rows = read_history(client, limit=10)
    assert [r["queue_id"] for r in rows] == ["QR", "Q4", "Q3", "Q2", "Q1", "Q0"]
    r = rows[0]
    assert r["action"] == "reject" and r["score"] == 12.0 and r["rcpt_count"] == 61
    assert len(r["rcpt"]) == 50 and r["subject"] == "secret plans"
    assert r["header_from"] == "alice@example.org" and r["message_id"]
    assert r["symbols"] == [{"name": "BAYES_50", "points": 1.5, "detail": "<script>x</script>"}]
    assert [x["queue_id"] for x in read_history(client, want=HistoryFilter(queue_id="Q3"))] == ["Q3"]
    assert [x["queue_id"] for x in read_history(client, want=HistoryFilter(rcpt="carol@example.NET"))] == ["QR"]
    assert [x["queue_id"] for x in read_history(client, want=HistoryFilter(action="accept"),
                                                limit=2)] == ["Q4", "Q3"]
    assert read_history(client, want=HistoryFilter(queue_id="nope")) == []
    # the stream pages newest first beyond one page, and a scan bound stops a filter early
    rec.record([(verdict(), env(f"P{i}")) for i in range(2100)])
    assert read_history(client, want=HistoryFilter(queue_id="Q0"))[0]["queue_id"] == "Q0"
    assert read_history(client, want=HistoryFilter(queue_id="Q0"), max_scan=1000) == []


def test_cap_and_age(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    rec = HistoryRecorder(client, max_entries=10, ttl=60)
    for i in range(30):
        rec.record([(verdict(), env(f"C{i}")) for _ in range(10)])
    assert client.xlen(HISTORY_KEY) < 300  # MAXLEN ~ trims whole macro nodes: about the cap
    client.delete(HISTORY_KEY)
    # an entry written (by Redis' clock) longer than history.ttl ago goes with the next batch
    client.xadd(HISTORY_KEY, {"v": json.dumps({"queue_id": "OLD", "action": "accept"})},
                id="1000-0")
    rec.record([(verdict(), env("NEW"))])
    assert [r["queue_id"] for r in read_history(client, limit=1000)] == ["NEW"]


def test_subjects_off_for_privacy(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    HistoryRecorder(client, max_entries=100, ttl=60, subjects=False).record([(verdict(), env("S"))])
    [raw] = client.xrange(HISTORY_KEY)
    entry = json.loads(raw[1][b"v"])
    assert "subject" not in entry and b"secret plans" not in raw[1][b"v"]


def test_store_trouble_loses_history_never_raises(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.5)
    rec = HistoryRecorder(client, max_entries=100, ttl=60)
    redis_server.stop()
    assert rec.record([(verdict(), env("X"))]) == 0
    with pytest.raises(StoreError):
        read_history(client)


def test_history_command_prints_one_line_per_message(redis_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from spamwarden.config import config_from_mapping
    from spamwarden.reputation.commands import cmd_history

    client = redis.Redis.from_url(redis_url)
    HistoryRecorder(client, max_entries=100, ttl=60).record(
        [(verdict("reject", 9.0), env("QTEXT", *[f"r{i}@x.test" for i in range(52)]))])
    cfg = config_from_mapping({"redis": {"url": redis_url}})
    args = argparse.Namespace(queue_id="QTEXT", rcpt=None, action=None, limit=5, json=False)
    assert cmd_history(args, cfg) == 0
    out = capsys.readouterr().out
    assert "QTEXT" in out and "reject" in out and "BAYES_50(1.5)" in out
    assert ",+2" in out and 'subject="secret plans"' in out
    args.queue_id = "NONE"
    assert cmd_history(args, cfg) == 1
