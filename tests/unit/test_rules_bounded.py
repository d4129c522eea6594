"""spamwarden.rules._bounded: long texts are matched within a message's time limit.

The hostile values here take ``re`` hours: each assertion that a limit stopped them
would otherwise never return.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import (
    HAVE_HYPERSCAN,
    TIME_LIMIT_EXCEEDED,
    RuleEngine,
    _bounded,
    parse_rule_text,
    prepare_message,
)
from spamwarden.rules._bounded import (
    ALWAYS,
    SHORT,
    SHORT_PLAIN,
    BoundedPattern,
    SlowLane,
    limit,
    short_for,
)

# SpamAssassin's __PDS_TONAME_EQ_TOLOCAL (72_active.cf): cubic over white space in re
TONAME = rb"^\s*['\"]?([^'\"]+)['\"]? <?\1@"
PATTERNS = [TONAME, rb'".*"\s*<', rb"(?:a|ab)+c", rb"^b\w+", rb"\bfoo(?=bar)", rb"x{2,}?y",
            rb"(?i)Hello\s+WORLD", rb"(\w)\1", rb"(?<!\?=)<\w+", rb"\n(?:[a-z]+\s+){3}\.$"]


def _texts() -> list[bytes]:
    rnd = random.Random(5)
    alphabet = [b"a", b"b", b"c", b" ", b"\n", b"<", b'"', b"@", b"foo", b"bar", b"hello",
                b"WORLD", b"x", b"y", b".", b"?="]
    out = [b"", b"  bob <bob@example.org>", b'"x" <y>', b"abababc", b"foobar", b"xxxy"]
    for n in (10, 200, 300, 2000):
        for _ in range(30):
            out.append(b"".join(rnd.choice(alphabet) for _ in range(n)))
    return out


def test_a_pattern_that_can_backtrack_into_a_reference_gets_the_shorter_limit() -> None:
    assert short_for(TONAME) == SHORT and short_for(rb"(?<!\?=)<\w+") == SHORT
    assert short_for(rb"(?=\d+\.)\d") == SHORT  # (an unbounded repeat in a look-ahead)
    assert short_for(rb'".*"\s*<') == SHORT_PLAIN and SHORT < SHORT_PLAIN
    # no unbounded repeat: bounded work at each position, linear time, always ``re``
    assert short_for(rb"<(?!FONT|font)[Ff][Oo][Nn][Tt]\s") == ALWAYS
    assert short_for(rb"(a{1,3}|b)\1") == SHORT  # (a back-reference is never taken as bounded)
    assert short_for(rb"x(?:a{2,9}b?){1,4}") == SHORT_PLAIN  # (a repeat of repeats)
    assert short_for(rb"(?:a|a){1,40}b") == SHORT_PLAIN  # (2^40 ways at each position)
    assert short_for(rb"x\d{1,3}(?:st|nd)[.,]{0,3}") == ALWAYS
    assert short_for(rb"x(?:a{2,9}b+){1,4}") == SHORT_PLAIN


@pytest.mark.parametrize("source", PATTERNS)
def test_bounded_matches_are_re_matches_short_and_long(source: bytes) -> None:
    for flags in (0, re.IGNORECASE | re.MULTILINE):
        pat = re.compile(source, flags)
        bp = BoundedPattern("R", pat)  # (texts over 256 octets: regex)
        assert (bp.pattern, bp.flags) == (pat.pattern, pat.flags)
        with limit(60.0) as late:
            for text in _texts():
                for pos in (0, 3, len(text) // 2):
                    a, b = bp.search(text, pos), pat.search(text, pos)
                    assert (a and a.span()) == (b and b.span())
                    a, b = bp.match(text, pos), pat.match(text, pos)
                    assert (a and a.span()) == (b and b.span())
                    end = len(text) - 2
                    a, b = bp.search(text, pos, end), pat.search(text, pos, end)
                    assert (a and a.span()) == (b and b.span())
                assert [m.span() for m in bp.finditer(text)] == [
                    m.span() for m in pat.finditer(text)]
                assert len(bp.findall(text)) == len(pat.findall(text))
        assert late == []


def test_a_hostile_long_text_stops_at_the_limit_and_names_the_rule() -> None:
    bp = BoundedPattern("__PDS_TONAME_EQ_TOLOCAL", re.compile(TONAME))
    hostile = b" " * 20_000 + b"b@"  # re: about 1e12 steps
    with limit(0.2) as late:
        assert bp.search(hostile) is None
        assert late == ["__PDS_TONAME_EQ_TOLOCAL"]
        # the budget is spent: no match is tried any more, short or long
        assert bp.search(b"  bob <bob@x") is None and bp.match(b"  bob <bob@x") is None
        assert list(bp.finditer(hostile)) == [] and bp.findall(b"  bob <bob@x") == []
        other = BoundedPattern("OTHER", re.compile(rb"bob"), short_for(rb"bob"))
        assert other.search(b"bob") is None
    assert late == ["__PDS_TONAME_EQ_TOLOCAL", "OTHER"]
    assert bp.search(b"  bob <bob@x").group(1) == b"bob"  # (no limit outside)
    # outside a limit nothing is recorded, and a legitimate long text matches
    long_to = b"  bob <bob@example.org>" + b", x <x@example.org>" * 40
    assert len(long_to) > SHORT
    assert bp.search(long_to).group(1) == b"bob"


def test_other_threads_run_while_a_long_match_is_cut_short() -> None:
    """``regex`` lets go of the interpreter lock while it matches a long text: another
    thread counts on meanwhile (under ``re`` it would stand still for the whole match)."""
    bp = BoundedPattern("R", re.compile(TONAME))
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        before = ticks
        with limit(0.5):
            assert bp.search(b" " * 20_000 + b"b@") is None
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert during >= 5


def test_limits_nest_and_each_thread_has_its_own() -> None:
    bp = BoundedPattern("R", re.compile(TONAME))
    hostile = b" " * 20_000 + b"b@"
    seen: list[list[str]] = []

    def other() -> None:
        with limit(60.0) as late:  # untouched by the spent budget of the main thread
            assert bp.search(b"  bob <bob@x>" + b" " * SHORT) is not None
            seen.append(late)

    with limit(0.05) as outer:
        with limit(0.05) as inner:
            bp.search(hostile)
        assert inner == ["R"] and outer == []
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == [[]]
    assert getattr(_bounded._local, "budget", None) is None


def _wait_for(cond: Callable[[], bool]) -> None:
    """Until ``cond()`` (a minute at most: a test that never gets there fails, it does
    not hang)."""
    for _ in range(6000):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition never met")


def test_past_after_a_message_needs_a_place_in_the_slow_lane() -> None:
    """Two hostile messages at a time: the first past ``after`` goes on in the lane's
    one place (up to its time limit), the second finds it taken and stops there; once
    the lane is free again the next slow message takes it.  A message that never took
    ``after`` never needs it."""
    lane = SlowLane(after=0.05, width=1)
    bp = BoundedPattern("R", re.compile(TONAME))
    hostile = b" " * 20_000 + b"b@"
    holder: list[list[str]] = []

    def slow() -> None:
        with limit(1.0, lane) as late:
            assert bp.search(hostile) is None
        holder.append(late)

    t = threading.Thread(target=slow)
    t.start()
    try:
        _wait_for(lambda: lane.in_use == 1)
        with limit(60.0, lane) as late:  # would take a minute without a place
            assert bp.search(hostile) is None
            assert bp.search(b"  bob <bob@x") is None  # (stopped: nothing more is tried)
        assert late == ["R"] and late.slow_lane == "busy"
        assert t.is_alive() and lane.in_use == 1  # (the first is still matching)
    finally:
        t.join()
    assert holder == [["R"]] and holder[0].slow_lane == "taken"  # type: ignore[attr-defined]
    assert lane.in_use == 0
    with limit(0.3, lane) as late:
        assert bp.search(hostile) is None
        assert lane.in_use == 1
    assert late.slow_lane == "taken" and lane.in_use == 0
    with limit(60.0, lane) as late:
        assert bp.search(b"  bob <bob@x").group(1) == b"bob"
    assert late == [] and late.slow_lane == ""


def test_a_match_stopped_at_the_lanes_door_is_tried_again_inside() -> None:
    """A long match cut at ``after`` is not lost: in the lane it starts again with the
    rest of the message's time, and finds what it would have found."""
    bp = BoundedPattern("R", re.compile(TONAME, re.MULTILINE))
    text = b" " * 1000 + b"x\n  bob <bob@x>"  # (0.2 s over the first line, then a match)
    with limit(600.0) as free:
        expected = bp.search(text)
    assert expected is not None and free == []
    lane = SlowLane(after=0.01, width=1)
    with limit(600.0, lane) as late:
        got = bp.search(text)
        assert got is not None and got.span() == expected.span()
        assert [m.span() for m in bp.finditer(text)] == [expected.span()]
        assert len(bp.findall(text)) == 1
    assert late == [] and late.slow_lane == "taken"
    closed = SlowLane(after=0.01, width=0)  # (no place at all: stop at after)
    with limit(600.0, closed) as late:
        assert bp.search(text) is None
    assert late == ["R"] and late.slow_lane == "busy" and closed.in_use == 0


