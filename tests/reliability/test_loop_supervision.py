"""Background loops that fail are restarted, and /health says so while they are down.

Each test runs a real OMS (uvicorn, paper exchange, SQLite) on a paper broker that can be told to fail
the way a real adapter does (a dropped update stream, a payload that cannot be parsed, a malformed
account, a call that hangs). What is tried: the failure; what is asserted: ``/health`` goes ``degraded``
naming the loop, the loop is restarted and works again, ``/health`` returns to ``ok``, and the restart
is counted in ``/metrics``. Nothing is mocked inside the OMS.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker_core.models import Account, OrderUpdate, Position
from broker_core.paper.broker import PaperBroker
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, load_config
from tests.support.oms_server import Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until
from trader.venues import build_venue


class FaultyBroker(PaperBroker):
    """The paper broker with switches for the failures of a real adapter (a test double of the broker)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop_stream = asyncio.Event()
        """Set: the first order-update stream fails (the connection was reset)."""
        self.streams_opened = 0
        self.positions_unparseable = False
        self.account_without_cash = False
        self.positions_hang = False
        self.release = asyncio.Event()

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        self.streams_opened += 1
        if self.streams_opened == 1:
            return self._stream_that_drops()
        return super().order_updates()

    async def _stream_that_drops(self) -> AsyncIterator[OrderUpdate]:
        await self.drop_stream.wait()
        raise ConnectionResetError("order update stream reset by the broker")
        yield  # an async generator  # pragma: no cover

    async def get_positions(self) -> list[Position]:
        if self.positions_unparseable:
            raise ValueError("positions payload: field 'hldg_qty' is not a number")  # not a BrokerError
        if self.positions_hang:
            await self.release.wait()
        return await super().get_positions()

    async def get_account(self) -> Account:
        account = await super().get_account()
        return replace(account, cash=None) if self.account_without_cash else account  # type: ignore[arg-type]


def _config(**loops: float) -> OmsConfig:
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 5, "max_interval_s": 10})
    config.loops = config.loops.model_copy(
        update={"restart_backoff_s": 1.0, "restart_backoff_max_s": 4.0, "min_lag_s": 5.0, **loops}
    )
    return config


def _runtime(tmp_path: Path, config: OmsConfig) -> tuple[OmsRuntime, FaultyBroker]:
    runtime = OmsRuntime(oms_settings(tmp_path), config, venue=build_venue, clock=sim_clock())
    old = runtime.broker
    assert isinstance(old, PaperBroker)
    broker = FaultyBroker(old.exchange, subscription_capacity=old.subscription_capacity)
    runtime.broker = broker
    return runtime, broker


async def _health_when(oms: Oms, ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        health = (await oms.http.get("/health")).json()
        return health if ok(health) else None

    return await until(check, timeout=30, what=what)


async def _restarts(oms: Oms, loop: str) -> float:
    text = (await oms.http.get("/metrics")).text
    m = re.search(rf'^oms_loop_restarts_total\{{loop="{loop}"\}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _degraded_naming(loop: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda h: (
        h["status"] == "degraded"
        and h.get("loops", {}).get(loop) == status
        and f"loop:{loop}:{status}" in h.get("degraded_reasons", [])
    )


def _all_ok(h: dict[str, Any]) -> bool:
    return h["status"] == "ok" and set(h["loops"].values()) == {"ok"} and h["degraded_reasons"] == []


async def test_order_update_stream_that_raises_is_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime, broker = _runtime(tmp_path, _config())
    with caplog.at_level(logging.ERROR, logger="oms.supervisor"):
        async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
            health = await _health_when(oms, _all_ok, "all loops ok")
            assert {"reconciler", "order_updates", "risk_watch", "journal_drain", "day_rollover"} <= set(
                health["loops"]
            )
            broker.drop_stream.set()
            await _health_when(oms, _degraded_naming("order_updates", "restarting"), "order_updates restarting")
            await _health_when(oms, _all_ok, "/health ok again after the restart")
            assert broker.streams_opened == 2, "the loop subscribed to the broker's updates again"
            assert await _restarts(oms, "order_updates") == 1.0
    failed = [r for r in caplog.records if "reason=LOOP_FAILED" in r.getMessage() and "order_updates" in r.getMessage()]
    assert failed and failed[0].exc_info is not None, "the failure is logged with its traceback"


async def test_reconcile_cycle_that_raises_is_restarted(tmp_path: Path) -> None:
    runtime, broker = _runtime(tmp_path, _config())
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        await _health_when(oms, _all_ok, "all loops ok")
        broker.positions_unparseable = True
        health = await _health_when(oms, _degraded_naming("reconciler", "restarting"), "reconciler restarting")
        assert health["loops"]["risk_watch"] == "ok" and health["loops"]["order_updates"] == "ok"
        broker.positions_unparseable = False
        assert runtime.reconciler is not None
        cycles = runtime.reconciler.cycles
        await _health_when(oms, _all_ok, "/health ok again after the restart")
        await until(lambda: runtime.reconciler.cycles > cycles, what="the restarted reconciler completes cycles")
        assert await _restarts(oms, "reconciler") >= 1.0
        assert (await oms.http.get("/health")).json()["loop_restarts"]["reconciler"] >= 1


async def test_risk_watch_that_raises_is_restarted(tmp_path: Path) -> None:
    runtime, broker = _runtime(tmp_path, _config())
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        await _health_when(oms, _all_ok, "all loops ok")
        broker.account_without_cash = True  # the reconciler stores it; the risk watch cannot value the account
        health = await _health_when(oms, _degraded_naming("risk_watch", "restarting"), "risk_watch restarting")
        assert health["loops"]["reconciler"] == "ok"
        broker.account_without_cash = False
        await _health_when(oms, _all_ok, "/health ok again after the restart")
        assert await _restarts(oms, "risk_watch") >= 1.0


async def test_a_hung_reconcile_cycle_is_reported_lagging(tmp_path: Path) -> None:
    runtime, broker = _runtime(tmp_path, _config(min_lag_s=1.0))
    async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
        await _health_when(oms, _all_ok, "all loops ok")
        broker.positions_hang = True
        await _health_when(oms, _degraded_naming("reconciler", "lagging"), "reconciler lagging")
        broker.positions_hang = False
        broker.release.set()
        await _health_when(oms, _all_ok, "/health ok once the cycle completes")
        assert await _restarts(oms, "reconciler") == 0.0, "a lagging loop is reported, not restarted"


async def test_stopping_the_oms_ends_every_loop_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime, broker = _runtime(tmp_path, _config())
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        async with running_oms(runtime.settings, runtime.config, runtime=runtime) as oms:
            await _health_when(oms, _all_ok, "all loops ok")
            broker.positions_unparseable = True  # one loop sits in its back-off when the OMS stops
            await _health_when(oms, _degraded_naming("reconciler", "restarting"), "reconciler restarting")
        loop_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("loop:")]
        assert loop_tasks == []
        assert set(runtime.supervisor.statuses().values()) == {"stopped"}
        gc.collect()
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if "Task was destroyed" in r.getMessage()]
