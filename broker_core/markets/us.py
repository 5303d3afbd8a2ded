"""US equity rules (NYSE / Nasdaq listed shares as traded through Alpaca).

- Calendar: XNYS from ``exchange_calendars``, early closes included (13:00 on the day after
  Thanksgiving, Christmas Eve, …). Every time is shown in America/New_York.
- Sessions: regular 09:30 to 16:00 (the early close on a short day); extended hours are the
  pre-market from 04:00 and the after-hours session to 20:00 (17:00 after an early close).
  Orders outside the regular session are refused unless extended hours are enabled.
- Currency: USD. No daily price limits (LULD bands are not modelled).
- Tick (Reg NMS Rule 612): $0.01 at or above $1.00 and $0.0001 below. Prices are handled as whole
  numbers of $0.0001 so band edges are exact.
- Lots: whole shares. Fractional quantities are allowed only for MARKET orders, and only when the
  rules are built with ``fractional=True`` (Alpaca takes fractional shares only as market/day orders).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache

from broker_core import calendars
from broker_core.clock import NEW_YORK
from broker_core.contract.enums import OrderType

CALENDAR = calendars.NYSE
CURRENCY = "USD"
TZ = NEW_YORK
UNITS_PER_DOLLAR = 10_000
"""Prices are compared as whole numbers of $0.0001 (the finest tick)."""
PENNY_UNITS = 100
SUB_PENNY_UNITS = 1
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
PRE_MARKET_OPEN = time(4, 0)
AFTER_HOURS_CLOSE = time(20, 0)
AFTER_HOURS_AFTER_EARLY_CLOSE = timedelta(hours=4)
FRACTIONAL_DECIMALS = 9
"""Alpaca accepts fractional quantities with up to 9 decimals."""
DEFAULT_BAND_PCT = 0.003
_EPS_UNITS = 1e-6
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,5}([./][A-Z0-9]{1,2})?$")


# -- ticks -------------------------------------------------------------------------------------


def to_units(price: float) -> int:
    """``price`` in whole $0.0001 (nearest)."""
    return round(price * UNITS_PER_DOLLAR)


def from_units(units: int) -> float:
    return units / UNITS_PER_DOLLAR


def _tick_units(units: int) -> int:
    return PENNY_UNITS if units >= UNITS_PER_DOLLAR else SUB_PENNY_UNITS


def tick_size(price: float) -> float:
    """$0.01 at or above $1.00, $0.0001 below."""
    return 0.01 if price >= 1.0 - _EPS_UNITS / UNITS_PER_DOLLAR else 0.0001


def is_on_tick(price: float) -> bool:
    if not isinstance(price, (int, float)) or isinstance(price, bool) or not math.isfinite(price) or price <= 0:
        return False
    raw = price * UNITS_PER_DOLLAR
    units = round(raw)
    if abs(raw - units) > _EPS_UNITS:
        return False
    return units > 0 and units % _tick_units(units) == 0


def _down_units(price: float) -> int:
    units = math.floor(price * UNITS_PER_DOLLAR + _EPS_UNITS)
    return units - units % _tick_units(units) if units > 0 else 0


def _up_units(price: float) -> int:
    units = max(1, math.ceil(price * UNITS_PER_DOLLAR - _EPS_UNITS))
    rem = units % _tick_units(units)
    return units if rem == 0 else units + _tick_units(units) - rem


def round_down(price: float) -> float:
    """Largest grid price ≤ ``price`` (0.0 below the first tick)."""
    return from_units(_down_units(price))


def round_up(price: float) -> float:
    """Smallest grid price ≥ ``price``."""
    return from_units(_up_units(price))


def round_to_tick(price: float) -> float:
    """Nearest grid price (a tie goes up)."""
    lo, hi = _down_units(price), _up_units(price)
    raw = price * UNITS_PER_DOLLAR
    return from_units(lo if lo > 0 and raw - lo < hi - raw else hi)


def up(price: float, n: int = 1) -> float:
    """``n`` ticks above ``round_up(price)``, re-reading the tick each step."""
    units = _up_units(price)
    for _ in range(n):
        units += _tick_units(units)
    return from_units(units)


def down(price: float, n: int = 1) -> float:
    """``n`` ticks below ``round_down(price)``, using the tick of the band just below each step."""
    units = _down_units(price)
    for _ in range(n):
        units -= _tick_units(units - 1) if units > 1 else 0
    return from_units(max(units, 1))


def price_limits(base_price: float | None) -> tuple[float, float] | None:
    """US shares have no daily price limits (the KRX rules answer (lower, upper) here)."""
    return None


def marketable_limit(ref_price: float, buy: bool, band_pct: float | None = None, ticks: int = 3) -> float:
    """A limit through ``ref_price``: buy ``round_up(ref·(1+b))``, sell ``round_down(ref·(1−b))``,
    at least ``ticks`` ticks away; ``b`` defaults to 0.3%."""
    pct = DEFAULT_BAND_PCT if band_pct is None else band_pct
    if buy:
        return max(round_up(ref_price * (1 + pct)), up(ref_price, ticks))
    return max(min(round_down(ref_price * (1 - pct)), down(ref_price, ticks)), from_units(1))


# -- calendar and sessions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """One XNYS trading day, times in America/New_York."""

    day: date
    open: datetime
    close: datetime
    pre_market_open: datetime
    after_hours_close: datetime

    @property
    def early_close(self) -> bool:
        return self.close.time() != REGULAR_CLOSE

    @property
    def minutes(self) -> int:
        """Length of the regular session in minutes (390, or 210 after an early close)."""
        return int((self.close - self.open).total_seconds() // 60)


def _as_day(d: date | datetime | str) -> date:
    if isinstance(d, datetime):
        return d.astimezone(TZ).date() if d.tzinfo is not None else d.date()
    if isinstance(d, str):
        return date.fromisoformat(d)
    return d


@lru_cache(maxsize=1)
def _sessions() -> dict[date, Session]:
    """Every session of the calendar's range, read once from its session table (a lookup per day is slow)."""
    table = calendars.session_table(CALENDAR)
    out: dict[date, Session] = {}
    for ordinal, open_s, close_s in zip(table.days, table.opens, table.closes, strict=True):
        day = date.fromordinal(ordinal)
        open_, close = datetime.fromtimestamp(open_s, TZ), datetime.fromtimestamp(close_s, TZ)
        after = datetime.combine(day, AFTER_HOURS_CLOSE, TZ)
        if close.time() != REGULAR_CLOSE:
            after = close + AFTER_HOURS_AFTER_EARLY_CLOSE
        out[day] = Session(day, open_, close, datetime.combine(day, PRE_MARKET_OPEN, TZ), after)
    return out


