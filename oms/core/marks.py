"""Marks of the held symbols for the dashboard views: last price, previous close and sector.

The database knows quantities and fills, not prices: ``v_positions`` (market value, day P&L), the sector
exposure and the heat map read ``symbol_marks``. The writer journals a mark for every symbol the account
holds whenever its price, sector or previous close changed, at most once per pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date

from broker_core.clock import Clock
from oms.core.state import OmsState, Recorder
from oms.core.types import SymbolMarkRecord

log = logging.getLogger("oms.core.marks")

PrevClose = Callable[[str], Awaitable[float | None]]


class MarkWriter:
    def __init__(
        self,
        state: OmsState,
        recorder: Recorder,
        clock: Clock,
        sector_of: Mapping[str, str],
        prev_close: PrevClose | None = None,
    ) -> None:
        self.state = state
        self.recorder = recorder
        self.clock = clock
        self.sector_of = sector_of
        self.prev_close = prev_close
        self._written: dict[str, tuple[float, str | None, float | None]] = {}
        self._closes: dict[tuple[str, date], float | None] = {}

    async def _close(self, symbol: str, day: date) -> float | None:
        if self.prev_close is None:
            return None
        if (symbol, day) not in self._closes:
            try:
                self._closes[(symbol, day)] = await self.prev_close(symbol)
            except Exception as exc:  # noqa: BLE001 - a mark without a previous close is still a mark
                log.debug("previous close of %s unavailable: %s", symbol, exc)
                return None
        return self._closes[(symbol, day)]

    async def write_once(self) -> int:
        """Journal the marks that changed; returns how many were written."""
        now = self.clock.now()
        day = self.state.trading_day or now.date()
        records = []
        for symbol, pos in sorted(self.state.ledger.positions().items()):
            if not pos.real_qty:
                continue
            price = self.state.last_prices.get(symbol) or pos.avg_price
            if not price or price <= 0:
                continue
            sector = self.sector_of.get(symbol)
            close = await self._close(symbol, day)
            mark = (float(price), sector, close)
            if self._written.get(symbol) == mark:
                continue
            self._written[symbol] = mark
            records.append(
                SymbolMarkRecord(
                    symbol=symbol, last_price=float(price), updated_at=now, sector=sector, prev_close=close
                )
            )
        if records:
            self.recorder.append(records)
        return len(records)

    async def run(self, interval_s: float, beat: Callable[[], None] | None = None) -> None:
        """Write changed marks every ``interval_s`` clock seconds until cancelled."""
        while True:
            await self.write_once()
            if beat is not None:
                beat()
            await self.clock.sleep(interval_s)
