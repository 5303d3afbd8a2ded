"""``trader demo``: the main job — a simulated KRX session, end to end, without a broker.

It starts the OMS (paper broker replaying the chosen real session, SQLite in a run folder) and every
strategy that exists in this build as separate processes on one virtual clock, shows progress, stops
everything at the end, and prints a session report that it checks against the database.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections import Counter, defaultdict
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from broker_core.clock import KST, parse_clock, sim_spec
from broker_core.paper.data import DataNotFound, KrxData
from oms.settings import PROJECT_ROOT
from trader.launcher import ProcessGroup, available_strategies, base_env

DEFAULT_SPEED = 120.0
START = dtime(8, 45)
END = dtime(15, 35)


def _session(day: str | None, data_dir: str | None, console: Console) -> tuple[date, bool]:
    try:
        data = KrxData(data_dir)
    except DataNotFound as exc:
        chosen = date.fromisoformat(day) if day else date.today()
        console.print(f"[yellow]No KRX data found: {exc}\nThe OMS will replay a seeded synthetic session.[/yellow]")
        return chosen, False
    sessions = data.sessions()
    chosen = date.fromisoformat(day) if day else data.latest_session()
    if chosen not in set(sessions):
        console.print(
            f"[yellow]No minute data on {chosen} (data covers {sessions[0]} … {sessions[-1]}); "
            "the OMS will replay a synthetic session.[/yellow]"
        )
        return chosen, False
    return chosen, True


def run_demo(
    *,
    day: str | None,
    speed: float | None,
    until: str | None,
    data_dir: str | None,
    json_report: str | None,
    console: Console,
) -> int:
    chosen, real = _session(day, data_dir, console)
    speed = speed or DEFAULT_SPEED
    stop_at = datetime.combine(chosen, END, KST)
    if until:
        try:
            hh, mm = (int(x) for x in until.split(":"))
            stop_at = datetime.combine(chosen, dtime(hh, mm), KST)
        except ValueError:
            console.print(f"[red]--until must be HH:MM, got {until!r}[/red]")
            return 2
    run_dir = PROJECT_ROOT / "runs" / f"demo-{chosen}-{time.strftime('%Y%m%d-%H%M%S')}"
    strategies = available_strategies()
    keys = {"admin": secrets.token_hex(16), "read": secrets.token_hex(16)}
    keys.update({s.upper(): secrets.token_hex(16) for s in strategies})
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    clock_spec = sim_spec(datetime.combine(chosen, START, KST), speed, time.time() + 2.0)
    clock = parse_clock(clock_spec)
    env = base_env()
    env.update(TRADER_CLOCK=clock_spec, OMS_URL=url)
    if data_dir:
        env["TRADER_DATA_DIR"] = str(Path(data_dir).resolve())
    oms_env = {
        **env,
        "OMS_BROKER": "paper",
        "OMS_DATA_DIR": str(run_dir / "oms"),
        "OMS_PAPER_DATE": str(chosen),
        "OMS_ADMIN_KEY": keys["admin"],
        "OMS_READ_KEY": keys["read"],
        "OMS_INSTANCE_ID": "demo",
        "OMS_STRATEGY_KEYS": ",".join(f"{s.upper()}:{keys[s.upper()]}" for s in strategies),
    }
    group = ProcessGroup(run_dir / "logs")
    console.print(
        f"[bold]Demo[/bold]: KRX session {chosen} ({'real minute data' if real else 'synthetic'}), "
        f"speed {speed:g}x, until {stop_at:%H:%M} KST; strategies: {', '.join(strategies) or 'none'}"
    )
    console.print(f"Run folder: {run_dir}")
    http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {keys['read']}"})
    wall = time.monotonic()
    report: dict[str, Any] | None = None
    try:
        group.start("oms", ["oms", "--port", str(port), "--log-level", "INFO"], oms_env)
        if not _wait_healthy(http, group, console):
            return 1
        for name in strategies:
            group.start(name, ["strategy", name], {**env, "OMS_API_KEY": keys[name.upper()]})
        ok = _progress(http, group, clock, stop_at, console)
        report = _collect(http, chosen, run_dir, strategies, speed)
    finally:
        strategy_codes = group.stop([s for s in strategies])
        oms_code = group.stop(["oms"]).get("oms")
        http.close()
    elapsed = time.monotonic() - wall
    if report is None:
        return 1
    report["wall_seconds"] = round(elapsed, 1)
    report["exit_codes"] = {**strategy_codes, "oms": oms_code}
    report["database_check"] = _check_database(run_dir / "oms" / "oms.db", report)
    _print(report, console)
    if json_report:
        Path(json_report).write_text(json.dumps(report, indent=2, default=str))
        console.print(f"JSON report written to {json_report}")
    clean = ok and all(_clean_exit(c) for c in report["exit_codes"].values()) and report["database_check"]["ok"]
    return 0 if clean else 1


def _clean_exit(code: int | None) -> bool:
    """0, or death by the SIGTERM we sent after a graceful shutdown (uvicorn re-raises it)."""
    return code in (0, -15)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(http: httpx.Client, group: ProcessGroup, console: Console) -> bool:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if group.dead():
            console.print(f"[red]the OMS exited during start:[/red]\n{group.log_tail('oms', 30)}")
            return False
        try:
            if http.get("/health").json().get("status") == "ok":
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    console.print(f"[red]the OMS did not become healthy in 90 s:[/red]\n{group.log_tail('oms', 30)}")
    return False


def _progress(http: httpx.Client, group: ProcessGroup, clock: Any, stop_at: datetime, console: Console) -> bool:
    """Show virtual time, intents, fills and P&L until ``stop_at``; False if a process died."""
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while clock.now() < stop_at:
            dead = group.dead()
            if dead:
                live.stop()
                for name in dead:
                    console.print(f"[red]{name} exited with {dead[name]}:[/red]\n{group.log_tail(name, 30)}")
                return False
            live.update(_status_line(http, clock.now()))
            time.sleep(0.5)
        live.update(_status_line(http, clock.now()))
    console.print()
    return True


def _status_line(http: httpx.Client, now: datetime) -> str:
    try:
        strategies = http.get("/api/v1/strategies").json()
        account = http.get("/api/v1/state/account").json()
        metrics = http.get("/metrics").text
    except (httpx.HTTPError, ValueError):
        return f"virtual {now:%H:%M:%S} KST · (OMS not answering)"
    intents = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("oms_intents_total{")
    )
    fills = sum(s.get("fills_today", 0) for s in strategies.values())
    return (
        f"virtual {now:%H:%M:%S} KST · intents {intents:,.0f} · fills {fills:,} · "
        f"day P&L {account.get('daily_pnl', 0):,.0f} KRW · state {account.get('trading_state')}"
    )


def _collect(http: httpx.Client, day: date, run_dir: Path, strategies: list[str], speed: float) -> dict[str, Any]:
    intents = http.get("/api/v1/intents", params={"limit": 5000}).json()
    orders = http.get("/api/v1/orders", params={"limit": 5000}).json()
    fills = http.get("/api/v1/fills", params={"limit": 10000}).json()
    positions = http.get("/api/v1/positions").json()
    account = http.get("/api/v1/state/account").json()
    per_strategy = http.get("/api/v1/strategies").json()
    by_strategy: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for i in intents:
        by_strategy[i["strategy_id"]][i["status"]] += 1
        if i["status"] in ("REJECTED", "DEFERRED") and i.get("reason_code"):
            reasons[i["reason_code"]] += 1
    unrealized: dict[str, float] = defaultdict(float)
    for p in positions.values():
        last = p.get("last_price") or p["avg_price"]
        for sid, a in p["allocations"].items():
            unrealized[sid] += a["qty"] * (last - a["cost_basis"])
    names = sorted(set(by_strategy) | set(per_strategy) | set(unrealized) | {s.upper() for s in strategies})
    return {
        "session": str(day),
        "speed": speed,
        "run_dir": str(run_dir),
        "database": str(run_dir / "oms" / "oms.db"),
        "intents": {s: dict(by_strategy.get(s, {})) for s in names},
        "intent_count": len(intents),
        "order_count": len(orders),
        "fill_count": len(fills),
        "orders_by_state": dict(Counter(o["state"] for o in orders)),
        "pnl": {
            s: {
                "realized": round(per_strategy.get(s, {}).get("realized_pnl", 0.0)),
                "unrealized": round(unrealized.get(s, 0.0)),
            }
            for s in names
        },
        "rejections_by_reason": dict(reasons),
        "account": {k: account.get(k) for k in ("equity", "daily_pnl", "daily_pnl_pct", "realized_pnl")},
        "open_positions": {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]},
        "decisions": {s: (per_strategy.get(s, {}).get("status") or {}).get("decisions", {}) for s in names},
    }


def _check_database(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Row counts in the SQLite database after the OMS stopped (its shutdown drains the journal)."""
    if not path.exists():
        return {"ok": False, "detail": f"{path} not found"}
    with sqlite3.connect(path) as db:
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("intents", "orders", "fills")}
    ok = counts == {"intents": report["intent_count"], "orders": report["order_count"], "fills": report["fill_count"]}
    return {"ok": ok, "counts": counts}


