"""The pymilter adapter: SMTP stages → one :class:`~spamwarden.milter.scanner.Scanner` call.

libmilter runs one thread per Postfix connection and pymilter makes one
:class:`SpamwardenMilter` per connection (``Milter.factory``), so per-connection
and per-message state lives on the instance; the scanner is shared and
stateless.  Callbacks only translate:

========  =========================================================================
connect   remember the client IP and name (no reply awaited)
hello     remember the HELO name (no reply awaited)
envfrom   start a transaction: MAIL FROM, ``{auth_authen}``; start SPF (and the
          third-party DNSBLs) on the lookup threads, to run during DATA (no reply awaited)
envrcpt   ask the policies about this recipient: ``550 5.7.1`` for just this one;
          ``452 4.5.3`` when its settings differ from the first recipient's
data      acknowledge the packet at once (``milter.tcp_quickack``; no reply awaited)
header    buffer, within ``milter.max_header_bytes`` (the fields past it are dropped and
          the message scored without them; no reply awaited)
body      buffer, within ``milter.max_message_bytes`` (no reply awaited)
eom       scan (within ``milter.max_scan_bytes_in_flight``, :mod:`.inflight`); remove
          forged headers, add ours; accept / hold / reject / tempfail
========  =========================================================================

Failure rule: every callback is wrapped so that an exception gives
``milter.on_error`` (default ``tempfail``: Postfix answers 451 and the
client retries, nothing is lost) and one log line with the Postfix queue id.
Callbacks that send no reply (``@Milter.noreply``) keep the error and the
next callback that replies (RCPT or end of message) answers with it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import Milter
import milter as libmilter

from ..errors import ConfigError
from ..logs import event, for_message
from ..mail import MAX_LATE_FROM, unmapped
from .delivery import DeliveryRecorder
from .headers import ON_TOP, header_safe
from .inflight import ScanBudget, ScanBusy
from .interfaces import MAX_RCPTS, Envelope
from .quickack import ConnectionAcker
from .replies import busy_text, error_text, overflow_text, reject_text, tempfail_text
from .scanner import Scanner
from .verdict import EnvelopeChecks, Verdict

__all__ = [
    "SpamwardenMilter", "libmilter_socket",
]

log = logging.getLogger("spamwarden.milter")

# pymilter is untyped: its reply codes and decorators, typed once here.
CONTINUE: int = int(Milter.CONTINUE)
ACCEPT: int = int(Milter.ACCEPT)
REJECT: int = int(Milter.REJECT)
TEMPFAIL: int = int(Milter.TEMPFAIL)

F = TypeVar("F", bound=Callable[..., Any])

_INTERESTING = ("authentication-results",)
# Incoming X-Spam-* / Authentication-Results fields kept for forged-header removal. A
# message with more is refused: removing them all would cost one milter round trip each,
# and keeping any would let a forged verdict through (RFC 8601 §5).
MAX_WATCHED_HEADERS = 1000
#: the octets of a From field past milter.max_header_bytes kept for the parser (which
#: reads that many characters of it)
_LATE_FROM_LINE = 2048


def libmilter_socket(listen: str) -> str:
    """Postfix's milter address → libmilter's ``smfi_setconn`` form.

    ``inet:127.0.0.1:8890`` → ``inet:8890@127.0.0.1``; ``inet6:[::1]:8890`` or
    ``inet6:::1:8890`` → ``inet6:8890@::1``; ``unix:/path`` and ``local:/path``
    unchanged.

    :raises ConfigError: the address is none of these.
    """
    text = listen.strip()
    if text.startswith(("unix:", "local:")):
        return text
    for family in ("inet6", "inet"):
        prefix = family + ":"
        if text.startswith(prefix):
            rest = text[len(prefix):]
            host, sep, port = rest.rpartition(":")
            if not sep or not port.isdigit() or not host:
                break
            host = host.strip("[]")
            return f"{family}:{port}@{host}"
    raise ConfigError(
        f"milter.listen = {listen!r}: expected inet:HOST:PORT, inet6:[HOST]:PORT or unix:/PATH"
    )


def _client_ip(family: Any, hostaddr: Any) -> str | None:
    if isinstance(hostaddr, tuple) and hostaddr:
        addr = str(hostaddr[0])
    elif isinstance(hostaddr, str) and family in (socket.AF_INET, socket.AF_INET6):
        addr = hostaddr
    else:
        return None  # unix socket, or no address (local submission)
    if addr.lower().startswith("ipv6:"):
        addr = addr[5:]
    addr = addr.strip("[]")
    try:
        ip = unmapped(ipaddress.ip_address(addr))  # an IPv4 client on a dual-stack socket
    except ValueError:
        return addr or None
    return str(ip) if ip.version == 4 else addr or None


def _reply_text(text: str) -> str:
    # libmilter drops a reply with a lone '%' silently; SMTP lines are ASCII.
    return header_safe(text, limit=400).replace("%", "%%")


def _count_message(action: str) -> None:
    """One message answered ``action`` without a verdict, in ``spamwarden_messages_total``
    (best effort: metrics never change the answer)."""
    try:
        from ..metrics import MESSAGES

        MESSAGES.labels(action).inc()
    except Exception:  # noqa: BLE001, S110 - metrics never change the answer
        pass


def _noreply(func: F) -> F:
    """``@Milter.noreply``: the MTA does not wait for this callback's answer."""
    return cast(F, Milter.noreply(func))


