"""The derived US intraday path (needs ../shared/data/us or $TRADER_US_DATA_DIR: fails, never skips).

The property test runs over every row of the data: each path opens at the day's open, closes at its
close, touches its high and low exactly and never passes them (all on the tick grid), spans the whole
regular session, and carries the day's volume; deriving again — in another order and batching — gives
the same path, and another seed a different one.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import numpy as np
import pytest

from broker_core.markets import us
from broker_core.models import Tick
from broker_core.paper.feed import TickFeed
from broker_core.paper.us_daily import SOURCE, DerivedDay, UsDailyFeed, derive_day, derive_days, grid_ohlc
from broker_core.paper.us_data import UsData, UsDataNotFound, from_day_number

EARLY_CLOSE = date(2024, 11, 29)


@pytest.fixture(scope="module")
def data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for these tests: {exc}")


def _digest(paths: list[DerivedDay]) -> str:
    h = hashlib.sha256()
    for p in paths:
        for arr in (p.open, p.high, p.low, p.close, p.volume):
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _on_grid(units: np.ndarray) -> bool:
    return bool(np.all(np.where(units >= us.UNITS_PER_DOLLAR, units % us.PENNY_UNITS == 0, units >= 1)))


def test_every_day_of_the_data_touches_its_ohlc_exactly_and_is_reproducible(data: UsData) -> None:
    rows = 0
    repaired = 0
    failures: list[str] = []
    digests: dict[str, str] = {}
    for symbol in data.symbols():
        a = data.arrays(symbol)
        days = [from_day_number(d) for d in a.day.tolist()]
        paths = derive_days(symbol, days, a.open, a.high, a.low, a.close, a.volume)
        digests[symbol] = _digest(paths)
        rows += len(paths)
        anchors = np.array([p.source_ohlc for p in paths], dtype=np.int64)
        touched = np.array(
            [(p.open[0], p.high.max(), p.low.min(), p.close[-1], p.volume.sum()) for p in paths], dtype=np.int64
        )
        raw = np.column_stack([a.open, a.high, a.low, a.close]) * us.UNITS_PER_DOLLAR
        consistent = (a.high >= np.maximum(a.open, a.close)) & (a.low <= np.minimum(a.open, a.close))
        repaired += int((~consistent).sum())
        near = np.all(np.abs(anchors - raw) <= us.PENNY_UNITS / 2 + 1e-6, axis=1) | ~consistent
        sessions = [us.session(p.day) for p in paths]
        spans = all(
            s is not None and (p.minutes, p.session_open) == (s.minutes, s.open)
            for p, s in zip(paths, sessions, strict=True)
        )
        bad = ~(np.all(touched[:, :4] == anchors, axis=1) & (touched[:, 4] == a.volume) & near)
        failures += [f"{symbol} {paths[k].day}" for k in np.flatnonzero(bad).tolist()]
        assert spans, symbol
        # the invariants inside the bars, checked on the whole symbol at once
        opens = np.concatenate([p.open for p in paths])
        highs = np.concatenate([p.high for p in paths])
        lows = np.concatenate([p.low for p in paths])
        closes = np.concatenate([p.close for p in paths])
        assert np.all(highs >= np.maximum(opens, closes)) and np.all(lows <= np.minimum(opens, closes)), symbol
        assert _on_grid(opens) and _on_grid(highs) and _on_grid(lows) and _on_grid(closes), symbol
        assert np.all(np.concatenate([p.volume for p in paths]) >= 0), symbol
    assert rows == 94_495 and failures == []
    assert repaired == 13  # vendor rows whose open/close lie outside their own high-low range (widened)

    # same seed, same paths: again, in reverse order (other chunks); another seed differs
    for symbol in ("AAPL", "SPY", "XLRE", "BKNG"):
        a = data.arrays(symbol)
        days = [from_day_number(d) for d in a.day.tolist()]
        back = derive_days(symbol, days[::-1], a.open[::-1], a.high[::-1], a.low[::-1], a.close[::-1], a.volume[::-1])
        assert _digest(back[::-1]) == digests[symbol], symbol
        other = derive_days(
            symbol, days[:50], a.open[:50], a.high[:50], a.low[:50], a.close[:50], a.volume[:50], seed=7
        )
        same = derive_days(symbol, days[:50], a.open[:50], a.high[:50], a.low[:50], a.close[:50], a.volume[:50])
        moving = [(x, y) for x, y in zip(other, same, strict=True) if x.source_ohlc[1] > x.source_ohlc[2]]
        assert all(not np.array_equal(x.close, y.close) for x, y in moving) and len(moving) >= 30, symbol
    for symbol in data.symbols()[::10]:
        a = data.arrays(symbol)
        i = len(a) // 2
        one = derive_day(
            symbol, from_day_number(int(a.day[i])), a.open[i], a.high[i], a.low[i], a.close[i], a.volume[i]
        )
        assert _digest([one]) == _digest([derive_days(symbol, [one.day], *_row(a, i))[0]]), symbol


def _row(a: object, i: int) -> Any:
    return [[float(getattr(a, name)[i])] for name in ("open", "high", "low", "close", "volume")]


def test_the_tape_of_a_day_prints_open_first_close_last_and_touches_high_and_low(data: UsData) -> None:
    rng = np.random.default_rng(3)
    checked = 0
    for symbol in data.symbols():
        a = data.arrays(symbol)
        for i in rng.choice(len(a), size=4, replace=False).tolist():
            day = from_day_number(int(a.day[i]))
            path = derive_day(symbol, day, a.open[i], a.high[i], a.low[i], a.close[i], int(a.volume[i]))
            ticks = list(path.ticks())
            volume = int(a.volume[i])
            assert sum(t.qty for t in ticks) == volume
            if volume == 0:
                assert ticks == []
                continue
            o, h, lo, c = (x / us.UNITS_PER_DOLLAR for x in path.source_ohlc)
            prices = [t.price for t in ticks]
            assert (prices[0], prices[-1], max(prices), min(prices)) == (o, c, h, lo), (symbol, day)
            assert all(us.is_on_tick(p) for p in prices) and all(t.qty > 0 for t in ticks)
            assert all(x.ts < y.ts for x, y in zip(ticks, ticks[1:], strict=False))
            sess = us.session(day)
            assert sess is not None and sess.open <= ticks[0].ts and ticks[-1].ts < sess.close
            checked += 1
    assert checked > 400


def test_an_early_close_day_spans_210_minutes_and_the_volume_is_u_shaped(data: UsData) -> None:
    row = data.row("AAPL", EARLY_CLOSE)
    assert row is not None
    path = derive_day("AAPL", EARLY_CLOSE, row.open, row.high, row.low, row.close, row.volume)
    bars = path.bars()
    assert len(bars) == 210 and bars[0].ts == datetime(2024, 11, 29, 9, 30, tzinfo=us.TZ)
    assert bars[-1].ts == datetime(2024, 11, 29, 12, 59, tzinfo=us.TZ)
    assert all(b.extra == {"derived": 1.0} and b.interval == "1m" for b in bars)
    v = path.volume.astype(float)
    ends, middle = v[:20].mean() + v[-20:].mean(), v[95:115].mean()
    assert ends / 2 > 2 * middle
    assert (bars[0].open, bars[-1].close) == (234.81, 237.33)  # float32 noise of the vendor rows put on the grid


def test_grid_ohlc_rounds_to_the_grid_and_widens_an_inconsistent_range() -> None:
    assert grid_ohlc(174.4149, 178.3, 174.415, 175.06) == (1744100, 1783000, 1744100, 1750600)
    assert grid_ohlc(236.42, 270.16, 236.77, 269.56) == (2364200, 2701600, 2364200, 2695600)  # MCD 2023-01-24
    assert grid_ohlc(74.93, 71.18, 58.85, 66.70) == (749300, 749300, 588500, 667000)  # SO 2023-01-24


def test_the_feed_is_a_tick_feed_in_time_order(data: UsData) -> None:
    feed = UsDailyFeed(data, date(2024, 11, 26), ["AAPL", "SPY", "XLRE"])
    assert isinstance(feed, TickFeed) and feed.derived and feed.source == SOURCE
    assert feed.close_at == datetime(2024, 11, 26, 16, 0, tzinfo=us.TZ) and feed.data_day == feed.session_date
    prev = data.prev_close("AAPL", date(2024, 11, 26))
    assert prev is not None and feed.prev_close("AAPL") == us.round_to_tick(prev)
    ticks: list[Tick] = list(feed)
    assert all(x.ts <= y.ts for x, y in zip(ticks, ticks[1:], strict=False))
    assert {t.symbol for t in ticks} == {"AAPL", "SPY", "XLRE"}
    assert [t for t in ticks if t.symbol == "AAPL"] == list(feed.ticks("AAPL"))
    again = UsDailyFeed(data, date(2024, 11, 26), ["AAPL", "SPY", "XLRE"])
    assert list(again) == ticks
    with pytest.raises(ValueError, match="not an XNYS trading day"):
        UsDailyFeed(data, date(2024, 11, 28))
    with pytest.raises(ValueError, match="no daily bar on 2016-01-04 for XLC"):
        UsDailyFeed(data, date(2016, 1, 4), ["XLC"])
    moved = UsDailyFeed(data, date(2024, 12, 31), ["AAPL"], session_day=date(2024, 11, 29))
    assert moved.session_date == EARLY_CLOSE and moved.data_day == date(2024, 12, 31)
    assert moved.path("AAPL").minutes == 210 and moved.path("AAPL").session_open.date() == EARLY_CLOSE