def test_a_message_past_its_time_limit_is_not_counted_in_or_out_of_the_lane() -> None:
    """A time limit shorter than ``after``: the message stops at its limit, and matches
    asked for afterwards (past ``after``) neither take a place nor count as refused."""
    lane = SlowLane(after=0.1, width=0)
    bp = BoundedPattern("R", re.compile(TONAME))
    with limit(0.05, lane) as late:
        assert bp.search(b" " * 20_000 + b"b@") is None
        time.sleep(0.1)
        assert bp.search(b"  bob <bob@x") is None
    assert late == ["R"] and late.slow_lane == ""


def test_a_slow_lane_needs_a_positive_after_and_a_width() -> None:
    with pytest.raises(ValueError):
        SlowLane(after=0, width=1)
    with pytest.raises(ValueError):
        SlowLane(after=1.0, width=-1)


RULES = (
    "header NAME_EQ_LOCAL To:raw =~ /^\\s*['\"]?([^'\"]+)['\"]? <?\\1\\@/\n"
    "header SUBJ_HI Subject =~ /\\bhi\\b/\n"
)


def _message(to_fields: list[bytes]) -> bytes:
    head = b"".join(b"To:" + v + b"\r\n" for v in to_fields)
    return b"From: a@example.org\r\n" + head + b"Subject: hi\r\n\r\nhello\r\n"


