"""A small, real OMS core for unit tests of the domain glue (Execution, Reconciler, Admin).

Everything is the production code: the paper exchange and ``PaperBroker`` on a ``ManualClock``, a real
journal file, ``StateRecorder``, ``OmsMetrics``, ``EventBus``, ``CircuitBreaker``, ``IntentService``,
``Execution``, ``Reconciler`` and ``Admin`` wired as ``oms/runtime.py`` wires them. The only doubles are
subclasses of the paper broker that model what a real broker does (lost replies, outages, a push stream
that went silent); they live here so every test file uses the same ones.

Prints reach the exchange through ``Oms.trade`` (the exchange's matching engine sees one trade); the
updates it produces are what the broker would push, and a test hands them to the OMS with ``Oms.push``
(what ``Execution.run_updates`` does with each update) or leaves them to reconciliation's polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from broker_core.calendars import is_trading_day
from broker_core.clock import KST, ManualClock
from broker_core.errors import BrokerError, BrokerUnavailable, OutcomeUnknown
from broker_core.models import (
    Account,
    BrokerOrder,
    Fill,
    OrderRequest,
    OrderUpdate,
    Position,
    Tick,
)
from broker_core.paper.broker import PaperBroker
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import StaticFeed
from broker_core.paper.matching import MatchingEngine
from oms.core.admin import Admin
from oms.core.circuit import CircuitBreaker
from oms.core.events import EventBus
from oms.core.execution import Execution
from oms.core.intents import IntentService
from oms.core.reconciler import Reconciler
from oms.core.risk import RiskLimits
from oms.core.state import OmsState, StateRecorder
from oms.core.types import (
    AllocationRecord,
    AuditRecord,
    Constraints,
    Intent,
    IntentType,
    OrderRecord,
    OrderState,
    OrderType,
    RiskPayload,
)
from oms.metrics import OmsMetrics
from oms.store.journal import Journal

B = TypeVar("B", bound=PaperBroker)

SYM, OTHER = "005930", "000660"
DAY = date(2026, 2, 27)
NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)
PREV_CLOSES = {SYM: 10_000.0, OTHER: 20_000.0}
is_trading_day(NOW)  # build the exchange calendar once, at import, as the runtime does at start (not in a test)
LOOSE = RiskLimits(
    max_position_pct=1.0,
    max_sector_pct=1.0,
    max_gross_exposure_pct=2.0,
    max_net_exposure_pct=2.0,
    regime_caps={},
)


# -- brokers that behave like real ones -------------------------------------------------------------


class LostReplyBroker(PaperBroker):
    """The submit reaches the exchange, then the reply is lost (a read timeout after send)."""

    submits = 0

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.submits += 1
        await super().submit_order(request)
        raise OutcomeUnknown("read timeout after the request was sent", client_order_id=request.client_order_id)


class LostRequestBroker(PaperBroker):
    """The submit times out before the request reached the exchange (the broker never saw it)."""

    submits = 0

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.submits += 1
        raise OutcomeUnknown("connect timeout", client_order_id=request.client_order_id)


class RefusingBroker(PaperBroker):
    """Submits and cancels fail, before anything is sent, with the errors queued in ``submit_errors`` /
    ``cancel_errors`` (a 429, a 503, an expired token...); calls are counted."""

    submits = 0
    cancels = 0
    lookups = 0

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.submit_errors: list[BrokerError] = []
        self.cancel_errors: list[BrokerError] = []
        self.lookup_errors: list[BrokerError] = []

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.submits += 1
        if self.submit_errors:
            raise self.submit_errors.pop(0)
        return await super().submit_order(request)

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        self.cancels += 1
        if self.cancel_errors:
            raise self.cancel_errors.pop(0)
        return await super().cancel_order(client_order_id)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self.lookups += 1
        if self.lookup_errors:
            raise self.lookup_errors.pop(0)
        return await super().get_order(client_order_id)


class OutageBroker(PaperBroker):
    """Every REST call fails with BrokerUnavailable while ``down`` is set (the broker's API is out);
    ``calls`` counts the calls that were attempted."""

    down = False
    calls = 0

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            raise BrokerUnavailable("503 Service Unavailable")

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self._call()
        return await super().submit_order(request)

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        self._call()
        return await super().cancel_order(client_order_id)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self._call()
        return await super().get_order(client_order_id)

    async def list_open_orders(self) -> list[BrokerOrder]:
        self._call()
        return await super().list_open_orders()

    async def list_fills(self, since: datetime | None = None) -> list[Fill]:
        self._call()
        return await super().list_fills(since)

    async def get_positions(self) -> list[Position]:
        self._call()
        return await super().get_positions()

    async def get_account(self) -> Account:
        self._call()
        return await super().get_account()


class _Silence(AsyncIterator[OrderUpdate]):
    async def __anext__(self) -> OrderUpdate:
        await asyncio.Event().wait()  # connected, never delivers
        raise StopAsyncIteration  # pragma: no cover


class SilentPushBroker(PaperBroker):
    """Its push stream of order updates stays connected but never delivers anything (a WebSocket whose
    execution notices stopped); only polling sees the fills."""

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        return _Silence()


# -- the harness ------------------------------------------------------------------------------------


@dataclass
class Oms:
    clock: ManualClock
    exchange: PaperExchange
    broker: PaperBroker
    state: OmsState
    journal: Journal
    recorder: StateRecorder
    metrics: OmsMetrics
    bus: EventBus
    breaker: CircuitBreaker
    execution: Execution
    intents: IntentService
    reconciler: Reconciler
    admin: Admin

    def broker_as(self, cls: type[B]) -> B:
        """The broker, as the subclass the test built the harness with."""
        assert isinstance(self.broker, cls)
        return self.broker

    def at_broker(self, order_id: str) -> BrokerOrder:
        """The exchange's view of one order (it must exist)."""
        order = self.exchange.engine.get_order(order_id)
        assert order is not None, f"the exchange has no order {order_id}"
        return order

    def real_qty(self, symbol: str) -> int:
        pos = self.state.ledger.position(symbol)
        return pos.real_qty if pos is not None else 0

    def allocation(self, symbol: str, strategy: str) -> AllocationRecord:
        alloc = self.state.ledger.allocation(symbol, strategy)
        assert alloc is not None, f"{strategy} has no allocation in {symbol}"
        return alloc

    # -- the market ------------------------------------------------------------------------------
    def trade(self, price: float, qty: int = 1_000, symbol: str = SYM, after_s: float = 1.0) -> list[OrderUpdate]:
        """One print on the exchange ``after_s`` seconds from now; returns the updates the broker pushes."""
        self.clock.advance(after_s)
        self.exchange.engine.on_tick(Tick(symbol, self.clock.now(), price, qty))
        return self.exchange.engine.drain_updates()

    def push(self, updates: Iterable[OrderUpdate]) -> None:
        """Deliver pushed updates as ``Execution.run_updates`` does."""
        for update in updates:
            self.execution.on_update(update)

    # -- orders ----------------------------------------------------------------------------------
    def new_order(
        self,
        side: str = "BUY",
        qty: int = 10,
        limit: float | None = 9_900,
        *,
        strategy: str = "KMP",
        symbol: str = SYM,
        state: OrderState = OrderState.PENDING_SUBMIT,
        order_type: OrderType = OrderType.LIMIT,
        stop: float | None = None,
        cancel_after_s: float | None = None,
    ) -> OrderRecord:
        """An order row journaled before it is sent, as the intent flow writes it."""
        now = self.clock.now()
        self._seq = getattr(self, "_seq", 0) + 1
        order = OrderRecord(
            order_id=f"unit-{self._seq:04d}",
            intent_id=f"in-{self._seq:04d}",
            strategy_id=strategy,
            symbol=symbol,
            side=side,
            qty=qty,
            order_type=order_type,
            state=state,
            created_at=now,
            updated_at=now,
            limit_price=limit,
            stop_price=stop,
            cancel_after_ts=now + timedelta(seconds=cancel_after_s) if cancel_after_s is not None else None,
        )
        self.recorder.append([order])
        return order

    def intent(
        self,
        kind: IntentType = IntentType.ENTER,
        qty: int | None = 10,
        *,
        key: str,
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

    async def enter(self, strategy: str, symbol: str, qty: int, *, key: str, **constraints: Any) -> OrderRecord:
        """An ENTER intent through the real intent flow; returns its order (working at the exchange)."""
        reply = await self.intents.handle(
            self.intent(qty=qty, key=key, strategy=strategy, symbol=symbol, **constraints)
        )
        assert reply.order_id, f"entry not placed: {reply}"
        return self.state.orders[reply.order_id]

    async def hold(self, strategy: str, symbol: str, qty: int, *, key: str) -> OrderRecord:
        """``strategy`` ends up holding ``qty`` of ``symbol``: an entry filled by one print, pushed."""
        order = await self.enter(strategy, symbol, qty, key=key)
        self.push(self.trade(PREV_CLOSES[symbol], qty=qty * 4, symbol=symbol))
        assert order.state is OrderState.FILLED, order
        return order

    def held(self, symbol: str, strategy: str) -> int:
        alloc = self.state.ledger.allocation(symbol, strategy)
        return alloc.qty if alloc is not None else 0

    # -- the journal -----------------------------------------------------------------------------
    def journaled(self, table: str) -> list[Any]:
        """Every row image journaled to ``table``, in order (a row written twice appears twice)."""
        return [e.record() for e in self.journal.pending(limit=1_000_000) if e.table == table]

    def audit(self, action: str | None = None) -> list[AuditRecord]:
        return [a for a in self.journaled("audit_log") if action is None or a.action == action]


@asynccontextmanager
async def oms(
    tmp_path: Path,
    broker_cls: type[PaperBroker] = PaperBroker,
    *,
    ticks: Iterable[Tick] = (),
    cash: float = 100_000_000.0,
    breaker_failures: int = 3,
    breaker_reset_s: float = 30.0,
    safe_mode_after: int = 5,
    vi_cooldown_sec: float = 120.0,
) -> AsyncIterator[Oms]:
    clock = ManualClock(NOW)
    feed = StaticFeed(DAY, [Tick(SYM, NOW - timedelta(seconds=1), 10_000, 10), *ticks], PREV_CLOSES)
    exchange = PaperExchange(feed, clock, MatchingEngine(cash=cash, session_date=DAY))
    broker = broker_cls(exchange)
    state = OmsState(instance_id="unit")
    state.ready = True
    state.account = await PaperBroker.get_account(broker)
    journal = Journal(str(tmp_path / "journal.db"))
    recorder = StateRecorder(journal, state)
    metrics = OmsMetrics()
    bus = EventBus()
    breaker = CircuitBreaker(failure_threshold=breaker_failures, reset_timeout_s=breaker_reset_s, clock=clock)
    execution = Execution(state, broker, recorder, bus, clock, breaker, metrics)
    intents = IntentService(
        state, execution, recorder, broker, clock, LOOSE, metrics, intent_rate_per_min=lambda _sid: 1_000
    )
    reconciler = Reconciler(
        state, execution, broker, recorder, clock, breaker, metrics, safe_mode_after=safe_mode_after
    )
    admin = Admin(state, intents, execution, recorder, clock, vi_cooldown_sec)
    h = Oms(
        clock, exchange, broker, state, journal, recorder, metrics, bus, breaker, execution, intents, reconciler, admin
    )
    try:
        yield h
    finally:
        await execution.drain_tasks()
        await broker.close()
        journal.close()


async def settle(condition: Any, rounds: int = 200) -> None:
    """Let other tasks run until ``condition()`` holds (bounded; no sleeping on the wall clock)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    assert condition(), "condition not reached"
