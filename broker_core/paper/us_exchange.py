"""The paper exchange on a US session: the one matching engine with the US rules, fed by ``UsDailyFeed``.

``UsMatchingEngine`` is the KRX ``MatchingEngine`` (same order types, same matching against the tape,
same reservations and fills) with the US pricing rules put in where the KRX ones were: the $0.01 /
$0.0001 tick grid, no daily price limits, a one-cent synthetic book, marketable limits on the US grid,
orders taken in the regular session only (pre-market and after-hours too when the rules enable
extended hours), USD, no volatility interruptions, and no fees (Alpaca paper charges none). Quantities
stay whole shares: the paper engine does not fill fractional orders.

``UsPaperExchange`` is the ``PaperExchange`` with its day ending at the New York close of the feed's
session (16:00, or the early close) instead of 15:30 KST.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime

from broker_core.clock import Clock
from broker_core.errors import BrokerError, OrderRejected
from broker_core.markets import us
from broker_core.markets.us import UsMarketRules
from broker_core.models import OrderRequest, OrderType, OrderUpdate, Quote, Side
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import TickFeed
from broker_core.paper.fees import FeeSchedule
from broker_core.paper.matching import (
    DEFAULT_PARTICIPATION,
    MARKET_RESERVE_PCT,
    Instrument,
    MatchingEngine,
    RejectCode,
)
from broker_core.paper.persistence import PaperStateStore
from broker_core.paper.us_daily import DEFAULT_SEED, UsDailyFeed
from broker_core.paper.us_data import UsData

DEFAULT_US_CASH = 100_000.0
"""An Alpaca paper account starts with $100,000."""
US_FEES = FeeSchedule(commission_rate=0.0, sell_tax_rate=0.0, truncate_to_won=False)


class _RulesWindow:
    """Default of ``order_window``: the sessions of the engine's rules."""


RULES_WINDOW = _RulesWindow()


class UsMatchingEngine(MatchingEngine):
    def __init__(
        self,
        *,
        rules: UsMarketRules | None = None,
        cash: float = DEFAULT_US_CASH,
        fees: FeeSchedule | None = None,
        participation: float = DEFAULT_PARTICIPATION,
        order_window: Callable[[datetime], bool] | None | _RulesWindow = RULES_WINDOW,
        id_prefix: str = "US",
        session_date: date | None = None,
    ) -> None:
        """``order_window(now)`` says whether orders are accepted (default: the rules' sessions; None: always)."""
        super().__init__(
            cash=cash,
            fees=fees or US_FEES,
            participation=participation,
            order_window=None,
            simulate_vi=False,
            currency=us.CURRENCY,
            id_prefix=id_prefix,
            session_date=session_date,
        )
        self.rules = rules or UsMarketRules()
        self._us_window: Callable[[datetime], bool] | None = (
            self.rules.order_window if isinstance(order_window, _RulesWindow) else order_window
        )

    def quote(self, symbol: str, now: datetime) -> Quote:
        inst = self._instruments.get(symbol)
        if inst is None:
            raise BrokerError(f"unknown symbol {symbol!r}", code=RejectCode.UNKNOWN_SYMBOL)
        last = self._last.get(symbol, inst.base_price)
        if last is None:
            raise BrokerError(f"no price yet for {symbol}", code=RejectCode.NO_REFERENCE_PRICE)
        bid, ask = one_tick_market(last)
        return Quote(
            symbol=symbol,
            ts=now,
            last=last,
            bid=bid,
            ask=ask,
            prev_close=inst.prev_close,
            volume=self._volume.get(symbol, 0),
        )

    def _check(self, req: OrderRequest, now: datetime) -> tuple[float | None, float]:
        """The KRX checks in the KRX order (closed day, qty, symbol, price, session, cash/shares), with the
        US session and the US prices."""
        closed_now = self._us_window is not None and not self._closed and not self._us_window(now)
        try:
            checked = super()._check(req, now)
        except OrderRejected as exc:
            if closed_now and exc.code in (RejectCode.INSUFFICIENT_CASH, RejectCode.INSUFFICIENT_SHARES):
                raise self._market_closed(now) from None
            raise
        if closed_now:
            raise self._market_closed(now)
        return checked

    @staticmethod
    def _market_closed(now: datetime) -> OrderRejected:
        phase = us.session_phase(now)
        return OrderRejected(
            f"market closed at {now.astimezone(us.TZ):%Y-%m-%d %H:%M:%S} New York ({phase.value})",
            code=RejectCode.MARKET_CLOSED,
        )

    def _limit_price(self, req: OrderRequest, inst: Instrument) -> float | None:
        if req.order_type is OrderType.MARKET:
            return None
        if req.order_type is OrderType.MARKETABLE_LIMIT:
            ref = self._last.get(inst.symbol, inst.base_price)
            if ref is None:
                raise OrderRejected(f"no reference price for {inst.symbol} yet", code=RejectCode.NO_REFERENCE_PRICE)
            if req.band_bps is not None and req.band_bps < 0:
                raise OrderRejected(f"band_bps must be >= 0, got {req.band_bps}", code=RejectCode.INVALID_PRICE)
            band = req.band_bps / 10_000 if req.band_bps is not None else None
            return us.marketable_limit(ref, req.side is Side.BUY, band)
        price = req.limit_price
        if price is None or isinstance(price, bool) or not isinstance(price, (int, float)) or not price > 0:
            raise OrderRejected(
                f"a LIMIT order needs a positive limit_price, got {price!r}", code=RejectCode.INVALID_PRICE
            )
        if not us.is_on_tick(price):
            raise OrderRejected(
                f"limit {price!r} is off the tick grid (tick ${us.tick_size(price):g} at this price)",
                code=RejectCode.OFF_TICK,
            )
        return float(price)

    def _market_reserve_price(self, inst: Instrument) -> float:
        last = self._last.get(inst.symbol, inst.base_price)
        if last is None:
            raise OrderRejected(f"no reference price for {inst.symbol} yet", code=RejectCode.NO_REFERENCE_PRICE)
        return last * (1 + MARKET_RESERVE_PCT)


