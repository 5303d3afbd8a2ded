"""M6–M9: budgets, account weights, caps, share targets, the 1% skip, order sequence, keys, audit lines."""

from __future__ import annotations

import json
from datetime import date

import pytest

from broker_core.contract.wire import IntentRequest
from strategies.rotation.audit import audit_line, audit_records
from strategies.rotation.config import OrderParams
from strategies.rotation.models import Action, ModelDecision
from strategies.rotation.orders import (
    apply_caps,
    idempotency_key,
    plan_cycle,
    renormalised_budgets,
    target_shares,
)
from strategies.rotation.reasons import RotationReason
from strategies.rotation.regime import Regime, RegimeReading

DAY = date(2024, 1, 2)
BULL = RegimeReading(Regime.BULL, "SPY", 250)
R = RotationReason


def rebalance(model: str, weights: dict[str, float], reason: R = R.ROTATION_REBALANCE) -> ModelDecision:
    return ModelDecision(model, DAY, Action.REBALANCE, reason, BULL, weights, DAY)


def hold(model: str) -> ModelDecision:
    return ModelDecision(model, DAY, Action.HOLD, R.ROTATION_HOLD, BULL, None, date(2023, 12, 29))


def inactive(model: str) -> ModelDecision:
    return ModelDecision(model, DAY, Action.INACTIVE, R.ROTATION_INACTIVE, BULL, None, None)


def exit_(model: str, symbol: str, reason: R) -> ModelDecision:
    return ModelDecision(model, DAY, Action.EXIT, reason, BULL, {symbol: 0.0}, DAY, exits={symbol: reason})


# --------------------------------------------------------------------------- M6


def test_budgets_default_equal_and_renormalised_over_the_active_models():
    assert renormalised_budgets({"a": 1, "b": 1, "c": 1}, ["a", "c"]) == pytest.approx({"a": 0.5, "c": 0.5})
    assert renormalised_budgets({"a": 0.5, "b": 0.3, "c": 0.2}, ["a", "b"]) == pytest.approx({"a": 0.625, "b": 0.375})


def test_account_weight_is_the_budget_weighted_sum_over_models():
    decisions = {
        "rotation_core": rebalance("rotation_core", {"XLK": 1 / 3, "XLF": 1 / 3, "XLE": 1 / 3}),
        "rotation_bull": rebalance("rotation_bull", {"XLK": 0.325, "XLF": 0.325, "XLC": 0.325, "XLI": 0.325}),
        "rotation_bear": inactive("rotation_bear"),
    }
    plan = plan_cycle(decisions, equity=100_000, prices={s: 100.0 for s in ("XLK", "XLF", "XLE", "XLC", "XLI")})
    assert plan.budgets == pytest.approx({"rotation_core": 0.5, "rotation_bull": 0.5})
    assert plan.account_weights == pytest.approx(
        {"XLK": 0.5 / 3 + 0.1625, "XLF": 0.5 / 3 + 0.1625, "XLE": 0.5 / 3, "XLC": 0.1625, "XLI": 0.1625}
    )
    assert not plan.caps  # 0.329 < 40%, gross 1.15 < 1.25


# --------------------------------------------------------------------------- M7


def test_per_symbol_cap_at_40pct():
    capped, notes = apply_caps({"m": {"XLK": 0.6, "XLF": 0.3}}, 100_000, OrderParams())
    assert capped["m"] == pytest.approx({"XLK": 0.4, "XLF": 0.3})
    assert [(n.reason, n.symbol) for n in notes] == [(R.ROTATION_SYMBOL_CAP, "XLK")]


def test_symbol_cap_is_shared_by_the_models_holding_the_symbol_in_proportion():
    capped, _ = apply_caps({"a": {"XLK": 0.3}, "b": {"XLK": 0.2}}, 100_000, OrderParams())
    assert capped["a"] == pytest.approx({"XLK": 0.24}) and capped["b"] == pytest.approx({"XLK": 0.16})  # 3:2 of 0.4


def test_gross_cap_scales_everything_proportionally():
    capped, notes = apply_caps({"m": {s: 0.39 for s in ("A", "B", "C", "D")}}, 100_000, OrderParams())
    assert capped["m"] == pytest.approx({s: 0.3125 for s in ("A", "B", "C", "D")})  # 1.56 → 1.25
    assert [n.reason for n in notes] == [R.ROTATION_GROSS_CAP]


