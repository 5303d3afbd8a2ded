"""A real OMS runtime and its app in the test's event loop on the backtest's :class:`DrivenClock`, wired as
``trader backtest`` wires it (:mod:`trader.backtest.engine`): REST through ``httpx.ASGITransport`` and the
hot reads straight to the route functions (:class:`DirectRoutes`), the stream through
:class:`AsgiStreamConnect`, the journal read alone (no database thread while time is driven), every
``to_thread`` run inline. Time moves only when the :class:`Driver` moves it, as fast as the CPU allows, and
through the clock's multi-day ``Windows`` (nights and weekends skipped; a sleeper in a gap wakes at the jump).

The engine's ``run_backtest`` runs a plan to its end; this gives a test the pieces instead, so it can stop
time at an instant, kill a strategy, start another one on the same OMS and let time run on."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from oms.app import create_app
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings
from strategies.sdk.client import OmsClient
from trader.backtest.asgi_stream import AsgiStreamConnect
from trader.backtest.clock import DrivenClock
from trader.backtest.direct import DirectRoutes
from trader.backtest.driver import Driver, InlineExecutor
from trader.backtest.engine import BASE_URL, DRAIN_AT_STOP_S
from trader.venues import build_venue

ADMIN_KEY = "test-admin-key-000001"
READ_KEY = "test-read-key-0000001"


def driven_settings(data_dir: Path, strategy_keys: dict[str, str], **overrides: object) -> OmsSettings:
    """The OMS settings of a driven run (as the backtest's): journal only while driven, data under ``data_dir``."""
    values: dict[str, object] = dict(
        oms_broker="paper",
        database_url="",
        oms_journal_path="",
        oms_admin_key=ADMIN_KEY,
        oms_read_key=READ_KEY,
        oms_strategy_keys=",".join(f"{k}:{v}" for k, v in strategy_keys.items()),
        oms_instance_id="driven",
        oms_data_dir=str(data_dir),
        oms_config=None,
        trader_clock="real",
    )
    values.update(overrides)
    return OmsSettings(**values)  # type: ignore[arg-type]


def driven_config(config: OmsConfig) -> OmsConfig:
    """The journal drain copies to the database at start and at stop only (no thread while time is driven)."""
    journal = config.journal.model_copy(update={"drain_interval_s": DRAIN_AT_STOP_S})
    return config.model_copy(update={"journal": journal})


@dataclass
class DrivenOms:
    clock: DrivenClock
    driver: Driver
    runtime: OmsRuntime
    transport: httpx.ASGITransport
    stream: AsgiStreamConnect
    direct: DirectRoutes
    _seed: int = 0

    def client(self, strategy_id: str, key: str) -> OmsClient:
        """An SDK client as a backtest's strategy gets it (in-process transports, retries sleeping on the clock)."""
        self._seed += 1
        return OmsClient(
            BASE_URL,
            key,
            strategy_id,
            transport=self.transport,
            stream_connect=self.stream,
            local=self.direct.for_key(key),
            sleep=self.clock.sleep,
            rng=random.Random(self._seed),
        )

    def http(self, key: str = READ_KEY) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport, base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


@asynccontextmanager
async def driven_oms(settings: OmsSettings, config: OmsConfig, clock: DrivenClock) -> AsyncIterator[DrivenOms]:
    """The OMS up on ``clock`` with its :class:`Driver` (not started: the test moves time with ``run_until``).
    On exit time is frozen while the OMS stops, then the driver stops."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(InlineExecutor())
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=clock)
    driver: Driver | None = None
    try:
        await runtime.start()
        assert runtime.reader is not None
        runtime.reader.db_ok = lambda: False  # reads from the journal alone: no database thread while driven
        app = create_app(settings, config, runtime=runtime)
        driver = Driver(clock)
        yield DrivenOms(
            clock,
            driver,
            runtime,
            httpx.ASGITransport(app=app, raise_app_exceptions=False),
            AsgiStreamConnect(app),
            DirectRoutes(app, runtime),
        )
    finally:
        if driver is not None:
            driver.freeze()
        await asyncio.wait_for(runtime.stop(), 60)
        if driver is not None:
            await driver.stop()


__all__ = ["ADMIN_KEY", "READ_KEY", "DrivenOms", "driven_config", "driven_oms", "driven_settings"]
