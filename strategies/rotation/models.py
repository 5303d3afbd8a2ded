"""M1–M4: the four rotation models as pure functions of daily adjusted closes and the decision day.

A model returns a :class:`ModelDecision`:

* ``REBALANCE`` — ``weights`` is the model's whole target book (symbol → weight; absent = 0);
* ``HOLD`` — M3, less than 7 calendar days since the last rebalance: keep the current book;
* ``INACTIVE`` — M2, not active in this regime: no weights (``weights is None``);
* ``EXIT`` — M4 only, between rebalances: ``weights`` lists the held sectors to set to 0, the rest is held.

``last_rebalance`` is an input and the decision carries the value to keep for the next call, so the
model keeps no memory (a restart changes nothing). A rerun on the day of the last rebalance rebalances
again with the same result (the OMS dedups it by idempotency key) instead of holding: a cycle that
died half-way is completed, not abandoned. Rebalances on different days stay ≥ 7 days apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

from strategies.rotation.config import DEFAULT_CONFIG, EarlyExit, LegParams, ModelParams, RotationConfig, VolScaling
from strategies.rotation.history import DayLike, as_day, history, sessions_between
from strategies.rotation.reasons import RotationReason
from strategies.rotation.regime import Regime, RegimeReading, above_own_mean, market_regime


class Action(StrEnum):
    REBALANCE = "rebalance"
    HOLD = "hold"
    INACTIVE = "inactive"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Holding:
    """A model's open allocation in one symbol, as the OMS reports it (M4's inputs)."""

    symbol: str
    entry_price: float
    """Cost basis per share."""
    entry_day: date
    """The New York session of the allocation's ``entry_ts``."""
    atr: float | None
    """ATR12 at entry (:func:`strategies.rotation.data.atr_at_entry`); None → no early exit."""


