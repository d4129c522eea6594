"""Milter throughput benchmark: one private Postfix, four SMTP listeners, the same real mail.

Listeners (one Postfix instance, so the MTA side is identical):
    postfix     no milter: the ceiling
    pymilter    bench/milter/header_milter.py, adds one header: the floor for any pymilter
    spamwarden  `spamwarden milter`, DNS from a local unbound answering the sender domains,
                a private Redis, the default model
    rspamd      rspamd from Debian, rspamd_proxy in milter mode (one proxy worker per core),
                DNS pointed at the same unbound; greylisting off (it would tempfail first
                messages), rbl and fuzzy off (internet), DKIM/ARC signing of "local" mail off

Messages are the real ones from ../shared/corpus (mbox `From ` line stripped), sent with one
SMTP session per message from N concurrent sessions (10 and 30), in interleaved rounds (the
peer order rotates every round). A run ends when every accepted message is in the Maildir;
messages/s = messages / that time. CPU per message comes from /proc/PID/stat (utime + stime)
of each milter process (rspamd: its whole process tree), before and after the run.

Milters are reached over inet:127.0.0.1:PORT (default) or unix sockets (--transport unix).
Over TCP, Postfix's small milter writes meet delayed ACKs: even the header-only pymilter is
capped near 100 messages/s at 10 sessions, against ~390 over a unix socket.

--rules runs spamwarden with `[rules] enabled = true` (SpamAssassin's installed rules); the
rule databases are compiled before the runs into --rules-cache, which is kept, so only the
first such run spends the minutes compiling.

Usage: bench/milter/run [--quick] [--messages N] [--rounds N] [--concurrency 10,30]
                        [--transport inet|unix] [--peers LIST] [--time-limit SECONDS]
                        [--workers N] [--cpu-affinity auto|on|off|CPUS]
                        [--rules [--rules-cache DIR] [--rules-processes N]] [--hostile N]
                        [--json FILE]

--hostile N also runs every peer while N more sessions send a message built to be slow in
backtracking matchers, and prints the share of its ordinary rate each keeps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from tests.support.dnszone import DnsZone, UnboundServer
from tests.support.milterproc import (
    MilterProcess,
    process_cpu_seconds,
    spamwarden_command,
    spamwarden_milter,
    tree_cpu_seconds,
)
from tests.support.net import LOOPBACK, free_port, pid_alive, tcp_accepts, unix_accepts, wait_until
from tests.support.postfix import PostfixInstance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

RCPT = "user@test.local"
PEERS = ("postfix", "pymilter", "spamwarden", "rspamd")


# ---- corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchMessage:
    mail_from: str
    data: bytes


def shared_dir() -> Path:
    return Path(os.environ.get("SPAMWARDEN_SHARED", ROOT.parent / "shared"))


def load_corpus(count: int, *, seed: int = 20261129) -> list[BenchMessage]:
    """A fixed sample of `count` corpus messages (ham and spam of both collections), with the
    mbox From line stripped, CRLF line ends, and the From address as envelope sender."""
    corpus = shared_dir() / "corpus"
    files: list[Path] = []
    for collection in ("spamassassin", "csdmc2010"):
        for label in ("ham", "spam"):
            d = corpus / collection / label
            if d.is_dir():
                files.extend(sorted(p for p in d.iterdir() if p.is_file()))
    rng = random.Random(seed)
    rng.shuffle(files)
    out = []
    parser = BytesHeaderParser()
    for path in files:
        if len(out) >= count:
            break
        raw = path.read_bytes()
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
        if not raw.strip() or len(raw) > 200_000:
            continue
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        try:
            headers = parser.parsebytes(raw)
            addrs = getaddresses([str(v) for v in headers.get_all("From", [])])
        except Exception:  # noqa: BLE001 - hostile corpus headers: fall back to a fixed sender
            addrs = []
        # SMTP without SMTPUTF8 takes ASCII addresses only (smtplib would raise).
        sender = next((a for _, a in addrs if a.isascii() and re.fullmatch(
            r"[^@\s<>]+@[A-Za-z0-9.-]+\.[A-Za-z]+", a)), "bench@sender.test")
        out.append(BenchMessage(sender.lower(), raw))
    return out


def sender_zone(messages: list[BenchMessage]) -> DnsZone:
    """DNS answers for every envelope-sender domain: SPF passing 127.0.0.1, DMARC p=none."""
    zone = DnsZone()
    for domain in sorted({m.mail_from.rsplit("@", 1)[1] for m in messages}):
        zone.add_spf(domain, "v=spf1 ip4:127.0.0.1 ~all")
        zone.add_dmarc(domain, "v=DMARC1; p=none")
    zone.add_a("bench-client.test", "127.0.0.1")
    return zone


# ---- peers ---------------------------------------------------------------------------------


@dataclass
class Peer:
    """A milter under test (None for Postfix alone) and how to read its CPU time."""

    name: str
    socket: str = ""
    process: MilterProcess | None = None
    tree_pid: int | None = None
    header: bytes = b""
    helper_pids: tuple[int, ...] = ()

    def cpu_seconds(self) -> float | None:
        """CPU seconds of the milter: its process and any children (rspamd's workers)."""
        pid = self.tree_pid
        if pid is None and self.process is not None:
            pid = self.process.pid
        if pid is None or not pid_alive(pid):
            return None
        return tree_cpu_seconds(pid)

    def helper_cpu_seconds(self) -> float | None:
        """CPU seconds of the servers the milter queries (Redis, the DNS server)."""
        if not self.helper_pids:
            return None
        total = 0.0
        for pid in self.helper_pids:
            try:
                total += process_cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                pass
        return total

    def marks(self, message_path: Path) -> bool:
        """True when the milter left its header on a delivered message (it really ran)."""
        if not self.header:
            return True
        head = message_path.read_bytes().split(b"\n\n", 1)[0]
        return any(line.lower().startswith(self.header.lower()) for line in head.split(b"\n"))


class RspamdServer:
    """rspamd with a private LOCAL_CONFDIR/DBDIR/RUNDIR/LOGDIR, proxy in milter mode."""

    def __init__(self, base: Path, *, dns: str, unix: bool = False,
                 proxy_count: int = 1, sa_rules: str | None = None) -> None:
        self.base = base
        self.proxy_count = proxy_count
        # a glob of SpamAssassin rule files for rspamd's spamassassin module (the same
        # rules spamwarden's --rules runs), or None: rspamd's own rules only
        self.sa_rules = sa_rules
        self.dns = dns
        self.unix = unix
        self.proxy_port = free_port()
        self.normal_port = free_port()
        self.controller_port = free_port()
        self.local = base / "local"
        self.dirs = {k: base / k for k in ("db", "run", "log")}
        self.proxy_unix = self.dirs["run"] / "proxy.sock"

    @property
    def postfix_socket(self) -> str:
        if self.unix:
            return f"unix:{self.proxy_unix}"
        return f"inet:{LOOPBACK}:{self.proxy_port}"

    def _proxy_accepts(self) -> bool:
        if not self.unix:
            return tcp_accepts(self.proxy_port)
        return unix_accepts(self.proxy_unix)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        for d in (self.local / "local.d", self.local / "override.d", *self.dirs.values()):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        for d in self.dirs.values():
            shutil.chown(d, user="_rspamd", group="_rspamd")
        local, override = self.local / "local.d", self.local / "override.d"
        bind = (f"{self.proxy_unix} mode=0666" if self.unix
                else f"{LOOPBACK}:{self.proxy_port}")
        (override / "worker-proxy.inc").write_text(
            f'bind_socket = "{bind}";\nmilter = yes;\ntimeout = 120s;\n'
            'upstream "local" {\n  default = yes;\n'
            f'  hosts = "{LOOPBACK}:{self.normal_port}";\n}}\ncount = {self.proxy_count};\n')
        (override / "worker-normal.inc").write_text(f'bind_socket = "{LOOPBACK}:{self.normal_port}";\n')
        (override / "worker-controller.inc").write_text(
            f'bind_socket = "{LOOPBACK}:{self.controller_port}";\n')
        (override / "worker-fuzzy.inc").write_text("count = -1;\n")
        (local / "options.inc").write_text(
            f'dns {{\n  nameserver = ["{self.dns}"];\n  timeout = 0.3s;\n  retransmits = 1;\n}}\n'
            "local_addrs = [];\n")
        (local / "logging.inc").write_text('level = "error";\n')
        if self.sa_rules:
            (local / "spamassassin.conf").write_text(f'ruleset = "{self.sa_rules}";\n')
        (local / "milter_headers.conf").write_text(
            'use = ["x-spamd-result", "x-spam-status", "authentication-results"];\n'
            "skip_local = false;\nskip_authenticated = false;\n")
        # Greylisting would tempfail every first message; the others call out to the internet
        # (rbl, fuzzy) or sign outgoing mail from 127.0.0.1 (no keys here).
        for module in ("greylist", "fuzzy_check", "rbl", "dkim_signing"):
            (local / f"{module}.conf").write_text("enabled = false;\n")
        (local / "arc.conf").write_text("sign_local = false;\nsign_authenticated = false;\n")
        for p in self.local.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(self.local, 0o755)

    def start(self, *, timeout: float = 60) -> None:
        self.write_config()
        with open(self.base / "rspamd.out", "ab") as log:
            self.proc = subprocess.Popen(
                ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd",
                 f"--var=LOCAL_CONFDIR={self.local}", f"--var=DBDIR={self.dirs['db']}",
                 f"--var=RUNDIR={self.dirs['run']}", f"--var=LOGDIR={self.dirs['log']}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"rspamd exited {proc.returncode}: {self.log_tail()}")
            return self._proxy_accepts() and tcp_accepts(self.normal_port)

        wait_until(up, timeout=timeout, interval=0.2, what="rspamd proxy and normal workers")
        if self.sa_rules:
            self._wait_for_hyperscan()

    def _wait_for_hyperscan(self, *, timeout: float = 900, quiet: float = 10) -> None:
        """Wait until rspamd's hs_helper has compiled the SpamAssassin rules' Hyperscan
        databases and the workers have loaded them (until then rspamd matches with PCRE,
        far slower): every ``*.hs`` in DBDIR has its ``*.hs.unser`` and nothing there has
        changed for ``quiet`` seconds."""
        db = self.dirs["db"]
        proc = self.proc
        assert proc is not None

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"rspamd exited {proc.returncode}: {self.log_tail()}")
            compiled = list(db.glob("*.hs"))
            if not compiled or any(not Path(f"{p}.unser").exists() for p in compiled):
                return False
            newest = max(p.stat().st_mtime for p in db.iterdir())
            return time.time() - newest >= quiet

        wait_until(ready, timeout=timeout, interval=1.0,
                   what="rspamd's Hyperscan databases of the SpamAssassin rules")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self) -> str:
        out = []
        for p in (self.base / "rspamd.out", self.dirs["log"] / "rspamd.log"):
            try:
                out.append(p.read_text(errors="replace")[-1500:])
            except OSError:
                pass
        return "\n".join(out)


