"""Matching with a time limit per message, a long text in the ``regex`` module.

Python's ``re`` backtracks, and holds the interpreter lock while it does.  The rule
patterns Hyperscan cannot run exactly (back-references, look-arounds) are confirmed in
``re``, and so are the ``tflags multiple`` counts; on a hostile text some take time
polynomial in its length.  SpamAssassin's ``__PDS_TONAME_EQ_TOLOCAL``,
``^\\s*['"]?([^'"]+)['"]? <?\\1\\@`` over ``To:raw``, is cubic over white space: 0.3 s
for 2 KB, 4.6 s for eight To fields of 1 KB of blanks, hours for a header section of
them, and every milter thread waits meanwhile.

A :class:`BoundedPattern` matches a short text with ``re`` and a longer one with the
``regex`` module, which takes a timeout and lets other threads run while it matches.
Short is :data:`SHORT` octets for a pattern with a back-reference or a look-around
(where even a cubic pattern takes under a millisecond) and :data:`SHORT_PLAIN` for the
others (a quadratic one takes at most about 0.4 s there, and ``regex`` is slower than
``re`` on the 1-4 KB texts most rawbody pieces and paragraphs are); a pattern whose time
is linear in the text anyway (bounded repeats of single items, no back-reference:
:data:`ALWAYS`) is always matched by ``re``.  :func:`limit` sets
the time a message's matching may take (the engine's ``time_limit``); once it is spent,
no match is tried and each counts as none, as SpamAssassin's rules stop at its
``time_limit`` (it then adds ``TIME_LIMIT_EXCEEDED``, and so does the engine).  The
patterns give the same matches in both modules (a test runs Debian's rule set through
both on a corpus sample).

A hostile message can still take a whole ``time_limit`` of one of the engine's threads,
and two of them every ``time_limit`` would keep every other message waiting for a
thread.  A :class:`SlowLane` keeps them apart: once a message's matching has taken
``after`` seconds it needs one of the lane's ``width`` places to go on, and a message
that finds them taken stops matching there, as at its time limit.  So at most ``width``
messages at a time take longer than ``after``, and the rest of the mail keeps the other
threads.  Where the milter's threads share one core (``milter.cpu_affinity``), a thread
may leave it while its message is in the lane (:mod:`spamwarden._affinity`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import regex

from .._affinity import narrow_thread, widen_thread
from ._literals import parse_tree, sre_constants

__all__ = ["ALWAYS", "NEEDS_PREFILTER", "SHORT", "SHORT_PLAIN", "BoundedPattern", "Lane",
           "Late", "SlowLane", "limit", "short_for"]

#: texts up to this many octets are matched by ``re`` for a pattern with a back-reference
#: or a look-around: a cubic one over 256 octets costs about 0.7 ms
#: (``__PDS_TONAME_EQ_TOLOCAL``)
SHORT = 256
#: and for the other patterns (no back-tracking into a back-reference: at worst
#: quadratic, about 0.4 s over 4 KB)
SHORT_PLAIN = 4096

#: what Hyperscan cannot run exactly (the engine then compiles a superset,
#: HS_FLAG_PREFILTER), and what gives a pattern the shorter limit: back-references,
#: look-arounds, atomic groups, possessive quantifiers, conditionals
NEEDS_PREFILTER = re.compile(rb"\\[1-9]|\(\?P=|\(\?<?[=!]|\(\?>|[*+?}]\+|\(\?\(")

_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE

_local = threading.local()


class Lane(Protocol):
    """What a message's matching needs of a slow lane: when it is due (``after``
    seconds), how many places it has, and a place taken and given back by the thread
    that matches the message.  :class:`SlowLane` in a process; an engine process asks
    its parent's (``spamwarden.rules.processes``)."""

    after: float
    width: int

    def enter(self) -> bool:
        """Take a place if one is free (never waits)."""
        ...  # pragma: no cover - a protocol

    def leave(self) -> None:
        """Give the place back."""
        ...  # pragma: no cover - a protocol


class SlowLane:
    """Where a message's matching goes on once it has taken ``after`` seconds: at most
    ``width`` messages at a time (0: none; a message then stops at ``after``).  Shared by
    the threads that match messages."""

    def __init__(self, after: float, width: int) -> None:
        if after <= 0 or width < 0:
            raise ValueError(f"slow lane: after {after} must be > 0, width {width} >= 0")
        self.after = after
        self.width = width
        self._lock = threading.Lock()
        self._used = 0

    @property
    def in_use(self) -> int:
        """How many messages are in the lane now."""
        return self._used

    def enter(self) -> bool:
        """Take a place if one is free (never waits)."""
        with self._lock:
            if self._used >= self.width:
                return False
            self._used += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._used -= 1


