"""SpamAssassin rules from a site's local.cf, through a real Postfix and `spamwarden milter`.

`[rules] enabled = true` with `system_rules = false`: only the test's own small local.cf is
read, so the milter compiles in a moment instead of minutes. The same message is sent while
local.cf changes between milter starts: without the rule it is delivered untagged; with the
rule at a tagging score it is delivered with the rule's name in X-Spam-Status; with a
`score` line raising it past the reject threshold it is refused with 550 5.7.1.

Between starts the compiled-database cache (`rules.cache_dir`) is checked: an unchanged
local.cf reuses its file (same name, same mtime), a new pattern adds a file under a new
key (the previous one is kept), a changed `score` line alone reuses the pattern databases.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_milter_postfix import RCPT, find_delivered, unfold, wait_delivered
from tests.support.messages import make_message, status_tests
from tests.support.milterproc import MilterProcess
from tests.support.net import wait_until
from tests.support.postfix import PostfixInstance
from tests.support.replies import MILTER_REJECT
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

AUTHSERV_ID = "mx.test"
BODY = "Hello,\r\n\r\nthe zqxwv-promo offer ends tonight.\r\n"

#: A rule the test message never hits: local.cf is never empty, so the engine always has
#: a database to build and cache.
UNRELATED = ("body     LOCAL_OTHER_WORD /qqjjx-unrelated/\n"
             "score    LOCAL_OTHER_WORD 1.0\n"
             "describe LOCAL_OTHER_WORD A word no test message carries\n")


def local_test_word(score: float) -> str:
    return ("body     LOCAL_TEST_WORD /zqxwv-promo/\n"
            f"score    LOCAL_TEST_WORD {score}\n"
            "describe LOCAL_TEST_WORD Mentions the zqxwv promotion\n")


def cache_files(cache: Path) -> dict[str, int]:
    """The cache's files: name -> mtime in ns."""
    return {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} if cache.is_dir() else {}


def loads(milter: MilterProcess) -> list[str]:
    """`cached` of every sarules_loaded line of the milter's log, in order."""
    return re.findall(r"sarules_loaded\b.*?\bcached[=:]\s*\"?(\w+)", milter.log())


def started(milter: MilterProcess, times: int) -> None:
    """Wait for the milter's `times`-th milter_start line: its checks are built by then."""
    wait_until(lambda: milter.log().count("event=milter_start ") >= times, timeout=60,
               what=f"milter start number {times}")


def restart(milter: MilterProcess, times: int) -> None:
    milter.stop()
    milter.wait_port_closed()
    milter.start(timeout=60)
    started(milter, times)


def rules_milter(spamwarden_milter, dns_server, redis_url: str, local_cf: Path, cache: Path,
                 **rules: object) -> MilterProcess:
    """A milter running only ``local_cf``'s rules (no SpamAssassin files), tagging."""
    return spamwarden_milter(
        nameservers=[dns_server.address], redis_url=redis_url, authserv_id=AUTHSERV_ID,
        overrides={"rules": {"enabled": True, "system_rules": False, "paths": [str(local_cf)],
                             "cache_dir": str(cache), **rules},
                   "milter": {"quarantine": "tag"}})


def send(port: int, auth_zone) -> tuple[object, str]:
    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Tonight only",
                              body=BODY)
    result = swaks(port, mail_from="alice@good.test", rcpt_to=RCPT,
                   data=auth_zone.good_rsa.sign(raw), helo="client.test")
    return result, msgid


