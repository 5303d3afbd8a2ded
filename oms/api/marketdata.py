"""REST market data through the OMS proxy (rate-budgeted, de-duplicated, cached) and the slot budget.

GET /api/v1/marketdata/quote/{symbol}
GET /api/v1/marketdata/bars/{symbol}?interval=1m&start=ISO&end=ISO
GET /api/v1/marketdata/daily/{symbol}?start=YYYY-MM-DD&end=YYYY-MM-DD
GET /api/v1/marketdata/investor-flow/{symbol}?start=YYYY-MM-DD&end=YYYY-MM-DD
GET /api/v1/marketdata/slots

Any valid key may read. Bad parameters → 422 naming the parameter; unknown symbol → 404; a broker
adapter without the data → 501; broker rate limit → 429 (Retry-After); broker unreachable → 503.
Naive datetimes are market time (KST on KRX, America/New_York on US).
Every well-formed window is answered: one that ends before it starts is empty,
one longer than a request may cover (31 days of intraday bars, 10 years of daily rows) is cut to its
latest part; the reply's ``start`` and ``end`` name the window served.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse

from broker_core.contract.reasons import ReasonCode
from broker_core.errors import BrokerError, BrokerUnavailable, RateLimited
from oms.api.auth import Principal, require_reader
from oms.api.deps import runtime
from oms.api.params import IsoDate, IsoDateTime
from oms.api.replies import BarsOut, InvestorFlowOut, QuoteOut
from oms.api.responses import READ, errors
from oms.marketdata.proxy import MarketDataProxy, NotSupported, UnknownSymbol
from oms.runtime import OmsRuntime

router = APIRouter(prefix="/api/v1/marketdata", tags=["marketdata"])

SYMBOL = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$"
INTERVAL = re.compile(r"^([1-9]\d{0,3})([mh])$")
INTERVAL_PATTERN = r"^((?:[1-9]\d{0,2}|1[0-3]\d\d|14[0-3]\d|1440)m|(?:[1-9]|1\d|2[0-4])h)$"
"""Minutes or hours, up to one day: 1m … 1440m, 1h … 24h."""
MAX_INTRADAY = timedelta(days=31)
MAX_DAILY = timedelta(days=3660)
NOT_FOUND_CODES = {ReasonCode.UNKNOWN_SYMBOL, ReasonCode.NOT_FOUND, "NO_REFERENCE_PRICE", ReasonCode.NO_DATA}
T = TypeVar("T")


def _invalid(param: str, msg: str, value: Any = None) -> HTTPException:
    """422 in the shape of the app's schema errors, naming the query parameter."""
    return HTTPException(422, [{"field": f"query.{param}", "msg": msg, "type": "value_error", "input": value}])


def _proxy(rt: OmsRuntime) -> MarketDataProxy:
    if rt.md_proxy is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "OMS is starting")
    return rt.md_proxy


def _local(dt: datetime, tz: tzinfo) -> datetime:
    """A naive time is the market's local time (KST on KRX, New York on US)."""
    return dt.replace(tzinfo=tz) if dt.tzinfo is None or dt.utcoffset() is None else dt


async def _call(coro: Awaitable[T], symbol: str) -> T:
    try:
        return await coro
    except UnknownSymbol as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown symbol {symbol}") from exc
    except NotSupported as exc:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, str(exc)) from exc
    except NotImplementedError as exc:
        raise HTTPException(
            status.HTTP_501_NOT_IMPLEMENTED, f"the broker adapter does not support this market-data call ({exc})"
        ) from exc
    except RateLimited as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"broker rate limit: {exc.message}",
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
        ) from exc
    except BrokerUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"broker unavailable: {exc.message}") from exc
    except BrokerError as exc:
        if exc.code in NOT_FOUND_CODES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{symbol}: {exc.message} ({exc.code})") from exc
        if exc.code == ReasonCode.INVALID_INTERVAL:
            raise _invalid("interval", exc.message) from exc
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"broker error {exc.code}: {exc.message}") from exc


SymbolPath = Path(..., pattern=SYMBOL, description="ticker, e.g. 005930")


PROXIED = errors(*READ, 404, 422, 429, 501, 502)
"""Through the proxy: unknown symbol, bad parameter, broker rate limit, not offered, broker error, down."""


@router.get("/quote/{symbol}", response_model=QuoteOut, responses=PROXIED)
async def quote(
    symbol: str = SymbolPath, rt: OmsRuntime = Depends(runtime), _: Principal = Depends(require_reader)
) -> dict[str, Any]:
    return await _call(_proxy(rt).quote(symbol), symbol)


