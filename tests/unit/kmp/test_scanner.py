"""K3, K8–K10: gap skip, opening range, surge, ranking, OR-range filter."""

from __future__ import annotations

import pytest

from strategies.kmp.scanner import (
    ScanRow,
    gap_pct,
    is_gap_skip,
    opening_range,
    or_pct,
    or_range_ok,
    rank_candidates,
    surge,
)
from tests.unit.kmp._helpers import bar, or_bars, ts


def test_k3_gap_threshold_and_missing_inputs():
    assert gap_pct(21_000, 20_000) == pytest.approx(0.05)
    assert is_gap_skip(21_000, 20_000) and not is_gap_skip(20_999, 20_000)
    assert not is_gap_skip(None, 20_000) and not is_gap_skip(21_000, None)
    assert is_gap_skip(20_600, 20_000, threshold=0.03)


def test_k8_opening_range_from_0900_0914_bars():
    bars = or_bars("A")
    bars.append(bar("A", ts(9, 15), 10_100, 11_000, 9_000, 10_100, 1_000))  # 09:15 is outside
    bars.append(bar("A", ts(8, 59), 10_100, 11_000, 9_000, 10_100, 1_000))  # pre-open outside
    o = opening_range(bars)
    assert o.or_high == 10_200 and o.or_low == 10_000
    assert o.value15 == pytest.approx(151_500_000)
    assert o.open_price == 10_100 and o.bars == 15
    assert o.trig == 10_210
    assert o.or_pct == pytest.approx(200 / 10_100)


def test_k8_missing_minutes_and_no_0900_bar():
    bars = [b for b in or_bars("A") if b["start"] not in (ts(9, 0), ts(9, 7))]
    o = opening_range(bars)
    assert o.bars == 13 and o.open_price is None
    assert o.value15 == pytest.approx(13 * 10_100_000, rel=1e-3)
    assert opening_range([]) is None


def test_k8_surge():
    assert surge(151_500_000, 30_300_000) == pytest.approx(5.0)
    assert surge(1, 0) is None and surge(1, None) is None


def test_k9_rank_trend_surge_top_n():
    rows = [
        ScanRow("A", 5.0, True),
        ScanRow("B", 9.0, False),
        ScanRow("C", 2.99, True),
        ScanRow("D", 3.0, True),
        ScanRow("E", 5.0, True),
        ScanRow("F", None, True),
        ScanRow("G", 7.0, True),
    ]
    assert [r.symbol for r in rank_candidates(rows)] == ["G", "A", "E", "D"]
    assert [r.symbol for r in rank_candidates(rows, top_n=2)] == ["G", "A"]


def test_k10_or_range_bounds():
    assert or_pct(10_100, 10_000) == pytest.approx(0.00995, abs=1e-5)
    assert not or_range_ok(10_100, 10_000)
    assert or_range_ok(10_121, 10_000)  # 1.20%
    assert or_range_ok(10_565, 10_000)  # 5.50%
    assert not or_range_ok(10_600, 10_000)  # 5.83%
