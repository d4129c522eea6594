"""A private Postfix instance: its own config dir, queue, data dir, maillog and Maildir.

Everything lives under one base directory; `postfix -c DIR start|stop` drives it, so several
instances coexist with the system one (which is never touched). Mail for the configured
mailbox is delivered by Postfix's `virtual` agent into a Maildir, where tests and benchmarks
count it.

Layout under base_dir: etc/ (main.cf, master.cf), queue/, data/, mail/<user>/ (Maildir),
maillog.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .net import (
    LOOPBACK,
    free_port,
    live_pid,
    pid_alive,
    read_pidfile,
    tcp_accepts,
    wait_exit_or_kill,
    wait_until,
)

__all__ = [
    "NOBODY_UID",
    "PostfixError",
    "SmtpListener",
    "PostfixInstance",
    "start_postfix",
    "wait_all_exited",
]


NOBODY_UID = 65534

# The services Postfix needs for SMTP in, virtual delivery and logging to a file.
# Every one runs with chroot = n (5th column) so nothing has to be copied into the queue dir.
_MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    """The private Postfix instance could not be configured, started or stopped."""


@dataclass(frozen=True)
class SmtpListener:
    """One `127.0.0.1:PORT inet smtpd` service of the instance.

    Attributes:
        name: a label for the listener (used by benchmarks to name results).
        port: the TCP port on 127.0.0.1.
        milters: the value of `smtpd_milters` for this listener, in Postfix syntax
            (`inet:127.0.0.1:PORT`, `unix:/path`); empty for no milter.
    """

    name: str
    port: int
    milters: str = ""


@dataclass
class PostfixInstance:
    """A private Postfix; construct, then `start()`, and always `stop()`.

    Args:
        base_dir: an empty directory that will hold everything (it is made world-traversable,
            since the postfix and nobody users must reach the queue and the Maildir).
        listeners: name -> smtpd_milters value ("" for none); one port is picked per name.
        mailbox: the one deliverable address; the Maildir is mail/<local part>/.
        hostname: myhostname (appears in Received headers and the banner).
        main_cf: extra main.cf settings that override the defaults written here.
        sasl_users: SMTP AUTH logins ("user@realm" -> password). When given, smtpd offers
            AUTH PLAIN/LOGIN through Cyrus SASL with a private sasldb (etc/sasl/: Debian's
            Postfix reads $config_directory/sasl/smtpd.conf, not cyrus_sasl_config_path),
            and records the login in its Received field (smtpd_sasl_authenticated_header).
            Needs saslpasswd2 (Debian sasl2-bin) and libsasl2-modules; no daemon runs.
    """

    base_dir: Path
    listeners: Mapping[str, str] = field(default_factory=lambda: {"smtp": ""})
    mailbox: str = "user@test.local"
    hostname: str = "mx.test.local"
    main_cf: Mapping[str, str] = field(default_factory=dict)
    sasl_users: Mapping[str, str] = field(default_factory=dict)
    smtp: dict[str, SmtpListener] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.config_dir = self.base_dir / "etc"
        self.queue_dir = self.base_dir / "queue"
        self.data_dir = self.base_dir / "data"
        self.mail_base = self.base_dir / "mail"
        self.maillog_path = self.base_dir / "maillog"
        local, _, domain = self.mailbox.partition("@")
        self.domain = domain
        self.maildir = self.mail_base / local
        self._started_pid: int | None = None
        for name, milters in self.listeners.items():
            self.smtp[name] = SmtpListener(name=name, port=free_port(), milters=milters)

    # ---- configuration -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port of the first listener."""
        return next(iter(self.smtp.values())).port

    def main_cf_settings(self) -> dict[str, str]:
        """The main.cf this instance runs with (defaults overridden by `main_cf`)."""
        local = self.maildir.name
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "myhostname": self.hostname,
            "mydomain": "test.local",
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": "",
            "relayhost": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP",
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "in_flow_delay": "0",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "biff": "no",
            "append_dot_mydomain": "no",
            "maillog_file": str(self.maillog_path),
            "maillog_file_prefixes": str(self.base_dir),
            "syslog_name": f"postfix-{self.base_dir.name}",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail_base),
            "virtual_mailbox_maps": f"inline:{{ {self.mailbox}={local}/ }}",
            "virtual_uid_maps": f"static:{NOBODY_UID}",
            "virtual_gid_maps": f"static:{NOBODY_UID}",
            "milter_protocol": "6",
            "milter_default_action": "tempfail",
            "milter_connect_timeout": "5s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "60s",
            "smtpd_milters": "",
            "non_smtpd_milters": "",
            "queue_run_delay": "300s",
            "minimal_backoff_time": "300s",
            "message_size_limit": "20480000",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "100",
        }
        if self.sasl_users:
            settings.update({
                "smtpd_sasl_auth_enable": "yes",
                "smtpd_sasl_type": "cyrus",
                "smtpd_sasl_path": "smtpd",
                "smtpd_sasl_security_options": "noanonymous",
                "smtpd_sasl_authenticated_header": "yes",
                "broken_sasl_auth_clients": "no",
            })
        settings.update(self.main_cf)
        return settings

    def write_sasl(self) -> None:
        """The private sasldb with `sasl_users` and the smtpd.conf that points Cyrus at it."""
        sasl_dir = self.config_dir / "sasl"
        sasl_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(sasl_dir, 0o755)
        db = sasl_dir / "sasldb2"
        for login, password in self.sasl_users.items():
            user, _, realm = login.partition("@")
            tool = shutil.which("saslpasswd2", path="/usr/sbin:/usr/bin:/sbin") or "saslpasswd2"
            args = [tool, "-f", str(db), "-c", "-p"] + (["-u", realm] if realm else [])
            done = subprocess.run([*args, user], input=password.encode(), capture_output=True,
                                  timeout=30, check=False)
            if done.returncode != 0:
                raise PostfixError(f"saslpasswd2 failed for {login}: {done.stderr!r}")
        shutil.chown(db, user="postfix")
        os.chmod(db, 0o640)
        (sasl_dir / "smtpd.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {db}\n"
            "mech_list: PLAIN LOGIN\n")

    def write_config(self) -> None:
        """Create the directories and write main.cf and master.cf."""
        os.chmod(self.base_dir, 0o755)
        for d in (self.config_dir, self.queue_dir, self.mail_base):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data_dir, user="postfix")
        os.chown(self.mail_base, NOBODY_UID, NOBODY_UID)
        main = "".join(f"{k} = {v}\n" for k, v in self.main_cf_settings().items())
        (self.config_dir / "main.cf").write_text(main)
        if self.sasl_users:
            self.write_sasl()
        lines = []
        for listener in self.smtp.values():
            line = (f"{LOOPBACK}:{listener.port} inet n - n - - smtpd\n"
                    f"  -o syslog_name=postfix/{listener.name}\n")
            if listener.milters:
                line += f"  -o {{ smtpd_milters = {listener.milters} }}\n"
            lines.append(line)
        (self.config_dir / "master.cf").write_text("".join(lines) + _MASTER_SERVICES)

    # ---- life cycle ----------------------------------------------------------------------

    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.config_dir), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    @property
    def master_pid(self) -> int | None:
        """The pid of this instance's master process, when it runs (remembered at start)."""
        return live_pid(self._started_pid, self.queue_dir / "pid" / "master.pid")

    def start(self, *, timeout: float = 20) -> None:
        """Write the config, start the instance and wait until every listener greets.

        Raises:
            PostfixError: with Postfix's own words and the maillog tail when it fails.
        """
        self.write_config()
        done = self._postfix("start")
        if done.returncode != 0:
            raise PostfixError(f"postfix start failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}\n{self.maillog()[-2000:]}")
        self._started_pid = read_pidfile(self.queue_dir / "pid" / "master.pid")
        try:
            for listener in self.smtp.values():
                wait_until(functools.partial(_greets, listener.port), timeout=timeout,
                           what=f"postfix listener {listener.name} on {listener.port}")
        except TimeoutError as exc:
            self.stop()
            raise PostfixError(f"{exc}\n{self.maillog()[-2000:]}") from exc

    def stop(self, *, timeout: float = 15) -> None:
        """Stop the instance and wait for its master to exit (killed after `timeout`).

        Safe to call more than once and on an instance that never started.
        """
        pid = self.master_pid
        if pid is None:
            return
        self._postfix("stop", timeout=timeout)
        wait_exit_or_kill(pid, timeout=timeout, what="postfix master exit")

    def flush(self) -> None:
        """Ask the queue manager to retry deferred mail now (`postqueue -f`)."""
        subprocess.run(["postqueue", "-c", str(self.config_dir), "-f"], capture_output=True,
                       timeout=30, check=False)

    # ---- observation ---------------------------------------------------------------------

    def maillog(self) -> str:
        """The whole maillog so far ('' before Postfix wrote anything)."""
        try:
            return self.maillog_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def delivered(self) -> list[Path]:
        """Message files in the Maildir (new/ and cur/), oldest first."""
        files: list[Path] = []
        for sub in ("new", "cur"):
            d = self.maildir / sub
            if d.is_dir():
                files.extend(p for p in d.iterdir() if p.is_file())
        return sorted(files, key=lambda p: p.stat().st_mtime_ns)

    def delivered_count(self) -> int:
        """How many messages are in the Maildir (cheap: one listing of new/)."""
        count = 0
        for sub in ("new", "cur"):
            try:
                count += sum(1 for _ in os.scandir(self.maildir / sub))
            except FileNotFoundError:
                pass
        return count

    def wait_for_delivery(self, count: int = 1, *, timeout: float = 20) -> list[Path]:
        """Wait until the Maildir holds at least `count` messages and return them.

        Raises:
            TimeoutError: with the maillog tail, when they do not arrive in time.
        """
        try:
            wait_until(lambda: self.delivered_count() >= count, timeout=timeout,
                       what=f"{count} message(s) in {self.maildir}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nmaillog tail:\n{self.maillog()[-3000:]}") from exc
        return self.delivered()

    def queue(self) -> list[dict[str, object]]:
        """The messages in this instance's queue (`postqueue -j`), one dict per message."""
        done = subprocess.run(["postqueue", "-c", str(self.config_dir), "-j"],
                              capture_output=True, text=True, timeout=30, check=False)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def wait_for_log(self, text: str, *, timeout: float = 10) -> str:
        """Wait until `text` appears in the maillog; return the maillog.

        Raises:
            TimeoutError: when it does not appear in time.
        """
        wait_until(lambda: text in self.maillog(), timeout=timeout, what=f"{text!r} in maillog")
        return self.maillog()


def _greets(port: int) -> bool:
    """True when an SMTP server on port sends a 220 banner."""
    if not tcp_accepts(port):
        return False
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as s:
            banner = s.recv(512)
            s.sendall(b"QUIT\r\n")
            return banner.startswith(b"220")
    except OSError:
        return False


def start_postfix(base_dir: Path, *, listeners: Mapping[str, str] | None = None,
                  main_cf: Mapping[str, str] | None = None,
                  mailbox: str = "user@test.local",
                  sasl_users: Mapping[str, str] | None = None) -> PostfixInstance:
    """Build and start a PostfixInstance (see its docs); the caller must `stop()` it."""
    instance = PostfixInstance(base_dir, listeners=dict(listeners or {"smtp": ""}),
                               mailbox=mailbox, main_cf=dict(main_cf or {}),
                               sasl_users=dict(sasl_users or {}))
    instance.start()
    return instance


def wait_all_exited(pids: Sequence[int], *, timeout: float) -> bool:
    """True when every pid exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False
