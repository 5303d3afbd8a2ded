"""Volatility interruptions (VI) seen on the broker's feed: risk's VI cooldown and the stream's ``vi`` events.

The feed reports a symbol's VI state with each print (``Tick.vi``: the paper exchange from its VI
monitor, the KIS adapter from the H0STCNT0 record). :class:`ViWatch` turns the changes into:

- **the cooldown risk reads** (``state.flags.vi_cooldowns``, symbol → ISO time; ENTER is DEFERRED with
  VI_COOLDOWN before it): at the start, until the expected end of the VI auction (2 minutes on KRX) plus
  ``risk.vi_cooldown_sec``, so entries wait while the VI lasts even when its end is never seen; at the
  end, until the end plus ``risk.vi_cooldown_sec``. A longer cooldown already set (by an admin) is kept.
- **stream events** ``{"type": "vi", "symbol", "active", "ts"}`` (``wire.ViEvent``) at the start and the
  end, handed to ``publish`` (the market-data hub: consumers subscribed to the symbol and strategies
  holding it).

Each change is journaled (the flags row) and logged with reason VI_START / VI_END.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import Clock
from broker_core.models import Tick
from oms.core.state import OmsState, Recorder

log = logging.getLogger("oms.vi")

VI_AUCTION = timedelta(minutes=2)
"""How long a KRX VI's single-price auction lasts (specs/kis.md §7; a random extension is not modelled)."""

ViPublisher = Callable[[str, dict[str, Any]], Any]
"""(symbol, event) → push to the streams concerned."""


def vi_event(symbol: str, active: bool, ts: datetime) -> dict[str, Any]:
    """The stream's ``vi`` event (shape of ``broker_core.contract.wire.ViEvent``)."""
    return {"type": "vi", "symbol": symbol, "active": active, "ts": ts.isoformat()}


class ViWatch:
    def __init__(
        self,
        state: OmsState,
        recorder: Recorder,
        clock: Clock,
        cooldown_s: float,
        publish: ViPublisher,
        *,
        auction: timedelta = VI_AUCTION,
    ) -> None:
        self.state = state
        self.recorder = recorder
        self.clock = clock
        self.cooldown = timedelta(seconds=cooldown_s)
        self.publish = publish
        self.auction = auction
        self.active: dict[str, datetime] = {}
        """Symbols in a VI now → when it started."""
        self._provisional: dict[str, str] = {}
        """Symbol → the cooldown set at the VI start (replaced at the end unless someone set another)."""

    def on_tick(self, tick: Tick) -> None:
        """Tick hook: a print whose VI state differs from the symbol's last one starts or ends a VI."""
        if tick.vi is None:
            return
        if tick.vi:
            if tick.symbol not in self.active:
                self._start(tick.symbol, tick.ts)
        elif tick.symbol in self.active:
            self._end(tick.symbol, tick.ts)

    def _start(self, symbol: str, ts: datetime) -> None:
        self.active[symbol] = ts
        wanted = ts + self.auction + self.cooldown
        until = self._extend(symbol, wanted, replace=None)
        if until == wanted.isoformat():  # ours (not a longer one already set): the end may replace it
            self._provisional[symbol] = until
        log.warning("VI started on %s at %s: entries deferred until %s reason=VI_START", symbol, ts.isoformat(), until)
        self.recorder.append([self.state.flags])
        self.publish(symbol, vi_event(symbol, True, ts))

    def _end(self, symbol: str, ts: datetime) -> None:
        started = self.active.pop(symbol)
        until = self._extend(symbol, ts + self.cooldown, replace=self._provisional.pop(symbol, None))
        log.warning(
            "VI ended on %s at %s (started %s): entries deferred until %s reason=VI_END",
            symbol,
            ts.isoformat(),
            started.isoformat(),
            until,
        )
        self.recorder.append([self.state.flags])
        self.publish(symbol, vi_event(symbol, False, ts))

    def _extend(self, symbol: str, until: datetime, *, replace: str | None) -> str:
        """Set the symbol's cooldown to ``until`` unless a later one (other than ``replace``) is set; returns
        the stored value. Expired cooldowns of other symbols are dropped on the way."""
        flags = self.state.flags
        now = self.clock.now()
        for sym, raw in list(flags.vi_cooldowns.items()):
            ts = _parse(raw)
            if sym != symbol and (ts is None or ts <= now):
                del flags.vi_cooldowns[sym]
        current = flags.vi_cooldowns.get(symbol)
        current_ts = _parse(current) if current is not None and current != replace else None
        if current_ts is None or current_ts < until:
            flags.vi_cooldowns[symbol] = until.isoformat()
        flags.updated_at = now
        return flags.vi_cooldowns[symbol]


def _parse(raw: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None
