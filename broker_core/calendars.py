"""Trading calendars (XKRX, XNYS) from ``exchange_calendars``, loaded once per process.

Building XKRX takes ~1.3 s (twenty years of lunar holidays), a third of an OMS's start: the built calendar
is kept as a pickle in the user's cache folder (:mod:`broker_core.cache`), one file per calendar, library
version and day (the default range moves with today), and read back in ~30 ms. A cache that cannot be read
or written is ignored: the calendar is built as before.

Importing ``exchange_calendars`` (and with it pandas and pyarrow) costs another ~0.8 s and ~100 MB, so the
questions asked at run time (is it a session, the next/previous session, sessions in a range, open and close)
are answered from a plain table of the sessions (:class:`SessionTable`, a JSON file beside the pickle under
the same key: session dates, opens and closes). ``exchange_calendars`` is imported only to build that table,
for :func:`calendar` itself, for a string pandas parses but ``YYYY-MM-DD`` does not match, and for a date
outside the calendar's range (so the same ``DateOutOfBounds`` is raised as before).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from broker_core.cache import cache_dir

if TYPE_CHECKING:
    import exchange_calendars as xcals
    import pandas as pd

KRX = "XKRX"
NYSE = "XNYS"

log = logging.getLogger("broker_core.calendars")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


_UTC = ZoneInfo("UTC")
"""The zone pandas gives ``session_open(...).to_pydatetime()``: the fast path returns the same object."""
_TABLE_FORMAT = 1


def library_version() -> str:
    """The installed ``exchange_calendars`` version, read without importing it (pandas)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("exchange_calendars")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        import exchange_calendars as xcals

        return str(xcals.__version__)