def test_symbol_cap_then_gross_cap():
    capped, _ = apply_caps({"m": {"A": 0.6, "B": 0.35, "C": 0.35, "D": 0.35}}, 100_000, OrderParams())
    k = 1.25 / 1.45  # after the symbol cap: 0.4 + 3·0.35 = 1.45
    assert capped["m"] == pytest.approx({"A": 0.4 * k, "B": 0.35 * k, "C": 0.35 * k, "D": 0.35 * k})
    assert sum(capped["m"].values()) == pytest.approx(1.25)


def test_positions_under_100_dollars_are_dropped():
    capped, notes = apply_caps({"m": {"A": 0.5, "B": 0.009}}, 10_000, OrderParams())  # B: $90
    assert capped["m"] == pytest.approx({"A": 0.4, "B": 0.0})
    assert notes[-1].reason is R.ROTATION_POSITION_TOO_SMALL and notes[-1].symbol == "B"


# --------------------------------------------------------------------------- M8


def test_target_shares_are_floored():
    assert target_shares(1 / 3, 100_000, 300.0) == 111  # 111.11
    assert target_shares(1 / 3, 90_000, 300.0) == 100  # exactly 100 despite 1/3 in floating point
    assert target_shares(0.4, 1_000, 401.0) == 0
    assert target_shares(0.0, 1_000, 10.0) == 0


def test_one_model_rebalance_orders_with_strategy_id_and_key():
    plan = plan_cycle(
        {"rotation_core": rebalance("rotation_core", {"XLK": 1 / 3, "XLF": 1 / 3, "XLE": 1 / 3})},
        equity=100_000,
        prices={"XLK": 190.0, "XLF": 37.0, "XLE": 85.0},
    )
    assert [(o.symbol, o.target_qty) for o in plan.orders] == [("XLE", 392), ("XLF", 900), ("XLK", 175)]
    o = plan.orders[0]
    assert o.strategy_id == "ROTATION_CORE" and o.idempotency_key == "rotation_core:XLE:2024-01-02"
    assert o.reason is R.ROTATION_REBALANCE and o.side == "BUY"
    req = IntentRequest.model_validate(o.intent_body())
    assert (req.intent_type.value, req.strategy_id, req.target_qty) == ("SET_TARGET", "ROTATION_CORE", 392)


def test_a_change_under_1pct_of_equity_is_skipped_with_a_reason():
    # target 1/3·100k/100 = 333 shares; held 325 → +8·100 = $800 < $1,000
    plan = plan_cycle(
        {"m": rebalance("m", {"A": 1 / 3})}, equity=100_000, prices={"A": 100.0}, holdings={"m": {"A": 325}}
    )
    assert plan.orders == []
    [s] = plan.skipped
    assert (s.symbol, s.current_qty, s.target_qty, s.value, s.reason) == (
        "A",
        325,
        333,
        800.0,
        R.ROTATION_DELTA_SKIPPED,
    )
    # held 323 → +10 shares = $1,000: not under 1%, ordered
    plan = plan_cycle(
        {"m": rebalance("m", {"A": 1 / 3})}, equity=100_000, prices={"A": 100.0}, holdings={"m": {"A": 323}}
    )
    assert [(o.symbol, o.delta_qty) for o in plan.orders] == [("A", 10)]


def test_a_full_exit_is_never_skipped_however_small():
    plan = plan_cycle(
        {"m": rebalance("m", {"B": 0.3})}, equity=100_000, prices={"A": 100.0, "B": 50.0}, holdings={"m": {"A": 3}}
    )  # selling 3·$100 = $300 is under 1% of equity, but it closes the position
    assert [(o.symbol, o.target_qty, o.side) for o in plan.orders] == [("A", 0, "SELL"), ("B", 600, "BUY")]


def test_sells_come_before_buys_across_models():
    decisions = {
        "a": rebalance("a", {"XLF": 1.0}),
        "b": rebalance("b", {"XLE": 1.0}),
    }
    plan = plan_cycle(
        decisions,
        equity=100_000,
        prices={"XLK": 100.0, "XLF": 50.0, "XLE": 80.0, "XLV": 25.0},
        holdings={"a": {"XLK": 300}, "b": {"XLV": 1_000}},
    )
    assert [(o.model, o.symbol, o.side) for o in plan.orders] == [
        ("a", "XLK", "SELL"),
        ("b", "XLV", "SELL"),
        ("a", "XLF", "BUY"),
        ("b", "XLE", "BUY"),
    ]
    assert [o.target_qty for o in plan.orders] == [0, 0, 800, 500]  # 40%·100k/50, 40%/80 (symbol cap)