# ---- sending -------------------------------------------------------------------------------


@dataclass
class SendOutcome:
    accepted: int = 0
    rejected: int = 0
    tempfailed: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)


def send_all(port: int, messages: list[BenchMessage], *, sessions: int,
             deadline: float) -> SendOutcome:
    """Send every message, one SMTP session per message, from `sessions` threads."""
    work: queue.Queue[BenchMessage] = queue.Queue()
    for m in messages:
        work.put(m)
    outcome = SendOutcome()
    lock = threading.Lock()

    def note(kind: str, sample: str | None = None) -> None:
        with lock:
            setattr(outcome, kind, getattr(outcome, kind) + 1)
            if sample and len(outcome.samples) < 5:
                outcome.samples.append(sample)

    def worker() -> None:
        while time.monotonic() < deadline:
            try:
                m = work.get_nowait()
            except queue.Empty:
                return
            try:
                with smtplib.SMTP(LOOPBACK, port, local_hostname="bench-client.test",
                                  timeout=120) as smtp:
                    smtp.sendmail(m.mail_from, [RCPT], m.data)
                note("accepted")
            except smtplib.SMTPResponseException as exc:
                kind = "tempfailed" if 400 <= exc.smtp_code < 500 else "rejected"
                note(kind, f"{exc.smtp_code} {exc.smtp_error[:120]!r}")
            except smtplib.SMTPRecipientsRefused as exc:
                code = next(iter(exc.recipients.values()))[0]
                note("tempfailed" if 400 <= code < 500 else "rejected", f"rcpt {code}")
            except (OSError, smtplib.SMTPException) as exc:
                note("errors", repr(exc)[:160])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    return outcome


