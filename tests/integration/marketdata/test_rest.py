"""REST market-data proxy over HTTP against a running OMS (paper exchange replaying 2026-02-27)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from broker_core.models import Quote
from broker_core.paper.broker import PaperBroker
from oms.runtime import OmsRuntime
from tests.integration.marketdata.test_fanout import config
from tests.support.oms_server import READ_KEY, STRATEGY_KEYS, auth, oms_settings, running_oms, sim_clock
from tests.support.wait import until
from trader.venues import build_venue


class CountingBroker(PaperBroker):
    """Counts upstream quote calls; the test holds them at a gate to pile up identical requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quote_calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def get_quote(self, symbol: str) -> Quote:
        self.quote_calls.append(symbol)
        await self.gate.wait()
        return await super().get_quote(symbol)


def _runtime(tmp_path: Path, **marketdata: Any) -> tuple[OmsRuntime, CountingBroker]:
    settings = oms_settings(tmp_path)
    runtime = OmsRuntime(settings, config(**marketdata), venue=build_venue, clock=sim_clock(9, 30, speed=30))
    old = runtime.broker
    assert isinstance(old, PaperBroker)
    broker = CountingBroker(
        old.exchange, subscription_capacity=old.subscription_capacity, daily_source=old._daily_source
    )
    runtime.broker = broker
    return runtime, broker


async def test_twenty_concurrent_identical_quote_requests_make_one_upstream_call(tmp_path: Path) -> None:
    runtime, broker = _runtime(tmp_path)
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        broker.gate.clear()
        keys = list(STRATEGY_KEYS.values()) + [READ_KEY]
        requests = [
            asyncio.create_task(oms.http.get("/api/v1/marketdata/quote/005930", headers=auth(keys[i % len(keys)])))
            for i in range(20)
        ]
        proxy = oms.runtime.md_proxy
        assert proxy is not None
        await until(lambda: proxy.waiting("quote", "005930") == 20, timeout=30, what="20 requests on one call")
        broker.gate.set()
        answers = await asyncio.gather(*requests)
        assert [r.status_code for r in answers] == [200] * 20
        bodies = [r.json() for r in answers]
        assert broker.quote_calls == ["005930"]
        assert all(b == bodies[0] for b in bodies)
        q = bodies[0]
        assert q["symbol"] == "005930" and q["last"] > 0 and q["bid"] < q["ask"] and "ts" in q
        metrics = (await oms.http.get("/metrics")).text
        assert 'oms_marketdata_rest_requests_total{kind="quote",result="shared"} 19.0' in metrics
        assert 'oms_marketdata_rest_requests_total{kind="quote",result="upstream"} 1.0' in metrics


async def test_endpoints_shapes_validation_and_errors(tmp_path: Path) -> None:
    runtime, broker = _runtime(tmp_path)
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        key = STRATEGY_KEYS["KPR"]
        get = oms.http.get
        bars = await oms.get(
            "/api/v1/marketdata/bars/005930",
            key,
            interval="1m",
            start="2026-02-27T09:00:00+09:00",
            end="2026-02-27T09:20:00+09:00",
        )
        assert bars["symbol"] == "005930" and bars["interval"] == "1m" and len(bars["bars"]) >= 15
        first = bars["bars"][0]
        assert set(first) >= {"ts", "open", "high", "low", "close", "volume"}
        assert datetime.fromisoformat(first["ts"]) == datetime.fromisoformat("2026-02-27T09:00:00+09:00")
        five = await oms.get(
            "/api/v1/marketdata/bars/005930", key, interval="5m", start="2026-02-27T09:00:00", end="2026-02-27T09:20:00"
        )  # naive = KST
        assert [b["ts"][11:16] for b in five["bars"]] == ["09:00", "09:05", "09:10", "09:15", "09:20"]
        daily = await oms.get("/api/v1/marketdata/daily/005930", READ_KEY, start="2026-02-01", end="2026-02-27")
        assert daily["interval"] == "1d" and daily["bars"][-1]["ts"].startswith("2026-02-26")  # today after the close
        flow = await oms.get("/api/v1/marketdata/investor-flow/005930", key)
        assert (
            flow["symbol"] == "005930" and flow["rows"] and set(flow["rows"][-1]) == {"date", "foreign_net", "inst_net"}
        )
        assert flow["rows"][-1]["date"] <= "2026-02-26"
        slots = await oms.get("/api/v1/marketdata/slots", key)
        assert slots["capacity"] == 40 and slots["used"] == 0 and slots["broker"] == "paper"
        assert slots["leases"]["KMP"]["window"] == {"start": "09:15", "end": "10:00"}

        async def status(path: str, **params: Any) -> tuple[int, Any]:
            r = await get(path, headers=auth(key), params=params)
            return r.status_code, r.json()

        code, body = await status("/api/v1/marketdata/quote/999999")
        assert code == 404 and "999999" in body["detail"]
        code, body = await status("/api/v1/marketdata/daily/999999")
        assert code == 404
        code, body = await status("/api/v1/marketdata/bars/005930", interval="7x")
        assert code == 422 and body["detail"][0]["field"] == "query.interval"
        code, body = await status("/api/v1/marketdata/bars/005930", start="yesterday")
        assert code == 422 and body["detail"][0]["field"] == "query.start"
        code, body = await status(
            "/api/v1/marketdata/bars/005930", start="2026-02-27T10:00:00", end="2026-02-27T09:00:00"
        )
        assert code == 200 and body["bars"] == [], body  # a window that ends before it starts is empty
        code, body = await status("/api/v1/marketdata/bars/005930", start="1.5")
        assert code == 422 and body["detail"][0]["field"] == "query.start"
        code, body = await status("/api/v1/marketdata/bars/005930", interval="1441m")
        assert code == 422 and body["detail"][0]["field"] == "query.interval"
        code, body = await status(
            "/api/v1/marketdata/bars/005930", start="2026-01-01T09:00:00+09:00", end="2026-02-27T09:20:00+09:00"
        )
        assert code == 200 and body["start"] == "2026-01-27T09:20:00+09:00", body  # cut to the latest 31 days
        assert len(body["bars"]) >= 15
        code, body = await status("/api/v1/marketdata/daily/005930", end="2026-13-01")
        assert code == 422 and body["detail"][0]["field"] == "query.end"
        code, body = await status("/api/v1/marketdata/quote/00 59")
        assert code == 422 and body["detail"][0]["field"] == "path.symbol"
        assert (await get("/api/v1/marketdata/quote/005930")).status_code == 401
        assert (await get("/api/v1/marketdata/slots", headers=auth("nope"))).status_code == 401


async def test_investor_flow_without_a_source_is_501(tmp_path: Path) -> None:
    runtime, _ = _runtime(tmp_path)
    runtime.krx_data = None  # an adapter without investor flow and no KRX data directory
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        r = await oms.http.get("/api/v1/marketdata/investor-flow/005930", headers=auth(READ_KEY))
        assert r.status_code == 501 and "investor flow is not available" in r.json()["detail"]
