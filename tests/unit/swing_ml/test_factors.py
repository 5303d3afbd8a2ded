"""S3.3 factors: each against a hand computation on a tiny series, the cross-section, no look-ahead."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from strategies.swing_ml.data import Panel
from strategies.swing_ml.factors import (
    FEATURES,
    atr,
    atr_to_close,
    beta,
    close_to_sma,
    cross_sectional_zscore,
    feature_matrix,
    macd_histogram,
    raw_factors,
    ret_n,
    rsi,
    sector_relative,
    true_range,
    vol_n,
    volume_ratio,
)
from strategies.swing_ml.universe import DEFAULT_UNIVERSE

DAYS = pd.bdate_range("2024-01-01", periods=40)
PRICES = [100, 101, 99, 102, 104, 103, 105, 107, 106, 108, 110, 109, 111, 113, 112, 114, 116, 115, 113, 117, 118]


def s(values: Sequence[float]) -> pd.Series:
    return pd.Series([float(v) for v in values], index=DAYS[: len(values)])


def _wilder_ref(xs: Sequence[float], n: int) -> list[float]:
    """Wilder's average by hand: mean of the first n, then (prev·(n−1) + x)/n."""
    out = [math.nan] * len(xs)
    avg = math.nan
    for i in range(len(xs)):
        if i == n - 1:
            avg = sum(xs[:n]) / n
        elif i >= n:
            avg = (avg * (n - 1) + xs[i]) / n
        out[i] = avg
    return out


def test_returns():
    c = s([10, 11, 12, 13, 14, 15, 16])
    r = ret_n(c, 5)
    assert r.iloc[:5].isna().all()
    assert r.iloc[5] == pytest.approx(15 / 10 - 1)
    assert r.iloc[6] == pytest.approx(16 / 11 - 1)
    c = s(PRICES)
    assert ret_n(c, 20).iloc[20] == pytest.approx(118 / 100 - 1)


def test_vol_20_is_sample_std_of_log_returns():
    c = s(PRICES)
    logs = [math.log(PRICES[i] / PRICES[i - 1]) for i in range(1, len(PRICES))]
    v = vol_n(c, 20)
    assert v.iloc[:20].isna().all()
    assert v.iloc[20] == pytest.approx(statistics.stdev(logs[-20:]))
    # a smaller window by hand: log returns of 100→101→99→102
    v3 = vol_n(s([100, 101, 99, 102]), 3)
    assert v3.iloc[3] == pytest.approx(statistics.stdev([math.log(1.01), math.log(99 / 101), math.log(102 / 99)]))


def test_rsi_14_wilder():
    c = s(PRICES)
    deltas = [PRICES[i] - PRICES[i - 1] for i in range(1, len(PRICES))]
    gains = [max(d, 0.0) for d in deltas]
    losses = [max(-d, 0.0) for d in deltas]
    ag, al = _wilder_ref(gains, 14), _wilder_ref(losses, 14)
    r = rsi(c, 14)
    assert r.iloc[:14].isna().all()
    for i in range(14, len(PRICES)):
        g, lo = ag[i - 1], al[i - 1]
        assert g is not None and lo is not None
        assert r.iloc[i] == pytest.approx(100 - 100 / (1 + g / lo))
    # the first value by hand: changes +1 −2 +3 +2 −1 +2 +2 −1 +2 +2 −1 +2 +2 −1 → gains 18, losses 6
    assert sum(gains[:14]) == 18 and sum(losses[:14]) == 6
    assert r.iloc[14] == pytest.approx(100 - 100 / (1 + 18 / 6))  # = 75
    assert rsi(s(list(range(100, 120))), 14).iloc[-1] == 100.0
    assert rsi(s([100] * 20), 14).iloc[-1] == 50.0


def test_close_over_sma():
    c = s(PRICES)
    assert close_to_sma(c, 20).iloc[19] == pytest.approx(PRICES[19] / (sum(PRICES[:20]) / 20) - 1)
    assert np.isnan(close_to_sma(c, 20).iloc[18])  # NaN before 20 sessions
    c50 = s(list(range(1, 41)))
    assert close_to_sma(c50, 3).iloc[-1] == pytest.approx(40 / 39 - 1)


def test_volume_ratio_5_20():
    v = s([100.0] * 15 + [200.0] * 5)
    assert volume_ratio(v).iloc[19] == pytest.approx(200 / ((15 * 100 + 5 * 200) / 20))
    assert np.isnan(volume_ratio(v).iloc[18])


def test_true_range_and_atr_14():
    h = s([10, 12, 11])
    lo = s([9, 10, 8])
    c = s([9.5, 11.5, 9])
    tr = true_range(h, lo, c)
    assert list(tr) == [1.0, 2.5, 3.5]  # H−L; max(2, |12−9.5|, |10−9.5|); max(3, |11−11.5|, |8−11.5|)
    highs = [p + 1.5 for p in PRICES]
    lows = [p - 1.0 for p in PRICES]
    trs = [highs[0] - lows[0]] + [
        max(highs[i] - lows[i], abs(highs[i] - PRICES[i - 1]), abs(lows[i] - PRICES[i - 1]))
        for i in range(1, len(PRICES))
    ]
    ref = _wilder_ref(trs, 14)
    a = atr(s(highs), s(lows), s(PRICES), 14)
    assert a.iloc[:13].isna().all()
    for i in range(13, len(PRICES)):
        assert a.iloc[i] == pytest.approx(ref[i])
    assert atr_to_close(s(highs), s(lows), s(PRICES), 14).iloc[-1] == pytest.approx(ref[-1] / PRICES[-1])


