"""Buckets (I13), the Bucket A 3-minute signal (I15), Bucket B VWAP touch/reclaim (I16) and the
entry vetoes (I14). Pure: bars and quotes in, verdicts with their inputs out.

**[resolved]**: Bucket B evaluates 1m bars whose *close* (start + 1 min) lies in 09:10–09:59 — the
bars labelled 09:09 … 09:58 — so the last trigger still has a minute before the 10:00 cut. The
VWAP of bar t is B3 over the bars 09:00 … t (completed bars only).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from broker_core.market_rules import down, price_limits, round_up
from strategies.pcim.config import PcimParams
from strategies.sdk.bars import Bar
from strategies.sdk.indicators import SessionVwap, pct


class Bucket(StrEnum):
    A = "A"
    B = "B"
    D = "D"


def gap_of(expected_open: float, prior_close: float) -> float:
    """``pct(expected_open, prior_close)`` rounded to 1e-10 so 10,700/10,000 is exactly 7%."""
    return round(pct(expected_open, prior_close), 10)


def bucket_of(expected_open: float, prior_close: float, params: PcimParams) -> tuple[Bucket, float]:
    """I13: A 0 ≤ g < 3%; B 3% ≤ g ≤ 7%; D g < 0 or g > 7% (no trade)."""
    g = gap_of(expected_open, prior_close)
    if 0 <= g < params.bucket_a_max:
        return Bucket.A, g
    if params.bucket_a_max <= g <= params.bucket_b_max:
        return Bucket.B, g
    return Bucket.D, g


# --------------------------------------------------------------------------- I15 Bucket A


@dataclass(frozen=True, slots=True)
class ASignal:
    ok: bool
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int
    baseline: float | None
    ratio: float | None
    cpr: float | None
    reason: str

    def fields(self) -> dict[str, Any]:
        return {
            "o": self.open,
            "h": self.high,
            "l": self.low,
            "c": self.close,
            "volume": self.volume,
            "baseline": self.baseline,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "cpr": None if self.cpr is None else round(self.cpr, 4),
            "reason": self.reason,
        }


def first_minutes(bars: Sequence[Bar], open_time: time, minutes: int) -> list[Bar]:
    """The 1m bars starting in [open_time, open_time + minutes) of the bars' own day."""
    out = []
    for b in bars:
        t = b.start.time()
        start = datetime.combine(b.start.date(), open_time, b.start.tzinfo)
        if open_time <= t and b.start < start + timedelta(minutes=minutes):
            out.append(b)
    return sorted(out, key=lambda b: b.start)


def a_baseline(volumes_by_session: Sequence[float]) -> float | None:
    """Median of the 09:00–09:03 volumes of the last sessions (a session without bars counts 0)."""
    return float(statistics.median(volumes_by_session)) if volumes_by_session else None


def bucket_a_signal(bars: Sequence[Bar], baseline: float | None, params: PcimParams) -> ASignal:
    """I15 on the 09:00–09:03 bars: (C − L)/(H − L) ≥ 0.70 (H = L fails) and V ≥ 1.20 × baseline."""
    window = first_minutes(bars, params.session_open, params.a_bars)
    if not window:
        return ASignal(False, None, None, None, None, 0, baseline, None, None, "NO_BARS")
    o, c = window[0].open, window[-1].close
    h, lo = max(b.high for b in window), min(b.low for b in window)
    v = sum(b.volume for b in window)
    ratio = v / baseline if baseline else None
    cpr = (c - lo) / (h - lo) if h > lo else None
    if cpr is None:
        return ASignal(False, o, h, lo, c, v, baseline, ratio, None, "H_EQUALS_L")
    if cpr < params.a_cpr_min - 1e-12:
        return ASignal(False, o, h, lo, c, v, baseline, ratio, cpr, "CPR")
    if ratio is None:
        return ASignal(False, o, h, lo, c, v, baseline, None, cpr, "NO_BASELINE")
    if ratio < params.a_volume_ratio_min - 1e-12:
        return ASignal(False, o, h, lo, c, v, baseline, ratio, cpr, "VOLUME")
    return ASignal(True, o, h, lo, c, v, baseline, ratio, cpr, "OK")