class Late(list[str]):
    """The rules whose match ran out of time or was not tried, in the order met, and
    ``slow_lane``: "" (the matching never took the lane's ``after``), ``"taken"`` (it
    went on in the slow lane) or ``"busy"`` (it found no place there and stopped)."""

    slow_lane: str = ""


class _Budget:
    """When a message's matching must end, when it needs the slow lane, and the rules
    that ran out of time."""

    __slots__ = ("deadline", "slow_at", "lane", "exceeded")

    def __init__(self, seconds: float, lane: Lane | None) -> None:
        now = time.monotonic()
        self.deadline = now + seconds
        self.slow_at = now + lane.after if lane is not None else float("inf")
        self.lane = lane
        self.exceeded = Late()

    def left(self) -> float:
        """Seconds the next match may take: up to the slow lane's ``after`` until the
        message is in the lane (taken here when it is due), then up to the deadline.
        :raises TimeoutError: nothing is left (the time limit is spent, or the lane was
            due and had no place)."""
        now = time.monotonic()
        if now >= self.deadline:  # (spent: the lane is no longer the question)
            raise TimeoutError
        if now >= self.slow_at:
            assert self.lane is not None
            self.slow_at = float("inf")
            if self.lane.enter():
                self.exceeded.slow_lane = "taken"
                widen_thread()  # (off the milter's core while in the lane: _affinity)
            else:
                self.exceeded.slow_lane = "busy"
                self.deadline = now
        left = min(self.deadline, self.slow_at) - now
        if left <= 0:
            raise TimeoutError
        return left

    def at_door(self) -> bool:
        """After a match was cut short: whether it was cut at the slow lane's door (the
        lane not yet decided, time left), so that it may be tried again.  The lane is
        then due at once (``regex``'s timeout may end a little before ``slow_at``)."""
        now = time.monotonic()
        if self.slow_at == float("inf") or now >= self.deadline:
            return False
        self.slow_at = now
        return True

    def close(self) -> None:
        if self.exceeded.slow_lane == "taken":
            assert self.lane is not None
            narrow_thread()
            self.lane.leave()


@contextmanager
def limit(seconds: float | None, lane: Lane | None = None) -> Iterator[Late]:
    """Limit the matching done in this thread inside the block to ``seconds`` in all,
    and past ``lane.after`` to a place in ``lane``; yields the rules whose match was cut
    short or not tried (:class:`Late`, filled as the block runs).  ``None``: no limit
    (and no lane)."""
    outer = getattr(_local, "budget", None)
    budget = _Budget(seconds, lane) if seconds is not None else None
    _local.budget = budget
    try:
        yield budget.exceeded if budget is not None else Late()
    finally:
        _local.budget = outer
        if budget is not None:
            budget.close()


def short_for(source: bytes, flags: int = 0) -> int:
    r"""The longest text ``re`` matches for a rule written as ``source`` (the pattern as
    translated, before any rewrite): :data:`SHORT` or :data:`SHORT_PLAIN`, or
    :data:`ALWAYS` for a pattern without an unbounded repeat, and without a repeat of
    a choice or of a repeat (its work at each position is then bounded by the product
    of its repeats' bounds, so its time is linear in the text:
    ``<(?!FONT|font)[Ff][Oo][Nn][Tt]\s``)."""
    # (Python's parser takes a third of a second over a 224 KB look-alike sentence)
    tree = parse_tree(source, flags) if len(source) <= _PARSE_MAX else None
    if tree is not None:
        try:
            if not _unbounded(tree.data):
                return ALWAYS
        except RecursionError:  # pragma: no cover - absurdly nested pattern
            pass
    return SHORT if NEEDS_PREFILTER.search(source) else SHORT_PLAIN


#: :func:`short_for` of a pattern whose time is linear in the text: ``re`` always
ALWAYS = 1 << 62
#: longer sources are not read for :data:`ALWAYS` (the look-alike sentences, 37-224 KB,
#: repeat without bounds anyway)
_PARSE_MAX = 8192

_REPEATS = frozenset({sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
                      getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT)})


def _unbounded(items: Any, in_repeat: bool = False) -> bool:
    """Whether a parse tree's items repeat something without an upper bound, refer back
    to a group (whose text a repeat may have made long), or repeat a choice or another
    repeat (``(?:a|a){1,40}``: bounded, but 2^40 ways to try at each position), anywhere
    in them."""
    for op, av in items:
        if op in _REPEATS:
            lo, hi, sub = av
            if hi == sre_constants.MAXREPEAT or in_repeat or _unbounded(sub, True):
                return True
        elif in_repeat and op == sre_constants.BRANCH:
            return True
        elif op == sre_constants.GROUPREF or op == sre_constants.GROUPREF_EXISTS:
            return True
        elif op == sre_constants.SUBPATTERN:
            if _unbounded(av[-1], in_repeat):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _unbounded(av[1], in_repeat):
                return True
        elif op == sre_constants.BRANCH:
            if any(_unbounded(b, in_repeat) for b in av[1]):
                return True
        elif op == getattr(sre_constants, "ATOMIC_GROUP", None):
            if _unbounded(av, in_repeat):
                return True
    return False


