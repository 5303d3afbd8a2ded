"""BarBuilder: 1m bars from trades per strategies.md §0.4 B2."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker_core.clock import KST
from strategies.sdk.bars import Bar, BarBuilder


def t(hms: str) -> datetime:
    h, m, s = (float(x) for x in hms.split(":"))
    return datetime(2026, 2, 27, int(h), int(m), tzinfo=KST) + timedelta(seconds=s)


def test_one_minute_ohlcv_and_value_close_on_next_minute_tick() -> None:
    b = BarBuilder()
    assert b.on_trade("A", 100, 10, t("09:00:01")) == []
    assert b.on_trade("A", 105, 5, t("09:00:20")) == []
    assert b.on_trade("A", 98, 1, t("09:00:40")) == []
    assert b.on_trade("A", 101, 4, t("09:00:59.9")) == []
    closed = b.on_trade("A", 102, 7, t("09:01:00"))
    assert closed == [Bar("A", t("09:00:00"), 100, 105, 98, 101, 20, 100 * 10 + 105 * 5 + 98 + 101 * 4, 4)]
    current = b.current("A")
    assert current is not None and current.start == t("09:01:00") and current.volume == 7


def test_flush_closes_at_boundary_plus_grace_only() -> None:
    b = BarBuilder(grace_sec=2.0)
    b.on_trade("A", 100, 1, t("09:00:30"))
    assert b.flush(t("09:01:00")) == []
    assert b.flush(t("09:01:01.999")) == []
    [bar] = b.flush(t("09:01:02"))
    assert bar.start == t("09:00:00") and bar.close == 100
    assert b.flush(t("09:05:00")) == []
    assert b.current("A") is None


def test_minute_without_trades_has_no_bar() -> None:
    b = BarBuilder()
    b.on_trade("A", 100, 1, t("09:00:10"))
    first = b.on_trade("A", 101, 1, t("09:02:10"))
    second = b.flush(t("09:03:02"))
    assert [x.start for x in first + second] == [t("09:00:00"), t("09:02:00")]


def test_late_trades_never_change_a_closed_bar() -> None:
    b = BarBuilder()
    b.on_trade("A", 100, 1, t("09:00:10"))
    [closed] = b.flush(t("09:01:05"))
    assert b.on_trade("A", 200, 50, t("09:00:50")) == []
    assert b.late_trades == 1
    b.on_trade("A", 101, 1, t("09:01:30"))
    assert b.on_trade("A", 99, 1, t("09:01:10")) == []  # still the open minute: folded in
    assert b.on_trade("A", 90, 1, t("09:00:59")) == []  # older than the open bar: dropped
    assert b.late_trades == 2
    [bar] = b.flush(t("09:02:02"))
    assert (bar.open, bar.low, bar.close, bar.volume) == (101, 99, 99, 2)
    assert closed.volume == 1


def test_symbols_are_independent_and_flush_is_ordered() -> None:
    b = BarBuilder()
    b.on_trade("B", 50, 2, t("09:00:05"))
    b.on_trade("A", 10, 1, t("09:00:06"))
    assert b.on_trade("A", 11, 1, t("09:01:00")) != []
    bars = b.flush(t("09:02:02"))
    assert [(x.symbol, x.start) for x in bars] == [("B", t("09:00:00")), ("A", t("09:01:00"))]


def test_stream_event_and_utc_timestamps_label_in_kst() -> None:
    b = BarBuilder()
    b.on_event({"type": "trade", "symbol": "005930", "price": 70000, "qty": 3, "ts": "2026-02-27T00:00:15+00:00"})
    [bar] = b.flush(t("09:01:02"))
    assert bar.start == t("09:00:00") and bar.start.utcoffset() == timedelta(hours=9)
    assert bar.value == 210000


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        BarBuilder().on_trade("A", 1, 1, datetime(2026, 2, 27, 9, 0))


def test_rest_bar_maps_to_the_same_shape() -> None:
    row = {
        "ts": "2026-02-27T09:05:00+09:00",
        "open": 10,
        "high": 12,
        "low": 9,
        "close": 11,
        "volume": 100,
        "value": 1050.0,
    }
    bar = Bar.from_rest("A", row)
    assert bar == Bar("A", t("09:05:00"), 10, 12, 9, 11, 100, 1050.0)
    approx = Bar.from_rest("A", {**row, "value": None})
    assert approx.value == pytest.approx((12 + 9 + 11) / 3 * 100)


def test_a_rest_bar_takes_its_start_from_the_first_key_present() -> None:
    row = {"open": 10, "high": 12, "low": 9, "close": 11, "volume": 100}
    both = {**row, "start": "2026-02-27T09:05:00+09:00", "ts": "2026-02-27T09:06:00+09:00"}
    assert Bar.from_rest("A", both).start == t("09:05:00")
    assert Bar.from_rest("A", {**row, "start": None, "date": "2026-02-27T09:07:00"}).start == t("09:07:00")
    with pytest.raises(ValueError, match="no start time"):
        Bar.from_rest("A", {**row, "ts": None})


def test_bars_overlapping_a_gap_are_flagged_partial() -> None:
    b = BarBuilder()
    b.mark_gap("A", t("09:00:30"))  # subscribed mid-minute
    b.on_trade("A", 100, 1, t("09:00:40"))
    [first] = b.on_trade("A", 101, 1, t("09:01:10"))
    assert first.start == t("09:00:00") and first.partial
    [second] = b.on_trade("A", 102, 1, t("09:02:00"))
    assert second.start == t("09:01:00") and not second.partial
    b.mark_gap("A", t("09:02:30"))  # stream outage while 09:02 was open
    [third] = b.on_trade("A", 103, 1, t("09:03:00"))
    assert third.start == t("09:02:00") and third.partial
    [fourth] = b.flush(t("09:04:02"))
    assert fourth.start == t("09:03:00") and not fourth.partial
    b.mark_gap("B", t("08:59:59"))  # subscribed before the open: the 09:00 bar is complete
    b.on_trade("B", 5, 1, t("09:00:01"))
    assert b.flush(t("09:01:02"))[0].partial is False


def test_next_due_is_the_earliest_open_bars_close_and_a_new_bar_announces_its_own() -> None:
    opened: list[datetime] = []
    b = BarBuilder(grace_sec=2.0, on_open=opened.append)
    assert b.next_due() is None
    b.on_trade("A", 100, 1, t("09:00:30"))
    b.on_trade("A", 101, 1, t("09:00:40"))  # the same bar: no second announcement
    b.on_trade("B", 50, 1, t("09:01:10"))
    assert opened == [t("09:01:02"), t("09:02:02")]
    assert b.next_due() == t("09:01:02")
    b.flush(t("09:01:02"))
    assert b.next_due() == t("09:02:02")
    b.flush(t("09:02:02"))
    assert b.next_due() is None