@pytest.mark.parametrize("use_hyperscan", [False, True] if HAVE_HYPERSCAN else [False])
def test_the_engine_scores_a_hostile_message_within_its_limit(use_hyperscan: bool) -> None:
    engine = RuleEngine(parse_rule_text(RULES), use_hyperscan=use_hyperscan, time_limit=0.3)
    # 60 To fields of blanks: one To:raw of 60 KB, hours of re
    raw = _message([b" " * 990] * 60 + [b" b@"])
    hits = engine.check(parse_message(raw), raw)
    # Hyperscan's rules are not limited; once the time is spent, the matches left to
    # Python are not tried (SpamAssassin stops at its time_limit likewise)
    expected = ["SUBJ_HI", TIME_LIMIT_EXCEEDED] if use_hyperscan else [TIME_LIMIT_EXCEEDED]
    assert [h.name for h in hits] == expected
    late = hits[-1]
    assert late.score == 0.001 and "NAME_EQ_LOCAL" in late.description
    # a long, legitimate To: still hits, and no limit is noted
    ok = _message([b' "bob" <bob@example.org>' + b", x <x@example.org>" * 30])
    assert [h.name for h in engine.check(parse_message(ok), ok)] == ["NAME_EQ_LOCAL", "SUBJ_HI"]
    msg = prepare_message(parse_message(ok), ok)
    assert engine.counts(msg)["NAME_EQ_LOCAL"] == 1 and msg.late_rules == ()