# ---- one run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    peer: str
    sessions: int
    round: int
    messages: int
    seconds: float
    rate: float
    cpu_ms_per_message: float | None
    helper_cpu_ms_per_message: float | None
    accepted: int
    rejected: int
    tempfailed: int
    errors: int
    complete: bool


def clear_maildir(postfix: PostfixInstance) -> None:
    for sub in ("new", "cur", "tmp"):
        d = postfix.maildir / sub
        if d.is_dir():
            for entry in os.scandir(d):
                os.unlink(entry.path)


def hostile_message(fields: int = 40) -> bytes:
    """A message built to be slow in backtracking matchers: ``fields`` To fields of 1 KB
    of blanks (SpamAssassin's ``__PDS_TONAME_EQ_TOLOCAL`` is cubic over them in Python's
    ``re`` and ``regex``; spamwarden's rules stop it at ``rules.time_limit``)."""
    to = b"".join(b"To:" + b" " * 1000 + b"x@test.local\r\n" for _ in range(fields))
    return (b"From: Alice <alice@bench.test>\r\n" + to + b"Subject: hello\r\n"
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <h@bench.test>\r\n\r\n"
            b"hello\r\n")


def send_hostile(port: int, stop: threading.Event, mail_from: str, data: bytes) -> list[int]:
    """Send ``data`` back to back, one session each, until ``stop``; returns the count of
    accepted messages (a list of one, filled as it goes)."""
    accepted = [0]
    while not stop.is_set():
        try:
            with smtplib.SMTP(LOOPBACK, port, local_hostname="bench-client.test",
                              timeout=300) as smtp:
                smtp.sendmail(mail_from, [RCPT], data)
            accepted[0] += 1
        except (OSError, smtplib.SMTPException):
            pass
    return accepted


