"""KPR market data through the OMS REST proxy: the premarket cache (P1), incremental 1m bars,
quotes, investor flow (P9) and the per-stock program probe (P11); plus the static listing.

Everything that is market data goes through :class:`~strategies.sdk.client.OmsClient` (the OMS's
``/api/v1/marketdata/...`` proxy, which applies the account's REST budget and caches); only the
static reference files are read locally (sector map B8, KOSDAQ listing), as KMP does.

Premarket calls per universe symbol: one daily-bar call (``daily_lookback_days`` calendar days),
then the 1m bars of the profile sessions **not yet held** by the :class:`ProfileStore` — one call
per run of consecutive missing sessions spanning at most :data:`MAX_SPAN_DAYS` calendar days (the
proxy serves ≤ 31 days of intraday bars per request). A process that runs several sessions (``trader
sim``/``backtest``) therefore asks for one new session per symbol per day, not twenty.

Failures never block: a failed call leaves that part empty (the symbol is dropped with a reason, or
its session fetched again the next day); a missing proxy route stops the load at the first call and
is reported (``unavailable``).
"""

from __future__ import annotations

import asyncio
import logging
import time as wall
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from broker_core.clock import KST
from strategies.kpr.config import KprParams, UniverseConfig
from strategies.kpr.universe import (
    SymbolCache,
    SymbolMeta,
    build_symbol_cache,
    select_universe,
    session_cumulative,
)
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import MarketDataUnavailable, OmsError

log = logging.getLogger("strategies.kpr.data")

CONCURRENCY = 8
MAX_SPAN_DAYS = 20
DAY_START = time(9, 0)
DAY_END = time(15, 30)
PROGRAM_PATH = "/api/v1/marketdata/program/{symbol}"
"""Per-stock program trading (P11 REST provider). The OMS does not serve it today: the probe's 404
puts ProgramSignal in UNAVAILABLE (two-pillar mode)."""

T = TypeVar("T")


class ProxyMissing(Exception):
    """The OMS has no market-data proxy route (404 ``Not Found`` from the router itself)."""


def route_missing(exc: MarketDataUnavailable) -> bool:
    """True when the 404 came from the web framework (no such route), not from the proxy."""
    return exc.detail == "Not Found"


class ProfileStore:
    """Cumulative-volume curves of past sessions per symbol, kept across days."""

    def __init__(self) -> None:
        self.cums: dict[str, dict[date, list[float]]] = defaultdict(dict)

    def missing(self, symbol: str, sessions: Sequence[date]) -> list[date]:
        held = self.cums.get(symbol, {})
        return [d for d in sessions if d not in held]

    def prune(self, keep_from: date) -> None:
        for sym in list(self.cums):
            self.cums[sym] = {d: c for d, c in self.cums[sym].items() if d >= keep_from}


@dataclass
class PremarketData:
    day: date
    caches: list[SymbolCache] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    sessions: list[date] = field(default_factory=list)
    unavailable: str | None = None
    calls: int = 0
    failures: int = 0
    wall_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "day": str(self.day),
            "symbols": len(self.caches),
            "dropped": len(self.dropped),
            "sessions": len(self.sessions),
            "calls": self.calls,
            "failures": self.failures,
            "wall_seconds": round(self.wall_seconds, 2),
            "unavailable": self.unavailable,
        }


class _Budget:
    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.calls = 0
        self.failures = 0
        self.missing_route = False

    async def call(self, what: Callable[[], Awaitable[T]]) -> T | None:
        """None on a failed call (counted); [] semantics are the caller's; ProxyMissing aborts."""
        if self.missing_route:
            raise ProxyMissing()
        async with self.sem:
            self.calls += 1
            try:
                return await what()
            except MarketDataUnavailable as exc:
                if route_missing(exc):
                    self.missing_route = True
                    raise ProxyMissing() from exc
                raise
            except OmsError as exc:
                self.failures += 1
                log.debug("market-data call failed: %s", exc)
                return None


