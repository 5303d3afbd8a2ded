"""Volatility interruption: static and dynamic triggers, the 2-minute halt, resumption."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side, Tick
from broker_core.paper.fees import ZERO_FEES
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.vi import ViKind, ViMonitor

SYM = "005930"


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 2, 27, hh, mm, ss, tzinfo=KST)


def monitor(base: float = 10_000, kospi200: tuple[str, ...] = ()) -> ViMonitor:
    vi = ViMonitor(kospi200)
    vi.set_base(SYM, base)
    return vi


def test_the_opening_print_becomes_the_static_reference() -> None:
    vi = monitor()
    assert vi.on_trade(SYM, 10_500, at(9, 0)) is None
    assert vi.static_ref(SYM) == 10_500


def test_static_vi_halts_for_two_minutes_and_resumes_at_the_auction_price() -> None:
    vi = monitor()
    vi.on_trade(SYM, 10_000, at(9, 0))
    for price, minute in [(10_500, 1), (10_990, 2)]:
        assert vi.on_trade(SYM, price, at(9, minute)) is None

    event = vi.on_trade(SYM, 11_000, at(9, 3))

    assert event is not None and event.kind is ViKind.STATIC
    assert (event.ref_price, event.trigger_price, event.direction) == (10_000, 11_000, 1)
    assert event.resume_at == at(9, 5)
    assert vi.is_halted(SYM, at(9, 4, 59)) and not vi.is_halted(SYM, at(9, 5))
    assert vi.on_trade(SYM, 13_000, at(9, 4)) is None
    assert vi.on_trade(SYM, 11_200, at(9, 5, 10)) is None
    assert not vi.is_halted(SYM, at(9, 5, 10))
    assert vi.static_ref(SYM) == 11_200
    assert vi.events == [event]


def test_static_vi_triggers_downward_too() -> None:
    vi = monitor()
    vi.on_trade(SYM, 10_000, at(9, 0))
    for price, minute in [(9_500, 1), (9_010, 2)]:
        assert vi.on_trade(SYM, price, at(9, minute)) is None
    event = vi.on_trade(SYM, 9_000, at(9, 3))
    assert event.kind is ViKind.STATIC and event.direction == -1


def test_an_opening_print_beyond_the_static_band_triggers_a_vi() -> None:
    vi = monitor()
    event = vi.on_trade(SYM, 11_500, at(9, 0))
    assert event is not None and event.kind is ViKind.STATIC and event.ref_price == 10_000


def test_pre_open_prints_do_not_trigger() -> None:
    vi = monitor()
    assert vi.on_trade(SYM, 12_000, at(8, 35)) is None
    assert not vi.is_halted(SYM, at(8, 36))


@pytest.mark.parametrize(
    ("kospi200", "when", "move", "triggers"),
    [
        ((), (9, 30), 600, True),
        ((), (9, 30), 590, False),
        ((SYM,), (9, 30), 300, True),
        ((SYM,), (9, 30), 290, False),
        ((), (15, 25), 400, True),
        ((), (15, 25), 390, False),
        ((SYM,), (15, 25), 200, True),
        ((SYM,), (15, 25), 190, False),
    ],
)
def test_dynamic_vi_bands(kospi200: tuple[str, ...], when: tuple[int, int], move: int, triggers: bool) -> None:
    vi = monitor(kospi200=kospi200)
    vi.on_trade(SYM, 10_000, at(9, 0))
    event = vi.on_trade(SYM, 10_000 - move, at(*when))
    assert (event is not None) == triggers
    if triggers:
        assert event.kind is ViKind.DYNAMIC and event.ref_price == 10_000


def _engine(**kw: object) -> MatchingEngine:
    engine = MatchingEngine({SYM: 10_000}, order_window=None, fees=ZERO_FEES, **kw)  # type: ignore[arg-type]
    engine.set_position(SYM, 20, 9_000)
    return engine


def test_a_vi_pauses_matching_for_two_minutes_then_matching_resumes() -> None:
    engine = _engine()
    engine.on_tick(Tick(SYM, at(9, 0), 10_000, 1_000))
    engine.submit(OrderRequest("s1", SYM, Side.SELL, 10, OrderType.LIMIT, 11_000), at(9, 0, 30))

    assert engine.on_tick(Tick(SYM, at(9, 1), 11_000, 1_000)) == []
    (event,) = engine.vi_events
    assert event.resume_at == at(9, 3)
    quote = engine.quote(SYM, at(9, 2))
    assert quote.halted and quote.vi_ref_price == 10_000 and quote.last == 11_000

    engine.submit(OrderRequest("s2", SYM, Side.SELL, 10, OrderType.MARKET), at(9, 2))
    assert engine.on_tick(Tick(SYM, at(9, 2, 30), 11_050, 1_000)) == []
    assert [o.status for o in engine.open_orders()] == [OrderStatus.NEW, OrderStatus.NEW]

    updates = engine.on_tick(Tick(SYM, at(9, 3), 11_100, 1_000))

    assert [(u.order.client_order_id, u.fill.price, u.order.status) for u in updates] == [
        ("s1", 11_100, OrderStatus.FILLED),
        ("s2", 11_100, OrderStatus.FILLED),
    ]
    quote = engine.quote(SYM, at(9, 3))
    assert not quote.halted and quote.vi_ref_price == 11_100


def test_vi_simulation_can_be_switched_off() -> None:
    engine = _engine(simulate_vi=False)
    engine.on_tick(Tick(SYM, at(9, 0), 10_000, 1_000))
    engine.submit(OrderRequest("s1", SYM, Side.SELL, 10, OrderType.LIMIT, 11_000), at(9, 0, 30))
    (update,) = engine.on_tick(Tick(SYM, at(9, 1), 11_000, 1_000))
    assert update.fill.price == 11_000
    assert engine.vi_events == [] and not engine.quote(SYM, at(9, 1)).halted


def test_halt_length_is_configurable_for_the_monitor() -> None:
    vi = ViMonitor(halt=timedelta(seconds=30))
    vi.set_base(SYM, 10_000)
    event = vi.on_trade(SYM, 12_000, at(9, 0))
    assert event.resume_at == at(9, 0, 30)
