"""The paper matching engine: resting and crossing, partial fills, reservations, rejections, fees."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.errors import OrderNotFound, OrderRejected
from broker_core.market_rules import marketable_limit
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side, Tick
from broker_core.paper.fees import ZERO_FEES, FeeSchedule
from broker_core.paper.matching import MatchingEngine, RejectCode, regular_session

SYM = "005930"  # base 10,000: tick 10, limits 7,000–13,000
EDGE = "000660"  # base 38,500: limits 26,950–50,000; the upper sits on a tick-band edge (50 → 100)
OPEN = datetime(2026, 2, 27, 9, 0, tzinfo=KST)


def at(seconds: float) -> datetime:
    return OPEN + timedelta(seconds=seconds)


def make_engine(**kw: object) -> MatchingEngine:
    kw.setdefault("order_window", None)
    kw.setdefault("fees", ZERO_FEES)
    kw.setdefault("simulate_vi", False)
    return MatchingEngine({SYM: 10_000, EDGE: 38_500}, **kw)  # type: ignore[arg-type]


def tick(price: float, seconds: float, qty: int = 1_000, symbol: str = SYM) -> Tick:
    return Tick(symbol, at(seconds), price, qty)


def buy(
    cid: str, qty: int, price: float | None = None, order_type: OrderType = OrderType.LIMIT, symbol: str = SYM
) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.BUY, qty, order_type, price)


def sell(
    cid: str, qty: int, price: float | None = None, order_type: OrderType = OrderType.LIMIT, symbol: str = SYM
) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.SELL, qty, order_type, price)


def snapshot(engine: MatchingEngine) -> tuple[object, ...]:
    return (
        engine.account(),
        engine.positions(),
        engine.open_orders(),
        engine.reserved_cash(),
        engine.reserved_shares(SYM),
        engine.fills(),
    )


# -- resting and crossing -------------------------------------------------------------------


@pytest.mark.parametrize("through", [9_900, 9_880])
def test_buy_limit_below_market_rests_until_the_tape_trades_at_or_through_it(through: float) -> None:
    engine = make_engine()
    engine.submit(buy("b1", 10, 9_900), at(0))
    for i, price in enumerate([10_000, 9_950, 9_910], start=1):
        assert engine.on_tick(tick(price, i)) == []
    assert engine.get_order("b1").status is OrderStatus.NEW

    (update,) = engine.on_tick(tick(through, 10))

    assert update.order.status is OrderStatus.FILLED
    assert update.fill is not None and update.fill.price == through and update.fill.qty == 10
    assert engine.position(SYM).qty == 10


def test_sell_limit_above_market_fills_when_the_tape_trades_at_or_above_it() -> None:
    engine = make_engine()
    engine.set_position(SYM, 10, 9_000)
    engine.submit(sell("s1", 10, 10_100), at(0))
    assert engine.on_tick(tick(10_090, 1)) == []
    (update,) = engine.on_tick(tick(10_150, 2))
    assert update.fill.price == 10_150
    assert engine.position(SYM) is None


def test_market_and_marketable_limit_orders_fill_at_tape_prices() -> None:
    engine = make_engine()
    engine.on_tick(tick(10_000, 0))
    market = engine.submit(buy("m1", 5, order_type=OrderType.MARKET), at(1))
    marketable = engine.submit(buy("ml1", 5, order_type=OrderType.MARKETABLE_LIMIT), at(1))
    assert market.limit_price is None
    assert marketable.limit_price == marketable_limit(10_000, buy=True)

    updates = engine.on_tick(tick(10_020, 2))

    assert [(u.order.client_order_id, u.fill.price, u.fill.qty) for u in updates] == [
        ("m1", 10_020, 5),
        ("ml1", 10_020, 5),
    ]


def test_marketable_limit_uses_band_bps_and_stays_inside_the_daily_limits() -> None:
    engine = make_engine()
    engine.on_tick(tick(12_800, 0))
    req = OrderRequest("ml", SYM, Side.BUY, 1, OrderType.MARKETABLE_LIMIT, band_bps=500)
    assert engine.submit(req, at(1)).limit_price == 13_000
    narrow = OrderRequest("ml2", SYM, Side.BUY, 1, OrderType.MARKETABLE_LIMIT, band_bps=100)
    assert engine.submit(narrow, at(1)).limit_price == marketable_limit(12_800, True, 0.01)


def test_orders_fill_only_on_prints_after_their_submission() -> None:
    engine = make_engine()
    engine.submit(buy("b1", 1, order_type=OrderType.MARKET), at(5))
    assert engine.on_tick(tick(10_000, 4)) == []
    assert engine.on_tick(tick(10_000, 5)) == []
    assert len(engine.on_tick(tick(10_000, 6))) == 1


# -- partial fills and the participation cap ---------------------------------------------------


def test_partial_fills_add_up_to_the_order_and_to_the_account_change() -> None:
    engine = make_engine(fees=FeeSchedule())
    cash0 = engine.account().cash
    engine.submit(buy("b1", 25, 10_000), at(0))

    updates = [u for i, p in enumerate([9_990, 10_000, 9_980], 1) for u in engine.on_tick(tick(p, i, qty=40))]

    assert [u.order.status for u in updates] == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    fills = [u.fill for u in updates]
    assert [f.qty for f in fills] == [10, 10, 5]
    assert sum(f.qty for f in fills) == 25
    notional = sum(f.qty * f.price for f in fills)
    commission = sum(f.commission for f in fills)
    order = engine.get_order("b1")
    assert order.filled_qty == 25 and order.avg_fill_price == pytest.approx(notional / 25)
    assert engine.account().cash == pytest.approx(cash0 - notional - commission)
    assert engine.position(SYM).qty == 25
    assert engine.position(SYM).avg_price == pytest.approx(notional / 25)
    assert engine.fills() == fills
    assert engine.reserved_cash() == 0


def test_one_print_is_shared_by_crossing_orders_in_time_priority() -> None:
    engine = make_engine()
    engine.submit(buy("first", 8, 10_000), at(0))
    engine.submit(buy("second", 8, 10_000), at(1))
    engine.submit(buy("too_low", 8, 9_000), at(1))

    updates = engine.on_tick(tick(10_000, 2, qty=40))  # cap 10

    assert [(u.order.client_order_id, u.fill.qty) for u in updates] == [("first", 8), ("second", 2)]


def test_a_print_with_volume_fills_at_least_one_share() -> None:
    engine = make_engine()
    engine.submit(buy("b1", 5, 10_000), at(0))
    assert [u.fill.qty for u in engine.on_tick(tick(10_000, 1, qty=1))] == [1]
    assert engine.on_tick(tick(10_000, 2, qty=0)) == []


def test_execution_ids_are_unique_and_deterministic() -> None:
    def run() -> list[str]:
        engine = make_engine()
        engine.submit(buy("b1", 30, 10_000), at(0))
        for i in range(1, 4):
            engine.on_tick(tick(10_000, i, qty=40))
        return [f.execution_id for f in engine.fills()]

    ids = run()
    assert len(ids) == len(set(ids)) == 3
    assert ids == run()


# -- cancel and idempotency -------------------------------------------------------------------


def test_cancel_of_a_filled_order_is_rejected() -> None:
    engine = make_engine()
    engine.submit(buy("b1", 1, 10_000), at(0))
    engine.on_tick(tick(10_000, 1))
    with pytest.raises(OrderRejected) as err:
        engine.cancel("b1", at(2))
    assert err.value.code == RejectCode.ALREADY_FINAL
    assert engine.get_order("b1").status is OrderStatus.FILLED


def test_cancel_of_a_partially_filled_order_keeps_the_filled_part_and_releases_the_rest() -> None:
    engine = make_engine()
    cash0 = engine.account().cash
    engine.submit(buy("b1", 30, 10_000), at(0))
    engine.on_tick(tick(10_000, 1, qty=40))

    cancelled = engine.cancel("b1", at(2))

    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_qty == 10
    assert cancelled.leaves_qty == 0 and cancelled.reason == "CANCELLED"
    assert engine.open_orders() == [] and engine.reserved_cash() == 0
    assert engine.account().buyable_cash == engine.account().cash == cash0 - 100_000
    assert engine.on_tick(tick(10_000, 3)) == []
    with pytest.raises(OrderRejected) as err:
        engine.cancel("b1", at(4))
    assert err.value.code == RejectCode.ALREADY_FINAL


def test_cancel_of_an_unknown_order_raises_not_found() -> None:
    with pytest.raises(OrderNotFound):
        make_engine().cancel("nope", at(0))


def test_resubmitting_a_client_order_id_creates_nothing() -> None:
    engine = make_engine()
    first = engine.submit(buy("b1", 10, 9_900), at(0))
    engine.drain_updates()
    before = (len(engine.orders()), snapshot(engine))

    again = engine.submit(buy("b1", 99, 9_000), at(1))

    assert again == first
    assert (len(engine.orders()), snapshot(engine)) == before
    assert engine.drain_updates() == []


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (buy("x", 1, 10_005), RejectCode.OFF_TICK),
        (buy("x", 1, 10_000.5), RejectCode.OFF_TICK),
        (buy("x", 1, None), RejectCode.INVALID_PRICE),
        (buy("x", 1, 0), RejectCode.INVALID_PRICE),
        (buy("x", 1, -10_000), RejectCode.INVALID_PRICE),
        (buy("x", 1, 13_010), RejectCode.OUTSIDE_PRICE_LIMIT),
        (buy("x", 1, 6_990), RejectCode.OUTSIDE_PRICE_LIMIT),
        (buy("x", 1, 50_100, symbol=EDGE), RejectCode.OUTSIDE_PRICE_LIMIT),
        (buy("x", 1, 26_900, symbol=EDGE), RejectCode.OUTSIDE_PRICE_LIMIT),
        (buy("x", 0, 10_000), RejectCode.INVALID_QTY),
        (buy("x", -5, 10_000), RejectCode.INVALID_QTY),
        (sell("x", 0, 10_000), RejectCode.INVALID_QTY),
        (buy("x", 1, 10_000, symbol="999999"), RejectCode.UNKNOWN_SYMBOL),
        (buy("x", 10_001, 10_000), RejectCode.INSUFFICIENT_CASH),
        (sell("x", 11, 10_000), RejectCode.INSUFFICIENT_SHARES),
        (sell("x", 1, 40_000, symbol=EDGE), RejectCode.INSUFFICIENT_SHARES),
        (sell("x", 1, order_type=OrderType.MARKET, symbol=EDGE), RejectCode.INSUFFICIENT_SHARES),
    ],
)
def test_bad_orders_are_rejected_with_a_code_and_change_nothing(req: OrderRequest, code: RejectCode) -> None:
    engine = make_engine()
    engine.set_position(SYM, 10, 9_000)
    engine.submit(buy("working", 10, 9_000), at(0))
    before = snapshot(engine)

    with pytest.raises(OrderRejected) as err:
        engine.submit(req, at(1))

    assert err.value.code == code and err.value.message
    assert snapshot(engine) == before
    stored = engine.get_order("x")
    assert stored.status is OrderStatus.REJECTED and stored.reason == code and stored.leaves_qty == 0


@pytest.mark.parametrize(("symbol", "price"), [(SYM, 13_000), (SYM, 7_000), (EDGE, 50_000), (EDGE, 26_950)])
def test_limits_exactly_at_the_daily_limits_are_accepted(symbol: str, price: float) -> None:
    engine = make_engine()
    assert engine.submit(buy("b", 1, price, symbol=symbol), at(0)).status is OrderStatus.NEW


def test_buy_cash_check_includes_commission() -> None:
    engine = make_engine(fees=FeeSchedule())
    with pytest.raises(OrderRejected) as err:
        engine.submit(buy("b1", 10_000, 10_000), at(0))  # 100,000,000 + 15,000 commission
    assert err.value.code == RejectCode.INSUFFICIENT_CASH
    assert engine.submit(buy("b2", 9_998, 10_000), at(0)).status is OrderStatus.NEW


def test_working_buys_reserve_cash() -> None:
    engine = make_engine()
    engine.submit(buy("b1", 6_000, 10_000), at(0))
    assert engine.account().buyable_cash == 40_000_000
    with pytest.raises(OrderRejected) as err:
        engine.submit(buy("b2", 4_001, 10_000), at(0))
    assert err.value.code == RejectCode.INSUFFICIENT_CASH
    engine.submit(buy("b3", 4_000, 10_000), at(0))
    assert engine.account().buyable_cash == 0


def test_market_buy_reserves_cash_at_the_upper_limit() -> None:
    engine = make_engine(cash=1_300_000)
    with pytest.raises(OrderRejected) as err:
        engine.submit(buy("m1", 101, order_type=OrderType.MARKET), at(0))
    assert err.value.code == RejectCode.INSUFFICIENT_CASH
    engine.submit(buy("m2", 100, order_type=OrderType.MARKET), at(0))
    assert engine.reserved_cash() == 1_300_000
    engine.on_tick(tick(10_000, 1))
    assert engine.account().cash == 300_000 and engine.reserved_cash() == 0


def test_working_sells_reserve_shares_so_nothing_sells_short() -> None:
    engine = make_engine()
    engine.set_position(SYM, 100, 9_000)
    engine.submit(sell("s1", 60, 10_500), at(0))
    with pytest.raises(OrderRejected) as err:
        engine.submit(sell("s2", 41, 10_500), at(0))
    assert err.value.code == RejectCode.INSUFFICIENT_SHARES
    engine.submit(sell("s3", 40, 10_500), at(0))


def test_a_sell_fill_never_exceeds_the_shares_held_even_after_admin_drift() -> None:
    engine = make_engine()
    engine.set_position(SYM, 10, 9_000)
    engine.submit(sell("s1", 10, 10_000), at(0))
    engine.set_position(SYM, 4, 9_000)
    (update,) = engine.on_tick(tick(10_000, 1))
    assert update.fill.qty == 4 and update.order.status is OrderStatus.PARTIALLY_FILLED
    assert engine.position(SYM) is None
    assert engine.on_tick(tick(10_000, 2)) == []


@pytest.mark.parametrize(
    ("hhmm", "accepted"),
    [((8, 0), False), ((8, 30), True), ((9, 0), True), ((15, 25), True), ((15, 30), False), ((16, 0), False)],
)
def test_orders_are_accepted_only_during_the_regular_session(hhmm: tuple[int, int], accepted: bool) -> None:
    engine = make_engine(order_window=regular_session)
    now = OPEN.replace(hour=hhmm[0], minute=hhmm[1])
    if accepted:
        assert engine.submit(buy("b", 1, 10_000), now).status is OrderStatus.NEW
        return
    with pytest.raises(OrderRejected) as err:
        engine.submit(buy("b", 1, 10_000), now)
    assert err.value.code == RejectCode.MARKET_CLOSED
    assert engine.open_orders() == []


# -- fees and P&L -------------------------------------------------------------------------


def test_fee_schedule_defaults() -> None:
    fees = FeeSchedule()
    assert fees.commission(1_000_000) == 150
    assert fees.commission(10_000) == 1  # 1.5 won, truncated
    assert fees.tax(Side.BUY, 1_000_000) == 0
    assert fees.tax(Side.SELL, 1_000_000) == 2_000
    assert FeeSchedule(min_commission=500).commission(10_000) == 500
    assert FeeSchedule(min_commission=500).commission(0) == 0


def test_commission_on_both_sides_tax_on_sells_and_round_trip_realized_pnl() -> None:
    engine = make_engine(fees=FeeSchedule())
    cash0 = engine.account().cash
    engine.submit(buy("b1", 100, 10_000), at(0))
    (bought,) = engine.on_tick(tick(10_000, 1))
    engine.submit(sell("s1", 100, 11_000), at(2))
    (sold,) = engine.on_tick(tick(11_000, 3))

    assert (bought.fill.commission, bought.fill.tax) == (150, 0)
    assert (sold.fill.commission, sold.fill.tax) == (165, 2_200)
    account = engine.account()
    assert account.realized_pnl == 100_000 - 150 - 165 - 2_200
    assert account.cash - cash0 == account.realized_pnl
    assert engine.positions() == []


def test_partial_close_realizes_against_the_average_price() -> None:
    engine = make_engine()
    engine.submit(buy("b1", 10, 10_000), at(0))
    engine.on_tick(tick(10_000, 1))
    engine.submit(buy("b2", 10, 9_000), at(2))
    engine.on_tick(tick(9_000, 3))
    assert engine.position(SYM).avg_price == 9_500
    engine.submit(sell("s1", 5, 10_000), at(4))
    engine.on_tick(tick(10_000, 5))
    assert engine.account().realized_pnl == 2_500
    assert engine.position(SYM).qty == 15 and engine.position(SYM).avg_price == 9_500


# -- the day, quotes, account -------------------------------------------------------------


def test_day_expiry_expires_working_orders_and_closes_the_book() -> None:
    engine = make_engine()
    engine.set_position(SYM, 10, 9_000)
    engine.submit(buy("done", 1, 10_000), at(0))
    engine.submit(buy("b1", 30, 9_500), at(0))
    engine.submit(sell("s1", 10, 12_000), at(0))
    engine.on_tick(tick(9_500, 1, qty=40))

    updates = engine.expire_day(at(3600))

    assert [(u.order.client_order_id, u.order.status, u.order.reason) for u in updates] == [
        ("b1", OrderStatus.EXPIRED, "DAY_END"),
        ("s1", OrderStatus.EXPIRED, "DAY_END"),
    ]
    assert engine.get_order("b1").filled_qty == 9
    assert engine.get_order("done").status is OrderStatus.FILLED
    assert engine.open_orders() == [] and engine.reserved_cash() == 0 and engine.reserved_shares(SYM) == 0
    with pytest.raises(OrderRejected) as err:
        engine.submit(buy("late", 1, 10_000), at(3601))
    assert err.value.code == RejectCode.MARKET_CLOSED


def test_quote_synthesizes_a_one_tick_spread_around_the_last_print() -> None:
    engine = make_engine()
    before = engine.quote(SYM, at(0))
    assert (before.last, before.prev_close, before.volume) == (10_000, 10_000, 0)
    engine.add_instrument("035720", 5_200)
    engine.on_tick(tick(5_000, 1, qty=7, symbol="035720"))
    q = engine.quote("035720", at(2))
    assert (q.last, q.bid, q.ask) == (5_000, 5_000, 5_010)
    assert (q.lower_limit, q.upper_limit, q.volume, q.halted) == (3_640, 6_760, 7, False)


def test_account_equity_marks_positions_at_the_last_print() -> None:
    engine = make_engine()
    engine.set_position(SYM, 10, 9_000)
    engine.on_tick(tick(10_500, 1))
    account = engine.account()
    assert account.market_value == 105_000
    assert account.equity == account.cash + 105_000


def test_injected_shares_that_nobody_bought_can_be_sold() -> None:
    engine = make_engine()
    engine.set_position(SYM, 5, 8_000)
    assert engine.orders() == [] and engine.fills() == []
    engine.submit(sell("s1", 5, 10_000), at(0))
    engine.on_tick(tick(10_000, 1))
    assert engine.account().realized_pnl == 10_000
    engine.adjust_cash(-1_000)
    assert engine.account().cash == 100_000_000 + 50_000 - 1_000


def test_plain_string_enums_are_understood_and_garbage_is_invalid() -> None:
    engine = make_engine()
    engine.set_position(SYM, 1, 9_000)
    order = engine.submit(OrderRequest("s1", SYM, "SELL", 1, "LIMIT", 10_000), at(0))  # type: ignore[arg-type]
    assert order.side is Side.SELL and order.order_type is OrderType.LIMIT
    with pytest.raises(OrderRejected) as err:
        engine.submit(OrderRequest("x", SYM, "SHORT", 1, "LIMIT", 10_000), at(0))  # type: ignore[arg-type]
    assert err.value.code == RejectCode.INVALID_ORDER and engine.get_order("x") is None


def test_reserved_cash_kept_incrementally_equals_a_full_recount() -> None:
    import random

    rng = random.Random(11)
    engine = make_engine(fees=FeeSchedule())
    accepted = 0
    for step in range(400):
        roll = rng.random()
        if roll < 0.5:
            price = float(10_000 + 10 * rng.randint(-20, 20))
            try:
                engine.submit(buy(f"b{step}", rng.randint(1, 30), price), at(step))
                accepted += 1
            except OrderRejected:
                pass
        elif roll < 0.65 and engine.open_orders():
            victim = rng.choice(engine.open_orders())
            engine.cancel(victim.client_order_id, at(step))
        else:
            engine.on_tick(tick(float(10_000 + 10 * rng.randint(-20, 20)), step + 0.5, qty=rng.randint(1, 40)))
        recount = sum(
            engine._reservation(o.qty - o.filled_qty, o.limit_price or 0.0)
            for o in engine.open_orders()
            if o.side is Side.BUY
        )
        assert abs(engine.reserved_cash() - recount) < 1e-6, step
    assert accepted > 100 and engine.fills() and engine.open_orders()
