"""``trader demo``: the main job — one simulated KRX session, end to end, without a broker.

The OMS (paper exchange replaying the chosen real session, SQLite in a run folder) and every strategy
of this build run as separate processes on one virtual clock (see :mod:`trader.simulation`).
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dtime

from rich.console import Console

from broker_core.clock import KST
from broker_core.paper.data import DataNotFound, KrxData
from trader.launcher import available_strategies
from trader.simulation import Plan, run_simulation

DEFAULT_SPEED = 120.0
DEFAULT_DAY = date(2026, 2, 4)
"""The main job's default session when the data has it: a day on which the strategies of this build trade
(measured with ``trader backtest``); ``--date`` picks any other (the latest session without this day)."""
START = dtime(7, 55)
"""Virtual start: before the premarket jobs (KMP, KPR and Nulrimok's selection at 08:00), so each strategy's
premarket work (up to ≈ 1,300 proxied REST calls each, ≈ 40 virtual minutes at 120× when four strategies
share two loaded cores) is done before the 09:00 open and KMP's 09:15 scan. The clock stands still here
until every process reported ready."""
END = dtime(15, 35)


def _session(day: str | None, data_dir: str | None, console: Console) -> tuple[date, bool]:
    try:
        data = KrxData(data_dir)
    except DataNotFound as exc:
        chosen = date.fromisoformat(day) if day else date.today()
        console.print(f"[yellow]No KRX data found: {exc}\nThe OMS will replay a seeded synthetic session.[/yellow]")
        return chosen, False
    sessions = data.sessions()
    default = DEFAULT_DAY if DEFAULT_DAY in set(sessions) else data.latest_session()
    chosen = date.fromisoformat(day) if day else default
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
    serve: bool = False,
) -> int:
    chosen, real = _session(day, data_dir, console)
    stop_at = datetime.combine(chosen, END, KST)
    if until:
        try:
            hh, mm = (int(x) for x in until.split(":"))
            stop_at = datetime.combine(chosen, dtime(hh, mm), KST)
        except ValueError:
            console.print(f"[red]--until must be HH:MM, got {until!r}[/red]")
            return 2
    plan = Plan(
        kind="demo",
        days=[chosen],
        start=datetime.combine(chosen, START, KST),
        stop_at=stop_at,
        speed=speed or DEFAULT_SPEED,
        strategies=available_strategies(),
        real_data=real,
        data_dir=data_dir,
        json_report=json_report,
        serve=serve,
    )
    return run_simulation(plan, console)
