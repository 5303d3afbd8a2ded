"""M6–M8: one account's model decisions → budgets → capped account weights → SET_TARGET intents.

* M6 budgets: each model's ``budget_fraction`` (default equal), renormalised to 1 over the active models
  (every decision but INACTIVE). A model's contribution to a symbol = budget × its weight.
* M7 caps on the account weights: per symbol ≤ 40% (that symbol's contributions scaled down), then gross
  ≤ 1.25 (everything scaled down proportionally), then positions under $100 dropped (target 0).
* M8 per model and symbol: target shares = floor(capped contribution × equity / price); a change worth
  less than 1% of equity is skipped (a full exit to 0 never is, so no stub is left behind); sells before
  buys. Each order is a SET_TARGET intent with strategy id = the model name upper-cased and idempotency
  key ``model:symbol:session-date``, so a rerun of the day's cycle is deduplicated by the OMS.

What each decision contributes and trades:

==========  ==================================================  ==========================================
action      contribution (for the caps)                         orders
==========  ==================================================  ==========================================
REBALANCE   budget × target weights                             every symbol of the target or held now
HOLD        its current holdings at ``prices``                  none (M3)
EXIT        current holdings, exited symbols at 0               the exited symbols → 0
INACTIVE    nothing (its budget went to the active models)      every holding → 0 (ROTATION_LIQUIDATE)
==========  ==================================================  ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from strategies.rotation.config import OrderParams
from strategies.rotation.history import DayLike, as_day
from strategies.rotation.models import Action, ModelDecision
from strategies.rotation.reasons import RotationReason

_EPS = 1e-9
"""Guards floor() against 99.99999999 for an exact 100 shares."""

Weights = dict[str, float]


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One SET_TARGET intent for the account's OMS (M8)."""

    model: str
    symbol: str
    target_qty: int
    current_qty: int
    price: float
    idempotency_key: str
    reason: RotationReason

    @property
    def strategy_id(self) -> str:
        return self.model.upper()

    @property
    def delta_qty(self) -> int:
        return self.target_qty - self.current_qty

    @property
    def side(self) -> str:
        return "SELL" if self.delta_qty < 0 else "BUY"

    def intent_body(self) -> dict[str, Any]:
        """The ``POST /api/v1/intents`` body (``broker_core.contract.wire.IntentRequest``)."""
        return {
            "intent_type": "SET_TARGET",
            "strategy_id": self.strategy_id,
            "symbol": self.symbol,
            "target_qty": self.target_qty,
            "time_horizon": "SWING",
            "idempotency_key": self.idempotency_key,
            "risk_payload": {"rationale_code": self.reason.value},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "strategy_id": self.strategy_id,
            "symbol": self.symbol,
            "side": self.side,
            "current_qty": self.current_qty,
            "target_qty": self.target_qty,
            "delta_qty": self.delta_qty,
            "price": self.price,
            "idempotency_key": self.idempotency_key,
            "reason": self.reason.value,
        }


@dataclass(frozen=True, slots=True)
class SkippedDelta:
    """A change that produced no order, with the reason (M8 skip rule, no price)."""

    model: str
    symbol: str
    current_qty: int
    target_qty: int
    value: float | None
    """|Δ shares| × price in account currency (None without a price)."""
    reason: RotationReason

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "symbol": self.symbol,
            "current_qty": self.current_qty,
            "target_qty": self.target_qty,
            "delta_qty": self.target_qty - self.current_qty,
            "value": None if self.value is None else round(self.value, 2),
            "reason": self.reason.value,
        }


@dataclass(frozen=True, slots=True)
class CapNote:
    """An M7 cap that changed the weights."""

    reason: RotationReason
    symbol: str | None
    before: float
    after: float

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "symbol": self.symbol, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class CyclePlan:
    day: date
    equity: float
    budgets: dict[str, float]
    """Renormalised over the active models (M6)."""
    contributions: dict[str, Weights]
    """Model → symbol → capped account weight it accounts for."""
    account_weights: Weights
    """Symbol → account weight after the caps (Σ contributions)."""
    caps: list[CapNote] = field(default_factory=list)
    orders: list[OrderIntent] = field(default_factory=list)
    """Sells first, then buys."""
    skipped: list[SkippedDelta] = field(default_factory=list)


# --------------------------------------------------------------------------- M6


def idempotency_key(model: str, symbol: str, day: DayLike) -> str:
    """``model:symbol:session-date``: the same model, symbol and session always give the same key."""
    return f"{model}:{symbol}:{as_day(day).date().isoformat()}"


def renormalised_budgets(fractions: Mapping[str, float], active: Iterable[str]) -> dict[str, float]:
    """M6: the active models' fractions scaled to sum to 1 (inactive ones get nothing)."""
    live = {m: float(fractions[m]) for m in active}
    if any(v < 0 for v in live.values()):
        raise ValueError("budget fractions must be ≥ 0")
    total = sum(live.values())
    if total <= 0:
        return {m: 0.0 for m in live}
    return {m: v / total for m, v in live.items()}


def account_weights(contributions: Mapping[str, Mapping[str, float]]) -> Weights:
    """Σ over models of their contributions (budget × weight) per symbol."""
    out: Weights = {}
    for weights in contributions.values():
        for sym, w in weights.items():
            out[sym] = out.get(sym, 0.0) + w
    return out


def current_weights(holdings: Mapping[str, int], prices: Mapping[str, float], equity: float) -> Weights:
    """Account weight of held shares at ``prices`` (symbols without a price are left out)."""
    return {s: q * prices[s] / equity for s, q in holdings.items() if q and s in prices}


# --------------------------------------------------------------------------- M7


