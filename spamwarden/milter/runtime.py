"""The milter process: listening socket, worker processes, signals, background threads.

:func:`run_milter` is what ``spamwarden milter`` runs (through
:func:`spamwarden.wiring.run_milter`, which supplies the scanner and the companions).
It installs the MIME boundary matcher, opens libmilter's socket, blocks the stop
signals before any thread starts (libmilter's own signal thread takes them), ignores
SIGHUP (a habitual "reload" must not stop the milter), and either serves in this
process or forks ``milter.workers`` worker processes (:mod:`.prefork`) that each
build their own scanner.  Each serving process runs, beside libmilter's threads, the
delivery recorder (counts accepted mail after the reply) and its companions (the
classifier's feedback follower, the listing change watcher).

The pymilter callbacks themselves live in :mod:`.app` (translation only).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

import Milter

from .._affinity import NO_USABLE_CORE, choose_cpu, pin_process, resolve, usable_cpus
from .._unixsock import (
    make_socket_dir,
    owner_only_umask,
    parse_mode,
    resolve_group,
    secure,
    unix_path,
)
from ..config import Config
from ..logs import event
from ..mail import install_boundary_matcher
from .app import SpamwardenMilter, _register, libmilter_socket
from .delivery import DeliveryRecorder
from .inflight import ScanBudget
from .prefork import WorkerPool, listening_socket
from .quickack import ConnectionAcker
from .registry import known_symbols
from .scanner import Scanner
from .symbols import check_overrides

__all__ = ["Companions", "run_milter"]

log = logging.getLogger("spamwarden.milter")


class _Stoppable(Protocol):
    def stop(self) -> None: ...


#: starts a milter process's background helpers for its scanner; each has ``stop()``
Companions = Callable[[Scanner], Sequence[_Stoppable]]


def _open_socket(cfg: Config, conn: str, *, shared: bool) -> None:
    """Open libmilter's listening socket now (a stale unix socket is removed first).

    :param shared: the socket is about to be shared by several worker processes:
        make it non-blocking (see :mod:`.prefork`).
    :raises ServiceError: the socket cannot be opened.
    """
    from ..errors import ServiceError

    path = unix_path(conn)
    try:
        # libmilter binds and listens in one call, under the process's umask: open a
        # unix socket for the owner only, then give it the configured mode and group.
        with owner_only_umask() if path is not None else contextlib.nullcontext():
            Milter.milter.opensocket(True)
    except Milter.milter.error as exc:
        raise ServiceError(
            f"milter on {cfg.milter.listen}: {exc} (is another milter listening there, or "
            "is the socket's directory not writable?)"
        ) from exc
    if path is not None:
        mode = parse_mode(cfg.milter.socket_mode)
        try:
            secure(path, mode, resolve_group(cfg.milter.socket_group))
        except (OSError, ValueError) as exc:
            raise ServiceError(
                f"milter on {cfg.milter.listen}: cannot give the socket mode "
                f"{mode:04o} and group {cfg.milter.socket_group or '(own)'}: {exc}"
            ) from exc
        event(log, "milter_socket", path=path, mode=f"{mode:04o}",
              group=cfg.milter.socket_group or "(own)")
    sock = listening_socket(conn)
    if sock is None:
        raise ServiceError(f"milter on {cfg.milter.listen}: libmilter opened no listening socket")
    with sock:
        if cfg.milter.tcp_nodelay and sock.family in (socket.AF_INET, socket.AF_INET6):
            # libmilter leaves Nagle's algorithm on, and its replies are several small
            # packets (one per header change, then the verdict): each after the first
            # would wait for Postfix's delayed ACK.  Linux gives accepted connections
            # the listener's TCP_NODELAY, so once here covers them all.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            event(log, "milter_tcp_nodelay", listen=cfg.milter.listen)
        if shared:
            sock.setblocking(False)  # the file status flag is libmilter's socket's too


def _serve(cfg: Config, scanner: Scanner, *, companions: Companions,
           worker: int | None = None) -> int:
    """Run libmilter's listener (opened by :func:`_open_socket`) in this process until
    it stops (SIGTERM / SIGINT, caught by libmilter's own signal thread); ``companions``
    starts the process's background helpers, stopped when it stops."""
    from ..errors import ServiceError

    _pin(cfg, worker)
    # Everything loaded so far (the model, the public suffix list, the modules) lives as
    # long as the process: keep the collector from walking it again on every full
    # collection, and let young objects pile up longer between collections (each message
    # allocates thousands and frees nearly all of them by reference counting).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    recorder = DeliveryRecorder(scanner)
    helpers = companions(scanner)
    conn = libmilter_socket(cfg.milter.listen)
    SpamwardenMilter.acker = (
        ConnectionAcker(int(conn.split(":", 1)[1].split("@", 1)[0]),
                        timeout=int(cfg.milter.timeout))
        if cfg.milter.tcp_quickack and conn.startswith("inet") else None)
    Milter.factory = functools.partial(
        SpamwardenMilter, scanner, recorder=recorder,
        budget=ScanBudget(cfg.milter.max_scan_bytes_in_flight))
    event(
        log, "milter_start", listen=cfg.milter.listen, pid=os.getpid(), worker=worker,
        authserv_id=scanner.authserv_id,
        unavailable="; ".join(scanner.unavailable_checks) or None,
    )
    sys.stdout.flush()
    try:
        Milter.milter.main()
    except Milter.milter.error as exc:
        raise ServiceError(f"milter on {cfg.milter.listen}: {exc}") from exc
    finally:
        for helper in helpers:
            helper.stop()
        recorder.close()
        scanner.close()
    event(log, "milter_stop", listen=cfg.milter.listen, pid=os.getpid(), worker=worker,
          counts_dropped=recorder.dropped or None)
    return 0


def _pin(cfg: Config, worker: int | None) -> None:
    """Put this milter process's threads on one core (``milter.cpu_affinity``), before
    libmilter and the helpers start theirs; the start line says where."""
    usable = usable_cpus()
    setting = resolve(cfg.milter.cpu_affinity, rules=cfg.rules.enabled)
    cpu, why = choose_cpu(setting, worker or 0, usable)
    if cpu is None:
        if why == NO_USABLE_CORE:
            event(log, "milter_cpu_unpinned", level=logging.WARNING, worker=worker,
                  reason=why, cpu_affinity=cfg.milter.cpu_affinity,
                  usable=",".join(map(str, sorted(usable))))
        return
    failed = pin_process(cpu)
    if failed:
        event(log, "milter_cpu_unpinned", level=logging.WARNING, worker=worker, reason=failed,
              cpu_affinity=cfg.milter.cpu_affinity)
        return
    event(log, "milter_cpu", cpu=cpu, worker=worker, cpu_affinity=cfg.milter.cpu_affinity,
          usable=",".join(map(str, sorted(usable))))


def run_milter(
    cfg: Config,
    *,
    build: Callable[[], Scanner] | None = None,
    companions: Companions | None = None,
    scanner: Scanner | None = None,
) -> int:
    """Serve Postfix on ``milter.listen`` until SIGTERM / SIGINT (libmilter's threads).

    With ``milter.workers`` above 1 (0: one per CPU core) the socket is opened here and
    shared by that many worker processes (:class:`~.prefork.WorkerPool`), each calling
    ``build`` for its own scanner after the fork.  A ``scanner`` given here runs in this
    process alone.  ``spamwarden.wiring.run_milter`` supplies ``build`` and ``companions``.

    :param build: makes a scanner (required unless ``scanner`` is given).
    :param companions: starts a process's background helpers for its scanner (each with
        ``stop()``); default none.

    :returns: 0 after a clean stop; 1 when the worker pool gave up (its socket was removed).
    :raises ConfigError: ``milter.listen`` is not a milter address, or
        ``[policy.symbols]`` names a symbol no check declares.
    :raises ServiceError: the socket cannot be opened.
    """
    conn = libmilter_socket(cfg.milter.listen)
    socket_path = unix_path(conn)
    if socket_path is not None:
        make_socket_dir(socket_path)
    # libmilter stops cleanly on SIGTERM/SIGINT through its own sigwait() thread, which
    # only works when no other thread can take the signal first.  Block them before any
    # thread starts (ours, and the BLAS pool the classifier's numpy brings); threads
    # inherit the mask.  Otherwise the default action kills the process mid-message.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    # libmilter stops on SIGHUP, and systemd counts that as a clean exit (no restart):
    # one habitual "reload" would leave Postfix tempfailing all mail.  Ignore it; the
    # model file is re-read when it changes, and a configuration change needs a restart.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The MIME boundary matcher (spamwarden.mail): installed once, before any worker forks.
    install_boundary_matcher()
    # A configuration error is said once, here, not by every worker after the fork.
    check_overrides(cfg.policy.symbols, (spec.name for spec in known_symbols(cfg)))
    if scanner is None and build is None:
        raise ValueError("run_milter needs a scanner or a way to build one")
    helpers: Companions = companions if companions is not None else (lambda s: ())
    workers = 1 if scanner is not None else cfg.milter.effective_workers()
    _register(conn, int(cfg.milter.timeout))
    _open_socket(cfg, conn, shared=workers > 1)
    if workers == 1:
        if scanner is None:
            assert build is not None
            scanner = build()
        return _serve(cfg, scanner, companions=helpers)
    # Nothing before the fork may start a thread: the workers build everything themselves.
    event(log, "milter_workers", listen=cfg.milter.listen, pid=os.getpid(), workers=workers)
    assert build is not None
    make = build
    pool = WorkerPool(workers, lambda index: _serve(cfg, make(), companions=helpers, worker=index),
                      unix_path=socket_path)
    status = pool.run()
    event(log, "milter_stop", listen=cfg.milter.listen, pid=os.getpid(), workers=workers,
          status=status)
    return status
