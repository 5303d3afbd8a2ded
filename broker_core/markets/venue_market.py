"""``Market``: what the OMS asks of the market its account trades (KRX or US), in one interface.

The OMS prices orders on the market's tick grid, accepts intents only while the market takes orders,
streams only in continuous trading, rolls its day over at 00:00 of each trading day in the market's
time zone and shows times there. The rules themselves stay in ``broker_core.market_rules`` (KRX) and
``broker_core.markets.us`` (US); this module only puts them behind the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from broker_core import calendars, market_rules
from broker_core.clock import KST, NEW_YORK
from broker_core.markets import us

MARKET_CODES = ("krx", "us")


class Market:
    """The market of one broker account (see the module doc)."""

    code: str
    calendar_code: str
    tz: ZoneInfo
    currency: str
    fractional_price: bool
    """Prices carry cents (US) rather than being whole won (KRX)."""
    refuses_unknown_symbols: bool
    """An order intent on a symbol the venue does not list is bad input (US: 422 naming ``symbol``, as Alpaca's
    asset list is the authority) rather than a decision (KRX: REJECTED ``UNKNOWN_SYMBOL``, the intent contract)."""
    snaps_limit_prices: bool
    """An intent's off-grid limit price is snapped onto the grid (KRX, strategies.md B1) rather than refused
    (US: Alpaca refuses sub-penny prices, so the OMS answers 422 naming the field before anything is sent)."""

    def is_trading_day(self, d: date | datetime) -> bool:
        local = d.astimezone(self.tz).date() if isinstance(d, datetime) else d
        return _trading_day(self.calendar_code, local)

    def next_trading_day(self, d: date | datetime) -> date:
        local = d.astimezone(self.tz).date() if isinstance(d, datetime) else d
        return calendars.next_trading_day(local, self.calendar_code)

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        """The regular session's open and close of ``day`` (aware, in the market's zone)."""
        open_, close = calendars.session_open_close(day, self.calendar_code)
        return open_.astimezone(self.tz), close.astimezone(self.tz)

    def phase(self, now: datetime) -> str:
        raise NotImplementedError

    def accepts_orders(self, now: datetime) -> bool:
        raise NotImplementedError

    def continuous(self, now: datetime) -> bool:
        """Continuous trading: the hours in which the OMS streams ticks."""
        raise NotImplementedError

    def round_up(self, price: float) -> float:
        raise NotImplementedError

    def on_tick(self, price: float) -> bool:
        raise NotImplementedError

    def round_down(self, price: float) -> float:
        raise NotImplementedError

    def marketable_limit(self, ref: float, buy: bool, band_pct: float, ticks: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Market({self.code})"


@lru_cache(maxsize=4096)
def _trading_day(code: str, day: date) -> bool:
    try:
        return bool(calendars.is_trading_day(day, code))
    except Exception:  # outside the calendar's range: assume a weekday session
        return day.weekday() < 5


@dataclass(frozen=True, repr=False)
class KrxMarket(Market):
    code: str = "krx"
    calendar_code: str = calendars.KRX
    tz: ZoneInfo = KST
    currency: str = "KRW"
    fractional_price: bool = False
    refuses_unknown_symbols: bool = False
    snaps_limit_prices: bool = True

    def phase(self, now: datetime) -> str:
        return market_rules.session_phase(now, self.is_trading_day(now)).value

    def accepts_orders(self, now: datetime) -> bool:
        return self.phase(now) in ("PRE_OPEN_AUCTION", "CONTINUOUS", "CLOSING_AUCTION")

    def continuous(self, now: datetime) -> bool:
        return self.phase(now) == "CONTINUOUS"

    def round_up(self, price: float) -> float:
        return float(market_rules.round_up(price))

    def on_tick(self, price: float) -> bool:
        return market_rules.is_on_tick(price)

    def round_down(self, price: float) -> float:
        return float(market_rules.round_down(price))

    def marketable_limit(self, ref: float, buy: bool, band_pct: float, ticks: int) -> float:
        return float(market_rules.marketable_limit(ref, buy, band_pct, ticks=ticks))


@dataclass(frozen=True, repr=False)
class UsMarket(Market):
    code: str = "us"
    calendar_code: str = calendars.NYSE
    tz: ZoneInfo = NEW_YORK
    currency: str = "USD"
    fractional_price: bool = True
    refuses_unknown_symbols: bool = True
    snaps_limit_prices: bool = False
    extended_hours: bool = False
    """Accept orders in the pre-market and after-hours sessions (refused by default)."""

    def is_trading_day(self, d: date | datetime) -> bool:
        try:
            return us.is_trading_day(d)
        except ValueError:
            return super().is_trading_day(d)

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        s = us.session(day)
        if s is None:
            return super().open_close(day)
        return s.open, s.close

    def phase(self, now: datetime) -> str:
        try:
            return us.session_phase(now).value
        except ValueError:
            return us.UsSessionPhase.CLOSED.value

    def accepts_orders(self, now: datetime) -> bool:
        phase = self.phase(now)
        return phase == "REGULAR" or (self.extended_hours and phase in ("PRE_MARKET", "AFTER_HOURS"))

    def continuous(self, now: datetime) -> bool:
        return self.phase(now) == "REGULAR"

    def round_up(self, price: float) -> float:
        return us.round_up(price)

    def on_tick(self, price: float) -> bool:
        return us.is_on_tick(price)

    def round_down(self, price: float) -> float:
        return us.round_down(price)

    def marketable_limit(self, ref: float, buy: bool, band_pct: float, ticks: int) -> float:
        return us.marketable_limit(ref, buy, band_pct, ticks=ticks)


KRX_MARKET: Market = KrxMarket()
US_MARKET: Market = UsMarket()


def market_for(code: str, *, extended_hours: bool = False) -> Market:
    """The market named by ``code`` (``krx`` or ``us``); ValueError naming the choices otherwise."""
    key = code.strip().lower()
    if key == "krx":
        return KRX_MARKET
    if key == "us":
        return UsMarket(extended_hours=extended_hours) if extended_hours else US_MARKET
    raise ValueError(f"unknown market {code!r} (one of {', '.join(MARKET_CODES)})")


@lru_cache(maxsize=1024)
def session_close_time(market: Market, day: date) -> time:
    """Local close time of ``day`` (15:30 on KRX; 16:00, or 13:00 after an early close, in New York)."""
    if not market.is_trading_day(day):
        return market.open_close(market.next_trading_day(day))[1].time()
    return market.open_close(day)[1].time()
