"""The advertising rules of Decree 91/2020/ND-CP as a milter
:class:`~spamwarden.milter.interfaces.MessagePolicy`.

At RCPT time, when the envelope sender's domain belongs to a registered
advertiser and SPF passed for it (or the client is one this site trusts: SMTP
AUTH, ``milter.trusted_networks``), each recipient is checked in the registry: a
refusal (of that advertiser or of all advertising), no unexpired consent
(``consent.rcpt_requires_consent``) or the rolling 24 h cap reached rejects just
that recipient with ``550 5.7.1`` naming the rule and where to check it.  Such a
reply tells the client the recipient's choice, so a sender nothing authenticates
(anyone can write the advertiser's domain into MAIL FROM) is not given it: its ad
to such a recipient is held at end of message (``AD_UNVERIFIED_HELD``,
``consent.unverified_action``), with the reply any recipient's mail gets.

At end of message the ad rules give symbols (points from ``[policy.symbols]``,
defaults declared in :mod:`spamwarden.milter.checks.consent`):

=========================  =================================================================
symbol                     when
=========================  =================================================================
AD_LABELLED                the subject starts with a label (``consent.labels``), 0 points
AD_UNLABELLED              mail of a registered advertiser without the label
AD_NO_UNSUBSCRIBE          an ad without an RFC 8058 one-click ``List-Unsubscribe``
                           (an ``https`` URI and ``List-Unsubscribe-Post:
                           List-Unsubscribe=One-Click``)
AD_UNSIGNED_UNSUBSCRIBE    an ad whose ``List-Unsubscribe`` headers no valid DKIM
                           signature covers (RFC 8058 §4)
AD_NO_CONSENT              an advertiser's ad to a recipient without unexpired consent
AD_REFUSED                 an advertiser's ad to a recipient who refused
AD_OVER_CAP                an advertiser's ad over the daily cap
AD_UNKNOWN_ADVERTISER      a labelled ad not authenticated as any registered advertiser
AD_REGISTRY_FAIL           the registry could not be reached: nothing rejected on consent
                           grounds (``consent.on_registry_error``)
AD_UNVERIFIED_HELD         an ad in a registered advertiser's name that neither SPF nor
                           aligned DKIM authenticates, to a recipient who refused, has no
                           consent or is over the cap: held (0 points, quarantine) in
                           place of the three symbols above, whose points would tell the
                           sender the recipient's state
=========================  =================================================================

A message is an advertiser's only when SPF or DKIM authenticates one of its
registered domains aligned with ``From`` (relaxed alignment, RFC 7489 §3.1).
Counters grow only in :meth:`ConsentPolicy.delivered`, for the recipients the
message was accepted for and against the advertiser it is authenticated as
(:meth:`ConsentPolicy.sending_advertiser`: an unauthenticated envelope sender spends
nobody's cap); counts that could not be written while the registry was down are
kept (bounded) and written when it is back.  Recipients are compared as mailboxes
(:func:`~spamwarden.consent.registry.normalize_recipient`: case, needless quotes and
address extensions folded); an address no record can hold is refused for an
advertiser, never passed unchecked.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..config import Config
from ..errors import ConfigError, StoreError, StoreUnavailable
from ..logs import event
from ..mail import MessageView, ad_label, domain_of_address, registrable_domain, spf_vouches
from ..milter.checks.consent import SYMBOLS as CONSENT_SYMBOLS
from ..milter.interfaces import Action, Envelope, RcptDecision, Symbol
from ..redisconn import sync_client
from .registry import (
    ConsentStore,
    RecipientState,
    RedisConsentRegistry,
    aligned_authenticated_domains,
    attribute_advertiser,
    hold_member,
    normalize_recipient,
)
from .texts import smtp_text
from .unsubscribe import InvalidToken, TokenSigner, signer_from_config

if TYPE_CHECKING:
    from ..milter.auth import AuthResults

__all__ = [
    "ConsentPolicy",
    "DEFAULT_POINTS",
    "SYMBOL_DESCRIPTIONS",
    "one_click_unsubscribe",
    "unsubscribe_signed",
    "policy_from_config",
]

log = logging.getLogger("spamwarden.milter.consent")

# The rules' symbols are declared with every other milter check's, in
# spamwarden/milter/checks/consent.py (names, default points, descriptions); these
# views of the declarations are what the policy and its callers read.
#: Default points of the AD_* symbols.
DEFAULT_POINTS: Mapping[str, float] = types.MappingProxyType(
    {spec.name: spec.points for spec in CONSENT_SYMBOLS})
#: One line per AD_* symbol.
SYMBOL_DESCRIPTIONS: Mapping[str, str] = types.MappingProxyType(
    {spec.name: spec.description for spec in CONSENT_SYMBOLS})

_RCPT_REJECTS = ("refused", "refused_all", "no_consent", "consent_expired", "over_cap")
_MAX_PENDING = 10_000


def one_click_unsubscribe(view: MessageView, *, own_base_url: str = "") -> str | None:
    """The ``https`` URI of an RFC 8058 §3.1 one-click unsubscribe, or ``None``.

    Both headers are needed: ``List-Unsubscribe`` with an ``https`` URI (RFC
    2369 angle-bracket list) and ``List-Unsubscribe-Post:
    List-Unsubscribe=One-Click``.

    :param own_base_url: ``consent.unsubscribe_base_url``: a URI under it is
        accepted whatever its scheme (the operator's own one-click service,
        plain HTTP on a test or internal network).
    """
    post = view.header("List-Unsubscribe-Post")
    if post is None or post.strip().lower().replace(" ", "") != "list-unsubscribe=one-click":
        return None
    value = view.header("List-Unsubscribe") or ""
    for item in value.split(","):
        uri = item.strip()
        if uri.startswith("<") and uri.endswith(">"):
            uri = uri[1:-1].strip()
            if uri.lower().startswith("https://") and len(uri) > len("https://"):
                return uri
            if own_base_url and uri.startswith(own_base_url) and len(uri) > len(own_base_url):
                return uri
    return None


def unsubscribe_signed(auth: AuthResults | None) -> bool:
    """True when a passing DKIM signature covers both ``List-Unsubscribe`` and
    ``List-Unsubscribe-Post`` (RFC 8058 §4)."""
    if auth is None:
        return False
    for sig in auth.dkim:
        if str(sig.result).lower() != "pass":
            continue
        covered = {h.strip().lower() for h in sig.covered_headers}
        if "list-unsubscribe" in covered and "list-unsubscribe-post" in covered:
            return True
    return False


class ConsentPolicy:
    """The consent rules over a :class:`~spamwarden.consent.registry.ConsentStore`.

    Thread-safe and without per-message state: one instance serves every
    milter thread.

    :param cfg: the configuration (``[consent]``, ``api.public_url``).
    :param store: the registry (Redis in production, a fake in unit tests).
    :param points: symbol points; default :data:`DEFAULT_POINTS` (the scanner
        applies ``[policy.symbols]`` overrides on top).
    :param clock: wall-clock seconds (the rolling window), injected in tests.
    :param domain_cache_ttl: seconds the advertiser domain map is reused; refusals,
        consent and counters are never cached.
    :param signer: checks one-click links of our own service (``consent.
        unsubscribe_base_url``): a token that is not valid for the message's
        advertiser is no working refusal function. ``None``: not checked.
    :param retry_after: after the registry was found unreachable, seconds during
        which it is not asked again (each attempt would cost the client's
        connect timeouts and retries on every RCPT).
    """

    def __init__(
        self,
        cfg: Config,
        store: ConsentStore,
        *,
        points: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        domain_cache_ttl: float = 5.0,
        retry_after: float = 5.0,
        signer: TokenSigner | None = None,
    ) -> None:
        self.cfg = cfg
        self.consent = cfg.consent
        self.store = store
        self.points = dict(DEFAULT_POINTS)
        if points:
            self.points.update(points)
        self.clock = clock
        self.domain_cache_ttl = domain_cache_ttl
        self.retry_after = retry_after
        self.signer = signer
        self._down_until = -1e18
        self.labels = tuple(cfg.consent.labels)
        self.delimiters = cfg.intake.recipient_delimiter
        self._lock = threading.Lock()
        self._domains: dict[str, str] | None = None
        self._domains_at = -1e18
        self._pending: collections.deque[tuple[str, tuple[str, ...], float, str, str]] = (
            collections.deque(maxlen=_MAX_PENDING)
        )
        # holds are per milter: another host sharing the registry may use the same queue id
        self._instance = secrets.token_hex(4)
        from ..milter.checks.trust import TrustCheck

        self._trust = TrustCheck(cfg)

    # -- helpers -------------------------------------------------------------------------------

    def _symbol(self, name: str, detail: str, *, action: Action | Literal[""] = "") -> Symbol:
        return Symbol(name, self.points.get(name, 0.0), detail, action)

    def _text(self, key: str, **values: object) -> str:
        return smtp_text(self.consent.language, key, **values)

    def check_url(self, adv: str, rcpt: str) -> str:
        """Where an advertiser checks a recipient's state (API, advertiser token)."""
        base = self.cfg.api.public_url.rstrip("/")
        return f"{base}/v1/advertisers/{adv}/recipients/{rcpt}"

    def _ask(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the store unless it was unreachable within ``retry_after`` seconds.

        :raises StoreError: the store failed, now or a moment ago.
        """
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("consent registry unreachable (retrying shortly)")
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable:
            self._down_until = time.monotonic() + self.retry_after
            raise

    def domain_map(self) -> tuple[dict[str, str], bool]:
        """The advertiser domain map (cached ``domain_cache_ttl`` seconds) and
        whether it is fresh; a stale map is used while the registry is down."""
        now = time.monotonic()
        with self._lock:
            if self._domains is not None and now - self._domains_at < self.domain_cache_ttl:
                return self._domains, True
        try:
            fresh = self._ask(self.store.domain_map)
        except StoreError as exc:
            event(log, "consent_registry_unavailable", error=str(exc))
            with self._lock:
                return dict(self._domains or {}), False
        with self._lock:
            self._domains, self._domains_at = fresh, now
        return fresh, True

    def envelope_advertiser(self, mail_from: str) -> tuple[str | None, bool]:
        """The advertiser owning the envelope sender's domain, and whether the
        registry answered. Not authenticated: used only to refuse, never to admit."""
        dom = domain_of_address(mail_from) if mail_from else None
        org = registrable_domain(dom) if dom else None
        domains, ok = self.domain_map()
        return (domains.get(org) if org else None), ok

    def message_advertiser(self, view: MessageView, auth: AuthResults | None) -> tuple[str | None, bool]:
        """The advertiser the message is authenticated as (SPF or DKIM aligned
        with From), and whether the registry answered."""
        aligned = aligned_authenticated_domains(auth, view.from_domain)
        if not aligned:
            return None, True
        domains, ok = self.domain_map()
        hit = attribute_advertiser(aligned, domains)
        return (hit[0] if hit else None), ok

    def _flush_pending(self) -> None:
        """Write the kept counts, oldest first.  Each is taken off the queue before it
        is written, so threads flushing at once never write one twice; one the store
        refuses goes back to the front.

        :raises StoreError: the store failed (the count is kept).
        """
        while True:
            with self._lock:
                if not self._pending:
                    return
                item = self._pending.popleft()
            adv, rcpts, at, ref, hold = item
            try:
                self._ask(self.store.record_sends, adv, rcpts, now=at, ref=ref, hold=hold)
            except StoreError:
                with self._lock:
                    self._pending.appendleft(item)
                raise

    # -- MessagePolicy -------------------------------------------------------------------------

    def check_rcpt(self, env: Envelope, rcpt: str, *,
                   sender_spf: Callable[[], Any] | None = None) -> RcptDecision | None:
        """Reject one recipient of a registered advertiser's mail who refused, has
        no consent (when ``consent.rcpt_requires_consent``) or is over the cap.

        The reply names the recipient's state, so it is given only to a sender
        :meth:`vouched_for` (SPF passes for it, asked through ``sender_spf``, or this
        site trusts it): to anyone else, who may have written the advertiser's domain
        into MAIL FROM to read a recipient's consents, the recipient is let through
        and the end of message decides (``consent.unverified_action``).

        Never raises: registry trouble lets the recipient through, or tempfails
        it when ``consent.on_registry_error = "tempfail"`` and the sender is a
        known advertiser.
        """
        if not self.consent.enabled:
            return None
        adv, fresh = self.envelope_advertiser(env.mail_from)
        if adv is None:
            # includes "registry down and the sender not known from an earlier map":
            # whether it is an advertiser is unknown, so nothing is refused
            return None
        try:
            addr = normalize_recipient(rcpt, self.delimiters)
        except ValueError:
            # No record can hold this form of address, so no consent or refusal can be
            # read for it: an advertiser's ad to it is refused, not let through unchecked.
            event(log, "consent_rcpt_rejected", queue_id=env.queue_id, advertiser=adv,
                  rcpt=rcpt, status="unusable_address")
            return RcptDecision(self._text("smtp.unusable_address", rcpt=rcpt, advertiser=adv),
                                "AD_NO_CONSENT")
        if self.consent.unverified_action != "reject" and not self.vouched_for(
                env, lambda: sender_spf() if sender_spf is not None else None):
            return None
        try:
            state = self._ask(
                self.store.recipient_state,
                adv, addr, now=self.clock(), default_cap=self.consent.max_ads_per_day,
            )
        except (StoreError, ValueError) as exc:
            event(log, "consent_rcpt_unchecked", queue_id=env.queue_id, advertiser=adv,
                  error=str(exc))
            if self.consent.on_registry_error == "tempfail":
                return RcptDecision(
                    self._text("smtp.registry_error"), "AD_REGISTRY_FAIL", temporary=True
                )
            return None
        if state.status not in _RCPT_REJECTS:
            return None
        if state.status in ("no_consent", "consent_expired") and not (
            self.consent.rcpt_requires_consent
        ):
            return None
        symbol = {
            "refused": "AD_REFUSED",
            "refused_all": "AD_REFUSED",
            "over_cap": "AD_OVER_CAP",
        }.get(state.status, "AD_NO_CONSENT")
        event(log, "consent_rcpt_rejected", queue_id=env.queue_id, advertiser=adv,
              rcpt=addr, status=state.status, sent=state.sent, cap=state.cap)
        return RcptDecision(
            self._text(
                f"smtp.{state.status}",
                rcpt=addr,
                advertiser=adv,
                sent=state.sent,
                cap=state.cap,
                check_url=self.check_url(adv, addr),
            ),
            symbol,
        )

    def check_message(self, view: MessageView, env: Envelope, auth: AuthResults | None) -> Sequence[Symbol]:
        """The ad rules for the whole message (see the module table). Never raises
        for registry trouble: it adds ``AD_REGISTRY_FAIL`` and no consent symbols."""
        if not self.consent.enabled:
            return []
        symbols: list[Symbol] = []
        label = ad_label(view.subject, self.labels)
        adv, fresh = self.message_advertiser(view, auth)
        if adv is None:
            env_adv, env_fresh = self.envelope_advertiser(env.mail_from)
            fresh = fresh and env_fresh
        else:
            env_adv = None
        if label:
            symbols.append(self._symbol("AD_LABELLED", f"[{label}]"))
        is_ad = bool(label or adv or env_adv)
        if not is_ad:
            if not fresh:
                symbols.append(self._registry_fail_symbol(is_ad=False))
            return symbols
        named = adv or env_adv or ""
        if not label:
            symbols.append(self._symbol(
                "AD_UNLABELLED",
                smtp_text(self.consent.language, "sym.AD_UNLABELLED", advertiser=named,
                          labels="/".join(self.labels)),
            ))
        link = one_click_unsubscribe(view, own_base_url=self.consent.unsubscribe_base_url)
        if link is None or not self._own_link_valid(link, adv or env_adv):
            symbols.append(self._symbol(
                "AD_NO_UNSUBSCRIBE", smtp_text(self.consent.language, "sym.AD_NO_UNSUBSCRIBE")
            ))
        elif not unsubscribe_signed(auth):
            symbols.append(self._symbol(
                "AD_UNSIGNED_UNSUBSCRIBE",
                smtp_text(self.consent.language, "sym.AD_UNSIGNED_UNSUBSCRIBE"),
            ))
        if adv is None:
            if label and env_adv is None:
                symbols.append(self._symbol(
                    "AD_UNKNOWN_ADVERTISER",
                    smtp_text(self.consent.language, "sym.AD_UNKNOWN_ADVERTISER"),
                ))
            if not fresh:
                symbols.append(self._registry_fail_symbol(is_ad=True))
            if env_adv is None:
                return symbols
        target = adv or env_adv
        assert target is not None
        verified = adv is not None or self.vouched_for(
            env, lambda: auth.spf if auth is not None else None)
        # a verified advertiser's ads take their places under the cap now (the count
        # would come only after the answer, when parallel messages all fitted); an
        # envelope sender anyone can write only reads the state: it spends nothing
        hold = hold_member(env.queue_id, self._instance) if verified else ""
        found = self._consent_symbols(target, env, hold=hold)
        if verified or self.consent.unverified_action == "reject" or not any(
                s.name in _STATE_SYMBOLS for s in found):
            symbols.extend(found)
            return symbols
        # Not this advertiser for all we know: refusing would tell whoever wrote its
        # domain into MAIL FROM which recipients refused or consented.  The message is
        # held instead; the reply is the one a recipient in any state gets.
        held = sum(1 for s in found if s.name in _STATE_SYMBOLS)
        symbols.extend(s for s in found if s.name not in _STATE_SYMBOLS)
        symbols.append(self._symbol(
            "AD_UNVERIFIED_HELD",
            smtp_text(self.consent.language, "sym.AD_UNVERIFIED_HELD", advertiser=target,
                      reasons=",".join(s.name for s in found if s.name in _STATE_SYMBOLS)),
            action="quarantine"))
        event(log, "consent_unverified_held", queue_id=env.queue_id, advertiser=target,
              symbols=held)
        return symbols

    def _own_link_valid(self, link: str, adv: str | None) -> bool:
        """A link into our own one-click service must carry a token we signed for
        this advertiser (any recipient: one message may go to several)."""
        base = self.consent.unsubscribe_base_url
        if self.signer is None or not base or not link.startswith(base):
            return True
        token = link[len(base):].split("?", 1)[0].strip("/")
        try:
            claims = self.signer.verify(token)
        except InvalidToken:
            return False
        return adv is None or claims.advertiser == adv

    def _registry_fail_symbol(self, *, is_ad: bool) -> Symbol:
        action: Literal["tempfail", ""] = (
            "tempfail" if is_ad and self.consent.on_registry_error == "tempfail" else "")
        return self._symbol(
            "AD_REGISTRY_FAIL", smtp_text(self.consent.language, "sym.AD_REGISTRY_FAIL"),
            action=action,
        )

    def _consent_symbols(self, adv: str, env: Envelope, *, hold: str = "") -> list[Symbol]:
        now = self.clock()
        states: dict[str, list[RecipientState]] = collections.defaultdict(list)
        unchecked = 0
        for rcpt in env.rcpts[:1000]:
            try:
                addr = normalize_recipient(rcpt, self.delimiters)
            except ValueError:  # no consent can be on record for it (see check_rcpt)
                states["no_consent"].append(RecipientState(status="no_consent"))
                continue
            state = self._recipient_state(adv, addr, env, now=now, hold=hold)
            if state is None:
                unchecked += 1
                continue
            states[state.status].append(state)
        # what was read for the others still counts: one recipient the registry failed
        # for must not hide another one's refusal
        out: list[Symbol] = []
        lang = self.consent.language
        missing = len(states["no_consent"]) + len(states["consent_expired"])
        if missing:
            out.append(self._symbol(
                "AD_NO_CONSENT", smtp_text(lang, "sym.AD_NO_CONSENT", count=missing)
            ))
        refused = len(states["refused"]) + len(states["refused_all"])
        if refused:
            out.append(self._symbol(
                "AD_REFUSED", smtp_text(lang, "sym.AD_REFUSED", count=refused)
            ))
        if states["over_cap"]:
            cap = states["over_cap"][0].cap
            out.append(self._symbol(
                "AD_OVER_CAP",
                smtp_text(lang, "sym.AD_OVER_CAP", count=len(states["over_cap"]), cap=cap),
            ))
        if unchecked:
            out.append(self._registry_fail_symbol(is_ad=True))
        return out

    def _recipient_state(self, adv: str, addr: str, env: Envelope, *, now: float,
                         hold: str) -> RecipientState | None:
        """One recipient's state, taking its place under the cap (``hold``) when asked;
        ``None`` when the registry cannot say.  A place that cannot be taken (a full
        Redis refuses the write; the state script writes only for an allowed recipient)
        still leaves the state to read: the ad is then checked, only not held."""
        error: StoreError
        state: RecipientState
        try:
            state = self._ask(self.store.recipient_state, adv, addr, now=now,
                              default_cap=self.consent.max_ads_per_day, hold=hold)
            return state
        except StoreUnavailable as exc:  # down: reading again would fail the same way
            error = exc
        except StoreError as exc:
            error = exc
            if hold:
                try:
                    state = self._ask(self.store.recipient_state, adv, addr, now=now,
                                      default_cap=self.consent.max_ads_per_day)
                except StoreError:
                    pass
                else:
                    event(log, "consent_place_not_held", logging.WARNING,
                          queue_id=env.queue_id, advertiser=adv, error=str(exc))
                    return state
        event(log, "consent_message_unchecked", queue_id=env.queue_id, advertiser=adv,
              error=str(error))
        return None

    def sending_advertiser(self, view: MessageView, env: Envelope,
                           auth: AuthResults | None) -> str | None:
        """The advertiser a message counts against: the one it is authenticated as
        (:meth:`message_advertiser`), else the envelope sender's when the sender is
        :meth:`vouched_for`.  An envelope sender anyone can write counts against
        nobody: otherwise a stranger could spend an advertiser's daily cap."""
        adv, _ = self.message_advertiser(view, auth)
        if adv is not None:
            return adv
        if not self.vouched_for(env, lambda: auth.spf if auth is not None else None):
            return None
        adv, _ = self.envelope_advertiser(env.mail_from)
        return adv

    def vouched_for(self, env: Envelope, spf: Callable[[], Any]) -> bool:
        """The envelope sender is the advertiser its domain names, as far as this site
        can tell: SPF passed for that domain (``spf()``, asked only when needed), or the
        client is one this site trusts (SMTP AUTH, whose logins Postfix's
        ``reject_sender_login_mismatch`` keeps to their own addresses, or
        ``milter.trusted_networks``).  A trusted sender's mail is never refused or held
        at end of message, so its ads are stopped at RCPT and counted like any other."""
        return bool(self._trust.trusted_reason(env)) or spf_vouches(spf(), env.mail_from)

    def released(self, view: MessageView, env: Envelope, auth: AuthResults | None) -> None:
        """The message was not accepted: the places its ads took under the cap
        (:meth:`check_message`) are given back at once.  Never raises: a hold that
        cannot be removed now ends by itself (:data:`~.registry.HOLD_SECONDS`)."""
        hold = hold_member(env.queue_id, self._instance)
        if not self.consent.enabled or not env.rcpts or not hold:
            return
        adv = self.sending_advertiser(view, env, auth)  # whose place check_message took
        if adv is None:
            return
        try:
            self._ask(self.store.release_holds, adv, env.rcpts[:1000], hold=hold)
        except StoreError as exc:
            event(log, "consent_release_deferred", queue_id=env.queue_id, advertiser=adv,
                  error=str(exc))

    def delivered(self, view: MessageView, env: Envelope, auth: AuthResults | None) -> None:
        """Count one ad for each recipient the message was accepted for, against
        :meth:`sending_advertiser`. Never raises: a count the registry could not take
        is kept and written later."""
        if not self.consent.enabled or not env.rcpts:
            return
        adv = self.sending_advertiser(view, env, auth)
        if adv is None:
            return
        item = (adv, tuple(env.rcpts[:1000]), self.clock(), env.queue_id or "-",
                hold_member(env.queue_id, self._instance))
        with self._lock:
            self._pending.append(item)
        try:
            self._flush_pending()
        except StoreError as exc:
            event(log, "consent_count_deferred", queue_id=env.queue_id, advertiser=adv,
                  pending=len(self._pending), error=str(exc))

    @property
    def pending_counts(self) -> int:
        """Delivered ads not yet counted in the registry (it was unreachable)."""
        with self._lock:
            return len(self._pending)


#: the symbols that say what a recipient agreed to or refused
_STATE_SYMBOLS = frozenset({"AD_NO_CONSENT", "AD_REFUSED", "AD_OVER_CAP"})


def policy_from_config(cfg: Config, client: Any | None = None) -> ConsentPolicy:
    """The consent policy over Redis for this configuration (``client``: a
    ``redis.Redis``; default :func:`~spamwarden.redisconn.sync_client`)."""
    store = RedisConsentRegistry(
        client if client is not None else sync_client(cfg), retention=cfg.consent.retention,
        delimiters=cfg.intake.recipient_delimiter,
    )
    try:
        signer: TokenSigner | None = signer_from_config(cfg)
    except ConfigError as exc:  # e.g. a read-only state_dir: links are then not checked
        event(log, "consent_token_key_unavailable", error=str(exc))
        signer = None
    return ConsentPolicy(cfg, store, signer=signer)
