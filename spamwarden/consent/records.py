"""The time and record formats the consent commands, the consent API and the
confirmation mails share: ISO 8601 times, the advertiser JSON object and the
consent/refusal export (CSV or JSON).

Pure functions over the registry's records (no Redis, no HTTP), so the CLI
(:mod:`spamwarden.consent.cli`), the routes (:mod:`spamwarden.api.consent`) and
:mod:`spamwarden.consent.confirmations` import them one way.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from typing import IO, Any

from ..config import parse_duration
from ..i18n import Message
from .registry import GLOBAL, Advertiser, AdvertiserCounts, ConsentRecord, RefusalRecord

__all__ = ["EXPORT_FIELDS", "iso", "parse_time", "advertiser_json", "export_records"]

#: CSV columns of ``consent export`` (one row per consent or refusal record)
EXPORT_FIELDS = (
    "kind", "advertiser", "recipient", "method", "channel", "at", "evidence", "expires_at",
    "max_per_day", "recorded_at", "confirmed_at",
)


def iso(ts: float) -> str:
    """ISO 8601 UTC of a timestamp; empty for 0 (not set)."""
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str, *, now: float) -> float:
    """A time given as ISO 8601 (``2026-01-31``, ``2026-01-31T10:00:00Z``), Unix
    seconds, or a duration from ``now`` (``"365d"``).

    :raises ValueError: none of these.
    """
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    if t and t[-1] in "smhdw" and t[:-1].replace(".", "", 1).isdigit():
        return now + parse_duration(t)
    try:
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(Message("registry.time_format", {"value": repr(text)})) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def advertiser_json(adv: Advertiser, counts: AdvertiserCounts) -> dict[str, Any]:
    """The JSON object of one advertiser in ``advertiser show`` and ``GET /v1/advertisers/ID``.

    :param adv: the advertiser's record.
    :param counts: its totals.
    :returns: ``id``, ``name``, ``contact``, ``domains``, ``created_at`` (ISO 8601),
        ``consents``, ``refusals``, ``sent``; the field names are a public interface.
    """
    return {
        "id": adv.id, "name": adv.name, "contact": adv.contact, "domains": list(adv.domains),
        "created_at": iso(adv.created_at), "consents": counts.consents,
        "refusals": counts.refusals, "sent": counts.sent,
    }


def _rows(consents: Iterable[ConsentRecord],
          refusals: Iterable[RefusalRecord]) -> Iterable[dict[str, Any]]:
    for c in consents:
        yield {
            "kind": "consent", "advertiser": c.advertiser, "recipient": c.recipient,
            "method": c.method, "channel": "", "at": iso(c.at), "evidence": c.evidence,
            "expires_at": iso(c.expires_at), "max_per_day": c.max_per_day,
            "recorded_at": iso(c.recorded_at), "confirmed_at": "",
        }
    for r in refusals:
        yield {
            "kind": "refusal" if r.advertiser != GLOBAL else "refusal-all",
            "advertiser": r.advertiser, "recipient": r.recipient, "method": "",
            "channel": r.channel, "at": iso(r.at), "evidence": "", "expires_at": "",
            "max_per_day": "", "recorded_at": "", "confirmed_at": iso(r.confirmed_at),
        }


def export_records(reg: Any, adv: str, fmt: str, out: IO[str]) -> int:
    """Write an advertiser's consent and refusal records as CSV or JSON.

    :returns: the number of records written.
    """
    rows = _rows(reg.consents(adv), reg.refusals(adv))
    n = 0
    if fmt == "csv":
        w = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow(row)
            n += 1
    else:
        out.write("[")
        for row in rows:
            out.write(("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False))
            n += 1
        out.write("\n]\n")
    return n
