"""KMP market data through the OMS REST proxy: the premarket cache (K1–K2), the 09:15 scan bars (K8),
REST quotes (static-VI reference, bid/ask) and the static listing / sector map (B8).

Everything that is market data goes through :class:`~strategies.sdk.client.OmsClient` (the OMS's
``/api/v1/marketdata/...`` proxy, which applies the account's REST budget and caches); the strategy
never talks to a broker. Only *static reference files* are read locally: the listing and the sector
map (B8: "a static file refreshed monthly"), from the KRX reference data directory
(``TRADER_DATA_DIR`` or ``../shared/data/krx``) when the config does not list the universe.

Calls (per universe symbol, before 09:00):

* daily bars: one call covering the 150 calendar days before the day (≈ 100 sessions ≥ 65);
* 1m bars 09:00–09:59: one call per session for the last ``vol_base_sessions`` (20) sessions — the
  dates of the daily bars, so no exchange calendar is needed — (60 bars each, one page of a
  broker's minute-bar API), newest first; a symbol whose two newest
  sessions have no minute bars at all is taken to have no minute history and its older sessions are
  not asked for (daily-only tickers of the reference data). Sessions already held by the
  :class:`MinuteHistory` passed in are not asked for again (a past session's bars are final), so a
  process that runs several days (production, ``trader sim``/``backtest``) asks for one new session
  per symbol per day, not twenty.

Failures never block: a failed call leaves that part of the cache empty and is counted; a symbol
without daily bars or minute history is reported in ``missing`` (the engine logs it as a universe
drop). When the proxy itself is absent (the OMS answers ``404 Not Found`` for the route) the load
stops at the first call and reports ``unavailable`` — the strategy logs ``KMP_DATA_UNAVAILABLE`` and
keeps running (it still manages positions; it just cannot scan).

**[resolved]** baseline sessions = the sessions of the daily bars (minus those whose minute call
failed), so a session without minute bars for the symbol counts as zero volume (B2), as in
``strategies.kmp.universe``.
"""

from __future__ import annotations

import asyncio
import logging
import time as wall
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from broker_core.clock import KST
from strategies.kmp.config import KmpParams, UniverseConfig
from strategies.kmp.universe import SymbolCache, SymbolMeta, build_symbol_cache, select_universe
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import MarketDataUnavailable, OmsError

log = logging.getLogger("strategies.kmp.data")

DAILY_CALENDAR_DAYS = 150
"""Daily bars asked for: 150 calendar days ≈ 100 sessions ≥ the 65 SMA60 + slope need."""
CONCURRENCY = 8
"""REST calls in flight at once (the OMS's proxy budgets and queues them further)."""
EMPTY_SESSIONS_BEFORE_SKIP = 2

T = TypeVar("T")


class ProxyMissing(Exception):
    """The OMS has no market-data proxy route (404 ``Not Found`` from the router itself)."""


class NoData(Exception):
    """The proxy answered 404 for this symbol (unknown to the broker, or no data)."""


def route_missing(exc: MarketDataUnavailable) -> bool:
    """True when the 404 came from the web framework (no such route), not from the proxy."""
    return exc.detail == "Not Found"


@dataclass
class PremarketData:
    """The result of :func:`load_premarket`."""

    day: date
    caches: list[SymbolCache] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    """Symbol → why it has no usable cache part (``NO_DAILY``, ``NO_MINUTE_HISTORY``, ``DATA_ERROR``)."""
    unavailable: str | None = None
    """Set when the proxy is absent or every call failed: why."""
    calls: int = 0
    failures: int = 0
    wall_seconds: float = 0.0
    sessions: list[date] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "day": str(self.day),
            "symbols": len(self.caches),
            "trend_ok": sum(c.trend_ok for c in self.caches),
            "with_baselines": sum(c.value_base is not None and c.vol1m_base is not None for c in self.caches),
            "missing": len(self.missing),
            "calls": self.calls,
            "failures": self.failures,
            "wall_seconds": round(self.wall_seconds, 2),
            "unavailable": self.unavailable,
        }


class MinuteHistory:
    """The 09:00–09:59 bars of past sessions per symbol, kept across days by a long-running process."""

    def __init__(self) -> None:
        self._bars: dict[str, dict[date, list[Bar]]] = {}

    def get(self, symbol: str, day: date) -> list[Bar] | None:
        return self._bars.get(symbol, {}).get(day)

    def put(self, symbol: str, day: date, bars: list[Bar]) -> None:
        self._bars.setdefault(symbol, {})[day] = bars

    def prune(self, keep_from: date) -> None:
        """Forget sessions before ``keep_from`` (out of the baseline window)."""
        for sym, days in self._bars.items():
            self._bars[sym] = {d: b for d, b in days.items() if d >= keep_from}

    def sessions_held(self) -> int:
        return sum(len(days) for days in self._bars.values())


