"""Milter processes for tests and benchmarks: `spamwarden milter` with a generated config, or
any other milter command, started on a loopback port and stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .net import (
    LOOPBACK,
    free_port,
    pid_alive,
    tcp_accepts,
    terminate,
    unix_accepts,
    wait_until,
)

__all__ = [
    "MilterProcessError",
    "spamwarden_command",
    "write_toml",
    "spamwarden_milter_config",
    "MilterProcess",
    "process_cpu_seconds",
    "tree_cpu_seconds",
    "spamwarden_milter",
]


_CLK_TCK = os.sysconf("SC_CLK_TCK")


class MilterProcessError(RuntimeError):
    """A milter process did not start, or died."""


def spamwarden_command() -> list[str]:
    """The argv prefix that runs the `spamwarden` console script of this environment."""
    script = Path(sys.executable).parent / "spamwarden"
    if script.exists():
        return [str(script)]
    found = shutil.which("spamwarden")
    return [found] if found else [sys.executable, "-m", "spamwarden"]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # an inline table ([[rbl.external]] entries, codes)
        return "{ " + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def write_toml(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """Write `{"section": {"key": value}}` (dotted section names for subtables) as TOML."""
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        out.append("")
    path.write_text("\n".join(out))
    return path


def spamwarden_milter_config(path: Path, *, port: int, nameservers: Sequence[str],
                             redis_url: str | None, state_dir: Path,
                             authserv_id: str = "mx.test", unix_path: Path | None = None,
                             overrides: Mapping[str, Mapping[str, object]] | None = None) -> Path:
    """Write a spamwarden TOML config for a milter on inet:127.0.0.1:<port>.

    Args:
        path: the file to write.
        port: the milter's TCP port on 127.0.0.1.
        nameservers: `dns.nameservers`, e.g. ["127.0.0.1:5300"].
        redis_url: `redis.url`; None leaves it unset (the embedded Redis).
        state_dir: `service.state_dir`.
        authserv_id: `milter.authserv_id`.
        unix_path: listen on this unix socket instead of the port.
        overrides: more settings, merged per section over these.

    Returns:
        path.
    """
    listen = f"unix:{unix_path}" if unix_path is not None else f"inet:{LOOPBACK}:{port}"
    sections: dict[str, dict[str, object]] = {
        "service": {"state_dir": str(state_dir), "log_level": "info"},
        "dns": {"nameservers": list(nameservers), "timeout": "1s"},
        "milter": {"listen": listen, "authserv_id": authserv_id},
    }
    if unix_path is not None:  # Postfix's smtpd runs as postfix: its group may connect
        sections["milter"]["socket_group"] = "postfix"
    if redis_url is not None:
        sections["redis"] = {"url": redis_url}
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update(values)
    return write_toml(path, sections)


@dataclass
class MilterProcess:
    """A milter subprocess listening on 127.0.0.1:<port>; `start()`, then always `stop()`.

    Args:
        argv: the command line.
        port: the TCP port it listens on (ignored when unix_path is set).
        log_path: where its stdout and stderr go.
        env: extra environment variables.
        unix_path: the unix socket it listens on instead of a TCP port.
        widen_socket: make the unix socket connectable for every user once it appears
            (Postfix's smtpd runs as postfix), for a milter that cannot set its socket's
            mode itself; spamwarden's sets it (milter.socket_mode, socket_group).
    """

    argv: list[str]
    port: int
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    unix_path: Path | None = None
    widen_socket: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def postfix_socket(self) -> str:
        """The socket in Postfix's `smtpd_milters` syntax."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"inet:{LOOPBACK}:{self.port}"

    @property
    def libmilter_socket(self) -> str:
        """The socket in libmilter/miltertest syntax."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"inet:{self.port}@{LOOPBACK}"

    def accepting(self) -> bool:
        """True when a connection to the milter's socket succeeds."""
        if self.unix_path is None:
            return tcp_accepts(self.port)
        return unix_accepts(self.unix_path)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, *, timeout: float = 30) -> None:
        """Start the process and wait until its port accepts connections.

        Raises:
            MilterProcessError: when it exits or does not listen in time (log included).
        """
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env}, start_new_session=True)
        proc = self.process

        def listening() -> bool:
            if proc.poll() is not None:
                raise MilterProcessError(f"{self.argv[0]} exited with {proc.returncode}:\n"
                                         f"{self.log()[-3000:]}")
            return self.accepting()

        try:
            wait_until(listening, timeout=timeout, interval=0.1,
                       what=f"milter listening on {self.postfix_socket}")
        except TimeoutError as exc:
            self.stop()
            raise MilterProcessError(f"{exc}\n{self.log()[-3000:]}") from exc
        if self.unix_path is not None and self.widen_socket:
            os.chmod(self.unix_path, 0o666)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 10) -> int | None:
        """SIGTERM, wait up to `timeout` s, then SIGKILL; returns the exit code. Idempotent."""
        return terminate(self.process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL at once (a crash, as far as Postfix can tell)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def wait_port_closed(self, *, timeout: float = 10) -> None:
        wait_until(lambda: not self.accepting(), timeout=timeout,
                   what=f"{self.postfix_socket} closed")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far (/proc/PID/stat utime + stime)."""
        pid = self.pid
        if pid is None or not pid_alive(pid):
            return 0.0
        return process_cpu_seconds(pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process in seconds, from /proc/PID/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its live descendants (rspamd runs workers)."""
    total = 0.0
    for child in _descendants(pid) + [pid]:
        try:
            total += process_cpu_seconds(child)
        except (OSError, IndexError, ValueError):
            pass
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def spamwarden_milter(work_dir: Path, *, nameservers: Sequence[str], redis_url: str | None,
                      authserv_id: str = "mx.test", port: int | None = None,
                      unix_path: Path | None = None,
                      overrides: Mapping[str, Mapping[str, object]] | None = None
                      ) -> MilterProcess:
    """A (not yet started) `spamwarden milter --config FILE` process with a generated config.

    Args:
        work_dir: a directory for the config, state and log.
        nameservers: `dns.nameservers`.
        redis_url: `redis.url`.
        authserv_id: `milter.authserv_id`.
        port: the port to listen on; None picks a free one.
        unix_path: listen on this unix socket instead of a TCP port.
        overrides: more config settings per section.
    """
    port = port or free_port()
    state = work_dir / "state"
    state.mkdir(parents=True, exist_ok=True)
    config = spamwarden_milter_config(work_dir / "spamwarden.toml", port=port,
                                      nameservers=nameservers, redis_url=redis_url,
                                      state_dir=state, authserv_id=authserv_id,
                                      unix_path=unix_path, overrides=overrides)
    return MilterProcess([*spamwarden_command(), "milter", "--config", str(config)], port,
                         work_dir / "milter.log", unix_path=unix_path, widen_socket=False)
