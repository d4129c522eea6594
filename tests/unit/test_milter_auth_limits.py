"""What one sender's records may cost in memory and DNS questions, beyond what
SPF, DKIM, DMARC and ARC themselves bound.  Records are served by a StaticResolver."""

from __future__ import annotations

import gc
import time
import tracemalloc

from spamwarden.milter.auth import check_spf
from spamwarden.milter.spf_memory import SpfMemory
from spamwarden.resolver import DnsAnswer, StaticResolver

HELO = ".".join(["h" * 62] * 4)[:250]  # a 250-character HELO name


def exp_world(macros: int = 2000) -> StaticResolver:
    """``-all`` with an explanation of ``macros`` x ``%{h}``: each expands to the HELO name."""
    return StaticResolver({
        ("evil.example", "TXT"): [b"v=spf1 -all exp=e.evil.example"],
        ("e.evil.example", "TXT"): [b"%{h}" * macros],
    })


class Kept:
    """The resolver's memory, as SpfMemory reads it: every answer of a zone, kept."""

    def __init__(self, zone: StaticResolver) -> None:
        self.zone = zone

    def kept(self, name: str, rdtype: str) -> tuple[DnsAnswer, float] | None:
        return self.zone.query(name, rdtype), time.monotonic() + 3600


def test_a_huge_spf_explanation_is_cut() -> None:
    res = check_spf(exp_world(), ip="192.0.2.1", mail_from="<x@evil.example>", helo=HELO)
    assert res.result == "fail"
    assert 0 < len(res.explanation) <= 512
    assert set(res.explanation) == {"h", "."}  # the expansion, cut


def test_remembered_spf_results_stay_small() -> None:
    memory = SpfMemory(Kept(exp_world()), check_spf, timeout=2.0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10):
            res = memory.result("192.0.2.1", HELO, f"<x{i}@evil.example>")
            assert res is not None and res.result == "fail"
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(memory._memo) == 10
    # each entry: its key and a result of a few short strings (500 KB each before)
    assert held / 10 < 16 * 1024, held
