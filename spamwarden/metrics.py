"""Prometheus metrics of every spamwarden process, in one place.

Each service records into the metrics defined here.  Under ``spamwarden serve``
(and in the systemd units) ``PROMETHEUS_MULTIPROC_DIR`` points every process at
one directory, so the API's ``GET /metrics`` reports the whole host: the
milter's verdicts, intake's complaints and the DNS server's queries together.
Without it, each process keeps its own in-memory values (tests, one-off commands).

Names and labels are documented in docs/operations.md ("Metrics").
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "MESSAGES",
    "SYMBOL_HITS",
    "SCAN_SECONDS",
    "LOOKUP_SECONDS",
    "LOOKUP_FAILURES",
    "REDIS_ERRORS",
    "COMPLAINTS",
    "LISTINGS",
    "LISTING_CHANGES",
    "DNS_QUERIES",
    "DNS_SECONDS",
    "DNS_TCP_CLOSED",
    "DNS_NOTIFY",
    "DNS_RRL",
    "CHECKS_UNAVAILABLE",
    "DNSBL_UNSCORED",
    "CONTENT_TYPE_LATEST",
    "exposition",
    "prepare_multiprocess_dir",
    "timed",
]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

MESSAGES = Counter(
    "spamwarden_messages_total", "Messages the milter decided on, by action", ["action"]
)
SYMBOL_HITS = Counter("spamwarden_symbol_hits_total", "Scoring symbols that fired", ["symbol"])
SCAN_SECONDS = Histogram(
    "spamwarden_scan_seconds", "Time to score one message at end of data", buckets=_LATENCY
)
LOOKUP_SECONDS = Histogram(
    "spamwarden_lookup_seconds",
    "Latency of external lookups by kind (spf, dkim, dmarc, listing, dnsbl)",
    ["kind"],
    buckets=_LATENCY,
)
LOOKUP_FAILURES = Counter(
    "spamwarden_lookup_failures_total", "Lookups that failed (timeouts, SERVFAIL, store errors)",
    ["kind"],
)
CHECKS_UNAVAILABLE = Counter(
    "spamwarden_checks_unavailable_total",
    "Messages scored without a check because its backend was unavailable", ["check"],
)
REDIS_ERRORS = Counter(
    "spamwarden_redis_errors_total", "Redis operations that failed, by component", ["component"]
)
COMPLAINTS = Counter(
    "spamwarden_complaints_total",
    "Reports received by intake, by outcome (accepted, duplicate, refused, unusable, tempfail)",
    ["kind", "outcome"],
)
LISTINGS = Gauge(
    "spamwarden_listings", "Active listings by kind (ip, cidr, domain)", ["kind"],
    multiprocess_mode="livemax",
)
LISTING_CHANGES = Counter(
    "spamwarden_listing_changes_total", "Listing changes by operation", ["op"]
)
DNS_QUERIES = Counter(
    "spamwarden_dns_queries_total", "DNS queries answered, by transport and rcode",
    ["transport", "rcode"],
)
DNS_SECONDS = Histogram(
    "spamwarden_dns_answer_seconds", "Time to answer one DNS query", buckets=_LATENCY
)
DNS_TCP_CLOSED = Counter(
    "spamwarden_dns_tcp_closed_total",
    "TCP connections the DNS server closed early: over a cap (cap) or an unread answer (write_timeout)",
    ["reason"],
)
DNS_RRL = Counter(
    "spamwarden_dns_rate_limited_total",
    "UDP answers held back by response rate limiting: dropped (drop) or sent truncated (slip)",
    ["action"],
)
DNS_NOTIFY = Counter(
    "spamwarden_dns_notify_total",
    "NOTIFY messages (RFC 1996) to secondaries, by outcome (acknowledged, retried, failed)",
    ["outcome"],
)

DNSBL_UNSCORED = Counter(
    "spamwarden_dnsbl_unscored_answers_total",
    "Third-party DNSBL answers that scored nothing, by zone and code: 127.255.255.x "
    "(the list refuses our resolver or rate-limits us), codes the configuration does not "
    "score, and answers outside 127.0.0.0/8 (code \"other\")",
    ["zone", "code"],
)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Observe the duration of the block in ``spamwarden_lookup_seconds{kind}``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        LOOKUP_SECONDS.labels(kind).observe(time.perf_counter() - start)


def prepare_multiprocess_dir(path: Path) -> None:
    """Create (and empty) the shared metrics directory before children start."""
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink()


def exposition() -> bytes:
    """The text exposition of this host's metrics (all processes in multiprocess mode)."""
    mp_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if mp_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=mp_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    from prometheus_client import REGISTRY

    return bytes(generate_latest(REGISTRY))
