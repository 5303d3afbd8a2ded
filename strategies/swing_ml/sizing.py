"""S4: half-Kelly position size capped at 10 % of NAV, and the S3.6 marketable limit.

``f* = p − (1 − p)/b`` with p = the model's probability and b = take-profit distance / stop-loss
distance (0.04/0.025 = 1.6 with the fixed thresholds; 2.5/1.5 with ``atr_dynamic``). Fraction of NAV
= ``min(kelly_fraction · f*, max_position_pct)``; f* ≤ 0 → no BUY. Shares = floor(fraction·NAV /
limit price) **[interpreted]**: notional at the limit price (the most the order can cost); fewer
than one share → no BUY.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker_core.markets import us
from strategies.swing_ml.config import RiskParams, SizingParams
from strategies.swing_ml.reasons import Reason


def kelly(p: float, b: float) -> float:
    """``f* = p − (1 − p)/b``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability out of [0, 1]: {p}")
    if b <= 0:
        raise ValueError(f"payoff ratio must be > 0: {b}")
    return p - (1.0 - p) / b


@dataclass(frozen=True, slots=True)
class SizeDecision:
    p: float
    b: float
    f_star: float
    scaled: float
    """kelly_fraction · f* (0 when f* ≤ 0)."""
    fraction: float
    """Fraction of NAV to buy, after the cap."""
    capped: bool
    qty: int
    reason: Reason | None
    """None when sized; SWING_SKIP_KELLY when f* ≤ 0 or below one share."""

    def fields(self) -> dict[str, object]:
        return {
            "p": round(self.p, 6),
            "b": round(self.b, 6),
            "f_star": round(self.f_star, 6),
            "half_kelly": round(self.scaled, 6),
            "fraction": round(self.fraction, 6),
            "capped": self.capped,
            "qty": self.qty,
        }


def kelly_fraction_of_nav(p: float, b: float, sizing: SizingParams) -> tuple[float, float, float, bool]:
    """(f*, scaled, fraction, capped)."""
    f = kelly(p, b)
    if f <= 0:
        return f, 0.0, 0.0, False
    scaled = sizing.kelly_fraction * f
    fraction = min(scaled, sizing.max_position_pct)
    return f, scaled, fraction, scaled > sizing.max_position_pct


def size_buy(p: float, nav: float, limit_price: float, sizing: SizingParams, risk: RiskParams) -> SizeDecision:
    b = risk.payoff_ratio
    f, scaled, fraction, capped = kelly_fraction_of_nav(p, b, sizing)
    qty = math.floor(fraction * nav / limit_price + 1e-9) if fraction > 0 and limit_price > 0 and nav > 0 else 0
    reason = None if qty >= 1 else Reason.SWING_SKIP_KELLY
    return SizeDecision(p, b, f, scaled, fraction, capped, max(qty, 0), reason)


def marketable_limit(ref_price: float, buy: bool, band_pct: float = 0.002) -> float:
    """S3.6: buy ``round_up(ref·(1+b))``, sell ``round_down(ref·(1−b))`` on the US tick grid, at least
    one tick through ``ref``."""
    return us.marketable_limit(ref_price, buy, band_pct=band_pct, ticks=1)
