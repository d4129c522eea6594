"""spamwarden.rules.processes: the engine in forked children, and what happens when one fails."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import HAVE_HYPERSCAN, RuleEngine, RulesError, parse_rule_text
from spamwarden.rules.processes import EngineProcesses

RULES = """
body     BUY_NOW       /buy now/i
describe BUY_NOW       Says buy now
score    BUY_NOW       2.5
header   FROM_EXAMPLE  From =~ /example\\.org/
score    FROM_EXAMPLE  0.5
uri      SHOP_URI      /shop\\.example\\.com/
score    SHOP_URI      1.0
meta     BOTH_SIGNS    BUY_NOW && SHOP_URI
score    BOTH_SIGNS    1.5
"""


def message(subject: str = "Offer", body: str = "buy now at http://shop.example.com/") -> bytes:
    return (f"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
            f"Message-ID: <m@example.org>\r\n\r\n{body}\r\n").encode()


class SlowEngine(RuleEngine):
    """Sleeps on a Subject of "slow", raises on "boom": what a child does with them."""

    def check_prepared(self, msg):  # type: ignore[no-untyped-def]
        if msg.view.subject == "slow":
            time.sleep(30)
        if msg.view.subject == "boom":
            raise ValueError("bad input")
        return super().check_prepared(msg)


@pytest.fixture
def engine() -> RuleEngine:
    return SlowEngine(parse_rule_text(RULES), use_hyperscan=HAVE_HYPERSCAN)


@pytest.fixture
def procs(engine: RuleEngine) -> Iterator[EngineProcesses]:
    p = EngineProcesses(engine, processes=2, timeout=2.0)
    try:
        yield p
    finally:
        p.close()


def alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def test_children_give_the_engines_hits(engine: RuleEngine, procs: EngineProcesses) -> None:
    raw = message()
    want = engine.check(parse_message(raw), raw)
    assert {h.name for h in want} == {"BUY_NOW", "FROM_EXAMPLE", "SHOP_URI", "BOTH_SIGNS"}
    got = procs.check(parse_message(raw), raw)
    assert got == want
    assert [h.description for h in got if h.name == "BUY_NOW"] == ["Says buy now"]
    assert all(pid != os.getpid() for pid in procs.pids())
    quiet = message(body="nothing to see")
    assert {h.name for h in procs.check(parse_message(quiet), quiet)} == {"FROM_EXAMPLE"}


def test_an_error_in_a_child_is_the_callers_error_and_the_child_lives(
        procs: EngineProcesses) -> None:
    pids = procs.pids()
    raw = message(subject="boom")
    with pytest.raises(RulesError, match="ValueError: bad input"):
        procs.check(parse_message(raw), raw)
    assert procs.pids() == pids
    ok = message()
    assert procs.check(parse_message(ok), ok)


def test_a_child_dead_while_idle_is_replaced_before_use(procs: EngineProcesses) -> None:
    raw = message()
    before = procs.pids()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    for _ in range(4):  # no message is lost to a child that died between messages
        assert procs.check(parse_message(raw), raw)
    after = procs.pids()
    assert len(after) == 2 and not set(after) & set(before)
    assert all(alive(p) for p in after)


def test_a_child_dying_on_a_message_fails_that_message_only(procs: EngineProcesses) -> None:
    raw = message(subject="slow")
    victim: list[int] = []

    def kill_busy_child() -> None:
        time.sleep(0.5)
        for pid in procs.pids():
            os.kill(pid, signal.SIGKILL)
            victim.append(pid)
            return

    import threading

    t = threading.Thread(target=kill_busy_child)
    t.start()
    with pytest.raises(RulesError):
        procs.check(parse_message(raw), raw)
    t.join()
    ok = message()
    assert procs.check(parse_message(ok), ok)
    assert victim[0] not in procs.pids()


def test_a_child_that_hangs_is_killed_and_replaced(procs: EngineProcesses) -> None:
    before = set(procs.pids())
    raw = message(subject="slow")
    with pytest.raises(RulesError, match="no answer within 2 s"):
        procs.check(parse_message(raw), raw)
    after = set(procs.pids())
    assert len(after) == 2 and len(after - before) == 1
    gone = (before - after).pop()
    assert not alive(gone)
    ok = message()
    assert procs.check(parse_message(ok), ok)


def test_close_stops_and_reaps_every_child(engine: RuleEngine) -> None:
    p = EngineProcesses(engine, processes=2, timeout=2.0)
    pids = p.pids()
    assert all(alive(pid) for pid in pids)
    p.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    raw = message()
    with pytest.raises(RulesError, match="stopped"):
        p.check(parse_message(raw), raw)


def test_bad_process_count() -> None:
    with pytest.raises(ValueError):
        EngineProcesses(RuleEngine(parse_rule_text(RULES), use_hyperscan=False),
                        processes=0, timeout=1.0)


# SpamAssassin's __PDS_TONAME_EQ_TOLOCAL: cubic over white space (seconds a message here)
TONAME_RULE = "header NAME_EQ_LOCAL To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1\\@/\n"


def test_the_slow_lane_is_kept_by_the_parent_for_every_child() -> None:
    """Two hostile messages with one engine process and one place in the slow lane: a
    second child is started for the lane; one message goes on in it, the other finds it
    taken and stops at ``after``; an ordinary message is answered while the first still
    runs, and the place is free again after it (also when its child is killed)."""
    from concurrent.futures import ThreadPoolExecutor

    from spamwarden.rules import SLOW_LANE_BUSY, TIME_LIMIT_EXCEEDED, SlowLane

    lane = SlowLane(after=0.1, width=1)
    eng = RuleEngine(parse_rule_text(TONAME_RULE + RULES), use_hyperscan=HAVE_HYPERSCAN,
                     time_limit=3.0, slow_lane=lane)
    hostile = message().replace(
        b"To: bob@example.net\r\n",
        b"".join(b"To:" + b" " * 990 + b"\r\n" for _ in range(60)) + b"To: b@\r\n")
    p = EngineProcesses(eng, processes=1, timeout=20.0)
    try:
        assert len(p.pids()) == 2
        with ThreadPoolExecutor(3) as callers:
            first = callers.submit(p.check, parse_message(hostile), hostile)
            for _ in range(6000):  # (until the first message is in the lane)
                if lane.in_use == 1:
                    break
                time.sleep(0.01)
            assert lane.in_use == 1
            second = p.check(parse_message(hostile), hostile)  # (the other child)
            ok = message()
            ordinary = p.check(parse_message(ok), ok)
            assert not first.done()
            slow = first.result(timeout=60)
        assert lane.in_use == 0
        late = {h.name: h.description for h in second if h.name == TIME_LIMIT_EXCEEDED}
        assert SLOW_LANE_BUSY in late[TIME_LIMIT_EXCEEDED]
        assert SLOW_LANE_BUSY not in {h.name: h.description for h in slow}[TIME_LIMIT_EXCEEDED]
        assert {h.name for h in ordinary} >= {"BUY_NOW", "SHOP_URI"}
        assert TIME_LIMIT_EXCEEDED not in {h.name for h in ordinary}
        # a child killed while its message holds the place gives the place back
        quick = EngineProcesses(eng, processes=1, timeout=1.0)  # (time_limit 3 s: killed)
        try:
            with pytest.raises(RulesError, match="no answer within 1 s"):
                quick.check(parse_message(hostile), hostile)
        finally:
            quick.close()
        assert lane.in_use == 0
    finally:
        p.close()
