"""``spamwarden serve``: every service of one host in one supervised process tree.

Start order: the embedded Redis (unless ``redis.url`` is set), then the worker,
the DNS server, the API, intake and last the milter, so nothing that accepts
mail or complaints runs before what it writes to.  Stop order is the reverse:
the front doors close first, Redis last (it flushes its append-only file).

A child that exits on its own is restarted with exponential back-off (1 s,
doubling to 60 s; reset after it has run for 60 s).  SIGTERM or SIGINT stop
everything; SIGHUP is passed on to the children (they reload what they can).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._unixsock import unix_path
from .config import Config, parse_hostport
from .errors import ServiceError
from .logs import event
from .metrics import prepare_multiprocess_dir
from .redisconn import EmbeddedRedis, embedded_socket, redact_url

__all__ = ["Supervisor", "Service", "SERVICES", "service_addresses"]

log = logging.getLogger("spamwarden.serve")



@dataclass(frozen=True)
class Service:
    """One supervised service.

    :param name: its name (``--only``, the banner, the logs).
    :param argv: the ``spamwarden`` arguments that run it in the foreground
        (``--config`` is appended); the child is ``python -m spamwarden ARGV...``.
    """

    name: str
    argv: tuple[str, ...]


#: the services of one host, in start order (stop order is the reverse); a test checks
#: that each ``argv`` is a command of ``spamwarden``
SERVICES: tuple[Service, ...] = (
    Service("worker", ("worker",)),
    Service("rbl", ("rbl",)),
    Service("api", ("api",)),
    Service("intake", ("intake",)),
    Service("milter", ("milter",)),
)
_STOP_GRACE = 15.0
_BACKOFF_MAX = 60.0
_HEALTHY_AFTER = 60.0


def service_addresses(cfg: Config) -> dict[str, str]:
    """Where each service listens, for the start banner and ``doctor``."""
    return {
        "milter": cfg.milter.listen,
        "intake": (cfg.intake.listen if unix_path(cfg.intake.listen) is not None
                   else f"smtp://{cfg.intake.listen}") + (" (LMTP)" if cfg.intake.lmtp else ""),
        "rbl": ", ".join(f"dns://{a} (udp+tcp) zone {cfg.rbl.zone}" for a in cfg.rbl.listen),
        "api": f"http://{cfg.api.listen}",
        "worker": "(no socket)",
    }


def _report_hint(cfg: Config) -> str:
    """How to send intake a report, for the start banner."""
    dom = cfg.intake.local_domains[0] if cfg.intake.local_domains else "localhost"
    rcpt = cfg.intake.report_address
    if "@" not in rcpt:
        rcpt = f"{rcpt}@{dom}"
    if cfg.intake.require_auth:
        # Intake believes only the login its own Postfix records: a report sent straight
        # to it would be refused, so say where reports come from instead.
        return (f"forward spam to {rcpt} through your Postfix as a logged-in user "
                '(docs/operations.md, "Who can list whom")')
    path = unix_path(cfg.intake.listen)
    where = (f"--socket {path}" if path is not None
             else "--server {}:{}".format(*parse_hostport(cfg.intake.listen)))
    proto = " --protocol LMTP" if cfg.intake.lmtp else ""
    return (f"swaks {where}{proto} --from user@{dom} --to {rcpt} "
            "--attach-type message/rfc822 --attach @spam.eml")


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 1.0
    next_start: float = 0.0
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)


def _forget_metrics(child: _Child) -> None:
    """Drop a dead child's live gauges from the shared metrics directory."""
    mp_dir = child.env.get("PROMETHEUS_MULTIPROC_DIR")
    if mp_dir and child.proc is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(child.proc.pid, mp_dir)  # type: ignore[no-untyped-call]


