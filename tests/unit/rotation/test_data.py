"""Panels from long rows, the entry session of an OMS timestamp, and the ATR at entry (M4)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from strategies.rotation.data import atr_at_entry, entry_session, holding_from_allocation, panels_from_rows

ROWS = pd.DataFrame(
    {
        "symbol": ["XLF"] * 5,
        "date": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"],
        "high": [11.0, 12.0, 12.5, 13.0, 30.0],
        "low": [9.0, 10.0, 11.0, 11.0, 5.0],
        "close": [10.0, 11.5, 12.0, 12.5, 20.0],
        "adj_close": [10.0, 11.5, 12.0, 12.5, 20.0],
    }
)


def test_panels_are_date_by_symbol():
    p = panels_from_rows(ROWS)
    assert list(p.adj_close.columns) == ["XLF"] and isinstance(p.adj_close.index, pd.DatetimeIndex)
    assert p.high.loc["2024-01-04", "XLF"] == 12.5


def test_entry_session_is_the_new_york_date_of_entry_ts():
    assert entry_session(datetime(2024, 1, 2, 15, 0, tzinfo=UTC)) == pd.Timestamp("2024-01-02")
    assert entry_session(datetime(2024, 1, 3, 2, 0, tzinfo=UTC)) == pd.Timestamp("2024-01-02")  # 21:00 NY


def test_atr_at_entry_uses_only_the_bars_before_the_entry_session():
    p = panels_from_rows(ROWS)
    # true ranges: 2.0 (no previous close), max(2, 0.5, 1.5) = 2.0, max(1.5, 1.0, 0.5) = 1.5, max(2, 1, 1) = 2.0
    # Wilder ATR(2): seed (2 + 2)/2 = 2.0, then (2·1 + 1.5)/2 = 1.75, then (1.75 + 2)/2 = 1.875
    # entering on 01-08, that day's own wide bar (30 / 5) does not count: it is complete only after the entry
    assert atr_at_entry(p, "XLF", date(2024, 1, 8), period=2) == pytest.approx(1.875)
    assert atr_at_entry(p, "XLF", date(2024, 1, 5), period=2) == pytest.approx(1.75)
    assert atr_at_entry(p, "XLF", date(2024, 1, 3), period=2) is None  # one bar before
    assert atr_at_entry(p, "XLK", date(2024, 1, 8), period=2) is None


def test_holding_from_an_oms_allocation():
    h = holding_from_allocation(
        panels_from_rows(ROWS), "XLF", 12.4, datetime(2024, 1, 8, 15, 0, tzinfo=UTC), atr_period=2
    )
    assert (h.symbol, h.entry_price, h.entry_day, h.atr) == ("XLF", 12.4, date(2024, 1, 8), pytest.approx(1.875))
