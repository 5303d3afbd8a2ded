"""What a backtest will run, checked before anything is written: the strategies (each with its
configuration), the sessions (from the minute data), the data directory.

Every problem raises :class:`BacktestInputError` with one message naming it; the command prints it
and exits 2 without creating the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from types import ModuleType
from typing import Any

from broker_core.calendars import trading_days
from broker_core.clock import KST, Windows
from broker_core.config_errors import ConfigError
from broker_core.paper.data import DataNotFound, KrxData
from oms.settings import OmsConfig, load_config
from strategies.sdk.config import load_strategy_config
from strategies.sdk.runner import config_model, package_of, resolve
from trader.demo import END, START
from trader.launcher import available_strategies
from trader.simulation import SIM_WINDOW, runs_root, unique_run_dir

REQUIRED_FILES = ("daily_ohlcv.parquet", "sector_map.parquet")
"""Besides ``minute/``: prior closes and daily bars (the exchange, the OMS's proxy) and the sector map
(the OMS's sector limits, strategies' universes)."""


class BacktestInputError(ValueError):
    """Bad command-line input; the message names the problem."""


@dataclass(frozen=True)
class StrategySpec:
    name: str
    module: ModuleType
    config: Any

    @property
    def strategy_id(self) -> str:
        return self.name.upper()


@dataclass
class BacktestPlan:
    strategies: list[StrategySpec]
    days: list[date]
    data: KrxData
    oms_config: OmsConfig
    start: datetime
    stop_at: datetime
    json_report: Path | None = None
    run_dir: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        if self.run_dir == Path():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            span = f"{self.days[0]}" if len(self.days) == 1 else f"{self.days[0]}_{self.days[-1]}"
            self.run_dir = unique_run_dir(runs_root() / f"backtest-{span}-{stamp}")

    @property
    def windows(self) -> Windows | None:
        """As ``trader sim``: one session runs on plain time, several through the daily window."""
        if len(self.days) == 1:
            return None
        return Windows(self.days[0], self.days[-1], *SIM_WINDOW)

    @property
    def data_dir(self) -> Path:
        return self.data.data_dir


def plan_backtest(
    names: list[str],
    *,
    start: str,
    end: str,
    data_dir: str | None = None,
    json_report: str | None = None,
    until: str | None = None,
    run_dir: Path | None = None,
    begin: str | None = None,
) -> BacktestPlan:
    strategies = [_strategy(n) for n in _names(names)]
    first, last = _date(start, "--from"), _date(end, "--to")
    if last < first:
        raise BacktestInputError(f"--from {first} is after --to {last}")
    data = _data(data_dir)
    days = _sessions(data, first, last)
    stop = _until(until)
    first_time = _time(begin, "--start", START)
    if stop <= first_time:
        raise BacktestInputError(f"--until {stop:%H:%M} is not after the run's start ({first_time:%H:%M} KST)")
    try:
        oms_config = load_config()
    except ConfigError as exc:
        raise BacktestInputError(str(exc)) from exc
    report = Path(json_report) if json_report else None
    if report is not None and not report.parent.is_dir():
        raise BacktestInputError(f"--json-report {report}: the directory {report.parent} does not exist")
    return BacktestPlan(
        strategies=strategies,
        days=days,
        data=data,
        oms_config=oms_config,
        start=datetime.combine(days[0], first_time, KST),
        stop_at=datetime.combine(days[-1], stop, KST),
        json_report=report,
        run_dir=run_dir or Path(),
    )


def _names(names: list[str]) -> list[str]:
    out = [n.strip().lower() for raw in names for n in raw.split(",") if n.strip()]
    if not out:
        raise BacktestInputError("name at least one strategy (e.g. trader backtest kmp --from D --to D)")
    return list(dict.fromkeys(out))


def _strategy(name: str) -> StrategySpec:
    package = package_of(name)
    if package is None:
        built = ", ".join(available_strategies()) or "none"
        raise BacktestInputError(f"unknown strategy {name!r} (this build has: {built})")
    try:
        module = resolve(name, package)
        config = load_strategy_config(name, config_model(module))
    except ConfigError as exc:
        raise BacktestInputError(str(exc)) from exc
    return StrategySpec(name, module, config)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BacktestInputError(f"{option} {text!r}: not a date (use YYYY-MM-DD)") from exc


def _data(data_dir: str | None) -> KrxData:
    try:
        data = KrxData(data_dir)
        if not data.minute_symbols():
            raise DataNotFound(f"{data.data_dir / 'minute'} holds no minute file (<ticker>.parquet)")
    except DataNotFound as exc:
        where = f"--data-dir {data_dir}" if data_dir else "the KRX data directory"
        raise BacktestInputError(f"{where}: {exc}") from exc
    missing = [f for f in REQUIRED_FILES if not (data.data_dir / f).is_file()]
    if missing:
        raise BacktestInputError(f"{data.data_dir}: missing {', '.join(missing)} (see ../shared/data/krx/README.md)")
    return data


def _sessions(data: KrxData, first: date, last: date) -> list[date]:
    sessions = data.sessions()
    coverage = f"the minute data in {data.data_dir} covers {sessions[0]} … {sessions[-1]}"
    for day, option in ((first, "--from"), (last, "--to")):
        if not sessions[0] <= day <= sessions[-1]:
            raise BacktestInputError(f"{option} {day} is outside the data: {coverage}")
    days = [d for d in sessions if first <= d <= last]
    if not days:
        raise BacktestInputError(f"no session between {first} and {last}: {coverage}")
    missing = sorted(set(trading_days(days[0], days[-1])) - set(days))
    if missing:  # the exchange replays the calendar's sessions: one without data would be synthetic
        shown = ", ".join(str(d) for d in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise BacktestInputError(f"no minute data for KRX session(s) {shown} in {data.data_dir}")
    return days


def _until(until: str | None) -> dtime:
    return _time(until, "--until", END)


def _time(text: str | None, option: str, default: dtime) -> dtime:
    if not text:
        return default
    try:
        return dtime.fromisoformat(text)
    except ValueError as exc:
        raise BacktestInputError(f"{option} must be HH:MM, got {text!r}") from exc
