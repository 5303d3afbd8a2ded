"""The REST market-data proxy: rate budget, in-flight de-duplication and a short-lived cache.

Every upstream call takes one token of the account's :class:`~broker_core.ratelimit.RateLimiter`
at ``Priority.MARKET_DATA`` (orders and reconciliation sharing the limiter are served first) — unless
the broker adapter already charges each of its REST requests to that same limiter (``broker.limiter
is limiter``, the KIS adapter), in which case the proxy does not take a second token.
Identical requests in flight share one upstream call (ten strategies asking the same quote = one
call); answers are cached on the clock: quotes ``quote_ttl_s`` (1 s), minute bars until the next
minute boundary, daily bars and investor flow for the day (until the close while the session runs —
today's daily row appears only after 15:30, so a simulation never sees it early — then until
midnight). Failures are not cached.

Errors are typed so the API maps them: :class:`UnknownSymbol` (404), :class:`NotSupported` (501),
broker errors (RateLimited → 429, BrokerUnavailable → 503, others → 502).

Index symbols a broker declares in ``index_symbols`` (the paper exchange's derived KOSPI/KOSDAQ) pass
the known-symbol check of quotes and bars (intraday and daily): market data only — intents and
stream subscriptions keep their own symbol checks, so an index stays untradable.
"""

from __future__ import annotations

import asyncio
import logging
import time as time_module
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.markets.venue_market import KRX_MARKET, Market, session_close_time
from broker_core.models import Bar, Quote
from broker_core.ratelimit import Priority, RateLimiter

log = logging.getLogger("oms.marketdata.proxy")

FlowSource = Callable[[str, date, date], Any]
"""``(symbol, start, end) -> list of {"date", "foreign_net", "inst_net", ...}`` (sync or async)."""


class UnknownSymbol(LookupError):
    pass


class NotSupported(Exception):
    pass


@dataclass
class _Entry:
    value: Any
    expires: datetime


_FIELDS: dict[type, tuple[str, ...]] = {}


def quote_json(q: Quote) -> dict[str, Any]:
    """``asdict`` without its recursive deep copy (every field of a quote, or of a subclass such as a derived
    index quote, is flat)."""
    names = _FIELDS.get(type(q))
    if names is None:
        names = _FIELDS[type(q)] = tuple(f.name for f in fields(q))
    out = {name: getattr(q, name) for name in names}
    out["ts"] = q.ts.isoformat()
    return out


def bar_json(b: Bar) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts": b.ts.isoformat(),
        "open": b.open,
        "high": b.high,
        "low": b.low,
        "close": b.close,
        "volume": b.volume,
    }
    if b.extra:
        row.update(b.extra)
    return row


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