def _chunks(days: Sequence[date]) -> list[list[date]]:
    """Runs of sessions whose calendar span is at most MAX_SPAN_DAYS."""
    out: list[list[date]] = []
    for d in sorted(days):
        if out and (d - out[-1][0]).days <= MAX_SPAN_DAYS:
            out[-1].append(d)
        else:
            out.append([d])
    return out


async def load_premarket(
    oms: OmsClient,
    day: date,
    metas: Sequence[SymbolMeta],
    p: KprParams,
    store: ProfileStore,
    *,
    concurrency: int = CONCURRENCY,
) -> PremarketData:
    """P1 caches of ``metas`` for session ``day`` (see the module docstring)."""
    started = wall.monotonic()
    result = PremarketData(day=day)
    budget = _Budget(concurrency)
    first, last = day - timedelta(days=p.daily_lookback_days), day - timedelta(days=1)
    dailies: dict[str, list[Bar] | None] = {}

    async def daily(meta: SymbolMeta) -> None:
        try:
            bars = await budget.call(lambda: oms.daily(meta.symbol, first, last))
        except MarketDataUnavailable:
            bars = []
        dailies[meta.symbol] = None if bars is None else [b for b in bars if b.start.astimezone(KST).date() < day]

    async def minutes(meta: SymbolMeta) -> None:
        for chunk in _chunks(store.missing(meta.symbol, result.sessions)):
            start, end = datetime.combine(chunk[0], DAY_START, KST), datetime.combine(chunk[-1], DAY_END, KST)

            def fetch(s: datetime = start, e: datetime = end) -> Awaitable[list[Bar]]:
                return oms.bars(meta.symbol, s, e)

            try:
                bars = await budget.call(fetch)
            except MarketDataUnavailable:
                bars = []
            if bars is None:
                continue
            by_day: dict[date, list[Bar]] = defaultdict(list)
            for b in bars:
                by_day[b.start.astimezone(KST).date()].append(b)
            for d in chunk:
                store.cums[meta.symbol][d] = session_cumulative(by_day.get(d, []))

    try:
        await _fan_out(daily, list(metas))
        result.sessions = sorted({b.start.astimezone(KST).date() for bars in dailies.values() if bars for b in bars})[
            -p.profile_sessions :
        ]
        if result.sessions:
            store.prune(result.sessions[0])
        await _fan_out(minutes, [m for m in metas if dailies.get(m.symbol)])
    except ProxyMissing:
        result.unavailable = "the OMS has no market-data proxy (GET /api/v1/marketdata/... → 404 Not Found)"
    else:
        for meta in metas:
            d_bars = dailies.get(meta.symbol)
            if d_bars is None:
                result.dropped[meta.symbol] = "DATA_ERROR"
                continue
            built = build_symbol_cache(meta, d_bars, store.cums.get(meta.symbol, {}), result.sessions, p)
            if isinstance(built, str):
                result.dropped[meta.symbol] = built
            else:
                result.caches.append(built)
    result.calls, result.failures = budget.calls, budget.failures
    if result.unavailable is None and metas and budget.calls and budget.failures == budget.calls:
        result.unavailable = f"every market-data call failed ({budget.failures})"
    result.wall_seconds = wall.monotonic() - started
    return result


