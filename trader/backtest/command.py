"""``trader backtest STRATEGY… --from D --to D``: check the input, run, report.

The run folder ``runs/backtest-<span>-<stamp>/`` holds ``oms/`` (the database and the journal),
``logs/backtest.log`` (every component's log lines) and ``report.json``. Bad input exits 2 before the
folder is created; a run whose strategies failed or whose report disagrees with the database exits 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from rich.console import Console

from trader.backtest.engine import BacktestResult, run_backtest
from trader.backtest.loop import backtest_loop
from trader.backtest.plan import BacktestInputError, BacktestPlan, plan_backtest
from trader.backtest.progress import progress_bar
from trader.backtest.report import write_report
from trader.backtest.rotation import is_rotation, rotation_backtest_command


def backtest_command(
    console: Console,
    names: list[str],
    *,
    start: str,
    end: str,
    data_dir: str | None = None,
    json_report: str | None = None,
    until: str | None = None,
    begin: str | None = None,
    log_level: str = "INFO",
    budgets: str | None = None,
    account: str | None = None,
    accounts_file: str = "config/accounts.yaml",
) -> int:
    flat = [n.strip() for name in names for n in name.split(",") if n.strip()]
    if account is not None and flat:
        console.print("[red]give either strategies or --account (its models), not both[/red]")
        return 2
    if not flat and account is None:
        console.print("[red]name at least one strategy (e.g. kmp, rotation_core) or --account NAME[/red]")
        return 2
    if is_rotation(flat) or account is not None:
        return rotation_backtest_command(
            console,
            flat,
            start=start,
            end=end,
            json_report=json_report,
            budgets=budgets,
            account=account,
            accounts_file=accounts_file,
        )
    if budgets is not None:
        console.print("[red]--budgets: only for the sector-rotation models (rotation_core, …)[/red]")
        return 2
    if "swing_ml" in flat:
        if flat != ["swing_ml"]:
            console.print("[red]swing_ml is backtested alone (US daily data): backtest swing_ml --from D --to D[/red]")
            return 2
        from trader.backtest.swing_ml import swing_ml_backtest_command

        return swing_ml_backtest_command(console, start=start, end=end, json_report=json_report)
    try:
        plan = plan_backtest(
            names, start=start, end=end, data_dir=data_dir, json_report=json_report, until=until, begin=begin
        )
    except BacktestInputError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    days = plan.days
    span = f"session {days[0]}" if len(days) == 1 else f"{len(days)} sessions {days[0]} … {days[-1]}"
    console.print(
        f"[bold]Backtest[/bold]: KRX {span}, until {plan.stop_at:%H:%M} KST; strategies: "
        f"{', '.join(s.name for s in plan.strategies)} (in-process, as fast as the CPU allows)"
    )
    console.print(f"Run folder: {plan.run_dir}")
    with _run_logging(plan, log_level):
        try:
            result = execute(plan, console)
        except Exception as exc:  # noqa: BLE001 - one line and the log's place instead of a traceback
            logging.getLogger("trader.backtest").exception("backtest failed")
            console.print(f"[red]the backtest failed: {type(exc).__name__}: {exc}[/red] (see {plan.run_dir / 'logs'})")
            return 1
        report = write_report(plan, result, console)
    _print(report, console)
    if plan.json_report is not None:
        console.print(f"JSON report written to {plan.json_report}")
    return 0 if not result.failures and report["database_check"]["ok"] else 1


def execute(plan: BacktestPlan, console: Console) -> BacktestResult:
    """The run itself, on a fresh standard asyncio event loop, with the progress bar."""
    with progress_bar(console, plan.days) as bar:
        with asyncio.Runner(loop_factory=backtest_loop) as runner:
            result = runner.run(run_backtest(plan, progress=bar.hook))
        bar.finish()
    return result


@contextmanager
def _run_logging(plan: BacktestPlan, level: str) -> Iterator[None]:
    """The run's log lines to ``logs/backtest.log`` (the console shows the progress bar), except each strategy's
    own lines (its decisions), which go to ``logs/<name>.log`` as in a live run (the report reads them there)."""
    from broker_core.logging_setup import configure

    logs = plan.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    with ExitStack() as stack:
        handler = configure(level, stream=stack.enter_context((logs / "backtest.log").open("a", encoding="utf-8")))
        logging.getLogger("httpx").setLevel(logging.WARNING)
        for spec in plan.strategies:
            own = logging.StreamHandler(stack.enter_context((logs / f"{spec.name}.log").open("a", encoding="utf-8")))
            own.setFormatter(handler.formatter)
            for f in handler.filters:
                own.addFilter(f)
            logger = logging.getLogger(f"strategy.{spec.strategy_id}")
            logger.addHandler(own)
            stack.callback(logger.removeHandler, own)
            stack.callback(setattr, logger, "propagate", logger.propagate)
            logger.propagate = False
        try:
            yield
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])


def _print(report: dict[str, Any], console: Console) -> None:
    for sid, why in report["failures"].items():
        console.print(f"[red]{sid} failed: {why}[/red]")
    check = report["database_check"]
    mark = "[green]consistent[/green]" if check["ok"] else f"[red]INCONSISTENT[/red] {check.get('mismatches')}"
    console.print(f"database {report['database']}: {check.get('counts')} — {mark} with the report")
    console.print(
        f"wall time {report['wall_seconds']} s (setup {report['setup_seconds']} s) · "
        f"{report['seconds_per_session']} s/session · {report['sessions_per_minute']} sessions/min · "
        f"{report['clock_steps']:,} clock steps · {report['ticks']:,} prints"
    )
