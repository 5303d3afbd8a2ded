"""Orders and fills, adapter ↔ fake, with the fake's exchange replaying on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_core.clock import VirtualClock
from broker_core.errors import OrderRejected, OutcomeUnknown
from broker_core.kis.broker import KisBroker
from broker_core.market_rules import down, up
from broker_core.models import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from tests.integration.kis.conftest import adapter, fake_kis, kst, make_exchange
from tests.support.wait import until


def _clock() -> VirtualClock:
    return VirtualClock(kst(9, 30), speed=20)


async def test_limit_buy_fills_by_encrypted_notices_and_the_daily_query_agrees(tmp_path: Path) -> None:
    clock = _clock()
    async with fake_kis(clock=clock, exchange=make_exchange(clock, ["005930"]), run_exchange=True) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        stream = b.order_updates()
        updates: list[OrderUpdate] = []
        last = (await b.get_quote("005930")).last
        order = await b.submit_order(
            OrderRequest("buy-1", "005930", Side.BUY, 300, OrderType.LIMIT, float(up(last, 2)))
        )
        [kis_order] = fake.state.orders.values()
        assert order.broker_order_id == kis_order.odno and len(kis_order.odno) == 10
        assert order.status is OrderStatus.NEW

        async def filled() -> bool:
            while not stream.queue.empty():  # type: ignore[attr-defined]
                updates.append(await stream.__anext__())
            return sum(u.fill.qty for u in updates if u.fill) == 300

        await until(filled, timeout=60, what="300 shares filled by notices")
        pushed = [u.fill for u in updates if u.fill]
        engine_fills = fake.exchange.engine.fills()
        assert len(pushed) == len(engine_fills) and b.notices_seen >= len(pushed) + 1  # + the receipt
        assert [(f.qty, f.price) for f in pushed] == [(f.qty, f.price) for f in engine_fills]
        assert [f.execution_id for f in pushed] == [
            f"KIS-20260227-{kis_order.odno}-{c}" for c in _cumulative([f.qty for f in pushed])
        ]
        listed = await b.list_fills()
        assert [f.execution_id for f in listed] == [f.execution_id for f in pushed]
        assert stream.queue.empty()  # type: ignore[attr-defined]  # the query found nothing new
        snap = await b.get_order("buy-1")
        assert snap is not None and snap.status is OrderStatus.FILLED and snap.filled_qty == 300
        engine_order = fake.exchange.engine.get_order(kis_order.legs[0])
        assert engine_order is not None and abs(snap.avg_fill_price - engine_order.avg_fill_price) < 0.01
        [pos] = await b.get_positions()
        assert (pos.symbol, pos.qty) == ("005930", 300)
        await b.close()
        # a restarted adapter keeps the order map and the execution ids
        again = adapter(fake, clock, tmp_path)
        await again.connect()
        snap2 = await again.get_order("buy-1")
        assert snap2 is not None and snap2.broker_order_id == kis_order.odno and snap2.status is OrderStatus.FILLED
        assert [f.execution_id for f in await again.list_fills()] == [f.execution_id for f in pushed]
        await again.close()


def _cumulative(qtys: list[int]) -> list[int]:
    out, total = [], 0
    for q in qtys:
        total += q
        out.append(total)
    return out


async def test_cancel_modify_reject_and_a_dropped_reply(tmp_path: Path) -> None:
    clock = _clock()
    async with fake_kis(clock=clock, exchange=make_exchange(clock, ["005930", "000660"]), run_exchange=True) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        last = (await b.get_quote("000660")).last
        low = float(down(last, 20))
        resting = await b.submit_order(OrderRequest("rest-1", "000660", Side.BUY, 10, OrderType.LIMIT, low))
        assert resting.status is OrderStatus.NEW
        assert [o.client_order_id for o in await b.list_open_orders()] == ["rest-1"]
        cancelled = await b.cancel_order("rest-1")
        assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_qty == 0
        rows = await b.api.daily_orders(clock.now().date())
        assert [(r.odno, r.orig_odno, r.cancel_yn) for r in rows] == [
            (resting.broker_order_id, "", False),
            ("0000000002", resting.broker_order_id, True),
        ]
        assert await b.list_open_orders() == []
        with pytest.raises(OrderRejected) as final:
            await b.cancel_order("rest-1")
        assert final.value.code == "ALREADY_FINAL"

        with pytest.raises(OrderRejected) as off_tick:
            await b.submit_order(OrderRequest("bad-1", "000660", Side.BUY, 1, OrderType.LIMIT, low + 1))
        assert off_tick.value.code == "APBK9001"
        assert (await b.get_order("bad-1")).status is OrderStatus.REJECTED  # type: ignore[union-attr]

        # modify a resting order up through the market: it fills under its new order number
        mod = await b.submit_order(OrderRequest("mod-1", "000660", Side.BUY, 5, OrderType.LIMIT, low))
        moved = await b.modify_order("mod-1", price=float(up(last, 3)))
        assert moved.limit_price == float(up(last, 3)) and moved.broker_order_id == mod.broker_order_id
        await until(lambda: _filled(b, "mod-1"), timeout=60, what="modified order filled")
        new_odno = [o for o, kind in b.store.odnos_of("mod-1") if kind == "MODIFY"][0]
        assert all(f.broker_order_id == new_odno for f in b.store.fills(cid="mod-1"))

        # the reply of a submit is lost after the fake placed it: resolved by lookup, never sent twice
        fake.drop_next_order_reply()
        request = OrderRequest("lost-1", "000660", Side.BUY, 3, OrderType.LIMIT, low)
        with pytest.raises(OutcomeUnknown) as unknown:
            await b.submit_order(request)
        assert unknown.value.client_order_id == "lost-1" and fake.dropped_replies == 1
        placed = list(fake.state.orders)
        found = await b.get_order("lost-1")
        assert found is not None and found.broker_order_id == placed[-1] and found.status is OrderStatus.NEW
        assert (await b.submit_order(request)).broker_order_id == placed[-1]
        assert list(fake.state.orders) == placed

        # a send that never reached KIS is resolved as absent (then a new submit may go out)
        b.store.record_sending("never-1", "20260227", "000660", Side.BUY, 4, OrderType.LIMIT, low, "00", clock.now())
        b.store.set_state("never-1", "UNKNOWN", clock.now())
        assert await b.get_order("never-1") is None
        await b.close()


async def _filled(b: KisBroker, cid: str) -> bool:
    order = await b.get_order(cid)
    return order is not None and order.status is OrderStatus.FILLED
