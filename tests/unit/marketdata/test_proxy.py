"""REST proxy: in-flight de-duplication, clock-driven cache, and the rate budget by priority.

Time for the budget is the limiter's own fake monotonic clock; nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from broker_core.clock import KST, ManualClock
from broker_core.models import Bar, Quote
from broker_core.ratelimit import Priority, RateLimiter
from oms.marketdata.proxy import MarketDataProxy, NotSupported, UnknownSymbol
from tests.support.wait import until
from tests.unit.marketdata.test_slots import at


class GatedTime:
    """Fake monotonic time moved only by the test; the limiter's sleeps wake when it gets there."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for item in [x for x in self._sleepers if x[0] <= self.t + 1e-12]:
            self._sleepers.remove(item)
            if not item[1].done():
                item[1].set_result(None)


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class CountingBroker:
    name = "counting"

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None

    async def _enter(self, kind: str, symbol: str) -> None:
        self.calls.append((kind, symbol))
        if self.gate is not None:
            await self.gate.wait()

    async def get_quote(self, symbol: str) -> Quote:
        await self._enter("quote", symbol)
        return Quote(symbol=symbol, ts=self.clock.now(), last=70_000 + len(self.calls), bid=69_900, ask=70_000)

    async def get_bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]:
        await self._enter("bars", symbol)
        return [Bar(symbol, start, 1, 2, 0.5, 1.5, 10, interval)]

    async def get_daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        await self._enter("daily", symbol)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        return [Bar(symbol, datetime.combine(d, datetime.min.time(), KST), 1, 2, 0.5, 1.5, 10, "1d") for d in days]


def proxy(clock: ManualClock, broker: Any, limiter: RateLimiter | None = None, **kw: Any) -> MarketDataProxy:
    return MarketDataProxy(broker, clock, limiter or RateLimiter(1000, 1000), **kw)


async def test_twenty_concurrent_identical_quotes_make_one_upstream_call() -> None:
    clock = ManualClock(at(9, 30))
    broker = CountingBroker(clock)
    broker.gate = asyncio.Event()
    p = proxy(clock, broker)
    tasks = [asyncio.create_task(p.quote("005930")) for _ in range(20)]
    await until(lambda: p.waiting("quote", "005930") == 20, what="20 callers on one in-flight call")
    broker.gate.set()
    answers = await asyncio.gather(*tasks)
    assert broker.calls == [("quote", "005930")]
    assert all(a == answers[0] for a in answers) and answers[0]["symbol"] == "005930"
    assert [k for k, *_ in p.upstream_log] == ["quote"]


async def test_cache_lives_on_the_clock() -> None:
    clock = ManualClock(at(9, 30, 10))
    broker = CountingBroker(clock)
    p = proxy(clock, broker)
    first = await p.quote("005930")
    clock.advance(0.999)
    assert await p.quote("005930") == first and len(broker.calls) == 1
    clock.advance(0.001)
    assert (await p.quote("005930"))["last"] != first["last"] and len(broker.calls) == 2
    # minute bars: until the next minute boundary
    start, end = at(9, 0), at(9, 30)
    await p.bars("005930", start, end)
    clock.set(at(9, 30, 59, 999_999))
    await p.bars("005930", start, end)
    assert [c for c in broker.calls if c[0] == "bars"] == [("bars", "005930")]
    clock.set(at(9, 31))
    await p.bars("005930", start, end)
    assert len([c for c in broker.calls if c[0] == "bars"]) == 2
    # daily: for the day; today's row only after the close (no look-ahead in a simulation)
    rows = await p.daily("005930", date(2026, 2, 20), date(2026, 2, 27))
    assert rows[-1]["ts"].startswith("2026-02-26")
    clock.set(at(15, 29))
    await p.daily("005930", date(2026, 2, 20), date(2026, 2, 27))
    assert len([c for c in broker.calls if c[0] == "daily"]) == 1
    clock.set(at(15, 30))
    rows = await p.daily("005930", date(2026, 2, 20), date(2026, 2, 27))
    assert rows[-1]["ts"].startswith("2026-02-27") and len([c for c in broker.calls if c[0] == "daily"]) == 2


