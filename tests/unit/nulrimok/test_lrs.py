"""The Local Research Store filled through a real OMS (in this process: the paper exchange on the KRX reference
data, the market-data proxy and its rate budget, reached by the real ``OmsClient`` over ASGI): empty → full,
fresh → skip in under a second, stale → incremental, a killed fill resumed without a duplicate row, 30m bars,
the N2 precompute, and a missing proxy / missing investor flow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from broker_core.clock import KST, VirtualClock
from broker_core.paper.data import KrxData
from oms.app import create_app
from oms.runtime import OmsRuntime
from oms.settings import OmsSettings, PaperConfig, load_config
from strategies.nulrimok.config import LrsConfig, NulrimokParams
from strategies.nulrimok.lrs import schema
from strategies.nulrimok.lrs.files import OptionalInputs
from strategies.nulrimok.lrs.fill import COMPLETE_THROUGH, LrsFiller, last_complete_session, m30_kind
from strategies.nulrimok.lrs.precompute import build_inputs, compute_features_from_store, precompute
from strategies.nulrimok.lrs.store import ResearchStore
from strategies.nulrimok.selection import select as dse
from strategies.sdk.client import OmsClient
from tests.support.wait import until
from trader.venues import build_venue

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "test-nul-key-00000001"
LISTING = ["005930", "000660", "005380", "035420", "105560", "000100"]  # 005380/035420/000100: daily data only
START = datetime(2026, 2, 27, 7, 50, tzinfo=KST)
CFG = LrsConfig(progress="off", concurrency=3)


class Counting(httpx.AsyncBaseTransport):
    """Counts requests; with ``hang_after`` the next requests never answer (a process killed mid-fill)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hang_after: int | None = None) -> None:
        self.inner = inner
        self.paths: list[str] = []
        self.hang_after = hang_after
        self.hung = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.hang_after is not None and len(self.paths) > self.hang_after:
            self.hung.set()
            await asyncio.Event().wait()
        return await self.inner.handle_async_request(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    config = load_config()
    config.paper = PaperConfig.model_validate({**config.paper.model_dump(), "symbols": ["005930", "000660"]})
    settings = OmsSettings(
        oms_broker="paper",
        database_url="",
        oms_journal_path="",
        oms_admin_key="test-admin-key-000001",
        oms_read_key="test-read-key-0000001",
        oms_strategy_keys=f"NULRIMOK:{KEY}",
        oms_instance_id="lrs-test",
        oms_data_dir=str(tmp_path_factory.mktemp("oms")),
        oms_paper_date="2026-02-27",
        oms_config=None,
        trader_clock="real",
    )
    runtime = OmsRuntime(settings, config, venue=build_venue, clock=VirtualClock(START, speed=60))
    await runtime.start()
    try:
        yield create_app(settings, config, runtime=runtime)
    finally:
        await runtime.stop()


def client(app: Any, transport: Counting | None = None) -> tuple[OmsClient, Counting]:
    t = transport or Counting(httpx.ASGITransport(app=app))
    return OmsClient("http://oms.test", KEY, "NULRIMOK", transport=t, retries=0), t


def dupes(store: ResearchStore) -> int:
    """Rows sharing a natural key (never > 0 with the unique keys; counted the long way to prove it)."""
    n = 0
    with store.engine.connect() as conn:
        for tbl, cols in ((schema.daily_bars, ("symbol", "day")), (schema.investor_flow, ("symbol", "day"))):
            keys = [tbl.c[c] for c in cols]
            q = select(*keys, func.count()).group_by(*keys).having(func.count() > 1)
            n += len(conn.execute(q).all())
    return n


async def test_empty_store_is_filled_in_full_and_a_second_start_skips(app: Any, tmp_path: Path) -> None:
    store = ResearchStore(tmp_path / "lrs.sqlite")
    oms, t = client(app)
    filler = LrsFiller(store, oms, CFG)
    report = await filler.ensure_daily(LISTING, START)
    assert report.mode == "empty" and report.complete and report.target == date(2026, 2, 26)
    assert report.units == len(t.paths) == 2 * len(LISTING) + 2  # daily + flow each, and the two indices
    assert {p.split("/")[4] for p in t.paths} == {"daily", "investor-flow"}
    krx = KrxData()
    for sym in ("005930", "000100"):
        rows = store.daily(sym)
        truth = krx.daily_bars(sym, date(2024, 1, 1), date(2026, 2, 26))
        assert [(r.day, r.close) for r in rows] == [(b.ts.date(), b.close) for b in truth if b.ts.date() >= rows[0].day]
        assert (rows[-1].day - rows[0].day).days >= 700  # ≥ 2 y
    kospi = store.daily("KOSPI")
    assert kospi and kospi[-1].day == date(2026, 2, 26) and store.daily("KOSDAQ")
    flows = store.flow_many(["005930"])["005930"]
    assert flows[-1].day == date(2026, 2, 26) and (flows[-1].day - flows[0].day).days >= 365
    assert store.get_meta(COMPLETE_THROUGH) == "2026-02-26" and dupes(store) == 0

    again, t2 = client(app)
    started = time.perf_counter()
    second = await LrsFiller(store, again, CFG).ensure_daily(LISTING, START)
    assert time.perf_counter() - started < 1.0
    assert second.mode == "fresh" and t2.paths == []
    await oms.aclose()
    await again.aclose()


async def test_a_later_session_is_an_incremental_refresh(app: Any, tmp_path: Path) -> None:
    store = ResearchStore(tmp_path / "lrs.sqlite")
    oms, t = client(app)
    filler = LrsFiller(store, oms, CFG)
    week_ago = datetime(2026, 2, 20, 18, 0, tzinfo=KST)
    first = await filler.ensure_daily(LISTING, week_ago)
    assert first.mode == "empty" and store.daily("005930")[-1].day == date(2026, 2, 20)
    rows_before = store.counts()["daily_bars"]
    t.paths.clear()
    report = await filler.ensure_daily(LISTING, START)
    assert report.mode == "stale" and report.units == len(t.paths) == 2 * len(LISTING) + 2
    assert store.daily("005930")[-1].day == date(2026, 2, 26)
    assert store.counts()["daily_bars"] == rows_before + 4 * (len(LISTING) + 2)  # 02-23 … 02-26 only
    assert dupes(store) == 0
    await oms.aclose()


async def test_a_fill_killed_half_way_resumes_where_it_stopped_without_a_duplicate(app: Any, tmp_path: Path) -> None:
    reference = ResearchStore(tmp_path / "ref.sqlite")
    ref_oms, _ = client(app)
    await LrsFiller(reference, ref_oms, CFG).ensure_daily(LISTING, START)

    store = ResearchStore(tmp_path / "lrs.sqlite")
    killed, hang = client(app, Counting(httpx.ASGITransport(app=app), hang_after=7))
    task = asyncio.create_task(LrsFiller(store, killed, CFG).ensure_daily(LISTING, START))
    await asyncio.wait_for(hang.hung.wait(), 30)
    await until(lambda: store.fetch_states(), timeout=10, what="the units fetched before the hang stored")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done_units = len(store.fetch_states())
    assert 0 < done_units < 2 * len(LISTING) + 2 and store.get_meta(COMPLETE_THROUGH) is None

    resumed, t = client(app)
    report = await LrsFiller(store, resumed, CFG).ensure_daily(LISTING, START)
    assert report.mode == "stale" and report.complete
    assert len(t.paths) == report.units == 2 * len(LISTING) + 2 - done_units  # only what was not stored
    assert store.counts()["daily_bars"] == reference.counts()["daily_bars"]
    assert store.counts()["investor_flow"] == reference.counts()["investor_flow"]
    assert dupes(store) == 0
    for c in (ref_oms, killed, resumed):
        await c.aclose()


async def test_30m_bars_of_candidates_and_the_precompute(app: Any, tmp_path: Path) -> None:
    store = ResearchStore(tmp_path / "lrs.sqlite")
    oms, t = client(app)
    filler = LrsFiller(store, oms, CFG)
    await filler.ensure_daily(LISTING, START)
    sessions = store.sessions("KOSPI")[-3:]
    assert sessions == [date(2026, 2, 24), date(2026, 2, 25), date(2026, 2, 26)]
    t.paths.clear()
    report = await filler.ensure_intraday(["005930", "000100"], sessions)
    assert report.complete and report.units == 6 and len(t.paths) == 6
    bars = store.bars30_many(["005930", "000100"], sessions)
    assert "000100" not in bars  # daily-only ticker: asked once per session, no bars
    b = bars["005930"]
    assert len(b) == 39 and b[0].start == datetime(2026, 2, 24, 9, 0, tzinfo=KST)
    minutes = [
        m
        for m in KrxData().minute_bars("005930", date(2026, 2, 24))
        if m.ts.astimezone(KST).hour == 9 and m.ts.minute < 30
    ]
    assert b[0].volume == sum(m.volume for m in minutes) and b[0].high == max(m.high for m in minutes)
    assert (await filler.ensure_intraday(["005930", "000100"], sessions)).units == 0
    assert ("000100", m30_kind(sessions[0])) in store.fetch_states()

    p = NulrimokParams()
    sectors = {"005930": "Semis", "000660": "Semis", "005380": "Auto", "035420": "IT", "105560": "Fin"}
    opt = OptionalInputs(skipped={"krw_usd": "absent"})
    asof = last_complete_session(START)
    preview = precompute(store, LISTING, sectors, asof, p, opt)
    assert preview.session == date(2026, 2, 27) and set(preview.rows) == set(LISTING)
    assert store.counts()["features"] == len(LISTING) and store.counts()["watchlist"] == len(LISTING)
    stored = store.load_features(asof)
    assert stored == compute_features_from_store(store, LISTING, sectors, asof, p)
    inputs = build_inputs(store, LISTING, sectors, date(2026, 2, 27), asof, p, opt)
    again = dse(inputs, p)
    assert again.counts() == preview.counts() and again.tradable == preview.tradable
    assert stored["000100"].sector.startswith("UNKNOWN:")
    await oms.aclose()


async def test_a_missing_proxy_costs_one_call_and_missing_flow_is_reported_once(tmp_path: Path) -> None:
    calls: list[str] = []

    def no_route(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})

    store = ResearchStore(tmp_path / "a.sqlite")
    oms = OmsClient("http://oms.test", KEY, "NULRIMOK", transport=httpx.MockTransport(no_route), retries=0)
    report = await LrsFiller(store, oms, CFG).ensure_daily(LISTING, START)
    assert "proxy" in report.unavailable and not report.complete and len(calls) == 1
    await oms.aclose()

    def no_flow(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if "investor-flow" in request.url.path:
            return httpx.Response(501, json={"detail": "investor flow is not available from this broker"})
        return httpx.Response(
            200,
            json={
                "bars": [{"ts": "2026-02-26T00:00:00+09:00", "open": 1, "high": 2, "low": 1, "close": 2, "volume": 5}]
            },
        )

    calls.clear()
    store = ResearchStore(tmp_path / "b.sqlite")
    oms = OmsClient("http://oms.test", KEY, "NULRIMOK", transport=httpx.MockTransport(no_flow), retries=0)
    report = await LrsFiller(store, oms, CFG).ensure_daily(LISTING, START)
    assert report.complete and "investor_flow" in report.unavailable
    assert sum("investor-flow" in c for c in calls) == 1  # asked once; every flow unit then marked done
    assert (await LrsFiller(store, oms, CFG).ensure_daily(LISTING, START)).mode == "fresh"
    await oms.aclose()
