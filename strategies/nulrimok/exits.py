"""Position management (strategies.md §3.6, N23–N28): the per-position state and its rules. Pure.

* N23 baseline stop: exit when last ≤ stop.
* N24 AVWAP breakdown: 30m C < avwap_ref·0.993 ∧ V > 1.5 × the 20-bar mean → exit.
* N25 failure to reclaim: at the close of post-fill bars 3–5, no 30m close > avwap_ref since the fill
  and the bar's L below every earlier post-fill low → exit.
* N26 time stops at 15:10: entry day P&L ≤ 0% → exit; on the 2nd full session after entry P&L < +1%
  → exit (FAILED).
* N27 setup tags (once): MOMENTUM (a high above the 10-session swing high within 3 sessions; exits on a
  30m C < SMA10), MEAN_REVERSION (at a session close: MFE ≥ 1·ATR30m, last ≤ post-entry high −
  0.5·ATR30m, session mean 30m V < the 20-bar mean; REDUCE 70% at fill + 1.5·ATR30m, the rest exits on
  a 30m C < SMA5), GRIND (at a session close: P&L > 0 ∧ today's persistence ≥ 0.6; exits on flow
  reversal or a 30m close < avwap_ref not followed by a close > avwap_ref within 2 bars).
* N28 flow reversal: the artifact's flag → exit at the open (by 09:05), whatever the tag.

**[resolved]**: post-fill bars are the 30m bars starting after the fill (the bar holding the fill is not
one); sessions are counted from the entry session (0) by the sessions the strategy sees (and, after a
restart, by the LRS's session dates); N23–N26 and N28 stay active after a tag; the session-close tags are
evaluated with the time stops at 15:10; the MEAN_REVERSION target is watched on prices and reduced with
a marketable limit once reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any

from broker_core.contract.reasons import ReasonCode
from broker_core.market_rules import marketable_limit
from strategies.nulrimok.bars30 import Bar30
from strategies.nulrimok.config import NulrimokParams
from strategies.sdk.indicators import mean, sma

MOMENTUM = "MOMENTUM"
MEAN_REVERSION = "MEAN_REVERSION"
GRIND = "GRIND"


@dataclass(slots=True)
class PositionState:
    symbol: str
    sector: str
    qty: int
    avg: float
    entry_ts: datetime
    stop: float
    avwap_ref: float | None = None
    atr30m: float | None = None
    swing_high: float | None = None
    sessions_after: int = 0
    seen_day: date | None = None
    tag: str | None = None
    post_bars: int = 0
    last_bar: str | None = None
    """Start (ISO) of the last post-fill bar counted: a bar is never counted twice (restarts re-feed the day)."""
    post_lows: list[float] = field(default_factory=list)
    reclaimed: bool = False
    post_high: float | None = None
    mr_target: float | None = None
    mr_reduced: bool = False
    grind_below: int | None = None
    persistence: float | None = None
    flow_flag: bool = False
    exit_reason: ReasonCode | None = None
    exit_sent_ts: datetime | None = None
    exit_tries: int = 0
    exit_working: bool = False
    """An EXIT sell is (or may be) working at the OMS: never a second one next to it."""
    exit_progress_ts: datetime | None = None
    """When the EXIT was sent or last got a fill."""
    exit_cancel_sent: bool = False
    reduce_sent: bool = False

    @property
    def entry_day(self) -> date:
        return self.entry_ts.date()

    def pnl(self, last: float | None) -> float | None:
        return last / self.avg - 1.0 if last is not None and self.avg > 0 else None

    @property
    def open_risk(self) -> float:
        return self.qty * max(0.0, self.avg - self.stop)

    def snapshot(self) -> dict[str, Any]:
        """What survives a restart next to the OMS allocation (qty/avg/entry_ts come from the OMS)."""
        out = {k: v for k, v in asdict(self).items() if k in _SNAPSHOT}
        out["entry_ts"] = self.entry_ts.isoformat()
        out["seen_day"] = self.seen_day.isoformat() if self.seen_day else None
        return out

    def restore(self, snap: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for k, v in snap.items():
            if k in _SNAPSHOT and k in names and k not in _FROM_OMS and v is not None:
                setattr(self, k, date.fromisoformat(v) if k == "seen_day" and isinstance(v, str) else v)


_SNAPSHOT = {
    "entry_ts",
    "sessions_after",
    "seen_day",
    "last_bar",
    "stop",
    "avwap_ref",
    "atr30m",
    "swing_high",
    "tag",
    "post_bars",
    "post_lows",
    "reclaimed",
    "post_high",
    "mr_target",
    "mr_reduced",
    "grind_below",
}


_FROM_OMS = {"entry_ts", "sessions_after", "seen_day"}
"""Restored by the caller (the OMS's entry time; sessions counted from the LRS's dates)."""


def stop_hit(last: float, stop: float) -> bool:
    return last <= stop


def avwap_breakdown(bar: Bar30, avwap_ref: float, vol_mean: float | None, p: NulrimokParams) -> bool:
    """N24."""
    return (
        vol_mean is not None
        and bar.close < avwap_ref * p.avwap_break_mult
        and bar.volume > p.avwap_break_vol_mult * vol_mean
    )


def no_reclaim(pos: PositionState, bar: Bar30, earlier_lows: Sequence[float], p: NulrimokParams) -> bool:
    """N25 at the close of post-fill bar ``pos.post_bars`` (already counted, ``bar`` = that bar)."""
    return (
        p.reclaim_first_bar <= pos.post_bars <= p.reclaim_last_bar
        and not pos.reclaimed
        and bool(earlier_lows)
        and bar.low < min(earlier_lows)
    )


def time_stop(pos: PositionState, last: float | None, p: NulrimokParams) -> ReasonCode | None:
    """N26 at ``time_stop_time``."""
    pnl = pos.pnl(last)
    if pnl is None:
        return None
    if pos.sessions_after == 0 and pnl <= p.entry_day_min_pnl:
        return ReasonCode.NULRIMOK_X_ENTRY_DAY
    if pos.sessions_after == p.failed_session and pnl < p.failed_min_pnl:
        return ReasonCode.NULRIMOK_X_FAILED
    return None


def momentum_reached(pos: PositionState, high: float, p: NulrimokParams) -> bool:
    return (
        pos.tag is None
        and pos.swing_high is not None
        and pos.sessions_after < p.momentum_sessions
        and high > pos.swing_high
    )


def mean_reversion_tag(
    pos: PositionState, last_close: float, session_vols: Sequence[float], vol_mean: float | None, p: NulrimokParams
) -> bool:
    """N27 MEAN_REVERSION at a session close (not MOMENTUM)."""
    if pos.tag is not None or not pos.atr30m or pos.post_high is None or vol_mean is None or not session_vols:
        return False
    session_mean = mean(session_vols)
    assert session_mean is not None
    return (
        pos.post_high - pos.avg >= p.mr_mfe_atr * pos.atr30m
        and last_close <= pos.post_high - p.mr_pullback_atr * pos.atr30m
        and session_mean < vol_mean
    )


def grind_tag(pos: PositionState, last: float | None, p: NulrimokParams) -> bool:
    pnl = pos.pnl(last)
    return (
        pos.tag is None
        and pnl is not None
        and pnl > 0
        and pos.persistence is not None
        and pos.persistence >= p.grind_persistence_min
    )


def tag_exit(pos: PositionState, bars: Sequence[Bar30], p: NulrimokParams) -> ReasonCode | None:
    """The tag's own exit on the last 30m close of ``bars`` (updates the GRIND counter)."""
    bar = bars[-1]
    closes = [b.close for b in bars]
    if pos.tag == MOMENTUM:
        s = sma(closes, p.momentum_sma)
        return ReasonCode.NULRIMOK_X_MOMENTUM if s is not None and bar.close < s else None
    if pos.tag == MEAN_REVERSION:
        s = sma(closes, p.mr_sma)
        return ReasonCode.NULRIMOK_X_MR_TRAIL if s is not None and bar.close < s else None
    if pos.tag == GRIND and pos.avwap_ref is not None:
        if pos.grind_below is None:
            if bar.close < pos.avwap_ref:
                pos.grind_below = 0
            return None
        if bar.close > pos.avwap_ref:
            pos.grind_below = None
            return None
        pos.grind_below += 1
        return ReasonCode.NULRIMOK_X_GRIND if pos.grind_below >= p.grind_reclaim_bars else None
    return None


def exit_limit(ref: float | None, p: NulrimokParams) -> float | None:
    """C6 marketable sell limit ``round_down(ref·(1 − b))``, b = max(3 ticks, 0.3%)."""
    if ref is None or ref <= 0:
        return None
    return float(marketable_limit(ref, buy=False, band_pct=p.exit_band_pct, ticks=p.exit_band_ticks))
