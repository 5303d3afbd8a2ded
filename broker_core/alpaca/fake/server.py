"""The fake Alpaca server: trading REST, market-data REST, ``trade_updates`` (``/stream``) and the
market-data stream (``/v2/iex``) on one port, on the real services' paths, backed by the US paper exchange.

alpaca-py needs only ``url_override`` (``http://host:port`` for both REST clients, the full ws URLs for
the streams). Every ``/v2/`` request must carry ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``: wrong keys
get 401 ``{"code": 40110000, ...}``, missing ones 403 ``{"message": "forbidden."}`` (no ``code``, as the
real gateway answers). Faults are switched over HTTP at ``/_fake/faults`` (see ``faults.py``).

Test hooks: ``request_log`` (method, path, status, fake-clock time), ``book`` (orders by Alpaca id and
client order id, ``placed``/``refused`` counts), ``trade_updates``/``market_data`` hubs (connections,
``drop_all``), ``faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from broker_core.alpaca.fake.book import AlpacaBook, Reply
from broker_core.alpaca.fake.faults import FaultPlan, FaultSpecError, Injected
from broker_core.alpaca.fake.market_data import DataRequestError, FakeMarketData
from broker_core.alpaca.fake.streams import MarketDataHub, TradeUpdatesHub
from broker_core.alpaca.fake.wire import error
from broker_core.markets.us import UsMarketRules
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.us_data import UsData

log = logging.getLogger("broker_core.alpaca.fake")
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Any], Callable[..., Any]], Awaitable[None]]
DEFAULT_KEY = "PKFAKEALPACA0000001"


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    at: datetime
    fault: str = ""


class Gateway:
    """Outermost ASGI layer for ``/v2/`` REST: the request log, fault storms (the request is not served),
    the key check, and replies replaced after the request was served (``after_accept``)."""

    def __init__(self, app: ASGIApp, fake: FakeAlpaca) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/v2/"):
            await self.app(scope, receive, send)
            return
        fake = self.fake
        method, path = scope["method"], scope["path"]
        at = fake.clock.now()
        storm = fake.faults.take_storm(method, path)
        if storm is not None:
            fake.request_log.append(LoggedRequest(method, path, storm.status, at, "status"))
            await _send_injected(storm, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        key, secret = headers.get("apca-api-key-id"), headers.get("apca-api-secret-key")
        if key is None or secret is None:
            fake.request_log.append(LoggedRequest(method, path, 403, at))
            await _send_json(403, {"message": "forbidden."}, send)
            return
        if not fake.check_keys(key, secret):
            fake.request_log.append(LoggedRequest(method, path, 401, at))
            await _send_json(401, error(40110000, "request is not authorized"), send)
            return
        after = fake.faults.take_after_accept(method, path)
        status_box: list[int] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box.append(int(message["status"]))
            if after is None:
                await send(message)

        await self.app(scope, receive, capture)
        served = status_box[0] if status_box else 500
        if after is not None:
            fake.request_log.append(LoggedRequest(method, path, after.status, at, f"after_accept:{served}"))
            await _send_injected(after, send)
        else:
            fake.request_log.append(LoggedRequest(method, path, served, at))


async def _send_json(status: int, body: Any, send: Callable[..., Any], headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


async def _send_injected(injected: Injected, send: Callable[..., Any]) -> None:
    if injected.body is not None:
        await _send_json(injected.status, injected.body, send, injected.headers)
        return
    raw = (injected.text or "").encode()
    hdrs = [(b"content-type", b"text/html"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": injected.status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def _quote_or_none(engine: Any, now: datetime, symbol: str) -> Any:
    try:
        return engine.quote(symbol, now)
    except Exception:
        return None


def _respond(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


class FakeAlpaca:
    def __init__(
        self,
        exchange: PaperExchange,
        *,
        data: UsData | None = None,
        rules: UsMarketRules | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_KEY,
        secret_key: str | None = None,
        run_exchange: bool = True,
        seed: int = 0,
        max_data_connections: int = 1,
    ) -> None:
        self.exchange = exchange
        self.clock = exchange.clock
        self.rules = rules or getattr(exchange.engine, "rules", None) or UsMarketRules()
        self.api_key = api_key
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.host = host
        self.port = port
        self.run_exchange = run_exchange
        self.faults = FaultPlan()
        self.book = AlpacaBook(exchange, rules=self.rules)
        self.book.delay_visibility = self.faults.take_delay
        self.market_data = FakeMarketData(exchange, data, self.clock, seed)
        self.trade_updates = TradeUpdatesHub(self.check_keys)
        self.data_stream = MarketDataHub(self.check_keys, max_data_connections)
        self.request_log: list[LoggedRequest] = []
        self.app = self._build_app()
        self.asgi = Gateway(self.app, self)
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    # -- public surface ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://{self.host}:{self.port}/stream"

    @property
    def data_stream_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v2/iex"

    def check_keys(self, key: str, secret: str) -> bool:
        return hmac.compare_digest(key, self.api_key) and hmac.compare_digest(secret, self.secret_key)

    def client_env(self, **extra: str) -> dict[str, str]:
        """The ALPACA_* environment an adapter (or alpaca-py) needs to talk to this fake."""
        env = {
            "ALPACA_API_KEY": self.api_key,
            "ALPACA_SECRET_KEY": self.secret_key,
            "ALPACA_PAPER": "true",
            "ALPACA_BASE_URL": self.base_url,
            "ALPACA_DATA_URL": self.base_url,
            "ALPACA_STREAM_URL": self.stream_url,
            "ALPACA_DATA_STREAM_URL": self.data_stream_url,
        }
        env.update(extra)
        return env

    def drop_streams(self, stream: str = "all") -> int:
        """Close stream connections from the server side now; returns how many."""
        count = 0
        if stream in ("trade_updates", "all"):
            count += self.trade_updates.drop_all()
        if stream in ("market_data", "all"):
            count += self.data_stream.drop_all()
        return count

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> FakeAlpaca:
        config = uvicorn.Config(
            self.asgi,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=None,
            ws_ping_timeout=None,
        )
        self._server = uvicorn.Server(config)
        serve = asyncio.create_task(self._server.serve(), name="fake-alpaca-uvicorn")
        while not self._server.started:
            if serve.done():
                serve.result()
                raise RuntimeError("fake Alpaca server stopped during start")
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._tasks = [
            serve,
            asyncio.create_task(self._order_pump(), name="fake-alpaca-orders"),
            asyncio.create_task(self._tick_pump(), name="fake-alpaca-ticks"),
        ]
        if self.run_exchange:
            self._tasks.append(self.exchange.start())
        log.info("fake Alpaca on %s", self.base_url)
        return self

    async def stop(self) -> None:
        self.drop_streams()
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._tasks[0], 10)
        self._tasks = []

    async def __aenter__(self) -> FakeAlpaca:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _order_pump(self) -> None:
        queue = self.exchange.subscribe_order_updates()
        try:
            while True:
                update = await queue.get()
                try:
                    found = self.book.trade_update(update)
                    if found is None:
                        continue
                    event, message = found
                    if self.faults.take_event_drop(event):
                        log.warning("fake Alpaca fault: %s event dropped with the trade_updates connections", event)
                        self.trade_updates.drop_all()
                        continue
                    self.trade_updates.publish(message)
                except Exception:
                    log.exception("fake Alpaca: trade update for an engine update failed")
        finally:
            self.exchange.unsubscribe_order_updates(queue)

    async def _tick_pump(self) -> None:
        sub = self.exchange.subscribe_ticks(None)
        engine = self.exchange.engine
        try:
            while True:
                batch = [await sub.queue.get()]
                while not sub.queue.empty() and len(batch) < 500:
                    batch.append(sub.queue.get_nowait())
                ids = [self.market_data.on_tick(t) for t in batch]
                self.data_stream.on_ticks(batch, ids, partial(_quote_or_none, engine, self.clock.now()))
        finally:
            self.exchange.unsubscribe_ticks(sub)

    # -- the app -----------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="fake Alpaca", docs_url=None, redoc_url=None, openapi_url=None)
        book = self.book
        md = self.market_data

        async def body_of(request: Request) -> Any:
            try:
                return await request.json()
            except Exception:
                return None

        def params(request: Request) -> dict[str, str]:
            return dict(request.query_params)

        @app.get("/v2/account")
        async def account() -> Response:
            return _respond(book.account())

        @app.get("/v2/account/activities/{activity_type}")
        async def activities_of(activity_type: str, request: Request) -> Response:
            return _respond(book.activities({**params(request), "activity_types": activity_type}))

        @app.get("/v2/account/activities")
        async def activities(request: Request) -> Response:
            return _respond(book.activities(params(request)))

        @app.get("/v2/orders:by_client_order_id")
        async def order_by_client(request: Request) -> Response:
            return _respond(book.get_by_client(request.query_params.get("client_order_id")))

        @app.post("/v2/orders")
        async def submit(request: Request) -> Response:
            return _respond(book.submit(await body_of(request)))

        @app.get("/v2/orders")
        async def orders(request: Request) -> Response:
            return _respond(book.list_orders(params(request)))

        @app.delete("/v2/orders")
        async def cancel_all() -> Response:
            return _respond(book.cancel_all())

        @app.get("/v2/orders/{order_id}")
        async def order(order_id: str) -> Response:
            return _respond(book.get(order_id))

        @app.patch("/v2/orders/{order_id}")
        async def replace(order_id: str, request: Request) -> Response:
            return _respond(book.replace(order_id, await body_of(request)))

        @app.delete("/v2/orders/{order_id}")
        async def cancel(order_id: str) -> Response:
            return _respond(book.cancel(order_id))

        @app.get("/v2/positions")
        async def positions() -> Response:
            return _respond(book.positions())

        @app.delete("/v2/positions")
        async def close_all(request: Request) -> Response:
            return _respond(book.close_all(params(request)))

        @app.get("/v2/positions/{key}")
        async def position(key: str) -> Response:
            return _respond(book.position(key))

        @app.delete("/v2/positions/{key}")
        async def close_position(key: str, request: Request) -> Response:
            return _respond(book.close_position(key, params(request)))

        @app.get("/v2/assets")
        async def assets(request: Request) -> Response:
            return _respond(book.assets(params(request)))

        @app.get("/v2/assets/{key}")
        async def asset(key: str) -> Response:
            return _respond(book.asset(key))

        @app.get("/v2/clock")
        async def market_clock() -> Response:
            return _respond(book.market_clock())

        @app.get("/v2/calendar")
        async def calendar(request: Request) -> Response:
            return _respond(book.calendar(params(request)))

        def data_reply(make: Callable[[], Any]) -> Response:
            try:
                return JSONResponse(make())
            except DataRequestError as exc:
                return JSONResponse(error(42210000 if exc.status == 422 else 40010001, str(exc)), exc.status)

        @app.get("/v2/stocks/bars")
        async def bars(request: Request) -> Response:
            return data_reply(lambda: md.bars(params(request)))

        @app.get("/v2/stocks/bars/latest")
        async def latest_bars(request: Request) -> Response:
            return data_reply(lambda: md.latest("bars", params(request)))

        @app.get("/v2/stocks/trades/latest")
        async def latest_trades(request: Request) -> Response:
            return data_reply(lambda: md.latest("trades", params(request)))

        @app.get("/v2/stocks/quotes/latest")
        async def latest_quotes(request: Request) -> Response:
            return data_reply(lambda: md.latest("quotes", params(request)))

        @app.get("/v2/stocks/snapshots")
        async def snapshots(request: Request) -> Response:
            return data_reply(lambda: md.snapshots(params(request)))

        @app.get("/_fake/faults")
        async def get_faults() -> Response:
            return JSONResponse(self.faults.snapshot())

        @app.post("/_fake/faults")
        async def set_faults(request: Request) -> Response:
            try:
                action = self.faults.apply(await body_of(request))
            except FaultSpecError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            if "drop" in action:
                self.drop_streams(action["drop"])
            log.warning("fake Alpaca faults: %s", self.faults.snapshot())
            return JSONResponse(self.faults.snapshot())

        @app.delete("/_fake/faults")
        async def clear_faults() -> Response:
            self.faults.clear()
            return JSONResponse(self.faults.snapshot())

        @app.get("/_fake/health")
        async def health() -> Response:
            return PlainTextResponse("ok")

        async def trade_stream(websocket: WebSocket) -> None:
            await self.trade_updates.serve(websocket)

        async def data_stream(websocket: WebSocket) -> None:
            await self.data_stream.serve(websocket)

        app.add_api_websocket_route("/stream", trade_stream)
        app.add_api_websocket_route("/v2/iex", data_stream)
        app.add_api_websocket_route("/v2/sip", data_stream)
        return app


__all__ = ["FakeAlpaca", "Gateway", "LoggedRequest"]
