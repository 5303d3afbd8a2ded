"""The auth matrix: no key, a wrong key, the read key, each strategy key and the admin key against every
route of the app (``app.routes``, so a new route is covered — or the test names it as unclassified),
including ``WS /api/v1/stream``; and the read scoping of strategy keys.

The rules (ARCHITECTURE.md, "OMS HTTP API (v1)"): without a valid key 401; the read key may call every
GET but nothing else and may not hold stream subscriptions; a strategy key acts only as its own
strategy (403 otherwise), may not call admin routes (403) and sees only its own allocations, intents,
orders, fills and strategy status; the admin key may call everything. Path parameters name real
objects: each strategy has an intent, an order and a filled allocation when the matrix runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute
from starlette.routing import Mount, Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.oms_server import (
    ADMIN_KEY,
    READ_KEY,
    STRATEGY_KEYS,
    Oms,
    auth,
    oms_settings,
    running_oms,
    sim_clock,
)
from tests.support.wait import until

HOLDINGS = {"KMP": "005930", "KPR": "000660", "NULRIMOK": "000270", "PCIM": "012330"}
"""Each strategy enters one name before the matrix runs."""
PUBLIC = {"/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
DASHBOARD_PAGES = {"/dashboard", "/dashboard/equity"}
"""The built-in page and its curve: the read and admin keys only (401, the login form, for every other)."""
STATIC = {"/dashboard/static": "/dashboard/static/dashboard.css"}
OWN_OBJECT = {"/api/v1/intents/{intent_id}": "intent_id", "/api/v1/orders/{order_id}": "order_id"}
WRONG_KEY = "not-a-key-of-this-oms-123"


@dataclass(frozen=True)
class Caller:
    name: str
    key: str | None
    role: str
    """none, read, strategy, admin"""
    strategy_id: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


CALLERS = [
    Caller("no key", None, "none"),
    Caller("wrong key", WRONG_KEY, "none"),
    Caller("read", READ_KEY, "read"),
    *(Caller(sid, key, "strategy", sid) for sid, key in STRATEGY_KEYS.items()),
    Caller("admin", ADMIN_KEY, "admin"),
]


@dataclass
class World:
    oms: Oms
    intents: dict[str, str]
    orders: dict[str, str]


@asynccontextmanager
async def trading_oms(tmp_path: Path) -> AsyncIterator[World]:
    """A running OMS where every strategy has an intent, an order and a filled allocation."""
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(9, 30, speed=30)) as oms:
        world = World(oms, {}, {})
        for sid, symbol in HOLDINGS.items():
            reply = await oms.intent(
                STRATEGY_KEYS[sid],
                intent_type="ENTER",
                strategy_id=sid,
                symbol=symbol,
                desired_qty=1,
                constraints={"order_type": "MARKETABLE_LIMIT"},
                idempotency_key=f"matrix-{sid}",
            )
            body = reply.json()
            assert reply.status_code == 200 and body["order_id"], body
            world.intents[sid], world.orders[sid] = body["intent_id"], body["order_id"]
        for sid, symbol in HOLDINGS.items():

            async def holds(sid: str = sid, symbol: str = symbol) -> bool:
                return symbol in await oms.get(f"/api/v1/allocations/{sid}", ADMIN_KEY)

            await until(holds, timeout=60, what=f"{sid} filled in {HOLDINGS[sid]}")
        yield world


# ---- the route table ---------------------------------------------------------------------------------
def classify(method: str, path: str) -> str:
    """The access rule of a route. A route that fits no rule fails the test until it is given one."""
    if path in PUBLIC or (method == "POST" and path == "/dashboard/logout") or (method, path) == ("MOUNT", *STATIC):
        return "public"
    if method == "GET" and path in DASHBOARD_PAGES:
        return "dashboard"
    if method == "POST" and path == "/dashboard/login":
        return "login"
    if method == "WS" and path == "/api/v1/stream":
        return "stream"
    if method == "GET" and path.startswith("/api/v1/"):
        if "{strategy_id}" in path:
            return "read-own-path"
        if path in OWN_OBJECT:
            return "read-own-object"
        return "read"
    if method == "POST" and path.startswith(("/api/v1/admin/", "/api/v1/risk/")):
        return "admin"
    if method == "POST" and path == "/api/v1/intents":
        return "write-own-body"
    if method == "POST" and path == "/api/v1/strategies/{strategy_id}/heartbeat":
        return "write-own-path"
    raise AssertionError(f"unclassified route {method} {path}: give it an access rule in the auth matrix")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app``, ``WS`` for WebSocket routes (included routers flattened)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion: app.routes is already flat
        flat = [(r, r) for r in app.routes]
    else:
        flat = [(c.original_route, c) for c in iter_route_contexts(app.routes)]
    out: list[tuple[str, str]] = []
    for original, route in flat:
        if isinstance(original, APIWebSocketRoute):
            out.append(("WS", route.path))
        elif isinstance(original, Route):
            out.extend((m, route.path) for m in sorted(route.methods or ()) if m not in ("HEAD", "OPTIONS"))
        elif isinstance(original, Mount):
            out.append(("MOUNT", original.path))
        else:
            raise AssertionError(f"unexpected route type {type(original).__name__}: {original!r}")
    return out


def routes(oms: Oms) -> list[tuple[str, str]]:
    """The routes of the app the OMS serves (a second app on the same runtime; nothing is started)."""
    from oms.app import create_app

    return app_routes(create_app(runtime=oms.runtime))


ADMIN_BODIES: dict[str, Any] = {
    "/api/v1/risk/safe-mode": {"enabled": False},
    "/api/v1/risk/vi-cooldown": {"symbol": "000720", "seconds": 1},
    "/api/v1/admin/correct-allocation": {"symbol": "000720", "from_strategy": "PCIM", "qty": 1},
}
ADMIN_PATH_PARAMS = {"strategy_id": "PCIM", "symbol": "000720"}


def other(sid: str) -> str:
    return "KPR" if sid != "KPR" else "KMP"


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: Any
    expect: str
    """allow, 401, 403"""
    why: str


def calls(world: World, method: str, path: str, who: Caller, regime: str) -> list[Call]:
    """The requests ``who`` makes on one route, each with the outcome the rules demand."""
    rule = classify(method, path)
    if rule == "public" and method == "MOUNT":
        return [Call("GET", STATIC[path], None, "allow", "static file of the dashboard")]
    if rule == "public":
        return [Call(method, path, None, "allow", "public route")]
    if rule == "login":
        return [Call(method, path, None, "401", "a login without the read key")]
    if rule == "dashboard":
        expect = "allow" if who.role in ("read", "admin") else "401"
        return [Call(method, path, None, expect, "the dashboard takes the read or admin key")]
    if who.role == "none":
        url = path.format(
            strategy_id="KMP", symbol="005930", intent_id=world.intents["KMP"], order_id=world.orders["KMP"]
        )
        body = _intent("KMP") if rule == "write-own-body" else ADMIN_BODIES.get(path, {"regime": regime})
        return [Call(method, url, body if method == "POST" else None, "401", "no valid key")]
    sid = who.strategy_id or "KMP"
    if rule == "read":
        return [Call(method, path.format(symbol="005930"), None, "allow", "any key may read")]
    if rule == "admin":
        body = ADMIN_BODIES.get(path, {"regime": regime} if path.endswith("/regime") else None)
        expect = "allow" if who.role == "admin" else "403"
        return [Call(method, path.format(**ADMIN_PATH_PARAMS), body, expect, "admin only")]
    targets = [(sid, "allow")] + ([(other(sid), "403")] if who.role == "strategy" else [])
    out = []
    for target, expect in targets:
        if rule == "read-own-path":
            out.append(Call(method, path.format(strategy_id=target), None, expect, f"allocations of {target}"))
        elif rule == "read-own-object":
            param = OWN_OBJECT[path]
            obj = (world.intents if param == "intent_id" else world.orders)[target]
            out.append(Call(method, path.format(**{param: obj}), None, expect, f"{param} of {target}"))
        else:
            writes = "403" if who.role == "read" else expect
            if rule == "write-own-body":
                out.append(Call(method, path, _intent(target), writes, f"intent as {target}"))
            else:
                url = path.format(strategy_id=target)
                out.append(Call(method, url, {"status": {"matrix": True}}, writes, f"heartbeat as {target}"))
    return out


def _intent(strategy_id: str) -> dict[str, Any]:
    """A harmless intent: cancel the (absent) working orders of a name nobody trades."""
    return {"intent_type": "CANCEL_ORDERS", "strategy_id": strategy_id, "symbol": "000720"}


async def _send(http: httpx.AsyncClient, call: Call, who: Caller) -> httpx.Response:
    if call.method == "GET":
        return await http.get(call.url, headers=who.headers())
    return await http.request(call.method, call.url, json=call.body, headers=who.headers())


# ---- the stream -------------------------------------------------------------------------------------
async def _ws(oms: Oms, key: str | None, *, query_key: bool = False) -> ClientConnection:
    url = oms.url.replace("http://", "ws://") + "/api/v1/stream"
    headers = {}
    if key and query_key:
        url += f"?api_key={key}"
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return await connect(url, additional_headers=headers, ping_interval=None, open_timeout=10)


async def _answer(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
    """Send ``msg`` and return the first answer to it (order/fill events in between are skipped)."""
    await ws.send(json.dumps(msg))
    while True:
        raw = await asyncio.wait_for(ws.recv(), 20)
        frame = json.loads(raw)
        if frame.get("type") in ("subscribed", "unsubscribed", "error"):
            return frame


async def _refused(oms: Oms, key: str | None) -> bool:
    """The stream handshake with ``key`` is refused (HTTP 403 from the server) or closed at once."""
    try:
        ws = await _ws(oms, key)
    except InvalidStatus as exc:
        return exc.response.status_code in (401, 403)
    try:
        await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as exc:
        return exc.rcvd is not None and exc.rcvd.code == 1008
    finally:
        with suppress(Exception):
            await ws.close()
    return False


async def _slot_owners(oms: Oms) -> dict[str, list[str]]:
    snap = await oms.get("/api/v1/marketdata/slots", ADMIN_KEY)
    return {owner: lease["symbols"] for owner, lease in snap["leases"].items() if lease["symbols"]}


async def check_stream(oms: Oms, who: Caller) -> list[str]:
    """Problems of ``who`` on the stream (empty when the rules hold)."""
    if who.role == "none":
        return [] if await _refused(oms, who.key) else [f"{who.name}: stream accepted without a valid key"]
    problems: list[str] = []
    before = await _slot_owners(oms)
    for query_key in (False, True):
        ws = await _ws(oms, who.key, query_key=query_key)
        try:
            answer = await _answer(ws, {"op": "subscribe", "symbols": ["000720"], "channels": ["trades"]})
            if who.role == "read":
                if answer.get("type") != "error" or "read" not in str(answer.get("detail", "")).lower():
                    problems.append(f"read key subscribe answered {answer}")
                if await _slot_owners(oms) != before:
                    problems.append(f"read key took a slot: {await _slot_owners(oms)}")
            elif answer.get("type") != "subscribed":
                # granted, or denied by the slot policy (window, max_slots): either way not an auth refusal
                problems.append(f"{who.name} subscribe answered {answer}")
        finally:
            await ws.close()
    return problems


# ---- the tests --------------------------------------------------------------------------------------
async def test_every_route_times_every_key(tmp_path: Path) -> None:
    async with trading_oms(tmp_path) as world:
        oms = world.oms
        table = routes(oms)
        rules = {classify(m, p) for m, p in table}
        assert {"read", "admin", "stream", "write-own-body", "read-own-object"} <= rules, table
        regime = (await oms.get("/api/v1/state/account", ADMIN_KEY))["regime"] or "NEUTRAL"
        problems: list[str] = []
        checked = 0
        # admin last: its flatten-all and EOD clean-up change what later calls would see
        for who in sorted(CALLERS, key=lambda c: c.role == "admin"):
            for method, path in table:
                if method == "WS":
                    problems += await check_stream(oms, who)
                    checked += 1
                    continue
                for call in calls(world, method, path, who, regime):
                    resp = await _send(oms.http, call, who)
                    checked += 1
                    got = resp.status_code
                    ok = (got not in (401, 403) and got < 500) if call.expect == "allow" else got == int(call.expect)
                    if not ok:
                        problems.append(f"{who.name} {call.method} {call.url} ({call.why}): {got} {resp.text[:160]}")
        assert not problems, "\n".join(problems)
        assert checked >= len(table) * len(CALLERS)


def test_every_route_has_an_access_rule(tmp_path: Path) -> None:
    """Without a server: a new route fails here until it is given an access rule."""
    from oms.app import create_app
    from oms.settings import load_config
    from trader.venues import build_venue

    app = create_app(settings=oms_settings(tmp_path), config=load_config(), venue=build_venue)
    table = app_routes(app)
    assert len(table) >= 30 and ("WS", "/api/v1/stream") in table, table
    for method, path in table:
        classify(method, path)


async def test_a_strategy_key_reads_only_its_own(tmp_path: Path) -> None:
    """Defect 13: a strategy key saw every strategy's allocations in /positions and /strategies."""
    async with trading_oms(tmp_path) as world:
        oms = world.oms
        everyone = await oms.get("/api/v1/positions", READ_KEY)
        assert {s: set(p["allocations"]) for s, p in everyone.items() if s in HOLDINGS.values()} == {
            sym: {sid} for sid, sym in HOLDINGS.items()
        }
        for sid, key in STRATEGY_KEYS.items():
            mine = HOLDINGS[sid]
            positions = await oms.get("/api/v1/positions", key)
            # account totals stay visible: every position with its real quantity
            assert set(positions) == set(everyone), sid
            assert all(positions[s]["real_qty"] == everyone[s]["real_qty"] for s in everyone)
            seen = {s: set(p["allocations"]) for s, p in positions.items() if p["allocations"]}
            assert seen == {mine: {sid}}, (sid, seen)
            theirs = HOLDINGS[other(sid)]
            single = await oms.get(f"/api/v1/positions/{theirs}", key)
            assert single["real_qty"] == everyone[theirs]["real_qty"] and single["allocations"] == {}, single
            assert set((await oms.get(f"/api/v1/positions/{mine}", key))["allocations"]) == {sid}

            strategies = await oms.get("/api/v1/strategies", key)
            assert set(strategies) == {sid}, (sid, strategies)
            for path in ("/api/v1/intents", "/api/v1/orders", "/api/v1/fills"):
                rows = await oms.get(path, key)
                assert rows and {r["strategy_id"] for r in rows} == {sid}, (sid, path, rows)
                asked = await oms.http.get(path, params={"strategy_id": other(sid)}, headers=auth(key))
                assert asked.status_code == 403, (sid, path, asked.text)
            for path in (f"/api/v1/intents/{world.intents[other(sid)]}", f"/api/v1/orders/{world.orders[other(sid)]}"):
                resp = await oms.http.get(path, headers=auth(key))
                assert resp.status_code == 403, (sid, path, resp.text)
        # the read and admin keys see everything
        for key in (READ_KEY, ADMIN_KEY):
            assert set(await oms.get("/api/v1/strategies", key)) >= set(HOLDINGS)
            assert {r["strategy_id"] for r in await oms.get("/api/v1/fills", key)} == set(HOLDINGS)


@pytest.mark.parametrize("query_key", [False, True], ids=["header", "api_key"])
async def test_the_read_key_cannot_hold_stream_slots(tmp_path: Path, query_key: bool) -> None:
    """Defect 14: the read key could subscribe, so one reader could take every slot of the account."""
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(9, 30, speed=30)) as oms:
        ws = await _ws(oms, READ_KEY, query_key=query_key)
        try:
            answer = await _answer(ws, {"op": "subscribe", "symbols": ["005930", "000660"], "channels": ["trades"]})
            assert answer["type"] == "error" and "read key" in answer["detail"], answer
            snap = await oms.get("/api/v1/marketdata/slots", ADMIN_KEY)
            assert snap["used"] == 0 and "READ" not in snap["leases"], snap
            # the connection stays usable for order/fill events; a strategy still gets the symbols
            kmp = await _ws(oms, STRATEGY_KEYS["KMP"])
            try:
                granted = await _answer(kmp, {"op": "subscribe", "symbols": ["005930"], "channels": ["trades"]})
                assert granted["granted"] == ["005930"], granted
            finally:
                await kmp.close()
            again = await _answer(ws, {"op": "subscribe", "symbols": ["005930"]})
            assert again["type"] == "error", again
        finally:
            await ws.close()
