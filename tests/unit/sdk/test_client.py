"""OmsClient over a mocked HTTP wire (httpx.MockTransport): retries, idempotency keys, error types.

Backoff sleeps are recorded by an injected ``sleep`` instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from broker_core.clock import KST
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import (
    IntentsClosed,
    MarketDataUnavailable,
    OmsAuthError,
    OmsBadRequest,
    OmsNotFound,
    OmsRejected,
    OmsUnavailable,
)
from strategies.sdk.models import IntentStatus, RiskPayload

Handler = Callable[[httpx.Request], httpx.Response]
REPLY = {
    "intent_id": "in-1",
    "status": "ACCEPTED",
    "message": "BUY 10 005930 LIMIT @ 70000",
    "modified_qty": None,
    "order_id": "o-1",
    "cooldown_until": None,
    "reason_code": None,
}


class Wire:
    """Records every request and answers through a scripted handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def client(
    wire: Wire | Callable[..., Any], *, retries: int = 3, delays: list[float] | None = None, **kw: Any
) -> OmsClient:
    async def fake_sleep(seconds: float) -> None:
        if delays is not None:
            delays.append(seconds)

    return OmsClient(
        "http://oms.test", "k1", "kmp", retries=retries, transport=httpx.MockTransport(wire), sleep=fake_sleep, **kw
    )