def session(d: date | datetime | str) -> Session | None:
    """The session of ``d`` (a date, or an aware datetime read in New York); None when the market is shut."""
    day = _as_day(d)
    found = _sessions().get(day)
    if found is None:
        first, last = _bounds()
        if not first <= day <= last:
            raise ValueError(f"{day} is outside the XNYS calendar's range ({first} … {last})")
    return found


@lru_cache(maxsize=1)
def _bounds() -> tuple[date, date]:
    table = _sessions()
    return min(table), max(table)


def is_trading_day(d: date | datetime | str) -> bool:
    return session(d) is not None


def is_early_close(d: date | datetime | str) -> bool:
    s = session(d)
    return s is not None and s.early_close


def trading_days(start: date | str, end: date | str) -> list[date]:
    return calendars.trading_days(start, end, CALENDAR)


def next_trading_day(d: date | datetime | str) -> date:
    return calendars.next_trading_day(_as_day(d), CALENDAR)


def previous_trading_day(d: date | datetime | str) -> date:
    return calendars.previous_trading_day(_as_day(d), CALENDAR)


class UsSessionPhase(StrEnum):
    CLOSED = "CLOSED"
    PRE_MARKET = "PRE_MARKET"
    REGULAR = "REGULAR"
    AFTER_HOURS = "AFTER_HOURS"


def session_phase(now: datetime) -> UsSessionPhase:
    s = session(now)
    if s is None:
        return UsSessionPhase.CLOSED
    if s.open <= now < s.close:
        return UsSessionPhase.REGULAR
    if s.pre_market_open <= now < s.open:
        return UsSessionPhase.PRE_MARKET
    if s.close <= now < s.after_hours_close:
        return UsSessionPhase.AFTER_HOURS
    return UsSessionPhase.CLOSED


def accepts_orders(now: datetime, extended_hours: bool = False) -> bool:
    """Regular session only, or also pre-market and after-hours when ``extended_hours``."""
    phase = session_phase(now)
    if phase is UsSessionPhase.REGULAR:
        return True
    return extended_hours and phase in (UsSessionPhase.PRE_MARKET, UsSessionPhase.AFTER_HOURS)


