"""Runs the platform's processes on one simulated clock: the OMS (paper exchange replaying real KRX
sessions, SQLite in a run folder) and every strategy of this build, for one session (``trader demo``)
or many (``trader sim``, nights and weekends skipped by the multi-day clock).

``--market us``: the OMS on the paper US market (``OMS_MARKET=us``, ``config/oms.us.yaml``, the US data's
derived sessions, times in New York, amounts in USD) and, until a US strategy exists, the scripted client
(:mod:`trader.scripted_us`) as the one strategy process.

Launch order: the OMS, then the strategies, all on a clock that stands still at the plan's start;
once every process reported ready (``/health`` ok, each strategy's first heartbeat) the launcher
writes the clock's anchor file and virtual time starts for all of them at once, so a slow start-up
costs no virtual time. Then a progress bar, a report checked against the database, and the run folder.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url

from broker_core.clock import KST, NEW_YORK, VirtualClock, Windows, parse_clock, sim_spec, write_anchor
from oms.settings import PROJECT_ROOT
from trader.launcher import ProcessGroup, base_env
from trader.report import ReportInputError, load_benchmark, print_summary, write_run_report
from trader.report.collect import count_rows
from trader.report.slots import slot_summary

READY_TIMEOUT_S = 120.0
SIM_WINDOW = (dtime(8, 0), dtime(16, 0))
"""The daily window a multi-day KRX run's clock runs through (KMP's premarket at 08:30, the close at 15:30)."""
US_SIM_WINDOW = (dtime(9, 25), dtime(16, 5))
"""The daily window of a multi-day US run (New York): five minutes before the 09:30 open to after the close."""


@dataclass(frozen=True)
class MarketInfo:
    label: str
    tz: ZoneInfo
    tz_label: str
    currency: str
    close: dtime
    window: tuple[dtime, dtime]
    data: str


MARKETS = {
    "krx": MarketInfo("KRX", KST, "KST", "KRW", dtime(15, 30), SIM_WINDOW, "real minute data"),
    "us": MarketInfo(
        "US", NEW_YORK, "New York", "USD", dtime(16, 0), US_SIM_WINDOW, "1-minute paths derived from daily bars"
    ),
}


def runs_root() -> Path:
    """Where run folders go: ``TRADER_RUNS_DIR`` when set, else ``runs/`` in the project."""
    return Path(os.environ.get("TRADER_RUNS_DIR") or PROJECT_ROOT / "runs")


def unique_run_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``… when a run started in the same second already has it."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


@dataclass
class Plan:
    kind: str
    """``demo`` or ``sim``: names the run folder and the banner."""
    days: list[date]
    start: datetime
    stop_at: datetime
    speed: float
    strategies: list[str]
    real_data: bool = True
    data_dir: str | None = None
    json_report: str | None = None
    serve: bool = False
    run_dir: Path = field(default_factory=Path)
    market: str = "krx"
    process_args: dict[str, list[str]] = field(default_factory=dict)
    """Process name → ``trader`` arguments, for a process that is not ``trader strategy <name>``."""
    database_url: str | None = None
    """The OMS's database (``trader sim --database-url``, e.g. the hosts' shared Postgres); None: SQLite in
    the run folder."""

    def __post_init__(self) -> None:
        if self.run_dir == Path():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            span = f"{self.days[0]}" if len(self.days) == 1 else f"{self.days[0]}_{self.days[-1]}"
            market = "" if self.market == "krx" else f"{self.market}-"
            self.run_dir = unique_run_dir(runs_root() / f"{self.kind}-{market}{span}-{stamp}")

    @property
    def info(self) -> MarketInfo:
        return MARKETS[self.market]

    @property
    def instance_id(self) -> str:
        """The OMS's ``oms_instance_id``: the run's kind in its own SQLite file; in a shared database the run
        folder's name, so the rows of two runs never mix."""
        return self.kind if self.database_url is None else self.run_dir.name

    @property
    def database(self) -> str:
        """Where the report reads the OMS's rows: the SQLite file, or the database URL."""
        return self.database_url or str(self.run_dir / "oms" / "oms.db")

    @property
    def database_label(self) -> str:
        """:attr:`database` for people: a URL's password hidden."""
        if self.database_url is None:
            return self.database
        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def windows(self) -> Windows | None:
        if len(self.days) == 1:
            return None
        return Windows(self.days[0], self.days[-1], *self.info.window, market=self.market)


