"""The market-data hub: one upstream subscription per symbol, fanned out to every stream consumer.

- **Slots.** Every subscription goes through the account's :class:`~oms.marketdata.slots.SlotBook`
  (leases per strategy, priorities, KST windows, eviction). The hub keeps the broker's subscription
  set equal to the book's slot set, always unsubscribing before subscribing, so the broker never
  holds more than the capacity — not even for a moment during a hand-over.
- **Reference counting.** A consumer (one ``/api/v1/stream`` socket) wants symbols; a strategy keeps
  its lease on a symbol while any of its consumers wants it; the upstream subscription stays while
  any lease (of any strategy, or of the OMS itself) holds the slot. Unsubscribing or disconnecting
  releases exactly what nobody else needs.
- **Fan-out.** One reader task consumes ``broker.ticks()``; each trade is handed to the tick hooks
  (the OMS core's held-stop triggers), encoded to JSON once and offered to every consumer routed to
  the symbol. Offering never blocks (see :mod:`oms.marketdata.consumer`): a slow consumer is
  conflated, the reader is never stalled, order/fill events are never dropped.
- **Watchdog.** A housekeeping task driven by the clock evaluates lease windows (exactly at each
  window end) and, every ``check_interval_s``, whether the upstream went stale: no tick on any
  subscribed symbol for ``stale_after_s`` of clock time while the market is open (or the tick
  iterator ended). It then reconnects — the adapter's ``reconnect_market_data()`` when it has one,
  else unsubscribe + subscribe of every symbol and a fresh ``ticks()`` iterator — and tells the
  affected consumers about the gap.

Control messages pushed to consumers (critical queue, never conflated)::

    {"type": "evicted", "symbols": [...], "reason": "PREEMPTED" | "WINDOW_END" | "UPSTREAM_ERROR", "detail": "..."}
    {"type": "gap", "symbols": [...], "since": iso, "until": iso, "reason": "UPSTREAM_STALE" | "UPSTREAM_ENDED"}
    {"type": "vi", "symbol": ..., "active": bool, "ts": iso}   (``publish_symbol_event``: subscribers and holders)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from broker_core.broker import Broker
from broker_core.clock import Clock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import SubscriptionCapacityExceeded
from broker_core.markets.venue_market import KRX_MARKET, Market
from broker_core.models import Tick
from oms.marketdata.consumer import StreamBus, StreamConsumer
from oms.marketdata.slots import SYSTEM_OWNER, LeasePolicy, Release, RequestResult, SlotBook

log = logging.getLogger("oms.marketdata")

TickHook = Callable[[Tick], None]
CHANNELS = frozenset({"trades", "quotes"})


def _policy(cfg: Any, market: Market) -> LeasePolicy:
    return LeasePolicy(priority=cfg.priority, max_slots=cfg.max_slots, start=cfg.start, end=cfg.end, tz=market.tz)


class MarketDataHub:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        bus: StreamBus,
        *,
        config: Any = None,
        metrics: Any = None,
        known_symbols: Callable[[], Collection[str] | None] = lambda: None,
        position_holders: Callable[[str], Collection[str]] = lambda symbol: (),
        working_owners: Callable[[str], Collection[str]] = lambda symbol: (),
        market_open: Callable[[datetime], bool] | None = None,
        market: Market = KRX_MARKET,
    ) -> None:
        if config is None:
            from oms.settings import MarketDataConfig

            config = MarketDataConfig()
        self.broker = broker
        self.clock = clock
        self.bus = bus
        self.config = config
        self.metrics = metrics
        self.broker_capacity = int(getattr(broker, "subscription_capacity", 0) or 0)
        capacity = self.broker_capacity
        if config.capacity is not None:
            if config.capacity > capacity:
                log.warning(
                    "marketdata.capacity=%d is above the broker's %d subscriptions; using %d",
                    config.capacity,
                    capacity,
                    capacity,
                )
            capacity = min(capacity, config.capacity)
        self.book = SlotBook(
            capacity,
            {k: _policy(v, market) for k, v in config.leases.items()},
            _policy(config.default_lease, market),
            position_holders=position_holders,
            working_owners=working_owners,
            tz=market.tz,
        )
        self.stale_after = timedelta(seconds=config.stale_after_s)
        self.check_interval = float(config.check_interval_s)
        self._known = known_symbols
        self._holders = position_holders
        self._market_open = market_open or market.continuous
        self._lock = asyncio.Lock()
        self._consumers: dict[StreamConsumer, None] = {}
        """Connected consumers in connection order (a dict, not a set: fan-out order must not depend on
        memory addresses, so a replayed run delivers to its strategies in the same order every time)."""
        self._route: dict[str, tuple[StreamConsumer, ...]] = {}
        self._upstream: set[str] = set()
        self._tick_hooks: list[TickHook] = []
        self._reader: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._running = False
        self.ticks_in = 0
        """Ticks read from the broker."""
        self.fanout = 0
        """Market events offered to consumers (ticks × routed consumers)."""
        self.reconnects = 0
        self.upstream_calls: list[tuple[str, tuple[str, ...]]] = []
        """Broker subscription calls made, in order (``subscribe``/``unsubscribe``, symbols) — kept short."""
        self._ticks_at_check = 0
        self._last_progress: datetime | None = None
        self._was_open = False
        self._reported = {"ticks": 0, "fanout": 0, "conflated": 0}
        self._conflated_gone = 0

    # ---- lifecycle ----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.book.capacity

    def add_tick_hook(self, hook: TickHook) -> None:
        self._tick_hooks.append(hook)

    async def start(self) -> None:
        self._running = True
        self._last_progress = self.clock.now()
        self._start_reader()
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="marketdata-housekeeping")
        self._set_gauges()

    async def stop(self) -> None:
        self._running = False
        for task in (self._housekeeper, self._reader):
            if task is not None:
                task.cancel()
        for task in (self._housekeeper, self._reader):
            if task is not None:
                with suppress(asyncio.CancelledError, Exception):
                    await task
        self._housekeeper = self._reader = None

    # ---- consumers ----------------------------------------------------------------------------
    def connect(self, strategy_id: str, owner: str | None = None) -> StreamConsumer:
        """A new consumer: ``strategy_id`` routes its order/fill events (``*`` = all), ``owner`` holds leases."""
        owner = (owner or strategy_id).upper()
        if owner == SYSTEM_OWNER:
            owner = f"{SYSTEM_OWNER}_CLIENT"
        consumer = self.bus.subscribe(strategy_id, owner)
        self._consumers[consumer] = None
        return consumer

    @property
    def consumers(self) -> list[StreamConsumer]:
        return list(self._consumers)

    async def subscribe(
        self,
        consumer: StreamConsumer,
        symbols: Iterable[str],
        channels: Iterable[str] = ("trades", "quotes"),
        keep: Iterable[str] | None = None,
    ) -> tuple[list[str], dict[str, tuple[str, str]]]:
        """Lease and subscribe; returns (granted symbols, {denied symbol: (reason code, detail)})."""
        chans = frozenset(channels)
        async with self._lock:
            now = self.clock.now()
            known = self._known()
            denied: dict[str, tuple[str, str]] = {}
            wanted: list[str] = []
            for s in dict.fromkeys(symbols):
                if known is not None and s not in known:
                    denied[s] = (ReasonCode.UNKNOWN_SYMBOL, f"{s} is not a symbol of this market/feed")
                    self._count("deny", ReasonCode.UNKNOWN_SYMBOL, consumer.owner)
                    log.info("slot DENY %s %s reason=UNKNOWN_SYMBOL", consumer.owner, s)
                else:
                    wanted.append(s)
            result = self.book.request(consumer.owner, wanted, now, keep)
            self._record(result)
            for d in result.denied:
                denied[d.symbol] = (d.reason, d.detail)
            granted = [g.symbol for g in result.granted]
            self._apply_releases(result.released)
            failed = await self._sync_upstream()
            for s in failed:
                if s in granted:
                    granted.remove(s)
                    denied[s] = (ReasonCode.UPSTREAM_ERROR, failed[s])
            for s in granted:
                consumer.wants[s] = chans
                consumer.symbols.add(s)
            consumer.channels |= chans
            self._reroute(granted)
            self._set_gauges()
        return granted, denied

    async def unsubscribe(
        self, consumer: StreamConsumer, symbols: Iterable[str], reason: str = "UNSUBSCRIBED"
    ) -> list[str]:
        async with self._lock:
            gone = self._drop_wants(consumer, symbols, reason)
            await self._sync_upstream()
            self._set_gauges()
        return gone

    async def disconnect(self, consumer: StreamConsumer) -> None:
        """The consumer's socket is gone: release everything it alone held."""
        async with self._lock:
            self._consumers.pop(consumer, None)
            self.bus.unsubscribe(consumer)
            self._conflated_gone += consumer.conflated
            self._drop_wants(consumer, list(consumer.wants), "DISCONNECTED")
            await self._sync_upstream()
            self._set_gauges()

    def _drop_wants(self, consumer: StreamConsumer, symbols: Iterable[str], reason: str) -> list[str]:
        gone = [s for s in dict.fromkeys(symbols) if s in consumer.wants]
        for s in gone:
            del consumer.wants[s]
            consumer.symbols.discard(s)
        still = {s for c in self._consumers if c.owner == consumer.owner for s in c.wants}
        releases = self.book.release(consumer.owner, [s for s in gone if s not in still], reason)
        for r in releases:
            self._count("release", reason, r.owner)
            log.info(
                "slot RELEASE %s %s reason=%s slot_freed=%s used=%d/%d",
                r.owner,
                r.symbol,
                reason,
                r.slot_freed,
                self.book.used,
                self.book.capacity,
            )
        self._reroute(gone)
        return gone

    # ---- the OMS's own subscriptions (held stop entries) ---------------------------------------
    async def acquire_system(self, symbols: Iterable[str]) -> None:
        """Lease for the OMS itself (never evicted); SubscriptionCapacityExceeded when refused."""
        async with self._lock:
            result = self.book.request(SYSTEM_OWNER, symbols, self.clock.now())
            self._record(result)
            self._apply_releases(result.released)
            failed = await self._sync_upstream()
            self._set_gauges()
        problems = {d.symbol: f"{d.reason}: {d.detail}" for d in result.denied} | failed
        if problems:
            raise SubscriptionCapacityExceeded("; ".join(f"{s}: {p}" for s, p in problems.items()))

    async def release_system(self, symbols: Iterable[str]) -> None:
        async with self._lock:
            for r in self.book.release(SYSTEM_OWNER, symbols, "UNSUBSCRIBED"):
                self._count("release", "UNSUBSCRIBED", r.owner)
            await self._sync_upstream()
            self._set_gauges()

    # ---- upstream -----------------------------------------------------------------------------
    async def _sync_upstream(self) -> dict[str, str]:
        """Make the broker's subscriptions equal the book's slots (unsubscribe first); returns the
        symbols that could not be subscribed (their leases are rolled back) with the error."""
        desired = self.book.symbols()
        remove = sorted(self._upstream - desired)
        if remove:
            try:
                await self.broker.unsubscribe_ticks(remove)
                self._note_call("unsubscribe", remove)
                self._upstream.difference_update(remove)
            except Exception as exc:
                log.error("upstream unsubscribe %s failed (%s); retried at the next check", remove, exc)
        add = sorted(desired - self._upstream)
        if not add:
            return {}
        if not self._upstream:
            self._last_progress = self.clock.now()
        try:
            await self.broker.subscribe_ticks(add)
            self._note_call("subscribe", add)
            self._upstream.update(add)
            return {}
        except Exception as exc:
            text = f"broker refused the subscription: {type(exc).__name__}: {exc}"
            log.error("upstream subscribe %s failed (%s); leases rolled back", add, exc)
            releases: list[Release] = []
            for s in add:
                for owner in sorted(self.book.holders(s)):
                    releases.extend(self.book.release(owner, [s], ReasonCode.UPSTREAM_ERROR))
            self._apply_releases(releases, detail=text)
            return {s: text for s in add}

    def _note_call(self, kind: str, symbols: list[str]) -> None:
        self.upstream_calls.append((kind, tuple(symbols)))
        if len(self.upstream_calls) > 1000:
            del self.upstream_calls[:500]

    @property
    def upstream(self) -> frozenset[str]:
        return frozenset(self._upstream)

    def _start_reader(self) -> None:
        self._reader = asyncio.create_task(self._read(self.broker.ticks()), name="marketdata-reader")

    async def _stop_reader(self) -> None:
        task, self._reader = self._reader, None
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task

    async def _read(self, stream: AsyncIterator[Tick]) -> None:
        on_tick = self._on_tick
        try:
            async for tick in stream:
                on_tick(tick)
            if self._running:
                log.warning("upstream tick stream ended; reconnecting at the next check")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("upstream tick stream failed; reconnecting at the next check")
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with suppress(Exception):
                    await aclose()

    def _on_tick(self, tick: Tick) -> None:
        self.ticks_in += 1
        for hook in self._tick_hooks:
            try:
                hook(tick)
            except Exception:
                log.exception("tick hook failed on %s", tick.symbol)
        route = self._route.get(tick.symbol)
        if route:
            side = tick.aggressor
            text = json.dumps(
                {
                    "type": "trade",
                    "symbol": tick.symbol,
                    "price": tick.price,
                    "qty": tick.qty,
                    "ts": tick.ts.isoformat(),
                    "side": side.value if side is not None else None,
                }
            )
            key = ("trade", tick.symbol)
            for consumer in route:
                consumer.put_encoded(key, text)
            self.fanout += len(route)

    def publish_symbol_event(self, symbol: str, event: dict[str, Any]) -> int:
        """A control event about ``symbol`` (``vi``) to every consumer subscribed to it and to every consumer
        of a strategy holding it, once each (critical queue: never conflated). Returns how many got it."""
        holders = set(self._holders(symbol))
        targets = [c for c in self._consumers if symbol in c.wants or c.strategy_id in holders]
        for consumer in targets:
            consumer.put_critical(event)
        return len(targets)

    def _reroute(self, symbols: Iterable[str]) -> None:
        for s in set(symbols):
            route = tuple(c for c in self._consumers if "trades" in c.wants.get(s, ()))
            if route:
                self._route[s] = route
            else:
                self._route.pop(s, None)

    # ---- releases, windows, watchdog ------------------------------------------------------------
    def _apply_releases(self, releases: list[Release], *, detail: str | None = None) -> None:
        """Leases ended by the book (preemption, window end, upstream error): drop the symbols from
        the owners' consumers and tell them."""
        if not releases:
            return
        by_consumer: dict[tuple[StreamConsumer, str, str], list[str]] = {}
        for r in releases:
            event = (
                "evict"
                if r.reason == ReasonCode.PREEMPTED
                else "expire"
                if r.reason == ReasonCode.WINDOW_END
                else "release"
            )
            self._count(event, r.reason, r.owner)
            (log.warning if r.reason != ReasonCode.WINDOW_END else log.info)(
                "slot %s %s %s reason=%s (%s) used=%d/%d",
                event.upper(),
                r.owner,
                r.symbol,
                r.reason,
                detail or r.detail,
                self.book.used,
                self.book.capacity,
            )
            for c in self._consumers:
                if c.owner == r.owner and r.symbol in c.wants:
                    del c.wants[r.symbol]
                    c.symbols.discard(r.symbol)
                    by_consumer.setdefault((c, r.reason, detail or r.detail), []).append(r.symbol)
        for (c, reason, text), syms in by_consumer.items():
            c.put_critical({"type": "evicted", "symbols": syms, "reason": reason, "detail": text})
        self._reroute(r.symbol for r in releases)

    def _record(self, result: RequestResult) -> None:
        for g in result.granted:
            if g.reason != ReasonCode.ALREADY_LEASED:
                self._count("grant", g.reason, g.owner)
                log.info(
                    "slot GRANT %s %s reason=%s %s used=%d/%d",
                    g.owner,
                    g.symbol,
                    g.reason,
                    g.detail,
                    self.book.used,
                    self.book.capacity,
                )
        for d in result.denied:
            self._count("deny", d.reason, d.owner)
            log.info("slot DENY %s %s reason=%s (%s)", d.owner, d.symbol, d.reason, d.detail)

    async def check(self) -> None:
        """One housekeeping step: window ends, upstream resync, staleness watchdog, metrics."""
        now = self.clock.now()
        async with self._lock:
            released = self.book.expire(now)
            self._apply_releases(released)
            if released or self._upstream != self.book.symbols():
                await self._sync_upstream()
        if self._running:
            if self._reader is None or self._reader.done():
                await self.reconnect(ReasonCode.UPSTREAM_ENDED)
            else:
                open_ = self._market_open(now)
                if self.ticks_in != self._ticks_at_check or not self._upstream or not open_ or not self._was_open:
                    # progress, nothing to watch, or the market (re)opened since the last check: new baseline
                    self._ticks_at_check = self.ticks_in
                    self._last_progress = now
                elif self._last_progress is not None and now - self._last_progress >= self.stale_after:
                    await self.reconnect(ReasonCode.UPSTREAM_STALE)
                self._was_open = open_
        self._set_gauges()

    async def reconnect(self, reason: str) -> None:
        """Re-establish the upstream feed and re-register every current subscription."""
        async with self._lock:
            now = self.clock.now()
            since = self._last_progress or now
            symbols = sorted(self._upstream)
            log.warning(
                "upstream market data reconnect reason=%s: no tick since %s; %d symbol(s) resubscribed",
                reason,
                since.isoformat(),
                len(symbols),
            )
            await self._stop_reader()
            hook = getattr(self.broker, "reconnect_market_data", None)
            stream = self.broker.ticks()
            try:
                if callable(hook):
                    if await hook() is False:
                        log.error(
                            "upstream reconnect: the adapter's session is not back yet; retried at the next check"
                        )
                elif symbols:
                    await self.broker.unsubscribe_ticks(symbols)
                    self._note_call("unsubscribe", symbols)
                    self._upstream.difference_update(symbols)
                    await self.broker.subscribe_ticks(symbols)
                    self._note_call("subscribe", symbols)
                    self._upstream.update(symbols)
            except Exception as exc:
                log.error("upstream resubscribe failed (%s); retried at the next check", exc)
            self._reader = asyncio.create_task(self._read(stream), name="marketdata-reader")
            self._last_progress = now
            self._ticks_at_check = self.ticks_in
            self.reconnects += 1
            if self.metrics is not None:
                self.metrics.md_reconnects.labels(reason).inc()
            for c in self._consumers:
                affected = sorted(s for s in c.wants if s in symbols)
                if affected:
                    c.put_critical(
                        {
                            "type": "gap",
                            "symbols": affected,
                            "since": since.isoformat(),
                            "until": now.isoformat(),
                            "reason": reason,
                        }
                    )

    async def _housekeeping(self) -> None:
        while True:
            now = self.clock.now()
            wake = now + timedelta(seconds=self.check_interval)
            edge = self.book.next_edge(now)
            if edge is not None and edge < wake:
                wake = edge
            await self.clock.sleep_until(wake)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("market-data housekeeping failed")

    # ---- metrics and views ----------------------------------------------------------------------
    def _count(self, event: str, reason: str, owner: str) -> None:
        if self.metrics is not None:
            self.metrics.md_slot_events.labels(event, reason, owner).inc()

    @property
    def conflated(self) -> int:
        return self._conflated_gone + sum(c.conflated for c in self._consumers)

    def _set_gauges(self) -> None:
        m = self.metrics
        if m is None:
            return
        m.md_slots_used.set(self.book.used)
        m.md_slot_capacity.set(self.book.capacity)
        m.md_consumers.set(len(self._consumers))
        for name, value, counter in (
            ("ticks", self.ticks_in, m.md_ticks),
            ("fanout", self.fanout, m.md_fanout),
            ("conflated", self.conflated, m.md_conflated),
        ):
            delta = value - self._reported[name]
            if delta > 0:
                counter.inc(delta)
                self._reported[name] = value

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        snap: dict[str, Any] = dict(self.book.snapshot(now))
        snap.update(
            {
                "broker": getattr(self.broker, "name", "?"),
                "broker_capacity": self.broker_capacity,
                "upstream": sorted(self._upstream),
                "consumers": [
                    {
                        "strategy_id": c.strategy_id,
                        "owner": c.owner,
                        "symbols": sorted(c.wants),
                        "market_backlog": c.market_backlog,
                        "conflated": c.conflated,
                    }
                    for c in sorted(self._consumers, key=lambda c: (c.owner, id(c)))
                ],
                "ticks": self.ticks_in,
                "reconnects": self.reconnects,
                "last_progress": self._last_progress.isoformat() if self._last_progress else None,
                "stale_after_s": self.stale_after.total_seconds(),
                "now": now.isoformat(),
            }
        )
        return snap


class HubBrokerView:
    """The broker as the OMS core sees it: everything delegates to the broker, except tick
    subscriptions, which become slot leases of the OMS itself (``_OMS``) in the hub."""

    def __init__(self, broker: Broker, hub: MarketDataHub) -> None:
        self._broker = broker
        self._hub = hub

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        await self._hub.acquire_system(symbols)

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        await self._hub.release_system(symbols)