def buy_limit(ref: float, band: float) -> int:
    """Marketable buy limit ``round_up(ref·(1+b))`` (C6 with the strategy's own band)."""
    return round_up(ref * (1 + band))


# --------------------------------------------------------------------------- I16 Bucket B


@dataclass(frozen=True, slots=True)
class VwapBar:
    bar: Bar
    vwap: float


def with_vwap(bars: Sequence[Bar]) -> list[VwapBar]:
    """Each bar with the B3 session VWAP through it."""
    vw = SessionVwap()
    out = []
    for b in sorted(bars, key=lambda b: b.start):
        vw.upsert_bar(b.start, b.high, b.low, b.close, b.volume)
        value = vw.value
        out.append(VwapBar(b, value if value is not None else b.close))
    return out


def touch(vb: VwapBar, tol: float) -> bool:
    return vb.bar.low <= vb.vwap * (1 + tol) and vb.bar.high >= vb.vwap * (1 - tol)


def reclaim(prev: VwapBar, cur: VwapBar, reclaim_pct: float) -> bool:
    return (
        prev.bar.close < prev.vwap and cur.bar.close > cur.vwap and cur.bar.close >= cur.vwap * (1 + reclaim_pct) - 1e-9
    )


@dataclass(frozen=True, slots=True)
class BSignal:
    ok: bool
    t: datetime
    close: float
    vwap: float
    touch_at: datetime | None
    reclaim: bool

    def fields(self) -> dict[str, Any]:
        return {
            "bar": self.t.strftime("%H:%M"),
            "c": self.close,
            "vwap": round(self.vwap, 3),
            "touch_at": self.touch_at.strftime("%H:%M") if self.touch_at else None,
            "reclaim": self.reclaim,
        }


def bucket_b_at(series: Sequence[VwapBar], i: int, params: PcimParams) -> BSignal:
    """I16 at bar ``i`` of ``series``: reclaim at i and a touch at some k in [i − 2, i]."""
    cur = series[i]
    rec = i >= 1 and reclaim(series[i - 1], cur, params.b_reclaim_pct)
    touched = None
    for k in range(max(0, i - params.b_touch_lookback), i + 1):
        if touch(series[k], params.b_touch_tol):
            touched = series[k].bar.start
            break
    return BSignal(rec and touched is not None, cur.bar.start, cur.bar.close, cur.vwap, touched, rec)


def b_eval_window(bar: Bar, params: PcimParams) -> bool:
    """Whether ``bar``'s close time lies in [b_eval_start, entry_end)."""
    close_t = (bar.start + timedelta(minutes=1)).time()
    return params.b_eval_start <= close_t < params.entry_end


# --------------------------------------------------------------------------- I14 vetoes


@dataclass(frozen=True, slots=True)
class QuoteSnap:
    ts: datetime
    last: float | None
    bid: float | None = None
    ask: float | None = None
    prev_close: float | None = None
    upper_limit: float | None = None
    halted: bool = False
    in_vi: bool = False


def veto(
    q: QuoteSnap | None, now: datetime, params: PcimParams, prior_close: float | None = None
) -> tuple[str, dict[str, Any]] | None:
    """I14 symbol vetoes: (code name, inputs) or None. A missing/stale quote vetoes (cannot be checked)."""
    if q is None or q.last is None or (now - q.ts).total_seconds() > params.quote_max_age_sec:
        return "PCIM_VETO_NO_QUOTE", {"quote_ts": q.ts.isoformat() if q else None}
    if q.in_vi or q.halted:
        return "PCIM_VETO_VI", {"halted": q.halted, "in_vi": q.in_vi}
    upper = q.upper_limit
    base = q.prev_close or prior_close
    if upper is None and base:
        upper = price_limits(base)[1]
    if upper is not None:
        wall = down(upper, params.upper_limit_ticks)
        if q.last >= wall:
            return "PCIM_VETO_UPPER_LIMIT", {"last": q.last, "upper_limit": upper, "wall": wall}
    if q.bid and q.ask and q.ask >= q.bid:
        mid = (q.bid + q.ask) / 2
        spread = (q.ask - q.bid) / mid
        if spread > params.spread_veto_pct + 1e-12:
            return "PCIM_VETO_SPREAD", {"bid": q.bid, "ask": q.ask, "spread_pct": round(spread, 5)}
    return None
