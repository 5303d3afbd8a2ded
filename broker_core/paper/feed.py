"""What the paper exchange consumes: a time-ordered tape of trades for one session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Protocol, runtime_checkable

from broker_core.models import Tick


@runtime_checkable
class TickFeed(Protocol):
    session_date: date
    symbols: list[str]

    def prev_close(self, symbol: str) -> float | None:
        """The base price of the day (previous close), for price limits and VI."""
        ...

    def __iter__(self) -> Iterator[Tick]:
        """Every trade of the session across all symbols, in non-decreasing time order."""
        ...


class StaticFeed:
    """A feed over a given list of ticks (tests, small scenarios)."""

    def __init__(self, session_date: date, ticks: list[Tick], prev_closes: dict[str, float] | None = None) -> None:
        self.session_date = session_date
        self._ticks = sorted(ticks, key=lambda t: t.ts)
        self.symbols = sorted({t.symbol for t in ticks} | set(prev_closes or {}))
        self._prev = dict(prev_closes or {})

    def prev_close(self, symbol: str) -> float | None:
        return self._prev.get(symbol)

    def __iter__(self) -> Iterator[Tick]:
        return iter(self._ticks)
