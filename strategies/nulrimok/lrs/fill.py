"""Filling the LRS through the OMS market-data proxy (its rate budget and cache): empty → full, stale →
incremental, fresh → skip.

**Daily refresh** (:meth:`LrsFiller.ensure_daily`), at start, before each DSE and nightly:

* target = the last completed session: today from 15:30 on a weekday, else the weekday before
  (**[resolved]** no exchange calendar in the strategy: a holiday asked for simply returns no row);
* per unit (symbol × ``daily`` | ``flow``) the window asked for is kept in ``fetch_state``; a unit is
  fresh when it reaches the target and reaches back ``daily_history_days`` / ``flow_history_days``.
  *fresh* (every unit fresh) costs one query; *empty* (nothing stored) fetches every unit in full;
  *stale* fetches from ``through − overlap_days`` (and backfills an older start if the window grew);
* each unit is written with its ``fetch_state`` row in one transaction (upserts on unique keys): a
  fill killed at any point resumes with the units not yet done, and no row is ever stored twice;
* a 404 for a symbol (unknown to the broker) marks the unit done with no rows; investor flow not
  offered by the broker (501) marks every flow unit done and is reported once (``unavailable``);
  a missing proxy (404 of the router itself) stops the refresh; any other failure leaves the unit
  stale for the next refresh and is counted.

**Intraday** (:meth:`LrsFiller.ensure_intraday`): the 30m bars of the last ``intraday_sessions``
sessions for the given symbols (candidates and held positions), one 1m call per symbol and session
(a broker's minute history is per day), aggregated locally (N16); units ``m30:<session>``.
"""

from __future__ import annotations

import asyncio
import logging
import time as wall
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote as urlquote

from broker_core.clock import KST
from broker_core.market_rules import CLOSE
from strategies.nulrimok.bars30 import aggregate
from strategies.nulrimok.config import LrsConfig
from strategies.nulrimok.features import DailyRow, FlowRow
from strategies.nulrimok.lrs.progress import FillProgress
from strategies.nulrimok.lrs.store import FetchState, ResearchStore
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import MarketDataUnavailable, OmsError, OmsNotFound, OmsRejected

log = logging.getLogger("strategies.nulrimok.lrs")

DAILY = "daily"
FLOW = "flow"
COMPLETE_THROUGH = "complete_through"
FLOW_UNAVAILABLE = "flow_unavailable"
BACKFILL_SLACK = timedelta(days=3)


def m30_kind(day: date) -> str:
    return f"m30:{day.isoformat()}"


def last_complete_session(now: datetime) -> date:
    """The last session whose daily row is final at ``now`` (weekdays; holidays not known here)."""
    local = now.astimezone(KST)
    d = local.date()
    if local.time() >= CLOSE and d.weekday() < 5:
        return d
    d -= timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


@dataclass(frozen=True, slots=True)
class Job:
    symbol: str
    kind: str
    start: date
    end: date


@dataclass
class RefreshPlan:
    target: date
    mode: str
    """``empty`` (nothing stored), ``stale`` (some units behind) or ``fresh``."""
    jobs: list[Job]

    @property
    def symbols(self) -> list[str]:
        return sorted({j.symbol for j in self.jobs})


@dataclass
class RefreshReport:
    what: str
    mode: str
    target: date | None
    units: int = 0
    done: int = 0
    failed: int = 0
    rows: int = 0
    calls: int = 0
    seconds: float = 0.0
    unavailable: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.failed == 0 and "proxy" not in self.unavailable

    def summary(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "mode": self.mode,
            "target": self.target.isoformat() if self.target else None,
            "units": self.units,
            "done": self.done,
            "failed": self.failed,
            "rows": self.rows,
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "unavailable": dict(self.unavailable),
            "errors": self.errors[:5],
        }


def _window_fresh(s: FetchState | None, start: date, target: date) -> bool:
    return s is not None and s.through >= target and s.first_day <= start + BACKFILL_SLACK


