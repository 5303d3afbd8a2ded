"""``GET /dashboard``: the OMS's read-only page for an operator.

Server-rendered HTML (positions and allocations, working orders, today's fills, the equity and day-P&L curve,
risk state, slot budget, strategy heartbeats) that ``static/dashboard.js`` keeps current by polling the
existing API (``/health``, ``/api/v1/...``). The page needs the read (or admin) key: sent as ``Authorization:
Bearer`` or entered once in its login form, which keeps it in an HttpOnly, SameSite=Strict cookie that the
API accepts for GET requests only. Without a valid key the page is a 401 with the login form and no data.
The chart is uPlot (MIT, ``static/uPlot.iife.min.js``), served from here: nothing is fetched elsewhere.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, time, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from broker_core.clock import KST
from oms.api.auth import COOKIE_NAME, Principal
from oms.api.control import account as account_state
from oms.api.control import strategies as strategy_list
from oms.api.orders import list_fills, list_orders
from oms.api.positions import position_out
from oms.runtime import OmsRuntime
from oms.web.curve import EquityCurve

STATIC_DIR = Path(__file__).resolve().parent / "static"
POLL_MS = 2000

router = APIRouter(include_in_schema=False)


def mount_static(app: Any) -> None:
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="dashboard-static")


def _viewer(request: Request) -> Principal | None:
    """The read or admin principal of the request (bearer header, else the dashboard cookie)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        key = request.cookies.get(COOKIE_NAME, "")
    found: Principal | None = request.app.state.keys.lookup(key.strip()) if key else None
    return found if found is not None and found.role in ("read", "admin") else None


def _curve(request: Request) -> EquityCurve:
    curve: EquityCurve = request.app.state.equity_curve
    return curve


# ---- rendering ------------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 0) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return _e(value)


def _time(value: Any, tz: tzinfo = KST) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).astimezone(tz).strftime("%H:%M:%S")
    except ValueError:
        return _e(value)


def _rows(rows: list[list[str]], empty: str, cols: int) -> str:
    if not rows:
        return f'<tr class="empty"><td colspan="{cols}">{_e(empty)}</td></tr>'
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)


def _position_rows(positions: dict[str, Any]) -> str:
    rows = []
    for sym, p in positions.items():
        last = p.get("last_price") or p.get("avg_price")
        value = (p.get("real_qty") or 0) * (last or 0)
        upnl = (p.get("real_qty") or 0) * ((last or 0) - (p.get("avg_price") or 0))
        allocs = ", ".join(f"{_e(s)}:{a['qty']}" for s, a in sorted(p.get("allocations", {}).items()))
        rows.append(
            [
                f'<span class="sym" data-symbol="{_e(sym)}">{_e(sym)}</span>',
                _num(p.get("real_qty")),
                _num(p.get("avg_price"), 1),
                _num(last, 1),
                _num(value),
                f'<span class="{"neg" if upnl < 0 else "pos"}">{_num(upnl)}</span>',
                allocs,
                "frozen" if p.get("frozen") else "",
            ]
        )
    return _rows(rows, "no positions", 8)


def _order_rows(orders: list[dict[str, Any]], tz: tzinfo) -> str:
    rows = [
        [
            _time(o.get("created_at"), tz),
            _e(o.get("strategy_id")),
            _e(o.get("symbol")),
            _e(o.get("side")),
            _num(o.get("qty")),
            _num(o.get("filled_qty")),
            _e(o.get("order_type")),
            _num(o.get("limit_price"), 1),
            _e(o.get("state")),
        ]
        for o in orders
    ]
    return _rows(rows, "no working orders", 9)


def _fill_rows(fills: list[dict[str, Any]], tz: tzinfo) -> str:
    rows = [
        [
            _time(f.get("ts"), tz),
            _e(f.get("strategy_id")),
            _e(f.get("symbol")),
            _e(f.get("side")),
            _num(f.get("qty")),
            _num(f.get("price"), 1),
        ]
        for f in fills
    ]
    return _rows(rows, "no fills today", 6)


