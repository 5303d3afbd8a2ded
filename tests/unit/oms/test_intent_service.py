"""IntentService with its real collaborators: Execution, the paper broker on a ManualClock, a journal file.

The broker is the only part replaced, and only by subclasses of the paper broker that model what a real
broker does (a slow submit, a submit that fails after reaching the exchange, a rejection), never a stub of
our own code. Each test pins one decision rule of the intent flow (ARCHITECTURE.md, "Intent → order").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from broker_core.clock import KST, ManualClock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import OrderRejected
from broker_core.models import BrokerOrder, OrderRequest, OrderStatus, Tick
from broker_core.paper.broker import PaperBroker
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import StaticFeed
from broker_core.paper.matching import MatchingEngine
from oms.core.circuit import CircuitBreaker
from oms.core.events import EventBus
from oms.core.execution import Execution
from oms.core.intents import IntentService
from oms.core.risk import RiskLimits
from oms.core.state import OmsState, StateRecorder
from oms.core.types import (
    Constraints,
    Intent,
    IntentResult,
    IntentStatus,
    IntentType,
    OrderState,
    OrderType,
    RiskPayload,
)
from oms.metrics import OmsMetrics
from oms.store.journal import Journal

SYM, OTHER = "005930", "000660"
DAY = date(2026, 2, 27)
NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)
LOOSE = RiskLimits(
    max_position_pct=1.0,
    max_sector_pct=1.0,
    max_gross_exposure_pct=2.0,
    max_net_exposure_pct=2.0,
    regime_caps={},
)


class SlowBroker(PaperBroker):
    """A broker whose submit answers only when the test says so (the exchange takes it right away)."""

    release: asyncio.Event

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        order = await super().submit_order(request)
        await self.release.wait()
        return order


class SlowRejectingBroker(PaperBroker):
    release: asyncio.Event

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        await self.release.wait()
        raise OrderRejected("price outside the daily band", code="OUTSIDE_PRICE_LIMIT")


class CrashAfterSendBroker(PaperBroker):
    """The order reaches the exchange, then the adapter fails with something that is not a broker error."""

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        await super().submit_order(request)
        raise RuntimeError("adapter bug after the request was sent")


@dataclass
class Harness:
    service: IntentService
    execution: Execution
    state: OmsState
    broker: PaperBroker
    exchange: PaperExchange
    clock: ManualClock
    journal: Journal

    def intent(
        self,
        kind: IntentType = IntentType.ENTER,
        qty: int | None = 10,
        key: str = "k1",
        strategy: str = "KMP",
        symbol: str = SYM,
        **constraints: object,
    ) -> Intent:
        return Intent(
            intent_id=f"in-{key}-{strategy}",
            strategy_id=strategy,
            symbol=symbol,
            intent_type=kind,
            received_at=self.clock.now(),
            idempotency_key=key,
            desired_qty=qty,
            constraints=Constraints.model_validate(constraints),
            risk_payload=RiskPayload(),
        )


@asynccontextmanager
async def harness(
    tmp_path: Path,
    broker_cls: type[PaperBroker] = PaperBroker,
    *,
    cash: float = 100_000_000.0,
    limits: RiskLimits = LOOSE,
    rate_per_min: int = 120,
) -> AsyncIterator[Harness]:
    clock = ManualClock(NOW)
    feed = StaticFeed(DAY, [Tick(SYM, NOW - timedelta(seconds=1), 10_000, 10)], {SYM: 10_000, OTHER: 20_000})
    exchange = PaperExchange(feed, clock, MatchingEngine(cash=cash, session_date=DAY))
    broker = broker_cls(exchange)
    if isinstance(broker, SlowBroker | SlowRejectingBroker):
        broker.release = asyncio.Event()
    state = OmsState(instance_id="unit")
    state.ready = True
    state.account = await broker.get_account()
    journal = Journal(str(tmp_path / "journal.db"))
    recorder = StateRecorder(journal, state)
    metrics = OmsMetrics()
    execution = Execution(state, broker, recorder, EventBus(), clock, CircuitBreaker(clock=clock), metrics)
    service = IntentService(
        state, execution, recorder, broker, clock, limits, metrics, intent_rate_per_min=lambda _sid: rate_per_min
    )
    try:
        yield Harness(service, execution, state, broker, exchange, clock, journal)
    finally:
        await execution.drain_tasks()
        journal.close()


def same(a: IntentResult, b: IntentResult) -> bool:
    return (a.intent_id, a.status, a.order_id, a.reason_code, a.message) == (
        b.intent_id,
        b.status,
        b.order_id,
        b.reason_code,
        b.message,
    )


async def test_duplicate_during_submit_waits_for_the_final_reply(tmp_path: Path) -> None:
    """Defect 1: a duplicate of an intent whose submit is in flight got the provisional ACCEPTED."""
    async with harness(tmp_path, SlowRejectingBroker) as h:
        first = asyncio.create_task(h.service.handle(h.intent()))
        await asyncio.sleep(0)
        dup = asyncio.create_task(h.service.handle(h.intent()))
        await asyncio.sleep(0)
        assert not dup.done(), "the duplicate must wait for the decision under way"
        h.broker.release.set()  # type: ignore[attr-defined]
        a, b = await first, await dup
        assert a.status is IntentStatus.REJECTED and a.reason_code == "OUTSIDE_PRICE_LIMIT"
        assert same(a, b)


async def test_ten_concurrent_copies_make_one_order_and_ten_identical_replies(tmp_path: Path) -> None:
    async with harness(tmp_path, SlowBroker) as h:
        tasks = [asyncio.create_task(h.service.handle(h.intent())) for _ in range(10)]
        await asyncio.sleep(0)
        h.broker.release.set()  # type: ignore[attr-defined]
        replies = await asyncio.gather(*tasks)
        assert all(same(replies[0], r) for r in replies)
        assert replies[0].status is IntentStatus.ACCEPTED and replies[0].order_id
        assert len(h.exchange.engine.orders()) == 1


async def test_failure_after_the_order_was_sent_keeps_the_accepted_decision(tmp_path: Path) -> None:
    """Defect 2: an exception after the provisional decision overwrote it with REJECTED INTERNAL_ERROR
    although the order had reached the exchange."""
    async with harness(tmp_path, CrashAfterSendBroker) as h:
        reply = await h.service.handle(h.intent())
        assert reply.status is IntentStatus.ACCEPTED and reply.order_id
        order = h.state.orders[reply.order_id]
        assert order.state is OrderState.PENDING_SUBMIT  # left for reconciliation to settle, never re-sent
        assert [o.client_order_id for o in h.exchange.engine.orders()] == [reply.order_id]
        again = await h.service.handle(h.intent())
        assert same(reply, again)
        await h.execution.resolve(order)
        assert order.state is OrderState.SUBMITTED


async def test_rate_limited_intent_is_deferred_then_decided_anew(tmp_path: Path) -> None:
    """Defect 2: a temporary refusal was journaled as a final REJECTED under the key."""
    async with harness(tmp_path, rate_per_min=1) as h:
        first = await h.service.handle(h.intent(key="a"))
        assert first.status is IntentStatus.ACCEPTED
        limited = await h.service.handle(h.intent(key="b", symbol=SYM, strategy="KMP", qty=5))
        assert limited.status is IntentStatus.DEFERRED and limited.reason_code == ReasonCode.RATE_LIMITED
        assert limited.cooldown_until == NOW + timedelta(seconds=60)
        assert (await h.service.handle(h.intent(key="b", qty=5))).status is IntentStatus.DEFERRED
        h.clock.set(NOW + timedelta(seconds=61))
        retried = await h.service.handle(h.intent(key="b", qty=5))
        assert retried.intent_id == limited.intent_id and retried.reason_code != ReasonCode.RATE_LIMITED


async def test_cancel_of_an_order_in_flight_is_sent_once_the_broker_knows_it(tmp_path: Path) -> None:
    """Defect 3: a cancel asked while the order was PENDING_SUBMIT was dropped."""
    async with harness(tmp_path, CrashAfterSendBroker) as h:
        reply = await h.service.handle(h.intent(order_type=OrderType.LIMIT, limit_price=9_600))
        order = h.state.orders[reply.order_id or ""]
        assert order.state is OrderState.PENDING_SUBMIT
        cancel = await h.service.handle(h.intent(IntentType.CANCEL_ORDERS, qty=None, key="c"))
        assert cancel.status is IntentStatus.EXECUTED
        await h.execution.resolve(order)  # reconciliation learns the broker has it
        await h.execution.drain_tasks()
        assert order.state is OrderState.CANCELLED
        (at_exchange,) = h.exchange.engine.orders()
        assert at_exchange.status is OrderStatus.CANCELLED


async def test_entry_is_priced_at_the_marketable_limit_it_will_be_sent_at(tmp_path: Path) -> None:
    """Defect 4: risk valued a marketable buy at the last price, so an order the cash could not pay for
    at its real limit (ask + band) was approved and then refused by the broker."""
    async with harness(tmp_path, cash=1_000_000.0) as h:
        reply = await h.service.handle(h.intent(qty=100))
        order = h.state.orders[reply.order_id or ""]
        assert order.limit_price is not None and order.limit_price > 10_000
        assert reply.status is IntentStatus.MODIFIED and reply.reason_code == ReasonCode.INSUFFICIENT_CASH
        assert order.qty * order.limit_price <= 1_000_000.0
        assert order.state is not OrderState.REJECTED


async def test_open_breaker_defers_entries_but_not_exits(tmp_path: Path) -> None:
    """Defect 9: the breaker did not gate submissions."""
    async with harness(tmp_path) as h:
        bought = await h.service.handle(h.intent(qty=10))
        assert bought.status is IntentStatus.ACCEPTED
        h.execution.breaker.trip()
        entry = await h.service.handle(h.intent(key="e2", symbol=OTHER, qty=5))
        assert entry.status is IntentStatus.DEFERRED and entry.reason_code == ReasonCode.BROKER_CIRCUIT_OPEN
        assert entry.cooldown_until is not None and entry.cooldown_until > NOW
        assert len(h.exchange.engine.orders()) == 1
        exit_ = await h.service.handle(h.intent(IntentType.EXIT, qty=None, key="x"))
        assert exit_.reason_code != ReasonCode.BROKER_CIRCUIT_OPEN  # exits are never gated by the breaker


async def test_stop_trigger_waits_for_the_symbol_gate(tmp_path: Path) -> None:
    """Defect 3: held-stop triggers ran outside the per-symbol gate (an exit in progress could interleave)."""
    async with harness(tmp_path) as h:
        reply = await h.service.handle(h.intent(order_type=OrderType.STOP_LIMIT, stop_price=10_100, limit_price=10_200))
        order = h.state.orders[reply.order_id or ""]
        assert order.state is OrderState.HELD
        h.execution._watched.add(SYM)
        async with h.service.gate.hold(SYM, 0):
            h.execution.on_tick(Tick(SYM, NOW, 10_150, 5))
            for _ in range(5):
                await asyncio.sleep(0)
            assert order.state is OrderState.HELD
        await h.execution.drain_tasks()
        assert order.state is not OrderState.HELD and order.state is not OrderState.PENDING_SUBMIT


@pytest.mark.parametrize("status", [IntentStatus.REJECTED, IntentStatus.EXECUTED])
async def test_final_decisions_are_kept_under_the_key(tmp_path: Path, status: IntentStatus) -> None:
    async with harness(tmp_path) as h:
        if status is IntentStatus.REJECTED:
            first = await h.service.handle(h.intent(IntentType.EXIT, qty=None))
        else:
            first = await h.service.handle(h.intent(IntentType.CANCEL_ORDERS, qty=None))
        assert first.status is status
        assert same(
            first,
            await h.service.handle(
                h.intent(IntentType.EXIT if status is IntentStatus.REJECTED else IntentType.CANCEL_ORDERS, qty=None)
            ),
        )
