"""Async HTTP client of the OMS v1 API for one strategy.

Retries are bounded (``retries`` after the first attempt) with exponential backoff and jitter, and
only on failures that may be transient: connection errors, timeouts, a dropped connection, 5xx and
429 (honouring ``Retry-After`` up to the backoff cap). Every intent gets its idempotency key
*before* the first attempt (see :mod:`strategies.sdk.keys`) and keeps it on every retry, so a retry
after a lost response returns the OMS's stored decision instead of placing a second order.

Intent submissions run in their own tasks and are shielded from the caller's cancellation: a
strategy being stopped never leaves a half-sent intent. :meth:`OmsClient.close_intents` stops new
ones and :meth:`OmsClient.drain_intents` waits for those in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote as urlquote

import httpx

from strategies.sdk.bars import Bar
from strategies.sdk.errors import (
    IntentsClosed,
    MarketDataUnavailable,
    OmsAuthError,
    OmsBadRequest,
    OmsError,
    OmsNotFound,
    OmsRejected,
    OmsUnavailable,
    describe_detail,
)
from strategies.sdk.keys import decision_key, random_key
from strategies.sdk.models import (
    Account,
    Allocation,
    Constraints,
    Fill,
    IntentReply,
    IntentType,
    MarketClock,
    Order,
    OrderType,
    Position,
    RiskPayload,
    TimeHorizon,
    Urgency,
    body_of,
)
from strategies.sdk.stream import Connect

log = logging.getLogger("strategies.sdk.client")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LocalReply:
    """An OMS answer computed in-process (see :data:`LocalCall`): the status, the decoded JSON body, headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, method: str, url: str) -> httpx.Response:
        return httpx.Response(self.status, json=self.body, headers=self.headers, request=httpx.Request(method, url))


