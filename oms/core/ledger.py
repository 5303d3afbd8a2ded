"""The ledger: real positions, per-strategy virtual allocations, realized P&L and trades.

Model
-----
- One **allocation** per (symbol, strategy): open qty, ``cost_basis`` = VWAP of the buys that
  are still open (fees are not capitalised), entry time and risk metadata (declared entry,
  initial/soft/hard stop, time stop).
- One **real position** per symbol: ``real_qty`` = Σ allocations (the invariant checked by
  :meth:`Ledger.check_invariants`), ``avg_price`` = qty-weighted average of the allocations'
  cost bases.
- **Realized P&L** per strategy and per (trading day, strategy). The trading day of a fill is
  the date of ``fill.ts`` in the ledger's time zone (KST by default). Fees (commission + tax)
  are realized when paid: a buy's fees reduce realized P&L at the buy; a sell realizes
  ``(price − cost_basis)·qty − fees``.
- **Trades**: every sell emits a :class:`TradeRecord` for the qty it closed, with the
  allocation's entry info (entry_ts, entry_px = cost basis). A round trip closed in one sell is
  one trade; partial exits are one trade each, and Σ of their qty is the round trip. Trade
  ``pnl`` is net of the sell's fees and of the *proportional share of the entry fees* of the
  shares closed (kept in memory only: after a restart the share of pre-restart entry fees is
  not re-attributed to trades; realized P&L is unaffected). ``r_multiple`` =
  ``(exit_px − entry_px) / (entry_px − initial_stop_px)`` when the initial stop is known and
  below the entry, else None.
- A sell larger than the strategy's allocation raises :class:`AllocationShortfall` and changes
  nothing — the ledger never goes negative silently.
- Flat allocations (qty 0) are removed from memory; the change that flattened them returns the
  qty-0 record so the store can upsert it. Flat positions are removed unless frozen.

Reconciliation helpers (policies)
---------------------------------
- :meth:`Ledger.assign_unknown` books broker excess under ``_UNKNOWN_`` at the given price.
- :meth:`Ledger.remove_deficit` (broker has fewer shares than the ledger) takes shares from
  ``_UNKNOWN_`` first; whatever remains is *not* taken from any strategy automatically: it is
  returned as ``unresolved`` so the caller freezes the symbol and an admin decides.
- :meth:`Ledger.correct_allocation` moves qty between strategies at the source's cost basis
  (position unchanged), or — with ``to_strategy=None`` — writes shares off the ledger, which is
  allowed only when the caller passes the broker's qty and the write-off makes the ledger's
  real qty equal to it. A write-off realizes no P&L (there is no price; it is not a trade).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from broker_core.clock import KST
from oms.core.ids import new_id
from oms.core.types import UNKNOWN_STRATEGY, AllocationRecord, FillRecord, PositionRecord, TradeRecord


class LedgerError(ValueError):
    """A change the ledger refuses; the ledger is unchanged."""


class AllocationShortfall(LedgerError):
    """A sell (or move) larger than the strategy's allocation."""


@dataclass(frozen=True, slots=True)
class LedgerChange:
    position: PositionRecord
    allocation: AllocationRecord
    realized_pnl: float
    trade: TradeRecord | None = None


@dataclass(frozen=True, slots=True)
class DeficitResult:
    position: PositionRecord | None
    """The position after the change; None when nothing changed (no ``_UNKNOWN_`` shares)."""
    allocations: list[AllocationRecord] = field(default_factory=list)
    removed: int = 0
    """Shares taken off ``_UNKNOWN_``."""
    unresolved: int = 0
    """Shares the broker lacks that belong to strategies (needs an admin decision)."""

    def records(self) -> list[PositionRecord | AllocationRecord]:
        """The rows to persist: the position (if any) and the changed allocations."""
        return ([self.position] if self.position is not None else []) + list(self.allocations)

    def __iter__(self):  # so ``rows += list(result)`` works
        return iter(self.records())


_BUY = "BUY"
_SELL = "SELL"


