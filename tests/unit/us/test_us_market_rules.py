"""US market rules: the tick grid (checked against an enumerated reference grid in exact decimals), the
XNYS calendar with early closes and DST, session phases, and the order checks naming the field."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from broker_core.contract.enums import OrderType
from broker_core.markets import us
from broker_core.markets.us import UsMarketRules, UsOrderError, UsSessionPhase

# The reference grid from $0.9000 to $1.5000: $0.0001 steps below $1, $0.01 from $1 (Reg NMS 612).
GRID = [Decimal(n) / 10_000 for n in range(9_000, 10_000)] + [Decimal(n) / 100 for n in range(100, 151)]


def ref_down(x: Decimal) -> Decimal:
    return GRID[bisect.bisect_right(GRID, x) - 1]


def ref_up(x: Decimal) -> Decimal:
    return GRID[bisect.bisect_left(GRID, x)]


def ny(d: date, hh: int, mm: int) -> datetime:
    return datetime.combine(d, time(hh, mm), us.TZ)


def test_rounding_and_membership_match_the_reference_grid() -> None:
    grid = set(GRID)
    for units in range(9_000, 14_990):
        for raw in (Decimal(units) / 10_000, Decimal(units) / 10_000 + Decimal("0.00003")):
            x = float(raw)
            assert Decimal(str(us.round_down(x))) == ref_down(raw), raw
            assert Decimal(str(us.round_up(x))) == ref_up(raw), raw
            assert us.is_on_tick(x) == (raw in grid), raw


def test_tick_sizes_and_the_one_dollar_edge() -> None:
    assert us.tick_size(1.0) == 0.01 and us.tick_size(0.9999) == 0.0001 and us.tick_size(523.17) == 0.01
    assert us.up(0.9999) == 1.0 and us.up(1.0) == 1.01 and us.down(1.0) == 0.9999 and us.down(1.01) == 1.0
    assert us.up(0.99995) == 1.01  # round_up first ($1.00), then one tick
    assert us.round_to_tick(150.254) == 150.25 and us.round_to_tick(150.256) == 150.26
    assert us.is_on_tick(150.25) and not us.is_on_tick(150.255) and us.is_on_tick(0.1234)
    assert not us.is_on_tick(0.12345) and not us.is_on_tick(0) and not us.is_on_tick(-1.0)
    assert not us.is_on_tick(float("nan")) and not us.is_on_tick(True)


def test_marketable_limits_and_no_price_limits() -> None:
    assert us.marketable_limit(100.0, buy=True) == 100.3 and us.marketable_limit(100.0, buy=False) == 99.7
    assert us.marketable_limit(2.0, buy=True) == 2.03  # three ticks beat 0.3%
    assert us.marketable_limit(150.0, buy=True, band_pct=0.01) == 151.5
    assert us.price_limits(100.0) is None


def test_calendar_regular_day_early_closes_holidays_and_dst() -> None:
    regular = us.session(date(2024, 11, 26))
    assert regular is not None and (regular.open, regular.close) == (ny(regular.day, 9, 30), ny(regular.day, 16, 0))
    assert regular.minutes == 390 and not regular.early_close
    for early in (date(2024, 11, 29), date(2024, 12, 24), date(2024, 7, 3)):
        s = us.session(early)
        assert s is not None and s.close == ny(early, 13, 0) and s.minutes == 210 and us.is_early_close(early)
        assert s.after_hours_close == ny(early, 17, 0)
    assert us.session(date(2024, 12, 25)) is None and not us.is_trading_day(date(2024, 11, 28))
    assert not us.is_trading_day(date(2024, 11, 30))
    before, after = us.session(date(2024, 3, 8)), us.session(date(2024, 3, 11))
    assert before is not None and after is not None
    assert before.open.astimezone(UTC).hour == 14 and after.open.astimezone(UTC).hour == 13
    assert us.next_trading_day(date(2024, 11, 27)) == date(2024, 11, 29)
    assert us.previous_trading_day(date(2024, 12, 26)) == date(2024, 12, 24)
    assert us.trading_days("2024-12-23", "2024-12-27") == [date(2024, 12, d) for d in (23, 24, 26, 27)]
    with pytest.raises(ValueError, match="outside the XNYS calendar"):
        us.session(date(1990, 1, 2))


def test_session_phases_and_the_order_window() -> None:
    d = date(2024, 11, 29)
    cases = {
        (3, 59): UsSessionPhase.CLOSED,
        (4, 0): UsSessionPhase.PRE_MARKET,
        (9, 29): UsSessionPhase.PRE_MARKET,
        (9, 30): UsSessionPhase.REGULAR,
        (12, 59): UsSessionPhase.REGULAR,
        (13, 0): UsSessionPhase.AFTER_HOURS,  # early close
        (17, 0): UsSessionPhase.CLOSED,
    }
    for (hh, mm), phase in cases.items():
        assert us.session_phase(ny(d, hh, mm)) is phase, (hh, mm)
    assert us.session_phase(ny(date(2024, 11, 30), 12, 0)) is UsSessionPhase.CLOSED
    assert not us.accepts_orders(ny(d, 9, 0)) and us.accepts_orders(ny(d, 9, 0), extended_hours=True)
    assert us.accepts_orders(ny(d, 10, 0)) and not us.accepts_orders(ny(d, 18, 0), extended_hours=True)
    is_open, next_open, next_close = us.market_clock(ny(d, 11, 0))
    assert is_open and next_close == ny(d, 13, 0) and next_open == ny(date(2024, 12, 2), 9, 30)
    is_open, next_open, next_close = us.market_clock(ny(d, 8, 0))
    assert not is_open and next_open == ny(d, 9, 30) and next_close == ny(d, 13, 0)


def test_order_checks_name_the_field() -> None:
    rules = UsMarketRules()
    known = {"AAPL", "BRK.B"}
    rules.check_order("AAPL", 10, OrderType.LIMIT, 187.25, known_symbols=known)
    rules.check_order("BRK.B", 3, OrderType.MARKET, known_symbols=known)
    bad = [
        (("MSFT", 1, OrderType.MARKET), "symbol", "UNKNOWN_SYMBOL"),
        (("aapl", 1, OrderType.MARKET), "symbol", "INVALID_SYMBOL"),
        (("AAPL", 0, OrderType.MARKET), "qty", "INVALID_QTY"),
        (("AAPL", -5, OrderType.MARKET), "qty", "INVALID_QTY"),
        (("AAPL", 1.5, OrderType.MARKET), "qty", "FRACTIONAL_QTY"),
        (("AAPL", True, OrderType.MARKET), "qty", "INVALID_QTY"),
        (("AAPL", 1, OrderType.LIMIT, 187.255), "limit_price", "OFF_TICK"),
        (("AAPL", 1, OrderType.LIMIT, None), "limit_price", "INVALID_PRICE"),
        (("AAPL", 1, "STOPPY"), "order_type", "INVALID_ORDER"),
    ]
    for args, field, code in bad:
        with pytest.raises(UsOrderError) as err:
            rules.check_order(*args, known_symbols=known)  # type: ignore[arg-type]
        assert (err.value.field, err.value.code) == (field, code) and str(err.value).startswith(f"{field}: ")


def test_fractional_quantities_only_on_market_orders_and_only_when_enabled() -> None:
    frac = UsMarketRules(fractional=True)
    assert frac.check_qty(0.5, OrderType.MARKET) == 0.5
    with pytest.raises(UsOrderError, match="MARKET orders only"):
        frac.check_qty(0.5, OrderType.LIMIT)
    with pytest.raises(UsOrderError, match="decimals"):
        frac.check_qty(0.1234567891, OrderType.MARKET)
    assert UsMarketRules().check_qty(3.0, OrderType.LIMIT) == 3.0


def test_extended_hours_refused_unless_configured() -> None:
    d = date(2024, 11, 26)
    with pytest.raises(UsOrderError) as err:
        UsMarketRules().check_session(ny(d, 8, 0))
    assert err.value.field == "time" and "PRE_MARKET" in str(err.value)
    with pytest.raises(UsOrderError, match="extended_hours: extended-hours trading is not enabled"):
        UsMarketRules().check_session(ny(d, 10, 0), extended_hours=True)
    UsMarketRules(extended_hours=True).check_session(ny(d, 8, 0), extended_hours=True)
    UsMarketRules().check_session(ny(d, 10, 0))
    assert UsMarketRules(extended_hours=True).order_window(ny(d, 19, 0))
    assert not UsMarketRules().order_window(ny(d, 19, 0))
