"""The pymilter adapter driven by Milter.testctx.TestCtx (no MTA), DNS from a StaticResolver."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import Milter
import milter as libmilter
import Milter.test
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from Milter import testctx

from spamwarden.config import Config, config_from_mapping
from spamwarden.logs import event
from spamwarden.mail import MAX_LATE_FROM, MessageView, parse_message
from spamwarden.milter.app import SpamwardenMilter, libmilter_socket
from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult, SpfResult, authenticate
from spamwarden.milter.inflight import FREE_BELOW, ScanBudget
from spamwarden.milter.interfaces import MAX_RCPTS, Envelope, RcptDecision, Symbol
from spamwarden.milter.scanner import Scanner
from spamwarden.reputation.lookup import ListingOutcome
from spamwarden.resolver import StaticResolver
from tests.support.messages import status_tests
from tests.support.replies import (
    CONSENT_REFUSED,
    CONSENT_UNAVAILABLE,
    MILTER_BUSY,
    MILTER_ERROR_REJECT,
    MILTER_ERROR_TEMPFAIL,
    MILTER_REJECT,
)

AUTHSERV = "mx.test.example"

HAM = (
    b"Received: from mail.example.org (mail.example.org [192.0.2.7])\n"
    b"\tby mx.test.example (Postfix) with ESMTP id 4ABC\n"
    b"From: Alice <alice@example.org>\n"
    b"To: bob@test.example\n"
    b"Subject: lunch\n"
    b"Message-ID: <1@example.org>\n"
    b"X-Spam-Status: No, score=-100.0 required=5.0 tests=FORGED\n"
    b"X-Spam-Flag: NO\n"
    b"Authentication-Results: other.example; spf=pass smtp.mailfrom=example.org\n"
    b"Authentication-Results: MX.test.example; dkim=pass header.d=example.org\n"
    b"\n"
    b"See you at noon at https://www.shop.example.net/menu today.\n"
)


class RecordingCtx(testctx.TestCtx):
    """TestCtx that records header edits in order and accepts quarantine (Postfix hold)."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, str, int]] = []
        self.changed: list[tuple[str, int, str]] = []
        self.quarantined: str | None = None

    def addheader(self, field: str, value: str, idx: int) -> None:
        self.added.append((field, value, idx))
        super().addheader(field, value, idx)

    def chgheader(self, field: str, idx: int, value: str) -> None:
        self.changed.append((field, idx, value))
        super().chgheader(field, idx, value)

    def quarantine(self, reason: str) -> None:
        self.quarantined = reason

    def header_value(self, name: str) -> str | None:
        for field, value, _ in self.added:
            if field.lower() == name.lower():
                return value
        return None


def feed(
    ctx: RecordingCtx,
    raw: bytes,
    *,
    sender: str = "alice@example.org",
    rcpts: Sequence[str] = ("bob@test.example",),
    ip: str = "192.0.2.7",
    helo: str = "mail.example.org",
    queue_id: str = "4QUEUEID",
) -> tuple[int, list[int]]:
    """Drive one connection like Postfix does: a refused recipient does not end the
    transaction. Returns (end-of-message reply code, RCPT reply codes)."""
    import io

    import mime

    ctx._setsymval("i", queue_id)
    rc = ctx._connect(host=helo, helo=helo, ip=ip)
    assert rc == Milter.CONTINUE
    msg = mime.message_from_file(io.BytesIO(raw))
    ctx._msg = msg
    ctx._body = None
    assert ctx._envfrom(f"<{sender}>") == Milter.CONTINUE
    rcpt_codes = [ctx._envrcpt(f"<{r}>") for r in rcpts]
    if all(c != Milter.CONTINUE for c in rcpt_codes):
        return rcpt_codes[-1], rcpt_codes
    for name, value in msg.items():
        assert ctx._header(name, value) == Milter.CONTINUE
    body = msg.as_bytes().split(b"\n\n", 1)[1]
    assert ctx._feed_body(io.BytesIO(body)) == Milter.CONTINUE
    return ctx._eom(), rcpt_codes


def make_cfg(**milter: Any) -> Config:
    return config_from_mapping(
        {
            "milter": {"authserv_id": AUTHSERV, "lookup_url": "https://bl.example.net/lookup/",
                       **milter},
            "dns": {"timeout": 0.5},
        },
        source="<test>",
    )