LocalCall = Callable[[str, str, dict[str, Any] | None, Any], Awaitable[LocalReply | None]]
"""``(method, path, params, json) → LocalReply | None``: answers a call in-process, with no HTTP (a backtest's
hot read paths); None sends it over the transport as usual. Errors take the same path as HTTP ones."""
_RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class OmsClient:
    """One strategy's view of the OMS (its key acts only as ``strategy_id``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        strategy_id: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        stream_connect: Connect | None = None,
        local: LocalCall | None = None,
    ) -> None:
        """``stream_connect``: how a :class:`~strategies.sdk.strategy.Strategy` on this client opens its stream
        (``StreamClient``'s ``connect``); None: a WebSocket to :attr:`ws_url`. A backtest passes an in-process one,
        next to an in-process ``transport``, and ``local`` for the calls it answers without HTTP at all."""
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.strategy_id = strategy_id.upper()
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers={"Authorization": f"Bearer {api_key}"}
        )
        self.stream_connect = stream_connect
        self._local = local
        self._inflight: set[asyncio.Task[IntentReply]] = set()
        self._intents_open = True

    # ---- lifecycle ----------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        """The stream endpoint on the same host (http → ws, https → wss)."""
        scheme, sep, rest = self.base_url.partition("://")
        ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return f"{ws_scheme}{sep}{rest}/api/v1/stream"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OmsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ---- transport ----------------------------------------------------------------------------
    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt)) * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return float(delay)

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One API call with bounded retries; returns the decoded JSON body or raises a typed error."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                local = await self._local(method, path, params or None, json) if self._local is not None else None
                if local is not None and local.status < 400:
                    return local.body
                if local is not None:
                    resp = local.response(method, f"{self.base_url}{path}")
                else:
                    resp = await self._http.request(method, path, json=json, params=params or None)
            except _RETRY_EXCEPTIONS as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if (resp.status_code != 429 and resp.status_code < 500) or resp.status_code == 501:
                    return _decode(method, path, resp)
                last = f"HTTP {resp.status_code}: {describe_detail(_detail(resp))}"
                retry_after = _retry_after(resp)
            if attempt < self.retries:
                delay = self._delay(attempt, retry_after)
                log.warning(
                    "OMS %s %s failed (%s); retry %d/%d in %.2fs", method, path, last, attempt + 1, self.retries, delay
                )
                await self._sleep(delay)
        raise OmsUnavailable(
            f"OMS {method} {path} unavailable after {self.retries + 1} attempt(s): {last}", method=method, path=path
        )

    # ---- intents ------------------------------------------------------------------------------
    async def submit_intent(
        self,
        intent_type: IntentType | str,
        symbol: str,
        *,
        qty: int | None = None,
        target_qty: int | None = None,
        urgency: Urgency | str = Urgency.NORMAL,
        time_horizon: TimeHorizon | str = TimeHorizon.INTRADAY,
        constraints: Constraints | None = None,
        risk: RiskPayload | None = None,
        signal_hash: str | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
        bucket_sec: int = 60,
    ) -> IntentReply:
        """Send one intent and return the OMS's decision.

        The key is ``idempotency_key`` when given; else a decision key from ``decision_ts`` (the
        time the decision was made, bucketed to ``bucket_sec``; ``key_tag`` or the rationale code
        tells apart decisions in one bucket); else a random key. Either way it is fixed before the
        first attempt and reused by every retry.
        """
        if not self._intents_open:
            raise IntentsClosed(f"{self.strategy_id} is stopping: intent {intent_type} {symbol} not sent")
        kind = IntentType(str(intent_type).upper())
        if idempotency_key is None:
            tag = key_tag if key_tag is not None else (risk.rationale_code if risk else None)
            idempotency_key = (
                decision_key(self.strategy_id, symbol, kind.value, decision_ts, bucket_sec=bucket_sec, tag=tag)
                if decision_ts is not None
                else random_key()
            )
        body: dict[str, Any] = {
            "intent_type": kind.value,
            "strategy_id": self.strategy_id,
            "symbol": symbol,
            "urgency": Urgency(str(urgency).upper()).value,
            "time_horizon": TimeHorizon(str(time_horizon).upper()).value,
            "constraints": body_of(constraints),
            "risk_payload": body_of(risk),
            "idempotency_key": idempotency_key,
        }
        if qty is not None:
            body["desired_qty"] = qty
        if target_qty is not None:
            body["target_qty"] = target_qty
        if signal_hash is not None:
            body["signal_hash"] = signal_hash
        task = asyncio.create_task(self._post_intent(body), name=f"intent:{kind.value}:{symbol}")
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[IntentReply]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("intent task %s ended with %r", task.get_name(), task.exception())

    async def _post_intent(self, body: dict[str, Any]) -> IntentReply:
        data = await self.request("POST", "/api/v1/intents", json=body)
        return IntentReply.model_validate({**data, "idempotency_key": body["idempotency_key"]})

    @property
    def intents_in_flight(self) -> int:
        return len(self._inflight)

    def close_intents(self) -> None:
        """Refuse new intents from now on (in-flight ones complete)."""
        self._intents_open = False

    async def drain_intents(self, timeout: float | None = None) -> int:
        """Close intents and wait for those in flight; returns how many are still running."""
        self.close_intents()
        pending = set(self._inflight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            return len(still)
        return 0

    async def enter(
        self,
        symbol: str,
        qty: int,
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        order_type: OrderType | str | None = None,
        cancel_after_sec: float | None = None,
        max_slippage_bps: float | None = None,
        max_spread_bps: float | None = None,
        expiry_ts: datetime | None = None,
        risk: RiskPayload | None = None,
        signal_hash: str | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
        urgency: Urgency | str = Urgency.NORMAL,
        time_horizon: TimeHorizon | str = TimeHorizon.INTRADAY,
    ) -> IntentReply:
        """ENTER (long). Without ``order_type`` the OMS plans it: stop → STOP_LIMIT, limit → LIMIT,
        else a marketable limit (C6)."""
        constraints = Constraints(
            order_type=_order_type(order_type),
            limit_price=limit_price,
            stop_price=stop_price,
            cancel_after_sec=cancel_after_sec,
            max_slippage_bps=max_slippage_bps,
            max_spread_bps=max_spread_bps,
            expiry_ts=expiry_ts,
        )
        return await self.submit_intent(
            IntentType.ENTER,
            symbol,
            qty=qty,
            urgency=urgency,
            time_horizon=time_horizon,
            constraints=constraints,
            risk=risk,
            signal_hash=signal_hash,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    async def reduce(
        self,
        symbol: str,
        qty: int,
        *,
        limit_price: float | None = None,
        order_type: OrderType | str | None = None,
        max_slippage_bps: float | None = None,
        risk: RiskPayload | None = None,
        signal_hash: str | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
        urgency: Urgency | str = Urgency.NORMAL,
        time_horizon: TimeHorizon | str = TimeHorizon.INTRADAY,
    ) -> IntentReply:
        """REDUCE: sell ``qty`` of this strategy's allocation."""
        constraints = Constraints(
            order_type=_order_type(order_type), limit_price=limit_price, max_slippage_bps=max_slippage_bps
        )
        return await self.submit_intent(
            IntentType.REDUCE,
            symbol,
            qty=qty,
            urgency=urgency,
            time_horizon=time_horizon,
            constraints=constraints,
            risk=risk,
            signal_hash=signal_hash,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    async def exit(
        self,
        symbol: str,
        *,
        limit_price: float | None = None,
        order_type: OrderType | str | None = None,
        max_slippage_bps: float | None = None,
        risk: RiskPayload | None = None,
        signal_hash: str | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
        urgency: Urgency | str = Urgency.HIGH,
        time_horizon: TimeHorizon | str = TimeHorizon.INTRADAY,
    ) -> IntentReply:
        """EXIT: sell this strategy's whole allocation in ``symbol``."""
        constraints = Constraints(
            order_type=_order_type(order_type), limit_price=limit_price, max_slippage_bps=max_slippage_bps
        )
        return await self.submit_intent(
            IntentType.EXIT,
            symbol,
            urgency=urgency,
            time_horizon=time_horizon,
            constraints=constraints,
            risk=risk,
            signal_hash=signal_hash,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    async def flatten(
        self,
        symbol: str = "*",
        *,
        risk: RiskPayload | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
        urgency: Urgency | str = Urgency.HIGH,
        time_horizon: TimeHorizon | str = TimeHorizon.INTRADAY,
    ) -> IntentReply:
        """FLATTEN: exit every allocation of this strategy (``symbol='*'``) or one symbol."""
        return await self.submit_intent(
            IntentType.FLATTEN,
            symbol,
            urgency=urgency,
            time_horizon=time_horizon,
            risk=risk,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    async def cancel_orders(
        self,
        symbol: str,
        *,
        risk: RiskPayload | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
    ) -> IntentReply:
        """CANCEL_ORDERS: cancel this strategy's working orders in ``symbol`` (``'*'`` = all)."""
        return await self.submit_intent(
            IntentType.CANCEL_ORDERS,
            symbol,
            urgency=Urgency.HIGH,
            risk=risk,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    async def modify_risk(
        self,
        symbol: str,
        *,
        stop_px: float | None = None,
        hard_stop_px: float | None = None,
        time_stop_ts: datetime | None = None,
        rationale_code: str | None = None,
        confidence: str | None = None,
        idempotency_key: str | None = None,
        decision_ts: datetime | None = None,
        key_tag: str | None = None,
    ) -> IntentReply:
        """MODIFY_RISK: new stop / hard stop / time stop of the allocation in ``symbol``.

        The OMS reads the time stop from ``constraints.expiry_ts`` (oms/core/intents.py _modify_risk).
        """
        risk = RiskPayload(
            stop_px=stop_px, hard_stop_px=hard_stop_px, rationale_code=rationale_code, confidence=confidence
        )
        return await self.submit_intent(
            IntentType.MODIFY_RISK,
            symbol,
            constraints=Constraints(expiry_ts=time_stop_ts),
            risk=risk,
            idempotency_key=idempotency_key,
            decision_ts=decision_ts,
            key_tag=key_tag,
        )

    # ---- state --------------------------------------------------------------------------------
    async def positions(self) -> dict[str, Position]:
        data = await self.request("GET", "/api/v1/positions")
        return {sym: Position.model_validate(p) for sym, p in data.items()}

    async def position(self, symbol: str) -> Position | None:
        """The account's position in ``symbol``, or None when there is none (404)."""
        try:
            data = await self.request("GET", f"/api/v1/positions/{_seg(symbol)}")
        except OmsNotFound:
            return None
        return Position.model_validate(data)

    async def allocations(self) -> dict[str, Allocation]:
        """This strategy's allocations by symbol."""
        data = await self.request("GET", f"/api/v1/allocations/{_seg(self.strategy_id)}")
        return {sym: Allocation.model_validate(a) for sym, a in data.items()}

    async def account(self) -> Account:
        return Account.model_validate(await self.request("GET", "/api/v1/state/account"))

    async def orders(self, open_only: bool = False, symbol: str | None = None) -> list[Order]:
        """This strategy's orders (the OMS scopes a strategy key to its own orders)."""
        data = await self.request(
            "GET",
            "/api/v1/orders",
            params={"open_only": str(open_only).lower(), "symbol": symbol, "strategy_id": self.strategy_id},
        )
        return [Order.model_validate(o) for o in data]

    async def order(self, order_id: str) -> Order:
        return Order.model_validate(await self.request("GET", f"/api/v1/orders/{_seg(order_id)}"))

    async def fills(self, since: datetime | None = None, symbol: str | None = None) -> list[Fill]:
        data = await self.request(
            "GET",
            "/api/v1/fills",
            params={"since": since.isoformat() if since else None, "symbol": symbol, "strategy_id": self.strategy_id},
        )
        return [Fill.model_validate(f) for f in data]

    async def heartbeat(self, status: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST",
            f"/api/v1/strategies/{_seg(self.strategy_id)}/heartbeat",
            json={"status": json.loads(json.dumps(status, default=str))},
        )
        return result

    async def clock(self) -> MarketClock:
        return MarketClock.model_validate(await self.request("GET", "/api/v1/clock"))

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/health")
        return result

    async def wait_ready(self, timeout: float = 60.0, poll: float = 0.5) -> dict[str, Any]:
        """Poll ``/health`` until the OMS says ok or degraded; OmsUnavailable after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Any = None
        while True:
            try:
                last = await self.health()
                if last.get("status") in ("ok", "degraded"):
                    return dict(last)
            except OmsUnavailable as exc:
                last = str(exc)
            if loop.time() >= deadline:
                raise OmsUnavailable(
                    f"OMS at {self.base_url} not ready after {timeout:g}s (last: {last})", method="GET", path="/health"
                )
            await self._sleep(poll)

    # ---- market data (REST proxy) -------------------------------------------------------------
    async def quote(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._marketdata(f"quote/{_seg(symbol)}")
        return result

    async def bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]:
        data = await self._marketdata(
            f"bars/{_seg(symbol)}", {"interval": interval, "start": start.isoformat(), "end": end.isoformat()}
        )
        return [Bar.from_rest(symbol, row, interval) for row in _rows(data)]

    async def daily(self, symbol: str, start: date, end: date) -> list[Bar]:
        data = await self._marketdata(f"daily/{_seg(symbol)}", {"start": start.isoformat(), "end": end.isoformat()})
        return [Bar.from_rest(symbol, row, "1d") for row in _rows(data)]

    async def investor_flow(self, symbol: str) -> Any:
        return await self._marketdata(f"investor-flow/{_seg(symbol)}")

    async def _marketdata(self, path: str, params: dict[str, Any] | None = None) -> Any:
        full = f"/api/v1/marketdata/{path}"
        try:
            return await self.request("GET", full, params=params)
        except OmsNotFound as exc:
            raise MarketDataUnavailable(
                f"market data GET {full}: 404 ({describe_detail(exc.detail)}) — the OMS has no such endpoint "
                "or no data for this symbol",
                method="GET",
                path=full,
                status=404,
                detail=exc.detail,
            ) from exc
        except OmsRejected as exc:
            if exc.status != 501:
                raise
            raise MarketDataUnavailable(
                f"market data GET {full}: not offered by this broker ({describe_detail(exc.detail)})",
                method="GET",
                path=full,
                status=501,
                detail=exc.detail,
            ) from exc


def _order_type(value: OrderType | str | None) -> OrderType | None:
    return None if value is None else OrderType(str(value).upper())


def _seg(value: str) -> str:
    return urlquote(value, safe="")


def _rows(data: Any) -> list[dict[str, Any]]:
    """Bars come as a list, or wrapped as ``{"bars": [...]}``."""
    if isinstance(data, dict):
        data = data.get("bars", [])
    return list(data)


def _detail(resp: httpx.Response) -> Any:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    return body.get("detail", body) if isinstance(body, dict) else body


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _decode(method: str, path: str, resp: httpx.Response) -> Any:
    status = resp.status_code
    if status < 400:
        try:
            return resp.json()
        except ValueError as exc:
            raise OmsError(f"OMS {method} {path}: answer is not JSON", method=method, path=path, status=status) from exc
    detail = _detail(resp)
    text = f"OMS {method} {path} → {status}: {describe_detail(detail)}"
    kind: type[OmsError]
    if status in (401, 403):
        kind = OmsAuthError
    elif status in (400, 422):
        kind = OmsBadRequest
    elif status == 404:
        kind = OmsNotFound
    else:
        kind = OmsRejected
    raise kind(text, method=method, path=path, status=status, detail=detail)
