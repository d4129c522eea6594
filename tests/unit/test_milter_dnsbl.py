"""The third-party DNSBL clients' pure parts (spamwarden/milter/dnsbl.py) and the
``[[rbl.external]]`` settings."""

from __future__ import annotations

import logging
import types

import pytest
from prometheus_client import REGISTRY

from spamwarden.config import ExternalList, config_from_mapping
from spamwarden.errors import ConfigError
from spamwarden.milter.dnsbl import (
    ExternalDnsbl,
    UnscoredAnswers,
    query_name,
    score_answer,
)
from spamwarden.resolver import DnsAnswer, StaticResolver

CODES = types.MappingProxyType({"127.0.0.2": 4.0, "127.0.0.4": 3.0, "127.0.1.0/24": 1.0})


@pytest.mark.parametrize(("records", "status", "points", "unscored"), [
    (("127.0.0.4",), "listed", 3.0, ()),
    (("127.0.0.4", "127.0.0.2"), "listed", 4.0, ()),           # the highest wins
    (("127.0.1.77",), "listed", 1.0, ()),                      # a network key
    (("127.0.0.9",), "not_listed", 0.0, ("127.0.0.9",)),       # not configured
    (("127.0.0.2", "127.0.0.9"), "listed", 4.0, ("127.0.0.9",)),
    (("192.0.2.80",), "not_listed", 0.0, ("192.0.2.80",)),     # a resolver's wildcard
    (("127.255.255.254",), "failed", 0.0, ("127.255.255.254",)),
    (("127.0.0.2", "127.255.255.255"), "failed", 0.0, ("127.0.0.2", "127.255.255.255")),
])
def test_score_answer(records: tuple[str, ...], status: str, points: float,
                      unscored: tuple[str, ...]) -> None:
    outcome, left = score_answer(DnsAnswer("ok", records), CODES)
    assert (outcome.status, outcome.points, left) == (status, points, unscored)


def test_no_answer_and_failure_are_different_outcomes() -> None:
    assert score_answer(DnsAnswer("nxdomain"), CODES)[0].status == "not_listed"
    assert score_answer(DnsAnswer("nodata"), CODES)[0].status == "not_listed"
    failed = score_answer(DnsAnswer("error", reason="timeout after 2s"), CODES)[0]
    assert failed.status == "failed" and failed.reason == "timeout after 2s"


def test_query_names() -> None:
    assert query_name("ip", "192.0.2.7", "zen.example.") == "7.2.0.192.zen.example"
    assert query_name("ip", "2001:db8::1", "zen.example") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example")
    assert query_name("ip", "10.1.2.3", "zen.example") is None       # internal
    assert query_name("ip", "127.0.0.1", "zen.example") is None
    assert query_name("ip", "not-an-ip", "zen.example") is None
    assert query_name("url", "Shop.Example.", "dbl.example") == "shop.example.dbl.example"
    assert query_name("sender", "localhost", "dbl.example") is None
    entry = ExternalList("X", "zen.dq.example", "ip", CODES, "k3y0123456789")
    client = ExternalDnsbl(StaticResolver(), entry, timeout=1.0)
    assert client.name_for("192.0.2.7") == "7.2.0.192.k3y0123456789.zen.dq.example"


def test_unscored_answers_are_logged_once_a_minute_per_zone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    recorder = UnscoredAnswers(clock=lambda: now[0])
    zone = "once-a-minute.example"
    with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
        for _ in range(5):
            recorder.record(zone, ["127.255.255.254"])
        now[0] += 61
        recorder.record(zone, ["127.255.255.254"])
        recorder.record("other.example", ["127.0.0.9"])
    lines = [(r.getMessage(), r.fields["zone"]) for r in caplog.records  # type: ignore[attr-defined]
             if r.getMessage().startswith("dnsbl_")]
    assert lines == [("dnsbl_refused", zone), ("dnsbl_refused", zone),
                     ("dnsbl_unscored_answer", "other.example")]
    assert REGISTRY.get_sample_value("spamwarden_dnsbl_unscored_answers_total",
                                     {"zone": zone, "code": "127.255.255.254"}) == 6