def fake_auth(
    *, spf: str = "pass", dkim: Sequence[str] = (), dmarc: str = "pass", policy: str = "none",
    applied: str = "none",
) -> Any:
    def authenticate_fake(raw: bytes, view: MessageView, resolver: Any, **kw: Any) -> AuthResults:
        return AuthResults(
            spf=SpfResult(spf, "mailfrom", "example.org", kw["mail_from"]),
            dkim=tuple(
                DkimResult(r, "example.org", "sel", "rsa-sha256", "AbCd/+12") for r in dkim
            ),
            dmarc=DmarcResult(dmarc, "example.org", "example.org", policy, applied,
                              spf == "pass", "pass" in dkim),
        )

    return authenticate_fake


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set Milter.factory for one test (never leaks to the next)."""

    def use(scanner: Scanner) -> RecordingCtx:
        monkeypatch.setattr(Milter, "factory", functools.partial(SpamwardenMilter, scanner))
        return RecordingCtx()

    yield use


def test_ham_gets_headers_and_forged_ones_removed(install: Any) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(dkim=["pass"]))
    ctx = install(scanner)
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.ACCEPT
    # forged: both X-Spam-* and only the A-R claiming our authserv-id (case-insensitive)
    assert sorted(ctx.changed) == [
        ("Authentication-Results", 2, ""),
        ("X-Spam-Flag", 1, ""),
        ("X-Spam-Status", 1, ""),
    ]
    ar = ctx.added[0]
    assert ar[0] == "Authentication-Results" and ar[2] == 0
    assert ar[1] == (
        f"{AUTHSERV};\n\tspf=pass smtp.mailfrom=alice@example.org smtp.helo=mail.example.org;"
        "\n\tdkim=pass header.d=example.org header.s=sel header.a=rsa-sha256"
        ' header.b="AbCd/+12";'
        "\n\tdmarc=pass (p=none) header.from=example.org"
    )
    assert ctx.header_value("X-Spam-Status") == (
        "No, score=-0.7 required=5.0 tests=DKIM_VALID,DMARC_PASS,\n"
        "\tSPF_PASS autolearn=no version=spamwarden-0.1.0"
    )
    assert ctx.header_value("X-Spam-Flag") is None
    assert ctx.header_value("X-Spam-Score") == "-0.7"
    unavailable = ctx.header_value("X-Spam-Unavailable") or ""
    assert "classifier" in unavailable and "listings" in unavailable
    assert ctx.quarantined is None


def test_real_auth_through_static_resolver_rejects_forged_p_reject(install: Any) -> None:
    zone = StaticResolver({
        ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.7 -all"],
        ("_dmarc.example.org", "TXT"): [b"v=DMARC1; p=reject"],
    })
    scanner = Scanner(make_cfg(), resolver=zone, authenticate=authenticate)
    ctx = install(scanner)
    rc, _ = feed(ctx, HAM, ip="192.0.2.7")
    assert rc == Milter.ACCEPT
    assert "spf=pass" in ctx.added[0][1] and "dmarc=pass" in ctx.added[0][1]

    ctx = install(scanner)
    rc, _ = feed(ctx, HAM, ip="203.0.113.9", helo="forger.example.com")
    assert rc == Milter.REJECT
    code, xcode, text = ctx._reply
    assert (code, xcode) == MILTER_REJECT.milter
    assert "DMARC policy of example.org is reject" in text
    assert "DMARC_REJECT" in text
    assert text.endswith("see https://bl.example.net/lookup/")
    assert ctx.added == []  # nothing added to a refused message


def test_score_over_quarantine_threshold_holds(install: Any) -> None:
    cfg = config_from_mapping({
        "milter": {"authserv_id": AUTHSERV},
        "policy": {"symbols": {"SPF_SOFTFAIL": 11.0}},
    })
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=fake_auth(spf="softfail", dmarc="none"))
    ctx = install(scanner)
    rc, _ = feed(ctx, HAM)
    assert rc == Milter.ACCEPT
    assert ctx.quarantined is not None and "SPF_SOFTFAIL" in ctx.quarantined
    assert ctx.header_value("X-Spam-Flag") == "YES"
    assert (ctx.header_value("X-Spam-Status") or "").startswith("Yes, score=11.0 required=5.0")
    assert ctx.header_value("X-Spam-Level") == "*" * 11


def test_quarantine_as_tag_only(install: Any) -> None:
    cfg = config_from_mapping({
        "milter": {"authserv_id": AUTHSERV, "quarantine": "tag"},
        "policy": {"symbols": {"SPF_SOFTFAIL": 11.0}},
    })
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=fake_auth(spf="softfail", dmarc="none"))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    assert ctx.quarantined is None
    assert ctx.header_value("X-Spam-Flag") == "YES"


def test_spf_fail_rejects_only_when_configured(install: Any) -> None:
    for reject, expected in ((False, Milter.ACCEPT), (True, Milter.REJECT)):
        scanner = Scanner(make_cfg(reject_spf_fail=reject), resolver=StaticResolver(),
                          authenticate=fake_auth(spf="fail", dmarc="none"))
        ctx = install(scanner)
        assert feed(ctx, HAM)[0] == expected
        if reject:
            assert ctx._reply[:2] == MILTER_REJECT.milter and "SPF_FAIL" in ctx._reply[2]


def test_exception_in_scan_tempfails_and_logs_queue_id(
    install: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=broken)
    ctx = install(scanner)
    with caplog.at_level(logging.ERROR, logger="spamwarden.milter"):
        rc, _ = feed(ctx, HAM, queue_id="4XQID")
    assert rc == Milter.TEMPFAIL
    assert ctx._reply[:2] == MILTER_ERROR_TEMPFAIL.milter
    lines = [r for r in caplog.records if r.getMessage() == "milter_error"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["queue_id"] == "4XQID" and fields["stage"] == "eom"
    assert "boom" in fields["error"]


@pytest.mark.parametrize(("on_error", "expected"), [
    ("accept", Milter.ACCEPT), ("reject", Milter.REJECT), ("tempfail", Milter.TEMPFAIL),
])
def test_exception_in_noreply_callback_answers_at_end_of_message(
    install: Any, monkeypatch: pytest.MonkeyPatch, on_error: str, expected: int
) -> None:
    from spamwarden.milter import app as app_module

    scanner = Scanner(make_cfg(on_error=on_error), resolver=StaticResolver(),
                      authenticate=fake_auth())
    scanned: list[int] = []
    monkeypatch.setattr(scanner, "scan", lambda *a, **k: scanned.append(1))

    def body(self: Any, chunk: bytes) -> int:
        raise OSError("disk full")

    # The body callback's reply is not awaited: the error must surface at end of message.
    monkeypatch.setattr(
        SpamwardenMilter, "body", Milter.noreply(app_module._guarded(deferred=True)(body))
    )
    ctx = install(scanner)
    rc, _ = feed(ctx, HAM)
    assert rc == expected
    assert scanned == []  # nothing scored after an internal error
    if on_error == "tempfail":
        assert ctx._reply[:2] == MILTER_ERROR_TEMPFAIL.milter
    if on_error == "reject":
        assert ctx._reply[:2] == MILTER_ERROR_REJECT.milter


def test_oversize_accepted_with_note_not_scored(install: Any) -> None:
    calls: list[int] = []

    def counting(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return fake_auth()(*a, **kw)

    scanner = Scanner(make_cfg(max_message_bytes=2000), resolver=StaticResolver(),
                      authenticate=counting)
    ctx = install(scanner)
    big = HAM + b"x" * 80 + b"\n" + (b"y" * 76 + b"\n") * 60
    rc, _ = feed(ctx, big)
    assert rc == Milter.ACCEPT
    assert calls == []
    assert ctx.header_value("X-Spam-Note") == "not scored: message larger than 2000 bytes"
    assert ctx.header_value("X-Spam-Status") is None
    assert ctx.header_value("Authentication-Results") is None
    # forged headers still go
    assert ("X-Spam-Flag", 1, "") in ctx.changed


def test_header_section_over_limit_is_scored_without_the_rest(
        install: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Padding the header section must not buy an unscored message: the fields past
    max_header_bytes are dropped and the message is scored on the rest, body included."""
    scanner = Scanner(make_cfg(max_header_bytes=300), resolver=StaticResolver(),
                      authenticate=fake_auth(), classifier=FixedClassifier(0.9995))
    ctx = install(scanner)
    raw = (b"From: a@example.org\nSubject: x\n" + b"X-Filler: " + b"z" * 400 + b"\n"
           + b"X-Spam-Flag: NO\n\nbody\n")
    with caplog.at_level(logging.INFO, logger="spamwarden.milter"):
        assert feed(ctx, raw)[0] == Milter.ACCEPT
    status = ctx.header_value("X-Spam-Status") or ""
    assert status.startswith("Yes, ") and "BAYES_999" in status
    assert ctx.header_value("X-Spam-Note") == (
        "header section larger than 300 bytes: scored on the fields before that")
    assert ("X-Spam-Flag", 1, "") in ctx.changed  # a forged field past the limit still goes
    verdicts = [r.fields for r in caplog.records  # type: ignore[attr-defined]
                if r.getMessage() == "verdict"]
    assert verdicts[-1]["headers_cut"] is True and verdicts[-1]["scored"] is True


