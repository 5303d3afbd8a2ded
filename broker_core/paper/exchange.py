"""The paper exchange: walks a TickFeed on a clock, matches through a MatchingEngine, fans out.

``run()`` replays the feed. With ``pace`` it waits for each print's time on the clock (a
ManualClock is instead *set* to the print's time, so the feed drives a test's time); without
``pace`` it goes as fast as it can. Prints earlier than the clock at start are recorded (last
price, volume, VI state, bars) but neither matched nor published, so an exchange can join a
session that is already under way. Working orders expire at 15:30 KST if the tape goes past the
close, else when the feed ends; then ``done`` is set.

With a ``state_store`` (``persistence.PaperStateStore``) the account survives restarts: the
stored session is loaded on construction, and every change of the account (submit — accepted or
rejected —, cancel, the fills of a print, the close) is saved *before* the result is returned or
the update published. A resumed exchange only observes the prints up to the engine's
``matched_through`` mark as well as those before the clock's start, so no print is matched twice.

Every subscriber owns an asyncio.Queue: order updates are never dropped (unbounded); a tick
queue is bounded and drops its oldest tick when a slow reader lets it fill. With VI simulated, each
published print carries the symbol's VI state (``Tick.vi``): True from the triggering print until the
halt's end (the triggering print itself is not matched), False otherwise.
"""

from __future__ import annotations

import asyncio
import re
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

from broker_core.clock import KST, Clock, ManualClock
from broker_core.errors import BrokerError, OutcomeUnknown
from broker_core.market_rules import CLOSE
from broker_core.models import Bar, BrokerOrder, OrderRequest, OrderUpdate, Tick
from broker_core.paper.feed import TickFeed
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.persistence import PaperStateError, PaperStateStore

SESSION_PREP = dtime(8, 0)
"""When the next day of a multi-day replay opens on the exchange (pre-market; orders wait for 09:00)."""

DEFAULT_TICK_QUEUE = 10_000


class TickSubscription:
    """A reader of the tape; ``symbols`` None means every symbol (the set may be changed live)."""

    def __init__(self, symbols: Collection[str] | None, maxsize: int = DEFAULT_TICK_QUEUE) -> None:
        self.symbols = symbols
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.dropped = 0

    def wants(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def offer(self, item: Any) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)


class Tape:
    """Every print the exchange has seen, per symbol, and bars built from them on demand."""

    def __init__(self) -> None:
        self._ticks: dict[str, list[Tick]] = {}

    def add(self, tick: Tick) -> None:
        ticks = self._ticks.get(tick.symbol)
        if ticks is None:
            self._ticks[tick.symbol] = [tick]
        else:
            ticks.append(tick)

    def bars(
        self, symbol: str, start: datetime, end: datetime, interval: str = "1m", now: datetime | None = None
    ) -> list[Bar]:
        """Bars whose start lies in [start, end], from prints at or before ``now`` (no look-ahead)."""
        minutes = parse_interval(interval)
        ticks = self._ticks.get(symbol, [])
        lo = bisect_left(ticks, start - timedelta(minutes=minutes), key=lambda t: t.ts)
        upto = end + timedelta(minutes=minutes)
        if now is not None:
            upto = min(upto, now)
        hi = bisect_right(ticks, upto, key=lambda t: t.ts)
        bars: list[Bar] = []
        current: datetime | None = None
        o = h = low = c = 0.0
        v = 0
        step = timedelta(minutes=minutes) if (24 * 60) % minutes == 0 else None  # buckets tile the day
        bucket = bucket_end = None
        for tick in ticks[lo:hi]:
            if bucket is None or bucket_end is None or not bucket <= tick.ts < bucket_end:
                bucket = _bucket(tick.ts, minutes)
                bucket_end = bucket + step if step is not None else None
            if not start <= bucket <= end:
                continue
            price = float(tick.price)
            if bucket == current:
                h, low, c, v = max(h, price), min(low, price), price, v + tick.qty
                continue
            if current is not None:
                bars.append(Bar(symbol, current, o, h, low, c, v, interval))
            current, o, h, low, c, v = bucket, price, price, price, price, tick.qty
        if current is not None:
            bars.append(Bar(symbol, current, o, h, low, c, v, interval))
        return bars


