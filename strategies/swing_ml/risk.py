"""S6–S8: exit checks of held allocations, the max-hold clock and the exit submission gate.

S6 (``risk_check``, every 5 min): with fixed thresholds, take profit at ``fill·(1 + 4 %)``, stop at
``fill·(1 − 2.5 %)``, trailing stop armed once the peak reaches ``fill·(1 + 2 %)`` and hit at
``peak·(1 − 1.5 %)``. With ``atr_dynamic`` the three become ``fill + 2.5·ATR14``, ``fill − 1.5·ATR14``,
``peak − 1.5·ATR14`` and ATR14 must be passed in; the arming level stays ``fill·(1 + 2 %)``
**[interpreted: S6 lists only the three exit levels as ATR-based]**. Levels are compared unrounded
with a 1e-9 tolerance (``100·1.04`` is 104.00000000000001 in floating point); a hit is
``last ≥ take profit``, ``last ≤ stop``, ``last ≤ trail``. When several hit at once the reason is
STOP, then TRAIL, then TAKE_PROFIT.

Peak since ``entry_ts`` (:func:`peak_since_entry`) is recomputed from bars (restart-safe): a bar that
starts at or after entry_ts contributes its high; the bar in progress at entry_ts contributes only its
close **[interpreted: its high may predate the entry]**; earlier bars nothing; the fill and the last
price always count. For daily bars (dated, 00:00 New York) this means: the entry day's close, then
every later day's high.

S7: held trading days = XNYS sessions ``s`` with ``entry date < s ≤ today`` (New York dates); an
entry 10 sessions ago has held 10 days and is due with ``max_hold_days`` = 10.

S8: :func:`exit_key` = ``SWING_ML:<symbol>:EXIT:<entry_ts>`` (entry_ts in UTC, ISO 8601 ``Z``); both
decide and risk_check use it, so a second exit of the same holding is a no-op at the OMS.
:func:`exit_gate` is the re-read check before any SELL: allocation 0 or a sell already working →
``DUPLICATE_SUPPRESSED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from broker_core.clock import NEW_YORK
from broker_core.markets import us
from strategies.swing_ml.config import STRATEGY_ID, RiskParams
from strategies.swing_ml.reasons import Reason

_EPS = 1e-9


# -- S6 ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExitLevels:
    take_profit: float
    stop: float
    trail_arm: float
    trail: float | None
    """None while the trail is not armed."""


def exit_levels(fill: float, peak: float, params: RiskParams, atr14: float | None = None) -> ExitLevels:
    if fill <= 0:
        raise ValueError(f"fill price must be > 0: {fill}")
    arm = fill * (1.0 + params.trail_arm_pct)
    armed = peak >= arm - _EPS
    if params.atr_dynamic:
        if atr14 is None or not atr14 > 0:
            raise ValueError("atr_dynamic needs ATR14 (> 0) passed into the check")
        tp = fill + params.atr_take_profit_mult * atr14
        stop = fill - params.atr_stop_mult * atr14
        trail = peak - params.atr_trail_mult * atr14
    else:
        tp = fill * (1.0 + params.take_profit_pct)
        stop = fill * (1.0 - params.stop_loss_pct)
        trail = peak * (1.0 - params.trail_drop_pct)
    return ExitLevels(tp, stop, arm, trail if armed else None)


@dataclass(frozen=True, slots=True)
class ExitCheck:
    reason: Reason | None
    """SWING_STOP / SWING_TRAIL / SWING_TAKE_PROFIT, or None (hold)."""
    last: float
    peak: float
    levels: ExitLevels

    @property
    def sell(self) -> bool:
        return self.reason is not None

    def fields(self) -> dict[str, object]:
        lv = self.levels
        return {
            "last": self.last,
            "peak": self.peak,
            "take_profit_px": round(lv.take_profit, 6),
            "stop_px": round(lv.stop, 6),
            "trail_arm_px": round(lv.trail_arm, 6),
            "trail_px": None if lv.trail is None else round(lv.trail, 6),
            "reason": None if self.reason is None else str(self.reason),
        }


def check_exit(
    fill: float, last: float, params: RiskParams, peak: float | None = None, atr14: float | None = None
) -> ExitCheck:
    """S6 for one allocation; ``peak`` defaults to max(fill, last) and never counts less than that."""
    pk = max(fill, last, peak if peak is not None else fill)
    lv = exit_levels(fill, pk, params, atr14)
    reason: Reason | None = None
    if last <= lv.stop + _EPS:
        reason = Reason.SWING_STOP
    elif lv.trail is not None and last <= lv.trail + _EPS:
        reason = Reason.SWING_TRAIL
    elif last >= lv.take_profit - _EPS:
        reason = Reason.SWING_TAKE_PROFIT
    return ExitCheck(reason, last, pk, lv)


def _bar_starts(index: pd.Index) -> pd.DatetimeIndex:
    """The bar starts as one timezone-aware index (naive read as New York), converted at once."""
    starts = pd.DatetimeIndex(index)
    return starts.tz_localize(NEW_YORK) if starts.tz is None else starts


def peak_since_entry(
    entry_ts: datetime,
    fill: float,
    bars: pd.DataFrame | None,
    last: float | None = None,
    interval: timedelta = timedelta(days=1),
) -> float:
    """Highest price since ``entry_ts`` from ``bars`` (columns ``high``, ``close``; index = bar start,
    naive dates/timestamps read as New York), the fill and ``last``."""
    if entry_ts.tzinfo is None or entry_ts.utcoffset() is None:
        raise ValueError("entry_ts must be timezone-aware")
    peak = fill
    if last is not None:
        peak = max(peak, last)
    if bars is None or len(bars) == 0:
        return peak
    starts, entry = _bar_starts(bars.index), pd.Timestamp(entry_ts)
    after = starts >= entry
    straddling = ~after & (starts + interval > entry)  # the entry bar itself: only its close is after the fill
    seen = pd.concat([bars["high"][after], bars["close"][straddling]]).dropna()
    return max(peak, float(seen.max())) if len(seen) else peak


# -- S7 ------------------------------------------------------------------------------------------


def ny_date(ts: datetime) -> date:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return ts.astimezone(NEW_YORK).date()


def held_trading_days(entry_ts: datetime, now: datetime, sessions: Sequence[date] | None = None) -> int:
    """Sessions ``s`` with entry date < s ≤ today (New York); ``sessions`` default to XNYS."""
    entry_day, today = ny_date(entry_ts), ny_date(now)
    if today <= entry_day:
        return 0
    days = sessions if sessions is not None else us.trading_days(entry_day, today)
    return sum(1 for s in days if entry_day < s <= today)


def max_hold_due(entry_ts: datetime, now: datetime, max_hold_days: int, sessions: Sequence[date] | None = None) -> bool:
    return held_trading_days(entry_ts, now, sessions) >= max_hold_days


# -- S8 ------------------------------------------------------------------------------------------


def format_entry_ts(entry_ts: datetime | str) -> str:
    """UTC ISO 8601 with ``Z`` (a string is taken as the OMS gave it)."""
    if isinstance(entry_ts, str):
        if not entry_ts:
            raise ValueError("entry_ts is empty")
        return entry_ts
    if entry_ts.tzinfo is None or entry_ts.utcoffset() is None:
        raise ValueError("entry_ts must be timezone-aware")
    return entry_ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def exit_key(symbol: str, entry_ts: datetime | str) -> str:
    """``SWING_ML:<symbol>:EXIT:<entry_ts>``: one exit per holding, whoever decides it."""
    return f"{STRATEGY_ID}:{symbol}:EXIT:{format_entry_ts(entry_ts)}"


@dataclass(frozen=True, slots=True)
class ExitGate:
    submit: bool
    reason: Reason | None
    """DUPLICATE_SUPPRESSED when not submitting."""
    detail: str


def exit_gate(allocation_qty: int, sell_working: bool) -> ExitGate:
    """S8, on the allocation and working orders re-read (under the per-symbol lock) just before a
    SELL: allocation 0 or a sell already working → no-op ``DUPLICATE_SUPPRESSED``."""
    if allocation_qty <= 0:
        return ExitGate(False, Reason.DUPLICATE_SUPPRESSED, "allocation is 0")
    if sell_working:
        return ExitGate(False, Reason.DUPLICATE_SUPPRESSED, "a sell is already working")
    return ExitGate(True, None, "submit")
