"""Plug-in points of the milter pipeline: typed, so every check is optional and
testable with a fake implementing the same Protocol.

* :class:`~spamwarden.training.classifier.ContentClassifier` - content score.
* :class:`~spamwarden.reputation.lookup.ListingLookup` - own listings, volume.
* :class:`MessagePolicy` - extra rules with a say at RCPT time and at end of
  message (the advertising-consent rules implement it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from ..mail import MessageView

__all__ = ["Symbol", "Envelope", "RcptDecision", "MessagePolicy"]


@dataclass(frozen=True, slots=True)
class Symbol:
    """One named signal with its points and a short human detail.

    Points given by the producer are replaced by ``[policy.symbols]`` when the
    operator configured the name there.
    """

    name: str
    points: float
    detail: str = ""
    #: The least action this signal demands whatever the score: "" (none),
    #: "quarantine", "tempfail" or "reject" (e.g. DMARC p=reject failing).
    action: str = ""


@dataclass(slots=True)
class Envelope:
    """What the SMTP dialogue told us about one message."""

    client_ip: str | None = None
    client_name: str = ""
    helo: str = ""
    mail_from: str = ""
    rcpts: list[str] = field(default_factory=list)
    queue_id: str = ""
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class RcptDecision:
    """Reject one recipient: ``550 5.7.1 <text>`` (or 450 when ``temporary``)."""

    text: str
    symbol: str = ""
    temporary: bool = False


@runtime_checkable
class MessagePolicy(Protocol):
    """Extra rules consulted by the milter (e.g. advertising consent).

    ``auth`` is the pipeline's :class:`~spamwarden.milter.auth.AuthResults`.
    Implementations must not raise for store trouble: they return what they can
    and add a symbol saying a check could not be made.
    """

    def check_rcpt(self, env: Envelope, rcpt: str) -> RcptDecision | None:
        """Called for each RCPT TO; ``None`` lets the recipient through."""
        ...

    def check_message(
        self, view: MessageView, env: Envelope, auth: object
    ) -> Sequence[Symbol]:
        """Symbols for the whole message at end of message."""
        ...

    def delivered(self, view: MessageView, env: Envelope, auth: object) -> None:
        """The message was accepted for ``env.rcpts``: count it."""
        ...
