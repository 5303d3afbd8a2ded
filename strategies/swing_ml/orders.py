"""Decisions → orders (sizing, marketable limit, idempotency key) and the one submission path.

:class:`SwingOrder` is what the wiring turns into an OMS intent: a BUY → ENTER LIMIT (day), a SELL →
EXIT LIMIT of the whole allocation, both at the S3.6 marketable limit (b = 0.2 %). Keys: every exit
uses :func:`~strategies.swing_ml.risk.exit_key` (S8, shared by decide and risk_check); an entry uses
the SDK's decision key ``SWING_ML:<symbol>:ENTER:<15-minute bucket>`` (C3).

:func:`dispatch` is the single path decide and risk_check share (S8): SELLs first (S3.6); before a
SELL the caller's ``gate`` re-reads the allocation and working orders (:func:`~strategies.swing_ml.risk.exit_gate`)
and a no-op is logged ``DUPLICATE_SUPPRESSED``; in ``dry_run`` (S1) every intent is logged with full
detail and reason ``SWING_DRY_RUN`` and nothing is sent. Every log record carries the mode. The
caller holds the per-symbol lock around it; the OMS key makes a racing second exit a no-op anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strategies.sdk.keys import decision_key
from strategies.sdk.models import Constraints, OrderType, RiskPayload, TimeHorizon, Urgency
from strategies.swing_ml.config import STRATEGY_ID, Mode, SwingMlConfig
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.risk import ExitGate, exit_key
from strategies.swing_ml.sizing import marketable_limit, size_buy
from strategies.swing_ml.synthesizer import DecideResult, Decision, Holding, Side, submission_order


@dataclass(frozen=True)
class SwingOrder:
    symbol: str
    side: Side
    reason: Reason
    qty: int
    limit_price: float
    idempotency_key: str
    intent_type: str
    """ENTER (BUY) or EXIT (SELL, the whole allocation)."""
    detail: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {
            "strategy_id": STRATEGY_ID,
            "symbol": self.symbol,
            "side": str(self.side),
            "intent_type": self.intent_type,
            "qty": self.qty,
            "order_type": "LIMIT",
            "limit_price": self.limit_price,
            "time_in_force": "DAY",
            "idempotency_key": self.idempotency_key,
            "rationale_code": str(self.reason),
            **self.detail,
        }


def buy_order(
    decision: Decision, nav: float, ref_price: float, now: datetime, cfg: SwingMlConfig
) -> SwingOrder | Decision:
    """The sized ENTER of a BUY decision, or the decision re-labelled SWING_SKIP_KELLY."""
    limit = marketable_limit(ref_price, True, cfg.decide.limit_band_pct)
    prob = decision.proba if decision.proba is not None else 0.0
    size = size_buy(prob, nav, limit, cfg.sizing, cfg.risk)
    if size.reason is not None:
        return Decision(
            decision.symbol, None, size.reason, decision.score, decision.quant_vote, decision.proba, decision.regime
        )
    key = decision_key(STRATEGY_ID, decision.symbol, "ENTER", now, bucket_sec=cfg.decide.decision_bucket_sec)
    detail = {**decision.fields(), **size.fields(), "ref_price": ref_price}
    detail.pop("symbol", None)
    detail.pop("side", None)
    detail.pop("reason", None)
    return SwingOrder(decision.symbol, Side.BUY, decision.reason, size.qty, limit, key, "ENTER", detail)


def exit_order(
    holding: Holding, ref_price: float, reason: Reason, cfg: SwingMlConfig, detail: Mapping[str, Any] | None = None
) -> SwingOrder:
    """EXIT of the whole allocation at the marketable sell limit, keyed by the holding (S8)."""
    limit = marketable_limit(ref_price, False, cfg.decide.limit_band_pct)
    extra = {"ref_price": ref_price, "cost_basis": holding.cost_basis, "entry_ts": holding.entry_ts.isoformat()}
    extra.update(detail or {})
    return SwingOrder(
        holding.symbol,
        Side.SELL,
        reason,
        holding.qty,
        limit,
        exit_key(holding.symbol, holding.entry_ts),
        "EXIT",
        extra,
    )


def build_orders(
    result: DecideResult,
    holdings: Mapping[str, Holding],
    nav: float,
    ref_prices: Mapping[str, float],
    now: datetime,
    cfg: SwingMlConfig,
) -> tuple[list[SwingOrder], list[Decision]]:
    """Orders of a decide run in submission order, and the skips (incl. BUYs without a price or a
    positive Kelly size)."""
    orders: list[SwingOrder] = []
    skipped = list(result.skipped)
    for d in result.orders:
        price = ref_prices.get(d.symbol)
        if d.side is Side.SELL:
            h = holdings[d.symbol]
            orders.append(exit_order(h, price if price else h.cost_basis, d.reason, cfg, _decision_detail(d)))
        elif d.side is Side.BUY:
            if not price or price <= 0:
                skipped.append(
                    Decision(d.symbol, None, Reason.SWING_SKIP_KELLY, d.score, d.quant_vote, d.proba, d.regime)
                )
                continue
            out = buy_order(d, nav, price, now, cfg)
            if isinstance(out, SwingOrder):
                orders.append(out)
            else:
                skipped.append(out)
    return submission_order(orders), skipped


def _decision_detail(d: Decision) -> dict[str, Any]:
    out = d.fields()
    for k in ("symbol", "side", "reason"):
        out.pop(k, None)
    return out


@dataclass(frozen=True)
class DispatchOutcome:
    order: SwingOrder
    sent: bool
    reason: Reason | None
    """SWING_DRY_RUN / DUPLICATE_SUPPRESSED when not sent."""
    reply: Any = None


def dispatch(
    orders: list[SwingOrder],
    mode: Mode,
    send: Callable[[SwingOrder], Any],
    log: Callable[[dict[str, Any]], None],
    gate: Callable[[SwingOrder], ExitGate] | None = None,
) -> list[DispatchOutcome]:
    """Submit (or, in dry_run, only log) ``orders``: SELLs first; a SELL the gate refuses is logged
    ``DUPLICATE_SUPPRESSED`` and not sent."""
    outcomes: list[DispatchOutcome] = []
    for order in submission_order(orders):
        verdict = gate(order) if order.side is Side.SELL and gate is not None else None
        outcome = _held_back(order, mode, verdict, log)
        outcomes.append(outcome if outcome is not None else _sent(order, mode, send(order), log))
    return outcomes


async def dispatch_async(
    orders: list[SwingOrder],
    mode: Mode,
    send: Callable[[SwingOrder], Awaitable[Any]],
    log: Callable[[dict[str, Any]], None],
    gate: Callable[[SwingOrder], Awaitable[ExitGate]] | None = None,
    lock: Callable[[str], AbstractAsyncContextManager[Any]] | None = None,
) -> list[DispatchOutcome]:
    """:func:`dispatch` for the strategy process (the OMS is awaited): the same order, gate, dry_run rule
    and log records. Each order's gate and send run inside ``lock(symbol)`` — the per-symbol lock decide
    and risk_check share (S8) — so the re-read before a SELL sees whatever the other job just sent."""
    outcomes: list[DispatchOutcome] = []
    for order in submission_order(orders):
        async with lock(order.symbol) if lock is not None else nullcontext():
            verdict = await gate(order) if order.side is Side.SELL and gate is not None else None
            outcome = _held_back(order, mode, verdict, log)
            if outcome is None:
                outcome = _sent(order, mode, await send(order), log)
        outcomes.append(outcome)
    return outcomes


def _record(order: SwingOrder, mode: Mode) -> dict[str, Any]:
    return {"mode": str(mode), **order.fields()}


def _held_back(
    order: SwingOrder, mode: Mode, verdict: ExitGate | None, log: Callable[[dict[str, Any]], None]
) -> DispatchOutcome | None:
    """The outcome of an order that is not sent (the gate refused it, or dry_run), logged; None: send it."""
    if verdict is not None and not verdict.submit:
        log({**_record(order, mode), "event": str(verdict.reason), "detail": verdict.detail})
        return DispatchOutcome(order, False, verdict.reason)
    if mode is Mode.DRY_RUN:
        log({**_record(order, mode), "event": str(Reason.SWING_DRY_RUN)})
        return DispatchOutcome(order, False, Reason.SWING_DRY_RUN)
    return None


def _sent(order: SwingOrder, mode: Mode, reply: Any, log: Callable[[dict[str, Any]], None]) -> DispatchOutcome:
    log({**_record(order, mode), "event": "SENT", "reply": reply})
    return DispatchOutcome(order, True, None, reply)


def intent_arguments(
    order: SwingOrder, *, cancel_after_sec: float | None = None, stop_px: float | None = None
) -> dict[str, Any]:
    """``OmsClient.submit_intent`` arguments of ``order`` — only fields of the OMS intent schema: a BUY is
    ENTER ``desired_qty`` LIMIT at the marketable limit, a SELL is EXIT (the whole allocation, no qty) LIMIT;
    "day" = ``cancel_after_sec`` until the close; ``risk_payload`` carries the rationale (and for an entry
    its limit as ``entry_px`` and the initial stop)."""
    buy = order.side is Side.BUY
    return {
        "intent_type": order.intent_type,
        "symbol": order.symbol,
        "qty": order.qty if buy else None,
        "urgency": Urgency.NORMAL if buy else Urgency.HIGH,
        "time_horizon": TimeHorizon.SWING,
        "constraints": Constraints(
            order_type=OrderType.LIMIT, limit_price=order.limit_price, cancel_after_sec=cancel_after_sec
        ),
        "risk": RiskPayload(
            entry_px=order.limit_price if buy else None,
            stop_px=stop_px if buy and stop_px is not None and stop_px > 0 else None,
            rationale_code=str(order.reason),
        ),
        "idempotency_key": order.idempotency_key,
    }
