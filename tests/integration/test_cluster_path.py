"""The whole complaint -> listing -> DNS path on a real 3-master Redis Cluster, through a
restart of the node that holds the service's keys."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import redis

from spamwarden.reputation.listings import LISTINGS_KEY
from tests.integration.redis_cluster import LocalCluster
from tests.support.net import free_port, tcp_accepts, wait_until

pytestmark = pytest.mark.integration

ZONE = "bl.test"


def _report(spammer: str, ip: str) -> bytes:
    """A recipient's forward-as-attachment of one spam from ``spammer`` via ``ip``."""
    spam = EmailMessage()
    spam["Received"] = f"from mx.{spammer} (mx.{spammer} [{ip}]) by mx.example.test; Sun, 29 Nov 2026 08:00:00 +0000"
    spam["From"] = f"Deals <offers@{spammer}>"
    spam["To"] = "user@example.test"
    spam["Subject"] = "You won"
    spam["Message-ID"] = f"<{spammer}.1@{spammer}>"
    spam.set_content(f"Claim now at http://www.{spammer}/claim\n")
    fwd = EmailMessage()
    fwd["Subject"] = "Fwd: You won"
    fwd.set_content("This is spam.\n")
    fwd.add_attachment(spam)
    return bytes(fwd)


def _listed(port: int, name: str) -> bool:
    q = dns.message.make_query(name, "A")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except (OSError, dns.exception.Timeout):
        return False
    return r.rcode() == dns.rcode.NOERROR and bool(r.answer)


def _complain(port: int, spammer: str, ip: str) -> None:
    for who in ("ann", "bob", "cat"):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            login = (b"Received: from [127.0.0.1] (unknown [127.0.0.1])\r\n\t(Authenticated "
                     b"sender: " + who.encode() + b")\r\n\tby mx.example.test (Postfix) with "
                     b"ESMTPA id 1\r\n")  # submitted by a logged-in user
            s.sendmail(f"{who}@example.test", ["report@example.test"],
                       login + _report(spammer, ip))


def test_complaints_list_a_domain_visible_in_dns_through_a_node_restart(
        redis_cluster: LocalCluster, tmp_path: Path) -> None:
    ports = {n: free_port() for n in ("milter", "intake", "api")}
    ports["rbl"] = free_port(udp_too=True)
    cfg = tmp_path / "sw.toml"
    cfg.write_text(
        f'[service]\nstate_dir = "{tmp_path}/state"\n'
        f'[redis]\nurl = "{redis_cluster.url}"\ntimeout = "2s"\n'
        f'[milter]\nlisten = "inet:127.0.0.1:{ports["milter"]}"\n'
        f'[intake]\nlisten = "127.0.0.1:{ports["intake"]}"\nlocal_domains = ["example.test"]\n'
        f'[rbl]\nzone = "{ZONE}"\nlisten = ["127.0.0.1:{ports["rbl"]}"]\n'
        f'[api]\nlisten = "127.0.0.1:{ports["api"]}"\n'
        # the reported messages were never delivered through this milter: this test is
        # about the Cluster path, so reports count with what they claim
        '[reputation]\nmin_reporters = 3\nrequire_delivered = false\n'
        '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = "0.3s"\n'
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPAMWARDEN_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "spamwarden", "serve", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: _listed(ports["rbl"], f"2.0.0.127.ip.{ZONE}"), timeout=60,
                   what="the DNS server answering")
        # serve starts intake after the DNS server: wait for it too before reporting
        wait_until(lambda: tcp_accepts(ports["intake"]), timeout=60, what="intake listening")
        assert not _listed(ports["rbl"], f"first-spammer.example.dbl.{ZONE}")
        _complain(ports["intake"], "first-spammer.example", "203.0.113.7")
        wait_until(lambda: _listed(ports["rbl"], f"first-spammer.example.dbl.{ZONE}"),
                   timeout=30, what="the first listing in DNS")

        # Restart the node holding the {sw} slot: the services reconnect and carry on.
        client = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
        slot = client.cluster_keyslot(LISTINGS_KEY)
        owner = next(p for p in redis_cluster.ports
                     if slot in _slots(redis.Redis(port=p)))
        redis_cluster.nodes[owner].stop()
        redis_cluster.start_node(owner)
        redis_cluster.wait_ok()

        _complain(ports["intake"], "second-spammer.example", "203.0.113.8")
        wait_until(lambda: _listed(ports["rbl"], f"second-spammer.example.dbl.{ZONE}"),
                   timeout=60, what="the listing made after the node restart in DNS")
        # and what was listed before the restart is still served
        assert _listed(ports["rbl"], f"first-spammer.example.dbl.{ZONE}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(90)
        log.close()
    assert proc.returncode == 0


def _slots(node: redis.Redis) -> set[int]:
    myself = next(n for n in node.cluster("nodes").values() if "myself" in n["flags"])
    out: set[int] = set()
    for start, end in myself["slots"]:
        out.update(range(int(start), int(end) + 1))
    return out
