"""OmsClient against a real OMS over HTTP."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest

from broker_core.clock import KST
from strategies.sdk import IntentStatus, OmsAuthError, OmsClient, RiskPayload
from strategies.sdk.errors import MarketDataUnavailable
from tests.integration.sdk.conftest import KEYS, RunningOms, eventually


class LoseFirstIntentReply(httpx.AsyncBaseTransport):
    """The real HTTP transport, except that the first intent POST reaches the OMS and its answer is
    lost on the way back (a read timeout) — the case where a naive retry would place a second order."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.intent_bodies: list[dict[str, object]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/api/v1/intents":
            self.intent_bodies.append(json.loads(request.content))
            if len(self.intent_bodies) == 1:
                await response.aread()
                await response.aclose()
                raise httpx.ReadTimeout("answer lost on the way back (test)", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_enter_places_an_order(oms_server: RunningOms) -> None:
    async with OmsClient(oms_server.url, KEYS["KMP"], "KMP") as oms:
        reply = await oms.enter("005930", 1, risk=RiskPayload(rationale_code="SDK_TEST", confidence="GREEN"))
        assert reply.ok, reply
        assert reply.order_id

        async def listed() -> bool:
            return any(o.order_id == reply.order_id for o in await oms.orders())

        await eventually(listed, what="the order in GET /api/v1/orders")
        order = await oms.order(reply.order_id)
        assert (order.symbol, order.side, order.qty, order.strategy_id) == ("005930", "BUY", 1, "KMP")

        async def filled() -> list[object]:
            since = datetime(2026, 2, 27, 9, 0, tzinfo=KST)
            return [f for f in await oms.fills(since=since) if f.order_id == reply.order_id]

        [fill] = await eventually(filled, what="the fill in GET /api/v1/fills")
        assert (await oms.allocations())["005930"].qty == 1
        position = await oms.position("005930")
        assert position is not None and position.allocations["KMP"].qty == 1


async def test_retry_after_a_lost_answer_places_one_order(oms_server: RunningOms) -> None:
    transport = LoseFirstIntentReply()
    async with OmsClient(oms_server.url, KEYS["KMP"], "KMP", transport=transport, backoff_base=0.01) as oms:
        reply = await oms.enter("000660", 1, decision_ts=datetime(2026, 2, 27, 9, 1, 30, tzinfo=KST))
        assert reply.ok and reply.order_id
        assert len(transport.intent_bodies) == 2
        assert transport.intent_bodies[0] == transport.intent_bodies[1]
        again = await oms.enter("000660", 1, decision_ts=datetime(2026, 2, 27, 9, 1, 59, tzinfo=KST))
        assert (again.intent_id, again.order_id) == (reply.intent_id, reply.order_id)
        orders = await oms.orders(symbol="000660")
    assert [o.order_id for o in orders] == [reply.order_id]


async def test_reads_and_errors_against_the_real_api(oms_server: RunningOms) -> None:
    async with OmsClient(oms_server.url, KEYS["KPR"], "KPR") as oms:
        clock = await oms.clock()
        assert clock.now.date().isoformat() == "2026-02-27"
        account = await oms.account()
        assert account.equity > 0
        assert await oms.allocations() == {}
        assert await oms.position("066570") is None
        assert (await oms.heartbeat({"state": "running", "ts": clock.now}))["strategy_id"] == "KPR"
        flatten = await oms.flatten()
        assert flatten.status in (IntentStatus.EXECUTED, IntentStatus.ACCEPTED)
        quote = await oms.quote("005930")
        assert quote["symbol"] == "005930" and quote["last"] > 0
        with pytest.raises(MarketDataUnavailable, match="quote/999999"):
            await oms.quote("999999")
    async with OmsClient(oms_server.url, KEYS["KPR"], "KMP") as other:
        with pytest.raises(OmsAuthError, match="may not act as KMP"):
            await other.enter("005930", 1)
    async with OmsClient(oms_server.url, "wrong-key", "KMP") as bad:
        with pytest.raises(OmsAuthError, match="invalid API key"):
            await bad.allocations()
