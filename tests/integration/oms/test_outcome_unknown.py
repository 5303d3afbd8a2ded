"""A submit whose reply is lost (timeout after send) is settled by lookup, never re-sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker_core.errors import BrokerUnavailable, OutcomeUnknown
from broker_core.models import BrokerOrder, OrderRequest
from broker_core.paper.broker import PaperBroker
from oms.core.types import OrderState
from oms.runtime import OmsRuntime
from oms.settings import load_config
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until
from trader.venues import build_venue


class LostReplyBroker(PaperBroker):
    """The paper broker, except that chosen submits reach the exchange and then 'time out'."""

    lose_replies = True

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        order = await super().submit_order(request)
        if self.lose_replies:
            raise OutcomeUnknown("read timeout after the request was sent", client_order_id=request.client_order_id)
        return order


class LostReplyNoPushBroker(LostReplyBroker):
    """Also never pushes order updates: only reconciliation (lookup + daily fills) can settle."""

    def order_updates(self):  # type: ignore[no-untyped-def]
        async def silent():  # type: ignore[no-untyped-def]
            await asyncio.Event().wait()
            yield

        return silent()


class DownBroker(PaperBroker):
    """Refuses every submit as unreachable (nothing sent)."""

    submits = 0

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        DownBroker.submits += 1
        raise BrokerUnavailable("connection refused")


def _swap(runtime: OmsRuntime, cls: type[PaperBroker]) -> None:
    old = runtime.broker
    assert isinstance(old, PaperBroker)
    runtime.broker = cls(old.exchange, subscription_capacity=old.subscription_capacity)


@pytest.mark.parametrize("broker_cls", [LostReplyBroker, LostReplyNoPushBroker])
async def test_lost_submit_reply_is_resolved_without_a_second_order(tmp_path: Path, broker_cls: type) -> None:
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    settings = oms_settings(tmp_path)
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=sim_clock())
    _swap(runtime, broker_cls)
    async with running_oms(settings, config, runtime=runtime) as oms:
        reply = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="005930",
                desired_qty=3,
                constraints={"order_type": "MARKETABLE_LIMIT"},
                idempotency_key="lost-1",
            )
        ).json()
        assert reply["status"] == "ACCEPTED", reply
        order_id = reply["order_id"]
        assert oms.runtime.state.orders[order_id].reason == "OUTCOME_UNKNOWN"
        await until(lambda: _settled(oms, order_id), timeout=30, what="order settled by reconciliation")
        engine = oms.runtime.exchange.engine
        assert [o.client_order_id for o in engine.orders()] == [order_id]
        await until(
            lambda: oms.runtime.state.orders[order_id].state is OrderState.FILLED,
            timeout=30,
            what="fills applied (pushed, or polled by reconciliation)",
        )
        assert (await oms.get("/api/v1/positions"))["005930"]["allocations"]["KMP"]["qty"] == 3
        again = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="005930",
                desired_qty=3,
                constraints={"order_type": "MARKETABLE_LIMIT"},
                idempotency_key="lost-1",
            )
        ).json()
        assert again["order_id"] == order_id
        assert len(engine.orders()) == 1


def _settled(oms: Oms, order_id: str) -> bool:
    return oms.runtime.state.orders[order_id].state not in (OrderState.PENDING_SUBMIT,)


async def test_unreachable_broker_defers_with_reason_and_opens_the_breaker(tmp_path: Path) -> None:
    """Submits the broker certainly did not take are DEFERRED (retry later), never a final rejection; three
    in a row open the breaker, and then entries wait on the breaker without reaching the broker."""
    settings = oms_settings(tmp_path)
    config = load_config()
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=sim_clock())
    _swap(runtime, DownBroker)
    async with running_oms(settings, config, runtime=runtime) as oms:
        for i in range(3):
            reply = (
                await oms.intent(
                    STRATEGY_KEYS["KPR"],
                    intent_type="ENTER",
                    strategy_id="KPR",
                    symbol=["005930", "000660", "000270"][i],
                    desired_qty=1,
                    constraints={"order_type": "MARKETABLE_LIMIT"},
                )
            ).json()
            assert reply["status"] == "DEFERRED" and reply["reason_code"] == "BROKER_UNAVAILABLE", reply
            assert reply["cooldown_until"] is not None
        health = (await oms.http.get("/health")).json()
        assert health["kis_circuit_breaker"] == "OPEN" and health["status"] == "degraded"
        submits = DownBroker.submits
        reply = (
            await oms.intent(
                STRATEGY_KEYS["KPR"], intent_type="ENTER", strategy_id="KPR", symbol="000720", desired_qty=1
            )
        ).json()
        assert reply["status"] == "DEFERRED" and reply["reason_code"] == "BROKER_CIRCUIT_OPEN", reply
        assert DownBroker.submits == submits
