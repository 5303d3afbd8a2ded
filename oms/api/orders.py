"""Orders (working and done) and fills.

Read scoping: a strategy key sees only its own orders and fills (the lists are filtered to it; asking
for another strategy's, by ``?strategy_id=`` or by order id, is 403). The read and admin keys see all.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from broker_core.contract.wire import Fill, Order
from oms.api.auth import Principal, check_strategy, require_reader, scoped
from oms.api.deps import runtime
from oms.api.params import IsoDateTime, QueryText
from oms.api.responses import READ, errors
from oms.core.types import FillRecord, OrderRecord
from oms.runtime import OmsRuntime

router = APIRouter(prefix="/api/v1", tags=["orders"])


def order_out(o: OrderRecord) -> dict[str, Any]:
    d = asdict(o)
    d["leaves_qty"] = o.leaves_qty
    return _plain(d)


def fill_out(f: FillRecord) -> dict[str, Any]:
    return _plain(asdict(f))


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else getattr(v, "value", v)) for k, v in d.items()}


@router.get("/orders", response_model=list[Order], responses=errors(*READ, 403, 422))
async def list_orders(
    strategy_id: QueryText | None = None,
    symbol: QueryText | None = None,
    open_only: bool = False,
    limit: int = Query(500, ge=1, le=5000),
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_reader),
) -> list[dict[str, Any]]:
    assert rt.reader is not None
    records = await rt.reader.list_orders(
        strategy_id=scoped(who, strategy_id), symbol=symbol, open_only=open_only, limit=limit
    )
    live = rt.state.orders
    return [order_out(live.get(o.order_id, o)) for o in records]


@router.get("/orders/{order_id}", response_model=Order, responses=errors(*READ, 403, 404))
async def get_order(
    order_id: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)
) -> dict[str, Any]:
    order = rt.state.orders.get(order_id)
    if order is None:
        assert rt.reader is not None
        order = await rt.reader.get_order(order_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
    check_strategy(who, order.strategy_id)
    return order_out(order)


@router.get("/fills", response_model=list[Fill], responses=errors(*READ, 403, 422))
async def list_fills(
    strategy_id: QueryText | None = None,
    symbol: QueryText | None = None,
    since: IsoDateTime | None = Query(None, description="ISO date-time: fills at or after it"),
    limit: int = Query(1000, ge=1, le=10000),
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_reader),
) -> list[dict[str, Any]]:
    assert rt.reader is not None
    records = await rt.reader.list_fills(strategy_id=scoped(who, strategy_id), symbol=symbol, since=since, limit=limit)
    return [fill_out(f) for f in records]
