"""Per-recipient thresholds through real Postfix: the 452 4.5.3 split at RCPT.

A sending Postfix ("relay", no milter) relays one message for three recipients of the
receiving Postfix ("mx", with the spamwarden milter and a real Redis):

* ``lax@test.local``    - [policy]'s thresholds: the message is accepted;
* ``strict@test.local`` - tag_threshold -100: the message is tagged;
* ``block@test.local``  - reject_threshold -100: the message is refused.

The milter answers 452 4.5.3 to every recipient whose thresholds differ from the first
recipient's; the relay defers those and sends them again in a new transaction (flushed
here rather than waiting for its queue run), so the message goes out in three
transactions, each with its own verdict, and the relay's log shows each outcome. The relay's bounce for the refused
recipient is discarded (transport_maps), so nothing leaves the test.
"""

from __future__ import annotations

import email
import email.policy
import time
from email.message import Message

import pytest
import redis

from spamwarden.settings.model import Overrides
from spamwarden.settings.store import SettingsStore
from tests.support.messages import make_message
from tests.support.postfix import PostfixInstance
from tests.support.replies import MILTER_REJECT, SETTINGS_SPLIT
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

MAILBOXES = ("lax", "strict", "block")


def maildir_messages(pf: PostfixInstance, local: str) -> list[Message]:
    out = []
    for sub in ("new", "cur"):
        d = pf.mail_base / local / sub
        if d.is_dir():
            out += [email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
                    for p in sorted(d.iterdir()) if p.is_file()]
    return out


def log_lines(pf: PostfixInstance, text: str) -> list[str]:
    return [line for line in pf.maillog().splitlines() if text in line]


def test_recipients_with_different_thresholds_get_their_own_verdicts(
        postfix_instance, dns_server, auth_zone, redis_url, spamwarden_milter) -> None:
    client = redis.Redis.from_url(redis_url)
    store = SettingsStore(client)
    store.put_setting("strict@test.local", Overrides(tag_threshold=-100.0,
                                                     quarantine_threshold=900.0,
                                                     reject_threshold=900.0))
    store.put_setting("block@test.local", Overrides(tag_threshold=-100.0,
                                                    quarantine_threshold=-100.0,
                                                    reject_threshold=-100.0))
    client.close()
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=redis_url,
                               overrides={"settings": {"refresh": "1s"}})
    boxes = ", ".join(f"{m}@test.local={m}/" for m in MAILBOXES)
    mx = postfix_instance(listeners={"milter": milter.postfix_socket},
                          mailbox="lax@test.local",
                          main_cf={"virtual_mailbox_maps": f"inline:{{ {boxes} }}"})
    relay = postfix_instance(
        mailbox="postmaster@relay.local",
        main_cf={"myhostname": "relay.test.local",
                 "relayhost": f"[127.0.0.1]:{mx.smtp['milter'].port}",
                 # the bounce for block@ goes nowhere
                 "transport_maps": "inline:{ good.test=discard: }"})

    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Quarterly figures")
    signed = auth_zone.good_rsa.sign(raw)
    rcpts = ",".join(f"{m}@test.local" for m in MAILBOXES)
    sent = swaks(relay.port, mail_from="alice@good.test", rcpt_to=rcpts, data=signed)
    assert sent.returncode == 0, sent.transcript

    # The relay retries the deferred recipients; flush so the test need not wait for
    # its queue run.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = {m: bool(log_lines(relay, f"to=<{m}@test.local>") and any(
            "status=sent" in x or "status=bounced" in x
            for x in log_lines(relay, f"to=<{m}@test.local>"))) for m in MAILBOXES}
        if all(done.values()):
            break
        relay.flush()
        time.sleep(0.5)
    else:
        pytest.fail(f"not every recipient was handled: {done}\nrelay log:\n"
                    f"{relay.maillog()[-4000:]}\nmx log:\n{mx.maillog()[-4000:]}")

    # Postfix's queue manager sorts recipients: block@ opens the first transaction, lax@
    # and strict@ get 452 4.5.3; lax@ opens the second, strict@ gets 452 4.5.3 again.
    split = [x for x in log_lines(relay, "status=deferred")
             if f"said: {SETTINGS_SPLIT.line} " in x]
    assert [m for x in split for m in MAILBOXES if f"to=<{m}@test.local>" in x] == [
        "lax", "strict", "strict"], relay.maillog()[-4000:]

    (lax,) = maildir_messages(mx, "lax")
    assert lax["Message-ID"].strip() == msgid
    assert lax["X-Spam-Flag"] is None
    assert " ".join(lax["X-Spam-Status"].split()).startswith("No, "), lax.items()
    assert "required=5.0" in lax["X-Spam-Status"]

    (strict,) = maildir_messages(mx, "strict")
    assert strict["Message-ID"].strip() == msgid
    assert strict["X-Spam-Flag"] == "YES"
    assert "required=-100.0" in strict["X-Spam-Status"]

    assert maildir_messages(mx, "block") == []
    bounced = [x for x in log_lines(relay, "to=<block@test.local>") if "status=bounced" in x]
    assert len(bounced) == 1 and f"said: {MILTER_REJECT.line} " in bounced[0], bounced
    # one delivery per mailbox: the split never duplicated the message
    assert len([x for x in log_lines(relay, "status=sent")
                if "relay=127.0.0.1" in x]) == 2
