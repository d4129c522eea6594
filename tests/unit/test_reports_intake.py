"""The intake policy (ComplaintIntake) with a fake store through the ComplaintStore Protocol:
which reply each store outcome and each failure gives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session

from spamwarden.config import config_from_mapping
from spamwarden.errors import StoreError, StoreUnavailable
from spamwarden.mail import parse_message
from spamwarden.reputation.complaints import Complaint
from spamwarden.reputation.deliveries import delivery_of
from spamwarden.reputation.intake import (
    REPLIES,
    ComplaintIntake,
    IntakeRequest,
    StoreOutcome,
    complaint_id,
    may_train,
)
from spamwarden.reputation.reports import delivered_fingerprint, find_originals
from tests.conftest import DATA
from tests.support.ledger import MemoryDeliveryLedger
from tests.support.replies import REPORT_RATE_LIMITED

RAW = (DATA / "reports" / "gmail-attached.eml").read_bytes()


class FakeStore:
    """A ComplaintStore that answers what it is told and records what it got."""

    def __init__(self, outcome: StoreOutcome | Exception = ("added", "1-0")) -> None:
        self.outcome = outcome
        self.added: list[tuple[Complaint, bytes, int]] = []
        self.unmatched = []

    async def add(
        self, complaint: Complaint, *, example: bytes, reporter_limit: int,
        unmatched: bool = False,
        example_limit: int = 1,
    ) -> StoreOutcome:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        self.added.append((complaint, example, reporter_limit))
        self.unmatched.append(unmatched)
        return self.outcome

    unmatched: list[bool]


def delivered_to(*rcpts: str, raw: bytes = RAW) -> MemoryDeliveryLedger:
    """A ledger in which the message reported in ``raw`` was delivered to ``rcpts``."""
    [original] = find_originals(raw, local_domains=["example.vn"])
    view = parse_message(original.message)
    d = delivery_of(view, fingerprint=delivered_fingerprint(view), client_ip="192.0.2.77",
                    mail_from="bounce@mailer.promo-shop.example", rcpts=rcpts, auth=None,
                    at=1_699_999_000.0, delimiters="+")
    assert d is not None
    return MemoryDeliveryLedger([d])


def _intake(store: FakeStore, **intake: Any) -> ComplaintIntake:
    cfg = config_from_mapping({"intake": {"local_domains": ["example.vn"], **intake}})
    return ComplaintIntake(cfg, store, clock=lambda: 1_700_000_000.0,
                           deliveries=delivered_to("alice@example.vn", "a@example.vn"))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_store_outcomes_map_to_replies() -> None:
    store = FakeStore()
    reply = _run(_intake(store).accept_report("spam", "alice@example.vn", RAW))
    [(c, example, limit)] = store.added
    assert reply == REPLIES["accepted"].format(id=c.id)
    # one complaint per reporter and matched delivery, whatever copy was sent
    assert c.delivery
    assert c.id == complaint_id("spam", "alice@example.vn", f"delivery:{c.delivery}")
    assert (c.received_at, limit) == (1_700_000_000.0, 200)
    assert example.startswith(b"Return-Path: <bounce-8812@mailer.promo-shop.example>")
    dup = _run(_intake(FakeStore(("duplicate", "1-0"))).accept_report("spam", "alice@example.vn",
                                                                      RAW))
    assert dup == REPLIES["duplicate"].format(id=c.id)
    limited = _run(_intake(FakeStore(("rate_limited", ""))).accept_report("spam", "a@example.vn",
                                                                          RAW))
    assert limited.startswith(REPORT_RATE_LIMITED.line + " ")


@pytest.mark.parametrize("error", [StoreUnavailable("down"), StoreError("NOSCRIPT")])
def test_store_trouble_is_451(error: Exception) -> None:
    reply = _run(_intake(FakeStore(error)).accept_report("spam", "alice@example.vn", RAW))
    assert reply == REPLIES["store_failed"]


def test_example_is_bounded() -> None:
    store = FakeStore()
    _run(_intake(store, max_example_bytes=100).accept_report("ham", "alice@example.vn", RAW))
    [(c, example, _)] = store.added
    assert c.kind == "ham" and len(example) == 100


def test_unidentified_reporter_gives_no_training_example() -> None:
    store = FakeStore()
    unauthenticated = RAW.replace(b"\t(Authenticated sender: alice@example.vn)\r\n", b"").replace(
        b"with ESMTPSA", b"with ESMTPS")
    assert unauthenticated != RAW
    reply = _run(_intake(store, require_auth=False).accept_report("ham", "Alice+x@example.vn",
                                                                  unauthenticated))
    [(c, example, _)] = store.added
    assert reply == REPLIES["accepted"].format(id=c.id)
    assert (c.reporter, example) == ("alice@example.vn", b"")
    assert _run(_intake(FakeStore()).accept_report("ham", "alice@example.vn",
                                                   unauthenticated)) == REPLIES["auth_required"]


def test_may_train() -> None:
    assert may_train(authenticated=True)
    assert may_train(authenticated=True, matched_delivery=True)
    assert not may_train(authenticated=True, matched_delivery=False)
    assert not may_train(authenticated=False)
    assert not may_train(authenticated=False, matched_delivery=True)


def test_routes() -> None:
    intake = _intake(FakeStore(), report_address="abuse@reports.example.vn")
    assert intake.kind_of("<Abuse@Reports.Example.VN>") == "spam"
    assert intake.kind_of("report@example.vn") is None
    assert intake.kind_of("ham@example.vn") == "ham"
    assert intake.reporter_is_local("Bob@Example.VN")
    assert not intake.reporter_is_local("bob@mail.example.vn")
    assert not intake.reporter_is_local("")


def test_one_smtp_reply_for_several_recipients_prefers_temporary_failure() -> None:
    store = FakeStore()

    async def broken_hook(request: IntakeRequest) -> str:
        raise RuntimeError("consent store exploded")

    cfg = config_from_mapping({"intake": {"local_domains": ["example.vn"]}})
    intake = ComplaintIntake(cfg, store, hooks={"optout": broken_hook},
                             deliveries=delivered_to("alice@example.vn"))
    env = Envelope()
    env.mail_from = "alice@example.vn"
    env.rcpt_tos = ["report@example.vn", "optout@example.vn"]
    env.original_content = RAW
    reply = _run(intake.handle_DATA(object(), Session(loop=None), env))  # type: ignore[arg-type]
    assert reply == REPLIES["internal"]  # the MTA retries; the report is deduplicated then
    assert len(store.added) == 1


def _original() -> bytes:
    [original] = find_originals(RAW, local_domains=["example.vn"])
    return original.message


def test_learn_is_the_report_of_the_same_message_by_the_same_user() -> None:
    """A mailbox move and a report@ forward of one message by one user are one complaint
    (same id, so either after the other is a duplicate), both matched and learned."""
    reported, learned = FakeStore(), FakeStore()
    _run(_intake(reported).accept_report("spam", "alice@example.vn", RAW))
    out = _run(_intake(learned).learn("spam", "Alice+junk@example.vn",
                                      b"From alice Mon Nov  4 00:00:00 2024\n" + _original()))
    [(r, r_example, _)], [(c, example, _)] = reported.added, learned.added
    assert (out.status, out.complaint_id, out.match) == ("added", r.id, "matched")
    assert out.reporter == c.reporter == "alice@example.vn" and c.reporter_verified
    assert c.source == "bare" and learned.unmatched == [False]
    assert (c.fingerprint, c.indicators) == (r.fingerprint, r.indicators)
    assert example == r_example == _original()  # the mbox From_ line is not part of it


def test_learn_rules() -> None:
    store = FakeStore()
    out = _run(_intake(store).learn("spam", "bob@example.vn", _original()))
    assert (out.status, out.match, store.unmatched) == ("unmatched", "not-a-recipient", [True])
    assert store.added[0][1] == b""  # never delivered to bob: no training example
    for user in ("", "bob@elsewhere.example", "bob"):
        assert _run(_intake(store).learn("ham", user, _original())).status == "refused"
    assert _run(_intake(store).learn("ham", "bob@example.vn", b"no header here")).status \
        == "unusable"
    big = _run(_intake(store, max_message_bytes=1000).learn("ham", "bob@example.vn", _original()))
    assert big.status == "unusable" and "max_message_bytes" in big.message
    assert len(store.added) == 1
    down = _run(_intake(FakeStore(StoreUnavailable("down"))).learn("ham", "bob@example.vn",
                                                                   _original()))
    assert down.status == "store_failed" and not down.stored
    limited = _run(_intake(FakeStore(("rate_limited", ""))).learn("ham", "bob@example.vn",
                                                                  _original()))
    assert limited.status == "rate_limited"


@pytest.mark.parametrize("configured", ["ví-dụ.vn", "xn--v-d-rma6749a.vn", "VÍ-DỤ.VN."])
@pytest.mark.parametrize("written", ["ví-dụ.vn", "xn--v-d-rma6749a.vn", "VÍ-DỤ.VN",
                                     "XN--V-D-RMA6749A.VN."])
def test_an_internationalized_local_domain_is_one_domain_however_written(
        configured: str, written: str) -> None:
    """A Vietnamese site's domain in intake.local_domains, and its users' reports sent
    under it: an SMTPUTF8 client writes the U-label, another the A-label, either in any
    case. Each is this site's domain (the report address routes, the reporter is
    local), as the ledger and the consent API already take it."""
    cfg = config_from_mapping({"intake": {"local_domains": [configured]}})
    intake = ComplaintIntake(cfg, FakeStore(), clock=lambda: 1_700_000_000.0)
    assert intake.kind_of(f"<report@{written}>") == "spam"
    assert intake.kind_of(f"Ham@{written}") == "ham"
    assert intake.reporter_is_local(f"an@{written}")
    assert not intake.reporter_is_local(f"an@mail.{written}")
    # `spamwarden learn --user`: refused as "not at intake.local_domains" when the
    # domain was configured as a U-label, however the user was written
    learned = _run(intake.learn("ham", f"an@{written}", RAW))
    assert learned.status != "refused" and learned.reporter == "an@xn--v-d-rma6749a.vn"
