"""The same intent ten times at once: one decision, one order, ten identical replies.

A strategy that times out and retries, or a bug that double-sends, must never double an order: the OMS decides
an intent once per (strategy, idempotency key); a duplicate that arrives while the first is being decided —
even while its order is at the broker — waits for the final decision and gets the same reply.

The broker is the paper exchange in the OMS process; two test doubles of the external broker stand in for a
slow venue: ``SlowPaperBroker`` awaits on the clock before placing the order (the submit is in flight for a
while), ``SlowRejectingBroker`` awaits and then refuses it (a final REJECTED).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import Clock
from broker_core.errors import OrderRejected
from broker_core.models import BrokerOrder, OrderRequest
from broker_core.paper.broker import PaperBroker
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings, StrategyConfig, load_config
from oms.venue import Venue
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from trader.paper_wiring import build_paper_venue

SUBMIT_DELAY_S = 15.0
"""Clock seconds a slow submit stays in flight (0.5 s of wall time at the test clock's speed 30)."""
COPIES = 10


class SlowPaperBroker(PaperBroker):
    """The paper exchange behind a slow link: each submit awaits ``SUBMIT_DELAY_S`` on the clock first."""

    def __init__(self, inner: PaperBroker) -> None:
        super().__init__(inner.exchange, inner.subscription_capacity)
        self.submits: list[str] = []
        self.in_flight = asyncio.Event()
        self.started_at = 0.0
        self.ended_at = 0.0

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.submits.append(request.client_order_id)
        self.started_at = time.monotonic()
        self.in_flight.set()
        try:
            await self.clock.sleep(SUBMIT_DELAY_S)
            return await self.place(request)
        finally:
            self.ended_at = time.monotonic()

    async def place(self, request: OrderRequest) -> BrokerOrder:
        return await super().submit_order(request)


class SlowRejectingBroker(SlowPaperBroker):
    """A slow venue that refuses every order (final): nothing reaches the exchange."""

    async def place(self, request: OrderRequest) -> BrokerOrder:
        raise OrderRejected(f"venue refuses {request.symbol}", code="VENUE_REFUSED")


def venue_with(wrap: Callable[[PaperBroker], PaperBroker]) -> Callable[[OmsSettings, OmsConfig, Clock], Venue]:
    def build(settings: OmsSettings, config: OmsConfig, clock: Clock) -> Venue:
        venue = build_paper_venue(settings, config, clock)
        assert isinstance(venue.broker, PaperBroker)
        venue.broker = wrap(venue.broker)
        return venue

    return build


def quiet_config() -> OmsConfig:
    """No reconciliation cycle while a slow submit is in flight (see the last test for why that matters)."""
    config = load_config()
    config.strategies = {s: StrategyConfig(max_intents_per_min=10_000) for s in STRATEGY_KEYS}
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 3600, "max_interval_s": 3600})
    return config


ENTER = {
    "intent_type": "ENTER",
    "strategy_id": "KMP",
    "symbol": "005930",
    "desired_qty": 3,
    "constraints": {"order_type": "MARKETABLE_LIMIT"},
    "idempotency_key": "dup-enter-1",
}


def same(replies: list[dict[str, Any]]) -> bool:
    return all(r == replies[0] for r in replies)


def engine_orders(oms: Oms) -> list[BrokerOrder]:
    broker = oms.runtime.broker
    assert isinstance(broker, PaperBroker)
    return broker.engine.orders()


async def test_ten_concurrent_copies_make_one_order(tmp_path: Path) -> None:
    """Tried: the same ENTER (same idempotency key) 10× at once over HTTP, then 10× again after the decision,
    then the same key from a second strategy. Asserted: 1 order at the paper exchange for the 20 KMP copies,
    20 identical replies (intent_id, status, order_id, message), the intent stored once; the other strategy's
    copy is its own intent (keys are scoped per strategy): 2 intents, 2 orders, 0 doubled."""
    started = time.monotonic()
    async with running_oms(oms_settings(tmp_path), quiet_config()) as oms:
        first = await asyncio.gather(*(oms.intent(STRATEGY_KEYS["KMP"], **ENTER) for _ in range(COPIES)))
        assert all(r.status_code == 200 for r in first), [r.text for r in first]
        replies = [r.json() for r in first]
        assert same(replies), replies
        assert replies[0]["status"] in ("ACCEPTED", "EXECUTED") and replies[0]["order_id"], replies[0]
        later = await asyncio.gather(*(oms.intent(STRATEGY_KEYS["KMP"], **ENTER) for _ in range(COPIES)))
        assert [r.json() for r in later] == replies

        other = {**ENTER, "strategy_id": "KPR", "symbol": "000660"}
        kpr = [r.json() for r in await asyncio.gather(*(oms.intent(STRATEGY_KEYS["KPR"], **other) for _ in range(3)))]
        assert same(kpr) and kpr[0]["intent_id"] != replies[0]["intent_id"], kpr

        orders = engine_orders(oms)
        by_client = sorted(o.client_order_id for o in orders)
        assert by_client == sorted({replies[0]["order_id"], kpr[0]["order_id"]}), by_client
        intents = await oms.get("/api/v1/intents", limit=100)
        assert len(intents) == 2, intents
        oms_orders = await oms.get("/api/v1/orders", limit=100)
        assert len(oms_orders) == 2, oms_orders
    print(
        f"\n[duplicates] {2 * COPIES} KMP copies + 3 KPR copies of one key → intents={len(intents)} "
        f"orders at the paper exchange={len(orders)} (KMP 1, KPR 1), distinct KMP replies="
        f"{len({str(r) for r in replies})}, doubled=0; wall {time.monotonic() - started:.1f}s"
    )


