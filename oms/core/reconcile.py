"""Reconciliation helpers — pure diffing and scheduling; the OMS does the I/O.

- :func:`diff_positions` compares broker and ledger quantities per symbol.
- :class:`DriftConfirmer` reports a drift only once it has been seen on consecutive cycles with
  the same quantities (a fill that the broker shows before its execution notice is processed is
  transient drift, gone on the next cycle).
- :class:`AdaptiveInterval` picks the next cycle's delay: drift → ``min_s`` at once, activity →
  shorter, quiet → longer, always within [min_s, max_s].
- :func:`orders_to_sync` splits the OMS's open orders into: those the broker's open-order list
  answers (snapshots to apply), those that need a lookup by client order id, those whose
  ``cancel_after_ts`` has passed, and broker orders the OMS does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from broker_core.models import BrokerOrder
from oms.core.ids import new_id
from oms.core.types import OrderRecord, OrderState, ReconRecord


class DriftKind(StrEnum):
    EXCESS = "EXCESS"
    """The broker holds more than the ledger."""
    DEFICIT = "DEFICIT"
    """The broker holds less than the ledger."""


@dataclass(frozen=True, slots=True)
class PositionDrift:
    symbol: str
    broker_qty: int
    ledger_qty: int
    kind: DriftKind

    @property
    def diff(self) -> int:
        """broker − ledger (positive for EXCESS)."""
        return self.broker_qty - self.ledger_qty

    @property
    def qty(self) -> int:
        """Size of the drift, always positive."""
        return abs(self.diff)


def diff_positions(broker: Mapping[str, int], ledger: Mapping[str, int]) -> list[PositionDrift]:
    """Every symbol whose quantities differ, sorted by symbol (a missing symbol counts as 0)."""
    out = []
    for symbol in sorted(set(broker) | set(ledger)):
        b, lq = int(broker.get(symbol, 0)), int(ledger.get(symbol, 0))
        if b != lq:
            out.append(PositionDrift(symbol, b, lq, DriftKind.EXCESS if b > lq else DriftKind.DEFICIT))
    return out


def drift_records(drifts: Iterable[PositionDrift], now: datetime, detail: str | None = None) -> list[ReconRecord]:
    """``recon_log`` rows (kind POSITION_EXCESS / POSITION_DEFICIT) for drifts."""
    return [
        ReconRecord(
            recon_id=new_id("rc"),
            ts=now,
            kind=f"POSITION_{d.kind}",
            symbol=d.symbol,
            broker_qty=d.broker_qty,
            ledger_qty=d.ledger_qty,
            detail=detail,
        )
        for d in drifts
    ]


class DriftConfirmer:
    """Confirms a drift after it was seen ``confirmations`` cycles in a row with the same
    broker and ledger quantities. ``confirmations=1`` confirms at once."""

    def __init__(self, confirmations: int = 2) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be >= 1")
        self.confirmations = confirmations
        self._seen: dict[str, tuple[PositionDrift, int]] = {}

    def update(self, drifts: Iterable[PositionDrift]) -> list[PositionDrift]:
        seen: dict[str, tuple[PositionDrift, int]] = {}
        confirmed = []
        for d in drifts:
            prev = self._seen.get(d.symbol)
            count = prev[1] + 1 if prev and prev[0] == d else 1
            seen[d.symbol] = (d, count)
            if count >= self.confirmations:
                confirmed.append(d)
        self._seen = seen
        return confirmed

    def sightings(self, symbol: str) -> int:
        """How many cycles in a row the symbol's current drift has been seen (0: none pending)."""
        seen = self._seen.get(symbol)
        return seen[1] if seen else 0

    def forget(self, symbol: str) -> None:
        self._seen.pop(symbol, None)


class AdaptiveInterval:
    """Next reconciliation delay in seconds.

    - drift → ``min_s`` (look again soon);
    - activity (orders/fills since the last cycle) → current × ``shrink`` (≥ min_s);
    - quiet → current × ``grow`` (≤ max_s).
    Starts at ``initial_s`` (default ``min_s``).
    """

    def __init__(
        self,
        min_s: float = 5.0,
        max_s: float = 60.0,
        shrink: float = 0.5,
        grow: float = 2.0,
        initial_s: float | None = None,
    ) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
        if not 0 < shrink <= 1 or grow < 1:
            raise ValueError("need 0 < shrink <= 1 and grow >= 1")
        self.min_s, self.max_s, self.shrink, self.grow = min_s, max_s, shrink, grow
        self.current = min(max(initial_s if initial_s is not None else min_s, min_s), max_s)

    def next_interval(self, had_drift: bool, had_activity: bool) -> float:
        if had_drift:
            self.current = self.min_s
        elif had_activity:
            self.current = max(self.min_s, self.current * self.shrink)
        else:
            self.current = min(self.max_s, self.current * self.grow)
        return self.current

    def reset(self) -> None:
        self.current = self.min_s


@dataclass(slots=True)
class OrderSyncPlan:
    snapshots: list[tuple[OrderRecord, BrokerOrder]] = field(default_factory=list)
    """OMS orders found in the broker's open-order list, with the broker's view."""
    lookup: list[OrderRecord] = field(default_factory=list)
    """Non-terminal OMS orders (in flight or working) absent from the list: look each up by
    client order id (it filled, was cancelled, or the submit never arrived)."""
    timed_out: list[OrderRecord] = field(default_factory=list)
    """Working or held orders whose ``cancel_after_ts <= now``: cancel them."""
    unknown_at_broker: list[BrokerOrder] = field(default_factory=list)
    """Open broker orders whose client order id is not an open OMS order."""


_TIMEOUT_STATES = frozenset({OrderState.HELD, OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED})


def orders_to_sync(
    open_oms_orders: Iterable[OrderRecord],
    broker_orders: Iterable[BrokerOrder] | Mapping[str, BrokerOrder],
    now: datetime,
) -> OrderSyncPlan:
    """Plan the order part of a reconciliation cycle.

    ``broker_orders`` is the broker's open-order list (or client order id → order). HELD orders
    live only in the OMS: never looked up, but they can time out. PENDING_SUBMIT orders never
    time out here (their outcome must be known before a cancel); PENDING_CANCEL orders already
    have a cancel in flight. Terminal OMS orders passed in are ignored.
    """
    by_id: dict[str, BrokerOrder] = (
        dict(broker_orders) if isinstance(broker_orders, Mapping) else {b.client_order_id: b for b in broker_orders}
    )
    plan = OrderSyncPlan()
    known: set[str] = set()
    for order in open_oms_orders:
        if order.state.is_terminal:
            continue
        known.add(order.order_id)
        if order.state in _TIMEOUT_STATES and order.cancel_after_ts is not None and order.cancel_after_ts <= now:
            plan.timed_out.append(order)
        if order.state is OrderState.HELD:
            continue
        broker = by_id.get(order.order_id)
        if broker is not None:
            plan.snapshots.append((order, broker))
        else:
            plan.lookup.append(order)
    plan.unknown_at_broker = [b for cid, b in by_id.items() if cid not in known]
    return plan
