"""The delivery ledger: what this site delivered, so a later complaint can be matched to it.

A complaint is evidence about *a message this site delivered*, from *a person it
delivered it to*, and it counts only against *names that message proved*.  The
milter knows all three at delivery time and nobody can forge them afterwards:
the client address its MTA saw, the names SPF, DKIM and DMARC authenticated, and
the envelope recipients.  A report only carries a copy of the message, whose
``Received`` fields, ``From`` and ARF ``Source-IP`` anyone can write.  So the
milter records a :class:`Delivery` for each accepted message (after the reply,
in :class:`~spamwarden.milter.scanner.DeliveryRecorder`'s batch: one pipeline per
batch, no round trip on the SMTP path), and intake looks the reported original
up here (:meth:`DeliveryLookup.match`) instead of believing its headers.

What a delivery proves (:func:`delivery_of`):

* ``client_ip``: the SMTP client the milter saw (none for SMTP AUTH submissions:
  a local user's own address is not a spam source);
* ``mail_from_domain``: the MAIL FROM domain, only when SPF passed for it
  (RFC 7208 §2.6.3);
* ``dkim_domains``: the ``d=`` of every signature that verified (RFC 6376 §6.1);
* ``from_domain`` / ``from_address``: the RFC 5322.From, only when DMARC passed,
  i.e. SPF or DKIM passed for an aligned domain (RFC 7489 §3.1, §4.2);
* ``url_domains``: the registrable domains of the links in the body (they are in
  the message as delivered; who put them there is not proven, see docs/operations.md);
* ``recipients``: the envelope recipients, normalised, intake addresses left out.

Matching (:func:`decide_among`): the reported original is found by its content
fingerprint (:func:`~spamwarden.reputation.reports.fingerprint`, which gives the
same value for the delivered message and for the copy recovered from a Gmail,
Outlook or Thunderbird forward, attached or inline, a bounce or an ARF report;
a message with a plain and an HTML alternative is indexed by the fingerprint of
each, :func:`~spamwarden.reputation.reports.delivered_html_fingerprint`, since a
client forwarding inline forwards the HTML and writes its own plain text of it)
and by its Message-ID, each together with the reporter; where both are known
they must point at the same delivery.  A reporter who was not a recipient of the
delivery matches nothing.

Several deliveries to one recipient can share a fingerprint: the fingerprint leaves
out link targets and every sending name, so that a forwarded copy still matches.  A
spammer can therefore follow its spam with look-alikes (the same text, other links,
another client address) to the same people.  The ledger keeps the
:data:`MAX_CANDIDATES` newest deliveries of a content or Message-ID per recipient, and a
report that fits several is narrowed by what the reported copy shows (our MTA's queue id
in its ``Received`` fields, the link domains it still has; :func:`decide_among`); what is
still ambiguous counts only against what every one of those deliveries proved.

Redis keys (hash tag ``{sw}``; every one expires ``reputation.window`` after the
last delivery written to it):

``sw:{sw}:dlv:<id>``
    string, the delivery as JSON (:meth:`Delivery.to_json`).
``sw:{sw}:dlv:f:<fingerprint>:<recipient>``
    string, the ids of the newest deliveries of that content to that recipient, oldest
    first, separated by spaces (at most :data:`MAX_CANDIDATES`; usually one); a
    delivery's HTML fingerprint (when it has one) is a content of its own here.
``sw:{sw}:dlv:m:<message-id hash>:<recipient>``
    string, the same for that Message-ID (hash: first 32 hex digits of SHA-256 of the
    Message-ID without ``<>``).
``sw:{sw}:dlv:f:<fingerprint>`` / ``sw:{sw}:dlv:m:<message-id hash>``
    string, the id of the latest delivery of that content / Message-ID to anyone
    (only to tell a reporter "delivered here, but not to you").

Bounds per delivery: :data:`MAX_RECIPIENTS` recipients indexed (further
recipients cannot report the message), :data:`MAX_URL_DOMAINS` URL domains and
:data:`MAX_DKIM_DOMAINS` signing domains kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from .._lua import lua_script
from ..errors import StoreError, StoreUnavailable
from ..logs import event
from ..mail import (
    MAX_DKIM_DOMAINS,
    MessageView,
    authenticated_names,
    fold_extension,
    registrable_domain,
    valid_text,
)
from .complaints import Indicators
from .listings import normalize_address

__all__ = [
    "MAX_DKIM_DOMAINS",
    "MAX_RECIPIENTS",
    "MAX_URL_DOMAINS",
    "Delivery",
    "DeliveryLedger",
    "DeliveryLookup",
    "MAX_CANDIDATES",
    "CopyEvidence",
    "LedgerRecorder",
    "Match",
    "RedisDeliveryLedger",
    "RedisDeliveryLookup",
    "content_key",
    "decide_among",
    "delivery_of",
    "message_id_hash",
    "message_key",
    "normalize_reporter",
    "record_deliveries",
    "record_key",
]

log = logging.getLogger("spamwarden.deliveries")

MAX_RECIPIENTS = 100
#: every link domain a message view holds (ParseLimits.max_urls): a spammer's own link
#: behind links to many other sites is still one a report can count against
MAX_URL_DOMAINS = 100
MAX_ID_CHARS = 998  # RFC 5322 §2.1.1 line length: a longer Message-ID is not one
#: deliveries of one content (or Message-ID) to one recipient a report can be told apart from
MAX_CANDIDATES = 8

PREFIX = "sw:{sw}:dlv"


def record_key(delivery_id: str) -> str:
    """The key of one delivery record."""
    return f"{PREFIX}:{delivery_id}"


def content_key(fp: str, recipient: str | None = None) -> str:
    """The index of deliveries by content fingerprint (and recipient)."""
    return f"{PREFIX}:f:{fp}" + (f":{recipient}" if recipient else "")


def message_key(mid_hash: str, recipient: str | None = None) -> str:
    """The index of deliveries by Message-ID hash (and recipient)."""
    return f"{PREFIX}:m:{mid_hash}" + (f":{recipient}" if recipient else "")


def clean_message_id(message_id: str | None) -> str:
    """A Message-ID without angle brackets and surrounding space; ``""`` when unusable."""
    mid = (message_id or "").strip().strip("<>").strip()
    return mid if 0 < len(mid) <= MAX_ID_CHARS and not any(c.isspace() for c in mid) else ""


def message_id_hash(message_id: str | None) -> str:
    """32 hex digits identifying a Message-ID (``""`` for none)."""
    mid = clean_message_id(message_id)
    return hashlib.sha256(mid.encode("utf-8", "replace")).hexdigest()[:32] if mid else ""


def normalize_reporter(address: str, *, delimiters: str) -> str:
    """A recipient or reporter address as the ledger compares them: lower case, IDNA
    domain, no angle brackets, the local part cut at the first address-extension
    delimiter (``intake.recipient_delimiter``, as intake folds reporters:
    ``Alice+news@x`` is ``alice@x``); a string that is no address is lower-cased and
    cut to 320 characters (it then matches nothing a recipient was)."""
    norm = normalize_address(address)
    if norm is None:
        # (a raw 8-bit octet, kept as a lone surrogate, is no text Redis can take: one
        # such recipient lost the delivery records of the milter's whole batch)
        return valid_text(address).strip().strip("<>").strip().lower()[:320]
    local, _, domain = norm.rpartition("@")
    return f"{fold_extension(local, delimiters)}@{domain}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted message, as the milter saw it (see the module docstring)."""

    id: str
    at: float
    fingerprint: str
    queue_id: str = ""
    message_id: str = ""
    client_ip: str | None = None
    mail_from_domain: str | None = None
    dkim_domains: tuple[str, ...] = ()
    from_domain: str | None = None
    from_address: str | None = None
    url_domains: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    html_fingerprint: str = ""

    def fingerprints(self) -> tuple[str, ...]:
        """The content fingerprints this delivery is indexed by."""
        return (self.fingerprint, self.html_fingerprint) if self.html_fingerprint else (
            self.fingerprint,)

    def has_content(self, fingerprint: str | None) -> bool:
        """``fingerprint`` is one of this delivery's content fingerprints."""
        return bool(fingerprint) and fingerprint in self.fingerprints()

    def names(self) -> tuple[str, ...]:
        """The authenticated domain names, registrable, no duplicates, in order."""
        out: dict[str, None] = {}
        for d in (self.mail_from_domain, self.from_domain, *self.dkim_domains):
            reg = registrable_domain(d) if d else None
            if reg:
                out[reg] = None
        return tuple(out)

    def indicators(self, *, ad_label: str | None = None, subject: str = "",
                   seen_from_domain: str | None = None) -> Indicators:
        """The complaint indicators this delivery proves (what a matched complaint
        carries instead of what the report's copy claims).

        :param ad_label: the advertising label of the reported copy's subject.
        :param subject: the reported copy's subject (for display).
        :param seen_from_domain: the reported copy's From domain: what the reporter saw,
            kept apart from the proven names (see :class:`Indicators`).
        """
        reg = registrable_domain
        return Indicators(
            source_ip=self.client_ip,
            mail_from_domain=reg(self.mail_from_domain) if self.mail_from_domain else None,
            from_domain=reg(self.from_domain) if self.from_domain else None,
            from_address=self.from_address,
            dkim_domains=self.dkim_domains,
            dkim_verified=self.dkim_domains,
            url_domains=self.url_domains,
            ad_label=ad_label,
            subject=subject,
            seen_from_domain=seen_from_domain,
        )

    def to_json(self) -> str:
        """The record as stored."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Delivery:
        """:raises ValueError: not a delivery record.  Fields this version does not know
        (written by a newer milter) are left out."""
        try:
            d = json.loads(text)
            if isinstance(d, dict):
                d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
            for key in ("dkim_domains", "url_domains", "recipients"):
                d[key] = tuple(str(x) for x in d.get(key, ()))
            d["at"] = float(d["at"])
            return cls(**d)
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a delivery record: {exc}") from exc


def delivery_of(
    view: MessageView,
    *,
    fingerprint: str,
    client_ip: str | None,
    mail_from: str,
    rcpts: Iterable[str],
    auth: Any,
    at: float,
    html_fingerprint: str = "",
    queue_id: str = "",
    authenticated_client: bool = False,
    skip_recipients: frozenset[str] = frozenset(),
    delimiters: str,
) -> Delivery | None:
    """The ledger record of one accepted message (pure).

    :param view: the milter's parse of the message.
    :param fingerprint: :func:`~spamwarden.reputation.reports.fingerprint` of it.
    :param html_fingerprint: its
        :func:`~spamwarden.reputation.reports.delivered_html_fingerprint` (``""``: none;
        the same value as ``fingerprint`` is kept once).
    :param client_ip: the SMTP client address the milter saw.
    :param mail_from: the envelope sender.
    :param rcpts: the envelope recipients.
    :param auth: an ``AuthResults`` (``spf``, ``dkim``, ``dmarc``) or ``None``.
    :param at: Unix time of delivery.
    :param queue_id: the MTA's queue id.
    :param authenticated_client: the client used SMTP AUTH: its address is not recorded.
    :param skip_recipients: addresses never recorded (the intake addresses).
    :param delimiters: address-extension delimiters folded away (``intake.recipient_delimiter``).
    :returns: the record, or ``None`` when no recipient is left to report it.
    """
    rcpt: dict[str, None] = {}
    for r in rcpts:
        if normalize_reporter(r, delimiters="") in skip_recipients:
            continue
        n = normalize_reporter(r, delimiters=delimiters)
        if n and n not in skip_recipients:
            rcpt[n] = None
        if len(rcpt) >= MAX_RECIPIENTS:
            break
    if not rcpt:
        return None
    mail_from_domain, dkim, from_domain = authenticated_names(mail_from, auth)
    from_address = None
    if from_domain:
        addr = view.from_address
        norm = normalize_address(addr) if addr else None
        if from_domain and norm and norm.endswith("@" + from_domain):
            from_address = norm
    ip = None if authenticated_client else (client_ip or None)
    mid = clean_message_id(view.message_id)
    ident = hashlib.sha256(
        f"{queue_id}\0{mid}\0{fingerprint}\0{at!r}\0{','.join(rcpt)}".encode("utf-8", "replace")
    ).hexdigest()[:24]
    return Delivery(
        id=ident, at=at, fingerprint=fingerprint, queue_id=queue_id[:64], message_id=mid,
        client_ip=ip, mail_from_domain=mail_from_domain, dkim_domains=dkim,
        from_domain=from_domain, from_address=from_address,
        url_domains=tuple(view.url_domains[:MAX_URL_DOMAINS]), recipients=tuple(rcpt),
        html_fingerprint="" if html_fingerprint == fingerprint else html_fingerprint,
    )


MatchStatus = Literal["matched", "no-delivery", "not-a-recipient", "disagree"]


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of looking a reported message up.

    :ivar status: ``matched``; ``no-delivery`` (nothing like it was delivered here
        within the window); ``not-a-recipient`` (delivered here, not to the reporter);
        ``disagree`` (the Message-ID and the content point at different deliveries).
    :ivar delivery: the matched delivery (``matched`` only).
    :ivar candidates: how many deliveries the copy could not be told apart from
        (``delivery`` then stands for what they all proved, :func:`decide_among`).
    """

    status: MatchStatus
    delivery: Delivery | None = None
    candidates: int = 1


