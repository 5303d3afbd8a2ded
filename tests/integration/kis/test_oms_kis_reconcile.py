"""Reconciliation of the OMS on the KIS adapter against the fake KIS server (OMS_BROKER=kis).

- a submit whose reply is lost while the order shows in KIS's inquiries only after a delay is looked
  up with back-off, never declared absent (NOT_AT_BROKER) and never doubled;
- a position drift freezes the symbol only after it was seen on ``reconcile.drift_confirmations``
  consecutive cycles, and a drift that goes away in between starts the count again;
- an order placed on the account outside the OMS is adopted under ``_UNKNOWN_`` and its fills reach the
  ledger instead of being dropped.

The OMS, the fake and its exchange share one virtual clock; cycles are run by the test where it counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import VirtualClock
from broker_core.errors import OutcomeUnknown
from broker_core.kis import tr_ids as T
from broker_core.kis.broker import KisBroker
from broker_core.kis.fake import FakeKis
from broker_core.market_rules import down, up
from broker_core.models import OrderRequest, OrderType, Side
from oms.core.reconciler import Reconciler
from oms.core.types import UNKNOWN_STRATEGY
from oms.settings import load_config
from tests.integration.kis.conftest import adapter, fake_kis, kst, make_exchange
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until

DAILY_CCLD = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"


@asynccontextmanager
async def oms_on_fake_kis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, min_s: float, max_s: float, **reconcile: Any
) -> AsyncIterator[tuple[Oms, FakeKis]]:
    clock = sim_clock(9, 30, speed=30)
    exchange = make_exchange(clock, ["005930", "000660", "035720"], participation=0.02)
    async with fake_kis(clock=clock, exchange=exchange, run_exchange=True) as fake:
        for key, value in fake.client_env().items():
            monkeypatch.setenv(key, value)
        config = load_config()
        config.reconcile = config.reconcile.model_copy(
            update={"min_interval_s": min_s, "max_interval_s": max_s, **reconcile}
        )
        async with running_oms(oms_settings(tmp_path, oms_broker="kis"), config, clock=clock) as oms:
            assert isinstance(oms.runtime.broker, KisBroker)
            yield oms, fake


def _reconciler(oms: Oms) -> Reconciler:
    rec = oms.runtime.reconciler
    assert rec is not None
    return rec


async def _quiet_reconciler(oms: Oms) -> Reconciler:
    """The reconciler once its loop has run its first cycle (the start's cycle + one) and sleeps for hours:
    from then on only the test runs cycles."""
    rec = _reconciler(oms)
    await until(lambda: rec.cycles >= 2, timeout=30, what="the reconciler loop's first cycle")
    return rec


async def _position(oms: Oms, symbol: str) -> dict[str, Any]:
    return dict((await oms.get("/api/v1/positions")).get(symbol) or {})


async def test_lost_reply_and_late_visibility_end_in_one_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cycles every 1–2 s of clock: the first lookup comes long before KIS shows the order
    async with oms_on_fake_kis(tmp_path, monkeypatch, min_s=1, max_s=2) as (oms, fake):
        broker = oms.runtime.broker
        assert isinstance(broker, KisBroker)
        seen: list[dict[str, Any]] = []
        sub = oms.runtime.bus.subscribe("*")

        async def collect() -> None:
            while True:
                seen.append(await sub.get())

        collector = asyncio.create_task(collect())
        try:
            # the order is placed at KIS, its reply is cut, and KIS's inquiries show it only 8 s later
            fake.drop_next_order_reply()
            fake.delay_next_order_visibility(8.0)
            last = (await broker.get_quote("035720")).last
            reply = (
                await oms.intent(
                    STRATEGY_KEYS["NULRIMOK"],
                    intent_type="ENTER",
                    strategy_id="NULRIMOK",
                    symbol="035720",
                    desired_qty=7,
                    constraints={"order_type": "LIMIT", "limit_price": float(down(last, 10))},
                    idempotency_key="lost-late-1",
                )
            ).json()
            assert reply["status"] == "ACCEPTED", reply
            order_id = reply["order_id"]
            assert fake.dropped_replies == 1 and oms.runtime.state.orders[order_id].reason == "OUTCOME_UNKNOWN"
            placed = [o for o in fake.state.orders.values() if o.symbol == "035720"]
            assert len(placed) == 1 and placed[0].odno in fake.state.order_desk.hidden_until

            async def settled() -> bool:
                return (await oms.get(f"/api/v1/orders/{order_id}"))["state"] != "PENDING_SUBMIT"

            await until(settled, timeout=60, what="the lost submit settled by lookup")
            order = await oms.get(f"/api/v1/orders/{order_id}")
            assert order["state"] in ("SUBMITTED", "PARTIALLY_FILLED", "FILLED"), order
            assert order["broker_order_id"] == placed[0].odno and order["reason"] != "NOT_AT_BROKER", order
            cycles = _reconciler(oms).cycles
            await until(lambda: _reconciler(oms).cycles >= cycles + 2, timeout=60, what="two more cycles")
            # exactly one order at KIS and one in the OMS for it: nothing re-sent, nothing adopted twice
            assert len([o for o in fake.state.orders.values() if o.symbol == "035720"]) == 1
            orders = await oms.get("/api/v1/orders", symbol="035720")
            assert [o["order_id"] for o in orders] == [order_id], orders
            mine = [e for e in seen if e.get("type") == "order" and e["order_id"] == order_id]
            assert mine and all(e["state"] != "REJECTED" and e["reason"] != "NOT_AT_BROKER" for e in mine), mine
            stored = broker.store.get(order_id)
            assert stored is not None and stored.state == "PLACED" and stored.odno == placed[0].odno
        finally:
            collector.cancel()
            with suppress(asyncio.CancelledError):
                await collector
            oms.runtime.bus.unsubscribe(sub)


async def test_an_order_kis_never_shows_is_declared_absent_after_the_window(tmp_path: Path) -> None:
    clock = VirtualClock(kst(9, 30), speed=20)
    async with fake_kis(clock=clock, exchange=make_exchange(clock, ["000660"]), run_exchange=True) as fake:
        b = adapter(fake, clock, tmp_path, order_lookup_window_s=6.0)
        await b.connect()
        try:
            # placed, reply lost, and hidden from the inquiries far longer than the adapter looks
            fake.drop_next_order_reply()
            fake.delay_next_order_visibility(3_600)
            low = float(down((await b.get_quote("000660")).last, 20))
            with pytest.raises(OutcomeUnknown):
                await b.submit_order(OrderRequest("hidden-1", "000660", Side.BUY, 2, OrderType.LIMIT, low))
            stored = b.store.get("hidden-1")
            assert stored is not None and stored.state == "UNKNOWN"
            lookups = len(fake.state.requests_to(DAILY_CCLD))
            assert await b.get_order("hidden-1") is None
            # looked up again and again (not once), and declared absent only once the window had passed
            assert len(fake.state.requests_to(DAILY_CCLD)) - lookups >= 3
            after = [r.at for r in fake.state.requests_to(DAILY_CCLD)][-1]
            assert stored.sent_at + timedelta(seconds=6) <= after < stored.sent_at + timedelta(seconds=12)
            gone = b.store.get("hidden-1")
            assert gone is not None and gone.state == "NOT_FOUND"
        finally:
            await b.close()


async def test_drift_freezes_only_once_confirmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the loop's cycles are hours apart on the clock: the test runs each cycle itself and counts them
    async with oms_on_fake_kis(tmp_path, monkeypatch, min_s=3600, max_s=3600, drift_confirmations=3) as (oms, fake):
        rec = await _quiet_reconciler(oms)
        engine = fake.exchange.engine
        symbol = "000660"
        price = engine.quote(symbol, fake.clock.now()).last

        # seen once, then gone (a fill in transit): nothing frozen, nothing assigned
        engine.set_position(symbol, 5, price)
        await rec.run_cycle()
        assert rec.confirmer.sightings(symbol) == 1
        pos = await _position(oms, symbol)
        assert not pos.get("frozen") and UNKNOWN_STRATEGY not in pos.get("allocations", {}), pos
        engine.set_position(symbol, 0, price)
        await rec.run_cycle()
        assert rec.confirmer.sightings(symbol) == 0
        # back, and persisting: frozen on the third consecutive sighting, not before
        engine.set_position(symbol, 5, price)
        for sighting in (1, 2):
            await rec.run_cycle()
            assert rec.confirmer.sightings(symbol) == sighting
            pos = await _position(oms, symbol)
            assert not pos.get("frozen") and not pos.get("allocations"), (sighting, pos)
        await rec.run_cycle()
        pos = await _position(oms, symbol)
        assert pos["frozen"] is True and pos["real_qty"] == 5, pos
        assert pos["allocations"][UNKNOWN_STRATEGY]["qty"] == 5, pos
        assert oms.runtime.state.frozen_symbols[symbol] == "RECON_EXCESS"


async def test_an_order_placed_outside_the_oms_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with oms_on_fake_kis(tmp_path, monkeypatch, min_s=3600, max_s=3600, drift_confirmations=3) as (oms, fake):
        rec = await _quiet_reconciler(oms)
        symbol = "005930"
        last = fake.exchange.engine.quote(symbol, fake.clock.now()).last
        # someone trades the account from another KIS client: a marketable buy that fills over a few prints
        body = {
            "CANO": fake.profile.account_no,
            "ACNT_PRDT_CD": fake.profile.prod_code,
            "PDNO": symbol,
            "ORD_DVSN": "00",
            "ORD_QTY": "900",
            "ORD_UNPR": str(int(up(last, 5))),
        }
        answer = fake.state.order_desk.order_cash(T.ORDER_BUY, body)
        assert answer.body["rt_cd"] == "0", answer.body
        odno = answer.body["output"]["ODNO"]

        await rec.run_cycle()
        adopted = [o for o in oms.runtime.state.orders.values() if o.broker_order_id == odno]
        assert len(adopted) == 1, adopted
        order = adopted[0]
        assert order.strategy_id == UNKNOWN_STRATEGY and order.symbol == symbol and order.qty == 900
        assert oms.runtime.state.frozen_symbols.get(symbol) == "ORDER_ADOPTED"

        # its fills are applied to the ledger (under _UNKNOWN_), not dropped as fills of an unknown order
        async def some_filled() -> bool:
            return order.filled_qty > 0 and (await _position(oms, symbol)).get("real_qty", 0) > 0

        await until(some_filled, timeout=90, what="fills of the adopted order applied")
        # the other client cancels the rest; the OMS follows the order to its end and the ledger = the account
        cancel = fake.state.order_desk.order_rvsecncl(
            {
                "CANO": fake.profile.account_no,
                "ACNT_PRDT_CD": fake.profile.prod_code,
                "KRX_FWDG_ORD_ORGNO": answer.body["output"]["KRX_FWDG_ORD_ORGNO"],
                "ORGN_ODNO": odno,
                "ORD_DVSN": "00",
                "RVSE_CNCL_DVSN_CD": "02",
                "ORD_QTY": "0",
                "ORD_UNPR": "0",
                "QTY_ALL_ORD_YN": "Y",
            }
        )
        assert cancel.body["rt_cd"] == "0", cancel.body

        async def done() -> bool:
            await rec.run_cycle()
            return order.state.value == "CANCELLED"

        await until(done, timeout=60, what="the adopted order cancelled")
        kis_filled = fake.state.order_desk.filled(fake.state.orders[odno])[0]
        held = fake.exchange.engine.position(symbol)
        assert held is not None and 0 < order.filled_qty == kis_filled == held.qty < 900
        pos = await _position(oms, symbol)
        assert pos["real_qty"] == held.qty and list(pos["allocations"]) == [UNKNOWN_STRATEGY], pos
        assert pos["allocations"][UNKNOWN_STRATEGY]["qty"] == held.qty, pos
        fills = await oms.get("/api/v1/fills", symbol=symbol)
        assert sum(f["qty"] for f in fills) == held.qty and {f["strategy_id"] for f in fills} == {UNKNOWN_STRATEGY}
        assert {f["order_id"] for f in fills} == {order.order_id}
        # later cycles adopt nothing again
        await rec.run_cycle()
        assert len([o for o in oms.runtime.state.orders.values() if o.broker_order_id == odno]) == 1
