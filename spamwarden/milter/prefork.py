"""Several milter processes sharing one listening socket.

libmilter serves every Postfix connection on a thread of its own, but Python runs one
thread at a time per process: however many connections are open, one milter process uses
at most about one core.  With ``milter.workers`` above 1 the milter opens libmilter's
listening socket once, then forks that many processes; each runs libmilter's listener and
threads over the same socket, and the kernel hands every new connection to one of them.
A Postfix connection (and each of its messages) stays with the process that accepted it,
so nothing per message crosses processes.

The parent does no mail work.  It forwards SIGTERM and SIGINT to the workers and waits
for them, restarts a worker that dies (back-off from 1 s up to 30 s), and exits with
status 1 when a unix socket it cannot re-create was removed under it.  Workers die with
the parent (``PR_SET_PDEATHSIG``): a parent killed with SIGKILL leaves no worker behind
holding the port.

The listening socket is made non-blocking before the fork: every worker's listener
wakes for a new connection, one ``accept()`` wins, and libmilter treats the others'
``EAGAIN`` as "try again" instead of blocking in ``accept()`` with its listener lock held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..logs import event

__all__ = ["WorkerPool", "listening_socket"]

log = logging.getLogger("spamwarden.milter")

_PR_SET_PDEATHSIG = 1
_RESTART_MIN = 1.0
_RESTART_MAX = 30.0
_STABLE_AFTER = 60.0  # a worker that ran this long restarts after the shortest back-off


def listening_socket(conn: str) -> socket.socket | None:
    """This process's listening socket for the libmilter address ``conn``.

    libmilter keeps its socket to itself; this finds it among the process's open files.

    :param conn: ``inet:PORT@HOST``, ``inet6:PORT@HOST`` or ``unix:/path`` (``local:``).
    :returns: a duplicate of the socket (close it when done; libmilter's stays open),
        or ``None`` when no such socket is listening yet.
    """
    kind, _, rest = conn.partition(":")
    port = path = None
    if kind in ("inet", "inet6"):
        port = int(rest.split("@", 1)[0])
    else:
        path = rest
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            fd = os.dup(int(name))
        except (OSError, ValueError):
            continue
        try:
            sock = socket.socket(fileno=fd)  # owns only the duplicate
        except OSError:
            os.close(fd)
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                if port is not None and sock.family in (socket.AF_INET, socket.AF_INET6) \
                        and sock.getsockname()[1] == port:
                    return sock
                if path is not None and sock.family == socket.AF_UNIX \
                        and sock.getsockname() == path:
                    return sock
        except OSError:
            pass
        sock.close()
    return None


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent exits (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's SIGTERM still stops the workers
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    backoff: float = _RESTART_MIN
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)


class WorkerPool:
    """Fork ``count`` workers running ``target(index)`` and keep them running.

    Call it with SIGTERM and SIGINT already blocked (libmilter's own signal thread in
    each worker waits for them); it also blocks SIGCHLD in the parent.

    :param count: workers, at least 1.
    :param target: runs in the worker; its return value is the worker's exit status.
    :param unix_path: the unix socket's path, checked after a worker exits: a
        worker that stopped by itself may have removed it (libmilter does when not root),
        and a socket nobody can reach is worse than a restart of the whole milter.
    :param stop_timeout: seconds the workers get after SIGTERM before SIGKILL.
    :param clock: monotonic seconds.
    """

    def __init__(
        self,
        count: int,
        target: Callable[[int], int],
        *,
        unix_path: str | None = None,
        stop_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.target = target
        self.unix_path = unix_path
        self.stop_timeout = stop_timeout
        self._clock = clock
        self._slots = [_Slot(i) for i in range(count)]
        self._stopping = False
        self._deadline = 0.0
        self.status = 0

    @property
    def pids(self) -> list[int]:
        """The running workers' process ids."""
        return [s.pid for s in self._slots if s.pid]

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM / SIGINT (or a fatal
        condition); returns the exit status for the milter: 0 after a clean stop."""
        waited = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, waited)
        for slot in self._slots:
            self._spawn(slot)
        while self.pids or not self._stopping:
            info = signal.sigtimedwait(waited, 0.5)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self.stop(f"signal {signal.Signals(info.si_signo).name}")
            self._reap()
            now = self._clock()
            if self._stopping:
                if now >= self._deadline:
                    for pid in self.pids:
                        _signal(pid, signal.SIGKILL)
                    self._deadline = now + self.stop_timeout
                continue
            for slot in self._slots:
                if not slot.pid and slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)
        return self.status

    def stop(self, why: str, *, status: int = 0) -> None:
        """SIGTERM every worker; they get ``stop_timeout`` seconds before SIGKILL."""
        if self._stopping:
            return
        self._stopping = True
        self.status = status
        self._deadline = self._clock() + self.stop_timeout
        event(log, "milter_workers_stopping", why=why, workers=len(self.pids))
        for pid in self.pids:
            _signal(pid, signal.SIGTERM)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                _die_with_parent(parent)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                code = self.target(slot.index)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - the worker must end in os._exit
                traceback.print_exc()
            finally:
                try:
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, self._clock(), None
        event(log, "milter_worker_started", worker=slot.index, pid=pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            how = _describe(wstatus)
            if self._stopping:
                event(log, "milter_worker_stopped", worker=slot.index, pid=pid, exit=how)
                continue
            now = self._clock()
            if now - slot.started >= _STABLE_AFTER:
                slot.backoff = _RESTART_MIN
            slot.restart_at = now + slot.backoff
            event(log, "milter_worker_died", logging.ERROR, worker=slot.index, pid=pid,
                  exit=how, restart_in=f"{slot.backoff:g}s")
            slot.backoff = min(slot.backoff * 2, _RESTART_MAX)
            if self.unix_path is not None and not _is_socket(self.unix_path):
                event(log, "milter_socket_gone", logging.ERROR, path=self.unix_path)
                self.stop(f"{self.unix_path} was removed", status=1)


def _describe(wstatus: int) -> str:
    if os.WIFSIGNALED(wstatus):
        return f"killed by {signal.Signals(os.WTERMSIG(wstatus)).name}"
    return f"status {os.waitstatus_to_exitcode(wstatus)}"


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
