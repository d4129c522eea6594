"""The advertising rules end to end: a real Postfix with `spamwarden milter`, a real Redis,
a real DNS server (SPF, DKIM, DMARC for good.test), `spamwarden api`, `spamwarden intake`
and `spamwarden worker` as processes, and the consent CLI.

The advertiser "shop" owns good.test (SPF allows 127.0.0.1; DKIM key sel1). Recipients
a@, b@, c@test.local; a and c consented, b did not.

1. a labelled, signed ad to a and b: a gets it, b is refused at RCPT (550 5.7.1 no consent);
2. three ads reach a within 24 h, the fourth is refused at RCPT; when a day has passed
   (the counter entries are aged by 24 h) the next one passes;
3. a's one-click unsubscribe (a real HTTP POST to the running API): the next ad is refused;
   a forged token is refused (403) and records nothing;
4. an unlabelled ad from the advertiser is refused at end of data naming AD_UNLABELLED;
   an ad whose List-Unsubscribe is not DKIM-signed is delivered with AD_UNSIGNED_UNSUBSCRIBE;
5. c reports an ad to report@ (intake → complaint stream → worker): that is c's refusal of
   shop, and the next ad to c is refused at RCPT.
6. "softshop" owns soft.test, whose SPF passes nobody: its ads, which anyone could have
   sent, get the same 250 for a recipient who consented and one who did not; the first
   is delivered, the second held in Postfix's hold queue.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import redis

from spamwarden.consent.registry import RedisConsentRegistry, sent_key
from spamwarden.reputation.deliveries import message_id_hash, message_key
from tests.support.messages import make_message, status_tests
from tests.support.milterproc import MilterProcess, spamwarden_command, write_toml
from tests.support.net import free_port, wait_until
from tests.support.replies import CONSENT_REFUSED

pytestmark = pytest.mark.integration

A, B, C = "a@test.local", "b@test.local", "c@test.local"
SENDER = "news@good.test"
KEY = "an-hmac-key-for-the-tests-0123456789"
AD_BODY = ("Hello,\r\n\r\nOur autumn catalogue is out: new notebooks and pens.\r\n\r\n"
           "Regards,\r\nThe shop\r\n")


class Setup:
    """Everything the scenario needs, started once for the module."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    postfix: Any
    config: Path
    api_port: int
    intake_port: int
    registry: RedisConsentRegistry
    client: redis.Redis
    sign: Any
    base: Path


