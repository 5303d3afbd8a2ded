"""The fake Alpaca account: orders, positions, account, activities, assets, clock and calendar over the
US paper exchange, answered in the shapes of ``wire.py`` with Alpaca's statuses and error bodies.

The engine knows each order by its Alpaca id (a UUID); the client order id is the fake's own index. A
request the account refuses (insufficient buying power, a duplicate ``client_order_id``, a sub-penny
limit …) creates no order, as at Alpaca, so its client order id stays free.

Errors: 422 ``{"code": 40010001, ...}`` for a bad or duplicate request, 422 ``42210000`` for a bad price or
an order that can no longer be cancelled or replaced, 403 ``40310000`` for insufficient buying power or
quantity, 404 ``40410000`` for an unknown order, position or asset.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from broker_core.alpaca.fake.wire import (
    NAMESPACE,
    OPEN_STATUSES,
    FakeOrder,
    alpaca_status,
    asset_id,
    asset_json,
    error,
    execution_uuid,
    iso,
    money,
    num,
    order_json,
    position_json,
)
from broker_core.errors import OrderNotFound, OrderRejected, OutcomeUnknown
from broker_core.markets import us
from broker_core.markets.us import UsMarketRules
from broker_core.models import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.matching import RejectCode

MAX_CLIENT_ORDER_ID = 128
DEFAULT_ORDER_LIMIT = 50
MAX_ORDER_LIMIT = 500
ACTIVITY_PAGE = 100
INVALID = 40010001
BAD_PRICE = 42210000
FORBIDDEN = 40310000
NOT_FOUND = 40410000


@dataclass(slots=True)
class Reply:
    status: int
    body: Any = None
    """A JSON value, or None for an empty body (204)."""
    headers: dict[str, str] = field(default_factory=dict)


def _bad(message: str, code: int = INVALID, status: int = 422, **extra: Any) -> Reply:
    return Reply(status, error(code, message, **extra))


def _number(value: Any, name: str) -> float:
    """A JSON number or numeric string (the real API takes both)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError as exc:
            raise ValueError(f"{name} must be a number, got {value!r}") from exc
    else:
        raise ValueError(f"{name} must be a number")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite")
    return number


def _parse_time(value: str, name: str) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), us.TZ)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}: {value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=us.TZ)