async def _fan_out(job: Callable[[Any], Awaitable[None]], items: list[Any]) -> None:
    """``job`` over ``items``: the first alone (a missing proxy costs one call), then the rest at once."""
    if not items:
        return
    await job(items[0])
    results = await asyncio.gather(*(job(i) for i in items[1:]), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if any(isinstance(e, ProxyMissing) for e in errors):
        raise ProxyMissing()
    if errors:
        raise errors[0]


# ---- session data -----------------------------------------------------------------------------------


async def minute_bars(oms: OmsClient, symbol: str, start: datetime, end: datetime) -> list[Bar] | None:
    """REST 1m bars of ``symbol`` with start in [start, end]; None when the call failed."""
    try:
        return [b for b in await oms.bars(symbol, start, end) if start <= b.start <= end]
    except OmsError:
        return None


@dataclass(frozen=True)
class QuoteView:
    last: float | None
    bid: float | None
    ask: float | None
    prev_close: float | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> QuoteView:
        nested = data.get("quote")
        q: dict[str, Any] = nested if isinstance(nested, dict) else data
        return cls(
            _num(q.get("last") or q.get("price")), _num(q.get("bid")), _num(q.get("ask")), _num(q.get("prev_close"))
        )


async def quote(oms: OmsClient, symbol: str) -> QuoteView:
    return QuoteView.of(await oms.quote(symbol))


def investor_row(rows: Iterable[dict[str, Any]], day: date) -> dict[str, Any] | None:
    """The investor-flow row of ``day``, if the source has it (yet)."""
    for r in rows:
        raw = r.get("date")
        try:
            d = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
        except ValueError:
            continue
        if d == day:
            return r
    return None


def investor_today(rows: Iterable[dict[str, Any]], day: date, price: float | None) -> tuple[float, float] | None:
    """Today's (foreign, institutional) net buy in ₩ from investor-flow rows (net shares × the row's
    close, else the last price), or None when today's row is not there (yet)."""
    r = investor_row(rows, day)
    if r is None:
        return None
    f, i = r.get("foreign_net"), r.get("inst_net")
    px = _num(r.get("close")) or price
    if f is None or i is None or px is None:
        return None
    return float(f) * px, float(i) * px


async def investor_rows(oms: OmsClient, symbol: str) -> list[dict[str, Any]]:
    data = await oms.investor_flow(symbol)
    rows = data.get("rows", []) if isinstance(data, dict) else data
    return [r for r in rows if isinstance(r, dict)]


async def program_net(oms: OmsClient, symbol: str) -> float | None:
    """Cumulative program net buy (₩) of ``symbol`` from the OMS's per-stock program endpoint
    (rows in the KIS shape: ``net_value``); raises MarketDataUnavailable when the OMS lacks it."""
    path = PROGRAM_PATH.format(symbol=symbol)
    try:
        data = await oms.request("GET", path)
    except OmsError as exc:
        if exc.status in (404, 501):
            raise MarketDataUnavailable(
                str(exc), method="GET", path=path, status=exc.status, detail=exc.detail
            ) from exc
        raise
    rows = data.get("rows", []) if isinstance(data, dict) else data
    for r in reversed(list(rows or [])):
        if isinstance(r, dict):
            v = r.get("net_value", r.get("net_buy_value"))
            if v is not None:
                return float(v)
    return None


# ---- static reference files -------------------------------------------------------------------------


def load_sector_map() -> tuple[dict[str, str], str | None]:
    """Symbol → sector from the static reference file (B8); (map, None) or ({}, why missing)."""
    try:
        from broker_core.paper.data import DataNotFound, KrxData
    except ImportError as exc:  # pragma: no cover - the reader ships with the platform
        return {}, f"reference data reader unavailable: {exc}"
    try:
        return KrxData().sector_map(), None
    except (DataNotFound, OSError) as exc:
        return {}, str(exc)


def kosdaq_listed() -> frozenset[str]:
    try:
        from broker_core.paper.index import KOSDAQ_LISTED
    except ImportError:  # pragma: no cover
        return frozenset()
    return KOSDAQ_LISTED


def universe_of(cfg: UniverseConfig, sectors: dict[str, str]) -> tuple[list[SymbolMeta], dict[str, str]]:
    """P1 listing: the config's symbols, else every symbol of the sector map; markets from the KOSDAQ
    listing of the reference data unless overridden."""
    symbols = list(cfg.symbols) or sorted(sectors)
    merged = {**sectors, **cfg.sector_overrides}
    kosdaq = kosdaq_listed()
    metas = [
        SymbolMeta(s, merged.get(s), cfg.market_overrides.get(s) or ("KOSDAQ" if s in kosdaq else "KOSPI"))
        for s in symbols
    ]
    return select_universe(metas, cfg)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None
