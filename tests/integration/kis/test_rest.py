"""REST: the paper rate budget measured on the fake's clock, paging, real-only TRs, back-off."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from broker_core.clock import KST
from broker_core.errors import OrderRejected
from broker_core.kis.api import KisApi, Unavailable
from broker_core.kis.rest import KisRestClient
from broker_core.kis.settings import KisCredentials
from broker_core.models import Bar, OrderRequest, OrderType, Side
from broker_core.ratelimit import RateLimiter
from tests.integration.kis.conftest import (
    SESSION,
    SteppingClock,
    adapter,
    drive,
    fake_kis,
    kst,
    make_exchange,
    run,
    uapi_count,
)


async def test_30_quotes_on_paper_never_exceed_2_per_second_at_the_fake(tmp_path: Path) -> None:
    clock = SteppingClock(kst(9, 30))
    async with fake_kis(clock=clock) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        start = clock.now()
        sequential = [await run(clock, b.get_quote("005930"), fake=fake, broker=b) for _ in range(15)]
        concurrent = await run(clock, asyncio.gather(*(b.get_quote("000660") for _ in range(15))), fake=fake, broker=b)
        quotes = sequential + list(concurrent)
        assert len(quotes) == 30 and all(q.last > 0 for q in quotes)
        prices = [r for r in fake.request_log if r.tr_id == "FHKST01010100"]
        assert len(prices) == 30 and all(r.status == 200 for r in prices)
        assert not [r for r in fake.request_log if r.msg_cd == "EGW00201"]
        assert fake.state.max_per_window(1.0) <= 2
        # 30 requests at most 2 per second of the fake's clock take at least 14.5 s of it
        assert (prices[-1].at - prices[0].at).total_seconds() >= 14.5
        assert (clock.now() - start).total_seconds() < 20
        await b.close()


async def test_balance_of_45_holdings_reads_3_pages(tmp_path: Path) -> None:
    clock = SteppingClock(kst(10, 0))
    async with fake_kis(clock=clock) as fake:
        symbols = [f"{100000 + 10 * i:06d}" for i in range(45)]
        for i, sym in enumerate(symbols):
            fake.exchange.engine.set_position(sym, 10 + i, 5_000.0 + 10 * i)
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        positions = await run(clock, b.get_positions(), fake=fake, broker=b)
        assert sorted(p.symbol for p in positions) == symbols
        assert {p.symbol: (p.qty, p.avg_price) for p in positions}[symbols[44]] == (54, 5_440.0)
        pages = [r for r in fake.request_log if r.tr_id == "VTTC8434R"]
        assert [r.tr_cont for r in pages] == ["", "N", "N"]
        balance = await run(clock, b.api.balance(), fake=fake, broker=b)
        assert balance.pages == 3 and len(balance.holdings) == 45
        account = await run(clock, b.get_account(), fake=fake, broker=b)
        assert account.cash == fake.exchange.engine.account().cash
        await b.close()


async def test_minute_bars_of_a_full_session_across_pages(tmp_path: Path) -> None:
    clock = SteppingClock(kst(8, 50))
    exchange = make_exchange(clock, ["005930"])
    exchange.pace = False
    await exchange.run()  # the whole synthetic session is on the tape
    clock.set(kst(15, 40))
    async with fake_kis(clock=clock, exchange=exchange) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        bars = await run(clock, b.get_bars("005930", kst(9, 0), kst(15, 30)), fake=fake, broker=b)
        expected = exchange.tape.bars("005930", kst(9, 0), kst(15, 30), now=clock.now())
        assert len(bars) == len(expected) == 381
        assert [(x.ts, x.open, x.high, x.low, x.close, x.volume) for x in bars] == [
            (x.ts, x.open, x.high, x.low, x.close, x.volume) for x in expected
        ]
        pages = [r for r in fake.request_log if r.tr_id == "FHKST03010200"]
        assert len(pages) == 13  # 381 bars, 30 per call
        five = await run(clock, b.get_bars("005930", kst(9, 0), kst(9, 59), "5m"), fake=fake, broker=b)
        assert len(five) == 12 and five[0].volume == sum(x.volume for x in bars[:5])
        await b.close()


async def test_daily_orders_page_at_15_on_paper(tmp_path: Path) -> None:
    clock = SteppingClock(kst(10, 0))
    async with fake_kis(clock=clock) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        for i in range(32):
            reply = await run(clock, b.api.order_cash(Side.BUY, "005930", 1, price=9_000 - 10 * i), fake=fake, broker=b)
            assert reply.odno == f"{i + 1:010d}" and reply.branch == "06590"
        rows = await run(clock, b.api.daily_orders(SESSION), fake=fake, broker=b)
        assert [r.odno for r in rows] == [f"{i + 1:010d}" for i in range(32)]
        assert [r.tr_cont for r in fake.request_log if r.tr_id == "VTTC0081R"] == ["", "N", "N"]
        await b.close()


async def test_program_trading_is_a_typed_unavailable_on_paper_and_served_by_the_real_host(tmp_path: Path) -> None:
    clock = SteppingClock(kst(10, 0))
    exchange = make_exchange(clock, ["005930"])
    exchange.pace = False
    await exchange.run()
    clock.set(kst(15, 40))
    async with fake_kis(clock=clock) as paper, fake_kis("real", clock=clock, exchange=exchange) as real:
        b = adapter(paper, clock, tmp_path / "paper")
        await b.connect()
        result = await b.program_trading("005930")
        assert isinstance(result, Unavailable) and not result and result.tr_id == "FHPPG04650101"
        assert isinstance(await b.holidays(SESSION), Unavailable)
        assert not [r for r in paper.request_log if r.tr_id in ("FHPPG04650101", "CTCA0903R")]
        await b.close()
        # paper mode with real credentials: the real host answers the market-data TRs, orders stay on paper
        rp = real.profile
        b2 = adapter(
            paper,
            clock,
            tmp_path / "mixed",
            real_credentials=KisCredentials(rp.app_key, rp.app_secret),
            real_rest_url=real.rest_url,
        )
        await run(clock, b2.connect())  # a second paper token within the minute: waits for the next one
        rows = await run(clock, b2.program_trading("005930"))
        assert isinstance(rows, list) and rows and rows[0].time == "153000"
        days = await run(clock, b2.holidays(date(2026, 2, 27)))
        assert isinstance(days, list) and len(days) == 60
        assert days[0].opening_day and not days[1].opening_day  # Friday, then Saturday
        assert [r.tr_cont for r in real.request_log if r.tr_id == "CTCA0903R"] == ["", "N", "N"]
        assert not [r for r in real.request_log if "trading/" in r.path]
        await b2.close()


async def test_rate_limit_reply_backs_off_on_the_clock_and_succeeds(tmp_path: Path) -> None:
    clock = SteppingClock(kst(10, 0))
    async with fake_kis(clock=clock) as fake:
        settings = fake.client_settings()
        greedy = RateLimiter(1000.0, 1000.0, monotonic=lambda: clock.now().timestamp(), sleep=clock.sleep)
        rest = KisRestClient(settings.rest_url, settings.credentials, clock, limiter=greedy)
        api = KisApi(rest, cano=settings.account_no, prod=settings.account_prod_code, paper=True)
        quotes = await drive(clock, asyncio.ensure_future(asyncio.gather(*(api.price("005930") for _ in range(5)))))
        assert len(quotes) == 5
        codes = [r.msg_cd for r in fake.request_log if r.tr_id == "FHKST01010100"]
        assert codes.count("EGW00201") >= 3 and codes.count("MCA00000") == 5
        assert rest.rate_limited == codes.count("EGW00201")
        await rest.aclose()


async def test_legacy_tr_ids_are_accepted_and_minute_bar_paging_stops_at_the_open(tmp_path: Path) -> None:
    clock = SteppingClock(kst(9, 0))
    exchange = make_exchange(clock, ["005930"])
    exchange.pace = False
    await exchange.run()
    clock.set(kst(9, 45, 30))
    async with fake_kis(clock=clock, exchange=exchange) as fake:
        b = adapter(fake, clock, tmp_path, legacy_tr_ids=True)
        await b.connect()
        rows = await run(clock, b.api.daily_orders(SESSION), fake=fake, broker=b)
        assert rows == [] and [r.tr_id for r in fake.request_log if "ccld" in r.path] == ["VTTC8001R"]
        bars = await run(clock, b.api.minute_bars("005930", SESSION, time(9, 0), time(15, 30)), fake=fake, broker=b)
        assert len(bars) == 46 and bars[0].ts == kst(9, 0) and bars[-1].ts == kst(9, 45)  # no look-ahead
        assert uapi_count(fake) == 1 + 2
        await b.close()


async def test_book_with_expected_open_daily_bars_investor_flow_and_order_checks(tmp_path: Path) -> None:
    history = {d: 9_000.0 + 10 * i for i, d in enumerate(SESSION - timedelta(days=k) for k in range(250, 0, -1))}

    def daily(symbol: str, start: date, end: date) -> list[Bar]:
        return [
            Bar(symbol, datetime.combine(d, time(0, 0), KST), c, c + 50, c - 50, c, 1000 + i, "1d")
            for i, (d, c) in enumerate(history.items())
            if start <= d <= end
        ]

    def flow(symbol: str, start: date, end: date) -> list[dict[str, object]]:
        return [{"date": d, "foreign_net": 100, "inst_net": -40} for d in history if start <= d <= end]

    clock = SteppingClock(kst(8, 45))  # opening auction: the book carries the expected match price
    async with fake_kis(clock=clock, daily_source=daily, flow_source=flow) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        book = await run(clock, b.get_order_book("005930"), fake=fake, broker=b)
        assert book.expected_price == 10_000 and book.base == 10_000
        assert book.asks[0] > book.bids[0] and len(book.asks) == 10 and book.ask_sizes[0] > 0
        bars = await run(clock, b.get_daily_bars("005930", SESSION - timedelta(days=249), SESSION), fake=fake, broker=b)
        assert len(bars) == 249 and bars[0].ts.date() == SESSION - timedelta(days=249)
        assert [r.tr_id for r in fake.request_log].count("FHKST03010100") == 3  # 100 rows per call
        rows = await run(
            clock, b.get_investor_flow("005930", SESSION - timedelta(days=10), SESSION), fake=fake, broker=b
        )
        assert rows and all(
            r["foreign_net"] == 100 and r["inst_net"] == -40 and r["individual_net"] == -60 for r in rows
        )
        with pytest.raises(OrderRejected) as outside:  # base 10,000: the upper limit is 13,000
            await run(
                clock,
                b.submit_order(OrderRequest("x-1", "005930", Side.BUY, 1, OrderType.LIMIT, 13_100.0)),
                fake=fake,
                broker=b,
            )
        assert outside.value.code == "APBK9002"
        market = await run(
            clock, b.submit_order(OrderRequest("m-1", "005930", Side.BUY, 2, OrderType.MARKET)), fake=fake, broker=b
        )
        assert market.limit_price is None and fake.state.orders[market.broker_order_id].ord_dvsn == "01"
        with pytest.raises(OrderRejected) as short:
            await run(
                clock,
                b.submit_order(OrderRequest("s-1", "000660", Side.SELL, 1, OrderType.LIMIT, 10_000.0)),
                fake=fake,
                broker=b,
            )
        assert short.value.code == "APBK9004"
        await run(clock, b.rest.tokens.revoke())
        assert fake.state.tokens_by_value == {}
        await b.close()