class DeliveryLedger(Protocol):
    """Where the milter records deliveries (threaded code: synchronous)."""

    def record_many(self, deliveries: Sequence[Delivery]) -> None:
        """Record deliveries, best effort: store trouble is logged, never raised."""
        ...


@dataclass(frozen=True, slots=True)
class CopyEvidence:
    """What the reported copy itself shows that tells apart deliveries of one text.

    :ivar url_domains: the registrable domains of the copy's links (an inline forward
        of an HTML message may have lost them: then none).
    :ivar header: the copy's header section as text: an attached copy keeps the
        ``Received`` field our MTA added, which names the delivery's queue id.
    """

    url_domains: tuple[str, ...] = ()
    header: str = ""


class DeliveryLookup(Protocol):
    """Where intake looks reported messages up (asyncio code)."""

    async def match(self, reporter: str, *, fingerprint: str | None,
                    message_id: str | None, copy: CopyEvidence | None = None) -> Match:
        """The delivery a report is about (see :func:`decide_among`).

        :param reporter: the reporter, normalised (:func:`normalize_reporter`).
        :param fingerprint: the original's content fingerprint; ``None`` when it has
            no content to compare (an ARF report with headers only).
        :param message_id: the original's Message-ID, when it has one.
        :param copy: what the reported copy shows, to tell several deliveries apart.
        :raises StoreError: the store failed.
        """
        ...


