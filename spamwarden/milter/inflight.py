"""Bytes of mail being scored at once in one milter process
(``milter.max_scan_bytes_in_flight``).

Scoring a message takes about seven to nine times its size in memory while it runs
(the parse, the rules' rendered text and pieces, the classifier's tokens), and
libmilter scores each connection's message on that connection's thread. Without a
bound, a hundred 10 MB messages reaching the end of DATA together would need several
gigabytes at once; Python runs one of those threads at a time anyway, so scoring them
side by side is no faster than one after another.

A message over :data:`FREE_BELOW` bytes waits until its size fits under the budget
(a message larger than the whole budget waits until nothing else is being scored);
smaller ones are counted but never wait, so a burst of large mail does not hold up
ordinary mail. After :data:`SCAN_WAIT` seconds the wait gives up: the message gets
``451 4.3.2`` whatever ``milter.on_error`` says (the sending MTA retries), so that a
sender who keeps the budget full cannot have mail passed unscored.
"""

from __future__ import annotations

import threading

__all__ = ["FREE_BELOW", "SCAN_WAIT", "ScanBudget", "ScanBusy"]

#: messages up to this size are scored at once, whatever is in flight
FREE_BELOW = 1_048_576
#: seconds a larger message waits for room before it gets ``451 4.3.2``
SCAN_WAIT = 60.0


class ScanBusy(RuntimeError):
    """No room under ``milter.max_scan_bytes_in_flight`` within the wait."""


class ScanBudget:
    """Bytes being scored at once across the connections of one process.

    :param capacity: bytes that may be reserved at once by messages over
        ``free_below``.
    :param free_below: messages up to this size never wait.
    :param wait: seconds a larger message waits for room.
    """

    def __init__(self, capacity: int, *, free_below: int = FREE_BELOW,
                 wait: float = SCAN_WAIT) -> None:
        self.capacity = max(1, capacity)
        self.free_below = free_below
        self.wait = wait
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        """Reserve ``size`` bytes (at most the capacity, so a message always fits alone).

        :returns: the bytes reserved, for :meth:`release`.
        :raises ScanBusy: a message over ``free_below`` found no room within ``wait``
            seconds.
        """
        size = max(1, min(size, self.capacity))
        with self._cond:
            if size > self.free_below and not self._cond.wait_for(
                    lambda: self.used + size <= self.capacity, self.wait):
                raise ScanBusy(f"{self.used} of {self.capacity} bytes already being scored "
                               f"(milter.max_scan_bytes_in_flight) for {self.wait:g} s")
            self.used += size
            return size

    def release(self, size: int) -> None:
        """Give back what :meth:`acquire` reserved."""
        with self._cond:
            self.used -= size
            self._cond.notify_all()