def _strategy_rows(strategies: dict[str, Any], now: datetime, tz: tzinfo) -> str:
    rows = []
    for sid, s in strategies.items():
        hb = s.get("last_heartbeat")
        age = f"{(now - datetime.fromisoformat(hb)).total_seconds():.0f} s" if hb else "never"
        rows.append(
            [
                _e(sid),
                "paused" if s.get("paused") else "running",
                _time(hb, tz),
                age,
                _num(s.get("realized_pnl")),
                _num(s.get("fills_today")),
                _e(", ".join(f"{k}:{v}" for k, v in sorted((s.get("positions") or {}).items()))),
            ]
        )
    return _rows(rows, "no strategy has reported", 7)


def _slot_rows(slots: dict[str, Any]) -> str:
    rows = []
    for owner, lease in (slots.get("leases") or {}).items():
        window = lease.get("window") or {}
        rows.append(
            [
                _e(owner),
                _num(lease.get("count")),
                _e("—" if lease.get("max_slots") is None else lease.get("max_slots")),
                _num(lease.get("priority")),
                _e(
                    f"{window.get('start') or ''}–{window.get('end') or ''}"
                    if window.get("start") or window.get("end")
                    else "all day"
                ),
                "yes" if lease.get("in_window") else "no",
            ]
        )
    return _rows(rows, "no leases", 6)


def _kv(items: list[tuple[str, str, str]]) -> str:
    return "".join(f'<div class="kv"><span>{_e(k)}</span><b id="{i}">{v}</b></div>' for k, i, v in items)


def _login_page(message: str = "") -> str:
    note = f'<p class="error">{_e(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OMS dashboard — sign in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body class="login"><main><h1>OMS dashboard</h1>
