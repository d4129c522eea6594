"""``optout@``: a recipient mails the intake to refuse an advertiser, or all advertising.

Attached to the intake as its ``optout`` address hook
(:class:`~spamwarden.reputation.intake.AddressHook`). The sender of the message
(envelope sender, a local recipient) is the one who refuses; only a sender intake
identified (a SASL login recorded by our MTA, or a submission from
``intake.trusted_networks``) is heard: anyone else gets ``550 5.7.1`` pointing to
the one-click unsubscribe link, and nothing is recorded. Which advertiser:

1. "all" — the subject (or the first line of the text) says so: ``all``,
   ``all advertising``, ``tất cả``/``tat ca``, ``*`` → the global do-not-email list;
2. a one-click token of ours anywhere in the message (the recipient forwarded
   the ad, or pasted its unsubscribe link) → the token's advertiser;
3. the forwarded ad (attached, inline or ARF, as the complaint intake finds
   it): its ``From`` domain, when a registered advertiser owns it;
4. an advertiser id or a registered domain named in the subject
   (``unsubscribe shop-vn``).

Nothing found: ``550 5.6.0`` saying how to name the advertiser. Store trouble:
``451 4.3.0`` (the sender's MTA retries; nothing is lost).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import ReportError, StoreError
from ..i18n import MESSAGES, fold_ascii, smtp_text
from ..logs import event
from ..mail import domain_of_address, parse_message, registrable_domain
from .confirmations import confirm_once, sender_from_config
from .registry import (
    GLOBAL,
    AdComplaintRefusals,
    RedisConsentRegistry,
    RefusalRecord,
    normalize_recipient,
    registry_from_config,
)
from .unsubscribe import InvalidToken, TokenSigner, signer_from_config

__all__ = [
    "OptoutHandler", "optout_hook_from_config", "ad_complaint_hook_from_config", "REPLIES",
    "REPLY_CODES", "reply",
]

log = logging.getLogger("spamwarden.intake.optout")

#: the code and enhanced status code (RFC 3463) of every reply; the text is the catalogue's
#: ``optout.<name>`` (:mod:`spamwarden.i18n`) in ``i18n.language``
REPLY_CODES = {
    "done": "250 2.0.0",
    "done_all": "250 2.0.0",
    "already": "250 2.0.0",
    "unknown": "550 5.6.0",
    "not_local": "550 5.7.1",
    "not_authenticated": "550 5.7.1",
    "bad_sender": "550 5.1.7",
    "store": "451 4.3.0",
}
#: every reply in English (tests compare against these)
REPLIES = {name: f"{code} {MESSAGES['optout.' + name]['en']}"
           for name, code in REPLY_CODES.items()}


def reply(language: str, name: str, **values: object) -> str:
    """The SMTP reply ``name`` (a key of :data:`REPLY_CODES`) with its text in
    ``language``, ASCII (:func:`spamwarden.i18n.smtp_text`).

    :raises KeyError: no such reply, or a value missing.
    """
    return f"{REPLY_CODES[name]} {smtp_text(language, 'optout.' + name, **values)}"


#: "all" as the subject or first line says it, read without diacritics
#: (:func:`~spamwarden.i18n.fold_ascii`): ``tất cả`` composed, decomposed (a keyboard
#: writing tone marks as combining characters) or typed without or with other marks
_ALL_RE = re.compile(
    r"^\s*(?:(?:re|fw|fwd)\s*:\s*)*(?:all(?:\s+advertising|\s+ads)?|\*|tat\s+ca"
    r"(?:\s+quang\s+cao)?|stop\s+all)\s*[.!]?\s*$",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{8,600}\.[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])"
)
_WORD_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.IGNORECASE)


class OptoutHandler:
    """The ``optout`` address hook.

    :param registry: the consent registry (sync; called in a worker thread).
    :param signer: checks one-click tokens found in the message.
    :param local_domains: ``intake.local_domains``; only their users may opt out.
    :param require_auth: refuse a sender intake did not identify (no SASL login, not
        from ``intake.trusted_networks``).  On by default and in
        :func:`optout_hook_from_config` whatever ``intake.require_auth`` says: a
        refusal recorded for a forged envelope sender would silence that
        person's mail.
    :param confirm: called with each new refusal (sends the single confirmation).
    :param language: the language of the reply texts (``i18n.language``).
    """

    def __init__(
        self,
        registry: RedisConsentRegistry,
        signer: TokenSigner,
        *,
        local_domains: tuple[str, ...] = (),
        require_auth: bool = True,
        confirm: Callable[[RefusalRecord], object] | None = None,
        language: str = "en",
    ) -> None:
        self.language = language
        self.registry = registry
        self.signer = signer
        self.local_domains = local_domains
        self.require_auth = require_auth
        self.confirm = confirm

    async def __call__(self, request: Any) -> str:
        """Handle one message (an ``IntakeRequest``); returns the SMTP reply."""
        if not request.local_reporter:
            return reply(self.language, "not_local")
        if self.require_auth and not request.authenticated:
            return reply(self.language, "not_authenticated")
        try:
            rcpt = normalize_recipient(request.reporter, self.registry.delimiters)
        except ValueError:
            return reply(self.language, "bad_sender")
        try:
            return await asyncio.to_thread(self.handle, rcpt, request.raw)
        except StoreError as exc:
            event(log, "optout_store_error", rcpt=rcpt, error=str(exc))
            return reply(self.language, "store")

    def advertiser_named(self, raw: bytes) -> str | None:
        """The advertiser the message refuses: :data:`GLOBAL` for all advertising,
        an advertiser id, or ``None`` (see the module docstring for the order).

        :raises StoreError: store trouble.
        """
        view = parse_message(raw)
        first_line = next((ln for ln in view.text.splitlines() if ln.strip()), "")
        if _ALL_RE.match(fold_ascii(view.subject)) or _ALL_RE.match(fold_ascii(first_line)):
            return GLOBAL
        text = raw[:2_000_000].decode("latin-1")
        for m in _TOKEN_RE.finditer(text):
            try:
                return self.signer.verify(m.group(1)).advertiser
            except InvalidToken:
                continue
        domains = self.registry.domain_map()
        try:
            from ..reputation.reports import find_original

            original = find_original(raw, local_domains=self.local_domains)
        except (ReportError, ValueError):
            original = None
        if original is not None:
            inner = parse_message(original.message)
            org = registrable_domain(inner.from_domain) if inner.from_domain else None
            if org and org in domains:
                return str(domains[org])
        ids: set[str] = {str(v) for v in domains.values()}
        for word in _WORD_RE.findall(view.subject):
            w = str(word).lower().strip(".")
            if w in ids:
                return w
            dom = domain_of_address(w) if "@" in w else None
            org = registrable_domain(dom or w)
            if org and org in domains:
                return domains[org]
        return None

    def handle(self, rcpt: str, raw: bytes) -> str:
        """Record the refusal ``raw`` asks for, by ``rcpt``; the SMTP reply.

        :raises StoreError: store trouble.
        """
        adv = self.advertiser_named(raw)
        if adv is None:
            event(log, "optout_unknown_advertiser", rcpt=rcpt)
            return reply(self.language, "unknown")
        rec, created = self.registry.refuse(rcpt, adv=adv, channel="optout-mail")
        event(log, "optout_recorded", rcpt=rcpt, advertiser=adv, new=created)
        if not created:
            return reply(self.language, "already", rcpt=rcpt)
        if self.confirm is not None:
            self.confirm(rec)
        if adv == GLOBAL:
            return reply(self.language, "done_all", rcpt=rcpt)
        return reply(self.language, "done", adv=adv, rcpt=rcpt)


def optout_hook_from_config(cfg: Config) -> OptoutHandler:
    """The ``optout`` hook for ``run_intake(cfg, hooks={"optout": ...})``.

    :raises ConfigError: the token key is unusable.
    """
    registry = registry_from_config(cfg)
    sender, frm = sender_from_config(cfg)
    confirm = None
    if sender is not None:
        confirm = functools.partial(confirm_once, cfg, registry, sender=sender, from_addr=frm)
    return OptoutHandler(
        registry,
        signer_from_config(cfg),
        local_domains=tuple(cfg.intake.local_domains),
        require_auth=True,  # never on a forged sender's say-so, even with intake.require_auth off
        confirm=confirm,
        language=cfg.i18n.language,
    )


def ad_complaint_hook_from_config(cfg: Config) -> AdComplaintRefusals:
    """The worker's complaint hook turning complaints about ads into refusals
    (:class:`~spamwarden.consent.registry.AdComplaintRefusals`) over the configured
    Redis, confirming each new refusal by ``consent.confirmation_relay``.

    :param cfg: the configuration.
    :returns: the hook.
    """
    registry = registry_from_config(cfg)
    sender, frm = sender_from_config(cfg)
    confirm = None
    if sender is not None:
        confirm = functools.partial(confirm_once, cfg, registry, sender=sender, from_addr=frm)
    return AdComplaintRefusals(registry, confirm=confirm)
