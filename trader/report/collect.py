"""Read one run into a :class:`RunData`: the OMS database's rows and the strategies' decision logs.

The database is read through the OMS's own schema (``oms.store.models``) and engine factory
(``oms.store.migrate.make_engine``), so timestamps come back as aware UTC datetimes on SQLite and
Postgres alike. ``database`` is a SQLite file path or a database URL; ``oms_instance_id`` narrows a
shared database (several OMS hosts, several runs) to one OMS. Rows are kept when their time (intents:
``received_at``, orders: ``created_at``, fills: ``ts``, trades: ``exit_ts``) falls on a day from ``start``
to ``end`` in the market's time zone.

Decision logs are ``<logs_dir>/<strategy in lower case>.log``, else the lines of logger ``strategy.<ID>``
in another ``*.log`` of ``logs_dir`` (see :func:`find_log`). A decision is a line written by
``strategies.sdk.Strategy.decision`` (``... decision code=CODE [symbol=SYM] k=v ...``); a line without it
that carries ``reason=CODE`` (upper-case code) counts as a decision too, so a strategy that logs its
refusals that way is read as well. ``at=<ISO time>`` (the virtual time of the decision) dates it.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from broker_core.calendars import KRX, NYSE, session_open_close, trading_days
from broker_core.clock import KST, NEW_YORK
from oms.store import models
from oms.store.migrate import make_engine

MARKETS: dict[str, tuple[ZoneInfo, str, str]] = {"krx": (KST, KRX, "KRW"), "us": (NEW_YORK, NYSE, "USD")}
"""market → (time zone, exchange calendar, currency)."""

TABLES = ("intents", "orders", "fills", "trades", "risk_daily_portfolio", "risk_daily_strategy")
_TIME_COLUMN = {"intents": "received_at", "orders": "created_at", "fills": "ts", "trades": "exit_ts"}

_DECISION = re.compile(r"decision code=(\S+)(?: symbol=(\S+))?(.*)$")
_REASON = re.compile(r"\breason=([A-Z][A-Z0-9_]{2,})\b(.*)$")
_SYMBOL = re.compile(r"\bsymbol=(\S+)")
_FIELD = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)")


class ReportInputError(ValueError):
    """The run's database or market cannot be read; the message names what and where."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision line of a strategy log."""

    code: str
    symbol: str | None
    at: datetime | None
    """The decision's (virtual) time from its ``at=`` field, when present."""
    fields: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """A field as a Python literal when it is one (numbers, lists, tuples), else its text."""
        raw = self.fields.get(name)
        if raw is None:
            return None
        text = raw
        if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) >= 2:
            try:
                text = str(ast.literal_eval(raw))
            except (ValueError, SyntaxError):
                text = raw[1:-1]
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    def day(self, tz: ZoneInfo) -> date | None:
        return self.at.astimezone(tz).date() if self.at is not None else None


@dataclass
class RunData:
    """Everything a report is computed from."""

    market: str
    start: date
    end: date
    sessions: list[date]
    strategies: list[str]
    """Strategy ids (upper case): the ones asked for, then any other found in the database."""
    intents: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    daily_portfolio: pd.DataFrame
    start_equity: float | None
    decisions: dict[str, list[Decision]]
    """strategy → its decision lines; a strategy without a log file has no key."""
    logs: dict[str, Path]
    database: str

    @property
    def tz(self) -> ZoneInfo:
        return MARKETS[self.market][0]

    @property
    def currency(self) -> str:
        return MARKETS[self.market][2]

    def session_windows(self) -> list[tuple[datetime, datetime]]:
        """(open, close) of every session, aware UTC."""
        code = MARKETS[self.market][1]
        return [session_open_close(d, code) for d in self.sessions]


def text_or_none(value: Any) -> str | None:
    """A table cell as text; None for SQL NULL (which pandas may hold as None, NaN or NaT) and ``""``."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value) or None


def database_url(database: Path | str) -> str:
    """A URL for ``database``: URLs pass through, anything else is a SQLite file that must exist."""
    text = str(database)
    if "://" in text:
        return text
    path = Path(text)
    if not path.is_file():
        raise ReportInputError(f"database {path} not found")
    return f"sqlite:///{path.resolve()}"


def _run(coro_factory: Any) -> Any:
    """Run a coroutine to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


async def _read_tables(url: str, instance: str | None) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url, poolclass=NullPool)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        async with engine.connect() as conn:
            for name in TABLES:
                table = models.TABLES[name]
                query = sa.select(table)
                if instance is not None:
                    query = query.where(table.c.oms_instance_id == instance)
                result = await conn.execute(query)
                out[name] = [dict(r) for r in result.mappings().all()]
    finally:
        await engine.dispose()
    return out


async def _count_rows(url: str, tables: Sequence[str], instance: str | None) -> dict[str, int]:
    engine = make_engine(url, poolclass=NullPool)
    out: dict[str, int] = {}
    try:
        async with engine.connect() as conn:
            for name in tables:
                table = models.TABLES[name]
                query = sa.select(sa.func.count()).select_from(table)
                if instance is not None:
                    query = query.where(table.c.oms_instance_id == instance)
                out[name] = int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()
    return out


