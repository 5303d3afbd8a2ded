"""The report's key figures in the terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from trader.report.write import ReportPaths


def _money(value: float | None, currency: str) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if currency == "KRW" else f"{value:,.2f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def print_summary(console: Console, paths: ReportPaths, report: dict[str, Any] | None = None) -> None:
    """Per-strategy counts and P&L, the metrics next to the benchmark's, why a strategy did not trade,
    and the report files to open."""
    report = report if report is not None else paths.report
    cur = report.get("currency", "")
    span = report["from"] if report["from"] == report["to"] else f"{report['from']} … {report['to']}"
    table = Table(title=f"{report['market'].upper()} {span} · {report['sessions']} session(s)")
    for col in ("strategy", "intents", "entries", "fills", f"realized P&L {cur}", f"unrealized {cur}", "rejections"):
        table.add_column(col, justify="left" if col in ("strategy", "rejections") else "right")
    for sid, s in report["strategies"].items():
        rejections = ", ".join(f"{k} {v}" for k, v in list(s["rejections"].items())[:4]) or "–"
        table.add_row(
            sid,
            f"{s['intents']:,}",
            f"{s['entries']:,}",
            f"{s['fills']:,}",
            _money(s["realized_pnl"], cur),
            _money(s.get("unrealized_pnl"), cur),
            rejections,
        )
    console.print(table)
    p = report["metrics"]["portfolio"]
    b = report["metrics"].get("benchmark")
    line = (
        f"equity {_money(report.get('start_equity'), cur)} → {_money(report.get('end_equity'), cur)} {cur} "
        f"({_pct(p['total_return'])}) · max DD {_pct(p['max_drawdown'])} · Sharpe {_num(p['sharpe'])} · "
        f"CAGR {_pct(p['cagr'])} · exposure {_pct(p['exposure'])} · trades {report['totals']['trades']} "
        f"(win {_pct(p['win_rate'])})"
    )
    console.print(line)
    if b:
        console.print(
            f"{b['name']}: {_pct(b['total_return'])} · max DD {_pct(b['max_drawdown'])} · Sharpe {_num(b['sharpe'])}"
        )
    for sentence in report.get("why_nothing_traded", []):
        console.print(f"[yellow]why nothing traded[/yellow] {sentence}", highlight=False)
    console.print(f"Report: [bold]{paths.html}[/bold] (open in a browser) · JSON {paths.json}", highlight=False)
