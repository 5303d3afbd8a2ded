"""The daily simulation: stats by hand, a tiny synthetic run by hand, and 2016–2024 on the real data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from strategies.rotation.backtest import min_rebalance_gap, report, run_backtest, stats
from strategies.rotation.config import LegParams, ModelParams, RotationConfig
from strategies.rotation.data import DailyPanels
from strategies.rotation.models import MODEL_NAMES
from tests.unit.rotation._helpers import panel, real_panels


def test_stats_by_hand():
    idx = pd.DatetimeIndex(["2020-01-01", "2021-01-01", "2022-01-01", "2023-01-01"])
    s = stats(pd.Series([100.0, 110.0, 99.0, 120.0], index=idx))
    years = (pd.Timestamp("2023-01-01") - pd.Timestamp("2020-01-01")).days / 365.25
    assert s.cagr == pytest.approx(1.2 ** (1 / years) - 1)
    assert s.max_drawdown == pytest.approx(0.1)  # 110 → 99
    r = np.array([0.1, -0.1, 120 / 99 - 1])
    assert s.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert s.final == 120.0


def test_a_tiny_run_rebalances_at_the_close_in_whole_shares_without_fees():
    # one model: the best 2-session momentum of AAA/BBB at weight 1.0; AAA rises 1 a day, BBB is flat
    closes = panel(
        {
            "AAA": np.array([10.0, 11, 12, 13, 14, 15]),
            "BBB": np.full(6, 10.0),
            "TLT": np.full(6, 50.0),
            "SPY": np.array([100.0, 101, 102, 103, 104, 105]),
        },
        6,
    )
    leg = LegParams(period=2, top_n=1, min_momentum=0.0, leverage=1.0)
    config = RotationConfig(
        universe=("AAA", "BBB"), models={"m": ModelParams(bull=leg, bear=leg)}, orders={"symbol_cap": 1.0}
    )
    panels = DailyPanels(closes, closes, closes, closes)
    r = run_backtest(panels, ["m"], closes.index[2], closes.index[-1], initial_equity=1_000, config=config)
    # day 3: buy floor(1000/12) = 83 AAA at 12, cash 4; then 83 shares ride 13, 14, 15 (held: < 7 days)
    assert r.equity.tolist() == [1_000, 4 + 83 * 13, 4 + 83 * 14, 4 + 83 * 15]
    assert r.orders == 1 and len(r.rebalances["m"]) == 1
    assert r.benchmark.tolist() == pytest.approx([1_000 * p / 102 for p in (102, 103, 104, 105)])


def test_rotation_core_2016_2024_rebalances_at_most_once_per_7_days_next_to_spy():
    r = run_backtest(real_panels(), ["rotation_core"], "2016-01-04", "2024-12-31")
    days = r.rebalances["rotation_core"]
    assert days[0] == pd.Timestamp("2016-01-04").date()
    gap = min_rebalance_gap(days)
    assert gap is not None and gap >= 7
    assert len(days) <= (days[-1] - days[0]).days // 7 + 1
    assert r.equity.index[0] == pd.Timestamp("2016-01-04") and r.equity.index[-1] == pd.Timestamp("2024-12-31")
    assert r.equity.iloc[0] == pytest.approx(100_000)  # bought at the first close, no fees
    for s in (r.stats, r.benchmark_stats):
        assert math.isfinite(s.cagr) and 0 < s.max_drawdown < 1 and math.isfinite(s.sharpe)
    assert r.benchmark_stats.max_drawdown > 0.3  # SPY's 2020 / 2022 drawdowns
    print("\n" + report(r))


@pytest.mark.parametrize(
    "models", [[m] for m in MODEL_NAMES[1:]] + [["rotation_core", "rotation_bull", "rotation_bear"]]
)
def test_the_other_models_2016_2024(models):
    r = run_backtest(real_panels(), models, "2016-01-04", "2024-12-31")
    for days in r.rebalances.values():
        gap = min_rebalance_gap(days)
        assert gap is None or gap >= 7
    assert r.stats.final > 0
    print("\n" + report(r))
