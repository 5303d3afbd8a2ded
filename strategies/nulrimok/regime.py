"""N4 market regime: four boolean components, a weighted score, a tier and its risk multiplier.

``score = 0.25·price + 0.30·breadth + 0.25·vol + 0.20·fx``; Tier A score > 0.65 (risk_mult 1.0),
B 0.40–0.65 (0.5), C < 0.40 (0.0, no entries).

**[resolved]** without the optional KRW/USD file the fx rule is *skipped*: the score is taken over the
other three weights (``Σ w·c / Σ w``, reported under ``skipped``). Any other component whose input is
missing (too little index history, no breadth population) counts as false (reported under ``missing``),
so missing market data never loosens the regime. With all four present this is the spec's score exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.features import quantile, realized_vol
from strategies.sdk.indicators import sma


@dataclass(frozen=True, slots=True)
class RegimeResult:
    asof: date
    price_ok: bool | None
    breadth_ok: bool | None
    vol_ok: bool | None
    fx_ok: bool | None
    score: float
    tier: str
    risk_mult: float
    index_close: float | None = None
    index_ma: float | None = None
    breadth: float | None = None
    breadth_n: int = 0
    rv: float | None = None
    rv_threshold: float | None = None
    fx_change: float | None = None

    @property
    def skipped(self) -> list[str]:
        """Rules left out of the score (their optional input is absent)."""
        return ["fx"] if self.fx_ok is None else []

    @property
    def missing(self) -> list[str]:
        """Components without data, counted as false."""
        return [n for n in ("price", "breadth", "vol") if getattr(self, f"{n}_ok") is None]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["asof"] = self.asof.isoformat()
        out["skipped"] = self.skipped
        out["missing"] = self.missing
        return out


def regime_score(
    price_ok: bool | None, breadth_ok: bool | None, vol_ok: bool | None, fx_ok: bool | None, p: NulrimokParams
) -> float:
    """``fx_ok`` None = the fx rule skipped (score over the other weights); other None = false."""
    parts = [(bool(price_ok), p.w_price), (bool(breadth_ok), p.w_breadth), (bool(vol_ok), p.w_vol)]
    if fx_ok is not None:
        parts.append((fx_ok, p.w_fx))
    total = sum(w for _, w in parts)
    if total <= 0:
        return 0.0
    return round(sum(w for ok, w in parts if ok) / total, 10)


def tier_of(score: float, p: NulrimokParams) -> tuple[str, float]:
    if score > p.tier_a_above:
        return "A", p.risk_mult_a
    if score >= p.tier_b_from:
        return "B", p.risk_mult_b
    return "C", p.risk_mult_c


def compute_regime(
    asof: date,
    index_closes: Sequence[float],
    breadth_flags: Sequence[bool],
    fx_closes: Sequence[float] | None,
    p: NulrimokParams,
) -> RegimeResult:
    """``index_closes`` and ``fx_closes`` end on ``asof`` (oldest first); ``breadth_flags``: close > SMA20 per
    member. ``fx_closes`` None = no KRW/USD input (fx skipped)."""
    close = index_closes[-1] if index_closes else None
    ma = sma(index_closes, p.regime_ma) if index_closes else None
    price_ok = close > ma if close is not None and ma is not None else None
    breadth = sum(breadth_flags) / len(breadth_flags) if breadth_flags else None
    breadth_ok = breadth > p.breadth_min if breadth is not None else None
    rv = realized_vol(index_closes, p.vol_window)
    history = [
        v
        for v in (realized_vol(index_closes[: len(index_closes) - k], p.vol_window) for k in range(p.vol_lookback))
        if v is not None
    ]
    threshold = quantile(history, p.vol_pct_max) if len(history) >= p.vol_lookback // 2 else None
    vol_ok = rv < threshold if rv is not None and threshold is not None else None
    fx_change = None
    if fx_closes is not None and len(fx_closes) > p.fx_days:
        fx_change = fx_closes[-1] / fx_closes[-1 - p.fx_days] - 1.0
    fx_ok = fx_change < p.fx_max_change if fx_change is not None else None
    score = regime_score(price_ok, breadth_ok, vol_ok, fx_ok, p)
    tier, mult = tier_of(score, p)
    return RegimeResult(
        asof=asof,
        price_ok=price_ok,
        breadth_ok=breadth_ok,
        vol_ok=vol_ok,
        fx_ok=fx_ok,
        score=score,
        tier=tier,
        risk_mult=mult,
        index_close=close,
        index_ma=ma,
        breadth=breadth,
        breadth_n=len(breadth_flags),
        rv=rv,
        rv_threshold=threshold,
        fx_change=fx_change,
    )