def _print(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Session report {report['session']}")
    for col in ("strategy", "intents", "by status", "realized P&L", "unrealized P&L"):
        table.add_column(col, justify="right" if "P&L" in col or col == "intents" else "left")
    for sid, statuses in report["intents"].items():
        pnl = report["pnl"][sid]
        table.add_row(
            sid,
            str(sum(statuses.values())),
            ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
            f"{pnl['realized']:,}",
            f"{pnl['unrealized']:,}",
        )
    console.print(table)
    for sid, codes in report.get("decisions", {}).items():
        if codes:
            top = ", ".join(f"{k} {v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1])[:8])
            console.print(f"{sid} decisions (reason codes): {top}")
    console.print(f"orders {report['order_count']} {report['orders_by_state']} · fills {report['fill_count']}")
    if report["rejections_by_reason"]:
        console.print(
            "risk/arbitration refusals: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report["rejections_by_reason"].items()))
        )
    acct = report["account"]
    console.print(
        f"account: equity {acct['equity']:,.0f} KRW · day P&L {acct['daily_pnl']:,.0f} KRW "
        f"({acct['daily_pnl_pct']:.3%}) · open positions {report['open_positions'] or 'none'}"
    )
    check = report["database_check"]
    mark = "[green]consistent[/green]" if check["ok"] else "[red]INCONSISTENT[/red]"
    console.print(f"database {report['database']}: {check.get('counts')} — {mark} with the report")
    console.print(f"wall time {report['wall_seconds']} s · exit codes {report['exit_codes']}")