@router.get("/bars/{symbol}", response_model=BarsOut, responses=PROXIED)
async def bars(
    symbol: str = SymbolPath,
    interval: str = Query("1m", pattern=INTERVAL_PATTERN, description="minutes or hours up to one day: 1m, 5m, 1h …"),
    start: IsoDateTime | None = Query(
        None, description="ISO date-time (market time — KST on KRX — if naive); default today's open"
    ),
    end: IsoDateTime | None = Query(None, description="ISO date-time (market time if naive); default now"),
    rt: OmsRuntime = Depends(runtime),
    _: Principal = Depends(require_reader),
) -> dict[str, Any]:
    m = INTERVAL.match(interval.strip())
    if not m or not 0 < int(m.group(1)) * (60 if m.group(2) == "h" else 1) <= 24 * 60:
        raise _invalid("interval", "must be minutes or hours up to one day, e.g. 1m, 5m, 1h", interval)
    tz = rt.market.tz
    now = rt.clock.now().astimezone(tz)
    end_ = _local(end, tz) if end is not None else now
    start_ = _local(start, tz) if start is not None else _session_open(rt, now)
    start_ = max(start_, end_ - MAX_INTRADAY)
    rows = await _call(_proxy(rt).bars(symbol, start_, end_, interval.strip()), symbol) if start_ <= end_ else []
    return {
        "symbol": symbol,
        "interval": interval.strip(),
        "start": start_.isoformat(),
        "end": end_.isoformat(),
        "bars": rows,
    }


def _session_open(rt: OmsRuntime, now: datetime) -> datetime:
    """Today's regular open time (09:00 KST on KRX, 09:30 New York on US), also on a day without a session."""
    m = rt.market
    day = now.date() if m.is_trading_day(now) else m.next_trading_day(now)
    return datetime.combine(now.date(), m.open_close(day)[0].time(), m.tz)


def _date_range(rt: OmsRuntime, start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    """The window served: ``end`` defaults to today, ``start`` to ``default_days`` before it; at most
    :data:`MAX_DAILY` long (the latest part of a longer one)."""
    today = rt.clock.now().astimezone(rt.market.tz).date()
    end_ = end or today
    start_ = max(start or end_ - timedelta(days=default_days), end_ - MAX_DAILY)
    return start_, end_


@router.get("/daily/{symbol}", response_model=BarsOut, responses=PROXIED)
async def daily(
    symbol: str = SymbolPath,
    start: IsoDate | None = Query(None, description="YYYY-MM-DD; default end − 365 days"),
    end: IsoDate | None = Query(None, description="YYYY-MM-DD; default today (rows of today only after the close)"),
    rt: OmsRuntime = Depends(runtime),
    _: Principal = Depends(require_reader),
) -> dict[str, Any]:
    start_, end_ = _date_range(rt, start, end, 365)
    rows = await _call(_proxy(rt).daily(symbol, start_, end_), symbol) if start_ <= end_ else []
    return {"symbol": symbol, "interval": "1d", "start": start_.isoformat(), "end": end_.isoformat(), "bars": rows}


@router.get("/investor-flow/{symbol}", response_model=InvestorFlowOut, responses=PROXIED)
async def investor_flow(
    symbol: str = SymbolPath,
    start: IsoDate | None = Query(None, description="YYYY-MM-DD; default end − 30 days"),
    end: IsoDate | None = Query(None, description="YYYY-MM-DD; default today (after the close)"),
    rt: OmsRuntime = Depends(runtime),
    _: Principal = Depends(require_reader),
) -> dict[str, Any]:
    start_, end_ = _date_range(rt, start, end, 30)
    rows = await _call(_proxy(rt).investor_flow(symbol, start_, end_), symbol) if start_ <= end_ else []
    return {"symbol": symbol, "start": start_.isoformat(), "end": end_.isoformat(), "rows": rows}


@router.get("/slots", response_model=dict[str, Any], responses=errors(*READ))
async def slots(rt: OmsRuntime = Depends(runtime), _: Principal = Depends(require_reader)) -> JSONResponse:
    if rt.hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "OMS is starting")
    snap = rt.hub.snapshot()
    limiter = rt.rate_limiter
    snap["rest_budget"] = {"rate_per_sec": limiter.rate, "burst": limiter.capacity, "granted": limiter.granted}
    return JSONResponse(snap)
