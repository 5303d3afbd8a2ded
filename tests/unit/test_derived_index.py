"""Derived intraday KOSPI/KOSDAQ paths (broker_core.paper.index) on the real KRX data, and the paper
broker serving them (needs ../shared/data/krx or $TRADER_DATA_DIR: fails, never skips)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from broker_core.clock import KST, ManualClock
from broker_core.contract.reasons import ReasonCode
from broker_core.errors import BrokerError, OrderRejected
from broker_core.models import OrderRequest, OrderType, Side
from broker_core.paper.broker import PaperBroker
from broker_core.paper.data import KrxData
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.index import (
    INDEX_CODES,
    KOSDAQ_LISTED,
    SOURCE,
    Constituent,
    DerivedIndex,
    IndexQuote,
    build_path,
    equal_weight_returns,
    market_of,
)
from broker_core.paper.replay import ReplayFeed

SESSION = date(2026, 2, 27)


@pytest.fixture(scope="module")
def krx() -> KrxData:
    return KrxData()


@pytest.fixture(scope="module")
def index(krx: KrxData) -> DerivedIndex:
    return DerivedIndex(krx)


def _kst(day: date, t: time) -> datetime:
    return datetime.combine(day, t, KST)


def _real(krx: KrxData, code: str, day: date) -> tuple[float, float]:
    """(prior close, close) of the index from index_ohlcv.parquet."""
    prior = krx.index_bars(code, day - timedelta(days=40), day - timedelta(days=1))[-1].close
    return prior, krx.index_bars(code, day, day)[0].close


def test_members_follow_the_listing(krx: KrxData, index: DerivedIndex) -> None:
    symbols = set(krx.minute_symbols())
    kospi = {m.symbol for m in index.members("KOSPI", SESSION)}
    kosdaq = {m.symbol for m in index.members("KOSDAQ", SESSION)}
    assert kosdaq == KOSDAQ_LISTED & symbols and len(kosdaq) == 8
    assert kospi == symbols - KOSDAQ_LISTED and len(kospi) == 52
    assert market_of("005930") == "KOSPI" and market_of("263750") == "KOSDAQ"


def test_every_session_ends_at_the_real_close_and_starts_from_the_prior_close(
    krx: KrxData, index: DerivedIndex
) -> None:
    sessions = krx.sessions()
    assert len(sessions) > 180
    for day in sessions:
        for code in INDEX_CODES:
            path = index.path(code, day)
            assert path is not None, (code, day)
            prior, close = _real(krx, code, day)
            assert path.prev_close == prior and path.real_close == close
            assert path.closes[-1] == pytest.approx(close, rel=1e-12), (code, day)  # 15:30 = the real close
            assert datetime.fromtimestamp(int(path.ts[-1]), KST).time() == time(15, 30)
            # the first bar is the prior close moved by the constituents' first-minute move (no drift yet)
            first_moves = [m.close[0] / m.prev_close - 1 for m in index.members(code, day) if len(m.ts)]
            move = path.closes[0] / prior - 1
            assert min(first_moves) - 1e-12 <= move <= max(first_moves) + 1e-12, (code, day)
            assert path.closes[0] == pytest.approx(path.raw_closes[0], rel=1e-12)
            assert np.all(path.lows <= path.opens) and np.all(path.opens <= path.highs)
            assert np.all(path.lows <= path.closes) and np.all(path.closes <= path.highs)


def test_late_open_sessions_start_at_their_first_bar(index: DerivedIndex) -> None:
    for day in (date(2025, 11, 13), date(2026, 1, 2)):  # the CSAT day and the first session of the year: 10:00
        path = index.path("KOSPI", day)
        assert path is not None
        assert datetime.fromtimestamp(int(path.ts[0]), KST).time() == time(10, 0)
        assert path.closes[0] == pytest.approx(path.raw_closes[0], rel=1e-12)


def test_reproducible_and_cached(krx: KrxData, index: DerivedIndex) -> None:
    a = index.path("KOSPI", SESSION)
    assert index.path("KOSPI", SESSION) is a
    b = DerivedIndex(krx).path("KOSPI", SESSION)
    assert a is not None and b is not None and a is not b
    for name in ("ts", "known_at", "opens", "highs", "lows", "closes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.residual == b.residual and a.members == b.members


@pytest.mark.parametrize("cut", [time(9, 0), time(9, 17), time(10, 30), time(15, 19)])
def test_the_value_at_t_uses_only_bars_up_to_t(index: DerivedIndex, cut: time) -> None:
    """Members cut after ``t`` give the same path up to ``t``: only the day's anchor ε comes from later."""
    path = index.path("KOSPI", SESSION)
    assert path is not None
    t = _kst(SESSION, cut).timestamp()
    cut_members = []
    for m in index.members("KOSPI", SESSION):
        keep = m.ts <= t
        cut_members.append(Constituent(m.symbol, m.prev_close, m.ts[keep], m.open[keep], m.close[keep]))
    upto = path.ts <= t
    grid = path.ts[upto]
    r_open, r_close = equal_weight_returns(grid, cut_members)
    weight = (grid - path.ts[0]) / (path.ts[-1] - path.ts[0])
    expected = path.prev_close * (1 + r_close) * np.exp(weight * path.residual)
    assert np.allclose(path.closes[upto], expected, rtol=1e-12, atol=0)
    assert np.allclose(path.opens[upto], path.prev_close * (1 + r_open) * np.exp(weight * path.residual))


