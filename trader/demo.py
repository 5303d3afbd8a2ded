"""``trader demo``: the main job — one simulated KRX session, end to end, without a broker.

The OMS (paper exchange replaying the chosen real session, SQLite in a run folder) and every strategy
of this build run as separate processes on one virtual clock (see :mod:`trader.simulation`).

``trader demo --market us``: one US session (New York time, USD) on the OMS's paper US market, replaying
the 1-minute path derived from that day's daily bars, traded by the scripted client
(:mod:`trader.scripted_us`) until a US strategy exists.
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dtime

from rich.console import Console

from broker_core.clock import KST, NEW_YORK
from broker_core.markets import us
from broker_core.paper.data import DataNotFound, KrxData
from broker_core.paper.us_data import UsData, UsDataNotFound
from trader.launcher import available_strategies
from trader.simulation import Plan, run_simulation

DEFAULT_SPEED = 120.0
DEFAULT_DAY = date(2026, 2, 4)
"""The main job's default session when the data has it: a day on which the strategies of this build trade
(measured with ``trader backtest``); ``--date`` picks any other (the latest session without this day)."""
START = dtime(7, 55)
"""Virtual start: before the premarket jobs (KMP, KPR and Nulrimok's selection at 08:00). The clock stands
still here until every process reported ready, and KMP and KPR load their premarket (past sessions only: up
to ≈ 1,350 proxied REST calls each, 8 s of wall alone, 40 s on two loaded cores) before they report, so the
09:00 open and KMP's 09:15 scan cannot overtake it at any speed or load."""
END = dtime(15, 35)

US_DEFAULT_DAY = date(2024, 11, 26)
"""The US demo's default session: a normal full session (09:30–16:00 New York) in the US data."""
US_START = dtime(9, 25)
"""Virtual start of a US run (New York): five minutes before the open; the scripted client needs no premarket."""
US_END = dtime(16, 5)
"""After the 16:00 close: 400 virtual minutes from the start, 3 min 20 s of wall time at 120×."""


class UsInputError(ValueError):
    """Bad command-line input for a US run; the message names the problem."""


def us_sessions(data_dir: str | None) -> list[date]:
    """The US data's trading days (raises UsInputError when the data is not there)."""
    try:
        sessions = UsData(data_dir).sessions()
    except UsDataNotFound as exc:
        raise UsInputError(f"no US data: {exc}") from exc
    if not sessions:
        raise UsInputError(f"no daily bars in the US data directory {data_dir or 'TRADER_US_DATA_DIR'}")
    return sessions


def us_day(day: str | None, data_dir: str | None, console: Console) -> date:
    """The US demo's session: ``day`` (an XNYS trading day), else :data:`US_DEFAULT_DAY` when the data has it,
    else the data's latest. A day after the data's end replays the latest data day before it (said here)."""
    sessions = us_sessions(data_dir)
    if day is None:
        return US_DEFAULT_DAY if US_DEFAULT_DAY in set(sessions) else sessions[-1]
    try:
        chosen = date.fromisoformat(day)
    except ValueError as exc:
        raise UsInputError(f"--date must be YYYY-MM-DD, got {day!r}") from exc
    if not us.is_trading_day(chosen):
        raise UsInputError(f"--date {chosen}: not an XNYS trading day (weekend or holiday)")
    if chosen not in set(sessions):
        console.print(
            f"[yellow]The US data has no bars on {chosen} (it covers {sessions[0]} … {sessions[-1]}); the paper "
            "exchange replays the latest data day before it.[/yellow]"
        )
    return chosen


def parse_hhmm(text: str, option: str) -> dtime:
    try:
        return dtime.fromisoformat(text)
    except ValueError as exc:
        raise UsInputError(f"{option} must be HH:MM, got {text!r}") from exc


def us_plan(
    *,
    kind: str,
    days: list[date],
    speed: float | None,
    until: str | None,
    begin: str | None = None,
    data_dir: str | None,
    json_report: str | None,
    serve: bool,
    strategies: list[str] | None = None,
) -> Plan:
    """A US run: the OMS on the paper US market and ``strategies`` (default the scripted client), New York
    times."""
    from trader.scripted_us import PROCESS_NAME

    chosen = strategies or [PROCESS_NAME]

    first_time = parse_hhmm(begin, "--start") if begin else US_START
    stop = parse_hhmm(until, "--until") if until else US_END
    start = datetime.combine(days[0], first_time, NEW_YORK)
    stop_at = datetime.combine(days[-1], stop, NEW_YORK)
    if stop_at <= start:
        raise UsInputError(f"--until {stop:%H:%M} is not after the run's start ({first_time:%H:%M} New York)")
    return Plan(
        kind=kind,
        days=days,
        start=start,
        stop_at=stop_at,
        speed=speed or DEFAULT_SPEED,
        strategies=chosen,
        data_dir=data_dir,
        json_report=json_report,
        serve=serve,
        market="us",
        process_args={PROCESS_NAME: ["scripted-us"]} if PROCESS_NAME in chosen else {},
    )


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
    market: str = "krx",
) -> int:
    if market == "us":
        return _run_us_demo(
            day=day, speed=speed, until=until, data_dir=data_dir, json_report=json_report, console=console, serve=serve
        )
    if market != "krx":
        console.print(f"[red]--market must be krx or us, got {market!r}[/red]")
        return 2
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


def _run_us_demo(
    *,
    day: str | None,
    speed: float | None,
    until: str | None,
    data_dir: str | None,
    json_report: str | None,
    console: Console,
    serve: bool,
) -> int:
    try:
        chosen = us_day(day, data_dir, console)
        plan = us_plan(
            kind="demo",
            days=[chosen],
            speed=speed,
            until=until,
            data_dir=data_dir,
            json_report=json_report,
            serve=serve,
        )
    except UsInputError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    return run_simulation(plan, console)
