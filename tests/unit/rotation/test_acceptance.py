"""Spec §5 on the real daily data (../shared/data/us, adjusted closes), checked against figures computed
here independently with plain pandas."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from strategies.rotation.audit import audit_line, audit_records
from strategies.rotation.config import UNIVERSE
from strategies.rotation.models import (
    MODEL_NAMES,
    Action,
    ModelDecision,
    decide,
    rotation_bear,
    rotation_bull,
    rotation_core,
)
from strategies.rotation.orders import plan_cycle
from strategies.rotation.regime import Regime, market_regime
from tests.unit.rotation._helpers import real_closes

JUNE_16 = date(2022, 6, 16)
JAN_2 = date(2024, 1, 2)


def mom(closes: pd.DataFrame, symbol: str, day: date, period: int) -> float:
    s = closes[symbol].loc[: pd.Timestamp(day)].dropna()
    return s.iloc[-1] / s.iloc[-1 - period] - 1


def test_2022_06_16_is_bear_with_spy_far_below_its_ma200():
    closes = real_closes()
    spy = closes["SPY"].loc[: pd.Timestamp(JUNE_16)].dropna()
    assert spy.iloc[-1] / spy.iloc[-200:].mean() - 1 < -0.10
    assert market_regime(closes, JUNE_16).regime is Regime.BEAR


def test_2022_06_16_bull_returns_nothing_and_bear_holds_at_most_2_sectors_with_10pct_momentum():
    closes = real_closes()
    bull = rotation_bull(closes, JUNE_16)
    assert bull.action is Action.INACTIVE and bull.target is None
    bear = rotation_bear(closes, JUNE_16)
    assert bear.action is Action.REBALANCE
    weights = bear.weights
    assert weights is not None
    if weights != {"TLT": 1.0}:
        assert 1 <= len(weights) <= 2 and set(weights) <= set(UNIVERSE)
        assert all(mom(closes, s, JUNE_16, 126) >= 0.10 for s in weights)
        assert sum(weights.values()) == pytest.approx(1.0)
    # independently: the sectors with 126-day momentum ≥ 10% that day, best two
    qualified = sorted(
        (s for s in UNIVERSE if mom(closes, s, JUNE_16, 126) >= 0.10), key=lambda s: -mom(closes, s, JUNE_16, 126)
    )
    assert set(weights) == set(qualified[:2]) == {"XLE"}  # only energy was up (+44%) in June 2022


def test_2024_01_02_core_holds_the_3_top_126_day_momentum_sectors_at_one_third():
    closes = real_closes()
    momentum = closes.loc[: pd.Timestamp(JAN_2), list(UNIVERSE)].pct_change(126, fill_method=None).iloc[-1]
    top3 = set(momentum.nlargest(3).index)
    d = rotation_core(closes, JAN_2)
    assert d.action is Action.REBALANCE
    assert d.weights == pytest.approx({s: 1 / 3 for s in top3})
    assert top3 == {"XLF", "XLC", "XLK"}


def account_cycle(last_rebalance: date | None, holdings: dict[str, dict[str, int]]):
    closes = real_closes()
    decisions: dict[str, ModelDecision] = {
        m: decide(m, closes, JAN_2, last_rebalance=last_rebalance)
        for m in ("rotation_core", "rotation_bull", "rotation_bear")
    }
    prices = {s: float(v) for s, v in closes.loc[pd.Timestamp(JAN_2)].items()}
    return decisions, plan_cycle(decisions, equity=250_000, prices=prices, holdings=holdings)


def test_two_runs_of_the_same_days_cycle_send_the_same_keys_and_after_the_fills_nothing():
    first_decisions, first = account_cycle(date(2023, 12, 22), {})
    assert first.orders and all(o.idempotency_key.endswith(":2024-01-02") for o in first.orders)
    keys = [o.idempotency_key for o in first.orders]
    assert len(set(keys)) == len(keys)
    lines = [audit_line(r) for r in audit_records(first, first_decisions, account="paper-main")]
    assert len(lines) == 3 and all("\n" not in line for line in lines)  # one JSON line per model decision
    # the cycle is rerun before anything filled, with the state the first run left (last rebalance = today)
    last = first_decisions["rotation_core"].last_rebalance
    assert last == JAN_2
    _, again = account_cycle(last, {})
    assert [o.intent_body() for o in again.orders] == [o.intent_body() for o in first.orders]
    # ... or after the first run's orders filled: nothing left to send
    filled: dict[str, dict[str, int]] = {}
    for o in first.orders:
        filled.setdefault(o.model, {})[o.symbol] = o.target_qty
    _, after = account_cycle(last, filled)
    assert after.orders == []


def test_decisions_on_the_acceptance_days_ignore_the_data_after_them():
    closes = real_closes()
    for day in (JUNE_16, JAN_2):
        cut = closes.index.searchsorted(pd.Timestamp(day), side="right")
        scrambled = closes.copy()
        scrambled.iloc[cut:] = np.random.default_rng(1).uniform(1, 500, size=scrambled.iloc[cut:].shape)
        for m in MODEL_NAMES:
            assert decide(m, scrambled, day) == decide(m, closes, day)
