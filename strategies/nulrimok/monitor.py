"""The active monitoring set (strategies.md §3.3, N14–N15). Pure bookkeeping.

Slots = held positions + active candidates ≤ K_cap (``max_slots``, lowered when the OMS denies a
subscription). Order: held positions first, then tradable tickers by daily_rank; the rest wait in
``overflow``. A slot is re-filled with the next overflow ticker when a position closes, when a
monitored ticker is *inactive* (price never within band ±1% for the last 2 h and not armed), or at
the scheduled refreshes (11:30, 13:00, 14:30), which demote the lowest-ranked non-armed, non-held
ticker. Demoted tickers go to the end of the overflow queue. A fill keeps its slot.

**[resolved]**: a ticker is only demoted for inactivity or at a refresh when the overflow has a
ticker to take its place; the 2 h run from when the ticker became active, at the earliest from 10:00;
a denied subscription lowers K_cap by one and sends the ticker to the end of the overflow, not to be
promoted again that day (no immediate re-fill, which would be denied as well).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Rotation:
    demoted: str | None
    promoted: str | None
    reason: str


class Monitor:
    def __init__(self, cap: int) -> None:
        self.max_cap = cap
        self.cap = cap
        self.active: list[str] = []
        self.overflow: list[str] = []
        self.since: dict[str, datetime] = {}
        self.last_near: dict[str, datetime] = {}
        self.blocked: set[str] = set()
        """Denied today: not promoted again until the next day's set."""

    def reset(self, now: datetime, held: Iterable[str], tradable: Iterable[str]) -> None:
        """A new day's set: held first, then tradables by rank up to K_cap; the rest overflow."""
        self.cap = self.max_cap
        held = list(dict.fromkeys(held))
        rest = [s for s in dict.fromkeys(tradable) if s not in held]
        room = max(0, self.cap - len(held))
        self.active = held + rest[:room]
        self.overflow = rest[room:]
        self.since = dict.fromkeys(self.active, now)
        self.last_near = {}
        self.blocked = set()

    def add_held(self, symbol: str, now: datetime) -> None:
        if symbol not in self.active:
            self.active.insert(0, symbol)
            self.since[symbol] = now
        if symbol in self.overflow:
            self.overflow.remove(symbol)

    def is_active(self, symbol: str) -> bool:
        return symbol in self.active

    def note_price(
        self, symbol: str, price: float, band: tuple[float, float] | None, pct: float, now: datetime
    ) -> None:
        if band is not None and band[0] * (1 - pct) <= price <= band[1] * (1 + pct):
            self.last_near[symbol] = now

    def _promote(self, now: datetime) -> str | None:
        for sym in list(self.overflow):
            if len(self.active) >= self.cap:
                break
            if sym in self.blocked:
                continue
            self.overflow.remove(sym)
            if sym not in self.active:
                self.active.append(sym)
                self.since[sym] = now
                return sym
        return None

    def release(self, symbol: str, now: datetime, reason: str) -> Rotation | None:
        """``symbol`` leaves the set (its position closed): the next overflow ticker takes the slot."""
        if symbol not in self.active:
            return None
        self.active.remove(symbol)
        return Rotation(symbol, self._promote(now), reason)

    def demote(self, symbol: str, now: datetime, reason: str) -> Rotation | None:
        if symbol not in self.active or not self.overflow:
            return None
        self.active.remove(symbol)
        promoted = self._promote(now)
        self.overflow.append(symbol)
        return Rotation(symbol, promoted, reason)

    def denied(self, symbol: str) -> Rotation | None:
        if symbol not in self.active:
            return None
        self.active.remove(symbol)
        self.overflow.append(symbol)
        self.blocked.add(symbol)
        self.cap = max(0, self.cap - 1)
        return Rotation(symbol, None, "DENIED")

    def inactive(self, now: datetime, keep: set[str], after_min: float, floor: datetime) -> list[str]:
        """Active tickers not in ``keep`` (held / armed) without a price near the band for ``after_min``,
        counted from when they became active but not before ``floor`` (the start of monitoring, 10:00)."""
        limit = timedelta(minutes=after_min)
        out = []
        for s in self.active:
            if s in keep:
                continue
            seen = max(self.since.get(s, now), self.last_near.get(s, floor), floor)
            if now - seen >= limit:
                out.append(s)
        return out

    def lowest(self, keep: set[str], rank: Mapping[str, float]) -> str | None:
        """The lowest-ranked active ticker not in ``keep``."""
        pool = [s for s in self.active if s not in keep]
        if not pool:
            return None
        return min(pool, key=lambda s: (rank.get(s, float("-inf")), s))
