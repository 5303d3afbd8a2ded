"""JSON shapes the alpaca-py 0.44 models parse (specs/alpaca.md §5), built from the paper exchange's state.

Ids are UUIDs; quantities and prices are strings as the real API sends them; enum values are the SDK's
(``new``, ``partially_filled``, ``us_equity``, ``NASDAQ`` …); assets carry ``class``, not ``asset_class``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker_core.models import BrokerOrder, OrderStatus

NAMESPACE = uuid.UUID("6f1b6c1e-8f8e-4c55-9d3e-2a5d1f0c7a11")
ETF_EXCHANGE = "ARCA"
NASDAQ = frozenset(
    """AAPL MSFT NVDA AMZN GOOGL GOOG META AVGO TSLA COST NFLX ADBE PEP CSCO INTC AMD QCOM TXN AMGN INTU CMCSA
    HON SBUX GILD MDLZ BKNG ADP ISRG REGN VRTX ADI LRCX MU PYPL AMAT PANW KLAC SNPS CDNS MAR ORLY CTAS MNST
    ASML AZN CSX PDD ABNB MELI CRWD FTNT WDAY DASH ROP PAYX CPRT ODFL FAST KDP EXC AEP XEL TMUS CHTR QQQ TLT""".split()
)
ETFS = frozenset("SPY QQQ TLT XLB XLC XLE XLF XLI XLK XLP XLRE XLU XLV XLY".split())

ENGINE_STATUS = {
    OrderStatus.NEW: "new",
    OrderStatus.PARTIALLY_FILLED: "partially_filled",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELLED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
}
OPEN_STATUSES = frozenset({"new", "partially_filled", "accepted", "pending_new", "pending_cancel", "pending_replace"})


def iso(dt: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Alpaca writes timestamps."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(value: float | int) -> str:
    """A quantity or price as the API writes it: ``"10"``, ``"101.5"``."""
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()):
        return str(int(value))
    return f"{value:.10f}".rstrip("0").rstrip(".")


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"asset:{symbol}"))


def execution_uuid(execution_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"execution:{execution_id}"))


def exchange_of(symbol: str) -> str:
    if symbol in NASDAQ:
        return "NASDAQ"
    return ETF_EXCHANGE if symbol in ETFS else "NYSE"


def error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def asset_json(symbol: str, *, tradable: bool = True, fractionable: bool = False) -> dict[str, Any]:
    return {
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": exchange_of(symbol),
        "symbol": symbol,
        "name": symbol,
        "status": "active" if tradable else "inactive",
        "tradable": tradable,
        "marginable": False,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": fractionable,
        "min_order_size": "1",
        "min_trade_increment": "1",
        "price_increment": "0.01",
        "maintenance_margin_requirement": 100,
        "attributes": [],
    }


@dataclass(slots=True)
class FakeOrder:
    """What the fake keeps beside the engine's order (the engine knows the order by ``id``)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: int
    limit_price: float | None
    created_at: datetime
    extended_hours: bool = False
    visible_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    replaced_at: datetime | None = None

    def visible(self, now: datetime) -> bool:
        return self.visible_at is None or now >= self.visible_at


def alpaca_status(meta: FakeOrder, order: BrokerOrder | None) -> str:
    if meta.replaced_by is not None:
        return "replaced"
    if order is None:
        return "new"
    return ENGINE_STATUS[order.status]


def order_json(meta: FakeOrder, order: BrokerOrder | None) -> dict[str, Any]:
    status = alpaca_status(meta, order)
    filled = order.filled_qty if order is not None else 0
    avg = order.avg_fill_price if order is not None and filled else None
    updated = order.updated_at if order is not None else meta.created_at
    if meta.replaced_at is not None:
        updated = max(updated, meta.replaced_at)
    final = order.updated_at if order is not None and order.status.is_terminal else None
    stamp = {status: iso(final)} if final is not None and meta.replaced_by is None else {}
    return {
        "id": meta.id,
        "client_order_id": meta.client_order_id,
        "created_at": iso(meta.created_at),
        "updated_at": iso(updated),
        "submitted_at": iso(meta.created_at),
        "filled_at": stamp.get("filled"),
        "expired_at": stamp.get("expired"),
        "canceled_at": stamp.get("canceled"),
        "failed_at": stamp.get("rejected"),
        "replaced_at": iso(meta.replaced_at) if meta.replaced_at else None,
        "replaced_by": meta.replaced_by,
        "replaces": meta.replaces,
        "asset_id": asset_id(meta.symbol),
        "symbol": meta.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": num(meta.qty),
        "filled_qty": num(filled),
        "filled_avg_price": num(round(avg, 6)) if avg is not None else None,
        "order_class": "",
        "order_type": meta.type,
        "type": meta.type,
        "side": meta.side,
        "position_intent": "buy_to_open" if meta.side == "buy" else "sell_to_close",
        "time_in_force": meta.time_in_force,
        "limit_price": num(meta.limit_price) if meta.limit_price is not None else None,
        "stop_price": None,
        "status": status,
        "extended_hours": meta.extended_hours,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "expires_at": None,
    }


def position_json(
    symbol: str, qty: int, avg_price: float, last: float, prev_close: float | None, available: int
) -> dict[str, Any]:
    cost = qty * avg_price
    value = qty * last
    prev = prev_close or last
    return {
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": exchange_of(symbol),
        "asset_class": "us_equity",
        "asset_marginable": False,
        "avg_entry_price": num(round(avg_price, 6)),
        "qty": num(qty),
        "qty_available": num(available),
        "side": "long",
        "market_value": num(round(value, 4)),
        "cost_basis": num(round(cost, 4)),
        "unrealized_pl": num(round(value - cost, 4)),
        "unrealized_plpc": num(round((value - cost) / cost, 6)) if cost else "0",
        "unrealized_intraday_pl": num(round((last - prev) * qty, 4)),
        "unrealized_intraday_plpc": num(round((last - prev) / prev, 6)) if prev else "0",
        "current_price": num(last),
        "lastday_price": num(prev),
        "change_today": num(round((last - prev) / prev, 6)) if prev else "0",
    }


def money(value: float) -> str:
    return f"{value:.2f}"
