"""``trader backtest rotation_core [rotation_bull …] --from D --to D``: the sector-rotation models on the US
daily data (``strategies/rotation/backtest.py``: rebalance at the decision day's close, whole shares, one
account with equal budgets), against SPY. ``--budgets rotation_core=0.5,rotation_bull=0.3`` gives the mix its
budget fractions (M6: models not named share what is left equally); ``--account NAME`` takes an account's
models and budgets from ``config/accounts.yaml`` (``--accounts-file``), the mix ``trader accounts`` trades.

The run folder ``runs/backtest-rotation-<models>-<stamp>/`` holds ``report.json`` (each model alone and the
whole mix: CAGR, max drawdown, Sharpe, rebalances, orders per year, next to SPY), ``equity.png`` (the curves
and the drawdown, bear regime of SPY shaded) and a self-contained ``report.html``. Bad input (a model that
does not exist, dates outside the data or reversed) exits 2 before the folder is made.
"""

from __future__ import annotations

import base64
import json
import time as wall
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from strategies.rotation.backtest import BacktestResult, min_rebalance_gap, run_backtest
from strategies.rotation.config import DEFAULT_CONFIG
from strategies.rotation.data import DailyPanels, load_panels
from strategies.rotation.regime import Regime, market_regime
from trader.simulation import runs_root, unique_run_dir

ROTATION_SYMBOLS_EXTRA = ("SPY",)


class RotationInputError(ValueError):
    """Bad command-line input; the message names it."""


def is_rotation(names: list[str]) -> bool:
    return bool(names) and all(n in DEFAULT_CONFIG.models for n in names)


def _day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise RotationInputError(f"{flag} {text!r}: not a date (YYYY-MM-DD)") from exc


def parse_budgets(text: str, models: list[str]) -> dict[str, float]:
    """``model=fraction,…`` → the mix's fractions over ``models`` (M6: the models not named share the rest)."""
    given: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise RotationInputError(f"--budgets {part!r}: expected model=fraction")
        try:
            fraction = float(value)
        except ValueError as exc:
            raise RotationInputError(f"--budgets {name}={value!r}: not a number") from exc
        if name not in models:
            raise RotationInputError(f"--budgets {name}: not one of the models backtested ({', '.join(models)})")
        if not 0 < fraction <= 1:
            raise RotationInputError(f"--budgets {name}={fraction:g}: must be in (0, 1]")
        given[name] = fraction
    if sum(given.values()) > 1 + 1e-9:
        raise RotationInputError(f"--budgets: the fractions add up to {sum(given.values()):g}, more than 1")
    rest = [m for m in models if m not in given]
    left = max(0.0, 1.0 - sum(given.values()))
    return {**given, **{m: left / len(rest) for m in rest}}


def account_mix(accounts_file: str, name: str) -> tuple[list[str], dict[str, float]]:
    """The rotation models and budget fractions of account ``name`` in ``accounts_file``."""
    from trader.accounts.config import AccountsConfigError, load_accounts

    try:
        accounts = {a.name: a for a in load_accounts(accounts_file, {}, check_credentials=False)}
    except AccountsConfigError as exc:
        raise RotationInputError(str(exc)) from exc
    if name not in accounts:
        raise RotationInputError(f"--account {name}: not an account of {accounts_file} ({', '.join(accounts)})")
    budgets = accounts[name].budgets()
    models = [m for m in budgets if m in DEFAULT_CONFIG.models]
    if not models:
        raise RotationInputError(f"--account {name}: no rotation model among its strategies")
    return models, {m: budgets[m] for m in models}


def plan(names: list[str], start: str, end: str, panels: DailyPanels) -> tuple[list[str], date, date]:
    unknown = [n for n in names if n not in DEFAULT_CONFIG.models]
    if unknown:
        raise RotationInputError(f"unknown rotation model(s) {unknown} (one of {', '.join(DEFAULT_CONFIG.models)})")
    first, last = _day(start, "--from"), _day(end, "--to")
    if first > last:
        raise RotationInputError(f"--from {first} is after --to {last}")
    index = panels.adj_close.index
    lo, hi = index[0].date(), index[-1].date()
    if first < lo or last > hi:
        raise RotationInputError(f"--from/--to {first} … {last}: the US daily data covers {lo} … {hi}")
    return list(dict.fromkeys(names)), first, last


def _row(label: str, r: BacktestResult, which: str = "model") -> dict[str, Any]:
    s = r.stats if which == "model" else r.benchmark_stats
    years = max(s.years, 1e-9)
    out: dict[str, Any] = {"run": label, **asdict(s)}
    if which == "model":
        out.update(
            rebalances=sum(len(d) for d in r.rebalances.values()),
            min_rebalance_gap_days=min(
                (g for g in (min_rebalance_gap(d) for d in r.rebalances.values()) if g is not None), default=None
            ),
            orders=r.orders,
            orders_per_year=round(r.orders / years, 1),
            early_exits=r.early_exits,
        )
    return out


