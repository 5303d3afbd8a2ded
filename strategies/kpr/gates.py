"""P12: the entry gates, checked on a qualifying bar once the acceptance closes are met.

In order, the first failure is the reason logged: time window (09:30–11:20, 13:10–14:30;
``KPR_BLOCK_TIMING``), sector (< 2 KPR positions or working entries in the symbol's sector;
``KPR_BLOCK_SECTOR``), confidence (RED → ``KPR_BLOCK_CONFIDENCE``, NONE → ``KPR_BLOCK_NOCONFIRM``),
DEFERRED cooldown (``KPR_BLOCK_RETRY_WAIT``), spread (``KPR_BLOCK_SPREAD``, the OMS's 50 bps, when a
fresh quote is known), budget (NAV known, OMS not halted, qty ≥ 1 after the caps;
``KPR_BLOCK_BUDGET``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from broker_core.contract.reasons import ReasonCode
from strategies.kpr.confidence import Confidence
from strategies.kpr.config import KprParams
from strategies.kpr.timing import in_windows


@dataclass(frozen=True, slots=True)
class GateInputs:
    now: datetime
    t: time
    sector_open: int
    confidence: Confidence
    retry_after: datetime | None
    spread_pct: float | None
    nav: float | None
    halted: bool
    qty: int


@dataclass(frozen=True, slots=True)
class GateResult:
    code: ReasonCode | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code is None


def check_gates(g: GateInputs, p: KprParams) -> GateResult:
    if not in_windows(g.t, p.entry_windows):
        return GateResult(ReasonCode.KPR_BLOCK_TIMING, {"time": g.t.isoformat(timespec="seconds")})
    if g.sector_open >= p.max_per_sector:
        return GateResult(ReasonCode.KPR_BLOCK_SECTOR, {"sector_open": g.sector_open, "max": p.max_per_sector})
    if g.confidence is Confidence.RED:
        return GateResult(ReasonCode.KPR_BLOCK_CONFIDENCE)
    if g.confidence is Confidence.NONE:
        return GateResult(ReasonCode.KPR_BLOCK_NOCONFIRM)
    if g.retry_after is not None and g.now < g.retry_after:
        return GateResult(ReasonCode.KPR_BLOCK_RETRY_WAIT, {"retry_after": g.retry_after.isoformat()})
    if g.spread_pct is not None and g.spread_pct > p.spread_max_pct:
        return GateResult(ReasonCode.KPR_BLOCK_SPREAD, {"spread_pct": round(g.spread_pct, 6)})
    if g.nav is None or g.nav <= 0:
        return GateResult(ReasonCode.KPR_BLOCK_BUDGET, {"why": "NAV unknown"})
    if g.halted:
        return GateResult(ReasonCode.KPR_BLOCK_BUDGET, {"why": "OMS halts new entries"})
    if g.qty < 1:
        return GateResult(ReasonCode.KPR_BLOCK_BUDGET, {"why": "qty < 1"})
    return GateResult(None)