def run_once(postfix: PostfixInstance, peer: Peer, messages: list[BenchMessage], *,
             sessions: int, round_no: int, deadline: float, hostile: int = 0,
             by_send: bool = False) -> RunResult:
    """One run of ``messages`` through ``peer``; with ``hostile`` more sessions sending
    :func:`hostile_message` back to back meanwhile.  ``by_send``: the run's time ends
    when the last of ``messages`` has its SMTP answer (the milter's work is done; the
    hostile messages still in flight are waited for, not counted)."""
    clear_maildir(postfix)
    port = postfix.smtp[peer.name].port
    stop = threading.Event()
    hostile_counts: list[list[int]] = []
    hostile_threads = []
    for _ in range(hostile):
        counts: list[int] = [0]
        hostile_counts.append(counts)

        def attacker(out: list[int] = counts) -> None:
            out[0] = send_hostile(port, stop, messages[0].mail_from, hostile_message())[0]

        hostile_threads.append(threading.Thread(target=attacker, daemon=True))
    cpu0, helper0 = peer.cpu_seconds(), peer.helper_cpu_seconds()
    t0 = time.monotonic()
    for t in hostile_threads:
        t.start()
    outcome = send_all(port, messages, sessions=sessions, deadline=deadline)
    sent_at = time.monotonic()
    stop.set()
    for t in hostile_threads:
        t.join(max(1.0, deadline - time.monotonic()))
    expected = outcome.accepted + sum(c[0] for c in hostile_counts)
    complete = True
    try:
        wait_until(lambda: postfix.delivered_count() >= expected,
                   timeout=max(1.0, min(120.0, deadline - time.monotonic())), interval=0.005,
                   what="delivery of every accepted message")
    except TimeoutError:
        complete = False
    elapsed = (sent_at if by_send else time.monotonic()) - t0
    cpu1, helper1 = peer.cpu_seconds(), peer.helper_cpu_seconds()
    delivered = postfix.delivered()
    if delivered and not peer.marks(delivered[0]):
        print(f"    warning: {peer.name} left no {peer.header.decode()} header: "
              "is the milter attached?", flush=True)
    handled = outcome.accepted + outcome.rejected + outcome.tempfailed
    cpu_ms = None
    if cpu0 is not None and cpu1 is not None and handled:
        cpu_ms = (cpu1 - cpu0) * 1000 / handled
    helper_ms = None
    if helper0 is not None and helper1 is not None and handled:
        helper_ms = (helper1 - helper0) * 1000 / handled
    if outcome.samples:
        print(f"    {peer.name}: {outcome.rejected} rejected, {outcome.tempfailed} tempfailed, "
              f"{outcome.errors} errors; e.g. {outcome.samples[:2]}", flush=True)
    return RunResult(peer.name, sessions, round_no, len(messages), elapsed,
                     handled / elapsed if elapsed else 0.0, cpu_ms, helper_ms, outcome.accepted,
                     outcome.rejected, outcome.tempfailed, outcome.errors, complete)


