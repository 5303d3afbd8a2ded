"""Decisions → orders (size, limit, keys) on the one dispatch path."""

from __future__ import annotations

from datetime import datetime

from broker_core.clock import NEW_YORK
from strategies.swing_ml.config import Mode, SwingMlConfig
from strategies.swing_ml.orders import SwingOrder, build_orders, dispatch
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.regime import Regime
from strategies.swing_ml.synthesizer import Holding, Side, decide

NOW = datetime(2024, 12, 16, 11, 0, tzinfo=NEW_YORK)
ENTRY = datetime(2024, 12, 12, 10, 0, tzinfo=NEW_YORK)


def test_build_and_send_in_paper_mode():
    cfg = SwingMlConfig(mode=Mode.PAPER)
    probs = {f"S{i}": 0.40 + 0.02 * i for i in range(8)}  # S7 0.54, S6 0.52
    holdings = {"S0": Holding("S0", 7, 50.0, ENTRY)}
    result = decide(probs, Regime.RISK_ON, holdings, NOW, cfg.decide)
    prices = {"S0": 48.0, "S6": 100.0, "S7": 250.0}
    orders, skipped = build_orders(result, holdings, 100_000.0, prices, NOW, cfg)
    assert [(o.symbol, o.side, o.intent_type) for o in orders] == [
        ("S0", Side.SELL, "EXIT"),
        ("S7", Side.BUY, "ENTER"),
        ("S6", Side.BUY, "ENTER"),
    ]
    sell, b7, b6 = orders
    assert (
        sell.qty == 7 and sell.limit_price == 47.9 and sell.idempotency_key == "SWING_ML:S0:EXIT:2024-12-12T15:00:00Z"
    )
    assert sell.reason is Reason.SWING_SELL_SCORE
    # S7: f* = 0.54 − 0.46/1.6 = 0.2525, half 0.12625 → capped 10% → floor(10_000 / 250.50) = 39
    assert b7.limit_price == 250.5 and b7.qty == 39 and b7.detail["capped"] is True
    # S6: f* = 0.52 − 0.48/1.6 = 0.22 → 0.11 → 10% → floor(10_000 / 100.20) = 99
    assert b6.qty == 99 and b6.idempotency_key.startswith("SWING_ML:S6:ENTER:")
    assert skipped == []
    sent: list[str] = []
    logs: list[dict] = []

    def send(order: SwingOrder) -> str:
        sent.append(order.symbol)
        return "ACCEPTED"

    out = dispatch(orders, cfg.mode, send, logs.append)
    assert sent == ["S0", "S7", "S6"] and all(o.sent for o in out)
    assert all(r["mode"] == "paper" and r["event"] == "SENT" for r in logs)


def test_buy_without_a_price_or_kelly_edge_is_skipped():
    cfg = SwingMlConfig(mode=Mode.DRY_RUN)
    probs = {f"S{i}": 0.20 + 0.01 * i for i in range(8)}  # top probabilities 0.26/0.27: f* < 0
    result = decide(probs, Regime.NEUTRAL, {}, NOW, cfg.decide)
    assert [d.side for d in result.orders] == [Side.BUY, Side.BUY]
    orders, skipped = build_orders(result, {}, 100_000.0, {"S7": 100.0}, NOW, cfg)
    assert orders == [] and [(d.symbol, d.reason) for d in skipped] == [
        ("S7", Reason.SWING_SKIP_KELLY),
        ("S6", Reason.SWING_SKIP_KELLY),
    ]
