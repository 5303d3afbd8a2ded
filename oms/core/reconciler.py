"""The reconciliation loop: the broker's orders, fills, positions and account against the ledger.

Order of a cycle: adopt open broker orders the OMS does not know (under ``_UNKNOWN_``, see
``adoption.py``), settle in-flight/working orders, apply fills the push stream missed, enforce
timeouts, compare positions (skipped when executions arrive mid-check, so a fill in transit is
not mistaken for drift), refresh the account. A drift is acted on only once it was seen on
``drift_confirmations`` cycles in a row with the same quantities (one that goes away — a fill that
was in transit — starts the count again): unexplained excess then goes to ``_UNKNOWN_`` and the
symbol is frozen for entries until an admin corrects the allocation. Consecutive failed cycles
open the circuit breaker and then switch on safe mode (entries blocked, exits allowed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import BrokerError
from broker_core.models import BrokerOrder
from oms.core.adoption import adopt_orders
from oms.core.circuit import BreakerState, CircuitBreaker
from oms.core.execution import Execution, order_event
from oms.core.ids import new_id
from oms.core.reconcile import AdaptiveInterval, DriftConfirmer, diff_positions, orders_to_sync
from oms.core.state import OmsState, Recorder
from oms.core.types import AuditRecord, ReconRecord, RiskDailyPortfolioRecord

if TYPE_CHECKING:
    from oms.metrics import OmsMetrics

log = logging.getLogger("oms.reconcile")


class Reconciler:
    def __init__(
        self,
        state: OmsState,
        execution: Execution,
        broker: Broker,
        recorder: Recorder,
        clock: Clock,
        breaker: CircuitBreaker,
        metrics: OmsMetrics,
        *,
        min_interval_s: float = 5.0,
        max_interval_s: float = 60.0,
        safe_mode_after: int = 5,
        drift_confirmations: int = 2,
    ) -> None:
        self.state = state
        self.execution = execution
        self.broker = broker
        self.recorder = recorder
        self.clock = clock
        self.breaker = breaker
        self.metrics = metrics
        self.interval = AdaptiveInterval(min_s=min_interval_s, max_s=max_interval_s)
        self.safe_mode_after = safe_mode_after
        self.confirmer = DriftConfirmer(drift_confirmations)
        """Drift is acted on (symbol frozen, excess to ``_UNKNOWN_``) only once seen this many cycles in a row."""
        self._reported_final: set[str] = set()
        self.failed_cycles = 0
        self.cycles = 0
        self.last_cycle_at: datetime | None = None

    def _recon(self, kind: str, **kw: object) -> ReconRecord:
        return ReconRecord(recon_id=new_id("rc"), ts=self.clock.now(), kind=kind, **kw)  # type: ignore[arg-type]

    async def run_cycle(self) -> tuple[bool, bool]:
        """One cycle; returns (drift found, activity seen)."""
        started = time.perf_counter()
        if not self.breaker.allow():
            self.state.recon_status = "FAIL"
            return False, False
        seen_before = len(self.state.seen_executions)
        try:
            at_broker = await self.broker.list_open_orders()
            plan = orders_to_sync(list(self.state.working.values()), at_broker, self.clock.now())
            self._adopt(plan.unknown_at_broker)
            for order, snapshot in plan.snapshots:
                self.execution.apply_snapshot(order, snapshot)
            for order in plan.lookup:
                await self.execution.resolve(order)
            for fill in await self.broker.list_fills():
                self.execution.apply_fill(fill)
            await self.execution.enforce_timeouts(self.clock.now())
            await self.execution.check_held()
            mark = len(self.state.seen_executions)
            broker_positions = await self.broker.get_positions()
            for fill in await self.broker.list_fills():
                self.execution.apply_fill(fill)
            drift = False
            if len(self.state.seen_executions) == mark:
                drift = self._compare_positions({p.symbol: (p.qty, p.avg_price) for p in broker_positions})
            account = await self.broker.get_account()
        except BrokerError as exc:
            self._failed(exc)
            return False, False
        self.breaker.record_success(resets_count=False)
        self.failed_cycles = 0
        self._account(account)
        self.state.recon_status = "WARN" if (drift or self.state.frozen_symbols) else "OK"
        elapsed = time.perf_counter() - started
        self.metrics.recon_duration.observe(elapsed)
        self.cycles += 1
        self.last_cycle_at = self.clock.now()
        return drift, len(self.state.seen_executions) != seen_before

    def _failed(self, exc: BrokerError) -> None:
        self.breaker.record_failure(order_call=False)
        self.failed_cycles += 1
        self.state.recon_status = "FAIL"
        self.metrics.recon_failures.inc()
        log.warning(
            "reconciliation failed (%d in a row) reason=RECON_FAILED code=%s: %s",
            self.failed_cycles,
            exc.code,
            exc.message,
        )
        rows: list = [self._recon(ReasonCode.CYCLE_FAILED, detail=f"{exc.code}: {exc.message}")]
        if self.failed_cycles >= self.safe_mode_after and not self.state.flags.safe_mode:
            self.state.flags.safe_mode = True
            self.state.flags.updated_at = self.clock.now()
            log.error("safe mode ON reason=RECON_FAILURES after %d failed cycles", self.failed_cycles)
            rows += [
                self.state.flags,
                AuditRecord(
                    audit_id=new_id("au"),
                    ts=self.clock.now(),
                    actor="system",
                    action="safe_mode_on",
                    target=None,
                    payload={"reason": ReasonCode.RECON_FAILURES, "failed_cycles": self.failed_cycles},
                ),
            ]
        self.recorder.append(rows)

    def _adopt(self, unknown: list[BrokerOrder]) -> None:
        """Open broker orders no open OMS order owns (see ``oms.core.adoption``)."""
        if not unknown:
            return
        adopted, rows = adopt_orders(self.state, unknown, self.clock.now(), self._reported_final)
        if rows:
            self.recorder.append(rows)
        for order in adopted:
            self.execution.bus.publish_strategy(order.strategy_id, order_event(order))

    def _compare_positions(self, broker: dict[str, tuple[int, float]]) -> bool:
        ledger = {sym: p.real_qty for sym, p in self.state.ledger.positions().items()}
        drifts = diff_positions({s: q for s, (q, _) in broker.items()}, ledger)
        confirmed = self.confirmer.update(drifts)
        for d in drifts:
            if d not in confirmed:
                log.warning(
                    "position drift %s kind=%s broker=%d ledger=%d seen %d/%d cycles in a row; not acted on yet "
                    "reason=DRIFT_UNCONFIRMED",
                    d.symbol,
                    d.kind,
                    d.broker_qty,
                    d.ledger_qty,
                    self.confirmer.sightings(d.symbol),
                    self.confirmer.confirmations,
                )
        rows: list = []
        now = self.clock.now()
        for d in confirmed:
            self.metrics.recon_drift.labels(d.kind).inc()
            diff = d.broker_qty - d.ledger_qty
            log.warning(
                "position drift %s kind=%s broker=%d ledger=%d reason=RECON_DRIFT",
                d.symbol,
                d.kind,
                d.broker_qty,
                d.ledger_qty,
            )
            if diff > 0:
                change = self.state.ledger.assign_unknown(d.symbol, diff, broker.get(d.symbol, (0, 0.0))[1], now)
                rows += [change.position, change.allocation]
            else:
                rows += list(self.state.ledger.remove_deficit(d.symbol, -diff, now))
            reason = f"RECON_{d.kind}"
            self.state.frozen_symbols[d.symbol] = reason
            rows.append(self.state.ledger.set_frozen(d.symbol, True, reason, now))
            rows.append(
                self._recon(
                    f"POSITION_{d.kind}",
                    symbol=d.symbol,
                    broker_qty=d.broker_qty,
                    ledger_qty=d.ledger_qty,
                    detail=f"{diff:+d} shares unexplained; symbol frozen for entries",
                )
            )
        if rows:
            self.recorder.append(rows)
        return bool(drifts)

    def _account(self, account: object) -> None:
        from broker_core.models import Account

        assert isinstance(account, Account)
        self.state.account = account
        self.state.cash_estimate = account.cash
        # the trading day changes only at the rollover (oms/core/rollover.py), not at any calendar midnight
        day = str(self.state.trading_day or self.clock.now().date())
        daily = self.state.daily_portfolio
        if daily is None or daily.trading_day != day:
            self.state.daily_portfolio = RiskDailyPortfolioRecord(
                trading_day=day, start_equity=account.equity, min_equity=account.equity, updated_at=self.clock.now()
            )
            self.recorder.append([self.state.daily_portfolio])
        elif daily.min_equity is None or account.equity < daily.min_equity:
            daily.min_equity = account.equity
            daily.updated_at = self.clock.now()
            self.recorder.append([daily])

    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    async def run(self, beat: Callable[[], None] | None = None) -> None:
        """Cycle for the life of the OMS; ``beat`` after each cycle (liveness for the loop supervisor)."""
        while True:
            drift, activity = await self.run_cycle()
            self.metrics.breaker.set({"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}[self.breaker.state.value])
            if beat is not None:
                beat()
            await self.clock.sleep(self.interval.next_interval(had_drift=drift, had_activity=activity))
