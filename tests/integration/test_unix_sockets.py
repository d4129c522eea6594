"""Milter and intake on unix sockets, behind a real Postfix.

On ``127.0.0.1`` every local process can reach them: a local user or a web application
on the mail host could write reports under any login (intake believes the Received field
its MTA adds) or feed the milter deliveries that never happened.  On a unix socket the
file's mode and group decide; these tests run the shipped settings (mode 0660, group
postfix) and check that Postfix gets through while another user does not.
"""

from __future__ import annotations

import email
import email.policy
import grp
import os
import shutil
import smtplib
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_intake import REPORTS, RunningIntake
from tests.integration.test_intake import start_intake as start_intake
from tests.support.messages import make_message
from tests.support.milterproc import MilterProcess, spamwarden_command, write_toml
from tests.support.net import wait_until
from tests.unit.test_unixsock import _connect_as_nobody

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="runs processes as other users")]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the postfix and nobody users can traverse (pytest's are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="sw-unix-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _postfix_gid() -> int:
    try:
        return grp.getgrnam("postfix").gr_gid
    except KeyError:
        pytest.skip("no postfix group on this host")


def test_report_through_postfix_lmtp_unix_socket(
    start_intake: Callable[..., RunningIntake], postfix_instance: Any, shared_dir: Path,
) -> None:
    path = shared_dir / "intake.sock"
    intake = start_intake(local_domains=["test.local"], listen=f"unix:{path}", lmtp=True,
                          socket_group="postfix")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == _postfix_gid()
    # another local user cannot connect, so cannot write a report under any login
    assert _connect_as_nobody(str(path), []) == "EACCES"

    pf = postfix_instance(
        mailbox="report@test.local",
        main_cf={
            # conf/postfix/transport's unix-socket line
            "transport_maps": f"inline:{{ report@test.local=lmtp:unix:{path} }}",
            "lmtp_destination_recipient_limit": "10",
            "message_size_limit": str(intake.cfg.intake.max_message_bytes),
        },
    )
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.sendmail("alice@test.local", ["report@test.local"], raw)
    [c] = wait_until(intake.complaints, timeout=20, interval=0.1,
                     what="the complaint in the stream")
    assert (c.reporter, c.kind, c.source) == ("alice@test.local", "spam", "attached")
    assert pf.delivered_count() == 0  # handed to intake, not to the mailbox
    assert "status=sent" in pf.maillog() and "Permission denied" not in pf.maillog()


def test_milter_unix_socket_behind_postfix(
    postfix_instance: Any, spamwarden_milter: Any, dns_server: Any, auth_zone: Any,
) -> None:
    old = os.umask(0o077)  # the socket's mode comes from milter.socket_mode, not the umask
    try:
        milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=None,
                                   unix=True,
                                   overrides={"redis": {"url": "unix:///nonexistent/r.sock"}})
    finally:
        os.umask(old)
    assert milter.unix_path is not None
    st = os.stat(milter.unix_path)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == _postfix_gid()
    assert _connect_as_nobody(str(milter.unix_path), []) == "EACCES"
    assert "event=milter_socket" in milter.log() and "mode=0660" in milter.log()

    postfix = postfix_instance(listeners={"mx": milter.postfix_socket})
    raw, _ = make_message(from_addr="alice@good.test", subject="over a unix socket")
    with smtplib.SMTP("127.0.0.1", postfix.smtp["mx"].port, timeout=60) as s:
        s.sendmail("alice@good.test", ["user@test.local"], raw)
    [delivered] = postfix.wait_for_delivery(1, timeout=60)
    msg = email.message_from_bytes(delivered.read_bytes(), policy=email.policy.compat32)
    assert msg.get("X-Spam-Status") is not None, postfix.maillog()[-2000:]


def test_intake_command_on_a_unix_socket(redis_url: str, shared_dir: Path) -> None:
    """`spamwarden intake --listen unix:/PATH`: the socket is made with the configured
    mode in a directory it creates, speaks LMTP, and is removed when intake stops."""
    path = shared_dir / "run" / "intake.sock"
    config = write_toml(shared_dir / "spamwarden.toml", {
        "service": {"state_dir": str(shared_dir / "state")},
        "redis": {"url": redis_url},
        "intake": {"lmtp": True, "local_domains": ["test.local"], "socket_mode": "0600"},
    })
    proc = MilterProcess(argv=[*spamwarden_command(), "intake", "--config", str(config),
                               "--listen", f"unix:{path}"],
                         port=0, log_path=shared_dir / "intake.log", unix_path=path,
                         widen_socket=False)
    old = os.umask(0)  # the mode comes from intake.socket_mode, not the umask
    try:
        proc.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
        assert _connect_as_nobody(str(path), [os.getgid()]) == "EACCES"  # 0600: owner only
        with smtplib.LMTP(str(path), timeout=30) as lmtp:
            code, text = lmtp.ehlo("postfix.test")
            assert code == 250, text
        assert f'address=unix:{path}' in proc.log() and "mode=0600" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()
    assert not path.exists()