def _raw_bytes(func: F) -> F:
    """``@Milter.decode("bytes")``: header values arrive undecoded."""
    return cast(F, Milter.decode("bytes")(func))


def _guarded(*, deferred: bool) -> Callable[[F], F]:
    """Wrap a callback: an exception → ``milter.on_error`` and a log line with the queue id.

    :param deferred: the callback's reply is not awaited (``@Milter.noreply``);
        keep the error, and the next callback that replies (RCPT, end of
        message) answers with ``milter.on_error``.
    """

    def wrap(func: F) -> F:
        stage = func.__name__

        @functools.wraps(func)
        def guarded(self: SpamwardenMilter, *args: Any) -> Any:
            try:
                if not deferred:
                    pending = self._conn_error or self._error
                    if pending is not None:
                        return self._fail(pending[0], pending[1], at=stage)
                return func(self, *args)
            except Exception as exc:
                log.debug("callback %s failed", stage, exc_info=exc)
                if deferred:
                    if stage in ("connect", "hello"):
                        self._conn_error = self._conn_error or (stage, exc)
                    else:
                        self._error = self._error or (stage, exc)
                    return CONTINUE
                return self._fail(stage, exc, at=stage)

        return guarded  # type: ignore[return-value]

    return wrap


class SpamwardenMilter(Milter.Base):  # type: ignore[misc]  # pymilter is untyped
    """One Postfix connection (possibly several messages).

    :param scanner: the shared pipeline.
    :param recorder: counts accepted mail in the background; ``None``: counted
        before the reply (tests).
    :param budget: the process's bytes being scored at once
        (``milter.max_scan_bytes_in_flight``); ``None``: no bound (tests).
    :param clock: monotonic seconds, for the per-message timing in the log.
    """

    #: acknowledges Postfix's packets at once (``milter.tcp_quickack``); set by the server
    acker: ConnectionAcker | None = None

    def __init__(
        self,
        scanner: Scanner,
        *,
        recorder: DeliveryRecorder | None = None,
        budget: ScanBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ack_sock: socket.socket | None = None
        self.scanner = scanner
        self.recorder = recorder
        self.budget = budget
        self.cfg = scanner.cfg.milter
        #: the language of reply texts (``i18n.language``); codes never change with it
        self.language = scanner.cfg.i18n.language
        self._clock = clock
        self._client_ip: str | None = None
        self._client_name = ""
        self._helo = ""
        self._receiver = ""
        self._tls = False
        self._conn_error: tuple[str, BaseException] | None = None
        self._error: tuple[str, BaseException] | None = None
        self._queue_id = ""
        self._early: EnvelopeChecks | None = None
        self._reset()

    # -- state -------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget the current message (a new MAIL FROM, RSET or abort)."""
        self._drop_early()
        self._spf: Any = None
        self._spf_known = False
        self._env = Envelope(
            client_ip=self._client_ip, client_name=self._client_name, helo=self._helo,
            receiver=self._receiver, tls=self._tls,
        )
        self._head: list[bytes] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._oversize = ""
        self._headers_cut = False
        self._late_from = 0
        self._watched: list[tuple[str, str]] = []
        self._watched_overflow = False
        self._started = self._clock()
        self._error = None
        self._queue_id = ""

    def _macro(self, name: str) -> str:
        try:
            value = self.getsymval(name)
        except Exception:  # noqa: BLE001 - a macro is never worth failing a message
            return ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return str(value) if value else ""

    def _qid(self) -> str:
        if not self._queue_id:
            self._queue_id = self._macro("i")
            self._env.queue_id = self._queue_id
        return self._queue_id

    def _fail(self, stage: str, exc: BaseException, *, at: str) -> int:
        """Answer with ``milter.on_error`` after an internal error, and log it.

        :param stage: the callback that failed; ``at``: the one answering now.
        """
        qid = self._qid() if at in ("envrcpt", "eom") else self._queue_id
        event(
            log, "milter_error", logging.ERROR,
            queue_id=qid or None, stage=stage, answered_at=at, action=self.cfg.on_error,
            error=header_safe(f"{type(exc).__name__}: {exc}", limit=300),
            client_ip=self._client_ip,
        )
        _count_message(self.cfg.on_error)
        action = self.cfg.on_error
        try:
            if action == "accept":
                return ACCEPT
            if action == "reject":
                self.setreply("550", "5.3.0", _reply_text(error_text(self.language, "reject")))
                return REJECT
            self.setreply("451", "4.3.0", _reply_text(error_text(self.language, "tempfail")))
        except Exception:  # noqa: BLE001, S110 - the reply text is a courtesy; the code matters
            pass
        return REJECT if action == "reject" else TEMPFAIL

    # -- callbacks ---------------------------------------------------------------------------

    @_noreply
    @_guarded(deferred=True)
    def connect(self, hostname: str, family: Any, hostaddr: Any) -> int:
        if self.acker is not None and self._ack_sock is None:
            self._ack_sock = self.acker.socket_for(getattr(self, "_ctx", None))
            ConnectionAcker.ack(self._ack_sock)
        self._client_ip = _client_ip(family, hostaddr)
        self._client_name = str(hostname or "")
        self._env.client_ip = self._client_ip
        self._env.client_name = self._client_name
        self._receiver = self._env.receiver = self._macro("j")[:255]
        return CONTINUE

    @_noreply
    @_guarded(deferred=True)
    def hello(self, hostname: str) -> int:
        ConnectionAcker.ack(self._ack_sock)
        self._helo = str(hostname or "")[:255]
        self._env.helo = self._helo
        self._tls = self._env.tls = bool(self._macro("{tls_version}"))
        return CONTINUE

    @_noreply
    @_guarded(deferred=True)
    def envfrom(self, mail_from: str, *params: str) -> int:
        ConnectionAcker.ack(self._ack_sock)
        self._reset()
        self._env.mail_from = str(mail_from or "").strip().strip("<>")[:512]
        self._env.authenticated = bool(self._macro("{auth_authen}"))
        self._qid()
        self._early = self.scanner.start_envelope_checks(self._env)
        return CONTINUE

    @_noreply
    @_guarded(deferred=True)
    def data(self) -> int:
        # Registered only to acknowledge the DATA stage at once: Postfix sends the first
        # header next, and its Nagle would hold it for the delayed ACK of this packet.
        ConnectionAcker.ack(self._ack_sock)
        return CONTINUE

    @_guarded(deferred=False)
    def envrcpt(self, rcpt: str, *params: str) -> int:
        self._qid()
        address = str(rcpt or "").strip().strip("<>")
        decision = self.scanner.check_rcpt(self._env, address, sender_spf=self._sender_spf)
        if decision is None:
            if len(self._env.rcpts) < MAX_RCPTS:
                self._env.rcpts.append(address)
            else:
                self._env.rcpts_cut = True
            return CONTINUE
        event(
            log, "rcpt_refused", queue_id=self._queue_id or None, rcpt=address,
            symbol=decision.symbol or None, temporary=decision.temporary, text=decision.text,
        )
        code = decision.code or ("450" if decision.temporary else "550")
        status = decision.status or ("4.7.1" if decision.temporary else "5.7.1")
        self.setreply(code, status, _reply_text(decision.text))
        return TEMPFAIL if code.startswith("4") else REJECT

    @_noreply
    @_raw_bytes
    @_guarded(deferred=True)
    def header(self, name: str, value: bytes) -> int:
        return self._take_header(name, value)

    def _take_header(self, name: str, value: bytes) -> int:
        """:meth:`header`'s work; libmilter calls it through :func:`_header_callback`."""
        if not self._head_bytes:  # the first header: Postfix is holding the others
            ConnectionAcker.ack(self._ack_sock)
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        name = str(name)
        line = name.encode("utf-8", "surrogateescape") + b": " + value + b"\r\n"
        self._head_bytes += len(line)
        self._size += len(line)
        lname = name.lower()
        if lname.startswith("x-spam") or lname in _INTERESTING:
            if len(self._watched) < MAX_WATCHED_HEADERS:
                self._watched.append((name, value.decode("utf-8", "replace")))
            else:
                self._watched_overflow = True
        if self._oversize:
            return CONTINUE
        if self._size > self.cfg.max_message_bytes:
            self._oversize = f"message larger than {self.cfg.max_message_bytes} bytes"
            self._head.clear()
        elif self._head_bytes > self.cfg.max_header_bytes:
            # the rest of the header section is not kept, and the message is scored on
            # what came before it: padding must not buy a sender an unscored message
            self._headers_cut = True
            if lname == "from" and self._late_from < MAX_LATE_FROM:
                # nor hide its author from DMARC: the parser reads From fields past the
                # limit (mail.MAX_LATE_FROM of them)
                self._late_from += 1
                self._head.append(line if len(line) <= _LATE_FROM_LINE
                                  else line[:_LATE_FROM_LINE - 2] + b"\r\n")
        else:
            # Folded values arrive with bare LF between lines; DKIM wants CRLF.
            if b"\n" in line[:-2]:
                line = line[:-2].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
            self._head.append(line)
        return CONTINUE

    @_noreply
    @_guarded(deferred=True)
    def body(self, chunk: bytes) -> int:
        ConnectionAcker.ack(self._ack_sock)  # Postfix's end of message comes next
        self._size += len(chunk)
        if self._oversize:
            return CONTINUE
        if self._size > self.cfg.max_message_bytes:
            self._oversize = f"message larger than {self.cfg.max_message_bytes} bytes"
            self._head.clear()
            self._body.clear()
        else:
            self._body.append(bytes(chunk))
        return CONTINUE

    @_guarded(deferred=False)
    def eom(self) -> int:
        qid = self._qid()
        env = self._env
        env.queue_id = qid
        if self._watched_overflow:
            return self._refuse_overflow()
        if self._oversize:
            verdict = self.scanner.not_scored(env, self._watched, self._oversize)
        else:
            raw = b"".join(self._head) + b"\r\n" + b"".join(self._body)
            self._head, self._body = [], []
            try:
                reserved = self.budget.acquire(len(raw)) if self.budget is not None else 0
            except ScanBusy as exc:
                return self._busy(exc)
            try:
                with for_message(qid):
                    verdict = self.scanner.scan(raw, env, incoming_headers=self._watched,
                                                early=self._early)
            finally:
                if self.budget is not None:
                    self.budget.release(reserved)
            if self._headers_cut:
                verdict = dataclasses.replace(verdict, add_headers=(*verdict.add_headers, (
                    "X-Spam-Note", f"header section larger than {self.cfg.max_header_bytes} "
                    "bytes: scored on the fields before that")))
        result = self._act(verdict)
        self._log_verdict(verdict)
        self._reset_after_message()
        return result

    @_guarded(deferred=True)
    def abort(self) -> int:
        self._reset_after_message()
        return CONTINUE

    @_guarded(deferred=True)
    def close(self) -> int:
        if self._ack_sock is not None:
            self._ack_sock.close()
            self._ack_sock = None
        return CONTINUE

    # -- end of message ----------------------------------------------------------------------

    def _sender_spf(self) -> Any:
        """SPF's answer for this transaction's envelope sender, evaluated at most once
        (:meth:`Scanner.sender_spf`); a policy asks it at RCPT only when it needs it."""
        if self._spf_known:
            return self._spf
        self._spf, self._early = self.scanner.sender_spf(self._env, self._early)
        self._spf_known = True
        return self._spf

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    def _refuse_overflow(self) -> int:
        """``550 5.7.1`` for a message with more than :data:`MAX_WATCHED_HEADERS`
        X-Spam-* / Authentication-Results fields: never delivered with forged ones kept."""
        event(
            log, "verdict", queue_id=self._queue_id or None, action="reject",
            reason=f"more than {MAX_WATCHED_HEADERS} X-Spam-*/Authentication-Results fields",
            client_ip=self._client_ip,
        )
        self._reset_after_message()
        self.setreply("550", "5.7.1", _reply_text(
            overflow_text(self.language, MAX_WATCHED_HEADERS)))
        return REJECT

    def _busy(self, exc: ScanBusy) -> int:
        """``451 4.3.2`` for a large message that found no room under
        ``milter.max_scan_bytes_in_flight``: whatever ``milter.on_error`` says, a sender
        who fills the budget must not get mail through unscored; the sending MTA
        retries."""
        event(log, "scan_deferred", logging.WARNING, queue_id=self._queue_id or None,
              size=self._size, why=str(exc), client_ip=self._client_ip)
        _count_message("tempfail")
        self._reset_after_message()
        self.setreply("451", "4.3.2", _reply_text(busy_text(self.language)))
        return TEMPFAIL

    def _reset_after_message(self) -> None:
        self._drop_early()
        self._spf, self._spf_known = None, False
        self._error = None
        self._watched_overflow = False
        self._head, self._body, self._watched = [], [], []
        self._oversize = ""
        self._headers_cut = False
        self._late_from = 0
        self._size = self._head_bytes = 0

    def _apply_headers(self, verdict: Verdict) -> None:
        for name, index in verdict.remove_headers:
            self.chgheader(name, index, "")
        for name, value in verdict.add_headers:
            if name in ON_TOP:
                # RFC 8601 §5, RFC 8617 §4.1: on top, like trace fields; the ARC set
                # follows our Authentication-Results, so the ARC-Seal ends up topmost.
                self.addheader(name, value, 0)
            else:
                self.addheader(name, value)

    def _act(self, verdict: Verdict) -> int:
        action = verdict.action
        if action == "reject":
            self.setreply("550", "5.7.1", _reply_text(self._reject_text(verdict)))
            self._record_refused(verdict)
            return REJECT
        if action == "tempfail":
            self.setreply("451", "4.7.1", _reply_text(
                tempfail_text(self.language, verdict, self.scanner.cfg)))
            self._record_refused(verdict)
            return TEMPFAIL
        ConnectionAcker.cork(self._ack_sock, True)
        try:
            self._apply_headers(verdict)
        finally:
            ConnectionAcker.cork(self._ack_sock, False)  # the edits leave as one packet
        if action == "quarantine":
            self.quarantine(header_safe(verdict.reason, limit=200))
        if self.recorder is not None:
            self.recorder.submit(verdict, self._env)
        else:
            self.scanner.delivered(verdict, self._env)
            self.scanner.record_history([(verdict, self._env)])
        return ACCEPT

    def _record_refused(self, verdict: Verdict) -> None:
        """A refused or deferred message goes to the message history only (after the
        reply, with the recorder's batch)."""
        if self.recorder is not None:
            self.recorder.submit(verdict, self._env, delivered=False)
        else:
            self.scanner.record_history([(verdict, self._env)])

    def _reject_text(self, verdict: Verdict) -> str:
        """``message rejected as spam: <main reason>; see <lookup URL>`` in
        ``i18n.language`` (:func:`~spamwarden.milter.replies.reject_text`)."""
        return reject_text(self.language, verdict, self.scanner.cfg)

    def _log_verdict(self, verdict: Verdict) -> None:
        try:
            from ..metrics import (
                CHECKS_UNAVAILABLE,
                LOOKUP_FAILURES,
                MESSAGES,
                SCAN_SECONDS,
                SYMBOL_HITS,
            )

            MESSAGES.labels(verdict.action).inc()
            SCAN_SECONDS.observe(verdict.elapsed_ms / 1000.0)
            failures = self.scanner.lookup_failures
            for s in verdict.symbols:
                SYMBOL_HITS.labels(s.name).inc()
                kind = failures.get(s.name)
                if kind:
                    LOOKUP_FAILURES.labels(kind).inc()
            for u in verdict.unavailable:
                CHECKS_UNAVAILABLE.labels(u.split(" ", 1)[0]).inc()
        except Exception:  # noqa: BLE001, S110 - metrics never fail a message
            pass
        event(
            log, "verdict",
            queue_id=self._queue_id or None,
            action=verdict.action,
            score=f"{verdict.score:.1f}",
            symbols=",".join(f"{s.name}({s.points:g})" for s in verdict.symbols) or "none",
            reason=verdict.reason if verdict.action != "accept" else None,
            client_ip=self._env.client_ip,
            mail_from=self._env.mail_from or "<>",
            from_domain=verdict.view.from_domain if verdict.view is not None else None,
            rcpts=len(self._env.rcpts),
            size=self._size,
            scored=verdict.scored,
            headers_cut=self._headers_cut or None,
            # where the parse stopped short (parts, nesting, parameters past the bounds)
            defects="; ".join(verdict.view.defects)
            if verdict.view is not None and verdict.view.defects else None,
            unavailable=",".join(u.split(" ", 1)[0] for u in verdict.unavailable) or None,
            ms=verdict.elapsed_ms,
            total_ms=round((self._clock() - self._started) * 1000, 1),
        )


_NR_HDR: int = int(Milter.P_NR_HDR)
# libmilter's own constant: Milter.NOREPLY is a Python name that pymilter's test helper
# (Milter.test) rebinds to CONTINUE for the whole process
_NOREPLY: int = int(libmilter.NOREPLY)


def _header_callback(ctx: Any, name: str, value: bytes) -> int:
    """libmilter's header callback: what ``SpamwardenMilter.header`` and its decorators
    do (raw bytes, a deferred error, no reply awaited), in one Python frame instead of
    four: it runs for every header field of every message."""
    milter: SpamwardenMilter = ctx.getpriv()
    try:
        milter._take_header(name, value)
    except Exception as exc:
        log.debug("callback header failed", exc_info=exc)
        milter._error = milter._error or ("header", exc)
    return _NOREPLY if getattr(milter, "_protocol", 0) & _NR_HDR else CONTINUE


def _register(conn: str, timeout: int) -> None:
    """Hand libmilter the callbacks and the socket address (what ``Milter.runmilter``
    does before it opens the socket): each callback goes to the connection's
    :class:`SpamwardenMilter`, made by ``Milter.factory`` when Postfix connects."""
    lib = Milter.milter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE)
    lib.set_connect_callback(Milter.connect_callback)
    lib.set_helo_callback(lambda ctx, host: ctx.getpriv().hello(host))
    lib.set_envfrom_callback(lambda ctx, *b: ctx.getpriv().envfrom_bytes(*b))
    lib.set_envrcpt_callback(lambda ctx, *b: ctx.getpriv().envrcpt_bytes(*b))
    lib.set_header_callback(_header_callback)
    lib.set_eoh_callback(lambda ctx: ctx.getpriv().eoh())
    lib.set_body_callback(lambda ctx, chunk: ctx.getpriv().body(chunk))
    lib.set_eom_callback(lambda ctx: ctx.getpriv().eom())
    lib.set_abort_callback(lambda ctx: ctx.getpriv().abort())
    lib.set_close_callback(Milter.close_callback)
    lib.setconn(conn)
    if timeout > 0:
        lib.settimeout(timeout)
    lib.register(
        "spamwarden",
        data=lambda ctx: ctx.getpriv().data(),
        unknown=lambda ctx, cmd: ctx.getpriv().unknown(cmd),
        negotiate=Milter.negotiate_callback,
    )