async def test_failures_are_not_cached_and_unknown_symbols_never_reach_the_broker() -> None:
    clock = ManualClock(at(9, 30))
    broker = CountingBroker(clock)
    p = proxy(clock, broker, known_intraday=lambda: {"005930"}, known_daily=lambda: {"005930", "000020"})
    with pytest.raises(UnknownSymbol):
        await p.quote("999999")
    with pytest.raises(NotSupported, match="counting broker adapter"):
        await p.investor_flow("005930", date(2026, 2, 1), date(2026, 2, 27))
    assert broker.calls == []
    calls = 0

    def flaky(symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("source down")
        return [{"date": date(2026, 2, 26), "foreign_net": 5, "inst_net": -3}]

    p2 = proxy(clock, broker, flow_source=flaky, known_daily=lambda: {"000020"})
    with pytest.raises(RuntimeError):
        await p2.investor_flow("000020", date(2026, 2, 1), date(2026, 2, 27))
    rows = await p2.investor_flow("000020", date(2026, 2, 1), date(2026, 2, 27))
    assert rows == [{"date": "2026-02-26", "foreign_net": 5, "inst_net": -3}] and calls == 2


async def test_a_burst_is_queued_by_priority_and_never_exceeds_the_rate() -> None:
    clock = ManualClock(at(9, 30))
    broker = CountingBroker(clock)
    gt = GatedTime()
    rate, burst = 5.0, 3.0
    limiter = RateLimiter(rate, burst, monotonic=gt.monotonic, sleep=gt.sleep)
    p = proxy(clock, broker, limiter)
    order_grants: list[float] = []

    async def order() -> None:
        await limiter.acquire(Priority.ORDER)
        order_grants.append(gt.monotonic())

    symbols = [f"{i:06d}" for i in range(30)]
    quotes = [asyncio.create_task(p.quote(s)) for s in symbols]  # 30 distinct quotes: 30 upstream calls
    await settle()
    assert len(p.upstream_log) == burst  # the burst passes, 27 wait in the queue
    orders = [asyncio.create_task(order()) for _ in range(4)]  # orders arrive behind the queued data
    await settle()
    steps = 0
    while not all(t.done() for t in quotes + orders):
        gt.advance(0.05)
        await settle()
        steps += 1
        assert steps < 10_000
    await asyncio.gather(*quotes, *orders)
    times = [t for _, _, t in p.upstream_log]
    assert len(times) == 30 and sorted(times) == times
    # token bucket: in any window of length T at most burst + rate·T grants (orders and data together)
    every = sorted(times + order_grants)
    for i in range(len(every)):
        for j in range(i, len(every)):
            assert j - i + 1 <= burst + rate * (every[j] - every[i]) + 1e-6, (every[i], every[j], j - i + 1)
    # the four orders overtook the 27 queued market-data calls: served by the next four tokens
    assert order_grants == pytest.approx([1000.2, 1000.4, 1000.6, 1000.8], abs=0.051)
    assert all(t <= 1000.0 or t > max(order_grants) for t in times)
    assert [c[1] for c in broker.calls] == symbols  # market data in arrival order
    paced = 1000.0 + (30 + 4 - burst) / rate  # and at the budget's pace (within one step of the fake time)
    assert paced - 1e-6 <= times[-1] <= paced + 0.05 + 1e-6


async def test_an_adapter_metering_the_shared_limiter_is_not_charged_twice() -> None:
    clock = ManualClock(at(9, 30))
    limiter = RateLimiter(1000, 1000)
    broker = CountingBroker(clock)
    p = proxy(clock, broker, limiter)
    await p.quote("005930")
    assert limiter.granted == 1
    metered = CountingBroker(clock)
    metered.limiter = limiter  # type: ignore[attr-defined]  # e.g. KisBroker(..., limiter=runtime.rate_limiter)
    p2 = proxy(clock, metered, limiter)
    assert p2.adapter_meters
    await p2.quote("005930")
    assert limiter.granted == 1 and metered.calls == [("quote", "005930")]
