"""Complaint intake: the SMTP/LMTP server behind ``report@``, ``ham@`` (and ``optout@``).

Split as in aiosmtpd: the protocol is aiosmtpd's ``SMTP`` / ``LMTP``; the policy
is :class:`ComplaintIntake` (hooks returning status strings); the hosting is
:class:`IntakeServer` (one asyncio server, no threads).  Report parsing is the
pure :mod:`spamwarden.reputation.reports`; storing is :class:`ComplaintStore`.

Recipients (``intake.report_address``, ``intake.ham_address``,
``intake.optout_address``): a local part, valid at every ``intake.local_domains``
domain, or a full address.  ``report`` gives complaints of kind ``spam``,
``ham`` of kind ``ham``.  ``optout`` (and any other address) is served only when
an :class:`AddressHook` is attached for it (the consent registry attaches one);
otherwise it does not exist (``550 5.1.1``).

Replies, in the order checks run:

* connect: more than ``intake.max_sessions`` sessions at once ``421 4.3.2``.
* RCPT: unknown address ``550 5.1.1``; reporter (envelope sender) not in
  ``intake.local_domains`` ``550 5.7.1``; more than 10 recipients ``452 4.5.3``.
* DATA when ``intake.max_data_in_flight`` bytes are already being received or
  handled by other sessions: waits up to 30 s for room, then ``451 4.3.2`` (the MTA
  retries).  A session reserves the ``SIZE=`` its client declared (RFC 1870) when the
  client is one of ``intake.trusted_relays`` (our Postfix), else
  ``intake.max_message_bytes``.
* DATA over ``intake.max_message_bytes``: drained, then ``552`` (aiosmtpd; its own
  replies, this one and the protocol errors, are in ``i18n.language`` too:
  :mod:`~spamwarden.reputation.protocol_replies`).
* ``intake.require_auth`` (the default) and the reporter is not identified:
  ``550 5.7.1`` (see *Reporter identity*).
* no usable original, or nothing in it to act on: ``550 5.6.0`` and a sentence
  for the reporter.
* over ``intake.reporter_rate`` reports in the reporter's current hour:
  ``450 4.7.1`` (the MTA retries later; nothing is lost).
* Redis unreachable or failing: ``451 4.3.0`` (the MTA retries).
* stored: ``250 2.0.0`` with the complaint id (one complaint per reported
  message: several messages forwarded as attachments at once give several,
  up to 10; the reply lists their ids); a report the same reporter
  already made about the same message (same fingerprint, within
  ``reputation.window``) also gets ``250`` but is not written again.
* stored but counting for nothing (``reputation.require_delivered``, the default):
  ``250 2.0.0 Report kept as <id>, but it lists nothing: <why>`` when the reported
  message matches no delivery here to the reporter (see below); for ``ham@``
  ``250 2.0.0 Report kept as <id>, but nothing is learned from it: <why>``.

Which reports count (:mod:`~spamwarden.reputation.deliveries`): a spam report is
looked up in the delivery ledger the milter writes, by the original's content
fingerprint and Message-ID together with the reporter.  A match replaces the
indicators read from the report's copy (its ``Received``, ``From``, ARF
``Source-IP``) with what the delivery proved: the client address the milter saw,
the SPF/DKIM/DMARC-authenticated names, the link domains; the complaint is marked
``match=matched``.  An ARF report from a configured, verified feedback loop
(:mod:`~spamwarden.reputation.feedback_loops`) is marked ``match=fbl`` and counts
with what the loop vouches for.  Any other spam report goes to the unmatched stream,
is never a training example, and lists nothing.  A ham report is matched the same way:
a message wrongly filtered here was delivered here, so one that matches no delivery to
the reporter (a campaign its sender would like to pass as ham) goes to the unmatched
stream and is never a training example.  With ``require_delivered = false`` every
report counts with what its copy claims (dangerous: anyone can list anyone, and teach
the classifier anything as ham).

Reporter identity (what de-duplication, the rate limit, the complaint's
``reporter`` and so the worker's distinct-reporter count use) is the person, not
the envelope string, taken from the topmost ``Received`` field, the one our own
MTA prepends (:func:`~spamwarden.mail.submission`; with an
after-queue content filter, past ``intake.reinjection_hops`` fields):

1. the SASL login Postfix recorded there as ``(Authenticated sender: LOGIN)``
   (``smtpd_sasl_authenticated_header = yes``);
2. else, when that hop's client is in ``intake.trusted_networks`` (a webmail or
   IMAP host that submits for its logged-in users and sets the envelope sender
   itself), the envelope sender;
3. else nobody: with ``intake.require_auth`` the report is refused ``550 5.7.1``;
   without it the envelope sender is taken as is (anyone can write it).

Case and address extensions (``+tag``, any of ``intake.recipient_delimiter``)
fold into one reporter (:func:`reporter_identity`).  ``Received`` fields below
the topmost one came with the message and are never believed.  Intake itself
offers no AUTH: it listens behind Postfix, and whoever can connect to it directly
can write any header, so only the MTA may reach it.  On loopback TCP that is
every local process; on a unix socket (``intake.listen = "unix:/PATH"``) the
file's mode and group decide (``intake.socket_mode``, ``intake.socket_group``).

Training examples (``ham@``/``report@`` originals the milter learns from) are kept
only for identified reporters (:func:`may_train`), at most
``training.max_examples_per_reporter`` a day per reporter, and one per message
per reporter (the de-duplication above), so a flood by one person teaches the
model no more than a few reports do.

``250`` is sent only after the stream write succeeded: the de-duplication
mark, the rate counter, the stream entry and the training example are written
by one Lua script (``reputation/lua/complaint_store.lua``), so a failure
leaves nothing half done and a retry after
``451`` is never mistaken for a duplicate.  In LMTP mode (``intake.lmtp``) each
accepted recipient gets its own reply after DATA (RFC 2033 §4.2).

DKIM signatures of intact originals are re-verified with an injected
:class:`~spamwarden.reputation.reports.DkimVerifier` (the milter's
``verify_dkim``): key records are fetched in a thread through the injected
resolver (kept 5 minutes), then verification runs against those answers.

Redis keys (hash tag ``{sw}``, so one script can touch them all):

``sw:{sw}:complaints``
    stream, one entry per accepted complaint
    (:meth:`~spamwarden.reputation.complaints.Complaint.to_fields`); entries older
    than twice ``reputation.window`` (at least two days) are trimmed as new ones
    are added (``XADD MINID ~``): they no longer count in any window.
``sw:{sw}:complaints:unmatched``
    stream, the same fields, one entry per spam report that matched no delivery
    here (kept for ``spamwarden complaints --unmatched``; the worker never reads
    it); trimmed like the complaint stream and to about :data:`UNMATCHED_MAXLEN`
    entries.
``sw:{sw}:intake:seen:<complaint id>``
    string (the stream entry id), TTL ``reputation.window``: reporter x kind x
    fingerprint already stored.
``sw:{sw}:intake:rate:<reporter>``
    counter, TTL one hour from the reporter's first report in the window.
``sw:{sw}:training:quota:<reporter>``
    counter of training examples the reporter added, TTL one day from the first;
    at ``training.max_examples_per_reporter`` further reports are stored as
    complaints without an example.
``sw:{sw}:training:<label>:<fingerprint>``
    string, the reported original (first ``intake.max_example_bytes`` bytes),
    TTL ``reputation.training_ttl``; ``label`` is ``spam`` (report@) or ``ham``
    (ham@).  The same message reported by several people is kept once per label.
``sw:{sw}:training:<label>``
    sorted set of fingerprints scored by report time (Unix seconds); entries
    older than ``reputation.training_ttl`` are dropped on every write, and the
    set itself expires ``training_ttl`` after the last one.  ``spamwarden
    train`` lists examples here and fetches the strings (a missing string has
    expired).
``sw:{sw}:stats:complaints:<hour>``
    hash, new reports per hour by the same script: ``matched``, ``unmatched``,
    ``ham`` (:mod:`~spamwarden.reputation.stats`, TTL 8 days): the console's charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from .._lua import lua_script
from .._unixsock import bind_unix, parse_mode, resolve_group, unix_path
from ..config import Config, parse_hostport
from ..errors import ReportError, ServiceError, StoreError, StoreUnavailable
from ..i18n import MESSAGES, Message, smtp_text, text
from ..logs import event
from ..mail import (
    MessageView,
    Network,
    canonical_address,
    domain_key,
    fold_extension,
    header_fields,
    install_boundary_matcher,
    normalize_domain,
    parse_networks,
    parse_tag_list,
    registrable_domain,
    strip_mbox_from,
    submission,
    valid_text,
)
from ..resolver import DnsAnswer, Resolver, question_key
from .complaints import (
    COMPLAINTS_KEY,
    MAX_MESSAGE_ID,
    TRAINING_KEY,
    UNMATCHED_KEY,
    Complaint,
    Indicators,
    counted_reporter,
)
from .deliveries import (
    CopyEvidence,
    DeliveryLookup,
    Match,
    RedisDeliveryLookup,
    normalize_reporter,
)
from .feedback_loops import (
    FeedbackLoop,
    arrived_from,
    feedback_indicators,
    feedback_reporter,
    loop_for_sender,
    parse_feedback_loops,
    signed_by,
)
from .protocol_replies import localize
from .reports import (
    AUTOMATIC_MESSAGE,
    NO_ORIGINAL,
    NOTHING_ACTIONABLE,
    DkimVerifier,
    Original,
    ReportLimits,
    extract_indicators,
    find_originals,
    fingerprint,
    html_fingerprint,
    is_actionable,
    message_view,
    verified_domains,
)
from .stats import STATS_TTL, hour_of, stats_key

__all__ = [
    "AddressHook",
    "IntakeRequest",
    "ComplaintStore",
    "RedisComplaintStore",
    "StoreOutcome",
    "ComplaintIntake",
    "LearnOutcome",
    "PrefetchedResolver",
    "IntakeServer",
    "run_intake",
    "complaint_id",
    "reporter_identity",
    "ReporterIdentity",
    "may_train",
    "example_quota_key",
    "seen_key",
    "rate_key",
    "example_key",
    "example_index_key",
    "REPLIES",
    "REPLY_CODES",
    "reply",
    "DataBudget",
]

log = logging.getLogger("spamwarden.intake")

#: the octets of a reported copy read for its header section (the queue id our MTA wrote)
_COPY_HEADER_MAX = 65536

#: What a reporter says a forwarded message is.
ReportKind = Literal["spam", "ham"]
MAX_RECIPIENTS = 10
RATE_WINDOW = 3600
EXAMPLE_QUOTA_WINDOW = 86400  # training.max_examples_per_reporter counts per day
DKIM_BUDGET = 10.0  # seconds for re-verifying one original, DNS included
MAX_DKIM_KEYS = 5  # key records fetched per original
INLINE_DKIM_BYTES = 262_144  # larger originals are verified in a thread
KEY_CACHE_TTL = 300.0  # seconds a fetched DKIM key record is reused (a campaign's reports)
KEY_CACHE_SIZE = 10_000
MAX_ORIGINALS = 10  # reported messages taken from one report (several attached at once)
UNMATCHED_MAXLEN = 10_000  # entries kept in the stream of unmatched reports (about)
# An original is parsed (MIME tree, text, URLs) only in its first bytes: what identifies a
# campaign is in its header and first parts, and the email package costs ~8x what it parses.
PARSE_BYTES = 1_048_576
DATA_BUDGET_WAIT = 30.0  # seconds a DATA waits for room under intake.max_data_in_flight

#: the code and enhanced status code (RFC 3463) of every reply intake gives; the text is
#: the catalogue's ``intake.<name>`` (:mod:`spamwarden.i18n`) in ``i18n.language``
REPLY_CODES = {
    "rcpt_ok": "250 2.1.5",
    "no_such_address": "550 5.1.1",
    "reporter_not_local": "550 5.7.1",
    "too_many_rcpts": "452 4.5.3",
    "auth_required": "550 5.7.1",
    "login_unknown": "550 5.7.1",
    "unusable": "550 5.6.0",
    "rate_limited": "450 4.7.1",
    "store_failed": "451 4.3.0",
    "internal": "451 4.3.0",
    "data_busy": "451 4.3.2",
    "sessions_busy": "421 4.3.2",
    "accepted": "250 2.0.0",
    "accepted_many": "250 2.0.0",
    "duplicate": "250 2.0.0",
    "unmatched": "250 2.0.0",
    "unmatched_ham": "250 2.0.0",
}

#: every reply intake gives, in English, in one place (tests compare against these)
REPLIES = {name: f"{code} {MESSAGES['intake.' + name]['en']}"
           for name, code in REPLY_CODES.items()}

#: why an unmatched report lists nothing (after REPLIES["unmatched"]); in another
#: language the catalogue's ``intake.why.<match>``
UNMATCHED_WHY = {
    match: MESSAGES[f"intake.why.{match}"]["en"]
    for match in ("no-delivery", "not-a-recipient", "disagree")
}

#: the catalogue ids of the sentences a report is refused with (after ``550 5.6.0``)
_SENTENCES = {
    NO_ORIGINAL: "intake.no_original",
    NOTHING_ACTIONABLE: "intake.nothing_actionable",
    AUTOMATIC_MESSAGE: "intake.automatic_message",
}


def reply(language: str, name: str, **values: object) -> str:
    """The SMTP reply ``name`` (a key of :data:`REPLY_CODES`) with its text in
    ``language``, ASCII (:func:`spamwarden.i18n.smtp_text`; RFC 5321 §4.2, RFC 6531).

    :raises KeyError: no such reply, or a value missing.
    """
    if name in ("unmatched", "unmatched_ham"):
        match = str(values.get("why", ""))
        values = {**values, "why": text(language, f"intake.why.{match}")
                  if match in UNMATCHED_WHY else ""}
    elif name == "unusable":
        sentence = str(values.get("sentence", ""))
        msg_id = _SENTENCES.get(sentence)
        values = {"sentence": text(language, msg_id) if msg_id else sentence}
    return f"{REPLY_CODES[name]} {smtp_text(language, 'intake.' + name, **values)}"


def complaint_id(kind: str, reporter: str, fp: str) -> str:
    """The complaint id: derived from kind, reporter and fingerprint (32 hex digits),
    so a replay of the same report has the same id."""
    return hashlib.sha256(f"{kind}\0{reporter}\0{fp}".encode("utf-8", "replace")).hexdigest()[:32]


def seen_key(cid: str) -> str:
    """The marker (TTL reputation.window) of stored complaint ``cid``: repeats are dropped."""
    return f"sw:{{sw}}:intake:seen:{cid}"


def rate_key(reporter: str) -> str:
    """The counter (TTL one hour) of reports from ``reporter``."""
    return f"sw:{{sw}}:intake:rate:{reporter}"


def example_quota_key(reporter: str) -> str:
    """The counter (TTL one day) of training examples ``reporter`` added."""
    return f"{TRAINING_KEY}:quota:{reporter}"


def reporter_identity(address: str, *, delimiters: str) -> str:
    """One reporter however the address (or login) is written: lower-cased, and the
    local part cut at the first address-extension delimiter (Postfix
    ``recipient_delimiter``: ``alice+1@x``, ``Alice@x`` are ``alice@x``).

    :param address: an envelope sender or a SASL login (with or without ``@domain``).
    :param delimiters: the delimiter characters (``intake.recipient_delimiter``);
        empty: extensions are kept.
    :returns: the folded form ("" for an empty address).
    """
    # (a raw 8-bit octet kept as a lone surrogate is no text Redis can take)
    a = valid_text(_lower_address(address))
    local, at, domain = a.rpartition("@")
    if not at:
        local, domain = a, ""
    local = fold_extension(local, delimiters)  # "+x" is not split, as in Postfix
    # the domain as the ledger writes recipients (IDNA, no trailing dot): one person
    # whichever way a login spells it
    if at:
        domain = normalize_domain(domain) or domain
    return f"{local}@{domain}" if at else local


@dataclass(frozen=True, slots=True)
class ReporterIdentity:
    """Who sent a report, as far as our own MTA's ``Received`` field tells.

    :ivar id: the reporter as counted (:func:`reporter_identity` form); "" when unknown.
    :ivar how: ``login`` (SASL login), ``trusted_network`` (envelope sender of a
        submission from ``intake.trusted_networks``), ``envelope`` (the envelope
        sender, unverified) or ``unnamed`` (authenticated, but no login recorded).
    """

    id: str
    how: Literal["login", "trusted_network", "envelope", "unnamed"]

    @property
    def verified(self) -> bool:
        """The identity comes from a login or a trusted submission path, not from
        what the sender wrote."""
        return self.how in ("login", "trusted_network")


def may_train(*, authenticated: bool, matched_delivery: bool | None = None) -> bool:
    """May a report's original become a training example the milter learns from?

    :param authenticated: the reporter is identified (:attr:`ReporterIdentity.verified`).
    :param matched_delivery: the reported message matched a delivery of ours:
        ``False`` (known not to) refuses; ``None`` (not known) leaves it to
        ``authenticated``.
    :returns: whether to keep the example.
    """
    return authenticated and matched_delivery is not False


def example_key(label: str, fp: str) -> str:
    """A reported original kept for training (``label`` ``spam`` or ``ham``, fingerprint ``fp``)."""
    return f"{TRAINING_KEY}:{label}:{fp}"


def example_index_key(label: str) -> str:
    """The index of the training examples kept with ``label``."""
    return f"{TRAINING_KEY}:{label}"


# -- the store --------------------------------------------------------------------------------

StoreOutcome = tuple[Literal["added", "duplicate", "rate_limited"], str]

_STORE_LUA = lua_script("spamwarden.reputation", "complaint_store")


class ComplaintStore(Protocol):
    """Where accepted complaints go (Redis in production)."""

    async def add(
        self, complaint: Complaint, *, example: bytes, reporter_limit: int,
        unmatched: bool = False,
        example_limit: int = 1,
    ) -> StoreOutcome:
        """Store a complaint once, atomically with its de-duplication mark, the
        reporter's rate counter and the training example (``example``, b"" for none;
        kept only while the reporter added fewer than ``example_limit`` today).

        :param unmatched: the report matched no delivery here: it goes to the bounded
            stream of unmatched reports, which nothing counts.

        :returns: ``("added", stream id)``, ``("duplicate", stream id of the
            first)`` or ``("rate_limited", "")``.
        :raises StoreError: the store failed; nothing was stored.
        """
        ...


class RedisComplaintStore:
    """:class:`ComplaintStore` over ``redis.asyncio`` (see the module docstring for keys).

    :param client: a ``redis.asyncio.Redis`` (``redisconn.async_client``).
    :param seen_ttl: how long a reporter x message pair counts once (seconds,
        ``reputation.window``); the stream keeps twice that (at least two days).
    :param training_ttl: lifetime of stored examples (seconds).
    """

    def __init__(self, client: Any, *, seen_ttl: float, training_ttl: float) -> None:
        self.client = client
        self.seen_ttl = max(1, int(seen_ttl))
        self.training_ttl = max(1, int(training_ttl))
        self.keep = 2 * max(seen_ttl, 86400.0)
        self._script = client.register_script(_STORE_LUA)

    async def add(
        self, complaint: Complaint, *, example: bytes, reporter_limit: int,
        unmatched: bool = False,
        example_limit: int = 1,
    ) -> StoreOutcome:
        """See :meth:`ComplaintStore.add` (one Lua script, so the writes are atomic)."""

        import redis.exceptions

        label = complaint.kind
        fields: list[str | bytes] = []
        for k, v in complaint.to_fields().items():
            fields += [k, v]
        keys = [
            UNMATCHED_KEY if unmatched else COMPLAINTS_KEY,
            seen_key(complaint.id),
            rate_key(complaint.reporter),
            example_key(label, complaint.fingerprint),
            example_index_key(label),
            example_quota_key(complaint.reporter),
            stats_key("complaints", hour_of(complaint.received_at)),
        ]
        args: list[str | bytes | int | float] = [
            self.seen_ttl, reporter_limit, RATE_WINDOW, self.training_ttl,
            repr(complaint.received_at), example, complaint.fingerprint,
            f"{int((complaint.received_at - self.keep) * 1000)}-0",
            UNMATCHED_MAXLEN if unmatched else 0, example_limit,
            EXAMPLE_QUOTA_WINDOW,
            "unmatched" if unmatched else ("ham" if label == "ham" else "matched"), STATS_TTL,
            *fields,
        ]
        try:
            status, ident, *_ = await self._script(keys=keys, args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis failed: {exc}") from exc
        status_s = status.decode() if isinstance(status, bytes) else str(status)
        ident_s = ident.decode() if isinstance(ident, bytes) else str(ident)
        if status_s not in ("added", "duplicate", "rate_limited"):
            raise StoreError(f"unexpected answer from the store script: {status_s!r}")
        return status_s, ident_s  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class LearnOutcome:
    """What :meth:`ComplaintIntake.learn` did.

    :ivar status: ``added``, ``duplicate``, ``unmatched`` (stored, lists nothing),
        ``rate_limited``, ``store_failed`` (Redis trouble: nothing stored), ``unusable``
        (no message) or ``refused`` (not a local user).
    :ivar complaint_id: the complaint's id ("" when nothing was stored).
    :ivar match: the delivery-ledger match (``matched``, ``no-delivery``,
        ``not-a-recipient``, ``disagree``).
    :ivar message: one sentence for the user or operator, in English (:attr:`text`'s
        English when only that is given).
    :ivar reporter: the reporter as counted.
    :ivar text: the same sentence as a catalogue message (``learn.*``;
        :mod:`spamwarden.i18n`), which the API renders in the request's language.
    """

    status: Literal["added", "duplicate", "unmatched", "rate_limited", "store_failed",
                    "unusable", "refused"]
    complaint_id: str = ""
    match: str = ""
    message: str = ""
    reporter: str = ""
    text: Message | None = None

    def __post_init__(self) -> None:
        if self.text is not None and not self.message:
            object.__setattr__(self, "message", self.text.render("en"))

    @property
    def stored(self) -> bool:
        """A complaint for this message is in the store (now or from before)."""
        return self.status in ("added", "duplicate", "unmatched")


# -- hooks for other addresses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeRequest:
    """One message for a hooked address (e.g. ``optout@``).

    :ivar reporter: the envelope sender, lower-cased ("" for ``<>``).
    :ivar recipient: the address it was sent to.
    :ivar raw: the message as received.
    :ivar authenticated: the sender is identified: our MTA recorded a SASL login,
        or the submission came from ``intake.trusted_networks``
        (:attr:`ReporterIdentity.verified`).
    :ivar local_reporter: the reporter's domain is one of ``intake.local_domains``.
    :ivar identity: the sender as one person (:class:`ReporterIdentity` ``id``).
    """

    reporter: str
    recipient: str
    raw: bytes
    authenticated: bool
    local_reporter: bool
    identity: str = ""


class AddressHook(Protocol):
    """Handles mail to an address that is not report@ / ham@ (the consent
    registry attaches one for ``optout``).  Returns the SMTP reply, e.g.
    ``"250 2.0.0 Unsubscribed"``; must return ``451 4.3.0 ...`` itself on store
    trouble.  Exceptions are logged and answered ``451 4.3.0``."""

    async def __call__(self, request: IntakeRequest) -> str: ...


# -- the policy (aiosmtpd handler) ----------------------------------------------------------


def _lower_address(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


class PrefetchedResolver:
    """A :class:`~spamwarden.resolver.Resolver` answering from lookups made
    beforehand; any other name is a temporary failure (never a "no")."""

    def __init__(self, answers: Mapping[tuple[str, str], DnsAnswer]) -> None:
        self.answers = {question_key(n, t): a for (n, t), a in answers.items()}

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        """The answer looked up in advance, or ``error`` for a name that was not (never I/O)."""
        return self.answers.get(question_key(name, rdtype)) or DnsAnswer("error", reason="not looked up in advance")


class ComplaintIntake:
    """The aiosmtpd handler: which addresses exist, who may report, what to store.

    :param cfg: the configuration (``[intake]``, ``[reputation]``, ``[consent]`` labels).
    :param store: where complaints go.
    :param dkim_verifier: re-verifies DKIM of intact originals; ``None``: no
        ``d=`` is ever counted as verified.
    :param resolver: where DKIM key records are looked up (``None``: nowhere, so
        nothing verifies).
    :param deliveries: the delivery ledger a report must match
        (``reputation.require_delivered``); ``None``: nothing matches, so with
        ``require_delivered`` every report is kept as unmatched.
    :param hooks: handlers for further addresses, keyed ``"optout"`` (meaning
        ``intake.optout_address``) or a full address / local part.
    :param clock: Unix time source (tests inject one).
    """

    def __init__(
        self,
        cfg: Config,
        store: ComplaintStore,
        *,
        dkim_verifier: DkimVerifier | None = None,
        resolver: Resolver | None = None,
        hooks: Mapping[str, AddressHook] | None = None,
        deliveries: DeliveryLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        ic = cfg.intake
        #: the language of reply texts (``i18n.language``); codes never change with it
        self.language = cfg.i18n.language
        self.store = store
        self.dkim_verifier = dkim_verifier
        self.resolver = resolver
        self._keys: dict[str, tuple[DnsAnswer, float]] = {}  # DKIM key records, briefly
        self.clock = clock
        # one spelling per domain (IDNA, lower case, no trailing dot), as reporters' are
        self.local_domains = tuple(dict.fromkeys(
            domain_key(d) for d in ic.local_domains if d.strip()))
        self.trusted: tuple[Network, ...] = parse_networks(ic.trusted_relays)
        self.submitters: tuple[Network, ...] = parse_networks(ic.trusted_networks)
        self.limits = ReportLimits(max_bytes=ic.max_message_bytes)
        self.view_limits = ReportLimits(max_bytes=min(PARSE_BYTES, ic.max_message_bytes))
        self.routes: dict[str, str] = {}  # address -> "spam" | "ham" | hook name
        self.hooks: dict[str, AddressHook] = {}
        self.deliveries = deliveries
        self.require_delivered = cfg.reputation.require_delivered
        self.feedback_loops = parse_feedback_loops(ic.feedback_loops)
        self._route(ic.report_address, "spam")
        self._route(ic.ham_address, "ham")
        for name, hook in (hooks or {}).items():
            target = ic.optout_address if name == "optout" else name
            self._route(target, f"hook:{name}")
            self.hooks[f"hook:{name}"] = hook

    def _route(self, address: str, kind: str) -> None:
        # the same expansion the milter uses to recognise intake recipients
        for full in self.cfg.intake.expand_address(address):
            self.routes[full] = kind

    def kind_of(self, address: str) -> str | None:
        """``"spam"``, ``"ham"``, ``"hook:<name>"`` or ``None`` for a recipient."""
        return self.routes.get(canonical_address(address))

    def reporter_is_local(self, reporter: str) -> bool:
        """The envelope sender's domain is one of ``intake.local_domains`` (exactly; a
        U-label and its A-label are one domain)."""
        addr = _lower_address(reporter)
        if "@" not in addr:
            return False
        return domain_key(addr.rsplit("@", 1)[1]) in self.local_domains

    def _reply(self, name: str, **values: object) -> str:
        """The reply ``name`` in ``i18n.language`` (see :func:`reply`)."""
        return reply(self.language, name, **values)

    # -- aiosmtpd hooks ---------------------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        """aiosmtpd RCPT hook: accept a recipient that routes somewhere (RFC 5321 §4.1.1.3).

        :returns: the SMTP reply: 250, or 550 for an unknown address or a reporter outside
            ``intake.local_domains``, 452 past the recipient limit (texts in ``REPLIES``).
        """
        kind = self.kind_of(address)
        if kind is None:
            return self._reply("no_such_address", address=_lower_address(address))
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return self._reply("too_many_rcpts")
        if (kind in ("spam", "ham") and not self.reporter_is_local(envelope.mail_from or "")
                and (kind != "spam"
                     or loop_for_sender(self.feedback_loops, envelope.mail_from or "") is None)):
            _count(kind, "refused")
            return self._reply(
                "reporter_not_local",
                domains=", ".join(self.local_domains) or "(none configured)",
                reporter=_lower_address(envelope.mail_from or ""),
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return self._reply("rcpt_ok")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd DATA hook: handle the message once per kind of recipient.

        :returns: the SMTP reply (the worst one), or under LMTP one reply per recipient
            (RFC 2033 §4.2).  An internal error is a 451, so the MTA retries; never raises.
        """
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # decode_data servers
            raw = raw.encode("utf-8", "surrogateescape")
        envelope.content = envelope.original_content = None  # one reference: ours
        reporter = _lower_address(envelope.mail_from or "")
        replies: dict[str, str] = {}
        for rcpt in envelope.rcpt_tos:
            kind = self.kind_of(rcpt) or ""
            if kind in replies:
                continue
            try:
                if kind in ("spam", "ham"):
                    replies[kind] = await self.accept_report(kind, reporter, raw)  # type: ignore[arg-type]
                else:
                    replies[kind] = await self._call_hook(kind, reporter, rcpt, raw)
            except Exception:
                log.exception("intake failed")
                replies[kind] = self._reply("internal")
        if isinstance(server, LMTP):  # RFC 2033 §4.2: one reply per recipient
            return "\r\n".join(replies[self.kind_of(r) or ""] for r in envelope.rcpt_tos)
        return _worst(list(replies.values()), self.language)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd hook for an error outside the other hooks: log it, answer 451."""
        log.error("intake session error: %r", error, exc_info=error)
        return self._reply("internal")

    # -- the work ---------------------------------------------------------------------------

    def identify(self, sender: str, raw: bytes) -> ReporterIdentity:
        """Who sent ``raw`` (see *Reporter identity* in the module docstring).

        :param sender: the envelope sender.
        :param raw: the message; only its topmost ``Received`` field is read.
        """
        ic = self.cfg.intake
        sub = submission(header_fields(raw), own_hops=ic.reinjection_hops)
        fold = functools.partial(reporter_identity, delimiters=ic.recipient_delimiter)
        if sub.login:
            return ReporterIdentity(fold(sub.login), "login")
        if sub.client_ip is not None and _in_networks(sub.client_ip, self.submitters):
            return ReporterIdentity(fold(sender), "trusted_network")
        if sub.authenticated:
            return ReporterIdentity(fold(sender), "unnamed")
        return ReporterIdentity(fold(sender), "envelope")

    async def _call_hook(self, kind: str, reporter: str, rcpt: str, raw: bytes) -> str:
        hook = self.hooks[kind]
        who = self.identify(reporter, raw)
        request = IntakeRequest(
            reporter=reporter, recipient=_lower_address(rcpt), raw=raw,
            authenticated=who.verified, local_reporter=self.reporter_is_local(reporter),
            identity=who.id,
        )
        return await hook(request)

    async def _verify_dkim(self, original: Original, view: MessageView | None) -> tuple[str, ...]:
        """Re-verify the original's DKIM signatures; the ``d=`` that pass.

        Key records are fetched first, in a thread (blocking DNS, little CPU);
        verification then runs on the loop against those answers, so a CPU-bound
        thread never competes with the sessions for the GIL (large originals,
        whose hashing would stall the loop, still go to a thread).
        """
        if (self.dkim_verifier is None or not original.intact or not original.message
                or view is None):
            return ()
        names: list[str] = []
        for value in view.header_all("DKIM-Signature")[:MAX_DKIM_KEYS]:
            tags = parse_tag_list(value)
            d, sel = normalize_domain(tags.get("d", "")), tags.get("s", "").strip().lower()
            if d and sel and f"{sel}._domainkey.{d}" not in names:
                names.append(f"{sel}._domainkey.{d}")
        if not names:
            return ()
        resolver = self.resolver
        now = time.monotonic()
        answers: dict[tuple[str, str], DnsAnswer] = {}
        for n in names:
            hit = self._keys.get(n)
            if hit is not None and hit[1] > now:
                answers[(n, "TXT")] = hit[0]
        missing = [n for n in names if (n, "TXT") not in answers]

        def fetch() -> dict[tuple[str, str], DnsAnswer]:
            if resolver is None:
                return {}
            return {(n, "TXT"): resolver.query(n, "TXT") for n in missing}

        try:
            if missing:
                fetched = await asyncio.wait_for(asyncio.to_thread(fetch), DKIM_BUDGET)
                if len(self._keys) >= KEY_CACHE_SIZE:
                    self._keys.clear()
                for (n, _), answer in fetched.items():
                    if not answer.failed:  # a temporary failure is asked again next time
                        self._keys[n] = (answer, now + KEY_CACHE_TTL)
                answers.update(fetched)
            prefetched = PrefetchedResolver(answers)
            if len(original.message) <= INLINE_DKIM_BYTES:
                results = self.dkim_verifier(original.message, prefetched)
            else:
                results = await asyncio.wait_for(
                    asyncio.to_thread(self.dkim_verifier, original.message, prefetched),
                    DKIM_BUDGET,
                )
        except Exception as exc:  # noqa: BLE001 - a failed check verifies nothing
            event(log, "dkim re-verification failed", logging.WARNING, error=repr(exc))
            return ()
        return verified_domains(results)

    async def accept_report(self, kind: ReportKind, reporter: str, raw: bytes) -> str:
        """Turn one report into stored complaints (one per reported message); the
        SMTP reply.

        :param kind: ``spam`` (report@) or ``ham`` (ham@).
        :param reporter: the envelope sender, lower-cased.
        :param raw: the report as received.
        """
        who = self.identify(reporter, raw)
        loop = await self._verified_loop(reporter, raw) if kind == "spam" else None
        if self.cfg.intake.require_auth and not who.verified and loop is None:
            why = "no login recorded" if who.how == "unnamed" else "not authenticated"
            event(log, "report refused", logging.WARNING if who.how == "unnamed" else logging.INFO,
                  reporter=reporter, kind=kind, why=why)
            _count(kind, "refused")
            return self._reply("login_unknown" if who.how == "unnamed" else "auth_required")
        # The person is counted by their login; the delivery must have gone to the address
        # they report from (Postfix's reject_sender_login_mismatch ties that address to the
        # login, conf/postfix/main.cf), so a login without a domain still matches its mailbox.
        mailbox = reporter_identity(reporter, delimiters=self.cfg.intake.recipient_delimiter)
        reporter = who.id
        try:
            originals = find_originals(raw, local_domains=self.local_domains,
                                       limits=self.limits, max_originals=MAX_ORIGINALS)
        except ReportError as exc:
            event(log, "report refused", reporter=reporter, kind=kind, why=str(exc))
            _count(kind, "unusable")
            return self._reply("unusable", sentence=str(exc))
        report_id = next((v for k, v in header_fields(raw) if k.lower() == "message-id"), "")
        # examples only from identified reporters; _store_original also drops unmatched ones
        train = may_train(authenticated=who.verified)
        results = [await self._store_original(kind, reporter, o, loop=loop, report_id=report_id,
                                              train=train, mailbox=mailbox,
                                              reporter_verified=who.verified)
                   for o in originals]
        outcomes = [(status, cid) for status, cid, _ in results]
        statuses = [status for status, _ in outcomes]
        if "store_failed" in statuses:  # the MTA retries; what was stored is a duplicate then
            return self._reply("store_failed")
        if "rate_limited" in statuses:
            return self._reply("rate_limited", reporter=reporter)
        stored = [(status, cid) for status, cid in outcomes
                  if status in ("added", "duplicate", "unmatched")]
        if not stored:
            return self._reply("unusable", sentence=outcomes[0][1])
        if len(outcomes) == 1:
            status, cid = stored[0]
            if status == "unmatched":
                return self._reply("unmatched_ham" if kind == "ham" else "unmatched", id=cid,
                                   why=results[0][2])
            return self._reply("accepted" if status == "added" else "duplicate", id=cid)
        return self._reply("accepted_many", count=len(stored),
                           ids=", ".join(cid for _, cid in stored))

    async def learn(self, kind: ReportKind, user: str, raw: bytes, *,
                    held_here: bool = False) -> LearnOutcome:
        """Store a message a local user filed as spam or not spam (``spamwarden learn``,
        ``POST /v1/learn``: a mailbox move in an IMAP server), exactly as a report of
        that message to ``report@`` / ``ham@`` by that user is stored.

        The caller is operator-local (the command line, the operator API), so ``user`` is
        an identified reporter, as for a submission from ``intake.trusted_networks``; the
        message itself is the original (it was moved, not forwarded).  The same rules as
        for mailed reports apply: a learn lists something (spam) or teaches something
        only when it matches a delivery here to ``user``
        (``reputation.require_delivered``), else it is kept unmatched and teaches
        nothing; examples are capped per reporter and day
        (``training.max_examples_per_reporter``); ``intake.reporter_rate`` a hour.

        :param kind: ``spam`` or ``ham``.
        :param user: the mailbox owner, an address at one of ``intake.local_domains``.
        :param raw: the message (at most ``intake.max_message_bytes``).
        :param held_here: the operator releases ``raw`` from our own hold queue
            (:func:`~spamwarden.quarantine.release_as_ham`): it arrived here, though no
            delivery to ``user`` was recorded, so a ham learn needs no delivery match.
        :returns: the outcome; ``status`` ``refused`` (user not local) and ``unusable``
            (no message) store nothing, ``store_failed`` means try again later.
        """
        ic = self.cfg.intake
        mailbox = reporter_identity(user, delimiters=ic.recipient_delimiter)
        if not mailbox or "@" not in mailbox or not self.reporter_is_local(mailbox):
            _count(kind, "refused")
            return LearnOutcome("refused", text=Message("learn.not_local", {
                "user": repr(user.strip()), "domains": ", ".join(self.local_domains) or "(none)"}))
        if len(raw) > ic.max_message_bytes:
            _count(kind, "unusable")
            return LearnOutcome("unusable", text=Message("learn.too_large",
                                                         {"limit": ic.max_message_bytes}))
        message = strip_mbox_from(raw)
        if not header_fields(message):
            _count(kind, "unusable")
            return LearnOutcome("unusable", text=Message("learn.no_header"))
        status, cid, match = await self._store_original(
            kind, mailbox, Original("bare", message, intact=True),
            train=may_train(authenticated=True), mailbox=mailbox, reporter_verified=True,
            held_here=held_here and kind == "ham")
        if status == "unusable":  # cid is the sentence saying why
            sentence = _SENTENCES.get(cid)
            return LearnOutcome("unusable", text=Message(sentence) if sentence
                                else Message("intake.unusable", {"sentence": cid}))
        why = Message(f"intake.why.{match}" if match in UNMATCHED_WHY else "learn.why_unknown")
        said = {
            "added": Message("learn.stored"), "duplicate": Message("learn.duplicate"),
            "unmatched": Message("learn.unmatched_ham" if kind == "ham" else "learn.unmatched",
                                 {"why": why}),
            "rate_limited": Message("learn.rate_limited", {"mailbox": mailbox}),
            "store_failed": Message("learn.store_failed"),
        }.get(status)
        return LearnOutcome(status, complaint_id=cid, match=match, text=said,  # type: ignore[arg-type]
                            reporter=mailbox)

    async def _match(self, reporter: str, original: Original, view: MessageView | None,
                     fp: str, url_domains: tuple[str, ...] = ()) -> tuple[Match, str]:
        """The delivery here the reported original is (see
        :mod:`~spamwarden.reputation.deliveries`), and the reporter's address it was
        delivered to (``""`` unless matched).

        :param url_domains: the link domains the copy still has (its indicators'), which
            tell apart deliveries of one text with other links.
        :raises StoreError: the ledger failed.
        """
        if self.deliveries is None:
            return Match("no-delivery"), ""
        content = fp if view is not None and not original.headers_only else None
        contents = [content]
        # an inline forward read from its HTML part: the text the delivered HTML had
        in_html = html_fingerprint(original, limits=self.limits) if content else ""
        if in_html and in_html != content:
            contents.append(in_html)
        mid = view.message_id if view is not None else None
        # the copy's header section: an attached copy keeps our MTA's Received field,
        # which names the delivery's queue id
        head = original.message[:_COPY_HEADER_MAX].replace(b"\r\n", b"\n")
        end = head.find(b"\n\n")
        copy = CopyEvidence(url_domains=url_domains,
                            header=head[:end if end >= 0 else None].decode("utf-8", "replace"))
        delims = self.cfg.intake.recipient_delimiter
        # a SASL login without a domain is the user at one of our domains
        who = [reporter] if "@" in reporter else [f"{reporter}@{d}" for d in self.local_domains]
        found = Match("no-delivery")
        for candidate in who[:10]:
            address = normalize_reporter(candidate, delimiters=delims)
            for fp_text in contents:
                m = await self.deliveries.match(address, fingerprint=fp_text, message_id=mid,
                                                copy=copy)
                if m.status == "matched":
                    return m, address
                if found.status == "no-delivery" or m.status == "disagree":
                    found = m
        return found, ""

    async def _verified_loop(self, reporter: str, raw: bytes) -> FeedbackLoop | None:
        """The configured feedback loop this report proves it comes from (see
        :mod:`~spamwarden.reputation.feedback_loops`), or ``None``."""
        loop = loop_for_sender(self.feedback_loops, reporter)
        if loop is None:
            return None
        if arrived_from(loop, header_fields(raw), own_hops=self.cfg.intake.reinjection_hops):
            return loop
        report = Original("bare", raw, intact=True)
        verified = await self._verify_dkim(report, message_view(report, max_urls=1,
                                                                 limits=self.limits))
        if signed_by(loop, verified):
            return loop
        event(log, "feedback loop not verified", logging.WARNING, reporter=reporter,
              loop=loop.domain)
        return None

    async def _store_original(self, kind: ReportKind, reporter: str, original: Original, *,
                              loop: FeedbackLoop | None = None, report_id: str = "",
                              train: bool = False, mailbox: str = "",
                              reporter_verified: bool = False, held_here: bool = False,
                              ) -> tuple[str, str, str]:
        """Store one reported message: ``(status, complaint id or sentence, match)``,
        status one of added, duplicate, unmatched, rate_limited, store_failed, unusable.

        :param reporter: the reporter as counted (:class:`ReporterIdentity` ``id``).
        :param mailbox: the address the report came from, folded: what a delivery's
            recipients must include (default: ``reporter``).
        :param held_here: a ham message the operator releases from our hold queue: it
            arrived here, so it is kept without a delivery match (``match`` ``held``).
        """
        ic = self.cfg.intake
        view = message_view(original, max_urls=ic.max_urls, limits=self.view_limits)
        verified = await self._verify_dkim(original, view)
        ind = extract_indicators(
            original, trusted_relays=self.trusted, max_urls=ic.max_urls,
            ad_labels=tuple(self.cfg.consent.labels), dkim_verified=verified, limits=self.limits,
            view=view,
        )
        if not is_actionable(ind):
            event(log, "report refused", reporter=reporter, kind=kind, why="nothing actionable",
                  source=original.source)
            _count(kind, "unusable")
            return "unusable", NOTHING_ACTIONABLE, ""
        fp = fingerprint(original, limits=self.limits, view=view)
        match, delivery_id, delivered_to = "", "", ""
        if kind == "spam" and loop is not None and original.source == "arf":
            # a verified feedback loop vouches for its own view of the message
            match = "fbl"
            ind = feedback_indicators(ind, original.arf)
            reporter = feedback_reporter(loop, original.arf, report_id or fp)
        if held_here:
            match = "held"
        if not match:  # a ham report too: what was wrongly filtered was delivered here
            try:
                found, delivered_to = await self._match(mailbox or reporter, original, view, fp,
                                                        ind.url_domains)
            except StoreError as exc:
                event(log, "report not stored", logging.WARNING, reporter=reporter, kind=kind,
                      error=str(exc))
                _count(kind, "tempfail")
                _count_redis_error()
                return "store_failed", "", ""
            match = found.status
            if found.candidates > 1:
                event(log, "report matched several deliveries", reporter=reporter, kind=kind,
                      deliveries=found.candidates,
                      counted="what all of them proved")
            if found.delivery is not None:
                # what the delivery proved replaces what the report's copy claims
                ind = found.delivery.indicators(ad_label=ind.ad_label, subject=ind.subject,
                                                seen_from_domain=ind.from_domain)
                delivery_id = found.delivery.id
        # a login without a domain is its mailbox at the first local domain, as a mailbox
        # move names it: one person for de-duplication, the rate limit, the example quota
        # and the worker's count, whichever local domain the copy was delivered to
        primary = normalize_domain(ic.local_domains[0]) if ic.local_domains else None
        reporter = counted_reporter(reporter, delivered_to, domain=primary or "")
        # one complaint per reporter and delivery, however the copy was sent: a headers-only
        # ARF report matches by Message-ID and its fingerprint hashes fields the reporter
        # writes (Arrival-Date, Source-IP), so one delivery gave a complaint per variant
        cid = complaint_id(kind, reporter, f"delivery:{delivery_id}" if delivery_id else fp)
        unmatched = self.require_delivered and match not in ("matched", "fbl", "held")
        complaint = Complaint(
            id=cid, kind=kind, reporter=reporter, received_at=self.clock(), fingerprint=fp,
            indicators=ind, source=original.source, match=match, delivery=delivery_id,
            delivered_to=delivered_to, reporter_verified=reporter_verified,
            message_id=(view.message_id or "")[:MAX_MESSAGE_ID] if view is not None else "",
        )
        # a message never delivered here is no evidence of what arrives here: not learned;
        # nor is anything from a reporter nobody identified (may_train)
        example = (original.message[: ic.max_example_bytes]
                   if original.message and train and not unmatched else b"")
        try:
            status, entry = await self.store.add(
                complaint, example=example, reporter_limit=ic.reporter_rate,
                unmatched=unmatched,
                example_limit=self.cfg.training.max_examples_per_reporter,
            )
        except StoreError as exc:
            event(log, "report not stored", logging.WARNING, reporter=reporter, kind=kind,
                  error=str(exc))
            _count(kind, "tempfail")
            _count_redis_error()
            return "store_failed", "", match
        _log_outcome(status, complaint, entry)
        _count(kind, "unmatched" if unmatched and status == "added"
               else _OUTCOMES.get(status, status))
        if unmatched and status in ("added", "duplicate"):
            return "unmatched", cid, match
        return status, cid, match


_OUTCOMES = {"added": "accepted", "duplicate": "duplicate", "rate_limited": "rate_limited"}


def _count(kind: str, outcome: str) -> None:
    """``spamwarden_complaints_total{kind, outcome}``; metrics never fail a report."""
    from ..metrics import COMPLAINTS

    COMPLAINTS.labels(kind, outcome).inc()


def _count_redis_error() -> None:
    from ..metrics import REDIS_ERRORS

    REDIS_ERRORS.labels("intake").inc()


def _log_outcome(status: str, c: Complaint, entry: str) -> None:
    ind: Indicators = c.indicators
    name = {"added": "complaint accepted", "duplicate": "complaint duplicate",
            "rate_limited": "complaint rate-limited"}.get(status, f"complaint {status}")
    event(log, name, complaint_id=c.id, kind=c.kind, reporter=c.reporter, source=c.source,
          entry=entry or None, match=c.match or None, delivery=c.delivery or None, source_ip=ind.source_ip, from_domain=ind.from_domain,
          mail_from_domain=ind.mail_from_domain, urls=len(ind.url_domains))


def _worst(replies: Sequence[str], language: str = "en") -> str:
    """One SMTP reply for several recipients: a temporary failure wins (the MTA
    retries and de-duplication absorbs what was stored), then a permanent one."""
    for prefix in ("4", "5"):
        for r in replies:
            if r.startswith(prefix):
                return r
    return replies[0] if replies else reply(language, "internal")


# -- hosting ------------------------------------------------------------------------------------


class DataBudget:
    """Bytes of DATA in flight across every session (``intake.max_data_in_flight``).

    A session reserves before its ``354`` and releases when its reply is sent, so the
    memory that receiving and parsing reports takes grows with this budget, not with
    the number of sessions.

    :param capacity: bytes that may be reserved at once.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, size: int, *, timeout: float) -> int:
        """Reserve ``size`` bytes (at most the capacity, so one message always fits alone).

        :returns: the bytes reserved (give them to :meth:`release`), or 0 when there was
            no room within ``timeout`` seconds.
        """
        size = max(1, min(size, self.capacity))
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.used + size <= self.capacity), timeout
                )
            except TimeoutError:
                return 0
            self.used += size
            return size

    async def release(self, size: int) -> None:
        """Give back what :meth:`acquire` reserved."""
        async with self._cond:
            self.used -= size
            self._cond.notify_all()