def test_local_cf_rule_changes_the_verdict_and_the_cache_follows_the_patterns(
        tmp_path, postfix_instance, spamwarden_milter, dns_server, auth_zone,
        module_redis_url) -> None:
    local_cf = tmp_path / "local.cf"
    cache = tmp_path / "rules-cache"
    local_cf.write_text(UNRELATED)
    milter = rules_milter(spamwarden_milter, dns_server, module_redis_url, local_cf,
                          cache)
    postfix: PostfixInstance = postfix_instance(listeners={"milter": milter.postfix_socket})
    port = postfix.smtp["milter"].port

    # 1. No rule for the word: delivered, not tagged; the first start compiled and stored.
    started(milter, 1)
    assert loads(milter) == ["False"], milter.log()[-2000:]
    first = cache_files(cache)
    assert len(first) == 1, first
    result, msgid = send(port, auth_zone)
    assert result.returncode == 0, result.transcript
    status = unfold(wait_delivered(postfix, msgid)["X-Spam-Status"] or "")
    assert status.startswith("No, "), status
    assert "LOCAL_TEST_WORD" not in status and "LOCAL_OTHER_WORD" not in status

    # 2. The same local.cf again: the stored databases are loaded, the file is not rewritten.
    restart(milter, 2)
    assert loads(milter) == ["False", "True"], milter.log()[-2000:]
    assert cache_files(cache) == first

    # 3. A new pattern at a tagging score: new databases are compiled and stored under a
    #    new key (the previous file is kept beside it, unchanged); the message is
    #    delivered tagged with the rule.
    local_cf.write_text(UNRELATED + local_test_word(8.0))
    restart(milter, 3)
    assert loads(milter) == ["False", "True", "False"], milter.log()[-2000:]
    second = cache_files(cache)
    assert len(second) == 2 and first.items() < second.items(), (first, second)
    result, msgid = send(port, auth_zone)
    assert result.returncode == 0, result.transcript
    delivered = wait_delivered(postfix, msgid)
    status = unfold(delivered["X-Spam-Status"] or "")
    assert status.startswith("Yes, "), status
    assert "LOCAL_TEST_WORD" in status_tests(status), status
    reasons = unfold(delivered["X-Spam-Reasons"] or "")
    assert "LOCAL_TEST_WORD=8 [Mentions the zqxwv promotion]" in reasons, reasons
    assert delivered["X-Spam-Flag"] == "YES", delivered.items()

    # 4. Only the score changes, past the reject threshold: no pattern changed, so the
    #    databases are reused; the same message is refused at the end of DATA.
    local_cf.write_text(UNRELATED + local_test_word(20.0))
    restart(milter, 4)
    assert loads(milter) == ["False", "True", "False", "True"], milter.log()[-2000:]
    assert cache_files(cache) == second
    before = postfix.delivered_count()
    result, msgid = send(port, auth_zone)
    assert result.returncode != 0, result.transcript
    assert result.queue_id is None
    assert any(e.startswith(MILTER_REJECT.line) for e in result.errors), result.transcript
    assert find_delivered(postfix, msgid) == []
    assert postfix.delivered_count() == before


@pytest.mark.parametrize("processes", [0, 2])
def test_concurrent_messages_are_scanned_without_crashing_the_milter(
        tmp_path, postfix_instance, spamwarden_milter, dns_server, auth_zone,
        module_redis_url, processes) -> None:
    """Many SMTP sessions at once: the engine runs on libmilter's concurrent connections
    (Hyperscan called from them directly crashed the process with SIGSEGV), or in
    `rules.processes` children of the milter, which go when the milter goes."""
    local_cf = tmp_path / "local.cf"
    local_cf.write_text(UNRELATED + local_test_word(8.0))
    milter = rules_milter(spamwarden_milter, dns_server, module_redis_url, local_cf,
                          tmp_path / "rules-cache", processes=processes)
    postfix: PostfixInstance = postfix_instance(listeners={"milter": milter.postfix_socket})
    port = postfix.smtp["milter"].port
    started(milter, 1)
    with ThreadPoolExecutor(max_workers=12) as pool:
        sent = list(pool.map(lambda _: send(port, auth_zone), range(36)))
    assert milter.running(), milter.log()[-3000:]
    assert [r.returncode for r, _ in sent] == [0] * len(sent), sent[0][0].transcript
    for _, msgid in sent:
        status = unfold(wait_delivered(postfix, msgid)["X-Spam-Status"] or "")
        assert "LOCAL_TEST_WORD" in status, status
    children = [int(p) for p in re.findall(r"rules_process_started\b.*?\bpid[=:]\s*(\d+)",
                                            milter.log())]
    # (and one more for the place of the slow lane, rules.slow_lanes = 1)
    assert len(children) == (processes + 1 if processes else 0), milter.log()[-3000:]
    assert all(Path(f"/proc/{pid}").exists() for pid in children)
    milter.stop()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
               timeout=10, what="the engine processes gone with the milter")


#: the hop the client recorded before it reached us (an outside relay)
OUTSIDE_HOP = (b"Received: from outside.example (outside.example [192.0.2.99])\r\n"
               b"\tby client.test (Postfix) with ESMTP id 4ABC123DEF;\r\n"
               b"\tSat, 5 Dec 2026 12:00:00 +0000 (UTC)\r\n")


