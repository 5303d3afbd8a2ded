"""Arbitration between strategies: entry locks and per-symbol serialisation.

- :class:`EntryLocks` — the first strategy to ENTER a symbol takes a time-limited lock; other
  strategies' entries on that symbol are deferred until it expires (strategies.md C5).
- :func:`check_entry` — the arbitration step for an ENTER: a strategy already holding the
  symbol may not enter it again; another strategy's live lock defers the entry.
- :class:`SymbolGate` — asyncio serialisation of work on one symbol with priority (exits before
  entries), FIFO within a priority; different symbols never block each other.

Pure Python; :class:`SymbolGate` needs a running asyncio loop, everything else is synchronous.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker_core.contract.reasons import ReasonCode


@dataclass(frozen=True, slots=True)
class LockResult:
    granted: bool
    owner: str
    until: datetime


class EntryLocks:
    """Per-symbol entry locks with expiry.

    - A free symbol (no lock, or the lock expired: ``until <= now``) is granted.
    - The owner re-acquiring keeps the lock and extends it to ``max(until, now + duration)``
      (never shortens it).
    - Another strategy within the window is refused with the owner and ``until``.
    Expired locks are purged lazily.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[str, datetime]] = {}

    def acquire(self, symbol: str, strategy_id: str, now: datetime, duration_s: float) -> LockResult:
        if duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s}")
        current = self.owner(symbol, now)
        wanted = now + timedelta(seconds=duration_s)
        if current is None:
            self._locks[symbol] = (strategy_id, wanted)
            return LockResult(True, strategy_id, wanted)
        owner, until = current
        if owner != strategy_id:
            return LockResult(False, owner, until)
        until = max(until, wanted)
        self._locks[symbol] = (owner, until)
        return LockResult(True, owner, until)

    def owner(self, symbol: str, now: datetime) -> tuple[str, datetime] | None:
        """The live lock on ``symbol`` as (owner, until), or None when free."""
        lock = self._locks.get(symbol)
        if lock is None:
            return None
        if lock[1] <= now:
            del self._locks[symbol]
            return None
        return lock

    def release(self, symbol: str, strategy_id: str) -> bool:
        """Release the lock if ``strategy_id`` holds it; True when something was released."""
        lock = self._locks.get(symbol)
        if lock is None or lock[0] != strategy_id:
            return False
        del self._locks[symbol]
        return True

    def purge(self, now: datetime) -> int:
        """Drop expired locks; returns how many were dropped."""
        expired = [s for s, (_, until) in self._locks.items() if until <= now]
        for s in expired:
            del self._locks[s]
        return len(expired)

    def snapshot(self, now: datetime) -> dict[str, tuple[str, datetime]]:
        """All live locks: symbol → (owner, until)."""
        self.purge(now)
        return dict(self._locks)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """Outcome of :func:`check_entry`. ``reason_code`` is None when the entry may proceed."""

    allowed: bool
    reason_code: str | None = None
    message: str = ""
    retry_at: datetime | None = None
    lock: LockResult | None = None


def check_entry(
    symbol: str, strategy_id: str, holders: Iterable[str], locks: EntryLocks, now: datetime, duration_s: float
) -> EntryCheck:
    """Arbitration for an ENTER, in this order:

    1. ``strategy_id`` already holds ``symbol`` (is in ``holders``) → refused, ALREADY_HOLDING
       (a strategy may not re-enter a name it holds; C5).
    2. Another strategy's live entry lock → refused with ENTRY_LOCKED and ``retry_at`` = lock
       expiry (the caller replies DEFERRED with ``cooldown_until``).
    3. Otherwise the lock is acquired (or extended) for ``duration_s`` and the entry proceeds.
    """
    if strategy_id in set(holders):
        return EntryCheck(False, ReasonCode.ALREADY_HOLDING, f"{strategy_id} already holds {symbol}")
    result = locks.acquire(symbol, strategy_id, now, duration_s)
    if not result.granted:
        return EntryCheck(
            False,
            ReasonCode.ENTRY_LOCKED,
            f"{symbol} entry-locked by {result.owner} until {result.until.isoformat()}",
            retry_at=result.until,
            lock=result,
        )
    return EntryCheck(True, lock=result)


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


@dataclass
class _SymbolState:
    held: bool = False
    waiters: list[_Waiter] = field(default_factory=list)


class SymbolGate:
    """One holder per symbol at a time; waiters are served lowest priority number first, FIFO
    within a priority (see ``IntentType.priority``: exits 0 … entries 3).

    Release hands the symbol directly to the next waiter, so a newcomer can never barge in
    ahead of a queued waiter of the same or better priority. Cancellation while waiting removes
    the waiter; a waiter cancelled just after being handed the symbol passes it on. Per-symbol
    state is deleted when nobody holds or waits, so the gate does not grow with the universe.
    Not re-entrant: holding a symbol and waiting on it again in the same task deadlocks.
    """

    def __init__(self) -> None:
        self._states: dict[str, _SymbolState] = {}
        self._seq = itertools.count()

    @asynccontextmanager
    async def hold(self, symbol: str, priority: int = 2) -> AsyncIterator[None]:
        await self._acquire(symbol, priority)
        try:
            yield
        finally:
            self._release(symbol)

    async def _acquire(self, symbol: str, priority: int) -> None:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _SymbolState()
        if not state.held and not state.waiters:
            state.held = True
            return
        waiter = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(state.waiters, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Handed the symbol, but cancelled before running: pass it on.
                self._release(symbol)
            else:
                if waiter in state.waiters:  # a release may already have skipped and dropped it
                    state.waiters.remove(waiter)
                    heapq.heapify(state.waiters)
                self._cleanup(symbol, state)
            raise

    def _release(self, symbol: str) -> None:
        state = self._states.get(symbol)
        if state is None or not state.held:
            raise RuntimeError(f"SymbolGate: release of {symbol!r} which is not held")
        while state.waiters:
            waiter = heapq.heappop(state.waiters)
            if not waiter.future.done():
                waiter.future.set_result(None)  # ownership handed over; stays held
                return
        state.held = False
        self._cleanup(symbol, state)

    def _cleanup(self, symbol: str, state: _SymbolState) -> None:
        if not state.held and not state.waiters and self._states.get(symbol) is state:
            del self._states[symbol]

    def locked(self, symbol: str) -> bool:
        state = self._states.get(symbol)
        return bool(state and state.held)

    def waiting(self, symbol: str) -> int:
        state = self._states.get(symbol)
        return len(state.waiters) if state else 0

    def active_symbols(self) -> set[str]:
        """Symbols held or waited on (empty when idle: no leaked state)."""
        return set(self._states)
