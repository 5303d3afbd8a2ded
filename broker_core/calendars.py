"""Trading calendars (XKRX, XNYS) from ``exchange_calendars``, loaded once per process.

Building XKRX takes ~1.3 s (twenty years of lunar holidays), a third of an OMS's start: the built calendar
is kept as a pickle in the user's cache folder (:mod:`broker_core.cache`), one file per calendar, library
version and day (the default range moves with today), and read back in ~30 ms. A cache that cannot be read
or written is ignored: the calendar is built as before.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

from broker_core.cache import cache_dir

KRX = "XKRX"
NYSE = "XNYS"

log = logging.getLogger("broker_core.calendars")


@lru_cache(maxsize=4)
def calendar(code: str = KRX) -> xcals.ExchangeCalendar:
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


def _cache_file(code: str) -> Path:
    return cache_dir() / f"calendar-{code}-{xcals.__version__}-{date.today().isoformat()}.pickle"


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


def _day(d: date | datetime | str, cal: xcals.ExchangeCalendar | None = None) -> pd.Timestamp:
    """The session date ``d`` names. An aware datetime is read in the exchange's own timezone
    (2026-02-26T23:30Z is 2026-02-27 08:30 in Seoul); a naive one by its date."""
    if isinstance(d, datetime):
        if cal is not None and d.tzinfo is not None and d.utcoffset() is not None:
            d = d.astimezone(ZoneInfo(str(cal.tz)))
        d = d.date()
    return pd.Timestamp(d)


def _in_range(cal: xcals.ExchangeCalendar, ts: pd.Timestamp) -> bool:
    return cal.first_session <= ts <= cal.last_session


def is_trading_day(d: date | datetime | str, code: str = KRX) -> bool:
    cal = calendar(code)
    ts = _day(d, cal)
    return _in_range(cal, ts) and bool(cal.is_session(ts))


def next_trading_day(d: date | datetime | str, code: str = KRX) -> date:
    """First session strictly after ``d``."""
    cal = calendar(code)
    return cal.date_to_session(_day(d, cal) + pd.Timedelta(days=1), direction="next").date()


def previous_trading_day(d: date | datetime | str, code: str = KRX) -> date:
    """Last session strictly before ``d``."""
    cal = calendar(code)
    return cal.date_to_session(_day(d, cal) - pd.Timedelta(days=1), direction="previous").date()


def trading_days(start: date | str, end: date | str, code: str = KRX) -> list[date]:
    cal = calendar(code)
    return [ts.date() for ts in cal.sessions_in_range(_day(start, cal), _day(end, cal))]


def session_open_close(d: date | datetime | str, code: str = KRX) -> tuple[datetime, datetime]:
    """Regular open and close of session ``d`` (timezone-aware, in UTC)."""
    cal = calendar(code)
    ts = _day(d, cal)
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()