class AlpacaBook:
    def __init__(
        self,
        exchange: PaperExchange,
        *,
        rules: UsMarketRules | None = None,
        account_number: str = "PA3FAKE00001",
    ) -> None:
        self.exchange = exchange
        self.engine = exchange.engine
        self.clock = exchange.clock
        self.rules = rules or UsMarketRules()
        self.account_number = account_number
        self.account_id = str(uuid.uuid5(NAMESPACE, f"account:{account_number}"))
        self.created_at = self.clock.now()
        self.last_equity = self.engine.account().equity
        self.orders: dict[str, FakeOrder] = {}
        self.by_client: dict[str, str] = {}
        self.delay_visibility: Callable[[], float] = lambda: 0.0
        """Seconds a newly placed order stays hidden (the fault plan's hook)."""
        self.placed = 0
        self.refused = 0

    def now(self) -> datetime:
        return self.clock.now()

    def _json(self, meta: FakeOrder) -> dict[str, Any]:
        return order_json(meta, self.engine.get_order(meta.id))

    def _visible(self, order_id: str) -> FakeOrder | None:
        meta = self.orders.get(order_id)
        return meta if meta is not None and meta.visible(self.now()) else None

    def status_of(self, meta: FakeOrder) -> str:
        return alpaca_status(meta, self.engine.get_order(meta.id))

    # -- orders ----------------------------------------------------------------------------------

    def submit(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return _bad("request body must be a JSON object")
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return _bad("symbol is required")
        if not self.engine.has_symbol(symbol):
            return _bad(f'asset "{symbol}" not found', status=422)
        if body.get("notional") is not None:
            return _bad("notional orders are not supported by the paper market (send qty)")
        try:
            qty = _number(body.get("qty"), "qty")
        except ValueError as exc:
            return _bad(f"qty is required and {exc}" if body.get("qty") is None else str(exc))
        if qty <= 0:
            return _bad("qty must be > 0")
        if not qty.is_integer():
            return _bad(f"fractional orders are not supported by the paper market (qty {num(qty)})")
        side = body.get("side")
        if side not in ("buy", "sell"):
            return _bad(f"side must be buy or sell, got {side!r}")
        kind = body.get("type") or body.get("order_type")
        if kind not in ("market", "limit"):
            return _bad(f"order type {kind!r} is not supported by the paper market (market, limit)")
        tif = body.get("time_in_force")
        if tif != "day":
            return _bad(f"time_in_force {tif!r} is not supported by the paper market (day)")
        if body.get("order_class") not in (None, "", "simple"):
            return _bad(f"order_class {body.get('order_class')!r} is not supported by the paper market")
        limit: float | None = None
        if kind == "limit":
            try:
                limit = _number(body.get("limit_price"), "limit_price")
            except ValueError as exc:
                return _bad(f"limit_price is required for limit orders and {exc}")
            if limit <= 0:
                return _bad("limit_price must be > 0", BAD_PRICE)
            if not us.is_on_tick(limit):
                return _bad(
                    f"invalid limit_price {num(limit)}. sub-penny increment does not fulfill minimum pricing criteria",
                    BAD_PRICE,
                )
        elif body.get("limit_price") is not None:
            return _bad("limit_price must not be given for a market order")
        extended = body.get("extended_hours", False)
        if not isinstance(extended, bool):
            return _bad("extended_hours must be true or false")
        if extended and not (self.rules.extended_hours and kind == "limit"):
            return _bad("extended hours orders must be day limit orders, and are not enabled on this market")
        cid = body.get("client_order_id")
        if cid is None or cid == "":
            cid = str(uuid.uuid4())
        if not isinstance(cid, str):
            return _bad("client_order_id must be a string")
        if len(cid) > MAX_CLIENT_ORDER_ID:
            return _bad(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
        if cid in self.by_client:
            return _bad("client_order_id must be unique")
        return self._place(cid, symbol, side, kind, tif, int(qty), limit, extended)

    def _place(
        self,
        cid: str,
        symbol: str,
        side: str,
        kind: str,
        tif: str,
        qty: int,
        limit: float | None,
        extended: bool,
        replaces: str | None = None,
    ) -> Reply:
        order_id = str(uuid.uuid4())
        now = self.now()
        request = OrderRequest(
            order_id,
            symbol,
            Side.BUY if side == "buy" else Side.SELL,
            qty,
            OrderType.LIMIT if kind == "limit" else OrderType.MARKET,
            limit,
        )
        try:
            self.exchange.submit(request)
        except OrderRejected as exc:
            self.refused += 1
            return self._refusal(exc, request)
        except OutcomeUnknown as exc:
            return Reply(500, error(50010000, f"internal error: {exc.message}"))
        delay = self.delay_visibility()
        meta = FakeOrder(
            id=order_id,
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=kind,
            time_in_force=tif,
            qty=qty,
            limit_price=limit,
            created_at=now,
            extended_hours=extended,
            visible_at=now + timedelta(seconds=delay) if delay > 0 else None,
            replaces=replaces,
        )
        self.orders[order_id] = meta
        self.by_client[cid] = order_id
        self.placed += 1
        return Reply(200, self._json(meta))

    def _refusal(self, exc: OrderRejected, request: OrderRequest) -> Reply:
        code = exc.code
        if code == RejectCode.INSUFFICIENT_CASH:
            buyable = self.engine.account().buyable_cash
            return _bad("insufficient buying power", FORBIDDEN, 403, buying_power=money(buyable))
        if code == RejectCode.INSUFFICIENT_SHARES:
            held = self.engine.position(request.symbol)
            available = (held.qty if held else 0) - self.engine.reserved_shares(request.symbol)
            return _bad(
                f"insufficient qty available for order (requested: {request.qty}, available: {max(available, 0)})",
                FORBIDDEN,
                403,
                symbol=request.symbol,
                available=num(max(available, 0)),
                existing_qty=num(held.qty if held else 0),
                held_for_orders=num(self.engine.reserved_shares(request.symbol)),
            )
        if code in (RejectCode.OFF_TICK, RejectCode.INVALID_PRICE):
            return _bad(exc.message, BAD_PRICE)
        if code == RejectCode.MARKET_CLOSED:
            return _bad(f"market is closed: {exc.message}", FORBIDDEN, 403)
        return _bad(exc.message)

    def get(self, order_id: str) -> Reply:
        if not _is_uuid(order_id):
            return _bad(f"order_id {order_id!r} is not a valid UUID", status=422)
        meta = self._visible(order_id)
        if meta is None:
            return _bad("order not found", NOT_FOUND, 404)
        return Reply(200, self._json(meta))

    def get_by_client(self, cid: str | None) -> Reply:
        if not cid:
            return _bad("client_order_id is required")
        order_id = self.by_client.get(cid)
        meta = self._visible(order_id) if order_id is not None else None
        if meta is None:
            return _bad("order not found", NOT_FOUND, 404)
        return Reply(200, self._json(meta))

    def list_orders(self, params: Mapping[str, str]) -> Reply:
        status = params.get("status", "open")
        if status not in ("open", "closed", "all"):
            return _bad(f"status must be open, closed or all, got {status!r}")
        try:
            limit = int(params.get("limit") or DEFAULT_ORDER_LIMIT)
            after = _parse_time(params["after"], "after") if params.get("after") else None
            until = _parse_time(params["until"], "until") if params.get("until") else None
        except ValueError as exc:
            return _bad(str(exc))
        limit = max(1, min(limit, MAX_ORDER_LIMIT))
        symbols = {s for s in params.get("symbols", "").split(",") if s}
        side = params.get("side")
        now = self.now()
        chosen = []
        for meta in self.orders.values():
            if not meta.visible(now) or (symbols and meta.symbol not in symbols) or (side and meta.side != side):
                continue
            if (after is not None and meta.created_at <= after) or (until is not None and meta.created_at > until):
                continue
            is_open = self.status_of(meta) in OPEN_STATUSES
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            chosen.append(meta)
        chosen.sort(key=lambda m: m.created_at, reverse=params.get("direction", "desc") != "asc")
        return Reply(200, [self._json(m) for m in chosen[:limit]])

    def cancel(self, order_id: str) -> Reply:
        if not _is_uuid(order_id):
            return _bad(f"order_id {order_id!r} is not a valid UUID", status=422)
        meta = self._visible(order_id)
        if meta is None:
            return _bad("order not found", NOT_FOUND, 404)
        if self.status_of(meta) not in OPEN_STATUSES:
            return _bad("order is not cancelable", BAD_PRICE)
        try:
            self.exchange.cancel(order_id)
        except (OrderRejected, OrderNotFound):
            return _bad("order is not cancelable", BAD_PRICE)
        return Reply(204)

    def cancel_all(self) -> Reply:
        out = []
        now = self.now()
        for meta in list(self.orders.values()):
            if meta.visible(now) and self.status_of(meta) in OPEN_STATUSES:
                reply = self.cancel(meta.id)
                out.append({"id": meta.id, "status": 200 if reply.status == 204 else reply.status, "body": None})
        return Reply(207, out)

    def replace(self, order_id: str, body: Any) -> Reply:
        if not _is_uuid(order_id):
            return _bad(f"order_id {order_id!r} is not a valid UUID", status=422)
        meta = self._visible(order_id)
        if meta is None:
            return _bad("order not found", NOT_FOUND, 404)
        if not isinstance(body, dict):
            return _bad("request body must be a JSON object")
        order = self.engine.get_order(order_id)
        if self.status_of(meta) != "new" or order is None or order.filled_qty > 0:
            return _bad("order is not replaceable (the paper market replaces working, unfilled orders)", BAD_PRICE)
        try:
            qty = _number(body["qty"], "qty") if body.get("qty") is not None else float(meta.qty)
            limit = _number(body["limit_price"], "limit_price") if body.get("limit_price") is not None else None
        except ValueError as exc:
            return _bad(str(exc))
        if qty <= 0 or not qty.is_integer():
            return _bad("qty must be a positive whole number on the paper market")
        if meta.type == "market" and limit is not None:
            return _bad("limit_price must not be given for a market order")
        limit = limit if limit is not None else meta.limit_price
        if limit is not None and not us.is_on_tick(limit):
            return _bad(
                f"invalid limit_price {num(limit)}. sub-penny increment does not fulfill minimum pricing criteria",
                BAD_PRICE,
            )
        tif = body.get("time_in_force") or meta.time_in_force
        if tif != "day":
            return _bad(f"time_in_force {tif!r} is not supported by the paper market (day)")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > MAX_CLIENT_ORDER_ID:
            return _bad(f"client_order_id must be a string of at most {MAX_CLIENT_ORDER_ID} characters")
        if cid in self.by_client:
            return _bad("client_order_id must be unique")
        meta.replaced_by = "pending"
        meta.replaced_at = self.now()
        try:
            self.exchange.cancel(order_id)
        except (OrderRejected, OrderNotFound):
            meta.replaced_by = meta.replaced_at = None
            return _bad("order is not replaceable", BAD_PRICE)
        reply = self._place(
            cid, meta.symbol, meta.side, meta.type, tif, int(qty), limit, meta.extended_hours, replaces=order_id
        )
        if reply.status != 200:
            meta.replaced_by = meta.replaced_at = None
            return reply
        meta.replaced_by = reply.body["id"]
        return reply

    # -- positions -------------------------------------------------------------------------------

    def _symbol_of(self, key: str) -> str:
        if _is_uuid(key):
            for symbol in self.engine.symbols:
                if asset_id(symbol) == key:
                    return symbol
        return key

    def _position_json(self, symbol: str) -> dict[str, Any] | None:
        pos = self.engine.position(symbol)
        if pos is None:
            return None
        last = self.engine.last_price(symbol) or pos.avg_price
        prev = None
        if symbol in self.exchange.feed.symbols:
            prev = self.exchange.feed.prev_close(symbol)
        available = pos.qty - self.engine.reserved_shares(symbol)
        return position_json(symbol, pos.qty, pos.avg_price, last, prev, max(available, 0))

    def positions(self) -> Reply:
        return Reply(200, [p for p in (self._position_json(x.symbol) for x in self.engine.positions()) if p])

    def position(self, key: str) -> Reply:
        found = self._position_json(self._symbol_of(key))
        if found is None:
            return _bad("position does not exist", NOT_FOUND, 404)
        return Reply(200, found)

    def close_position(self, key: str, params: Mapping[str, str]) -> Reply:
        symbol = self._symbol_of(key)
        pos = self.engine.position(symbol)
        if pos is None:
            return _bad("position does not exist", NOT_FOUND, 404)
        if params.get("qty") and params.get("percentage"):
            return _bad("only one of qty or percentage may be given")
        try:
            if params.get("qty"):
                qty = _number(params["qty"], "qty")
            elif params.get("percentage"):
                pct = _number(params["percentage"], "percentage")
                if not 0 < pct <= 100:
                    return _bad("percentage must be in (0, 100]")
                qty = float(math.floor(pos.qty * pct / 100))
            else:
                qty = float(pos.qty)
        except ValueError as exc:
            return _bad(str(exc))
        if qty <= 0 or not qty.is_integer():
            return _bad("qty must be a positive whole number on the paper market")
        return self._place(str(uuid.uuid4()), symbol, "sell", "market", "day", int(qty), None, False)

    def close_all(self, params: Mapping[str, str]) -> Reply:
        if params.get("cancel_orders", "false").lower() == "true":
            self.cancel_all()
        out = []
        for pos in self.engine.positions():
            reply = self.close_position(pos.symbol, {})
            out.append(
                {
                    "symbol": pos.symbol,
                    "status": reply.status,
                    "order_id": reply.body.get("id") if reply.status == 200 else None,
                    "body": reply.body,
                }
            )
        return Reply(207, out)

    # -- account ---------------------------------------------------------------------------------

    def account(self) -> Reply:
        acct = self.engine.account()
        return Reply(
            200,
            {
                "id": self.account_id,
                "account_number": self.account_number,
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "currency": "USD",
                "cash": money(acct.cash),
                "buying_power": money(acct.buyable_cash),
                "regt_buying_power": money(acct.buyable_cash),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": money(acct.buyable_cash),
                "options_buying_power": "0",
                "equity": money(acct.equity),
                "last_equity": money(self.last_equity),
                "portfolio_value": money(acct.equity),
                "long_market_value": money(acct.market_value),
                "short_market_value": "0",
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "multiplier": "1",
                "daytrade_count": 0,
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "shorting_enabled": False,
                "created_at": iso(self.created_at),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "pending_transfer_out": "0",
            },
        )

    def fill_activities(self) -> list[dict[str, Any]]:
        """Every execution of the account as a FILL activity, oldest first (``cum_qty`` per order)."""
        cum: dict[str, int] = {}
        out = []
        for fill in self.engine.fills():
            meta = self.orders.get(fill.client_order_id)
            if meta is None:
                continue
            total = cum.get(meta.id, 0) + fill.qty
            cum[meta.id] = total
            out.append(self._activity(meta, fill, total))
        return out

    def _activity(self, meta: FakeOrder, fill: Fill, cum_qty: int) -> dict[str, Any]:
        done = cum_qty >= meta.qty
        return {
            "id": f"{fill.ts.astimezone(us.TZ):%Y%m%d%H%M%S%f}"[:-3] + "::" + execution_uuid(fill.execution_id),
            "account_id": self.account_id,
            "activity_type": "FILL",
            "transaction_time": iso(fill.ts),
            "type": "fill" if done else "partial_fill",
            "price": num(fill.price),
            "qty": num(fill.qty),
            "side": meta.side,
            "symbol": meta.symbol,
            "leaves_qty": num(meta.qty - cum_qty),
            "order_id": meta.id,
            "cum_qty": num(cum_qty),
            "order_status": "filled" if done else "partially_filled",
        }

    def activities(self, params: Mapping[str, str]) -> Reply:
        types = params.get("activity_types")
        if types and "FILL" not in types.split(","):
            return Reply(200, [])
        try:
            after = _parse_time(params["after"], "after") if params.get("after") else None
            until = _parse_time(params["until"], "until") if params.get("until") else None
            day = date.fromisoformat(params["date"]) if params.get("date") else None
            size = int(params.get("page_size") or ACTIVITY_PAGE)
        except ValueError as exc:
            return _bad(str(exc))
        size = max(1, min(size, ACTIVITY_PAGE))
        rows = []
        for row in self.fill_activities():
            ts = _parse_time(row["transaction_time"], "transaction_time")
            if day is not None and ts.astimezone(us.TZ).date() != day:
                continue
            if (after is not None and ts <= after) or (until is not None and ts > until):
                continue
            rows.append(row)
        if params.get("direction", "desc") != "asc":
            rows.reverse()
        token = params.get("page_token")
        if token:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        return Reply(200, rows[:size])

    # -- reference -------------------------------------------------------------------------------

    def assets(self, params: Mapping[str, str]) -> Reply:
        status = params.get("status")
        asset_class = params.get("asset_class")
        if asset_class not in (None, "", "us_equity") or status == "inactive":
            return Reply(200, [])
        return Reply(200, [asset_json(s) for s in self.engine.symbols])

    def asset(self, key: str) -> Reply:
        symbol = self._symbol_of(key)
        if not self.engine.has_symbol(symbol):
            return _bad(f"asset not found for {key}", NOT_FOUND, 404)
        return Reply(200, asset_json(symbol))

    def market_clock(self) -> Reply:
        now = self.now()
        is_open, next_open, next_close = us.market_clock(now)
        return Reply(
            200,
            {
                "timestamp": now.astimezone(us.TZ).isoformat(),
                "is_open": is_open,
                "next_open": next_open.isoformat(),
                "next_close": next_close.isoformat(),
            },
        )

    def calendar(self, params: Mapping[str, str]) -> Reply:
        today = self.now().astimezone(us.TZ).date()
        try:
            start = date.fromisoformat(params["start"][:10]) if params.get("start") else today - timedelta(days=366)
            end = date.fromisoformat(params["end"][:10]) if params.get("end") else today + timedelta(days=366)
        except ValueError as exc:
            return _bad(f"start/end must be YYYY-MM-DD: {exc}")
        out = []
        try:
            days = us.trading_days(start, end) if start <= end else []
        except Exception as exc:
            return _bad(f"calendar range: {exc}")
        for day in days:
            sess = us.session(day)
            assert sess is not None
            out.append(
                {
                    "date": day.isoformat(),
                    "open": f"{sess.open:%H:%M}",
                    "close": f"{sess.close:%H:%M}",
                    "session_open": f"{sess.pre_market_open:%H%M}",
                    "session_close": f"{sess.after_hours_close:%H%M}",
                    "settlement_date": us.next_trading_day(day).isoformat(),
                }
            )
        return Reply(200, out)

    # -- stream events -----------------------------------------------------------------------------

    def trade_update(self, update: OrderUpdate) -> tuple[str, dict[str, Any]] | None:
        """(event, message) of the trade_updates stream for an engine update; None for an order that is not
        the account's (a refused request)."""
        order = update.order
        meta = self.orders.get(order.client_order_id)
        if meta is None:
            return None
        if update.fill is not None:
            event = "fill" if order.status is OrderStatus.FILLED else "partial_fill"
        elif order.status is OrderStatus.CANCELLED and meta.replaced_by is not None:
            event = "replaced"
        else:
            event = {
                OrderStatus.NEW: "new",
                OrderStatus.CANCELLED: "canceled",
                OrderStatus.EXPIRED: "expired",
                OrderStatus.REJECTED: "rejected",
                OrderStatus.FILLED: "fill",
                OrderStatus.PARTIALLY_FILLED: "partial_fill",
            }[order.status]
        data: dict[str, Any] = {"event": event, "order": order_json(meta, order), "timestamp": iso(update.ts)}
        fill = update.fill
        if fill is not None:
            data.update(
                execution_id=execution_uuid(fill.execution_id),
                price=num(fill.price),
                qty=num(fill.qty),
                position_qty=num(self._position_after(fill)),
            )
        return event, {"stream": "trade_updates", "data": data}

    def _position_after(self, fill: Fill) -> int:
        pos = self.engine.position(fill.symbol)
        qty = pos.qty if pos is not None else 0
        later = False
        for f in self.engine.fills():
            if later and f.symbol == fill.symbol:
                qty -= f.qty if f.side is Side.BUY else -f.qty
            if f.execution_id == fill.execution_id:
                later = True
        return qty


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


__all__ = ["AlpacaBook", "Reply"]
