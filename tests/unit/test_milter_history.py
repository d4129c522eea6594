"""Every verdict reaches the message history after the reply, refused ones included; only
accepted ones are counted as deliveries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import Milter
import pytest

from spamwarden.milter.app import SpamwardenMilter
from spamwarden.milter.delivery import DeliveryRecorder
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver
from tests.unit.test_milter_app import HAM, RecordingCtx, fake_auth, feed, make_cfg


class FakeHistory:
    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str, list[str]]]] = []

    def record(self, items: Sequence[tuple[Any, Any]]) -> int:
        self.batches.append([(v.action, e.queue_id, list(e.rcpts)) for v, e in items])
        return len(items)


class FakeLedger:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    def record_delivered(self, items: Sequence[tuple[Any, Any]], *,
                         skip_recipients: frozenset[str]) -> int:
        self.delivered += [e.queue_id for _, e in items]
        return len(items)


def _scanner(history: FakeHistory, ledger: FakeLedger, **milter: Any) -> Scanner:
    return Scanner(make_cfg(**milter), resolver=StaticResolver(),
                   authenticate=fake_auth(spf="fail", dmarc="fail", policy="reject",
                                          applied="reject"),
                   history=history, deliveries=ledger, lookup_threads=0)


@pytest.mark.parametrize("background", [True, False])
def test_rejected_and_accepted_messages_are_recorded(monkeypatch: pytest.MonkeyPatch,
                                                     background: bool) -> None:
    history, ledger = FakeHistory(), FakeLedger()
    scanner = _scanner(history, ledger)
    recorder = DeliveryRecorder(scanner) if background else None
    monkeypatch.setattr(Milter, "factory",
                        functools.partial(SpamwardenMilter, scanner, recorder=recorder))
    try:
        rc, _ = feed(RecordingCtx(), HAM, queue_id="QREJ")
        assert rc == Milter.REJECT
        good = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                       history=history, deliveries=ledger, lookup_threads=0)
        monkeypatch.setattr(Milter, "factory",
                            functools.partial(SpamwardenMilter, good, recorder=recorder))
        rc, _ = feed(RecordingCtx(), HAM, queue_id="QOK", rcpts=("a@test.example",
                                                                  "b@test.example"))
        assert rc == Milter.ACCEPT
        if recorder is not None:
            recorder.flush()
    finally:
        if recorder is not None:
            recorder.close()
    recorded = [x for batch in history.batches for x in batch]
    assert recorded == [("reject", "QREJ", ["bob@test.example"]),
                        ("accept", "QOK", ["a@test.example", "b@test.example"])]
    assert ledger.delivered == ["QOK"]  # a refused message was never delivered


def test_a_failing_history_neither_stops_counting_nor_the_thread() -> None:
    from spamwarden.milter.interfaces import Envelope
    from spamwarden.milter.scanner import Verdict

    class Broken(FakeHistory):
        def record(self, items: Sequence[tuple[Any, Any]]) -> int:
            raise RuntimeError("boom")

    ledger = FakeLedger()
    scanner = _scanner(Broken(), ledger)
    recorder = DeliveryRecorder(scanner, batch_window=0)
    view = scanner.parse(HAM)
    try:
        for qid in ("A", "B"):
            recorder.submit(Verdict("accept", 0.0, 5.0, (), "", (), (), view=view),
                            Envelope(client_ip="192.0.2.7", queue_id=qid))
            recorder.flush()
    finally:
        recorder.close()
    assert ledger.delivered == ["A", "B"]


@pytest.mark.parametrize("asked", ["an@ví-dụ.vn", "AN@VÍ-DỤ.VN", "an@xn--v-d-rma6749a.vn.",
                                   "<an@xn--v-d-rma6749a.vn>"])
def test_history_search_finds_a_recipient_however_its_domain_is_written(asked: str) -> None:
    """Postfix logs an SMTPUTF8 recipient as the client wrote it; an operator searching
    the other spelling of the same mailbox (U-label or A-label, case, a trailing dot)
    found nothing."""
    from spamwarden.reputation.history import HistoryFilter

    for stored in ("an@ví-dụ.vn", "an@xn--v-d-rma6749a.vn"):
        entry = {"queue_id": "Q1", "action": "accept", "rcpt": [f"<{stored}>", "bo@example.org"]}
        assert HistoryFilter(rcpt=asked)(entry), (asked, stored)
        assert not HistoryFilter(rcpt="an@vi-du.vn")(entry)