def run_simulation(plan: Plan, console: Console) -> int:
    run_dir = plan.run_dir
    strategies = plan.strategies
    keys = {"admin": secrets.token_hex(16), "read": secrets.token_hex(16)}
    keys.update({s.upper(): secrets.token_hex(16) for s in strategies})
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    anchor_file = run_dir / "clock.anchor"
    clock_spec = sim_spec(plan.start, plan.speed, f"@{anchor_file}", windows=plan.windows)
    clock = parse_clock(clock_spec)
    assert isinstance(clock, VirtualClock)
    env = base_env()
    env.update(
        TRADER_CLOCK=clock_spec,
        OMS_URL=url,
        TRADER_SIMULATION="1",
        STRATEGY_DATA_DIR=str(run_dir.resolve() / "data"),
        SWING_ML_MODELS_DIR=str(run_dir.resolve() / "data" / "swing_ml" / "models"),  # trained in the run
    )
    if plan.data_dir:
        env["TRADER_DATA_DIR"] = str(Path(plan.data_dir).resolve())
    if plan.data_dir and plan.market == "us":
        env["TRADER_US_DATA_DIR"] = env.pop("TRADER_DATA_DIR")
    oms_env = {
        **env,
        **_market_env(plan.market),
        "OMS_BROKER": "paper",
        "OMS_DATA_DIR": str(run_dir / "oms"),
        "OMS_PAPER_DATE": str(plan.days[0]),
        "OMS_ADMIN_KEY": keys["admin"],
        "OMS_READ_KEY": keys["read"],
        "OMS_INSTANCE_ID": plan.instance_id,
        **({"DATABASE_URL": plan.database_url} if plan.database_url else {}),
        "OMS_STRATEGY_KEYS": ",".join(f"{s.upper()}:{keys[s.upper()]}" for s in strategies),
    }
    group = ProcessGroup(run_dir / "logs")
    span = (
        f"session {plan.days[0]}"
        if len(plan.days) == 1
        else f"{len(plan.days)} sessions {plan.days[0]} … {plan.days[-1]}"
    )
    info = plan.info
    console.print(
        f"[bold]{plan.kind.capitalize()}[/bold]: {info.label} {span} "
        f"({info.data if plan.real_data else 'synthetic'}), speed {plan.speed:g}x, "
        f"until {plan.stop_at:%Y-%m-%d %H:%M} {info.tz_label}; strategies: {', '.join(strategies) or 'none'}"
    )
    console.print(f"Run folder: {run_dir}")
    http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {keys['read']}"})
    wall = time.monotonic()
    report: dict[str, Any] | None = None
    fills: list[dict[str, Any]] = []
    last_prices: dict[str, float] = {}
    strategy_codes: dict[str, int] = {}
    oms_code: int | None = None
    ok = False
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        group.start("oms", ["oms", "--port", str(port), "--log-level", "INFO"], oms_env)
        if not _wait_healthy(http, group, console):
            return 1
        for name in strategies:
            args = plan.process_args.get(name, ["strategy", name])
            group.start(name, args, {**env, "OMS_API_KEY": keys[name.upper()]})
        if not _wait_registered(http, group, strategies, console):
            return 1
        write_anchor(anchor_file)
        console.print(
            f"every process ready after {time.monotonic() - wall:.1f} s: the clock starts at "
            f"{plan.start.astimezone(info.tz):%H:%M} {info.tz_label}"
        )
        ok = _progress(http, group, clock, plan, console)
        report = _collect(http, plan, run_dir, strategies)
        if plan.market != "krx":
            fills = http.get("/api/v1/fills", params={"limit": 10000}).json()
            positions = http.get("/api/v1/positions").json()
            last_prices = {s: float(p["last_price"]) for s, p in positions.items() if p.get("last_price")}
        strategy_codes = group.stop(list(strategies))
        if plan.serve and ok:
            _wait_drained(http)
            _write_report(plan, report, console, last_prices=last_prices)
            _serve(url, keys, plan, console)
    finally:
        strategy_codes = strategy_codes or group.stop(list(strategies))
        oms_code = group.stop(["oms"]).get("oms")
        http.close()
    elapsed = time.monotonic() - wall
    if report is None:
        return 1
    report["wall_seconds"] = round(elapsed, 1)
    report["exit_codes"] = {**strategy_codes, "oms": oms_code}
    report["database_check"] = _check_database(plan, report)
    full = _write_report(plan, report, console, show=not (plan.serve and ok), last_prices=last_prices)
    if fills:
        _print_fills(console, plan, fills)
    if plan.market != "krx" and report.get("open_positions"):
        console.print(f"[yellow]open at the end of the run[/yellow] {_left_open(plan, report)}", highlight=False)
    check = report["database_check"]
    mark = "[green]consistent[/green]" if check["ok"] else "[red]INCONSISTENT[/red]"
    console.print(f"database {report['database']}: {check.get('counts')} — {mark} with the report")
    console.print(f"logs {run_dir / 'logs'} · wall time {report['wall_seconds']} s · exit codes {report['exit_codes']}")
    if plan.json_report:
        Path(plan.json_report).write_text(json.dumps(full, indent=2, default=str))
        console.print(f"JSON report written to {plan.json_report}")
    clean = ok and all(_clean_exit(c) for c in report["exit_codes"].values()) and check["ok"]
    return 0 if clean else 1


