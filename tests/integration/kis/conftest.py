"""The KIS adapter against the fake KIS server over real sockets.

``SteppingClock`` is shared by the fake (its token and rate limits, its request log) and the adapter
(its rate limiter and token waits sleep on it): ``drive`` jumps time to the next sleeper's deadline
once the requests already granted have reached the fake, so limits are judged exactly on the fake's
clock with no wall-clock waiting. Order tests use a VirtualClock instead, so the exchange replays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from broker_core.clock import KST, Clock
from broker_core.kis.broker import KisBroker
from broker_core.kis.fake import FakeKis
from broker_core.kis.fake.clock import SteppingClock
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.synthetic import SyntheticFeed

SESSION = date(2026, 2, 27)


def kst(h: int, m: int, s: int = 0) -> datetime:
    return datetime(SESSION.year, SESSION.month, SESSION.day, h, m, s, tzinfo=KST)


def make_exchange(clock: Clock, symbols: list[str], base: float = 10_000.0, **engine_kw: Any) -> PaperExchange:
    feed = SyntheticFeed(SESSION, symbols, seed=11, base_prices={s: base for s in symbols})
    engine = MatchingEngine(session_date=SESSION, **engine_kw)
    return PaperExchange(feed, clock, engine)


@asynccontextmanager
async def fake_kis(
    profile: str = "paper",
    *,
    clock: Clock,
    symbols: list[str] | None = None,
    exchange: PaperExchange | None = None,
    run_exchange: bool = False,
    **kw: Any,
) -> AsyncIterator[FakeKis]:
    exchange = exchange or make_exchange(clock, symbols or ["005930", "000660"])
    fake = FakeKis(profile, exchange=exchange, run_exchange=run_exchange, **kw)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def adapter(fake: FakeKis, clock: Clock, data_dir: Path | None, **settings_overrides: Any) -> KisBroker:
    settings = fake.client_settings(**settings_overrides)
    return KisBroker(settings, clock=clock, data_dir=data_dir)


def uapi_count(fake: FakeKis) -> int:
    return sum(1 for r in fake.request_log if r.path.startswith("/uapi/"))


async def drive(
    clock: SteppingClock,
    task: asyncio.Future[Any],
    *,
    settled: Callable[[], bool] = lambda: True,
    timeout: float = 60.0,
) -> Any:
    """Step ``clock`` to the next sleeper's deadline whenever ``settled()`` holds, until ``task`` ends."""
    deadline = time.monotonic() + timeout
    while not task.done():
        if time.monotonic() > deadline:
            task.cancel()
            raise AssertionError(f"task not done after {timeout}s of driving the clock (now {clock.now()})")
        if clock.waiting and settled():
            clock.step()
        await asyncio.sleep(0.002)
    return task.result()


async def run(
    clock: SteppingClock,
    coro: Any,
    *,
    fake: FakeKis | None = None,
    broker: KisBroker | None = None,
    timeout: float = 60.0,
) -> Any:
    """Await ``coro`` while driving the clock (stepping only once every granted request reached the fake)."""
    task = asyncio.ensure_future(coro)

    def settled() -> bool:
        return fake is None or broker is None or uapi_count(fake) >= broker.rest.sent

    return await drive(clock, task, settled=settled, timeout=timeout)


__all__ = [
    "run",
    "SESSION",
    "SteppingClock",
    "adapter",
    "drive",
    "fake_kis",
    "kst",
    "make_exchange",
    "replace",
    "uapi_count",
]
