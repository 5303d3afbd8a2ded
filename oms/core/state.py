"""The OMS's in-memory state, rebuilt from stored rows on start."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from broker_core.models import Account
from oms.core.arbitration import EntryLocks
from oms.core.ledger import Ledger
from oms.core.types import (
    IntentRecord,
    OmsStateRecord,
    OrderRecord,
    RiskDailyPortfolioRecord,
    RiskDailyStrategyRecord,
    RiskPayload,
    StrategyStateRecord,
    TradingState,
)


class Recorder(Protocol):
    """Where state changes are written first (the local journal)."""

    def append(self, records: list) -> int: ...


class StateRecorder:
    """The journal as the OMS core sees it: every order row written also updates the state's
    working-order index, so the index can never drift from what was journaled."""

    def __init__(self, journal: Recorder, state: OmsState) -> None:
        self.journal = journal
        self.state = state

    def append(self, records: list) -> int:
        for rec in records:
            if isinstance(rec, OrderRecord):
                self.state.track(rec)
        return self.journal.append(records)


@dataclass
class OmsState:
    instance_id: str
    ledger: Ledger = field(default_factory=Ledger)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    broker_ids: dict[str, str] = field(default_factory=dict)
    seen_executions: set[str] = field(default_factory=set)
    intents_by_key: dict[str, IntentRecord] = field(default_factory=dict)
    flags: OmsStateRecord = field(default_factory=lambda: OmsStateRecord(key="state"))
    strategies: dict[str, StrategyStateRecord] = field(default_factory=dict)
    entry_locks: EntryLocks = field(default_factory=EntryLocks)
    intent_times: dict[str, deque[datetime]] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    account: Account | None = None
    cash_estimate: float | None = None
    trading_day: date | None = None
    daily_portfolio: RiskDailyPortfolioRecord | None = None
    daily_strategy: dict[str, RiskDailyStrategyRecord] = field(default_factory=dict)
    ready: bool = False
    recon_status: str = "OK"
    frozen_symbols: dict[str, str] = field(default_factory=dict)
    working: dict[str, OrderRecord] = field(default_factory=dict)
    """Index of the non-terminal orders (kept by ``track``), so per-intent work never scans the day."""
    working_buy_by_symbol: dict[str, float] = field(default_factory=dict)
    working_buy_by_strategy: dict[str, float] = field(default_factory=dict)
    _by_key: dict[tuple[str, str], dict[str, OrderRecord]] = field(default_factory=dict, repr=False)
    _buy_contrib: dict[str, tuple[str, str, float]] = field(default_factory=dict, repr=False)
    order_meta: dict[str, RiskPayload] = field(default_factory=dict)
    """Risk payload of the intent behind each entry order (initial stop, entry px for R)."""

    def track(self, order: OrderRecord) -> None:
        """Keep the working-order indexes and working-buy totals in step with an order that was
        created or changed (O(1), so per-intent risk work does not grow with the open orders)."""
        oid = order.order_id
        self.orders[oid] = order
        old = self._buy_contrib.pop(oid, None)
        if old is not None:
            self.working_buy_by_symbol[old[0]] -= old[2]
            self.working_buy_by_strategy[old[1]] -= old[2]
        key = (order.strategy_id, order.symbol)
        if order.state.is_terminal:
            self.working.pop(oid, None)
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.pop(oid, None)
                if not bucket:
                    del self._by_key[key]
            return
        self.working[oid] = order
        self._by_key.setdefault(key, {})[oid] = order
        if order.side == "BUY":
            value = order.leaves_qty * (order.limit_price or self.last_prices.get(order.symbol) or 0.0)
            self._buy_contrib[oid] = (order.symbol, order.strategy_id, value)
            self.working_buy_by_symbol[order.symbol] = self.working_buy_by_symbol.get(order.symbol, 0.0) + value
            self.working_buy_by_strategy[order.strategy_id] = (
                self.working_buy_by_strategy.get(order.strategy_id, 0.0) + value
            )

    def working_orders(self, strategy_id: str | None = None, symbol: str | None = None) -> list[OrderRecord]:
        if strategy_id is not None and symbol is not None:
            return list(self._by_key.get((strategy_id, symbol), {}).values())
        return [
            o
            for o in self.working.values()
            if (strategy_id is None or o.strategy_id == strategy_id) and (symbol is None or o.symbol == symbol)
        ]

    def working_qty(self, strategy_id: str, symbol: str, side: str) -> int:
        return sum(o.leaves_qty for o in self.working_orders(strategy_id, symbol) if o.side == side)

    def trading_state(self) -> TradingState:
        if self.flags.halt_new_entries:
            return TradingState.HALTED
        if self.flags.safe_mode:
            return TradingState.REDUCING
        return TradingState.ACTIVE

    def strategy(self, strategy_id: str) -> StrategyStateRecord:
        rec = self.strategies.get(strategy_id)
        if rec is None:
            rec = StrategyStateRecord(strategy_id=strategy_id)
            self.strategies[strategy_id] = rec
        return rec

    def open_order_count(self) -> int:
        return len(self.working)

    def in_flight_orders(self) -> list[OrderRecord]:
        return [o for o in self.working.values() if o.state.in_flight]
