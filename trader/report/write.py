"""The entry point: read a finished run and write report.json, report.html and the PNGs into its folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from trader.report.build import build_report
from trader.report.charts import write_charts
from trader.report.collect import collect_run
from trader.report.equity import Marks, build_book
from trader.report.html import render_html


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    html: Path
    charts: dict[str, Path]
    """equity, drawdown, pnl_by_strategy, funnel → PNG path."""
    report: dict[str, Any]
    """report.json's content."""


def write_run_report(
    run_dir: Path,
    database: Path | str,
    *,
    market: str,
    start: date,
    end: date,
    strategies: list[str],
    logs_dir: Path | None = None,
    benchmark: pd.Series | None = None,
    extra: Mapping[str, Any] | None = None,
    sessions: list[date] | None = None,
    oms_instance_id: str | None = None,
    start_equity: float | None = None,
    marks: Marks | None = None,
    notes: Sequence[str] = (),
) -> ReportPaths:
    """Write ``report.json``, ``report.html`` and ``equity.png``, ``drawdown.png``, ``pnl_by_strategy.png``,
    ``funnel.png`` into ``run_dir``.

    ``database``: the OMS's SQLite file or a database URL (``oms_instance_id`` narrows a shared one).
    ``strategies``: the run's strategies (any case); others found in the database are added.
    ``logs_dir``: where ``<strategy>.log`` decision logs are (None: database stages only).
    ``benchmark``: daily closes (``load_benchmark``), ideally from a few days before ``start``.
    ``extra``: added to report.json beside the computed keys (never replacing one).
    ``sessions``: the run's session days (default: the market calendar's, ``start`` … ``end``).
    ``start_equity``: default the OMS's ``risk_daily_portfolio.start_equity`` of the first day.
    ``marks``: (symbol, day) → price to mark open positions at each session's close (default: last fill).
    ``notes``: sentences added to the report's notes (e.g. positions a run left open).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = collect_run(
        database,
        market=market,
        start=start,
        end=end,
        strategies=strategies,
        logs_dir=logs_dir,
        sessions=sessions,
        oms_instance_id=oms_instance_id,
        start_equity=start_equity,
    )
    book = build_book(run, marks)
    report = build_report(run, book, benchmark, extra)
    report["notes"] = [*report["notes"], *notes]
    json_path, html_path = run_dir / "report.json", run_dir / "report.html"
    report.setdefault("run_dir", str(run_dir))
    charts = write_charts(report, run_dir)
    report["files"] = {
        "json": str(json_path),
        "html": str(html_path),
        "charts": {k: str(v) for k, v in charts.items()},
    }
    json_path.write_text(json.dumps(report, indent=2, default=str, allow_nan=False))
    html_path.write_text(render_html(report, charts), encoding="utf-8")
    return ReportPaths(json=json_path, html=html_path, charts=charts, report=report)
