"""XKRX / XNYS calendars via exchange_calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import exchange_calendars as xcals
import pytest

from broker_core import calendars as cals
from broker_core.cache import CACHE_ENV
from broker_core.clock import KST, NEW_YORK


@pytest.mark.parametrize(
    ("day", "is_session"),
    [
        ("2026-02-27", True),  # Friday
        (date(2026, 2, 27), True),
        ("2026-02-28", False),  # Saturday
        ("2026-03-01", False),  # Sunday (and 삼일절)
        ("2026-03-02", False),  # substitute holiday for 삼일절
        ("2026-03-03", True),
        ("2026-01-01", False),  # New Year's Day
        ("2025-10-06", False),  # Chuseok
        ("2026-02-16", False),  # Seollal
        ("2026-02-17", False),
        ("2026-02-18", False),
        ("2026-02-19", True),
        ("2025-12-31", False),  # year-end market closure
    ],
)
def test_xkrx_sessions(day: str | date, is_session: bool) -> None:
    assert cals.is_trading_day(day) is is_session
    assert cals.is_trading_day(day, cals.KRX) is is_session


def test_is_trading_day_accepts_datetime_in_kst() -> None:
    assert cals.is_trading_day(datetime(2026, 2, 27, 9, 0, tzinfo=KST))
    assert not cals.is_trading_day(datetime(2026, 2, 28, 9, 0, tzinfo=KST))


def test_aware_datetime_is_read_in_the_exchange_timezone() -> None:
    # Friday 2026-02-27 23:30 UTC is already Saturday 08:30 in Seoul: not a KRX session.
    sat_morning_seoul = datetime(2026, 2, 27, 23, 30, tzinfo=UTC)
    assert not cals.is_trading_day(sat_morning_seoul)
    # Thursday 2026-02-26 23:30 UTC is Friday 08:30 in Seoul: a session.
    assert cals.is_trading_day(datetime(2026, 2, 26, 23, 30, tzinfo=UTC))
    # ... and for NYSE, Friday 2026-02-27 01:00 KST is still Thursday in New York.
    assert cals.is_trading_day(datetime(2026, 2, 27, 1, 0, tzinfo=KST), cals.NYSE)
    assert cals.next_trading_day(sat_morning_seoul) == date(2026, 3, 3)
    assert cals.previous_trading_day(sat_morning_seoul) == date(2026, 2, 27)


def test_next_and_previous_around_weekend() -> None:
    assert cals.next_trading_day("2026-02-27") == date(2026, 3, 3)  # weekend + 3/2 substitute holiday
    assert cals.next_trading_day("2026-02-28") == date(2026, 3, 3)
    assert cals.previous_trading_day("2026-03-03") == date(2026, 2, 27)
    assert cals.previous_trading_day("2026-03-01") == date(2026, 2, 27)
    assert cals.next_trading_day("2026-02-26") == date(2026, 2, 27)  # strictly after
    assert cals.previous_trading_day("2026-02-27") == date(2026, 2, 26)  # strictly before


def test_next_and_previous_around_holidays() -> None:
    assert cals.next_trading_day("2026-02-13") == date(2026, 2, 19)  # Seollal 16-18 + weekend
    assert cals.previous_trading_day("2026-02-19") == date(2026, 2, 13)
    assert cals.next_trading_day("2025-12-30") == date(2026, 1, 2)  # 12-31 closure, 1-1 holiday
    assert cals.previous_trading_day("2026-01-02") == date(2025, 12, 30)
    assert cals.previous_trading_day("2025-10-10") == date(2025, 10, 2)  # Chuseok/Hangul week
    assert cals.next_trading_day(date(2025, 10, 2)) == date(2025, 10, 10)


def test_trading_days_range() -> None:
    days = cals.trading_days("2026-02-12", "2026-02-20")
    assert days == [date(2026, 2, 12), date(2026, 2, 13), date(2026, 2, 19), date(2026, 2, 20)]


def test_xnys_july_fourth() -> None:
    assert not cals.is_trading_day("2025-07-04", cals.NYSE)  # Friday
    assert not cals.is_trading_day("2026-07-03", cals.NYSE)  # observed (7/4 is a Saturday)
    assert not cals.is_trading_day("2026-07-04", cals.NYSE)
    assert cals.is_trading_day("2025-07-03", cals.NYSE)
    assert cals.next_trading_day("2026-07-02", cals.NYSE) == date(2026, 7, 6)
    assert cals.previous_trading_day("2025-07-07", cals.NYSE) == date(2025, 7, 3)


def test_xkrx_session_open_close_is_0900_to_1530_kst() -> None:
    open_, close = cals.session_open_close("2026-02-27")
    assert open_.utcoffset() == timedelta(0) and close.utcoffset() == timedelta(0)  # UTC, aware
    assert open_.astimezone(KST) == datetime(2026, 2, 27, 9, 0, tzinfo=KST)
    assert close.astimezone(KST) == datetime(2026, 2, 27, 15, 30, tzinfo=KST)
    assert open_.astimezone(KST).time() == time(9, 0)
    assert close.astimezone(KST).time() == time(15, 30)


def test_xkrx_first_session_of_year_opens_late() -> None:
    open_, close = cals.session_open_close(date(2026, 1, 2))
    assert open_.astimezone(KST).time() == time(10, 0)
    assert close.astimezone(KST).time() == time(15, 30)


def test_xnys_session_open_close_across_dst() -> None:
    for day in ("2026-03-06", "2026-03-09"):  # EST, then EDT
        open_, close = cals.session_open_close(day, cals.NYSE)
        assert open_.astimezone(NEW_YORK).time() == time(9, 30)
        assert close.astimezone(NEW_YORK).time() == time(16, 0)
    assert cals.session_open_close("2026-03-06", cals.NYSE)[0].hour == 14  # UTC
    assert cals.session_open_close("2026-03-09", cals.NYSE)[0].hour == 13


def test_out_of_range_date_is_not_a_session() -> None:
    assert not cals.is_trading_day("1990-01-03")


def test_calendar_is_cached() -> None:
    assert cals.calendar(cals.KRX) is cals.calendar(cals.KRX)


def test_a_built_calendar_is_kept_in_the_cache_folder_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    stale = tmp_path / f"calendar-XKRX-{xcals.__version__}-2000-01-01.pickle"
    stale.write_bytes(b"an earlier day's calendar")
    build = cals.calendar.__wrapped__  # the function under the per-process cache
    built = build("XKRX")
    assert [p.name for p in tmp_path.glob("calendar-XKRX-*.pickle")] == [
        f"calendar-XKRX-{xcals.__version__}-{date.today().isoformat()}.pickle"
    ]
    again = build("XKRX")
    assert again is not built and again.sessions.equals(built.sessions)
    next(tmp_path.glob("calendar-XKRX-*.pickle")).write_bytes(b"not a pickle")  # damaged: built again
    assert build("XKRX").sessions.equals(built.sessions)