# ---- report --------------------------------------------------------------------------------


def report(results: list[RunResult], peers: list[str], concurrencies: list[int]) -> str:
    lines = ["", ("peer        sessions  msgs/s (median, min-max)   ratio to postfix   "
                  "CPU ms/msg  +Redis/DNS   accepted/rejected/tempfail/err per run")]
    for sessions in concurrencies:
        base_by_round = {r.round: r.rate for r in results
                         if r.peer == "postfix" and r.sessions == sessions}
        for name in peers:
            runs = [r for r in results if r.peer == name and r.sessions == sessions]
            if not runs:
                continue
            rates = [r.rate for r in runs]
            ratios = [r.rate / base_by_round[r.round] for r in runs
                      if base_by_round.get(r.round)]
            cpus = [r.cpu_ms_per_message for r in runs if r.cpu_ms_per_message is not None]
            last = runs[-1]
            ratio_text = (f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                          if ratios else "-")
            cpu_text = f"{statistics.median(cpus):7.2f}" if cpus else "      -"
            helpers = [r.helper_cpu_ms_per_message for r in runs
                       if r.helper_cpu_ms_per_message is not None]
            cpu_text += f"  {statistics.median(helpers):7.2f}" if helpers else "        -"
            flag = "" if all(r.complete for r in runs) else "  INCOMPLETE"
            lines.append(
                f"{name:<11} {sessions:>8}  {statistics.median(rates):7.1f} "
                f"({min(rates):6.1f}-{max(rates):6.1f})   {ratio_text:<17}  {cpu_text}     "
                f"{last.accepted}/{last.rejected}/{last.tempfailed}/{last.errors}{flag}")
    lines.append("")
    for sessions in concurrencies:
        lines.append(f"targets at {sessions} sessions: " + target_summary(results, sessions))
    return "\n".join(lines)


def _per_round_ratio(results: list[RunResult], sessions: int, num: str, den: str) -> list[float]:
    by_round: dict[int, dict[str, float]] = {}
    for r in results:
        if r.sessions == sessions:
            by_round.setdefault(r.round, {})[r.peer] = r.rate
    return [rates[num] / rates[den] for rates in by_round.values()
            if rates.get(num) and rates.get(den)]


