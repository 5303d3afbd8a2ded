"""Order planning: from an approved intent to an order type, a price and a timeout.

Order type (``constraints.order_type`` wins when given):

- exits/reductions (``IntentType.reduces_exposure``) → MARKETABLE_LIMIT;
- entries with ``stop_price`` → STOP_LIMIT; with ``limit_price`` → LIMIT; otherwise
  MARKETABLE_LIMIT (strategies.md C6: market orders are not used by default; MARKET is still
  planned when asked for explicitly).

Prices (the market's tick grid, ``broker_core.markets.venue_market``: KRX by default, or US cents):

- LIMIT: ``limit_price`` snapped onto the grid — buys round up, sells round down (B1).
- MARKETABLE_LIMIT (C6): ref = best ask for a buy / best bid for a sell, else last; buy limit
  ``round_up(ref·(1+b))``, sell limit ``round_down(ref·(1−b))``, with the default band
  b = max(3 ticks, 0.3%). When the intent gives ``max_slippage_bps`` the band is that
  (and at least one tick) instead.
- STOP_LIMIT: ``stop_price`` is a trigger and is not rounded; the limit is ``limit_price``
  (snapped as for LIMIT) or, when missing, a marketable limit around the stop. The plan is
  ``held`` (the OMS keeps it as HELD) until the trigger trades: a buy stop triggers when
  last ≥ stop, a sell stop when last ≤ stop; without a last price it is held.
- Optional ``upper_limit``/``lower_limit`` (the day's price limits) clamp computed limits.

``cancel_after_ts`` = now + ``constraints.cancel_after_sec`` when given, else None.
A plan is sent to the broker as a plain limit at ``limit_price`` (see
:attr:`OrderPlan.broker_order_type`) — the OMS prices marketable limits itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from broker_core.contract.reasons import ReasonCode
from broker_core.markets.venue_market import KRX_MARKET, Market
from broker_core.models import OrderType
from oms.core.types import Constraints, IntentType

DEFAULT_BAND_PCT = 0.003
DEFAULT_BAND_TICKS = 3


class PlanningError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class OrderPlan:
    order_type: OrderType
    limit_price: float | None
    stop_price: float | None
    cancel_after_ts: datetime | None
    held: bool
    """True for a STOP_LIMIT whose trigger has not traded: keep it in the OMS as HELD."""
    side: str = "BUY"
    qty: int = 0

    @property
    def broker_order_type(self) -> OrderType:
        """What to send: MARKET for MARKET, else a LIMIT at ``limit_price``."""
        return OrderType.MARKET if self.order_type is OrderType.MARKET else OrderType.LIMIT


def _norm_side(side: str) -> str:
    s = str(side).upper()
    if s not in ("BUY", "SELL"):
        raise PlanningError(ReasonCode.INVALID_ORDER, f"side must be BUY or SELL, got {side!r}")
    return s


def snap_limit(price: float, buy: bool, market: Market = KRX_MARKET) -> float:
    """A limit price on the tick grid: buys round up, sells round down."""
    if not price > 0:
        raise PlanningError(ReasonCode.INVALID_ORDER, f"limit price must be > 0, got {price!r}")
    return market.round_up(price) if buy else market.round_down(price)


def marketable_price(
    buy: bool,
    last: float | None,
    bid: float | None,
    ask: float | None,
    max_slippage_bps: float | None = None,
    market: Market = KRX_MARKET,
) -> float:
    """C6 marketable limit for the side; raises PlanningError(NO_PRICE) without a reference."""
    ref = ask if buy else bid
    if ref is None or not ref > 0:
        ref = last
    if ref is None or not ref > 0:
        raise PlanningError(ReasonCode.NO_PRICE, "no ask/bid/last price to price a marketable limit")
    if max_slippage_bps is not None:
        if max_slippage_bps < 0:
            raise PlanningError(ReasonCode.INVALID_ORDER, f"max_slippage_bps must be >= 0, got {max_slippage_bps}")
        return market.marketable_limit(ref, buy, max_slippage_bps / 10_000, 1)
    return market.marketable_limit(ref, buy, DEFAULT_BAND_PCT, DEFAULT_BAND_TICKS)


def _clamp(price: float, buy: bool, upper: float | None, lower: float | None, market: Market) -> float:
    if buy and upper is not None and upper > 0:
        return min(price, market.round_down(upper))
    if not buy and lower is not None and lower > 0:
        return max(price, market.round_up(lower))
    return price


def triggered(side: str, stop_price: float | None, last_price: float | None) -> bool:
    """Buy stop: last ≥ stop; sell stop: last ≤ stop. No stop → True; no last → False."""
    if stop_price is None:
        return True
    if last_price is None:
        return False
    return last_price >= stop_price if _norm_side(side) == "BUY" else last_price <= stop_price


class _HasStop(Protocol):
    side: str
    stop_price: float | None


def stop_triggered(plan_or_order: _HasStop, last_price: float | None) -> bool:
    """Whether the stop of an :class:`OrderPlan` or ``OrderRecord`` has traded at ``last_price``."""
    return triggered(plan_or_order.side, plan_or_order.stop_price, last_price)


def plan_order(
    intent_type: IntentType,
    side: str,
    qty: int,
    constraints: Constraints,
    quote_last: float | None,
    bid: float | None,
    ask: float | None,
    now: datetime,
    *,
    upper_limit: float | None = None,
    lower_limit: float | None = None,
    market: Market = KRX_MARKET,
) -> OrderPlan:
    intent_type = IntentType(intent_type)
    if intent_type in (IntentType.CANCEL_ORDERS, IntentType.MODIFY_RISK):
        raise PlanningError(ReasonCode.INVALID_ORDER, f"{intent_type} carries no order")
    s = _norm_side(side)
    buy = s == "BUY"
    if not isinstance(qty, int) or qty < 1:
        raise PlanningError(ReasonCode.INVALID_ORDER, f"qty must be a positive int, got {qty!r}")
    c = constraints
    order_type = c.order_type
    if order_type is None:
        if intent_type.reduces_exposure:
            order_type = OrderType.MARKETABLE_LIMIT
        elif c.stop_price is not None:
            order_type = OrderType.STOP_LIMIT
        elif c.limit_price is not None:
            order_type = OrderType.LIMIT
        else:
            order_type = OrderType.MARKETABLE_LIMIT
    order_type = OrderType(order_type)

    cancel_after_ts = None
    if c.cancel_after_sec is not None:
        if c.cancel_after_sec <= 0:
            raise PlanningError(ReasonCode.INVALID_ORDER, f"cancel_after_sec must be > 0, got {c.cancel_after_sec}")
        try:
            cancel_after_ts = now + timedelta(seconds=c.cancel_after_sec)
        except OverflowError as exc:
            raise PlanningError(
                ReasonCode.INVALID_ORDER, f"cancel_after_sec {c.cancel_after_sec:g} is out of range"
            ) from exc

    limit: float | None
    stop: float | None = None
    held = False
    if order_type is OrderType.MARKET:
        limit = None
    elif order_type is OrderType.LIMIT:
        if c.limit_price is None:
            raise PlanningError(ReasonCode.INVALID_ORDER, "LIMIT needs limit_price")
        limit = snap_limit(c.limit_price, buy, market)
    elif order_type is OrderType.MARKETABLE_LIMIT:
        ref = marketable_price(buy, quote_last, bid, ask, c.max_slippage_bps, market)
        limit = _clamp(ref, buy, upper_limit, lower_limit, market)
    else:  # STOP_LIMIT
        if c.stop_price is None or not c.stop_price > 0:
            raise PlanningError(ReasonCode.INVALID_ORDER, "STOP_LIMIT needs a positive stop_price")
        stop = float(c.stop_price)
        if c.limit_price is not None:
            limit = snap_limit(c.limit_price, buy, market)
        else:
            ref = marketable_price(buy, stop, None, None, c.max_slippage_bps, market)
            limit = _clamp(ref, buy, upper_limit, lower_limit, market)
        if buy and limit < stop or not buy and limit > stop:
            raise PlanningError(
                ReasonCode.INVALID_ORDER, f"stop-limit {s}: limit {limit:g} is on the wrong side of stop {stop:g}"
            )
        held = not triggered(s, stop, quote_last)
    return OrderPlan(
        order_type=order_type,
        limit_price=limit,
        stop_price=stop,
        cancel_after_ts=cancel_after_ts,
        held=held,
        side=s,
        qty=qty,
    )
