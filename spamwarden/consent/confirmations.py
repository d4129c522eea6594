"""The single confirmation of a refusal, mailed to the recipient (no ad content).

A refusal record is confirmed at most once: :meth:`RedisConsentRegistry.claim_confirmation`
marks it atomically and only the caller that won sends. The one-click answer page is the
confirmation of a one-click refusal; refusals by mail (``optout@``) and by complaint
are confirmed by a short plain-text message through ``consent.confirmation_relay``
(nothing is sent when that is empty).

The request to refuse all advertising (``scope=all`` on the one-click form) goes through
the same relay, at most once a day per recipient
(:meth:`RedisConsentRegistry.claim_all_request`) and at most
``consent.max_all_requests_per_day`` a day per advertiser whose link was used
(:class:`AllRequestQuota`), counted under one ephemeral key beside the registry's:

==========================================  ==================================================
key                                         what
==========================================  ==================================================
``sw:{sw}:all-requests:<adv>:<day>``        integer: requests mailed for the advertiser's
                                            links on one UTC day (``<day>`` = Unix time //
                                            86400); TTL two days
==========================================  ==================================================
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, Protocol

from .._lua import lua_script
from ..config import Config, parse_hostport
from ..errors import StoreError, StoreUnavailable
from ..logs import event
from .records import iso
from .registry import GLOBAL, RedisConsentRegistry, RefusalRecord, normalize_advertiser_id
from .texts import text

__all__ = ["ConfirmationSender", "SmtpConfirmationSender", "confirm_once",
           "sender_from_config", "confirmation_message", "all_advertising_request",
           "AllRequestQuota", "all_requests_key"]

log = logging.getLogger("spamwarden.consent.confirm")


class ConfirmationSender(Protocol):
    """Delivers one confirmation message."""

    def send(self, message: EmailMessage) -> None:
        """:raises OSError: or ``smtplib.SMTPException`` when it could not be handed on."""
        ...


def confirmation_message(cfg: Config, rec: RefusalRecord, *, advertiser_name: str = "",
                         sender: str) -> EmailMessage:
    """The confirmation of ``rec`` in ``consent.language``: what was refused, when, how."""
    lang = cfg.consent.language
    when = iso(rec.at).replace("T", " ").rstrip("Z")[:19]
    values = {"advertiser": advertiser_name or rec.advertiser, "rcpt": rec.recipient,
              "when": when, "channel": rec.channel}
    suffix = "_all" if rec.advertiser == GLOBAL else ""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rec.recipient
    msg["Subject"] = text(lang, "confirm.subject" + suffix, **values)
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: no auto-replies to this
    msg.set_content(text(lang, "confirm.body" + suffix, **values))
    return msg


def all_advertising_request(cfg: Config, rcpt: str, url: str, *, sender: str) -> EmailMessage:
    """The message asking ``rcpt`` to confirm that they refuse all advertising: ``url``
    (an ``a`` token) records it.  Mailed to the recipient because only the mailbox's
    owner may refuse all advertising for it; an unsubscribe link an advertiser was
    given proves nothing more than a refusal of that advertiser."""
    lang = cfg.consent.language
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = text(lang, "request_all.subject", rcpt=rcpt)
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834
    msg.set_content(text(lang, "request_all.body", rcpt=rcpt, url=url))
    return msg


def all_requests_key(adv: str, day: int) -> str:
    """The counter of requests to refuse all advertising mailed for ``adv``'s links on
    ``day`` (Unix time // 86400)."""
    return f"sw:{{sw}}:all-requests:{adv}:{day}"


_QUOTA_LUA = lua_script("spamwarden.consent", "all_request_quota")


class AllRequestQuota:
    """At most ``limit`` requests to refuse all advertising mailed a UTC day for the
    one-click links of one advertiser.

    An advertiser holds the unsubscribe tokens of its recipients and can post each with
    ``scope=all``; without this bound it could have the site mail every one of them.

    :param client: a sync ``redis.Redis`` (the consent registry's).
    :param limit: requests per advertiser per day (``consent.max_all_requests_per_day``).
    :param clock: wall-clock time source (injected in tests).
    """

    def __init__(self, client: Any, *, limit: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.clock = clock
        self._claim = client.register_script(_QUOTA_LUA)

    def claim(self, adv: str) -> bool:
        """Count one request mailed for ``adv``'s link today.

        :returns: ``True`` when counted (the mail may go), ``False`` when ``limit``
            requests were already mailed today (nothing counted).
        :raises ValueError: not an advertiser id.
        :raises StoreUnavailable: Redis cannot be reached.
        :raises StoreError: other store trouble.
        """
        import redis

        key = all_requests_key(normalize_advertiser_id(adv), int(self.clock() // 86400))
        try:
            return int(self._claim(keys=[key], args=[self.limit, 2 * 86400])) == 1
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"consent registry unreachable: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"consent registry failed: {exc}") from exc


class SmtpConfirmationSender:
    """Hands confirmations to an SMTP relay (``host:port``, plain SMTP on a trusted network).

    :param relay: ``"127.0.0.1:25"``.
    :param timeout: seconds for the whole exchange.
    """

    def __init__(self, relay: str, *, timeout: float = 10.0) -> None:
        self.host, self.port = parse_hostport(relay, default_port=25)
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        """Send ``message`` with the null reverse-path (no bounce loops).

        :raises OSError: the relay cannot be reached (``smtplib.SMTPException`` is one).
        """
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message, from_addr="")  # null sender: no bounce loops


def sender_from_config(cfg: Config) -> tuple[ConfirmationSender | None, str]:
    """The sender for ``consent.confirmation_relay`` (``None`` when empty) and the From."""
    frm = cfg.consent.confirmation_from
    if not frm:
        domains = cfg.intake.local_domains
        frm = f"postmaster@{domains[0]}" if domains else "postmaster@localhost"
    if not cfg.consent.confirmation_relay:
        return None, frm
    return SmtpConfirmationSender(cfg.consent.confirmation_relay), frm


def confirm_once(cfg: Config, registry: RedisConsentRegistry, rec: RefusalRecord, *,
                 sender: ConfirmationSender | None, from_addr: str) -> bool:
    """Send the single confirmation of ``rec`` unless it was already confirmed.

    Never raises for delivery trouble (logged; the refusal itself stands).
    :raises StoreError: the registry failed.
    :returns: whether a confirmation went out now.
    """
    if sender is None:
        return False
    if not registry.claim_confirmation(rec.recipient, adv=rec.advertiser):
        return False
    name = ""
    if rec.advertiser != GLOBAL:
        adv: Any = registry.advertiser(rec.advertiser)
        name = adv.name if adv is not None else ""
    try:
        sender.send(confirmation_message(cfg, rec, advertiser_name=name, sender=from_addr))
    except (OSError, smtplib.SMTPException) as exc:
        event(log, "refusal_confirmation_failed", rcpt=rec.recipient, advertiser=rec.advertiser,
              error=str(exc))
        return False
    event(log, "refusal_confirmed", rcpt=rec.recipient, advertiser=rec.advertiser)
    return True
