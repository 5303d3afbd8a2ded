"""Shared indicators (strategies.md §0.4 B3–B7, B9) against hand-computed numbers."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.models import Side
from strategies.sdk.indicators import (
    Atr,
    SessionVwap,
    TickImbalance,
    atr,
    clip01,
    cpr,
    efficiency_ratio,
    minmax_norm,
    pct,
    percentiles,
    rvol,
    sma,
    sma_slope,
    true_range,
    typical_price,
    zscores,
)

T0 = datetime(2026, 2, 27, 9, 30, tzinfo=KST)


# --------------------------------------------------------------------------- B3 VWAP


def test_vwap_from_bars_uses_typical_price():
    v = SessionVwap()
    v.upsert_bar(540, 10, 8, 9, 100)  # tp 9   → 900
    v.upsert_bar(541, 12, 10, 11, 300)  # tp 11  → 3300
    assert v.value == pytest.approx(4200 / 400)  # 10.5
    assert v.volume == 400


def test_vwap_empty_and_zero_volume_is_none():
    v = SessionVwap()
    assert v.value is None
    v.upsert_bar(540, 10, 8, 9, 0)
    assert v.value is None


def test_vwap_close_when_high_low_missing():
    assert typical_price(None, None, 9.5) == 9.5
    v = SessionVwap()
    v.upsert_bar(540, None, None, 20, 10)
    v.upsert_bar(541, 12, 9, 9, 30)  # tp 10
    assert v.value == pytest.approx((200 + 300) / 40)


def test_vwap_tick_fed_builds_the_minute_bar():
    v = SessionVwap()
    v.add_trade(540, 9, 50)
    v.add_trade(540, 10, 30)
    v.add_trade(540, 8, 20)  # bar H10 L8 C8 V100 → tp 26/3
    assert v.value == pytest.approx(26 / 3)


def test_vwap_rest_bar_replaces_tick_built_minute_without_double_count():
    v = SessionVwap()
    v.add_trade(540, 9, 50)
    v.add_trade(540, 10, 30)
    v.add_trade(540, 8, 20)
    v.upsert_bar(540, 10, 8, 9, 100)  # REST bar of the same minute → tp 9, V 100 (not 200)
    v.add_trade(541, 11, 100)  # next minute from ticks: tp 11
    assert v.volume == 200
    assert v.value == pytest.approx((900 + 1100) / 200)


# --------------------------------------------------------------------------- B5 ATR

BARS = [(10, 8, 9), (11, 9, 10), (12, 9, 11), (11, 10, 10.5), (15, 14, 14.5)]


def test_true_range_first_bar_and_gaps():
    assert true_range(10, 8, None) == 2
    assert true_range(15, 14, 10.5) == 4.5  # gap up: |H − C_prev|
    assert true_range(10, 9, 12) == 3  # gap down: |L − C_prev|


def test_atr_seeded_with_mean_then_wilder():
    a = Atr(3)
    assert a.update(*BARS[0]) is None
    assert a.update(*BARS[1]) is None
    assert a.update(*BARS[2]) == pytest.approx(7 / 3)  # TRs 2, 2, 3
    assert a.update(*BARS[3]) == pytest.approx(17 / 9)  # (7/3·2 + 1)/3
    assert a.update(*BARS[4]) == pytest.approx(74.5 / 27)  # (17/9·2 + 4.5)/3
    assert atr(BARS, 3) == pytest.approx(74.5 / 27)
    assert atr(BARS[:2], 3) is None


def test_atr_accepts_bar_objects():
    class B:
        def __init__(self, h, lo, c):
            self.high, self.low, self.close = h, lo, c

    assert atr([B(*b) for b in BARS], 3) == pytest.approx(74.5 / 27)


# --------------------------------------------------------------------------- B4 SMA / slope, B6 rvol


def test_sma_and_slope():
    vals = list(range(1, 11))
    assert sma(vals, 3) == 9
    assert sma(vals, 11) is None
    assert sma_slope(vals, 3) == pytest.approx(9 - 4)  # mean(8,9,10) − mean(3,4,5)
    assert sma_slope(vals[:7], 3) is None  # needs n + 5 values
    assert sma_slope([5.0] * 8, 3) == 0


def test_rvol():
    assert rvol(300, 100) == 3
    assert rvol(300, 0) is None
    assert rvol(300, None) is None


# --------------------------------------------------------------------------- B7 tick imbalance


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_tick_rule_and_aggressor_and_window():
    ti = TickImbalance(window_seconds=120, min_seconds=60)
    assert ti.add(_at(0), 100, 10) is None  # first trade: no side by tick rule
    assert ti.add(_at(10), 101, 5) == 1  # uptick → buy 505
    assert ti.add(_at(20), 101, 5) == 1  # unchanged → previous side, buy 505
    assert ti.add(_at(30), 100, 10, "SELL") == -1  # aggressor flag → sell 1000
    assert ti.value(_at(50)) is None  # only 50 s of ticks
    assert ti.value(_at(60)) == pytest.approx((1010 - 1000) / 2010)
    assert ti.value(_at(145)) == pytest.approx(-1.0)  # the two buys (t=10, 20) left the 120-s window
    assert ti.value(_at(200)) is None  # nothing left in the window


def test_aggressor_flag_beats_tick_rule():
    ti = TickImbalance(120, 60)
    ti.add(_at(0), 100, 1, Side.BUY)
    assert ti.add(_at(1), 105, 1, Side.SELL) == -1  # uptick but the feed says seller
    assert ti.add(_at(2), 105, 1) == -1  # unchanged → previous side (sell)
    assert ti.add(_at(3), 104, 1, True) == 1  # bool flag: True = buyer
    assert ti.add(_at(4), 104, 1, "garbage") == 1  # unknown flag → tick rule (= → previous)


def test_imbalance_all_buys_is_plus_one():
    ti = TickImbalance(120, 60)
    for i in range(7):
        ti.add(_at(i * 10), 100 + i, 10)
    assert ti.value(_at(60)) == pytest.approx(1.0)


# --------------------------------------------------------------------------- B9 helpers


def test_helpers():
    assert pct(110, 100) == pytest.approx(0.10)
    assert cpr(9, 8, 10) == pytest.approx(0.5)
    assert cpr(5, 5, 5) == 0
    assert clip01(1.7) == 1 and clip01(-0.2) == 0 and clip01(0.3) == 0.3
    z = zscores([1, 2, 3])
    assert z == pytest.approx([-math.sqrt(1.5), 0, math.sqrt(1.5)])
    assert zscores([4, 4]) == [0.0, 0.0]
    assert percentiles([10, 20, 20, 30]) == pytest.approx([0, 0.5, 0.5, 1])
    assert percentiles([7]) == [0.5]
    assert minmax_norm([2, 4, 6]) == pytest.approx([0, 0.5, 1])
    assert minmax_norm([3, 3]) == [0.5, 0.5]
    assert efficiency_ratio([1, 2, 1, 2]) == pytest.approx(1 / 3)
    assert efficiency_ratio([5, 5, 5]) == 0
    assert efficiency_ratio([5]) is None
