"""The intent → order flow: validate, de-duplicate, arbitrate, check risk, plan, journal, submit.

Per-symbol work is serialised by a priority gate (exits before entries); different symbols run
concurrently. Between the risk decision and the journal write there is no ``await``, so two
intents can never both pass a cap that only one of them fits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import BrokerError
from broker_core.markets.venue_market import KRX_MARKET, Market
from oms.core.circuit import BreakerState
from oms.core.execution import Execution
from oms.core.idempotency import derive_idempotency_key, scoped_key
from oms.core.ids import new_client_order_id
from oms.core.planner import OrderPlan, plan_order
from oms.core.risk import DailyLossLatch, MarketView, PortfolioView, RiskAction, RiskLimits, TradingFlags, evaluate
from oms.core.state import OmsState, Recorder
from oms.core.types import (
    Intent,
    IntentRecord,
    IntentResult,
    IntentStatus,
    IntentType,
    OrderRecord,
    OrderState,
)

if TYPE_CHECKING:
    from oms.metrics import OmsMetrics

log = logging.getLogger("oms.intents")

ORDER_INTENTS = {IntentType.ENTER, IntentType.REDUCE, IntentType.EXIT, IntentType.FLATTEN, IntentType.SET_TARGET}
RETRY_AFTER = {
    ReasonCode.OMS_STARTING: 1.0,
    ReasonCode.INTERNAL_ERROR: 5.0,
    ReasonCode.MARKET_DATA_UNAVAILABLE: 2.0,
    ReasonCode.BROKER_UNAVAILABLE: 5.0,
    ReasonCode.BROKER_CIRCUIT_OPEN: 5.0,
}
"""Seconds a temporary refusal asks the strategy to wait (DEFERRED with ``cooldown_until``)."""
TEMPORARY_BROKER_REASONS = {ReasonCode.BROKER_RATE_LIMITED, ReasonCode.BROKER_UNAVAILABLE, ReasonCode.BROKER_AUTH}
"""Submit failures where the broker certainly did not take the order: the intent is DEFERRED, not rejected."""


class IntentService:
    def __init__(
        self,
        state: OmsState,
        execution: Execution,
        recorder: Recorder,
        broker: Broker,
        clock: Clock,
        limits: RiskLimits,
        metrics: OmsMetrics,
        *,
        sector_of: dict[str, str] | None = None,
        known_symbols: Callable[[], set[str] | None] = lambda: None,
        intent_rate_per_min: Callable[[str], int] = lambda _sid: 120,
        check_market_hours: bool = True,
        market: Market = KRX_MARKET,
    ) -> None:
        self.market = market
        self.state = state
        self.execution = execution
        self.recorder = recorder
        self.broker = broker
        self.clock = clock
        self.limits = limits
        self.metrics = metrics
        self.sector_of = sector_of or {}
        self.known_symbols = known_symbols
        self.intent_rate_per_min = intent_rate_per_min
        self.check_market_hours = check_market_hours
        self.gate = execution.gate
        self.loss_latch = DailyLossLatch()
        self.on_halt: Callable[[], None] | None = None
        """Called once when the day-loss halt level is first reached (e.g. flatten-on-halt)."""
        self._inflight: dict[str, asyncio.Future[IntentResult]] = {}
        """Key → the decision under way: a duplicate waits for it and gets the same final reply."""
        self._provisional: dict[str, IntentResult] = {}
        """Key → the ACCEPTED written before a broker submit, until the final decision replaces it."""

    # ---- entry point -------------------------------------------------------------------------
    async def handle(self, intent: Intent) -> IntentResult:
        """Decide an intent exactly once per idempotency key.

        One writer per key: the first arrival decides; a duplicate that arrives while the decision is
        under way (even while its order is being submitted) waits for it and gets the same final reply.
        A DEFERRED decision is reopened, under the same intent id, once its cooldown has passed."""
        started = time.perf_counter()
        intent = self._with_key(intent)
        key = intent.idempotency_key
        pending = self._inflight.get(key)
        if pending is not None:
            return replace(await asyncio.shield(pending))
        existing = self.state.intents_by_key.get(key)
        if existing is not None and not self._reopens(existing):
            return replace(existing.result)
        if existing is not None:
            intent = replace(intent, intent_id=existing.intent.intent_id)
        future: asyncio.Future[IntentResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._decide_once(intent)
            future.set_result(result)
            return replace(result)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody awaits logs no warning
            raise
        finally:
            del self._inflight[key]
            self._provisional.pop(key, None)
            self.metrics.intent_latency.observe(time.perf_counter() - started)

    async def _decide_once(self, intent: Intent) -> IntentResult:
        """:meth:`_process`, and when it fails, the one final answer that is still true: an order that
        may have reached the broker keeps its ACCEPTED (reconciliation settles the order); otherwise a
        DEFERRED ``INTERNAL_ERROR`` the strategy may retry after the cooldown."""
        try:
            return await self._process(intent)
        except Exception as exc:
            provisional = self._provisional.get(intent.idempotency_key)
            if provisional is not None:
                log.error(
                    "intent %s failed after its order %s was created reason=INTERNAL_ERROR: %s; the order stays "
                    "in flight for reconciliation",
                    intent.intent_id,
                    provisional.order_id,
                    exc,
                    exc_info=exc,
                )
                self._count(intent, provisional.status, provisional.reason_code, provisional.message)
                return provisional
            log.exception("intent %s failed reason=INTERNAL_ERROR", intent.intent_id)
            if intent.intent_type in (IntentType.ENTER, IntentType.SET_TARGET):
                self.state.entry_locks.release(intent.symbol, intent.strategy_id)  # no order: no phantom lock
            try:
                return self._defer(intent, ReasonCode.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")
            except Exception:
                log.exception("intent %s: the deferral could not be journaled", intent.intent_id)
                return IntentResult(
                    intent_id=intent.intent_id,
                    status=IntentStatus.DEFERRED,
                    message="internal error; nothing was recorded",
                    reason_code=ReasonCode.INTERNAL_ERROR,
                    cooldown_until=self._after(RETRY_AFTER[ReasonCode.INTERNAL_ERROR]),
                )

    def _with_key(self, intent: Intent) -> Intent:
        if intent.idempotency_key:
            key = scoped_key(
                intent.strategy_id, intent.idempotency_key, self.state.trading_day or self.clock.now().date()
            )
        else:
            key = derive_idempotency_key(
                intent.strategy_id,
                intent.symbol,
                intent.intent_type.value,
                self.clock.now().date(),
                intent.signal_hash,
                intent.risk_payload.rationale_code,
                intent.desired_qty or intent.target_qty,
            )
        return replace(intent, idempotency_key=key)

    def _reopens(self, existing: IntentRecord) -> bool:
        """A DEFERRED intent sent again after its cooldown is decided afresh."""
        res = existing.result
        return (
            res.status is IntentStatus.DEFERRED
            and res.cooldown_until is not None
            and self.clock.now() >= res.cooldown_until
        )

    # ---- decision helpers --------------------------------------------------------------------
    def _decide(
        self,
        intent: Intent,
        status: IntentStatus,
        reason: str | None,
        message: str,
        *,
        order_id: str | None = None,
        modified_qty: int | None = None,
        cooldown_until: datetime | None = None,
        extra: list | None = None,
        count: bool = True,
    ) -> IntentResult:
        """Record a decision (journal first). ``count=False`` for the provisional ACCEPTED written
        before a broker submit, so /metrics counts each intent once, by its final status."""
        result = IntentResult(
            intent_id=intent.intent_id,
            status=status,
            message=message,
            reason_code=reason,
            modified_qty=modified_qty,
            order_id=order_id,
            cooldown_until=cooldown_until,
        )
        record = IntentRecord(intent=intent, result=result, decided_at=self.clock.now())
        self.recorder.append([record, *(extra or [])])
        self.state.intents_by_key[intent.idempotency_key] = record
        if count:
            self._count(intent, status, reason, message)
        return result

    def _after(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)

    def _defer(self, intent: Intent, reason: ReasonCode, message: str, until: datetime | None = None) -> IntentResult:
        """A temporary refusal: DEFERRED with ``cooldown_until``; the same intent sent after it is decided anew."""
        return self._decide(
            intent, IntentStatus.DEFERRED, reason, message, cooldown_until=until or self._after(RETRY_AFTER[reason])
        )

    def _count(self, intent: Intent, status: IntentStatus, reason: str | None, message: str) -> None:
        self.metrics.intents.labels(intent.strategy_id, status.value).inc()
        if status in (IntentStatus.REJECTED, IntentStatus.DEFERRED) and reason:
            self.metrics.rejections.labels(reason).inc()
            log.info(
                "intent %s %s %s %s reason=%s %s",
                intent.intent_id,
                intent.strategy_id,
                intent.intent_type.value,
                intent.symbol,
                reason,
                message,
            )

    def _reject(self, intent: Intent, reason: str, message: str) -> IntentResult:
        return self._decide(intent, IntentStatus.REJECTED, reason, message)

    def _rate_limited(self, strategy_id: str, now: datetime) -> datetime | None:
        """When the strategy's one-minute intent window has room again, or None when it has room now
        (and the intent is counted)."""
        window = self.state.intent_times.setdefault(strategy_id, deque())
        horizon = now - timedelta(seconds=60)
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.intent_rate_per_min(strategy_id):
            return window[0] + timedelta(seconds=60)
        window.append(now)
        return None

    # ---- the flow ----------------------------------------------------------------------------
    async def _process(self, intent: Intent) -> IntentResult:
        now = self.clock.now()
        kind = intent.intent_type
        if not self.state.ready and not kind.reduces_exposure and kind is not IntentType.MODIFY_RISK:
            return self._defer(
                intent,
                ReasonCode.OMS_STARTING,
                "OMS is starting (rebuilding state and reconciling); entries open when /health says ok",
            )
        if intent.constraints.expiry_ts is not None and intent.constraints.expiry_ts <= now:
            return self._reject(
                intent, ReasonCode.EXPIRED, f"intent expired at {intent.constraints.expiry_ts.isoformat()}"
            )
        free_at = self._rate_limited(intent.strategy_id, now)
        if free_at is not None:
            return self._defer(
                intent,
                ReasonCode.RATE_LIMITED,
                f"more than {self.intent_rate_per_min(intent.strategy_id)} intents/min from {intent.strategy_id}",
                until=free_at,
            )
        known = self.known_symbols()
        if intent.symbol != "*" and known is not None and intent.symbol not in known:
            return self._reject(
                intent, ReasonCode.UNKNOWN_SYMBOL, f"symbol {intent.symbol} is not tradable on this account"
            )
        if kind in ORDER_INTENTS and self.check_market_hours and not self._market_open(now):
            return self._reject(intent, ReasonCode.MARKET_CLOSED, f"market is closed at {now.isoformat()}")
        if kind is IntentType.FLATTEN:
            return await self._flatten(intent)
        async with self.gate.hold(intent.symbol, kind.priority):
            if kind is IntentType.ENTER:
                return await self._enter(intent, intent.desired_qty or 0)
            if kind in (IntentType.REDUCE, IntentType.EXIT):
                return await self._sell(intent)
            if kind is IntentType.CANCEL_ORDERS:
                return await self._cancel_orders(intent)
            if kind is IntentType.MODIFY_RISK:
                return self._modify_risk(intent)
            if kind is IntentType.SET_TARGET:
                return await self._set_target(intent)
        return self._reject(intent, ReasonCode.INVALID_ORDER, f"intent type {kind} is not supported")

    def _plan(self, intent: Intent, side: str, qty: int, market: MarketView, now: datetime) -> OrderPlan:
        return plan_order(
            intent.intent_type,
            side,
            qty,
            intent.constraints,
            market.last,
            market.bid,
            market.ask,
            now,
            market=self.market,
        )

    def _market_open(self, now: datetime) -> bool:
        return self.market.accepts_orders(now)

    async def _market(self, symbol: str) -> MarketView:
        try:
            quote = await self.broker.get_quote(symbol)
        except BrokerError:
            return MarketView(
                last=self.state.last_prices.get(symbol),
                bid=None,
                ask=None,
                vi_cooldown_until=self._vi_until(symbol),
                quote_failed=True,
            )
        if quote.last:
            self.state.last_prices[symbol] = quote.last
        return MarketView(
            last=quote.last or self.state.last_prices.get(symbol),
            bid=quote.bid,
            ask=quote.ask,
            vi_cooldown_until=self._vi_until(symbol),
        )

    def _vi_until(self, symbol: str) -> datetime | None:
        raw = self.state.flags.vi_cooldowns.get(symbol)
        return datetime.fromisoformat(raw) if raw else None

    def flags(self, portfolio: PortfolioView | None = None) -> TradingFlags:
        level = None
        if portfolio is not None:
            level = self.loss_latch.update(self.state.trading_day or self.clock.now().date(), portfolio, self.limits)
            if self.loss_latch.newly_halted:
                self._on_halt()
        return TradingFlags(
            daily_loss_level=level,
            safe_mode=self.state.flags.safe_mode,
            halt_new_entries=self.state.flags.halt_new_entries,
            paused_strategies={s for s, r in self.state.strategies.items() if r.paused},
            disabled_symbols=set(self.state.flags.disabled_symbols),
            frozen_symbols=dict(self.state.frozen_symbols),
            regime=self.state.flags.regime,
        )

    def _on_halt(self) -> None:
        """The day-loss halt level was reached: entries stop for the day (journaled)."""
        daily = self.state.daily_portfolio
        log.error("daily loss halt reached reason=DAILY_LOSS_HALT: entries blocked for the rest of the day")
        if self.on_halt is not None:
            self.on_halt()
        if daily is not None:
            daily.halted = True
            daily.updated_at = self.clock.now()
            self.recorder.append([daily])

    def portfolio(self) -> PortfolioView:
        st = self.state
        positions = {
            sym: (p.real_qty, st.last_prices.get(sym) or p.avg_price)
            for sym, p in st.ledger.positions().items()
            if p.real_qty
        }
        market_value = sum(q * px for q, px in positions.values())
        cash = st.cash_estimate if st.cash_estimate is not None else (st.account.cash if st.account else 0.0)
        equity = cash + market_value
        working_buy = {s: v for s, v in st.working_buy_by_symbol.items() if v > 0.5}
        strategy_notional = {s: v for s, v in st.working_buy_by_strategy.items() if v > 0.5}
        for sym in positions:
            for sid, alloc in st.ledger.allocations_in(sym).items():
                strategy_notional[sid] = strategy_notional.get(sid, 0.0) + alloc.qty * positions[sym][1]
        start = st.daily_portfolio.start_equity if st.daily_portfolio else equity
        return PortfolioView(
            equity=equity,
            buyable_cash=max(0.0, cash - sum(working_buy.values())),
            daily_pnl=equity - start,
            start_equity=start,
            positions=positions,
            working_buy_notional=working_buy,
            sector_of=self.sector_of,
            strategy_notional=strategy_notional,
        )

    async def _enter(self, intent: Intent, qty: int, *, allow_holding: bool = False) -> IntentResult:
        sid, sym, now = intent.strategy_id, intent.symbol, self.clock.now()
        if qty <= 0:
            return self._reject(intent, ReasonCode.INVALID_QTY, "desired_qty must be > 0 for ENTER")
        alloc = self.state.ledger.allocation(sym, sid)
        if not allow_holding and ((alloc is not None and alloc.qty > 0) or self.state.working_qty(sid, sym, "BUY") > 0):
            return self._reject(intent, ReasonCode.ALREADY_IN_POSITION, f"{sid} already holds or is entering {sym}")
        owner = self.state.entry_locks.owner(sym, now)
        if owner is not None and owner[0] != sid:
            return self._decide(
                intent,
                IntentStatus.DEFERRED,
                ReasonCode.ENTRY_LOCKED,
                f"{sym} entry-locked by {owner[0]} until {owner[1].isoformat()}",
                cooldown_until=owner[1],
            )
        breaker = self.execution.breaker
        if breaker.state is BreakerState.OPEN:
            return self._defer(
                intent,
                ReasonCode.BROKER_CIRCUIT_OPEN,
                "the broker circuit breaker is open: entries wait, exits are still tried",
                until=breaker.retry_at,
            )
        market = await self._market(sym)
        if not (intent.constraints.limit_price or market.last or market.ask):
            if market.quote_failed:
                return self._defer(intent, ReasonCode.MARKET_DATA_UNAVAILABLE, f"no quote for {sym} (broker error)")
            return self._reject(intent, ReasonCode.NO_PRICE, f"no price known for {sym}")
        now = self.clock.now()
        try:
            plan = self._plan(intent, "BUY", qty, market, now)
        except ValueError as exc:
            return self._reject(intent, ReasonCode.INVALID_ORDER, str(exc))
        portfolio = self.portfolio()
        decision = evaluate(
            intent.intent_type,
            sid,
            sym,
            qty,
            plan.limit_price or market.ask or market.last,
            intent.constraints.limit_price,
            portfolio,
            market,
            self.flags(portfolio),
            self.limits,
            now,
            max_spread_bps=intent.constraints.max_spread_bps,
        )
        if decision.action is RiskAction.REJECT:
            return self._reject(intent, decision.reason_code or ReasonCode.RISK, decision.message)
        if decision.action is RiskAction.DEFER:
            return self._decide(
                intent, IntentStatus.DEFERRED, decision.reason_code, decision.message, cooldown_until=decision.retry_at
            )
        lock = self.state.entry_locks.acquire(sym, sid, now, self.limits.entry_lock_for(sid))
        if not lock.granted:
            return self._decide(
                intent,
                IntentStatus.DEFERRED,
                ReasonCode.ENTRY_LOCKED,
                f"{sym} entry-locked by {lock.owner}",
                cooldown_until=lock.until,
            )
        return await self._place(
            intent,
            "BUY",
            decision.qty,
            market,
            modified=decision.qty < qty,
            modify_reason=decision.reason_code,
            plan=replace(plan, qty=decision.qty),
        )

    async def _sell(self, intent: Intent) -> IntentResult:
        sid, sym = intent.strategy_id, intent.symbol
        alloc = self.state.ledger.allocation(sym, sid)
        held = alloc.qty if alloc is not None else 0
        if intent.intent_type is IntentType.EXIT:
            for order in self.state.working_orders(sid, sym):
                if order.side == "BUY":
                    await self.execution.cancel(order, ReasonCode.EXIT_REQUESTED)
        available = held - self.state.working_qty(sid, sym, "SELL")
        qty = available if intent.intent_type is IntentType.EXIT else min(intent.desired_qty or 0, available)
        if qty <= 0:
            return self._reject(
                intent,
                ReasonCode.NOTHING_TO_SELL,
                f"{sid} holds {held} {sym}, {held - available} already in working sells",
            )
        market = await self._market(sym)
        decision = evaluate(
            intent.intent_type,
            sid,
            sym,
            qty,
            market.last or 0.0,
            intent.constraints.limit_price,
            self.portfolio(),
            market,
            self.flags(),
            self.limits,
            self.clock.now(),
        )
        if decision.action is RiskAction.REJECT:
            return self._reject(intent, decision.reason_code or ReasonCode.RISK, decision.message)
        return await self._place(intent, "SELL", qty, market, modified=qty < (intent.desired_qty or qty))

    async def _place(
        self,
        intent: Intent,
        side: str,
        qty: int,
        market: MarketView,
        *,
        modified: bool,
        modify_reason: str | None = None,
        plan: OrderPlan | None = None,
    ) -> IntentResult:
        """Create, journal and send the order; ``plan`` is the one risk already priced (entries)."""
        now = self.clock.now()
        if plan is None:
            try:
                plan = self._plan(intent, side, qty, market, now)
            except ValueError as exc:
                return self._reject(intent, ReasonCode.INVALID_ORDER, str(exc))
        order = OrderRecord(
            order_id=new_client_order_id(self.state.instance_id),
            intent_id=intent.intent_id,
            strategy_id=intent.strategy_id,
            symbol=intent.symbol,
            side=side,
            qty=qty,
            order_type=plan.order_type,
            state=OrderState.HELD if plan.held else OrderState.PENDING_SUBMIT,
            created_at=now,
            updated_at=now,
            limit_price=plan.limit_price,
            stop_price=plan.stop_price,
            cancel_after_ts=plan.cancel_after_ts,
            reason=intent.risk_payload.rationale_code if side == "SELL" else None,
        )
        self.state.track(order)
        self.metrics.orders.labels(intent.strategy_id).inc()
        if side == "BUY":
            self.state.order_meta[order.order_id] = intent.risk_payload
        status = IntentStatus.MODIFIED if modified else IntentStatus.ACCEPTED
        message = (
            f"{side} {qty} {intent.symbol} {plan.order_type.value}"
            + (f" @ {plan.limit_price:g}" if plan.limit_price else "")
            + (" (held until stop trades)" if plan.held else "")
        )
        if modified:
            message += f"; qty reduced by risk ({modify_reason})"
        provisional = self._decide(
            intent,
            status,
            modify_reason if modified else None,
            message,
            order_id=order.order_id,
            modified_qty=qty if modified else None,
            extra=[order],
            count=False,
        )
        self._provisional[intent.idempotency_key] = provisional
        if plan.held:
            self._count(intent, status, provisional.reason_code, message)
            await self.execution.watch(intent.symbol)
            return self.state.intents_by_key[intent.idempotency_key].result
        await self.execution.submit(order)
        if order.state is OrderState.REJECTED:
            if side == "BUY":
                self.state.entry_locks.release(intent.symbol, intent.strategy_id)
            if order.reason in TEMPORARY_BROKER_REASONS:
                return self._defer(
                    intent,
                    ReasonCode.BROKER_UNAVAILABLE,
                    f"the broker did not take the order ({order.reason}); nothing is working, retry later",
                )
            return self._decide(
                intent,
                IntentStatus.REJECTED,
                order.reason or ReasonCode.BROKER_REJECTED,
                f"broker rejected the order: {order.reason}",
                order_id=order.order_id,
            )
        if order.state is OrderState.FILLED:
            return self._decide(
                intent,
                IntentStatus.EXECUTED,
                None,
                message + "; filled",
                order_id=order.order_id,
                modified_qty=qty if modified else None,
            )
        self._count(intent, status, provisional.reason_code, message)
        return self.state.intents_by_key[intent.idempotency_key].result

    async def _cancel_orders(self, intent: Intent) -> IntentResult:
        working = self.state.working_orders(intent.strategy_id, None if intent.symbol == "*" else intent.symbol)
        for order in working:
            await self.execution.cancel(order, ReasonCode.CANCEL_REQUESTED)
        return self._decide(intent, IntentStatus.EXECUTED, None, f"cancel requested for {len(working)} order(s)")

    def _modify_risk(self, intent: Intent) -> IntentResult:
        rp = intent.risk_payload
        if intent.symbol == "*":
            return self._decide(intent, IntentStatus.EXECUTED, None, "strategy risk state noted")
        alloc = self.state.ledger.allocation(intent.symbol, intent.strategy_id)
        if alloc is None:
            return self._reject(
                intent, ReasonCode.NO_ALLOCATION, f"{intent.strategy_id} has no allocation in {intent.symbol}"
            )
        updated = self.state.ledger.set_risk_meta(
            intent.symbol,
            intent.strategy_id,
            soft_stop_px=rp.stop_px,
            hard_stop_px=rp.hard_stop_px,
            time_stop_ts=intent.constraints.expiry_ts,
            now=self.clock.now(),
        )
        return self._decide(intent, IntentStatus.EXECUTED, None, "risk metadata updated", extra=[updated])

    async def _set_target(self, intent: Intent) -> IntentResult:
        target = intent.target_qty if intent.target_qty is not None else intent.desired_qty
        if target is None or target < 0:
            return self._reject(intent, ReasonCode.INVALID_QTY, "target_qty must be >= 0 for SET_TARGET")
        alloc = self.state.ledger.allocation(intent.symbol, intent.strategy_id)
        held = (
            (alloc.qty if alloc else 0)
            + self.state.working_qty(intent.strategy_id, intent.symbol, "BUY")
            - self.state.working_qty(intent.strategy_id, intent.symbol, "SELL")
        )
        delta = target - held
        if delta == 0:
            return self._decide(intent, IntentStatus.EXECUTED, None, f"already at target {target}")
        if delta > 0:
            return await self._enter(intent, delta, allow_holding=True)
        return await self._sell(replace(intent, intent_type=IntentType.REDUCE, desired_qty=-delta))

    async def _flatten(self, intent: Intent) -> IntentResult:
        sid = intent.strategy_id
        symbols = [intent.symbol] if intent.symbol != "*" else sorted(self.state.ledger.allocations_of(sid))
        order_ids: list[str] = []
        for sym in symbols:
            sub = replace(
                intent,
                intent_id=f"{intent.intent_id}:{sym}",
                symbol=sym,
                intent_type=IntentType.EXIT,
                idempotency_key=f"{intent.idempotency_key}:{sym}",
            )
            async with self.gate.hold(sym, IntentType.EXIT.priority):
                res = await self._sell(sub)
            if res.order_id:
                order_ids.append(res.order_id)
        return self._decide(
            intent,
            IntentStatus.ACCEPTED if order_ids else IntentStatus.EXECUTED,
            None,
            f"flatten: {len(order_ids)} exit order(s)",
            order_id=order_ids[0] if order_ids else None,
        )
