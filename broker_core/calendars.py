"""Trading calendars (XKRX, XNYS) from ``exchange_calendars``, loaded once per process."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

KRX = "XKRX"
NYSE = "XNYS"


@lru_cache(maxsize=4)
def calendar(code: str = KRX) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(code)


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
