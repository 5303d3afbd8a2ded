"""``AlpacaBroker``: the Broker protocol on alpaca-py's ``TradingClient``, ``StockHistoricalDataClient``,
``TradingStream`` and ``StockDataStream``.

Requests
  alpaca-py is synchronous (requests) and has no timeout. Every call runs in the adapter's thread pool
  under our deadline (``asyncio.wait_for``), and the SDK's session gets a socket timeout so a stalled
  call also ends its thread. The SDK's own retry of 429/504 (three more attempts, 3 s apart, POST
  included) is switched off: a 429 is ours to report (RateLimited) and a 504 on a submit is an unknown
  outcome that must be looked up, not re-sent. (With it switched on, the client order id still keeps a
  retried submit single: the retry meets Alpaca's 422 "client_order_id must be unique" and the adapter
  looks the order up — the integration tests prove both.)

Orders
  The OMS's client order id is sent as Alpaca's ``client_order_id`` (ids longer than 128 characters or
  not printable ASCII are sent as a stable hash, ``wire_client_id``), so the same request is the same order
  at Alpaca. Input is checked against the US rules and the asset list before anything is sent (unknown
  symbol, zero or fractional quantity, off-tick limit → ``InvalidOrder`` naming the field). A submit that
  fails after it may have reached Alpaca (5xx, timeout, dropped connection) or meets the duplicate-id 422
  is looked up by client order id, with back-off on the clock for ``order_lookup_window_s`` (Alpaca may
  show a new order late); found, it is returned as the submit's answer; not found, ``OutcomeUnknown``.

Fills
  ``trade_updates`` (TradingStream in its own thread) is the push path; the FILL account activities,
  polled every ``fill_poll_s`` and at each stream (re)connect, are the safety net. Both name an
  execution ``ALPACA-<order id>-<cumulative qty>`` (the stream's order snapshot and the activity both
  carry the cumulative quantity), so the same execution has the same id whichever path saw it, across
  restarts too, and a fill is handed out once.

Market data
  Quotes from snapshots, bars from the bars endpoint, ticks from StockDataStream trades (its own
  thread, started at the first subscription; ``subscription_capacity`` symbols). Intraday bars are raw;
  daily bars are raw with the split-and-dividend adjusted close in ``extra["adj_close"]`` (two bars
  requests per call, see ``get_daily_bars``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any, TypeVar

from alpaca.common.enums import Sort
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.models import Trade as AlpacaTrade
from alpaca.data.requests import StockBarsRequest, StockSnapshotRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetStatus, OrderSide, QueryOrderStatus
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import GetAssetsRequest, GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from broker_core.alpaca.errors import DUPLICATE_CLIENT_ORDER_ID, NOT_CANCELABLE, InvalidOrder, map_error
from broker_core.alpaca.settings import AlpacaSettings
from broker_core.clock import NEW_YORK, Clock, RealClock
from broker_core.errors import (
    BrokerError,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    SubscriptionCapacityExceeded,
)
from broker_core.logging_setup import register_secret
from broker_core.markets import us
from broker_core.markets.us import UsMarketRules, UsOrderError
from broker_core.models import (
    Account,
    Bar,
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
from broker_core.streams import FanoutStream

log = logging.getLogger("broker_core.alpaca")
R = TypeVar("R")
MAX_CLIENT_ORDER_ID = 128
ACTIVITY_PAGE = 100
ORDER_LIST_LIMIT = 500
TICK_QUEUE = 10_000
DEADLINE_MARGIN_S = 0.5
STREAM_STOP_S = 10.0
ZERO_FEES = FeeSchedule(commission_rate=0.0, sell_tax_rate=0.0, truncate_to_won=False)

STATUS = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW,
    "pending_cancel": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW,
    "held": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "stopped": OrderStatus.NEW,
    "suspended": OrderStatus.NEW,
    "done_for_day": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "replaced": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
REASON = {"canceled": "CANCELLED", "replaced": "REPLACED", "expired": "DAY_END", "rejected": "BROKER_REJECTED"}


def wire_client_id(client_order_id: str) -> str:
    """The ``client_order_id`` sent to Alpaca: the id itself when Alpaca takes it (≤ 128 printable ASCII
    characters), else a stable hash of it, so the same order always carries the same id."""
    if len(client_order_id) <= MAX_CLIENT_ORDER_ID and client_order_id.isascii() and client_order_id.isprintable():
        return client_order_id
    return "h-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:48]


def execution_id(order_id: str, cum_qty: float) -> str:
    cum = int(cum_qty) if float(cum_qty).is_integer() else cum_qty
    return f"ALPACA-{order_id}-{cum}"


def _f(value: Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _qty(value: Any) -> int:
    """Whole shares of an Alpaca quantity (fractional positions are truncated)."""
    return int(_f(value))


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


class _DeadlineHTTPAdapter(HTTPAdapter):
    """Gives every request of the SDK's session a socket timeout (alpaca-py passes none)."""

    def __init__(self, timeout_s: float, pool: int) -> None:
        super().__init__(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self.timeout_s = timeout_s

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        return super().send(request, stream, self.timeout_s if timeout is None else timeout, verify, cert, proxies)


def configure_transport(client: Any, timeout_s: float, *, sdk_retries: bool, pool: int = 8) -> None:
    """Socket timeout on an alpaca-py REST client, and its 429/504 retry off unless ``sdk_retries``."""
    adapter = _DeadlineHTTPAdapter(timeout_s, pool)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    if not sdk_retries:
        client._retry = 0


class _TradeUpdates(TradingStream):
    """TradingStream telling the adapter each time its connection is (re)established."""

    on_connected: Callable[[], None] | None = None

    async def _start_ws(self) -> None:
        await super()._start_ws()
        if self.on_connected is not None:
            self.on_connected()


class AlpacaBroker:
    name = "alpaca"

    def __init__(
        self,
        settings: AlpacaSettings,
        *,
        clock: Clock | None = None,
        rules: UsMarketRules | None = None,
        fees: FeeSchedule | None = None,
        sdk_retries: bool = False,
        workers: int = 8,
        stream_connect_wait_s: float = 10.0,
    ) -> None:
        """``sdk_retries`` leaves alpaca-py's own 429/504 retry on (off by default; see the module docstring);
        ``connect`` waits up to ``stream_connect_wait_s`` for ``trade_updates`` (then it keeps trying behind)."""
        self.settings = settings
        self.clock: Clock = clock or RealClock(NEW_YORK)
        self.rules = rules or UsMarketRules(fractional=settings.fractional, extended_hours=settings.extended_hours)
        self.fees = fees or ZERO_FEES
        self.subscription_capacity = settings.subscription_capacity
        register_secret(settings.api_key, settings.secret_key)
        key, secret = settings.api_key, settings.secret_key
        self.trading = TradingClient(key, secret, paper=settings.paper, url_override=settings.base_url)
        self.data = StockHistoricalDataClient(key, secret, url_override=settings.data_url)
        timeout = settings.request_timeout_s
        configure_transport(self.trading, timeout, sdk_retries=sdk_retries, pool=workers)
        configure_transport(self.data, timeout, sdk_retries=sdk_retries, pool=workers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alpaca-rest")
        self._feed = DataFeed.SIP if settings.data_feed == "sip" else DataFeed.IEX
        self._assets: dict[str, tuple[bool, bool]] | None = None
        """symbol → (tradable, fractionable)."""
        self._orders: dict[str, BrokerOrder] = {}
        self._cid_of_order: dict[str, str] = {}
        self._ours: dict[str, str] = {}
        """wire client order id → the OMS's client order id."""
        self._sent: set[str] = set()
        self._seen_executions: set[str] = set()
        self._order_streams: list[FanoutStream[Any]] = []
        self._tick_streams: list[FanoutStream[Any]] = []
        self._subscribed: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trade_stream: _TradeUpdates | None = None
        self._trade_thread: threading.Thread | None = None
        self._data_stream: StockDataStream | None = None
        self._data_thread: threading.Thread | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._poll_now = asyncio.Event()
        self._poll_lock = asyncio.Lock()
        self._stream_up = asyncio.Event()
        self._closing = False
        self.stream_connect_wait_s = stream_connect_wait_s
        self.stream_connects = 0
        self.fills_from_stream = 0
        self.fills_from_poll = 0
        self.connected = False

    def __repr__(self) -> str:
        return f"AlpacaBroker({self.settings!r})"

    # -- plumbing ----------------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], R], what: str, *, client_order_id: str | None = None) -> R:
        """``fn`` (an SDK call) in the thread pool under our deadline; failures mapped onto the taxonomy."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn)
        try:
            return await asyncio.wait_for(future, self.settings.request_timeout_s + DEADLINE_MARGIN_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise map_error(exc, what, client_order_id=client_order_id) from exc

    def _today(self) -> date:
        return self.clock.now().astimezone(NEW_YORK).date()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the keys (account), load the asset list, start ``trade_updates`` and the fills poll."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        await self._call(self.trading.get_account, "get account")
        await self.load_assets()
        self._start_trade_stream()
        if self._poll_task is None:
            self._poll_task = asyncio.create_task(self._poll_fills_loop(), name="alpaca-fills-poll")
        try:
            await asyncio.wait_for(self._stream_up.wait(), self.stream_connect_wait_s)
        except TimeoutError:
            log.warning("alpaca trade_updates not connected yet; fills come from the poll until it is")
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        self._closing = True
        if self._poll_task is not None:
            self._poll_now.set()
            self._poll_task.cancel()
            await asyncio.wait({self._poll_task}, timeout=self.settings.request_timeout_s + DEADLINE_MARGIN_S)
            self._poll_task = None
        await asyncio.gather(
            asyncio.to_thread(self._stop_stream, self._trade_stream, self._trade_thread),
            asyncio.to_thread(self._stop_stream, self._data_stream, self._data_thread),
        )
        self._trade_stream = self._data_stream = None
        self._trade_thread = self._data_thread = None
        for stream in list(self._order_streams) + list(self._tick_streams):
            stream.end()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _stop_stream(stream: Any, thread: threading.Thread | None) -> None:
        """Stop an SDK stream running in ``thread``: signal it, then close its socket so it does not wait
        for its 5 s receive timeout."""
        if stream is None or thread is None:
            return
        loop = getattr(stream, "_loop", None)
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(timeout=5)
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stream.close(), loop).result(timeout=5)
        thread.join(STREAM_STOP_S)
        if thread.is_alive():
            log.warning("alpaca stream thread %s did not stop within %.0fs", thread.name, STREAM_STOP_S)

    async def load_assets(self) -> None:
        request = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
        assets: Any = await self._call(lambda: self.trading.get_all_assets(request), "list assets")
        self._assets = {a.symbol: (bool(a.tradable), bool(a.fractionable)) for a in assets}
        log.info("alpaca: %d active US equity assets", len(self._assets))

    @property
    def tradable_symbols(self) -> set[str] | None:
        """The tradable symbols of the asset list loaded at ``connect`` (None before): the OMS's known symbols."""
        if self._assets is None:
            return None
        return {symbol for symbol, (tradable, _) in self._assets.items() if tradable}

    # -- validation --------------------------------------------------------------------------------

    async def _check(self, request: OrderRequest) -> bool:
        """Refuse bad input before anything is sent (``InvalidOrder`` naming the field). Returns whether the
        order goes out as an extended-hours order."""
        if self._assets is None:
            await self.load_assets()
        assets = self._assets or {}
        try:
            self.rules.check_symbol(request.symbol, assets)
            tradable, fractionable = assets[request.symbol]
            if not tradable:
                raise UsOrderError("symbol", f"{request.symbol!r} is not tradable at Alpaca", "NOT_TRADABLE")
            try:
                kind = OrderType(request.order_type)
            except ValueError:
                raise UsOrderError(
                    "order_type", f"unknown order type {request.order_type!r}", "INVALID_ORDER"
                ) from None
            qty = self.rules.check_qty(request.qty, kind)
            if not float(qty).is_integer() and not fractionable:
                raise UsOrderError("qty", f"{request.symbol} is not fractionable at Alpaca", "FRACTIONAL_QTY")
            if kind is OrderType.LIMIT:
                self.rules.check_limit_price(request.limit_price)
            if kind is OrderType.MARKETABLE_LIMIT and request.band_bps is not None and not request.band_bps >= 0:
                raise UsOrderError("band_bps", f"must be >= 0, got {request.band_bps!r}", "INVALID_PRICE")
            now = self.clock.now()
            phase = us.session_phase(now)
            extended = phase is not us.UsSessionPhase.REGULAR
            if extended:
                if phase is us.UsSessionPhase.CLOSED or not self.rules.extended_hours:
                    self.rules.check_session(now)
                if kind is OrderType.MARKET:
                    raise UsOrderError(
                        "order_type", f"only LIMIT orders are taken in the {phase.value} session", "EXTENDED_HOURS"
                    )
        except UsOrderError as exc:
            raise InvalidOrder(exc.field, str(exc), code=exc.code) from None
        return extended

    # -- orders ------------------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        cid = request.client_order_id
        if not cid:
            raise InvalidOrder("client_order_id", "is required")
        wire = wire_client_id(cid)
        self._ours[wire] = cid
        if cid in self._sent:
            existing = await self.get_order(cid)
            if existing is not None:
                return existing
        extended = await self._check(request)
        body = await self._order_body(request, wire, extended)
        self._sent.add(cid)
        try:
            order: Any = await self._call(lambda: self.trading.submit_order(body), "submit order", client_order_id=cid)
        except OrderRejected as exc:
            if exc.code == DUPLICATE_CLIENT_ORDER_ID:
                log.warning("order %s: Alpaca already holds this client_order_id; looking it up", cid)
                return await self._resolve(cid, exc.message)
            self._sent.discard(cid)
            raise
        except OutcomeUnknown as exc:
            log.warning("order %s: submit outcome unknown (%s); looking it up reason=OUTCOME_UNKNOWN", cid, exc.message)
            return await self._resolve(cid, exc.message)
        except BrokerError:
            self._sent.discard(cid)
            raise
        return self._remember(order)

    async def _order_body(
        self, request: OrderRequest, wire: str, extended: bool
    ) -> MarketOrderRequest | LimitOrderRequest:
        side = OrderSide.BUY if request.side is Side.BUY else OrderSide.SELL
        common: dict[str, Any] = {
            "symbol": request.symbol,
            "qty": request.qty,
            "side": side,
            "time_in_force": AlpacaTif.DAY,
            "client_order_id": wire,
        }
        if extended:
            common["extended_hours"] = True
        kind = OrderType(request.order_type)
        if kind is OrderType.MARKET:
            return MarketOrderRequest(**common)
        if kind is OrderType.MARKETABLE_LIMIT:
            quote = await self.get_quote(request.symbol)
            ref = (quote.ask if request.side is Side.BUY else quote.bid) or quote.last
            band = request.band_bps / 10_000 if request.band_bps is not None else None
            limit = us.marketable_limit(ref, request.side is Side.BUY, band)
            return LimitOrderRequest(limit_price=limit, **common)
        return LimitOrderRequest(limit_price=float(request.limit_price or 0), **common)

    async def _resolve(self, cid: str, why: str) -> BrokerOrder:
        """Find the order of a submit whose answer is unknown, by its client order id, before anything is
        re-sent: looked up with back-off on the clock until ``order_lookup_window_s`` has passed."""
        window = timedelta(seconds=self.settings.order_lookup_window_s)
        deadline = self.clock.now() + window
        pause = self.settings.order_lookup_backoff_s
        lookups = 0
        last = why
        while True:
            lookups += 1
            try:
                found = await self.get_order(cid)
            except BrokerError as exc:
                found, last = None, exc.message
            if found is not None:
                log.info("order %s: found at Alpaca after %d lookup(s) (%s)", cid, lookups, found.status.value)
                return found
            remaining = (deadline - self.clock.now()).total_seconds()
            if remaining <= 0:
                raise OutcomeUnknown(
                    f"submit of {cid}: not found by client_order_id after {lookups} lookup(s) in "
                    f"{window.total_seconds():g}s ({last})",
                    client_order_id=cid,
                )
            await self.clock.sleep(min(pause, remaining))
            pause *= 2

    def _remember(self, order: AlpacaOrder) -> BrokerOrder:
        """Our view of an SDK order, cached (a later snapshot never takes back a fill or a final status)."""
        wire = order.client_order_id
        cid = self._ours.get(wire, wire)
        status_text = _enum_value(order.status)
        status = STATUS.get(status_text, OrderStatus.NEW)
        filled = _qty(order.filled_qty)
        if status is OrderStatus.NEW and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        kind = _enum_value(order.type or order.order_type)
        created = order.submitted_at or order.created_at
        fresh = BrokerOrder(
            client_order_id=cid,
            broker_order_id=str(order.id),
            symbol=order.symbol or "",
            side=Side.BUY if _enum_value(order.side) == "buy" else Side.SELL,
            qty=_qty(order.qty),
            order_type=OrderType.MARKET if kind == "market" else OrderType.LIMIT,
            limit_price=_f(order.limit_price) if order.limit_price is not None else None,
            status=status,
            created_at=created,
            updated_at=order.updated_at or created,
            filled_qty=filled,
            avg_fill_price=_f(order.filled_avg_price),
            reason=REASON.get(status_text),
        )
        cached = self._orders.get(cid)
        if cached is not None and cached.broker_order_id == fresh.broker_order_id:
            if cached.status.is_terminal and not fresh.status.is_terminal:
                fresh.status, fresh.reason = cached.status, cached.reason
            if cached.filled_qty > fresh.filled_qty:
                fresh.filled_qty, fresh.avg_fill_price = cached.filled_qty, cached.avg_fill_price
        self._orders[cid] = fresh
        self._cid_of_order[fresh.broker_order_id] = cid
        return fresh.copy()

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        wire = wire_client_id(client_order_id)
        self._ours.setdefault(wire, client_order_id)
        try:
            order: Any = await self._call(lambda: self.trading.get_order_by_client_id(wire), "get order")
        except OrderNotFound:
            return None
        return self._remember(order)

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        order = await self.get_order(client_order_id)
        if order is None:
            raise OrderNotFound(f"no Alpaca order with client_order_id {client_order_id!r}")
        if order.status.is_terminal:
            raise OrderRejected(f"order {client_order_id} is already {order.status.value}", code="ALREADY_FINAL")
        order_id = order.broker_order_id
        try:
            await self._call(
                lambda: self.trading.cancel_order_by_id(order_id), "cancel order", client_order_id=client_order_id
            )
        except OrderRejected as exc:
            now = await self.get_order(client_order_id)
            if exc.code == NOT_CANCELABLE and now is not None and now.status.is_terminal:
                final = now.status.value
                raise OrderRejected(f"order {client_order_id} is already {final}", code="ALREADY_FINAL") from exc
            raise
        after = await self.get_order(client_order_id)
        if after is None:
            raise OrderNotFound(f"order {client_order_id} vanished after its cancel")
        return after

    async def list_open_orders(self) -> list[BrokerOrder]:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=ORDER_LIST_LIMIT, direction=Sort.ASC)
        orders: Any = await self._call(lambda: self.trading.get_orders(request), "list open orders")
        out = [self._remember(o) for o in orders]
        return [o for o in out if not o.status.is_terminal]

    # -- fills -------------------------------------------------------------------------------------

    async def list_fills(self, since: datetime | None = None) -> list[Fill]:
        """Executions from the FILL activities (today's, from New York midnight, unless ``since``); fills
        not handed out before are also pushed to the order-update streams."""
        after = since or datetime.combine(self._today(), time(), NEW_YORK)
        fills: list[Fill] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "after": after.isoformat(),
                "direction": "asc",
                "page_size": ACTIVITY_PAGE,
            }
            if token:
                params["page_token"] = token
            rows: Any = await self._call(
                partial(self.trading.get, "/account/activities/FILL", params), "list fill activities"
            )
            if not isinstance(rows, list):
                raise BrokerError(f"list fill activities: unexpected answer {type(rows).__name__}", code="BAD_RESPONSE")
            for row in rows:
                fill = await self._fill_of_activity(row)
                if fill is not None:
                    fills.append(fill)
            if len(rows) < ACTIVITY_PAGE:
                break
            token = str(rows[-1].get("id", ""))
            if not token:
                break
        new = [f for f in fills if f.execution_id not in self._seen_executions]
        for fill in new:
            self._seen_executions.add(fill.execution_id)
            self.fills_from_poll += 1
            order = self._orders.get(fill.client_order_id)
            if order is None:
                order = await self.get_order(fill.client_order_id)
            if order is not None:
                self._publish(OrderUpdate(order=order.copy(), ts=fill.ts, fill=fill))
        return fills

    async def _fill_of_activity(self, row: Any) -> Fill | None:
        if not isinstance(row, dict) or row.get("activity_type", "FILL") != "FILL":
            return None
        order_id = str(row.get("order_id") or "")
        if not order_id:
            return None
        cid = self._cid_of_order.get(order_id)
        if cid is None:
            try:
                order: Any = await self._call(lambda: self.trading.get_order_by_id(order_id), "get order by id")
                cid = self._remember(order).client_order_id
            except OrderNotFound:
                cid = order_id
        qty, price = _f(row.get("qty")), _f(row.get("price"))
        ts = datetime.fromisoformat(str(row.get("transaction_time")).replace("Z", "+00:00"))
        side = Side.BUY if row.get("side") == "buy" else Side.SELL
        return self._make_fill(order_id, cid, str(row.get("symbol", "")), side, qty, price, ts, _f(row.get("cum_qty")))

    def _make_fill(
        self, order_id: str, cid: str, symbol: str, side: Side, qty: float, price: float, ts: datetime, cum: float
    ) -> Fill:
        notional = qty * price
        return Fill(
            execution_id=execution_id(order_id, cum),
            client_order_id=cid,
            broker_order_id=order_id,
            symbol=symbol,
            side=side,
            qty=int(qty),
            price=price,
            ts=ts,
            commission=self.fees.commission(notional),
            tax=self.fees.tax(side, notional),
        )

    async def _poll_fills_loop(self) -> None:
        # Stopped by ``_closing`` as well as by cancel: Python 3.11's wait_for loses a cancel that lands as
        # the awaited event fires.
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), self.settings.fill_poll_s)
            if self._closing:
                return
            self._poll_now.clear()
            try:
                async with self._poll_lock:
                    await self.list_fills()
            except BrokerError as exc:
                log.warning("alpaca fills poll failed: %s", exc.message)

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        return FanoutStream[OrderUpdate](self._order_streams)

    def _publish(self, update: OrderUpdate) -> None:
        for stream in list(self._order_streams):
            stream.offer(update)

    # -- trade_updates -----------------------------------------------------------------------------

    def _start_trade_stream(self) -> None:
        if self._trade_thread is not None:
            return
        stream = _TradeUpdates(
            self.settings.api_key,
            self.settings.secret_key,
            paper=self.settings.paper,
            url_override=self.settings.stream_url,
            websocket_params={"ping_interval": 10, "ping_timeout": 30, "max_queue": 1024, "open_timeout": 10},
        )
        stream.on_connected = self._stream_connected
        stream.subscribe_trade_updates(self._on_trade_update)
        thread = threading.Thread(target=stream.run, name="alpaca-trade-updates", daemon=True)
        self._trade_stream, self._trade_thread = stream, thread
        thread.start()

    def _stream_connected(self) -> None:
        """In the stream's thread: a (re)connect; poll fills at once for what the stream missed meanwhile."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_stream_connected)

    def _on_stream_connected(self) -> None:
        self.stream_connects += 1
        self._stream_up.set()
        if self.stream_connects > 1:
            log.info("alpaca trade_updates reconnected (%d); polling fills now", self.stream_connects)
        self._poll_now.set()

    async def _on_trade_update(self, update: TradeUpdate) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._apply_trade_update, update)

    def _apply_trade_update(self, update: TradeUpdate) -> None:
        try:
            order = self._remember(update.order)
        except Exception:
            log.exception("alpaca trade update could not be read")
            return
        event = _enum_value(update.event)
        fill = None
        if event in ("fill", "partial_fill") and update.qty and update.price is not None:
            candidate = self._make_fill(
                order.broker_order_id,
                order.client_order_id,
                order.symbol,
                order.side,
                float(update.qty),
                float(update.price),
                update.timestamp,
                _f(update.order.filled_qty),
            )
            if candidate.execution_id not in self._seen_executions:
                self._seen_executions.add(candidate.execution_id)
                self.fills_from_stream += 1
                fill = candidate
        self._publish(OrderUpdate(order=order, ts=update.timestamp, fill=fill))

    # -- account -----------------------------------------------------------------------------------

    async def get_positions(self) -> list[Position]:
        positions: Any = await self._call(self.trading.get_all_positions, "list positions")
        out = []
        for p in positions:
            qty = _qty(p.qty) * (-1 if _enum_value(p.side) == "short" else 1)
            out.append(Position(p.symbol, qty, _f(p.avg_entry_price)))
        return out

    async def get_account(self) -> Account:
        acct: Any = await self._call(self.trading.get_account, "get account")
        return Account(
            currency=str(acct.currency or "USD"),
            cash=_f(acct.cash),
            buyable_cash=_f(acct.buying_power),
            equity=_f(acct.equity),
            market_value=_f(acct.long_market_value) + _f(acct.short_market_value),
        )

    # -- market data -------------------------------------------------------------------------------

    async def get_quote(self, symbol: str) -> Quote:
        request = StockSnapshotRequest(symbol_or_symbols=symbol, feed=self._feed)
        snapshots: Any = await self._call(lambda: self.data.get_stock_snapshot(request), "get snapshot")
        snap = snapshots.get(symbol) if isinstance(snapshots, dict) else None
        if snap is None or snap.latest_trade is None:
            raise BrokerError(f"no market data for {symbol!r}", code="NO_DATA")
        today = self._today()
        daily, previous = snap.daily_bar, snap.previous_daily_bar
        if daily is not None and daily.timestamp.astimezone(NEW_YORK).date() == today:
            prev_close = previous.close if previous is not None else None
            volume = int(daily.volume)
        else:
            prev_close = daily.close if daily is not None else None
            volume = 0
        q = snap.latest_quote
        return Quote(
            symbol=symbol,
            ts=snap.latest_trade.timestamp,
            last=float(snap.latest_trade.price),
            bid=float(q.bid_price) if q is not None else None,
            ask=float(q.ask_price) if q is not None else None,
            bid_size=int(q.bid_size) if q is not None else 0,
            ask_size=int(q.ask_size) if q is not None else 0,
            prev_close=prev_close,
            volume=volume,
        )

    async def _bars(
        self,
        symbol: str,
        timeframe: TimeFrame,
        start: datetime,
        end: datetime,
        adjustment: Adjustment | None = None,
    ) -> list[Any]:
        """Bars of one symbol; ``adjustment`` None sends none (Alpaca's default: raw)."""
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=timeframe,
            start=start,
            end=end,
            feed=self._feed,
            adjustment=adjustment,
        )
        barset: Any = await self._call(lambda: self.data.get_stock_bars(request), "get bars")
        return list(barset.data.get(symbol, []))

    async def get_bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]:
        timeframe = _timeframe(interval)
        rows = await self._bars(symbol, timeframe, start, end)
        return [
            Bar(symbol, b.timestamp, b.open, b.high, b.low, b.close, int(b.volume), interval)
            for b in rows
            if start <= b.timestamp <= end
        ]

    async def get_daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        """Raw daily bars, each with ``extra["adj_close"]``: the close adjusted for splits and dividends
        (``adjustment=all``), matched by date; a day the adjusted answer lacks gets no extra.

        Two bars requests per call (raw, then all), each paged by the SDK: it costs two of Alpaca's data
        API requests while the OMS market-data proxy charges its rate budget one token for it.
        """
        begin = datetime.combine(start, time(), NEW_YORK)
        finish = datetime.combine(end, time(23, 59, 59), NEW_YORK)
        rows = await self._bars(symbol, TimeFrame.Day, begin, finish)
        adjusted = await self._bars(symbol, TimeFrame.Day, begin, finish, Adjustment.ALL)
        adj_close = {_ny_date(b.timestamp): float(b.close) for b in adjusted}
        out = []
        for b in rows:
            day = _ny_date(b.timestamp)
            adj = adj_close.get(day)
            extra = {"adj_close": adj} if adj is not None else {}
            out.append(
                Bar(
                    symbol,
                    datetime.combine(day, time(), NEW_YORK),
                    b.open,
                    b.high,
                    b.low,
                    b.close,
                    int(b.volume),
                    "1d",
                    extra,
                )
            )
        return out

    # -- ticks -------------------------------------------------------------------------------------

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        """All or nothing: SubscriptionCapacityExceeded if the new total would pass the capacity."""
        wanted = [s for s in dict.fromkeys(symbols) if s not in self._subscribed]
        if not wanted:
            return
        total = len(self._subscribed) + len(wanted)
        if total > self.subscription_capacity:
            raise SubscriptionCapacityExceeded(
                f"subscribing {len(wanted)} more symbol(s) would hold {total}; capacity is {self.subscription_capacity}"
            )
        self._subscribed.update(wanted)
        stream = self._data_stream
        if stream is None:
            stream = StockDataStream(
                self.settings.api_key,
                self.settings.secret_key,
                feed=self._feed,
                url_override=self.settings.data_stream_url,
                websocket_params={"ping_interval": 10, "ping_timeout": 30, "max_queue": 1024, "open_timeout": 10},
            )
            stream.subscribe_trades(self._on_trade, *wanted)
            thread = threading.Thread(target=stream.run, name="alpaca-market-data", daemon=True)
            self._data_stream, self._data_thread = stream, thread
            thread.start()
            return
        await asyncio.to_thread(stream.subscribe_trades, self._on_trade, *wanted)

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        gone = [s for s in dict.fromkeys(symbols) if s in self._subscribed]
        if not gone:
            return
        self._subscribed.difference_update(gone)
        if self._data_stream is not None:
            await asyncio.to_thread(self._data_stream.unsubscribe_trades, *gone)

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    async def _on_trade(self, trade: AlpacaTrade | dict[Any, Any]) -> None:
        if not isinstance(trade, AlpacaTrade):
            return
        tick = Tick(trade.symbol, trade.timestamp, float(trade.price), int(trade.size))
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._publish_tick, tick)

    def _publish_tick(self, tick: Tick) -> None:
        if tick.symbol not in self._subscribed:
            return
        for stream in list(self._tick_streams):
            stream.offer(tick)

    def ticks(self) -> AsyncIterator[Tick]:
        return FanoutStream[Tick](self._tick_streams, TICK_QUEUE)


def _ny_date(ts: datetime) -> date:
    return ts.astimezone(NEW_YORK).date()


def _timeframe(interval: str) -> TimeFrame:
    text = interval.strip().lower()
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in ("m", "h"):
        raise BrokerError(f"unsupported bar interval {interval!r} (use e.g. 1m, 5m, 1h)", code="INVALID_INTERVAL")
    amount = int(number)
    if unit == "m" and 1 <= amount <= 59:
        return TimeFrame(amount, TimeFrameUnit.Minute)
    if unit == "h" and 1 <= amount <= 23:
        return TimeFrame(amount, TimeFrameUnit.Hour)
    raise BrokerError(f"unsupported bar interval {interval!r}", code="INVALID_INTERVAL")


__all__ = ["AlpacaBroker", "configure_transport", "execution_id", "wire_client_id"]