def plan_daily(
    states: dict[tuple[str, str], FetchState],
    symbols: Sequence[str],
    index_symbols: Sequence[str],
    target: date,
    cfg: LrsConfig,
) -> RefreshPlan:
    """The units to fetch so that daily bars (symbols + indices) and flows (symbols) reach ``target``."""
    wanted: list[tuple[str, str, date]] = []
    d_start = target - timedelta(days=cfg.daily_history_days)
    f_start = target - timedelta(days=cfg.flow_history_days)
    for sym in sorted(set(symbols) | set(index_symbols)):
        wanted.append((sym, DAILY, d_start))
        if sym not in index_symbols:
            wanted.append((sym, FLOW, f_start))
    jobs: list[Job] = []
    for sym, kind, start in wanted:
        s = states.get((sym, kind))
        if _window_fresh(s, start, target):
            continue
        if s is None or s.through < start or s.first_day > target:
            jobs.append(Job(sym, kind, start, target))
            continue
        if s.first_day > start + BACKFILL_SLACK:
            jobs.append(Job(sym, kind, start, s.first_day))
        if s.through < target:
            jobs.append(Job(sym, kind, max(start, s.through - timedelta(days=cfg.overlap_days)), target))
    has_any = any(k[1] in (DAILY, FLOW) for k in states)
    mode = "fresh" if not jobs else ("stale" if has_any else "empty")
    return RefreshPlan(target, mode, jobs)


class ProxyMissing(Exception):
    """The OMS has no market-data route (404 from the router itself)."""


class FlowUnsupported(Exception):
    """The broker adapter offers no investor flow (501)."""