def market_clock(now: datetime) -> tuple[bool, datetime, datetime]:
    """(regular session open now, next open, next close) as Alpaca's ``/v2/clock`` reports them: while the
    market is open the next open is the following session's."""
    day = _as_day(now)
    s = session(day)
    is_open = s is not None and s.open <= now < s.close
    if s is not None and now < s.close:
        next_close = s.close
    else:
        nxt = session(next_trading_day(day))
        assert nxt is not None
        next_close = nxt.close
    if s is not None and now < s.open:
        next_open = s.open
    else:
        nxt = session(next_trading_day(day))
        assert nxt is not None
        next_open = nxt.open
    return is_open, next_open, next_close


# -- order checks ------------------------------------------------------------------------------


class UsOrderError(ValueError):
    """An order the US rules refuse; ``field`` names the offending field (symbol, qty, limit_price …)."""

    def __init__(self, field: str, message: str, code: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code


@dataclass(frozen=True, slots=True)
class UsMarketRules:
    fractional: bool = False
    """Accept fractional quantities on MARKET orders."""
    extended_hours: bool = False
    """Accept orders in the pre-market and after-hours sessions."""

    currency: str = CURRENCY

    def check_symbol(self, symbol: object, known: Collection[str] | None = None) -> str:
        if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
            raise UsOrderError("symbol", f"{symbol!r} is not a US ticker (e.g. AAPL, BRK.B)", "INVALID_SYMBOL")
        if known is not None and symbol not in known:
            raise UsOrderError("symbol", f"{symbol!r} is not in the asset list of the broker", "UNKNOWN_SYMBOL")
        return symbol

    def check_qty(self, qty: object, order_type: OrderType | str = OrderType.LIMIT) -> float:
        if isinstance(qty, bool) or not isinstance(qty, (int, float)) or not math.isfinite(qty):
            raise UsOrderError("qty", f"must be a number of shares, got {qty!r}", "INVALID_QTY")
        if qty <= 0:
            raise UsOrderError("qty", f"must be > 0, got {qty!r}", "INVALID_QTY")
        if float(qty).is_integer():
            return qty
        if not self.fractional:
            raise UsOrderError("qty", f"whole shares only, got {qty!r} (fractional trading is off)", "FRACTIONAL_QTY")
        if OrderType(order_type) is not OrderType.MARKET:
            raise UsOrderError("qty", f"fractional quantity {qty!r} is allowed on MARKET orders only", "FRACTIONAL_QTY")
        if round(qty, FRACTIONAL_DECIMALS) != qty:
            raise UsOrderError("qty", f"at most {FRACTIONAL_DECIMALS} decimals, got {qty!r}", "INVALID_QTY")
        return qty

    def check_limit_price(self, price: object) -> float:
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0:
            raise UsOrderError("limit_price", f"must be a positive price, got {price!r}", "INVALID_PRICE")
        if not is_on_tick(price):
            tick = tick_size(price)
            raise UsOrderError(
                "limit_price",
                f"{price!r} is off the tick grid (tick ${tick:g} at this price; e.g. {round_to_tick(price):g})",
                "OFF_TICK",
            )
        return float(price)

    def check_session(self, now: datetime, extended_hours: bool = False) -> None:
        if extended_hours and not self.extended_hours:
            raise UsOrderError("extended_hours", "extended-hours trading is not enabled", "EXTENDED_HOURS")
        if not accepts_orders(now, self.extended_hours and extended_hours):
            phase = session_phase(now)
            raise UsOrderError(
                "time",
                f"the US market takes no orders at {now.astimezone(TZ):%Y-%m-%d %H:%M:%S} New York ({phase.value})",
                "MARKET_CLOSED",
            )

    def check_order(
        self,
        symbol: object,
        qty: object,
        order_type: OrderType | str,
        limit_price: object = None,
        *,
        known_symbols: Collection[str] | None = None,
    ) -> None:
        """Symbol, quantity and (for LIMIT) price; the first bad field raises ``UsOrderError``."""
        self.check_symbol(symbol, known_symbols)
        try:
            kind = OrderType(order_type)
        except ValueError as exc:
            raise UsOrderError("order_type", f"unknown order type {order_type!r}", "INVALID_ORDER") from exc
        self.check_qty(qty, kind)
        if kind is OrderType.LIMIT:
            self.check_limit_price(limit_price)

    def order_window(self, now: datetime) -> bool:
        return accepts_orders(now, self.extended_hours)


__all__ = [
    "CALENDAR",
    "CURRENCY",
    "TZ",
    "Session",
    "UsMarketRules",
    "UsOrderError",
    "UsSessionPhase",
    "accepts_orders",
    "down",
    "is_on_tick",
    "market_clock",
    "marketable_limit",
    "price_limits",
    "round_down",
    "round_to_tick",
    "round_up",
    "session",
    "session_phase",
    "tick_size",
    "to_units",
    "up",
]
