"""The paper exchange's matching engine: pure, synchronous and deterministic.

Orders are matched against the tape (replayed trades), not against each other:

- a buy fills when the tape trades at or below its limit (a sell: at or above); MARKET orders fill
  on any print. The fill price is the tape price.
- only prints strictly later than the order's submission time can fill it (no look-ahead).
- each print can fill at most ``floor(print qty × participation)`` shares of our orders (at least 1
  when the print has volume), shared by the crossing orders of that symbol in time priority.
- while a symbol is in a volatility interruption nothing of it matches (see ``vi.py``).

Cash and shares are reserved for working orders: a buy reserves ``leaves × price + commission``
(price = limit; MARKET = the upper daily limit), a sell reserves its leaves from the position, so
no order can overdraw cash or sell short. Realized P&L is net of every fee: buy commissions are
charged to it when paid (they are not capitalised into the average price), so a closed round trip
changes cash by exactly its realized P&L. Settlement (T+2) is not modelled.

Rejected orders are stored with status REJECTED (no reservation) so ``get_order`` answers for them;
resubmitting any known client order id returns a copy of the stored order and changes nothing.

Persistence hooks (``persistence.py`` uses them; nothing here does I/O): every change of the
account — an order created or changed, a fill, the close, an admin injection — bumps
``state_version`` and sets ``dirty``; ``export_state`` hands out the account as plain data (only
what changed since the last ``mark_saved``, or everything), and ``restore_state`` puts it back
into a freshly constructed engine. ``matched_through`` records how far ``on_tick`` has got through
the tape, so an exchange resuming from a saved state never matches the same print twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from broker_core.clock import KST
from broker_core.errors import BrokerError, OrderNotFound, OrderRejected
from broker_core.market_rules import (
    SessionPhase,
    is_on_tick,
    marketable_limit,
    price_limits,
    round_down,
    round_up,
    session_phase,
    tick_size,
    up,
)
from broker_core.models import (
    Account,
    BrokerOrder,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Quote,
    Side,
    Tick,
)
from broker_core.paper.fees import FeeSchedule
from broker_core.paper.vi import ViEvent, ViMonitor

DEFAULT_CASH = 100_000_000.0
DEFAULT_PARTICIPATION = 0.25
MARKET_RESERVE_PCT = 0.30
"""A MARKET buy on a symbol with no known base price reserves cash at last × (1 + this)."""
_EPS = 1e-9


class RejectCode(StrEnum):
    INVALID_ORDER = "INVALID_ORDER"
    INVALID_QTY = "INVALID_QTY"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_PRICE = "INVALID_PRICE"
    OFF_TICK = "OFF_TICK"
    OUTSIDE_PRICE_LIMIT = "OUTSIDE_PRICE_LIMIT"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    INSUFFICIENT_SHARES = "INSUFFICIENT_SHARES"
    MARKET_CLOSED = "MARKET_CLOSED"
    ALREADY_FINAL = "ALREADY_FINAL"


class EndReason(StrEnum):
    CANCELLED = "CANCELLED"
    DAY_END = "DAY_END"


ORDER_ENTRY_PHASES = frozenset({SessionPhase.PRE_OPEN_AUCTION, SessionPhase.CONTINUOUS, SessionPhase.CLOSING_AUCTION})


def regular_session(now: datetime) -> bool:
    """Default order window: the opening auction, the continuous session and the closing auction."""
    return session_phase(now) in ORDER_ENTRY_PHASES


@dataclass(slots=True)
class Instrument:
    symbol: str
    prev_close: float | None
    base_price: float | None
    """Base of the daily limits: the previous close, else the day's first trade."""

    @property
    def limits(self) -> tuple[int, int] | None:
        return price_limits(self.base_price) if self.base_price else None


@dataclass(slots=True)
class _Working:
    order: BrokerOrder
    submitted_at: datetime
    reserve_price: float