def relay_rules(rdns: str) -> str:
    """Rules showing how the engine saw the relays: the hop from the client to this
    Postfix first (trusted: 127.0.0.1), with the reverse DNS name Postfix verified, then
    the client's own hop (untrusted); and the Received field the rules read."""
    first = (r"^\[ ip=127\.0\.0\.1 rdns=" + re.escape(rdns)
             + r" helo=client\.test by=mx\.test\.local ident= envfrom= intl=1 id=[0-9A-Z]+"
             r" auth= msa=0 \]$")
    return ("header   LOCAL_FIRST_HOP X-Spam-Relays-Trusted =~ /" + first + "/\n"
            "score    LOCAL_FIRST_HOP 0.01\n"
            "header   LOCAL_OUTSIDE_HOP X-Spam-Relays-Untrusted =~ "
            r"/^\[ ip=192\.0\.2\.99 rdns=outside\.example helo=outside\.example by=client\.test /"
            "\nscore    LOCAL_OUTSIDE_HOP 0.01\n"
            "header   LOCAL_OWN_RECEIVED Received =~ /^from client\\.test \\("
            + re.escape(rdns or "unknown") + r" \[127\.0\.0\.1\]\) by mx\.test\.local \(Postfix\)"
            r" with ESMTP id [0-9A-Z]+; /" + "\nscore    LOCAL_OWN_RECEIVED 0.01\n"
            "header   LOCAL_NO_RELAYS eval:check_no_relays()\n"
            "score    LOCAL_NO_RELAYS 0.01\n")


@pytest.mark.parametrize(("lookup", "rdns"), [("no", ""), ("yes", "localhost")])
def test_the_rules_see_the_hop_that_connected_to_postfix(
        tmp_path, postfix_instance, spamwarden_milter, dns_server, auth_zone,
        module_redis_url, lookup, rdns) -> None:
    """Postfix gives a milter no Received field for the connection (its header callbacks
    see only the client's fields); the engine is given the one Postfix writes, so the
    first relay is the client at 127.0.0.1, named as Postfix verified it ("unknown":
    no rDNS), and the message is delivered with Postfix's field alone."""
    local_cf = tmp_path / "local.cf"
    local_cf.write_text(UNRELATED + relay_rules(rdns))
    milter = rules_milter(spamwarden_milter, dns_server, module_redis_url, local_cf,
                          tmp_path / "rules-cache")
    postfix: PostfixInstance = postfix_instance(
        listeners={"milter": milter.postfix_socket},
        main_cf={"smtpd_peername_lookup": lookup})
    started(milter, 1)
    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Relays", body=BODY)
    result = swaks(postfix.smtp["milter"].port, mail_from="alice@good.test", rcpt_to=RCPT,
                   data=OUTSIDE_HOP + auth_zone.good_rsa.sign(raw), helo="client.test")
    assert result.returncode == 0, result.transcript
    delivered = wait_delivered(postfix, msgid)
    received = [unfold(v) for v in delivered.get_all("Received") or []]
    # what Postfix itself wrote: the same client name the rules were given
    assert len(received) == 2, received
    assert received[0].startswith(
        f"from client.test ({rdns or 'unknown'} [127.0.0.1]) by mx.test.local (Postfix)"), received
    assert received[1].startswith("from outside.example"), received
    status = unfold(delivered["X-Spam-Status"] or "")
    tests = set(status_tests(status))
    assert {"LOCAL_FIRST_HOP", "LOCAL_OUTSIDE_HOP", "LOCAL_OWN_RECEIVED"} <= tests, status
    assert "LOCAL_NO_RELAYS" not in tests, status


def test_a_local_cf_welcomelist_from_rcvd_reads_the_relay_postfix_was_handed_by(
        tmp_path, postfix_instance, spamwarden_milter, dns_server, auth_zone,
        module_redis_url) -> None:
    """``welcomelist_from_rcvd`` in the site's local.cf, through Postfix and the milter:
    the client at 127.0.0.1 is trusted, so the relay judged is the one it recorded
    (outside.example, 192.0.2.99); an entry naming the trusted client itself does not
    welcome the message, and a Received line the sender wrote below that relay claiming
    the listed host does not either."""
    local_cf = tmp_path / "local.cf"
    local_cf.write_text(
        UNRELATED
        + "welcomelist_from_rcvd *@good.test outside.example\n"
        "welcomelist_from_rcvd *@forged.test good.test\n"
        "def_welcomelist_from_rcvd *@good.test [127.0.0.1]\n"
        "header LOCAL_WL eval:check_from_in_welcomelist()\nscore LOCAL_WL 0.01\n"
        "header LOCAL_DEF_WL eval:check_from_in_default_welcomelist()\n"
        "score LOCAL_DEF_WL 0.01\n")
    milter = rules_milter(spamwarden_milter, dns_server, module_redis_url, local_cf,
                          tmp_path / "rules-cache")
    postfix: PostfixInstance = postfix_instance(listeners={"milter": milter.postfix_socket})
    started(milter, 1)

    def tests_hit(from_addr: str, extra: bytes) -> set[str]:
        raw, msgid = make_message(from_addr=from_addr, subject="Lists", body=BODY)
        sender = from_addr.split("<")[1].rstrip(">")  # (EnvelopeFrom is read too)
        result = swaks(postfix.smtp["milter"].port, mail_from=sender,
                       rcpt_to=RCPT, data=OUTSIDE_HOP + extra + auth_zone.good_rsa.sign(raw),
                       helo="client.test")
        assert result.returncode == 0, result.transcript
        status = unfold(wait_delivered(postfix, msgid)["X-Spam-Status"] or "")
        return set(status_tests(status))

    tests = tests_hit("Alice <alice@good.test>", b"")
    assert "LOCAL_WL" in tests and "LOCAL_DEF_WL" not in tests, tests
    forged = (b"Received: from mail.good.test (mail.good.test [198.51.100.1])\r\n"
              b"\tby outside.example (Postfix) with ESMTP id 5BCD234EF0;\r\n"
              b"\tSat, 5 Dec 2026 11:59:00 +0000 (UTC)\r\n")
    tests = tests_hit("Mallory <mallory@forged.test>", forged)
    assert "LOCAL_WL" not in tests, tests


