"""The ledger check: accepted messages go to the delivery ledger after the reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

HAM = b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\nSubject: hi\r\n\r\nhello\r\n"


class Ledger:
    def __init__(self) -> None:
        self.calls: list[tuple[list[tuple[Any, Envelope]], frozenset[str]]] = []

    def record_delivered(self, items: Sequence[tuple[Any, Envelope]], *,
                         skip_recipients: frozenset[str]) -> int:
        self.calls.append((list(items), skip_recipients))
        return len(items)


def test_each_batch_is_recorded_once_without_unscored_mail_and_intake_addresses() -> None:
    cfg = config_from_mapping({"milter": {"authserv_id": "mx.test.example"},
                               "intake": {"local_domains": ["test.example"]}}, source="<t>")
    ledger = Ledger()
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=None, lookup_threads=0,
                      deliveries=ledger)
    env = Envelope(client_ip="192.0.2.7", mail_from="alice@example.org",
                   rcpts=["bob@test.example"])
    scanned = scanner.scan(HAM, env)
    unscored = scanner.not_scored(env, [], "message larger than 1 bytes")
    scanner.delivered_many([(scanned, env), (unscored, env), (scanned, env)])
    assert len(ledger.calls) == 1
    items, skip = ledger.calls[0]
    assert [v for v, _ in items] == [scanned, scanned]
    assert skip == cfg.intake.addresses() and "report@test.example" in skip
    scanner.delivered_many([(unscored, env)])
    assert len(ledger.calls) == 1  # nothing accepted and scored: no round trip
    scanner.close()


def test_without_a_ledger_nothing_is_recorded() -> None:
    cfg = config_from_mapping({}, source="<t>")
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=None, lookup_threads=0)
    assert "ledger" not in [d.name for d, _ in scanner.checks]
    scanner.close()