def test_a_bar_is_served_only_once_complete(index: DerivedIndex) -> None:
    path = index.path("KOSPI", SESSION)
    assert path is not None
    assert path.value_at(_kst(SESSION, time(9, 0, 59))) is None
    assert path.quote(_kst(SESSION, time(9, 0, 59))).last == round(path.prev_close, 2)
    value, ts = path.value_at(_kst(SESSION, time(9, 1)))  # type: ignore[misc]
    assert ts == _kst(SESSION, time(9, 0)) and value == path.closes[0]
    now = _kst(SESSION, time(9, 30, 30))
    bars = path.bars(_kst(SESSION, time(9, 0)), now, now)
    assert [b.ts for b in bars][-1] == _kst(SESSION, time(9, 29)) and len(bars) == 30
    assert all(b.ts + timedelta(minutes=1) <= now for b in bars)
    # the closing auction (15:30) is known at 15:30, the last continuous bar (15:19) at 15:20
    assert path.value_at(_kst(SESSION, time(15, 29, 59)))[1] == _kst(SESSION, time(15, 19))  # type: ignore[index]
    assert path.value_at(_kst(SESSION, time(15, 30)))[0] == path.closes[-1]  # type: ignore[index]
    five = path.bars(_kst(SESSION, time(9, 0)), now, now, "5m")
    assert [b.ts.minute for b in five] == [0, 5, 10, 15, 20, 25] and five[-1].close == bars[-1].close


def test_out_of_range_returns_are_left_out_and_no_anchor_means_no_drift() -> None:
    day, t0 = SESSION, int(_kst(SESSION, time(9, 0)).timestamp())
    ts = np.array([t0, t0 + 60])
    good = Constituent("A", 100.0, ts, np.array([100.0, 101.0]), np.array([101.0, 102.0]))
    split = Constituent("B", 100.0, ts, np.array([50.0, 50.0]), np.array([50.0, 51.0]))  # a 2:1 split: −50%
    quiet = Constituent("C", 200.0, np.array([t0 + 60]), np.array([204.0]), np.array([202.0]))  # no 09:00 bar
    path = build_path("KOSPI", day, [good, split, quiet], prev_close=1_000.0, real_close=None)
    assert path.residual == 0 and not path.anchored
    # 09:00: A +1%, C not traded yet (0%) → 0.5%; 09:01: A +2%, C +1% → 1.5%; B is never counted
    assert path.closes.tolist() == pytest.approx([1_005.0, 1_015.0])
    # open of 09:01: A's open +1%, C's open +2% → 1.5%
    assert path.opens.tolist() == pytest.approx([1_000.0, 1_015.0])


async def test_the_paper_broker_serves_the_derived_index(krx: KrxData, index: DerivedIndex) -> None:
    clock = ManualClock(_kst(SESSION, time(9, 30, 30)))
    exchange = PaperExchange(ReplayFeed(krx, SESSION, ["005930"]), clock)
    broker = PaperBroker(exchange, index_source=index, daily_source=krx.daily_bars)
    assert broker.index_symbols == frozenset({"KOSPI", "KOSDAQ"})
    path = index.path("KOSPI", SESSION)
    assert path is not None
    q = await broker.get_quote("KOSPI")
    assert isinstance(q, IndexQuote) and q.derived and q.source == SOURCE and q.constituents == 52
    assert q.last == round(path.closes[29], 2) and q.prev_close == _real(krx, "KOSPI", SESSION)[0]
    bars = await broker.get_bars("KOSPI", _kst(SESSION, time(9, 0)), clock.now())
    assert len(bars) == 30 and bars[-1].close == q.last
    history = await broker.get_bars("KOSPI", _kst(date(2026, 2, 26), time(9, 0)), clock.now())
    assert history[0].ts.date() == date(2026, 2, 26) and history[-1] == bars[-1]
    daily = await broker.get_daily_bars("KOSDAQ", date(2026, 2, 20), date(2026, 2, 26))
    assert [b.close for b in daily] == [b.close for b in krx.index_bars("KOSDAQ", date(2026, 2, 20), date(2026, 2, 26))]
    # market data only: the exchange does not trade an index
    with pytest.raises(OrderRejected) as rejected:
        await broker.submit_order(OrderRequest("c1", "KOSPI", Side.BUY, 1, OrderType.LIMIT, limit_price=6_000))
    assert rejected.value.code == ReasonCode.UNKNOWN_SYMBOL
    without = PaperBroker(exchange)
    assert without.index_symbols == frozenset()
    with pytest.raises(BrokerError) as err:
        await without.get_quote("KOSPI")
    assert err.value.code == ReasonCode.UNKNOWN_SYMBOL
