"""Sizing and priority (strategies.md I17–I18). Pure.

``raw = floor(risk_pct·NAV / (1.5·ATR20))``; ``final = floor(raw · conviction · soft · tier (· 0.80 for B))``;
then the caps, each logged with its room in shares: notional ≤ 15% NAV; PCIM gross (positions +
working buys + this order) ≤ regime cap · NAV; notional ≤ TV_5m share (T1 15% · T2 12% · T3 8%)
where TV_5m = traded value 09:00–09:05, proxied by ADTV20/78 until known. Rejected when the capped
quantity is below ``floor_frac · raw`` (**[resolved]** the floor is tested after the caps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from strategies.pcim.config import PcimParams


@dataclass(frozen=True, slots=True)
class SizingInput:
    nav: float
    price: float
    atr20: float
    conviction_mult: float
    soft_mult: float
    tier: str
    tier_mult: float
    bucket: str
    regime_cap: float
    pcim_gross: float
    """PCIM notional already used: positions at their last price + working buys at their limits."""
    adtv20: float
    tv5m: float | None = None


@dataclass(frozen=True, slots=True)
class Sizing:
    qty: int
    raw: int
    pre_cap: int
    floor: float
    rejected: bool
    binding: str | None
    caps: dict[str, int] = field(default_factory=dict)
    multipliers: dict[str, float] = field(default_factory=dict)
    tv5m: float | None = None
    tv5m_source: str = ""

    def fields(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "pre_cap": self.pre_cap,
            "qty": self.qty,
            "floor": round(self.floor, 2),
            "rejected": self.rejected,
            "binding_cap": self.binding,
            "caps": dict(self.caps),
            "multipliers": {k: round(v, 4) for k, v in self.multipliers.items()},
            "tv5m": None if self.tv5m is None else round(self.tv5m),
            "tv5m_source": self.tv5m_source,
        }


def raw_qty(nav: float, atr20: float, params: PcimParams) -> int:
    return int(math.floor(params.risk_pct * nav / (params.stop_atr_mult * atr20) + 1e-9))


def tv_share(tier: str, params: PcimParams) -> float:
    return {"T1": params.tv5m_share_t1, "T2": params.tv5m_share_t2}.get(tier, params.tv5m_share_t3)


def size(inp: SizingInput, params: PcimParams) -> Sizing:
    raw = raw_qty(inp.nav, inp.atr20, params)
    mults = {"conviction": inp.conviction_mult, "soft": inp.soft_mult, "tier": inp.tier_mult}
    if inp.bucket == "B":
        mults["bucket_b"] = params.b_size_mult
    product = 1.0
    for v in mults.values():
        product *= v
    pre_cap = int(math.floor(raw * product + 1e-9))
    tv5m, source = (inp.tv5m, "observed") if inp.tv5m is not None else (inp.adtv20 / params.tv5m_proxy_divisor, "proxy")
    caps = {
        "position_15pct_nav": _shares(params.position_cap_pct * inp.nav, inp.price),
        "regime_gross": _shares(inp.regime_cap * inp.nav - inp.pcim_gross, inp.price),
        "tv5m_share": _shares(tv_share(inp.tier, params) * tv5m, inp.price),
    }
    qty, binding = pre_cap, None
    for name, room in caps.items():
        if room < qty:
            qty, binding = room, name
    qty = max(qty, 0)
    floor = params.floor_frac * raw
    rejected = qty <= 0 or qty < floor - 1e-9
    return Sizing(qty, raw, pre_cap, floor, rejected, binding, caps, mults, tv5m, source)


def _shares(notional: float, price: float) -> int:
    if price <= 0:
        return 0
    return max(0, int(math.floor(notional / price + 1e-9)))


def priority_key(bucket: str, conviction: str, gap: float, adtv20: float, symbol: str = "") -> tuple[Any, ...]:
    """I18: (bucket A=0/B=1, conviction HIGH=0/MEDIUM=1, gap ascending, ADTV descending)."""
    return (0 if bucket == "A" else 1, 0 if conviction == "HIGH" else 1, gap, -adtv20, symbol)
