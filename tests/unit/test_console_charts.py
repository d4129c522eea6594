"""The console's SVG bar charts (spamwarden.api.console.charts): a pure function from
counts to markup; bars are proportional, nothing is NaN or negative, labels are escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from spamwarden.api.console.charts import ACTION_SERIES, Bar, bar_chart, chart_table, charts_body
from spamwarden.reputation.stats import hour_of, rebin, stats_key

SVG = "{http://www.w3.org/2000/svg}"


def _bars(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def _chart(bars: list[Bar], series: tuple[str, ...] = ACTION_SERIES) -> str:
    return bar_chart(bars, series=series, title="t", ident="c", x_label="hour",
                     y_label="count")


def test_bar_heights_are_proportional_to_counts_and_stack() -> None:
    svg = _chart([Bar("00:00", {"accept": 10, "reject": 5}), Bar("01:00", {"accept": 20})])
    rects = _bars(svg)
    by = {(r.get("data-series"), r.get("data-count")): r for r in rects}
    assert set(by) == {("accept", "10"), ("reject", "5"), ("accept", "20")}
    h10, h5, h20 = (float(by[k].get("height", "")) for k in
                    [("accept", "10"), ("reject", "5"), ("accept", "20")])
    assert abs(h20 - 2 * h10) < 0.02 and abs(h10 - 2 * h5) < 0.02
    # reject stacks on top of accept in the same bar
    a, r = by[("accept", "10")], by[("reject", "5")]
    assert a.get("x") == r.get("x")
    assert abs(float(r.get("y", "")) + h5 - float(a.get("y", ""))) < 0.02
    # the tallest bar fills the axis up to its (round) maximum: 20 of 20
    assert "20</text>" in svg


def test_empty_data_draws_an_empty_chart_with_axes_and_legend() -> None:
    for bars in ([], [Bar("00:00", {}), Bar("01:00", {"accept": 0})]):
        svg = _chart(bars)
        assert _bars(svg) == []
        root = ET.fromstring(svg)
        assert root.find(f"{SVG}title") is not None and root.get("role") == "img"
        texts = [t.text for t in root.iter(f"{SVG}text")]
        assert "hour" in texts and "count" in texts and "quarantine" in texts  # axes, legend
        assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_bad_counts_never_make_nan_or_negative_heights() -> None:
    svg = _chart([Bar("a", {"accept": -5, "tag": float("nan"), "reject": float("inf"),  # type: ignore[dict-item]
                            "tempfail": "x", "quarantine": 3})])  # type: ignore[dict-item]
    rects = _bars(svg)
    assert [r.get("data-series") for r in rects] == ["quarantine"]
    for r in ET.fromstring(svg).iter(f"{SVG}rect"):
        for attr in ("x", "y", "width", "height"):
            v = float(r.get(attr, "0"))
            assert v == v and v >= 0, (attr, r.attrib)
    assert "nan" not in svg.lower()


def test_labels_and_series_names_are_escaped() -> None:
    evil = '<script>alert(1)</script>"&'
    svg = bar_chart([Bar(evil, {evil: 2})], series=(evil,), title=evil, ident='x"y',
                    x_label=evil, y_label=evil)
    assert "<script>" not in svg and 'x"y' not in svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == evil  # type: ignore[union-attr]
    table = chart_table([Bar(evil, {evil: 2})], series=(evil,), caption=evil, first=evil)
    assert "<script>" not in table and "&lt;script&gt;" in table


def test_many_bars_get_at_most_twelve_x_labels_and_the_table_has_them_all() -> None:
    bars = [Bar(f"h{i}", {"accept": i}) for i in range(48)]
    svg = _chart(bars)
    labels = [t for t in re.findall(r">(h\d+)</text>", svg)]
    assert 1 < len(labels) <= 12
    table = chart_table(bars, series=ACTION_SERIES, caption="c", first="hour")
    assert table.count("<tr>") == 49 and "<td>47</td>" in table


def test_rebin_sums_hours_into_aligned_bins_and_the_page_body_has_four_charts() -> None:
    h0 = hour_of(1_796_450_841)
    hours = [(h0 + 3600 * i, {"accept": 1}) for i in range(-30, 1)]
    days = rebin(hours, 24)
    assert sum(c["accept"] for _, c in days) == 31 and all(s % 86400 == 0 for s, _ in days)
    body = charts_body({"actions": hours, "complaints": [], "listings": []})
    for ident in ("chart-actions-24h", "chart-actions-7d", "chart-complaints", "chart-listings"):
        assert f'id="{ident}"' in body
    assert body.count('class="bar"') == 24 + len(rebin(hours, 6))
    assert stats_key("actions", h0 + 59) == f"sw:{{sw}}:stats:actions:{h0}"


def test_the_y_axis_ends_at_a_round_number_just_above_the_tallest_bar() -> None:
    for top, axis in ((0, "1"), (1, "1"), (7, "8"), (20, "20"), (2600, "3000"), (4100, "5000")):
        svg = _chart([Bar("a", {"accept": top})])
        ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
        assert ticks[-1] == axis, (top, ticks)
