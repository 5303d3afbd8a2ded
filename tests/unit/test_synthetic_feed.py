"""The seeded synthetic session (no data needed)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise

import pytest

from broker_core.clock import KST
from broker_core.market_rules import is_on_tick, price_limits
from broker_core.paper.feed import TickFeed
from broker_core.paper.replay import ticks_to_bars
from broker_core.paper.synthetic import DEFAULT_SYMBOLS, SyntheticFeed

DAY = date(2026, 3, 3)


def _at(hh: int, mm: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=KST)


def test_is_a_tick_feed_with_default_symbols() -> None:
    feed = SyntheticFeed(DAY)
    assert isinstance(feed, TickFeed)
    assert feed.session_date == DAY
    assert feed.symbols == list(DEFAULT_SYMBOLS) == [f"9000{i:02d}" for i in range(1, 11)]
    assert all(feed.prev_close(s) for s in feed.symbols)


def test_same_seed_same_tape_different_seed_different_tape() -> None:
    assert list(SyntheticFeed(DAY, seed=11)) == list(SyntheticFeed(DAY, seed=11))
    assert list(SyntheticFeed(DAY, seed=11)) != list(SyntheticFeed(DAY, seed=12))
    assert list(SyntheticFeed(DAY, seed=11)) != list(SyntheticFeed(DAY + timedelta(days=1), seed=11))


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_prices_on_grid_within_limits_and_time_ordered(seed: int) -> None:
    feed = SyntheticFeed(DAY, seed=seed)
    ticks = list(feed)
    assert all(a.ts <= b.ts for a, b in pairwise(ticks))
    assert all(t.qty > 0 and is_on_tick(t.price) for t in ticks)
    for symbol in feed.symbols:
        prev = feed.prev_close(symbol)
        assert prev is not None and is_on_tick(prev)
        lower, upper = price_limits(prev)
        assert all(lower <= t.price <= upper for t in ticks if t.symbol == symbol)


@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
def test_volume_is_u_shaped(seed: int) -> None:
    feed = SyntheticFeed(DAY, seed=seed)
    for symbol in feed.symbols:
        volumes = [b.volume for b in feed.bars(symbol)[:-1]]
        first, middle, last = sum(volumes[:30]), sum(volumes[175:205]), sum(volumes[-30:])
        assert first > middle and last > middle, (symbol, first, middle, last)


def test_session_shape_and_closing_auction() -> None:
    feed = SyntheticFeed(DAY)
    for symbol in feed.symbols:
        bars = feed.bars(symbol)
        assert [b.ts for b in bars] == [_at(9, 0) + timedelta(minutes=i) for i in range(380)] + [_at(15, 30)]
        auction = bars[-1]
        assert auction.open == auction.high == auction.low == auction.close
        prints = [t for t in feed.ticks(symbol) if t.ts >= _at(15, 20)]
        assert len(prints) == 1 and prints[0].ts == _at(15, 30) and prints[0].qty == auction.volume


def test_ticks_reproduce_the_synthetic_bars() -> None:
    feed = SyntheticFeed(DAY, seed=3)
    ticks = list(feed)
    assert feed.count_bars() == 381 * len(feed.symbols)
    for symbol in feed.symbols:
        assert ticks_to_bars([t for t in ticks if t.symbol == symbol]) == feed.bars(symbol)


def test_opening_gap_is_moderate() -> None:
    feed = SyntheticFeed(DAY, seed=5)
    gaps = [abs(feed.bars(s)[0].open / feed.prev_close(s) - 1) for s in feed.symbols]
    assert max(gaps) < 0.06 and any(g > 0 for g in gaps)


def test_given_symbols_and_base_prices() -> None:
    feed = SyntheticFeed(DAY, ["005930", "000660"], base_prices={"005930": 216_500, "000660": 1_000_123})
    assert feed.symbols == ["005930", "000660"]
    assert feed.prev_close("005930") == 216_500
    assert feed.prev_close("000660") == 1_000_000
    alone = SyntheticFeed(DAY, ["005930"], base_prices={"005930": 216_500})
    assert alone.bars("005930") == feed.bars("005930")
