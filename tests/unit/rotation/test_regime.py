"""R1–R3 (SPY regime) and M4's XLK regime, on hand-built close series."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.rotation.config import RegimeParams
from strategies.rotation.regime import Regime, above_own_mean, classify, market_regime
from tests.unit.rotation._helpers import panel

P = RegimeParams()


def series(old: float, recent: float, last: float) -> np.ndarray:
    """200 closes: 73 at ``old``, 126 at ``recent``, then ``last``. close[-127] is the first ``recent``."""
    return np.array([old] * 73 + [recent] * 126 + [last])


def test_fewer_than_200_closes_is_neutral():
    r = classify(np.full(199, 100.0), P)
    assert r.regime is Regime.NEUTRAL and r.closes == 199 and r.ma is None


def test_ma200_and_mom126_are_read_from_the_last_closes():
    r = classify(series(110, 90, 96), P)
    assert r.ma == pytest.approx((73 * 110 + 126 * 90 + 96) / 200)  # 97.33
    assert r.mom == pytest.approx(96 / 90 - 1)


def test_inside_the_2pct_band_momentum_decides_bull_although_below_ma():
    r = classify(series(110, 90, 96), P)  # close/ma − 1 = −1.4%, mom126 = +6.7%
    assert abs(r.close / r.ma - 1) < 0.02
    assert r.regime is Regime.BULL


def test_inside_the_band_negative_momentum_is_bear_although_above_ma():
    r = classify(series(90, 110, 104), P)  # ma 102.67: +1.3%, mom126 = 104/110 − 1 < 0
    assert 0 < r.close / r.ma - 1 < 0.02 and r.mom < 0
    assert r.regime is Regime.BEAR


def test_outside_the_band_the_ma_decides():
    below = classify(series(110, 90, 94.5), P)  # −2.9% below ma, mom126 > 0
    assert below.close / below.ma - 1 < -0.02 and below.mom > 0
    assert below.regime is Regime.BEAR
    above = classify(series(90, 110, 108), P)  # ma 102.69: +5.2%, mom126 < 0
    assert above.close / above.ma - 1 > 0.02 and above.mom < 0
    assert above.regime is Regime.BULL


def test_market_regime_reads_spy_up_to_the_decision_day_only():
    closes = panel({"SPY": series(110, 90, 96)}, 200)
    day = closes.index[-1]
    assert market_regime(closes, day).regime is Regime.BULL
    # one session earlier SPY has 199 closes → neutral, whatever comes after
    assert market_regime(closes, closes.index[-2]).regime is Regime.NEUTRAL
    crashed = closes.copy()
    crashed.iloc[-1] = 1.0
    assert market_regime(crashed, closes.index[-2]) == market_regime(closes, closes.index[-2])


def test_xlk_regime_is_above_its_own_200_day_mean():
    up = panel({"XLK": np.array([100.0] * 199 + [101.0])}, 200)
    assert above_own_mean(up, "XLK", up.index[-1]).regime is Regime.BULL
    down = panel({"XLK": np.array([100.0] * 199 + [99.0])}, 200)
    assert above_own_mean(down, "XLK", down.index[-1]).regime is Regime.BEAR
    flat = panel({"XLK": np.full(200, 100.0)}, 200)  # equal to the mean is not above it
    assert above_own_mean(flat, "XLK", flat.index[-1]).regime is Regime.BEAR


def test_xlk_regime_without_200_closes_is_bear():
    short = panel({"XLK": np.linspace(50, 150, 150)}, 150)
    r = above_own_mean(short, "XLK", short.index[-1])
    assert r.regime is Regime.BEAR and r.ma is None
