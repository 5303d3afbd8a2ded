"""The report's metrics against figures worked out by hand."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from trader.report import metrics as m

KST = ZoneInfo("Asia/Seoul")
R = pd.Series([0.01, -0.02, 0.03])
"""Three daily returns: growth 1.01 · 0.98 · 1.03 = 1.019494; mean 0.02/3; sample std √(0.0012667/2)."""


def test_total_return_and_cagr() -> None:
    assert m.total_return(R) == pytest.approx(0.019494)
    # 1.019494 ** (252 / 3) − 1
    assert m.cagr(R) == pytest.approx(1.019494**84 - 1)
    assert m.cagr(pd.Series([], dtype=float)) is None
    assert m.cagr(pd.Series([-1.0])) == -1.0


def test_sharpe_is_mean_over_sample_std_annualised() -> None:
    mean, std = 0.02 / 3, math.sqrt((0.01 / 3) ** 2 + (0.08 / 3) ** 2 + (0.07 / 3) ** 2) / math.sqrt(2)
    assert std == pytest.approx(0.0251661, rel=1e-5)
    assert m.sharpe(R) == pytest.approx(mean / std * math.sqrt(252))
    assert m.sharpe(R) == pytest.approx(4.2053, rel=1e-4)
    assert m.sharpe(pd.Series([0.01])) is None  # one period: no dispersion
    assert m.sharpe(pd.Series([0.01, 0.01])) is None  # zero dispersion


def test_sortino_uses_the_downside_of_every_period() -> None:
    # downside deviation = √((0² + 0.02² + 0²) / 3) · √252 = 0.0115470 · 15.8745 = 0.183303
    assert m.sortino(R) == pytest.approx((0.02 / 3) * 252 / 0.183303, rel=1e-5)
    assert m.sortino(R) == pytest.approx(9.1652, rel=1e-4)
    assert m.sortino(pd.Series([0.01, 0.02])) is None  # no losing period


def test_drawdown_and_max_drawdown() -> None:
    equity = pd.Series([100.0, 120.0, 90.0, 130.0, 117.0])
    assert list(m.drawdown(equity)) == pytest.approx([0.0, 0.0, -0.25, 0.0, -0.1])
    assert m.max_drawdown(equity) == pytest.approx(-0.25)
    assert m.max_drawdown(pd.Series([5.0, 6.0])) == 0.0
    assert m.max_drawdown(pd.Series([], dtype=float)) is None


def test_period_returns_measure_the_first_period_against_the_base() -> None:
    equity = pd.Series([110.0, 99.0])
    assert list(m.period_returns(equity, base=100.0)) == pytest.approx([0.10, -0.10])
    assert list(m.period_returns(equity)) == pytest.approx([-0.10])


def test_win_rate_ignores_flat_outcomes() -> None:
    assert m.win_rate([100.0, -50.0, 0.0, 20.0]) == pytest.approx(2 / 3)
    assert m.win_rate([0.0]) is None
    assert m.win_rate([]) is None


def test_exposure_is_the_share_of_session_time_with_a_position() -> None:
    d1 = (datetime(2026, 2, 26, 9, 0, tzinfo=KST), datetime(2026, 2, 26, 15, 30, tzinfo=KST))
    d2 = (datetime(2026, 2, 27, 9, 0, tzinfo=KST), datetime(2026, 2, 27, 15, 30, tzinfo=KST))
    changes = pd.Series(
        [True, False, True],
        index=[
            datetime(2026, 2, 26, 10, 0, tzinfo=KST),
            datetime(2026, 2, 26, 12, 0, tzinfo=KST),
            datetime(2026, 2, 27, 15, 0, tzinfo=KST),
        ],
    )
    # held 10:00–12:00 on day 1 and 15:00–15:30 on day 2: 2.5 h of 13 h
    assert m.exposure(changes, [d1, d2]) == pytest.approx(2.5 / 13)
    overnight = pd.Series([True], index=[datetime(2026, 2, 26, 15, 0, tzinfo=KST)])
    assert m.exposure(overnight, [d1, d2]) == pytest.approx(7.0 / 13)  # 0.5 h + the whole of day 2
    assert m.exposure(pd.Series([], dtype=bool), [d1]) == 0.0
    assert m.exposure(changes, []) is None


def test_turnover_is_traded_value_over_average_equity() -> None:
    assert m.turnover(1_000.0, pd.Series([100.0, 300.0])) == pytest.approx(5.0)
    assert m.turnover(1_000.0, pd.Series([], dtype=float)) is None
