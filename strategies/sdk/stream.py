"""Client of ``WS /api/v1/stream``: the strategy's order/fill events and subscribed market data.

The client keeps the *wanted* symbol set. On every (re)connection it sends one subscribe for the
whole set, so after the OMS restarts or drops the socket the strategy gets everything back
without its own bookkeeping. Reconnects use bounded exponential backoff with jitter; a 401/403 at
the handshake is final (:class:`OmsAuthError`). Events go to ``on_event`` one at a time, in the
order the OMS sent them; control answers (``subscribed``/``unsubscribed``/``error``) are kept in
:attr:`StreamClient.last_answer`, :attr:`granted` and :attr:`denied` instead.

Events sent while the socket was down are not replayed by the OMS: ``on_connect`` (called after
each connection's subscribe, with the connection count) is where a strategy re-reads its orders
and allocations over REST.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from strategies.sdk.errors import OmsAuthError, OmsUnavailable

log = logging.getLogger("strategies.sdk.stream")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
ConnectHandler = Callable[[int], Awaitable[None]]
CONTROL_TYPES = frozenset({"subscribed", "unsubscribed", "error", "evicted"})


class StreamSocket(Protocol):
    """What the client uses of a connection (``websockets``' ``ClientConnection`` or an in-process one)."""

    @property
    def close_code(self) -> int | None: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


Connect = Callable[..., AbstractAsyncContextManager[StreamSocket]]
"""Opens a stream connection: called like ``websockets.asyncio.client.connect(url, additional_headers=...,
open_timeout=..., ping_interval=..., compression=None)``; the default. A backtest passes an in-process one."""


class StreamClient:
    def __init__(
        self,
        ws_url: str,
        api_key: str,
        *,
        on_event: EventHandler,
        symbols: Iterable[str] = (),
        channels: Iterable[str] = ("trades",),
        on_connect: ConnectHandler | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retries: int | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        connect: Connect | None = None,
    ) -> None:
        self.ws_url = ws_url
        self._connect: Connect = connect or websockets_connect
        self._api_key = api_key
        self.on_event = on_event
        self.on_connect = on_connect
        self.channels = tuple(channels)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_retries = max_retries
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self._wanted: set[str] = set(symbols)
        self._ws: StreamSocket | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self.granted: set[str] = set()
        self._keep: set[str] = set()
        self.denied: dict[str, str] = {}
        self.last_answer: dict[str, Any] | None = None
        self.answers = 0
        """Count of subscribe answers received (all connections)."""
        self.connects = 0
        """Successful connections so far (1 after the first, 2 after the first reconnect, ...)."""
        self.last_error: str | None = None
        self.on_answer: Callable[[], None] | None = None
        """Called after :attr:`granted`/:attr:`denied` changed (a subscribe answer or an eviction)."""

    # ---- state --------------------------------------------------------------------------------
    @property
    def symbols(self) -> frozenset[str]:
        """The wanted symbol set (re-sent after every reconnect)."""
        return frozenset(self._wanted)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # ---- subscriptions ------------------------------------------------------------------------
    async def subscribe(self, symbols: Iterable[str], keep: Iterable[str] | None = None) -> None:
        """Add symbols to the wanted set and ask the OMS for them now if connected.

        ``keep`` (when given) replaces the set of symbols the OMS must not evict for this strategy
        (positions are protected anyway; ``keep`` marks an active setup)."""
        new = [s for s in dict.fromkeys(symbols) if s not in self._wanted]
        self._wanted.update(new)
        keep_changed = keep is not None and set(keep) != self._keep
        if keep is not None:
            self._keep = set(keep)
        if new or keep_changed:
            await self._send(self._subscribe_msg(new))

    def _subscribe_msg(self, symbols: list[str]) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "symbols": symbols, "channels": list(self.channels)}
        if self._keep:
            msg["keep"] = sorted(self._keep)
        return msg

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        gone = [s for s in dict.fromkeys(symbols) if s in self._wanted]
        self._wanted.difference_update(gone)
        for s in gone:
            self.granted.discard(s)
            self.denied.pop(s, None)
        if gone:
            await self._send({"op": "unsubscribe", "symbols": gone})

    async def _send(self, msg: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return  # sent with the whole set on the next connection
        try:
            await ws.send(json.dumps(msg))
        except ConnectionClosed:
            pass  # the reconnect resubscribes everything

    # ---- loop ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, subscribe and deliver events until :meth:`close`; reconnects on any drop."""
        failures = 0
        while not self._closing:
            try:
                await self._session()
                failures = 0
            except InvalidStatus as exc:
                code = exc.response.status_code
                if code in (401, 403):
                    raise OmsAuthError(
                        f"stream {self.ws_url}: handshake refused with HTTP {code} (check OMS_API_KEY)",
                        method="WS",
                        path="/api/v1/stream",
                        status=code,
                    ) from exc
                self.last_error = f"HTTP {code} at handshake"
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._closing:
                break
            failures += 1
            if self.max_retries is not None and failures > self.max_retries:
                raise OmsUnavailable(
                    f"stream {self.ws_url}: gave up after {failures} failed connection(s) ({self.last_error})",
                    method="WS",
                    path="/api/v1/stream",
                )
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            log.warning("stream disconnected (%s); reconnecting in %.2fs", self.last_error, delay)
            await self._pause(delay)

    async def _session(self) -> None:
        async with self._connect(
            self.ws_url,
            additional_headers={"Authorization": f"Bearer {self._api_key}"},
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            compression=None,
        ) as ws:
            if self._closing:  # close() came while the handshake was in flight: it saw no socket to close
                return
            self._ws = ws
            self.connects += 1
            self.granted.clear()
            self.denied.clear()
            try:
                if self._wanted:
                    await ws.send(json.dumps(self._subscribe_msg(sorted(self._wanted))))
                log.info("stream connected (#%d) to %s, %d symbol(s)", self.connects, self.ws_url, len(self._wanted))
                if self.on_connect is not None:
                    await _guarded(self.on_connect(self.connects), "on_connect")
                async for raw in ws:
                    await self._dispatch(raw)
                self.last_error = f"closed by server (code {ws.close_code})"
            finally:
                self._ws = None

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("stream: message is not JSON: %.200r", raw)
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind in CONTROL_TYPES:
            self._control(msg)
            return
        await _guarded(self.on_event(msg), f"on_event({kind})")

    def _control(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "subscribed":
            granted = [s for s in msg.get("granted", []) if s in self._wanted]
            denied = {s: str(r) for s, r in (msg.get("denied") or {}).items() if s in self._wanted}
            self.granted.update(granted)
            self.granted.difference_update(denied)
            for s in granted:
                self.denied.pop(s, None)
            self.denied.update(denied)
            self.last_answer = msg
            self.answers += 1
            if denied:
                log.warning("stream: subscription denied: %s", denied)
        elif kind == "evicted":
            reason = str(msg.get("reason", "EVICTED"))
            for s in msg.get("symbols", []):
                self.granted.discard(s)
                if s in self._wanted:
                    self.denied[s] = reason
            self.last_answer = msg
            log.warning("stream: slots taken back (%s): %s", reason, msg.get("symbols"))
        elif kind == "error":
            self.last_error = str(msg.get("detail"))
            log.warning("stream: OMS error: %s", self.last_error)
            return
        if self.on_answer is not None:
            self.on_answer()

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def close(self) -> None:
        """Stop reconnecting and close the socket; :meth:`run` returns."""
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            await ws.close()


async def _guarded(awaitable: Awaitable[None], what: str) -> None:
    """Run a user callback; an exception is logged and the stream goes on."""
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("stream: %s raised", what)
