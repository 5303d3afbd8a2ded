"""The real alpaca-py SDK and the Alpaca adapter against the fake Alpaca over real sockets (free ports).

Each test gets a fresh fake whose US paper exchange replays the derived session of 2024-11-26 (AAPL, SPY,
MSFT) on a virtual clock from 10:00 New York at 60× (a minute of the session per second), shared by the
fake and the adapter. The US data is read once per run (../shared/data/us or $TRADER_US_DATA_DIR).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import pytest

from broker_core.alpaca.adapter import AlpacaBroker
from broker_core.alpaca.fake import FakeAlpaca
from broker_core.alpaca.settings import AlpacaSettings
from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.models import OrderUpdate
from broker_core.paper.us_data import UsData, UsDataNotFound
from broker_core.paper.us_exchange import us_paper_exchange
from tests.support.wait import until

SESSION = date(2024, 11, 26)
SYMBOLS = ["AAPL", "SPY", "MSFT"]
SPEED = 60.0


def ny(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(SESSION.year, SESSION.month, SESSION.day, hh, mm, ss, tzinfo=NEW_YORK)


@pytest.fixture(scope="session")
def us_data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for these tests: {exc}")


@pytest.fixture(autouse=True)
def _quiet_sdk_logs() -> None:
    for name in ("alpaca", "websockets"):
        logging.getLogger(name).setLevel(logging.ERROR)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(ny(10, 0), speed=SPEED, tz=NEW_YORK)


@pytest.fixture
async def fake(us_data: UsData, clock: VirtualClock) -> AsyncIterator[FakeAlpaca]:
    exchange = us_paper_exchange(SESSION, clock, data=us_data, symbols=SYMBOLS)
    server = FakeAlpaca(exchange, data=us_data)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def settings(fake: FakeAlpaca, **env: str) -> AlpacaSettings:
    defaults = {"ALPACA_REQUEST_TIMEOUT_S": "3", "ALPACA_ORDER_LOOKUP_WINDOW_S": "30", "ALPACA_FILL_POLL_S": "2"}
    return AlpacaSettings.from_env(fake.client_env(**{**defaults, **env}))


@pytest.fixture
async def broker(fake: FakeAlpaca, clock: VirtualClock) -> AsyncIterator[AlpacaBroker]:
    b = AlpacaBroker(settings(fake), clock=clock)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


class Collector:
    """Drains an order-update stream in the background."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.updates: list[OrderUpdate] = []

    def drain(self) -> list[OrderUpdate]:
        while not self.stream.queue.empty():
            item = self.stream.queue.get_nowait()
            if isinstance(item, OrderUpdate):
                self.updates.append(item)
        return self.updates

    def fills(self) -> list[Any]:
        return [u.fill for u in self.drain() if u.fill is not None]

    async def until_filled(self, qty: int, timeout: float = 30.0) -> list[Any]:
        await until(lambda: sum(f.qty for f in self.fills()) >= qty, timeout=timeout, what=f"{qty} shares filled")
        return self.fills()


def engine_orders(fake: FakeAlpaca) -> list[Any]:
    """Every order the paper exchange accepted (one per order the fake placed)."""
    return [o for o in fake.exchange.engine.orders() if o.status.value != "REJECTED"]


def posts(fake: FakeAlpaca, path: str = "/v2/orders") -> list[Any]:
    return [r for r in fake.request_log if r.method == "POST" and r.path == path]


__all__ = ["SESSION", "SYMBOLS", "Collector", "engine_orders", "ny", "posts", "settings"]