@dataclass(frozen=True, slots=True)
class ModelDecision:
    model: str
    day: date
    action: Action
    reason: RotationReason
    regime: RegimeReading
    """The regime the model acted on: SPY's (R1–R3), or XLK's for the adaptive model (M4)."""
    weights: dict[str, float] | None
    last_rebalance: date | None
    """The last-rebalance date to pass to the next call."""
    ranking: tuple[tuple[str, float], ...] = ()
    """Momentum of every ranked sector, best first (rebalances only)."""
    leg: LegParams | None = None
    vol_scale: float | None = None
    realised_vol: float | None = None
    exits: dict[str, RotationReason] = field(default_factory=dict)
    """M4: symbol → ROTATION_TAKE_PROFIT / ROTATION_STOP acted on."""
    guarded: dict[str, RotationReason] = field(default_factory=dict)
    """M4: exit levels hit inside the PDT guard, not acted on (symbol → the exit that would have fired)."""

    @property
    def target(self) -> dict[str, float] | None | Literal["hold"]:
        """The tri-state of the spec: weights (rebalance), None (inactive), "hold" (hold; M4 exits aside)."""
        if self.action is Action.INACTIVE:
            return None
        if self.action is Action.REBALANCE:
            return dict(self.weights or {})
        return "hold"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the model part of an M9 audit line)."""
        return {
            "model": self.model,
            "day": self.day.isoformat(),
            "action": self.action.value,
            "reason": self.reason.value,
            "regime": self.regime.as_dict(),
            "weights": self.weights,
            "last_rebalance": self.last_rebalance.isoformat() if self.last_rebalance else None,
            "momentum_ranks": [
                {"rank": i + 1, "symbol": s, "momentum": round(m, 6)} for i, (s, m) in enumerate(self.ranking)
            ],
            "leg": self.leg.model_dump() if self.leg else None,
            "vol_scale": self.vol_scale,
            "realised_vol": self.realised_vol,
            "exits": {s: r.value for s, r in self.exits.items()},
            "guarded_exits": {s: r.value for s, r in self.guarded.items()},
        }


# --------------------------------------------------------------------------- building blocks


def momentum(values: np.ndarray, period: int) -> float | None:
    """close / close ``period`` sessions ago − 1; None with fewer than ``period`` + 1 closes."""
    if len(values) < period + 1:
        return None
    return float(values[-1] / values[-1 - period] - 1.0)


def momentum_ranking(
    closes: pd.DataFrame, day: DayLike, universe: Iterable[str], period: int
) -> list[tuple[str, float]]:
    """Sectors with enough history, by momentum best first (ties by symbol, so the order is stable)."""
    ranked = []
    for sym in universe:
        m = momentum(history(closes, sym, day), period)
        if m is not None and math.isfinite(m):
            ranked.append((sym, m))
    return sorted(ranked, key=lambda sm: (-sm[1], sm[0]))


def select_weights(
    ranking: list[tuple[str, float]], leg: LegParams, defensive: str, scale: float = 1.0
) -> tuple[dict[str, float], RotationReason]:
    """M1: top_n by momentum, keep momentum ≥ min_momentum, equal weights summing to leverage × scale;
    nothing kept → the defensive asset at 1.0 (unscaled)."""
    kept = [s for s, m in ranking[: leg.top_n] if m >= leg.min_momentum]
    if not kept:
        return {defensive: 1.0}, RotationReason.ROTATION_DEFENSIVE_TLT
    w = leg.leverage * scale / len(kept)
    return {s: w for s in kept}, RotationReason.ROTATION_REBALANCE


def rebalance_due(day: DayLike, last_rebalance: DayLike | None, every_days: int = 7) -> bool:
    """M3: due with no previous rebalance, ≥ ``every_days`` calendar days after it, or on its own day (rerun)."""
    if last_rebalance is None:
        return True
    d, last = as_day(day), as_day(last_rebalance)
    if last > d:
        raise ValueError(f"last rebalance {last.date()} is after the decision day {d.date()}")
    return d == last or (d - last).days >= every_days


def vol_scale(closes: pd.DataFrame, day: DayLike, vs: VolScaling) -> tuple[float, float | None]:
    """M4: (clamp(target / realised vol, floor, cap), realised vol); realised vol = annualised sample std of
    the last ``window`` daily returns. Too little history → scale 1.0; zero vol → the cap."""
    values = history(closes, vs.symbol, day)
    if len(values) < vs.window + 1:
        return 1.0, None
    window = values[-(vs.window + 1) :]
    returns = window[1:] / window[:-1] - 1.0
    rv = float(np.std(returns, ddof=1)) * math.sqrt(vs.annualisation)
    if rv <= 0:
        return vs.cap, rv
    return min(max(vs.target / rv, vs.floor), vs.cap), rv


def exit_signal(price: float, holding: Holding, ee: EarlyExit) -> RotationReason | None:
    """M4: take profit at entry + k·ATR, stop at entry − k·ATR (the ATR at entry); None in between."""
    if holding.atr is None or not holding.atr > 0:
        return None
    if price >= holding.entry_price + ee.take_profit_atr * holding.atr:
        return RotationReason.ROTATION_TAKE_PROFIT
    if price <= holding.entry_price - ee.stop_atr * holding.atr:
        return RotationReason.ROTATION_STOP
    return None


def early_exits(
    closes: pd.DataFrame,
    day: DayLike,
    holdings: Iterable[Holding],
    ee: EarlyExit,
    universe: Iterable[str],
    prices: Mapping[str, float] | None = None,
) -> tuple[dict[str, RotationReason], dict[str, RotationReason]]:
    """(exits acted on, exits inside the PDT guard) for the held sectors (the defensive asset has none).

    The price checked is ``prices[symbol]`` when given (the live price), else the latest close ≤ day."""
    sectors = set(universe)
    exits: dict[str, RotationReason] = {}
    guarded: dict[str, RotationReason] = {}
    for h in sorted(holdings, key=lambda h: h.symbol):
        if h.symbol not in sectors:
            continue
        if prices is not None and h.symbol in prices:
            price = float(prices[h.symbol])
        else:
            values = history(closes, h.symbol, day)
            if not len(values):
                continue
            price = float(values[-1])
        signal = exit_signal(price, h, ee)
        if signal is None:
            continue
        if sessions_between(h.entry_day, day) < ee.min_hold_sessions:
            guarded[h.symbol] = signal
        else:
            exits[h.symbol] = signal
    return exits, guarded


# --------------------------------------------------------------------------- the models


def decide(
    name: str,
    closes: pd.DataFrame,
    day: DayLike,
    *,
    last_rebalance: DayLike | None = None,
    holdings: Iterable[Holding] = (),
    prices: Mapping[str, float] | None = None,
    config: RotationConfig = DEFAULT_CONFIG,
) -> ModelDecision:
    """Run model ``name`` of the registry on the closes dated on or before ``day``.

    ``holdings`` and ``prices`` matter only to a model with early exits (M4), on days between rebalances."""
    mp: ModelParams = config.model(name)
    d = as_day(day).date()
    last = as_day(last_rebalance).date() if last_rebalance is not None else None
    shared = market_regime(closes, day, config.regime)
    if mp.active != "always" and shared.regime.value != mp.active:
        return ModelDecision(name, d, Action.INACTIVE, RotationReason.ROTATION_INACTIVE, shared, None, last)
    reading = above_own_mean(closes, mp.regime_symbol, day, mp.regime_ma) if mp.regime_symbol else shared
    leg = mp.bull if reading.regime is Regime.BULL else mp.bear
    if not rebalance_due(d, last, mp.rebalance_days):
        exits: dict[str, RotationReason] = {}
        guarded: dict[str, RotationReason] = {}
        if mp.early_exit is not None:
            exits, guarded = early_exits(closes, day, holdings, mp.early_exit, config.universe, prices)
        if exits:
            kinds = set(exits.values())
            reason = RotationReason.ROTATION_STOP if RotationReason.ROTATION_STOP in kinds else next(iter(kinds))
            weights = {s: 0.0 for s in exits}
            return ModelDecision(name, d, Action.EXIT, reason, reading, weights, last, exits=exits, guarded=guarded)
        return ModelDecision(name, d, Action.HOLD, RotationReason.ROTATION_HOLD, reading, None, last, guarded=guarded)
    ranking = momentum_ranking(closes, day, config.universe, leg.period)
    scale, rv = vol_scale(closes, day, mp.vol_scaling) if mp.vol_scaling else (1.0, None)
    weights, reason = select_weights(ranking, leg, config.defensive, scale)
    return ModelDecision(
        name,
        d,
        Action.REBALANCE,
        reason,
        reading,
        weights,
        d,
        ranking=tuple(ranking),
        leg=leg,
        vol_scale=scale if mp.vol_scaling else None,
        realised_vol=rv,
    )


def rotation_core(
    closes: pd.DataFrame,
    day: DayLike,
    *,
    last_rebalance: DayLike | None = None,
    config: RotationConfig = DEFAULT_CONFIG,
) -> ModelDecision:
    """Always active: top 3 of 126-session momentum ≥ 0, 1/3 each (else TLT)."""
    return decide("rotation_core", closes, day, last_rebalance=last_rebalance, config=config)


def rotation_bull(
    closes: pd.DataFrame,
    day: DayLike,
    *,
    last_rebalance: DayLike | None = None,
    config: RotationConfig = DEFAULT_CONFIG,
) -> ModelDecision:
    """Bull regime only: top 4 of 80-session momentum ≥ 3%, weights summing to 1.3 (else TLT)."""
    return decide("rotation_bull", closes, day, last_rebalance=last_rebalance, config=config)


def rotation_bear(
    closes: pd.DataFrame,
    day: DayLike,
    *,
    last_rebalance: DayLike | None = None,
    config: RotationConfig = DEFAULT_CONFIG,
) -> ModelDecision:
    """Bear regime only: top 2 of 126-session momentum ≥ 10%, weights summing to 1.0 (else TLT)."""
    return decide("rotation_bear", closes, day, last_rebalance=last_rebalance, config=config)


def rotation_adaptive(
    closes: pd.DataFrame,
    day: DayLike,
    *,
    last_rebalance: DayLike | None = None,
    holdings: Iterable[Holding] = (),
    prices: Mapping[str, float] | None = None,
    config: RotationConfig = DEFAULT_CONFIG,
) -> ModelDecision:
    """Always active, XLK regime: bull 138/4/1.86, bear 175/3/2.0, × vol scale; early TP/stop exits (M4)."""
    return decide(
        "rotation_adaptive",
        closes,
        day,
        last_rebalance=last_rebalance,
        holdings=holdings,
        prices=prices,
        config=config,
    )


MODEL_NAMES: tuple[str, ...] = ("rotation_core", "rotation_bull", "rotation_bear", "rotation_adaptive")
