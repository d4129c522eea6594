"""Who can list whom, end to end with shipped defaults: a real Postfix with `spamwarden
milter`, a real Redis and DNS server (SPF, DKIM, DMARC), `spamwarden intake`, `spamwarden
worker` and `spamwarden rbl` as processes.  Reports reach intake through Postfix's
transport_maps, as in production; the sender's client address is set with Postfix's XCLIENT
(the milter sees it as the SMTP client).

Local users a@, b@, c@test.local, each reporting logged in (SASL), as intake.require_auth
demands.  Attacks (each by three real reporters, the listing threshold: what compromised
accounts or a few users fooled into forwarding a fabricated message can do):

1. reports attaching a fabricated message (``Received: ... [198.51.100.23]``, From
   news@innocent-shop.example, a link to innocent-shop.example) that was never delivered
   here: kept as unmatched, nothing listed;
2. ARF reports claiming ``Source-IP: 8.8.8.8``: nothing listed;
3. a phish delivered here to a, b and c from 203.0.113.99 whose From claims brand.test
   (no SPF/DKIM/DMARC for it), reported by all three: the client IP is listed, brand.test
   is not;

and the genuine path: a DKIM-signed newsletter from legit.test (SPF, DKIM and DMARC pass)
delivered from 203.0.113.5 to a, b and c, each reporting it in another client's forward
shape (Gmail attached, Outlook attached, Gmail inline): 203.0.113.5 and legit.test are
listed and answer in DNS.
"""

from __future__ import annotations

import email
import email.policy
import importlib.util
import json
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spamwarden.reputation.complaints import COMPLAINTS_KEY, UNMATCHED_KEY, Complaint
from spamwarden.reputation.deliveries import message_id_hash, message_key, normalize_reporter
from tests.conftest import DATA
from tests.support.messages import make_message
from tests.support.milterproc import MilterProcess, spamwarden_command, write_toml
from tests.support.net import free_port, wait_until
from tests.support.rblserver import ZONE, RblProcess, ip_name

pytestmark = pytest.mark.integration

USERS = ("a@test.local", "b@test.local", "c@test.local")
LOGINS = {u: f"{u.split('@')[0]}-secret" for u in USERS}
REPORT = "report@test.local"
LEGIT_IP, PHISH_IP = "203.0.113.5", "203.0.113.99"


def _samples() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_samples", DATA / "reports" / "build_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLES = _samples()


class Site:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    postfix: Any
    rbl: RblProcess
    client: redis.Redis
    legit_key: Any
    base: Path
    config: Path


