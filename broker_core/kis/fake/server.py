"""The fake KIS server: FastAPI REST + WebSocket on one port, backed by a ``PaperExchange``.

REST (``/oauth2/*``, ``/uapi/...``) follows specs/kis.md §2–§5 (see ``state.py`` for behaviour and
codes); the WebSocket (paths ``/`` and ``/tryitout``) follows §6: JSON registrations with OPSP acks and
the per-session AES key/IV, a 41-registration cap (OPSP0008), PINGPONG (echo counted), H0STCNT0 and
H0STASP0 frames built from the exchange's prints (consecutive prints of a symbol are batched into one
multi-record frame) and encrypted H0STCNI0/H0STCNI9 notices.

Test hooks: ``request_log`` (method, path, tr_id, time by the fake's clock), ``drop_next_order_reply``
(the next order submit is executed, then its connection is cut without a reply),
``delay_next_order_visibility`` (the next order shows in the inquiries only after a delay), ``close_websockets``,
``send_pingpong``, ``publish_ticks``, ``state.expire_tokens`` and ``faults`` (gateway storms: HTTP 500 or
EGW00201 in place of the replies, also over HTTP at ``/_fake/faults`` — see ``faults.py``).

Run one alone with ``broker_core.kis.fake.cli.run_fake_kis``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from broker_core.clock import Clock, RealClock
from broker_core.kis import tr_ids as T
from broker_core.kis.crypto import encrypt_notice
from broker_core.kis.fake.faults import FaultPlan, FaultSpecError
from broker_core.kis.fake.profiles import FakeProfile
from broker_core.kis.fake.profiles import profile as make_profile
from broker_core.kis.fake.realtime import group_by_symbol
from broker_core.kis.fake.state import FakeKisState
from broker_core.kis.fake.traffic import LoggedRequest
from broker_core.kis.fake.wire import Reply, envelope, error
from broker_core.kis.parsers import format_frame
from broker_core.models import Tick
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import TickFeed
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.synthetic import SyntheticFeed

log = logging.getLogger("broker_core.kis.fake")
Scope = MutableMapping[str, Any]
DROP_FLAG = "fake_kis.drop_reply"


@dataclass(eq=False)
class WsSession:
    ws: WebSocket
    path: str
    out: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    registrations: dict[tuple[str, str], None] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    pings: int = 0
    pongs: int = 0
    refused: list[str] = field(default_factory=list)
    """msg_cd of every refused registration (OPSP0008 …)."""

    def send(self, text: str) -> None:
        self.out.put_nowait(text)


class DropReplyMiddleware:
    """Outermost ASGI wrapper: a request flagged by the app gets no reply — its TCP connection is
    aborted (uvicorn's transport) as the response starts, after the handler has done its work."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.dropped = 0

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: dict[str, Any]) -> None:
            if scope.get(DROP_FLAG):
                if message["type"] == "http.response.start":
                    self.dropped += 1
                    transport = getattr(getattr(send, "__self__", None), "transport", None)
                    if transport is not None:
                        transport.abort()
                        return
                    await asyncio.Event().wait()  # no transport to cut: never answer (client times out)
                return
            await send(message)

        await self.app(scope, receive, guarded)


