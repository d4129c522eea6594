"""What the pipeline decided about one message, and the envelope checks it starts early.

Plain data shared by the scanner that builds it, the check registry and the checks that
read it, the delivery recorder and the milter that acts on it; it imports none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..mail import MessageView
from ..resolver import Resolver
from ..settings.model import Thresholds
from .interfaces import Action, Envelope, Symbol

if TYPE_CHECKING:
    from .auth import AuthResults, SpfResult

__all__ = ["Authenticator", "EnvelopeChecks", "Verdict"]


class Authenticator(Protocol):
    """``spamwarden.milter.auth.authenticate``: SPF, DKIM and DMARC of one message."""

    def __call__(
        self,
        raw: bytes,
        view: MessageView,
        resolver: Resolver,
        *,
        client_ip: str | None,
        helo: str,
        mail_from: str,
        max_signatures: int = 5,
        timeout: float = 5.0,
        spf_result: SpfResult | None = None,
    ) -> AuthResults:
        """SPF, DKIM and DMARC; ``spf_result``: SPF already evaluated (at MAIL FROM)."""
        ...



@dataclass(frozen=True)
class Verdict:
    """What the pipeline decided about one message.

    :ivar action: ``accept``, ``tag``, ``quarantine``, ``reject`` or ``tempfail``.
    :ivar score: sum of the symbols' points, one decimal.
    :ivar required: the tag threshold (SpamAssassin's ``required=``).
    :ivar reason: the main reason in one line (reject text, quarantine reason, log).
    :ivar add_headers: headers to add, ``(name, value)`` in order; the
        ``Authentication-Results`` header comes first and goes on top, then our
        ARC set when sealing (``arc.sign``: ARC-Authentication-Results,
        ARC-Message-Signature, ARC-Seal), each put on top in turn
        (:data:`~spamwarden.milter.headers.ON_TOP`).
    :ivar remove_headers: incoming headers to remove, ``(name, 1-based index)``.
    :ivar unavailable: checks that could not be made, e.g. ``classifier (no model)``.
    :ivar scored: ``False`` when the message was not scored (over the size limit).
    """

    action: Action
    score: float
    required: float
    symbols: tuple[Symbol, ...]
    reason: str
    add_headers: tuple[tuple[str, str], ...]
    remove_headers: tuple[tuple[str, int], ...]
    unavailable: tuple[str, ...] = ()
    auth: AuthResults | None = None
    scored: bool = True
    elapsed_ms: float = 0.0
    #: the symbol behind the action ("" for accept), e.g. ``DMARC_REJECT``, ``RBL_OWN``
    main_symbol: str = ""
    #: for a listing symbol: the listed IP or domain, to look up or ask delisting for
    listed_key: str = ""
    #: the thresholds the score was compared with (``[policy]`` or the recipient's
    #: settings); ``None`` for a message not scored
    thresholds: Thresholds | None = None
    view: MessageView | None = field(default=None, repr=False, compare=False)

    @property
    def flagged(self) -> bool:
        """Over the tag threshold (``X-Spam-Flag: YES``)."""
        return self.scored and (
            self.score >= self.required or self.action in ("tag", "quarantine", "reject")
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``spamwarden check --json``)."""
        return {
            "action": self.action,
            "score": self.score,
            "required": self.required,
            "scored": self.scored,
            "reason": self.reason,
            "main_symbol": self.main_symbol,
            "listed_key": self.listed_key,
            "symbols": [
                {"name": s.name, "points": s.points, "detail": s.detail,
                 **({"action": s.action} if s.action else {})}
                for s in self.symbols
            ],
            "auth": _auth_dict(self.auth),
            "unavailable": list(self.unavailable),
            "add_headers": [[n, v] for n, v in self.add_headers],
            "remove_headers": [[n, i] for n, i in self.remove_headers],
        }


def _auth_dict(auth: AuthResults | None) -> dict[str, Any] | None:
    if auth is None:
        return None

    def obj(o: Any) -> dict[str, Any] | None:
        if o is None:
            return None
        out: dict[str, Any] = {}
        for f in dataclasses.fields(o):
            v = getattr(o, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    return {
        "spf": obj(auth.spf),
        "dkim": [obj(d) for d in auth.dkim],
        "dmarc": obj(auth.dmarc),
        "arc": obj(getattr(auth, "arc", None)),
    }


@dataclass(frozen=True)
class EnvelopeChecks:
    """Checks started at MAIL FROM, running while the client sends the message.

    Everything here depends only on the envelope (client IP, HELO, MAIL FROM), so
    its answer is the one the end of message would compute: SPF (RFC 7208 checks
    the envelope, not the content), the third-party DNSBLs of the client IP, and
    the DMARC policy record of the envelope domain fetched into the resolver's
    cache (the From domain is usually the same; its own lookup at the end of
    message then answers from the cache, within the record's TTL).

    :ivar client_ip: ``helo``, ``mail_from``: the envelope the checks ran for; a
        message whose envelope differs at the end of message does not use them.
    :ivar jobs: the running job of each check that started one, by check name.
    """

    client_ip: str | None
    helo: str
    mail_from: str
    jobs: Mapping[str, Future[Any]] = field(default_factory=dict)

    @property
    def spf(self) -> Future[Any] | None:
        """The future :class:`~spamwarden.milter.auth.SpfResult` (the ``auth`` check's job)."""
        return self.jobs.get("auth")

    @property
    def dnsbl(self) -> Future[Any] | None:
        """The future third-party DNSBL symbols (the ``dnsbl`` check's job)."""
        return self.jobs.get("dnsbl")

    def matches(self, env: Envelope) -> bool:
        """True when ``env`` is the envelope these checks ran for."""
        return (self.client_ip, self.helo, self.mail_from) == (
            env.client_ip, env.helo, env.mail_from)

    def cancel(self) -> None:
        """Drop the checks (RSET, abort, a new MAIL FROM): jobs not yet started never run."""
        for job in self.jobs.values():
            job.cancel()