async def _copies_during_a_slow_submit(oms: Oms, broker: SlowPaperBroker) -> tuple[list[dict[str, Any]], list[float]]:
    """The first copy, then the 9 others once its submit is in flight; returns the replies and send times."""
    sent_at: list[float] = []

    async def send() -> dict[str, Any]:
        sent_at.append(time.monotonic())
        resp = await oms.intent(STRATEGY_KEYS["KMP"], **ENTER)
        assert resp.status_code == 200, resp.text
        return {**resp.json(), "_received": time.monotonic()}

    first = asyncio.create_task(send())
    await asyncio.wait_for(broker.in_flight.wait(), 30)
    rest = [asyncio.create_task(send()) for _ in range(COPIES - 1)]
    replies = await asyncio.gather(first, *rest)
    return replies, sent_at


@pytest.mark.parametrize(
    ("wrap", "final"),
    [(SlowPaperBroker, ("ACCEPTED", "EXECUTED")), (SlowRejectingBroker, ("REJECTED",))],
    ids=["slow-accept", "slow-reject"],
)
async def test_copies_arriving_while_the_submit_is_in_flight_get_the_final_reply(
    tmp_path: Path, wrap: type[SlowPaperBroker], final: tuple[str, ...]
) -> None:
    """Tried: one ENTER; while its submit is in flight at a slow broker (15 s on the clock), 9 copies with the
    same key. With a broker that places the order, and with one that refuses it (final REJECTED).
    Asserted: the broker saw exactly 1 submit; the 9 copies were sent while it was in flight and answered only
    after it ended; all 10 replies are identical and final — REJECTED for the refusing broker, never the
    provisional ACCEPTED written before the submit; orders at the exchange: 1 (slow-accept) / 0 (slow-reject)."""
    started = time.monotonic()
    holder: dict[str, SlowPaperBroker] = {}

    def wrapped(inner: PaperBroker) -> PaperBroker:
        holder["broker"] = wrap(inner)
        return holder["broker"]

    settings = oms_settings(tmp_path)
    config = quiet_config()
    runtime = OmsRuntime(settings, config, venue=venue_with(wrapped), clock=sim_clock())
    async with running_oms(settings, runtime=runtime) as oms:
        broker = holder["broker"]
        replies, sent_at = await _copies_during_a_slow_submit(oms, broker)
        assert len(broker.submits) == 1, broker.submits
        assert max(sent_at) < broker.ended_at, "every copy was sent while the submit was in flight"
        assert min(r.pop("_received") for r in replies) >= broker.ended_at, "no copy was answered before the end"
        assert same(replies), replies
        assert replies[0]["status"] in final, replies[0]
        orders = engine_orders(oms)
        assert len(orders) == (1 if wrap is SlowPaperBroker else 0), orders
        stored = await oms.get(f"/api/v1/intents/{replies[0]['intent_id']}")
        assert stored["status"] == replies[0]["status"], stored
    print(
        f"\n[duplicates/{wrap.__name__}] {COPIES} copies, {COPIES - 1} sent during a "
        f"{broker.ended_at - broker.started_at:.2f}s submit → submits={len(broker.submits)} "
        f"orders at the exchange={len(orders)} replies identical, status={replies[0]['status']}; "
        f"wall {time.monotonic() - started:.1f}s"
    )


async def test_reconciliation_leaves_an_in_flight_submit_alone(tmp_path: Path) -> None:
    """Tried: one ENTER at the slow broker (the submit in flight for 15 s on the clock) with reconciliation
    cycling every 2-5 s meanwhile, so a cycle runs while the order is PENDING_SUBMIT and not yet at the broker.
    Asserted: the order the broker accepted is not declared absent (REJECTED NOT_AT_BROKER) by that cycle: the
    reply is ACCEPTED/EXECUTED with the order id, the OMS order ends SUBMITTED/FILLED like the exchange's, and
    the exchange holds exactly 1 order for the intent."""
    started = time.monotonic()
    holder: dict[str, SlowPaperBroker] = {}

    def wrapped(inner: PaperBroker) -> PaperBroker:
        holder["broker"] = SlowPaperBroker(inner)
        return holder["broker"]

    settings = oms_settings(tmp_path)
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 2, "max_interval_s": 5})
    runtime = OmsRuntime(settings, config, venue=venue_with(wrapped), clock=sim_clock())
    async with running_oms(settings, runtime=runtime) as oms:
        cycles = oms.runtime.reconciler.cycles  # type: ignore[union-attr]
        reply = (await oms.intent(STRATEGY_KEYS["KMP"], **ENTER)).json()
        cycles_during = oms.runtime.reconciler.cycles - cycles  # type: ignore[union-attr]
        assert cycles_during >= 1, "a reconciliation cycle ran while the submit was in flight"
        orders = engine_orders(oms)
        assert [o.client_order_id for o in orders] == [reply["order_id"]], orders
        order = await oms.get(f"/api/v1/orders/{reply['order_id']}")
        assert reply["status"] in ("ACCEPTED", "EXECUTED"), (reply, order)
        assert order["state"] not in ("REJECTED", "PENDING_SUBMIT"), order
    print(
        f"\n[duplicates/in-flight vs reconciliation] {cycles_during} cycle(s) during the submit; reply "
        f"{reply['status']}, OMS order {order['state']}/{order['reason']}, exchange orders={len(orders)}; "
        f"wall {time.monotonic() - started:.1f}s"
    )
