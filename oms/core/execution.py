"""Orders at the broker: submit, cancel, apply updates and fills, held stop entries, timeouts.

The rule that keeps orders single: an order is journaled as PENDING_SUBMIT before it is sent;
an ambiguous submit (OutcomeUnknown) leaves it in flight until a broker lookup by client order
id settles it. Nothing here ever re-sends an order.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailable,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from broker_core.models import BrokerOrder, Fill, OrderRequest, OrderType, OrderUpdate, Side, Tick
from oms.core import orders as fsm
from oms.core.arbitration import SymbolGate
from oms.core.circuit import CircuitBreaker
from oms.core.events import EventBus
from oms.core.planner import stop_triggered
from oms.core.state import OmsState, Recorder
from oms.core.types import FillRecord, IntentType, OrderRecord, OrderState, RiskDailyStrategyRecord

if TYPE_CHECKING:
    from oms.metrics import OmsMetrics

log = logging.getLogger("oms.execution")

_BROKER_TYPE = {
    OrderType.LIMIT: OrderType.LIMIT,
    OrderType.STOP_LIMIT: OrderType.LIMIT,
    OrderType.MARKET: OrderType.MARKET,
    OrderType.MARKETABLE_LIMIT: OrderType.LIMIT,
}


_NOT_TAKEN: dict[type[BrokerError], ReasonCode] = {
    RateLimited: ReasonCode.BROKER_RATE_LIMITED,
    BrokerUnavailable: ReasonCode.BROKER_UNAVAILABLE,
    AuthError: ReasonCode.BROKER_AUTH,
}
"""Submit errors after which the broker certainly holds no order."""


def order_event(order: OrderRecord) -> dict[str, Any]:
    """The stream's order event: the REST order shape plus ``type`` and ``ts``."""
    return {
        "type": "order",
        "order_id": order.order_id,
        "intent_id": order.intent_id,
        "strategy_id": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side,
        "qty": order.qty,
        "order_type": order.order_type.value,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "filled_qty": order.filled_qty,
        "leaves_qty": order.leaves_qty,
        "avg_fill_price": order.avg_fill_price,
        "state": order.state.value,
        "broker_order_id": order.broker_order_id,
        "reason": order.reason,
        "created_at": order.created_at.isoformat(),
        "cancel_after_ts": order.cancel_after_ts.isoformat() if order.cancel_after_ts else None,
        "ts": order.updated_at.isoformat(),
    }


def fill_event(fill: FillRecord) -> dict[str, Any]:
    return {
        "type": "fill",
        "execution_id": fill.execution_id,
        "order_id": fill.order_id,
        "strategy_id": fill.strategy_id,
        "symbol": fill.symbol,
        "side": fill.side,
        "qty": fill.qty,
        "price": fill.price,
        "ts": fill.ts.isoformat(),
        "commission": fill.commission,
        "tax": fill.tax,
    }


