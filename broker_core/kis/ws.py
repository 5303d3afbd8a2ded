"""The KIS WebSocket client (websockets): one session, registrations, notices, reconnects.

- Connects to the WS URL as given (bare ``ws://host:port`` or ``…/tryitout``), WS-level pings off.
- A registration is a JSON request with the approval key; its JSON ack carries OPSP codes (OPSP0000
  registered, OPSP0002 already registered, OPSP0008 over the 41-registration cap → a typed
  ``SubscriptionCapacityExceeded``) and, for every TR, the AES key/IV used by encrypted frames.
- The session holds at most 41 registrations; ``market_capacity`` (40) of them serve market data and
  one is kept for the execution notice (H0STCNI0 real / H0STCNI9 paper, ``tr_key`` = HTS id).
- ``PINGPONG`` control messages are echoed back as the identical text.
- Data frames ``E|TR|NNN|payload`` are split into NNN records and handed to the callbacks; encrypted
  ones (notices) are decrypted with the key/IV of their TR's ack.
- A dropped session is re-established with backoff and every registration is restored in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime

import websockets
from websockets.asyncio.client import ClientConnection, connect

from broker_core.clock import KST
from broker_core.errors import BrokerError, BrokerUnavailable, SubscriptionCapacityExceeded
from broker_core.kis import tr_ids as T
from broker_core.kis.crypto import NoticeDecryptError, decrypt_notice
from broker_core.kis.parsers import (
    BookRecord,
    ControlMessage,
    ExecutionNotice,
    FrameError,
    TradeRecord,
    is_data_frame,
    parse_book,
    parse_control,
    parse_frame,
    parse_notice,
    parse_trade,
    records,
)

log = logging.getLogger("broker_core.kis.ws")
MAX_REGISTRATIONS = 41
MARKET_CAPACITY = 40
OK_CODES = frozenset({"OPSP0000", "OPSP0001", "OPSP0002"})
CAP_CODE = "OPSP0008"

Key = tuple[str, str]


class KisWebSocket:
    def __init__(
        self,
        url: str,
        approval_key: Callable[[bool], Awaitable[str]],
        *,
        custtype: str = "P",
        market_capacity: int = MARKET_CAPACITY,
        max_registrations: int = MAX_REGISTRATIONS,
        ack_timeout_s: float = 10.0,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 5.0,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.url = url
        self._approval_key = approval_key
        self.custtype = custtype
        self.market_capacity = market_capacity
        self.max_registrations = max_registrations
        self.ack_timeout_s = ack_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._today = today or (lambda: datetime.now(KST).date())
        self._desired: dict[Key, None] = {}
        self._active: set[Key] = set()
        self._keys: dict[str, tuple[str, str]] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pending: tuple[Key, asyncio.Future[ControlMessage]] | None = None
        self._closing = False
        self._refresh_key = False
        self.connected = asyncio.Event()
        self.on_trade: Callable[[TradeRecord], None] | None = None
        self.on_book: Callable[[BookRecord], None] | None = None
        self.on_notice: Callable[[ExecutionNotice], None] | None = None
        self.on_other: Callable[[str, list[str]], None] | None = None
        self.on_connect: Callable[[], None] | None = None
        self.connects = 0
        self.pingpongs = 0
        self.frames = 0
        self.errors = 0
        self.dropped_on_resubscribe: list[Key] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, wait_s: float | None = 10.0) -> bool:
        """Start the session loop; with ``wait_s`` wait that long for the first connection (and the
        registrations made before it). Returns whether it is connected."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="kis-ws")
        if wait_s is None:
            return self.connected.is_set()
        try:
            await asyncio.wait_for(self.connected.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None
        self.connected.clear()

    async def reconnect(self, wait_s: float | None = 10.0) -> bool:
        """Close the current session; the loop reconnects and restores the registrations."""
        ws = self._ws
        before = self.connects
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if wait_s is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            if self.connects > before and self.connected.is_set():
                return True
            await asyncio.sleep(0.01)
        return False

    # -- registrations -----------------------------------------------------------------------

    @property
    def registrations(self) -> list[Key]:
        return list(self._desired)

    @property
    def active(self) -> frozenset[Key]:
        return frozenset(self._active)

    def market_count(self) -> int:
        return sum(1 for tr, _ in self._desired if tr not in T.WS_NOTICES)

    def key_of(self, tr_id: str) -> tuple[str, str] | None:
        return self._keys.get(tr_id)

    async def subscribe(self, tr_id: str, tr_key: str, *, enforce_cap: bool = True) -> None:
        """Register (tr_id, tr_key) now if connected (awaiting the ack), else at the next connect.

        Raises SubscriptionCapacityExceeded when the local budget is full (``enforce_cap``) or the
        server refuses with OPSP0008; BrokerError for another refusal."""
        key = (tr_id, tr_key)
        if key in self._desired:
            return
        if enforce_cap:
            if tr_id not in T.WS_NOTICES and self.market_count() >= self.market_capacity:
                raise SubscriptionCapacityExceeded(
                    f"{self.market_capacity} market-data registrations are in use "
                    f"(KIS allows {self.max_registrations} per session, one kept for execution notices)"
                )
            if len(self._desired) >= self.max_registrations:
                raise SubscriptionCapacityExceeded(f"{self.max_registrations} registrations are in use")
        self._desired[key] = None
        async with self._lock:
            ws = self._ws
            if ws is None or not self.connected.is_set() or key in self._active:
                return
            try:
                ack = await self._register(ws, key, "1")
            except (BrokerUnavailable, websockets.ConnectionClosed):
                return  # the session dropped: the reconnect restores it
            self._settle(key, ack)

    def _settle(self, key: Key, ack: ControlMessage) -> None:
        if ack.ok or ack.msg_cd in OK_CODES:
            self._active.add(key)
            return
        self._desired.pop(key, None)
        if ack.msg_cd == CAP_CODE:
            raise SubscriptionCapacityExceeded(f"KIS refused {key[0]} {key[1]}: {ack.msg_cd} {ack.msg1}", code=CAP_CODE)
        raise BrokerError(f"KIS refused {key[0]} {key[1]}: {ack.msg_cd} {ack.msg1}", code=ack.msg_cd or "WS_REFUSED")

    async def unsubscribe(self, tr_id: str, tr_key: str) -> None:
        key = (tr_id, tr_key)
        if key not in self._desired:
            return
        self._desired.pop(key, None)
        async with self._lock:
            ws = self._ws
            if ws is None or key not in self._active:
                self._active.discard(key)
                return
            self._active.discard(key)
            with contextlib.suppress(BrokerUnavailable, websockets.ConnectionClosed):
                await self._register(ws, key, "2")

    async def _register(self, ws: ClientConnection, key: Key, tr_type: str) -> ControlMessage:
        approval = await self._approval_key(self._refresh_key)
        self._refresh_key = False
        request = {
            "header": {
                "approval_key": approval,
                "custtype": self.custtype,
                "tr_type": tr_type,
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": key[0], "tr_key": key[1]}},
        }
        fut: asyncio.Future[ControlMessage] = asyncio.get_running_loop().create_future()
        self._pending = (key, fut)
        try:
            await ws.send(json.dumps(request))
            return await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout_s)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no ack for {key[0]} {key[1]} within {self.ack_timeout_s}s") from exc
        finally:
            self._pending = None

    # -- the session -------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._closing:
            try:
                async with connect(self.url, ping_interval=None, max_size=None, open_timeout=10, close_timeout=1) as ws:
                    delay = self.reconnect_min_s
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, websockets.WebSocketException, BrokerError) as exc:
                if not self._closing:
                    log.warning(
                        "KIS WebSocket %s: %s: %s; reconnecting in %.2fs", self.url, type(exc).__name__, exc, delay
                    )
            finally:
                self._ws = None
                self._active.clear()
                self.connected.clear()
                pending = self._pending
                if pending is not None and not pending[1].done():
                    pending[1].set_exception(BrokerUnavailable("WebSocket closed before the ack"))
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connects += 1
        reader = asyncio.create_task(self._read(ws), name="kis-ws-reader")
        try:
            async with self._lock:
                for key in list(self._desired):
                    if key not in self._desired or key in self._active:
                        continue
                    for attempt in (1, 2):
                        try:
                            self._settle(key, await self._register(ws, key, "1"))
                        except SubscriptionCapacityExceeded as exc:
                            self.dropped_on_resubscribe.append(key)
                            log.error("KIS WebSocket: registration lost on reconnect: %s", exc)
                        except BrokerError as exc:
                            if isinstance(exc, BrokerUnavailable):
                                raise
                            if attempt == 1:  # maybe a stale approval key: get a new one, try once more
                                self._refresh_key = True
                                self._desired[key] = None
                                continue
                            self.dropped_on_resubscribe.append(key)
                            log.error("KIS WebSocket: registration refused on reconnect: %s", exc)
                        break
            self.connected.set()
            if self.on_connect is not None:
                self.on_connect()
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            try:
                await self._handle(ws, text)
            except (FrameError, NoticeDecryptError, ValueError) as exc:
                self.errors += 1
                log.warning("KIS WebSocket: bad message (%s): %.80r", exc, text)

    async def _handle(self, ws: ClientConnection, text: str) -> None:
        if is_data_frame(text):
            self._on_frame(text)
            return
        msg = parse_control(text)
        if msg.is_pingpong:
            self.pingpongs += 1
            await ws.send(text)
            return
        if msg.key and msg.iv:
            self._keys[msg.tr_id] = (msg.key, msg.iv)
        pending = self._pending
        if (
            pending is not None
            and not pending[1].done()
            and msg.tr_id == pending[0][0]
            and (not msg.tr_key or msg.tr_key == pending[0][1])
        ):
            pending[1].set_result(msg)
            return
        if not msg.ok:
            log.warning("KIS WebSocket control message %s %s: %s %s", msg.tr_id, msg.tr_key, msg.msg_cd, msg.msg1)

    def _on_frame(self, text: str) -> None:
        frame = parse_frame(text)
        self.frames += 1
        payload = frame.payload
        if frame.encrypted:
            kv = self._keys.get(frame.tr_id)
            if kv is None:
                raise NoticeDecryptError(f"encrypted {frame.tr_id} frame before its key arrived")
            payload = decrypt_notice(kv[0], kv[1], payload)
        day = self._today()
        for fields in records(frame, payload):
            if frame.tr_id == T.WS_TRADE:
                if self.on_trade is not None:
                    self.on_trade(parse_trade(fields, day))
            elif frame.tr_id == T.WS_BOOK:
                if self.on_book is not None:
                    self.on_book(parse_book(fields, day))
            elif frame.tr_id in T.WS_NOTICES:
                if self.on_notice is not None:
                    self.on_notice(parse_notice(fields))
            elif self.on_other is not None:
                self.on_other(frame.tr_id, fields)
