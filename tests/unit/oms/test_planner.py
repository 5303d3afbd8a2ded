from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from broker_core.models import OrderType
from oms.core.planner import OrderPlan, PlanningError, marketable_price, plan_order, snap_limit, stop_triggered
from oms.core.types import Constraints, IntentType, OrderRecord, OrderState

NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)
P = OrderType


def plan(intent=IntentType.ENTER, side="BUY", qty=10, last=10_000.0, bid=9_990.0, ask=10_000.0, **c):
    return plan_order(intent, side, qty, Constraints.model_construct(**c), last, bid, ask, NOW)


@pytest.mark.parametrize("intent", [IntentType.EXIT, IntentType.REDUCE, IntentType.FLATTEN])
def test_exits_default_to_marketable_limit_on_bid(intent):
    p = plan(intent, "SELL", bid=70_000.0, ask=70_100.0, last=70_050.0)
    # b_exit = max(3 ticks, 0.3%): 70,000·0.997 = 69,790 → 69,700; 3 ticks down = 69,700.
    assert p == OrderPlan(P.MARKETABLE_LIMIT, 69_700.0, None, None, False, "SELL", 10)
    assert p.broker_order_type is OrderType.LIMIT


def test_marketable_band_is_the_wider_of_pct_and_three_ticks():
    # 1,500 sell: 0.3% = 4.5 → round_down(1,495.5) = 1,495; 3 ticks of 1 = 1,497 → wider: 1,495.
    assert marketable_price(False, None, 1_500.0, None) == 1_495.0
    # 2,000 buy: 0.3% → 2,006 → round up to 2,010; 3 ticks of 5 = 2,015 → max = 2,015.
    assert marketable_price(True, None, None, 2_000.0) == 2_015.0
    # 2,000 sell: down 3 ticks uses the band below (1 each) → 1,997; 0.3% → 1,994 → min = 1,994.
    assert marketable_price(False, None, 2_000.0, None) == 1_994.0


def test_marketable_buy_on_ask_else_last():
    assert plan(IntentType.ENTER, "BUY", ask=10_000.0).limit_price == 10_030.0
    # 50,000: 0.3% → 50,150 → 50,200 on the grid, but 3 ticks of 100 = 50,300 is wider.
    assert plan(IntentType.ENTER, "BUY", ask=None, last=50_000.0).limit_price == 50_300.0
    assert plan(IntentType.EXIT, "SELL", bid=None, last=10_000.0).limit_price == 9_970.0


def test_marketable_without_any_price():
    with pytest.raises(PlanningError) as e:
        plan(IntentType.EXIT, "SELL", last=None, bid=None, ask=None)
    assert e.value.code == ReasonCode.NO_PRICE


def test_max_slippage_overrides_band():
    p = plan(IntentType.EXIT, "SELL", bid=100_000.0, max_slippage_bps=100)
    assert p.limit_price == 99_000.0
    p = plan(IntentType.EXIT, "SELL", bid=100_000.0, max_slippage_bps=0)
    assert p.limit_price == 99_900.0  # at least one tick through


def test_price_limit_clamp():
    p = plan_order(IntentType.ENTER, "BUY", 1, Constraints(), 13_000.0, None, 13_000.0, NOW, upper_limit=13_000.0)
    assert p.limit_price == 13_000.0
    p = plan_order(IntentType.EXIT, "SELL", 1, Constraints(), 7_000.0, 7_000.0, None, NOW, lower_limit=7_000.0)
    assert p.limit_price == 7_000.0


def test_entry_with_limit_is_limit_rounded_by_side():
    assert plan(limit_price=10_003.0) == OrderPlan(P.LIMIT, 10_010.0, None, None, False, "BUY", 10)
    p = plan(IntentType.ENTER, "SELL", limit_price=10_007.0)
    assert p.limit_price == 10_000.0
    assert plan(limit_price=10_000.0).limit_price == 10_000.0  # on grid stays


def test_entry_without_limit_is_marketable():
    assert plan().order_type is P.MARKETABLE_LIMIT


def test_market_allowed_when_asked():
    p = plan(order_type=P.MARKET, limit_price=10_000.0)
    assert p.order_type is P.MARKET and p.limit_price is None
    assert p.broker_order_type is OrderType.MARKET


def test_explicit_limit_for_an_exit():
    p = plan(IntentType.EXIT, "SELL", order_type=P.LIMIT, limit_price=10_016.0)
    assert p.order_type is P.LIMIT and p.limit_price == 10_010.0


def test_limit_without_price_is_invalid():
    with pytest.raises(PlanningError) as e:
        plan(order_type=P.LIMIT)
    assert e.value.code == ReasonCode.INVALID_ORDER
    with pytest.raises(PlanningError):
        snap_limit(0.0, True)


def test_stop_limit_held_until_trigger():
    p = plan(stop_price=10_250.0, limit_price=10_300.0, last=10_200.0)
    assert p.order_type is P.STOP_LIMIT and p.held
    assert p.stop_price == 10_250.0 and p.limit_price == 10_300.0
    assert not stop_triggered(p, 10_240.0)
    assert stop_triggered(p, 10_250.0)
    p = plan(stop_price=10_250.0, limit_price=10_300.0, last=10_260.0)
    assert not p.held and p.broker_order_type is OrderType.LIMIT


def test_stop_not_rounded_and_limit_derived_when_missing():
    p = plan(stop_price=10_243.0, last=10_000.0)
    assert p.stop_price == 10_243.0
    assert p.limit_price == 10_280.0  # 10,243 · 1.003 = 10,273.7 → 10,280; 3 ticks = 10,280


def test_stop_limit_held_without_last():
    assert plan(stop_price=10_250.0, last=None, bid=None, ask=None).held


def test_stop_limit_wrong_side_rejected():
    with pytest.raises(PlanningError):
        plan(stop_price=10_250.0, limit_price=10_000.0)
    with pytest.raises(PlanningError):
        plan(order_type=P.STOP_LIMIT)


def test_sell_stop_triggers_at_or_below():
    p = plan(IntentType.EXIT, "SELL", order_type=P.STOP_LIMIT, stop_price=9_500.0, limit_price=9_400.0, last=9_600.0)
    assert p.held
    assert stop_triggered(p, 9_500.0) and not stop_triggered(p, 9_510.0)


def test_stop_triggered_on_order_record():
    o = OrderRecord(
        order_id="o",
        intent_id="i",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=1,
        order_type=P.STOP_LIMIT,
        state=OrderState.HELD,
        created_at=NOW,
        updated_at=NOW,
        limit_price=10_300.0,
        stop_price=10_250.0,
    )
    assert not stop_triggered(o, 10_000.0) and stop_triggered(o, 10_300.0)
    assert stop_triggered(plan(), None)  # no stop: nothing to wait for


def test_cancel_after():
    assert plan(cancel_after_sec=90).cancel_after_ts == NOW + timedelta(seconds=90)
    assert plan().cancel_after_ts is None
    with pytest.raises(PlanningError):
        plan(cancel_after_sec=0)


@pytest.mark.parametrize(
    "kw", [dict(qty=0), dict(side="SHORT"), dict(intent=IntentType.CANCEL_ORDERS), dict(intent=IntentType.MODIFY_RISK)]
)
def test_invalid_inputs(kw):
    with pytest.raises(PlanningError):
        plan(**kw)


def test_side_case_insensitive():
    assert plan(side="buy").side == "BUY"