def test_a_from_field_past_the_header_limit_is_still_scored(install: Any) -> None:
    """Padding before the From field hid it from DMARC: the fields past max_header_bytes
    were dropped, From with them, and a forged p=reject From went through. From fields
    are kept (mail.MAX_LATE_FROM of them), whatever comes before."""
    scanner = Scanner(make_cfg(max_header_bytes=300), resolver=StaticResolver(),
                      authenticate=fake_auth())
    seen: list[bytes] = []
    real = scanner.scan

    def scan(raw: bytes, *a: Any, **kw: Any) -> Any:
        seen.append(raw)
        return real(raw, *a, **kw)

    scanner.scan = scan  # type: ignore[method-assign]
    ctx = install(scanner)
    froms = b"".join(b"From: CEO <ceo%d@bank.example>\n" % i for i in range(MAX_LATE_FROM + 5))
    raw = b"Subject: x\nX-Filler: " + b"z" * 400 + b"\n" + froms + b"\nbody\n"
    assert feed(ctx, raw)[0] == Milter.ACCEPT
    view = parse_message(seen[-1])
    assert view.from_domain == "bank.example"
    assert len(view.header_all("From")) == MAX_LATE_FROM


def test_multiparts_nested_deeper_than_the_parser_reads_score(install: Any) -> None:
    """Text hidden deeper than the parser reads (mail.MAX_NESTING) is checked by nothing:
    such a message scores MIME_TOO_DEEP (the tag threshold's points) instead."""
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    raw = b"From: a@example.org\nSubject: x\nMIME-Version: 1.0\n"
    for i in range(25):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
    raw += b"Content-Type: text/plain\n\nhidden text\n"
    ctx = install(scanner)
    assert feed(ctx, raw)[0] == Milter.ACCEPT
    status = ctx.header_value("X-Spam-Status") or ""
    assert status.startswith("Yes, ") and "MIME_TOO_DEEP" in status
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    assert "MIME_TOO_DEEP" not in (ctx.header_value("X-Spam-Status") or "")


def test_events_logged_during_the_scan_name_the_queue_id(
        install: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A check that logs without the envelope (a lookup past its budget) still names the
    message: the milter scores it inside logs.for_message."""
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    real = scanner.scan

    def scan(raw: bytes, *a: Any, **kw: Any) -> Any:
        event(logging.getLogger("spamwarden.milter"), "lookup_timeout", logging.WARNING)
        return real(raw, *a, **kw)

    scanner.scan = scan  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="spamwarden.milter"):
        assert feed(install(scanner), HAM, queue_id="4QID77")[0] == Milter.ACCEPT
    [timeout] = [r.fields for r in caplog.records  # type: ignore[attr-defined]
                 if r.getMessage() == "lookup_timeout"]
    assert timeout == {"queue_id": "4QID77"}


def test_the_verdict_line_names_where_the_parse_stopped_short(
        install: Any, caplog: pytest.LogCaptureFixture) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    parts = b"".join(b"--b\n\n" for _ in range(1001))
    raw = (b"From: a@example.org\nSubject: x\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n")
    with caplog.at_level(logging.INFO, logger="spamwarden.milter"):
        assert feed(install(scanner), raw)[0] == Milter.ACCEPT
        assert feed(install(scanner), HAM)[0] == Milter.ACCEPT
    lines = [r.fields for r in caplog.records  # type: ignore[attr-defined]
             if r.getMessage() == "verdict"]
    assert lines[0]["defects"] == "MIME parts over limit"
    assert lines[1].get("defects") is None


def test_a_message_under_the_header_limit_has_no_note(install: Any) -> None:
    scanner = Scanner(make_cfg(max_header_bytes=300), resolver=StaticResolver(),
                      authenticate=fake_auth())
    ctx = install(scanner)
    assert feed(ctx, b"From: a@example.org\nSubject: x\n\nbody\n")[0] == Milter.ACCEPT
    assert ctx.header_value("X-Spam-Note") is None
    assert ctx.header_value("X-Spam-Status") is not None


def _large(size: int) -> bytes:
    return HAM + (b"y" * 76 + b"\n") * (size // 77 + 1)


def test_a_large_message_is_scored_within_the_scan_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes of the message are reserved while it is scored and given back after,
    also when the scan fails."""
    budget = ScanBudget(4 * FREE_BELOW, wait=30)
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    seen: list[int] = []
    real = scanner.scan

    def scan(raw: bytes, *a: Any, **kw: Any) -> Any:
        seen.append(budget.used)
        if len(seen) == 2:
            raise RuntimeError("boom")
        return real(raw, *a, **kw)

    monkeypatch.setattr(scanner, "scan", scan)
    monkeypatch.setattr(Milter, "factory",
                        functools.partial(SpamwardenMilter, scanner, budget=budget))
    raw = _large(FREE_BELOW + 1000)
    assert feed(RecordingCtx(), raw)[0] == Milter.ACCEPT
    assert feed(RecordingCtx(), raw)[0] == Milter.TEMPFAIL
    assert seen[0] == seen[1] > FREE_BELOW  # the message as the milter joined it
    assert budget.used == 0


@pytest.mark.parametrize("on_error", ["tempfail", "accept", "reject"])
def test_a_large_message_finding_no_room_is_deferred_and_small_ones_go_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, on_error: str) -> None:
    """451 4.3.2 whatever milter.on_error says: a sender who keeps the budget full must
    not get a message through unscored (on_error = "accept")."""
    budget = ScanBudget(2 * FREE_BELOW, wait=0.05)
    held = budget.acquire(2 * FREE_BELOW)  # two large messages being scored elsewhere
    scanner = Scanner(make_cfg(on_error=on_error), resolver=StaticResolver(),
                      authenticate=fake_auth())
    monkeypatch.setattr(Milter, "factory",
                        functools.partial(SpamwardenMilter, scanner, budget=budget))
    big = RecordingCtx()
    with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
        rc, _ = feed(big, _large(FREE_BELOW + 1000), queue_id="4BIGQID")
    assert rc == Milter.TEMPFAIL and big._reply[:2] == MILTER_BUSY.milter
    lines = [r.fields for r in caplog.records  # type: ignore[attr-defined]
             if r.getMessage() == "scan_deferred"]
    assert len(lines) == 1 and lines[0]["queue_id"] == "4BIGQID"
    assert "max_scan_bytes_in_flight" in lines[0]["why"]
    ctx = RecordingCtx()
    assert feed(ctx, HAM)[0] == Milter.ACCEPT  # ordinary mail is scored meanwhile
    assert ctx.header_value("X-Spam-Status") is not None
    assert budget.used == held