def test_beta_60():
    rng = np.random.default_rng(0)
    idx = pd.bdate_range("2024-01-01", periods=80)
    m = rng.normal(0, 0.01, 80)
    m[0] = 0
    spy = pd.Series(100 * np.cumprod(1 + m), index=idx)
    noise = rng.normal(0, 0.005, 80)
    stock = pd.Series(50 * np.cumprod(1 + 2 * m + noise * (np.arange(80) > 0)), index=idx)
    b = beta(pd.DataFrame({"X": stock}), spy, 60)["X"]
    assert b.iloc[:60].isna().all()
    rs, rm = stock.pct_change().iloc[-60:], spy.pct_change().iloc[-60:]
    assert b.iloc[-1] == pytest.approx(np.cov(rs, rm, ddof=1)[0, 1] / np.var(rm, ddof=1))
    exact = pd.Series(50 * np.cumprod(1 + 2 * m), index=idx)
    assert beta(pd.DataFrame({"X": exact}), spy, 60)["X"].iloc[-1] == pytest.approx(2.0)


def test_macd_histogram():
    c = s(PRICES + [119, 121, 120, 122, 124, 123, 125, 126, 124, 127, 128, 126, 129, 131, 130, 132, 133, 131, 134])
    xs = list(c)

    def ema(values: list[float], span: int) -> list[float]:
        a = 2 / (span + 1)
        out = [values[0]]
        for v in values[1:]:
            out.append(a * v + (1 - a) * out[-1])
        return out

    macd = [f - sl for f, sl in zip(ema(xs, 12), ema(xs, 26), strict=True)]
    sig = [math.nan] * 25 + ema(macd[25:], 9)
    hist = macd_histogram(c)
    assert hist.iloc[:33].isna().all()  # slow EMA from 26 values, signal from 9 MACD values
    for i in range(33, len(xs)):
        assert hist.iloc[i] == pytest.approx(macd[i] - sig[i])


def test_sector_relative():
    idx = pd.bdate_range("2024-01-01", periods=21)
    close = pd.DataFrame(
        {"SPY": np.linspace(100, 110, 21), "XLK": np.linspace(50, 60, 21), "AAPL": np.linspace(10, 11, 21)}, index=idx
    )
    rel = sector_relative(close, ["AAPL", "ZZZ"], {"AAPL": "XLK"}, 20)
    assert rel["AAPL"].iloc[20] == pytest.approx((60 / 50 - 1) - (110 / 100 - 1))
    assert rel["ZZZ"].isna().all()


def test_cross_sectional_zscore_and_winsorise():
    row = [1.0, 2.0, 3.0, 4.0, 5.0]
    frame = pd.DataFrame([row, [1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0, np.nan, np.nan, np.nan]], columns=list("ABCDE"))
    z = cross_sectional_zscore(frame)
    sd = statistics.pstdev(row)
    assert list(z.iloc[0]) == pytest.approx([(v - 3) / sd for v in row])
    assert list(z.iloc[1]) == [0.0] * 5  # no dispersion
    assert z.iloc[2].isna().all()  # fewer than 5 names
    wide = pd.DataFrame([[0.0] * 19 + [100.0]], columns=[f"S{i}" for i in range(20)])
    zw = cross_sectional_zscore(wide)
    assert zw.iloc[0, -1] == 3.0 and zw.iloc[0, 0] == pytest.approx(-1 / math.sqrt(19))


def _perturb_after(panel: Panel, t: pd.Timestamp, seed: int = 1) -> Panel:
    rng = np.random.default_rng(seed)

    def alter(f: pd.DataFrame) -> pd.DataFrame:
        g = f.copy()
        after = g.index > t
        g.loc[after] = g.loc[after] * rng.uniform(0.5, 1.5, size=g.loc[after].shape)
        return g

    return Panel(*(alter(f) for f in (panel.open, panel.high, panel.low, panel.close, panel.volume, panel.raw_close)))


def test_no_look_ahead(panel, sector_map):
    syms = list(DEFAULT_UNIVERSE[:30])
    sub = panel.select([*syms, "SPY", *sorted({sector_map[x] for x in syms})]).between("2022-01-01", "2024-12-31")
    t = pd.Timestamp("2024-06-14")
    base = feature_matrix(sub, syms, sector_map)
    moved = feature_matrix(_perturb_after(sub, t), syms, sector_map)
    before = base.index.get_level_values("date") <= t
    pd.testing.assert_frame_equal(base[before], moved[moved.index.get_level_values("date") <= t])
    assert not base[~before].equals(moved[moved.index.get_level_values("date") > t])  # the alteration is real
    raw_a, raw_b = raw_factors(sub, syms, sector_map), raw_factors(_perturb_after(sub, t), syms, sector_map)
    for name in FEATURES:
        pd.testing.assert_frame_equal(raw_a[name].loc[:t], raw_b[name].loc[:t], obj=name)


def test_feature_matrix_on_real_data(panel, sector_map):
    syms = list(DEFAULT_UNIVERSE)
    fm = feature_matrix(panel.between("2023-06-01", "2024-12-31"), syms, sector_map)
    assert list(fm.columns) == list(FEATURES)
    last = fm.xs(pd.Timestamp("2024-12-31"), level="date")
    assert len(last) == 97 and last.notna().all().all()
    assert (last.abs() <= 3.0).all().all()
    assert last.mean().abs().max() < 0.2  # ≈ zero-mean per day (after winsorising)
