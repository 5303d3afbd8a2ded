"""``KisBroker``: the Broker protocol over the KIS REST API and WebSocket.

Orders
  The client order id is written to the adapter's store before the request leaves; the reply's
  KIS order number (``ODNO``) and branch (``KRX_FWDG_ORD_ORGNO``) are recorded against it. A submit
  whose answer is lost (timeout, dropped connection, a 5xx without a KIS reply) raises
  ``OutcomeUnknown``; ``get_order`` then resolves it from the day's orders (an order of the same
  symbol, side, quantity and price placed since the send that no other client id owns) before
  anything else happens, so a retry never doubles an order. KIS lists a new order with a lag, so an
  empty answer is asked again with back-off (on the clock) until ``order_lookup_window_s`` after the
  reply was lost before the order is declared absent. Cancels use the branch number. A working order
  of the account that no client order id owns (placed by another KIS client or HTS) is given one
  (``foreign_client_id``) by ``list_open_orders`` and followed like ours, so its fills are reported.

Fills
  Execution notices (H0STCNI0/H0STCNI9, AES-decrypted) are the push stream; the daily orders query
  (totals per order number) is the safety net. Both paths name an execution after the cumulative
  quantity it brings the order number to — ``KIS-<date>-<odno>-<cum qty>`` — and a quantity
  already handed out by one path is never handed out by the other, so the same fill gets the same
  execution id and the OMS de-duplicates it.

Market data
  Quotes from inquire-price (+ best bid/ask and the static-VI reference of the latest WebSocket
  trade when the symbol is subscribed), minute bars paged across the session, daily bars, and
  trade ticks from H0STCNT0 registrations (40 per session; one registration is kept for notices).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from broker_core.clock import KST, Clock, RealClock
from broker_core.errors import (
    BrokerError,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    SubscriptionCapacityExceeded,
)
from broker_core.kis import tr_ids as T
from broker_core.kis.api import DailyOrder, KisApi, Unavailable
from broker_core.kis.auth import TokenFile
from broker_core.kis.parsers import ExecutionNotice, TradeRecord
from broker_core.kis.rest import KisRestClient, clock_limiter
from broker_core.kis.settings import KisSettings, token_file_path
from broker_core.kis.store import (
    NOT_FOUND,
    NOT_SENT,
    PLACED,
    REJECTED,
    SENDING,
    UNKNOWN,
    KisOrderStore,
    StoredOrder,
    execution_id,
)
from broker_core.kis.universe import UniverseDecision, classify
from broker_core.kis.ws import MARKET_CAPACITY, KisWebSocket
from broker_core.market_rules import CLOSE, marketable_limit, price_limits
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
from broker_core.paper.exchange import parse_interval
from broker_core.paper.fees import FeeSchedule
from broker_core.ratelimit import RateLimiter
from broker_core.streams import FanoutStream

log = logging.getLogger("broker_core.kis.broker")
ORDERS_FILE = "kis_orders.db"
RESOLVE_TOLERANCE = timedelta(seconds=30)
"""An order found in the day's list may carry an ORD_TMD this much before our send time (clock skew)."""
TICK_QUEUE = 10_000