class _Budget:
    """Bounded concurrency plus call/failure counts; the first 'route missing' aborts the rest."""

    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.calls = 0
        self.failures = 0
        self.missing_route = False

    async def call(self, what: Callable[[], Awaitable[T]]) -> T | None:
        """Run one call; None on failure (counted), :class:`NoData` on a 404 for the symbol,
        :class:`ProxyMissing` when the route itself does not exist."""
        if self.missing_route:
            raise ProxyMissing()
        async with self.sem:
            if self.missing_route:
                raise ProxyMissing()
            self.calls += 1
            try:
                return await what()
            except MarketDataUnavailable as exc:
                if route_missing(exc):
                    self.missing_route = True
                    raise ProxyMissing() from exc
                raise NoData(str(exc)) from exc
            except OmsError as exc:
                self.failures += 1
                log.debug("market-data call failed: %s", exc)
                return None


async def load_premarket(
    oms: OmsClient,
    day: date,
    metas: Sequence[SymbolMeta],
    params: KmpParams,
    universe: UniverseConfig | None = None,
    *,
    concurrency: int = CONCURRENCY,
    history: MinuteHistory | None = None,
) -> PremarketData:
    """K2 caches of ``metas`` for session ``day`` from the OMS proxy (see the module docstring).

    ``history``: past sessions' minute bars already fetched (read, completed and pruned here)."""
    started = wall.monotonic()
    result = PremarketData(day=day)
    budget = _Budget(concurrency)
    overrides = dict(universe.sector_overrides) if universe else {}
    n_minute = max(params.vol_base_sessions, params.value_base_sessions)
    lo, hi = params.vol_base_start, _minus_minute(params.vol_base_end)
    first, last = day - timedelta(days=DAILY_CALENDAR_DAYS), day - timedelta(days=1)
    dailies: dict[str, list[Bar] | None] = {}
    minutes: dict[str, tuple[list[Bar], list[date]]] = {}

    async def daily(meta: SymbolMeta) -> None:
        try:
            bars = await budget.call(lambda: oms.daily(meta.symbol, first, last))
        except NoData:
            bars = []
        dailies[meta.symbol] = None if bars is None else [b for b in bars if b.start.astimezone(KST).date() < day]

    async def minute(meta: SymbolMeta) -> None:
        got: list[Bar] = []
        used: list[date] = []
        empty_run = 0
        for d in reversed(result.sessions):
            inside = history.get(meta.symbol, d) if history is not None else None
            if inside is None:
                try:
                    bars = await budget.call(
                        lambda d=d: oms.bars(meta.symbol, datetime.combine(d, lo, KST), datetime.combine(d, hi, KST))
                    )
                except NoData:
                    break  # the proxy does not know the symbol's minutes: no minute history
                if bars is None:
                    continue  # a failed call: this session does not count in the baselines
                inside = [
                    b
                    for b in bars
                    if b.start.astimezone(KST).date() == d and lo <= b.start.astimezone(KST).time() <= hi
                ]
                if history is not None:
                    history.put(meta.symbol, d, inside)
            used.append(d)
            got.extend(inside)
            empty_run = empty_run + 1 if not inside and not got else 0
            if empty_run >= EMPTY_SESSIONS_BEFORE_SKIP:
                break
        minutes[meta.symbol] = (got, sorted(used))

    try:
        await _fan_out(daily, list(metas))
        # the sessions are the dates of the daily bars (no calendar needed): the last n before the day
        result.sessions = sorted({b.start.astimezone(KST).date() for bars in dailies.values() if bars for b in bars})[
            -n_minute:
        ]
        if history is not None and result.sessions:
            history.prune(result.sessions[0])
        await _fan_out(minute, list(metas))
    except ProxyMissing:
        result.unavailable = "the OMS has no market-data proxy (GET /api/v1/marketdata/... → 404 Not Found)"
    else:
        for meta in metas:
            d_bars = dailies.get(meta.symbol)
            m_bars, used = minutes.get(meta.symbol, ([], []))
            if d_bars is None and not used:
                result.missing[meta.symbol] = "DATA_ERROR"
                continue
            if not d_bars:
                result.missing[meta.symbol] = "NO_DAILY"
            elif not m_bars:
                result.missing[meta.symbol] = "NO_MINUTE_HISTORY"
            result.caches.append(
                build_symbol_cache(
                    meta,
                    d_bars or [],
                    m_bars,
                    params,
                    sessions=used if m_bars else None,
                    today=day,
                    sector_overrides=overrides,
                )
            )
        if not result.sessions and metas:
            result.unavailable = "no daily bars through the proxy: sessions unknown, no baselines"
    result.calls, result.failures = budget.calls, budget.failures
    if result.unavailable is None and metas and budget.calls and budget.failures == budget.calls:
        result.unavailable = f"every market-data call failed ({budget.failures})"
    result.caches.sort(key=lambda c: c.symbol)
    result.wall_seconds = wall.monotonic() - started
    return result


