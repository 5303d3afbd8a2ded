"""P14–P15: entry limit price and position size.

* Limit (P15): marketable ``up(best_ask, 2)`` with a fresh quote, else ``up(last, 3)``.
* ``qty = floor(0.005·NAV · conf · stale · tod / (limit − stop_level))`` with conf GREEN 1.0 /
  YELLOW 0.65, stale 0.85 or 1.0, tod 09:30–10:30 1.0 · 10:30–11:20 0.8 · 13:10–14:00 0.9 ·
  14:00–14:30 0.5 (0 outside the bands: no entry).
* **[resolved]** caps after the formula, so the OMS never has to cut: per-position notional
  ≤ 15% NAV (§0.2), KPR notional (positions + working entries) ≤ the strategy budget (30% NAV, the
  OMS's ``strategy_budgets``), and buyable cash. The two NAV caps keep ``cap_margin_pct``·NAV of room
  below the OMS's: KPR's NAV is polled and its marks lag, so a sizing exactly at the OMS's limit was
  refused when the OMS's valuation of the same instant was a tick lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import time
from typing import Any

from broker_core.market_rules import up
from strategies.kpr.config import KprParams

_EPS = 1e-9


def tod_mult(t: time, p: KprParams) -> float:
    return next((b.mult for b in p.tod_bands if b.contains(t)), 0.0)


def entry_limit(ask: float | None, last: float | None, p: KprParams) -> tuple[int, str] | None:
    """(limit, reference) of the marketable buy limit, or None without any price."""
    if ask is not None and ask > 0:
        return up(ask, p.entry_ask_ticks), "ask"
    if last is not None and last > 0:
        return up(last, p.entry_last_ticks), "last"
    return None


@dataclass(frozen=True, slots=True)
class SizeResult:
    qty_formula: int
    qty: int
    capped_by: str | None
    factor: float
    """conf · stale · tod"""

    def fields(self) -> dict[str, Any]:
        return {
            "qty_formula": self.qty_formula,
            "qty": self.qty,
            "capped_by": self.capped_by,
            "size_factor": round(self.factor, 6),
        }


def position_size(
    nav: float,
    limit: float,
    stop_level: float,
    conf: float,
    stale: float,
    tod: float,
    p: KprParams,
    *,
    kpr_notional: float = 0.0,
    buyable_cash: float | None = None,
) -> SizeResult:
    factor = conf * stale * tod
    risk = limit - stop_level
    if nav <= 0 or risk <= 0 or factor <= 0:
        return SizeResult(0, 0, None, factor)
    formula = max(0, math.floor(p.base_risk_pct * nav * factor / risk + _EPS))
    qty, by = formula, None
    margin = p.cap_margin_pct * nav
    caps = [("nav_cap", p.nav_cap_pct * nav - margin)]
    if p.strategy_budget_pct is not None:
        caps.append(("strategy_budget", p.strategy_budget_pct * nav - margin - kpr_notional))
    if buyable_cash is not None:
        caps.append(("buyable_cash", buyable_cash))
    for name, room in caps:
        allowed = max(0, math.floor(max(0.0, room) / limit + _EPS))
        if allowed < qty:
            qty, by = allowed, name
    return SizeResult(formula, qty, by, factor)
