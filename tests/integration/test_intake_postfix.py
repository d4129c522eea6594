"""A complaint sent to report@ through a real Postfix reaches intake by Postfix's
transport_maps; while Redis is down Postfix keeps it queued (intake answers 451) and
delivers it once Redis is back."""

from __future__ import annotations

import functools
import smtplib
from collections.abc import Callable
from typing import Any

import pytest

from spamwarden.redisconn import EmbeddedRedis
from tests.integration.test_intake import REPORTS, RunningIntake, _variant
from tests.integration.test_intake import start_intake as start_intake
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


# -- who may report: SASL login, sender ownership, intake addresses closed to strangers -------

LOGINS = {"alice@test.local": "alice-secret", "bob@test.local": "bob-secret"}


def _restricted_postfix(postfix_instance: Any, intake: RunningIntake) -> Any:
    """A Postfix set up as conf/postfix/main.cf says: SASL login recorded in Received,
    senders owned by logins, intake addresses only for logged-in clients."""
    route = f"smtp:[127.0.0.1]:{intake.port}"
    addresses = ("report@test.local", "ham@test.local", "optout@test.local")
    return postfix_instance(
        mailbox="user@test.local",
        sasl_users=LOGINS,
        main_cf={
            "virtual_mailbox_maps": "inline:{ user@test.local=user/ "
            + " ".join(f"{a}=intake/" for a in addresses) + " }",
            "transport_maps": "inline:{ " + " ".join(f"{a}={route}" for a in addresses) + " }",
            "smtp_destination_recipient_limit": "10",
            "recipient_delimiter": "+",
            # the clients of this test connect from 127.0.0.1: not one of mynetworks here
            "mynetworks": "192.0.2.10/32",
            # conf/postfix/sender-logins: alice owns m1..m3 and her own address
            "smtpd_sender_login_maps": "inline:{ alice@test.local=alice@test.local "
            "m1@test.local=alice@test.local m2@test.local=alice@test.local "
            "m3@test.local=alice@test.local bob@test.local=bob@test.local }",
            "smtpd_recipient_restrictions": (
                "reject_sender_login_mismatch, permit_sasl_authenticated, permit_mynetworks, "
                "check_recipient_access inline:{ "
                + " ".join(f"{{ {a} = 550 5.7.1 Log in to your mail account to report }}"
                           for a in addresses)
                + " }, reject_unauth_destination"),
        },
    )


def test_only_logged_in_users_reach_intake_through_postfix(
    start_intake: Callable[..., RunningIntake], postfix_instance: Any,
) -> None:
    intake = start_intake(local_domains=["test.local"], require_auth=True)
    pf = _restricted_postfix(postfix_instance, intake)
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    # the report's own submission hop claims a login: only the hop Postfix adds counts
    raw = raw.replace(b"alice@example.vn", b"alice@test.local")

    # a stranger (no login) is refused at RCPT by Postfix, for every intake address:
    # as a local user whose address a login owns (reject_sender_login_mismatch), or as
    # anyone else (the intake-access table)
    not_logged_in = b"5.7.1 <alice@test.local>: Sender address rejected: not logged in"
    log_in = b"5.7.1 <report@test.local>: Recipient address rejected: Log in to"
    for sender, expected in (("alice@test.local", (553, not_logged_in)),
                             ("carol@test.local", (550, log_in)),
                             ("x@elsewhere.example", (550, b"5.7.1 <report@test.local>: "))):
        for rcpt in ("report@test.local", "ham@test.local", "optout@test.local"):
            with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
                s.ehlo("stranger.example")
                assert s.mail(sender)[0] == 250
                code, text = s.rcpt(rcpt)
                assert code == expected[0], text
                assert text.startswith(expected[1].replace(b"report@", rcpt.split("@")[0]
                                                           .encode() + b"@")), text
    # a login may not use another login's address
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.login("bob@test.local", LOGINS["bob@test.local"])
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            s.sendmail("alice@test.local", ["report@test.local"], raw)
        [(code, text)] = refused.value.recipients.values()
        assert code == 553 and b"not owned by user bob@test.local" in text

    # alice, logged in, under three of her addresses and two +tags: one reporter
    for n, sender in enumerate(("m1@test.local", "m2@test.local", "m3@test.local",
                                "alice+1@test.local", "Alice+2@test.local")):
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.login("alice@test.local", LOGINS["alice@test.local"])
            s.sendmail(sender, ["report@test.local"], _variant(raw, n) if n % 2 else raw)
    complaints = _wait(lambda: len(intake.complaints()) == 3 and intake.complaints(),
                       timeout=30, what="alice's three distinct reports in the stream")
    assert {c.reporter for c in complaints} == {"alice@test.local"}
    # the duplicates were acknowledged too, so nothing bounced and nothing waits
    _wait(lambda: not pf.queue(), timeout=30, what="an empty queue")
    assert "status=bounced" not in pf.maillog()


def test_report_forged_past_postfix_is_refused_by_intake(
    start_intake: Callable[..., RunningIntake], postfix_instance: Any,
) -> None:
    """A Postfix with no restrictions at all (the intake addresses open to anyone): intake
    itself still refuses a report nobody logged in for, whatever the report's own
    Received fields claim, and Postfix returns it to its sender."""
    intake = start_intake(local_domains=["test.local"], require_auth=True)
    route = f"smtp:[127.0.0.1]:{intake.port}"
    pf = postfix_instance(mailbox="report@test.local", main_cf={
        "transport_maps": f"inline:{{ report@test.local={route} }}",
        "smtpd_recipient_restrictions": "permit",  # no SASL, no access map
    })
    raw = (REPORTS / "gmail-attached.eml").read_bytes()  # claims "Authenticated sender"
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.sendmail("alice@test.local", ["report@test.local"], raw)
    log = _wait(lambda: "status=bounced" in pf.maillog() and pf.maillog(), timeout=30,
                what="the bounce in the maillog")
    assert "5.7.1 Reports are accepted only from users logged in" in log
    assert intake.complaints() == []
