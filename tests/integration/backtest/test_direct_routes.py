"""The backtest's in-process answers (:mod:`trader.backtest.direct`) equal the app's over HTTP, on one running
OMS: quotes, minute and daily bars, the account, heartbeats; a call it does not answer as the route would (a bad
parameter, an unknown key, an intent) goes over the transport and gets the app's own error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from broker_core.clock import KST
from oms.app import create_app
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import MarketDataUnavailable, OmsAuthError, OmsBadRequest
from tests.support.oms_server import SESSION, STRATEGY_KEYS, Oms, oms_settings, running_oms
from trader.backtest.direct import DirectRoutes

SYMBOL = "005930"


@pytest.fixture
async def oms(tmp_path: Path) -> AsyncIterator[Oms]:
    async with running_oms(oms_settings(tmp_path)) as running:
        yield running


@pytest.fixture
async def clients(oms: Oms) -> AsyncIterator[tuple[OmsClient, OmsClient, DirectRoutes]]:
    direct = DirectRoutes(create_app(runtime=oms.runtime), oms.runtime)
    key = STRATEGY_KEYS["KMP"]
    async with (
        OmsClient(oms.url, key, "KMP", retries=0) as http,
        OmsClient(oms.url, key, "KMP", retries=0, local=direct.for_key(key)) as local,
    ):
        yield http, local, direct


async def test_reads_answered_in_process_equal_the_http_answers(
    clients: tuple[OmsClient, OmsClient, DirectRoutes],
) -> None:
    http, local, direct = clients
    open_ = datetime.fromisoformat(f"{SESSION}T09:00:00+09:00")
    start, end = open_, open_ + timedelta(minutes=20)
    assert await local.bars(SYMBOL, start, end) == await http.bars(SYMBOL, start, end)
    assert await local.bars(SYMBOL, start, end, "5m") == await http.bars(SYMBOL, start, end, "5m")
    first, last = date.fromisoformat(SESSION) - timedelta(days=30), date.fromisoformat(SESSION) - timedelta(days=1)
    daily = await local.daily(SYMBOL, first, last)
    assert daily and daily == await http.daily(SYMBOL, first, last)
    assert await local.account() == await http.account()
    quote_local, quote_http = await local.quote(SYMBOL), await http.quote(SYMBOL)
    assert quote_local.keys() == quote_http.keys() and quote_local["symbol"] == SYMBOL
    beat_local, beat_http = await local.heartbeat({"n": 1}), await http.heartbeat({"n": 2})
    assert beat_local.keys() == beat_http.keys() and beat_local["strategy_id"] == "KMP"
    assert datetime.fromisoformat(beat_local["ts"]).astimezone(KST).date() == date.fromisoformat(SESSION)
    assert direct.calls == 6


async def test_errors_are_the_apps_own(clients: tuple[OmsClient, OmsClient, DirectRoutes], oms: Oms) -> None:
    _, local, direct = clients
    with pytest.raises(MarketDataUnavailable) as unknown:
        await local.quote("999999")
    assert unknown.value.status == 404  # answered in process: the route's HTTPException, as HTTP gives it
    with pytest.raises(OmsBadRequest) as bad:
        await local.request("GET", f"/api/v1/marketdata/bars/{SYMBOL}", params={"interval": "7x"})
    assert "query.interval" in str(bad.value.detail)  # left to HTTP: the app's 422 naming the parameter
    with pytest.raises(OmsBadRequest):
        await local.request("GET", f"/api/v1/marketdata/daily/{SYMBOL}", params={"start": "2026"})
    answered = direct.calls
    async with OmsClient(oms.url, "not-a-key-00000001", "KMP", retries=0, local=direct.for_key("nope")) as stranger:
        with pytest.raises(OmsAuthError):
            await stranger.account()
    with pytest.raises(OmsAuthError):
        await local.request("POST", "/api/v1/strategies/KPR/heartbeat", json={"status": {}})
    assert direct.calls == answered + 1  # the unknown key went to HTTP; the other strategy's id: the route's 403