def rotation_backtest_command(
    console: Console,
    names: list[str],
    *,
    start: str,
    end: str,
    json_report: str | None = None,
    budgets: str | None = None,
    account: str | None = None,
    accounts_file: str = "config/accounts.yaml",
) -> int:
    t0 = wall.monotonic()
    try:
        fractions: dict[str, float] | None = None
        if account is not None:
            names, fractions = account_mix(accounts_file, account)
        panels = load_panels()
        models, first, last = plan(names, start, end, panels)
        if budgets is not None:
            fractions = parse_budgets(budgets, models)
    except (RotationInputError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    mix = fractions or {m: 1.0 / len(models) for m in models}
    console.print(
        f"[bold]Backtest[/bold]: sector rotation {', '.join(models)}, US daily data {first} … {last}, "
        "rebalanced at the close, whole shares, against SPY"
        + (f"; account mix {_mix_label(mix)}" if len(models) > 1 else "")
    )
    runs: dict[str, BacktestResult] = {m: run_backtest(panels, [m], first, last) for m in models}
    if len(models) > 1:
        label = f"{account} (mix)" if account is not None else "+".join(models)
        runs[label] = run_backtest(panels, fractions or models, first, last)
    rows = [_row(label, r) for label, r in runs.items()]
    rows.append(_row("SPY", next(iter(runs.values())), "benchmark"))
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = unique_run_dir(runs_root() / f"backtest-rotation-{account or '+'.join(models)}-{stamp}")
    run_dir.mkdir(parents=True)
    png = _chart(runs, panels, first, last, run_dir / "equity.png")
    report = {
        "kind": "backtest",
        "market": "us",
        "currency": "USD",
        "strategies": models,
        **({"account": account} if account is not None else {}),
        "budgets": mix,
        "from": str(first),
        "to": str(last),
        "initial_equity": 100_000.0,
        "results": rows,
        "run_dir": str(run_dir),
        "wall_seconds": round(wall.monotonic() - t0, 2),
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if json_report:
        Path(json_report).write_text(json.dumps(report, indent=2, default=str))
    (run_dir / "report.html").write_text(_html(report, png))
    table = Table(title=f"rotation {first} … {last} (USD 100,000 start)")
    for col in ("run", "CAGR", "max DD", "Sharpe", "final", "rebalances", "orders/yr"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in rows:
        table.add_row(
            r["run"],
            f"{r['cagr']:.2%}",
            f"{r['max_drawdown']:.2%}",
            f"{r['sharpe']:.2f}",
            f"{r['final']:,.0f}",
            str(r.get("rebalances", "")),
            str(r.get("orders_per_year", "")),
        )
    console.print(table)
    console.print(f"report: {run_dir / 'report.html'} · {report['wall_seconds']} s")
    return 0


def _mix_label(mix: dict[str, float]) -> str:
    return ", ".join(f"{m} {f:.0%}" for m, f in mix.items())


def _bear_days(panels: DailyPanels, first: date, last: date) -> list[date]:
    closes = panels.adj_close
    days = closes.loc[str(first) : str(last)].index
    return [d.date() for d in days if market_regime(closes, d, DEFAULT_CONFIG.regime).regime is Regime.BEAR]


def _spans(days: list[date]) -> list[tuple[date, date]]:
    """Runs of consecutive sessions (a gap of more than 5 calendar days starts a new run)."""
    spans: list[tuple[date, date]] = []
    for d in days:
        if spans and (d - spans[-1][1]).days <= 5:
            spans[-1] = (spans[-1][0], d)
        else:
            spans.append((d, d))
    return spans


def _chart(runs: dict[str, BacktestResult], panels: DailyPanels, first: date, last: date, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=[3, 1])
    bench = next(iter(runs.values())).benchmark
    for lo, hi in _spans(_bear_days(panels, first, last)):
        top.axvspan(lo, hi, color="#f3d6d6", linewidth=0)
    for label, r in runs.items():
        top.plot(r.equity.index, r.equity.to_numpy(), label=label, linewidth=1.2)
        dd = 1 - r.equity / r.equity.cummax()
        bottom.plot(dd.index, -dd.to_numpy(), linewidth=0.9, label=label)
    top.plot(bench.index, bench.to_numpy(), label="SPY", color="black", linewidth=1.0, alpha=0.7)
    bdd = 1 - bench / bench.cummax()
    bottom.plot(bdd.index, -bdd.to_numpy(), color="black", linewidth=0.8, alpha=0.7)
    top.set_ylabel("equity (USD)")
    top.set_title("sector rotation vs SPY (shaded: SPY bear regime, R1–R3)")
    top.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("drawdown")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _html(report: dict[str, Any], png: Path) -> str:
    image = base64.b64encode(png.read_bytes()).decode()
    head = "".join(f"<th>{h}</th>" for h in ("run", "CAGR", "max DD", "Sharpe", "final", "rebalances", "orders/yr"))
    body = "".join(
        f"<tr><td>{r['run']}</td><td>{r['cagr']:.2%}</td><td>{r['max_drawdown']:.2%}</td><td>{r['sharpe']:.2f}</td>"
        f"<td>{r['final']:,.0f}</td><td>{r.get('rebalances', '')}</td><td>{r.get('orders_per_year', '')}</td></tr>"
        for r in report["results"]
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>rotation backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>Sector rotation {report['from']} … {report['to']}</h1><p>USD 100,000 start; rebalanced at the "
        f"close; whole shares; no fees.</p><table><tr>{head}</tr>{body}</table>"
        f"<img alt='equity and drawdown' src='data:image/png;base64,{image}'></body></html>"
    )
