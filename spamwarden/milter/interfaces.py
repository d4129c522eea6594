"""Plug-in points of the milter pipeline: typed, so every check is optional and
testable with a fake implementing the same Protocol.

* :class:`ContentClassifier` - content score (the trained models of
  :mod:`spamwarden.training` implement it).
* :class:`~spamwarden.reputation.lookup.ListingLookup` - own listings, volume.
* :class:`MessagePolicy` - extra rules with a say at RCPT time and at end of
  message (the advertising-consent rules implement it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..mail import MessageView

if TYPE_CHECKING:
    from ..reputation.lookup import ListingOutcome
    from ..settings.model import SettingsSnapshot
    from .auth import AuthResults

__all__ = [
    "Action", "BatchedVolume", "ContentClassifier", "Envelope", "HoldsPlaces", "MessagePolicy",
    "PendingListing",
    "RcptDecision", "RecordsDeliveries", "SettingsSource", "SiteCounts", "StartsLookups",
    "Symbol",
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


#: envelope recipients one message keeps (Postfix's smtpd_recipient_limit is 1,000)
MAX_RCPTS = 1000


@dataclass(slots=True)
class Envelope:
    """What the SMTP dialogue told us about one message."""

    client_ip: str | None = None
    client_name: str = ""
    helo: str = ""
    mail_from: str = ""
    rcpts: list[str] = field(default_factory=list)
    #: more recipients were accepted than ``rcpts`` keeps (:data:`MAX_RCPTS`)
    rcpts_cut: bool = False
    queue_id: str = ""
    authenticated: bool = False
    #: False when ``mail_from`` was guessed from the headers (an offline check), not
    #: given by the MTA
    mail_from_known: bool = True
    #: our host name as the MTA writes it in its Received lines (the ``j`` macro)
    receiver: str = ""
    #: whether the client talked over TLS (the ``{tls_version}`` macro at HELO)
    tls: bool = False


@dataclass(frozen=True, slots=True)
class RcptDecision:
    """Reject one recipient: ``550 5.7.1 <text>`` (or 450 4.7.1 when ``temporary``).

    :ivar code: / ``status``: another reply code and enhanced status (RFC 3463), e.g.
        ``452`` / ``4.5.3`` for a recipient to send in another transaction; "" for the
        defaults above.
    """

    text: str
    symbol: str = ""
    temporary: bool = False
    code: str = ""
    status: str = ""


@runtime_checkable
class MessagePolicy(Protocol):
    """Extra rules consulted by the milter (e.g. advertising consent).

    ``auth`` is the pipeline's :class:`~spamwarden.milter.auth.AuthResults`.
    Implementations must not raise for store trouble: they return what they can
    and add a symbol saying a check could not be made.
    """

    def check_rcpt(self, env: Envelope, rcpt: str, *,
                   sender_spf: Callable[[], Any] | None = None) -> RcptDecision | None:
        """Called for each RCPT TO; ``None`` lets the recipient through.

        :param sender_spf: SPF's answer for the envelope sender (a
            :class:`~spamwarden.milter.auth.SpfResult` or ``None``), computed when first
            called and then remembered for the transaction: a policy whose answer would
            tell the client something about the recipient asks it first, so that only a
            sender SPF vouches for hears it.  ``None``: not available (no answer).
        """
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
class HoldsPlaces(Protocol):
    """A message policy whose :meth:`~MessagePolicy.check_message` may take something
    for the message (the consent policy: a place under an advertiser's daily cap) that
    only its delivery keeps."""

    def released(self, view: MessageView, env: Envelope, auth: AuthResults | None) -> None:
        """The message was not accepted (refused, deferred, or its scan failed): give
        back what :meth:`~MessagePolicy.check_message` took.  Never raises."""
        ...


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



@runtime_checkable
class SettingsSource(Protocol):
    """The operator's recipient settings and sender lists
    (``settings.store.SettingsCache``): a snapshot that may change between messages."""

    def current(self) -> SettingsSnapshot:
        """The settings to use now.  Never raises for store trouble."""
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


@runtime_checkable
class ContentClassifier(Protocol):
    """Scores the bounded message view the milter already parsed."""

    def spam_probability(self, view: MessageView) -> float:
        """Calibrated probability in [0, 1] that the message is spam."""
        ...


@dataclass(frozen=True, slots=True)
class SiteCounts:
    """How much of a site's own mail the classifier has learned, and how much it needs.

    Like SpamAssassin's ``bayes_min_ham_num`` / ``bayes_min_spam_num``: until both
    counts reach their minimum the classifier is not trusted with the site's mail and
    its points are scaled down
    (:func:`spamwarden.milter.checks.classifier.bayes_symbols`).

    :ivar ham: ham learned from this site (``ham@`` reports, ``train --feedback``/``--site``).
    :ivar spam: spam learned from this site.
    :ivar min_ham: ``training.min_site_ham``.
    :ivar min_spam: ``training.min_site_spam``.
    """

    ham: int
    spam: int
    min_ham: int = 200
    min_spam: int = 200

    @property
    def established(self) -> bool:
        """Both counts reached their minimum: full points."""
        return self.ham >= self.min_ham and self.spam >= self.min_spam

    @property
    def progress(self) -> float:
        """0 (nothing learned) … 1 (established): the lesser of the two shares."""
        h = 1.0 if self.min_ham <= 0 else min(1.0, self.ham / self.min_ham)
        s = 1.0 if self.min_spam <= 0 else min(1.0, self.spam / self.min_spam)
        return min(h, s)

    @classmethod
    def of(cls, classifier: object, min_ham: int, min_spam: int) -> SiteCounts | None:
        """The counts a classifier reports (its ``site_counts() -> (ham, spam)``).

        :returns: ``None`` when the classifier does not count what it learned (a
            custom ``ContentClassifier``): its points are then used as they are.
        """
        fn = getattr(classifier, "site_counts", None)
        if fn is None:
            return None
        ham, spam = fn()
        return cls(int(ham), int(spam), min_ham, min_spam)
