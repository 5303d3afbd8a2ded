"""``trader backtest swing_ml --from D --to D``: swing-ML on the US daily data with weekly walk-forward
retrains (``strategies/swing_ml/backtest.py``: one decision per session at the open on t−1's factors, exits
on the session's high and low, SELLs before BUYs, whole shares), against SPY buy & hold.

The run folder ``runs/backtest-swing_ml-<stamp>/`` holds ``report.json`` (per book: CAGR, max drawdown,
Sharpe, trades, hit rate, average return per trade, exposure, exits by reason; SPY; the AUC of every retrain
with its folds, promotion and seconds; the rules simulated; the daily equity and the trades), ``equity.png``
(curves, drawdown, AUC per retrain) and a self-contained ``report.html``. Bad input (dates reversed, outside
the data or before enough history for the first model, unknown symbols) exits 2 before anything is written.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time as wall
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker_core.paper.us_data import UsData, UsDataNotFound
from strategies.swing_ml.backtest import (
    BOOK_LABELS,
    BacktestInputError,
    BacktestParams,
    BacktestResult,
    RetrainRecord,
    default_config,
    first_feasible_session,
    prepare,
    rules,
    run_backtest,
    summary,
)
from strategies.swing_ml.config import SwingMlConfig
from strategies.swing_ml.data import Panel, load_panel
from strategies.swing_ml.factors import MIN_NAMES
from strategies.swing_ml.universe import DEFAULT_UNIVERSE
from trader.simulation import runs_root, unique_run_dir


class SwingMlInputError(ValueError):
    """Bad command-line input; the message names it."""


def _day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise SwingMlInputError(f"{flag} {text!r}: not a date (YYYY-MM-DD)") from exc


def plan(
    start: str,
    end: str,
    retrain_every: int,
    universe: list[str] | None,
    panel: Panel,
    sector_map: dict[str, str],
    cfg: SwingMlConfig,
    params: BacktestParams,
) -> tuple[list[str], date, date]:
    """Check the input against the data; the symbols and the first and last day, or SwingMlInputError."""
    first, last = _day(start, "--from"), _day(end, "--to")
    if first > last:
        raise SwingMlInputError(f"--from {first} is after --to {last}")
    if retrain_every < 1:
        raise SwingMlInputError(f"--retrain-every {retrain_every}: must be at least 1 session")
    stocks = {s for s, etf in sector_map.items() if s != etf and s in panel.close.columns}
    symbols = list(DEFAULT_UNIVERSE) if universe is None else list(dict.fromkeys(s.strip().upper() for s in universe))
    symbols = [s for s in symbols if s]
    unknown = [s for s in symbols if s not in stocks]
    if unknown:
        raise SwingMlInputError(
            f"--universe: {', '.join(unknown)} not among the {len(stocks)} US stocks of the daily data"
        )
    if len(symbols) < MIN_NAMES:
        raise SwingMlInputError(
            f"--universe: {len(symbols)} symbols; the cross-sectional z-scores need at least {MIN_NAMES}"
        )
    lo, hi = panel.dates[0].date(), panel.dates[-1].date()
    if first < lo or last > hi:
        raise SwingMlInputError(f"--from/--to {first} … {last}: the US daily data covers {lo} … {hi}")
    sessions = panel.dates[(panel.dates >= str(first)) & (panel.dates <= str(last))]
    if len(sessions) < 2:
        raise SwingMlInputError(f"--from {first} --to {last}: fewer than two sessions")
    prep = prepare(panel.until(last), symbols, sector_map, cfg)
    earliest = first_feasible_session(prep, params, cfg.model.train_months)
    if earliest is None or sessions[0].date() < earliest:
        need = (
            f"the first model needs labelled rows of ≥ {MIN_NAMES} symbols with {params.min_history} sessions of "
            f"history on ≥ {params.min_train_sessions} sessions of the {cfg.model.train_months} months before it"
        )
        where = f"the earliest --from for this universe is {earliest}" if earliest else f"no day up to {last} has it"
        raise SwingMlInputError(f"--from {first}: too little history before it — {need}; {where}")
    return symbols, first, last


def swing_ml_backtest_command(
    console: Console,
    *,
    start: str,
    end: str,
    json_report: str | None = None,
    retrain_every: int = 5,
    universe: list[str] | None = None,
) -> int:
    t0 = wall.monotonic()
    cfg = default_config()
    try:
        params = BacktestParams(retrain_every=max(retrain_every, 1))
        data = UsData()
        panel = load_panel(data=data)
        sector_map = data.sector_map()
        symbols, first, last = plan(start, end, retrain_every, universe, panel, sector_map, cfg, params)
    except (SwingMlInputError, BacktestInputError, UsDataNotFound) as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    params = BacktestParams(retrain_every=retrain_every)
    console.print(
        f"[bold]Backtest[/bold]: swing_ml on {len(symbols)} US stocks, daily data {first} … {last}; retrained every "
        f"{retrain_every} sessions (walk-forward, S5 promotion gate); one decision per session at the open on "
        "the previous close's factors, exits on the session's high/low (stop side first), SELLs before BUYs, "
        "whole shares; against SPY buy & hold"
    )
    n_sessions = int(((panel.dates >= str(first)) & (panel.dates <= str(last))).sum())
    n_retrains = math.ceil(n_sessions / retrain_every)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("retrains", total=n_retrains)

        def on_retrain(rec: RetrainRecord) -> None:
            auc = "—" if rec.auc is None else f"{rec.auc:.4f}"
            progress.update(task, advance=1, description=f"retrain {rec.session} AUC {auc} ({rec.seconds:.1f} s)")

        try:
            result = run_backtest(
                panel, symbols, sector_map, first, last, cfg=cfg, params=params, on_retrain=on_retrain
            )
        except BacktestInputError as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
    figures = summary(result)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = unique_run_dir(runs_root() / f"backtest-swing_ml-{stamp}")
    run_dir.mkdir(parents=True)
    png = _chart(result, run_dir / "equity.png")
    report: dict[str, Any] = {
        "kind": "backtest",
        "market": "us",
        "currency": "USD",
        "strategies": ["swing_ml"],
        **figures,
        "universe": symbols,
        "simulation": rules(cfg, params),
        "equity": _equity_rows(result),
        "trades": {
            name: [
                {
                    "symbol": t.symbol,
                    "entry_day": str(t.entry_day),
                    "exit_day": str(t.exit_day),
                    "qty": t.qty,
                    "entry_price": round(t.entry_price, 4),
                    "exit_price": round(t.exit_price, 4),
                    "return": round(t.ret, 6),
                    "reason": t.reason,
                    "held_sessions": t.held_sessions,
                }
                for t in book.trades
            ]
            for name, book in result.books.items()
        },
        "run_dir": str(run_dir),
        "wall_seconds": round(wall.monotonic() - t0, 2),
    }
    text = json.dumps(report, indent=2, default=str)
    (run_dir / "report.json").write_text(text)
    if json_report:
        Path(json_report).write_text(text)
    (run_dir / "report.html").write_text(_html(report, png))
    print_tables(console, figures)
    console.print(f"report: {run_dir / 'report.html'} · {report['wall_seconds']} s")
    return 0


# -- tables (the bench prints the same) -------------------------------------------------------------


def _pct(v: float | None, nd: int = 2) -> str:
    return "—" if v is None else f"{v:.{nd}%}"


def results_table(figures: dict[str, Any]) -> Table:
    table = Table(title=f"swing_ml {figures['from']} … {figures['to']} ({figures['sessions']} sessions, USD 100,000)")
    cols = ("run", "CAGR", "max DD", "Sharpe", "final", "trades", "hit rate", "avg/trade", "held", "exposure")
    for col in cols:
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in figures["results"]:
        held = r.get("avg_held_sessions")
        table.add_row(
            r["label"],
            _pct(r["cagr"]),
            _pct(r["max_drawdown"]),
            f"{r['sharpe']:.2f}",
            f"{r['final']:,.0f}",
            str(r.get("trades", "")),
            _pct(r.get("hit_rate"), 1) if "trades" in r else "",
            _pct(r.get("avg_trade_return")) if "trades" in r else "",
            "" if held is None else f"{held:.1f}",
            _pct(r.get("exposure"), 0) if "exposure" in r else "",
        )
    return table


def exits_table(figures: dict[str, Any]) -> Table:
    books = [r for r in figures["results"] if "exits_by_reason" in r]
    table = Table(title="exits by reason (round trips closed)")
    table.add_column("reason")
    for r in books:
        table.add_column(r["run"], justify="right")
    reasons = list(books[0]["exits_by_reason"]) if books else []
    for reason in reasons:
        table.add_row(reason, *(str(r["exits_by_reason"][reason]) for r in books))
    table.add_row("open at the end", *(str(r["open_at_end"]) for r in books))
    table.add_row("stop side assumed first", *(str(r["stop_side_first_sessions"]) for r in books))
    return table


def auc_table(figures: dict[str, Any]) -> Table:
    table = Table(title="walk-forward retrains (AUC = pooled out-of-fold, 4 purged folds)")
    for col in ("session", "data through", "train from", "rows", "AUC", "folds", "promoted", "model in use", "s"):
        table.add_column(col, justify="right" if col in ("rows", "AUC", "s") else "left")
    for r in figures["retrains"]:
        folds = " ".join("—" if a is None else f"{a:.3f}" for a in r["fold_aucs"])
        table.add_row(
            r["session"],
            r["data_through"],
            r["train_start"],
            f"{r['rows']:,}",
            "—" if r["auc"] is None else f"{r['auc']:.4f}",
            folds,
            "yes" if r["promoted"] else "no",
            r["model_in_use"] or "none",
            f"{r['seconds']:.1f}",
        )
    return table


def auc_line(figures: dict[str, Any]) -> str:
    a = figures["auc_summary"]
    if a["mean"] is None:
        return f"AUC: {a['retrains']} retrains, none validated"
    return (
        f"AUC per retrain: {a['retrains']} retrains, mean {a['mean']:.4f} (min {a['min']:.4f}, max {a['max']:.4f}), "
        f"{a['at_least_0_52']} ≥ 0.52, {a['promoted']} promoted; {a['seconds_mean']:.1f} s per retrain "
        f"(max {a['seconds_max']:.1f} s)"
    )


def print_tables(console: Console, figures: dict[str, Any]) -> None:
    console.print(auc_table(figures))
    console.print(auc_line(figures))
    console.print(results_table(figures))
    console.print(exits_table(figures))
    skipped = figures["skipped_symbols"]
    if skipped:
        console.print("skipped: " + "; ".join(f"{s['symbol']} ({s['reason']})" for s in skipped))


# -- files -----------------------------------------------------------------------------------------


def _equity_rows(result: BacktestResult) -> list[dict[str, Any]]:
    frames = {name: b.equity for name, b in result.books.items()}
    frames[str(result.benchmark.name)] = result.benchmark
    rows = []
    for ts in result.benchmark.index:
        rows.append({"date": str(ts.date()), **{k: round(float(v.loc[ts]), 2) for k, v in frames.items()}})
    return rows


def _chart(result: BacktestResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(11, 8), sharex=True, height_ratios=[3, 1, 1.2])
    for name, book in result.books.items():
        top.plot(book.equity.index, book.equity.to_numpy(), label=BOOK_LABELS.get(name, name), linewidth=1.2)
        dd = 1 - book.equity / book.equity.cummax()
        mid.plot(dd.index, -dd.to_numpy(), linewidth=0.9)
    bench = result.benchmark
    top.plot(bench.index, bench.to_numpy(), label=f"{bench.name} buy & hold", color="black", linewidth=1.0, alpha=0.7)
    bdd = 1 - bench / bench.cummax()
    mid.plot(bdd.index, -bdd.to_numpy(), color="black", linewidth=0.8, alpha=0.7)
    top.set_ylabel("equity (USD)")
    top.set_title("swing_ml daily walk-forward backtest vs SPY")
    top.legend(loc="upper left", fontsize=8)
    mid.set_ylabel("drawdown")
    days = [r.session for r in result.retrains if r.auc is not None]
    aucs = [r.auc for r in result.retrains if r.auc is not None]
    colors = ["tab:green" if r.promoted else "tab:gray" for r in result.retrains if r.auc is not None]
    bottom.scatter(days, aucs, c=colors, s=14)
    bottom.axhline(0.52, color="tab:red", linewidth=0.8, linestyle="--", label="promotion 0.52")
    bottom.axhline(0.5, color="black", linewidth=0.5, alpha=0.5)
    bottom.set_ylabel("AUC / retrain")
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _html(report: dict[str, Any], png: Path) -> str:
    e = html.escape
    image = base64.b64encode(png.read_bytes()).decode()
    res_head = ("run", "CAGR", "max DD", "Sharpe", "final", "trades", "hit rate", "avg/trade", "exposure")
    res_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(c))}</td>"
            for c in (
                r["label"],
                _pct(r["cagr"]),
                _pct(r["max_drawdown"]),
                f"{r['sharpe']:.2f}",
                f"{r['final']:,.0f}",
                r.get("trades", ""),
                _pct(r.get("hit_rate"), 1) if "trades" in r else "",
                _pct(r.get("avg_trade_return")) if "trades" in r else "",
                _pct(r.get("exposure"), 0) if "exposure" in r else "",
            )
        )
        + "</tr>"
        for r in report["results"]
    )
    books = [r for r in report["results"] if "exits_by_reason" in r]
    exit_rows = "".join(
        f"<tr><td>{e(reason)}</td>" + "".join(f"<td>{r['exits_by_reason'][reason]}</td>" for r in books) + "</tr>"
        for reason in (books[0]["exits_by_reason"] if books else {})
    )
    auc_rows = "".join(
        f"<tr><td>{r['session']}</td><td>{r['data_through']}</td><td>{r['train_start']}</td><td>{r['rows']:,}</td>"
        f"<td>{'—' if r['auc'] is None else format(r['auc'], '.4f')}</td>"
        f"<td>{' '.join('—' if a is None else format(a, '.3f') for a in r['fold_aucs'])}</td>"
        f"<td>{'yes' if r['promoted'] else 'no'}</td><td>{r['model_in_use'] or 'none'}</td>"
        f"<td>{r['seconds']:.1f}</td></tr>"
        for r in report["retrains"]
    )
    rules_html = "".join(f"<li>{e(x)}</li>" for x in report["simulation"])
    skipped = "".join(f"<li>{e(s['symbol'])}: {e(s['reason'])}</li>" for s in report["skipped_symbols"])
    a = report["auc_summary"]
    auc_text = (
        "no retrain validated"
        if a["mean"] is None
        else f"{a['retrains']} retrains, mean AUC {a['mean']:.4f} (min {a['min']:.4f}, max {a['max']:.4f}), "
        f"{a['at_least_0_52']} ≥ 0.52, {a['promoted']} promoted, {a['seconds_mean']:.1f} s per retrain"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>swing_ml backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:3px 9px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}table{border-collapse:collapse;margin-bottom:1.5em}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>swing_ml {report['from']} … {report['to']}</h1>"
        f"<p>{report['sessions']} sessions, {len(report['universe'])} US stocks, USD 100,000 start.</p>"
        f"<h2>Results vs SPY</h2><table><tr>{''.join(f'<th>{h}</th>' for h in res_head)}</tr>{res_rows}</table>"
        f"<img alt='equity, drawdown and AUC per retrain' src='data:image/png;base64,{image}'>"
        "<h2>Exits by reason</h2><table><tr><th>reason</th>"
        + "".join(f"<th>{e(r['run'])}</th>" for r in books)
        + f"</tr>{exit_rows}</table>"
        f"<h2>AUC per retrain</h2><p>{e(auc_text)}</p><table><tr><th>session</th><th>data through</th>"
        "<th>train from</th><th>rows</th><th>AUC</th><th>folds</th><th>promoted</th><th>model in use</th><th>s</th>"
        f"</tr>{auc_rows}</table>"
        f"<h2>What is simulated</h2><ul>{rules_html}</ul>"
        + (f"<h2>Skipped symbols</h2><ul>{skipped}</ul>" if skipped else "")
        + "</body></html>"
    )