@dataclass(slots=True)
class _Holding:
    qty: int
    avg_price: float


@dataclass(slots=True)
class StoredOrder:
    """An order as the account keeps it: the broker's view plus what matching it needs."""

    order: BrokerOrder
    reserve_price: float | None
    """Per-share price a working buy reserves cash at (0 for a sell); None once the order is final.
    The order's ``created_at`` is its submission time (only later prints can fill it)."""


@dataclass(slots=True)
class InstrumentState:
    symbol: str
    prev_close: float | None
    base_price: float | None
    last: float | None


@dataclass(slots=True)
class EngineState:
    """The paper account as plain data (see ``MatchingEngine.export_state``).

    ``complete``: ``orders``/``fills``/``instruments`` hold everything; otherwise only the orders
    created or changed, the fills made and the instruments traded since the last ``mark_saved``
    (positions and the scalars are always whole). Volume and VI state are not part of it: an
    exchange resuming a session rebuilds both by observing the tape from the start.
    """

    session_date: date | None
    cash: float
    realized_pnl: float
    order_seq: int
    exec_seq: int
    closed: bool
    matched_through: tuple[datetime, int] | None
    positions: list[Position]
    orders: list[StoredOrder]
    fills: list[Fill]
    instruments: list[InstrumentState]
    complete: bool = True
    version: int = 0
    fills_end: int = 0
    """How many fills the engine held when exported (for ``mark_saved``)."""
    order_ids: list[str] = field(default_factory=list)
    """The client order ids exported (for ``mark_saved``)."""


