"""S3.3–S3.6: quant votes, the synthesizer score, BUY/SELL rules and the submission order.

* Quant vote (S3.3), over the n symbols scored at this decision, by the rank r of the model
  probability (1 = lowest, ties get their average rank): top quartile ``n − r + 1 ≤ n/4`` → +1,
  bottom quartile ``r ≤ n/4`` → −1, else 0 — symmetric: 24 up and 24 down of 97 names, 2 and 2 of 8.
* Score (S3.5): ``Σ w·vote / Σ w`` over the signals available for the symbol: quant 0.6, regime
  (RISK_ON +1 / NEUTRAL 0 / RISK_OFF −1) 0.25, optional extras together 0.15 **[interpreted: the
  extras' weight is shared equally among the extra votes available]**. No signal → no score.
* BUY if not held (nor pending) ∧ quant vote +1 ∧ score ≥ 0.4 ∧ regime ≠ RISK_OFF ∧ positions < 10.
  Positions = allocations held + pending entries + BUYs already decided in this run; SELLs of this
  run do not free a slot until they fill **[interpreted]**. Candidates are taken by probability,
  highest first (ties by symbol).
* SELL if held ∧ (held trading days ≥ ``max_hold_days`` → SWING_MAX_HOLD, else score ≤ −0.2 →
  SWING_SELL_SCORE). Held days come from the OMS allocation's ``entry_ts`` (S7).
* Submission (S3.6): every SELL before any BUY, each group in decision order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, TypeVar

import pandas as pd

from strategies.swing_ml.config import DecideParams
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.regime import REGIME_VOTE, Regime
from strategies.swing_ml.risk import held_trading_days

_EPS = 1e-12


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, slots=True)
class Holding:
    """One SWING_ML allocation as read from the OMS (S3.1)."""

    symbol: str
    qty: int
    cost_basis: float
    """Average fill price of the allocation."""
    entry_ts: datetime


def quartile_votes(probs: Mapping[str, float], top: float = 0.75, bottom: float = 0.25) -> dict[str, int]:
    """+1 for the top ``1 − top`` share by rank, −1 for the bottom ``bottom`` share, else 0 (NaN
    probabilities get no vote)."""
    s = pd.Series(probs, dtype=float).dropna()
    if s.empty:
        return {}
    n = len(s)
    rank = s.rank(method="average")
    return {
        str(k): (1 if n - r + 1 <= (1 - top) * n + _EPS else -1 if r <= bottom * n + _EPS else 0)
        for k, r in rank.items()
    }


def synth_score(
    quant_vote: int | None,
    regime_vote: int | None,
    extras: Sequence[float] = (),
    params: DecideParams | None = None,
) -> float | None:
    """``Σ w·vote / Σ w`` over the available signals (None = unavailable); None when none is."""
    p = params if params is not None else DecideParams()
    num = den = 0.0
    if quant_vote is not None:
        num += p.quant_weight * quant_vote
        den += p.quant_weight
    if regime_vote is not None:
        num += p.regime_weight * regime_vote
        den += p.regime_weight
    votes = [float(v) for v in extras if v is not None and pd.notna(v)]
    for v in votes:
        if not -1.0 <= v <= 1.0:
            raise ValueError(f"an extra signal's vote must be in [-1, 1]: {v}")
    if votes:
        w = p.extras_weight / len(votes)
        num += w * sum(votes)
        den += w * len(votes)
    return num / den if den > 0 else None


@dataclass(frozen=True, slots=True)
class Decision:
    symbol: str
    side: Side | None
    """BUY / SELL, or None for a logged skip."""
    reason: Reason
    score: float | None
    quant_vote: int | None
    proba: float | None
    regime: Regime | None
    held_days: int | None = None

    def fields(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "side": None if self.side is None else str(self.side),
            "reason": str(self.reason),
            "score": None if self.score is None else round(self.score, 6),
            "quant_vote": self.quant_vote,
            "proba": None if self.proba is None else round(self.proba, 6),
            "regime": None if self.regime is None else str(self.regime),
            "held_days": self.held_days,
        }


@dataclass(frozen=True)
class DecideResult:
    orders: list[Decision]
    """BUYs and SELLs in submission order (SELLs first)."""
    skipped: list[Decision] = field(default_factory=list)
    """BUY candidates (quant top quartile) that did not pass, with the reason."""


def decide(
    probs: Mapping[str, float],
    regime: Regime | None,
    holdings: Mapping[str, Holding],
    now: datetime,
    params: DecideParams | None = None,
    extras: Mapping[str, Sequence[float]] | None = None,
    pending: Collection[str] = (),
    sessions: Sequence[date] | None = None,
) -> DecideResult:
    """One decide run (S3.5–S3.6). ``probs`` = model probability per scored symbol; ``holdings`` =
    SWING_ML allocations with qty > 0; ``pending`` = symbols with a working SWING_ML entry."""
    p = params if params is not None else DecideParams()
    extras = extras or {}
    votes = quartile_votes(probs, p.top_quantile, p.bottom_quantile)
    rvote = REGIME_VOTE[regime] if regime is not None else None

    def info(sym: str) -> tuple[int | None, float | None, float | None]:
        q = votes.get(sym)
        pr = probs.get(sym)
        proba = float(pr) if pr is not None and pd.notna(pr) else None
        return q, proba, synth_score(q, rvote, extras.get(sym, ()), p)

    sells: list[Decision] = []
    for sym in sorted(holdings):
        h = holdings[sym]
        if h.qty <= 0:
            continue
        q, proba, score = info(sym)
        days = held_trading_days(h.entry_ts, now, sessions)
        if days >= p.max_hold_days:
            sells.append(Decision(sym, Side.SELL, Reason.SWING_MAX_HOLD, score, q, proba, regime, days))
        elif score is not None and score <= p.sell_score_max + _EPS:
            sells.append(Decision(sym, Side.SELL, Reason.SWING_SELL_SCORE, score, q, proba, regime, days))

    held = {s for s, h in holdings.items() if h.qty > 0} | set(pending)
    positions = len(held)
    buys: list[Decision] = []
    skipped: list[Decision] = []
    candidates = sorted((s for s, v in votes.items() if v == 1 and s not in held), key=lambda s: (-probs[s], s))
    for sym in candidates:
        q, proba, score = info(sym)

        def skip(
            reason: Reason, sym: str = sym, q: int | None = q, proba: float | None = proba, score: float | None = score
        ) -> None:
            skipped.append(Decision(sym, None, reason, score, q, proba, regime))

        if regime is Regime.RISK_OFF:
            skip(Reason.SWING_SKIP_RISK_OFF)
        elif score is None or score < p.buy_score_min - _EPS:
            skip(Reason.SWING_SKIP_SCORE)
        elif positions >= p.max_positions:
            skip(Reason.SWING_SKIP_MAX_POSITIONS)
        else:
            buys.append(Decision(sym, Side.BUY, Reason.SWING_BUY, score, q, proba, regime))
            positions += 1
    return DecideResult(submission_order([*sells, *buys]), skipped)


class _HasSide(Protocol):
    @property
    def side(self) -> Side | None: ...


T = TypeVar("T", bound=_HasSide)


def submission_order(decisions: Iterable[T]) -> list[T]:
    """S3.6: all SELLs before any BUY (stable within each side); works on decisions and orders."""
    items = list(decisions)
    return [d for d in items if d.side is Side.SELL] + [d for d in items if d.side is not Side.SELL]
