"""spamwarden milter behind a real, private Postfix, with a real DNS server answering SPF,
DKIM and DMARC for the test domains (see conftest.py), and swaks as the sending client.

Covers issue 2's integration cases: (a) a DKIM-signed, SPF-passing message from a p=reject
domain is delivered with Authentication-Results and X-Spam-* headers; (b) a forged message
from a p=reject domain is refused at SMTP time with 550 5.7.1; (c) with the milter stopped,
Postfix tempfails (milter_default_action = tempfail) and the message is neither delivered nor
lost: it is refused with 4xx, so the sender keeps it and retries, and the retry is delivered
once the milter is back; plus forged incoming Authentication-Results / X-Spam-* headers are
removed.
"""

from __future__ import annotations

import email
import email.policy
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from tests.support.dnszone import UnboundServer
from tests.support.messages import make_message
from tests.support.milterproc import MilterProcess
from tests.support.net import wait_until
from tests.support.postfix import PostfixInstance
from tests.support.replies import MILTER_REJECT, POSTFIX_MILTER_UNAVAILABLE
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

RCPT = "user@test.local"
AUTHSERV_ID = "mx.test"


def parse(path: Path) -> Message:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)


def find_delivered(postfix: PostfixInstance, msgid: str) -> list[Message]:
    """The delivered messages carrying this Message-ID."""
    found = []
    for path in postfix.delivered():
        msg = parse(path)
        if (msg.get("Message-ID") or "").strip() == msgid:
            found.append(msg)
    return found


