"""Counting accepted mail off the SMTP path: :class:`DeliveryRecorder`.

The milter answers Postfix first and counts afterwards: volume per source (the
denominator of the complaint rate) and the consent policy's ad counters are the
"after delivery" phase of the checks (:attr:`~spamwarden.milter.registry.Phase.DELIVERED`).
The same batch records every verdict, refused messages included, in the message
history when the sink keeps one (:class:`HistorySink`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..logs import event
from .interfaces import Envelope

if TYPE_CHECKING:
    from .verdict import Verdict

__all__ = ["DeliveredSink", "DeliveryRecorder", "HistorySink"]

log = logging.getLogger("spamwarden.milter")


class DeliveredSink(Protocol):
    """What counts accepted messages (:meth:`~spamwarden.milter.scanner.Scanner.delivered_many`)."""

    def delivered_many(self, items: Sequence[tuple[Verdict, Envelope]]) -> None:
        """Count each accepted message; best effort."""
        ...


@runtime_checkable
class HistorySink(Protocol):
    """What records every verdict, accepted or not
    (:meth:`~spamwarden.milter.scanner.Scanner.record_history`)."""

    def record_history(self, items: Sequence[tuple[Verdict, Envelope]]) -> None:
        """Record each verdict; best effort."""
        ...


class DeliveryRecorder:
    """Runs :meth:`Scanner.delivered` off the SMTP path, in one background thread.

    Counting volume and ad sends is the "after" stage: the client need not wait for
    it.  The thread takes what arrived within ``batch_window`` seconds of the first
    waiting message (at most ``max_batch``) and counts it with one
    :meth:`Scanner.delivered_many`: under load, one store round trip and one thread
    wake-up serve many messages.  The queue is bounded; when it is full (the store
    far slower than the mail) the count is dropped, logged and counted in
    :attr:`dropped`, never the mail.

    :param scanner: whose ``delivered_many`` to call (a :class:`~.scanner.Scanner`).
    :param max_pending: messages waiting at most.
    :param batch_window: seconds a count may wait for others to share its round trip.
    :param max_batch: messages counted together at most.
    """

    def __init__(self, scanner: DeliveredSink, *, max_pending: int = 10_000,
                 batch_window: float = 0.05, max_batch: int = 256) -> None:
        self.scanner = scanner
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.dropped = 0
        # checked once: a sink without a history records none
        self._history = scanner if isinstance(scanner, HistorySink) else None
        self._queue: queue.Queue[tuple[Verdict, Envelope, bool] | None] = queue.Queue(max_pending)
        self._last_drop_log = 0.0
        self._thread = threading.Thread(
            target=self._run, name="spamwarden-delivered", daemon=True
        )
        self._thread.start()

    def submit(self, verdict: Verdict, env: Envelope, *, delivered: bool = True) -> bool:
        """Queue one answered message; ``False`` when the queue is full (dropped).

        :param delivered: it was accepted (counted, and recorded); ``False``: refused or
            deferred, only recorded in the message history.
        """
        item = (verdict, dataclasses.replace(env, rcpts=list(env.rcpts)), delivered)
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                event(log, "delivery_count_dropped", logging.WARNING, dropped=self.dropped,
                      queue_id=env.queue_id or None)
            return False

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            try:
                accepted = [(v, e) for v, e, d in batch if d]
                if accepted:
                    self.scanner.delivered_many(accepted)
            except Exception as exc:  # noqa: BLE001 - a count must not kill the thread
                event(log, "delivery_count_failed", logging.ERROR, messages=len(batch),
                      error=f"{type(exc).__name__}: {exc}")
            try:
                if batch and self._history is not None:
                    self._history.record_history([(v, e) for v, e, _ in batch])
            except Exception as exc:  # noqa: BLE001 - history must not kill the thread
                event(log, "history_record_failed", logging.ERROR, messages=len(batch),
                      error=f"{type(exc).__name__}: {exc}")
            finally:
                for _ in range(len(batch) + stop):
                    self._queue.task_done()
            if stop:
                return

    def _take(self) -> tuple[list[tuple[Verdict, Envelope, bool]], bool]:
        """The next batch, and whether the stop mark came with it."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        if self.batch_window > 0:
            time.sleep(self.batch_window)  # one wake-up for all that arrive meanwhile
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def flush(self) -> None:
        """Wait until every queued message was counted (tests, shutdown)."""
        self._queue.join()

    def close(self, *, timeout: float = 5.0) -> None:
        """Count what is queued, then stop the thread (at most ``timeout`` seconds)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
