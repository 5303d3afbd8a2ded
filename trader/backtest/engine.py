"""One backtest in one process: the OMS runtime on the paper exchange and the strategies, wired
through in-process transports, on a :class:`DrivenClock` the :class:`Driver` moves.

The same as a live run (``trader demo``/``trader sim``): the strategy modules and their
``build(config, oms_client, clock)``, the SDK (``OmsClient``, ``StreamClient``, ``Strategy``), the
OMS app and runtime (risk, arbitration, ledger, order planning, journal, hub, loops), and the broker
wiring of ``trader oms`` (``trader.venues.build_venue``: the paper exchange replaying the KRX data,
the later sessions on the same account through the clock's windows, the paper account file).

Different, the wiring only: REST goes through ``httpx.ASGITransport`` (market-data reads and heartbeats, nearly
every call, straight to the same route functions: :mod:`trader.backtest.direct`) and the stream through
:class:`~trader.backtest.asgi_stream.AsgiStreamConnect` (no socket); time is driven instead of read
from the wall; the OMS reads its journal alone and copies it to the database when it stops (no
database thread while time is driven); the SDK's retry back-off sleeps on the clock and draws its
jitter from a seeded generator; strategies send a heartbeat every :data:`HEARTBEAT_SEC` of clock time instead
of every 15 s (a heartbeat is liveness and status for the operator: in a driven run nobody watches, and each one
is a journaled row — 99 % of a backtest journal's bytes at 15 s — and ≈ 10 % of a run's CPU).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from broker_core.paper.data import ENV_VAR as DATA_DIR_ENV
from oms.app import create_app
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings
from strategies.sdk.client import OmsClient
from strategies.sdk.strategy import Strategy
from trader.backtest.asgi_stream import AsgiStreamConnect
from trader.backtest.clock import DrivenClock
from trader.backtest.direct import DirectRoutes
from trader.backtest.driver import Driver, InlineExecutor, OnIdle
from trader.backtest.equity import EquitySampler
from trader.backtest.plan import BacktestPlan
from trader.report.slots import slot_summary
from trader.venues import build_venue

log = logging.getLogger("trader.backtest")

INSTANCE_ID = "backtest"
BASE_URL = "http://oms.backtest"
HEARTBEAT_SEC = 300.0
DRAIN_AT_STOP_S = 1e9
"""The journal drain's idle pause: it copies the journal once at start (empty) and at stop, never while
time is driven."""
STOP_FROZEN_S = 30.0


@dataclass
class BacktestResult:
    run_dir: Path
    database: Path
    steps: int
    wall_seconds: float
    setup_seconds: float
    sessions_done: int
    ticks: int
    equity: list[tuple[datetime, float]]
    daily_equity: list[tuple[str, float]]
    failures: dict[str, str] = field(default_factory=dict)
    broker_positions: dict[str, int] = field(default_factory=dict)
    slots: dict[str, Any] | None = None
    """The OMS's slot book at the end (capacity, peak, leases), as ``trader sim`` reports it."""


@dataclass
class LiveView:
    """What the progress display reads while the run goes (synchronous reads, no await)."""

    clock: DrivenClock
    runtime: OmsRuntime

    @property
    def sessions_done(self) -> int:
        return int(getattr(self.runtime.exchange, "sessions_done", 0))

    def intents(self) -> int:
        total = 0.0
        for metric in self.runtime.metrics.intents.collect():
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return int(total)

    def fills(self) -> int:
        return int(getattr(self.runtime.exchange, "fills", 0))

    def equity(self) -> float:
        assert self.runtime.intents is not None
        return self.runtime.intents.portfolio().equity


Progress = Callable[[LiveView], OnIdle]
"""Builds the progress hook from the run's view (called once the OMS is up)."""


def _settings(plan: BacktestPlan, keys: dict[str, str]) -> OmsSettings:
    strategy_keys = ",".join(f"{s.strategy_id}:{keys[s.strategy_id]}" for s in plan.strategies)
    return OmsSettings(
        oms_broker="paper",
        database_url="",
        oms_journal_path="",
        oms_admin_key=keys["admin"],
        oms_read_key=keys["read"],
        oms_strategy_keys=strategy_keys,
        oms_instance_id=INSTANCE_ID,
        oms_data_dir=str(plan.run_dir / "oms"),
        oms_paper_date=str(plan.days[0]),
        oms_config=None,
        trader_clock="real",
        trader_data_dir=str(plan.data_dir),
    )


def _config(config: OmsConfig) -> OmsConfig:
    journal = config.journal.model_copy(update={"drain_interval_s": DRAIN_AT_STOP_S})
    return config.model_copy(update={"journal": journal})


