"""``/ui/charts``: the milter's actions per hour over 24 hours and per 6 hours over 7
days, complaints and listing changes per hour and per day, from the hourly counters
of :mod:`spamwarden.reputation.stats`.

Charts are drawn here as inline SVG (:func:`bar_chart`, a pure function), stacked
bars with axis labels and a legend; each is followed by the same numbers as a table,
so the page reads without images, scripts or styles (screen readers, text browsers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ...reputation.stats import HOUR, aread_hours, rebin
from ..lookup import escape
from ._base import Console, Page, html_get

__all__ = ["ACTION_SERIES", "COMPLAINT_SERIES", "LISTING_SERIES", "NAV", "Bar", "bar_chart",
           "build", "chart_table"]

NAV = Page("/ui/charts", "Charts")

ACTION_SERIES = ("accept", "tag", "quarantine", "reject", "tempfail")
COMPLAINT_SERIES = ("matched", "unmatched", "ham")
LISTING_SERIES = ("listed", "extended", "delisted", "expired")

#: colours by series name; any other series takes one of _SPARE in order
_COLOURS = {
    "accept": "#3a7d2c", "tag": "#d4a017", "quarantine": "#7c3aed", "reject": "#b3261e",
    "tempfail": "#6b7280", "matched": "#b3261e", "unmatched": "#9ca3af", "ham": "#3a7d2c",
    "listed": "#b3261e", "extended": "#e07b00", "delisted": "#2563eb", "expired": "#9ca3af",
}
_SPARE = ("#0891b2", "#be185d", "#4d7c0f", "#a16207", "#1e40af")
#: x-axis labels drawn at most (the others are in the table)
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Bar:
    """One bar: its x-axis ``label`` and its ``counts`` by series name."""

    label: str
    counts: Mapping[str, int] = field(default_factory=dict)


def _count(v: object) -> int:
    """A count drawn as is: anything negative, not a number or infinite is 0."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(f) or f <= 0:
        return 0
    return int(f)


def _nice_max(top: int) -> int:
    """The y-axis maximum: ``top`` rounded up to 1, 2, 3, 4, 5, 6 or 8 times a power of
    ten (at least 1), so the tallest bar fills most of the height."""
    if top <= 1:
        return 1
    p: int = 10 ** int(math.floor(math.log10(top)))
    for m in (1, 2, 3, 4, 5, 6, 8, 10):
        if top <= m * p:
            return int(m * p)
    return int(10 * p)  # pragma: no cover - the loop always returns


def _colour(name: str, i: int) -> str:
    return _COLOURS.get(name, _SPARE[i % len(_SPARE)])


def bar_chart(bars: Sequence[Bar], *, series: Sequence[str], title: str, ident: str,
              x_label: str, y_label: str, width: int = 720, height: int = 260) -> str:
    """An SVG stacked bar chart: one bar per item of ``bars``, one stacked segment per
    series with a count, the y axis from 0 to a round maximum, a legend.

    Pure: the same arguments give the same text. Every text is escaped; a count that
    is negative, not a number or infinite is drawn as 0, so no height is negative or NaN.

    :param bars: the bars, left to right.
    :param series: the stacking order, bottom up, and the legend; counts of other
        names are not drawn.
    :param title: the chart's accessible name (``<title>``).
    :param ident: the ``id`` of the ``<svg>`` (its ``<title>`` is ``ident-title``).
    :param x_label: / ``y_label``: the axis titles.
    :param width: / ``height``: the drawing's size in user units (it scales to its box).
    :returns: ``<svg>…</svg>`` markup.
    """
    left, right, top, bottom = 56, 12, 34, 52
    pw, ph = max(1, width - left - right), max(1, height - top - bottom)
    totals = [sum(_count(b.counts.get(s, 0)) for s in series) for b in bars]
    ymax = _nice_max(max(totals, default=0))
    n = len(bars)
    slot = pw / n if n else pw
    bw = slot * 0.8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(ident)}" role="img" '
        f'aria-labelledby="{escape(ident)}-title" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" font-family="sans-serif" '
        f'font-size="11">',
        f'<title id="{escape(ident)}-title">{escape(title)}</title>',
    ]
    # legend, across the top
    x = left
    for i, s in enumerate(series):
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{_colour(s, i)}"/>'
                   f'<text x="{x + 14}" y="17">{escape(s)}</text>')
        x += 22 + 7 * len(s)
    # y axis: 0, half and the maximum, with grid lines
    for frac in (0.0, 0.5, 1.0):
        y = top + ph - frac * ph
        value = ymax * frac
        text = str(int(value)) if value == int(value) else f"{value:g}"
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   f'stroke="#ddd"/><text x="{left - 4}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(text)}</text>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>'
               f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" '
               f'stroke="#333"/>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">'
               f"{escape(x_label)}</text>")
    step = max(1, math.ceil(n / MAX_X_LABELS))
    for i, b in enumerate(bars):
        bx = left + i * slot + (slot - bw) / 2
        y = float(top + ph)
        for j, s in enumerate(series):
            c = _count(b.counts.get(s, 0))
            if not c:
                continue
            h = c / ymax * ph
            y -= h
            out.append(f'<rect class="bar" x="{bx:.2f}" y="{y:.2f}" width="{bw:.2f}" '
                       f'height="{h:.2f}" fill="{_colour(s, j)}" data-series="{escape(s)}" '
                       f'data-count="{c}"><title>{escape(b.label)}: {escape(s)} {c}</title>'
                       "</rect>")
        if i % step == 0:
            out.append(f'<text x="{bx + bw / 2:.2f}" y="{top + ph + 14}" '
                       f'text-anchor="middle">{escape(b.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def chart_table(bars: Sequence[Bar], *, series: Sequence[str], caption: str,
                first: str) -> str:
    """The numbers of a chart as an HTML table: one row per bar, one column per series
    and the total.

    :param first: the heading of the label column (e.g. ``hour (UTC)``).
    """
    head = "".join(f'<th scope="col">{escape(s)}</th>' for s in (first, *series, "total"))
    rows = []
    for b in bars:
        counts = [_count(b.counts.get(s, 0)) for s in series]
        rows.append(f'<tr><th scope="row">{escape(b.label)}</th>'
                    + "".join(f"<td>{c}</td>" for c in counts) + f"<td>{sum(counts)}</td></tr>")
    return (f"<table><caption>{escape(caption)}</caption><tr>{head}</tr>"
            + "".join(rows) + "</table>")