def apply_caps(
    contributions: Mapping[str, Mapping[str, float]], equity: float, params: OrderParams
) -> tuple[dict[str, Weights], list[CapNote]]:
    """M7 on the account weights, carried back to each model's contribution proportionally."""
    total = account_weights(contributions)
    factor = {s: 1.0 for s in total}
    notes: list[CapNote] = []
    for sym in sorted(total):
        if total[sym] > params.symbol_cap:
            factor[sym] = params.symbol_cap / total[sym]
            notes.append(CapNote(RotationReason.ROTATION_SYMBOL_CAP, sym, total[sym], params.symbol_cap))
    gross = sum(abs(total[s]) * factor[s] for s in total)
    if gross > params.gross_cap:
        scale = params.gross_cap / gross
        notes.append(CapNote(RotationReason.ROTATION_GROSS_CAP, None, gross, params.gross_cap))
        factor = {s: f * scale for s, f in factor.items()}
    for sym in sorted(total):
        value = total[sym] * factor[sym] * equity
        if 0 < value < params.min_position_usd:
            notes.append(CapNote(RotationReason.ROTATION_POSITION_TOO_SMALL, sym, total[sym] * factor[sym], 0.0))
            factor[sym] = 0.0
    capped = {m: {s: w * factor[s] for s, w in weights.items()} for m, weights in contributions.items()}
    return capped, notes


# --------------------------------------------------------------------------- M8


def target_shares(weight: float, equity: float, price: float) -> int:
    """floor(weight × equity / price), never negative."""
    if price <= 0 or weight <= 0:
        return 0
    return max(0, math.floor(weight * equity / price + _EPS))


def plan_cycle(
    decisions: Mapping[str, ModelDecision],
    *,
    equity: float,
    prices: Mapping[str, float],
    holdings: Mapping[str, Mapping[str, int]] | None = None,
    budget_fractions: Mapping[str, float] | None = None,
    params: OrderParams | None = None,
    day: DayLike | None = None,
) -> CyclePlan:
    """One account's cycle: the decisions of its models (name → decision) → orders.

    ``holdings``: model → symbol → shares of that model's OMS allocation. ``budget_fractions``: model →
    fraction (default equal). ``prices``: the price orders are sized at (live: last trade; backtest: close)."""
    if not decisions:
        raise ValueError("no model decisions")
    if not equity > 0:
        raise ValueError(f"equity must be > 0, got {equity}")
    p = params or OrderParams()
    held = {m: {s: int(q) for s, q in (holdings or {}).get(m, {}).items() if q} for m in decisions}
    days = {d.day for d in decisions.values()}
    session = as_day(day).date() if day is not None else min(days)
    fractions = budget_fractions or {m: 1.0 for m in decisions}
    unknown = set(fractions) - set(decisions)
    if unknown:
        raise ValueError(f"budget fractions for models without a decision: {sorted(unknown)}")
    active = [m for m, d in decisions.items() if d.action is not Action.INACTIVE]
    budgets = renormalised_budgets({m: fractions.get(m, 0.0) for m in decisions}, active)

    contributions: dict[str, Weights] = {}
    for m, d in decisions.items():
        if d.action is Action.REBALANCE:
            contributions[m] = {s: budgets[m] * w for s, w in (d.weights or {}).items() if w}
        elif d.action is Action.HOLD:
            contributions[m] = current_weights(held[m], prices, equity)
        elif d.action is Action.EXIT:
            gone = set(d.weights or {})
            contributions[m] = {s: w for s, w in current_weights(held[m], prices, equity).items() if s not in gone}
        else:
            contributions[m] = {}
    capped, notes = apply_caps(contributions, equity, p)
    dropped = {n.symbol for n in notes if n.reason is RotationReason.ROTATION_POSITION_TOO_SMALL}

    orders: list[OrderIntent] = []
    skipped: list[SkippedDelta] = []
    for m in sorted(decisions):
        d = decisions[m]
        wanted: dict[str, tuple[float, RotationReason]] = {}
        if d.action is Action.REBALANCE:
            for s in sorted(set(capped[m]) | set(held[m])):
                why = RotationReason.ROTATION_POSITION_TOO_SMALL if s in dropped else d.reason
                wanted[s] = (capped[m].get(s, 0.0), why)
        elif d.action is Action.EXIT:
            for s in sorted(d.weights or {}):
                if held[m].get(s):
                    wanted[s] = (0.0, d.exits.get(s, d.reason))
        elif d.action is Action.INACTIVE:
            for s in sorted(held[m]):
                wanted[s] = (0.0, RotationReason.ROTATION_LIQUIDATE)
        for s, (w, why) in wanted.items():
            current = held[m].get(s, 0)
            price = prices.get(s)
            if price is None or not price > 0:
                if w > 0 or current:
                    skipped.append(SkippedDelta(m, s, current, current, None, RotationReason.ROTATION_NO_PRICE))
                continue
            target = target_shares(w, equity, price)
            if target == current:
                continue
            value = abs(target - current) * price
            if target != 0 and value < p.min_delta_frac * equity:
                skipped.append(SkippedDelta(m, s, current, target, value, RotationReason.ROTATION_DELTA_SKIPPED))
                continue
            orders.append(OrderIntent(m, s, target, current, float(price), idempotency_key(m, s, session), why))
    orders.sort(key=lambda o: (o.delta_qty > 0, o.model, o.symbol))
    return CyclePlan(
        day=session,
        equity=equity,
        budgets=budgets,
        contributions=capped,
        account_weights=account_weights(capped),
        caps=notes,
        orders=orders,
        skipped=skipped,
    )
