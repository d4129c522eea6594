"""The content classifier as its users (the milter, ``check``) see it.

* :class:`ContentClassifier` - the Protocol: one calibrated probability per
  parsed message view (declared by the milter that calls it, in
  :mod:`spamwarden.milter.interfaces`, and named here too).
* :func:`load_classifier` - the shipped default model, or a model file.
* :class:`ReloadingClassifier` - a model file that is re-read when it changes
  on disk (mtime checked at most every ``check_interval`` seconds) or when
  :meth:`ReloadingClassifier.request_reload` is called (a SIGHUP handler); it
  also learns feedback incrementally between reloads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import ModelError
from ..logs import event
from ..mail import MessageView
from ..milter.interfaces import ContentClassifier, SiteCounts

if TYPE_CHECKING:
    from ..config import Config
    from .model import SpamModel

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ContentClassifier",
    "ReloadingClassifier",
    "SiteCounts",
    "default_model_path",
    "load_classifier",
    "site_counts",
]

log = logging.getLogger("spamwarden.training")

#: file name of the model shipped inside the package (``spamwarden/data/``)
DEFAULT_MODEL_NAME = "content-model.skops"


def default_model_path() -> str:
    """Path of the model shipped inside the package."""
    return str(resources.files("spamwarden").joinpath("data", DEFAULT_MODEL_NAME))


def load_classifier(
    source: str | os.PathLike[str] | Config | None = None,
    *,
    reload: bool | None = None,
    check_interval: float = 5.0,
) -> ContentClassifier:
    """The content classifier to use.

    :param source: a model file path; ``None`` or ``""`` for the model shipped
        in the package; or a :class:`~spamwarden.config.Config`, whose
        ``training.model`` is used the same way.
    :param reload: wrap a model file in :class:`ReloadingClassifier` (default:
        yes when ``source`` is a Config naming a file, else no).
    :param check_interval: seconds between mtime checks when reloading.
    :raises ModelError: the file is missing, corrupt, or from an incompatible
        version (the message says which).
    """
    from .model import load_model

    strip: tuple[str, ...] | None = None
    if source is not None and not isinstance(source, (str, os.PathLike)):
        cfg = source
        strip = tuple(cfg.training.strip_headers)
        path = cfg.training.model
        if reload is None:
            reload = bool(path)
    else:
        path = os.fspath(source) if source else ""
    if not path:
        model = load_model(default_model_path())
        _warn_strip_mismatch(model, strip)
        return model
    if reload:
        rc = ReloadingClassifier(path, check_interval=check_interval)
        _warn_strip_mismatch(rc.model, strip)
        return rc
    model = load_model(path)
    _warn_strip_mismatch(model, strip)
    return model


def _warn_strip_mismatch(model: SpamModel, strip: tuple[str, ...] | None) -> None:
    if strip is not None and tuple(model.extractor.strip_headers) != strip:
        event(log, "model_strip_headers_differ",
              level=logging.WARNING,
              note="the model ignores the headers it was trained without; retrain to apply "
                   "training.strip_headers")


class ReloadingClassifier:
    """A model file, re-read when it changes; implements :class:`ContentClassifier`.

    The file's mtime and size are checked at most every ``check_interval``
    seconds, inside :meth:`spam_probability`; :meth:`request_reload` (safe to
    call from a signal handler) forces a check at the next message.  A file
    that fails to load is logged and the previous model stays in use.

    :param path: the model file.
    :param check_interval: seconds between checks.
    :param loader: reads a file into a model (tests inject a counting one).
    :param clock: monotonic seconds.
    :raises ModelError: the first load fails.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 5.0,
        loader: Callable[[str], SpamModel] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from .model import load_model

        self.path = os.fspath(path)
        self.check_interval = check_interval
        self._loader = loader or load_model
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self.model: SpamModel = self._loader(self.path)
        self._next_check = clock() + check_interval
        self._forced = False
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def request_reload(self) -> None:
        """Check the file at the next message (signal-safe: only sets a flag)."""
        self._forced = True

    def maybe_reload(self) -> bool:
        """Re-read the file if it changed (or a reload was requested); ``True`` if it did."""
        now = self._clock()
        if not self._forced and now < self._next_check:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # another thread is checking
        try:
            forced, self._forced = self._forced, False
            self._next_check = now + self.check_interval
            stamp = self._file_stamp()
            if stamp is None or (stamp == self._stamp and not forced):
                return False
            try:
                model = self._loader(self.path)
            except ModelError as exc:
                event(log, "model_reload_failed", level=logging.WARNING, path=self.path,
                      error=str(exc))
                self._stamp = stamp  # do not retry the same broken file every interval
                return False
            self.model = model
            self._stamp = stamp
            self.reloads += 1
            event(log, "model_reloaded", path=self.path)
            return True
        finally:
            self._lock.release()

    def spam_probability(self, view: MessageView) -> float:
        """Calibrated spam probability from the current model."""
        self.maybe_reload()
        return self.model.spam_probability(view)

    def learn(self, messages: Sequence[MessageView | bytes], labels: Sequence[int]) -> None:
        """Learn feedback incrementally into the current model (lost at the next reload,
        which brings a model retrained on the same feedback)."""
        self.model.learn(messages, labels)

    def site_counts(self) -> tuple[int, int]:
        """``(ham, spam)`` of the site's own mail the current model has learned."""
        return self.model.site_counts()


def site_counts(classifier: object, min_ham: int, min_spam: int) -> SiteCounts | None:
    """The site counts of ``classifier`` with the configured minimums
    (:meth:`SiteCounts.of`); ``None`` when the classifier does not count them."""
    return SiteCounts.of(classifier, min_ham, min_spam)
