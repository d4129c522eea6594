"""ARC through a real, private Postfix with the spamwarden milter and a real DNS server.

A message from a p=reject domain reaches us through a mailing list that tags the subject
and adds a footer (the author's DKIM breaks, DMARC fails) and seals it with ARC. With the
list trusted as a sealer (milter.arc_trusted_sealers) the message is delivered, and, as this
host seals too ([arc] sign), it leaves with our ARC set on top, which dkimpy verifies
against the key the DNS server publishes. The same modified message without the list's
seal is refused with 550 5.7.1.
"""

from __future__ import annotations

import email
import email.policy
import time
from email.message import Message
from pathlib import Path
from typing import Any

import dkim
import pytest

from spamwarden.resolver import DnsPythonResolver
from tests.support.dnszone import DnsZone
from tests.support.messages import make_message
from tests.support.postfix import PostfixInstance
from tests.support.replies import MILTER_REJECT
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

RCPT = "user@test.local"
AUTHSERV_ID = "mx.test"
LIST = "lists.test"


def wait_delivered(postfix: PostfixInstance, msgid: str, *, timeout: float = 15
                   ) -> tuple[bytes, Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in postfix.delivered():
            raw = path.read_bytes()
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            if (msg.get("Message-ID") or "").strip() == msgid:
                return raw, msg
        time.sleep(0.05)
    pytest.fail(f"{msgid} not delivered in {timeout}s; maillog:\n{postfix.maillog()[-3000:]}")


def unfold(value: str) -> str:
    return " ".join(value.split())


def list_hop(message: bytes, list_key: Any) -> tuple[bytes, bytes]:
    """(the list's modified copy, that copy sealed by the list with dmarc=pass recorded)."""
    modified = message.replace(b"Subject: minutes", b"Subject: [team] minutes")
    modified += b"-- \r\nteam mailing list\r\n"
    with_ar = (f"Authentication-Results: {LIST}; spf=pass smtp.mailfrom=alice@author.test;"
               f" dkim=pass header.d=author.test; dmarc=pass header.from=author.test;"
               f" arc=none\r\n").encode() + modified
    arc_set = dkim.arc_sign(with_ar, list_key.selector.encode(), LIST.encode(),
                            list_key.private_key, LIST.encode())
    assert len(arc_set) == 3
    return modified, b"".join(arc_set) + with_ar


@pytest.fixture
def world(tmp_path: Path, dns_server_factory, postfix_instance, spamwarden_milter,
          redis_url) -> Any:
    zone = DnsZone()
    zone.add_spf("author.test", "v=spf1 ip4:192.0.2.10 -all")
    zone.add_dmarc("author.test", "v=DMARC1; p=reject")
    author = zone.add_dkim_key("author.test", "sel1", algorithm="rsa", bits=1024)
    zone.add_spf(LIST, "v=spf1 ip4:127.0.0.1 -all")
    list_key = zone.add_dkim_key(LIST, "arc", algorithm="rsa", bits=1024)
    ours = zone.add_dkim_key("relay.test", "seal", algorithm="rsa", bits=1024)
    zone.add_a("client.test", "127.0.0.1")
    dns = dns_server_factory(zone)
    key_path = tmp_path / "arc-seal.pem"
    key_path.write_bytes(ours.private_key)
    key_path.chmod(0o644)
    milter = spamwarden_milter(
        nameservers=[dns.address], redis_url=redis_url, authserv_id=AUTHSERV_ID,
        overrides={"milter": {"arc_trusted_sealers": [LIST]},
                   "arc": {"sign": True, "selector": "seal", "domain": "relay.test",
                           "key": str(key_path)}})
    postfix = postfix_instance(listeners={"milter": milter.postfix_socket})
    return dns, author, list_key, postfix


def test_list_mail_sealed_by_a_trusted_sealer_is_delivered_and_resealed(world: Any) -> None:
    dns, author, list_key, postfix = world
    port = postfix.smtp["milter"].port
    raw, msgid = make_message(from_addr="Alice <alice@author.test>", subject="minutes",
                              rcpt=f"team@{LIST}")
    _modified, sealed = list_hop(author.sign(raw), list_key)

    result = swaks(port, mail_from=f"team-bounces@{LIST}", rcpt_to=RCPT, data=sealed,
                   helo="client.test")
    assert result.returncode == 0, result.transcript
    delivered, msg = wait_delivered(postfix, msgid)
    ours = [unfold(v) for v in msg.get_all("Authentication-Results", [])
            if unfold(v).startswith(AUTHSERV_ID + ";")]
    assert len(ours) == 1, msg.get_all("Authentication-Results")
    assert "dmarc=fail" in ours[0] and "arc=pass" in ours[0], ours[0]
    assert "smtp.remote-ip=127.0.0.1" in ours[0]
    status = unfold(msg["X-Spam-Status"] or "")
    assert "DMARC_ARC_OVERRIDE" in status and "DMARC_REJECT" not in status, status

    # Our ARC set went on top, above our Authentication-Results, and verifies.
    names = [k.lower() for k in msg
             if k.lower() not in ("return-path", "x-original-to", "delivered-to")]  # local
    assert names[:5] == ["arc-seal", "arc-message-signature", "arc-authentication-results",
                         "authentication-results", "received"], names[:8]
    assert unfold(msg["ARC-Seal"]).startswith("i=2; cv=pass;")
    resolver = DnsPythonResolver([dns.address], timeout=2.0)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        answer = resolver.query(name.decode().rstrip("."), "TXT")
        if answer.status != "ok":
            return None
        record = answer.records[0]
        return record if isinstance(record, bytes) else str(record).encode()

    cv, results, why = dkim.arc_verify(delivered, dnsfunc=dnsfunc)
    assert cv == dkim.CV_Pass, (why, results)
    assert results[0]["as-domain"] == b"relay.test"

    # The same modified message without the list's seal is refused.
    raw2, _msgid2 = make_message(from_addr="Alice <alice@author.test>", subject="minutes",
                                rcpt=f"team@{LIST}")
    unsealed, _ = list_hop(author.sign(raw2), list_key)
    result = swaks(port, mail_from=f"team-bounces@{LIST}", rcpt_to=RCPT, data=unsealed,
                   helo="client.test")
    assert result.returncode != 0, result.transcript
    assert any(e.startswith(MILTER_REJECT.line) for e in result.errors), result.transcript
    assert "DMARC" in result.transcript