@pytest.fixture(scope="module")
def site(dns_server: Any, auth_zone: Any, module_redis_url: str,
         spamwarden_milter_module: Any, postfix_instance_module: Any,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("trust-e2e")
    zone = auth_zone.zone
    zone.add_spf("legit.test", f"v=spf1 ip4:{LEGIT_IP} -all")
    zone.add_dmarc("legit.test", "v=DMARC1; p=none")
    legit_key = zone.add_dkim_key("legit.test", "sel1", algorithm="rsa", bits=1024)
    dns_server.reload()
    intake_port = free_port()
    sections: dict[str, dict[str, object]] = {
        "service": {"state_dir": str(base / "state")},
        "redis": {"url": module_redis_url},
        "dns": {"nameservers": [dns_server.address], "timeout": "1s"},
        "intake": {"listen": f"127.0.0.1:{intake_port}", "local_domains": ["test.local"]},
        "consent": {"enabled": False},
    }
    config = write_toml(base / "spamwarden.toml", sections)
    milter = spamwarden_milter_module(
        nameservers=[dns_server.address], redis_url=module_redis_url,
        overrides={"intake": {"local_domains": ["test.local"]}, "consent": {"enabled": False}})
    mailboxes = ", ".join(f"{u}={u.split('@')[0]}/" for u in (*USERS, REPORT))
    postfix = postfix_instance_module(
        listeners={"smtp": milter.postfix_socket}, mailbox=USERS[0], sasl_users=LOGINS,
        main_cf={"virtual_mailbox_maps": f"inline:{{ {mailboxes} }}",
                 "transport_maps": f"inline:{{ {REPORT}=smtp:[127.0.0.1]:{intake_port} }}",
                 "smtpd_authorized_xclient_hosts": "127.0.0.0/8"})
    intake = MilterProcess(argv=[*spamwarden_command(), "intake", "--config", str(config)],
                           port=intake_port, log_path=base / "intake.log")
    intake.start()
    worker_log = open(base / "worker.log", "ab")
    worker = subprocess.Popen([*spamwarden_command(), "worker", "--config", str(config)],
                              stdout=worker_log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    (base / "rbl").mkdir()
    rbl = RblProcess(base / "rbl", module_redis_url)
    client = redis.Redis.from_url(module_redis_url)
    try:
        rbl.start()
        yield Site(postfix=postfix, rbl=rbl, client=client, legit_key=legit_key, base=base,
                   config=config)
    finally:
        rbl.stop()
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        worker_log.close()
        intake.stop()
        client.close()


# -- helpers ----------------------------------------------------------------------------------


def deliver(site: Site, raw: bytes, *, client_ip: str, helo: str, mail_from: str,
            rcpts: tuple[str, ...] = USERS) -> None:
    """SMTP to Postfix as the client ``client_ip`` (XCLIENT), as a sending MTA would."""
    with smtplib.SMTP("127.0.0.1", site.postfix.port, local_hostname="relay.test",
                      timeout=60) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("XCLIENT", f"ADDR={client_ip} NAME=[UNAVAILABLE] HELO={helo}")
        assert code == 220, (code, text)
        smtp.ehlo(helo)
        assert smtp.sendmail(mail_from, list(rcpts), raw) == {}


def mailbox_copy(site: Site, user: str, msgid: str, *, timeout: float = 30) -> bytes:
    maildir = site.postfix.mail_base / user.split("@")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sub in ("new", "cur"):
            for path in (maildir / sub).glob("*") if (maildir / sub).exists() else ():
                data: bytes = path.read_bytes()
                msg = email.message_from_bytes(data, policy=email.policy.compat32)
                if (msg.get("Message-ID") or "").strip() == msgid:
                    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        time.sleep(0.05)
    pytest.fail(f"{msgid} not delivered to {user}; maillog:\n{site.postfix.maillog()[-3000:]}")


def recorded(site: Site, msgid: str, users: tuple[str, ...] = USERS) -> None:
    """Wait until the milter has recorded the delivery of ``msgid`` to each of ``users``.
    It writes the delivery ledger after its reply, on a background thread that batches
    the writes; Postfix may put the message in the mailboxes first, and a report racing
    that write would be stored as unmatched (no recipient reports that fast)."""
    mid = message_id_hash(msgid)
    wait_until(lambda: all(
                   site.client.exists(message_key(mid, normalize_reporter(u, delimiters="+")))
                   for u in users),
               timeout=30, what=f"the delivery of {msgid} recorded")


def report(site: Site, reporter: str, raw: bytes) -> None:
    """A user's report to report@, logged in (SMTP AUTH), through Postfix (which records
    the login and hands the report to intake)."""
    with smtplib.SMTP("127.0.0.1", site.postfix.port, local_hostname="laptop.test.local",
                      timeout=60) as smtp:
        smtp.login(reporter, LOGINS[reporter])
        assert smtp.sendmail(reporter, [REPORT], raw) == {}


def stream(site: Site, key: str) -> list[Complaint]:
    entries: Any = site.client.xrange(key)
    return [Complaint.from_fields(f) for _, f in entries]


def about(complaints: list[Complaint], fp: str) -> list[Complaint]:
    return [c for c in complaints if c.fingerprint == fp]


def wait_stored(site: Site, count: int, *, subject: str) -> dict[str, list[Complaint]]:
    """The reports of ``subject`` once ``count`` are stored, by stream (counted or not)."""

    def found() -> dict[str, list[Complaint]]:
        got = {key: [c for c in stream(site, key) if c.indicators.subject == subject]
               for key in (COMPLAINTS_KEY, UNMATCHED_KEY)}
        return got if sum(len(v) for v in got.values()) >= count else {}

    return wait_until(found, timeout=60, what=f"{count} reports of {subject!r} stored")


def match_of(c: Complaint) -> str | None:
    return getattr(c, "match", None)


def listed(site: Site, name: str) -> bool:
    """A listing answers in DNS.  Every name under ``.test`` answers the RFC 5782 §5 test
    point ``127.0.0.2`` (``test.dbl.<zone>``), so for domains that answer is not a listing
    (domain listings answer ``127.0.1.x``; IP listings for complaints ``127.0.0.2``)."""
    answers = site.rbl.dig_short(name)
    if f".dbl.{ZONE}" in name:
        return any(a != "127.0.0.2" for a in answers)
    return bool(answers)


def dbl(domain: str) -> str:
    return f"{domain}.dbl.{ZONE}"


def attach(reporter: str, original: bytes) -> bytes:
    """A Gmail "Forward as attachment" of ``original`` by ``reporter``."""
    forward: bytes = SAMPLES.gmail_attached(original)
    return forward.replace(b"alice@example.vn", reporter.encode())


# -- the attacks --------------------------------------------------------------------------------

FABRICATED = (
    b"Return-Path: <news@innocent-shop.example>\r\n"
    b"Received: from mail.innocent-shop.example (mail.innocent-shop.example [198.51.100.23])\r\n"
    b"\tby mx.test.local (Postfix) with ESMTP id 4XyZ9Q0000\r\n"
    b"\tfor <a@test.local>; Sun, 03 Nov 2024 14:01:07 +0700\r\n"
    b"From: Innocent Shop <news@innocent-shop.example>\r\n"
    b"To: <a@test.local>\r\n"
    b"Subject: Autumn sale at Innocent Shop\r\n"
    b"Date: Sun, 03 Nov 2024 14:01:07 +0700\r\n"
    b"Message-ID: <fabricated-1@innocent-shop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    b"Everything half price: https://innocent-shop.example/sale\r\n"
)


def test_fabricated_reports_from_three_forged_reporters_list_nothing(site: Site) -> None:
    for user in USERS:
        report(site, user, attach(user, FABRICATED))
    stored = wait_stored(site, 3, subject="Autumn sale at Innocent Shop")
    assert not stored[COMPLAINTS_KEY]  # nothing counted
    kept = stored[UNMATCHED_KEY]  # kept for the operator
    assert {c.reporter for c in kept} == set(USERS)
    assert {match_of(c) for c in kept} == {"no-delivery"}
    # the operator sees them
    shown = subprocess.run([*spamwarden_command(), "complaints", "--unmatched", "--json",
                            "--config", str(site.config)], capture_output=True, text=True,
                           timeout=60, check=True)
    rows = [r for r in json.loads(shown.stdout)
            if r["indicators"]["subject"] == "Autumn sale at Innocent Shop"]
    assert len(rows) == 3 and {r["match"] for r in rows} == {"no-delivery"}


ARF = (DATA / "reports" / "arf-forged-source-ip.eml").read_bytes()


def test_arf_source_ip_claims_list_nothing(site: Site) -> None:
    for user in USERS:
        report(site, user, ARF.replace(b"mallory@example.vn", user.encode()))
    stored = wait_stored(site, 3, subject="Big sale")
    assert not stored[COMPLAINTS_KEY]
    kept = stored[UNMATCHED_KEY]
    assert {match_of(c) for c in kept} == {"no-delivery"}
    assert {c.indicators.source_ip for c in kept} == {"8.8.8.8"}  # what it claimed, kept to see


PHISH_BODY = ("Dear customer,\r\n\r\nYour account needs to be verified today:\r\n"
              "https://brand-login.phish-host.test/verify\r\n\r\nBrand Bank security\r\n")


def test_a_phish_claiming_a_brand_lists_its_client_not_the_brand(site: Site) -> None:
    raw, msgid = make_message(from_addr="Brand Bank <security@brand.test>",
                              subject="Verify your account", rcpt="customers@brand.test",
                              body=PHISH_BODY)
    deliver(site, raw, client_ip=PHISH_IP, helo="mx.phish-host.test",
            mail_from="bounce@phish-host.test")
    recorded(site, msgid)
    for user in USERS:
        report(site, user, attach(user, mailbox_copy(site, user, msgid)))
    matched = wait_stored(site, 3, subject="Verify your account")[COMPLAINTS_KEY]
    assert {c.indicators.source_ip for c in matched} == {PHISH_IP}
    # neither the From (no DMARC) nor the MAIL FROM (no SPF pass) was authenticated
    assert {(c.indicators.from_domain, c.indicators.mail_from_domain) for c in matched} == {
        (None, None)}
    assert {match_of(c) for c in matched} == {"matched"}
    wait_until(lambda: listed(site, ip_name(PHISH_IP)), timeout=30, what="the phish IP listed")
    assert not listed(site, dbl("brand.test"))


NEWS_BODY = ("Hello,\n\nThis week: new notebooks at https://legit.test/notebooks and pens.\n\n"
             "Regards,\nLegit News\n")


def test_genuine_reports_of_a_delivered_message_list_its_sender(site: Site) -> None:
    subject = "Legit weekly news"
    raw, msgid = make_message(from_addr="Legit News <news@legit.test>", subject=subject,
                              rcpt="subscribers@legit.test",
                              body=NEWS_BODY.replace("\n", "\r\n"))
    signed = site.legit_key.sign(raw, headers=(b"from", b"to", b"subject", b"date",
                                               b"message-id"))
    deliver(site, signed, client_ip=LEGIT_IP, helo="mail.legit.test",
            mail_from="news@legit.test")
    a, b, _ = (mailbox_copy(site, u, msgid) for u in USERS)  # c reports inline, below
    recorded(site, msgid)
    assert b"dkim=pass" in a and b"dmarc=pass" in a, a[:2000]
    report(site, USERS[0], attach(USERS[0], a))
    report(site, USERS[1], SAMPLES.outlook_attached(b))
    inline = SAMPLES.gmail_inline(
        REPORT, plain=NEWS_BODY, html=f"<html><body><p>{NEWS_BODY}</p></body></html>",
        subject=subject, sender="Legit News", sender_addr="news@legit.test")
    report(site, USERS[2], inline)
    matched = wait_stored(site, 3, subject=subject)[COMPLAINTS_KEY]
    assert {c.source for c in matched} == {"attached", "inline"}
    assert {match_of(c) for c in matched} == {"matched"}
    assert {c.reporter for c in matched} == set(USERS)
    ind = matched[0].indicators
    assert (ind.source_ip, ind.from_domain) == (LEGIT_IP, "legit.test")
    assert "legit.test" in ind.dkim_verified
    done = time.monotonic()
    wait_until(lambda: listed(site, ip_name(LEGIT_IP)) and listed(site, dbl("legit.test")),
               timeout=30, what="the sender's IP and domain listed")
    print(f"listed in DNS {time.monotonic() - done:.3f}s after the third report was stored")


def test_the_attacks_listed_nothing(site: Site) -> None:
    """Runs last: the worker and the DNS server handle complaints in order, so once the
    genuine sender's domain answers, anything the attacks had caused would too."""
    wait_until(lambda: listed(site, dbl("legit.test")), timeout=30, what="the genuine listing")
    for name in (ip_name("198.51.100.23"), ip_name("8.8.8.8"), dbl("innocent-shop.example"),
                 dbl("brand.test")):
        assert not listed(site, name), name
