"""A complaint as written to the complaint stream by intake and read by the worker.

Stream ``sw:{sw}:complaints`` (hash tag ``{sw}``), one entry per accepted report,
fields are :meth:`Complaint.to_fields`.  Reports that match no delivery here go to
``sw:{sw}:complaints:unmatched`` instead (same fields; at most
:data:`~spamwarden.reputation.intake.UNMATCHED_MAXLEN` entries, and none older than
the complaint stream keeps); the worker never reads it. The complaint id is derived from the
reporter and the reported message's fingerprint, so a replayed or duplicated
entry is recognised (the worker is idempotent by id).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..mail import valid_text

__all__ = ["Complaint", "Indicators", "COMPLAINTS_KEY", "UNMATCHED_KEY", "TRAINING_KEY",
           "MAX_MESSAGE_ID", "counted_reporter"]

COMPLAINTS_KEY = "sw:{sw}:complaints"
#: reports that matched no delivery here: kept for the operator, never counted
UNMATCHED_KEY = "sw:{sw}:complaints:unmatched"
#: where reported originals are kept (bounded, with expiry) as training examples
TRAINING_KEY = "sw:{sw}:training"
#: a Message-ID kept with a complaint is cut to this (RFC 5322 §2.1.1 line limit)
MAX_MESSAGE_ID = 998


@dataclass(frozen=True, slots=True)
class Indicators:
    """What a report says about the source of the reported message."""

    source_ip: str | None = None
    mail_from_domain: str | None = None
    from_domain: str | None = None
    from_address: str | None = None
    dkim_domains: tuple[str, ...] = ()
    dkim_verified: tuple[str, ...] = ()
    url_domains: tuple[str, ...] = ()
    ad_label: str | None = None
    subject: str = ""
    #: the From domain the reporter saw, authenticated or not.  Only the reporter's own
    #: refusal of an advertiser reads it (a refusal binds nobody else); it is never a
    #: listing target (``reputation.engine.ListingPolicy.targets`` does not read it).
    seen_from_domain: str | None = None


def counted_reporter(reporter: str, delivered_to: str, *, domain: str = "") -> str:
    """The one identity a person is counted by, whichever way they reported.

    ``report@`` names the SASL login Postfix recorded, which may have no domain
    (``mallory``); a mailbox move (``spamwarden learn``, ``POST /v1/learn``, learn
    tokens) names the mailbox (``mallory@example.vn``, the login with the site's domain
    appended).  A login without a domain is therefore counted as the user at ``domain``
    (intake passes the first of ``intake.local_domains``, the domain
    ``conf/dovecot/spamwarden-learn`` appends); without one (a complaint stored before
    intake passed it), at the domain of the address the matched delivery was made to
    (``delivered_to``).  One login is one person: counted at the delivery's domain, a
    login owning a mailbox at several local domains counted once per domain.  A login
    with a domain, an address, or a report that matched nothing is counted as it is.
    """
    if "@" in reporter or not reporter:
        return reporter
    if domain:
        return f"{reporter}@{domain}"
    if "@" not in delivered_to:
        return reporter
    return f"{reporter}@{delivered_to.rsplit('@', 1)[1]}"


def _valid_text(value: Any) -> Any:
    """``value`` with every string in it made valid Unicode: a raw 8-bit octet of a header
    the parser kept as a lone surrogate (a Message-ID, a Subject) becomes ``?``.  Such a
    string cannot be encoded for Redis, and the worker would write it on into listings."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {k: _valid_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_valid_text(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Complaint:
    """One accepted report.

    ``reporter`` is the reporter's identity (a SASL login, or an envelope sender;
    see :mod:`spamwarden.reputation.intake`); ``reporter_verified`` says it came from
    a login or a trusted submission host rather than from what the sender wrote, so
    acting on the reporter's behalf (a refusal of advertising) is safe.
    """

    id: str
    kind: Literal["spam", "ham"]
    reporter: str
    received_at: float
    fingerprint: str
    indicators: Indicators = field(default_factory=Indicators)
    source: str = ""  # "arf", "attached", "inline", "bare"
    reporter_verified: bool = False
    #: how the reported message matched a delivery here (reputation.deliveries):
    #: "matched", "fbl" (a configured feedback loop vouched for it), "held" (ham the
    #: operator released from our hold queue), "no-delivery", "not-a-recipient",
    #: "disagree", or "" (not looked up: an old entry)
    match: str = ""
    #: the matched delivery's id ("" unless matched)
    delivery: str = ""
    #: the reporter's address that delivery was made to, folded ("" unless matched): for
    #: a SASL login without a domain, which of the local domains it is the user at
    delivered_to: str = ""
    #: the reported message's Message-ID as the report carried it (at most
    #: :data:`MAX_MESSAGE_ID` characters; "" when it had none, or an older entry):
    #: shown to the operator beside an unmatched report
    message_id: str = ""

    @property
    def counted_reporter(self) -> str:
        """Who this complaint is counted as among distinct reporters
        (:func:`counted_reporter`)."""
        return counted_reporter(self.reporter, self.delivered_to)

    @property
    def proven(self) -> bool:
        """The indicators are what a delivery here (or a feedback loop) proved, not
        what the report's own headers claim."""
        return self.match in ("matched", "fbl")

    def to_fields(self) -> dict[str, str]:
        """The stream entry fields of this complaint (all strings; indicators as one JSON field)."""
        d = _valid_text(asdict(self))
        ind = d.pop("indicators")
        d["indicators"] = json.dumps(ind, separators=(",", ":"), sort_keys=True)
        d["received_at"] = repr(self.received_at)
        return {k: str(v) for k, v in d.items()}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> Complaint:
        """:raises ValueError: the entry is not a complaint."""
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in fields.items()}
        try:
            ind = json.loads(f["indicators"])
            for key in ("dkim_domains", "dkim_verified", "url_domains"):
                ind[key] = tuple(ind.get(key, ()))
            kind = f["kind"]
            if kind not in ("spam", "ham"):
                raise ValueError(f"unknown complaint kind {kind!r}")
            return cls(
                id=f["id"],
                kind=kind,  # type: ignore[arg-type]
                reporter=f["reporter"],
                received_at=float(f["received_at"]),
                fingerprint=f["fingerprint"],
                indicators=Indicators(**ind),
                source=f.get("source", ""),
                reporter_verified=f.get("reporter_verified", "") == "True",
                match=f.get("match", ""),
                delivery=f.get("delivery", ""),
                delivered_to=f.get("delivered_to", ""),
                message_id=f.get("message_id", "")[:MAX_MESSAGE_ID],
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a complaint entry: {exc}") from exc
