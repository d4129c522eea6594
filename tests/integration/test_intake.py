"""Complaint intake end to end: a real aiosmtpd server on 127.0.0.1:0, a real Redis,
reports sent with smtplib, complaints read back from the stream."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spamwarden._unixsock import parse_mode, resolve_group, unix_path
from spamwarden.config import Config, config_from_mapping
from spamwarden.mail import registrable_domain, url_domain
from spamwarden.redisconn import EmbeddedRedis, async_client, sync_client
from spamwarden.reputation.complaints import COMPLAINTS_KEY, UNMATCHED_KEY, Complaint
from spamwarden.reputation.deliveries import RedisDeliveryLookup
from spamwarden.reputation.intake import (
    REPLIES,
    ComplaintIntake,
    IntakeRequest,
    IntakeServer,
    RedisComplaintStore,
    example_index_key,
    example_key,
)
from spamwarden.reputation.reports import AUTOMATIC_MESSAGE, NO_ORIGINAL
from spamwarden.resolver import StaticResolver
from tests.conftest import DATA, data_path

pytestmark = pytest.mark.integration

REPORTS = DATA / "reports"
LOCAL = ["example.vn", "example.com", "example.net", "example.jp"]


def _verifier() -> Callable[..., Any] | None:
    try:
        from spamwarden.milter.auth import verify_dkim
    except ImportError:  # the milter's DKIM module is not in this build
        return None
    return verify_dkim  # type: ignore[no-any-return]


# the DNS the intake's DKIM re-verification sees: the test key of tests/data/reports
DKIM_DNS = StaticResolver({("sel1._domainkey.promo-shop.example", "TXT"):
                           [(REPORTS / "dkim-sel1.txt").read_bytes().strip()]})


@dataclass
class RunningIntake:
    port: int
    redis_url: str
    cfg: Config
    handler: ComplaintIntake
    path: str | None = None

    def client(self) -> smtplib.SMTP:
        if self.path is not None:  # smtplib.LMTP takes a unix socket's path as its host
            return smtplib.LMTP(self.path, timeout=30)
        return smtplib.SMTP("127.0.0.1", self.port, timeout=30)

    def send(self, raw: bytes, *, sender: str = "alice@example.vn",
             rcpt: str = "report@example.vn") -> tuple[int, str]:
        """DATA's reply (code, text); RCPT refusals raise as smtplib does."""
        with self.client() as s:
            s.ehlo("client.example.vn")
            code, _ = s.mail(sender)
            assert code == 250
            code, text = s.rcpt(rcpt)
            if code != 250:
                return code, text.decode()
            code, text = s.data(_smtp_lines(raw))
            return code, text.decode()

    def complaints(self) -> list[Complaint]:
        r = sync_client(self.cfg, self.redis_url)
        try:
            return [Complaint.from_fields(f) for _, f in r.xrange(COMPLAINTS_KEY)]
        finally:
            r.close()


