"""Mailbox moves in a real Dovecot 2.3 + Pigeonhole teach spamwarden: the shipped
conf/dovecot files (IMAPSieve configuration, sieve scripts, sieve-pipe wrapper) run
``spamwarden learn`` as the mail user, and the learn reaches Redis.

Dovecot runs from a private configuration (``dovecot -F -c FILE``) on a loopback port with
a passwd-file user whose Maildir is in a temporary directory; moves are IMAP MOVE commands
(imaplib).  The mail user is ``nobody`` (Dovecot refuses uid 0), so Redis listens on a
loopback TCP port here and everything the pipe needs is readable by others."""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from spamwarden.mail import parse_message
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.complaints import COMPLAINTS_KEY, UNMATCHED_KEY
from spamwarden.reputation.deliveries import RedisDeliveryLedger, delivery_of
from spamwarden.reputation.intake import example_index_key
from spamwarden.reputation.reports import delivered_fingerprint
from tests.conftest import DATA

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf" / "dovecot"
RAW = (DATA / "reports" / "original-signed.eml").read_bytes()
USER, PASSWORD = "alice@example.vn", "s3cret-alice"
MAIL_UID = 65534  # nobody

if os.geteuid() != 0:
    pytest.skip("Dovecot's master and the mail user's home need root here",
                allow_module_level=True)
for tool in ("dovecot", "sievec"):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install dovecot-imapd dovecot-sieve)",
                    allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ham(n: int) -> bytes:
    return (b"From: Bob <bob@partner.example>\r\nTo: alice@example.vn\r\n"
            b"Subject: minutes %d\r\nMessage-ID: <minutes-%d@partner.example>\r\n"
            b"Date: Mon, 04 Nov 2024 09:00:00 +0700\r\n\r\n"
            b"The minutes of meeting %d are attached in spirit.\r\n" % (n, n, n))


@dataclass
class Mailhost:
    root: Path
    port: int
    r: redis.Redis

    def imap(self) -> imaplib.IMAP4:
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=60)
        m.login(USER, PASSWORD)
        return m

    def log(self) -> str:
        p = self.root / "dovecot.log"
        return p.read_text(errors="replace")[-12000:] if p.exists() else ""


def _dovecot_conf(d: Path, port: int) -> str:
    return f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
mail_debug = yes
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
!include {d}/90-imapsieve.conf
"""


@pytest.fixture
def mailhost() -> Iterator[Mailhost]:
    d = Path(tempfile.mkdtemp(prefix="sw-dovecot-"))
    os.chmod(d, 0o755)
    server = EmbeddedRedis(d / "redis", port=_free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server.start()
        redis_url = f"redis://127.0.0.1:{server.port}/0"
        # spamwarden as the sieve pipe runs it (as nobody): this checkout, this Python
        (d / "spamwarden.toml").write_text(f"""[service]
