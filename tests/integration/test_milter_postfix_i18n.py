"""The milter's reply in Vietnamese behind a real, private Postfix (i18n.language = "vi").

A forged message from a p=reject domain (the DNS of conftest.py) is refused at the end of
DATA: the client sees the same code and enhanced status code as in English, and the text
in Vietnamese without diacritics, byte for byte as the milter sent it: Postfix passed it
on, so no byte of it was refused on the way.
"""

from __future__ import annotations

import pytest

from tests.support.messages import make_message
from tests.support.replies import MILTER_REJECT
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

RCPT = "user@test.local"
LOOKUP = "https://bl.example.net/lookup/"


def test_forged_message_is_refused_with_the_vietnamese_text(
        postfix_instance, dns_server, redis_url, spamwarden_milter) -> None:
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=redis_url,
                               overrides={"i18n": {"language": "vi"},
                                          "milter": {"lookup_url": LOOKUP}})
    postfix = postfix_instance(listeners={"vi": milter.postfix_socket})
    raw, _ = make_message(from_addr="Bank Security <security@bank.test>",
                          subject="Verify your account")
    result = swaks(postfix.smtp["vi"].port, mail_from="security@bank.test", rcpt_to=RCPT,
                   data=raw, helo="client.test")
    assert result.returncode != 0 and result.queue_id is None, result.transcript
    expected = (f"{MILTER_REJECT.line} Thu cua ban bi tu choi vi bi xac dinh la thu rac: "
                "thu khong dat DMARC va chinh sach DMARC cua bank.test la tu choi "
                f"(DMARC_REJECT); xem chi tiet tai {LOOKUP}")
    assert expected in result.errors, result.transcript
    # Postfix logs the milter's reject with the same text
    log = postfix.wait_for_log("milter-reject: END-OF-MESSAGE")
    [line] = [ln for ln in log.splitlines()
              if "milter-reject: END-OF-MESSAGE" in ln and "from=<security@bank.test>" in ln]
    assert expected.split(" ", 1)[1] in line, line
