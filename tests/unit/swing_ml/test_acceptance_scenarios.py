"""strategies.md §7 swing-ML acceptance scenarios 1–7."""

from __future__ import annotations

from datetime import datetime

import pytest

from broker_core.clock import NEW_YORK
from strategies.swing_ml.config import Mode, RiskParams, SizingParams, SwingMlConfig
from strategies.swing_ml.orders import SwingOrder, dispatch, exit_order
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.risk import check_exit, exit_gate, exit_key, held_trading_days
from strategies.swing_ml.sizing import kelly, kelly_fraction_of_nav
from strategies.swing_ml.synthesizer import Decision, Holding, Side, decide, submission_order

CFG = SwingMlConfig(mode=Mode.PAPER)


def test_1_take_profit_and_stop_at_fixed_thresholds():
    tp = check_exit(fill=100.0, last=104.00, params=RiskParams())
    assert tp.sell and tp.reason is Reason.SWING_TAKE_PROFIT
    stop = check_exit(fill=100.0, last=97.50, params=RiskParams())
    assert stop.sell and stop.reason is Reason.SWING_STOP
    assert check_exit(fill=100.0, last=103.99, params=RiskParams()).reason is None
    assert check_exit(fill=100.0, last=97.51, params=RiskParams()).reason is None


def test_2_max_hold_ten_trading_days_emits_sell():
    entry = datetime(2024, 12, 2, 10, 0, tzinfo=NEW_YORK)
    now = datetime(2024, 12, 16, 11, 0, tzinfo=NEW_YORK)  # Dec 3,4,5,6,9,10,11,12,13,16 = 10 sessions
    assert held_trading_days(entry, now) == 10
    holdings = {"AAPL": Holding("AAPL", 10, 200.0, entry)}
    probs = {f"S{i}": 0.5 for i in range(8)} | {"AAPL": 0.5}
    result = decide(probs, None, holdings, now, CFG.decide)
    assert [(d.symbol, d.side, d.reason, d.held_days) for d in result.orders] == [
        ("AAPL", Side.SELL, Reason.SWING_MAX_HOLD, 10)
    ]
    day_before = datetime(2024, 12, 13, 11, 0, tzinfo=NEW_YORK)
    assert decide(probs, None, holdings, day_before, CFG.decide).orders == []


def test_3_risk_check_and_decide_sell_in_the_same_minute_one_reaches_the_broker():
    entry = datetime(2024, 12, 2, 10, 0, tzinfo=NEW_YORK)
    holding = Holding("AAPL", 10, 200.0, entry)
    allocation = {"AAPL": 10}
    working_sells: set[str] = set()
    broker: list[str] = []
    logs: list[dict] = []

    def gate(order: SwingOrder):  # re-read allocation and working orders (S8)
        return exit_gate(allocation[order.symbol], bool(working_sells))

    def send(order: SwingOrder) -> str:
        if order.idempotency_key in working_sells:  # the OMS's own key check (not reached here)
            return "STORED"
        working_sells.add(order.idempotency_key)
        broker.append(order.symbol)
        return "ACCEPTED"

    from_risk = exit_order(holding, 193.0, Reason.SWING_STOP, CFG)
    from_decide = exit_order(holding, 193.0, Reason.SWING_MAX_HOLD, CFG)
    assert from_risk.idempotency_key == from_decide.idempotency_key == exit_key("AAPL", entry)
    assert from_risk.idempotency_key == "SWING_ML:AAPL:EXIT:2024-12-02T15:00:00Z"
    first = dispatch([from_risk], CFG.mode, send, logs.append, gate)
    second = dispatch([from_decide], CFG.mode, send, logs.append, gate)
    assert broker == ["AAPL"]
    assert first[0].sent and not second[0].sent and second[0].reason is Reason.DUPLICATE_SUPPRESSED
    assert logs[-1]["event"] == "DUPLICATE_SUPPRESSED" and logs[-1]["mode"] == "paper"
    allocation["AAPL"] = 0  # filled: allocation 0 → a third exit is still a no-op
    working_sells.clear()
    third = dispatch([from_decide], CFG.mode, send, logs.append, gate)
    assert not third[0].sent and third[0].reason is Reason.DUPLICATE_SUPPRESSED and broker == ["AAPL"]


def test_4_atr_dynamic_holds_above_the_atr_stop():
    params = RiskParams(atr_dynamic=True)
    check = check_exit(fill=100.0, last=97.0, params=params, atr14=3.0)
    assert check.reason is None
    assert check.levels.stop == pytest.approx(95.5)
    assert check.levels.take_profit == pytest.approx(107.5)
    assert check_exit(fill=100.0, last=95.5, params=params, atr14=3.0).reason is Reason.SWING_STOP
    with pytest.raises(ValueError, match="ATR14"):
        check_exit(fill=100.0, last=97.0, params=params)


def test_5_sells_are_submitted_before_buys():
    def d(sym: str, side: Side) -> Decision:
        return Decision(
            sym, side, Reason.SWING_BUY if side is Side.BUY else Reason.SWING_SELL_SCORE, None, None, None, None
        )

    decided = [d("AAPL", Side.BUY), d("MSFT", Side.SELL), d("TSLA", Side.SELL)]
    assert [x.symbol for x in submission_order(decided)] == ["MSFT", "TSLA", "AAPL"]


def test_6_half_kelly_capped_at_ten_percent_of_nav():
    assert RiskParams().payoff_ratio == pytest.approx(1.6)
    f_star, half, fraction, capped = kelly_fraction_of_nav(0.55, 1.6, SizingParams())
    assert round(f_star, 3) == 0.269 and f_star == pytest.approx(kelly(0.55, 1.6))
    assert round(half, 3) == 0.134
    assert fraction == 0.10 and capped


def test_7_dry_run_logs_intents_and_sends_none():
    entry = datetime(2024, 12, 2, 10, 0, tzinfo=NEW_YORK)
    cfg = SwingMlConfig(mode=Mode.DRY_RUN)
    sent: list[SwingOrder] = []
    logs: list[dict] = []
    sell = exit_order(Holding("MSFT", 5, 400.0, entry), 390.0, Reason.SWING_STOP, cfg)
    buy = SwingOrder("AAPL", Side.BUY, Reason.SWING_BUY, 10, 200.4, "SWING_ML:AAPL:ENTER:x", "ENTER", {"proba": 0.6})
    out = dispatch([buy, sell], cfg.mode, sent.append, logs.append)
    assert sent == []
    assert [o.reason for o in out] == [Reason.SWING_DRY_RUN, Reason.SWING_DRY_RUN]
    assert [r["symbol"] for r in logs] == ["MSFT", "AAPL"]
    assert all(r["mode"] == "dry_run" and r["event"] == "SWING_DRY_RUN" for r in logs)
    assert (
        logs[0]["limit_price"] == 389.22 and logs[0]["qty"] == 5 and logs[0]["idempotency_key"] == sell.idempotency_key
    )
    assert logs[1]["proba"] == 0.6  # full detail