def target_summary(results: list[RunResult], sessions: int) -> str:
    """Issue 2's targets: spamwarden >= 0.9 x the pymilter floor and >= rspamd, <= 3 ms CPU."""
    parts = []
    floor = _per_round_ratio(results, sessions, "spamwarden", "pymilter")
    if floor:
        m = statistics.median(floor)
        parts.append(f"spamwarden/pymilter {m:.2f} ({'met' if m >= 0.9 else 'NOT met'}: >= 0.9)")
    vs_rspamd = _per_round_ratio(results, sessions, "spamwarden", "rspamd")
    if vs_rspamd:
        m = statistics.median(vs_rspamd)
        parts.append(f"spamwarden/rspamd {m:.2f} ({'met' if m >= 1.0 else 'NOT met'}: >= 1)")
    cpus = [r.cpu_ms_per_message for r in results if r.peer == "spamwarden"
            and r.sessions == sessions and r.cpu_ms_per_message is not None]
    if cpus:
        m = statistics.median(cpus)
        parts.append(f"CPU {m:.2f} ms/msg ({'met' if m <= 3.0 else 'NOT met'}: <= 3)")
    return "; ".join(parts) or "no spamwarden runs"


def hostile_report(results: list[RunResult], attacked: list[RunResult], senders: int) -> str:
    """Each peer's ordinary messages/s alone and with ``senders`` hostile senders, and
    the share it keeps (medians over the rounds)."""
    lines = ["", f"with {senders} hostile senders (ordinary messages/s, median over rounds):"]
    for (name, sessions) in sorted({(r.peer, r.sessions) for r in attacked}):
        alone = [r.rate for r in results if (r.peer, r.sessions) == (name, sessions)]
        under = [r.rate for r in attacked if (r.peer, r.sessions) == (name, sessions)]
        a, u = statistics.median(alone), statistics.median(under)
        lines.append(f"  {name:<11} {sessions:>3} sessions: alone {a:7.1f}, attacked {u:7.1f}: "
                     f"keeps {u / a if a else 0:.2f}")
    return "\n".join(lines)


def prebuild_rules(config: Path) -> str:
    """Run `spamwarden rules --stats` on the milter's config: compiles the rule databases
    into rules.cache_dir (minutes the first time) so the milter only loads them.

    Returns:
        The last line of the statistics (patterns, databases, cached or not).
    """
    done = subprocess.run([*spamwarden_command(), "rules", "--config", str(config), "--stats"],
                          capture_output=True, text=True, timeout=1800, check=True)
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


