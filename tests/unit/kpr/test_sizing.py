"""P14–P15: time-of-day multiplier, marketable entry limit, qty formula and caps."""

from __future__ import annotations

import math
from datetime import time

import pytest

from strategies.kpr.config import KprParams
from strategies.kpr.sizing import entry_limit, position_size, tod_mult

P = KprParams()


@pytest.mark.parametrize(
    ("t", "mult"),
    [
        (time(9, 29), 0.0),
        (time(9, 30), 1.0),
        (time(10, 29, 59), 1.0),
        (time(10, 30), 0.8),
        (time(11, 19), 0.8),
        (time(11, 20), 0.0),
        (time(13, 9), 0.0),
        (time(13, 10), 0.9),
        (time(14, 0), 0.5),
        (time(14, 30), 0.0),
    ],
)
def test_tod_bands(t, mult):
    assert tod_mult(t, P) == mult


def test_entry_limit_up_ask_2_else_up_last_3():
    assert entry_limit(10_000, 9_990, P) == (10_020, "ask")
    assert entry_limit(None, 9_990, P) == (10_020, "last")  # 9,990 → 10,000 (band edge) → 10,010 → 10,020
    assert entry_limit(49_950, None, P) == (50_100, "ask")  # the tick is re-read each step (50 → 100)
    assert entry_limit(None, None, P) is None


def test_qty_formula():
    # 0.5% of ₩1B · GREEN 1.0 · stale 0.85 · tod 0.8 / (10,020 − 9,571.2)
    size = position_size(1e9, 10_020, 9_571.2, 1.0, 0.85, 0.8, P, kpr_notional=0, buyable_cash=None)
    assert size.qty_formula == math.floor(5_000_000 * 0.68 / 448.8)
    assert size.factor == pytest.approx(0.68)


def test_caps_nav_budget_and_cash():
    # a tight R: the formula asks for far more than 15% NAV; both NAV caps keep 0.5% NAV of margin
    size = position_size(1e9, 10_000, 9_990, 1.0, 1.0, 1.0, P)
    assert size.qty_formula == 500_000 and (size.qty, size.capped_by) == (14_500, "nav_cap")
    size = position_size(1e9, 10_000, 9_990, 1.0, 1.0, 1.0, P, kpr_notional=250_000_000)
    assert (size.qty, size.capped_by) == (4_500, "strategy_budget")
    size = position_size(1e9, 10_000, 9_990, 1.0, 1.0, 1.0, P, buyable_cash=1_234_567)
    assert (size.qty, size.capped_by) == (123, "buyable_cash")
    size = position_size(1e9, 10_000, 9_990, 1.0, 1.0, 1.0, P, kpr_notional=300_000_000)
    assert size.qty == 0


def test_no_size_outside_the_bands_or_with_a_stop_above_the_limit():
    assert position_size(1e9, 10_000, 9_800, 1.0, 1.0, 0.0, P).qty == 0
    assert position_size(1e9, 10_000, 10_000, 1.0, 1.0, 1.0, P).qty == 0


def test_budget_margin_absorbs_the_valuation_lag_the_oms_refused():
    """2026-02-05 13:39 in the all-session backtest: KPR saw 105,300 of budget room at its own (lagged) marks,
    the OMS 98,564 at its marks of the instant, and refused the 1-share entry with STRATEGY_BUDGET."""
    nav, limit, stop = 100_000_000, 105_300, 100_000
    kpr_notional = 0.30 * nav - 105_300
    oms_room = 98_564
    unbuffered = position_size(
        nav, limit, stop, 1.0, 1.0, 1.0, P.model_copy(update={"cap_margin_pct": 0.0}), kpr_notional=kpr_notional
    )
    assert (unbuffered.qty, unbuffered.capped_by) == (1, "strategy_budget")
    assert unbuffered.qty * limit > oms_room
    size = position_size(nav, limit, stop, 1.0, 1.0, 1.0, P, kpr_notional=kpr_notional)
    assert (size.qty, size.capped_by) == (0, "strategy_budget")


@pytest.mark.parametrize("lag", [-0.004, 0.0, 0.004])
def test_sizing_stays_inside_the_oms_caps_when_nav_and_marks_lag_less_than_the_margin(lag):
    oms_equity = 100_000_000
    polled_nav = oms_equity * (1 + lag)
    for held in range(0, 30_000_000, 1_234_567):
        oms_notional = held * (1 + abs(lag))
        size = position_size(polled_nav, 10_000, 9_700, 1.0, 1.0, 1.0, P, kpr_notional=held)
        notional = size.qty * 10_000
        assert notional <= 0.15 * oms_equity
        assert notional <= 0.30 * oms_equity - oms_notional