class FakeKis:
    def __init__(
        self,
        prof: str | FakeProfile = "paper",
        *,
        exchange: PaperExchange | None = None,
        feed: TickFeed | None = None,
        clock: Clock | None = None,
        engine: MatchingEngine | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        run_exchange: bool = True,
        names: dict[str, str] | None = None,
        markets: dict[str, str] | None = None,
        daily_source: Any = None,
        flow_source: Any = None,
        **profile_overrides: Any,
    ) -> None:
        self.profile = prof if isinstance(prof, FakeProfile) else make_profile(prof, **profile_overrides)
        if exchange is None:
            clock = clock or RealClock()
            feed = feed or SyntheticFeed(clock.now().date())
            exchange = PaperExchange(feed, clock, engine)
        self.exchange = exchange
        self.clock = exchange.clock
        self.state = FakeKisState(
            self.profile, exchange, names=names, markets=markets, daily_source=daily_source, flow_source=flow_source
        )
        self.state.notice_sink = self._deliver_notice
        self.host = host
        self.port = port
        self.run_exchange = run_exchange
        self.sessions: set[WsSession] = set()
        self.ws_connects = 0
        self.faults = FaultPlan()
        """Gateway faults (HTTP 500 / EGW00201 storms) replacing REST replies; see ``faults.py``."""
        self.app = self._build_app()
        self.asgi = DropReplyMiddleware(self.app)
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    # -- public surface for tests ------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def request_log(self) -> list[LoggedRequest]:
        return self.state.requests

    def drop_next_order_reply(self, n: int = 1) -> None:
        """The next ``n`` order submits are executed and their replies dropped (connection cut)."""
        self.state.drop_order_replies += n

    def delay_next_order_visibility(self, seconds: float, n: int = 1) -> None:
        """The next ``n`` orders placed stay out of the inquiries (daily orders, modifiable orders) for
        ``seconds`` of the fake's clock after they were accepted (their notices are still sent)."""
        self.state.order_desk.delay_visibility.extend([float(seconds)] * n)

    @property
    def dropped_replies(self) -> int:
        return self.asgi.dropped

    async def close_websockets(self) -> int:
        """Close every WebSocket session from the server side (code 1011); returns how many."""
        sessions = list(self.sessions)
        for s in sessions:
            with contextlib.suppress(Exception):
                await s.ws.close(code=1011)
        return len(sessions)

    def send_pingpong(self) -> int:
        text = json.dumps({"header": {"tr_id": "PINGPONG", "datetime": self.clock.now().strftime("%Y%m%d%H%M%S")}})
        for s in self.sessions:
            s.pings += 1
            s.send(text)
        return len(self.sessions)

    def publish_ticks(self, ticks: list[Tick]) -> None:
        """Send prints as H0STCNT0 frames: each run of consecutive prints of one symbol is one frame
        with NNN = its length (and one H0STASP0 record per run to book subscribers)."""
        for symbol, group in group_by_symbol(ticks):
            records = [self.state.realtime.trade_record(t) for t in group]
            trade_key = (T.WS_TRADE, symbol)
            book_key = (T.WS_BOOK, symbol)
            frame = None
            book = None
            for s in list(self.sessions):
                if trade_key in s.registrations:
                    frame = frame or format_frame(T.WS_TRADE, records)
                    s.send(frame)
                if book_key in s.registrations:
                    if book is None:
                        try:
                            book = format_frame(T.WS_BOOK, [self.state.realtime.book_record(symbol)])
                        except Exception:
                            book = ""
                    if book:
                        s.send(book)

    def registrations(self) -> list[tuple[str, str]]:
        return [k for s in self.sessions for k in s.registrations]

    def client_env(self, **extra: str) -> dict[str, str]:
        """The KIS_* environment an adapter needs to talk to this fake."""
        p = self.profile
        env = {
            "KIS_IS_PAPER": "true" if p.paper else "false",
            "KIS_REST_URL": self.rest_url,
            "KIS_WS_URL": self.ws_url,
            "KIS_HTS_ID": p.hts_id,
            "KIS_ACCOUNT_PROD_CODE": p.prod_code,
        }
        if p.paper:
            env.update(
                KIS_PAPER_APP_KEY=p.app_key, KIS_PAPER_APP_SECRET=p.app_secret, KIS_PAPER_ACCOUNT_NO=p.account_no
            )
        else:
            env.update(KIS_APP_KEY=p.app_key, KIS_APP_SECRET=p.app_secret, KIS_ACCOUNT_NO=p.account_no)
        env.update(extra)
        return env

    def client_settings(self, **overrides: Any) -> Any:
        from dataclasses import replace as dc_replace

        from broker_core.kis.settings import KisSettings

        settings = KisSettings.from_env(self.client_env())
        return dc_replace(settings, **overrides) if overrides else settings

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeKis:
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
        serve = asyncio.create_task(self._server.serve(), name="fake-kis-uvicorn")
        while not self._server.started:
            if serve.done():
                serve.result()
                raise RuntimeError("fake KIS server stopped during start")
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._tasks = [
            serve,
            asyncio.create_task(self._tick_pump(), name="fake-kis-ticks"),
            asyncio.create_task(self._order_pump(), name="fake-kis-orders"),
        ]
        if self.profile.pingpong_interval_s:
            self._tasks.append(asyncio.create_task(self._pingpong_loop(), name="fake-kis-pingpong"))
        if self.run_exchange:
            self._tasks.append(self.exchange.start())
        log.info("fake KIS (%s) on %s", self.profile.name, self.rest_url)
        return self

    async def stop(self) -> None:
        await self.close_websockets()
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

    async def __aenter__(self) -> FakeKis:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_pump(self) -> None:
        sub = self.exchange.subscribe_ticks(None)
        try:
            while True:
                batch = [await sub.queue.get()]
                while not sub.queue.empty() and len(batch) < 500:
                    batch.append(sub.queue.get_nowait())
                self.publish_ticks(batch)
        finally:
            self.exchange.unsubscribe_ticks(sub)

    async def _order_pump(self) -> None:
        queue = self.exchange.subscribe_order_updates()
        try:
            while True:
                update = await queue.get()
                try:
                    self.state.order_desk.on_engine_update(update)
                except Exception:
                    log.exception("fake KIS: notice for an engine update failed")
        finally:
            self.exchange.unsubscribe_order_updates(queue)

    async def _pingpong_loop(self) -> None:
        assert self.profile.pingpong_interval_s
        while True:
            await asyncio.sleep(self.profile.pingpong_interval_s)
            self.send_pingpong()

    def _deliver_notice(self, tr_id: str, tr_key: str, record: str) -> None:
        for s in list(self.sessions):
            if (tr_id, tr_key) in s.registrations and tr_id in s.keys:
                key, iv = s.keys[tr_id]
                s.send(format_frame(tr_id, [[""]], encrypted_payload=encrypt_notice(key, iv, record)))

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="fake KIS", docs_url=None, redoc_url=None, openapi_url=None)
        state = self.state

        async def json_body(request: Request) -> dict[str, Any] | None:
            try:
                data = await request.json()
            except Exception:
                return None
            return data if isinstance(data, dict) else None

        def respond(reply: Reply, request: Request, tr_id: str = "") -> JSONResponse:
            headers = {"tr_id": tr_id, "tr_cont": reply.headers.get("tr_cont", ""), "gt_uid": secrets.token_hex(16)}
            if reply.drop:
                request.scope[DROP_FLAG] = True
            return JSONResponse(reply.body, status_code=reply.status, headers=headers)

        def logged(request: Request, reply: Reply, tr_id: str, at: Any, app_key: str = "") -> JSONResponse:
            msg_cd = str(reply.body.get("msg_cd") or reply.body.get("error_code") or "")
            state.traffic.log(
                request.method,
                request.url.path,
                tr_id,
                reply.status,
                msg_cd,
                app_key,
                request.headers.get("tr_cont", ""),
                at=at,
            )
            return respond(reply, request, tr_id)

        @app.post("/oauth2/tokenP")
        async def token(request: Request) -> JSONResponse:
            at = self.clock.now()
            body = await json_body(request) or {}
            return logged(request, state.auth.issue_token(body), "", at, str(body.get("appkey", "")))

        @app.post("/oauth2/revokeP")
        async def revoke(request: Request) -> JSONResponse:
            at = self.clock.now()
            body = await json_body(request) or {}
            return logged(request, state.auth.revoke_token(body), "", at, str(body.get("appkey", "")))

        @app.post("/oauth2/Approval")
        async def approval(request: Request) -> JSONResponse:
            at = self.clock.now()
            body = await json_body(request) or {}
            return logged(request, state.auth.approval(body), "", at, str(body.get("appkey", "")))

        @app.post("/uapi/hashkey")
        async def hashkey(request: Request) -> JSONResponse:
            at = self.clock.now()
            body = await json_body(request) or {}
            h = request.headers
            if not state.auth.check_credentials(h.get("appkey", ""), h.get("appsecret", "")):
                return logged(request, Reply(403, {"error_code": "EGW00103", "error_description": "appkey"}), "", at)
            return logged(request, state.auth.hashkey(body), "", at, h.get("appkey", ""))

        @app.api_route("/uapi/{rest:path}", methods=["GET", "POST"])
        async def uapi(request: Request, rest: str) -> Response:
            at = self.clock.now()
            h = request.headers
            tr_id, app_key = h.get("tr_id", ""), h.get("appkey", "")
            injected = self.faults.take(request.url.path)
            if injected is not None:
                state.traffic.log(
                    request.method, request.url.path, tr_id, injected.status, injected.msg_cd, app_key, at=at
                )
                if injected.text is not None:
                    return PlainTextResponse(injected.text, status_code=injected.status)
                headers = {"tr_id": tr_id, "tr_cont": "", "gt_uid": secrets.token_hex(16)}
                return JSONResponse(injected.body, status_code=injected.status, headers=headers)
            reply = await self._uapi(request, "/uapi/" + rest, at)
            return logged(request, reply, tr_id, at, app_key)

        @app.get("/_fake/faults")
        async def get_faults() -> JSONResponse:
            return JSONResponse(self.faults.snapshot())

        @app.post("/_fake/faults")
        async def set_faults(request: Request) -> JSONResponse:
            try:
                self.faults.apply_request(await json_body(request))
            except FaultSpecError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            log.warning("fake KIS fault: %s", self.faults.snapshot()["active"])
            return JSONResponse(self.faults.snapshot())

        @app.delete("/_fake/faults")
        async def clear_faults() -> JSONResponse:
            self.faults.clear()
            return JSONResponse(self.faults.snapshot())

        async def ws_route(websocket: WebSocket) -> None:
            await self._ws_session(websocket)

        app.add_api_websocket_route("/", ws_route)
        app.add_api_websocket_route("/tryitout", ws_route)
        return app

    async def _uapi(self, request: Request, path: str, at: Any) -> Reply:
        state = self.state
        h = request.headers
        tr_id, app_key, tr_cont = h.get("tr_id", ""), h.get("appkey", ""), h.get("tr_cont", "")
        if not state.auth.check_credentials(app_key, h.get("appsecret", "")):
            return Reply(500, envelope("1", "EGW00103", "유효하지 않은 AppKey입니다."))
        token_error = state.auth.check_token(h.get("authorization", ""), app_key, at)
        if token_error == "EGW00123":
            return Reply(500, envelope("1", "EGW00123", "기간이 만료된 token 입니다."))
        if token_error:
            return Reply(500, envelope("1", token_error, "유효하지 않은 token 입니다."))
        if not state.traffic.admit(app_key, at):
            return Reply(500, envelope("1", "EGW00201", "초당 거래건수를 초과하였습니다."))
        if h.get("custtype", "") not in ("P", "B"):
            return Reply(500, envelope("1", "EGW00105", "custtype 을 확인하세요 (P/B)."))
        tr = T.for_path(path, tr_id, state.profile.paper)
        if tr is None:
            known = T.trs_on_path(path)
            if not known:
                return Reply(404, envelope("1", "OPSQ0002", f"없는 서비스 코드 입니다 ({path})"))
            if state.profile.paper and any(tr_id in t.ids(False) and not t.paper_supported for t in known):
                return Reply(500, envelope("1", "OPSQ0002", f"모의투자에서는 해당업무가 제공되지 않습니다 ({tr_id})"))
            return Reply(500, envelope("1", "OPSQ0002", f"없는 서비스 코드 입니다 ({tr_id})"))
        if request.method != tr.method:
            return Reply(405, envelope("1", "APBK9012", f"{tr.name} is {tr.method}"))
        if tr.method == "POST":
            body = None
            with contextlib.suppress(Exception):
                body = await request.json()
            if not isinstance(body, dict):
                return error("APBK9012", "body must be a JSON object")
            bad = [k for k, v in body.items() if k != k.upper() or not isinstance(v, str)]
            if bad:
                return error("APBK9012", f"body keys must be UPPER-CASE with string values: {bad}")
            if tr.name in ("order_buy", "order_sell"):
                return state.order_desk.order_cash(tr, body)
            return state.order_desk.order_rvsecncl(body)
        params = {k: v for k, v in request.query_params.items()}
        if path.startswith("/uapi/domestic-stock/v1/quotations/"):
            if tr.name != "chk_holiday" and params.get("FID_COND_MRKT_DIV_CODE", "J") not in ("J", "UN"):
                return error("APBK9012", "FID_COND_MRKT_DIV_CODE: the fake serves J (KRX)")
        symbol = params.get("FID_INPUT_ISCD", "")
        handlers: dict[str, Callable[[], Reply]] = {
            "inquire_balance": lambda: state.account.balance(params, tr_cont),
            "inquire_daily_ccld": lambda: state.account.daily_ccld(params, tr_cont),
            "inquire_daily_ccld_3m": lambda: state.account.daily_ccld(params, tr_cont),
            "inquire_psbl_order": lambda: state.account.psbl_order(params),
            "inquire_psbl_rvsecncl": lambda: state.account.psbl_rvsecncl(params, tr_cont),
            "inquire_price": lambda: state.market_data.price(symbol),
            "inquire_asking_price": lambda: state.market_data.asking_price(symbol),
            "inquire_time_itemchartprice": lambda: state.market_data.minute_bars(symbol, params),
            "inquire_time_dailychartprice": lambda: state.market_data.minute_bars(
                symbol, params, _ymd_or_none(params.get("FID_INPUT_DATE_1", ""))
            ),
            "inquire_daily_itemchartprice": lambda: state.market_data.daily_chart(symbol, params),
            "inquire_daily_price": lambda: state.market_data.daily_price(symbol),
            "inquire_investor": lambda: state.market_data.investor(symbol),
            "program_trade_by_stock": lambda: state.market_data.program_trade(symbol),
            "chk_holiday": lambda: state.market_data.holidays(params, tr_cont),
        }
        handler = handlers.get(tr.name)
        if handler is None:
            return Reply(500, envelope("1", "OPSQ0002", f"{tr.name} is not simulated by the fake"))
        return handler()

    # -- WebSocket ---------------------------------------------------------------------------

    async def _ws_session(self, websocket: WebSocket) -> None:
        await websocket.accept()
        session = WsSession(websocket, websocket.url.path)
        self.sessions.add(session)
        self.ws_connects += 1
        writer = asyncio.create_task(self._ws_writer(session))
        try:
            while True:
                text = await websocket.receive_text()
                self._ws_message(session, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.sessions.discard(session)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _ws_writer(self, session: WsSession) -> None:
        while True:
            text = await session.out.get()
            await session.ws.send_text(text)

    def _ws_message(self, session: WsSession, text: str) -> None:
        def ack(
            tr_id: str,
            tr_key: str,
            rt_cd: str,
            msg_cd: str,
            msg1: str,
            output: dict[str, str] | None = None,
            encrypt: str = "N",
        ) -> None:
            body: dict[str, Any] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
            if output:
                body["output"] = output
            session.send(json.dumps({"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": encrypt}, "body": body}))
            if rt_cd != "0":
                session.refused.append(msg_cd)

        try:
            data = json.loads(text)
            header = data.get("header") or {}
            body = data.get("body") or {}
        except (ValueError, AttributeError):
            ack("", "", "1", "OPSP9999", "JSON PARSING ERROR")
            return
        if header.get("tr_id") == "PINGPONG":
            session.pongs += 1
            return
        inp = (body.get("input") or {}) if isinstance(body, dict) else {}
        tr_id, tr_key = str(inp.get("tr_id", "")), str(inp.get("tr_key", ""))
        if header.get("approval_key") not in self.state.auth.approval_keys:
            ack(tr_id, tr_key, "1", "OPSP0011", "invalid approval : NOT FOUND")
            return
        notice = self.profile.notice_tr_id
        valid_trs = {T.WS_TRADE, T.WS_BOOK, T.WS_EXPECTED, T.WS_PROGRAM, notice}
        if tr_id not in valid_trs or (tr_id == notice and tr_key != self.profile.hts_id) or not tr_key:
            ack(tr_id, tr_key, "1", "OPSP9997", "INVALID TR_ID/TR_KEY")
            return
        key = (tr_id, tr_key)
        tr_type = str(header.get("tr_type", ""))
        if tr_type == "1":
            if key in session.registrations:
                ack(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE")
                return
            if len(session.registrations) >= self.profile.max_registrations:
                ack(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER")
                return
            session.registrations[key] = None
            if tr_id not in session.keys:
                session.keys[tr_id] = self.state.auth.new_key_iv()
            k, iv = session.keys[tr_id]
            ack(
                tr_id,
                tr_key,
                "0",
                "OPSP0000",
                "SUBSCRIBE SUCCESS",
                {"iv": iv, "key": k},
                encrypt="Y" if tr_id == notice else "N",
            )
        elif tr_type == "2":
            if key not in session.registrations:
                ack(tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
                return
            del session.registrations[key]
            ack(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
        else:
            ack(tr_id, tr_key, "1", "OPSP9999", f"tr_type must be 1 or 2, got {tr_type!r}")


def _ymd_or_none(value: str) -> date | None:
    v = value.strip()
    if len(v) == 8 and v.isdigit():
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    return None


__all__ = ["DropReplyMiddleware", "FakeKis", "WsSession"]