# ---- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/milter/run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 messages, 1 round (a smoke run)")
    ap.add_argument("--messages", type=int, default=300, help="messages per run (default 300)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--concurrency", default="10,30", help="SMTP sessions, comma-separated")
    ap.add_argument("--peers", default=",".join(PEERS), help="subset of " + ",".join(PEERS))
    ap.add_argument("--time-limit", type=float, default=900.0,
                    help="stop starting new runs after this many seconds (default 900)")
    ap.add_argument("--transport", choices=("inet", "unix"), default="inet",
                    help="how Postfix reaches the milters: inet:127.0.0.1:PORT (default) or "
                         "unix sockets")
    ap.add_argument("--workers", type=int, default=1,
                    help="spamwarden's milter.workers (default 1; 0: one per CPU core)")
    ap.add_argument("--cpu-affinity", default=None, metavar="SETTING",
                    help="spamwarden's milter.cpu_affinity: auto, on, off or a CPU list "
                         "(default: the configuration's default, auto)")
    ap.add_argument("--rspamd-proxies", type=int, default=os.cpu_count() or 1,
                    help="rspamd_proxy worker processes (default: one per core, like its "
                         "normal workers; Debian's count = 1 caps it at 30 sessions)")
    ap.add_argument("--json", type=Path, help="also write every run as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--rules", action="store_true",
                    help="spamwarden with [rules] enabled = true (SpamAssassin's installed "
                         "rules); the databases are compiled before the runs into --rules-cache")
    ap.add_argument("--rspamd-sa-rules", nargs="?", const="/usr/share/spamassassin/*.cf",
                    default=None, metavar="GLOB",
                    help="rspamd also runs SpamAssassin rule files through its spamassassin "
                         "module (default glob /usr/share/spamassassin/*.cf): the same "
                         "rules as spamwarden's --rules; its Hyperscan databases are "
                         "compiled before the runs (minutes)")
    ap.add_argument("--rules-processes", type=int, default=None,
                    help="rules.processes for --rules (engine processes per milter "
                         "process; default: the configuration's default)")
    ap.add_argument("--hostile", type=int, default=0, metavar="N",
                    help="also run every peer while N more sessions send a message built to "
                         "be slow in backtracking matchers (40 To fields of blanks) back to "
                         "back; prints the share of its rate each keeps (a run's time then "
                         "ends at the last ordinary message's SMTP answer)")
    ap.add_argument("--rules-cache", type=Path,
                    default=Path("/var/tmp/spamwarden-bench-rules-cache"),
                    help="rules.cache_dir for --rules, kept between runs so only the first "
                         "compiles (minutes); default /var/tmp/spamwarden-bench-rules-cache")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.rounds = min(args.messages, 100), 1
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    wanted = [p for p in args.peers.split(",") if p]
    unknown = set(wanted) - set(PEERS)
    if unknown:
        ap.error(f"unknown peers: {sorted(unknown)}")
    if "postfix" not in wanted:
        wanted.insert(0, "postfix")

    if not (shared_dir() / "corpus").is_dir():
        print(f"skipped: corpus not found at {shared_dir() / 'corpus'} "
              "(set SPAMWARDEN_SHARED to the folder holding corpus/)")
        return 0
    for binary in ("postfix", "unbound", "redis-server") + (("rspamd",) if "rspamd" in wanted
                                                               else ()):
        if not (shutil.which(binary) or Path("/usr/sbin", binary).exists()):
            print(f"{binary} is not installed: run `make test` (it installs the Debian packages)")
            return 2

    started = time.monotonic()
    hard_deadline = started + args.time_limit
    messages = load_corpus(args.messages)
    digest = hashlib.sha256(b"".join(m.data for m in messages)).hexdigest()[:12]
    print(f"{len(messages)} corpus messages ({sum(len(m.data) for m in messages) // 1024} KiB, "
          f"sha256 {digest}), sessions {concurrencies}, rounds {args.rounds}, "
          f"milters over {args.transport}"
          + (f"; rspamd also runs SpamAssassin's rules ({args.rspamd_sa_rules})"
             if args.rspamd_sa_rules else ""), flush=True)
    unix = args.transport == "unix"

    work = Path(tempfile.mkdtemp(prefix="sw-bench-milter-"))
    os.chmod(work, 0o755)
    cleanup: list[object] = []
    peers: dict[str, Peer] = {"postfix": Peer("postfix")}
    try:
        dns = UnboundServer(work / "dns", sender_zone(messages))
        (work / "dns").mkdir()
        dns.start()
        cleanup.append(dns)

        if "pymilter" in wanted:
            port = free_port()
            path = work / "pymilter.sock" if unix else None
            listen = f"unix:{path}" if path else f"inet:{port}@{LOOPBACK}"
            proc = MilterProcess([sys.executable, str(HERE / "header_milter.py"), listen], port,
                                 work / "pymilter.log", unix_path=path)
            proc.start()
            cleanup.append(proc)
            peers["pymilter"] = Peer("pymilter", proc.postfix_socket, proc,
                                     header=b"X-Bench-Milter:")

        if "spamwarden" in wanted:
            from spamwarden.redisconn import EmbeddedRedis
            redis = EmbeddedRedis(work / "redis")
            (work / "redis").mkdir()
            redis.start()
            cleanup.append(redis)
            (work / "spamwarden").mkdir()
            rules: dict[str, dict[str, object]] = (
                {"rules": {"enabled": True, "cache_dir": str(args.rules_cache),
                           **({} if args.rules_processes is None
                              else {"processes": args.rules_processes})}}
                if args.rules else {})
            proc = spamwarden_milter(work / "spamwarden", nameservers=[dns.address],
                                     redis_url=redis.url, authserv_id="mx.bench.test",
                                     unix_path=work / "spamwarden" / "milter.sock" if unix
                                     else None,
                                     overrides={"milter": {"quarantine": "tag",
                                                           # libmilter's replies without
                                                           # delayed-ACK waits over TCP
                                                           "tcp_nodelay": True,
                                                           "workers": args.workers,
                                                           **({} if args.cpu_affinity is None
                                                              else {"cpu_affinity":
                                                                    args.cpu_affinity})},
                                                "service": {"log_level": "warning"},
                                                **rules})
            if rules:  # compile (or load) the databases now, not inside the start timeout
                print(f"rules: {prebuild_rules(work / 'spamwarden' / 'spamwarden.toml')}",
                      flush=True)
            try:
                proc.start(timeout=60)
                cleanup.append(proc)
                helpers = tuple(p for p in (redis.proc.pid if redis.proc else None, dns.pid)
                                if p is not None)
                peers["spamwarden"] = Peer("spamwarden", proc.postfix_socket, proc,
                                           header=b"X-Spam-Status:", helper_pids=helpers)
            except Exception as exc:  # noqa: BLE001 - report and bench the others
                print(f"spamwarden milter did not start, left out: {exc}", flush=True)

        if "rspamd" in wanted:
            rspamd = RspamdServer(work / "rspamd", dns=dns.address, unix=unix,
                                  proxy_count=args.rspamd_proxies,
                                  sa_rules=args.rspamd_sa_rules)
            try:
                rspamd.start()
                cleanup.append(rspamd)
                assert rspamd.proc is not None
                peers["rspamd"] = Peer("rspamd", rspamd.postfix_socket,
                                       tree_pid=rspamd.proc.pid, header=b"X-Spamd-Result:",
                                       helper_pids=(dns.pid,) if dns.pid else ())
            except Exception as exc:  # noqa: BLE001
                print(f"rspamd did not start, left out: {exc}", flush=True)
                rspamd.stop()

        postfix = PostfixInstance(work / "postfix",
                                  listeners={name: p.socket for name, p in peers.items()},
                                  hostname="mx.bench.test",
                                  main_cf={"virtual_destination_concurrency_limit": "20"})
        (work / "postfix").mkdir()
        postfix.start()
        cleanup.append(postfix)

        names = [n for n in PEERS if n in peers]
        warm = messages[:20]
        for name in names:
            run_once(postfix, peers[name], warm, sessions=5, round_no=0,
                     deadline=time.monotonic() + 120)
        print(f"warm-up done; peers {names}", flush=True)

        results: list[RunResult] = []
        attacked: list[RunResult] = []
        for round_no in range(1, args.rounds + 1):
            order = names[round_no - 1:] + names[:round_no - 1]
            for sessions in concurrencies:
                for name in order:
                    if time.monotonic() > hard_deadline:
                        break
                    r = run_once(postfix, peers[name], messages, sessions=sessions,
                                 round_no=round_no, deadline=hard_deadline + 60,
                                 by_send=args.hostile > 0)
                    results.append(r)
                    cpu = f"{r.cpu_ms_per_message:.2f}" if r.cpu_ms_per_message is not None else "-"
                    print(f"  round {round_no} sessions {sessions:>2} {name:<10} "
                          f"{r.rate:7.1f} msg/s  {r.seconds:6.2f} s  cpu {cpu} ms/msg"
                          f"{'' if r.complete else '  INCOMPLETE'}", flush=True)
                    if args.hostile > 0 and name != "postfix":
                        h = run_once(postfix, peers[name], messages, sessions=sessions,
                                     round_no=round_no, deadline=hard_deadline + 60,
                                     hostile=args.hostile, by_send=True)
                        attacked.append(h)
                        print(f"  round {round_no} sessions {sessions:>2} {name:<10} "
                              f"{h.rate:7.1f} msg/s  {h.seconds:6.2f} s  with {args.hostile} "
                              f"hostile senders{'' if h.complete else '  INCOMPLETE'}",
                              flush=True)
        if postfix.queue():
            print(f"note: {len(postfix.queue())} messages still in the Postfix queue")
        print(report(results, names, concurrencies))
        if attacked:
            print(hostile_report(results, attacked, args.hostile))
        print(f"\ntotal {time.monotonic() - started:.0f} s")
        if args.json:
            args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
        return 0
    finally:
        for item in reversed(cleanup):
            try:
                item.stop()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"stopping {type(item).__name__}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