def _side(side: str) -> str:
    s = str(side).upper()
    if s not in (_BUY, _SELL):
        raise LedgerError(f"unknown side {side!r}")
    return s


class Ledger:
    def __init__(self, tz: ZoneInfo = KST) -> None:
        self._tz = tz
        self._reset()

    def _reset(self) -> None:
        self._positions: dict[str, PositionRecord] = {}
        self._allocs: dict[str, dict[str, AllocationRecord]] = {}
        self._pending_meta: dict[tuple[str, str], dict[str, object]] = {}
        self._entry_fees: dict[tuple[str, str], float] = {}
        self._realized: dict[str, float] = defaultdict(float)
        self._realized_day: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    # -- queries ---------------------------------------------------------------------------
    def trading_day_of(self, ts: datetime) -> date:
        return ts.astimezone(self._tz).date()

    def allocation(self, symbol: str, strategy_id: str) -> AllocationRecord | None:
        a = self._allocs.get(symbol, {}).get(strategy_id)
        return replace(a) if a else None

    def allocations_of(self, strategy_id: str) -> dict[str, AllocationRecord]:
        return {sym: replace(by[strategy_id]) for sym, by in sorted(self._allocs.items()) if strategy_id in by}

    def allocations_in(self, symbol: str) -> dict[str, AllocationRecord]:
        return {sid: replace(a) for sid, a in sorted(self._allocs.get(symbol, {}).items())}

    def holders(self, symbol: str) -> set[str]:
        return set(self._allocs.get(symbol, {}))

    def position(self, symbol: str) -> PositionRecord | None:
        p = self._positions.get(symbol)
        return replace(p) if p else None

    def positions(self) -> dict[str, PositionRecord]:
        return {s: replace(p) for s, p in sorted(self._positions.items())}

    def real_qty(self) -> dict[str, int]:
        """symbol → real qty (nonzero only), e.g. for reconciliation."""
        return {s: p.real_qty for s, p in sorted(self._positions.items()) if p.real_qty != 0}

    def realized_pnl(self, strategy_id: str | None = None, trading_day: date | None = None) -> float:
        """Realized P&L (net of fees) of one strategy or all; of one trading day or since load."""
        book = self._realized if trading_day is None else self._realized_day.get(trading_day, {})
        if strategy_id is None:
            return sum(book.values())
        return book.get(strategy_id, 0.0)

    def daily_realized(self, trading_day: date) -> dict[str, float]:
        return dict(self._realized_day.get(trading_day, {}))

    def strategy_notional(self, prices: dict[str, float] | None = None) -> dict[str, float]:
        """strategy → Σ qty · (price from ``prices``, else cost basis)."""
        out: dict[str, float] = defaultdict(float)
        for sym, by in self._allocs.items():
            for sid, a in by.items():
                px = (prices or {}).get(sym, a.cost_basis)
                out[sid] += a.qty * px
        return dict(out)

    # -- internals -------------------------------------------------------------------------
    def _refresh_position(self, symbol: str, now: datetime) -> PositionRecord:
        allocs = self._allocs.get(symbol, {})
        qty = sum(a.qty for a in allocs.values())
        avg = sum(a.qty * a.cost_basis for a in allocs.values()) / qty if qty else 0.0
        pos = self._positions.get(symbol)
        if pos is None:
            pos = PositionRecord(symbol=symbol, real_qty=qty, avg_price=avg, updated_at=now)
        else:
            pos.real_qty, pos.avg_price, pos.updated_at = qty, avg, now
        if qty == 0 and not pos.frozen:
            self._positions.pop(symbol, None)
        else:
            self._positions[symbol] = pos
        return replace(pos)

    def _store_alloc(self, a: AllocationRecord) -> None:
        by = self._allocs.setdefault(a.symbol, {})
        if a.qty == 0:
            by.pop(a.strategy_id, None)
            self._entry_fees.pop((a.symbol, a.strategy_id), None)
            if not by:
                del self._allocs[a.symbol]
        else:
            by[a.strategy_id] = a

    def _add(
        self, symbol: str, strategy_id: str, qty: int, price: float, now: datetime, entry_ts: datetime | None
    ) -> AllocationRecord:
        a = self._allocs.get(symbol, {}).get(strategy_id)
        if a is None:
            a = AllocationRecord(
                symbol=symbol, strategy_id=strategy_id, qty=0, cost_basis=0.0, updated_at=now, entry_ts=entry_ts
            )
            for k, v in self._pending_meta.pop((symbol, strategy_id), {}).items():
                setattr(a, k, v)
        total = a.qty + qty
        a.cost_basis = (a.cost_basis * a.qty + price * qty) / total
        a.qty = total
        a.updated_at = now
        if a.entry_ts is None:
            a.entry_ts = entry_ts
        self._store_alloc(a)
        return a

    def _book(self, strategy_id: str, day: date, pnl: float) -> None:
        self._realized[strategy_id] += pnl
        self._realized_day[day][strategy_id] += pnl

    # -- fills -----------------------------------------------------------------------------
    def apply_fill(self, fill: FillRecord, now: datetime, exit_reason: str | None = None) -> LedgerChange:
        side = _side(fill.side)
        if not isinstance(fill.qty, int) or fill.qty < 1:
            raise LedgerError(f"fill {fill.execution_id}: qty must be a positive int, got {fill.qty!r}")
        if not fill.price > 0:
            raise LedgerError(f"fill {fill.execution_id}: price must be > 0, got {fill.price!r}")
        sym, sid = fill.symbol, fill.strategy_id
        fees = float(fill.commission) + float(fill.tax)
        day = self.trading_day_of(fill.ts)
        key = (sym, sid)

        if side == _BUY:
            bought = self._add(sym, sid, fill.qty, fill.price, now, fill.ts)
            self._entry_fees[key] = self._entry_fees.get(key, 0.0) + fees
            self._book(sid, day, -fees)
            return LedgerChange(self._refresh_position(sym, now), replace(bought), -fees, None)

        a = self._allocs.get(sym, {}).get(sid)
        held = a.qty if a else 0
        if fill.qty > held:
            raise AllocationShortfall(
                f"fill {fill.execution_id}: {sid} sells {fill.qty} {sym} but its allocation is {held}"
                + (f" (others hold: {self.allocations_in_qty(sym)})" if sym in self._allocs else "")
            )
        assert a is not None
        entry_fees = self._entry_fees.get(key, 0.0)
        fee_share = entry_fees * fill.qty / a.qty
        self._entry_fees[key] = entry_fees - fee_share
        pnl = (fill.price - a.cost_basis) * fill.qty - fees
        r_multiple = None
        if a.initial_stop_px is not None and a.cost_basis - a.initial_stop_px > 0:
            r_multiple = (fill.price - a.cost_basis) / (a.cost_basis - a.initial_stop_px)
        trade = TradeRecord(
            trade_id=new_id("tr"),
            strategy_id=sid,
            symbol=sym,
            qty=fill.qty,
            entry_ts=a.entry_ts,
            exit_ts=fill.ts,
            entry_px=a.cost_basis,
            exit_px=fill.price,
            pnl=pnl - fee_share,
            exit_reason=exit_reason,
            r_multiple=r_multiple,
        )
        a.qty -= fill.qty
        a.updated_at = now
        snapshot = replace(a)
        self._store_alloc(a)
        self._book(sid, day, pnl)
        return LedgerChange(self._refresh_position(sym, now), snapshot, pnl, trade)

    def allocations_in_qty(self, symbol: str) -> dict[str, int]:
        return {sid: a.qty for sid, a in sorted(self._allocs.get(symbol, {}).items())}

    # -- risk metadata ---------------------------------------------------------------------
    def set_risk_meta(
        self,
        symbol: str,
        strategy_id: str,
        entry_px: float | None = None,
        initial_stop_px: float | None = None,
        soft_stop_px: float | None = None,
        hard_stop_px: float | None = None,
        time_stop_ts: datetime | None = None,
        *,
        now: datetime,
    ) -> AllocationRecord | None:
        """Update the risk metadata of an allocation; None arguments leave a field unchanged.

        Before the first buy fill (an ENTER's risk payload) the metadata is kept pending and
        applied when the allocation opens; the return value is then None.
        """
        updates = {
            k: v
            for k, v in (
                ("entry_px", entry_px),
                ("initial_stop_px", initial_stop_px),
                ("soft_stop_px", soft_stop_px),
                ("hard_stop_px", hard_stop_px),
                ("time_stop_ts", time_stop_ts),
            )
            if v is not None
        }
        a = self._allocs.get(symbol, {}).get(strategy_id)
        if a is None:
            self._pending_meta.setdefault((symbol, strategy_id), {}).update(updates)
            return None
        for k, v in updates.items():
            setattr(a, k, v)
        a.updated_at = now
        return replace(a)

    def clear_pending_meta(self, symbol: str, strategy_id: str) -> None:
        """Forget metadata waiting for a first fill (e.g. the entry order was cancelled unfilled)."""
        self._pending_meta.pop((symbol, strategy_id), None)

    # -- freezing --------------------------------------------------------------------------
    def set_frozen(self, symbol: str, frozen: bool, reason: str | None, now: datetime) -> PositionRecord:
        """Mark a symbol frozen (kept even when flat) or unfrozen."""
        pos = self._positions.get(symbol)
        if pos is None:
            pos = PositionRecord(symbol=symbol, real_qty=0, avg_price=0.0, updated_at=now)
            self._positions[symbol] = pos
        pos.frozen, pos.freeze_reason, pos.updated_at = frozen, (reason if frozen else None), now
        out = replace(pos)
        if not frozen and pos.real_qty == 0:
            del self._positions[symbol]
        return out

    # -- reconciliation --------------------------------------------------------------------
    def assign_unknown(self, symbol: str, qty: int, price: float, now: datetime) -> LedgerChange:
        """Book ``qty`` broker shares the ledger does not know under ``_UNKNOWN_`` at ``price``."""
        if qty < 1:
            raise LedgerError(f"assign_unknown: qty must be >= 1, got {qty}")
        if not price >= 0:
            raise LedgerError(f"assign_unknown: price must be >= 0, got {price}")
        a = self._add(symbol, UNKNOWN_STRATEGY, qty, price, now, now)
        return LedgerChange(self._refresh_position(symbol, now), replace(a), 0.0, None)

    def remove_deficit(self, symbol: str, qty: int, now: datetime) -> DeficitResult:
        """The broker holds ``qty`` fewer shares than the ledger: take them off ``_UNKNOWN_``
        first; the rest is reported as ``unresolved`` (strategies' allocations are untouched)."""
        if qty < 1:
            raise LedgerError(f"remove_deficit: qty must be >= 1, got {qty}")
        a = self._allocs.get(symbol, {}).get(UNKNOWN_STRATEGY)
        take = min(qty, a.qty) if a else 0
        if take == 0:
            return DeficitResult(None, [], 0, qty)
        assert a is not None
        a.qty -= take
        a.updated_at = now
        snapshot = replace(a)
        self._store_alloc(a)
        return DeficitResult(self._refresh_position(symbol, now), [snapshot], take, qty - take)

    def correct_allocation(
        self,
        symbol: str,
        from_strategy: str,
        to_strategy: str | None,
        qty: int,
        now: datetime,
        *,
        broker_qty: int | None = None,
    ) -> list[AllocationRecord]:
        """Move ``qty`` shares of ``symbol`` from one strategy to another, or write them off.

        - ``to_strategy`` given: the shares move at the source's cost basis (the target's cost
          basis becomes the VWAP of both); the real position is unchanged. Returns
          [source, target] records (the source may have qty 0 = closed).
        - ``to_strategy`` None: the shares leave the ledger. Allowed only when ``broker_qty`` is
          given and ``real_qty − qty == broker_qty``; returns [source].
        Raises :class:`AllocationShortfall` / :class:`LedgerError`; nothing changes on error.
        """
        if qty < 1:
            raise LedgerError(f"correct_allocation: qty must be >= 1, got {qty}")
        if to_strategy == from_strategy:
            raise LedgerError("correct_allocation: from and to strategy are the same")
        src = self._allocs.get(symbol, {}).get(from_strategy)
        held = src.qty if src else 0
        if qty > held:
            raise AllocationShortfall(f"correct_allocation: {from_strategy} holds {held} {symbol}, cannot move {qty}")
        assert src is not None
        if to_strategy is None:
            real = sum(x.qty for x in self._allocs[symbol].values())
            if broker_qty is None:
                raise LedgerError(
                    "correct_allocation: writing shares off (to_strategy=None) needs "
                    "broker_qty to confirm the broker position"
                )
            if real - qty != broker_qty:
                raise LedgerError(
                    f"correct_allocation: ledger {real} − {qty} = {real - qty} "
                    f"≠ broker {broker_qty} {symbol}; refusing to write off"
                )
        price, entry_ts = src.cost_basis, src.entry_ts
        src.qty -= qty
        src.updated_at = now
        if src.qty == 0:
            fees = self._entry_fees.pop((symbol, from_strategy), 0.0)
        else:
            fees = 0.0
        out = [replace(src)]
        self._store_alloc(src)
        if to_strategy is not None:
            dst = self._add(symbol, to_strategy, qty, price, now, entry_ts)
            if fees:
                key = (symbol, to_strategy)
                self._entry_fees[key] = self._entry_fees.get(key, 0.0) + fees
            out.append(replace(dst))
        self._refresh_position(symbol, now)
        return out

    # -- invariants and persistence --------------------------------------------------------
    def check_invariants(self) -> list[str]:
        """Problems found (empty = consistent): per symbol Σ allocations == real qty, every
        allocation qty > 0 and keyed consistently."""
        problems: list[str] = []
        for sym in sorted(set(self._positions) | set(self._allocs)):
            allocs = self._allocs.get(sym, {})
            total = sum(a.qty for a in allocs.values())
            pos = self._positions.get(sym)
            real = pos.real_qty if pos else 0
            if total != real:
                problems.append(
                    f"{sym}: allocations sum to {total} but real qty is {real} "
                    f"({ {s: a.qty for s, a in sorted(allocs.items())} })"
                )
            for sid, a in allocs.items():
                if a.qty <= 0:
                    problems.append(f"{sym}/{sid}: allocation qty {a.qty} is not positive")
                if a.symbol != sym or a.strategy_id != sid:
                    problems.append(f"{sym}/{sid}: record keyed as {a.symbol}/{a.strategy_id}")
        return problems

    def records(self) -> list[PositionRecord | AllocationRecord]:
        """Copies of every current position, then every allocation (for persistence)."""
        out: list[PositionRecord | AllocationRecord] = [replace(p) for _, p in sorted(self._positions.items())]
        for sym in sorted(self._allocs):
            out.extend(replace(a) for _, a in sorted(self._allocs[sym].items()))
        return out

    def load(
        self,
        positions: Iterable[PositionRecord],
        allocations: Iterable[AllocationRecord],
        *,
        realized: dict[str, float] | None = None,
        trading_day: date | None = None,
    ) -> list[str]:
        """Replace the state with stored rows (flat allocations and flat unfrozen positions are
        dropped). ``realized`` (strategy → P&L of ``trading_day``) restores today's realized
        P&L. Returns :meth:`check_invariants` — rows are taken as stored, never "fixed"."""
        self._reset()
        for p in positions:
            if p.real_qty != 0 or p.frozen:
                self._positions[p.symbol] = replace(p)
        for a in allocations:
            if a.qty != 0:
                self._allocs.setdefault(a.symbol, {})[a.strategy_id] = replace(a)
        if realized:
            for sid, pnl in realized.items():
                self._realized[sid] += pnl
                if trading_day is not None:
                    self._realized_day[trading_day][sid] += pnl
        return self.check_invariants()