async def scan_bars(
    oms: OmsClient, day: date, symbols: Iterable[str], params: KmpParams, *, concurrency: int = 16
) -> tuple[dict[str, list[Bar]], int, str | None]:
    """K8: REST 1m bars of ``or_start``–``or_end`` (09:00–09:14) for every symbol, one call each.

    Returns (bars by symbol, failed calls, why unavailable or None).
    """
    budget = _Budget(concurrency)
    start = datetime.combine(day, params.or_start, KST)
    end = datetime.combine(day, _minus_minute(params.or_end), KST)
    out: dict[str, list[Bar]] = {}

    async def one(sym: str) -> None:
        try:
            bars = await budget.call(lambda: oms.bars(sym, start, end))
        except NoData:
            return
        if bars is not None:
            out[sym] = [b for b in bars if start <= b.start <= end]

    syms = sorted(set(symbols))
    try:
        await _fan_out(one, syms)
    except ProxyMissing:
        return {}, budget.failures, "the OMS has no market-data proxy (404 Not Found)"
    why = f"every scan call failed ({budget.failures})" if syms and budget.failures == budget.calls else None
    return out, budget.failures, why


async def minute_bars(oms: OmsClient, symbol: str, start: datetime, end: datetime) -> list[Bar] | None:
    """Completed REST 1m bars of ``symbol`` with start in [start, end]; None when unavailable."""
    try:
        return [b for b in await oms.bars(symbol, start, end) if start <= b.start <= end]
    except OmsError:
        return None


@dataclass(frozen=True)
class QuoteView:
    """The parts of a REST quote KMP uses (names as the OMS proxy / broker ``Quote`` spell them)."""

    symbol: str
    ts: datetime | None
    last: float | None
    bid: float | None
    ask: float | None
    vi_ref: float | None
    prev_close: float | None
    halted: bool = False

    @classmethod
    def of(cls, symbol: str, data: dict[str, Any]) -> QuoteView:
        raw_ts = data.get("ts") or data.get("timestamp")
        ts = None
        if isinstance(raw_ts, str):
            try:
                ts = datetime.fromisoformat(raw_ts)
                ts = ts if ts.tzinfo else ts.replace(tzinfo=KST)
            except ValueError:
                ts = None
        vi = next((data[k] for k in ("vi_ref_price", "vi_ref", "static_vi_ref") if data.get(k)), None)
        return cls(
            symbol=symbol,
            ts=ts,
            last=_num(data.get("last") or data.get("price")),
            bid=_num(data.get("bid")),
            ask=_num(data.get("ask")),
            vi_ref=_num(vi),
            prev_close=_num(data.get("prev_close")),
            halted=bool(data.get("halted")),
        )


async def quote(oms: OmsClient, symbol: str) -> QuoteView:
    """One REST quote through the proxy (raises the SDK's OmsError family)."""
    data = await oms.quote(symbol)
    return QuoteView.of(symbol, data.get("quote", data) if isinstance(data.get("quote"), dict) else data)


# ---- static reference files (listing, sector map) --------------------------------------------------


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


def listing(universe: UniverseConfig, sectors: dict[str, str]) -> list[SymbolMeta]:
    """The symbols KMP considers before K1: the config's list, else every symbol of the sector map."""
    symbols = list(universe.symbols) or sorted(sectors)
    merged = {**sectors, **universe.sector_overrides}
    return [SymbolMeta(symbol=s, sector=merged.get(s)) for s in symbols]


def universe_of(universe: UniverseConfig, sectors: dict[str, str]) -> tuple[list[SymbolMeta], dict[str, str]]:
    """K1 over :func:`listing` → (kept, {symbol: drop reason})."""
    return select_universe(listing(universe, sectors), universe)


async def _fan_out(job: Callable[[Any], Awaitable[None]], items: list[Any]) -> None:
    """``job`` over ``items``: the first alone (a missing proxy costs one call, not hundreds), then
    the rest concurrently; ProxyMissing if any saw the route missing; other errors propagate."""
    if not items:
        return
    await job(items[0])
    results = await asyncio.gather(*(job(i) for i in items[1:]), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if any(isinstance(e, ProxyMissing) for e in errors):
        raise ProxyMissing()
    if errors:
        raise errors[0]


def _minus_minute(t: time) -> time:
    """The last 1m bar start before ``t`` (bars are labelled by their start; ends are exclusive)."""
    return (datetime.combine(date(2000, 1, 1), t) - timedelta(minutes=1)).time()


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None