def _write_report(
    plan: Plan,
    summary: dict[str, Any],
    console: Console,
    *,
    show: bool = True,
    last_prices: dict[str, float] | None = None,
) -> dict[str, Any]:
    """report.json / report.html / PNGs in the run folder from the database and the decision logs, with the
    launcher's own figures beside them; prints the terminal summary and the path to open.

    ``last_prices``: the OMS's last price per symbol when the run stopped; positions still open on the last
    day are marked at it (else at their last fill)."""
    run_dir = plan.run_dir
    marks = None
    if last_prices:
        last_day = plan.days[-1]

        def marks(symbol: str, day: date) -> float | None:
            return last_prices.get(symbol) if day == last_day else None

    try:
        paths = write_run_report(
            run_dir,
            plan.database,
            market=plan.market,
            start=plan.days[0],
            end=plan.days[-1],
            strategies=[s.upper() for s in plan.strategies],
            logs_dir=run_dir / "logs",
            sessions=plan.days,
            oms_instance_id=plan.instance_id,
            benchmark=load_benchmark(plan.market, plan.days[0], plan.days[-1], plan.data_dir),
            extra=summary,
            notes=[_left_open(plan, summary)] if plan.market != "krx" and summary.get("open_positions") else (),
            marks=marks,
        )
    except (ReportInputError, OSError, ValueError) as exc:
        console.print(f"[red]the run report could not be written:[/red] {exc}")
        (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary
    if show:
        print_summary(console, paths)
    return paths.report


def _wait_drained(http: httpx.Client, timeout: float = 15.0) -> None:
    """Until the OMS copied its journal to the database (the report reads the database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http.get("/health").json().get("journal_backlog", 1) == 0:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)


def _serve(url: str, keys: dict[str, str], plan: Plan, console: Console) -> None:
    """Leave the OMS answering on the finished run until Ctrl-C, with the keys the README's curl lines use."""
    console.print(
        f"\n[bold]The OMS stays up on the finished run[/bold] at {url} (Ctrl-C to stop).\n"
        f"  export OMS_URL={url}\n  export OMS_READ_KEY={keys['read']}\n  export OMS_ADMIN_KEY={keys['admin']}\n"
        f"  curl -s $OMS_URL/health\n"
        f'  curl -s -H "Authorization: Bearer $OMS_READ_KEY" $OMS_URL/api/v1/positions\n'
        f"database {plan.database_label} · logs {plan.run_dir / 'logs'}"
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


def _wait_registered(http: httpx.Client, group: ProcessGroup, strategies: list[str], console: Console) -> bool:
    """Every strategy process sent its first heartbeat (it is connected and started)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    wanted = {s.upper() for s in strategies}
    while time.monotonic() < deadline:
        dead = group.dead()
        if dead:
            for name in dead:
                console.print(f"[red]{name} exited during start ({dead[name]}):[/red]\n{group.log_tail(name, 30)}")
            return False
        try:
            seen = {sid for sid, s in http.get("/api/v1/strategies").json().items() if s.get("last_heartbeat")}
        except (httpx.HTTPError, ValueError):
            seen = set()
        if wanted <= seen:
            return True
        time.sleep(0.2)
    console.print(f"[red]strategies not ready in {READY_TIMEOUT_S:g} s:[/red] {sorted(wanted - seen)}")
    return False


def _progress(http: httpx.Client, group: ProcessGroup, clock: VirtualClock, plan: Plan, console: Console) -> bool:
    """A progress bar over the run's virtual time (sessions done, intents, fills, P&L, ETA) until the plan's
    end; False if a process died."""
    begin = clock.now()
    total = max(1.0, clock.wall_time_of(plan.stop_at) - clock.wall_time_of(begin))
    columns = (
        TextColumn("[bold]{task.fields[now]}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("run", total=total, now="", status="")
        last_poll = 0.0
        while True:
            now = clock.now()
            dead = group.dead()
            if dead:
                bar.stop()
                for name in dead:
                    console.print(f"[red]{name} exited with {dead[name]}:[/red]\n{group.log_tail(name, 30)}")
                return False
            if time.monotonic() - last_poll > 1.0 or now >= plan.stop_at:
                last_poll = time.monotonic()
                info = plan.info
                done = sum(1 for d in plan.days if datetime.combine(d, info.close, info.tz) <= now)
                status = _status_line(http, info.currency)
                status += f" · sessions {done}/{len(plan.days)}" if len(plan.days) > 1 else ""
                bar.update(
                    task,
                    completed=min(total, clock.wall_time_of(now) - clock.wall_time_of(begin)),
                    now=f"{now.astimezone(info.tz):%Y-%m-%d %H:%M} {info.tz_label}",
                    status=status,
                )
            if now >= plan.stop_at:
                return True
            time.sleep(0.25)


def _status_line(http: httpx.Client, currency: str = "KRW") -> str:
    try:
        strategies = http.get("/api/v1/strategies").json()
        account = http.get("/api/v1/state/account").json()
        metrics = http.get("/metrics").text
    except (httpx.HTTPError, ValueError):
        return "(OMS not answering)"
    intents = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("oms_intents_total{")
    )
    fills = sum(s.get("fills_today", 0) for s in strategies.values())
    return (
        f"intents {intents:,.0f} · fills today {fills:,} · day P&L {_money(account.get('daily_pnl') or 0, currency)} · "
        f"{account.get('trading_state')}"
    )


def _collect(http: httpx.Client, plan: Plan, run_dir: Path, strategies: list[str]) -> dict[str, Any]:
    intents = http.get("/api/v1/intents", params={"limit": 5000}).json()
    orders = http.get("/api/v1/orders", params={"limit": 5000}).json()
    fills = http.get("/api/v1/fills", params={"limit": 10000}).json()
    positions = http.get("/api/v1/positions").json()
    account = http.get("/api/v1/state/account").json()
    per_strategy = http.get("/api/v1/strategies").json()
    slots = http.get("/api/v1/marketdata/slots")
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
        "kind": plan.kind,
        "market": plan.market,
        "session": str(plan.days[0]),
        "from": str(plan.days[0]),
        "to": str(plan.days[-1]),
        "sessions": len(plan.days),
        "speed": plan.speed,
        "run_dir": str(run_dir),
        "database": plan.database_label,
        "oms_instance_id": plan.instance_id,
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
        "slots": slot_summary(slots.json()) if slots.status_code == 200 else None,
    }


def _market_env(market: str) -> dict[str, str]:
    """The OMS's environment for a market other than KRX (KRX is the OMS's default)."""
    if market == "krx":
        return {}
    return {"OMS_MARKET": market, "OMS_CONFIG": str(PROJECT_ROOT / "config" / f"oms.{market}.yaml")}


def _money(value: float, currency: str) -> str:
    return f"{value:,.0f} {currency}" if currency == "KRW" else f"{value:,.2f} {currency}"


def _print_fills(console: Console, plan: Plan, fills: list[dict[str, Any]], limit: int = 40) -> None:
    """The run's fills with their times in the market's zone (a US run has a handful)."""
    from rich.table import Table

    info = plan.info
    rows = sorted(fills, key=lambda f: str(f.get("ts")))
    table = Table(title=f"Fills ({len(rows)}, times {info.tz_label}, prices {info.currency})")
    for col in ("time", "strategy", "symbol", "side", "qty", "price"):
        table.add_column(col, justify="right" if col in ("qty", "price") else "left")
    for f in rows[-limit:]:
        ts = datetime.fromisoformat(str(f["ts"])).astimezone(info.tz)
        table.add_row(
            f"{ts:%Y-%m-%d %H:%M:%S}" if len(plan.days) > 1 else f"{ts:%H:%M:%S}",
            str(f.get("strategy_id")),
            str(f.get("symbol")),
            str(f.get("side")),
            f"{int(f.get('qty') or 0):,}",
            f"{float(f.get('price') or 0):,.2f}",
        )
    if len(rows) > limit:
        table.caption = f"the last {limit} of {len(rows)}"
    console.print(table)


def _left_open(plan: Plan, report: dict[str, Any]) -> str:
    """The sentence for positions still open when the run stopped (a US demo cut short by ``--until``)."""
    held = ", ".join(f"{s} {q:,}" for s, q in sorted(report.get("open_positions", {}).items()))
    when = f"{plan.stop_at.astimezone(plan.info.tz):%Y-%m-%d %H:%M} {plan.info.tz_label}"
    return f"positions still open when the run stopped at {when}: {held} (the run ended before their exits)"


def _check_database(plan: Plan, report: dict[str, Any]) -> dict[str, Any]:
    """Row counts of the run's OMS in its database after it stopped (its shutdown drains the journal)."""
    if plan.database_url is None and not Path(plan.database).exists():
        return {"ok": False, "detail": f"{plan.database} not found"}
    try:
        counts = count_rows(plan.database, ("intents", "orders", "fills"), plan.instance_id)
    except ReportInputError as exc:
        return {"ok": False, "detail": str(exc)}
    ok = counts == {"intents": report["intent_count"], "orders": report["order_count"], "fills": report["fill_count"]}
    return {"ok": ok, "counts": counts}