class RefusingPolicy:
    """A MessagePolicy refusing one recipient and adding a symbol at end of message."""

    def __init__(self) -> None:
        self.delivered_to: list[list[str]] = []

    def check_rcpt(self, env: Envelope, rcpt: str, *,
                   sender_spf: Any = None) -> RcptDecision | None:
        if rcpt.startswith("refused@"):
            return RcptDecision("recipient refused advertising from this sender",
                                symbol="AD_REFUSED")
        if rcpt.startswith("later@"):
            return RcptDecision("consent registry unavailable", temporary=True)
        return None

    def check_message(self, view: MessageView, env: Envelope, auth: object) -> Sequence[Symbol]:
        return [Symbol("AD_NO_CONSENT", 4.0, "no consent on record")]

    def delivered(self, view: MessageView, env: Envelope, auth: object) -> None:
        self.delivered_to.append(list(env.rcpts))


def test_policy_refuses_one_recipient_and_scores_the_rest(install: Any) -> None:
    policy = RefusingPolicy()
    cfg = config_from_mapping({"milter": {"authserv_id": AUTHSERV},
                               "policy": {"symbols": {"AD_NO_CONSENT": 2.5}}})
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=fake_auth(),
                      policies=[policy])
    ctx = install(scanner)
    replies: list[tuple[str, ...] | None] = []
    original = ctx.setreply

    def keep(*args: Any) -> None:
        replies.append(args)
        original(*args)

    ctx.setreply = keep  # type: ignore[method-assign]
    rc, rcpt_codes = feed(ctx, HAM, rcpts=("ok@test.example", "refused@test.example",
                                            "later@test.example"))
    assert rcpt_codes == [Milter.CONTINUE, Milter.REJECT, Milter.TEMPFAIL]
    assert replies[0] == (*CONSENT_REFUSED.milter, "recipient refused advertising from this sender")
    assert replies[1] == (*CONSENT_UNAVAILABLE.milter, "consent registry unavailable")
    assert rc == Milter.ACCEPT
    assert policy.delivered_to == [["ok@test.example"]]
    status = ctx.header_value("X-Spam-Status") or ""
    assert "AD_NO_CONSENT" in status and "score=1.9" in status  # 2.5 (config) - 0.5 - 0.1


