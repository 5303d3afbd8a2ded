"""Adjusted closes from Alpaca: the fake honours ``adjustment`` (raw, all; split/dividend refused) and the
adapter's daily bars are raw with the split-and-dividend adjusted close in ``extra["adj_close"]``, as the US
paper broker's are, so a strategy reading ``adj_close`` from the OMS gets it on Alpaca too.

AAPL across its ex-dividend day 2024-11-08: before it the data's adj_close is below the close (factor
≈ 0.9989), from it on they are equal; the replayed session day (2024-11-26, from the tape) has factor 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from broker_core.alpaca.adapter import AlpacaBroker
from broker_core.alpaca.fake import FakeAlpaca
from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.markets import us
from broker_core.paper.us_data import UsData
from oms.settings import OmsConfig, load_config
from tests.integration.alpaca.conftest import SESSION, SYMBOLS
from tests.support.oms_server import oms_settings, running_oms

SYMBOL = "AAPL"
FIRST, LAST = date(2024, 11, 1), date(2024, 11, 25)
EX_DIVIDEND = date(2024, 11, 8)


def _data_client(fake: FakeAlpaca) -> StockHistoricalDataClient:
    env = fake.client_env()
    return StockHistoricalDataClient(
        env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"], url_override=env["ALPACA_DATA_URL"]
    )


async def _bars(client: StockHistoricalDataClient, request: StockBarsRequest) -> list[Any]:
    barset: Any = await asyncio.to_thread(client.get_stock_bars, request)
    return list(barset.data.get(SYMBOL, []))


def _day(ts: datetime) -> date:
    return ts.astimezone(NEW_YORK).date()


async def test_daily_bars_are_raw_with_the_adjusted_close_in_extra(
    fake: FakeAlpaca, broker: AlpacaBroker, us_data: UsData
) -> None:
    recorded = {_day(b.ts): b for b in us_data.daily_bars(SYMBOL, FIRST, LAST)}
    assert any(b.extra["adj_close"] < b.close - 0.1 for b in recorded.values()), "the range must hold a dividend"
    before = len(fake.request_log)
    daily = await broker.get_daily_bars(SYMBOL, FIRST, SESSION)
    bar_requests = [r for r in fake.request_log[before:] if r.path == "/v2/stocks/bars"]
    assert len(bar_requests) == 2  # raw + adjustment=all
    assert [_day(b.ts) for b in daily] == [*recorded, SESSION]
    for bar in daily[:-1]:
        row = recorded[_day(bar.ts)]
        assert (bar.open, bar.high, bar.low, bar.close) == tuple(
            us.round_to_tick(p) for p in (row.open, row.high, row.low, row.close)
        ), "OHLC stay raw"
        assert bar.volume == row.volume and bar.interval == "1d"
        assert bar.extra == {"adj_close": row.extra["adj_close"]}
    by_day = {_day(b.ts): b for b in daily}
    assert by_day[date(2024, 11, 7)].extra["adj_close"] < by_day[date(2024, 11, 7)].close
    assert by_day[EX_DIVIDEND].extra["adj_close"] == pytest.approx(by_day[EX_DIVIDEND].close, abs=0.005)
    today = daily[-1]  # the session day so far, from the tape: no adjustment
    assert today.extra == {"adj_close": today.close}
    intraday = await broker.get_bars(SYMBOL, datetime(2024, 11, 26, 9, 30, tzinfo=NEW_YORK), fake.clock.now())
    assert intraday and all(b.extra == {} for b in intraday)  # intraday stays raw


async def test_the_fake_scales_ohlc_for_adjustment_all_and_refuses_split_and_dividend(
    fake: FakeAlpaca, us_data: UsData
) -> None:
    client = _data_client(fake)
    day = date(2024, 11, 7)
    row = us_data.row(SYMBOL, day)
    assert row is not None
    factor = row.adj_close / row.close
    request = StockBarsRequest(
        symbol_or_symbols=SYMBOL,
        timeframe=TimeFrame.Day,
        start=datetime(2024, 11, 7, tzinfo=NEW_YORK),
        end=datetime(2024, 11, 7, 23, tzinfo=NEW_YORK),
        adjustment=Adjustment.ALL,
    )
    [adjusted] = await _bars(client, request)
    assert adjusted.close == row.adj_close and adjusted.volume == row.volume
    assert (adjusted.open, adjusted.high, adjusted.low) == pytest.approx(
        (row.open * factor, row.high * factor, row.low * factor)
    )
    hourly = request.model_copy(
        update={
            "timeframe": TimeFrame.Hour,
            "start": datetime(2024, 11, 7, 9, 30, tzinfo=NEW_YORK),
            "end": datetime(2024, 11, 7, 16, tzinfo=NEW_YORK),
        }
    )
    raw_hours = await _bars(client, hourly.model_copy(update={"adjustment": None}))
    adj_hours = await _bars(client, hourly)
    assert raw_hours and [b.close * factor for b in raw_hours] == pytest.approx([b.close for b in adj_hours])

    for refused in (Adjustment.SPLIT, Adjustment.DIVIDEND):
        with pytest.raises(APIError) as err:
            await asyncio.to_thread(client.get_stock_bars, request.model_copy(update={"adjustment": refused}))
        assert err.value.status_code == 422 and err.value.code == 42210000
        assert "adjustment" in str(err.value) and "only raw and all" in str(err.value)
    env = fake.client_env()
    headers = {"APCA-API-KEY-ID": env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": env["ALPACA_SECRET_KEY"]}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
        params: dict[str, Any] = {"symbols": SYMBOL, "timeframe": "1Day", "start": "2024-11-07"}
        unknown = await http.get("/v2/stocks/bars", params={**params, "adjustment": "splits"})
        assert unknown.status_code == 422 and "adjustment" in unknown.json()["message"]
        raw = await http.get("/v2/stocks/bars", params={**params, "adjustment": "raw"})
        assert raw.status_code == 200 and raw.json()["bars"][SYMBOL][0]["c"] == us.round_to_tick(row.close)


def _us_config() -> OmsConfig:
    config = load_config("config/oms.us.yaml")
    return config.model_copy(update={"paper": config.paper.model_copy(update={"symbols": SYMBOLS})})


@pytest.fixture
async def alpaca_oms(
    tmp_path: Path, fake: FakeAlpaca, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    env = fake.client_env(ALPACA_REQUEST_TIMEOUT_S="3", ALPACA_ORDER_LOOKUP_WINDOW_S="10", ALPACA_FILL_POLL_S="2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = oms_settings(tmp_path, oms_broker="alpaca", oms_paper_date=None)
    async with running_oms(settings, _us_config(), clock=clock) as oms:
        yield oms


async def test_the_oms_daily_rows_carry_adj_close_on_alpaca(alpaca_oms: Any, us_data: UsData) -> None:
    reply = await alpaca_oms.get(f"/api/v1/marketdata/daily/{SYMBOL}", start=str(FIRST), end=str(LAST))
    recorded = {_day(b.ts): b.extra["adj_close"] for b in us_data.daily_bars(SYMBOL, FIRST, LAST)}
    rows = reply["bars"]
    assert [date.fromisoformat(r["ts"][:10]) for r in rows] == list(recorded)
    assert [r["adj_close"] for r in rows] == list(recorded.values())
    assert rows[0]["adj_close"] < rows[0]["close"]
