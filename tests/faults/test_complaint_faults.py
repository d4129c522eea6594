"""`spamwarden intake` under load while it is SIGKILLed and restarted and Redis is killed,
stopped and restarted: every complaint that got `250` is in the complaint stream exactly once.

Concurrent smtplib clients forward reports to report@ the way an MTA would: a 4xx reply, a
refused connection or a dropped session is retried (bounded in count and time); a 5xx is
final.  Each report carries a different original, so its complaint id (reporter x
fingerprint) is known before sending; the 250 reply names it, and the stream is checked
against the replies.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from dataclasses import dataclass

import pytest
import redis

from spamwarden.reputation.complaints import COMPLAINTS_KEY
from spamwarden.reputation.intake import complaint_id
from spamwarden.reputation.reports import find_original, fingerprint
from tests.support.net import free_port

from .conftest import SOAK, scaled
from .mta import Delivery, deliver_like_an_mta

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LOCAL = "test.local"
REPORT_TO = f"report@{LOCAL}"
N_COMPLAINTS = scaled(200, 2000)
#: rounds of faults: one in make test, up to 4 in make soak (fewer when a scaled-down
#: run has too few messages to space them apart)
CYCLES = 1 if not SOAK else max(1, min(4, N_COMPLAINTS // 400))
CLIENTS = 8
REPORTERS = 20
_ID = re.compile(r"(?:accepted|received) as ([0-9a-f]{32})")


def make_report(i: int, reporter: str) -> bytes:
    """A "forward as attachment" report of one unique spam message."""
    original = (
        f"Received: from mail{i % 9}.spam{i % 5}.example (mail{i % 9}.spam{i % 5}.example "
        f"[203.0.113.{i % 250 + 1}]) by mx.{LOCAL} with ESMTP id Q{i}\r\n"
        f"From: Promo {i} <promo{i}@spam{i % 5}.example>\r\n"
        f"To: {reporter}\r\n"
        f"Subject: Offer {i} just for you\r\n"
        f"Message-ID: <offer-{i}@spam{i % 5}.example>\r\n"
        "Date: Sun, 29 Nov 2026 08:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Unique offer number {i} zq{i}x. Buy now at http://shop{i % 7}.example/o/{i}\r\n"
    ).encode()
    return (  # submitted by the reporter's login, as our Postfix records it
        f"Received: from [127.0.0.1] (unknown [127.0.0.1])\r\n\t(Authenticated sender: "
        f"{reporter})\r\n\tby mx.{LOCAL} (Postfix) with ESMTPA id S{i}\r\n"
        f"From: {reporter}\r\nTo: {REPORT_TO}\r\nSubject: Fwd: Offer {i}\r\n"
        f"Message-ID: <fwd-{i}@{LOCAL}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n"
        "--fwd\r\nContent-Type: text/plain\r\n\r\nThis is spam.\r\n"
        "--fwd\r\nContent-Type: message/rfc822\r\n\r\n"
    ).encode() + original + b"\r\n--fwd--\r\n"


@dataclass
class Outcome(Delivery):
    expected_id: str = ""


def test_every_acknowledged_complaint_is_in_the_stream_exactly_once(
        spamwarden_service, restartable_redis) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    dead_dns = free_port(udp_too=True)  # nothing answers there: no DKIM lookups leave loopback
    intake = spamwarden_service("intake", {
        "redis": {"url": restartable_redis.url, "timeout": "1s"},
        "dns": {"nameservers": [f"127.0.0.1:{dead_dns}"], "timeout": "0.5s"},
        "intake": {"listen": f"127.0.0.1:{port}", "local_domains": [LOCAL],
                   "reporter_rate": 100_000},
        # about durability, not trust: the reported messages were never delivered here,
        # and with require_delivered they would go to the unmatched stream instead
        "reputation": {"require_delivered": False},
    }, port=port)

    jobs = []
    for i in range(N_COMPLAINTS):
        reporter = f"user{i % REPORTERS}@{LOCAL}"
        raw = make_report(i, reporter)
        fp = fingerprint(find_original(raw, local_domains=(LOCAL,)))
        jobs.append((reporter, raw, Outcome(expected_id=complaint_id("spam", reporter, fp))))
    assert len({o.expected_id for _, _, o in jobs}) == N_COMPLAINTS

    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + (150 if not SOAK else 3000)

    def client(share: list[tuple[str, bytes, Outcome]]) -> None:
        for reporter, raw, outcome in share:
            deliver_like_an_mta(port, mail_from=reporter, rcpt=REPORT_TO, raw=raw, into=outcome,
                                deadline=deadline, max_attempts=80, timeout=15)
            with lock:
                done[0] += 1

    # Faults at fixed points of progress, so each one lands mid-run whatever the speed.
    faults: list[str] = []

    def inject() -> None:
        cycles = CYCLES
        plan = []
        for c in range(cycles):
            # in the first 90 % of the run, so that late faults still find reports to hit
            base, step = 0.9 * c / cycles, 0.9 / cycles
            plan += [(base + step * 0.15, "kill intake"), (base + step * 0.35, "kill redis"),
                     (base + step * 0.55, "stop redis"), (base + step * 0.70, "kill intake"),
                     (base + step * 0.85, "kill both")]
        last = -N_COMPLAINTS
        for at, what in plan:
            # at its point of progress, and never right on top of the previous fault
            target = max(at * N_COMPLAINTS, last + 0.08 * N_COMPLAINTS / CYCLES)
            while done[0] < target and time.monotonic() < deadline:
                time.sleep(0.02)
            last = done[0]
            if time.monotonic() >= deadline:
                return
            faults.append(f"{what} at {done[0]}")
            if what in ("kill intake", "kill both"):
                intake.kill()
            if what in ("kill redis", "kill both"):
                restartable_redis.kill()
            if what == "stop redis":
                restartable_redis.stop()
            time.sleep(0.5)  # clients meet the outage
            if not restartable_redis.running():
                restartable_redis.start()
            if not intake.running():
                intake.start()

    threads = [threading.Thread(target=client, args=(jobs[k::CLIENTS],), daemon=True)
               for k in range(CLIENTS)]
    injector = threading.Thread(target=inject, daemon=True)
    for t in threads:
        t.start()
    injector.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + 30))
    injector.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "clients still running at the deadline"
    assert len(faults) == 5 * CYCLES, f"not every fault was injected: {faults}"

    # Every report ended with a 250 naming its own complaint id (none refused, none lost).
    not_accepted = [(o.expected_id, o.final, o.transient[-3:]) for _, _, o in jobs
                    if not o.final.startswith("250")]
    assert not not_accepted, (f"{len(not_accepted)} reports not accepted: {not_accepted[:5]}\n"
                              + intake.log()[-3000:])
    acknowledged = {}
    for _, _, o in jobs:
        m = _ID.search(o.final)
        assert m is not None and m.group(1) == o.expected_id, (o.final, o.expected_id)
        acknowledged[o.expected_id] = o

    # After recovery: the stream holds each acknowledged complaint exactly once, nothing else.
    client_ = redis.Redis.from_url(restartable_redis.url)
    try:
        entries = client_.xrange(COMPLAINTS_KEY)
    finally:
        client_.close()
    counts = collections.Counter(fields[b"id"].decode() for _, fields in entries)
    duplicated = {cid: n for cid, n in counts.items() if n > 1}
    missing = [cid for cid in acknowledged if counts[cid] == 0]
    unknown = [cid for cid in counts if cid not in acknowledged]
    assert not missing, f"{len(missing)} acknowledged complaints lost, e.g. {missing[:3]}"
    assert not duplicated, f"complaints stored more than once: {list(duplicated.items())[:3]}"
    assert not unknown, f"complaints nobody sent: {unknown[:3]}"
    retried = sum(1 for _, _, o in jobs if o.attempts > 1)
    duplicates_answered = sum(1 for _, _, o in jobs if "already received" in o.final)
    print(f"{N_COMPLAINTS} complaints, {retried} retried, {duplicates_answered} answered as "
          f"already received after a lost reply; faults: {faults}")