def _in_networks(ip: str, networks: Sequence[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


_SIZE_PARAM = re.compile(r"^SIZE=(\d{1,12})$", re.I)


class _Counted:
    """Calls ``on_close`` once when the session's connection ends; reserves DATA bytes
    in a :class:`DataBudget` around each DATA."""

    def __init__(self, *args: Any, on_close: Callable[[], None],
                 budget: DataBudget | None = None,
                 size_trusted: Sequence[Network] = (), language: str = "en",
                 local_only: bool = False, **kwargs: Any) -> None:
        self._on_close: Callable[[], None] | None = on_close
        self._local_only = local_only
        self._language = language
        self._budget = budget
        self._size_trusted = tuple(size_trusted)
        super().__init__(*args, **kwargs)

    def _reservation(self, envelope: Envelope, limit: int) -> int:
        """Bytes to reserve: a trusted client's declared ``SIZE`` (RFC 1870), else ``limit``."""
        peer = getattr(getattr(self, "session", None), "peer", None)
        ip = peer[0] if isinstance(peer, tuple) and peer else ""
        # On a unix socket (no address) only who the socket's mode lets in can connect.
        if self._local_only or (ip and _in_networks(ip, self._size_trusted)):
            for option in envelope.mail_options:
                m = _SIZE_PARAM.match(str(option))
                if m:
                    return min(int(m.group(1)) + 1024, limit)
        return limit

    async def push(self, status: str | bytes) -> None:
        """Send one reply; aiosmtpd's own English lines in ``i18n.language``
        (:func:`~spamwarden.reputation.protocol_replies.localize`)."""
        if isinstance(status, str):
            status = localize(self._language, status)
        await super().push(status)  # type: ignore[misc]

    async def smtp_DATA(self, arg: str) -> None:
        smtp = cast(SMTP, self)
        envelope = smtp.envelope
        if self._budget is None or envelope is None or not envelope.rcpt_tos or arg:
            await super().smtp_DATA(arg)  # type: ignore[misc]
            return
        limit = int(smtp.data_size_limit or self._budget.capacity)
        held = await self._budget.acquire(self._reservation(envelope, limit),
                                          timeout=DATA_BUDGET_WAIT)
        if not held:
            event(log, "data deferred", logging.WARNING, why="intake.max_data_in_flight",
                  in_flight=self._budget.used)
            await smtp.push(reply(self._language, "data_busy"))
            return
        try:
            await super().smtp_DATA(arg)  # type: ignore[misc]
        finally:
            await self._budget.release(held)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)  # type: ignore[misc]
        finally:
            callback, self._on_close = self._on_close, None
            if callback is not None:
                callback()


class _CountedSMTP(_Counted, SMTP):
    pass


class _CountedLMTP(_Counted, LMTP):
    pass


class _Busy(asyncio.Protocol):
    """What a connection over ``max_sessions`` gets (RFC 5321 §3.8: 421 and close).

    :param language: the language of the reply text (``i18n.language``).
    """

    def __init__(self, language: str = "en") -> None:
        self._line = (reply(language, "sessions_busy") + "\r\n").encode("ascii")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._line)
        transport.close()