class KisBroker:
    name = "kis"

    def __init__(
        self,
        settings: KisSettings,
        *,
        clock: Clock | None = None,
        data_dir: str | Path | None = None,
        limiter: RateLimiter | None = None,
        real_limiter: RateLimiter | None = None,
        fees: FeeSchedule | None = None,
        ws_connect_wait_s: float = 10.0,
        subscription_capacity: int = MARKET_CAPACITY,
        buyable_reference_symbol: str = "005930",
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or RealClock()
        self.subscription_capacity = subscription_capacity
        self.fees = fees or FeeSchedule()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.limiter = limiter or clock_limiter(settings.rate_budget, self.clock)
        token_file = TokenFile(token_file_path(self.data_dir, settings)) if self.data_dir else None
        self.rest = KisRestClient(
            settings.rest_url,
            settings.credentials,
            self.clock,
            limiter=self.limiter,
            token_file=token_file,
            custtype=settings.custtype,
            timeout_s=settings.request_timeout_s,
            label=f"kis-{settings.profile}",
        )
        self.real_rest: KisRestClient | None = None
        if settings.is_paper and settings.real_credentials is not None:
            real_file = TokenFile(token_file_path(self.data_dir, settings, real_host=True)) if self.data_dir else None
            self.real_rest = KisRestClient(
                settings.real_rest_url,
                settings.real_credentials,
                self.clock,
                limiter=real_limiter or clock_limiter(20.0, self.clock),
                token_file=real_file,
                custtype=settings.custtype,
                timeout_s=settings.request_timeout_s,
                label="kis-real-md",
            )
        self.api = KisApi(
            self.rest,
            cano=settings.account_no,
            prod=settings.account_prod_code,
            paper=settings.is_paper,
            real_rest=self.real_rest,
            exchange_code=settings.exchange_code,
            legacy=settings.legacy_tr_ids,
        )
        self.store = KisOrderStore(self.data_dir / ORDERS_FILE if self.data_dir else None)
        self.ws = KisWebSocket(
            settings.ws_url,
            self.rest.approval.get,
            custtype=settings.custtype,
            market_capacity=subscription_capacity,
            today=lambda: self._today_date(),
        )
        self.ws.on_trade = self._on_trade
        self.ws.on_notice = self._on_notice
        self.ws_connect_wait_s = ws_connect_wait_s
        self.buyable_reference_symbol = buyable_reference_symbol
        self._orders: dict[str, BrokerOrder] = {}
        self._order_streams: list[FanoutStream[Any]] = []
        self._tick_streams: list[FanoutStream[Any]] = []
        self._subscribed: dict[str, None] = {}
        self._last_trade: dict[str, TradeRecord] = {}
        self._orphans: dict[str, list[ExecutionNotice]] = {}
        self._resolve_lock = asyncio.Lock()
        self.notices_seen = 0
        self.connected = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Get the access token (reused from the volume when valid), open the WebSocket session and
        register the execution notices. A WebSocket that cannot connect yet keeps retrying in the
        background (fills then come from the daily query until it does)."""
        await self.rest.tokens.token()
        if self.settings.hts_id:
            await self.ws.subscribe(self.settings.notice_tr_id, self.settings.hts_id, enforce_cap=False)
        else:
            log.warning("KIS_HTS_ID is not set: no execution notices; fills come from the daily query only")
        if not await self.ws.start(wait_s=self.ws_connect_wait_s):
            log.warning("KIS WebSocket %s not connected yet; retrying in the background", self.settings.ws_url)
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        await self.ws.close()
        await self.rest.aclose()
        if self.real_rest is not None:
            await self.real_rest.aclose()
        for stream in list(self._order_streams) + list(self._tick_streams):
            stream.end()
        self.store.close()

    def _today_date(self) -> date:
        return self.clock.now().astimezone(KST).date()

    def _today(self) -> str:
        return self._today_date().strftime("%Y%m%d")

    # -- orders ------------------------------------------------------------------------------

    def _terms(
        self, req: OrderRequest, ref: float | None, limits: tuple[float, float] | None
    ) -> tuple[str, float | None]:
        """(ORD_DVSN, limit price or None for market)."""
        if req.order_type is OrderType.MARKET:
            return "01", None
        if req.order_type is OrderType.MARKETABLE_LIMIT:
            if ref is None:
                raise OrderRejected(f"no reference price for {req.symbol}", code="NO_REFERENCE_PRICE")
            band = req.band_bps / 10_000 if req.band_bps is not None else None
            price = float(marketable_limit(ref, req.side is Side.BUY, band))
            if limits is not None:
                price = min(price, limits[1]) if req.side is Side.BUY else max(price, limits[0])
            return "00", price
        if req.limit_price is None or not req.limit_price > 0:
            raise OrderRejected(
                f"a LIMIT order needs a positive limit_price, got {req.limit_price!r}", code="INVALID_PRICE"
            )
        return "00", float(req.limit_price)

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        cid = request.client_order_id
        if not cid:
            raise OrderRejected("client_order_id is required", code="INVALID_ORDER")
        stored = self.store.get(cid)
        if stored is not None and stored.state not in (NOT_SENT, NOT_FOUND):
            existing = await self.get_order(cid)
            if existing is not None:
                return existing
        if isinstance(request.qty, bool) or not isinstance(request.qty, int) or request.qty <= 0:
            raise OrderRejected(f"qty must be a positive whole number, got {request.qty!r}", code="INVALID_QTY")
        ref: float | None = None
        limits: tuple[float, float] | None = None
        if request.order_type is OrderType.MARKETABLE_LIMIT:
            quote = await self.get_quote(request.symbol)
            ref = (quote.ask if request.side is Side.BUY else quote.bid) or quote.last
            if quote.lower_limit and quote.upper_limit:
                limits = (quote.lower_limit, quote.upper_limit)
        ord_dvsn, price = self._terms(request, ref, limits)
        now = self.clock.now()
        self.store.record_sending(
            cid, self._today(), request.symbol, request.side, request.qty, request.order_type, price, ord_dvsn, now
        )
        try:
            reply = await self.api.order_cash(
                request.side, request.symbol, request.qty, ord_dvsn=ord_dvsn, price=price or 0
            )
        except OutcomeUnknown as exc:
            self.store.set_state(cid, UNKNOWN, self.clock.now(), "OUTCOME_UNKNOWN")
            raise OutcomeUnknown(exc.message, client_order_id=cid) from exc
        except OrderRejected as exc:
            self.store.set_state(cid, REJECTED, self.clock.now(), exc.code)
            self._orders[cid] = BrokerOrder(
                cid,
                "",
                request.symbol,
                request.side,
                request.qty,
                request.order_type,
                price,
                OrderStatus.REJECTED,
                now,
                self.clock.now(),
                reason=exc.code,
            )
            raise
        except BrokerError as exc:
            self.store.set_state(cid, NOT_SENT, self.clock.now(), exc.code)
            raise
        self.store.set_placed(cid, reply.odno, reply.branch, self.clock.now())
        order = self._orders.get(cid)
        if order is None or order.broker_order_id != reply.odno:
            order = BrokerOrder(
                cid,
                reply.odno,
                request.symbol,
                request.side,
                request.qty,
                request.order_type,
                price,
                OrderStatus.NEW,
                now,
                self.clock.now(),
            )
            self._orders[cid] = order
        snapshot = order.copy()
        self._replay_orphans(reply.odno)
        return snapshot

    async def modify_order(self, client_order_id: str, *, price: float, qty: int | None = None) -> BrokerOrder:
        """Change the price (and optionally reduce the quantity) of a working limit order."""
        stored, live_odno = await self._live(client_order_id)
        try:
            reply = await self.api.modify_cancel(
                stored.branch or "",
                live_odno,
                cancel=False,
                qty=qty or 0,
                all_qty=qty is None,
                price=price,
                ord_dvsn="00",
            )
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(exc.message, client_order_id=client_order_id) from exc
        self.store.link(stored.trade_date, reply.odno, client_order_id, "MODIFY")
        self._replay_orphans(reply.odno)
        order = await self.get_order(client_order_id)
        assert order is not None
        return order

    async def _live(self, cid: str) -> tuple[StoredOrder, str]:
        stored = self.store.get(cid)
        if stored is not None and stored.state in (SENDING, UNKNOWN):
            await self.get_order(cid)
            stored = self.store.get(cid)
        if stored is None or stored.state in (NOT_SENT, NOT_FOUND):
            raise OrderNotFound(f"no KIS order for client_order_id {cid!r}")
        if stored.state == REJECTED:
            raise OrderRejected(f"order {cid} was rejected; nothing to change", code="ALREADY_FINAL")
        cached = self._orders.get(cid)
        if cached is not None and cached.status.is_terminal:
            raise OrderRejected(f"order {cid} is already {cached.status.value}", code="ALREADY_FINAL")
        live = [o for o, kind in self.store.odnos_of(cid) if kind in ("ORDER", "MODIFY")]
        if not live:
            raise OrderNotFound(f"no KIS order number for {cid!r}")
        return stored, live[-1]

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        cid = client_order_id
        stored, live_odno = await self._live(cid)
        try:
            reply = await self.api.modify_cancel(stored.branch or "", live_odno, cancel=True, all_qty=True)
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(exc.message, client_order_id=cid) from exc
        except OrderRejected as exc:
            order = await self.get_order(cid)
            if order is not None and order.status.is_terminal:
                raise OrderRejected(
                    f"order {cid} is already {order.status.value}: {exc.message}", code="ALREADY_FINAL"
                ) from exc
            raise
        self.store.link(stored.trade_date, reply.odno, cid, "CANCEL")
        self._replay_orphans(reply.odno)
        order = await self.get_order(cid)
        if order is None:
            raise OrderNotFound(f"order {cid} vanished after its cancel")
        return order

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        cid = client_order_id
        stored = self.store.get(cid)
        if stored is None:
            cached = self._orders.get(cid)
            return cached.copy() if cached else None
        if stored.state in (NOT_SENT, NOT_FOUND):
            return None
        if stored.state == REJECTED:
            return self._rejected(stored).copy()
        day = _parse_day(stored.trade_date)
        rows = await self.api.daily_orders(day, symbol=stored.symbol)
        if stored.state in (SENDING, UNKNOWN):
            found = await self._look_for(stored, day, rows)
            if found is None:
                return None
            rows = found
            stored = self.store.get(cid)
            assert stored is not None
        self._sync_rows(stored.trade_date, rows)
        order = self._build(stored, rows)
        return order.copy()

    async def _look_for(self, stored: StoredOrder, day: date, rows: list[DailyOrder]) -> list[DailyOrder] | None:
        """Look for the order of a submit whose reply was lost. KIS lists a new order in its inquiries with
        a lag, so an empty answer is asked again with back-off (on the clock) until ``order_lookup_window_s``
        after the reply was lost; only a lookup made after that may declare the order absent. Returns the
        day's rows that show it, or None when it is absent."""
        window = timedelta(seconds=self.settings.order_lookup_window_s)
        pause = self.settings.order_lookup_backoff_s
        lookups = 1
        while True:
            # from when the reply was lost (the request may have waited for the rate budget after
            # ``sent_at``); a send still in flight is judged from ``sent_at``
            current = self.store.get(stored.client_order_id) or stored
            if current.state == NOT_FOUND:  # a concurrent lookup already declared it absent
                return None
            deadline = max(current.sent_at, current.updated_at) + window
            final = self.clock.now() >= deadline
            if await self._resolve(stored, rows, final=final):
                return rows
            if final:
                return None
            wait = max(0.0, min(pause, (deadline - self.clock.now()).total_seconds()))
            log.info(
                "order %s not in KIS's orders yet after %d lookup(s); looking again in %.2fs reason=LOOKUP_RETRY",
                stored.client_order_id,
                lookups,
                wait,
            )
            await self.clock.sleep(wait)
            pause *= 2
            lookups += 1
            rows = await self.api.daily_orders(day, symbol=stored.symbol)

    async def _resolve(self, stored: StoredOrder, rows: list[DailyOrder], *, final: bool = True) -> bool:
        """Find the order of a submit whose reply was lost in ``rows``; True if found (and recorded). Not
        found and ``final``: recorded as absent (NOT_FOUND)."""
        async with self._resolve_lock:
            current = self.store.get(stored.client_order_id)
            if current is not None and current.state == PLACED:
                return True
            known = self.store.known_odnos(stored.trade_date)
            day = _parse_day(stored.trade_date)
            since = stored.sent_at - RESOLVE_TOLERANCE
            candidates = [
                r
                for r in rows
                if r.odno not in known
                and not r.orig_odno.strip("0")
                and r.symbol == stored.symbol
                and r.side is stored.side
                and r.qty == stored.qty
                and r.time(day) >= since
                and (
                    r.ord_dvsn_cd == "01"
                    if stored.ord_dvsn == "01"
                    else r.ord_dvsn_cd != "01" and abs(r.price - (stored.limit_price or 0)) < 0.5
                )
            ]
            now = self.clock.now()
            if not candidates:
                if not final:
                    return False
                self.store.set_state(stored.client_order_id, NOT_FOUND, now, "NOT_AT_BROKER")
                log.warning("order %s: submit outcome was unknown and KIS has no such order", stored.client_order_id)
                return False
            found = min(candidates, key=lambda r: (r.ord_tmd, r.odno))
            self.store.set_placed(stored.client_order_id, found.odno, found.branch, now)
            log.info("order %s: lost submit reply resolved to KIS order %s", stored.client_order_id, found.odno)
        self._replay_orphans(found.odno)
        return True

    def _rejected(self, stored: StoredOrder) -> BrokerOrder:
        cached = self._orders.get(stored.client_order_id)
        if cached is not None:
            return cached
        return BrokerOrder(
            stored.client_order_id,
            stored.odno or "",
            stored.symbol,
            stored.side,
            stored.qty,
            stored.order_type,
            stored.limit_price,
            OrderStatus.REJECTED,
            stored.sent_at,
            stored.updated_at,
            reason=stored.reason,
        )

    def _session_over(self, trade_date: str) -> bool:
        now = self.clock.now().astimezone(KST)
        day = _parse_day(trade_date)
        return now.date() > day or (now.date() == day and now.time() >= CLOSE)

    def _build(self, stored: StoredOrder, rows: list[DailyOrder]) -> BrokerOrder:
        cid = stored.client_order_id
        links = self.store.odnos_of(cid)
        order_odnos = [o for o, k in links if k in ("ORDER", "MODIFY")]
        all_odnos = {o for o, _ in links}
        by_odno = {r.odno: r for r in rows}
        order_rows = [by_odno[o] for o in order_odnos if o in by_odno]
        cached = self._orders.get(cid)
        if not order_rows:
            if cached is not None:
                return cached
            order = BrokerOrder(
                cid,
                stored.odno or "",
                stored.symbol,
                stored.side,
                stored.qty,
                stored.order_type,
                stored.limit_price,
                OrderStatus.NEW,
                stored.sent_at,
                self.clock.now(),
            )
            self._orders[cid] = order
            return order
        filled = sum(r.filled_qty for r in order_rows)
        amount = sum(r.filled_amount for r in order_rows)
        live = order_rows[-1]
        cancelled = any(r.cancel_confirmed_qty > 0 for r in order_rows) or any(
            r.cancel_yn and (r.orig_odno in all_odnos or r.odno in all_odnos) and r.odno not in order_odnos
            for r in rows
        )
        rejected = order_rows[0].rejected_qty > 0
        if filled >= stored.qty:
            status, reason = OrderStatus.FILLED, None
        elif rejected and filled == 0:
            status, reason = OrderStatus.REJECTED, "KIS_REJECTED"
        elif cancelled and live.remaining_qty == 0:
            status, reason = OrderStatus.CANCELLED, "CANCELLED"
        elif self._session_over(stored.trade_date):
            status, reason = OrderStatus.EXPIRED, "DAY_END"
        elif filled > 0:
            status, reason = OrderStatus.PARTIALLY_FILLED, None
        else:
            status, reason = OrderStatus.NEW, None
        if cached is not None and cached.status.is_terminal and not status.is_terminal:
            status, reason = cached.status, cached.reason  # a notice already told us more than the query
        limit = None if live.ord_dvsn_cd == "01" else (live.price or stored.limit_price)
        order = BrokerOrder(
            client_order_id=cid,
            broker_order_id=stored.odno or live.odno,
            symbol=stored.symbol,
            side=stored.side,
            qty=stored.qty,
            order_type=stored.order_type,
            limit_price=limit,
            status=status,
            created_at=stored.sent_at,
            updated_at=self.clock.now(),
            filled_qty=min(filled, stored.qty),
            avg_fill_price=round(amount / filled, 4) if filled else 0.0,
            reason=reason,
        )
        if cached is not None and cached.filled_qty > order.filled_qty:
            order.filled_qty, order.avg_fill_price = cached.filled_qty, cached.avg_fill_price
            if order.filled_qty >= order.qty:
                order.status = OrderStatus.FILLED
        self._orders[cid] = order
        return order

    def _make_fill(
        self,
        trade_date: str,
        odno: str,
        cid: str,
        symbol: str,
        side: Side,
        qty: int,
        price: float,
        ts: datetime,
        cum: int,
    ) -> Fill:
        notional = qty * price
        return Fill(
            execution_id=execution_id(trade_date, odno, cum),
            client_order_id=cid,
            broker_order_id=odno,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            ts=ts,
            commission=self.fees.commission(notional),
            tax=self.fees.tax(side, notional),
        )

    def _sync_rows(self, trade_date: str, rows: list[DailyOrder]) -> list[Fill]:
        """Hand out the quantity the daily query shows beyond what was already handed out."""
        new: list[Fill] = []
        for r in rows:
            link = self.store.client_for(trade_date, r.odno)
            if link is None or link[1] == "CANCEL" or r.filled_qty <= 0:
                continue
            emitted, amount = self.store.emitted(trade_date, r.odno)
            if r.filled_qty <= emitted:
                continue
            qty = r.filled_qty - emitted
            rest_amount = r.filled_amount - amount
            price = round(rest_amount / qty, 4) if rest_amount > 0 else r.avg_price
            fill = self._make_fill(
                trade_date, r.odno, link[0], r.symbol, r.side, qty, price, self.clock.now(), r.filled_qty
            )
            if self.store.add_fill(trade_date, r.odno, fill, r.filled_qty, "daily"):
                new.append(fill)
        for fill in new:
            stored = self.store.get(fill.client_order_id)
            order = self._apply_fill_to_cache(fill, stored)
            if order is not None:
                self._publish(OrderUpdate(order=order.copy(), ts=self.clock.now(), fill=fill))
        return new

    def _apply_fill_to_cache(self, fill: Fill, stored: StoredOrder | None) -> BrokerOrder | None:
        order = self._orders.get(fill.client_order_id)
        if order is None:
            if stored is None:
                return None
            order = BrokerOrder(
                stored.client_order_id,
                stored.odno or fill.broker_order_id,
                stored.symbol,
                stored.side,
                stored.qty,
                stored.order_type,
                stored.limit_price,
                OrderStatus.NEW,
                stored.sent_at,
                fill.ts,
            )
            self._orders[fill.client_order_id] = order
        total = order.filled_qty + fill.qty
        order.avg_fill_price = round((order.avg_fill_price * order.filled_qty + fill.price * fill.qty) / total, 4)
        order.filled_qty = min(total, order.qty)
        order.updated_at = self.clock.now()
        if order.filled_qty >= order.qty:
            order.status = OrderStatus.FILLED
        elif not order.status.is_terminal:
            order.status = OrderStatus.PARTIALLY_FILLED
        return order

    async def list_open_orders(self) -> list[BrokerOrder]:
        """The account's working orders of the day, including orders placed outside this adapter (another
        KIS client, HTS): those get a client order id here (``foreign_client_id``) and are followed from
        then on like our own, so their fills are reported."""
        rows = await self.api.daily_orders(self._today_date())
        day = self._today()
        self._link_foreign(day, rows)
        self._sync_rows(day, rows)
        out = []
        for stored in self.store.orders(day, (PLACED,)):
            order = self._build(stored, rows)
            if not order.status.is_terminal:
                out.append(order.copy())
        return out

    def _link_foreign(self, day: str, rows: list[DailyOrder]) -> None:
        """Record working orders no client order id owns as foreign orders. A row of the symbol and side of
        a submit still unresolved (reply pending or lost) is left alone: it may be that submit's order, which
        its lookup settles first."""
        known = self.store.known_odnos(day)
        unresolved = {(o.symbol, o.side) for o in self.store.orders(day, (SENDING, UNKNOWN))}
        now = self.clock.now()
        for r in rows:
            if r.odno in known or r.orig_odno.strip("0") or r.cancel_yn or r.remaining_qty <= 0:
                continue
            if (r.symbol, r.side) in unresolved:
                continue
            cid = foreign_client_id(day, r.odno)
            market = r.ord_dvsn_cd == "01"
            self.store.record_sending(
                cid,
                day,
                r.symbol,
                r.side,
                r.qty,
                OrderType.MARKET if market else OrderType.LIMIT,
                None if market else r.price,
                r.ord_dvsn_cd,
                r.time(_parse_day(day)),
            )
            self.store.set_placed(cid, r.odno, r.branch, now)
            log.warning(
                "KIS order %s (%s %s %d) was not placed through this adapter: followed as %s reason=FOREIGN_ORDER",
                r.odno,
                r.side.value,
                r.symbol,
                r.qty,
                cid,
            )
            self._replay_orphans(r.odno)

    async def list_fills(self, since: datetime | None = None) -> list[Fill]:
        """The day's executions: the notices' fills plus what the daily query shows beyond them."""
        day = self._today()
        rows = await self.api.daily_orders(self._today_date())
        self._sync_rows(day, rows)
        return [f for f in self.store.fills(day) if since is None or f.ts >= since]

    async def get_positions(self) -> list[Position]:
        balance = await self.api.balance()
        return [Position(h.symbol, h.qty, h.avg_price) for h in balance.holdings if h.qty > 0]

    async def get_account(self) -> Account:
        balance = await self.api.balance()
        s = balance.summary
        buyable = await self.api.buyable(self.buyable_reference_symbol)
        cash = s.deposit_d2 or s.deposit
        market_value = s.securities_eval or sum(h.eval_amount for h in balance.holdings)
        equity = s.total_eval or cash + market_value
        return Account(
            currency="KRW",
            cash=cash,
            buyable_cash=buyable.no_credit_amount or buyable.cash,
            equity=equity,
            market_value=market_value,
        )

    # -- push stream -------------------------------------------------------------------------

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        return FanoutStream(self._order_streams)

    def _publish(self, update: OrderUpdate) -> None:
        for stream in list(self._order_streams):
            stream.offer(update)

    def _replay_orphans(self, odno: str) -> None:
        for notice in self._orphans.pop(odno, []):
            self._on_notice(notice)

    def _on_notice(self, n: ExecutionNotice) -> None:
        self.notices_seen += 1
        day = self._today()
        link = self.store.client_for(day, n.order_no)
        if link is None and n.rctf_cls in ("1", "2") and n.orig_order_no.strip("0"):
            orig = self.store.client_for(day, n.orig_order_no)
            if orig is not None:
                link = (orig[0], "CANCEL" if n.rctf_cls == "2" else "MODIFY")
                self.store.link(day, n.order_no, orig[0], link[1])
        if link is None:
            bucket = self._orphans.setdefault(n.order_no, [])
            bucket.append(n)
            if len(self._orphans) > 5000:
                self._orphans.pop(next(iter(self._orphans)))
            return
        cid, kind = link
        stored = self.store.get(cid)
        now = self.clock.now()
        if n.is_fill and not n.refused and n.fill_qty > 0:
            seen = self.store.notice_cum(day, n.order_no) + n.fill_qty
            self.store.set_notice_cum(day, n.order_no, seen)
            emitted, _ = self.store.emitted(day, n.order_no)
            if seen <= emitted:
                return
            fill = self._make_fill(
                day,
                n.order_no,
                cid,
                n.symbol or (stored.symbol if stored else ""),
                n.side,
                seen - emitted,
                n.fill_price,
                n.ts(self._today_date()),
                seen,
            )
            if not self.store.add_fill(day, n.order_no, fill, seen, "notice"):
                return
            order = self._apply_fill_to_cache(fill, stored)
            if order is not None:
                self._publish(OrderUpdate(order=order.copy(), ts=now, fill=fill))
            return
        order = self._orders.get(cid)
        if order is None and stored is not None:
            order = BrokerOrder(
                cid,
                stored.odno or n.order_no,
                stored.symbol,
                stored.side,
                stored.qty,
                stored.order_type,
                stored.limit_price,
                OrderStatus.NEW,
                stored.sent_at,
                now,
            )
            self._orders[cid] = order
        if order is None:
            return
        if order.status.is_terminal:
            return
        if n.refused:
            if kind == "ORDER" and order.filled_qty == 0:
                order.status, order.reason = OrderStatus.REJECTED, "KIS_REFUSED"
            else:
                return  # a refused modify/cancel changes nothing
        elif n.rctf_cls == "2":
            order.status, order.reason = OrderStatus.CANCELLED, "CANCELLED"
        elif n.rctf_cls == "1":
            if n.order_price:
                order.limit_price = n.order_price
        order.updated_at = now
        self._publish(OrderUpdate(order=order.copy(), ts=now))

    # -- market data -------------------------------------------------------------------------

    async def get_quote(self, symbol: str) -> Quote:
        info = await self.api.price(symbol)
        trade = self._last_trade.get(symbol)
        if trade is not None and trade.ts.date() != self._today_date():
            trade = None
        lower, upper = info.lower_limit or None, info.upper_limit or None
        if (lower is None or upper is None) and info.base:
            lo, hi = price_limits(info.base)
            lower, upper = float(lo), float(hi)
        return Quote(
            symbol=symbol,
            ts=self.clock.now(),
            last=info.last,
            bid=(trade.bid1 or None) if trade else None,
            ask=(trade.ask1 or None) if trade else None,
            bid_size=trade.bid1_size if trade else 0,
            ask_size=trade.ask1_size if trade else 0,
            prev_close=info.base or None,
            upper_limit=upper,
            lower_limit=lower,
            volume=info.volume,
            halted=info.halted or bool(trade and trade.halted),
            vi_ref_price=trade.vi_ref_price if trade else None,
        )

    async def get_bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]:
        minutes = parse_interval(interval)
        s, e = start.astimezone(KST), end.astimezone(KST)
        if e < s:
            return []
        bars = await self.api.minute_bars(
            symbol,
            s.date(),
            s.time().replace(second=0, microsecond=0),
            e.time() if e.date() == s.date() else CLOSE,
            today=self._today_date(),
        )
        if minutes == 1:
            return [b for b in bars if s.replace(second=0, microsecond=0) <= b.ts <= e]
        return _resample(bars, minutes, interval, s, e)

    async def get_daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        return await self.api.daily_bars(symbol, start, end)

    async def get_order_book(self, symbol: str) -> Any:
        return await self.api.asking_price(symbol)

    async def investor_flow(self, symbol: str) -> Any:
        return await self.api.investor_flow(symbol)

    async def get_investor_flow(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        """Daily net buying by investor type (the OMS proxy's shape: date, foreign_net, inst_net …)."""
        rows = await self.api.investor_flow(symbol)
        return [
            {
                "date": r.day,
                "foreign_net": r.foreign_net_qty,
                "inst_net": r.institution_net_qty,
                "individual_net": r.individual_net_qty,
                "close": r.close,
            }
            for r in rows
            if start <= r.day <= end
        ]

    async def reconnect_market_data(self, timeout_s: float = 10.0) -> bool:
        """Drop the WebSocket session; the client reconnects and restores every registration."""
        await self.ws.reconnect(timeout_s)
        return self.ws.connected.is_set()

    async def program_trading(self, symbol: str) -> Any:
        return await self.api.program_trading(symbol)

    async def holidays(self, base: date) -> Any:
        return await self.api.holidays(base)

    async def universe_check(self, symbols: list[str]) -> dict[str, UniverseDecision]:
        """Common shares only (see ``universe.classify``), one inquire-price per symbol."""
        out: dict[str, UniverseDecision] = {}
        for sym in symbols:
            info = await self.api.price(sym)
            out[sym] = classify(sym, info.market_name, status_code=info.status_code, warn_code=info.warn_code)
        return out

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        """All or nothing: SubscriptionCapacityExceeded if the new total would pass the capacity
        (or the server refuses a registration with OPSP0008; the ones added by this call are undone)."""
        new = [s for s in dict.fromkeys(symbols) if s not in self._subscribed]
        if len(self._subscribed) + len(new) > self.subscription_capacity:
            raise SubscriptionCapacityExceeded(
                f"subscribing {len(new)} more symbol(s) would hold {len(self._subscribed) + len(new)} "
                f"subscriptions; capacity is {self.subscription_capacity}"
            )
        added: list[str] = []
        try:
            for sym in new:
                await self.ws.subscribe(T.WS_TRADE, sym)
                self._subscribed[sym] = None
                added.append(sym)
        except BrokerError:
            for sym in added:
                self._subscribed.pop(sym, None)
                await self.ws.unsubscribe(T.WS_TRADE, sym)
            raise

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        for sym in symbols:
            if sym in self._subscribed:
                self._subscribed.pop(sym, None)
                await self.ws.unsubscribe(T.WS_TRADE, sym)

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def ticks(self) -> AsyncIterator[Tick]:
        return FanoutStream(self._tick_streams, TICK_QUEUE)

    def _on_trade(self, rec: TradeRecord) -> None:
        self._last_trade[rec.symbol] = rec
        if rec.symbol not in self._subscribed:
            return
        tick = rec.to_tick()
        for stream in list(self._tick_streams):
            stream.offer(tick)

    def last_trade(self, symbol: str) -> TradeRecord | None:
        """The latest H0STCNT0 record of a subscribed symbol (VI reference, best bid/ask …)."""
        return self._last_trade.get(symbol)


def foreign_client_id(trade_date: str, odno: str) -> str:
    """The client order id the adapter gives an order of the account it did not place."""
    return f"KISX-{trade_date}-{odno}"


def _parse_day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _resample(bars: list[Bar], minutes: int, interval: str, start: datetime, end: datetime) -> list[Bar]:
    out: list[Bar] = []
    for b in bars:
        local = b.ts.astimezone(KST)
        of_day = local.hour * 60 + local.minute
        of_day -= of_day % minutes
        bucket = local.replace(hour=of_day // 60, minute=of_day % 60, second=0, microsecond=0)
        if not start.replace(second=0, microsecond=0) - timedelta(minutes=minutes) < bucket <= end:
            continue
        if out and out[-1].ts == bucket:
            p = out[-1]
            out[-1] = Bar(
                b.symbol, bucket, p.open, max(p.high, b.high), min(p.low, b.low), b.close, p.volume + b.volume, interval
            )
        else:
            out.append(Bar(b.symbol, bucket, b.open, b.high, b.low, b.close, b.volume, interval))
    return out


__all__ = ["KisBroker", "Unavailable", "foreign_client_id"]
