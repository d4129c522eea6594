"""``milter.cpu_affinity``: a milter process's threads on one core (``spamwarden._affinity``).

Pinning changes the process it runs in, so each test that pins runs its script in a
fresh interpreter and reads the masks the kernel reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spamwarden._affinity import NO_USABLE_CORE, choose_cpu, parse_cpus, resolve

ROOT = Path(__file__).resolve().parents[2]
USABLE = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(USABLE) < 2, reason="pinning needs a host where this "
                               "process may use at least two CPU cores")


def _run(script: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# a helper every script defines: the cores of each thread of a process, from the kernel
_MASKS = """
import json, os, threading, time
def masks(pid="self"):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = sorted(os.sched_getaffinity(int(tid)))
        except ProcessLookupError:
            pass
    return out
"""


def test_cpu_lists_are_read_as_taskset_writes_them() -> None:
    assert parse_cpus("0-3,6") == (0, 1, 2, 3, 6)
    assert parse_cpus(" 2 , 1,2 ") == (2, 1)
    assert parse_cpus("7") == (7,)
    for bad in ("", "a", "3-1", "1-", "-1", "1,,2", "0x1", "4096", "1.5"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


def test_auto_pins_where_the_rules_run() -> None:
    assert resolve("auto", rules=True) == "on"
    assert resolve("auto", rules=False) == "off"
    for other in ("on", "off", "2,3"):
        assert resolve(other, rules=False) == resolve(other, rules=True) == other


def test_each_process_takes_the_next_core() -> None:
    assert choose_cpu("off", 0, {0, 1}) == (None, "off")
    assert choose_cpu("on", 0, {3}) == (None, "one core")
    assert choose_cpu("on", 0, {2, 5}) == (2, "on")
    assert choose_cpu("on", 1, {2, 5}) == (5, "on")
    assert choose_cpu("on", 2, {2, 5}) == (2, "on")
    # a list is taken in its own order, cores the process may not use left out
    assert choose_cpu("5,9,2", 0, {2, 5}) == (5, "5,9,2")
    assert choose_cpu("5,9,2", 1, {2, 5}) == (2, "5,9,2")
    assert choose_cpu("9", 0, {2, 5}) == (None, NO_USABLE_CORE)


@needs_two
def test_every_thread_is_pinned_and_forks_get_the_cores_back() -> None:
    cpu = USABLE[-1]
    result = _run(_MASKS + f"""
from spamwarden import _affinity
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()
assert _affinity.pin_process({cpu}) == ""
after = threading.Thread(target=stop.wait); after.start()
threads = masks()
seen = {{}}
def lane():
    _affinity.widen_thread(); seen["wide"] = sorted(os.sched_getaffinity(0))
    _affinity.narrow_thread(); seen["narrow"] = sorted(os.sched_getaffinity(0))
t = threading.Thread(target=lane); t.start(); t.join()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, json.dumps([sorted(os.sched_getaffinity(0)), _affinity.pinned_cpu()]).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(r, 4096))
stop.set(); before.join(); after.join()
print(json.dumps({{"threads": list(threads.values()), "n": len(threads), "seen": seen,
                   "child": child, "pinned": _affinity.pinned_cpu()}}))
""")
    assert result["n"] == 3
    assert result["threads"] == [[cpu]] * 3  # the one started before pinning too
    assert result["pinned"] == cpu
    assert result["seen"] == {"wide": USABLE, "narrow": [cpu]}
    assert result["child"] == [USABLE, None]


def test_a_core_the_kernel_refuses_leaves_the_process_as_it_was() -> None:
    result = _run(_MASKS + """
from spamwarden import _affinity
why = _affinity.pin_process(4095)
_affinity.widen_thread(); _affinity.narrow_thread()  # (not pinned: nothing happens)
print(json.dumps({"why": why, "threads": list(masks().values()),
                  "pinned": _affinity.pinned_cpu()}))
""")
    assert result["why"].startswith("OSError") and "Invalid argument" in result["why"]
    assert result["threads"] == [USABLE]
    assert result["pinned"] is None


@needs_two
def test_the_milter_process_pins_itself_and_says_where(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[service]\nstate_dir = "{tmp_path}"\n[rules]\nenabled = true\n')
    result = _run(_MASKS + f"""
import io, logging
from spamwarden.config import load_config
from spamwarden.milter import runtime
from spamwarden import _affinity
buf = io.StringIO()
handler = logging.StreamHandler(buf)
logging.getLogger().addHandler(handler); logging.getLogger().setLevel(logging.INFO)
cfg = load_config({str(config)!r})
runtime._pin(cfg, 1)
print(json.dumps({{"threads": list(masks().values()), "pinned": _affinity.pinned_cpu(),
                   "log": buf.getvalue()}}))
""")
    expected = USABLE[1 % len(USABLE)]
    assert result["pinned"] == expected
    assert all(m == [expected] for m in result["threads"])
    assert "milter_cpu" in result["log"]


@needs_two
def test_off_and_unusable_lists_leave_the_milter_unpinned(tmp_path) -> None:
    """"off", "auto" without the rules, and a list of cores this process may not use
    (the one that is worth a warning)."""
    for setting, rules, logged in (("off", "true", ""), ("auto", "false", ""),
                                   ("4000", "true", "milter_cpu_unpinned")):
        config = tmp_path / "c.toml"
        config.write_text(f'[service]\nstate_dir = "{tmp_path}"\n'
                          f'[milter]\ncpu_affinity = "{setting}"\n'
                          f'[rules]\nenabled = {rules}\n')
        result = _run(_MASKS + f"""
import io, logging
from spamwarden.config import load_config
from spamwarden.milter import runtime
from spamwarden import _affinity
buf = io.StringIO()
logging.getLogger().addHandler(logging.StreamHandler(buf))
logging.getLogger().setLevel(logging.INFO)
runtime._pin(load_config({str(config)!r}), None)
print(json.dumps({{"threads": list(masks().values()), "pinned": _affinity.pinned_cpu(),
                   "log": buf.getvalue()}}))
""")
        assert result["pinned"] is None, setting
        assert result["threads"] == [USABLE], setting
        assert (logged in result["log"]) if logged else "milter_cpu" not in result["log"]


@needs_two
def test_a_message_in_the_slow_lane_leaves_the_core_while_it_is_there() -> None:
    cpu = USABLE[0]
    result = _run(f"""
import json, os, time
from spamwarden import _affinity
from spamwarden.rules._bounded import SlowLane, _Budget
assert _affinity.pin_process({cpu}) == ""
lane = SlowLane(0.001, 1)
budget = _Budget(10.0, lane)
time.sleep(0.01)
budget.left()  # (due: takes the lane's place)
inside = sorted(os.sched_getaffinity(0))
budget.close()
print(json.dumps({{"state": budget.exceeded.slow_lane, "inside": inside,
                   "after": sorted(os.sched_getaffinity(0)), "used": lane.in_use}}))
""")
    assert result == {"state": "taken", "inside": USABLE, "after": [cpu], "used": 0}
