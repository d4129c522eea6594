"""The bytes a milter process scores at once (spamwarden.milter.inflight.ScanBudget)."""

from __future__ import annotations

import threading

import pytest

from spamwarden.milter.inflight import FREE_BELOW, ScanBudget, ScanBusy

BIG = FREE_BELOW + 1


def _waiter(budget: ScanBudget, size: int, got: list[int]) -> threading.Thread:
    t = threading.Thread(target=lambda: got.append(budget.acquire(size)), daemon=True)
    t.start()
    return t


def _settle(t: threading.Thread) -> None:
    """Give a thread the time to reach its wait (it must still be alive after)."""
    t.join(0.2)


def test_a_large_message_waits_for_room_and_gets_it_on_release() -> None:
    budget = ScanBudget(3 * BIG, wait=30)
    first = budget.acquire(2 * BIG)
    got: list[int] = []
    t = _waiter(budget, 2 * BIG, got)
    _settle(t)
    assert t.is_alive() and got == [] and budget.used == 2 * BIG
    budget.release(first)
    t.join(5)
    assert got == [2 * BIG] and budget.used == 2 * BIG


def test_small_messages_never_wait_but_are_counted() -> None:
    budget = ScanBudget(BIG, wait=30)
    big = budget.acquire(10 * BIG)  # larger than the budget: alone, the whole of it
    assert big == BIG and budget.used == BIG
    small = [budget.acquire(FREE_BELOW) for _ in range(5)]
    assert budget.used == BIG + 5 * FREE_BELOW
    got: list[int] = []
    t = _waiter(budget, BIG, got)  # a second large one waits for the small ones too
    budget.release(big)
    _settle(t)
    assert t.is_alive()
    for n in small:
        budget.release(n)
    t.join(5)
    assert got == [BIG] and budget.used == BIG


def test_no_room_within_the_wait_raises_and_reserves_nothing() -> None:
    budget = ScanBudget(BIG, wait=0.05)
    budget.acquire(BIG)
    with pytest.raises(ScanBusy, match="max_scan_bytes_in_flight"):
        budget.acquire(BIG)
    assert budget.used == BIG


def test_one_release_wakes_every_waiter_that_now_fits() -> None:
    budget = ScanBudget(2 * BIG, wait=30)
    held = budget.acquire(2 * BIG)
    got: list[int] = []
    threads = [_waiter(budget, BIG, got) for _ in range(2)]
    for t in threads:
        _settle(t)
    budget.release(held)
    for t in threads:
        t.join(5)
    assert got == [BIG, BIG] and budget.used == 2 * BIG
