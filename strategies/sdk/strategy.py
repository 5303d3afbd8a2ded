"""The ``Strategy`` base class: lifecycle, event hooks, decisions log, heartbeats, recovery.

A strategy subclasses :class:`Strategy`, registers its scheduled jobs in ``__init__`` or
``on_start`` (``self.scheduler.at(...)`` / ``every(...)``), reacts in the hooks, and sends intents
through ``self.oms``. The base class:

- at start, :meth:`recover` loads the strategy's allocations and open orders from the OMS (and
  subscribes their symbols), so a restarted strategy keeps managing its exits; it runs again
  after every stream reconnect, because the OMS does not replay events missed while down, and at
  the first connection when the OMS state moved since the start's snapshot (events in between
  were never sent); :meth:`snapshot_fills` tells the fills that snapshot already holds;
- turns stream events into hook calls in order: ``on_bar`` (a 1m bar closed by this trade) before
  ``on_trade`` — bars that may miss trades (subscribed mid-minute, stream outage) carry
  ``partial=True``; ``on_order``/``on_fill`` for its own orders (open orders and allocations are kept
  current first); a hook that raises is logged and the stream goes on;
- sends a heartbeat with :meth:`status` every ``heartbeat_sec`` of clock time;
- on :meth:`request_stop` (SIGTERM/SIGINT via the runner) stops taking decisions — no new
  intents, no more hooks or jobs — waits for intents already in flight to get their answer, calls
  ``on_stop`` and sends a last heartbeat. An intent is never left half-sent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any

from broker_core.clock import Clock
from strategies.sdk.bars import Bar, BarBuilder
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import OmsError
from strategies.sdk.models import Allocation, Fill, Order
from strategies.sdk.scheduler import Scheduler
from strategies.sdk.stream import StreamClient

Event = dict[str, Any]


class Strategy:
    def __init__(
        self,
        strategy_id: str,
        oms: OmsClient,
        clock: Clock,
        *,
        symbols: Iterable[str] = (),
        channels: Iterable[str] = ("trades",),
        heartbeat_sec: float = 15.0,
        bar_flush_sec: float = 1.0,
        stop_grace_sec: float = 30.0,
    ) -> None:
        self.strategy_id = strategy_id.upper()
        self.oms = oms
        self.clock = clock
        self.log = logging.getLogger(f"strategy.{self.strategy_id}")
        self.scheduler = Scheduler(clock)
        self.stream = StreamClient(
            oms.ws_url,
            oms.api_key,
            on_event=self._on_stream_event,
            symbols=symbols,
            channels=channels,
            on_connect=self._on_stream_connect,
            connect=oms.stream_connect,
        )
        self.bars = BarBuilder()
        self.heartbeat_sec = heartbeat_sec
        self.bar_flush_sec = bar_flush_sec
        self.stop_grace_sec = stop_grace_sec
        self.allocations: dict[str, Allocation] = {}
        self.open_orders: dict[str, Order] = {}
        self.decision_counts: Counter[str] = Counter()
        self.stopping = False
        self.failure: BaseException | None = None
        """Set when the strategy stopped because of an error (e.g. the stream's key was refused)."""
        self._stop_requested = asyncio.Event()
        self._stream_task: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    # ---- hooks (override) ---------------------------------------------------------------------
    async def on_start(self) -> None:
        """After :meth:`recover`, before events flow; register jobs and subscriptions here."""

    async def on_stop(self) -> None:
        """After in-flight intents got their answers; no intent can be sent any more."""

    async def on_recover(self) -> None:
        """After ``allocations`` and ``open_orders`` were (re)loaded: rebuild exit management."""

    async def on_trade(self, event: Event) -> None: ...

    async def on_bar(self, bar: Bar) -> None: ...

    async def on_quote(self, event: Event) -> None: ...

    async def on_order(self, event: Event) -> None: ...

    async def on_fill(self, event: Event) -> None: ...

    async def on_event(self, event: Event) -> None:
        """Any other stream event type."""

    def status(self) -> dict[str, Any]:
        """The heartbeat's status dict; extend with ``{**super().status(), ...}``."""
        return {
            "state": "stopping" if self.stopping else "running",
            "now": self.clock.now().isoformat(),
            "decisions": dict(self.decision_counts),
            "open_orders": len(self.open_orders),
            "allocations": {s: a.qty for s, a in self.allocations.items()},
            "stream_connected": self.stream.connected,
            "subscribed": sorted(self.stream.granted),
            "denied": dict(self.stream.denied),
        }

    @property
    def clock_waiting(self) -> bool:
        """A simulation's clock stands at its start until every process of the run is ready (the launcher
        starts it after each strategy's first heartbeat, which :meth:`start` sends after ``on_start``): work
        ``on_start`` awaits meanwhile — a premarket that needs only past sessions — costs no virtual time."""
        return not getattr(self.clock, "anchored", True)

    # ---- decisions ----------------------------------------------------------------------------
    def decision(self, code: str, symbol: str | None = None, **fields: Any) -> None:
        """Log one decision as one structured line (``decision code=... symbol=... k=v``) and count it."""
        self.decision_counts[code] += 1
        parts = [f"code={code}"]
        if symbol is not None:
            parts.append(f"symbol={symbol}")
        parts += [f"{k}={_fmt(v)}" for k, v in fields.items()]
        self.log.info("decision %s", " ".join(parts), extra={"decision": {"code": code, "symbol": symbol, **fields}})

    # ---- subscriptions ------------------------------------------------------------------------
    async def subscribe(self, symbols: Iterable[str], keep: Iterable[str] | None = None) -> None:
        """Stream trades of ``symbols`` (kept across reconnects); their first bar comes out ``partial``.

        ``keep`` marks symbols in an active setup that the OMS must not evict for a higher-priority
        lease (held positions are protected by the OMS anyway). The answer arrives asynchronously:
        ``self.stream.granted`` / ``self.stream.denied``; evictions come as ``evicted`` events."""
        new = [s for s in symbols if s not in self.stream.symbols]
        now = self.clock.now()
        for symbol in new:
            self.bars.mark_gap(symbol, now)
        await self.stream.subscribe(new, keep=keep)

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        await self.stream.unsubscribe(symbols)

    # ---- recovery -----------------------------------------------------------------------------
    async def recover(self, *, if_changed: bool = False) -> None:
        """Load this strategy's allocations and open orders and subscribe their symbols.

        ``if_changed``: stop there (no ``on_recover``) when both are what the strategy already holds."""
        # Open orders first, then the allocations: a fill ends the working order and changes the allocation in one
        # OMS step, so an order that fills between the two reads is seen working or in the allocation. (The other
        # way round it showed in neither: a bought position went unmanaged, a sold one was adopted again.)
        orders = await self.oms.orders(open_only=True)
        allocations = await self.oms.allocations()
        open_orders = {o.order_id: o for o in orders if o.is_open}
        if if_changed and allocations == self.allocations and open_orders == self.open_orders:
            return
        self.allocations = allocations
        self.open_orders = open_orders
        held = set(allocations) | {o.symbol for o in self.open_orders.values()}
        if held:
            await self.subscribe(sorted(held))
        self.log.info(
            "recovered %d allocation(s) %s and %d open order(s)",
            len(allocations),
            {s: a.qty for s, a in allocations.items()},
            len(self.open_orders),
        )
        await self.on_recover()

    async def snapshot_fills(self, since: datetime, tries: int = 3) -> list[Fill]:
        """This strategy's fills at or after ``since`` that ``self.allocations`` holds (for :meth:`on_recover`).

        Every fill moves an allocation, so a fills read between two equal allocation reads saw exactly the fills
        that snapshot holds; ``self.allocations`` is read again (and replaced) until it stands still."""
        fills: list[Fill] = []
        try:
            for _ in range(tries):
                fills = await self.oms.fills(since=since)
                allocations = await self.oms.allocations()
                steady = {s: a.qty for s, a in allocations.items()} == {s: a.qty for s, a in self.allocations.items()}
                self.allocations = allocations
                if steady:
                    return fills
        except OmsError as exc:
            self.log.warning("fills held by the allocations not read: %s", exc)
            return []
        # still moving: the fills read all are in self.allocations, a few more may be too
        self.log.warning("allocations still moving after %d reads; fills since %s may be counted twice", tries, since)
        return fills

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.recover()
        await self.on_start()
        await self._heartbeat()  # registered: a launcher waits for this before it starts the clock
        self.scheduler.every(self.heartbeat_sec, self._heartbeat, "heartbeat")
        if self.bar_flush_sec > 0:
            self.bars.on_open = lambda due: self.scheduler.poke("bars.flush", due)
            self.scheduler.every(self.bar_flush_sec, self._flush_bars, "bars.flush", due=self.bars.next_due)
        self._stream_task = asyncio.create_task(self.stream.run(), name=f"stream:{self.strategy_id}")
        self._stream_task.add_done_callback(self._stream_ended)
        self.scheduler.start()
        self.log.info("%s started", self.strategy_id)

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (safe to call from a signal handler)."""
        self._stop_requested.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> None:
        """Start, run until :meth:`request_stop` (or a fatal stream error), then stop cleanly."""
        try:
            await self.start()
            await self._stop_requested.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stopping = True
        self.log.info(
            "%s stopping: no new decisions; waiting for %d intent(s) in flight",
            self.strategy_id,
            self.oms.intents_in_flight,
        )
        self.oms.close_intents()
        await self.scheduler.stop(grace=self.stop_grace_sec)
        await self.stream.close()
        if self._stream_task is not None:
            _, late = await asyncio.wait({self._stream_task}, timeout=self.stop_grace_sec)
            for task in late:
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
        left = await self.oms.drain_intents(timeout=self.stop_grace_sec)
        if left:
            self.log.error("%d intent(s) still without an answer after %ss", left, self.stop_grace_sec)
        await self._guard(self.on_stop(), "on_stop")
        try:
            await self.oms.heartbeat({**self.status(), "state": "stopped"})
        except Exception as exc:  # the OMS may be gone or the client closed: stopping goes on
            self.log.warning("final heartbeat not sent: %s", exc)
        self.log.info("%s stopped", self.strategy_id)

    # ---- internals ----------------------------------------------------------------------------
    def _stream_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stopping:
            return
        exc = task.exception()
        if exc is not None:
            self.failure = exc
            self.log.error("stream stopped: %s; stopping the strategy", exc)
            self.request_stop()

    async def _heartbeat(self) -> None:
        try:
            await self.oms.heartbeat(self.status())
        except OmsError as exc:
            self.log.warning("heartbeat failed: %s", exc)

    async def _flush_bars(self) -> None:
        for bar in self.bars.flush(self.clock.now()):
            if self.stopping:
                return
            await self._guard(self.on_bar(bar), "on_bar")

    async def _on_stream_connect(self, count: int) -> None:
        now = self.clock.now()
        for symbol in self.stream.symbols:
            self.bars.mark_gap(symbol, now)
        if not self.stopping:
            try:
                # the first connection too: what happened since the start's recovery was never sent
                await self.recover(if_changed=count == 1)
            except OmsError as exc:
                self.log.warning("resync after stream connection #%d failed: %s", count, exc)

    async def _on_stream_event(self, event: Event) -> None:
        if self.stopping:
            return
        kind = event.get("type")
        if kind == "trade":
            for bar in self.bars.on_event(event):
                await self._guard(self.on_bar(bar), "on_bar")
            await self._guard(self.on_trade(event), "on_trade")
        elif kind == "order":
            self._track_order(event)
            await self._guard(self.on_order(event), "on_order")
        elif kind == "fill":
            try:
                self.allocations = await self.oms.allocations()
            except OmsError as exc:
                self.log.warning("allocations refresh after fill failed: %s", exc)
            await self._guard(self.on_fill(event), "on_fill")
        elif kind == "quote":
            await self._guard(self.on_quote(event), "on_quote")
        else:
            await self._guard(self.on_event(event), "on_event")

    def _track_order(self, event: Event) -> None:
        try:
            order = Order.model_validate(event)
        except ValueError:
            self.log.warning("order event not understood: %s", event)
            return
        if order.is_open:
            self.open_orders[order.order_id] = order
        else:
            self.open_orders.pop(order.order_id, None)

    async def _guard(self, awaitable: Awaitable[None], hook: str) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("%s raised", hook)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return repr(text) if (" " in text or not text) else text
