"""``trader sim --market krx --from D --to D``: the processes of ``trader demo`` across many sessions on
the multi-day clock (nights and weekends skipped); positions, allocations, entry times and strategy
state carry over the nights as in production.

``--market us``: the OMS on the paper US market over the XNYS sessions from D to D (New York windows
09:25–16:05, the US data's derived sessions), traded by the scripted client each day."""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dtime

from rich.console import Console

from broker_core.clock import KST
from broker_core.markets import us
from broker_core.paper.data import DataNotFound, KrxData
from trader.demo import DEFAULT_SPEED, END, START, UsInputError, us_plan, us_sessions
from trader.launcher import available_strategies
from trader.simulation import Plan, run_simulation

US_STRATEGIES = ("swing_ml",)
"""US strategies a ``--market us`` sim can run beside the scripted client (the rotation models run per account:
``trader accounts``)."""


class SimInputError(ValueError):
    """Bad command-line input; the message names the problem."""


def plan_sim(
    *,
    market: str,
    start: str,
    end: str,
    strategies: list[str] | None,
    speed: float | None,
    data_dir: str | None,
    json_report: str | None,
    serve: bool = False,
    until: str | None = None,
    begin: str | None = None,
    database_url: str | None = None,
) -> Plan:
    if market not in ("krx", "us"):
        raise SimInputError(f"--market {market}: krx or us")
    if database_url is not None:
        database_url = _database_url(database_url)
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise SimInputError(f"--from/--to must be YYYY-MM-DD: {exc}") from exc
    if last < first:
        raise SimInputError(f"--from {first} is after --to {last}")
    if market == "us":
        plan = _plan_us(first, last, strategies, speed, data_dir, json_report, serve, until, begin)
        plan.database_url = database_url
        return plan
    try:
        sessions = KrxData(data_dir).sessions()
    except DataNotFound as exc:
        raise SimInputError(str(exc)) from exc
    if not sessions:
        raise SimInputError(f"no minute bars in the data directory {data_dir or 'TRADER_DATA_DIR'}")
    days = [d for d in sessions if first <= d <= last]
    if not days:
        raise SimInputError(
            f"no session of the minute data lies in {first} … {last} (data covers {sessions[0]} … {sessions[-1]})"
        )
    built = available_strategies()
    chosen = [s.lower() for s in strategies] if strategies else built
    unknown = sorted(set(chosen) - set(built))
    if unknown:
        raise SimInputError(f"unknown strategy {', '.join(unknown)} (this build has: {', '.join(built)})")
    stop = END
    if until:
        try:
            stop = dtime.fromisoformat(until)
        except ValueError as exc:
            raise SimInputError(f"--until must be HH:MM, got {until!r}") from exc
    first_time = START
    if begin:
        try:
            first_time = dtime.fromisoformat(begin)
        except ValueError as exc:
            raise SimInputError(f"--start must be HH:MM, got {begin!r}") from exc
    if datetime.combine(days[-1], stop) <= datetime.combine(days[0], first_time):
        raise SimInputError(f"--until {stop:%H:%M} is not after the run's start ({first_time:%H:%M} KST)")
    return Plan(
        kind="sim",
        days=days,
        start=datetime.combine(days[0], first_time, KST),
        stop_at=datetime.combine(days[-1], stop, KST),
        speed=speed or DEFAULT_SPEED,
        strategies=chosen,
        data_dir=data_dir,
        json_report=json_report,
        serve=serve,
        database_url=database_url,
    )


def _database_url(text: str) -> str:
    """``--database-url``: a Postgres URL the OMS can use (the forms ``DATABASE_URL`` takes), reachable now."""
    from sqlalchemy.exc import ArgumentError

    from oms.store.migrate import normalize_url

    try:
        url = normalize_url(text.strip().replace("postgres://", "postgresql://", 1))
    except ArgumentError as exc:
        raise SimInputError("--database-url: not a database URL (postgresql://user@host:5432/name)") from exc
    if not url.startswith("postgresql+asyncpg://"):
        raise SimInputError("--database-url: a postgresql:// URL (default: SQLite in the run folder)")
    problem = _unreachable(url)
    if problem:
        raise SimInputError(f"--database-url: cannot connect ({problem})")
    return url


def _unreachable(url: str) -> str | None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    from oms.store.migrate import make_engine

    async def probe() -> None:
        engine = make_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the one line the user needs
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def run_sim(console: Console, **kwargs: object) -> int:
    try:
        plan = plan_sim(**kwargs)  # type: ignore[arg-type]
    except SimInputError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    return run_simulation(plan, console)


def _plan_us(
    first: date,
    last: date,
    strategies: list[str] | None,
    speed: float | None,
    data_dir: str | None,
    json_report: str | None,
    serve: bool,
    until: str | None,
    begin: str | None,
) -> Plan:
    from trader.scripted_us import PROCESS_NAME

    chosen = [s.lower() for s in strategies] if strategies else [PROCESS_NAME]
    offered = [PROCESS_NAME, *US_STRATEGIES]
    unknown = [s for s in chosen if s not in offered]
    if unknown:
        raise SimInputError(f"--strategies {','.join(unknown)}: --market us runs {', '.join(offered)}")
    try:
        sessions = us_sessions(data_dir)
        lo, hi = max(first, sessions[0]), min(last, sessions[-1])
        days = us.trading_days(lo, hi) if lo <= hi else []
        if not days:
            raise SimInputError(
                f"no XNYS session of the US data lies in {first} … {last} (data covers {sessions[0]} … {sessions[-1]})"
            )
        return us_plan(
            kind="sim",
            days=days,
            speed=speed,
            until=until,
            begin=begin,
            data_dir=data_dir,
            json_report=json_report,
            serve=serve,
            strategies=chosen,
        )
    except UsInputError as exc:
        raise SimInputError(str(exc)) from exc