class IntakeServer:
    """Hosts a handler on one TCP address with aiosmtpd's SMTP or LMTP protocol.

    :param handler: the aiosmtpd handler (:class:`ComplaintIntake`).
    :param host: address to bind (``127.0.0.1``).
    :param port: port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    :param lmtp: speak LMTP (RFC 2033) instead of SMTP.
    :param data_size_limit: DATA larger than this is drained and answered 552.
    :param hostname: name in the greeting (default: this host's FQDN).
    :param timeout: idle seconds before a session is closed.
    :param max_sessions: sessions at once; one more is answered ``421 4.3.2`` and
        closed (the client retries later).
    :param max_data_in_flight: DATA bytes reserved at once across sessions (see
        :class:`DataBudget`); ``None``: no budget.
    :param size_trusted: clients whose declared ``SIZE=`` is what they reserve.
    :param language: the language of the replies the server gives itself (421 over
        ``max_sessions``, 451 over the DATA budget): ``i18n.language``.
    :param path: listen on this unix socket instead of ``host``/``port``
        (:func:`~spamwarden._unixsock.bind_unix`); its clients' ``SIZE=`` is trusted,
        since only those its mode lets in can connect.
    :param socket_mode: the unix socket's permission bits.
    :param socket_group: the unix socket's group id; ``None``: the process's own.
    """

    def __init__(
        self,
        handler: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lmtp: bool = False,
        data_size_limit: int = 10_240_000,
        hostname: str | None = None,
        timeout: float = 300.0,
        max_sessions: int = 100,
        max_data_in_flight: int | None = None,
        size_trusted: Sequence[Network] = (),
        language: str = "en",
        path: str | None = None,
        socket_mode: int = 0o660,
        socket_group: int | None = None,
    ) -> None:
        self.handler = handler
        self.path = path
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.language = language
        self.max_sessions = max_sessions
        self.budget = DataBudget(max_data_in_flight) if max_data_in_flight else None
        self.size_trusted = tuple(size_trusted)
        self.sessions = 0
        self.host = host
        self.port = port
        self.lmtp = lmtp
        self.data_size_limit = data_size_limit
        self.hostname = hostname or socket.getfqdn()
        self.timeout = timeout
        self._server: asyncio.base_events.Server | None = None
        self._inode = 0

    def _protocol(self) -> asyncio.Protocol:
        if self.sessions >= self.max_sessions:
            return _Busy(self.language)
        self.sessions += 1
        cls = _CountedLMTP if self.lmtp else _CountedSMTP
        return cls(
            self.handler,
            on_close=self._session_closed,
            budget=self.budget,
            size_trusted=self.size_trusted,
            local_only=self.path is not None,
            language=self.language,
            data_size_limit=self.data_size_limit,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            timeout=self.timeout,
            loop=asyncio.get_running_loop(),
        )

    def _session_closed(self) -> None:
        self.sessions -= 1

    async def start(self) -> None:
        """Bind and start accepting sessions.

        :raises ServiceError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        if self.path is not None:
            try:
                sock = bind_unix(self.path, self.socket_mode, self.socket_group)
            except OSError as exc:
                raise ServiceError(f"intake cannot listen on unix:{self.path}: {exc}") from exc
            self._inode = os.stat(self.path).st_ino
            self._server = await loop.create_unix_server(self._protocol, sock=sock)
            event(log, "intake listening", address=f"unix:{self.path}",
                  protocol="lmtp" if self.lmtp else "smtp",
                  mode=f"{self.socket_mode:04o}")
            return
        try:
            self._server = await loop.create_server(self._protocol, host=self.host, port=self.port)
        except OSError as exc:
            raise ServiceError(f"intake cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        event(log, "intake listening", address=f"{self.host}:{self.port}",
              protocol="lmtp" if self.lmtp else "smtp")

    async def stop(self) -> None:
        """Stop accepting and close the listening socket (a unix socket's file is
        removed, unless another process has replaced it since)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            if self.path is not None:
                with contextlib.suppress(OSError):
                    if os.stat(self.path).st_ino == self._inode:
                        os.unlink(self.path)