#: SpamAssassin's DKIM rules and welcome-lists as 25_dkim.cf and 60_welcomelist_*.cf write
#: them (DKIM_VALID and SPF_PASS are also the milter's own symbols, so local names stand
#: in for those two here)
AUTH_RULES = (
    "full     DKIM_SIGNED          eval:check_dkim_signed()\n"
    "score    DKIM_SIGNED          0.1\n"
    "full     LOCAL_DKIM_VALID     eval:check_dkim_valid()\n"
    "score    LOCAL_DKIM_VALID     -0.01\n"
    "full     DKIM_VALID_AU        eval:check_dkim_valid_author_sig()\n"
    "score    DKIM_VALID_AU        -0.1\n"
    "full     DKIM_VALID_EF        eval:check_dkim_valid_envelopefrom()\n"
    "score    DKIM_VALID_EF        -0.1\n"
    "full     __DKIM_DEPENDABLE    eval:check_dkim_dependable()\n"
    "meta     LOCAL_INVALID_DEPENDABLE  DKIM_SIGNED && !LOCAL_DKIM_VALID && __DKIM_DEPENDABLE\n"
    "score    LOCAL_INVALID_DEPENDABLE  0.01\n"
    "header   USER_IN_DEF_DKIM_WL  eval:check_for_def_dkim_welcomelist_from()\n"
    "score    USER_IN_DEF_DKIM_WL  -0.5\n"
    "def_welcomelist_auth *@good.test\n"
)


def test_a_message_signed_with_a_key_in_dns_gets_spamassassins_dkim_rules(
        tmp_path, postfix_instance, spamwarden_milter, dns_server, auth_zone,
        module_redis_url) -> None:
    """The milter's own DKIM verification reaches the rules: a message signed with the
    zone's key hits DKIM_VALID_AU and the default welcome-list of its domain; the same
    message altered in transit is signed but neither valid nor welcome-listed."""
    local_cf = tmp_path / "local.cf"
    local_cf.write_text(UNRELATED + AUTH_RULES)
    milter = rules_milter(spamwarden_milter, dns_server, module_redis_url, local_cf,
                          tmp_path / "rules-cache")
    postfix: PostfixInstance = postfix_instance(listeners={"milter": milter.postfix_socket})
    port = postfix.smtp["milter"].port
    started(milter, 1)

    def tests_of(data: bytes, msgid: str) -> set[str]:
        result = swaks(port, mail_from="alice@good.test", rcpt_to=RCPT, data=data,
                       helo="client.test")
        assert result.returncode == 0, result.transcript
        status = unfold(wait_delivered(postfix, msgid)["X-Spam-Status"] or "")
        return set(status_tests(status))

    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Signed", body=BODY)
    signed = auth_zone.good_rsa.sign(raw)
    got = tests_of(signed, msgid)
    assert {"DKIM_SIGNED", "LOCAL_DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF",
            "USER_IN_DEF_DKIM_WL"} <= got, got
    assert "LOCAL_INVALID_DEPENDABLE" not in got, got

    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Altered", body=BODY)
    altered = auth_zone.good_rsa.sign(raw).replace(b"offer ends tonight", b"offer ends today")
    got = tests_of(altered, msgid)
    assert {"DKIM_SIGNED", "LOCAL_INVALID_DEPENDABLE"} <= got, got
    assert not got & {"LOCAL_DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF",
                      "USER_IN_DEF_DKIM_WL"}, got
