"""The operator's listing commands behind ``spamwarden listings|listing|list|delist|complaints``.

Each function takes the parsed arguments and the configuration and returns the
exit status (0 done, 1 failed or nothing to do, 2 bad input); ``cli.py`` only
registers them.  Output goes to stdout; ``--json`` output is meant for scripts
and keeps its field names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from ..config import Config, parse_duration
from ..mail import registrable_domain
from .listings import REASONS, KeyKind, Listing, listing_json, normalize_key, operator_reason
from .listings import utc_iso as _iso
from .store import ListingStore, SystemClock, iter_lines, window_keys

__all__ = [
    "cmd_listings",
    "cmd_listing_show",
    "cmd_list_add",
    "cmd_list_import",
    "cmd_delist",
    "cmd_complaints",
    "cmd_history",
    "listing_json",
]


def _ttl(args: argparse.Namespace) -> float | None:
    if args.ttl is None:
        return None
    try:
        ttl = parse_duration(args.ttl)
    except ValueError as exc:
        raise SystemExit(f"spamwarden: --ttl {args.ttl!r}: expected {exc}") from exc
    if ttl <= 0:
        raise SystemExit("spamwarden: --ttl must be more than 0")
    return ttl


def _reason(text: str | None, kind: KeyKind, *, imported: bool = False) -> tuple[str, str]:
    """(reason code, note) for an operator's ``--reason TEXT``: a known code is used
    as is; any other text becomes the note of the operator's reason for the kind."""
    if text and text in REASONS:
        return text, ""
    return operator_reason(kind, imported=imported), text or ""


def _key(text: str) -> tuple[str, KeyKind]:
    try:
        return normalize_key(text)
    except ValueError as exc:
        raise SystemExit(f"spamwarden: {exc}") from exc