class MatchingEngine:
    def __init__(
        self,
        base_prices: Mapping[str, float | None] | None = None,
        *,
        cash: float = DEFAULT_CASH,
        fees: FeeSchedule | None = None,
        participation: float = DEFAULT_PARTICIPATION,
        order_window: Callable[[datetime], bool] | None = regular_session,
        simulate_vi: bool = True,
        kospi200: Collection[str] = (),
        currency: str = "KRW",
        id_prefix: str = "P",
        session_date: date | None = None,
    ) -> None:
        """``order_window(now)`` says whether orders are accepted (None: always);
        ``participation`` is the share of each print's volume our orders may take (0 < p ≤ 1);
        ``session_date`` is the trading day the account's orders belong to (an exchange sets it
        from its feed when None; a state store needs it)."""
        if not 0 < participation <= 1:
            raise ValueError(f"participation must be in (0, 1], got {participation}")
        self.fees = fees or FeeSchedule()
        self.participation = participation
        self.currency = currency
        self.vi: ViMonitor | None = ViMonitor(kospi200) if simulate_vi else None
        self._order_window = order_window
        self._id_prefix = id_prefix
        self._instruments: dict[str, Instrument] = {}
        self._last: dict[str, float] = {}
        self._volume: dict[str, int] = {}
        self._cash = float(cash)
        self._realized = 0.0
        self._holdings: dict[str, _Holding] = {}
        self._orders: dict[str, BrokerOrder] = {}
        self._book: dict[str, dict[str, _Working]] = {}
        self._reserved: dict[str, float] = {}
        """Cash reserved per working buy (kept incrementally: a submit costs O(1), not O(open orders))."""
        self._reserved_total = 0.0
        self._fills: list[Fill] = []
        self._pending: list[OrderUpdate] = []
        self._order_seq = 0
        self._exec_seq = 0
        self._closed = False
        self.session_date = session_date
        self._matched_through: tuple[datetime, int] | None = None
        self._version = 1
        self._saved_version = 0
        self._dirty_orders: dict[str, None] = {}
        self._touched: set[str] = set()
        self._saved_fills = 0
        for symbol, base in (base_prices or {}).items():
            self.add_instrument(symbol, base)

    # -- instruments and market data -------------------------------------------------------

    def add_instrument(self, symbol: str, prev_close: float | None) -> None:
        """Make ``symbol`` tradable; ``prev_close`` is the day's base price (None: first trade)."""
        prev_close = float(prev_close) if prev_close is not None else None
        inst = self._instruments.get(symbol)
        if inst is None:
            self._instruments[symbol] = Instrument(symbol, prev_close, prev_close)
        elif prev_close is not None:
            inst.prev_close = inst.base_price = prev_close
        self._touched.add(symbol)
        if self.vi is not None:
            self.vi.set_base(symbol, prev_close)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._instruments

    @property
    def symbols(self) -> list[str]:
        return sorted(self._instruments)

    def last_price(self, symbol: str) -> float | None:
        return self._last.get(symbol)

    @property
    def vi_events(self) -> list[ViEvent]:
        return list(self.vi.events) if self.vi is not None else []

    def is_halted(self, symbol: str, now: datetime) -> bool:
        return self.vi is not None and self.vi.is_halted(symbol, now)

    def quote(self, symbol: str, now: datetime) -> Quote:
        inst = self._instruments.get(symbol)
        if inst is None:
            raise BrokerError(f"unknown symbol {symbol!r}", code=RejectCode.UNKNOWN_SYMBOL)
        last = self._last.get(symbol, inst.base_price)
        if last is None:
            raise BrokerError(f"no price yet for {symbol}", code=RejectCode.NO_REFERENCE_PRICE)
        limits = inst.limits
        lower, upper = limits if limits else (None, None)
        bid, ask = _one_tick_market(last)
        if lower is not None and upper is not None:
            bid, ask = float(max(bid, lower)), float(min(ask, upper))
        return Quote(
            symbol=symbol,
            ts=now,
            last=last,
            bid=bid,
            ask=ask,
            prev_close=inst.prev_close,
            upper_limit=float(upper) if upper is not None else None,
            lower_limit=float(lower) if lower is not None else None,
            volume=self._volume.get(symbol, 0),
            halted=self.is_halted(symbol, now),
            vi_ref_price=self.vi.static_ref(symbol) if self.vi is not None else None,
        )

    # -- orders ------------------------------------------------------------------------------

    def submit(self, req: OrderRequest, now: datetime) -> BrokerOrder:
        """Accept or reject ``req``; idempotent on ``client_order_id``.

        Raises OrderRejected (reason in ``.code``, a ``RejectCode``); the rejected order is stored.
        """
        if not req.client_order_id:
            raise OrderRejected("client_order_id is required", code=RejectCode.INVALID_ORDER)
        existing = self._orders.get(req.client_order_id)
        if existing is not None:
            return existing.copy()
        req = _normalized(req)
        self._order_seq += 1
        broker_order_id = f"{self._id_prefix}-{now.astimezone(KST):%Y%m%d}-{self._order_seq:06d}"
        try:
            limit, reserve_price = self._check(req, now)
        except OrderRejected as exc:
            shown = req.limit_price if isinstance(req.limit_price, (int, float)) else None
            order = _new_order(req, broker_order_id, shown, now, OrderStatus.REJECTED, exc.code)
            self._orders[order.client_order_id] = order
            self._emit(order, now)
            raise
        order = _new_order(req, broker_order_id, limit, now, OrderStatus.NEW, None)
        self._orders[order.client_order_id] = order
        self._book.setdefault(order.symbol, {})[order.client_order_id] = _Working(order, now, reserve_price)
        self._reserve(order, reserve_price)
        self._emit(order, now)
        return order.copy()

    def cancel(self, client_order_id: str, now: datetime) -> BrokerOrder:
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order with client_order_id {client_order_id!r}")
        if order.status.is_terminal:
            raise OrderRejected(
                f"order {client_order_id} is already {order.status.value}; nothing to cancel",
                code=RejectCode.ALREADY_FINAL,
            )
        self._finish(order, OrderStatus.CANCELLED, EndReason.CANCELLED, now)
        return order.copy()

    def begin_session(self, session_date: date, prev_closes: Mapping[str, float | None]) -> None:
        """Open the next trading day on the same account (cash, positions, order history kept).

        Day orders were expired at the previous close; the new day's base prices are ``prev_closes``
        (the real previous close of each symbol) and volume, VI state and the matching mark restart."""
        if any(self._book.values()):
            raise RuntimeError("working orders remain: expire the previous day first")
        self.session_date = session_date
        self._closed = False
        self._volume.clear()
        self._matched_through = None
        if self.vi is not None:
            self.vi = ViMonitor(self.vi.kospi200)
        for symbol, close in prev_closes.items():
            self.add_instrument(symbol, close if close is not None else self._last.get(symbol))
        self._version += 1

    def expire_day(self, now: datetime) -> list[OrderUpdate]:
        """Expire every working order (DAY orders at the close); later submissions are MARKET_CLOSED."""
        if not self._closed:
            self._closed = True
            self._version += 1
        working = [w.order for book in self._book.values() for w in book.values()]
        working.sort(key=lambda o: o.broker_order_id)
        return [self._finish(order, OrderStatus.EXPIRED, EndReason.DAY_END, now) for order in working]

    @property
    def closed(self) -> bool:
        return self._closed

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        order = self._orders.get(client_order_id)
        return order.copy() if order is not None else None

    def orders(self) -> list[BrokerOrder]:
        return [o.copy() for o in self._orders.values()]

    def open_orders(self) -> list[BrokerOrder]:
        working = [w.order.copy() for book in self._book.values() for w in book.values()]
        return sorted(working, key=lambda o: o.broker_order_id)

    def fills(self, since: datetime | None = None) -> list[Fill]:
        return [f for f in self._fills if since is None or f.ts >= since]

    @property
    def has_updates(self) -> bool:
        """True when :meth:`drain_updates` has something to return."""
        return bool(self._pending)

    def drain_updates(self) -> list[OrderUpdate]:
        """Every OrderUpdate produced since the last drain, in order (for the exchange to publish)."""
        pending, self._pending = self._pending, []
        return pending

    # -- the tape ----------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> list[OrderUpdate]:
        """Record a print and match working orders of its symbol against it."""
        self.observe(tick)
        mark = self._matched_through
        self._matched_through = (tick.ts, mark[1] + 1 if mark is not None and mark[0] == tick.ts else 1)
        book = self._book.get(tick.symbol)
        if not book or tick.qty <= 0 or self.is_halted(tick.symbol, tick.ts):
            return []
        cap = max(1, math.floor(tick.qty * self.participation + _EPS))
        updates: list[OrderUpdate] = []
        for working in list(book.values()):
            if cap <= 0:
                break
            order = working.order
            if working.submitted_at >= tick.ts or not _crosses(order, tick.price):
                continue
            qty = min(order.qty - order.filled_qty, cap, self._executable(order, tick.price))
            if qty > 0:
                updates.append(self._execute(order, qty, tick))
                cap -= qty
        return updates

    def observe(self, tick: Tick) -> None:
        """Record a print (last price, volume, VI state) without matching anything."""
        price = float(tick.price)
        inst = self._instruments.get(tick.symbol)
        if inst is None:
            self.add_instrument(tick.symbol, None)
            inst = self._instruments[tick.symbol]
        if inst.base_price is None:
            inst.base_price = price
            if self.vi is not None:
                self.vi.set_base(tick.symbol, price)
        self._last[tick.symbol] = price
        self._touched.add(tick.symbol)
        self._volume[tick.symbol] = self._volume.get(tick.symbol, 0) + max(tick.qty, 0)
        if self.vi is not None:
            self.vi.on_trade(tick.symbol, price, tick.ts)

    # -- account -----------------------------------------------------------------------------

    def positions(self) -> list[Position]:
        return [Position(s, h.qty, h.avg_price) for s, h in sorted(self._holdings.items()) if h.qty > 0]

    def position(self, symbol: str) -> Position | None:
        h = self._holdings.get(symbol)
        return Position(symbol, h.qty, h.avg_price) if h and h.qty > 0 else None

    def account(self) -> Account:
        market_value = sum(h.qty * self._mark(s, h) for s, h in self._holdings.items())
        return Account(
            currency=self.currency,
            cash=self._cash,
            buyable_cash=max(0.0, self._cash - self.reserved_cash()),
            equity=self._cash + market_value,
            market_value=market_value,
            realized_pnl=self._realized,
        )

    def reserved_cash(self) -> float:
        return max(0.0, self._reserved_total)

    def reserved_shares(self, symbol: str) -> int:
        return sum(
            w.order.qty - w.order.filled_qty for w in self._book.get(symbol, {}).values() if w.order.side is Side.SELL
        )

    def set_position(self, symbol: str, qty: int, avg_price: float) -> None:
        """Admin/test injection: the position becomes ``qty`` at ``avg_price`` (shares nobody bought)."""
        if qty < 0:
            raise ValueError("the paper exchange holds no short positions")
        if qty == 0:
            self._holdings.pop(symbol, None)
        else:
            self._holdings[symbol] = _Holding(qty, float(avg_price))
        self._version += 1

    def adjust_cash(self, delta: float) -> None:
        """Admin/test injection: add (or remove) cash."""
        self._cash += delta
        self._version += 1

    # -- persistence hooks (no I/O here; see persistence.py) ---------------------------------

    @property
    def state_version(self) -> int:
        """Bumped by every change of the account (orders, fills, cash, positions, the close)."""
        return self._version

    @property
    def dirty(self) -> bool:
        """True when the account changed since the last ``mark_saved`` (a new engine is dirty)."""
        return self._version != self._saved_version

    @property
    def matched_through(self) -> tuple[datetime, int] | None:
        """(time of the last print ``on_tick`` matched against, how many prints of that time it
        has seen): an exchange resuming this state only observes the feed up to there. Not a change
        of the account by itself (it is saved with the next change; re-matching prints that filled
        nothing changes nothing)."""
        return self._matched_through

    def export_state(self, *, complete: bool = False) -> EngineState:
        """The account as plain data: with ``complete`` everything, else what changed since the
        last ``mark_saved`` (cheap: proportional to the change, plus the positions)."""
        if complete:
            order_ids = list(self._orders)
            fills = list(self._fills)
            symbols: Collection[str] = self._instruments
        else:
            order_ids = list(self._dirty_orders)
            fills = self._fills[self._saved_fills :]
            symbols = sorted(self._touched)
        orders = [StoredOrder(self._orders[cid].copy(), self._reserve_price_of(self._orders[cid])) for cid in order_ids]
        instruments = [
            InstrumentState(s, i.prev_close, i.base_price, self._last.get(s))
            for s in symbols
            if (i := self._instruments.get(s)) is not None
        ]
        return EngineState(
            session_date=self.session_date,
            cash=self._cash,
            realized_pnl=self._realized,
            order_seq=self._order_seq,
            exec_seq=self._exec_seq,
            closed=self._closed,
            matched_through=self._matched_through,
            positions=self.positions(),
            orders=orders,
            fills=fills,
            instruments=instruments,
            complete=complete,
            version=self._version,
            fills_end=len(self._fills),
            order_ids=order_ids,
        )

    def mark_saved(self, state: EngineState) -> None:
        """``state`` (from ``export_state``) is stored: forget the changes it carried."""
        for cid in state.order_ids:
            self._dirty_orders.pop(cid, None)
        if state.complete:
            self._dirty_orders.clear()
            self._touched.clear()
        else:
            self._touched.difference_update(i.symbol for i in state.instruments)
        self._saved_fills = max(self._saved_fills, state.fills_end)
        self._saved_version = state.version

    def restore_state(self, state: EngineState) -> None:
        """Put a stored account into this freshly constructed engine (no orders or fills yet).

        Working orders go back on the book in their time priority with their reservations (the
        reservations are recomputed from them, not stored); instruments unknown to the engine are
        added; a stored base price is used only where the engine has none. The engine is clean
        afterwards.
        """
        if self._orders or self._fills:
            raise RuntimeError("restore_state needs a fresh engine (this one already has orders or fills)")
        if state.session_date is not None:
            self.session_date = state.session_date
        self._cash = float(state.cash)
        self._realized = float(state.realized_pnl)
        self._order_seq = state.order_seq
        self._exec_seq = state.exec_seq
        self._closed = state.closed
        self._matched_through = state.matched_through
        self._holdings = {p.symbol: _Holding(p.qty, float(p.avg_price)) for p in state.positions if p.qty > 0}
        for inst_state in state.instruments:
            if inst_state.symbol not in self._instruments:
                self.add_instrument(inst_state.symbol, inst_state.prev_close)
            inst = self._instruments[inst_state.symbol]
            if inst.base_price is None and inst_state.base_price is not None:
                inst.base_price = inst_state.base_price
                if self.vi is not None:
                    self.vi.set_base(inst.symbol, inst.base_price)
            if inst_state.last is not None:
                self._last[inst.symbol] = inst_state.last
        for stored in state.orders:
            order = stored.order.copy()
            self._orders[order.client_order_id] = order
            if not order.status.is_terminal:
                reserve = stored.reserve_price if stored.reserve_price is not None else (order.limit_price or 0.0)
                self._book.setdefault(order.symbol, {})[order.client_order_id] = _Working(
                    order, order.created_at, float(reserve)
                )
                self._reserve(order, float(reserve))
        self._fills = list(state.fills)
        self._pending = []
        self._dirty_orders = {}
        self._touched = set()
        self._saved_fills = len(self._fills)
        self._version += 1
        self._saved_version = self._version

    def _reserve_price_of(self, order: BrokerOrder) -> float | None:
        working = self._book.get(order.symbol, {}).get(order.client_order_id)
        return working.reserve_price if working is not None else None

    # -- internals ---------------------------------------------------------------------------

    def _check(self, req: OrderRequest, now: datetime) -> tuple[float | None, float]:
        """Validate ``req``; return (limit price to store, per-share price the buy reserves at)."""
        if self._closed:
            raise OrderRejected("the trading day is over; working orders have expired", code=RejectCode.MARKET_CLOSED)
        if isinstance(req.qty, bool) or not isinstance(req.qty, int) or req.qty <= 0:
            raise OrderRejected(
                f"qty must be a positive whole number of shares, got {req.qty!r}", code=RejectCode.INVALID_QTY
            )
        inst = self._instruments.get(req.symbol)
        if inst is None:
            raise OrderRejected(
                f"unknown symbol {req.symbol!r}: not traded on this exchange today", code=RejectCode.UNKNOWN_SYMBOL
            )
        limit = self._limit_price(req, inst)
        if self._order_window is not None and not self._order_window(now):
            raise OrderRejected(
                f"market closed at {now.astimezone(KST):%H:%M:%S} KST ({session_phase(now).value})",
                code=RejectCode.MARKET_CLOSED,
            )
        if req.side is Side.BUY:
            reserve_price = limit if limit is not None else self._market_reserve_price(inst)
            need = self._reservation(req.qty, reserve_price)
            buyable = self._cash - self.reserved_cash()
            if need > buyable + _EPS:
                raise OrderRejected(
                    f"insufficient cash: buying {req.qty} {req.symbol} needs {need:,.0f} "
                    f"{self.currency}, buyable {buyable:,.0f}",
                    code=RejectCode.INSUFFICIENT_CASH,
                )
        else:
            held = self._holdings[req.symbol].qty if req.symbol in self._holdings else 0
            available = held - self.reserved_shares(req.symbol)
            if req.qty > available:
                raise OrderRejected(
                    f"insufficient shares: selling {req.qty} {req.symbol}, holding {held}, "
                    f"available {available} (short selling is not allowed)",
                    code=RejectCode.INSUFFICIENT_SHARES,
                )
            reserve_price = 0.0
        return limit, reserve_price

    def _limit_price(self, req: OrderRequest, inst: Instrument) -> float | None:
        limits = inst.limits
        if req.order_type is OrderType.MARKET:
            return None
        if req.order_type is OrderType.MARKETABLE_LIMIT:
            ref = self._last.get(inst.symbol, inst.base_price)
            if ref is None:
                raise OrderRejected(f"no reference price for {inst.symbol} yet", code=RejectCode.NO_REFERENCE_PRICE)
            if req.band_bps is not None and req.band_bps < 0:
                raise OrderRejected(f"band_bps must be >= 0, got {req.band_bps}", code=RejectCode.INVALID_PRICE)
            band = req.band_bps / 10_000 if req.band_bps is not None else None
            marketable = marketable_limit(ref, req.side is Side.BUY, band)
            if limits:
                marketable = min(marketable, limits[1]) if req.side is Side.BUY else max(marketable, limits[0])
            return float(marketable)
        price = req.limit_price
        if price is None or isinstance(price, bool) or not isinstance(price, (int, float)) or not price > 0:
            raise OrderRejected(
                f"a LIMIT order needs a positive limit_price, got {price!r}", code=RejectCode.INVALID_PRICE
            )
        if not is_on_tick(price):
            raise OrderRejected(
                f"limit {price:g} is off the tick grid (tick {tick_size(price):,} at this price)",
                code=RejectCode.OFF_TICK,
            )
        if limits and not limits[0] <= price <= limits[1]:
            raise OrderRejected(
                f"limit {price:,.0f} is outside today's price limits {limits[0]:,}–{limits[1]:,} for {inst.symbol}",
                code=RejectCode.OUTSIDE_PRICE_LIMIT,
            )
        return float(price)

    def _market_reserve_price(self, inst: Instrument) -> float:
        limits = inst.limits
        if limits:
            return float(limits[1])
        last = self._last.get(inst.symbol)
        if last is None:
            raise OrderRejected(f"no reference price for {inst.symbol} yet", code=RejectCode.NO_REFERENCE_PRICE)
        return last * (1 + MARKET_RESERVE_PCT)

    def _reservation(self, qty: int, price: float) -> float:
        notional = qty * price
        return notional + self.fees.commission(notional)

    def _executable(self, order: BrokerOrder, price: float) -> int:
        """Shares the account can actually trade now; only admin drift makes this bind."""
        leaves = order.qty - order.filled_qty
        if order.side is Side.SELL:
            held = self._holdings.get(order.symbol)
            return min(leaves, held.qty if held else 0)
        if self._reservation(leaves, price) <= self._cash + _EPS:
            return leaves
        qty = max(0, min(leaves, math.floor(self._cash / (price * (1 + self.fees.commission_rate)))))
        while qty > 0 and self._reservation(qty, price) > self._cash + _EPS:
            qty -= 1
        return qty

    def _execute(self, order: BrokerOrder, qty: int, tick: Tick) -> OrderUpdate:
        price = float(tick.price)
        notional = price * qty
        commission = self.fees.commission(notional)
        tax = self.fees.tax(order.side, notional)
        holding = self._holdings.setdefault(order.symbol, _Holding(0, 0.0))
        if order.side is Side.BUY:
            self._cash -= notional + commission
            holding.avg_price = (holding.qty * holding.avg_price + notional) / (holding.qty + qty)
            holding.qty += qty
            self._realized -= commission
        else:
            self._cash += notional - commission - tax
            self._realized += (price - holding.avg_price) * qty - commission - tax
            holding.qty -= qty
        if holding.qty == 0:
            del self._holdings[order.symbol]
        order.avg_fill_price = (order.avg_fill_price * order.filled_qty + notional) / (order.filled_qty + qty)
        order.filled_qty += qty
        order.updated_at = tick.ts
        if order.filled_qty == order.qty:
            order.status = OrderStatus.FILLED
            self._unbook(order)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            working = self._book.get(order.symbol, {}).get(order.client_order_id)
            if working is not None:
                self._reserve(order, working.reserve_price)
        self._exec_seq += 1
        fill = Fill(
            execution_id=f"{self._id_prefix}-{tick.ts.astimezone(KST):%Y%m%d}-X{self._exec_seq:06d}",
            client_order_id=order.client_order_id,
            broker_order_id=order.broker_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            ts=tick.ts,
            commission=commission,
            tax=tax,
        )
        self._fills.append(fill)
        return self._emit(order, tick.ts, fill)

    def _finish(self, order: BrokerOrder, status: OrderStatus, reason: str, now: datetime) -> OrderUpdate:
        order.status = status
        order.reason = reason
        order.updated_at = now
        self._unbook(order)
        return self._emit(order, now)

    def _unbook(self, order: BrokerOrder) -> None:
        book = self._book.get(order.symbol)
        if book is not None:
            book.pop(order.client_order_id, None)
            if not book:
                del self._book[order.symbol]
        self._reserved_total -= self._reserved.pop(order.client_order_id, 0.0)
        if not self._reserved:
            self._reserved_total = 0.0

    def _reserve(self, order: BrokerOrder, reserve_price: float) -> None:
        """Set the cash a working buy holds back (its leaves at its reserve price, with commission)."""
        if order.side is not Side.BUY:
            return
        value = self._reservation(order.qty - order.filled_qty, reserve_price)
        self._reserved_total += value - self._reserved.get(order.client_order_id, 0.0)
        self._reserved[order.client_order_id] = value

    def _emit(self, order: BrokerOrder, ts: datetime, fill: Fill | None = None) -> OrderUpdate:
        """Every change of an order passes here: it is published and marks the account changed."""
        self._dirty_orders[order.client_order_id] = None
        self._version += 1
        update = OrderUpdate(order=order.copy(), ts=ts, fill=fill)
        self._pending.append(update)
        return update

    def _mark(self, symbol: str, holding: _Holding) -> float:
        last = self._last.get(symbol)
        if last is not None:
            return last
        inst = self._instruments.get(symbol)
        return inst.base_price if inst and inst.base_price else holding.avg_price


