"""``PaperBroker``: the Broker protocol over an in-process PaperExchange.

Running the replay is the owner's job (``exchange.start()`` or ``await exchange.run()``);
``connect`` does not start it. With a ``state_store`` the paper account survives restarts (see
``persistence.py``): it is handed to the exchange, which loads the stored session and saves every
change before answering. Intraday bars are built from the prints the exchange has seen up
to ``clock.now()``; daily bars come from an optional ``daily_source(symbol, start, end)``.

With an ``index_source`` (``broker_core.paper.index.DerivedIndex``) the index symbols (KOSPI, KOSDAQ)
are answered too: a quote labelled ``derived`` with the path's value at ``clock.now()`` (bars complete
by then only) and the real prior close, 1-minute index bars, and the real daily index bars. They are
market data only: the exchange does not trade them (``index_symbols``; the OMS keeps refusing intents).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import BrokerError, SubscriptionCapacityExceeded
from broker_core.models import Account, Bar, BrokerOrder, Fill, OrderRequest, OrderUpdate, Position, Quote, Tick
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.index import IndexPath, IndexSource
from broker_core.paper.persistence import PaperStateStore

DailySource = Callable[[str, date, date], list[Bar]]
T = TypeVar("T")
_END = object()


class _QueueStream(AsyncIterator[T], Generic[T]):
    """Async iterator over a subscriber queue; ends when the broker closes or on ``aclose``."""

    def __init__(self, queue: asyncio.Queue[Any], on_close: Callable[[], None]) -> None:
        self._queue = queue
        self._on_close = on_close
        self._closed = False

    def __aiter__(self) -> _QueueStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close()

    def end(self) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)


class PaperBroker:
    name = "paper"

    def __init__(
        self,
        exchange: PaperExchange,
        subscription_capacity: int = 40,
        daily_source: DailySource | None = None,
        *,
        minute_source: Callable[[str, date, datetime, datetime], list[Bar]] | None = None,
        state_store: PaperStateStore | None = None,
        index_source: IndexSource | None = None,
    ) -> None:
        """``minute_source`` serves 1m history of days before the replayed session (KRX data);
        the session itself is only what the tape has printed so far (no look-ahead).
        ``index_source`` serves the index symbols (market data only, see the module docstring)."""
        if state_store is not None:
            exchange.attach_state_store(state_store)
        self.exchange = exchange
        self.engine = exchange.engine
        self.clock = exchange.clock
        self.subscription_capacity = subscription_capacity
        self._daily_source = daily_source
        self._minute_source = minute_source
        self._index = index_source
        self._subscribed: set[str] = set()
        self._streams: list[_QueueStream[Any]] = []
        self.connected = False

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        for stream in list(self._streams):
            stream.end()

    # -- orders ------------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        return self.exchange.submit(request)

    async def cancel_order(self, client_order_id: str) -> BrokerOrder:
        return self.exchange.cancel(client_order_id)

    async def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return self.engine.get_order(client_order_id)

    async def list_open_orders(self) -> list[BrokerOrder]:
        return self.engine.open_orders()

    async def list_fills(self, since: datetime | None = None) -> list[Fill]:
        return self.engine.fills(since)

    async def get_positions(self) -> list[Position]:
        return self.engine.positions()

    async def get_account(self) -> Account:
        return self.engine.account()

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """A new subscriber, registered now: it sees every update from this call on."""
        queue = self.exchange.subscribe_order_updates()
        stream: _QueueStream[OrderUpdate] = _QueueStream(queue, lambda: self._drop(stream, queue))
        self._streams.append(stream)
        return stream

    def inject_position(self, symbol: str, qty: int, avg_price: float) -> None:
        """Drift for tests: the account now holds ``qty`` shares that no order of ours bought."""
        self.engine.set_position(symbol, qty, avg_price)
        self.exchange.persist()

    def inject_cash(self, delta: float) -> None:
        self.engine.adjust_cash(delta)
        self.exchange.persist()

    # -- market data -------------------------------------------------------------------------

    @property
    def index_symbols(self) -> frozenset[str]:
        """Index symbols this broker quotes (derived, not tradable); empty without an index source."""
        return frozenset(self._index.codes) if self._index is not None else frozenset()

    def _index_path(self, symbol: str, day: date) -> IndexPath:
        assert self._index is not None
        path = self._index.path(symbol, day)
        if path is None:
            raise BrokerError(
                f"no derived {symbol} path for {day} (no constituent bars or prior close)", code=ReasonCode.NO_DATA
            )
        return path

    async def get_quote(self, symbol: str) -> Quote:
        if symbol in self.index_symbols:
            return self._index_path(symbol, self.exchange.feed.session_date).quote(self.clock.now())
        return self.engine.quote(symbol, self.clock.now())

    async def get_bars(self, symbol: str, start: datetime, end: datetime, interval: str = "1m") -> list[Bar]:
        if symbol in self.index_symbols:
            return self._index_bars(symbol, start, end, interval)
        history: list[Bar] = []
        if self._minute_source is not None and interval == "1m":
            day = start.astimezone(KST).date()
            last = min(end.astimezone(KST).date(), self.exchange.feed.session_date - timedelta(days=1))
            while day <= last:
                history += self._minute_source(symbol, day, start, end)
                day += timedelta(days=1)
        return history + self.exchange.tape.bars(symbol, start, end, interval, now=self.clock.now())

    def _index_bars(self, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
        """Derived index bars of the sessions in [start, end] up to the replayed one, complete at ``now``."""
        assert self._index is not None
        session, now = self.exchange.feed.session_date, self.clock.now()
        day, last = start.astimezone(KST).date(), min(end.astimezone(KST).date(), session)
        out: list[Bar] = []
        while day <= last:
            path = self._index.path(symbol, day)
            if path is not None:
                out += path.bars(start, end, now if day == session else None, interval)
            day += timedelta(days=1)
        return out

    async def get_daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        if symbol in self.index_symbols:
            assert self._index is not None
            return self._index.daily_bars(symbol, start, end)
        return list(self._daily_source(symbol, start, end)) if self._daily_source else []

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        """All or nothing: raises SubscriptionCapacityExceeded if the new total would pass capacity."""
        wanted = self._subscribed | set(symbols)
        if len(wanted) > self.subscription_capacity:
            raise SubscriptionCapacityExceeded(
                f"subscribing {len(wanted - self._subscribed)} more symbol(s) would hold {len(wanted)} "
                f"subscriptions; capacity is {self.subscription_capacity}"
            )
        self._subscribed |= wanted

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        self._subscribed -= set(symbols)

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def ticks(self) -> AsyncIterator[Tick]:
        """A new reader of the prints of the currently subscribed symbols (the set may change live)."""
        sub = self.exchange.subscribe_ticks(self._subscribed)
        stream: _QueueStream[Tick] = _QueueStream(sub.queue, lambda: self._drop_ticks(stream, sub))
        self._streams.append(stream)
        return stream

    def _drop(self, stream: _QueueStream[Any], queue: asyncio.Queue[Any]) -> None:
        self.exchange.unsubscribe_order_updates(queue)
        if stream in self._streams:
            self._streams.remove(stream)

    def _drop_ticks(self, stream: _QueueStream[Any], sub: Any) -> None:
        self.exchange.unsubscribe_ticks(sub)
        if stream in self._streams:
            self._streams.remove(stream)