class FakeListings:
    """A ListingLookup answering from a dict; keys absent from it have failed."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.volume: list[str] = []

    def lookup_many(self, keys: Sequence[str]) -> dict[str, ListingOutcome]:
        self.asked.extend(keys)
        return {
            k: ListingOutcome(self.answers.get(k, "failed"), k, reason="complaints")  # type: ignore[arg-type]
            for k in keys
        }

    def record_volume(self, keys: Sequence[str]) -> None:
        self.volume.extend(keys)


def test_listing_lookups_failed_and_listed(install: Any) -> None:
    listings = FakeListings({"192.0.2.7": "not_listed", "example.org": "listed"})
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings)
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    assert listings.asked == ["192.0.2.7", "example.org", "example.net"]
    status = ctx.header_value("X-Spam-Status") or ""
    tests = status_tests(status)
    assert "DBL_OWN" in tests
    assert "URIBL_LOOKUP_FAILED" in tests  # shop.example.net: failed, neither clean nor listed
    assert "URIBL_OWN" not in tests and "RBL_OWN" not in tests
    assert "RBL_LOOKUP_FAILED" not in tests
    assert "listings" not in (ctx.header_value("X-Spam-Unavailable") or "")
    assert listings.volume == ["192.0.2.7", "example.org"]


@pytest.mark.parametrize(("spf", "dkim", "dmarc", "counted"), [
    ("fail", (), "fail", []),  # forged: neither MAIL FROM nor From is anyone's volume
    ("softfail", ("fail",), "none", []),
    ("pass", (), "fail", ["example.org"]),  # the SPF-passing MAIL FROM domain
    ("fail", ("pass",), "fail", ["example.org"]),  # a verified d=
    ("none", (), "pass", ["example.org"]),  # the DMARC-passing From domain
])
def test_volume_counts_only_names_the_message_authenticated(
        install: Any, spf: str, dkim: tuple[str, ...], dmarc: str, counted: list[str]) -> None:
    """Complaints count only names a delivery proved, so volume does too: else forged mail
    naming a domain pads its volume and keeps its complaint rate low."""
    listings = FakeListings({"192.0.2.7": "not_listed", "example.org": "not_listed",
                             "example.net": "not_listed"})
    scanner = Scanner(make_cfg(), resolver=StaticResolver(),
                      authenticate=fake_auth(spf=spf, dkim=dkim, dmarc=dmarc),
                      listings=listings)
    assert feed(install(scanner), HAM)[0] == Milter.ACCEPT
    assert listings.volume == ["192.0.2.7", *counted]


def test_an_ipv4_mapped_client_address_is_its_ipv4_address() -> None:
    import socket

    from spamwarden.milter.app import _client_ip

    assert _client_ip(socket.AF_INET6, "::ffff:192.0.2.5") == "192.0.2.5"
    assert _client_ip(socket.AF_INET6, ("IPv6:::ffff:192.0.2.5", 25)) == "192.0.2.5"
    assert _client_ip(socket.AF_INET6, "2001:db8::1") == "2001:db8::1"
    assert _client_ip(socket.AF_INET, "192.0.2.5") == "192.0.2.5"


def test_rejected_message_records_no_volume(install: Any) -> None:
    listings = FakeListings({"192.0.2.7": "listed", "example.org": "listed",
                             "example.net": "listed"})
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings)
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.REJECT  # 6 + 6 + 5 - 0.6 >= 15
    assert "spam score 16.4 >= 15.0" in ctx._reply[2]
    # the main symbol is a listing: the lookup URL names the listed key
    assert ctx._reply[2].endswith("see https://bl.example.net/lookup/example.org")
    assert listings.volume == []


def test_two_messages_on_one_connection_do_not_share_state(install: Any) -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    def recording(raw: bytes, view: MessageView, resolver: Any, **kw: Any) -> Any:
        seen.append((kw["mail_from"], view.headers[0]))
        return fake_auth()(raw, view, resolver, **kw)

    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=recording)
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    import io

    import mime

    second = b"From: c@example.com\nSubject: two\n\nbody\n"
    msg = mime.message_from_file(io.BytesIO(second))
    ctx._msg, ctx._body = msg, None
    assert ctx._envfrom("<c@example.com>") == Milter.CONTINUE
    assert ctx._envrcpt("<bob@test.example>") == Milter.CONTINUE
    for name, value in msg.items():
        ctx._header(name, value)
    ctx._feed_body(io.BytesIO(b"body\n"))
    assert ctx._eom() == Milter.ACCEPT
    assert seen[1][0] == "c@example.com"
    assert seen[1][1] == ("From", "c@example.com")


@pytest.mark.parametrize(("postfix", "libmilter"), [
    ("inet:127.0.0.1:8890", "inet:8890@127.0.0.1"),
    ("inet:localhost:10025", "inet:10025@localhost"),
    ("inet6:[::1]:8890", "inet6:8890@::1"),
    ("unix:/run/spamwarden/milter.sock", "unix:/run/spamwarden/milter.sock"),
])
def test_libmilter_socket(postfix: str, libmilter: str) -> None:
    assert libmilter_socket(postfix) == libmilter


@pytest.mark.parametrize(("trusted", "auth_user", "expected"), [
    ([], "", Milter.REJECT),
    (["192.0.2.0/24"], "", Milter.ACCEPT),
    (["10.0.0.0/8"], "", Milter.REJECT),
    ([], "alice", Milter.ACCEPT),
])
def test_trusted_senders_are_tagged_never_refused(
    install: Any, trusted: list[str], auth_user: str, expected: int
) -> None:
    scanner = Scanner(make_cfg(trusted_networks=trusted), resolver=StaticResolver(),
                      authenticate=fake_auth(spf="fail", dmarc="fail", policy="reject",
                                             applied="reject"))
    ctx = install(scanner)
    if auth_user:
        ctx._setsymval("{auth_authen}", auth_user)
    assert feed(ctx, HAM)[0] == expected
    if expected == Milter.ACCEPT:
        status = ctx.header_value("X-Spam-Status") or ""
        assert status.startswith("Yes, ") and "ALL_TRUSTED" in status and "DMARC_REJECT" in status
        assert ctx.quarantined is None


@pytest.mark.parametrize(("rcpts", "expected"), [
    (("report@test.example",), Milter.ACCEPT),
    (("REPORT@test.example", "abuse-desk@intake.example"), Milter.ACCEPT),
    (("report@test.example", "bob@test.example"), Milter.REJECT),
    (("bob@test.example",), Milter.REJECT),
    # past the recipients the envelope keeps, another recipient must not hide
    (("report@test.example",) * MAX_RCPTS + ("bob@test.example",), Milter.REJECT),
])
def test_mail_only_to_intake_addresses_is_tagged_never_refused(
    install: Any, rcpts: tuple[str, ...], expected: int
) -> None:
    """Spam forwarded to the complaint address (here a forged p=reject message) must reach
    intake: tagged with TO_REPORT_ADDRESS, never refused; any other recipient: refused."""
    cfg = config_from_mapping(
        {
            "milter": {"authserv_id": AUTHSERV},
            "dns": {"timeout": 0.5},
            "intake": {"local_domains": ["test.example"],
                       "ham_address": "abuse-desk@intake.example"},
        },
        source="<test>",
    )
    scanner = Scanner(cfg, resolver=StaticResolver(),
                      authenticate=fake_auth(spf="fail", dmarc="fail", policy="reject",
                                             applied="reject"))
    ctx = install(scanner)
    assert feed(ctx, HAM, rcpts=rcpts)[0] == expected
    status = ctx.header_value("X-Spam-Status") or ""
    if expected == Milter.ACCEPT:
        assert status.startswith("Yes, ") and "TO_REPORT_ADDRESS" in status
        assert "DMARC_REJECT" in status
        assert ctx.quarantined is None
    else:
        assert "TO_REPORT_ADDRESS" not in status


@pytest.mark.parametrize("configured", ["ví-dụ.vn", "xn--v-d-rma6749a.vn"])
@pytest.mark.parametrize("rcpt", ["report@ví-dụ.vn", "report@xn--v-d-rma6749a.vn",
                                  "Report@VÍ-DỤ.VN", "report@ví-dụ.vn.", '"report"@ví-dụ.vn'])
def test_mail_to_an_internationalized_intake_address_is_never_refused(
    install: Any, configured: str, rcpt: str
) -> None:
    """The report address at a Vietnamese local domain, written as the U-label (an
    SMTPUTF8 client) or the A-label, in any case, with a trailing dot or needless
    quotes: intake takes each as its report address, so the milter must pass the
    forwarded spam to it (TO_REPORT_ADDRESS), not refuse it."""
    cfg = config_from_mapping(
        {"milter": {"authserv_id": AUTHSERV}, "dns": {"timeout": 0.5},
         "intake": {"local_domains": [configured]}},
        source="<test>",
    )
    scanner = Scanner(cfg, resolver=StaticResolver(),
                      authenticate=fake_auth(spf="fail", dmarc="fail", policy="reject",
                                             applied="reject"))
    ctx = install(scanner)
    assert feed(ctx, HAM, rcpts=(rcpt,))[0] == Milter.ACCEPT
    assert "TO_REPORT_ADDRESS" in (ctx.header_value("X-Spam-Status") or "")


def test_intake_addresses_are_expanded_like_intake_routes_them() -> None:
    ic = config_from_mapping({"intake": {"local_domains": ["A.example.", "b.example"],
                                         "report_address": "Report",
                                         "ham_address": "ham@elsewhere.example",
                                         "optout_address": ""}}, source="<test>").intake
    assert ic.addresses() == {"report@a.example", "report@b.example",
                              "ham@elsewhere.example"}


class FixedClassifier:
    def __init__(self, probability: float | None) -> None:
        self.probability = probability

    def spam_probability(self, view: MessageView) -> float:
        if self.probability is None:
            from spamwarden.errors import ModelError

            raise ModelError("model file changed under us")
        return self.probability


def test_classifier_probability_becomes_bayes_symbols(install: Any) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      classifier=FixedClassifier(0.9995))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    status = ctx.header_value("X-Spam-Status") or ""
    assert status.startswith("Yes, score=5.4 ")  # 5.0 + 1.0 - 0.1 - 0.5
    assert "BAYES_99,BAYES_999" in status
    assert ctx.header_value("X-Spam-Flag") == "YES"
    assert "classifier" not in (ctx.header_value("X-Spam-Unavailable") or "")


def test_classifier_error_is_reported_not_guessed(install: Any) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      classifier=FixedClassifier(None))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    assert "BAYES" not in (ctx.header_value("X-Spam-Status") or "")
    assert "classifier (model file changed under us)" in (
        ctx.header_value("X-Spam-Unavailable") or "")


def test_third_party_dnsbl(install: Any) -> None:
    cfg = config_from_mapping({
        "milter": {"authserv_id": AUTHSERV},
        "rbl": {"third_party_zones": ["dnsbl.example", "broken.example", "wild.example"]},
    })
    zone = StaticResolver({
        ("9.113.0.203.dnsbl.example", "A"): ["127.0.0.2"],
        ("9.113.0.203.broken.example", "A"): "error",
        ("9.113.0.203.wild.example", "A"): ["192.0.2.80"],  # not 127/8: not a listing
    })
    scanner = Scanner(cfg, resolver=zone, authenticate=fake_auth())
    ctx = install(scanner)
    assert feed(ctx, HAM, ip="203.0.113.9")[0] == Milter.ACCEPT
    reasons = ctx.header_value("X-Spam-Reasons") or ""
    assert "RBL_THIRD_PARTY=3 [dnsbl.example 127.0.0.2]" in reasons
    assert "RBL_THIRD_PARTY_LOOKUP_FAILED=0 [broken.example]" in reasons
    assert "wild.example" not in reasons
    # private and loopback clients are never looked up
    zone.queries.clear()
    ctx = install(scanner)
    feed(ctx, HAM, ip="10.1.2.3")
    assert zone.queries == []


def test_third_party_dnsbl_refusal_is_not_a_listing(
    install: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # 127.255.255.254 (query through a public resolver) and .255 (excessive queries)
    # are the list refusing to answer: behind such a resolver every client looked listed.
    cfg = config_from_mapping({
        "milter": {"authserv_id": AUTHSERV},
        "rbl": {"third_party_zones": ["zen.example", "dbl.example"]},
    })
    zone = StaticResolver({
        ("9.113.0.203.zen.example", "A"): ["127.255.255.254"],
        ("9.113.0.203.dbl.example", "A"): ["127.255.255.255"],
    })
    scanner = Scanner(cfg, resolver=zone, authenticate=fake_auth())
    with caplog.at_level(logging.WARNING, logger="spamwarden.milter"):
        for _ in range(3):
            ctx = install(scanner)
            assert feed(ctx, HAM, ip="203.0.113.9")[0] == Milter.ACCEPT
            reasons = ctx.header_value("X-Spam-Reasons") or ""
            assert "RBL_THIRD_PARTY=" not in reasons  # not listed: the lookup failed
            assert "RBL_THIRD_PARTY_LOOKUP_FAILED=0 [zen.example,dbl.example]" in reasons
    refused = [r.fields["zone"] for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "dnsbl_refused"]
    assert sorted(refused) == ["dbl.example", "zen.example"]  # once per zone, not per message


class ExplodingPolicy(RefusingPolicy):
    def check_rcpt(self, env: Envelope, rcpt: str, *,
                   sender_spf: Any = None) -> RcptDecision | None:
        raise RuntimeError("registry bug")


def test_exception_at_rcpt_answers_on_error_there(
    install: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      policies=[ExplodingPolicy()])
    ctx = install(scanner)
    with caplog.at_level(logging.ERROR, logger="spamwarden.milter"):
        rc, codes = feed(ctx, HAM, queue_id="4RCPTQ")
    assert rc == Milter.TEMPFAIL and codes == [Milter.TEMPFAIL]
    assert ctx._reply[:2] == MILTER_ERROR_TEMPFAIL.milter
    fields = [r.fields for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "milter_error"]
    assert fields and fields[0]["stage"] == "envrcpt" and fields[0]["queue_id"] == "4RCPTQ"


def test_exception_at_connect_surfaces_at_first_reply(
    install: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spamwarden.milter import app as app_module

    def broken(family: Any, hostaddr: Any) -> str:
        raise ValueError("odd address")

    monkeypatch.setattr(app_module, "_client_ip", broken)
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    ctx = install(scanner)
    rc, codes = feed(ctx, HAM)
    assert rc == Milter.TEMPFAIL and codes == [Milter.TEMPFAIL]


def test_delivery_counted_in_background(monkeypatch: pytest.MonkeyPatch) -> None:
    from spamwarden.milter.scanner import DeliveryRecorder

    listings = FakeListings({"192.0.2.7": "not_listed", "example.org": "not_listed",
                             "example.net": "not_listed"})
    policy = RefusingPolicy()
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings, policies=[policy])
    recorder = DeliveryRecorder(scanner)
    monkeypatch.setattr(Milter, "factory",
                        functools.partial(SpamwardenMilter, scanner, recorder=recorder))
    try:
        for _ in range(3):
            assert feed(RecordingCtx(), HAM)[0] == Milter.ACCEPT
        recorder.flush()
        assert listings.volume == ["192.0.2.7", "example.org"] * 3
        assert policy.delivered_to == [["bob@test.example"]] * 3
    finally:
        recorder.close()


def test_delivery_queue_full_drops_the_count_not_the_mail() -> None:
    import threading

    from spamwarden.milter.scanner import DeliveryRecorder, Verdict

    gate = threading.Event()

    class SlowListings(FakeListings):
        def record_volume(self, keys: Sequence[str]) -> None:
            gate.wait(10)
            super().record_volume(keys)

    listings = SlowListings({})
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings, lookup_threads=0)
    recorder = DeliveryRecorder(scanner, max_pending=1)
    view = scanner.parse(HAM)
    verdict = Verdict("accept", 0.0, 5.0, (), "", (), (), view=view)
    env = Envelope(client_ip="192.0.2.7", mail_from="a@example.org")
    try:
        results = [recorder.submit(verdict, env) for _ in range(5)]
        assert results[:1] == [True] and results.count(False) >= 3
        assert recorder.dropped == results.count(False)
    finally:
        gate.set()
        recorder.close()
    # the client IP of each counted message (it authenticated no name: auth is None)
    assert listings.volume == ["192.0.2.7"] * results.count(True)


def test_delivery_counts_arriving_together_share_one_store_call() -> None:
    from spamwarden.milter.scanner import DeliveryRecorder, Verdict

    class BatchListings(FakeListings):
        def __init__(self) -> None:
            super().__init__({})
            self.batches: list[list[list[str]]] = []

        def record_volume_many(self, messages: Sequence[Sequence[str]]) -> None:
            self.batches.append([list(m) for m in messages])

    listings = BatchListings()
    policy = RefusingPolicy()
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings, policies=[policy], lookup_threads=0)
    recorder = DeliveryRecorder(scanner, batch_window=0.3, max_batch=4)
    view = scanner.parse(HAM)
    verdict = Verdict("accept", 0.0, 5.0, (), "", (), (), view=view)
    try:
        for i in range(6):
            env = Envelope(client_ip=f"192.0.2.{i}", mail_from="a@example.org",
                           rcpts=["bob@test.example"])
            assert recorder.submit(verdict, env)
        recorder.flush()
    finally:
        recorder.close()
    # six messages within one window, at most four per call: two calls, every message once
    assert [len(b) for b in listings.batches] == [4, 2]
    assert [m[0] for b in listings.batches for m in b] == [f"192.0.2.{i}" for i in range(6)]
    assert listings.volume == [] and len(policy.delivered_to) == 6


def test_metrics_count_actions_failures_and_unavailable(install: Any) -> None:
    from spamwarden.metrics import CHECKS_UNAVAILABLE, LOOKUP_FAILURES, MESSAGES

    def value(counter: Any, label: str) -> float:
        return float(counter.labels(label)._value.get())

    before = (value(MESSAGES, "accept"), value(LOOKUP_FAILURES, "listing"),
              value(CHECKS_UNAVAILABLE, "classifier"))
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=FakeListings({}))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    after = (value(MESSAGES, "accept"), value(LOOKUP_FAILURES, "listing"),
             value(CHECKS_UNAVAILABLE, "classifier"))
    assert after == (before[0] + 1, before[1] + 3, before[2] + 1)


class BareCtx:
    """The smallest milter context: records the answer, accepts every action."""

    def __init__(self) -> None:
        self.priv: Any = None
        self.reply: tuple[Any, ...] | None = None
        self.added: list[tuple[str, str]] = []

    def setpriv(self, priv: Any) -> None:
        self.priv = priv

    def getpriv(self) -> Any:
        return self.priv

    def getsymval(self, name: str) -> str | None:
        return "4HYPO" if name == "i" else None

    def setreply(self, *args: Any) -> None:
        self.reply = args

    def addheader(self, field: str, value: str, idx: int) -> None:
        self.added.append((field, value))

    def chgheader(self, field: str, idx: int, value: str) -> None:
        pass

    def quarantine(self, reason: str) -> None:
        pass


_header_name = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                              blacklist_characters=":"), min_size=1, max_size=20)
_header_value = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([
        b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from:subject; bh=AAAA; b=BBBB",
        b"v=1; a=ed25519-sha256; d=; s=; b=", b"mx.test.example; spf=pass",
        b"=?utf-8?b?W1FDXSBLaHV5ZW4=?=", b"\"x\" <a@[127.0.0.1]>", b"a@b@c", b"\xff\xfe\x00",
    ]),
)


@settings(max_examples=120, deadline=None)
@given(
    headers=st.lists(st.tuples(st.one_of(_header_name, st.sampled_from(
        ["From", "DKIM-Signature", "Authentication-Results", "X-Spam-Flag", "Subject",
         "Content-Type", "Received"])), _header_value), max_size=15),
    body=st.lists(st.binary(max_size=500), max_size=4),
    sender=st.sampled_from(["", "a@example.org", "weird@@", "<>", "x@[192.0.2.1]"]),
)
def test_hostile_input_never_reaches_on_error(headers: list[tuple[str, bytes]],
                                              body: list[bytes], sender: str) -> None:
    """Whatever the client sends, the pipeline decides; it never falls back to on_error."""
    zone = StaticResolver({("example.org", "TXT"): [b"v=spf1 -all"],
                           ("_dmarc.example.org", "TXT"): [b"v=DMARC1; p=reject"]})
    scanner = Scanner(make_cfg(max_message_bytes=4000), resolver=zone,
                      authenticate=authenticate, lookup_threads=0)
    errors: list[tuple[str, BaseException]] = []
    milter = SpamwardenMilter(scanner)
    original = milter._fail

    def spy(stage: str, exc: BaseException, *, at: str) -> int:
        errors.append((stage, exc))
        return original(stage, exc, at=at)

    milter._fail = spy  # type: ignore[method-assign]
    ctx = BareCtx()
    milter._setctx(ctx)
    milter._protocol = 0
    import socket as socket_module

    milter.connect("client.example", socket_module.AF_INET, ("192.0.2.9", 2525))
    milter.hello("client.example")
    milter.envfrom_bytes(f"<{sender}>".encode())
    assert milter.envrcpt_bytes(b"<bob@test.example>") == Milter.CONTINUE
    for name, value in headers:
        milter.header_bytes(name, value)
    for chunk in body:
        milter.body(chunk)
    rc = milter.eom()
    assert errors == []
    assert rc in (Milter.ACCEPT, Milter.REJECT, Milter.TEMPFAIL)
    if rc == Milter.ACCEPT:
        names = [n for n, _ in ctx.added]
        assert names and (names[0] == "Authentication-Results" or names == ["X-Spam-Note"])
        for _, value in ctx.added:
            assert all(32 <= ord(c) < 127 or c in "\n\t" for c in value)


def test_classifier_bug_and_lookup_bug_degrade_not_tempfail(install: Any) -> None:
    class BuggyClassifier:
        def spam_probability(self, view: MessageView) -> float:
            raise IndexError("feature vector")

    class BuggyListings(FakeListings):
        def lookup_many(self, keys: Sequence[str]) -> dict[str, ListingOutcome]:
            raise ConnectionError("socket closed")

    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      classifier=BuggyClassifier(), listings=BuggyListings({}))
    ctx = install(scanner)
    assert feed(ctx, HAM)[0] == Milter.ACCEPT
    assert "classifier (error: IndexError)" in (ctx.header_value("X-Spam-Unavailable") or "")
    status = ctx.header_value("X-Spam-Status") or ""
    assert "RBL_LOOKUP_FAILED" in status and "DBL_LOOKUP_FAILED" in status
    assert "RBL_OWN" not in status


def test_spf_runs_on_the_lookup_threads_at_mail_from_and_once(install: Any) -> None:
    import threading

    class ThreadRecordingResolver(StaticResolver):
        def __init__(self, zone: Any) -> None:
            super().__init__(zone)
            self.threads: list[tuple[str, str, str]] = []

        def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> Any:
            self.threads.append((name, rdtype, threading.current_thread().name))
            return super().query(name, rdtype, timeout=timeout)

    zone = ThreadRecordingResolver({
        ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.7 -all"],
        ("_dmarc.example.org", "TXT"): [b"v=DMARC1; p=reject"],
    })
    scanner = Scanner(make_cfg(), resolver=zone, authenticate=authenticate)
    ctx = install(scanner)
    rc, _ = feed(ctx, HAM, ip="192.0.2.7")
    assert rc == Milter.ACCEPT
    assert "spf=pass" in ctx.added[0][1] and "dmarc=pass" in ctx.added[0][1]
    spf = [t for n, r, t in zone.threads if (n, r) == ("example.org", "TXT")]
    assert len(spf) == 1 and spf[0].startswith("spamwarden-lookup")  # at MAIL FROM, not again
    scanner.close()


def test_libmilter_header_callback_buffers_and_defers_errors_like_the_method() -> None:
    from spamwarden.milter.app import _header_callback

    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      lookup_threads=0)
    milter = SpamwardenMilter(scanner)
    ctx = BareCtx()
    ctx.setpriv(milter)
    assert _header_callback(ctx, "Subject", b"caf\xc3\xa9\n\tfolded") == Milter.CONTINUE
    assert milter._head == [b"Subject: caf\xc3\xa9\r\n\tfolded\r\n"]
    milter._protocol = Milter.P_NR_HDR  # negotiated: Postfix awaits no reply
    # libmilter's own constant: importing Milter.test rebinds Milter.NOREPLY to CONTINUE
    # for the whole process, so the Python-level name depends on test order
    assert _header_callback(ctx, "X-Spam-Flag", b"YES") == libmilter.NOREPLY != Milter.CONTINUE
    assert milter._watched == [("X-Spam-Flag", "YES")]

    def broken(name: str, value: bytes) -> int:
        raise RuntimeError("boom")

    milter._take_header = broken  # type: ignore[method-assign]
    assert _header_callback(ctx, "To", b"x") == libmilter.NOREPLY
    assert milter._error is not None and milter._error[0] == "header"
    assert milter.eom() == Milter.TEMPFAIL  # the next callback that replies answers on_error


def test_forged_headers_past_a_thousand_watched_ones_never_get_through(install: Any) -> None:
    """Padding the header with 1,000 harmless X-Spam-* fields must not let the forged
    ones after them reach the mailbox: the message is refused, never delivered with them."""
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    ctx = install(scanner)
    padding = b"".join(b"X-Spam-Pad: %d\n" % i for i in range(1000))
    raw = (
        b"From: Alice <alice@example.org>\nTo: bob@test.example\nSubject: hi\n"
        + padding
        + b"X-Spam-Flag: NO\nX-Spam-Status: No, score=-100.0\n"
        + b"Authentication-Results: mx.test.example; dmarc=pass header.from=bank.example\n"
        + b"\nbody\n"
    )
    rc, _ = feed(ctx, raw)
    assert rc == Milter.REJECT
    assert ctx._reply is not None and ctx._reply[0] == "550"
    assert ctx.added == []


def test_nested_comment_does_not_hide_a_forged_authentication_results(install: Any) -> None:
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    ctx = install(scanner)
    raw = (
        b"From: Alice <alice@example.org>\nTo: bob@test.example\nSubject: hi\n"
        b"Authentication-Results: (a (b) c) mx.test.example; dmarc=pass header.from=bank.example\n"
        b"Authentication-Results: other.example; spf=pass\n"
        b"\nbody\n"
    )
    rc, _ = feed(ctx, raw)
    assert rc == Milter.ACCEPT
    assert ctx.changed == [("Authentication-Results", 1, "")]


def test_the_connection_facts_of_the_received_field_reach_the_envelope(
        install: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our host name (``j``, at connect) and TLS (``{tls_version}``, at HELO): the rules'
    copy of the Received field Postfix writes for the connection is made from them."""
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth())
    seen: list[tuple[str, bool, str]] = []
    real = scanner.scan

    def scan(raw: bytes, env: Any, **kw: Any) -> Any:
        seen.append((env.receiver, env.tls, env.helo))
        return real(raw, env, **kw)

    monkeypatch.setattr(scanner, "scan", scan)
    ctx = install(scanner)
    ctx._setsymval("j", "mx.test.example")
    ctx._setsymval("{tls_version}", "TLSv1.3")
    feed(ctx, HAM)
    plain = install(scanner)
    feed(plain, HAM)
    assert seen == [("mx.test.example", True, "mail.example.org"),
                    ("", False, "mail.example.org")]


def test_a_listed_link_behind_many_innocent_ones_is_still_looked_up(install: Any) -> None:
    """A spammer whose link domain is listed puts links to many other sites before its
    own: every link domain the message holds (``ParseLimits.max_urls``, 100) is looked
    up, so the 60th still scores URIBL_OWN. Only the first 20 were."""
    innocent = [f"https://site{i}.example/" for i in range(59)]
    body = " ".join([*innocent, "https://spam-shop.example/buy"]).encode()
    raw = HAM.replace(b"See you at noon at https://www.shop.example.net/menu today.\n",
                      body + b"\n")
    answers = {"192.0.2.7": "not_listed", "example.org": "not_listed",
               "spam-shop.example": "listed"}
    answers.update({f"site{i}.example": "not_listed" for i in range(59)})
    listings = FakeListings(answers)
    scanner = Scanner(make_cfg(), resolver=StaticResolver(), authenticate=fake_auth(),
                      listings=listings)
    ctx = install(scanner)
    feed(ctx, raw)
    assert "spam-shop.example" in listings.asked
    assert "URIBL_OWN" in status_tests(ctx.header_value("X-Spam-Status") or "")
