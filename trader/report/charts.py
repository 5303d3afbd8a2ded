"""The report's figures, drawn with matplotlib into PNG files.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot, so no GUI backend and
no global figure state is involved: ``savefig(..., format="png")`` renders with the Agg canvas.

Every function takes report.json's dictionary and a path, always writes a PNG (a figure saying
"no data" when there is nothing to draw) and returns the path.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from broker_core.calendars import session_open_close
from trader.report.collect import MARKETS
from trader.report.funnel import STAGE_LABELS, STAGES

DPI = 110
PORTFOLIO = "#1f5fa8"
BENCH = "#b0532a"
GOOD, BAD = "#2e8b57", "#c0392b"
CHARTS = ("equity", "drawdown", "pnl_by_strategy", "funnel")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    return path


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _tz(report: dict[str, Any]) -> ZoneInfo:
    return MARKETS[report["market"]][0]


def _x(times: list[datetime]) -> Any:
    """Matplotlib date numbers of aware datetimes (UTC-based; the axis formats them in the market's zone)."""
    return mdates.date2num(times)


def _equity_points(report: dict[str, Any]) -> tuple[list[datetime], list[float]]:
    pts = [(datetime.fromisoformat(t), float(v)) for t, v in report["equity"] if t is not None and v is not None]
    return [t for t, _ in pts], [v for _, v in pts]


def _benchmark_points(report: dict[str, Any]) -> tuple[list[datetime], list[float]]:
    """The benchmark rebased to the start equity, stamped at each session's close (the previous close at
    the first session's open)."""
    bench = report.get("benchmark")
    start = report.get("start_equity") or 0.0
    if not bench or not bench["closes"] or start <= 0:
        return [], []
    code = MARKETS[report["market"]][1]
    closes = [(date.fromisoformat(d), float(c)) for d, c in bench["closes"]]
    base = bench.get("previous_close") or closes[0][1]
    times: list[datetime] = []
    values: list[float] = []
    if bench.get("previous_close"):
        times.append(session_open_close(closes[0][0], code)[0])
        values.append(start)
    for d, c in closes:
        try:
            close = session_open_close(d, code)[1]
        except Exception:  # a date off the calendar: stamp it at the end of the day
            close = datetime.combine(d, time(23, 59), _tz(report))
        times.append(close)
        values.append(start * c / base)
    return times, values


def _time_axis(ax: Axes, tz: ZoneInfo) -> None:
    locator = mdates.AutoDateLocator(tz=tz, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax.grid(True, alpha=0.3)


def equity_chart(report: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    times, values = _equity_points(report)
    if not times:
        _empty(ax, "no equity data")
        return _save(fig, path)
    ax.step(_x(times), values, where="post", color=PORTFOLIO, label="portfolio (marked to market)")
    btimes, bvalues = _benchmark_points(report)
    if btimes:
        name = report["benchmark"]["name"]
        ax.plot(_x(btimes), bvalues, color=BENCH, marker="o", markersize=3, label=f"{name} (rebased, daily closes)")
    ax.set_title(f"Equity ({report.get('currency', '')}) vs benchmark")
    ax.legend(loc="best", fontsize=8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _time_axis(ax, _tz(report))
    return _save(fig, path)


def _drawdown(values: list[float]) -> list[float]:
    out, peak = [], float("-inf")
    for v in values:
        peak = max(peak, v)
        out.append((v / peak - 1.0) * 100.0 if peak > 0 else 0.0)
    return out


def drawdown_chart(report: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(9, 3))
    ax = fig.add_subplot()
    times, values = _equity_points(report)
    if not times or not (report.get("start_equity") or 0) > 0:
        _empty(ax, "no drawdown data")
        return _save(fig, path)
    dd = _drawdown(values)
    ax.fill_between(_x(times), dd, 0, step="post", color=PORTFOLIO, alpha=0.35, label="portfolio")
    ax.step(_x(times), dd, where="post", color=PORTFOLIO, linewidth=1)
    btimes, bvalues = _benchmark_points(report)
    if btimes:
        name = report["benchmark"]["name"]
        ax.plot(_x(btimes), _drawdown(bvalues), color=BENCH, marker="o", markersize=3, label=name)
    ax.set_title("Drawdown (%)")
    ax.set_ylim(top=0.5)
    ax.legend(loc="lower left", fontsize=8)
    _time_axis(ax, _tz(report))
    return _save(fig, path)


def pnl_chart(report: dict[str, Any], path: Path) -> Path:
    strategies = report["strategies"]
    fig = Figure(figsize=(7, max(2.2, 0.6 * len(strategies) + 1.2)))
    ax = fig.add_subplot()
    if not strategies:
        _empty(ax, "no strategies")
        return _save(fig, path)
    names = list(strategies)
    realized = [float(strategies[s]["realized_pnl"]) for s in names]
    unrealized = [float(strategies[s].get("unrealized_pnl", 0.0)) for s in names]
    ys = range(len(names))
    ax.barh(ys, realized, color=[GOOD if v >= 0 else BAD for v in realized], label="realized")
    ax.barh(ys, unrealized, left=realized, color="#999", alpha=0.6, label="unrealized")
    for y, r, u in zip(ys, realized, unrealized, strict=True):
        ax.annotate(f"{r + u:,.0f}", (r + u, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(list(ys), names)
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_title(f"P&L by strategy ({report.get('currency', '')})")
    ax.legend(loc="best", fontsize=8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def funnel_chart(report: dict[str, Any], path: Path) -> Path:
    strategies = report["strategies"]
    rows = max(1, len(strategies))
    fig = Figure(figsize=(8, 2.4 * rows))
    if not strategies:
        _empty(fig.add_subplot(), "no strategies")
        return _save(fig, path)
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    for ax, (sid, block) in zip(axes, strategies.items(), strict=True):
        stages = block["funnel"]["stages"]
        shown = [s for s in STAGES if stages.get(s) is not None]
        counts = [int(stages[s]) for s in shown]
        ys = list(range(len(shown)))[::-1]
        ax.barh(ys, counts, color=[PORTFOLIO if c else BAD for c in counts])
        for y, c in zip(ys, counts, strict=True):
            ax.annotate(str(c), (c, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(ys, [STAGE_LABELS[s][1] for s in shown])
        ax.set_xlim(0, max(counts + [1]) * 1.15)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(sid, loc="left", fontsize=10, fontweight="bold")
        blockers = ", ".join(f"{k} ×{v}" for k, v in list(block["funnel"]["blockers"].items())[:4])
        if blockers and not block["funnel"]["traded"]:
            ax.set_title(f"stopped by {blockers}", loc="right", fontsize=8, color=BAD)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("Funnel: candidates → gates → signals → intents → accepted → filled", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def write_charts(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """equity.png, drawdown.png, pnl_by_strategy.png and funnel.png in ``folder``."""
    return {
        "equity": equity_chart(report, folder / "equity.png"),
        "drawdown": drawdown_chart(report, folder / "drawdown.png"),
        "pnl_by_strategy": pnl_chart(report, folder / "pnl_by_strategy.png"),
        "funnel": funnel_chart(report, folder / "funnel.png"),
    }
