"""Loopback ports and readiness waits shared by the server wrappers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "LOOPBACK",
    "free_port",
    "wait_until",
    "tcp_accepts",
    "unix_accepts",
    "pid_alive",
    "live_pid",
    "wait_exit_or_kill",
    "terminate",
    "read_pidfile",
]


LOOPBACK = "127.0.0.1"

_T = TypeVar("_T")


def free_port(*, udp_too: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Args:
        udp_too: also require the same UDP port to be free (for DNS servers).

    Returns:
        The port number. The kernel picks it (port 0), so two callers never race each other
        for the same number inside one process; another process could still take it before
        the server binds, which the callers' start-up checks would report.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise OSError("no free loopback port found in 50 tries")


def wait_until(check: Callable[[], _T], *, timeout: float, interval: float = 0.05,
               what: str = "condition") -> _T:
    """Poll `check` until it returns a true value.

    Returns:
        That value (e.g. the list that became non-empty).

    Raises:
        TimeoutError: naming `what` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.1f}s")
        time.sleep(interval)


def unix_accepts(path: str | os.PathLike[str]) -> bool:
    """True when a connection to the unix socket at ``path`` succeeds."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(path))
        return True
    except OSError:
        return False


def tcp_accepts(port: int, host: str = LOOPBACK) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # "pid (comm) S ..." - state Z means it exited and waits for its parent.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def live_pid(remembered: int | None, pidfile: Path) -> int | None:
    """A daemon's pid while it runs: the one remembered at start (so a removed pidfile does not
    leave it running unnoticed), else the one in `pidfile`; None once it has exited."""
    pid = remembered or read_pidfile(pidfile)
    return pid if pid is not None and pid_alive(pid) else None


def wait_exit_or_kill(pid: int, *, timeout: float, what: str) -> None:
    """Wait until process `pid` has exited; SIGKILL it when `timeout` seconds pass first.

    Args:
        what: names the process in the wait (e.g. "unbound exit").
    """
    try:
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=what)
    except TimeoutError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def terminate(proc: subprocess.Popen[bytes] | None, *, timeout: float = 10) -> int | None:
    """Stop a child: SIGTERM, wait up to `timeout` s, then SIGKILL. Idempotent.

    Returns:
        Its exit code, or None when there was no process.
    """
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def read_pidfile(path: Path) -> int | None:
    """The pid written in a pidfile, or None when it is missing or empty."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
