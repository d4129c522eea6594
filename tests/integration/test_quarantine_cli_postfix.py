"""``spamwarden quarantine`` and ``spamwarden doctor --check quarantine`` as an admin runs
them, as subprocesses, against a real Postfix whose milter (`spamwarden milter`, policy
holding every message) put mail on hold: list shows it, show gives the milter's verdict,
release delivers it, delete removes another; the doctor says OK, and FAIL with the reason
when quarantine.postfix_config_dir is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from spamwarden.reputation.complaints import COMPLAINTS_KEY
from spamwarden.reputation.history import HistoryFilter, read_history
from tests.integration.test_milter_postfix import find_delivered, wait_delivered
from tests.integration.test_quarantine_postfix import HOLD_ALL, RCPT, _held, _send_held
from tests.support.net import wait_until
from tests.support.postfix import PostfixInstance

pytestmark = pytest.mark.integration

Run = Callable[..., subprocess.CompletedProcess[str]]


def _config(path: Path, *, state: Path, redis_url: str, config_dir: Path) -> Path:
    path.write_text(
        f'[service]\nstate_dir = "{state}"\n[redis]\nurl = "{redis_url}"\n'
        '[intake]\nlocal_domains = ["test.local"]\n[dns]\ntimeout = "1s"\n'
        f'[quarantine]\npostfix_config_dir = "{config_dir}"\ntimeout = "20s"\n')
    return path


@pytest.fixture
def holding(dns_server: Any, auth_zone: Any, redis_url: str, spamwarden_milter: Any,
            postfix_instance: Any, tmp_path: Path) -> tuple[PostfixInstance, Run]:
    """A Postfix whose milter holds every message, and a runner of ``spamwarden ARGS``
    with a configuration naming its config directory."""
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=redis_url,
                               overrides={"policy": HOLD_ALL})
    pf = postfix_instance(listeners={"smtp": milter.postfix_socket})
    conf = _config(tmp_path / "sw.toml", state=tmp_path, redis_url=redis_url,
                   config_dir=pf.config_dir)
    env = {k: v for k, v in os.environ.items() if k != "SPAMWARDEN_REDIS_URL"}

    def run(*args: str, config: Path = conf) -> subprocess.CompletedProcess[str]:
        cut = args.index("--") if "--" in args else len(args)  # options before "--"
        argv = [*args[:cut], "--config", str(config), *args[cut:]]
        return subprocess.run([sys.executable, "-m", "spamwarden", *argv],
                              capture_output=True, text=True, timeout=120, env=env)

    return pf, run


def test_list_show_release_and_delete_from_the_shell(holding: tuple[PostfixInstance, Run],
                                                      redis_url: str) -> None:
    pf, run = holding
    qid, msgid = _send_held(pf, "held, released from the shell")
    other, other_msgid = _send_held(pf, "held, deleted from the shell")
    assert find_delivered(pf, msgid) == []

    res = run("quarantine", "list", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["queue_id"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {qid, other}
    assert rows[qid]["sender"] == "alice@good.test" and rows[qid]["recipients"] == [RCPT]

    raw = redis.Redis.from_url(redis_url)
    wait_until(lambda: read_history(raw, want=HistoryFilter(queue_id=qid)) != [],
               timeout=10, what="history entry")
    res = run("quarantine", "show", qid)
    assert res.returncode == 0, res.stderr
    assert f"queue id:   {qid}\n" in res.stdout
    assert "verdict:    quarantine score " in res.stdout
    assert "Subject: held, released from the shell" in res.stdout

    res = run("quarantine", "release", qid)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{qid}: released\n"
    assert f"queue_id={qid}" in res.stderr  # the log line names it
    assert wait_delivered(pf, msgid)["Subject"] == (
        "held, released from the shell")
    assert qid not in _held(pf)

    res = run("quarantine", "delete", other)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{other}: deleted\n"
    assert _held(pf) == []
    assert other in pf.wait_for_log(f"{other}: removed")
    time.sleep(0.5)  # a deleted message must not turn up later either
    assert find_delivered(pf, other_msgid) == []

    # learned as not spam (by postmaster@test.local), then delivered
    ham, ham_msgid = _send_held(pf, "held, learned from the shell")
    res = run("quarantine", "release", "--learn-ham", ham)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{ham}: learned as not spam and released\n"
    wait_delivered(pf, ham_msgid)
    (entry,) = raw.xrange(COMPLAINTS_KEY)
    fields = {k.decode(): v.decode() for k, v in entry[1].items()}
    assert fields["kind"] == "ham" and fields["reporter"] == "postmaster@test.local"

    # none is held any more: Postfix has nothing by those ids
    res = run("quarantine", "release", qid, other)
    assert res.returncode == 1
    assert f"{qid}: {qid} is not in the hold queue" in res.stderr
    # a bad id: exit 2, one line, Postfix never asked
    res = run("quarantine", "delete", "--", "ALL")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == ("spamwarden quarantine: not a Postfix queue id: 'ALL'; "
                          "nothing was done\n")


def test_doctor_says_ok_against_postfix_and_fail_for_a_wrong_config_dir(
        holding: tuple[PostfixInstance, Run], tmp_path: Path, redis_url: str) -> None:
    pf, run = holding
    qid, _ = _send_held(pf, "held for the doctor")
    res = run("doctor", "--check", "quarantine")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("OK    quarantine found /usr/sbin/postqueue")
    assert lines[1] == (f"OK    quarantine postqueue -j reads the queue of {pf.config_dir}: "
                        "1 message(s) on hold")
    assert lines[2].startswith("OK    quarantine running as root")
    assert lines[-1] == "0 failed, 0 warnings"

    wrong = tmp_path / "not-postfix"
    wrong.mkdir()
    bad = _config(tmp_path / "bad.toml", state=tmp_path, redis_url=redis_url, config_dir=wrong)
    res = run("doctor", "--check", "quarantine", config=bad)
    assert res.returncode == 1, res.stdout
    assert (f"FAIL  quarantine the quarantine is not configured: no main.cf in "
            f"quarantine.postfix_config_dir {wrong}") in res.stdout
    assert res.stdout.strip().endswith("1 failed, 0 warnings")
    # and the commands say the same, exit 1
    res = run("quarantine", "list", config=bad)
    assert res.returncode == 1 and "the quarantine is not configured: no main.cf" in res.stderr
    assert _held(pf) == [qid]