def decide_among(
    *,
    fingerprint: str | None,
    message_id: str | None,
    by_content: Sequence[Delivery],
    by_message_id: Sequence[Delivery],
    any_recipient: bool,
    copy: CopyEvidence | None = None,
) -> Match:
    """Which delivery a reported message is (pure).

    The deliveries the content and the Message-ID both point at are the candidates
    (either alone when the copy has only one of them); the content and the Message-ID
    pointing at different deliveries is ``disagree``.  Several candidates (a spammer
    following its spam with look-alikes to the same people) are narrowed by the copy
    (:func:`_narrowed`); what is left after that is matched as one delivery proving only
    what all of them proved (:func:`_common`), so neither a look-alike's links nor its
    client address can take the complaints of the spam that was reported.

    :param fingerprint: the original's fingerprint (``None``: no content to compare).
    :param message_id: the original's Message-ID (cleaned; ``""``/``None``: none).
    :param by_content: the deliveries of that content to the reporter, oldest first.
    :param by_message_id: the deliveries of that Message-ID to the reporter.
    :param any_recipient: a delivery of that content or Message-ID to anyone exists.
    :param copy: what the reported copy shows.
    """
    mid = clean_message_id(message_id)
    content = list({d.id: d for d in by_content}.values())
    mids = list({d.id: d for d in by_message_id}.values())
    if content and mids:
        by_mid = {d.id for d in mids}
        cands = ([d for d in content if d.id in by_mid]
                 or [d for d in mids if d.has_content(fingerprint)]
                 # One Message-ID on several deliveries to this reporter (a sender
                 # reusing it): the delivery of the reported content carries it too
                 or [d for d in content if mid and d.message_id == mid])
    elif mids:
        cands = mids if fingerprint is None else [d for d in mids if d.has_content(fingerprint)]
    elif content:
        cands = [d for d in content if not (mid and d.message_id and d.message_id != mid)]
    else:
        return Match("not-a-recipient" if any_recipient else "no-delivery")
    if not cands:
        return Match("disagree")
    cands = _narrowed(cands, copy)
    if len(cands) == 1:
        return Match("matched", cands[0])
    return Match("matched", _common(cands), candidates=len(cands))