@dataclass(frozen=True)
class SessionTable:
    """The sessions of one calendar as plain sorted lists: ``days`` (``date.toordinal()``), regular ``opens``
    and ``closes`` (UNIX seconds). Lookups are bisections; nothing here imports pandas."""

    code: str
    tz: str
    days: list[int]
    opens: list[int]
    closes: list[int]

    @classmethod
    def from_calendar(cls, code: str, cal: xcals.ExchangeCalendar) -> SessionTable:
        schedule = cal.schedule
        return cls(
            code=code,
            tz=str(cal.tz),
            days=[ts.date().toordinal() for ts in schedule.index],
            opens=[int(v) // 1_000_000_000 for v in schedule["open"].array.asi8.tolist()],
            closes=[int(v) // 1_000_000_000 for v in schedule["close"].array.asi8.tolist()],
        )

    @classmethod
    def load(cls, path: Path, code: str) -> SessionTable | None:
        """The table kept at ``path``; None when missing, damaged or of another calendar (then it is rebuilt)."""
        try:
            raw = json.loads(path.read_bytes())
            table = cls(raw["code"], raw["tz"], raw["days"], raw["opens"], raw["closes"])
            ZoneInfo(table.tz)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        sizes = {len(table.days), len(table.opens), len(table.closes)}
        if raw.get("format") != _TABLE_FORMAT or table.code != code or len(sizes) != 1 or not table.days:
            return None
        return table

    def store(self, path: Path) -> None:
        """Write atomically and drop the tables of earlier days or versions; a failure only logs."""
        body = {"format": _TABLE_FORMAT, "code": self.code, "tz": self.tz, "days": self.days}
        body.update(opens=self.opens, closes=self.closes)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, separators=(",", ":"))
            os.replace(tmp, path)
            for old in path.parent.glob(f"sessions-{self.code}-*.json"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("session table not written (%s): %s", path, exc)

    def covers(self, day: date) -> bool:
        """``day`` lies between the first and the last session (the calendar's bounds)."""
        return self.days[0] <= day.toordinal() <= self.days[-1]

    def is_session(self, day: date) -> bool:
        n = day.toordinal()
        i = bisect.bisect_left(self.days, n)
        return i < len(self.days) and self.days[i] == n

    def next_session(self, day: date) -> date:
        """First session strictly after ``day`` (the day after must be covered)."""
        return date.fromordinal(self.days[bisect.bisect_right(self.days, day.toordinal())])

    def previous_session(self, day: date) -> date:
        """Last session strictly before ``day`` (the day before must be covered)."""
        return date.fromordinal(self.days[bisect.bisect_left(self.days, day.toordinal()) - 1])

    def between(self, start: date, end: date) -> list[date]:
        lo = bisect.bisect_left(self.days, start.toordinal())
        hi = bisect.bisect_right(self.days, end.toordinal())
        return [date.fromordinal(n) for n in self.days[lo:hi]]

    def open_close(self, day: date) -> tuple[datetime, datetime] | None:
        """Regular open and close of session ``day`` in UTC; None when ``day`` is not a session."""
        n = day.toordinal()
        i = bisect.bisect_left(self.days, n)
        if i == len(self.days) or self.days[i] != n:
            return None
        return datetime.fromtimestamp(self.opens[i], _UTC), datetime.fromtimestamp(self.closes[i], _UTC)


@lru_cache(maxsize=4)
def calendar(code: str = KRX) -> xcals.ExchangeCalendar:
    """The ``exchange_calendars`` calendar ``code`` (imports pandas: prefer the functions below)."""
    import exchange_calendars as xcals

    path = _cache_file(code)
    try:
        with path.open("rb") as f:
            cached = pickle.load(f)
        if isinstance(cached, xcals.ExchangeCalendar):
            return cached
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    built = xcals.get_calendar(code)
    _store(path, built)
    return built


@lru_cache(maxsize=4)
def session_table(code: str = KRX) -> SessionTable:
    """Every session of calendar ``code`` with its open and close: from the cache folder when it holds today's
    table for this library version, else taken from :func:`calendar` (and kept there)."""
    path = _table_file(code)
    table = SessionTable.load(path, code)
    if table is None:
        table = SessionTable.from_calendar(code, calendar(code))
        table.store(path)
    return table


def timezone(code: str = KRX) -> ZoneInfo:
    """The exchange's time zone (``Asia/Seoul``, ``America/New_York``), as ``calendar(code).tz`` names it."""
    return ZoneInfo(session_table(code).tz)


def _cache_file(code: str) -> Path:
    return cache_dir() / f"calendar-{code}-{library_version()}-{date.today().isoformat()}.pickle"


def _table_file(code: str) -> Path:
    return cache_dir() / f"sessions-{code}-{library_version()}-{date.today().isoformat()}.json"


def _store(path: Path, cal: xcals.ExchangeCalendar) -> None:
    """Write atomically (a concurrent reader sees the old file or the whole new one) and drop older days."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(cal, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        prefix = path.name.rsplit("-", 3)[0]
        for old in path.parent.glob(f"{prefix}-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("calendar cache not written (%s): %s", path, exc)


def _local_day(d: date | datetime | str, table: SessionTable) -> date | None:
    """The session date ``d`` names, as :func:`_day` reads it; None for a string that is not a plain ISO date
    (pandas parses those: the slow path keeps its answers and errors)."""
    if isinstance(d, datetime):
        if d.tzinfo is not None and d.utcoffset() is not None:
            d = d.astimezone(ZoneInfo(table.tz))
        return d.date()
    if isinstance(d, str):
        if not _ISO_DAY.fullmatch(d):
            return None
        try:
            return date.fromisoformat(d)
        except ValueError:
            return None
    return d


def _day(d: date | datetime | str, cal: xcals.ExchangeCalendar | None = None) -> pd.Timestamp:
    """The session date ``d`` names. An aware datetime is read in the exchange's own timezone
    (2026-02-26T23:30Z is 2026-02-27 08:30 in Seoul); a naive one by its date."""
    import pandas as pd

    if isinstance(d, datetime):
        if cal is not None and d.tzinfo is not None and d.utcoffset() is not None:
            d = d.astimezone(ZoneInfo(str(cal.tz)))
        d = d.date()
    return pd.Timestamp(d)


def _in_range(cal: xcals.ExchangeCalendar, ts: pd.Timestamp) -> bool:
    return bool(cal.first_session <= ts <= cal.last_session)


def is_trading_day(d: date | datetime | str, code: str = KRX) -> bool:
    table = session_table(code)
    day = _local_day(d, table)
    if day is not None:
        return table.is_session(day)
    cal = calendar(code)
    ts = _day(d, cal)
    return _in_range(cal, ts) and bool(cal.is_session(ts))


def next_trading_day(d: date | datetime | str, code: str = KRX) -> date:
    """First session strictly after ``d``."""
    table = session_table(code)
    day = _local_day(d, table)
    if day is not None and table.covers(day + timedelta(days=1)):
        return table.next_session(day)
    import pandas as pd

    cal = calendar(code)
    return cal.date_to_session(_day(d, cal) + pd.Timedelta(days=1), direction="next").date()


def previous_trading_day(d: date | datetime | str, code: str = KRX) -> date:
    """Last session strictly before ``d``."""
    table = session_table(code)
    day = _local_day(d, table)
    if day is not None and table.covers(day - timedelta(days=1)):
        return table.previous_session(day)
    import pandas as pd

    cal = calendar(code)
    return cal.date_to_session(_day(d, cal) - pd.Timedelta(days=1), direction="previous").date()


def trading_days(start: date | str, end: date | str, code: str = KRX) -> list[date]:
    table = session_table(code)
    first, last = _local_day(start, table), _local_day(end, table)
    if first is not None and last is not None and table.covers(first) and table.covers(last):
        return table.between(first, last)
    cal = calendar(code)
    return [ts.date() for ts in cal.sessions_in_range(_day(start, cal), _day(end, cal))]


def session_open_close(d: date | datetime | str, code: str = KRX) -> tuple[datetime, datetime]:
    """Regular open and close of session ``d`` (timezone-aware, in UTC)."""
    table = session_table(code)
    day = _local_day(d, table)
    found = table.open_close(day) if day is not None else None
    if found is not None:
        return found
    cal = calendar(code)
    ts = _day(d, cal)
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()