def parse_interval(interval: str) -> int:
    """Minutes in "1m", "5m", "1h" …; BrokerError(INVALID_INTERVAL) otherwise."""
    match = re.fullmatch(r"(\d+)([mh])", interval.strip())
    minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1) if match else 0
    if not 0 < minutes <= 24 * 60:
        raise BrokerError(f"unsupported bar interval {interval!r} (use e.g. 1m, 5m, 1h)", code="INVALID_INTERVAL")
    return minutes


def _bucket(ts: datetime, minutes: int) -> datetime:
    local = ts.astimezone(KST)
    of_day = local.hour * 60 + local.minute
    of_day -= of_day % minutes
    return local.replace(hour=of_day // 60, minute=of_day % 60, second=0, microsecond=0)


class PaperExchange:
    def __init__(
        self,
        feed: TickFeed,
        clock: Clock,
        engine: MatchingEngine | None = None,
        *,
        pace: bool = True,
        tick_queue_size: int = DEFAULT_TICK_QUEUE,
        state_store: PaperStateStore | None = None,
        later_sessions: Iterable[TickFeed] = (),
    ) -> None:
        """``later_sessions``: the feeds of the next trading days of a multi-day run, replayed after this
        one on the same account (each opened at its day's start, read lazily)."""
        self.feed = feed
        self._later = iter(later_sessions)
        self.sessions_done = 0
        self.clock = clock
        self.engine = engine if engine is not None else MatchingEngine()
        for symbol in feed.symbols:
            if not self.engine.has_symbol(symbol):
                self.engine.add_instrument(symbol, feed.prev_close(symbol))
        self.pace = pace
        self.tape = Tape()
        self.done = asyncio.Event()
        self.ticks_processed = 0
        self.ticks_skipped = 0
        self.fills = 0
        self.close_at = datetime.combine(feed.session_date, CLOSE, KST)
        self._tick_queue_size = tick_queue_size
        self._tick_subs: list[TickSubscription] = []
        self._order_subs: list[asyncio.Queue[Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._running = False
        if self.engine.session_date is None:
            self.engine.session_date = feed.session_date
        self.state_store: PaperStateStore | None = None
        self.restored = False
        """True when the account was restored from the state store's file (same session)."""
        if state_store is not None:
            self.attach_state_store(state_store)

    # -- persistence -------------------------------------------------------------------------

    def attach_state_store(self, store: PaperStateStore) -> bool:
        """Load the account from ``store`` into the (fresh) engine, save it, and save every later
        change there. Returns whether the stored session was restored (see ``PaperStateStore.load``)."""
        if self.state_store is store:
            return self.restored
        if self.state_store is not None:
            raise ValueError("this exchange already has a state store")
        if self._running:
            raise RuntimeError("attach the state store before the replay runs")
        self.restored = store.load(self.engine)
        self.state_store = store
        store.save(self.engine)
        return self.restored

    def persist(self) -> None:
        """Save the account if it changed (no-op without a state store)."""
        if self.state_store is not None and self.engine.dirty:
            self.state_store.save(self.engine)

    # -- subscribers -------------------------------------------------------------------------

    def subscribe_ticks(self, symbols: Collection[str] | None = None) -> TickSubscription:
        sub = TickSubscription(symbols, self._tick_queue_size)
        self._tick_subs.append(sub)
        return sub

    def unsubscribe_ticks(self, sub: TickSubscription) -> None:
        if sub in self._tick_subs:
            self._tick_subs.remove(sub)

    def subscribe_order_updates(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._order_subs.append(queue)
        return queue

    def unsubscribe_order_updates(self, queue: asyncio.Queue[Any]) -> None:
        if queue in self._order_subs:
            self._order_subs.remove(queue)

    # -- orders (synchronous: asyncio is single-threaded, so each call is atomic) ------------

    def submit(self, request: OrderRequest) -> BrokerOrder:
        try:
            return self.engine.submit(request, self.clock.now())
        finally:
            self._persist_for(getattr(request, "client_order_id", ""))
            self._publish_updates()

    def cancel(self, client_order_id: str) -> BrokerOrder:
        try:
            return self.engine.cancel(client_order_id, self.clock.now())
        finally:
            self._persist_for(client_order_id)
            self._publish_updates()

    def expire_day(self, now: datetime | None = None) -> list[OrderUpdate]:
        updates = self.engine.expire_day(now or self.clock.now())
        self.persist()
        self._publish_updates()
        return updates

    def _persist_for(self, client_order_id: str) -> None:
        """Save before answering; a failed save makes the answer unknown (the order may exist in
        memory but not in the file), so the caller must look the order up, as after a timeout."""
        try:
            self.persist()
        except PaperStateError as exc:
            raise OutcomeUnknown(
                f"the paper account could not be saved: {exc.message}", client_order_id=client_order_id
            ) from exc

    # -- the replay --------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run the replay in a background task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="paper-exchange")
        return self._task

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        if self._running:
            raise RuntimeError("the paper exchange is already running")
        self._running = True
        try:
            await self._run_session()
            for feed in self._later:
                await self._advance(datetime.combine(feed.session_date, SESSION_PREP, KST))
                self._open(feed)
                await self._run_session()
        finally:
            self.done.set()

    def _open(self, feed: TickFeed) -> None:
        """The next trading day: a fresh tape, the engine's day reset on the new prior closes."""
        if not self.engine.closed:
            self.expire_day(self.clock.now())
        self.feed = feed
        self.tape = Tape()
        self.close_at = datetime.combine(feed.session_date, CLOSE, KST)
        self.engine.begin_session(feed.session_date, {s: feed.prev_close(s) for s in feed.symbols})
        self.persist()

    async def _run_session(self) -> None:
        try:
            started = self.clock.now()
            mark = self.engine.matched_through
            seen_at_mark = 0
            last_ts: datetime | None = None
            last_processed: datetime | None = None
            for tick in self.feed:
                last_ts = tick.ts
                matched_before = False
                if mark is not None and tick.ts <= mark[0]:
                    if tick.ts == mark[0]:
                        seen_at_mark += 1
                        matched_before = seen_at_mark <= mark[1]
                    else:
                        matched_before = True
                if tick.ts < started or matched_before:
                    self.tape.add(tick)
                    self.engine.observe(tick)
                    self.ticks_skipped += 1
                    continue
                new_instant = tick.ts != last_processed
                if new_instant and last_processed is not None:
                    await asyncio.sleep(0)  # readers see an instant's prints before time moves on
                if tick.ts > self.close_at and not self.engine.closed:
                    await self._advance(self.close_at)
                    self.expire_day(self.close_at)
                if new_instant:
                    await self._advance(tick.ts)
                    last_processed = tick.ts
                self._process(tick)
            await asyncio.sleep(0)
            if not self.engine.closed:
                now = self.clock.now()
                self.expire_day(max(now, last_ts) if last_ts and not self.pace else now)
        finally:
            self.sessions_done += 1

    async def _advance(self, when: datetime) -> None:
        if not self.pace:
            return
        if isinstance(self.clock, ManualClock):
            self.clock.set(when)
        else:
            await self.clock.sleep_until(when)

    def _process(self, tick: Tick) -> None:
        self.tape.add(tick)
        self.engine.on_tick(tick)
        self.persist()
        self.ticks_processed += 1
        stamped: Tick | None = None  # built for the first reader only: most prints have none
        for sub in self._tick_subs:
            if sub.wants(tick.symbol):
                if stamped is None:
                    stamped = self._stamp_vi(tick)
                sub.offer(stamped)
        self._publish_updates()

    def _stamp_vi(self, tick: Tick) -> Tick:
        """With VI simulated, subscribers learn the symbol's VI state with each print."""
        if self.engine.vi is None:
            return tick
        halted = self.engine.is_halted(tick.symbol, tick.ts)
        return Tick(tick.symbol, tick.ts, tick.price, tick.qty, tick.aggressor, halted)

    def _publish_updates(self) -> None:
        if not self.engine.has_updates:
            return
        for update in self.engine.drain_updates():
            if update.fill is not None:
                self.fills += 1
            for queue in self._order_subs:
                queue.put_nowait(update)
