"""Orders (working and done) and fills."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from oms.api.auth import Principal, check_strategy, require_reader
from oms.api.deps import runtime
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


@router.get("/orders")
async def list_orders(
    strategy_id: str | None = None,
    symbol: str | None = None,
    open_only: bool = False,
    limit: int = Query(500, ge=1, le=5000),
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_reader),
) -> list[dict[str, Any]]:
    if who.role == "strategy":
        strategy_id = who.strategy_id
    assert rt.reader is not None
    records = await rt.reader.list_orders(
        strategy_id=strategy_id.upper() if strategy_id else None, symbol=symbol, open_only=open_only, limit=limit
    )
    live = rt.state.orders
    return [order_out(live.get(o.order_id, o)) for o in records]


@router.get("/orders/{order_id}")
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


@router.get("/fills")
async def list_fills(
    strategy_id: str | None = None,
    symbol: str | None = None,
    since: datetime | None = None,
    limit: int = Query(1000, ge=1, le=10000),
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_reader),
) -> list[dict[str, Any]]:
    if who.role == "strategy":
        strategy_id = who.strategy_id
    assert rt.reader is not None
    records = await rt.reader.list_fills(
        strategy_id=strategy_id.upper() if strategy_id else None, symbol=symbol, since=since, limit=limit
    )
    return [fill_out(f) for f in records]