def wait_delivered(postfix: PostfixInstance, msgid: str, *, timeout: float = 15) -> Message:
    """Wait for the one delivered copy of a message; fail with the maillog tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find_delivered(postfix, msgid)
        if found:
            assert len(found) == 1, f"{msgid} delivered {len(found)} times"
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"{msgid} not delivered in {timeout}s; maillog:\n{postfix.maillog()[-3000:]}")


def assert_queue_drains(postfix: PostfixInstance, *, timeout: float = 5) -> None:
    """The queue empties: a message Postfix had taken would stay there (deferred) instead.

    (Entries of messages just delivered by earlier tests may linger for a few ms.)
    """
    deadline = time.monotonic() + timeout
    while (queued := postfix.queue()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queued == [], queued


def unfold(value: str) -> str:
    return " ".join(value.split())


# ---- the fixtures themselves (no milter) ----------------------------------------------------


def test_two_private_postfix_instances_deliver_to_their_own_maildirs(postfix_instance) -> None:
    first = postfix_instance()
    second = postfix_instance()
    assert first.queue_dir != second.queue_dir and first.port != second.port
    for pf in (first, second):
        msg, msgid = make_message(from_addr="alice@good.test", subject=f"to {pf.port}")
        result = swaks(pf.port, mail_from="alice@good.test", rcpt_to=RCPT, data=msg)
        assert result.returncode == 0, result.transcript
        assert result.queue_id is not None
        delivered = wait_delivered(pf, msgid)
        assert delivered["Subject"] == f"to {pf.port}"
        assert f"{result.queue_id}: to=<{RCPT}>" in pf.wait_for_log("status=sent")
    # Each Maildir holds only its own message.
    assert first.delivered_count() == 1 and second.delivered_count() == 1


def test_dns_server_answers_the_test_zone(dns_server: UnboundServer, auth_zone) -> None:
    assert dns_server.dig("good.test", "TXT") == '"v=spf1 ip4:127.0.0.1 -all"'
    assert dns_server.dig("_dmarc.bank.test", "TXT") == '"v=DMARC1; p=reject"'
    assert dns_server.dig("mail.good.test", "A") == "127.0.0.1"
    key = dns_server.dig("sel1._domainkey.good.test", "TXT").replace('" "', "").strip('"')
    assert key == auth_zone.good_rsa.record
    full = dns_server.dig("nothing.good.test", "TXT", short=False)
    assert "status: NXDOMAIN" in full


# ---- spamwarden milter behind Postfix -------------------------------------------------------


@dataclass
class MailExchanger:
    """Postfix with two listeners: "milter" (the running spamwarden milter) and "spare",
    whose milter the tempfail test starts and stops."""

    postfix: PostfixInstance
    milter: MilterProcess
    spare: MilterProcess

    @property
    def port(self) -> int:
        return self.postfix.smtp["milter"].port


@pytest.fixture(scope="module")
def mx(postfix_instance_module, dns_server, module_redis_url,
       spamwarden_milter_module) -> MailExchanger:
    milter = spamwarden_milter_module(nameservers=[dns_server.address],
                                      redis_url=module_redis_url, authserv_id=AUTHSERV_ID)
    spare = spamwarden_milter_module(nameservers=[dns_server.address],
                                     redis_url=module_redis_url, authserv_id=AUTHSERV_ID,
                                     start=False)
    postfix = postfix_instance_module(listeners={"milter": milter.postfix_socket,
                                                 "spare": spare.postfix_socket})
    return MailExchanger(postfix, milter, spare)


def test_signed_message_passing_spf_dkim_dmarc_is_delivered_with_headers(mx, auth_zone) -> None:
    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Meeting minutes")
    signed = auth_zone.good_rsa.sign(raw)
    result = swaks(mx.port, mail_from="alice@good.test", rcpt_to=RCPT, data=signed,
                   helo="client.test")
    assert result.returncode == 0, result.transcript
    assert result.queue_id is not None

    msg = wait_delivered(mx.postfix, msgid)
    ours = [unfold(v) for v in msg.get_all("Authentication-Results", [])
            if unfold(v).startswith(AUTHSERV_ID + ";")]
    assert len(ours) == 1, msg.get_all("Authentication-Results")
    results = ours[0]
    assert "spf=pass" in results and "smtp.mailfrom=alice@good.test" in results
    assert "dkim=pass" in results and "header.d=good.test" in results
    assert "dmarc=pass" in results and "header.from=good.test" in results
    status = unfold(msg["X-Spam-Status"] or "")
    assert status.startswith("No, score="), msg.items()
    assert "required=" in status and "tests=" in status
    assert msg["X-Spam-Score"] is not None
    assert msg["X-Spam-Flag"] is None


def test_forged_message_from_reject_domain_is_refused_at_smtp_time(mx) -> None:
    raw, msgid = make_message(from_addr="Bank Security <security@bank.test>",
                              subject="Verify your account")
    before = mx.postfix.delivered_count()
    result = swaks(mx.port, mail_from="security@bank.test", rcpt_to=RCPT, data=raw,
                   helo="client.test")
    assert result.returncode != 0, result.transcript
    assert result.queue_id is None
    assert any(e.startswith(MILTER_REJECT.line) for e in result.errors), result.transcript
    # Refused at the end of DATA: Postfix logs the milter's reject with the same text.
    log = mx.postfix.wait_for_log("milter-reject: END-OF-MESSAGE")
    rejects = [line for line in log.splitlines()
               if "milter-reject: END-OF-MESSAGE" in line and "from=<security@bank.test>" in line]
    assert len(rejects) == 1 and ": 5.7.1 " in rejects[0], rejects
    assert find_delivered(mx.postfix, msgid) == []
    assert mx.postfix.delivered_count() == before
    assert_queue_drains(mx.postfix)


def test_forged_incoming_authentication_results_and_spam_headers_are_removed(
        mx, auth_zone) -> None:
    raw, msgid = make_message(from_addr="alice@good.test", subject="Forwarded note")
    signed = auth_zone.good_ed25519.sign(raw)
    # Added after signing, as a relay on the way could: not covered by the signature.
    forged = (f"Authentication-Results: {AUTHSERV_ID}; spf=pass smtp.mailfrom=bank.test;"
              " dkim=pass header.d=bank.test; dmarc=pass header.from=bank.test\r\n"
              "Authentication-Results: relay.example.org; spf=pass smtp.mailfrom=good.test\r\n"
              "X-Spam-Status: No, score=-100.0 required=5.0 tests=FORGED\r\n"
              "X-Spam-Flag: NO\r\n").encode()
    result = swaks(mx.port, mail_from="alice@good.test", rcpt_to=RCPT, data=forged + signed,
                   helo="client.test")
    assert result.returncode == 0, result.transcript

    msg = wait_delivered(mx.postfix, msgid)
    all_results = [unfold(v) for v in msg.get_all("Authentication-Results", [])]
    ours = [v for v in all_results if v.startswith(AUTHSERV_ID + ";")]
    assert len(ours) == 1, all_results
    assert "bank.test" not in ours[0]
    assert "dkim=pass" in ours[0] and "header.d=good.test" in ours[0]
    # Results from other hosts are not ours to remove.
    assert any(v.startswith("relay.example.org;") for v in all_results), all_results
    statuses = [unfold(v) for v in msg.get_all("X-Spam-Status", [])]
    assert len(statuses) == 1 and "FORGED" not in statuses[0], statuses
    assert msg.get_all("X-Spam-Flag", []) in ([], ["YES"])


def send_expecting_tempfail(mx: MailExchanger, listener: int, raw: bytes, msgid: str) -> None:
    """With the milter down, milter_default_action = tempfail refuses the message with
    451 4.7.1 before DATA: it stays with the sender, which retries; Postfix neither queues
    nor delivers it."""
    before = mx.postfix.delivered_count()
    marker = "milter-reject: MAIL from"
    rejects_before = mx.postfix.maillog().count(marker)
    result = swaks(listener, mail_from="alice@good.test", rcpt_to=RCPT, data=raw,
                   helo="client.test")
    assert result.returncode != 0, result.transcript
    assert result.queue_id is None
    assert any(e.startswith(POSTFIX_MILTER_UNAVAILABLE.line) for e in result.errors), result.transcript
    assert " -> DATA" not in result.transcript
    assert_queue_drains(mx.postfix)
    wait_until(lambda: mx.postfix.maillog().count(marker) > rejects_before, timeout=10,
               what="Postfix logging the milter tempfail")
    line = [x for x in mx.postfix.maillog().splitlines() if marker in x][-1]
    assert f"{POSTFIX_MILTER_UNAVAILABLE.line} Service unavailable" in line and "from=<alice@good.test>" in line, line
    assert mx.postfix.delivered_count() == before
    assert find_delivered(mx.postfix, msgid) == []


def test_milter_stopped_postfix_tempfails_and_the_retry_is_delivered(mx) -> None:
    listener = mx.postfix.smtp["spare"].port
    raw, msgid = make_message(from_addr="alice@good.test", subject="Sent while milter is down")
    assert not mx.spare.running()
    send_expecting_tempfail(mx, listener, raw, msgid)

    # The sender's retry, once the milter is up on that socket, is delivered once.
    mx.spare.start()
    retry = swaks(listener, mail_from="alice@good.test", rcpt_to=RCPT, data=raw,
                  helo="client.test")
    assert retry.returncode == 0, retry.transcript + mx.spare.log()[-2000:]
    delivered = wait_delivered(mx.postfix, msgid)
    assert delivered["X-Spam-Status"] is not None

    # Stopped again (SIGTERM): its socket closes, and Postfix tempfails once more.
    mx.spare.stop()
    mx.spare.wait_port_closed()
    later, later_id = make_message(from_addr="alice@good.test", subject="After the stop")
    send_expecting_tempfail(mx, listener, later, later_id)


def test_forged_headers_hidden_by_nesting_or_padding_never_reach_the_mailbox(
        mx, auth_zone) -> None:
    raw, msgid = make_message(from_addr="alice@good.test", subject="Nested comment")
    signed = auth_zone.good_ed25519.sign(raw)
    forged = (f"Authentication-Results: (a (b) c) {AUTHSERV_ID}; dmarc=pass"
              " header.from=bank.test\r\n").encode()
    result = swaks(mx.port, mail_from="alice@good.test", rcpt_to=RCPT, data=forged + signed,
                   helo="client.test")
    assert result.returncode == 0, result.transcript
    msg = wait_delivered(mx.postfix, msgid)
    all_results = [unfold(v) for v in msg.get_all("Authentication-Results", [])]
    assert not any("bank.test" in v for v in all_results), all_results

    raw, msgid = make_message(from_addr="alice@good.test", subject="Padded")
    padding = b"".join(b"X-Spam-Pad: %d\r\n" % i for i in range(1000))
    forged = (f"X-Spam-Flag: NO\r\nAuthentication-Results: {AUTHSERV_ID}; dmarc=pass"
              " header.from=bank.test\r\n").encode()
    result = swaks(mx.port, mail_from="alice@good.test", rcpt_to=RCPT,
                   data=padding + forged + raw, helo="client.test")
    assert result.returncode != 0, result.transcript
    assert any(e.startswith("550 5.7.1") for e in result.errors), result.transcript
    assert find_delivered(mx.postfix, msgid) == []


# ---- message history: every verdict, found by its queue id ----------------------------------


def _history_cli(tmp_path: Path, redis_url: str, *args: str) -> list[dict[str, object]]:
    import json
    import os
    import subprocess
    import sys

    cfg = tmp_path / "history.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path}"\n[redis]\nurl = "{redis_url}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SPAMWARDEN_REDIS_URL",
                                                            "SPAMWARDEN_CONFIG")}
    res = subprocess.run([sys.executable, "-m", "spamwarden", "history", *args, "--json",
                          "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                         env=env, check=False)
    assert res.returncode in (0, 1), res.stderr
    rows: list[dict[str, object]] = json.loads(res.stdout)
    return rows


def _history_api(redis_url: str, query: str, headers: dict[str, str]) -> tuple[int, object]:
    import asyncio

    import redis.asyncio
    from aiohttp import test_utils

    from spamwarden.api.app import build_app
    from spamwarden.api.history import history_module
    from spamwarden.config import config_from_mapping
    from spamwarden.reputation.store import AsyncListingStore

    cfg = config_from_mapping({"api": {"operator_tokens": ["history-token-0123456789"]}})

    async def main() -> tuple[int, object]:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        client = test_utils.TestClient(test_utils.TestServer(
            build_app(cfg, store, modules=[history_module])))
        await client.start_server()
        try:
            r = await client.get(f"/v1/history?{query}", headers=headers)
            return r.status, await r.json()
        finally:
            await client.close()
            await store.aclose()

    return asyncio.run(main())


def test_history_finds_delivered_and_rejected_messages_by_queue_id(
        mx, auth_zone, module_redis_url, tmp_path) -> None:
    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="History please")
    result = swaks(mx.port, mail_from="alice@good.test", rcpt_to=RCPT,
                   data=auth_zone.good_rsa.sign(raw), helo="client.test")
    assert result.returncode == 0, result.transcript
    qid = result.queue_id
    assert qid
    wait_delivered(mx.postfix, msgid)
    rows: list[dict[str, object]] = []

    def found() -> bool:
        rows[:] = _history_cli(tmp_path, module_redis_url, "--queue-id", qid)
        return bool(rows)

    wait_until(found, timeout=15, what="the verdict in the message history")
    [e] = rows
    assert e["queue_id"] == qid and e["action"] == "accept"
    assert e["from"] == "alice@good.test" and e["rcpt"] == [RCPT]
    assert e["header_from"] == "alice@good.test" and e["subject"] == "History please"
    assert e["client_ip"] == "127.0.0.1" and isinstance(e["score"], float)
    assert isinstance(e["symbols"], list)
    auth = e["auth"]
    assert isinstance(auth, dict) and auth["dmarc"]["result"] == "pass"  # type: ignore[index]

    # refused at SMTP time: recorded too, with the queue id Postfix logged for it
    forged, _ = make_message(from_addr="Bank <security@bank.test>", subject="Verify now")
    before = mx.postfix.maillog().count("milter-reject: END-OF-MESSAGE")
    result = swaks(mx.port, mail_from="security@bank.test", rcpt_to=RCPT, data=forged,
                   helo="client.test")
    assert result.returncode != 0
    wait_until(lambda: mx.postfix.maillog().count("milter-reject: END-OF-MESSAGE") > before,
               timeout=10, what="the reject in the maillog")
    line = [x for x in mx.postfix.maillog().splitlines()
            if "milter-reject: END-OF-MESSAGE" in x and "security@bank.test" in x][-1]
    import re

    rqid = re.search(r" ([0-9A-F]{6,}): milter-reject", line)
    assert rqid, line
    wait_until(lambda: bool(_history_cli(tmp_path, module_redis_url, "--queue-id",
                                         rqid.group(1))), timeout=15, what="the reject recorded")
    status, body = _history_api(module_redis_url, f"queue_id={rqid.group(1)}",
                                {"Authorization": "Bearer history-token-0123456789"})
    assert status == 200, body
    [r] = body["messages"]  # type: ignore[index]
    assert r["action"] == "reject" and r["from"] == "security@bank.test"
    assert any(s["name"].startswith("DMARC") for s in r["symbols"]), r["symbols"]
    # newest first, filtered by action and recipient
    status, body = _history_api(module_redis_url, f"rcpt={RCPT.upper()}&limit=2",
                                {"Authorization": "Bearer history-token-0123456789"})
    assert [m["queue_id"] for m in body["messages"]][:2] == [rqid.group(1), qid]  # type: ignore[index]
    newest_reject = _history_cli(tmp_path, module_redis_url, "--action", "reject", "--limit", "1")
    assert [x["queue_id"] for x in newest_reject] == [rqid.group(1)]
    # operators only
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        assert _history_api(module_redis_url, "", headers)[0] == 401