def count_rows(database: Path | str, tables: Sequence[str], oms_instance_id: str | None = None) -> dict[str, int]:
    """Row counts of ``tables`` (of ``oms_instance_id`` when given) in the OMS's SQLite file or database URL."""
    url = database_url(database)
    try:
        counts: dict[str, int] = _run(lambda: _count_rows(url, tables, oms_instance_id))
    except sa.exc.SQLAlchemyError as exc:
        raise ReportInputError(f"cannot read the OMS tables of {database}: {exc}") from exc
    return counts


def read_tables(database: Path | str, oms_instance_id: str | None = None) -> dict[str, pd.DataFrame]:
    """The report's tables as data frames (every column of ``oms.store.models``; times aware UTC)."""
    url = database_url(database)
    try:
        raw = _run(lambda: _read_tables(url, oms_instance_id))
    except sa.exc.SQLAlchemyError as exc:
        raise ReportInputError(f"cannot read the OMS tables of {database}: {exc}") from exc
    frames = {}
    for name, rows in raw.items():
        columns = [c.name for c in models.TABLES[name].columns]
        frames[name] = pd.DataFrame(rows, columns=columns)
    return frames


def parse_decisions(path: Path, logger: str | None = None) -> list[Decision]:
    """Every decision line of a strategy log, in order (see the module's docstring for the format);
    with ``logger``, only the lines of that logger (e.g. ``strategy.KMP`` in a shared log)."""
    out: list[Decision] = []
    only = re.compile(rf"\b{re.escape(logger)}\b") if logger else None
    for line in path.read_text(errors="replace").splitlines():
        if only is not None and not only.search(line):
            continue
        m = _DECISION.search(line)
        if m:
            code, symbol, rest = m.group(1), m.group(2), m.group(3)
        else:
            r = _REASON.search(line)
            if not r:
                continue
            code, rest = r.group(1), line
            s = _SYMBOL.search(line)
            symbol = s.group(1) if s else None
        fields = dict(_FIELD.findall(rest))
        out.append(Decision(code, symbol, _parse_at(fields.get("at")), fields))
    return out


def _parse_at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip("'\""))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def find_log(logs_dir: Path, strategy: str) -> tuple[Path, str | None] | None:
    """(log file, logger to filter on) of a strategy: ``<strategy>.log`` (one process per strategy, as
    ``trader demo``/``sim`` run them), else the first other ``*.log`` with lines of logger
    ``strategy.<ID>`` (an in-process run such as ``trader backtest`` logging every strategy in one file)."""
    own = Path(logs_dir) / f"{strategy.lower()}.log"
    if own.is_file():
        return own, None
    logger = f"strategy.{strategy.upper()}"
    for path in sorted(Path(logs_dir).glob("*.log")):
        with path.open(errors="replace") as fh:
            if any(logger in line for line in fh):
                return path, logger
    return None


def _in_days(frame: pd.DataFrame, column: str, tz: ZoneInfo, start: date, end: date) -> pd.DataFrame:
    if frame.empty:
        return frame
    days = pd.to_datetime(frame[column], utc=True).dt.tz_convert(tz).dt.date
    return frame[(days >= start) & (days <= end)].reset_index(drop=True)


def collect_run(
    database: Path | str,
    *,
    market: str,
    start: date,
    end: date,
    strategies: list[str],
    logs_dir: Path | None,
    sessions: list[date] | None = None,
    oms_instance_id: str | None = None,
    start_equity: float | None = None,
) -> RunData:
    """Read the run. ``sessions`` defaults to the market calendar's sessions from ``start`` to ``end``;
    ``start_equity`` defaults to the OMS's ``risk_daily_portfolio.start_equity`` of the first day."""
    market = market.lower()
    if market not in MARKETS:
        raise ReportInputError(f"market {market!r}: one of {', '.join(MARKETS)}")
    tz, calendar_code, _ = MARKETS[market]
    frames = read_tables(database, oms_instance_id)
    for name, column in _TIME_COLUMN.items():
        frames[name] = _in_days(frames[name], column, tz, start, end)
    portfolio = frames["risk_daily_portfolio"]
    if not portfolio.empty:
        portfolio = portfolio[
            (portfolio["trading_day"] >= start.isoformat()) & (portfolio["trading_day"] <= end.isoformat())
        ].sort_values("trading_day")
    if start_equity is None and not portfolio.empty:
        start_equity = float(portfolio["start_equity"].iloc[0])
    days = sorted(sessions) if sessions else trading_days(start, end, calendar_code)
    wanted = [s.upper() for s in strategies]
    seen = set()
    for name in ("intents", "orders", "fills", "trades"):
        if not frames[name].empty:
            seen |= set(frames[name]["strategy_id"].astype(str))
    ids = list(dict.fromkeys(wanted + sorted(seen - set(wanted))))
    decisions: dict[str, list[Decision]] = {}
    logs: dict[str, Path] = {}
    for sid in ids:
        found = find_log(logs_dir, sid) if logs_dir is not None else None
        if found is not None:
            path, logger = found
            logs[sid] = path
            decisions[sid] = [
                d for d in parse_decisions(path, logger) if d.at is None or start <= d.at.astimezone(tz).date() <= end
            ]
    return RunData(
        market=market,
        start=start,
        end=end,
        sessions=days,
        strategies=ids,
        intents=frames["intents"],
        orders=frames["orders"],
        fills=frames["fills"],
        trades=frames["trades"],
        daily_portfolio=portfolio,
        start_equity=start_equity,
        decisions=decisions,
        logs=logs,
        database=str(database),
    )
