"""Liveness, metrics and the market clock (no auth on /health and /metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from broker_core.contract.wire import MarketClock
from oms.api.auth import Principal, require_reader
from oms.api.deps import runtime
from oms.api.responses import READ, errors
from oms.runtime import OmsRuntime

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    rt: OmsRuntime = request.app.state.runtime
    return rt.health()


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    rt: OmsRuntime = request.app.state.runtime
    rt.health()
    return Response(rt.metrics.render(), media_type=PROMETHEUS_TEXT)


@router.get("/api/v1/clock", response_model=MarketClock, responses=errors(*READ))
async def clock(rt: OmsRuntime = Depends(runtime), _: Principal = Depends(require_reader)) -> dict[str, Any]:
    market = rt.market
    now = rt.clock.now().astimezone(market.tz)
    trading = market.is_trading_day(now)
    day = now.date() if trading else market.next_trading_day(now)
    open_, close = market.open_close(day)
    if trading and now >= close:
        open_, close = market.open_close(market.next_trading_day(now))
    return {
        "now": now.isoformat(),
        "speed": rt.clock.speed,
        "trading_day": trading,
        "session_phase": market.phase(now),
        "next_open": open_.isoformat(),
        "next_close": close.isoformat(),
        "market": market.code,
        "currency": market.currency,
    }