<p>This page needs the OMS's read key (<code>OMS_READ_KEY</code>).</p>{note}
<form method="post" action="/dashboard/login" id="login">
<label>Read key <input type="password" name="key" id="key" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></main></body></html>"""


async def _page(rt: OmsRuntime, who: Principal, curve: EquityCurve) -> str:
    health = rt.health()
    now = rt.clock.now()
    ready = rt.intents is not None and rt.status != "starting"
    acct: dict[str, Any] = await account_state(rt, who) if ready else {}
    positions = {s: position_out(rt, s, who) for s in sorted(_held(rt))} if ready else {}
    orders = await list_orders(None, None, True, 500, rt, who) if ready and rt.reader else []
    tz = rt.market.tz
    day_start = datetime.combine(now.astimezone(tz).date(), time(0), tz)
    fills = await list_fills(None, None, day_start, 1000, rt, who) if ready and rt.reader else []
    strategies = await strategy_list(rt, who) if ready else {}
    slots = rt.hub.snapshot() if rt.hub is not None else {}
    curve.sample(rt)
    pnl = acct.get("daily_pnl")
    risk = [
        ("status", "h-status", _e(health["status"])),
        ("database", "h-db", _e(health.get("db"))),
        ("circuit breaker", "h-breaker", _e(health.get("kis_circuit_breaker"))),
        ("reconciliation", "h-recon", _e(health.get("recon_status"))),
        ("safe mode", "a-safe", _e(acct.get("safe_mode"))),
        ("entries halted", "a-halt", _e(acct.get("halt_new_entries"))),
        ("trading state", "a-trading", _e(acct.get("trading_state"))),
        ("frozen symbols", "a-frozen", _e(", ".join(acct.get("frozen_symbols") or {}) or "none")),
        ("journal backlog", "h-backlog", _num(health.get("journal_backlog"))),
    ]
    money = [
        ("equity", "a-equity", _num(acct.get("equity"))),
        ("buyable cash", "a-cash", _num(acct.get("buyable_cash"))),
        ("day P&L", "a-pnl", f'<span class="{"neg" if (pnl or 0) < 0 else "pos"}">{_num(pnl)}</span>'),
        ("day P&L %", "a-pnl-pct", _num((acct.get("daily_pnl_pct") or 0) * 100, 2)),
        ("realized", "a-realized", _num(acct.get("realized_pnl"))),
    ]
    slot_head = f"{slots.get('used', 0)} of {slots.get('capacity', 0)} used, {slots.get('free', 0)} free"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OMS {_e(rt.state.instance_id)} — dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body data-poll-ms="{POLL_MS}">
<header><h1>OMS <span id="instance">{_e(rt.state.instance_id)}</span></h1>
<span class="badge" id="status" data-status="{_e(health["status"])}">{_e(health["status"])}</span>
<span>broker {_e(health.get("broker"))}</span><span>clock <b id="clock">{_time(now.isoformat(), tz)}</b></span>
<span>page updated <b id="updated-at">—</b> (<span id="polls">0</span> polls)</span>
<form method="post" action="/dashboard/logout"><button type="submit">Sign out</button></form></header>
<main>
<section id="risk"><h2>Risk</h2>{_kv(risk)}</section>
<section id="account"><h2>Account</h2>{_kv(money)}</section>
<section id="curve-box" class="wide"><h2>Equity and day P&amp;L</h2><div id="curve"></div></section>
<section class="wide"><h2>Positions and allocations</h2><table id="positions"><thead><tr>
<th>symbol</th><th>qty</th><th>avg</th><th>last</th><th>value</th><th>unrealized</th><th>allocations</th><th></th>
</tr></thead><tbody>{_position_rows(positions)}</tbody></table></section>
<section class="wide"><h2>Working orders</h2><table id="orders"><thead><tr><th>created</th><th>strategy</th>
<th>symbol</th><th>side</th><th>qty</th><th>filled</th><th>type</th><th>limit</th><th>state</th></tr></thead>
<tbody>{_order_rows(orders, tz)}</tbody></table></section>
<section class="wide"><h2>Today's fills</h2><table id="fills"><thead><tr><th>time</th><th>strategy</th>
<th>symbol</th><th>side</th><th>qty</th><th>price</th></tr></thead><tbody>{_fill_rows(fills, tz)}</tbody></table>
</section>
<section><h2>Slot budget <small id="slots-head">{_e(slot_head)}</small></h2><table id="slots"><thead><tr>
<th>lease</th><th>held</th><th>max</th><th>priority</th><th>window</th><th>open</th></tr></thead>
<tbody>{_slot_rows(slots)}</tbody></table></section>
<section><h2>Strategies</h2><table id="strategies"><thead><tr><th>strategy</th><th>state</th><th>heartbeat</th>
<th>age</th><th>realized</th><th>fills today</th><th>positions</th></tr></thead>
<tbody>{_strategy_rows(strategies, now, tz)}</tbody></table></section>
</main>
<script id="curve-data" type="application/json">{_json_script(curve.as_json())}</script>
<script src="/dashboard/static/uPlot.iife.min.js"></script>
<script src="/dashboard/static/dashboard.js"></script>
</body></html>"""


def _json_script(data: Any) -> str:
    return json.dumps(data).replace("</", "<\\/")


def _held(rt: OmsRuntime) -> set[str]:
    return {s for s, p in rt.state.ledger.positions().items() if p.real_qty} | set(rt.state.frozen_symbols)


# ---- routes ---------------------------------------------------------------------------------------------------
@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    who = _viewer(request)
    if who is None:
        return HTMLResponse(_login_page(), status_code=401, headers={"Cache-Control": "no-store"})
    rt: OmsRuntime = request.app.state.runtime
    return HTMLResponse(await _page(rt, who, _curve(request)), headers={"Cache-Control": "no-store"})


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    key = (form.get("key") or [""])[0].strip()[:512]
    found = request.app.state.keys.lookup(key) if key else None
    if found is None or found.role not in ("read", "admin"):
        return HTMLResponse(_login_page("That is not the read key."), status_code=401)
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.set_cookie(COOKIE_NAME, key, httponly=True, samesite="strict", path="/")
    return resp


@router.post("/dashboard/logout")
async def logout() -> Response:
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.delete_cookie(COOKIE_NAME, path="/")
    return resp


@router.get("/dashboard/equity")
async def equity(request: Request) -> Response:
    if _viewer(request) is None:
        return JSONResponse({"detail": "read key required"}, status_code=401)
    curve = _curve(request)
    curve.sample(request.app.state.runtime)
    return JSONResponse(curve.as_json())