def cmd_listings(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden listings [--json] [--all]``: active listings, by key."""
    store = ListingStore.from_config(cfg)
    now = SystemClock().now()
    n = 0
    if args.json:
        sys.stdout.write("[")
    for x in _listings(store, now=now, expired_too=args.all):
        if args.json:
            sys.stdout.write(("," if n else "") + json.dumps(listing_json(x)))
        else:
            state = "" if x.active(now) else " (expired)"
            print(f"{x.key:<40} {x.kind:<7} {x.reason:<20} {_iso(x.listed_at)} -> "
                  f"{_iso(x.expires_at)}{state}" + (f"  {x.note}" if x.note else ""))
        n += 1
    if args.json:
        sys.stdout.write("]\n")
        return 0
    print(f"{n} listing(s)", file=sys.stderr)
    return 0


def _listings(store: ListingStore, *, now: float, expired_too: bool) -> Iterator[Listing]:
    """The listings by key: active ones a page at a time (printed as they come, memory
    bounded by a page), or, with expired ones too, every stored record."""
    if expired_too:
        yield from store.all()
        return
    cursor = None
    while True:
        page, cursor = store.listing_page(after=cursor, limit=10_000, now=now)
        yield from page
        if cursor is None:
            return


def cmd_listing_show(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden listing show KEY [--json]``: the listing covering KEY, with its counters."""
    key, kind = _key(args.key)
    store = ListingStore.from_config(cfg)
    now = SystemClock().now()
    found = store.find(key, now=now)
    # the counters live under the key the engine counts: the listing found, or the
    # registrable domain of a host name
    subject = found.key if found else key
    if found is None and kind == "domain":
        subject = registrable_domain(key) or key
    c_key, r_key = window_keys(subject)
    cutoff = now - cfg.reputation.window
    complaints = store.redis.zcount(c_key, f"({cutoff}", "+inf")
    reporters = store.redis.zcount(r_key, f"({cutoff}", "+inf")
    info: dict[str, Any] = {
        "key": key,
        "kind": kind,
        "listed": found is not None,
        "listing": listing_json(found) if found else None,
        "counted_as": subject,
        "offences": store.offences(subject),
        "window": {"complaints": complaints, "reporters": reporters,
                   "volume": store.volumes([subject], now=now)[subject]},
    }
    if args.json:
        print(json.dumps(info))
        return 0
    if found is None:
        print(f"{key}: not listed")
    else:
        via = f" (via {found.key})" if found.key != key else ""
        print(f"{key}: listed{via}\n  reason   {found.reason}: "
              f"{REASONS.get(found.reason, ('', found.reason))[1]}\n  code     {found.code}\n"
              f"  since    {_iso(found.listed_at)}\n  until    {_iso(found.expires_at)}")
        if found.note:
            print(f"  note     {found.note}")
    w = info["window"]
    print(f"  counters of {subject}:\n  offences {info['offences']}\n  window   "
          f"{w['complaints']} complaints from {w['reporters']} reporters, {w['volume']} "
          "messages seen")
    return 0


def cmd_list_add(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden list add KEY --reason TEXT [--ttl DURATION]``."""
    key, kind = _key(args.key)
    reason, note = _reason(args.reason, kind)
    store = ListingStore.from_config(cfg)
    w = store.add(key, kind=kind, reason=reason, note=note, ttl=_ttl(args),
                  now=SystemClock().now())
    assert w.listing is not None
    print(f"{key}: {w.op} until {_iso(w.listing.expires_at)} ({reason}, code {w.listing.code})")
    return 0


def _read_keys(fh: TextIO, bad: list[str]) -> Iterator[tuple[str, KeyKind]]:
    for text in iter_lines(fh):
        try:
            yield normalize_key(text)
        except ValueError:
            bad.append(text)


def cmd_list_import(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden list import FILE [--reason TEXT] [--ttl DURATION]``: one key per line.

    Blank lines and ``#`` comments are skipped; text after the key is ignored.
    Keys that are not an IP, CIDR, domain or address are counted and reported.
    """
    store = ListingStore.from_config(cfg)
    ttl = _ttl(args)
    reason = args.reason if args.reason in REASONS else None
    note = "" if reason else (args.reason or "")
    bad: list[str] = []
    started = time.monotonic()
    fh: TextIO = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8",
                                                             errors="replace")
    try:
        ops = store.import_many(_read_keys(fh, bad), reason=reason, note=note, ttl=ttl,
                                now=SystemClock().now())
    finally:
        if fh is not sys.stdin:
            fh.close()
    took = time.monotonic() - started
    n = sum(ops.values())
    print(f"imported {n} key(s) in {took:.1f}s ({ops.get('listed', 0)} listed, "
          f"{ops.get('extended', 0)} extended, {len(bad)} unusable)")
    for text in bad[:10]:
        print(f"  not a key: {text!r}", file=sys.stderr)
    return 0 if not bad else 1


def cmd_delist(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden delist KEY --reason TEXT``: remove a listing now."""
    key, _ = _key(args.key)
    store = ListingStore.from_config(cfg)
    w = store.delist(key, note=args.reason, now=SystemClock().now())
    if w.op == "absent":
        print(f"spamwarden: {key} is not listed", file=sys.stderr)
        return 1
    print(f"{key}: {w.op}")
    return 0


def cmd_complaints(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden complaints [--json] [--count N] [--unmatched]``: the newest complaints,
    newest first; with ``--unmatched`` the reports that matched no delivery here (they
    list nothing; their indicators are what the report claimed)."""
    from .complaints import Complaint

    store = ListingStore.from_config(cfg)
    out: list[dict[str, object]] = []
    unmatched = bool(getattr(args, "unmatched", False))
    for entry_id, fields in store.recent_complaints(args.count, unmatched=unmatched):
        try:
            c = Complaint.from_fields(fields)
        except ValueError:
            continue
        i = c.indicators
        out.append({
            "entry": entry_id, "id": c.id, "kind": c.kind, "reporter": c.reporter,
            "received_at": c.received_at, "source": c.source, "fingerprint": c.fingerprint,
            "match": c.match, "delivery": c.delivery, "message_id": c.message_id,
            "indicators": {
                "source_ip": i.source_ip, "mail_from_domain": i.mail_from_domain,
                "from_domain": i.from_domain, "from_address": i.from_address,
                "dkim_domains": list(i.dkim_domains), "dkim_verified": list(i.dkim_verified),
                "url_domains": list(i.url_domains), "ad_label": i.ad_label, "subject": i.subject,
            },
        })
    if args.json:
        print(json.dumps(out))
        return 0
    for row in out:
        ind: Any = row["indicators"]
        parts = [f"ip={ind['source_ip']}" if ind["source_ip"] else "",
                 f"from={ind['from_address'] or ind['from_domain'] or ''}",
                 f"dkim={','.join(ind['dkim_verified'])}" if ind["dkim_verified"] else "",
                 f"urls={','.join(ind['url_domains'][:5])}" if ind["url_domains"] else ""]
        if row["match"]:
            parts.insert(0, f"match={row['match']}")
        print(f"{_iso(float(str(row['received_at'])))} {row['kind']:<4} {row['reporter']!s:<30} "
              + " ".join(p for p in parts if p))
    print(f"{len(out)} {'unmatched report' if unmatched else 'complaint'}(s)"
          + (" (they list nothing)" if unmatched else ""), file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden history [--queue-id ID] [--rcpt ADDR] [--action A] [--limit N] [--json]``:
    the milter's verdicts, newest first (:mod:`spamwarden.reputation.history`).

    :returns: 0 with entries, 1 when none matched.
    """
    from ..redisconn import sync_client
    from .history import HistoryFilter, read_history

    want = HistoryFilter(queue_id=args.queue_id or "", rcpt=args.rcpt or "",
                         action=args.action or "")
    rows = read_history(sync_client(cfg), limit=args.limit, want=want)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0 if rows else 1
    for e in rows:
        syms = ",".join(f"{s['name']}({s['points']:g})" for s in e.get("symbols", ())) or "none"
        rcpt = ",".join(e.get("rcpt", ()))
        if e.get("rcpt_count", 0) > len(e.get("rcpt", ())):
            rcpt += f",+{e['rcpt_count'] - len(e['rcpt'])}"
        line = (f"{_iso(float(e['time']))} {e.get('queue_id') or '-':<12} {e['action']:<10} "
                f"{e['score']:>6.1f} {e.get('client_ip') or '-'} <{e.get('from', '')}> -> {rcpt}")
        if e.get("subject"):
            line += f" subject={json.dumps(e['subject'], ensure_ascii=False)}"
        print(line + f" symbols={syms}")
    print(f"{len(rows)} message(s)", file=sys.stderr)
    return 0 if rows else 1
