"""P16–P19: exits of an open KPR position, as pure functions over :class:`Position`.

* P16 structural stop: ``last ≤ stop_level`` → EXIT.
* P17 targets: REDUCE 50% at ``fill + 1.5R``; full exit at 2.5R / 2.0R / 1.5R for high / normal /
  low volatility, bucketed by ``ATR20/price`` ≥ 4% / 2–4% / < 2%; 2.0R when adaptive targets are
  off. The stop is not moved after the partial. With a full target at or below the partial level
  (low volatility: 1.5R) the whole position exits there.
* P18 time stop: 45 min after the (first) fill → EXIT the remainder; the 15:15 safety flatten is
  the engine's.
* P19 flow deterioration: InvestorSignal turning DISTRIBUTE after entry raises the stop to
  ``max(stop, fill)`` (exit at once if last ≤ new stop); with ``flow_reduce`` also REDUCE 50%.

``R = fill − initial stop`` (at least one tick). Exit orders are marketable-limit sells (C6):
``round_down(ref·(1 − b))`` with ``b = max(3 ticks, 0.3%)``, ref = best bid, else last.

**[resolved]** a REST-polled bar (a position without a stream slot) is checked on its extremes:
low for the stop, high for the targets; the exit is priced off the current price. A partial of a
1-share position is skipped (nothing to halve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from broker_core.market_rules import marketable_limit, tick_size
from strategies.kpr.config import KprParams

_EPS = 1e-9


class VolBucket(StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


class ExitKind(StrEnum):
    STOP = "STOP"
    PARTIAL = "PARTIAL"
    TARGET = "TARGET"
    TIME = "TIME"


def vol_bucket(atr20: float | None, price: float, p: KprParams) -> VolBucket:
    """ATR20/price ≥ 4% HIGH, < 2% LOW, else NORMAL (no ATR → NORMAL)."""
    if atr20 is None or price <= 0:
        return VolBucket.NORMAL
    ratio = atr20 / price
    if ratio >= p.vol_high_atr_pct - _EPS:
        return VolBucket.HIGH
    if ratio < p.vol_low_atr_pct - _EPS:
        return VolBucket.LOW
    return VolBucket.NORMAL


def target_r(bucket: VolBucket, p: KprParams) -> float:
    if not p.adaptive_targets:
        return p.target_r_normal
    return {VolBucket.HIGH: p.target_r_high, VolBucket.NORMAL: p.target_r_normal, VolBucket.LOW: p.target_r_low}[bucket]


def risk_per_share(fill: float, stop: float) -> float:
    return max(fill - stop, float(tick_size(fill)))


@dataclass(slots=True)
class Position:
    """An open KPR position (one per symbol per day)."""

    symbol: str
    qty: int
    fill: float
    """Average entry price."""
    fill_ts: datetime
    stop: float
    """Current stop (the initial stop, or the fill after a P19 raise)."""
    initial_stop: float
    r: float
    target_r: float
    bucket: VolBucket
    time_stop_ts: datetime
    partial_done: bool = False
    flow_raised: bool = False
    bought: int = 0
    sold: int = 0
    exit_sent_ts: datetime | None = None
    exit_reason: str | None = None
    exit_cancel_sent: bool = False
    """The timer asked the OMS to cancel the working sell of the last exit (its end re-sends the exit)."""
    recovered: bool = False
    partial_r: float = 1.5

    @property
    def partial_px(self) -> float:
        return self.fill + self.partial_r * self.r

    @property
    def target_px(self) -> float:
        return self.fill + self.target_r * self.r


def open_position(
    symbol: str,
    qty: int,
    fill: float,
    fill_ts: datetime,
    stop: float,
    atr20: float | None,
    p: KprParams,
    *,
    initial_stop: float | None = None,
    time_stop_ts: datetime | None = None,
) -> Position:
    bucket = vol_bucket(atr20, fill, p)
    initial = initial_stop if initial_stop is not None else stop
    return Position(
        symbol=symbol,
        qty=qty,
        fill=fill,
        fill_ts=fill_ts,
        stop=stop,
        initial_stop=initial,
        r=risk_per_share(fill, initial),
        target_r=target_r(bucket, p),
        bucket=bucket,
        time_stop_ts=time_stop_ts or fill_ts + timedelta(minutes=p.time_stop_min),
        bought=qty,
        partial_r=p.partial_r,
    )


def stop_hit(pos: Position, low: float) -> bool:
    return low <= pos.stop + _EPS


def price_exit(pos: Position, low: float, high: float, now: datetime) -> ExitKind | None:
    """The exit a price range [low, high] (one trade: low = high) triggers now, if any (P16–P18)."""
    if stop_hit(pos, low):
        return ExitKind.STOP
    if high >= pos.target_px - _EPS:
        return ExitKind.TARGET
    if not pos.partial_done and high >= pos.partial_px - _EPS:
        return ExitKind.PARTIAL if pos.qty >= 2 else ExitKind.TARGET
    if now >= pos.time_stop_ts:
        return ExitKind.TIME
    return None


def time_exit(pos: Position, now: datetime) -> bool:
    return now >= pos.time_stop_ts


def partial_qty(qty: int, frac: float) -> int:
    return math.floor(qty * frac + _EPS)


def flow_stop(pos: Position) -> float:
    """P19: the stop raised to ``max(stop, fill)``."""
    return max(pos.stop, pos.fill)


def exit_limit_price(bid: float | None, last: float | None, p: KprParams) -> tuple[int | None, float | None]:
    """(limit, ref) of a marketable-limit sell (C6); (None, None) without any price."""
    ref = bid if bid is not None and bid > 0 else last
    if ref is None or ref <= 0:
        return None, None
    return marketable_limit(ref, buy=False, band_pct=p.exit_band_pct, ticks=p.exit_band_ticks), ref