class Execution:
    def __init__(
        self,
        state: OmsState,
        broker: Broker,
        recorder: Recorder,
        bus: EventBus,
        clock: Clock,
        breaker: CircuitBreaker,
        metrics: OmsMetrics,
        gate: SymbolGate | None = None,
    ) -> None:
        self.state = state
        self.gate = gate or SymbolGate()
        """The per-symbol gate intents run under; a triggered stop entry is submitted under it too."""
        self.broker = broker
        self.recorder = recorder
        self.bus = bus
        self.clock = clock
        self.breaker = breaker
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._watched: set[str] = set()
        self._cancel_when_known: dict[str, str] = {}
        """Order id → cancel reason, for cancels asked while the submit was still in flight."""
        self._triggering: set[str] = set()
        self._cancelling: set[str] = set()
        """Orders whose cancel request is on its way to the broker."""
        self._submitting: set[str] = set()
        """Orders whose submit is awaiting the broker's answer (reconciliation must not judge them yet)."""

    def record(self, records: list) -> None:
        self.recorder.append(records)

    def _publish_order(self, order: OrderRecord) -> None:
        self.bus.publish_strategy(order.strategy_id, order_event(order))

    async def submit(self, order: OrderRecord) -> None:
        """Send a journaled PENDING_SUBMIT order; settle its state from the broker's answer."""
        request = OrderRequest(
            client_order_id=order.order_id,
            symbol=order.symbol,
            side=Side(order.side),
            qty=order.qty,
            order_type=_BROKER_TYPE[order.order_type],
            limit_price=order.limit_price,
        )
        self._submitting.add(order.order_id)
        try:
            snapshot = await self.broker.submit_order(request)
        except OrderRejected as exc:
            self.breaker.record_success()
            self._finish(order, OrderState.REJECTED, exc.code, exc.message)
            return
        except OutcomeUnknown as exc:
            self.breaker.record_failure()
            log.warning("submit outcome unknown order=%s reason=OUTCOME_UNKNOWN detail=%s", order.order_id, exc.message)
            order.reason = ReasonCode.OUTCOME_UNKNOWN
            self.record([order])
            return
        except (RateLimited, BrokerUnavailable, AuthError) as exc:
            if isinstance(exc, AuthError):
                self.breaker.trip()
            else:
                self.breaker.record_failure()
            self._finish(order, OrderState.REJECTED, _NOT_TAKEN[type(exc)], f"{exc.code}: {exc.message}")
            return
        except BrokerError as exc:
            self.breaker.record_failure()
            log.warning("submit failed order=%s code=%s: keeping in flight", order.order_id, exc.code)
            return
        finally:
            self._submitting.discard(order.order_id)
        self.breaker.record_success()
        self.apply_snapshot(order, snapshot)

    def _finish(self, order: OrderRecord, to: OrderState, reason: str, detail: str) -> None:
        self._cancel_when_known.pop(order.order_id, None)
        event = fsm.transition(order, to, self.clock.now(), reason=reason, detail=detail)
        log.info("order %s %s reason=%s %s", order.order_id, to.value, reason, detail)
        self.record([order, event])
        self._publish_order(order)

    def apply_snapshot(self, order: OrderRecord, snapshot: BrokerOrder) -> None:
        before = (order.state, order.broker_order_id)
        events = fsm.apply_broker_snapshot(order, snapshot, self.clock.now())
        if snapshot.broker_order_id:
            self.state.broker_ids[snapshot.broker_order_id] = order.order_id
        if events or before != (order.state, order.broker_order_id):
            self.record([order, *events])
            self._publish_order(order)
        if order.order_id in self._cancel_when_known and order.state is not OrderState.PENDING_SUBMIT:
            reason = self._cancel_when_known.pop(order.order_id)
            if not order.state.is_terminal:
                log.info(
                    "order %s known to the broker: sending the cancel asked in flight reason=%s", order.order_id, reason
                )
                self.spawn(self.cancel(order, reason))

    async def cancel(self, order: OrderRecord, reason: str) -> None:
        now = self.clock.now()
        if order.state is OrderState.HELD:
            self._finish(order, OrderState.CANCELLED, reason, "held entry cancelled before trigger")
            return
        if order.state.is_terminal or order.order_id in self._cancelling:
            return
        if order.state is OrderState.PENDING_SUBMIT:
            # The broker may or may not hold it yet: the cancel goes out as soon as its answer is known.
            self._cancel_when_known[order.order_id] = reason
            log.info("order %s still in flight: cancel kept until the broker answers reason=%s", order.order_id, reason)
            return
        if order.state is not OrderState.PENDING_CANCEL:
            event = fsm.transition(order, OrderState.PENDING_CANCEL, now, reason=reason)
            self.record([order, event])
        # A PENDING_CANCEL order with no cancel on its way (the last one failed) is asked again: cancels are
        # idempotent at the broker, and a cancel that never arrived must not leave the order working for good.
        self._cancelling.add(order.order_id)
        try:
            snapshot: BrokerOrder | None = await self.broker.cancel_order(order.order_id)
        except (OrderRejected, OrderNotFound):
            self.breaker.record_success()
            snapshot = await self._lookup(order)
            if snapshot is None:
                return
        except BrokerError as exc:
            self.breaker.record_failure()
            log.warning("cancel outcome unknown order=%s code=%s", order.order_id, exc.code)
            return
        else:
            self.breaker.record_success()
        finally:
            self._cancelling.discard(order.order_id)
        assert snapshot is not None  # the lookup branch returned on None
        self.apply_snapshot(order, snapshot)

    async def _lookup(self, order: OrderRecord) -> BrokerOrder | None:
        try:
            return await self.broker.get_order(order.order_id)
        except BrokerError:
            self.breaker.record_failure(order_call=False)
            return None

    async def resolve(self, order: OrderRecord) -> None:
        """Settle an in-flight or working order from the broker's view (reconciliation). An order whose submit
        is still awaiting the broker's answer is left alone: the broker may not show it yet."""
        if order.order_id in self._submitting:
            return
        try:
            snapshot = await self.broker.get_order(order.order_id)
        except BrokerError as exc:
            self.breaker.record_failure(order_call=False)
            log.warning("order lookup failed order=%s code=%s", order.order_id, exc.code)
            return
        if order.order_id in self._submitting:
            return  # a submit of it started while we looked
        self.breaker.record_success(resets_count=False)
        if snapshot is None:
            if order.state is OrderState.PENDING_SUBMIT:
                self._finish(
                    order,
                    OrderState.REJECTED,
                    ReasonCode.NOT_AT_BROKER,
                    "submit outcome was unknown and the broker has no such order",
                )
            return
        self.apply_snapshot(order, snapshot)

    def on_update(self, update: OrderUpdate) -> None:
        if update.fill is not None:
            self.apply_fill(update.fill)
        order = self.state.orders.get(update.order.client_order_id)
        if order is not None:
            self.apply_snapshot(order, update.order)

    def apply_fill(self, fill: Fill, exit_reason: str | None = None) -> bool:
        """Apply one execution exactly once (de-duplicated by execution id)."""
        if fill.execution_id in self.state.seen_executions:
            self.metrics.duplicate_fills.inc()
            return False
        order = self.state.orders.get(fill.client_order_id)
        if order is None:
            log.warning(
                "fill for unknown order exec=%s order=%s reason=FILL_UNKNOWN_ORDER (left to reconciliation)",
                fill.execution_id,
                fill.client_order_id,
            )
            return False
        self.state.seen_executions.add(fill.execution_id)
        now = self.clock.now()
        record = FillRecord(
            execution_id=fill.execution_id,
            order_id=order.order_id,
            strategy_id=order.strategy_id,
            symbol=fill.symbol,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            ts=fill.ts,
            commission=fill.commission,
            tax=fill.tax,
        )
        try:
            events = fsm.apply_fill(order, fill.qty, fill.price, now, execution_id=fill.execution_id)
        except (ValueError, fsm.InvalidTransition) as exc:  # overfill or a fill on a held order: keep the fill, flag it
            log.error(
                "order refused fill exec=%s order=%s reason=FILL_INCONSISTENT: %s",
                fill.execution_id,
                order.order_id,
                exc,
            )
            events = []
        rows: list = [record, order, *events]
        try:
            change = self.state.ledger.apply_fill(record, now, exit_reason=exit_reason or order.reason)
        except Exception as exc:  # the fill is kept; reconciliation will flag the position
            log.error("ledger refused fill exec=%s reason=LEDGER_ERROR: %s", fill.execution_id, exc)
        else:
            rows += [change.position, change.allocation]
            meta = self.state.order_meta.get(order.order_id)
            if meta is not None and fill.side is Side.BUY and change.allocation.initial_stop_px is None:
                rows.append(
                    self.state.ledger.set_risk_meta(
                        fill.symbol,
                        order.strategy_id,
                        entry_px=meta.entry_px,
                        initial_stop_px=meta.stop_px,
                        soft_stop_px=meta.stop_px,
                        hard_stop_px=meta.hard_stop_px,
                        now=now,
                    )
                )
            if change.trade is not None:
                rows.append(change.trade)
            rows.append(self._daily(order.strategy_id, change.realized_pnl))
        if self.state.cash_estimate is not None:
            sign = -1 if fill.side is Side.BUY else 1
            self.state.cash_estimate += sign * fill.qty * fill.price - fill.commission - fill.tax
        self.state.last_prices.setdefault(fill.symbol, fill.price)
        self.record(rows)
        self.metrics.fills.labels(order.strategy_id).inc()
        self.bus.publish_strategy(order.strategy_id, fill_event(record))
        self._publish_order(order)
        return True

    def _daily(self, strategy_id: str, realized: float) -> RiskDailyStrategyRecord:
        day = str(self.state.trading_day or self.clock.now().date())
        rec = self.state.daily_strategy.get(strategy_id)
        if rec is None or rec.trading_day != day:
            rec = RiskDailyStrategyRecord(trading_day=day, strategy_id=strategy_id)
            self.state.daily_strategy[strategy_id] = rec
        rec.realized_pnl += realized
        rec.fills += 1
        rec.updated_at = self.clock.now()
        if self.state.daily_portfolio is not None:
            self.state.daily_portfolio.realized_pnl += realized
        return rec

    async def run_updates(self) -> None:
        """Consume the broker's push stream of order updates for the life of the OMS (the stream is closed when
        the loop ends, so a supervisor's restart leaves no subscription behind)."""
        stream = self.broker.order_updates()
        try:
            async for update in stream:
                try:
                    self.on_update(update)
                except Exception:
                    log.exception("failed to apply order update %s", update.order.client_order_id)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def on_tick(self, tick: Tick) -> None:
        self.state.last_prices[tick.symbol] = tick.price
        if tick.symbol not in self._watched and tick.qty:
            return
        for order in [o for o in self.state.working.values() if o.state is OrderState.HELD and o.symbol == tick.symbol]:
            if order.order_id not in self._triggering and stop_triggered(order, tick.price):
                self._triggering.add(order.order_id)
                self.spawn(self._trigger(order, tick.price))

    async def _trigger(self, order: OrderRecord, price: float) -> None:
        """Submit a held stop entry whose trigger traded, under the symbol's gate (as an entry intent), unless
        it was cancelled meanwhile."""
        try:
            async with self.gate.hold(order.symbol, IntentType.ENTER.priority):
                if order.state is not OrderState.HELD:
                    return
                event = fsm.transition(
                    order,
                    OrderState.PENDING_SUBMIT,
                    self.clock.now(),
                    reason=ReasonCode.STOP_TRIGGERED,
                    detail=f"traded {price:g} through stop {order.stop_price:g}",
                )
                self.record([order, event])
                self._publish_order(order)
                await self.submit(order)
        finally:
            self._triggering.discard(order.order_id)

    async def watch(self, symbol: str) -> None:
        """Subscribe the symbol's trades so a held stop entry sees its trigger."""
        if symbol in self._watched:
            return
        try:
            await self.broker.subscribe_ticks([symbol])
        except BrokerError as exc:
            log.warning(
                "cannot watch %s for held stops (%s); triggers fall back to reconciliation quotes", symbol, exc.code
            )
            return
        self._watched.add(symbol)

    async def check_held(self) -> None:
        """Trigger check for held stop entries from a quote (safety net for missed ticks)."""
        for symbol in {o.symbol for o in self.state.working.values() if o.state is OrderState.HELD}:
            try:
                quote = await self.broker.get_quote(symbol)
            except BrokerError:
                continue
            if quote.last:
                self.on_tick(Tick(symbol=symbol, ts=quote.ts, price=quote.last, qty=0))

    async def enforce_timeouts(self, now: datetime) -> int:
        due = [
            o
            for o in self.state.working.values()
            if o.cancel_after_ts is not None
            and o.cancel_after_ts <= now
            and o.state in (OrderState.HELD, OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED)
        ]
        for order in due:
            await self.cancel(order, "TIMEOUT")
        return len(due)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain_tasks(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
