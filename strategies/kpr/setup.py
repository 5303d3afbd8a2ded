"""P6–P7: setup detection on each completed 1m bar, and the setup lock.

``drop = (HOD − C)/HOD``; ``depth = (VWAP − C)/VWAP``; ``dt`` = minutes from the HOD bar's start to
this bar's start. Setup if ``depth ∈ [0.02, 0.05]`` and either PANIC (``drop ≥ 0.03 ∧ dt ≤ 15``) or
DRIFT (``drop ≥ 0.02 ∧ dt ≥ 60``). On lock: ``setup_low = LOD``, ``reclaim = setup_low·1.003``,
``stop_level = setup_low·0.997`` (thresholds, not rounded to ticks: B1).

HOD, LOD and VWAP are the session's values including the bar just completed (B3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from strategies.kpr.config import KprParams

_EPS = 1e-9


class SetupType(StrEnum):
    PANIC = "PANIC"
    DRIFT = "DRIFT"


@dataclass(frozen=True, slots=True)
class SetupCheck:
    drop: float
    depth: float
    dt_min: float
    type: SetupType | None

    def fields(self) -> dict[str, Any]:
        return {"drop": round(self.drop, 6), "depth": round(self.depth, 6), "dt_min": self.dt_min}


def check_setup(hod: float, hod_minute: int, close: float, vwap: float, bar_minute: int, p: KprParams) -> SetupCheck:
    """P6 on one completed bar (minutes are minutes of the day)."""
    drop = (hod - close) / hod
    depth = (vwap - close) / vwap
    dt = float(bar_minute - hod_minute)
    kind: SetupType | None = None
    if p.depth_min - _EPS <= depth <= p.depth_max + _EPS:
        if drop >= p.panic_drop_min - _EPS and dt <= p.panic_max_minutes + _EPS:
            kind = SetupType.PANIC
        elif drop >= p.drift_drop_min - _EPS and dt >= p.drift_min_minutes - _EPS:
            kind = SetupType.DRIFT
    return SetupCheck(drop, depth, dt, kind)


@dataclass(frozen=True, slots=True)
class Setup:
    """A locked setup (P7)."""

    type: SetupType
    setup_low: float
    reclaim: float
    stop_level: float
    drop: float
    depth: float
    dt_min: float
    hod: float
    vwap: float
    close: float
    locked_at: datetime
    """End of the bar that locked it."""
    bar_minute: int

    def fields(self) -> dict[str, Any]:
        return {
            "setup_type": self.type.value,
            "drop": round(self.drop, 6),
            "depth": round(self.depth, 6),
            "dt_min": self.dt_min,
            "hod": self.hod,
            "vwap": round(self.vwap, 4),
            "close": self.close,
            "setup_low": self.setup_low,
            "reclaim": round(self.reclaim, 4),
            "stop_level": round(self.stop_level, 4),
        }


def lock_setup(
    check: SetupCheck,
    lod: float,
    hod: float,
    vwap: float,
    close: float,
    locked_at: datetime,
    bar_minute: int,
    p: KprParams,
) -> Setup:
    """P7: ``setup_low = LOD``, ``reclaim = LOD·(1 + 0.3%)``, ``stop_level = LOD·(1 − 0.3%)``."""
    assert check.type is not None
    return Setup(
        type=check.type,
        setup_low=lod,
        reclaim=lod * (1 + p.reclaim_offset),
        stop_level=lod * (1 - p.stop_offset),
        drop=check.drop,
        depth=check.depth,
        dt_min=check.dt_min,
        hod=hod,
        vwap=vwap,
        close=close,
        locked_at=locked_at,
        bar_minute=bar_minute,
    )
