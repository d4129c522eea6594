"""`milter.workers`: several `spamwarden milter` processes on one listening socket, kept
running by their parent, stopped by its SIGTERM and never outliving it."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.support.milterproc import MilterProcess, _descendants
from tests.support.net import wait_until

pytestmark = pytest.mark.integration


def _workers(milter: MilterProcess) -> list[int]:
    assert milter.pid is not None
    return [p for p in _descendants(milter.pid) if p != milter.pid]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _replaced(workers: list[int], killed: int) -> bool:
    return len(workers) == 2 and killed not in workers


def _start(spamwarden_milter, dns_server, module_redis_url, workers: int,
           **milter: object) -> MilterProcess:
    process = spamwarden_milter(nameservers=[dns_server.address], redis_url=module_redis_url,
                                overrides={"milter": {"workers": workers, **milter}})
    wait_until(lambda: len(_workers(process)) == workers, timeout=30,
               what=f"{workers} milter workers")
    wait_until(lambda: process.log().count("milter_start") >= workers, timeout=60,
               what="every worker serving")
    return process


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(
        spamwarden_milter, dns_server, module_redis_url) -> None:
    milter = _start(spamwarden_milter, dns_server, module_redis_url, workers=2)
    first = _workers(milter)
    os.kill(first[0], signal.SIGKILL)
    # one look at the process tree per try: two looks could see the killed worker as a
    # zombie in the first and reaped in the second, before any replacement (and before
    # the parent has logged its death)
    wait_until(lambda: _replaced(_workers(milter), first[0]), timeout=30,
               what="the killed worker replaced")
    assert "milter_worker_died" in milter.log() and "killed by SIGKILL" in milter.log()
    assert milter.accepting()
    running = _workers(milter)
    assert milter.stop(timeout=20) == 0
    assert not any(_alive(p) for p in running)
    assert "milter_workers_stopping" in milter.log()


def test_workers_die_with_a_killed_parent_and_free_the_port(
        spamwarden_milter, dns_server, module_redis_url) -> None:
    milter = _start(spamwarden_milter, dns_server, module_redis_url, workers=2)
    running = _workers(milter)
    milter.kill()  # SIGKILL: no chance to stop the workers itself
    wait_until(lambda: not any(_alive(p) for p in running), timeout=10,
               what="workers gone with their parent")
    milter.wait_port_closed(timeout=10)
    milter.start()  # the same port binds again at once
    wait_until(lambda: milter.log().count("milter_start") >= 2 + 2, timeout=60,
               what="the restarted workers serving")


def test_workers_setting_is_checked(tmp_path) -> None:
    from tests.support.milterproc import spamwarden_command

    config = tmp_path / "bad.toml"
    config.write_text("[milter]\nworkers = 100\n")
    done = subprocess.run([*spamwarden_command(), "milter", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "milter.workers = 100: expected a number of processes from 1 to 64" in done.stderr, \
        done.stderr


def _cores(pid: int) -> set[tuple[int, ...]]:
    """The core sets of every thread of ``pid``, as the kernel reports them."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.add(tuple(sorted(os.sched_getaffinity(int(tid)))))
        except ProcessLookupError:
            pass
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="needs at least two CPU cores this process may use")
def test_each_worker_keeps_its_threads_on_a_core_of_its_own(
        spamwarden_milter, dns_server, module_redis_url) -> None:
    """``milter.cpu_affinity = "on"`` (what ``"auto"`` is with the rules on): worker i on
    the i-th usable core, every thread of it (libmilter's included, after a connection),
    the same core again for a replaced worker; the parent stays free."""
    usable = sorted(os.sched_getaffinity(0))
    milter = _start(spamwarden_milter, dns_server, module_redis_url, workers=2,
                    cpu_affinity="on")
    assert milter.accepting()
    assert milter.pid is not None
    cores = {pid: _cores(pid) for pid in _workers(milter)}
    assert sorted(cores.values()) == [{(usable[0],)}, {(usable[1],)}], cores
    assert _cores(milter.pid) == {tuple(usable)}
    lines = [ln for ln in milter.log().splitlines() if "milter_cpu " in ln]
    assert sorted(ln.split(" cpu=", 1)[1].split()[0] for ln in lines) == \
        [str(usable[0]), str(usable[1])], lines
    gone = next(p for p, c in cores.items() if c == {(usable[1],)})
    os.kill(gone, signal.SIGKILL)
    wait_until(lambda: _replaced(_workers(milter), gone),
               timeout=30, what="the killed worker replaced")
    wait_until(lambda: milter.log().count("milter_start") >= 3, timeout=60,
               what="the new worker serving")
    new = next(p for p in _workers(milter) if p not in cores)
    assert _cores(new) == {(usable[1],)}
