"""M1–M4 on synthetic closes: ranking, TLT fallback, activity, the 7-day rule, vol scale, early exits."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from strategies.rotation.config import UNIVERSE, VolScaling
from strategies.rotation.models import (
    Action,
    Holding,
    rebalance_due,
    rotation_adaptive,
    rotation_bear,
    rotation_bull,
    rotation_core,
    vol_scale,
)
from strategies.rotation.reasons import RotationReason
from strategies.rotation.regime import Regime
from tests.unit.rotation._helpers import panel, with_momentum

N = 260  # sessions: ≥ 200 for the regimes, ≥ 176 for the longest momentum (175)


def spy(regime: str) -> np.ndarray:
    """SPY closes whose R1–R3 regime is ``regime`` on the last day (far above / below its ma200)."""
    return np.linspace(100, 150, N) if regime == "bull" else np.linspace(150, 100, N)


def sectors(moms: dict[str, float], period: int, default: float = -0.05) -> dict[str, np.ndarray]:
    """Every universe sector with momentum ``moms.get(sector, default)`` over ``period`` sessions."""
    return {s: with_momentum(moms.get(s, default), period, N) for s in UNIVERSE}


def closes_for(moms: dict[str, float], period: int, regime: str = "bull", default: float = -0.05) -> pd.DataFrame:
    return panel({**sectors(moms, period, default), "SPY": spy(regime), "TLT": np.full(N, 90.0)}, N)


def last_day(closes: pd.DataFrame) -> date:
    return closes.index[-1].date()


# --------------------------------------------------------------------------- M1


def test_core_takes_the_top_3_by_126_day_momentum_at_one_third_each():
    c = closes_for({"XLK": 0.20, "XLF": 0.10, "XLE": 0.05, "XLV": 0.04}, 126)
    d = rotation_core(c, last_day(c))
    assert d.action is Action.REBALANCE and d.reason is RotationReason.ROTATION_REBALANCE
    assert d.weights == pytest.approx({"XLK": 1 / 3, "XLF": 1 / 3, "XLE": 1 / 3})
    assert [s for s, _ in d.ranking[:4]] == ["XLK", "XLF", "XLE", "XLV"]
    assert d.ranking[0][1] == pytest.approx(0.20)
    assert d.last_rebalance == last_day(c)


def test_min_momentum_filters_the_top_n_and_weights_sum_to_the_leverage():
    # bull: top 4 of 80-day momentum, keep ≥ 3%: XLK, XLF pass; XLE 2.9% and XLV 1% do not
    c = closes_for({"XLK": 0.20, "XLF": 0.03, "XLE": 0.029, "XLV": 0.01, "XLI": 0.0}, 80)
    d = rotation_bull(c, last_day(c))
    assert d.weights == pytest.approx({"XLK": 0.65, "XLF": 0.65})
    assert sum(d.weights.values()) == pytest.approx(1.3)


def test_a_qualifying_sector_outside_the_top_n_is_not_taken():
    # bear: top 2 only, even though a third sector also clears 10%
    c = closes_for({"XLE": 0.40, "XLU": 0.30, "XLP": 0.20}, 126, regime="bear")
    assert rotation_bear(c, last_day(c)).weights == pytest.approx({"XLE": 0.5, "XLU": 0.5})


def test_no_sector_with_non_negative_momentum_falls_back_to_tlt():
    c = closes_for({}, 126, default=-0.01)
    d = rotation_core(c, last_day(c))
    assert d.weights == {"TLT": 1.0}
    assert d.reason is RotationReason.ROTATION_DEFENSIVE_TLT and d.action is Action.REBALANCE


def test_no_sector_with_data_falls_back_to_tlt():
    c = panel({"SPY": spy("bull"), "TLT": np.full(N, 90.0), "XLK": np.full(100, 50.0)}, N)
    assert rotation_core(c, last_day(c)).weights == {"TLT": 1.0}  # XLK: 100 closes < 127


def test_a_sector_with_fewer_than_p_plus_1_closes_is_left_out():
    moms = {"XLK": 0.20, "XLF": 0.10, "XLE": 0.05}
    cols = sectors(moms, 126)
    cols["XLC"] = with_momentum(0.90, 125, 126)  # 126 closes: one short of a 126-session momentum
    c = panel({**cols, "SPY": spy("bull"), "TLT": np.full(N, 90.0)}, N)
    d = rotation_core(c, last_day(c))
    assert "XLC" not in dict(d.ranking)
    assert set(d.weights) == {"XLK", "XLF", "XLE"}


# --------------------------------------------------------------------------- M2


def test_bull_and_bear_models_are_inactive_outside_their_regime():
    bear_market = closes_for({"XLE": 0.40}, 126, regime="bear")
    d = rotation_bull(bear_market, last_day(bear_market))
    assert d.action is Action.INACTIVE and d.weights is None and d.target is None
    assert d.reason is RotationReason.ROTATION_INACTIVE and d.regime.regime is Regime.BEAR
    bull_market = closes_for({"XLE": 0.40}, 126, regime="bull")
    assert rotation_bear(bull_market, last_day(bull_market)).action is Action.INACTIVE


def test_neutral_regime_activates_only_the_always_models():
    c = closes_for({"XLK": 0.2}, 126).iloc[-199:]  # SPY has 199 closes → neutral
    day = last_day(c)
    assert rotation_bull(c, day).action is Action.INACTIVE
    assert rotation_bear(c, day).action is Action.INACTIVE
    assert rotation_core(c, day).action is Action.REBALANCE


def test_inactive_keeps_the_last_rebalance_date():
    c = closes_for({"XLE": 0.40}, 126, regime="bear")
    assert rotation_bull(c, last_day(c), last_rebalance=date(2024, 1, 2)).last_rebalance == date(2024, 1, 2)


# --------------------------------------------------------------------------- M3


def test_rebalance_at_most_once_every_7_calendar_days():
    assert rebalance_due(date(2024, 6, 28), None)
    assert not rebalance_due(date(2024, 6, 28), date(2024, 6, 22))  # 6 days
    assert rebalance_due(date(2024, 6, 28), date(2024, 6, 21))  # 7 days
    assert rebalance_due(date(2024, 6, 28), date(2024, 6, 28))  # a rerun of the same day's cycle
    with pytest.raises(ValueError, match="after the decision day"):
        rebalance_due(date(2024, 6, 28), date(2024, 6, 29))


def test_between_rebalances_the_model_holds_and_returns_the_same_last_rebalance():
    c = closes_for({"XLK": 0.20, "XLF": 0.10, "XLE": 0.05}, 126)  # last session 2024-06-28
    d = rotation_core(c, date(2024, 6, 28), last_rebalance=date(2024, 6, 24))
    assert d.action is Action.HOLD and d.target == "hold" and d.weights is None
    assert d.reason is RotationReason.ROTATION_HOLD
    assert d.last_rebalance == date(2024, 6, 24)
    again = rotation_core(c, date(2024, 6, 28), last_rebalance=date(2024, 6, 21))
    assert again.action is Action.REBALANCE and again.last_rebalance == date(2024, 6, 28)


# --------------------------------------------------------------------------- M4 vol scale and regime


def xlk_alternating(step: float, n: int = N) -> np.ndarray:
    """Closes whose daily returns alternate exactly +step, −step."""
    r = np.where(np.arange(1, n) % 2 == 1, step, -step)
    return 100.0 * np.concatenate([[1.0], np.cumprod(1 + r)])


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0.01, 0.15 / (0.01 * math.sqrt(20 / 19) * math.sqrt(252))),  # rv 16.3% → 0.921
        (0.05, 0.2),  # rv 81% → 0.18, clamped up to the floor
        (0.002, 1.5),  # rv 3.3% → 4.6, clamped down to the cap
        (0.0, 1.5),  # no volatility at all → the cap
    ],
)
def test_vol_scale_is_target_over_realised_vol_of_20_xlk_returns_clamped(step, expected):
    c = panel({"XLK": xlk_alternating(step, 40)}, 40)
    scale, _ = vol_scale(c, c.index[-1], VolScaling())
    assert scale == pytest.approx(expected)


def test_vol_scale_uses_only_the_last_20_returns():
    wild_then_calm = np.concatenate([xlk_alternating(0.05, 20), xlk_alternating(0.01, 21)])
    c = panel({"XLK": wild_then_calm}, 41)
    _, rv = vol_scale(c, c.index[-1], VolScaling())
    assert rv == pytest.approx(0.01 * math.sqrt(20 / 19) * math.sqrt(252))


def adaptive_closes(xlk: np.ndarray, moms: dict[str, float], period: int) -> pd.DataFrame:
    cols = sectors(moms, period)
    cols["XLK"] = xlk
    return panel({**cols, "SPY": spy("bear"), "TLT": np.full(N, 90.0)}, N)


def test_adaptive_in_xlk_bull_takes_top_4_of_138_day_momentum_times_1_86_times_vol_scale():
    xlk = xlk_alternating(0.01) * np.linspace(1.0, 1.5, N)  # trending up: above its 200-day mean
    c = adaptive_closes(xlk, {"XLF": 0.30, "XLE": 0.25, "XLV": 0.20, "XLI": 0.15, "XLB": 0.10}, 138)
    d = rotation_adaptive(c, last_day(c))
    assert d.regime.regime is Regime.BULL and d.regime.symbol == "XLK"
    assert d.leg is not None and (d.leg.period, d.leg.top_n, d.leg.leverage) == (138, 4, 1.86)
    scale = d.vol_scale
    assert scale is not None and 0.2 <= scale <= 1.5
    # XLK itself ranks too (its own momentum); the four best get 1.86·scale/4 each
    top4 = [s for s, _ in d.ranking[:4]]
    assert d.weights == pytest.approx({s: 1.86 * scale / 4 for s in top4})
    assert "XLB" not in d.weights  # fifth at best


def test_adaptive_in_xlk_bear_takes_top_3_of_175_day_momentum_at_2_0_times_vol_scale():
    xlk = np.linspace(150, 100, N)  # falling: below its mean; rv of a straight line is tiny → cap 1.5
    c = adaptive_closes(xlk, {"XLF": 0.30, "XLE": 0.25, "XLV": 0.20, "XLI": 0.15}, 175)
    d = rotation_adaptive(c, last_day(c))
    assert d.regime.regime is Regime.BEAR and d.vol_scale == pytest.approx(1.5)
    assert d.weights == pytest.approx({"XLF": 1.0, "XLE": 1.0, "XLV": 1.0})  # 2.0 × 1.5 / 3


def test_adaptive_tlt_fallback_is_not_vol_scaled():
    c = adaptive_closes(np.linspace(150, 100, N), {}, 175)  # every sector (and XLK) negative
    assert rotation_adaptive(c, last_day(c)).weights == {"TLT": 1.0}


# --------------------------------------------------------------------------- M4 early exits


def held_closes(xlf_last: float, end: str = "2024-01-10") -> pd.DataFrame:
    """XLF flat at 100 with the given last close; the rest irrelevant (the model is between rebalances)."""
    xlf = np.full(N, 100.0)
    xlf[-1] = xlf_last
    cols = sectors({}, 175)
    cols["XLF"] = xlf
    return panel({**cols, "SPY": spy("bull"), "TLT": np.full(N, 90.0)}, N, end=end)


ENTRY = Holding("XLF", entry_price=100.0, entry_day=date(2024, 1, 5), atr=2.0)
"""Take profit at 100 + 3.75·2 = 107.5; stop at 100 − 1.46·2 = 97.08."""


@pytest.mark.parametrize(
    ("price", "reason"),
    [(107.5, RotationReason.ROTATION_TAKE_PROFIT), (97.08, RotationReason.ROTATION_STOP)],
)
def test_early_exit_at_the_atr_levels_between_rebalances(price, reason):
    c = held_closes(price)  # 2024-01-10 is the 3rd session after the Friday 01-05 entry
    d = rotation_adaptive(c, date(2024, 1, 10), last_rebalance=date(2024, 1, 5), holdings=[ENTRY])
    assert d.action is Action.EXIT and d.reason is reason
    assert d.weights == {"XLF": 0.0} and d.exits == {"XLF": reason}
    assert d.last_rebalance == date(2024, 1, 5)


@pytest.mark.parametrize("price", [107.4, 97.1, 100.0])
def test_no_exit_between_the_levels(price):
    d = rotation_adaptive(held_closes(price), date(2024, 1, 10), last_rebalance=date(2024, 1, 5), holdings=[ENTRY])
    assert d.action is Action.HOLD and not d.exits and not d.guarded


def test_no_early_exit_within_2_sessions_of_entry():
    # entry Friday 2024-01-05: Monday 01-08 is 1 session later (guarded), Tuesday 01-09 the 2nd (allowed)
    monday = rotation_adaptive(
        held_closes(90.0, "2024-01-08"), date(2024, 1, 8), last_rebalance=date(2024, 1, 5), holdings=[ENTRY]
    )
    assert monday.action is Action.HOLD
    assert monday.guarded == {"XLF": RotationReason.ROTATION_STOP}
    tuesday = rotation_adaptive(
        held_closes(90.0, "2024-01-09"), date(2024, 1, 9), last_rebalance=date(2024, 1, 5), holdings=[ENTRY]
    )
    assert tuesday.action is Action.EXIT and tuesday.exits == {"XLF": RotationReason.ROTATION_STOP}


def test_the_pdt_guard_counts_sessions_not_calendar_days():
    # entry Friday 2024-01-12; Monday 01-15 is Martin Luther King Day: Tuesday 01-16 is only 1 session later
    entry = Holding("XLF", 100.0, date(2024, 1, 12), 2.0)
    d = rotation_adaptive(
        held_closes(90.0, "2024-01-16"), date(2024, 1, 16), last_rebalance=date(2024, 1, 12), holdings=[entry]
    )
    assert d.action is Action.HOLD and d.guarded == {"XLF": RotationReason.ROTATION_STOP}


def test_the_live_price_overrides_the_last_close_and_tlt_never_exits_early():
    tlt = Holding("TLT", entry_price=200.0, entry_day=date(2024, 1, 2), atr=1.0)
    d = rotation_adaptive(
        held_closes(100.0),
        date(2024, 1, 10),
        last_rebalance=date(2024, 1, 5),
        holdings=[ENTRY, tlt],
        prices={"XLF": 108.0},
    )
    assert d.exits == {"XLF": RotationReason.ROTATION_TAKE_PROFIT}  # TLT at 90 ≪ its stop: not a sector


def test_no_early_exit_check_on_a_rebalance_day_or_without_an_atr():
    c = held_closes(90.0)
    rebalance = rotation_adaptive(c, date(2024, 1, 10), last_rebalance=date(2024, 1, 3), holdings=[ENTRY])
    assert rebalance.action is Action.REBALANCE and not rebalance.exits
    no_atr = Holding("XLF", 100.0, date(2024, 1, 5), None)
    assert rotation_adaptive(c, date(2024, 1, 10), last_rebalance=date(2024, 1, 5), holdings=[no_atr]).action is (
        Action.HOLD
    )


# --------------------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize("model", [rotation_core, rotation_bull, rotation_bear, rotation_adaptive])
def test_output_at_t_ignores_every_row_after_t(model):
    c = closes_for({"XLK": 0.20, "XLF": 0.10, "XLE": 0.05, "XLV": 0.04}, 126)
    t = c.index[-30]
    future = c.copy()
    rng = np.random.default_rng(7)
    future.iloc[-29:] = rng.uniform(1, 1000, size=(29, c.shape[1]))
    assert model(future, t) == model(c, t)
    assert model(c.iloc[:-29], t) == model(c, t)
