"""Ordinary mail while hostile messages arrive: spamwarden's rules check vs spamd.

The hostile message has To fields of blanks: SpamAssassin's ``__PDS_TONAME_EQ_TOLOCAL``
(``^\\s*['"]?([^'"]+)['"]? <?\\1\\@`` over ``To:raw``) is cubic over white space in
Python's backtracking matchers, so each such message takes the engine up to
``rules.time_limit``.  For a fixed time, ``--callers`` threads scan ordinary corpus
messages one after another (as Postfix's connections would) while ``--attackers``
threads send hostile messages back to back; first without attackers, then with them.

* spamwarden: ``Scanner.scan`` (the milter's checks, SpamAssassin's rules on the
  ``sarules`` check's threads, no DNS) with the default slow lane, and again with the
  lane closed (``slow_lanes = 0``, ``slow_after = time_limit``: how the engine behaved
  before the lane);
* spamd with the same rules (no Bayes, no network; ``bench.py``'s set-up) through
  ``spamc``, with as many children as callers plus attackers.

Prints, for each, the ordinary messages a second and their latency (median, 99th
percentile, worst) with and without the attack, and the ratio of the two rates: the
share of its ordinary throughput each keeps under the attack.

``bench/rules/run-hostile [--seconds S] [--callers C] [--attackers A] [--slow-after T]
[--cache-dir DIR] [--no-spamd]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import messages, spamc_score, spamd_server
from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver
from spamwarden.rules import rule_files

ENV = Envelope(client_ip="192.0.2.7", helo="mail.example.org", mail_from="alice@example.org",
               rcpts=["bob@example.net"], queue_id="BENCH")


def hostile_message(fields: int) -> bytes:
    """``fields`` To fields of 1 KB of blanks (each 1,000 more blanks, then an address)."""
    to = b"".join(b"To:" + b" " * 1000 + b"x@example.net\r\n" for _ in range(fields))
    return (b"From: Alice <alice@example.org>\r\n" + to + b"Subject: hello\r\n"
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <h@example.org>\r\n\r\n"
            b"hello\r\n")


class TimeLimits(logging.Handler):
    """Counts the milter's ``sarules_time_limit`` events: in the lane or stopped at its
    door (``slow_lane=busy``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts = {"stopped at the lane's door": 0, "at the time limit": 0}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "sarules_time_limit":
            busy = getattr(record, "fields", {}).get("slow_lane") == "busy"
            self.counts["stopped at the lane's door" if busy else "at the time limit"] += 1


def load(scan: Callable[[bytes], Any], ordinary: list[bytes], hostile: bytes, *,
         callers: int, attackers: int, seconds: float) -> dict[str, float]:
    """Ordinary messages done within ``seconds`` by ``callers`` threads while
    ``attackers`` threads send ``hostile`` back to back."""
    stop = time.monotonic() + seconds
    lat: list[float] = []
    sent = [0]
    lock = threading.Lock()

    def caller(i: int) -> None:
        k = i
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            scan(ordinary[k % len(ordinary)])
            took = time.perf_counter() - t0
            if time.monotonic() <= stop:
                with lock:
                    lat.append(took)
            k += callers

    def attacker() -> None:
        while time.monotonic() < stop:
            scan(hostile)
            with lock:
                sent[0] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    threads += [threading.Thread(target=attacker) for _ in range(attackers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    return {"rate": len(lat) / seconds, "done": len(lat), "hostile": sent[0],
            "p50": statistics.median(lat) if lat else float("nan"),
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
            "max": lat[-1] if lat else float("nan")}


def show(name: str, quiet: dict[str, float], attacked: dict[str, float]) -> None:
    for label, r in (("alone", quiet), ("attacked", attacked)):
        print(f"  {name:34} {label:8}: {r['rate']:7.1f} ordinary msg/s ({r['done']:.0f}), "
              f"latency p50 {r['p50'] * 1e3:7.1f} ms p99 {r['p99'] * 1e3:8.1f} ms "
              f"max {r['max'] * 1e3:8.1f} ms; hostile sent {r['hostile']:.0f}")
    print(f"  {name:34} keeps {attacked['rate'] / quiet['rate']:.2f} of its ordinary "
          f"throughput under the attack")


def spamwarden_run(args: argparse.Namespace, ordinary: list[bytes], hostile: bytes,
                   state: Path, **rules: object) -> tuple[dict[str, float], dict[str, float]]:
    cfg = config_from_mapping({
        "service": {"state_dir": str(state)},
        "milter": {"authserv_id": "mx.example.net"},
        "rules": {"enabled": True, "cache_dir": args.cache_dir, "paths": [], **rules},
    }, source="<bench>")
    scanner = Scanner(cfg, resolver=StaticResolver(), authenticate=None, lookup_threads=0)
    milter_log = logging.getLogger("spamwarden.milter")
    limits = TimeLimits()
    milter_log.addHandler(limits)
    milter_log.propagate = False
    try:
        def scan(raw: bytes) -> object:
            return scanner.scan(raw, ENV)

        for raw in ordinary[:20]:
            scan(raw)
        quiet = load(scan, ordinary, hostile, callers=args.callers, attackers=0,
                     seconds=args.seconds)
        attacked = load(scan, ordinary, hostile, callers=args.callers,
                        attackers=args.attackers, seconds=args.seconds)
    finally:
        scanner.close()
        milter_log.removeHandler(limits)
        milter_log.propagate = True
    print(f"  (hostile messages: {', '.join(f'{v} {k}' for k, v in limits.counts.items())})")
    return quiet, attacked


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/rules/run-hostile",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="each load (default 30)")
    ap.add_argument("--callers", type=int, default=4, help="threads sending ordinary mail")
    ap.add_argument("--attackers", type=int, default=2, help="threads sending hostile mail")
    ap.add_argument("--fields", type=int, default=40, help="To fields of the hostile message")
    ap.add_argument("--messages", type=int, default=200, help="ordinary corpus messages")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir())
                                               / "spamwarden-bench-rules"))
    ap.add_argument("--slow-after", default="", help="rules.slow_after (default: its default)")
    ap.add_argument("--no-spamd", action="store_true", help="spamwarden only")
    args = ap.parse_args()
    if not rule_files():
        print("SpamAssassin's rules are missing: apt-get install spamassassin", file=sys.stderr)
        return 2
    ordinary = [f.read_bytes() for f in messages(args.messages)]
    hostile = hostile_message(args.fields)
    print(f"{args.callers} callers of ordinary mail ({len(ordinary)} corpus messages), "
          f"{args.attackers} attackers ({len(hostile)} octets, {args.fields} To fields of "
          f"blanks), {args.seconds:g} s each")
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        lane = spamwarden_run(args, ordinary, hostile, work / "a",
                              **({"slow_after": args.slow_after} if args.slow_after else {}))
        show(f"spamwarden, slow lane ({args.slow_after or 'default'})", *lane)
        # (the lane's door after the time limit: never reached, as before the lane)
        closed = spamwarden_run(args, ordinary, hostile, work / "b", slow_lanes=0,
                                slow_after="11s", time_limit="10s")
        show("spamwarden, lane closed", *closed)
    if not args.no_spamd:
        children = args.callers + args.attackers
        # (a folder of its own: spamd's children run as nobody, and read their rules there)
        with tempfile.TemporaryDirectory(prefix="bench-hostile-spamd-") as tmp, \
                spamd_server(Path(tmp), children=children) as (port, _):
            def scan(raw: bytes) -> float:
                return spamc_score(port, raw)

            for raw in ordinary[:children]:
                scan(raw)
            quiet = load(scan, ordinary, hostile, callers=args.callers, attackers=0,
                         seconds=args.seconds)
            attacked = load(scan, ordinary, hostile, callers=args.callers,
                            attackers=args.attackers, seconds=args.seconds)
        show(f"spamd ({children} children)", quiet, attacked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