class Supervisor:
    """Runs and watches the services of one host.

    :param cfg: the loaded configuration.
    :param config_path: the file the children load (the same one).
    :param only: run just these services (default: every one of ``services``).
    :param services: the services, in start order (default :data:`SERVICES`).
    :raises ServiceError: ``only`` names a service not in ``services``.
    """

    def __init__(
        self, cfg: Config, *, config_path: str | None = None, only: Sequence[str] | None = None,
        services: Sequence[Service] = SERVICES,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path or (cfg.source if cfg.source != "<defaults>" else None)
        known = [s.name for s in services]
        if only:
            unknown = [s for s in only if s not in known]
            if unknown:
                raise ServiceError(
                    f"unknown service(s) {', '.join(unknown)}; known: {', '.join(known)}"
                )
            self._specs = [s for s in services if s.name in only]
        else:
            self._specs = list(services)
        self.services = [s.name for s in self._specs]
        self.redis: EmbeddedRedis | None = None
        self.children: list[_Child] = []
        self._stopping = False
        self._hup = False

    # -- signals ------------------------------------------------------------------------------

    def _on_term(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _on_hup(self, signum: int, _frame: object) -> None:
        self._hup = True

    # -- lifecycle ----------------------------------------------------------------------------

    def _child_env(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env["SPAMWARDEN_REDIS_URL"] = redis_url
        # One metrics directory for the whole tree: the API's /metrics reports every process.
        metrics_dir = Path(self.cfg.service.state_dir, "metrics").absolute()
        prepare_multiprocess_dir(metrics_dir)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if self.config_path:
            env["SPAMWARDEN_CONFIG"] = str(Path(self.config_path).absolute())
        return env

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=child.env, stdin=subprocess.DEVNULL)
        child.started = time.monotonic()
        event(log, "service started", service=child.name, pid=child.proc.pid)

    def run(self) -> int:
        """Start everything, supervise until a stop signal, stop in order.

        :returns: the exit status (0 after a clean stop).
        :raises ServiceError: the embedded Redis could not start.
        """
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        state = Path(self.cfg.service.state_dir)
        # Consent evidence, reporters, originals and the token key live here: owner only.
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        pidfile = state / "serve.pid"
        pidfile.write_text(f"{os.getpid()}\n")
        try:
            if self.cfg.redis.url or os.environ.get("SPAMWARDEN_REDIS_URL"):
                url = os.environ.get("SPAMWARDEN_REDIS_URL") or str(self.cfg.redis.url)
            else:
                self.redis = EmbeddedRedis(
                    embedded_socket(self.cfg).parent, binary=self.cfg.redis.server_binary
                )
                self.redis.start()
                url = self.redis.url
                event(log, "embedded redis started", socket=str(self.redis.socket),
                      aof=str(self.redis.directory / "appendonlydir"))
            self._banner(url)
            env = self._child_env(url)
            for svc in self._specs:
                argv = [sys.executable, "-m", "spamwarden", *svc.argv]
                if self.config_path:
                    argv += ["--config", str(self.config_path)]
                copies = self.cfg.rbl.workers if svc.name == "rbl" else 1
                for i in range(1, copies + 1):
                    # rbl.workers: copies sharing the listen addresses (SO_REUSEPORT)
                    child = _Child(svc.name, argv, env=dict(env, SPAMWARDEN_RBL_WORKER=str(i))
                                   if copies > 1 else env)
                    self.children.append(child)
                    self._spawn(child)
            self._loop()
            return 0
        finally:
            self._stop_all()
            try:
                pidfile.unlink()
            except OSError:
                pass

    def _banner(self, redis_url: str) -> None:
        addrs = service_addresses(self.cfg)
        lines = ["spamwarden is starting:", f"  redis    {redact_url(redis_url)}"]
        for name in self.services:
            lines.append(f"  {name:<8} {addrs[name]}")
        if "intake" in self.services:
            lines.append(f"  reports: {_report_hint(self.cfg)}")
        if not self.services:
            lines.append("  (no service available in this build besides Redis)")
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            if self._hup:
                self._hup = False
                for c in self.children:
                    if c.proc and c.proc.poll() is None:
                        c.proc.send_signal(signal.SIGHUP)
            for c in self.children:
                if c.proc is not None and c.proc.poll() is not None:
                    rc = c.proc.returncode
                    ran = now - c.started
                    if ran >= _HEALTHY_AFTER:
                        c.backoff = 1.0
                    c.next_start = now + c.backoff
                    event(log, "service exited", logging.WARNING, service=c.name, status=rc,
                          ran_s=round(ran, 1), restart_in_s=c.backoff)
                    c.backoff = min(c.backoff * 2, _BACKOFF_MAX)
                    _forget_metrics(c)
                    c.proc = None
                if c.proc is None and now >= c.next_start and not self._stopping:
                    c.restarts += 1
                    self._spawn(c)
            if self.redis is not None and self.redis.proc is not None \
                    and self.redis.proc.poll() is not None:
                event(log, "embedded redis exited; restarting", logging.WARNING,
                      status=self.redis.proc.returncode)
                try:
                    self.redis.start()
                except ServiceError as exc:
                    event(log, "embedded redis restart failed", logging.ERROR, error=str(exc))
            time.sleep(0.2)

    def _stop_all(self) -> None:
        for c in reversed(self.children):
            if c.proc is not None and c.proc.poll() is None:
                c.proc.terminate()
                try:
                    c.proc.wait(_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    event(log, "service did not stop; killing", logging.WARNING, service=c.name)
                    c.proc.kill()
                    c.proc.wait()
                event(log, "service stopped", service=c.name, status=c.proc.returncode)
        if self.redis is not None:
            self.redis.stop()
            event(log, "embedded redis stopped")
