"""Feedback from users: reported spam and ``ham@`` reports as training examples.

The complaint intake keeps reported originals in Redis (key scheme in
:mod:`spamwarden.reputation.intake`, base
:data:`~spamwarden.reputation.complaints.TRAINING_KEY`):

``sw:{sw}:training:<label>``
    sorted set of message fingerprints scored by report time (Unix seconds),
    ``label`` is ``spam`` (report@) or ``ham`` (ham@);
``sw:{sw}:training:<label>:<fingerprint>``
    the reported original (a missing one has expired).

This module reads them through the :class:`FeedbackSource` Protocol, so the
learner does not depend on how they are stored.  :class:`RedisFeedbackSource`
returns both labels merged in report-time order; an example's id
(``<time>/<label>/<fingerprint>``) is the cursor to resume after.  Reads are
bounded in count per call and in total.

:class:`FeedbackLearner` feeds new examples to a model's incremental
``learn`` (``partial_fit``), so the filter adapts within one poll interval;
``spamwarden train --feedback`` retrains from the base corpus plus all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import StoreError
from ..logs import event
from ..mail import parse_message
from ..reputation.complaints import TRAINING_KEY

__all__ = [
    "FeedbackExample",
    "FeedbackFollower",
    "FeedbackLearner",
    "FeedbackSource",
    "Learner",
    "RedisFeedbackSource",
    "read_all",
]

log = logging.getLogger("spamwarden.training")


@dataclass(frozen=True, slots=True)
class FeedbackExample:
    """One reported message: its stream id, label and original bytes."""

    id: str
    label: Literal["spam", "ham"]
    raw: bytes

    @property
    def y(self) -> int:
        return 1 if self.label == "spam" else 0


class FeedbackSource(Protocol):
    """Where reported originals come from, in arrival order."""

    def read(self, *, after: str = "0", count: int = 500) -> list[FeedbackExample]:
        """Up to ``count`` examples stored after id ``after`` (``"0"``: from the start).

        :raises StoreError: the store cannot be read.
        """
        ...


@runtime_checkable
class Learner(Protocol):
    """Anything that learns labelled messages incrementally (a model, a reloading one)."""

    def learn(self, messages: Sequence[Any], labels: Sequence[int]) -> None: ...


def _cursor(after: str) -> tuple[float, str, str]:
    if after in ("", "0"):
        return (float("-inf"), "", "")
    try:
        t, label, fp = after.split("/", 2)
        return (float(t), label, fp)
    except ValueError as exc:
        raise ValueError(f"not a feedback cursor: {after!r}") from exc


class RedisFeedbackSource:
    """Reads the intake's training examples with a sync redis client.

    :param client: a ``redis.Redis`` (``decode_responses=False``).
    :param base: the key prefix (``TRAINING_KEY``).
    """

    LABELS: tuple[Literal["spam", "ham"], ...] = ("spam", "ham")

    def __init__(self, client: Any, *, base: str = TRAINING_KEY) -> None:
        self.client = client
        self.base = base

    def read(self, *, after: str = "0", count: int = 500) -> list[FeedbackExample]:
        """See :meth:`FeedbackSource.read`; expired originals are skipped.

        :raises StoreError: Redis failed or a key has the wrong type.
        """
        import redis

        cur = _cursor(after)
        for _ in range(100):  # windows whose originals all expired are skipped, boundedly
            low = "-inf" if cur[0] == float("-inf") else repr(cur[0])
            found: list[tuple[float, str, str]] = []
            try:
                for label in self.LABELS:
                    rows = self.client.zrangebyscore(f"{self.base}:{label}", low, "+inf",
                                                     start=0, num=count + 100, withscores=True)
                    for member, score in rows:
                        fp = member.decode() if isinstance(member, bytes) else str(member)
                        key = (float(score), label, fp)
                        if key > cur:
                            found.append(key)
                found.sort()
                found = found[:count]
                if not found:
                    return []
                raws = self.client.mget([f"{self.base}:{lb}:{fp}" for _, lb, fp in found])
            except redis.RedisError as exc:
                raise StoreError(f"reading training examples under {self.base}: {exc}") from exc
            out: list[FeedbackExample] = []
            for (t, name, fp), raw in zip(found, raws):
                if not raw:
                    continue  # expired
                data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
                kind: Literal["spam", "ham"] = "spam" if name == "spam" else "ham"
                out.append(FeedbackExample(f"{t!r}/{name}/{fp}", kind, data))
            if out:
                return out
            cur = found[-1]
        return []


def read_all(
    source: FeedbackSource, *, limit: int = 100_000, batch: int = 500
) -> list[FeedbackExample]:
    """Every example in ``source``, at most ``limit``, in arrival order."""
    out: list[FeedbackExample] = []
    after = "0"
    seen_ids: set[str] = set()
    for _ in range(limit // max(batch, 1) + 1):
        chunk = source.read(after=after, count=batch)
        chunk = [c for c in chunk if c.id not in seen_ids]
        if not chunk:
            break
        out.extend(chunk[: limit - len(out)])
        seen_ids.update(c.id for c in chunk)
        after = chunk[-1].id
        if len(out) >= limit:
            break
    return out


class FeedbackLearner:
    """Polls a :class:`FeedbackSource` and teaches each new example to a model.

    :param model: what learns (``SpamModel`` or ``ReloadingClassifier``).
    :param source: where examples come from.
    :param after: the last id already learned (``"0"``: learn everything).
    :param batch: examples per read.
    """

    def __init__(self, model: Learner, source: FeedbackSource, *, after: str = "0",
                 batch: int = 200) -> None:
        self.model = model
        self.source = source
        self.after = after
        self.batch = batch
        self.learned = 0

    def poll(self, *, max_batches: int = 10) -> int:
        """Learn what arrived since the last poll (bounded); the number learned.

        :raises StoreError: the source cannot be read.
        """
        n = 0
        for _ in range(max_batches):
            chunk = self.source.read(after=self.after, count=self.batch)
            if not chunk:
                break
            views = [parse_message(ex.raw) for ex in chunk]
            self.model.learn(views, [ex.y for ex in chunk])
            self.after = chunk[-1].id
            n += len(chunk)
            if len(chunk) < self.batch:
                break
        if n:
            self.learned += n
            event(log, "feedback_learned", count=n, last_id=self.after)
        return n


class FeedbackFollower:
    """A daemon thread that runs :meth:`FeedbackLearner.poll` every ``interval`` seconds.

    For the milter: ``FeedbackFollower(classifier, RedisFeedbackSource(client)).start()``.
    It starts after the feedback the model was trained with (the model file's
    ``feedback_cursor``, written by ``train --feedback``), and again from that
    model's cursor whenever a :class:`~.classifier.ReloadingClassifier` brings
    in a new file.  Store errors are logged and retried at the next interval.

    :param model: a ``SpamModel`` or ``ReloadingClassifier``.
    :param source: where examples come from.
    :param interval: seconds between polls.
    """

    def __init__(self, model: Any, source: FeedbackSource, *, interval: float = 60.0) -> None:
        import threading

        self.model = model
        self.source = source
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: Any = None
        self.learner = FeedbackLearner(model, source, after=self._cursor())

    def _inner(self) -> Any:
        return getattr(self.model, "model", self.model)

    def _cursor(self) -> str:
        inner = self._inner()
        self._current = inner
        return str(getattr(inner, "metadata", {}).get("feedback_cursor", "0"))

    def poll_once(self) -> int:
        """One poll (what the thread does each interval); the number learned."""
        if self._inner() is not self._current:  # a new model file was loaded
            self.learner.after = self._cursor()
        try:
            return self.learner.poll()
        except StoreError as exc:
            event(log, "feedback_poll_failed", level=logging.WARNING, error=str(exc))
            return 0

    def start(self) -> FeedbackFollower:
        import threading

        self._thread = threading.Thread(target=self._run, name="feedback-follower", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
