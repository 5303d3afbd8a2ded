"""The backtest's report: ``trader.report`` (report.json, report.html, PNG charts from the run's database and
decision logs, next to the KOSPI benchmark) plus the run's own figures beside its keys, and a check of
the report's counts against a second, independent read of the database.

Should ``trader.report`` not be importable, :func:`minimal_report` writes report.json in the shape
``trader demo``/``sim`` share (ARCHITECTURE.md, "Command line")::

    {"market", "from", "to", "sessions", "strategies": {"KMP": {"intents", "entries", "fills", "realized_pnl",
     "rejections": {"REASON": n}}}, "equity": [[ts, value], ...]}

(``entries``: ENTER intents that became an order; ``realized_pnl``: the OMS ledger's, net of fees;
``rejections``: REJECTED and DEFERRED intents by reason code; ``equity``: the OMS's account equity every
5 minutes of each session.)
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

from trader.backtest.engine import INSTANCE_ID, BacktestResult
from trader.backtest.plan import BacktestPlan

log = logging.getLogger("trader.backtest")
COUNTED_TABLES = ("intents", "orders", "fills")


def write_report(plan: BacktestPlan, result: BacktestResult, console: Console) -> dict[str, Any]:
    """Write ``report.json`` (and, with ``trader.report``, report.html and the charts) into the run folder and
    to ``--json-report``; print the summary; return the report."""
    extra = run_figures(plan, result)
    run_report: ModuleType | None
    try:
        from trader import report as run_report
    except ImportError as exc:  # the run-report package is optional for a backtest
        log.warning("trader.report unavailable (%s): writing the minimal report.json", exc)
        run_report = None
    paths = None
    if run_report is not None:
        try:
            paths = _full_report(run_report, plan, result, extra)
        except Exception:  # noqa: BLE001 - the run is done: its minimal report still gets written
            log.exception("trader.report failed: writing the minimal report.json")
            console.print("[yellow]the full report failed (see logs/backtest.log): minimal report.json[/yellow]")
    report = paths.report if paths is not None else {**minimal_report(plan, result), **extra}
    report["database_check"] = database_check(report, result.database)
    text = json.dumps(report, indent=2, default=str)
    (plan.run_dir / "report.json").write_text(text)
    if plan.json_report is not None:
        plan.json_report.write_text(text)
    if run_report is not None and paths is not None:
        run_report.print_summary(console, paths, report)
    return report


def _full_report(run_report: ModuleType, plan: BacktestPlan, result: BacktestResult, extra: dict[str, Any]) -> Any:
    first, last = plan.days[0], plan.days[-1]
    return run_report.write_run_report(
        plan.run_dir,
        result.database,
        market="krx",
        start=first,
        end=last,
        strategies=[s.strategy_id for s in plan.strategies],
        logs_dir=plan.run_dir / "logs",
        benchmark=run_report.load_benchmark("krx", first, last, plan.data_dir),
        extra=extra,
        sessions=plan.days,
        oms_instance_id=INSTANCE_ID,
        marks=_closing_prices(plan),
    )


def run_figures(plan: BacktestPlan, result: BacktestResult) -> dict[str, Any]:
    """What only the backtest knows: speed, clock steps, the OMS's own equity samples, failures."""
    wall, sessions = result.wall_seconds, len(plan.days)
    return {
        "kind": "backtest",
        "until": plan.stop_at.isoformat(),
        "data_dir": str(plan.data_dir),
        "wall_seconds": round(wall, 3),
        "setup_seconds": round(result.setup_seconds, 3),
        "seconds_per_session": round(wall / sessions, 3),
        "sessions_per_minute": round(60.0 * sessions / wall, 2) if wall > 0 else None,
        "clock_steps": result.steps,
        "ticks": result.ticks,
        "oms_equity": [[ts.isoformat(), value] for ts, value in result.equity],
        "oms_equity_daily": [[day, value] for day, value in result.daily_equity],
        "broker_positions": result.broker_positions,
        "failures": result.failures,
        "slots": result.slots,
    }


def _closing_prices(plan: BacktestPlan) -> Any:
    """(symbol, session) → that session's close from the daily data (marks open positions at each close)."""
    data = plan.data

    def mark(symbol: str, day: date) -> float | None:
        bars = data.daily_bars(symbol, day, day)
        return float(bars[-1].close) if bars else None

    return mark


def minimal_report(plan: BacktestPlan, result: BacktestResult) -> dict[str, Any]:
    with sqlite3.connect(result.database) as db:
        strategies = {s.strategy_id: _strategy(db, s.strategy_id) for s in plan.strategies}
    return {
        "market": "krx",
        "from": str(plan.days[0]),
        "to": str(plan.days[-1]),
        "sessions": len(plan.days),
        "strategies": strategies,
        "equity": [[ts.isoformat(), value] for ts, value in result.equity],
        "run_dir": str(result.run_dir),
        "database": str(result.database),
    }


def _strategy(db: sqlite3.Connection, sid: str) -> dict[str, Any]:
    def one(sql: str) -> Any:
        return db.execute(sql, (sid,)).fetchone()[0]

    rejections = db.execute(
        "SELECT reason_code, count(*) FROM intents WHERE strategy_id = ? AND status IN ('REJECTED', 'DEFERRED')"
        " AND reason_code IS NOT NULL GROUP BY reason_code ORDER BY reason_code",
        (sid,),
    ).fetchall()
    return {
        "intents": int(one("SELECT count(*) FROM intents WHERE strategy_id = ?")),
        "entries": int(
            one("SELECT count(*) FROM intents WHERE strategy_id = ? AND intent_type = 'ENTER' AND order_id IS NOT NULL")
        ),
        "fills": int(one("SELECT count(*) FROM fills WHERE strategy_id = ?")),
        "realized_pnl": round(
            float(one("SELECT coalesce(sum(realized_pnl), 0) FROM risk_daily_strategy WHERE strategy_id = ?")), 2
        ),
        "rejections": dict(rejections),
    }


def database_check(report: dict[str, Any], database: Path) -> dict[str, Any]:
    """Each strategy's intents and fills in the report against the database's rows."""
    if not database.exists():
        return {"ok": False, "detail": f"{database} not found"}
    with sqlite3.connect(database) as db:
        counts = {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in COUNTED_TABLES}
        per: dict[str, dict[str, int]] = {}
        for sid in report["strategies"]:
            per[sid] = {
                t: int(db.execute(f"SELECT count(*) FROM {t} WHERE strategy_id = ?", (sid,)).fetchone()[0])
                for t in ("intents", "fills")
            }
    mismatches = [
        f"{sid}.{t}: report {report['strategies'][sid][t]} ≠ database {n}"
        for sid, row in per.items()
        for t, n in row.items()
        if report["strategies"][sid][t] != n
    ]
    return {"ok": not mismatches, "counts": counts, "by_strategy": per, "mismatches": mismatches}
