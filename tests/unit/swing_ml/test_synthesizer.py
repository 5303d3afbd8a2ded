"""S3.3 quartile votes, S3.5 score and BUY/SELL rules."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from broker_core.clock import NEW_YORK
from strategies.swing_ml.config import DecideParams
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.regime import Regime
from strategies.swing_ml.synthesizer import Holding, Side, decide, quartile_votes, synth_score

NOW = datetime(2024, 12, 16, 11, 0, tzinfo=NEW_YORK)
RECENT = datetime(2024, 12, 12, 10, 0, tzinfo=NEW_YORK)


def probs(n: int = 8) -> dict[str, float]:
    return {f"S{i}": 0.40 + 0.01 * i for i in range(n)}  # S7 highest


def test_quartile_votes():
    v = quartile_votes(probs(8))
    assert [v[f"S{i}"] for i in range(8)] == [-1, -1, 0, 0, 0, 0, 1, 1]
    v97 = quartile_votes({f"X{i}": i / 100 for i in range(97)})
    assert sum(x == 1 for x in v97.values()) == 24 and sum(x == -1 for x in v97.values()) == 24
    assert v97["X73"] == 1 and v97["X72"] == 0 and v97["X23"] == -1 and v97["X24"] == 0
    assert list(quartile_votes({"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4}).values()) == [-1, 0, 0, 1]
    assert quartile_votes({"A": float("nan"), "B": 0.5}) == {"B": 0}
    assert quartile_votes({}) == {}


def test_score_weights():
    assert synth_score(1, 0) == pytest.approx(0.6 / 0.85)
    assert synth_score(1, 1) == pytest.approx(1.0)
    assert synth_score(1, -1) == pytest.approx(0.35 / 0.85)
    assert synth_score(0, -1) == pytest.approx(-0.25 / 0.85)
    assert synth_score(1, None) == pytest.approx(1.0)
    assert synth_score(1, 0, [0.5, -1.0]) == pytest.approx((0.6 + 0.075 * 0.5 - 0.075) / 1.0)
    assert synth_score(None, None) is None
    with pytest.raises(ValueError):
        synth_score(1, 0, [2.0])


def test_buy_rules():
    res = decide(probs(8), Regime.NEUTRAL, {}, NOW)
    assert [(d.symbol, d.side, d.reason) for d in res.orders] == [
        ("S7", Side.BUY, Reason.SWING_BUY),
        ("S6", Side.BUY, Reason.SWING_BUY),
    ]
    assert res.orders[0].score == pytest.approx(0.6 / 0.85)
    off = decide(probs(8), Regime.RISK_OFF, {}, NOW)
    assert off.orders == [] and {d.reason for d in off.skipped} == {Reason.SWING_SKIP_RISK_OFF}
    # with the default weights an extra −1 leaves 0.45 ≥ 0.4; a heavier extra drags it below
    assert decide(probs(8), Regime.NEUTRAL, {}, NOW, extras={"S7": [-1.0]}).orders[0].score == pytest.approx(0.45)
    low = decide(probs(8), Regime.NEUTRAL, {}, NOW, DecideParams(extras_weight=0.6), extras={"S7": [-1.0]})
    assert [d.symbol for d in low.orders] == ["S6"] and low.skipped[0].reason is Reason.SWING_SKIP_SCORE
    # held and pending names are not bought; positions < 10 counts them
    held = {f"H{i}": Holding(f"H{i}", 1, 10.0, RECENT) for i in range(9)}
    res = decide(probs(8), Regime.RISK_ON, held, NOW, pending=["S7"])
    assert [d.symbol for d in res.orders if d.side is Side.BUY] == []
    assert [(d.symbol, d.reason) for d in res.skipped] == [("S6", Reason.SWING_SKIP_MAX_POSITIONS)]
    res = decide(probs(8), Regime.RISK_ON, dict(list(held.items())[:8]), NOW, pending=["S7"])
    assert [d.symbol for d in res.orders if d.side is Side.BUY] == ["S6"]


def test_sell_rules():
    p = probs(8)
    holdings = {s: Holding(s, 10, 50.0, RECENT) for s in ("S0", "S3", "S7")}
    res = decide(p, Regime.NEUTRAL, holdings, NOW)
    sells = [(d.symbol, d.reason) for d in res.orders if d.side is Side.SELL]
    assert sells == [("S0", Reason.SWING_SELL_SCORE)]  # −0.6/0.85 ≤ −0.2; S3 (0) and S7 (+1) held
    assert res.orders[0].side is Side.SELL and res.orders[-1].side is Side.BUY  # SELLs first
    off = decide(p, Regime.RISK_OFF, holdings, NOW)
    assert [(d.symbol, d.reason) for d in off.orders] == [
        ("S0", Reason.SWING_SELL_SCORE),
        ("S3", Reason.SWING_SELL_SCORE),
    ]
    # custom sessions and max_hold_days
    sessions = [date(2024, 12, d) for d in (12, 13, 16)]
    res = decide(p, Regime.NEUTRAL, {"S7": holdings["S7"]}, NOW, DecideParams(max_hold_days=2), sessions=sessions)
    assert [(d.symbol, d.reason, d.held_days) for d in res.orders if d.side is Side.SELL] == [
        ("S7", Reason.SWING_MAX_HOLD, 2)
    ]