class LrsFiller:
    """Fills one :class:`ResearchStore` through one :class:`OmsClient`."""

    def __init__(
        self,
        store: ResearchStore,
        oms: OmsClient,
        cfg: LrsConfig,
        *,
        clock_now: Callable[[], datetime] | None = None,
        on_progress: Callable[[FillProgress], None] | None = None,
    ) -> None:
        self.store = store
        self.oms = oms
        self.cfg = cfg
        self._now = clock_now or (lambda: datetime.now(KST))
        self._on_progress = on_progress
        self.progress: FillProgress | None = None
        self.last: dict[str, RefreshReport] = {}
        self._lock = asyncio.Lock()

    # ---- daily --------------------------------------------------------------------------------------
    def is_fresh(self, symbols: Sequence[str], now: datetime) -> bool:
        target = last_complete_session(now)
        return plan_daily(self.store.fetch_states(), symbols, self.cfg.index_symbols, target, self.cfg).mode == "fresh"

    async def ensure_daily(self, symbols: Sequence[str], now: datetime) -> RefreshReport:
        """Bring daily bars and flows of ``symbols`` (and the indices) to the last completed session."""
        async with self._lock:
            started = wall.monotonic()
            target = last_complete_session(now)
            plan = plan_daily(self.store.fetch_states(), symbols, self.cfg.index_symbols, target, self.cfg)
            report = RefreshReport("daily", plan.mode, target, units=len(plan.jobs))
            if plan.jobs:
                await self._run(plan.jobs, report, f"LRS {plan.mode} fill")
            if report.complete:
                self.store.set_meta(COMPLETE_THROUGH, target.isoformat())
            report.seconds = wall.monotonic() - started
            self.last["daily"] = report
            return report

    # ---- intraday -----------------------------------------------------------------------------------
    async def ensure_intraday(self, symbols: Iterable[str], sessions: Sequence[date]) -> RefreshReport:
        """30m bars of ``sessions`` for ``symbols`` (units not fetched yet only)."""
        async with self._lock:
            started = wall.monotonic()
            states = self.store.fetch_states()
            jobs = [
                Job(sym, m30_kind(d), d, d)
                for sym in sorted(set(symbols))
                for d in sessions
                if (sym, m30_kind(d)) not in states
            ]
            report = RefreshReport("intraday", "fresh" if not jobs else "stale", max(sessions) if sessions else None)
            report.units = len(jobs)
            if jobs:
                await self._run(jobs, report, "LRS 30m bars")
            report.seconds = wall.monotonic() - started
            self.last["intraday"] = report
            return report

    # ---- machinery ----------------------------------------------------------------------------------
    async def _run(self, jobs: list[Job], report: RefreshReport, label: str) -> None:
        by_symbol: dict[str, list[Job]] = defaultdict(list)
        for j in jobs:
            by_symbol[j.symbol].append(j)
        progress = FillProgress(len(by_symbol), label, self.cfg.progress, log)
        self.progress = progress
        if self._on_progress is not None:
            self._on_progress(progress)
        sem = asyncio.Semaphore(self.cfg.concurrency)
        flow_off: list[str] = []
        aborted: list[str] = []

        async def one_symbol(sym: str) -> None:
            async with sem:
                for job in by_symbol[sym]:
                    if aborted:
                        return
                    await self._one(job, report, flow_off, aborted)
            progress.advance()

        try:
            symbols = sorted(by_symbol)
            if symbols:
                await one_symbol(symbols[0])  # a missing proxy costs one call, not hundreds
            if not aborted:
                await asyncio.gather(*(one_symbol(s) for s in symbols[1:]))
        finally:
            progress.stop()
            self.progress = None

    async def _one(self, job: Job, report: RefreshReport, flow_off: list[str], aborted: list[str]) -> None:
        now = self._now()
        if job.kind == FLOW and flow_off:
            self.store.store_fetch(job.symbol, job.kind, job.start, job.end, now=now)
            report.done += 1
            return
        try:
            report.calls += 1
            rows = await self._fetch(job)
        except ProxyMissing:
            aborted.append(job.symbol)
            report.unavailable["proxy"] = "the OMS has no market-data proxy (GET /api/v1/marketdata/... → 404)"
            report.failed += 1
            return
        except FlowUnsupported as exc:
            if not flow_off:
                flow_off.append(str(exc))
                report.unavailable["investor_flow"] = str(exc)
                self.store.set_meta(FLOW_UNAVAILABLE, str(exc))
            rows = {}
        except OmsError as exc:
            report.failed += 1
            report.errors.append(f"{job.symbol} {job.kind}: {exc}")
            log.warning("LRS fetch %s %s failed: %s", job.symbol, job.kind, exc)
            return
        report.rows += self.store.store_fetch(job.symbol, job.kind, job.start, job.end, now=now, **rows)
        report.done += 1

    async def _fetch(self, job: Job) -> dict[str, Any]:
        try:
            if job.kind == DAILY:
                return {"daily": await self._daily(job)}
            if job.kind == FLOW:
                return {"flow": await self._flow(job)}
            return {"bars30": await self._m30(job)}
        except MarketDataUnavailable as exc:
            if exc.status == 404 and exc.detail == "Not Found":
                raise ProxyMissing() from exc
            if exc.status == 501:
                if job.kind == FLOW:
                    raise FlowUnsupported(str(exc)) from exc
                raise
            return {}

    async def _daily(self, job: Job) -> list[DailyRow]:
        bars = await self.oms.daily(job.symbol, job.start, job.end)
        out = []
        for b in bars:
            d = b.start.astimezone(KST).date()
            if job.start <= d <= job.end:
                out.append(DailyRow(d, b.open, b.high, b.low, b.close, float(b.volume)))
        return out

    async def _flow(self, job: Job) -> list[FlowRow]:
        """Investor flow with an explicit window (the SDK's ``investor_flow`` takes none)."""
        path = f"/api/v1/marketdata/investor-flow/{urlquote(job.symbol, safe='')}"
        try:
            data = await self.oms.request(
                "GET", path, params={"start": job.start.isoformat(), "end": job.end.isoformat()}
            )
        except OmsNotFound as exc:
            raise MarketDataUnavailable(str(exc), method="GET", path=path, status=404, detail=exc.detail) from exc
        except OmsRejected as exc:
            if exc.status == 501:
                raise MarketDataUnavailable(str(exc), method="GET", path=path, status=501, detail=exc.detail) from exc
            raise
        rows = data.get("rows", []) if isinstance(data, dict) else list(data)
        out = []
        for r in rows:
            try:
                d = date.fromisoformat(str(r["date"])[:10])
            except (KeyError, ValueError):
                continue
            if job.start <= d <= job.end and r.get("foreign_net") is not None and r.get("inst_net") is not None:
                out.append(FlowRow(d, float(r["foreign_net"]), float(r["inst_net"])))
        return out

    async def _m30(self, job: Job) -> list[Any]:
        start = datetime.combine(job.start, time(9, 0), KST)
        end = datetime.combine(job.start, time(15, 19), KST)
        bars = await self.oms.bars(job.symbol, start, end)
        return aggregate(job.symbol, [b for b in bars if start <= b.start <= end])
