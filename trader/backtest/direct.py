"""A backtest's hottest OMS calls answered in-process, with no HTTP: the SDK's ``local`` hook
(:data:`strategies.sdk.client.LocalCall`).

A session of every KRX strategy makes ≈ 70,000 REST calls, nearly all market-data reads (quotes, minute
and daily bars through the proxy), account reads and heartbeats; through ``httpx.ASGITransport`` each costs
about a millisecond of request building, routing and dependency solving before the route's own work. These
calls go straight to the same route functions (``oms.api.marketdata``, ``oms.api.control.account`` and
``.heartbeat``) with the same key check, the same parameter rules and the same reply models, so the answer
is what HTTP would give; anything else — an intent, an order, a value the route would refuse with a 422, a
key it would refuse with a 401 — goes over the ASGI transport as before, so every error is the app's own.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ValidationError

from broker_core.contract.wire import STRATEGY_ID_PATTERN, Account
from oms.api import control, marketdata
from oms.api.auth import Principal
from oms.api.params import DATE_TEXT, DATETIME_TEXT
from oms.api.replies import BarsOut, HeartbeatOut, QuoteOut
from oms.api.schemas import HeartbeatIn
from oms.runtime import OmsRuntime
from strategies.sdk.client import LocalCall, LocalReply

_MARKETDATA = re.compile(r"^/api/v1/marketdata/(quote|bars|daily)/([^/]+)$")
_HEARTBEAT = re.compile(r"^/api/v1/strategies/([^/]+)/heartbeat$")
_SYMBOL = re.compile(marketdata.SYMBOL)
_INTERVAL = re.compile(marketdata.INTERVAL_PATTERN)
_STRATEGY_ID = re.compile(STRATEGY_ID_PATTERN)


class _NotLocal(Exception):
    """The call is not one this module answers as the route would (left to HTTP)."""


def _datetime(params: dict[str, Any], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not DATETIME_TEXT.fullmatch(value):
        raise _NotLocal
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _NotLocal from None


def _date(params: dict[str, Any], name: str) -> date | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not DATE_TEXT.fullmatch(value):
        raise _NotLocal
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _NotLocal from None


class DirectRoutes:
    """Answers market-data reads and heartbeats of one OMS app in-process (see the module doc)."""

    def __init__(self, app: FastAPI, runtime: OmsRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self.calls = 0
        """Calls answered here (the rest went over the transport)."""

    def for_key(self, api_key: str) -> LocalCall:
        """The ``local`` hook of a client holding ``api_key``."""

        async def call(method: str, path: str, params: dict[str, Any] | None, body: Any) -> LocalReply | None:
            return await self.answer(api_key, method, path, params or {}, body)

        return call

    async def answer(
        self, api_key: str, method: str, path: str, params: dict[str, Any], body: Any
    ) -> LocalReply | None:
        principal: Principal | None = self.app.state.keys.lookup(api_key)
        if principal is None:
            return None
        try:
            handler = self._route(principal, method, path, params, body)
        except _NotLocal:
            return None
        if handler is None:
            return None
        route, model = handler
        self.calls += 1
        try:
            result = await route()
        except HTTPException as exc:
            return LocalReply(exc.status_code, {"detail": exc.detail}, dict(exc.headers or {}))
        return LocalReply(200, model.model_validate(result).model_dump(mode="json"))

    def _route(
        self, who: Principal, method: str, path: str, params: dict[str, Any], body: Any
    ) -> tuple[Callable[[], Awaitable[Any]], type[BaseModel]] | None:
        rt = self.runtime
        if method == "GET" and (m := _MARKETDATA.match(path)):
            kind, symbol = m.group(1), m.group(2)
            if not _SYMBOL.match(symbol):
                raise _NotLocal
            if kind == "quote":
                if params:
                    raise _NotLocal
                return (lambda: marketdata.quote(symbol, rt, who)), QuoteOut
            if kind == "bars":
                if set(params) - {"interval", "start", "end"}:
                    raise _NotLocal
                interval = params.get("interval", "1m")
                if not isinstance(interval, str) or not _INTERVAL.match(interval):
                    raise _NotLocal
                start, end = _datetime(params, "start"), _datetime(params, "end")
                return (lambda: marketdata.bars(symbol, interval, start, end, rt, who)), BarsOut
            if set(params) - {"start", "end"}:
                raise _NotLocal
            first, last = _date(params, "start"), _date(params, "end")
            return (lambda: marketdata.daily(symbol, first, last, rt, who)), BarsOut
        if method == "GET" and path == "/api/v1/state/account" and not params:
            return (lambda: control.account(rt, who)), Account
        if method == "POST" and (m := _HEARTBEAT.match(path)) and not params:
            strategy_id = m.group(1)
            if not (0 < len(strategy_id) <= 32 and _STRATEGY_ID.match(strategy_id)) or who.role == "read":
                raise _NotLocal
            try:
                beat = HeartbeatIn.model_validate(body) if body is not None else None
            except ValidationError:
                raise _NotLocal from None
            return (lambda: control.heartbeat(strategy_id, beat, rt, who)), HeartbeatOut
        return None
