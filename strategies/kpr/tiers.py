"""P1–P4: the tiered universe (HOT on the stream, WARM / COLD on REST polling).

==========  ==========================================================================  ==========
tier        membership (any)                                                            data
==========  ==========================================================================  ==========
HOT         in position; FSM ∈ {SETUP_DETECTED, ACCEPTING, entry working}; drop from     WS ticks
            open ≤ −1.5%; VWAP depth in [2%, 5%]; range expansion
WARM        drop from open ≤ −0.7%; range expansion; depth ≥ 1%                         REST 30 s
COLD        everything else                                                             REST 180 s
==========  ==========================================================================  ==========

Range expansion (P2): ``HOD − LOD ≥ 0.8 × daily ATR20``. Promotion is immediate (P3) — within the
caps: HOT holds at most ``hot_max`` (the KPR slot lease) and WARM at most ``warm_max`` symbols.
When HOT is full, a new symbol takes the place of the weakest evictable one only if it ranks higher
(P4 order: outside the depth band before inside, then smaller |drop from open| first); protected
symbols (position, setup, accepting, entry working) always get HOT and are never evicted — when they
alone exceed the lease, the excess runs on REST at the WARM cadence (the engine's job). WARM is
capped the same way by |drop from open|. Demotion (P3): HOT→WARM when not protected and no HOT
criterion for 10 min; WARM→COLD when no WARM (or HOT) criterion for 15 min.

**[resolved]** a HOT-eligible symbol that does not get a HOT place is WARM (its criteria imply a WARM
one); the ranking breaks ties by symbol so runs are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from strategies.kpr.config import KprParams

_EPS = 1e-12


class Tier(StrEnum):
    HOT = "HOT"
    WARM = "WARM"
    COLD = "COLD"


@dataclass(frozen=True, slots=True)
class TierView:
    """What the tier rules read of one symbol (from :class:`strategies.kpr.minutes.MinuteSeries` + FSM)."""

    drop_open: float | None = None
    """pct(last, open): −0.02 = 2% below the session open."""
    depth: float | None = None
    """(VWAP − last)/VWAP."""
    range_expansion: bool = False
    protected: bool = False
    """In position, SETUP_DETECTED, ACCEPTING or entry working."""
    in_position: bool = False


def in_band(depth: float | None, p: KprParams) -> bool:
    return depth is not None and p.depth_min - _EPS <= depth <= p.depth_max + _EPS


def range_expansion(day_range: float | None, atr20: float | None, p: KprParams) -> bool:
    """P2: ``(HOD − LOD) ≥ 0.8 × ATR20``."""
    return day_range is not None and atr20 is not None and atr20 > 0 and day_range >= p.range_expansion_atr * atr20


def hot_reasons(v: TierView, p: KprParams) -> tuple[str, ...]:
    out = []
    if v.in_position:
        out.append("position")
    elif v.protected:
        out.append("setup")
    if v.drop_open is not None and v.drop_open <= p.hot_drop_open + _EPS:
        out.append("drop_open")
    if in_band(v.depth, p):
        out.append("depth_band")
    if v.range_expansion:
        out.append("range_expansion")
    return tuple(out)


def warm_reasons(v: TierView, p: KprParams) -> tuple[str, ...]:
    out = []
    if v.drop_open is not None and v.drop_open <= p.warm_drop_open + _EPS:
        out.append("drop_open")
    if v.range_expansion:
        out.append("range_expansion")
    if v.depth is not None and v.depth >= p.warm_depth_min - _EPS:
        out.append("depth")
    return tuple(out)


def hot_rank(symbol: str, v: TierView, p: KprParams) -> tuple[int, float, str]:
    """Eviction order of P4: the smallest rank goes first (outside the band, then small |drop|)."""
    return (1 if in_band(v.depth, p) else 0, abs(v.drop_open or 0.0), symbol)


def warm_rank(symbol: str, v: TierView) -> tuple[float, str]:
    return (abs(v.drop_open or 0.0), symbol)


@dataclass(frozen=True, slots=True)
class Move:
    symbol: str
    old: Tier
    new: Tier
    why: str
    """promote · evicted · demote · hot_full · warm_full"""
    reasons: tuple[str, ...] = ()


class TierBook:
    """Tier of every universe symbol; O(1) per observation, O(|HOT| + |WARM|) per sweep."""

    def __init__(self, p: KprParams) -> None:
        self.p = p
        self.tier: dict[str, Tier] = {}
        self.views: dict[str, TierView] = {}
        self.hot: set[str] = set()
        self.warm: set[str] = set()
        self.last_hot: dict[str, datetime] = {}
        self.last_warm: dict[str, datetime] = {}

    def add(self, symbol: str, tier: Tier = Tier.COLD) -> None:
        self.views.setdefault(symbol, TierView())
        self._set(symbol, tier)

    def of(self, symbol: str) -> Tier:
        return self.tier.get(symbol, Tier.COLD)

    def _set(self, symbol: str, tier: Tier) -> None:
        self.tier[symbol] = tier
        self.hot.discard(symbol)
        self.warm.discard(symbol)
        if tier is Tier.HOT:
            self.hot.add(symbol)
        elif tier is Tier.WARM:
            self.warm.add(symbol)

    def _move(self, symbol: str, new: Tier, why: str, reasons: tuple[str, ...], out: list[Move]) -> None:
        old = self.of(symbol)
        if old is new:
            return
        self._set(symbol, new)
        out.append(Move(symbol, old, new, why, reasons))

    # ---- observation (promotion)
    def observe(self, symbol: str, view: TierView, now: datetime) -> list[Move]:
        """New data for ``symbol``: record its criteria and promote it at once when one is met."""
        if symbol not in self.tier:
            self.add(symbol)
        self.views[symbol] = view
        hot = hot_reasons(view, self.p)
        warm = warm_reasons(view, self.p)
        if hot:
            self.last_hot[symbol] = now
        if hot or warm:
            self.last_warm[symbol] = now
        out: list[Move] = []
        cur = self.of(symbol)
        if hot and cur is not Tier.HOT:
            self._promote_hot(symbol, hot, out)
        elif warm and cur is Tier.COLD:
            self._promote_warm(symbol, warm, "promote", out)
        if view.protected and len(self.hot) > self.p.hot_max:
            self._evict_hot(out)
        return out

    def _promote_hot(self, symbol: str, reasons: tuple[str, ...], out: list[Move]) -> None:
        view = self.views[symbol]
        if view.protected or len(self.hot) < self.p.hot_max:
            self._move(symbol, Tier.HOT, "promote", reasons, out)
            self._evict_hot(out)
            return
        victim = self._weakest_hot()
        if victim is not None and hot_rank(symbol, view, self.p) > hot_rank(victim, self.views[victim], self.p):
            self._demote_to_warm(victim, "evicted", out)
            self._move(symbol, Tier.HOT, "promote", reasons, out)
        elif self.of(symbol) is Tier.COLD:
            self._promote_warm(symbol, reasons, "hot_full", out)

    def _weakest_hot(self) -> str | None:
        evictable = [s for s in self.hot if not self.views[s].protected]
        if not evictable:
            return None
        return min(evictable, key=lambda s: hot_rank(s, self.views[s], self.p))

    def _evict_hot(self, out: list[Move]) -> None:
        while len(self.hot) > self.p.hot_max:
            victim = self._weakest_hot()
            if victim is None:
                return
            self._demote_to_warm(victim, "evicted", out)

    def _demote_to_warm(self, symbol: str, why: str, out: list[Move]) -> None:
        self._move(symbol, Tier.WARM, why, (), out)
        self._trim_warm(out)

    def _promote_warm(self, symbol: str, reasons: tuple[str, ...], why: str, out: list[Move]) -> None:
        if len(self.warm) < self.p.warm_max:
            self._move(symbol, Tier.WARM, why, reasons, out)
            return
        victim = min(self.warm, key=lambda s: warm_rank(s, self.views[s]), default=None)
        if victim is not None and warm_rank(symbol, self.views[symbol]) > warm_rank(victim, self.views[victim]):
            self._move(victim, Tier.COLD, "warm_full", (), out)
            self._move(symbol, Tier.WARM, why, reasons, out)

    def _trim_warm(self, out: list[Move]) -> None:
        while len(self.warm) > self.p.warm_max:
            victim = min(self.warm, key=lambda s: warm_rank(s, self.views[s]))
            self._move(victim, Tier.COLD, "warm_full", (), out)

    # ---- sweep (demotion)
    def sweep(self, now: datetime) -> list[Move]:
        """P3 demotions and the HOT cap; call every few seconds."""
        out: list[Move] = []
        hot_after = self.p.hot_demote_min * 60.0
        warm_after = self.p.warm_demote_min * 60.0
        for s in sorted(self.hot):
            if self.views[s].protected:
                continue
            seen = self.last_hot.get(s)
            if seen is None or (now - seen).total_seconds() >= hot_after:
                self._demote_to_warm(s, "demote", out)
        for s in sorted(self.warm):
            seen = self.last_warm.get(s)
            if seen is None or (now - seen).total_seconds() >= warm_after:
                self._move(s, Tier.COLD, "demote", (), out)
        self._evict_hot(out)
        return out

    def counts(self) -> dict[str, int]:
        return {"HOT": len(self.hot), "WARM": len(self.warm), "COLD": len(self.tier) - len(self.hot) - len(self.warm)}
