"""Plug-in points of the milter pipeline: typed, so every check is optional and
testable with a fake implementing the same Protocol.

* :class:`~spamwarden.training.classifier.ContentClassifier` - content score.
* :class:`~spamwarden.reputation.lookup.ListingLookup` - own listings, volume.
* :class:`MessagePolicy` - extra rules with a say at RCPT time and at end of
  message (the advertising-consent rules implement it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..mail import MessageView

if TYPE_CHECKING:
    from ..reputation.lookup import ListingOutcome
    from .auth import AuthResults

__all__ = [
    "Action", "BatchedVolume", "Envelope", "MessagePolicy", "PendingListing",
    "RcptDecision", "RecordsDeliveries", "StartsLookups", "Symbol",
]

#: What the milter does with a message, from mildest to hardest.
Action = Literal["accept", "tag", "quarantine", "tempfail", "reject"]


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
    action: Action | Literal[""] = ""
    #: The listed IP or domain behind a listing symbol (``RBL_OWN``, ``DBL_OWN``,
    #: ``URIBL_OWN``): what a rejected sender looks up or asks delisting for; "" otherwise.
    key: str = ""


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
        self, view: MessageView, env: Envelope, auth: AuthResults | None
    ) -> Sequence[Symbol]:
        """Symbols for the whole message at end of message."""
        ...

    def delivered(self, view: MessageView, env: Envelope, auth: AuthResults | None) -> None:
        """The message was accepted for ``env.rcpts``: count it."""
        ...


# -- optional capabilities, each checked once when the scanner is wired ------------------------


@runtime_checkable
class PendingListing(Protocol):
    """A listing lookup already sent, its answer not yet read."""

    def result(self) -> Mapping[str, ListingOutcome]:
        """The outcome of each key (reads the answer).  Never raises."""
        ...

    def discard(self) -> None:
        """Give the connection back without reading the answer."""
        ...


@runtime_checkable
class StartsLookups(Protocol):
    """A listing lookup that can send its question now and read the answer later
    (``RedisListingLookup.begin_lookup``), so the store works while the milter does."""

    def begin_lookup(self, keys: Sequence[str]) -> PendingListing:
        """Send the lookup of ``keys``.  Never raises."""
        ...


@runtime_checkable
class BatchedVolume(Protocol):
    """A listing lookup that counts several messages' volume in one round trip."""

    def record_volume_many(self, messages: Sequence[Sequence[str]]) -> None:
        """Count each message (its source keys).  Best effort, never raises."""
        ...



class RecordsDeliveries(Protocol):
    """The delivery ledger: accepted messages recorded so that a later complaint can be
    matched to what this server really delivered (``reputation.deliveries``)."""

    def record_delivered(self, items: Sequence[tuple[Any, Envelope]], *,
                         skip_recipients: frozenset[str]) -> int:
        """Record ``(Verdict, Envelope)`` pairs; ``skip_recipients`` are never recorded
        as recipients.  Never raises for store trouble.

        :returns: deliveries recorded."""
        ...