state_dir = "{d}/sw-state"
log_format = "kv"
[redis]
url = "{redis_url}"
timeout = "5s"
[intake]
local_domains = ["example.vn"]
""")
        (d / "sw-state").mkdir(mode=0o777)
        os.chmod(d / "sw-state", 0o777)
        shim = d / "spamwarden"
        shim.write_text(f"#!/bin/sh\nPYTHONPATH={REPO}; export PYTHONPATH\n"
                        f"exec {sys.executable} -m spamwarden \"$@\"\n")
        shim.chmod(0o755)
        (d / "learn.defaults").write_text(f"SPAMWARDEN={shim}\nSPAMWARDEN_CONFIG={d}/spamwarden.toml\n")
        # the shipped files, at the paths of this private configuration
        pipe_dir = d / "sieve-pipe"
        pipe_dir.mkdir()
        wrapper = (CONF / "spamwarden-learn").read_text().replace(
            "DEFAULTS=/etc/default/spamwarden-learn", f"DEFAULTS={d}/learn.defaults")
        assert f"DEFAULTS={d}/learn.defaults" in wrapper
        (pipe_dir / "spamwarden-learn").write_text(wrapper)
        (pipe_dir / "spamwarden-learn").chmod(0o755)
        sieve_dir = d / "sieve"
        sieve_dir.mkdir()
        for name in ("report-spam.sieve", "report-ham.sieve"):
            shutil.copy(CONF / name, sieve_dir / name)
        conf = (CONF / "90-imapsieve.conf").read_text()
        conf = conf.replace("/etc/dovecot/sieve/", f"{sieve_dir}/").replace(
            "/usr/lib/dovecot/sieve-pipe", str(pipe_dir))
        # the learn service runs as root here (this Python is not readable by others);
        # the mail user is nobody
        assert "  user = spamwarden\n" in conf and "    user = vmail\n" in conf
        conf = conf.replace("  user = spamwarden\n", "  user = root\n").replace(
            "    user = vmail\n", "    user = nobody\n")
        (d / "90-imapsieve.conf").write_text(conf)
        home = d / "home" / "alice"
        home.mkdir(parents=True)
        os.chown(home, MAIL_UID, MAIL_UID)
        os.chmod(d / "home", 0o755)
        (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        port = _free_port()
        (d / "dovecot.conf").write_text(_dovecot_conf(d, port))
        for name in ("report-spam.sieve", "report-ham.sieve"):
            subprocess.run(["sievec", "-c", str(d / "dovecot.conf"), str(sieve_dir / name)],
                           check=True, capture_output=True, timeout=60)
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(d / "dovecot.conf")],
                                stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (d / "dovecot.log")
                    pytest.fail("dovecot did not start: "
                                + (log.read_text()[-3000:] if log.exists() else ""))
                time.sleep(0.1)
        r = redis.Redis.from_url(redis_url)
        try:
            yield Mailhost(d, port, r)
        finally:
            r.close()
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def _entries(r: redis.Redis, key: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(key)]


def _wait_for(host: Mailhost, key: str, count: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 20  # the pipe runs before the MOVE's reply: rarely waits
    while True:
        got = _entries(host.r, key)
        if len(got) >= count or time.monotonic() > deadline:
            assert len(got) == count, (got, host.log())
            return got
        time.sleep(0.2)


def _move(m: imaplib.IMAP4, source: str, target: str) -> None:
    typ, _ = m.select(source)
    assert typ == "OK"
    typ, data = m.uid("SEARCH", "ALL")
    assert typ == "OK" and data[0], data
    uid = data[0].split()[-1].decode()
    typ, data = m.uid("MOVE", uid, target)
    assert typ == "OK", data


def test_moves_into_and_out_of_junk_reach_redis(mailhost: Mailhost) -> None:
    fp = delivered_fingerprint(parse_message(RAW))
    d = delivery_of(parse_message(RAW), fingerprint=fp, client_ip="192.0.2.77",
                    mail_from="bounce-8812@mailer.promo-shop.example", rcpts=[USER],
                    auth=None, at=time.time(), queue_id="4XmQ", delimiters="+")
    assert d is not None
    RedisDeliveryLedger(mailhost.r, ttl=600).record_many([d])  # the milter delivered it
    m = mailhost.imap()
    try:
        typ, _ = m.append("INBOX", None, None, RAW)
        assert typ == "OK"
        # INBOX -> Junk: spam, matched with the delivery to alice, learned
        _move(m, "INBOX", "Junk")
        [spam] = _wait_for(mailhost, COMPLAINTS_KEY, 1)
        assert spam["kind"] == "spam" and spam["reporter"] == USER
        assert spam["match"] == "matched" and spam["reporter_verified"] == "True"
        assert json.loads(spam["indicators"])["source_ip"] == "192.0.2.77"
        assert mailhost.r.zcard(example_index_key("spam")) == 1
        # Junk -> INBOX: ham (the user changed their mind)
        _move(m, "Junk", "INBOX")
        ham = _wait_for(mailhost, COMPLAINTS_KEY, 2)[1]
        assert ham["kind"] == "ham" and ham["reporter"] == USER
        assert mailhost.r.zcard(example_index_key("ham")) == 1
        # another message: into Junk, then Junk -> Trash teaches nothing more
        typ, _ = m.append("INBOX", None, None, _ham(1))
        assert typ == "OK"
        _move(m, "INBOX", "Junk")  # never delivered here by the milter: kept unmatched
        [unmatched] = _wait_for(mailhost, UNMATCHED_KEY, 1)
        assert unmatched["reporter"] == USER and unmatched["match"] == "no-delivery"
        _move(m, "Junk", "Trash")
        typ, _ = m.noop()
        assert typ == "OK"
    finally:
        m.logout()
    assert len(_entries(mailhost.r, COMPLAINTS_KEY)) == 2
    assert len(_entries(mailhost.r, UNMATCHED_KEY)) == 1
    assert mailhost.r.zcard(example_index_key("ham")) == 1