def _smtp_lines(raw: bytes) -> bytes:
    """CRLF line ends, as an MTA sends them (some sample files use bare LF)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def start_intake(redis_url: str) -> Iterator[Callable[..., RunningIntake]]:
    """Start an intake server (SMTP, or LMTP with lmtp=True) with [intake] overrides
    (``language``: ``i18n.language``; ``listen="unix:/PATH"`` for a unix socket).

    ``reputation`` overrides ``[reputation]``.  By default these tests run with
    ``require_delivered = false``: they are about finding the original in each
    report form, the replies and the store, and read what the report claims.
    Matching reports to deliveries is tested with ``require_delivered`` on
    (test_deliveries_redis.py, test_trust_postfix.py).  require_auth is off unless a
    test turns it on: many sample reports carry no login (identity has its own tests).
    """
    lt = _LoopThread()
    started: list[tuple[IntakeServer, Any]] = []

    def start(*, hooks: dict[str, Any] | None = None,
              reputation: dict[str, Any] | None = None, language: str = "en",
              **intake: Any) -> RunningIntake:
        section = {"local_domains": LOCAL, "max_message_bytes": 300_000,
                   "require_auth": False, **intake}
        cfg = config_from_mapping({"intake": section, "redis": {"timeout": 0.5},
                                   "reputation": reputation or {"require_delivered": False},
                                   "i18n": {"language": language}})

        async def up() -> tuple[IntakeServer, Any, ComplaintIntake]:
            client = async_client(cfg, redis_url)
            store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                        training_ttl=cfg.reputation.training_ttl)
            handler = ComplaintIntake(cfg, store, dkim_verifier=_verifier(), resolver=DKIM_DNS,
                                      hooks=hooks, deliveries=RedisDeliveryLookup(client))
            path = unix_path(cfg.intake.listen)
            server = IntakeServer(handler, port=0, lmtp=cfg.intake.lmtp, path=path,
                                  socket_mode=parse_mode(cfg.intake.socket_mode),
                                  socket_group=resolve_group(cfg.intake.socket_group),
                                  data_size_limit=cfg.intake.max_message_bytes,
                                  hostname="intake.example.vn",
                                  max_sessions=cfg.intake.max_sessions,
                                  max_data_in_flight=cfg.intake.max_data_in_flight,
                                  size_trusted=handler.trusted,
                                  language=cfg.i18n.language)
            await server.start()
            return server, client, handler

        server, client, handler = lt.run(up())
        started.append((server, client))
        return RunningIntake(server.port, redis_url, cfg, handler, server.path)

    try:
        yield start
    finally:
        for server, client in started:
            lt.run(server.stop())
            lt.run(client.aclose())
        lt.close()


def _as_login(raw: bytes, login: str | None) -> bytes:
    """The sample report as submitted by ``login`` (None: with no login recorded)."""
    line = b"\t(Authenticated sender: alice@example.vn)\r\n"
    assert line in raw
    return raw.replace(line, b"" if login is None else
                       f"\t(Authenticated sender: {login})\r\n".encode())


def _variant(raw: bytes, n: int) -> bytes:
    """The same report about a different message (its subject and body differ)."""
    return raw.replace(b"Mua ngay", f"Mua ngay {n}".encode()).replace(
        b"Subject: [QC]", f"Subject: [QC] {n}".encode())


# -- ARF reports ---------------------------------------------------------------------------------

# What each stalwart report must give besides what its .json states (sensible mappings):
# the source IP from the first untrusted Received hop when the ARF has no Source-IP (001),
# the From domain of the copy, the Reported-Uri http(s) domains as URL domains.
STALWART_EXTRA = {
    "001": {"source_ip": "192.0.2.1", "from_domain": "example.net", "subject": "Earn money"},
    "002": {"from_domain": "example.net", "url_domains": ("example.net",)},
    "003": {"from_domain": "example.net", "dkim_domains": ("example.net",),
            "subject": "This is a test"},
    "004": {"from_domain": "interpublication.org", "dkim_domains": ("interpublication.org",),
            "subject": "Wir kaufen dein Auto!"},
    "005": {"from_domain": "sender.example", "dkim_domains": ("sender.example",),
            "url_domains": ("sender.example",), "subject": "You have a new bill from your bank"},
}


@pytest.mark.parametrize("name", sorted(STALWART_EXTRA))
def test_stalwart_arf_reports_give_the_expected_indicators(
    start_intake: Callable[..., RunningIntake], name: str
) -> None:
    folder = data_path("arf", "stalwart_mail-auth")
    raw = (folder / f"{name}.eml").read_bytes()
    expected = json.loads((folder / f"{name}.json").read_text())
    intake = start_intake()
    code, text = intake.send(raw, sender="abuse-desk@example.com", rcpt="report@example.com")
    assert code == 250, text
    [c] = intake.complaints()
    assert (c.kind, c.reporter, c.source) == ("spam", "abuse-desk@example.com", "arf")
    ind = c.indicators
    extra = STALWART_EXTRA[name]
    assert ind.source_ip == (expected["source_ip"] or extra["source_ip"])
    if expected["original_mail_from"]:
        addr = expected["original_mail_from"].strip("<>")
        assert ind.mail_from_domain == registrable_domain(addr.split("@")[1])
    else:
        assert ind.mail_from_domain is None
    http = [u for u in expected["reported_uri"] if u.startswith("http")]
    assert set(ind.url_domains) == {url_domain(u) for u in http}
    assert ind.url_domains == extra.get("url_domains", ())
    if expected["dkim_domain"]:
        assert expected["dkim_domain"] in ind.dkim_domains
    assert ind.dkim_domains == extra.get("dkim_domains", ())
    assert ind.dkim_verified == ()  # test keys are not published; nothing verifies
    assert ind.from_domain == extra["from_domain"]
    assert ind.subject == extra.get("subject", "")  # 002's copy ends its header at a blank line


# sisimai's set: every file gives a sensible outcome. arf-22/23/24 are Microsoft JMRP-style
# forwards (multipart/mixed + message/rfc822), not RFC 5965; arf-25's copy is redacted to one
# word (ARF fields only; Source-IP 10.0.0.1 is private and dropped); arf-26 is Apple Mail's
# automatic unsubscribe message.
SISIMAI = {
    "arf-01.eml": ("arf", "192.0.2.89", "example.ed.jp", "example.ed.jp"),
    "arf-01.crlf.eml": ("arf", "192.0.2.89", "example.ed.jp", "example.ed.jp"),
    "arf-02.eml": ("arf", "192.0.2.8", "example.com", "example.com"),
    "arf-11.eml": ("arf", "192.0.2.2", None, "example.net"),
    "arf-12.eml": ("arf", "192.0.2.89", None, "example.net"),
    "arf-14.eml": ("arf", "192.0.2.2", "amazonses.com", "example.jp"),
    "arf-15.eml": ("arf", "192.0.2.222", "example.net", "example.net"),
    "arf-16.eml": ("arf", "192.0.2.1", "example.jp", "example.jp"),
    "arf-17.eml": ("arf", "192.0.2.3", "example.jp", "example.jp"),
    "arf-18.eml": ("arf", "192.0.2.222", "example.org", "example.org"),
    "arf-19.eml": ("arf", "203.0.113.2", "example.com", "example.net"),
    "arf-20.eml": ("arf", "203.0.113.2", "example.org", "example.net"),
    "arf-21.eml": ("arf", "198.51.100.224", "example.net", "example.net"),
    "arf-22.eml": ("attached", "203.0.113.245", None, "example.com"),
    "arf-23.eml": ("attached", "203.0.113.245", None, "example.com"),
    "arf-24.eml": ("attached", "203.0.113.245", None, "example.com"),
    "arf-25.eml": ("arf", None, "example.com", None),
    "arf-26.eml": None,
}


@pytest.mark.parametrize("name", sorted(SISIMAI))
def test_sisimai_reports(start_intake: Callable[..., RunningIntake], name: str) -> None:
    raw = (data_path("arf", "sisimai_set-of-emails") / name).read_bytes()
    intake = start_intake()
    code, text = intake.send(raw, sender="postmaster@example.com", rcpt="report@example.com")
    want = SISIMAI[name]
    if want is None:
        assert (code, text) == (550, "5.6.0 " + AUTOMATIC_MESSAGE)
        assert intake.complaints() == []
        return
    assert code == 250, text
    [c] = intake.complaints()
    ind = c.indicators
    assert (c.source, ind.source_ip, ind.mail_from_domain, ind.from_domain) == want


# -- forwards made as mail clients make them -------------------------------------------------------

SPAM_URLS = ("promo-shop.example", "tracker-net.example", "cdn-pix.example")


@pytest.mark.parametrize("name,source", [
    ("gmail-attached", "attached"), ("outlook-attached", "attached"),
    ("thunderbird-attached", "attached"), ("mutt-bounced", "bare"),
    ("gmail-inline", "inline"), ("outlook-inline", "inline"), ("thunderbird-inline", "inline"),
])
def test_client_forwards(
    start_intake: Callable[..., RunningIntake], name: str, source: str
) -> None:
    intake = start_intake(require_auth=True)
    raw = (REPORTS / f"{name}.eml").read_bytes()
    if name.startswith("outlook"):  # sent with ESMTPSA, but no login recorded: add one
        raw = raw.replace(b"\tby mail.example.vn (Postfix) with ESMTPSA", b"\t(Authenticated "
                          b"sender: alice@example.vn)\r\n\tby mail.example.vn (Postfix) with ESMTPSA")
    code, text = intake.send(raw)
    assert code == 250, text
    [c] = intake.complaints()
    assert text == REPLIES["accepted"].format(id=c.id)[4:]
    # gmail-inline's login is "alice": counted at the first local domain
    assert (c.kind, c.reporter, c.source) == ("spam", "alice@example.vn", source)
    ind = c.indicators
    assert ind.from_domain == "promo-shop.example"
    assert ind.from_address == "deals@promo-shop.example"
    assert ind.url_domains == SPAM_URLS
    assert ind.ad_label == "QC"
    assert ind.subject == "[QC] Khuyến mãi lớn"
    if source == "inline":  # headers recovered, hops and signatures are not
        assert (ind.source_ip, ind.mail_from_domain, ind.dkim_domains) == (None, None, ())
    else:
        assert ind.source_ip == "198.51.100.23"  # 10.20.0.5 (internal hop) is skipped
        assert ind.mail_from_domain == "promo-shop.example"
        assert ind.dkim_domains == ("promo-shop.example",)
        if _verifier() is not None:
            assert ind.dkim_verified == ("promo-shop.example",)
    # the original is kept as a labelled training example
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        stored = r.get(example_key("spam", c.fingerprint))
        assert r.zscore(example_index_key("spam"), c.fingerprint) == pytest.approx(c.received_at)
        assert 0 < r.ttl(example_key("spam", c.fingerprint)) <= intake.cfg.reputation.training_ttl
    finally:
        r.close()
    original = (REPORTS / "original-signed.eml").read_bytes()
    if source == "attached":
        assert stored == original
    elif source == "bare":
        assert stored is not None and stored.endswith(original)
        assert b"Resent-From" in stored and b"mail.example.vn" not in stored
    else:
        assert stored is not None and b"From: Shop Deals <deals@promo-shop.example>" in stored


def test_ham_report_is_stored_as_ham(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake()
    code, text = intake.send((REPORTS / "ham-inline.eml").read_bytes(), rcpt="ham@example.vn")
    assert code == 250, text
    [c] = intake.complaints()
    assert (c.kind, c.indicators.from_domain, c.indicators.url_domains) == (
        "ham", "university.example", ("university.example",))
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert r.exists(example_key("ham", c.fingerprint)) == 1
        assert r.exists(example_key("spam", c.fingerprint)) == 0
    finally:
        r.close()


# -- reporter checks, rate limit, de-duplication --------------------------------------------------


def test_reporter_outside_local_domains_is_refused(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake()
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    for sender in ("mallory@elsewhere.example", "", "alice@sub.example.vn"):
        with intake.client() as s:
            s.ehlo("x")
            s.mail(sender)
            code, text = s.rcpt("report@example.vn")
            assert code == 550 and text.startswith(b"5.7.1 Reports are accepted only from"), text
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        with intake.client() as s:
            s.sendmail("mallory@elsewhere.example", ["report@example.vn"], raw)
    assert intake.complaints() == []


def test_unknown_recipient_is_refused(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake()
    code, text = intake.send(b"Subject: x\r\n\r\nx\r\n", rcpt="postmaster@example.vn")
    assert (code, text) == (550, "5.1.1 <postmaster@example.vn>: no such report address here")
    code, text = intake.send(b"Subject: x\r\n\r\nx\r\n", rcpt="optout@example.vn")
    assert code == 550  # no hook attached: the address does not exist


def test_rate_limit_per_reporter(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(reporter_rate=3)
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    replies = [intake.send(_variant(raw, n)) for n in range(5)]
    assert [code for code, _ in replies] == [250, 250, 250, 450, 450]
    assert replies[3][1] == REPLIES["rate_limited"].format(reporter="alice@example.vn")[4:]
    # a duplicate of an accepted report is still acknowledged while over the limit
    assert intake.send(_variant(raw, 0))[0] == 250
    assert intake.send(_as_login(_variant(raw, 9), "bob@example.vn"), sender="bob@example.vn"
                       )[0] == 250
    reporters = [c.reporter for c in intake.complaints()]
    assert reporters == ["alice@example.vn"] * 3 + ["bob@example.vn"]
    r = sync_client(intake.cfg, intake.redis_url)
    try:
        assert 0 < r.ttl("sw:{sw}:intake:rate:alice@example.vn") <= 3600
    finally:
        r.close()


def test_same_message_from_same_reporter_counts_once(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake()
    first = intake.send((REPORTS / "gmail-attached.eml").read_bytes())
    # the same spam again, this time forwarded inline from another client
    again = intake.send((REPORTS / "thunderbird-inline.eml").read_bytes())
    other = intake.send((REPORTS / "outlook-attached.eml").read_bytes(), sender="bob@example.vn")
    assert first[0] == again[0] == other[0] == 250
    [a, b] = intake.complaints()
    assert again[1] == REPLIES["duplicate"].format(id=a.id)[4:]
    assert (a.reporter, b.reporter) == ("alice@example.vn", "bob@example.vn")
    assert a.fingerprint == b.fingerprint and a.id != b.id


def test_require_auth(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(require_auth=True)
    authenticated = (REPORTS / "gmail-attached.eml").read_bytes()
    assert intake.send(authenticated)[0] == 250
    unauthenticated = authenticated.replace(b"with ESMTPSA", b"with ESMTPS").replace(
        b"\t(Authenticated sender: alice@example.vn)\r\n", b"")
    code, text = intake.send(_variant(unauthenticated, 1))
    assert (code, text) == (550, REPLIES["auth_required"][4:])
    # a forged "authenticated" hop below an untrusted one is not believed
    forged = (b"Received: from evil.example (evil.example [203.0.113.66])\r\n"
              b"\tby mail.example.vn (Postfix) with ESMTP id 1\r\n" + _variant(authenticated, 2))
    assert intake.send(forged)[0] == 550
    assert len(intake.complaints()) == 1


# -- durability ------------------------------------------------------------------------------------


def test_redis_down_gives_451_and_nothing_acknowledged_is_lost(
    start_intake: Callable[..., RunningIntake], redis_server: EmbeddedRedis
) -> None:
    intake = start_intake()
    raw = (REPORTS / "outlook-attached.eml").read_bytes()
    acked: list[str] = []
    codes: list[int] = []

    def send(n: int) -> None:
        code, text = intake.send(_variant(raw, n))
        codes.append(code)
        if code == 250:
            acked.append(text.rsplit(" ", 1)[1])

    for n in range(5):
        send(n)
    redis_server.stop()
    for n in range(5, 8):
        code, text = intake.send(_variant(raw, n))
        assert (code, text) == (451, REPLIES["store_failed"][4:])
    redis_server.start()
    for n in range(5, 10):  # the MTA retries what got 451, then sends more
        send(n)
    assert codes == [250] * 10
    assert sorted(c.id for c in intake.complaints()) == sorted(acked)
    assert len(set(acked)) == 10


def test_redis_full_gives_451_and_nothing_acknowledged_is_lost(
    start_intake: Callable[..., RunningIntake], redis_server: EmbeddedRedis
) -> None:
    """Redis at its ``maxmemory`` with ``noeviction`` (what docs/operations.md asks for)
    refuses writes with an OOM error: intake answers 451 as for Redis down, and the
    reports the MTA sends again once there is room are stored."""
    import redis

    intake = start_intake()
    raw = (REPORTS / "outlook-attached.eml").read_bytes()
    assert intake.send(_variant(raw, 0))[0] == 250
    client = redis.Redis(unix_socket_path=str(redis_server.socket))
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(used))  # full now: every write is refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("sw:test:probe", "x" * 100_000)
        for n in range(1, 4):
            code, text = intake.send(_variant(raw, n))
            assert (code, text) == (451, REPLIES["store_failed"][4:]), n
        client.config_set("maxmemory", "0")
        for n in range(1, 4):  # the MTA retries what got 451
            assert intake.send(_variant(raw, n))[0] == 250, n
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert len(intake.complaints()) == 4


# -- bad input -------------------------------------------------------------------------------------


def test_oversized_data_is_drained_and_refused_with_552(
    start_intake: Callable[..., RunningIntake]
) -> None:
    intake = start_intake(max_message_bytes=50_000)
    big = (REPORTS / "gmail-attached.eml").read_bytes() + (b"x" * 70 + b"\r\n") * 2000
    with intake.client() as s:
        s.ehlo("x")
        # without SIZE= the server reads everything and answers at the end
        assert s.mail("alice@example.vn")[0] == 250
        assert s.rcpt("report@example.vn")[0] == 250
        code, _ = s.data(big)
        assert code == 552
        assert s.noop()[0] == 250  # the session goes on
        # with SIZE= (smtplib adds it) the refusal comes at MAIL
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            s.sendmail("alice@example.vn", ["report@example.vn"], big)
        assert err.value.smtp_code == 552
    assert intake.complaints() == []


@pytest.mark.parametrize("raw", [
    b"",
    b"\r\n",
    b"just some text without any header\r\n",
    b"Subject: spam!!\r\nFrom: alice@example.vn\r\n\r\nplease block this\r\n",
    bytes(range(256)) * 20,
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n"
    b"\xff\xfe\x00garbage\r\n--x--\r\n",
    b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n--b--\r\n",
])
def test_garbage_gets_a_clear_550(start_intake: Callable[..., RunningIntake], raw: bytes) -> None:
    intake = start_intake()
    code, text = intake.send(raw)
    assert code == 550 and text.startswith("5.6.0 "), text
    assert text[6:] == NO_ORIGINAL, text
    assert intake.send((REPORTS / "gmail-attached.eml").read_bytes())[0] == 250  # still serving


# -- LMTP and address hooks ------------------------------------------------------------------------


def _lmtp_session(port: int, commands: list[bytes], replies_after: list[int]) -> list[bytes]:
    """Send commands one by one; read the given number of reply lines after each."""
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        f = sock.makefile("rb")

        def read_reply() -> bytes:
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if len(line) < 4 or line[3:4] != b"-":
                    return b"".join(lines)

        read_reply()  # greeting
        for cmd, count in zip(commands, replies_after, strict=True):
            sock.sendall(cmd)
            for _ in range(count):
                out.append(read_reply())
    return out


def test_lmtp_gives_one_reply_per_recipient(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(lmtp=True)
    raw = (REPORTS / "gmail-attached.eml").read_bytes().replace(b"\r\n.", b"\r\n..")
    replies = _lmtp_session(intake.port, [
        b"LHLO mail.example.vn\r\n", b"MAIL FROM:<alice@example.vn>\r\n",
        b"RCPT TO:<report@example.vn>\r\n", b"RCPT TO:<ham@example.vn>\r\n", b"DATA\r\n",
        raw + b".\r\n", b"QUIT\r\n",
    ], [1, 1, 1, 1, 1, 2, 1])
    assert replies[5].startswith(b"250 2.0.0 Report accepted as ")
    assert replies[6].startswith(b"250 2.0.0 Report accepted as ")
    kinds = sorted(c.kind for c in intake.complaints())
    assert kinds == ["ham", "spam"]


def test_optout_hook_receives_its_mail(start_intake: Callable[..., RunningIntake]) -> None:
    seen: list[IntakeRequest] = []

    async def hook(request: IntakeRequest) -> str:
        seen.append(request)
        return "250 2.0.0 Refusal recorded"

    intake = start_intake(hooks={"optout": hook})
    raw = (REPORTS / "gmail-inline.eml").read_bytes()
    assert intake.send(raw, rcpt="optout@example.vn") == (250, "2.0.0 Refusal recorded")
    [req] = seen
    assert (req.reporter, req.recipient, req.raw, req.authenticated, req.local_reporter) == (
        "alice@example.vn", "optout@example.vn", raw, True, True)
    assert intake.complaints() == []  # an opt-out is not a complaint


# -- the command ---------------------------------------------------------------------------------


def test_intake_command_serves_and_stops_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "spamwarden.toml"
    conf.write_text(f'[service]\nstate_dir = "{tmp_path}"\n'
                    f'[intake]\nlisten = "127.0.0.1:{port}"\nlmtp = true\n'
                    'local_domains = ["example.vn"]\n')
    env = dict(os.environ, SPAMWARDEN_REDIS_URL=redis_url)
    proc = subprocess.Popen([sys.executable, "-m", "spamwarden", "intake", "--config", str(conf)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                lmtp = smtplib.LMTP("127.0.0.1", port, timeout=30)
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "intake did not start listening"
                time.sleep(0.1)
        with lmtp:
            lmtp.ehlo_or_helo_if_needed()
            refused = lmtp.sendmail("alice@example.vn", ["report@example.vn"],
                                    (REPORTS / "thunderbird-attached.eml").read_bytes())
            assert refused == {}
        proc.send_signal(signal.SIGHUP)  # systemd's ExecReload: nothing to reload, keep serving
        time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert b'event="complaint accepted"' in err and b"reporter=alice@example.vn" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cfg = config_from_mapping({})
    r = sync_client(cfg, redis_url)
    try:
        # shipped defaults (reputation.require_delivered): nothing was delivered here, so
        # the report is kept for the operator and counts for nothing
        assert r.xlen(COMPLAINTS_KEY) == 0
        assert r.xlen(UNMATCHED_KEY) == 1
        # what the operator sees of it: why it matched nothing, and the original's Message-ID
        [(_, fields)] = r.xrange(UNMATCHED_KEY)
        kept = Complaint.from_fields(fields)
        assert kept.match == "no-delivery"
        assert kept.message_id == "<20241103140107.4f2a9c@mail.promo-shop.example>"
    finally:
        r.close()


def test_stream_is_trimmed_only_past_twice_the_window(redis_url: str) -> None:
    import time

    from spamwarden.reputation.intake import complaint_id

    cfg = config_from_mapping({})
    now = time.time()

    async def add(at: float, n: int) -> str:
        client = async_client(cfg, redis_url)
        try:
            store = RedisComplaintStore(client, seen_ttl=86400, training_ttl=3600)
            c = Complaint(id=complaint_id("spam", "a@example.vn", f"{n:032x}"), kind="spam",
                          reporter="a@example.vn", received_at=at, fingerprint=f"{n:032x}")
            status, _ = await store.add(c, example=b"", reporter_limit=1000)
            return status
        finally:
            await client.aclose()

    r = sync_client(cfg, redis_url)
    try:
        # entries of long ago (ids from their time), then one now: the old ones go
        for n in range(150):
            r.xadd(COMPLAINTS_KEY, {"n": str(n)}, id=f"{int(now * 1000) - 10 * 86400_000 + n}-0")
        r.xadd(COMPLAINTS_KEY, {"n": "recent"}, id=f"{int(now * 1000) - 86400_000}-0")
        assert asyncio.run(add(now, 1)) == "added"
        left = r.xrange(COMPLAINTS_KEY)
        assert [f[b"n"] for _, f in left[-2:-1]] == [b"recent"]  # within two days: kept
        assert len(left) < 152  # approximate trimming removed whole old nodes
    finally:
        r.close()


def test_sessions_over_the_limit_get_421(start_intake: Callable[..., RunningIntake]) -> None:
    intake = start_intake(max_sessions=2)
    first, second = intake.client(), intake.client()
    try:
        first.ehlo("a")
        second.ehlo("b")
        with pytest.raises(smtplib.SMTPConnectError) as err:
            intake.client()
        assert err.value.smtp_code == 421
    finally:
        first.quit()
        second.quit()
    # the slots are free again once those sessions ended
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            code, _ = intake.send((REPORTS / "gmail-attached.eml").read_bytes())
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline, "slots not freed"
            time.sleep(0.05)
    assert code == 250


def test_several_messages_forwarded_at_once(start_intake: Callable[..., RunningIntake]) -> None:
    """Gmail and Thunderbird forward several selected messages as attachments in one mail."""
    intake = start_intake()
    first = (REPORTS / "original-signed.eml").read_bytes()
    second = _variant(first, 7).replace(b"198.51.100.23", b"203.0.113.99")
    parts = b"".join(
        b"--zz\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; "
        b"filename=\"m%d.eml\"\r\n\r\n" % i + m + b"\r\n"
        for i, m in enumerate((first, second, first))  # the third repeats the first
    )
    raw = (b"From: Alice <alice@example.vn>\r\nTo: report@example.vn\r\nSubject: Fwd: spam x3\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain\r\n\r\nthree of them\r\n" + parts + b"--zz--\r\n")
    code, text = intake.send(raw)
    complaints = intake.complaints()
    assert [c.indicators.source_ip for c in complaints] == ["198.51.100.23", "203.0.113.99"]
    ids = [c.id for c in complaints]
    assert (code, text) == (250, f"2.0.0 3 reported messages accepted as {ids[0]}, {ids[1]}, "
                                 f"{ids[0]}")


def test_outcomes_are_counted_in_metrics(start_intake: Callable[..., RunningIntake]) -> None:
    """spamwarden_complaints_total{kind, outcome} follows what the reporter was told."""
    from prometheus_client import REGISTRY

    def value(outcome: str) -> float:
        v = REGISTRY.get_sample_value(
            "spamwarden_complaints_total", {"kind": "spam", "outcome": outcome})
        return v or 0.0

    before = {o: value(o) for o in ("accepted", "duplicate", "refused", "unusable")}
    intake = start_intake()
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    assert intake.send(raw)[0] == 250
    assert intake.send(raw)[0] == 250  # the same report again
    with intake.client() as s:
        s.ehlo("x")
        s.mail("mallory@elsewhere.example")
        assert s.rcpt("report@example.vn")[0] == 550
    assert intake.send(b"Subject: nothing here\r\n\r\njust words\r\n")[0] == 550
    after = {o: value(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {
        "accepted": 1, "duplicate": 1, "refused": 1, "unusable": 1}


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_data_in_flight_budget_defers_with_451_and_trusts_only_a_relays_size(
    start_intake: Callable[..., RunningIntake], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path, where: str,
) -> None:
    """intake.max_data_in_flight bounds the DATA received and handled at once: a session
    reserves the SIZE= a trusted relay declared (127.0.0.1 is one by default; on a unix
    socket whoever its mode lets in), else max_message_bytes; one that finds no room
    within the wait gets 451 4.3.2."""
    import spamwarden.reputation.intake as intake_module

    monkeypatch.setattr(intake_module, "DATA_BUDGET_WAIT", 0.5)
    unix = {"listen": f"unix:{tmp_path}/intake.sock", "lmtp": True} if where == "unix" else {}
    intake = start_intake(max_data_in_flight=100_000, **unix)
    raw = _smtp_lines((REPORTS / "gmail-attached.eml").read_bytes())

    sessions: list[smtplib.SMTP] = []

    def open_data(size: int | None) -> tuple[smtplib.SMTP, int, bytes]:
        s = intake.client()
        sessions.append(s)
        s.ehlo("relay.example.vn")
        assert s.mail("alice@example.vn", [f"SIZE={size}"] if size else [])[0] == 250
        assert s.rcpt("report@example.vn")[0] == 250
        s.putcmd("data")
        code, text = s.getreply()
        return s, code, text

    try:
        big, code, _ = open_data(90_000)
        assert code == 354  # holds 91,024 of 100,000 bytes while its DATA arrives
        small, code, _ = open_data(len(raw))
        assert code == 354  # a declared small message still fits beside it
        small.send(raw + b"\r\n.\r\n")
        assert small.getreply()[0] == 250
        unsized, code, text = open_data(None)  # no SIZE: reserves max_message_bytes: no room
        assert (code, text[:5]) == (451, b"4.3.2"), text
        big.send(raw + b"\r\n.\r\n")
        assert big.getreply()[0] == 250
        again, code, _ = open_data(None)  # room again once the big one was answered
        assert code == 354
        again.send(_variant(raw, 9) + b"\r\n.\r\n")
        assert again.getreply()[0] == 250
    finally:
        for s in sessions:
            s.close()