def test_code_labels_are_bounded_per_zone() -> None:
    recorder = UnscoredAnswers()
    zone = "many-codes.example"
    for i in range(40):
        recorder.record(zone, [f"127.0.2.{i}"])
    recorder.record(zone, ["198.51.100.1"])
    other = REGISTRY.get_sample_value("spamwarden_dnsbl_unscored_answers_total",
                                      {"zone": zone, "code": "other"})
    assert other == 40 - 32 + 1  # 32 codes get labels of their own, the rest are "other"


ENTRY = {"name": "SPAMHAUS_ZEN", "zone": "zen.spamhaus.org", "codes": {"127.0.0.2": 4}}


@pytest.mark.parametrize(("change", "needle"), [
    ({"name": "spamhaus-zen"}, "a name of A-Z 0-9 _"),
    ({"zone": "zen spamhaus"}, "a DNS zone in entry 1 (SPAMHAUS_ZEN)"),
    ({"kind": "asn"}, 'kind = "ip", "sender" or "url"'),
    ({"codes": {}}, "codes = "),
    ({"codes": {"127.255.255.254": 1}}, "outside 127.255.255.0/24"),
    ({"codes": {"10.0.0.2": 1}}, "127.0.0.0/8 addresses"),
    ({"codes": {"127.0.0.2": "high"}}, "a number of points for code 127.0.0.2"),
    ({"dqs_key": "a b"}, "a DQS key"),
    ({"weight": 1}, "only the keys"),
])
def test_bad_external_entries_are_refused(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"rbl": {"external": [{**ENTRY, **change}]}})
    assert "rbl.external" in str(exc.value) and needle in str(exc.value)


def test_names_are_unique_and_failure_symbols_reserved() -> None:
    with pytest.raises(ConfigError, match="names used once each"):
        config_from_mapping({"rbl": {"external": [ENTRY, ENTRY]}})
    with pytest.raises(ConfigError, match="another entry's failure symbol"):
        config_from_mapping({"rbl": {"external": [
            ENTRY, {**ENTRY, "name": "SPAMHAUS_ZEN_LOOKUP_FAILED"}]}})


def test_ip_lists_are_asked_at_mail_from_and_domain_lists_at_end_of_message() -> None:
    from spamwarden.milter.interfaces import Envelope
    from spamwarden.milter.scanner import Scanner

    cfg = config_from_mapping({"dns": {"timeout": 0.5}, "rbl": {"external": [
        {"name": "ZEN_X", "zone": "zen.example", "codes": {"127.0.0.2": 4.0}},
        {"name": "DBL_X", "zone": "dbl.example", "kind": "sender",
         "codes": {"127.0.1.2": 3.0}},
    ]}})
    resolver = StaticResolver({("7.2.0.192.zen.example", "A"): ["127.0.0.2"],
                               ("shop.example.dbl.example", "A"): ["127.0.1.2"]})
    scanner = Scanner(cfg, resolver=resolver, authenticate=None)
    env = Envelope(client_ip="192.0.2.7", helo="h.example", mail_from="a@mail.shop.example",
                   rcpts=["b@test.example"])
    early = scanner.start_envelope_checks(env)
    assert early is not None and early.jobs.get("dnsbl") is not None
    jobs = early.jobs["dnsbl"].result()
    for job in jobs.values():
        job.result(timeout=5)
    assert ("7.2.0.192.zen.example", "A") in resolver.queries
    assert not any(q[0].endswith("dbl.example") for q in resolver.queries)
    verdict = scanner.scan(b"From: a@shop.example\nSubject: x\n\nhi\n", env, early=early)
    points = {s.name: s.points for s in verdict.symbols}
    assert points["ZEN_X"] == 4.0 and points["DBL_X"] == 3.0
    assert resolver.queries.count(("7.2.0.192.zen.example", "A")) == 1  # not asked twice
    scanner.close()


def test_a_failure_reason_never_shows_the_dqs_key() -> None:
    class Failing:
        def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
            return DnsAnswer("error", reason=f"no server answered: {name} IN A: REFUSED")

    entry = ExternalList("X", "zen.dq.example", "ip", CODES, "s3cr3tkey0123456")
    outcome = ExternalDnsbl(Failing(), entry, timeout=1.0).lookup("192.0.2.7")
    assert outcome.status == "failed"
    assert "s3cr3tkey" not in outcome.reason and "<dqs_key>.zen.dq.example" in outcome.reason