def flaky(failures: list[Callable[[httpx.Request], httpx.Response]]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if failures:
            return failures.pop(0)(request)
        return httpx.Response(200, json=REPLY)

    return handle


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def status(
    code: int, detail: Any = "x", headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json={"detail": detail}, headers=headers)


async def test_retries_reuse_one_idempotency_key() -> None:
    delays: list[float] = []
    wire = Wire(flaky([connect_error, status(503)]))
    async with client(wire, delays=delays) as oms:
        reply = await oms.enter("005930", 10, limit_price=70000, risk=RiskPayload(rationale_code="KMP_BREAK"))
    assert reply.status is IntentStatus.ACCEPTED and reply.order_id == "o-1"
    keys = {b["idempotency_key"] for b in wire.bodies()}
    assert len(wire.requests) == 3 and len(keys) == 1 and reply.idempotency_key in keys
    assert len(delays) == 2 and all(0 < d <= 5.0 for d in delays)


async def test_timeout_after_send_is_retried_with_the_same_key() -> None:
    wire = Wire(flaky([read_timeout]))
    async with client(wire) as oms:
        reply = await oms.exit("005930")
    assert reply.ok
    first, second = wire.bodies()
    assert first == second


async def test_retries_exhausted_raise_oms_unavailable() -> None:
    delays: list[float] = []
    wire = Wire(lambda r: httpx.Response(502, text="bad gateway"))
    async with client(wire, retries=2, delays=delays, backoff_base=1.0, backoff_max=3.0) as oms:
        with pytest.raises(OmsUnavailable, match="3 attempt"):
            await oms.enter("005930", 1)
    assert len(wire.requests) == 3
    assert len({b["idempotency_key"] for b in wire.bodies()}) == 1
    assert len(delays) == 2 and 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0


async def test_429_honours_retry_after_up_to_the_cap() -> None:
    delays: list[float] = []
    wire = Wire(flaky([status(429, "slow down", {"Retry-After": "2"})]))
    async with client(wire, delays=delays, backoff_base=0.1, backoff_max=5.0) as oms:
        await oms.enter("005930", 1)
    assert delays == [2.0]


@pytest.mark.parametrize("code", [401, 403])
async def test_auth_errors_are_typed_and_not_retried(code: int) -> None:
    wire = Wire(status(code, "invalid API key"))
    async with client(wire) as oms:
        with pytest.raises(OmsAuthError, match="invalid API key") as info:
            await oms.account()
    assert info.value.status == code and len(wire.requests) == 1


async def test_schema_error_is_a_bad_request_with_the_field() -> None:
    detail = [
        {"field": "desired_qty", "msg": "Value error, desired_qty (> 0) is required for ENTER", "type": "value_error"}
    ]
    wire = Wire(status(422, detail))
    async with client(wire) as oms:
        with pytest.raises(OmsBadRequest, match="desired_qty: Value error") as info:
            await oms.enter("005930", 0)
    assert info.value.detail == detail and len(wire.requests) == 1


async def test_other_4xx_is_rejected_with_the_detail() -> None:
    wire = Wire(status(409, "allocation mismatch"))
    async with client(wire) as oms:
        with pytest.raises(OmsRejected, match="409: allocation mismatch"):
            await oms.heartbeat({"state": "running"})


async def test_missing_position_is_none_and_missing_marketdata_is_typed() -> None:
    wire = Wire(status(404, "Not Found"))
    async with client(wire) as oms:
        assert await oms.position("005930") is None
        with pytest.raises(MarketDataUnavailable, match="/api/v1/marketdata/quote/005930") as info:
            await oms.quote("005930")
        assert isinstance(info.value, OmsNotFound)
        with pytest.raises(MarketDataUnavailable):
            await oms.bars("005930", datetime(2026, 2, 27, 9, tzinfo=KST), datetime(2026, 2, 27, 9, 15, tzinfo=KST))


async def test_decision_key_is_deterministic_per_bucket() -> None:
    wire = Wire(lambda r: httpx.Response(200, json=REPLY))
    at = datetime(2026, 2, 27, 9, 16, 5, tzinfo=KST)
    async with client(wire) as oms:
        a = await oms.enter("005930", 10, decision_ts=at)
        b = await oms.enter("005930", 10, decision_ts=at.replace(second=59))
        c = await oms.enter("005930", 10, decision_ts=at.replace(minute=17))
        d = await oms.reduce("005930", 5, decision_ts=at, risk=RiskPayload(rationale_code="TARGET1"))
        e = await oms.enter("005930", 10)
        f = await oms.enter("005930", 10)
    assert a.idempotency_key == b.idempotency_key == "KMP:005930:ENTER:20260227T091600"
    assert c.idempotency_key == "KMP:005930:ENTER:20260227T091700"
    assert d.idempotency_key == "KMP:005930:REDUCE:20260227T091600:TARGET1"
    assert e.idempotency_key != f.idempotency_key
    assert wire.bodies()[0]["idempotency_key"] == a.idempotency_key


async def test_intent_body_shape() -> None:
    wire = Wire(lambda r: httpx.Response(200, json=REPLY))
    async with client(wire) as oms:
        await oms.enter(
            "005930",
            10,
            stop_price=70100,
            limit_price=70400,
            cancel_after_sec=30,
            risk=RiskPayload(entry_px=70100, stop_px=69000, rationale_code="KMP_ENTRY", confidence="GREEN"),
            signal_hash="abc",
            idempotency_key="my-key",
            urgency="high",
        )
        await oms.modify_risk("005930", stop_px=69500, time_stop_ts=datetime(2026, 2, 27, 14, 30, tzinfo=KST))
    enter, modify = wire.bodies()
    assert enter == {
        "intent_type": "ENTER",
        "strategy_id": "KMP",
        "symbol": "005930",
        "desired_qty": 10,
        "urgency": "HIGH",
        "time_horizon": "INTRADAY",
        "idempotency_key": "my-key",
        "signal_hash": "abc",
        "constraints": {"limit_price": 70400.0, "stop_price": 70100.0, "cancel_after_sec": 30.0},
        "risk_payload": {"entry_px": 70100.0, "stop_px": 69000.0, "rationale_code": "KMP_ENTRY", "confidence": "GREEN"},
    }
    assert modify["intent_type"] == "MODIFY_RISK"
    assert modify["constraints"] == {"expiry_ts": "2026-02-27T14:30:00+09:00"}
    assert modify["risk_payload"] == {"stop_px": 69500.0}
    assert wire.requests[0].headers["authorization"] == "Bearer k1"


async def test_a_cancelled_caller_does_not_cut_the_intent_and_drain_waits() -> None:
    gate = asyncio.Event()
    seen = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        seen.set()
        await gate.wait()
        return httpx.Response(200, json=REPLY)

    oms = OmsClient("http://oms.test", "k1", "KMP", transport=httpx.MockTransport(slow))
    caller = asyncio.create_task(oms.enter("005930", 1))
    await seen.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert oms.intents_in_flight == 1
    drain = asyncio.create_task(oms.drain_intents(timeout=None))
    await asyncio.sleep(0)
    assert not drain.done()
    gate.set()
    assert await drain == 0
    assert oms.intents_in_flight == 0
    with pytest.raises(IntentsClosed):
        await oms.enter("005930", 1)
    await oms.aclose()


async def test_reads_are_typed() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/allocations/KMP":
            return httpx.Response(
                200,
                json={
                    "005930": {
                        "qty": 10,
                        "cost_basis": 700000.0,
                        "entry_ts": None,
                        "soft_stop_px": 69000,
                        "hard_stop_px": None,
                        "time_stop_ts": None,
                        "entry_px": 70000,
                        "initial_stop_px": 69000,
                    }
                },
            )
        if path == "/api/v1/orders":
            assert request.url.params["open_only"] == "true"
            return httpx.Response(
                200,
                json=[
                    {
                        "order_id": "o-1",
                        "intent_id": "in-1",
                        "strategy_id": "KMP",
                        "symbol": "005930",
                        "side": "BUY",
                        "qty": 10,
                        "state": "SUBMITTED",
                        "order_type": "LIMIT",
                        "created_at": "2026-02-27T09:16:00+09:00",
                        "updated_at": "2026-02-27T09:16:00+09:00",
                        "leaves_qty": 10,
                    }
                ],
            )
        return httpx.Response(404, json={"detail": "Not Found"})

    async with client(Wire(handle)) as oms:
        allocations = await oms.allocations()
        orders = await oms.orders(open_only=True)
    assert allocations["005930"].qty == 10 and allocations["005930"].soft_stop_px == 69000
    assert orders[0].is_open and orders[0].leaves_qty == 10  # type: ignore[attr-defined]


def test_ws_url_follows_the_base_url() -> None:
    assert OmsClient("http://127.0.0.1:8000/", "k", "kmp").ws_url == "ws://127.0.0.1:8000/api/v1/stream"
    assert OmsClient("https://oms.example", "k", "kmp").ws_url == "wss://oms.example/api/v1/stream"