def _normalized(req: OrderRequest) -> OrderRequest:
    """Coerce plain strings ("BUY", "LIMIT") to the enums; anything else is INVALID_ORDER (not stored)."""
    try:
        return replace(req, side=Side(req.side), order_type=OrderType(req.order_type))
    except ValueError as exc:
        raise OrderRejected(f"invalid order: {exc}", code=RejectCode.INVALID_ORDER) from exc


def _crosses(order: BrokerOrder, price: float) -> bool:
    if order.limit_price is None:
        return True
    if order.side is Side.BUY:
        return price <= order.limit_price + _EPS
    return price >= order.limit_price - _EPS


def _new_order(
    req: OrderRequest, broker_order_id: str, limit: float | None, now: datetime, status: OrderStatus, reason: str | None
) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=req.client_order_id,
        broker_order_id=broker_order_id,
        symbol=req.symbol,
        side=req.side,
        qty=req.qty,
        order_type=req.order_type,
        limit_price=limit,
        status=status,
        created_at=now,
        updated_at=now,
        reason=reason,
    )


def _one_tick_market(last: float) -> tuple[float, float]:
    """A one-tick-wide synthetic book around the last print (the usual KRX spread of a liquid name).

    On the grid the last print is taken as the bid; off the grid (adjusted data) the book brackets it.
    """
    if is_on_tick(last):
        return float(last), float(up(last))
    return float(round_down(last)), float(round_up(last))