def test_hold_trades_nothing_inactive_liquidates_exit_sells_only_the_exited_sector():
    prices = {"XLK": 100.0, "XLF": 50.0, "XLE": 80.0}
    plan = plan_cycle(
        {
            "rotation_core": hold("rotation_core"),
            "rotation_bull": inactive("rotation_bull"),
            "rotation_adaptive": exit_("rotation_adaptive", "XLE", R.ROTATION_STOP),
        },
        equity=100_000,
        prices=prices,
        holdings={
            "rotation_core": {"XLK": 100},
            "rotation_bull": {"XLF": 200},
            "rotation_adaptive": {"XLE": 50, "XLK": 120},
        },
    )
    assert [(o.model, o.symbol, o.target_qty, o.reason) for o in plan.orders] == [
        ("rotation_adaptive", "XLE", 0, R.ROTATION_STOP),
        ("rotation_bull", "XLF", 0, R.ROTATION_LIQUIDATE),
    ]
    assert plan.budgets == pytest.approx({"rotation_core": 0.5, "rotation_adaptive": 0.5})
    assert plan.account_weights == pytest.approx({"XLK": 0.22})  # what is still held: (100 + 120)·100 / 100k


def test_a_symbol_without_a_price_is_skipped_with_a_reason():
    plan = plan_cycle({"m": rebalance("m", {"A": 0.5, "B": 0.5})}, equity=10_000, prices={"A": 10.0})
    assert [o.symbol for o in plan.orders] == ["A"]
    assert [(s.symbol, s.reason) for s in plan.skipped] == [("B", R.ROTATION_NO_PRICE)]


def test_idempotency_key_is_model_symbol_session_date():
    assert idempotency_key("rotation_bear", "TLT", date(2022, 6, 16)) == "rotation_bear:TLT:2022-06-16"


# --------------------------------------------------------------------------- M9


def test_one_audit_line_per_decision_with_ranks_weights_orders_and_skips():
    decisions = {
        "rotation_core": ModelDecision(
            "rotation_core",
            DAY,
            Action.REBALANCE,
            R.ROTATION_REBALANCE,
            RegimeReading(Regime.BULL, "SPY", 250, 475.3, 434.1, 0.073),
            {"XLF": 0.4, "XLK": 0.4},
            DAY,
            ranking=(("XLF", 0.124), ("XLK", 0.085), ("XLV", -0.01)),
        ),
        "rotation_bear": inactive("rotation_bear"),
    }
    plan = plan_cycle(
        decisions, equity=100_000, prices={"XLF": 37.0, "XLK": 190.0}, holdings={"rotation_core": {"XLK": 207}}
    )
    records = audit_records(plan, decisions, account="paper-main")
    assert [r["model"] for r in records] == ["rotation_bear", "rotation_core"]
    core = records[1]
    assert core["reason"] == "ROTATION_REBALANCE" and core["regime"]["regime"] == "bull"
    assert core["momentum_ranks"][0] == {"rank": 1, "symbol": "XLF", "momentum": 0.124}
    assert core["weights"] == {"XLF": 0.4, "XLK": 0.4} and core["budget"] == 1.0
    assert [(o["symbol"], o["target_qty"]) for o in core["orders"]] == [("XLF", 1081)]  # 40k/37 = 1081.08
    # XLK: floor(40k/190) = 210 vs 207 held: +3·$190 = $570 < 1% of equity
    assert core["skipped"] == [
        {
            "model": "rotation_core",
            "symbol": "XLK",
            "current_qty": 207,
            "target_qty": 210,
            "delta_qty": 3,
            "value": 570.0,
            "reason": "ROTATION_DELTA_SKIPPED",
        }
    ]
    assert records[0]["reason"] == "ROTATION_INACTIVE" and records[0]["weights"] is None
    line = audit_line(core)
    assert "\n" not in line and json.loads(line) == core and core["account"] == "paper-main"
