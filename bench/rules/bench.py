"""Rule engine benchmark: spamwarden.rules vs SpamAssassin's spamd, rules only.

Both read Debian's SpamAssassin rules; spamd runs with ``-L`` (no network tests), Bayes,
auto-welcomelist and TxRep off.  The same messages (SpamAssassin public corpus, spam and
ham) go through each:

* spamwarden: ``parse_message`` + ``prepare_message`` + ``RuleEngine.check_prepared`` in
  this process, one thread; CPU time from ``time.process_time`` (the engine alone and
  with the parse);
* spamd: ``spamc -c`` per message from C clients against C children; CPU from /proc for
  the spamd parent and its children.

Prints messages/s and CPU µs/message for each and the ratios.  ``--quick``: 60 messages.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from spamwarden.config import Config
from spamwarden.mail import parse_message
from spamwarden.rules import (
    RuleEngine,
    SlowLane,
    parse_rule_files,
    prepare_message,
    rule_files,
)
from tests.support.messages import corpus_sample
from tests.support.net import free_port
from tests.support.spamd import spamd_cpu

SHARED = (Path(os.environ["SPAMWARDEN_SHARED"]) if os.environ.get("SPAMWARDEN_SHARED")
          else Path(__file__).resolve().parents[3] / "shared")
SITE_CF = """\
use_bayes 0
use_auto_whitelist 0
use_txrep 0
bayes_auto_learn 0
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_dcc 0
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def messages(n: int) -> list[Path]:
    return corpus_sample(SHARED, n)


@contextlib.contextmanager
def spamd_server(work: Path, *, children: int) -> Iterator[tuple[int, Path]]:
    """spamd with the rules only (``SITE_CF``), ``children`` children, on loopback; yields
    (port, pidfile) once it answers, stops it afterwards."""
    site = work / "site"
    site.mkdir(parents=True)
    (site / "local.cf").write_text(SITE_CF)
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    home = work / "home"
    home.mkdir()
    subprocess.run(["chmod", "-R", "a+rwX", str(work)], check=True)
    port = free_port()
    pidfile = work / "spamd.pid"
    proc = subprocess.Popen(
        ["spamd", "-L", "-x", f"--siteconfigpath={site}", "-i", "127.0.0.1", "-p", str(port),
         "-A", "127.0.0.1/32", "-u", "nobody", "-m", str(children), "--min-children",
         str(children), "--max-conn-per-child", "100000", "-r", str(pidfile),
         "-s", str(work / "spamd.log")],
        env=dict(os.environ, HOME=str(home)), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError as exc:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"spamd exited ({proc.returncode}); see {work}/spamd.log") from exc
                if time.monotonic() > deadline:
                    raise RuntimeError("spamd did not start within 120 s") from None
                time.sleep(0.3)
        yield port, pidfile
    finally:
        pid = int(pidfile.read_text()) if pidfile.exists() else proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def spamc_score(port: int, data: bytes) -> float:
    """The score spamd gives ``data`` (``spamc -c``); NaN when it gives none."""
    out = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-c", "-t", "120"],
                         check=False, input=data, capture_output=True,
                         timeout=180).stdout.decode().strip()
    try:
        return float(out.split("/")[0])
    except ValueError:
        return float("nan")


def run_spamd(files: list[Path], *, children: int, work: Path) -> tuple[float, float, list[float]]:
    """(wall seconds, CPU seconds, scores) of spamd over ``files``."""
    with spamd_server(work, children=children) as (port, pidfile):

        def one(path: Path) -> float:
            return spamc_score(port, path.read_bytes())

        for f in files[:children]:  # every child loads the rules before the clock starts
            one(f)
        cpu0 = spamd_cpu(pidfile)
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(children) as pool:
            scores = list(pool.map(one, files))
        wall = time.perf_counter() - t0
        cpu = spamd_cpu(pidfile) - cpu0
    return wall, cpu, scores


def run_engine(files: list[Path], cache_dir: Path, *, costly: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    ruleset = parse_rule_files(rule_files(), costly=costly)
    # as the milter builds it: long texts matched within rules.time_limit (``regex``),
    # the slow lane past rules.slow_after
    rules = Config().rules
    engine = RuleEngine(ruleset, cache_dir=cache_dir, time_limit=rules.time_limit,
                        slow_lane=SlowLane(rules.slow_after, rules.slow_lanes))
    load = time.perf_counter() - t0
    raws = [f.read_bytes() for f in files]
    for raw in raws[:5]:  # warm: lazily compiled re patterns
        engine.check(parse_message(raw), raw)
    c0, w0 = time.process_time(), time.perf_counter()
    views = [parse_message(raw) for raw in raws]
    c1 = time.process_time()
    prepared = [prepare_message(v, raw, tlds=engine.tlds) for v, raw in zip(views, raws)]
    c2 = time.process_time()
    total_hits = 0
    for p in prepared:
        total_hits += len(engine.check_prepared(p))
    c3, w3 = time.process_time(), time.perf_counter()
    n = len(raws)
    return {"load_s": load, "cached": float(engine.cache_used), "parse_us": (c1 - c0) / n * 1e6,
            "prepare_us": (c2 - c1) / n * 1e6, "check_us": (c3 - c2) / n * 1e6,
            "wall_s": w3 - w0, "hits_per_msg": total_hits / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 messages")
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sa-children", type=int, default=2, help="spamd children and spamc clients")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "spamwarden-bench-rules"))
    ap.add_argument("--no-spamd", action="store_true", help="only the spamwarden engine")
    ap.add_argument("--costly-patterns", action=argparse.BooleanOptionalAction, default=True,
                    help="run the patterns rules.costly_patterns runs (__FILL_THIS_FORM_*), "
                    "as the milter does by default")
    args = ap.parse_args()
    n = 60 if args.quick else args.messages
    if not rule_files():
        print("SpamAssassin's rules are missing: apt-get install spamassassin", file=sys.stderr)
        return 2
    files = messages(n)
    log(f"{len(files)} messages; building or loading the rule engine (first build: minutes)")
    ours = run_engine(files, Path(args.cache_dir), costly=args.costly_patterns)
    engine_us = ours["prepare_us"] + ours["check_us"]
    ours_rate = len(files) / ours["wall_s"]
    print(f"spamwarden.rules: load {ours['load_s']:.1f} s"
          f"{' (cached databases)' if ours['cached'] else ''}, "
          f"{ours['hits_per_msg']:.1f} hits/message")
    print(f"  CPU per message: parse {ours['parse_us']:.0f} us, prepare {ours['prepare_us']:.0f} us, "
          f"rules {ours['check_us']:.0f} us; engine alone {engine_us:.0f} us")
    print(f"  {ours_rate:.1f} messages/s (one thread, parse included)")
    if args.no_spamd:
        return 0
    missing = [b for b in ("spamd", "spamc") if shutil.which(b) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install spamd spamc", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        wall, cpu, _ = run_spamd(files, children=args.sa_children, work=Path(tmp))
    sa_rate = len(files) / wall
    sa_us = cpu / len(files) * 1e6
    print(f"spamd (rules only, {args.sa_children} children): {sa_rate:.1f} messages/s, "
          f"CPU {sa_us:.0f} us/message")
    print(f"ratio: spamwarden.rules is {ours_rate / sa_rate:.1f}x the messages/s of spamd and "
          f"uses {sa_us / max(engine_us + ours['parse_us'], 1):.1f}x less CPU per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