def one_tick_market(last: float) -> tuple[float, float]:
    """A one-tick-wide synthetic book: the last print is the bid when it is on the grid, else the book brackets it."""
    if us.is_on_tick(last):
        return float(last), us.up(last)
    return us.round_down(last), us.round_up(last)


def _close_of(feed: TickFeed) -> datetime:
    close = getattr(feed, "close_at", None)
    if isinstance(close, datetime):
        return close
    sess = us.session(feed.session_date)
    if sess is None:
        raise ValueError(f"{feed.session_date} is not an XNYS trading day")
    return sess.close


class UsPaperExchange(PaperExchange):
    """``PaperExchange`` whose trading day ends at the New York close of each session (early closes included).

    The derived tape's last print falls a few seconds before the close; working orders stay working until
    the close itself (the replay waits for it on the clock), then expire."""

    def __init__(
        self,
        feed: TickFeed,
        clock: Clock,
        engine: MatchingEngine | None = None,
        *,
        pace: bool = True,
        tick_queue_size: int = 10_000,
        state_store: PaperStateStore | None = None,
        later_sessions: Iterable[TickFeed] = (),
    ) -> None:
        super().__init__(
            feed,
            clock,
            engine if engine is not None else UsMatchingEngine(session_date=feed.session_date),
            pace=pace,
            tick_queue_size=tick_queue_size,
            state_store=state_store,
            later_sessions=later_sessions,
        )
        self.close_at = _close_of(feed)
        self._hold_close = False

    def _open(self, feed: TickFeed) -> None:
        super()._open(feed)
        self.close_at = _close_of(feed)

    async def _run_session(self) -> None:
        self._hold_close = True
        try:
            await super()._run_session()
        finally:
            self._hold_close = False
        if not self.engine.closed:
            await self._advance(self.close_at)
            self.expire_day(self.close_at if not self.pace else max(self.clock.now(), self.close_at))

    def expire_day(self, now: datetime | None = None) -> list[OrderUpdate]:
        when = now or self.clock.now()
        if self._hold_close and when < self.close_at:
            return []
        return super().expire_day(when)


def us_paper_exchange(
    day: date,
    clock: Clock,
    *,
    data: UsData | None = None,
    symbols: list[str] | None = None,
    seed: int = DEFAULT_SEED,
    rules: UsMarketRules | None = None,
    cash: float = DEFAULT_US_CASH,
    pace: bool = True,
    later_days: Iterable[date] = (),
) -> UsPaperExchange:
    """A US paper exchange replaying the derived session of ``day`` (and then ``later_days``) from the US data."""
    data = data or UsData()
    feed = UsDailyFeed(data, day, symbols, seed=seed)
    later = (UsDailyFeed(data, d, symbols, seed=seed) for d in later_days)
    engine = UsMatchingEngine(rules=rules, cash=cash, session_date=day)
    return UsPaperExchange(feed, clock, engine, pace=pace, later_sessions=later)


__all__ = [
    "DEFAULT_US_CASH",
    "US_FEES",
    "UsMatchingEngine",
    "UsPaperExchange",
    "one_tick_market",
    "us_paper_exchange",
]