async def run_intake(
    cfg: Config,
    *,
    dkim_verifier: DkimVerifier | None = None,
    resolver: Resolver | None = None,
    hooks: Mapping[str, AddressHook] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run intake until SIGTERM / SIGINT (or ``stop`` is set).

    :raises ServiceError: the listen address is unusable or cannot be bound.
    """
    from ..redisconn import async_client

    path = unix_path(cfg.intake.listen)
    host, port = "", 0
    gid: int | None = None
    try:
        if path is None:
            host, port = parse_hostport(cfg.intake.listen)
        else:
            gid = resolve_group(cfg.intake.socket_group)
    except ValueError as exc:
        raise ServiceError(f"intake.listen: {exc}") from exc
    client = async_client(cfg)
    store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                training_ttl=cfg.reputation.training_ttl)
    handler = ComplaintIntake(cfg, store, dkim_verifier=dkim_verifier, resolver=resolver,
                              hooks=hooks, deliveries=RedisDeliveryLookup(client))
    if not handler.local_domains:
        event(log, "intake.local_domains is empty: every report will be refused", logging.WARNING)
    server = IntakeServer(handler, host=host, port=port, lmtp=cfg.intake.lmtp,
                          data_size_limit=cfg.intake.max_message_bytes,
                          max_sessions=cfg.intake.max_sessions,
                          max_data_in_flight=cfg.intake.max_data_in_flight,
                          size_trusted=handler.trusted, language=cfg.i18n.language,
                          path=path, socket_mode=parse_mode(cfg.intake.socket_mode),
                          socket_group=gid)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers: dict[signal.Signals, Callable[[], None]] = {
        signal.SIGTERM: stop.set,
        signal.SIGINT: stop.set,
        # nothing to reload (the configuration is read at start); don't die on it
        signal.SIGHUP: lambda: event(log, "SIGHUP ignored: restart intake to reload"),
    }
    for sig, action in handlers.items():
        try:
            loop.add_signal_handler(sig, action)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    registrable_domain("example.com")  # load the Public Suffix List before the first report
    install_boundary_matcher()  # MIME boundaries without a regex compiled per message
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
        await client.aclose()
        event(log, "intake stopped")