@contextmanager
def strategy_env(plan: BacktestPlan) -> Iterator[None]:
    """Strategies find the reference data through ``TRADER_DATA_DIR``, know they run a simulation by
    ``TRADER_SIMULATION=1`` and keep their stores in the run folder (``STRATEGY_DATA_DIR``), as the launcher
    sets them for demo and sim."""
    wanted = {
        DATA_DIR_ENV: str(plan.data_dir),
        "TRADER_SIMULATION": "1",
        "STRATEGY_DATA_DIR": str(plan.run_dir.resolve() / "data"),
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def run_backtest(plan: BacktestPlan, progress: Progress | None = None) -> BacktestResult:
    """Run ``plan`` to its end in the running event loop (which must be the standard asyncio loop), with
    :func:`strategy_env` set for its length (a strategy's store outside the run folder would be shared by runs)."""
    with strategy_env(plan), _young_garbage_only():
        return await _run(plan, progress)


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds while a backtest runs (Python's defaults are 700, 10, 10)."""


@contextmanager
def _young_garbage_only() -> Iterator[None]:
    """Run the cyclic garbage collector rarely, and almost never over the whole heap.

    A session replays ≈ 180,000 prints that live until its end (the exchange's tape), and the OMS freezes
    the heap alive at its start (``gc.freeze``), so with the default thresholds the collector keeps finding
    the long-lived generation grown by a quarter and walks all of it: 22 full collections of ≈ 90 ms in a
    4-session KMP run, 2.6 s of its 22 s (0.4 s with these thresholds). Nothing in a backtest waits on a
    collection; cycles still die young in the first two generations."""
    saved = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


async def _run(plan: BacktestPlan, progress: Progress | None) -> BacktestResult:
    wall = time.perf_counter()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(InlineExecutor())
    clock = DrivenClock(plan.start, windows=plan.windows)
    keys = {"admin": secrets.token_hex(16), "read": secrets.token_hex(16)}
    keys.update({s.strategy_id: secrets.token_hex(16) for s in plan.strategies})
    settings = _settings(plan, keys)
    config = _config(plan.oms_config)
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=clock)
    clients: list[OmsClient] = []
    result = BacktestResult(
        run_dir=plan.run_dir,
        database=plan.run_dir / "oms" / "oms.db",
        steps=0,
        wall_seconds=0.0,
        setup_seconds=0.0,
        sessions_done=0,
        ticks=0,
        equity=[],
        daily_equity=[],
    )
    driver: Driver | None = None
    try:
        await runtime.start()
        assert runtime.reader is not None and runtime.intents is not None
        runtime.reader.db_ok = lambda: False  # reads from the journal alone: no database thread while driven
        app = create_app(settings, config, runtime=runtime)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        stream = AsgiStreamConnect(app)
        direct = DirectRoutes(app, runtime)
        strategies: list[Strategy] = []
        for i, spec in enumerate(plan.strategies):
            client = OmsClient(
                BASE_URL,
                keys[spec.strategy_id],
                spec.strategy_id,
                transport=transport,
                stream_connect=stream,
                local=direct.for_key(keys[spec.strategy_id]),
                sleep=clock.sleep,
                rng=random.Random(i),
            )
            clients.append(client)
            strategy = spec.module.build(spec.config, client, clock)
            if not isinstance(strategy, Strategy):
                raise TypeError(f"{spec.module.__name__}.build returned {type(strategy).__name__}, not a Strategy")
            strategy.heartbeat_sec = max(strategy.heartbeat_sec, HEARTBEAT_SEC)
            strategies.append(strategy)
        intents = runtime.intents
        sampler = EquitySampler(lambda: intents.portfolio().equity, plan.days)
        driver = Driver(clock, on_idle=[sampler])
        if progress is not None:
            driver.add_hook(progress(LiveView(clock, runtime)))
        result.setup_seconds = time.perf_counter() - wall
        tasks = [asyncio.create_task(s.run(), name=f"strategy:{s.strategy_id}") for s in strategies]
        await driver.run_until(plan.stop_at)
        await _stop_strategies(strategies, tasks, driver, result)
        driver.freeze()  # from here on nothing may trade: time stands still while the OMS stops
        result.steps = driver.steps
        result.equity = sampler.samples
        result.daily_equity = sampler.daily
        exchange = runtime.exchange
        result.sessions_done = int(exchange.sessions_done)
        result.ticks = int(exchange.ticks_processed)
        result.broker_positions = {p.symbol: p.qty for p in exchange.engine.positions() if p.qty}
        if runtime.hub is not None:
            result.slots = slot_summary(runtime.hub.snapshot())
    finally:
        for client in clients:
            await client.aclose()
        await _stop_runtime(runtime, driver)
    result.wall_seconds = time.perf_counter() - wall
    return result


async def _stop_strategies(
    strategies: list[Strategy], tasks: list[asyncio.Task[None]], driver: Driver, result: BacktestResult
) -> None:
    """Stop every strategy as SIGTERM does in a live run; time runs on meanwhile (a job finishing may sleep on
    the clock), driven as before, so the stop is as deterministic as the run."""
    for s in strategies:
        s.request_stop()
    driver.release()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for s, outcome in zip(strategies, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            result.failures[s.strategy_id] = f"{type(outcome).__name__}: {outcome}"
        elif s.failure is not None:
            result.failures[s.strategy_id] = f"{type(s.failure).__name__}: {s.failure}"


async def _stop_runtime(runtime: OmsRuntime, driver: Driver | None) -> None:
    """Stop the OMS (its stop copies the journal to the database, in threads) with time frozen; should the stop
    wait on the clock (a rate-limited broker call still in flight), time is let run after ``STOP_FROZEN_S``."""
    stopping = asyncio.create_task(runtime.stop(), name="oms-stop")
    _, pending = await asyncio.wait({stopping}, timeout=STOP_FROZEN_S)
    if pending and driver is not None:
        log.warning("the OMS did not stop within %gs with time frozen: letting time run", STOP_FROZEN_S)
        driver.release()
    await stopping
    if driver is not None:
        await driver.stop()
