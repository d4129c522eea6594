"""Delivering one message like an MTA does: retry 4xx replies and connection failures
with back-off, stop at the first 2xx or 5xx. Both fault tests send through it."""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass, field

__all__ = ["Delivery", "deliver_like_an_mta"]


@dataclass
class Delivery:
    """What became of one message: its final reply and the transient ones before it."""

    final: str = ""  # the final SMTP reply: "250 ..." or "5xx ..."
    attempts: int = 0
    transient: list[str] = field(default_factory=list)
    last_try: tuple[float, float] = (0.0, 0.0)  # monotonic start and end of the last attempt


def deliver_like_an_mta(port: int, *, mail_from: str, rcpt: str, raw: bytes, into: Delivery,
                        deadline: float, max_attempts: int, timeout: float) -> None:
    """Send ``raw`` to 127.0.0.1:``port`` until a 250 or 5xx reply, recording into ``into``.

    4xx replies at any stage, timeouts and dropped connections are retried (0.1 s back-off
    growing to 1 s) while ``into.attempts < max_attempts`` and before ``deadline``.
    """
    delay = 0.1
    while into.attempts < max_attempts and time.monotonic() < deadline:
        into.attempts += 1
        started = time.monotonic()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
                s.ehlo("client.test")
                for command, arg in (("mail", mail_from), ("rcpt", rcpt)):
                    code, msg = getattr(s, command)(arg)
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, msg)
                code, msg = s.data(raw)  # the reply after the dot is returned, not raised
                if code != 250:
                    raise smtplib.SMTPResponseException(code, msg)
                into.final = f"{code} {msg.decode(errors='replace')}"
                into.last_try = (started, time.monotonic())
                return
        except smtplib.SMTPResponseException as exc:
            reply = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
            if 500 <= exc.smtp_code < 600:
                into.final = reply
                return
            into.transient.append(reply[:60])
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
                ConnectionError, OSError) as exc:
            into.transient.append(type(exc).__name__)
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
