"""The single confirmation of a refusal, mailed to the recipient (no ad content).

A refusal record is confirmed at most once: :meth:`RedisConsentRegistry.claim_confirmation`
marks it atomically and only the caller that won sends. The one-click answer page is the
confirmation of a one-click refusal; refusals by mail (``optout@``) and by complaint
are confirmed by a short plain-text message through ``consent.confirmation_relay``
(nothing is sent when that is empty).

The request to refuse all advertising (``scope=all`` on the one-click form) goes through
the same relay, at most once a day per recipient
(:meth:`~.registry.RedisConsentRegistry.claim_all_request`) and at most
``consent.max_all_requests_per_day`` a day per advertiser whose link was used
(:meth:`~.registry.RedisConsentRegistry.claim_advertiser_all_request`).
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
from email.message import EmailMessage
from typing import Any, Protocol

from ..config import Config, parse_hostport
from ..logs import event
from .records import iso
from .registry import GLOBAL, RedisConsentRegistry, RefusalRecord
from .texts import text

__all__ = ["ConfirmationSender", "SmtpConfirmationSender", "confirm_once",
           "sender_from_config", "confirmation_message", "all_advertising_request"]

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