def cli(setup: Setup, *args: str) -> str:
    done = subprocess.run([*spamwarden_command(), *args, "--config", str(setup.config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"spamwarden {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def setup(dns_server: Any, auth_zone: Any, module_redis_url: str,
          spamwarden_milter_module: Any, postfix_instance_module: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("consent-e2e")
    api_port, intake_port = free_port(), free_port()
    consent = {"token_key": KEY, "unsubscribe_base_url": f"http://127.0.0.1:{api_port}/u/"}
    sections: dict[str, dict[str, object]] = {
        "service": {"state_dir": str(base / "state")},
        "redis": {"url": module_redis_url},
        "dns": {"nameservers": [dns_server.address], "timeout": "1s"},
        "api": {"listen": f"127.0.0.1:{api_port}", "public_url": f"http://127.0.0.1:{api_port}",
                "operator_tokens": ["op-token-0123456789"]},
        "intake": {"listen": f"127.0.0.1:{intake_port}", "local_domains": ["test.local"]},
        "consent": consent,
    }
    config = write_toml(base / "spamwarden.toml", sections)
    milter = spamwarden_milter_module(
        nameservers=[dns_server.address], redis_url=module_redis_url,
        overrides={"consent": consent, "api": sections["api"]})
    maps = "inline:{ a@test.local=a/, b@test.local=b/, c@test.local=c/ }"
    postfix = postfix_instance_module(listeners={"smtp": milter.postfix_socket},
                                      main_cf={"virtual_mailbox_maps": maps},
                                      mailbox=A)
    procs = []
    for name, args, port in (("api", ["api"], api_port), ("intake", ["intake"], intake_port)):
        proc = MilterProcess(argv=[*spamwarden_command(), *args, "--config", str(config)],
                             port=port, log_path=base / f"{name}.log")
        proc.start()
        procs.append(proc)
    worker_log = open(base / "worker.log", "ab")
    worker = subprocess.Popen([*spamwarden_command(), "worker", "--config", str(config)],
                              stdout=worker_log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis.from_url(module_redis_url)
    s = Setup(postfix=postfix, config=config, api_port=api_port, intake_port=intake_port,
              registry=RedisConsentRegistry(client, delimiters="+"), client=client,
              sign=auth_zone.good_rsa.sign, base=base)
    try:
        out = cli(s, "advertiser", "add", "shop", "--name", "Shop", "--domain", "good.test")
        assert "good.test" in out
        cli(s, "consent", "add", "shop", A, "--method", "form", "--evidence", "form #1")
        cli(s, "consent", "add", "shop", C, "--method", "app")
        # an advertiser whose domain's SPF vouches for nobody ("?all"): its envelope is
        # anyone's to write, as a forger's would be
        cli(s, "advertiser", "add", "softshop", "--name", "Soft", "--domain", "soft.test")
        cli(s, "consent", "add", "softshop", A, "--method", "form")
        yield s
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        worker_log.close()
        for proc in procs:
            proc.stop()
        client.close()


def ad(setup: Setup, rcpt: str, *, subject: str = "[QC] Autumn catalogue",
       unsubscribe_for: str | None = None, signed_unsubscribe: bool = True,
       unsubscribe: bool = True) -> tuple[bytes, str]:
    """A DKIM-signed ad from the advertiser with its one-click headers."""
    extra: tuple[tuple[str, str], ...] = ()
    if unsubscribe:
        url = cli(setup, "unsubscribe-url", "shop", unsubscribe_for or rcpt).strip()
        extra = (("List-Unsubscribe", f"<{url}>"),
                 ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    raw, msgid = make_message(from_addr=f"Shop <{SENDER}>", subject=subject, rcpt=rcpt,
                              body=AD_BODY, extra_headers=extra)
    headers = [b"from", b"to", b"subject", b"date", b"message-id"]
    if unsubscribe and signed_unsubscribe:
        headers += [b"list-unsubscribe", b"list-unsubscribe-post"]
    return setup.sign(raw, headers=tuple(headers)), msgid


def send(setup: Setup, raw: bytes, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    """SMTP to Postfix; the recipients refused (all refused raises SMTPRecipientsRefused)."""
    with smtplib.SMTP("127.0.0.1", setup.postfix.port, local_hostname="client.test",
                      timeout=60) as smtp:
        return smtp.sendmail(SENDER, rcpts, raw)


def delivered(setup: Setup, rcpt: str, msgid: str, *, timeout: float = 20) -> Message:
    maildir = setup.postfix.mail_base / rcpt.split("@")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sub in ("new", "cur"):
            for path in (maildir / sub).glob("*") if (maildir / sub).exists() else ():
                msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
                if (msg.get("Message-ID") or "").strip() == msgid:
                    return msg
        time.sleep(0.05)
    pytest.fail(f"{msgid} not delivered to {rcpt}; maillog:\n{setup.postfix.maillog()[-3000:]}")


def symbols_of(msg: Message) -> set[str]:
    status = " ".join(str(msg.get("X-Spam-Status", "")).split())
    assert "tests=" in status, status
    return set(status_tests(status))


def refused_at_rcpt(setup: Setup, raw: bytes, rcpt: str) -> str:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(setup, raw, [rcpt])
    code, text = info.value.recipients[rcpt]
    assert CONSENT_REFUSED.matches(code, text), (code, text)
    reply = text.decode()
    return reply


def post(url: str) -> int:
    req = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def age_counters(setup: Setup, rcpt: str, seconds: float) -> None:
    """Move every counted send of shop -> rcpt back in time: as if `seconds` had passed."""
    key = sent_key("shop", rcpt)
    entries = setup.client.zrange(key, 0, -1, withscores=True)
    assert entries
    setup.client.zadd(key, {member: score - seconds for member, score in entries})


def test_consent_at_rcpt_time(setup: Setup) -> None:
    raw, msgid = ad(setup, A)
    refused = send(setup, raw, [A, B])
    assert set(refused) == {B}
    code, text = refused[B]
    assert CONSENT_REFUSED.matches(code, text) and b"no prior consent" in text
    assert b"/v1/advertisers/shop/recipients/b@test.local" in text
    msg = delivered(setup, A, msgid)
    assert "AD_LABELLED" in symbols_of(msg)
    assert not (setup.postfix.mail_base / "b" / "new").exists() or not any(
        (setup.postfix.mail_base / "b" / "new").iterdir())


def test_daily_cap_and_the_next_day(setup: Setup) -> None:
    # Earlier tests delivered ads to a already, and the milter counts a send after its
    # reply, so the first reading may miss the last of them. The milter writes its
    # counts in order: once this test's own send is counted, every earlier one is.
    def counted() -> int:
        return setup.registry.sent_in_window("shop", A, now=time.time())

    for _ in range(3):
        before = counted()
        if before >= 3:
            break
        raw, msgid = ad(setup, A)
        assert send(setup, raw, [A]) == {}
        delivered(setup, A, msgid)
        wait_until(lambda b=before: counted() > b, timeout=10, what="the send counted")
    assert counted() == 3
    raw, _ = ad(setup, A)
    reply = refused_at_rcpt(setup, raw, A)
    assert "24 hours" in reply and "limit is 3" in reply
    age_counters(setup, A, 86400)
    raw, msgid = ad(setup, A)
    assert send(setup, raw, [A]) == {}
    delivered(setup, A, msgid)


def test_forged_token_changes_nothing(setup: Setup) -> None:
    url = cli(setup, "unsubscribe-url", "shop", A).strip()
    token = url.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    other = cli(setup, "unsubscribe-url", "shop", C).strip().rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0]
    for bad in (f"{other.split('.')[0]}.{mac}", f"{payload}.{mac[::-1]}", "forged.token"):
        assert post(f"{base}/{bad}") == 403
    assert setup.registry.refusal(A, adv="shop") is None
    assert setup.registry.refusal(C, adv="shop") is None


def test_one_click_unsubscribe_stops_the_next_ad(setup: Setup) -> None:
    age_counters(setup, A, 86400)  # the cap is not what refuses below
    raw, msgid = ad(setup, A)
    assert send(setup, raw, [A]) == {}
    msg = delivered(setup, A, msgid)
    url = str(msg["List-Unsubscribe"]).strip("<> ")
    assert url.startswith(f"http://127.0.0.1:{setup.api_port}/u/")
    assert post(url) == 200
    raw, _ = ad(setup, A)
    reply = refused_at_rcpt(setup, raw, A)
    assert "refused advertising from shop" in reply


def test_unlabelled_ad_is_refused_naming_the_rule(setup: Setup) -> None:
    raw, _ = ad(setup, C, subject="Autumn catalogue")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(setup, raw, [C])
    assert info.value.smtp_code == 550
    assert b"AD_UNLABELLED" in info.value.smtp_error


def test_unsigned_unsubscribe_gets_its_symbol(setup: Setup) -> None:
    raw, msgid = ad(setup, C, signed_unsubscribe=False)
    assert send(setup, raw, [C]) == {}
    names = symbols_of(delivered(setup, C, msgid))
    assert {"AD_LABELLED", "AD_UNSIGNED_UNSUBSCRIBE"} <= names
    assert "AD_NO_UNSUBSCRIBE" not in names


def test_ad_without_refusal_function_is_refused(setup: Setup) -> None:
    raw, _ = ad(setup, C, unsubscribe=False)
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(setup, raw, [C])
    assert info.value.smtp_code == 550 and b"AD_NO_UNSUBSCRIBE" in info.value.smtp_error


def _submitted_by(login: str) -> bytes:
    """The Received field our Postfix adds to a submission by ``login`` (SASL)."""
    return (b"Received: from [127.0.0.1] (unknown [127.0.0.1])\r\n\t(Authenticated sender: "
            + login.encode() + b")\r\n\tby mx.test.local (Postfix) with ESMTPA id 4AbC\r\n")


def test_complaint_about_an_ad_is_a_refusal(setup: Setup) -> None:
    raw, msgid = ad(setup, C)
    assert send(setup, raw, [C]) == {}
    original = delivered(setup, C, msgid).as_bytes()
    # The milter writes its delivery record in a batch after its reply, which can land
    # after the Maildir file; a person reports later than that, and so does this test.
    ledger = message_key(message_id_hash(msgid), C)
    wait_until(lambda: setup.client.exists(ledger), timeout=20,
               what="the milter's delivery record of the ad")
    report = _submitted_by(C) + (
        b"From: c@test.local\r\nTo: report@test.local\r\nSubject: spam\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=RB\r\n\r\n"
        b"--RB\r\nContent-Type: text/plain\r\n\r\nI never asked for this.\r\n"
        b"--RB\r\nContent-Type: message/rfc822\r\n\r\n" + original.replace(b"\n", b"\r\n")
        .replace(b"\r\r\n", b"\r\n") + b"\r\n--RB--\r\n"
    )
    with smtplib.SMTP("127.0.0.1", setup.intake_port, timeout=30) as smtp:
        assert smtp.sendmail(C, ["report@test.local"], report) == {}
    wait_until(lambda: setup.registry.refusal(C, adv="shop") is not None, timeout=20,
               what="the worker recording c's refusal")
    rec = setup.registry.refusal(C, adv="shop")
    assert rec is not None and rec.channel == "complaint"
    raw, _ = ad(setup, C)
    assert "refused advertising from shop" in refused_at_rcpt(setup, raw, C)


def test_optout_mail_to_the_running_intake(setup: Setup) -> None:
    """`spamwarden intake` serves optout@ through the consent registry: b refuses all
    advertising by mail, and a labelled ad to b is then refused as a refusal."""
    mail = b"From: b@test.local\r\nTo: optout@test.local\r\nSubject: ALL\r\n\r\nstop\r\n"
    # from a sender nobody logged in as: refused, nothing recorded
    with smtplib.SMTP("127.0.0.1", setup.intake_port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(B, ["optout@test.local"], mail)
    assert refused.value.smtp_code == 550 and b"unsubscribe link" in refused.value.smtp_error
    assert setup.registry.refusal(B) is None
    with smtplib.SMTP("127.0.0.1", setup.intake_port, timeout=30) as smtp:
        assert smtp.sendmail(B, ["optout@test.local"], _submitted_by(B) + mail) == {}
    rec = setup.registry.refusal(B)
    assert rec is not None and rec.channel == "optout-mail"
    raw, _ = ad(setup, B)
    assert "refuses all advertising" in refused_at_rcpt(setup, raw, B)


def test_an_unauthenticated_advertiser_envelope_reads_no_recipients_choice(
        setup: Setup) -> None:
    """Through Postfix: MAIL FROM a registered advertiser's domain that SPF does not
    pass (soft.test, "?all"), no aligned DKIM. A (consented) and B (did not) get the
    same answers at RCPT and end of data; A's copy is delivered, B's is held."""
    pf = setup.postfix
    sender = "news@soft.test"
    held_before = {e["queue_id"] for e in pf.queue() if e.get("queue_name") == "hold"}
    results = {}
    for rcpt in (A, B):
        raw, msgid = make_message(
            from_addr=f"Soft <{sender}>", subject="[QC] Soft sale", rcpt=rcpt, body=AD_BODY,
            extra_headers=(("List-Unsubscribe", "<https://soft.test/u/1>"),
                           ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")))
        with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test",
                          timeout=60) as smtp:
            smtp.ehlo()
            smtp.mail(sender)
            rcpt_reply = smtp.rcpt(rcpt)
            data_reply = smtp.data(raw)
        results[rcpt] = (rcpt_reply[0], data_reply[0], msgid)
    assert [r[:2] for r in results.values()] == [(250, 250), (250, 250)], results
    delivered(setup, A, results[A][2])

    def held_now() -> set[object]:
        return {e["queue_id"] for e in pf.queue()
                if e.get("queue_name") == "hold"} - held_before

    wait_until(lambda: bool(held_now()), timeout=20, what="B's copy in the hold queue")
    assert len(held_now()) == 1
    maildir = setup.postfix.mail_base / "b" / "new"
    assert not maildir.exists() or not any(
        results[B][2].encode() in f.read_bytes() for f in maildir.iterdir())
