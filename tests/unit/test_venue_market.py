"""``Market``: the KRX and US rules behind the names the OMS uses (grid, phases, calendar, zone)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from broker_core.clock import KST, NEW_YORK
from broker_core.markets.venue_market import KRX_MARKET, US_MARKET, market_for, session_close_time
from oms.core.planner import plan_order
from oms.core.types import Constraints, IntentType


def test_krx_grid_and_phases_are_the_krx_rules() -> None:
    assert KRX_MARKET.round_up(10_001) == 10_010 and KRX_MARKET.round_down(10_009) == 10_000
    assert KRX_MARKET.phase(datetime(2026, 2, 4, 8, 45, tzinfo=KST)) == "PRE_OPEN_AUCTION"
    assert KRX_MARKET.accepts_orders(datetime(2026, 2, 4, 15, 25, tzinfo=KST))
    assert not KRX_MARKET.continuous(datetime(2026, 2, 4, 15, 25, tzinfo=KST))
    assert not KRX_MARKET.accepts_orders(datetime(2026, 2, 7, 10, 0, tzinfo=KST))  # a Saturday
    assert session_close_time(KRX_MARKET, date(2026, 2, 4)) == time(15, 30)


def test_us_grid_is_cents_above_a_dollar_and_hundredths_of_a_cent_below() -> None:
    assert US_MARKET.round_up(187.231) == 187.24 and US_MARKET.round_down(187.239) == 187.23
    assert US_MARKET.round_up(0.51234) == 0.5124
    assert US_MARKET.marketable_limit(100.0, True, 0.003, 3) == 100.3
    assert US_MARKET.marketable_limit(100.0, False, 0.003, 3) == 99.7
    assert US_MARKET.on_tick(187.23) and not US_MARKET.on_tick(187.234) and US_MARKET.on_tick(0.5123)
    assert not US_MARKET.snaps_limit_prices and KRX_MARKET.snaps_limit_prices  # B1 snaps on KRX only
    assert KRX_MARKET.on_tick(10_010) and not KRX_MARKET.on_tick(10_001)


def test_us_phases_follow_new_york_and_early_closes() -> None:
    day = date(2024, 11, 29)  # the day after Thanksgiving: 13:00 close
    assert session_close_time(US_MARKET, day) == time(13, 0)
    assert US_MARKET.open_close(day)[1] == datetime(2024, 11, 29, 13, 0, tzinfo=NEW_YORK)
    assert US_MARKET.phase(datetime(2024, 11, 29, 12, 59, tzinfo=NEW_YORK)) == "REGULAR"
    assert US_MARKET.phase(datetime(2024, 11, 29, 13, 1, tzinfo=NEW_YORK)) == "AFTER_HOURS"
    assert not US_MARKET.accepts_orders(datetime(2024, 11, 29, 13, 1, tzinfo=NEW_YORK))
    # 23:45 KST on 2024-11-26 is 09:45 New York: a US session, though KRX is shut
    late_seoul = datetime(2024, 11, 26, 23, 45, tzinfo=KST)
    assert US_MARKET.continuous(late_seoul) and not KRX_MARKET.accepts_orders(late_seoul)
    assert not US_MARKET.is_trading_day(date(2024, 11, 28))  # Thanksgiving
    assert US_MARKET.next_trading_day(date(2024, 11, 28)) == date(2024, 11, 29)


def test_extended_hours_only_when_configured() -> None:
    premarket = datetime(2024, 11, 26, 8, 0, tzinfo=NEW_YORK)
    assert not US_MARKET.accepts_orders(premarket)
    assert market_for("us", extended_hours=True).accepts_orders(premarket)
    assert market_for("KRX") is KRX_MARKET
    with pytest.raises(ValueError, match="unknown market 'lse'"):
        market_for("lse")


def test_the_planner_prices_on_the_market_grid() -> None:
    now = datetime(2024, 11, 26, 10, 0, tzinfo=NEW_YORK)
    args = (IntentType.ENTER, "BUY", 5, Constraints(), 232.87, 232.86, 232.88, now)
    us_plan = plan_order(*args, market=US_MARKET)
    assert us_plan.limit_price == pytest.approx(233.58)  # ask · 1.003, rounded up to the cent
    krx_plan = plan_order(*args, market=KRX_MARKET)
    assert krx_plan.limit_price is not None and krx_plan.limit_price == round(krx_plan.limit_price)
    limit = plan_order(
        IntentType.ENTER, "BUY", 1, Constraints(limit_price=10.005), None, None, None, now, market=US_MARKET
    )
    assert limit.limit_price == 10.01