class MarketDataProxy:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        limiter: RateLimiter,
        *,
        cache: Any = None,
        metrics: Any = None,
        flow_source: FlowSource | None = None,
        known_intraday: Callable[[], Collection[str] | None] = lambda: None,
        known_daily: Callable[[], Collection[str] | None] = lambda: None,
        priority: Priority = Priority.MARKET_DATA,
        market: Market = KRX_MARKET,
    ) -> None:
        self.market = market
        if cache is None:
            from oms.settings import MarketDataCacheConfig

            cache = MarketDataCacheConfig()
        self.broker = broker
        self.clock = clock
        self.limiter = limiter
        self.cfg = cache
        self.metrics = metrics
        self.priority = priority
        self._flow_source = flow_source
        self._known_intraday = known_intraday
        self._known_daily = known_daily
        self._cache: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._waiters: dict[tuple[Any, ...], int] = {}
        self.upstream_log: deque[tuple[str, tuple[Any, ...], float]] = deque(maxlen=10_000)
        """(kind, key, limiter-monotonic time) of every upstream call, oldest first."""

    # ---- public API ---------------------------------------------------------------------------
    async def quote(self, symbol: str) -> dict[str, Any]:
        self._check_known(symbol, self._known_intraday(), index=True)

        async def call() -> dict[str, Any]:
            return quote_json(await self.broker.get_quote(symbol))

        return await self._get(
            "quote", ("quote", symbol), call, lambda now: now + timedelta(seconds=self.cfg.quote_ttl_s)
        )

    async def bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[dict[str, Any]]:
        self._check_known(symbol, self._known_intraday(), index=True)

        async def call() -> list[dict[str, Any]]:
            return [bar_json(b) for b in await self.broker.get_bars(symbol, start, end, interval)]

        def expires(now: datetime) -> datetime:
            cap = now + timedelta(seconds=self.cfg.bars_max_ttl_s)
            minute_end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            if end < now.replace(second=0, microsecond=0) - timedelta(days=1):
                return self._end_of_day(now, cap=now + timedelta(seconds=self.cfg.daily_max_ttl_s))
            return min(minute_end, cap)

        return await self._get("bars", ("bars", symbol, interval, start, end), call, expires)

    async def daily(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        self._check_known(symbol, self._known_daily(), index=True)
        end = min(end, self.last_complete_day())
        if end < start:
            return []

        async def call() -> list[dict[str, Any]]:
            return [bar_json(b) for b in await self.broker.get_daily_bars(symbol, start, end)]

        return await self._get("daily", ("daily", symbol, start, end), call, self._daily_expiry)

    async def investor_flow(self, symbol: str, start: date, end: date) -> list[dict[str, Any]]:
        method = getattr(self.broker, "get_investor_flow", None)
        source: FlowSource | None = method if callable(method) else self._flow_source
        if source is None:
            raise NotSupported(
                f"investor flow is not available from the {getattr(self.broker, 'name', '?')} "
                "broker adapter (no get_investor_flow) nor from a data source"
            )
        self._check_known(symbol, self._known_daily())
        end = min(end, self.last_complete_day())
        if end < start:
            return []

        async def call() -> list[dict[str, Any]]:
            rows = source(symbol, start, end)
            if isinstance(rows, Awaitable):
                rows = await rows
            return [_jsonable(dict(r)) for r in rows]

        return await self._get("investor_flow", ("flow", symbol, start, end), call, self._daily_expiry)

    def last_complete_day(self) -> date:
        """Today once the session closed (15:30 KST on KRX), else yesterday: daily rows are final only then."""
        now = self.clock.now().astimezone(self.market.tz)
        closed = now.time() >= session_close_time(self.market, now.date())
        return now.date() if closed else now.date() - timedelta(days=1)

    def waiting(self, kind: str, *key: Any) -> int:
        """Callers currently waiting on the in-flight upstream call for this key (tests, /slots)."""
        return self._waiters.get((kind, *key), 0)

    # ---- machinery ----------------------------------------------------------------------------
    def _check_known(self, symbol: str, known: Collection[str] | None, *, index: bool = False) -> None:
        if index and symbol in getattr(self.broker, "index_symbols", ()):
            return
        if known is not None and symbol not in known:
            raise UnknownSymbol(f"unknown symbol {symbol!r}")

    def _end_of_day(self, now: datetime, cap: datetime) -> datetime:
        tz = self.market.tz
        local = now.astimezone(tz)
        close = datetime.combine(local.date(), session_close_time(self.market, local.date()), tz)
        edge = close if local < close else datetime.combine(local.date() + timedelta(days=1), time(0), tz)
        return min(edge, cap)

    def _daily_expiry(self, now: datetime) -> datetime:
        return self._end_of_day(now, cap=now + timedelta(seconds=self.cfg.daily_max_ttl_s))

    def _count(self, kind: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.md_rest.labels(kind, result).inc()

    async def _get(
        self,
        kind: str,
        key: tuple[Any, ...],
        call: Callable[[], Awaitable[Any]],
        expires: Callable[[datetime], datetime],
    ) -> Any:
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires > self.clock.now():
                self._count(kind, "cache")
                return entry.value
            del self._cache[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._load(kind, key, call, expires), name=f"md:{kind}")
            self._inflight[key] = task
            task.add_done_callback(partial(self._done, key))
        else:
            self._count(kind, "shared")
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await asyncio.shield(task)
        finally:
            left = self._waiters[key] - 1
            if left:
                self._waiters[key] = left
            else:
                del self._waiters[key]

    def _done(self, key: tuple[Any, ...], task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: waiters got it; no "never retrieved" warning

    @property
    def adapter_meters(self) -> bool:
        """True when the broker adapter charges each of its REST requests to this same limiter itself (the
        KIS adapter built with ``limiter=``): the proxy must not take a second token for the same call."""
        return getattr(self.broker, "limiter", None) is self.limiter

    async def _load(
        self,
        kind: str,
        key: tuple[Any, ...],
        call: Callable[[], Awaitable[Any]],
        expires: Callable[[datetime], datetime],
    ) -> Any:
        if not self.adapter_meters:
            await self.limiter.acquire(self.priority)
        self.upstream_log.append((kind, key, self._limiter_time()))
        try:
            value = await call()
        except Exception as exc:
            self._count(kind, "error")
            log.warning("market data %s %s: upstream call failed (%s: %s)", kind, key[1], type(exc).__name__, exc)
            raise
        self._count(kind, "upstream")
        self._store(key, value, expires(self.clock.now()))
        return value

    def _limiter_time(self) -> float:
        """The limiter's own monotonic time (fake in tests), so the call log is comparable to its budget."""
        fn = getattr(self.limiter, "_monotonic", None)
        return float(fn()) if callable(fn) else time_module.monotonic()

    def prune_expired(self, now: datetime | None = None) -> int:
        """Drop every cached answer that has expired (the day rollover: yesterday's daily bars and flows,
        quotes); returns how many were dropped."""
        now = now or self.clock.now()
        expired = [k for k, e in self._cache.items() if e.expires <= now]
        for k in expired:
            del self._cache[k]
        return len(expired)

    @property
    def cached(self) -> int:
        """Answers held in the cache (expired ones included until pruned)."""
        return len(self._cache)

    def _store(self, key: tuple[Any, ...], value: Any, expires: datetime) -> None:
        self._cache[key] = _Entry(value, expires)
        self._cache.move_to_end(key)
        if len(self._cache) > self.cfg.max_entries:
            now = self.clock.now()
            for k in [k for k, e in self._cache.items() if e.expires <= now]:
                del self._cache[k]
            while len(self._cache) > self.cfg.max_entries:
                self._cache.popitem(last=False)