class BoundedPattern:
    """A rule's compiled pattern: ``re`` for a short text, ``regex`` for a long one,
    within the message's time limit.  ``pattern`` and ``flags`` are ``re``'s.

    :param name: the rule's name (reported when its match runs out of time).
    :param pat: the pattern compiled by ``re``.
    :param short: texts up to this many octets are matched by ``re`` (:func:`short_for`).
    """

    __slots__ = ("name", "re", "pattern", "flags", "short", "_rx")

    def __init__(self, name: str, pat: re.Pattern[bytes], short: int = SHORT) -> None:
        self.name = name
        self.re = pat
        self.pattern = pat.pattern
        self.flags = pat.flags
        self.short = short
        self._rx: Any = None

    def prepare(self) -> None:
        """Compile the ``regex`` form now (a look-alike sentence takes ``regex`` up to
        0.7 s), not in the first long text of a message."""
        if self._rx is None:
            try:
                self._rx = regex.compile(self.pattern, (self.flags & _FLAGS) | regex.VERSION0)
            except (regex.error, OverflowError, RecursionError):
                self._rx = False  # (regex refuses it: re matches it, without a timeout)

    def _pick(self, length: int) -> tuple[Any, float | None]:
        """The compiled pattern to match a text of ``length`` octets with, and its
        timeout: (``re``'s, ``None``) when no limit is set, the text is short or
        ``regex`` refuses the pattern, else (``regex``'s, the seconds it may take).
        :raises TimeoutError: nothing is left of the message's time."""
        budget: _Budget | None = getattr(_local, "budget", None)
        if budget is None:
            return self.re, None
        left = budget.left()
        if length <= self.short:
            return self.re, None
        self.prepare()
        return (self.re, None) if self._rx is False else (self._rx, left)

    def _out_of_time(self) -> None:
        budget: _Budget | None = getattr(_local, "budget", None)
        if budget is not None and self.name not in budget.exceeded:
            budget.exceeded.append(self.name)

    def search(self, text: bytes, pos: int = 0, endpos: int | None = None) -> Any:
        """``re.Pattern.search`` from ``pos`` (to ``endpos``); no match when out of
        time."""
        if endpos is not None:
            return self._call("search", text[:endpos], pos)  # (what endpos means)
        return self._call("search", text, pos)

    def match(self, text: bytes, pos: int = 0) -> Any:
        """``re.Pattern.match`` at ``pos``; no match when out of time."""
        return self._call("match", text, pos)

    def findall(self, text: bytes) -> list[Any]:
        """``re.Pattern.findall`` (of a long text, its matches); those found in time."""
        found: list[Any] = []
        for _ in _ATTEMPTS:
            found = []
            try:
                pat, timeout = self._pick(len(text))
                if timeout is None:
                    return pat.findall(text)  # type: ignore[no-any-return]
                found.extend(pat.finditer(text, timeout=timeout))
                return found
            except TimeoutError:
                if not _at_door():
                    break
        self._out_of_time()
        return found

    def finditer(self, text: bytes) -> Iterator[Any]:
        """``re.Pattern.finditer``; stops when out of time."""
        done = 0  # (matches given before a match cut at the slow lane's door is retried)
        for _ in _ATTEMPTS:
            try:
                pat, timeout = self._pick(len(text))
                found = (pat.finditer(text) if timeout is None
                         else pat.finditer(text, timeout=timeout))
                for i, m in enumerate(found):
                    if i >= done:
                        done += 1
                        yield m
                return
            except TimeoutError:
                if not _at_door():
                    break
        self._out_of_time()

    def _call(self, method: str, text: bytes, pos: int) -> Any:
        for _ in _ATTEMPTS:
            try:
                pat, timeout = self._pick(len(text) - pos)
                if timeout is None:
                    return getattr(pat, method)(text, pos)
                return getattr(pat, method)(text, pos, timeout=timeout)
            except TimeoutError:
                if not _at_door():
                    break
        self._out_of_time()
        return None


#: a match cut short at the slow lane's door (the message's ``after``) is tried once
#: more: in the lane it has the rest of its time
_ATTEMPTS = range(2)


def _at_door() -> bool:
    budget: _Budget | None = getattr(_local, "budget", None)
    return budget is not None and budget.at_door()
