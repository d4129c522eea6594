"""Keeping a milter process's threads on one CPU core (``milter.cpu_affinity``).

Python runs one thread of a process at a time.  A milter process has many threads
(libmilter's one per Postfix connection, the rule engine's, the lookups'), and each time
one of them lets go of the interpreter lock (every Hyperscan scan and match callback,
every socket call) a thread waiting for the lock is woken.  When the process may run on
several cores, that thread wakes on another core and the two hand the lock back and
forth: a cross-core wake-up and a context switch each time, about 200 a message with
SpamAssassin's rules on.  On one core the thread that let go usually takes the lock
straight back, and the others run when it blocks or its switch interval runs out.
One process never uses more than about one core anyway; ``milter.workers`` puts each
worker on a core of its own.  The price: a pinned process cannot move to an idle core
when its own is busy with other work (Postfix's processes), which without the rules,
where the lock changes hands far less, cost more messages a second than the switches
saved; so ``"auto"`` pins only where the rules run (:func:`resolve`).

Two kinds of work leave the core:

- a message in the rule engine's slow lane (:func:`widen_thread` while it is there): it
  matches in ``regex`` without the interpreter lock, on another core if one is free,
  while the pinned core goes on with the rest of the mail;
- a process forked from a pinned one (the rule engine's processes,
  ``rules.processes``) gets back the cores its parent had before pinning.

Linux only; elsewhere, or where the kernel refuses, :func:`pin_process` says why and
nothing changes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection

__all__ = ["NO_USABLE_CORE", "choose_cpu", "narrow_thread", "parse_cpus", "pin_process",
           "pinned_cpu", "resolve", "usable_cpus", "widen_thread"]

#: :func:`choose_cpu`'s reason when a CPU list names no core the process may use (the
#: only reason worth a warning: "off" and a one-core host are as meant)
NO_USABLE_CORE = "no listed core is usable"
#: the largest CPU number a list may name
_MAX_CPU = 4095

_lock = threading.Lock()
#: the core this process is pinned to, and the cores it had before (``None``: not pinned)
_cpu: int | None = None
_wide: frozenset[int] = frozenset()
_fork_hook = False


def parse_cpus(text: str) -> tuple[int, ...]:
    """CPU numbers written as ``taskset -c`` and ``/sys`` write them: ``"0-3,6"`` ->
    ``(0, 1, 2, 3, 6)``, in order, each once.

    :raises ValueError: not such a list (with what was wrong).
    """
    out: dict[int, None] = {}  # (ordered, each once)
    for part in text.split(","):
        part = part.strip()
        lo_s, dash, hi_s = part.partition("-")
        if not lo_s.strip().isdigit() or (dash and not hi_s.strip().isdigit()):
            raise ValueError(f"{part!r} is not a CPU number or a range such as 2-3")
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
        if hi < lo or hi > _MAX_CPU:
            raise ValueError(f"{part!r}: a range runs from a lower to a higher CPU number, "
                             f"at most {_MAX_CPU}")
        out.update(dict.fromkeys(range(lo, hi + 1)))
    return tuple(out)


def usable_cpus() -> frozenset[int]:
    """The cores this process may run on now (its affinity mask; every core where the
    platform has no such mask)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


def resolve(setting: str, *, rules: bool) -> str:
    """``milter.cpu_affinity`` as it applies: ``"auto"`` is ``"on"`` where the process
    runs SpamAssassin's rules (``rules``: their scans and callbacks hand the lock around
    about 130 more times a message, and one core wins in CPU and in rate), else ``"off"``
    (without them one core still saves CPU, but where Postfix keeps the cores busy the
    milter then waits for its own: fewer messages a second).  Other values as they
    are."""
    if setting == "auto":
        return "on" if rules else "off"
    return setting


def choose_cpu(setting: str, index: int, usable: Collection[int]) -> tuple[int | None, str]:
    """The core the milter process numbered ``index`` (0 for a single process) goes on,
    and why: ``setting`` (as :func:`resolve` gives it) is ``"on"`` (the usable cores in
    turn), ``"off"`` or a CPU list (its cores in turn, those not usable left out).
    ``None``: stay as it is."""
    if setting == "off":
        return None, "off"
    if len(usable) <= 1:
        return None, "one core"
    if setting == "on":
        cores = sorted(usable)
    else:
        listed = parse_cpus(setting)
        cores = [c for c in listed if c in usable]
        if not cores:
            return None, NO_USABLE_CORE
    return cores[index % len(cores)], setting


def pin_process(cpu: int) -> str:
    """Pin every thread of this process, and the threads it starts later, to ``cpu``;
    processes it forks get the cores it had before.  Returns ``""``, or why it could
    not (the process is then as it was)."""
    global _cpu, _wide, _fork_hook
    with _lock:
        wide = usable_cpus() if _cpu is None else _wide
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        for tid in _threads():
            try:
                os.sched_setaffinity(tid, {cpu})
            except (ProcessLookupError, OSError):
                pass  # (a thread that has just ended)
        _cpu, _wide = cpu, wide
        if not _fork_hook:
            os.register_at_fork(after_in_child=_after_fork)
            _fork_hook = True
    return ""


def pinned_cpu() -> int | None:
    """The core this process is pinned to, or ``None``."""
    return _cpu


def widen_thread() -> None:
    """Let the calling thread run on every core the process had before pinning (no-op
    when it is not pinned)."""
    if _cpu is not None:
        _set_thread(_wide)


def narrow_thread() -> None:
    """Put the calling thread back on the process's core (no-op when not pinned)."""
    if _cpu is not None:
        _set_thread({_cpu})


def _set_thread(cpus: Collection[int]) -> None:
    try:
        os.sched_setaffinity(0, cpus)  # (Linux: pid 0 is the calling thread)
    except OSError:
        pass  # (the core went away: the thread stays where it is)


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _after_fork() -> None:
    global _cpu
    if _cpu is not None:
        _set_thread(_wide)
        _cpu = None