def _label(start: int, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(start))


def _figure(bars: Sequence[Bar], *, series: Sequence[str], title: str, ident: str,
            x_label: str) -> str:
    svg = bar_chart(bars, series=series, title=title, ident=ident, x_label=x_label,
                    y_label="count")
    table = chart_table(bars, series=series, caption=title, first=x_label)
    total = sum(_count(b.counts.get(s, 0)) for b in bars for s in series)
    return (f'<section><h2>{escape(title)}</h2><figure>{svg}<figcaption>{total} in all.'
            f"</figcaption></figure><details><summary>{escape(title)} as a table</summary>"
            f"{table}</details></section>\n")


def charts_body(hours: Mapping[str, Sequence[tuple[int, dict[str, int]]]]) -> str:
    """The page's charts from 7 days of hourly counts per series (oldest first).

    :param hours: ``actions``, ``complaints``, ``listings`` -> ``(hour start, counts)``.
    """
    actions = hours.get("actions", ())
    day = list(actions)[-24:]
    parts = [
        _figure([Bar(_label(h, "%H:00"), c) for h, c in day], series=ACTION_SERIES,
                title="Milter actions per hour, last 24 hours", ident="chart-actions-24h",
                x_label="hour (UTC)"),
        _figure([Bar(_label(h, "%a %H:00"), c) for h, c in rebin(actions, 6)],
                series=ACTION_SERIES, title="Milter actions per 6 hours, last 7 days",
                ident="chart-actions-7d", x_label="6 hours from (UTC)"),
        _figure([Bar(_label(h, "%m-%d"), c) for h, c in rebin(hours.get("complaints", ()), 24)],
                series=COMPLAINT_SERIES, title="Complaints per day, last 7 days",
                ident="chart-complaints", x_label="day (UTC)"),
        _figure([Bar(_label(h, "%m-%d"), c) for h, c in rebin(hours.get("listings", ()), 24)],
                series=LISTING_SERIES, title="Listing changes per day, last 7 days",
                ident="chart-listings", x_label="day (UTC)"),
    ]
    return "".join(parts)


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the charts route; return its OpenAPI path."""

    @routes.get("/ui/charts")
    async def charts(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        now = ui.clock.now()
        hours = {s: await aread_hours(ui.store.redis, s, end=now, hours=7 * 24)
                 for s in ("actions", "complaints", "listings")}
        note = ("<p>Counted per hour (UTC) as the milter, the complaint intake and the "
                f"listing store write; kept {8 * 24 * HOUR // 86400} days.</p>\n")
        return ui.page("Charts", note + charts_body(hours), sess=sess)

    return {"/ui/charts": html_get("Charts: milter actions, complaints and listing changes "
                                   "per hour and per day", "consoleCharts")}
