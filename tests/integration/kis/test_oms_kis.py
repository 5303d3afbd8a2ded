"""OMS_BROKER=kis: the OMS over HTTP, the KIS adapter inside it, the fake KIS server behind it.

The OMS, the fake and its exchange share one virtual clock (in-process), as a simulated session
would; the adapter is configured from KIS_* environment variables pointing at the fake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker_core.kis.broker import KisBroker
from broker_core.market_rules import down, up
from broker_core.models import OrderStatus
from oms.core.types import OrderState
from oms.settings import load_config
from tests.integration.kis.conftest import fake_kis, make_exchange
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until


async def _order(oms: Oms, order_id: str) -> dict[str, Any]:
    return await oms.get(f"/api/v1/orders/{order_id}")


async def test_oms_on_the_kis_adapter_against_the_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = sim_clock(9, 30, speed=30)
    exchange = make_exchange(clock, ["005930", "000660", "035720"], participation=0.02)
    async with fake_kis(clock=clock, exchange=exchange, run_exchange=True) as fake:
        for key, value in fake.client_env().items():
            monkeypatch.setenv(key, value)
        config = load_config()
        config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 5, "max_interval_s": 10})
        settings = oms_settings(tmp_path, oms_broker="kis")
        async with running_oms(settings, config, clock=clock) as oms:
            broker = oms.runtime.broker
            assert isinstance(broker, KisBroker) and broker.settings.is_paper
            engine = fake.exchange.engine

            # 1. a limit buy: KIS order number recorded, encrypted notices decrypted, fills applied once
            last = (await broker.get_quote("005930")).last
            reply = (
                await oms.intent(
                    STRATEGY_KEYS["KMP"],
                    intent_type="ENTER",
                    strategy_id="KMP",
                    symbol="005930",
                    desired_qty=60,
                    constraints={"order_type": "LIMIT", "limit_price": float(up(last, 5))},
                    idempotency_key="kis-buy-1",
                )
            ).json()
            assert reply["status"] == "ACCEPTED", reply
            buy_id = reply["order_id"]
            await until(lambda: _state_is(oms, buy_id, "FILLED"), timeout=90, what="limit buy filled")
            order = await _order(oms, buy_id)
            assert order["broker_order_id"] in fake.state.orders and len(order["broker_order_id"]) == 10
            fills = await oms.get("/api/v1/fills", symbol="005930")
            assert sum(f["qty"] for f in fills) == 60 and all(f["execution_id"].startswith("KIS-") for f in fills)
            assert broker.notices_seen > len(fills)
            pushed = {f.execution_id for f in broker.store.fills(cid=buy_id)}
            assert {f["execution_id"] for f in fills} == pushed
            # later reconciliation cycles read the same fills from the daily query: ignored, not re-applied
            cycles = oms.runtime.reconciler.cycles  # type: ignore[union-attr]
            await until(
                lambda: oms.runtime.reconciler.cycles >= cycles + 2,
                timeout=60,  # type: ignore[union-attr]
                what="two more reconciliation cycles",
            )
            assert oms.runtime.metrics.duplicate_fills._value.get() >= len(fills)
            again = await oms.get("/api/v1/fills", symbol="005930")
            assert sorted(f["execution_id"] for f in again) == sorted(f["execution_id"] for f in fills)
            position = (await oms.get("/api/v1/positions"))["005930"]
            assert position["real_qty"] == 60 == engine.position("005930").qty  # type: ignore[union-attr]

            # 2. a larger buy fills partly; the rest is cancelled with the branch number
            last2 = (await broker.get_quote("000660")).last
            reply2 = (
                await oms.intent(
                    STRATEGY_KEYS["KPR"],
                    intent_type="ENTER",
                    strategy_id="KPR",
                    symbol="000660",
                    desired_qty=900,
                    constraints={"order_type": "LIMIT", "limit_price": float(up(last2, 5))},
                    idempotency_key="kis-buy-2",
                )
            ).json()
            assert reply2["status"] == "ACCEPTED", reply2
            big_id = reply2["order_id"]
            await until(lambda: _state_is(oms, big_id, "PARTIALLY_FILLED"), timeout=90, what="partial fill")
            cancel = (
                await oms.intent(STRATEGY_KEYS["KPR"], intent_type="CANCEL_ORDERS", strategy_id="KPR", symbol="000660")
            ).json()
            assert cancel["status"] == "EXECUTED", cancel
            await until(lambda: _state_is(oms, big_id, "CANCELLED"), timeout=60, what="rest cancelled")
            big = await _order(oms, big_id)
            kis_big = fake.state.orders[big["broker_order_id"]]
            assert 0 < big["filled_qty"] < 900 and kis_big.cancelled_qty == 900 - big["filled_qty"]
            assert [o.kind for o in fake.state.orders.values() if o.orig_odno == kis_big.odno] == ["cancel"]
            await until(lambda: _positions_match(oms, engine, "000660"), timeout=60, what="ledger = KIS account")
            snapshot = await broker.get_order(big_id)
            assert snapshot is not None and snapshot.status is OrderStatus.CANCELLED

            # 3. the reply of a submit is dropped after the order was placed: settled without a second order
            fake.drop_next_order_reply()
            last3 = (await broker.get_quote("035720")).last
            reply3 = (
                await oms.intent(
                    STRATEGY_KEYS["NULRIMOK"],
                    intent_type="ENTER",
                    strategy_id="NULRIMOK",
                    symbol="035720",
                    desired_qty=7,
                    constraints={"order_type": "LIMIT", "limit_price": float(down(last3, 10))},
                    idempotency_key="kis-lost-1",
                )
            ).json()
            assert reply3["status"] == "ACCEPTED", reply3
            lost_id = reply3["order_id"]
            assert fake.dropped_replies == 1
            assert oms.runtime.state.orders[lost_id].reason == "OUTCOME_UNKNOWN"
            await until(
                lambda: oms.runtime.state.orders[lost_id].state is OrderState.SUBMITTED,
                timeout=60,
                what="lost submit settled by lookup",
            )
            placed = [o for o in fake.state.orders.values() if o.symbol == "035720"]
            assert len(placed) == 1 and (await _order(oms, lost_id))["broker_order_id"] == placed[0].odno
            await until(lambda: oms.runtime.reconciler.cycles >= 2, timeout=30)  # type: ignore[union-attr]
            assert len([o for o in fake.state.orders.values() if o.symbol == "035720"]) == 1

            health = (await oms.http.get("/health")).json()
            assert health["broker"] == "kis" and health["kis_circuit_breaker"] == "CLOSED", health


async def _state_is(oms: Oms, order_id: str, *states: str) -> bool:
    return (await _order(oms, order_id))["state"] in states


async def _positions_match(oms: Oms, engine: Any, symbol: str) -> bool:
    pos = (await oms.get("/api/v1/positions")).get(symbol)
    held = engine.position(symbol)
    return pos is not None and held is not None and pos["real_qty"] == held.qty
