"""Mail through a real private Postfix and `spamwarden milter` while Redis is stopped, killed
and restarted and the milter is SIGKILLed and restarted mid-run.

The sender behaves like an MTA: a 4xx reply (Postfix's milter_default_action = tempfail while
the milter is gone), a refused connection or a dropped session is retried, bounded in count
and time; a 5xx is final.  Afterwards the accounting is exact, by each message's unique
Message-ID: every message that got 250 is in the Maildir exactly once; every message refused
with 5xx is not, and the maillog has Postfix's milter-reject line (with the reason) for it;
nothing is missing, duplicated or left in the queue.
"""

from __future__ import annotations

import collections
import email
import email.policy
import inspect
import re
import threading
import time
from dataclasses import dataclass

import pytest

from spamwarden.reputation.lookup import RedisListingLookup
from tests.support.messages import make_message
from tests.support.replies import MILTER_REJECT

from .conftest import SOAK, scaled, wait_for
from .mta import Delivery, deliver_like_an_mta

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RCPT = "user@test.local"
N_MESSAGES = scaled(200, 2000)
#: rounds of faults: one in make test, up to 5 in make soak (fewer when a scaled-down
#: run has too few messages to space them apart)
CYCLES = 1 if not SOAK else max(1, min(5, N_MESSAGES // 400))
SENDERS = 4
_QUEUED = re.compile(r"queued as ([0-9A-Za-z]+)")
#: seconds the milter reuses a listing answer (RedisListingLookup's cache_ttl), plus a margin
LOOKUP_CACHE = inspect.signature(RedisListingLookup).parameters["cache_ttl"].default + 0.3
#: seconds Redis stays stopped (well past LOOKUP_CACHE), and the messages per second the
#: senders may start meanwhile (mail keeps being scanned after the cached answers expire)
REDIS_DOWN_SECONDS = 2.5
REDIS_DOWN_RATE = 12


@dataclass
class Sent(Delivery):
    seq: int = 0
    msgid: str = ""
    mail_from: str = ""
    raw: bytes = b""
    forged: bool = False
    queue_id: str | None = None


def build_messages(auth_zone) -> list[Sent]:  # type: ignore[no-untyped-def]
    """Four in five: DKIM-signed, SPF-passing mail from good.test (delivered); one in five:
    forged mail from bank.test, whose DMARC policy is reject (refused with 550 5.7.1)."""
    out = []
    for i in range(N_MESSAGES):
        forged = i % 5 == 4
        if forged:
            raw, msgid = make_message(from_addr="Bank <security@bank.test>",
                                      subject=f"Verify your account {i}",
                                      extra_headers=(("X-Fault-Seq", str(i)),))
            out.append(Sent(seq=i, msgid=msgid, mail_from="security@bank.test", raw=raw, forged=True))
        else:
            raw, msgid = make_message(from_addr="Alice <alice@good.test>",
                                      subject=f"Minutes {i}",
                                      extra_headers=(("X-Fault-Seq", str(i)),))
            out.append(Sent(seq=i, msgid=msgid, mail_from="alice@good.test",
                            raw=auth_zone.good_rsa.sign(raw), forged=False))
    return out


def by_id_seq(messages: list[Sent], seq: int) -> Sent:
    return next(m for m in messages if m.seq == seq)


def send_with_retries(port: int, m: Sent, *, deadline: float, max_attempts: int) -> None:
    deliver_like_an_mta(port, mail_from=m.mail_from, rcpt=RCPT, raw=m.raw, into=m,
                        deadline=deadline, max_attempts=max_attempts, timeout=90)
    if m.final.startswith("250"):
        found = _QUEUED.search(m.final)
        m.queue_id = found.group(1) if found else None


def test_every_message_is_delivered_or_refused_exactly_once_through_faults(
        postfix_instance, spamwarden_milter, dns_server, auth_zone,
        restartable_redis) -> None:  # type: ignore[no-untyped-def]
    milter = spamwarden_milter(nameservers=[dns_server.address],
                               redis_url=restartable_redis.url, authserv_id="mx.test",
                               overrides={"redis": {"timeout": "0.5s"}})
    postfix = postfix_instance(listeners={"mx": milter.postfix_socket},
                               main_cf={"milter_default_action": "tempfail"})
    port = postfix.smtp["mx"].port
    messages = build_messages(auth_zone)
    done = [0]
    started = [0]
    # Senders start a message only while fewer than `ceiling` have been started: the
    # injector holds the mail at each fault's message count until that fault has fired, so
    # every fault meets mail still to send however fast Postfix and the milter are.
    ceiling = [0.0]  # the injector sets it before the first fault
    lock = threading.Lock()
    deadline = time.monotonic() + (180 if not SOAK else 5400)

    def sender(share: list[Sent]) -> None:
        for m in share:
            while time.monotonic() < deadline:
                with lock:
                    if started[0] < ceiling[0]:
                        started[0] += 1
                        break
                time.sleep(0.005)
            send_with_retries(port, m, deadline=deadline, max_attempts=120)
            with lock:
                done[0] += 1

    faults: list[str] = []
    redis_down: list[float] = []  # monotonic times: stopped, started again
    redis_stop_count = [0]  # messages done when Redis was stopped

    def inject() -> None:
        cycles = CYCLES
        plan = []
        for c in range(cycles):
            # in the first 90 % of the run, so that late faults still find mail to hit
            base, step = 0.9 * c / cycles, 0.9 / cycles
            plan += [(base + step * 0.10, "stop redis"), (base + step * 0.20, "start redis"),
                     (base + step * 0.35, "kill milter"), (base + step * 0.50, "kill redis"),
                     (base + step * 0.65, "kill milter"), (base + step * 0.80, "kill both")]
        for at, what in plan:
            # Fixed message counts: senders may run SENDERS messages past the count (so the
            # fault hits sessions in flight), no further until the fault has fired.
            target = int(at * N_MESSAGES)
            if what != "start redis":
                with lock:
                    ceiling[0] = target + SENDERS
            while time.monotonic() < deadline:
                if what == "start redis":
                    # Redis stays down long enough to outlive the milter's listing cache;
                    # meanwhile mail trickles (REDIS_DOWN_RATE messages/s past the stop) so
                    # that some is scanned after the cache expired, however fast delivery is.
                    down_for = time.monotonic() - redis_down[-1]
                    with lock:
                        ceiling[0] = (redis_stop_count[0] + SENDERS
                                      + int(REDIS_DOWN_RATE * down_for))
                    if done[0] >= target and down_for >= REDIS_DOWN_SECONDS:
                        break
                elif done[0] >= target:
                    break
                time.sleep(0.02)
            if time.monotonic() >= deadline:
                return
            faults.append(f"{what} at {done[0]}")
            if what == "stop redis":
                restartable_redis.stop()
                redis_down.append(time.monotonic())
                redis_stop_count[0] = done[0]
                continue  # stays down while mail flows
            if what == "start redis":
                redis_down.append(time.monotonic())
                restartable_redis.start()
                continue
            if what in ("kill milter", "kill both"):
                milter.kill()
            if what in ("kill redis", "kill both"):
                restartable_redis.kill()
            time.sleep(0.5)  # senders meet the outage (Postfix answers 451 4.7.1)
            if not restartable_redis.running():
                restartable_redis.start()
            if not milter.running():
                milter.start()
        with lock:
            ceiling[0] = float(N_MESSAGES)  # every fault fired: the rest flows freely

    threads = [threading.Thread(target=sender, args=(messages[k::SENDERS],), daemon=True)
               for k in range(SENDERS)]
    injector = threading.Thread(target=inject, daemon=True)
    for t in threads:
        t.start()
    injector.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + 60))
    injector.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "senders still running at the deadline"
    assert len(faults) == 6 * CYCLES, f"not every fault was injected: {faults}"

    # Every message reached a final answer, the one its content calls for.
    unfinished = [(m.seq, m.transient[-3:]) for m in messages if not m.final]
    assert not unfinished, f"{len(unfinished)} messages never got a final reply: {unfinished[:5]}"
    wrong = [(m.seq, m.forged, m.final) for m in messages
             if m.final.startswith("250") == m.forged]
    assert not wrong, f"unexpected final replies: {wrong[:5]}\n{milter.log()[-3000:]}"
    refused = [m for m in messages if not m.final.startswith("250")]
    assert all(m.final.startswith(MILTER_REJECT.line) for m in refused), refused[0].final

    # Postfix delivers everything it took; nothing stays queued.
    accepted = [m for m in messages if m.final.startswith("250")]
    wait_for(lambda: postfix.delivered_count() >= len(accepted), timeout=120,
             what=f"{len(accepted)} deliveries")
    wait_for(lambda: postfix.queue() == [], timeout=60, what="an empty Postfix queue")
    delivered: collections.Counter[str] = collections.Counter()
    unavailable_note: dict[str, str] = {}
    for path in postfix.delivered():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        mid = (msg.get("Message-ID") or "").strip()
        delivered[mid] += 1
        unavailable_note[mid] = " ".join(
            f"{msg.get('X-Spam-Status') or ''} {msg.get('X-Spam-Unavailable') or ''}".split())
    by_id = {m.msgid: m for m in messages}
    missing = [m.seq for m in accepted if delivered[m.msgid] == 0]
    duplicated = {k: n for k, n in delivered.items() if n > 1}
    unexpected = [k for k in delivered if k not in by_id or not by_id[k].final.startswith("250")]
    assert not missing, f"{len(missing)} accepted messages not delivered: {missing[:10]}"
    assert not duplicated, f"delivered more than once: {list(duplicated.items())[:5]}"
    assert not unexpected, f"delivered but refused or unknown: {unexpected[:5]}"

    # Each refusal is in Postfix's log with the milter's reason, tied to the message by its
    # queue id (cleanup logs the Message-ID before the milter's end-of-message verdict).
    maillog = postfix.maillog()
    qid_of = {mid: qid for qid, mid in
              re.findall(r" ([0-9A-F]{6,}): message-id=(<[^>]*>)", maillog)}
    rejects = collections.Counter(re.findall(
        r" ([0-9A-F]{6,}): milter-reject: END-OF-MESSAGE .*?: 5\.7\.1 ", maillog))
    unlogged = [m.seq for m in refused if rejects[qid_of.get(m.msgid, "?")] != 1]
    assert not unlogged, f"refusals without a milter-reject log line: {unlogged[:10]}"
    # Mail scanned while Redis was down says so (a *_LOOKUP_FAILED symbol in X-Spam-Status,
    # or X-Spam-Unavailable naming Redis), and was still delivered.
    # (An answer cached just before the outage may be reused for LOOKUP_CACHE seconds.)
    during = [m for m in accepted if redis_down[0] + LOOKUP_CACHE < m.last_try[0]
              and m.last_try[1] < redis_down[1]]
    assert during, "no message went through while Redis was stopped: the test did not test it"
    silent = [m.seq for m in during if "LOOKUP_FAILED" not in unavailable_note[m.msgid]
              and "redis" not in unavailable_note[m.msgid].lower()]
    if silent:
        verdicts = [line for line in milter.log().splitlines()
                    if "verdict" in line or "lookup failed" in line]
        down_at = [time.time() - (time.monotonic() - t) for t in redis_down]
        pytest.fail(f"scanned without Redis but nothing says so: {silent[:10]}, e.g. "
                    f"{unavailable_note[by_id_seq(messages, silent[0]).msgid]!r}; Redis down "
                    f"from {down_at[0]:.2f} to {down_at[1]:.2f}; milter log:\n"
                    + "\n".join(verdicts[-80:]))
    retried = sum(1 for m in messages if m.attempts > 1)
    tempfails = collections.Counter(t.split(" ", 1)[0] for m in messages for t in m.transient)
    print(f"{N_MESSAGES} messages: {len(accepted)} delivered once, {len(refused)} refused "
          f"550 5.7.1 and logged; {len(during)} scanned without Redis (header: "
          f"{unavailable_note[during[0].msgid]!r}); {retried} retried ({dict(tempfails)}); faults: {faults}")