def _narrowed(cands: list[Delivery], copy: CopyEvidence | None) -> list[Delivery]:
    """The candidates the copy points at: those whose queue id its header names (our
    MTA's ``Received`` field of an attached copy), then those holding every link domain
    it has; a test that would leave none narrows nothing."""
    if len(cands) < 2 or copy is None:
        return cands
    if copy.header:
        named = [d for d in cands if d.queue_id and _names_queue_id(copy.header, d.queue_id)]
        if named:
            cands = named
    if len(cands) > 1 and copy.url_domains:
        links = set(copy.url_domains)
        holding = [d for d in cands if links <= set(d.url_domains)]
        if holding:
            cands = holding
    return cands


def _names_queue_id(header: str, queue_id: str) -> bool:
    """``queue_id`` stands as a word of ``header`` (``with ESMTP id 4XyZ...;``)."""
    at = header.find(queue_id)
    while at >= 0:
        end = at + len(queue_id)
        if (at == 0 or not header[at - 1].isalnum()) and (
                end == len(header) or not header[end].isalnum()):
            return True
        at = header.find(queue_id, end)
    return False


def _common(cands: Sequence[Delivery]) -> Delivery:
    """One delivery standing for several a report could be: the names and the client
    address every one of them proved, nothing any of them lacks; its id names the set
    (one complaint per reporter and set)."""
    first = cands[0]

    def same(values: Iterable[str | None]) -> str | None:
        found = set(values)
        return found.pop() if len(found) == 1 else None

    def shared(lists: list[tuple[str, ...]]) -> tuple[str, ...]:
        return tuple(x for x in lists[0] if all(x in other for other in lists[1:]))

    ids = sorted(d.id for d in cands)
    from_domain = same(d.from_domain for d in cands)
    dkim = shared([d.dkim_domains for d in cands])
    urls = shared([d.url_domains for d in cands])
    rcpts = shared([d.recipients for d in cands])
    return Delivery(
        id=hashlib.sha256("\0".join(ids).encode()).hexdigest()[:24],
        at=max(d.at for d in cands), fingerprint=first.fingerprint,
        message_id=same(d.message_id for d in cands) or "",
        client_ip=same(d.client_ip for d in cands),
        mail_from_domain=same(d.mail_from_domain for d in cands),
        dkim_domains=dkim, from_domain=from_domain,
        from_address=same(d.from_address for d in cands) if from_domain else None,
        url_domains=urls, recipients=rcpts,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _record(value: Any) -> Delivery | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return Delivery.from_json(text)
    except ValueError:
        return None


_INDEX_LUA = lua_script("spamwarden.reputation", "delivery_index")
#: index keys per script call (a batch of a hundred recipients each stays one call)
_INDEX_KEYS_PER_CALL = 1000


class RedisDeliveryLedger:
    """:class:`DeliveryLedger` over a synchronous ``redis.Redis`` (the milter's client).

    :param client: the ``redis.Redis``.
    :param ttl: seconds a delivery is kept (``reputation.window``).
    """

    def __init__(self, client: Any, *, ttl: float) -> None:
        self.client = client
        self.ttl = max(1, int(ttl))
        self.failed = 0
        self._index = client.register_script(_INDEX_LUA)

    def record_many(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`DeliveryLedger.record_many` (one pipeline, no transaction)."""
        if not deliveries:
            return
        pipe = self.client.pipeline(transaction=False)
        keys: list[str] = []
        ids: list[str] = []
        for d in deliveries:
            pipe.set(record_key(d.id), d.to_json(), ex=self.ttl)
            mh = message_id_hash(d.message_id)
            for fp in d.fingerprints():
                pipe.set(content_key(fp), d.id, ex=self.ttl)
            if mh:
                pipe.set(message_key(mh), d.id, ex=self.ttl)
            for r in d.recipients:
                for fp in d.fingerprints():
                    keys.append(content_key(fp, r))
                    ids.append(d.id)
                if mh:
                    keys.append(message_key(mh, r))
                    ids.append(d.id)
        try:
            pipe.execute()
            for at in range(0, len(keys), _INDEX_KEYS_PER_CALL):
                self._index(keys=keys[at:at + _INDEX_KEYS_PER_CALL],
                            args=[self.ttl, MAX_CANDIDATES, *ids[at:at + _INDEX_KEYS_PER_CALL]])
        except Exception as exc:  # noqa: BLE001 - a lost record never fails the mail
            self.failed += len(deliveries)
            event(log, "delivery_record_failed", logging.WARNING, messages=len(deliveries),
                  error=f"{type(exc).__name__}: {exc}")


class RedisDeliveryLookup:
    """:class:`DeliveryLookup` over ``redis.asyncio`` (intake): two ``MGET`` round trips.

    :param client: a ``redis.asyncio.Redis``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    async def match(self, reporter: str, *, fingerprint: str | None,
                    message_id: str | None, copy: CopyEvidence | None = None) -> Match:
        """See :meth:`DeliveryLookup.match`."""
        import redis.exceptions

        mh = message_id_hash(message_id)
        if not fingerprint and not mh:
            return Match("no-delivery")
        keys: list[str] = []
        if fingerprint:
            keys += [content_key(fingerprint, reporter), content_key(fingerprint)]
        if mh:
            keys += [message_key(mh, reporter), message_key(mh)]
        try:
            got = dict(zip(keys, map(_text, await self.client.mget(keys))))
            content_ids = (got.get(content_key(fingerprint, reporter)) or "").split()[
                -MAX_CANDIDATES:] if fingerprint else []
            mid_ids = (got.get(message_key(mh, reporter)) or "").split()[
                -MAX_CANDIDATES:] if mh else []
            records: dict[str, Delivery | None] = {}
            wanted = list(dict.fromkeys((*content_ids, *mid_ids)))
            if wanted:
                values = await self.client.mget([record_key(i) for i in wanted])
                records = {i: _record(v) for i, v in zip(wanted, values)}
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis failed: {exc}") from exc

        def found(ids: list[str]) -> list[Delivery]:
            out = [records.get(i) for i in ids]
            return sorted((d for d in out if d is not None), key=lambda d: d.at)

        anyone = bool((fingerprint and got.get(content_key(fingerprint)))
                      or (mh and got.get(message_key(mh))))
        return decide_among(fingerprint=fingerprint, message_id=message_id,
                            by_content=found(content_ids), by_message_id=found(mid_ids),
                            any_recipient=anyone, copy=copy)


def record_deliveries(
    ledger: DeliveryLedger,
    items: Sequence[tuple[Any, Any]],
    *,
    skip_recipients: frozenset[str] = frozenset(),
    now: float | None = None,
    delimiters: str,
) -> int:
    """Record the accepted messages of one milter batch with one
    :meth:`DeliveryLedger.record_many` (the milter's after-reply stage).

    :param ledger: where to record.
    :param items: ``(Verdict, Envelope)`` pairs; a verdict without a parsed view
        (not scored: over the size limits) is skipped.
    :param skip_recipients: the intake addresses, never recorded as recipients.
    :param now: Unix time of delivery (default: now).
    :param delimiters: address-extension delimiters folded away (``intake.recipient_delimiter``).
    :returns: deliveries recorded.  Never raises for one bad message.
    """
    import time

    from .reports import delivered_fingerprint, delivered_html_fingerprint

    at = time.time() if now is None else now
    out: list[Delivery] = []
    for verdict, env in items:
        view = getattr(verdict, "view", None)
        if view is None:
            continue
        try:
            d = delivery_of(
                view, fingerprint=delivered_fingerprint(view),
                html_fingerprint=delivered_html_fingerprint(view), client_ip=env.client_ip,
                mail_from=env.mail_from, rcpts=env.rcpts, auth=getattr(verdict, "auth", None),
                at=at, queue_id=env.queue_id or "", authenticated_client=bool(env.authenticated),
                skip_recipients=skip_recipients, delimiters=delimiters,
            )
        except Exception as exc:  # noqa: BLE001 - one odd message must not lose the batch
            event(log, "delivery_record_failed", logging.ERROR, queue_id=env.queue_id or None,
                  error=f"{type(exc).__name__}: {exc}")
            continue
        if d is not None:
            out.append(d)
    if out:
        ledger.record_many(out)
    return len(out)


class LedgerRecorder:
    """What the milter's scanner is given: records its after-reply batches
    (:func:`record_deliveries`) in a :class:`DeliveryLedger`.

    :param ledger: where deliveries go (:class:`RedisDeliveryLedger`).
    :param delimiters: ``intake.recipient_delimiter``: recipients are folded as intake
        folds reporters, so ``alice+news@`` can report as ``alice@``.
    """

    def __init__(self, ledger: DeliveryLedger, *, delimiters: str) -> None:
        self.ledger = ledger
        self.delimiters = delimiters

    def record_delivered(self, items: Sequence[tuple[Any, Any]], *,
                         skip_recipients: frozenset[str] = frozenset()) -> int:
        """:func:`record_deliveries` of one batch; never raises for store trouble."""
        return record_deliveries(self.ledger, items, skip_recipients=skip_recipients,
                                 delimiters=self.delimiters)
