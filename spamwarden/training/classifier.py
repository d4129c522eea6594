"""The content classifier as its users (the milter, ``check``) see it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..mail import MessageView

__all__ = ["ContentClassifier"]


@runtime_checkable
class ContentClassifier(Protocol):
    """Scores the bounded message view the milter already parsed."""

    def spam_probability(self, view: MessageView) -> float:
        """Calibrated probability in [0, 1] that the message is spam."""
        ...
