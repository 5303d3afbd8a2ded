"""The Nulrimok LRS filled through an OMS with ``OMS_BROKER=kis`` (the real KIS adapter) against the fake KIS
server at the fake's own rate limit (issue 15's acceptance line for the LRS).

The fake is built as ``trader fake-kis`` builds it (default ``paper`` profile: 2 requests/s per app key,
EGW00201 over it; daily bars and investor flow from the KRX data), and the OMS, the fake and the strategy share
one virtual clock running at **speed 1**: the fake judges its per-second window on wall-clock time, so the fill
runs at the real rate (≈ 2 calls/s), not at a simulated multiple of it. The clock starts at 07:30 on a session
day, before the DSE (08:00): at start the strategy only refreshes its LRS.

- a first start on an empty LRS fills it (mode ``empty``, complete) with 0 EGW00201 replies counted by the fake,
  then a second start the same day finds it fresh in under a second without one more chart call;
- a fill killed once rows are stored (its task cancelled, no clean stop) is completed by the next start, and no
  row exists twice nor was written twice (rows per table = distinct keys; the rows each unit recorded in
  ``fetch_state`` add up to the rows stored; each symbol's daily rows = the data source's rows of the window).

Both run on one OMS and fake (one test: each start of an OMS on KIS costs seconds and budget) with disjoint
symbols: the OMS proxy caches daily answers for the day, so a second fill of the same symbols would never reach
the fake. The fake's own request log is what the rate assertions read (EGW00201 replies, busiest 1-s window).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from broker_core.kis import tr_ids as T
from broker_core.kis.broker import KisBroker
from broker_core.kis.fake import FakeKis
from broker_core.paper.data import KrxData
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.replay import ReplayFeed
from oms.settings import load_config
from strategies.nulrimok.config import NulrimokConfig
from strategies.nulrimok.lrs import schema
from strategies.nulrimok.lrs.fill import DAILY, FLOW
from strategies.nulrimok.lrs.store import ResearchStore
from strategies.nulrimok.strategy import NulrimokStrategy
from strategies.sdk import OmsClient
from tests.support.oms_server import STRATEGY_KEYS, oms_settings, running_oms, sim_clock
from tests.support.wait import until

DAY = date(2026, 2, 27)  # a Friday: the LRS target (last completed session) at 07:30 is 2026-02-26
TARGET = date(2026, 2, 26)
FIRST = ["000270", "000660", "005930"]
KILLED = ["000720", "003670"]
RATE_ERROR = "EGW00201"


@asynccontextmanager
async def kis_oms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeKis, Any]]:
    """The fake KIS as ``trader fake-kis`` builds it, an OMS on the KIS adapter pointed at it, one clock."""
    clock = sim_clock(7, 30, speed=1.0)
    data = KrxData()
    exchange = PaperExchange(ReplayFeed(data, DAY, FIRST + KILLED), clock)
    fake = FakeKis("paper", exchange=exchange, daily_source=data.daily_bars, flow_source=data.investor_flow)
    async with fake:
        for key, value in fake.client_env().items():
            monkeypatch.setenv(key, value)
        async with running_oms(oms_settings(tmp_path, oms_broker="kis"), load_config(), clock=clock) as oms:
            assert isinstance(oms.runtime.broker, KisBroker)
            yield fake, oms


def _strategy(client: OmsClient, oms: Any, data_dir: Path, symbols: list[str]) -> NulrimokStrategy:
    cfg = NulrimokConfig.model_validate(
        {"universe": {"symbols": symbols}, "lrs": {"data_dir": str(data_dir), "progress": "log"}}
    )
    return NulrimokStrategy(cfg, client, oms.runtime.clock, sectors={}, heartbeat_sec=5)


async def _start_until_refreshed(s: NulrimokStrategy, timeout: float) -> dict[str, Any]:
    task = asyncio.create_task(s.run())
    try:
        await until(lambda: "mode" in s.lrs_info, timeout=timeout, what="the LRS refresh at start")
    finally:
        s.request_stop()
        await asyncio.wait_for(task, 30)
    return s.lrs_info


def _rate_errors(fake: FakeKis) -> list[Any]:
    return [r for r in fake.request_log if r.msg_cd == RATE_ERROR]


def _chart_calls(fake: FakeKis) -> int:
    return sum(1 for r in fake.request_log if r.path == T.DAILY_BARS.path)


def _no_duplicates(store: ResearchStore) -> dict[str, int]:
    """Rows per fetched table == distinct natural keys; returns the row counts."""
    counts = {}
    with store.engine.connect() as conn:
        for table in (schema.daily_bars, schema.investor_flow, schema.fetch_state):
            keys = [c for c in table.primary_key.columns]
            rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
            distinct = conn.execute(select(func.count()).select_from(select(*keys).distinct().subquery())).scalar_one()
            assert rows == distinct, f"{table.name}: {rows} rows, {distinct} distinct keys"
            counts[table.name] = rows
    return counts


async def test_lrs_fill_against_the_fake_kis_at_its_rate_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with kis_oms(tmp_path, monkeypatch) as (fake, oms):
        async with OmsClient(oms.url, STRATEGY_KEYS["NULRIMOK"], "NULRIMOK") as client:
            await _first_fill_then_a_second_start_skips(fake, oms, client, tmp_path / "first")
            await _a_killed_fill_resumes_without_a_duplicate_row(fake, oms, client, tmp_path / "killed")
        assert _rate_errors(fake) == [], _rate_errors(fake)[:3]
        assert fake.state.max_per_window() <= fake.profile.rate_per_sec == 2.0
        assert oms.runtime.broker.rest.rate_limited == 0


async def _first_fill_then_a_second_start_skips(fake: FakeKis, oms: Any, client: OmsClient, data_dir: Path) -> None:
    s = _strategy(client, oms, data_dir, FIRST)
    started = time.monotonic()
    info = await _start_until_refreshed(s, timeout=60)
    wall = time.monotonic() - started
    assert info["mode"] == "empty" and info["complete"], info
    assert info["units"] == info["done"] == 2 * len(FIRST) + 2 and info["failed"] == 0, info
    charts = _chart_calls(fake)
    assert charts >= 4 * len(FIRST), charts  # ≈ 490 sessions of history, ≤ 100 rows per call
    assert _rate_errors(fake) == [], _rate_errors(fake)[:3]
    assert fake.state.max_per_window() <= fake.profile.rate_per_sec
    uapi = sum(1 for r in fake.request_log if r.path.startswith("/uapi/"))
    print(f"\nfirst fill: {wall:.1f}s wall, {uapi} KIS REST calls at the fake ({charts} daily charts)")

    counts = _no_duplicates(s.store)
    data = KrxData()
    start = TARGET - timedelta(days=s.config.lrs.daily_history_days)
    expected = {sym: len(data.daily_bars(sym, start, TARGET)) for sym in FIRST}
    assert counts["daily_bars"] == sum(expected.values()) and min(expected.values()) > 400

    again = _strategy(client, oms, data_dir, FIRST)
    info2 = await _start_until_refreshed(again, timeout=30)
    assert info2["mode"] == "fresh" and info2["complete"] and info2["seconds"] < 1.0, info2
    assert info2["calls"] == 0 and _chart_calls(fake) == charts
    assert again.store.counts()["daily_bars"] == counts["daily_bars"]
    print(f"second start: mode fresh in {info2['seconds'] * 1000:.1f} ms")


async def _a_killed_fill_resumes_without_a_duplicate_row(
    fake: FakeKis, oms: Any, client: OmsClient, data_dir: Path
) -> None:
    units = 2 * len(KILLED) + 2
    s = _strategy(client, oms, data_dir, KILLED)
    run = asyncio.create_task(s.run())

    def some_rows_stored() -> bool:
        return any(k[1] == DAILY and st.rows > 0 for k, st in s.store.fetch_states().items())

    await until(some_rows_stored, timeout=60, what="a first unit with rows stored")
    fill = next(t for t in asyncio.all_tasks() if t.get_name() == "nulrimok.startup")
    fill.cancel()  # the kill: the fill stops at its current await and nothing of it runs any more
    await asyncio.gather(fill, return_exceptions=True)
    done_at_kill = {k for k in s.store.fetch_states() if k[1] in (DAILY, FLOW)}
    rows_at_kill = s.store.counts()["daily_bars"]
    s.request_stop()
    await asyncio.wait_for(run, 30)
    assert "mode" not in s.lrs_info, s.lrs_info  # the killed fill never finished
    assert 0 < len(done_at_kill) < units and rows_at_kill > 0, (done_at_kill, rows_at_kill)

    restarted = _strategy(client, oms, data_dir, KILLED)
    info = await _start_until_refreshed(restarted, timeout=60)
    assert info["mode"] == "stale" and info["complete"], info
    assert info["units"] == units - len(done_at_kill) == info["done"], (info, done_at_kill)
    print(f"killed with {len(done_at_kill)}/{units} units stored; the restart fetched the other {info['units']}")

    store = restarted.store
    counts = _no_duplicates(store)
    assert counts["fetch_state"] == units
    with store.engine.connect() as conn:
        fs = schema.fetch_state.c
        recorded = conn.execute(select(func.sum(fs.rows)).where(fs.kind.in_([DAILY, FLOW]))).scalar_one()
    assert recorded == counts["daily_bars"] + counts["investor_flow"]  # no unit's rows written twice
    data = KrxData()
    start = TARGET - timedelta(days=restarted.config.lrs.daily_history_days)
    per_symbol = {sym: len(rows) for sym, rows in store.daily_many(KILLED).items()}
    assert per_symbol == {sym: len(data.daily_bars(sym, start, TARGET)) for sym in KILLED}
    flows = store.flow_many(KILLED)
    assert set(flows) == set(KILLED) and all(0 < len(v) <= fake.profile.investor_rows for v in flows.values())
