"""Every SMTP reply code the tests expect, in one place.

A reply is its basic code (RFC 5321 §4.2.1) and its enhanced status code (RFC 3463 §3).
The text after them belongs to the service and is asserted where a test cares: intake's texts
are :data:`spamwarden.reputation.intake.REPLIES`, the milter's are built per decision.
Several names share one code on purpose: they are different expectations that happen to be
answered alike today (a policy rejection of spam, of forged mail, of a reporter).

Three ways to compare, one per client the tests use:

* a reply line (swaks, Postfix's log, intake handlers): ``line.startswith(R.line)``,
  or ``R.line in logline``;
* smtplib's ``(code, message bytes)``: ``R.matches(code, message)``;
* pymilter's ``TestCtx._reply`` ``(code, xcode, text)``: ``ctx._reply[:2] == R.milter``.

Nothing here imports pytest (bench/ may use it too).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONSENT_REFUSED",
    "CONSENT_UNAVAILABLE",
    "MILTER_BUSY",
    "MILTER_ERROR_REJECT",
    "MILTER_ERROR_TEMPFAIL",
    "MILTER_REJECT",
    "MILTER_TEMPFAIL",
    "POSTFIX_MILTER_UNAVAILABLE",
    "REPORTER_REFUSED",
    "REPORT_RATE_LIMITED",
    "REPORT_STORE_FAILED",
    "REPORT_TOO_BIG",
    "REPORT_UNUSABLE",
    "Reply",
    "SETTINGS_SPLIT",
]


@dataclass(frozen=True)
class Reply:
    """An expected reply: basic code and enhanced status code."""

    code: int
    status: str  # "" for a reply without one (aiosmtpd's own 552)

    @property
    def line(self) -> str:
        """The start of the reply line, e.g. ``"550 5.7.1"``."""
        return f"{self.code} {self.status}" if self.status else str(self.code)

    @property
    def milter(self) -> tuple[str, str]:
        """As pymilter's ``setreply`` takes them: ``("550", "5.7.1")``."""
        return (str(self.code), self.status)

    def matches(self, code: int, message: bytes | str) -> bool:
        """Whether smtplib's ``(code, message)`` is this reply (message starts with the
        enhanced status code)."""
        if not self.status:
            return code == self.code
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return code == self.code and (text == self.status or text.startswith(self.status + " "))


# -- the milter (spamwarden/milter/app.py) -------------------------------------------------

#: a message refused by policy at end of message: spam score, DMARC p=reject, SPF fail
MILTER_REJECT = Reply(550, "5.7.1")
#: a verdict that asks the sender to retry (a lookup failed, Redis down)
MILTER_TEMPFAIL = Reply(451, "4.7.1")
#: a check raised and milter.on_error = "tempfail"
MILTER_ERROR_TEMPFAIL = Reply(451, "4.3.0")
#: a check raised and milter.on_error = "reject"
MILTER_ERROR_REJECT = Reply(550, "5.3.0")
#: a large message found no room under milter.max_scan_bytes_in_flight
MILTER_BUSY = Reply(451, "4.3.2")
#: a recipient refused at RCPT: no prior consent to advertising from this sender
CONSENT_REFUSED = Reply(550, "5.7.1")
#: the consent registry cannot be read at RCPT
CONSENT_UNAVAILABLE = Reply(450, "4.7.1")
#: a recipient whose settings differ from the transaction's first recipient's: the
#: client sends it again in another transaction (spamwarden/i18n.py "milter.rcpt_split")
SETTINGS_SPLIT = Reply(452, "4.5.3")
#: Postfix itself with the milter gone and milter_default_action = tempfail
#: ("451 4.7.1 Service unavailable - try again later")
POSTFIX_MILTER_UNAVAILABLE = Reply(451, "4.7.1")

# -- the complaint intake (spamwarden/reputation/intake.py REPLIES) --------------------------

#: reporter not at a local domain, or not authenticated when intake.require_auth is on
REPORTER_REFUSED = Reply(550, "5.7.1")
#: no reported message found, or nothing in it that could be acted on
REPORT_UNUSABLE = Reply(550, "5.6.0")
#: too many reports from one reporter in the last hour
REPORT_RATE_LIMITED = Reply(450, "4.7.1")
#: Redis could not store the report (the MTA retries), or an internal error
REPORT_STORE_FAILED = Reply(451, "4.3.0")
#: DATA over intake.max_message_bytes: drained, then refused (aiosmtpd's reply)
REPORT_TOO_BIG = Reply(552, "")
