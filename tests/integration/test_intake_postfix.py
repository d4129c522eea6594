"""A complaint sent to report@ through a real Postfix reaches intake by Postfix's
transport_maps; while Redis is down Postfix keeps it queued (intake answers 451) and
delivers it once Redis is back."""

from __future__ import annotations

import functools
import smtplib
from typing import Any, Callable

import pytest

from spamwarden.redisconn import EmbeddedRedis
from tests.integration.test_intake import REPORTS, RunningIntake
from tests.integration.test_intake import start_intake as start_intake  # noqa: F401 - fixture
from tests.support.net import wait_until
from tests.support.replies import REPORT_STORE_FAILED

pytestmark = pytest.mark.integration


_wait = functools.partial(wait_until, interval=0.1)


def test_report_via_postfix_transport(
    start_intake: Callable[..., RunningIntake], postfix_instance: Any,
    redis_server: EmbeddedRedis,
) -> None:
    intake = start_intake(local_domains=["test.local"])
    pf = postfix_instance(
        mailbox="report@test.local",
        main_cf={
            # the snippet in conf/postfix/transport, with intake speaking SMTP here
            "transport_maps": f"inline:{{ report@test.local=smtp:[127.0.0.1]:{intake.port} }}",
            "smtp_destination_recipient_limit": "10",
            "message_size_limit": str(intake.cfg.intake.max_message_bytes),
        },
    )
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.sendmail("alice@test.local", ["report@test.local"], raw)
    [c] = _wait(intake.complaints, timeout=20, what="the complaint in the stream")
    assert (c.reporter, c.kind, c.source) == ("alice@test.local", "spam", "attached")
    assert c.indicators.source_ip == "198.51.100.23"
    assert pf.delivered_count() == 0  # handed to intake, not to the mailbox

    # Redis down: intake answers 451, Postfix keeps the report and retries it later
    redis_server.stop()
    second = raw.replace(b"Mua ngay", b"Mua ngay 2")
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.sendmail("alice@test.local", ["report@test.local"], second)
    log = _wait(lambda: REPORT_STORE_FAILED.line in pf.maillog() and pf.maillog(), timeout=20,
                what="the deferral in the maillog")
    assert "status=deferred" in log
    assert len(pf.queue()) == 1
    redis_server.start()
    pf.flush()
    complaints = _wait(lambda: len(intake.complaints()) == 2 and intake.complaints(),
                       timeout=30, what="the retried complaint in the stream")
    assert complaints[0].id == c.id and complaints[1].fingerprint != c.fingerprint
    _wait(lambda: not pf.queue(), timeout=20, what="an empty queue")
