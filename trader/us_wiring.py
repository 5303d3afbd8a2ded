"""The OMS's US venues: the paper exchange replaying the US data's derived sessions, and an Alpaca account.

``OMS_BROKER=paper OMS_MARKET=us``: the US paper exchange in the OMS process (one matching engine with the
KRX one; the session of ``OMS_PAPER_DATE``, else the clock's New York date, replayed from the daily bars
of that day — or of the latest data day before it, the data ending 2024-12-31).
``OMS_BROKER=alpaca``: ``broker_core.alpaca.AlpacaBroker`` on the settings of ``ALPACA_*`` (paper or live
by ``ALPACA_PAPER``; keys only from the environment), for a real account or ``trader fake-alpaca``.
"""

from __future__ import annotations

import bisect
import logging
from datetime import date
from pathlib import Path

from broker_core.clock import NEW_YORK, Clock
from broker_core.config_errors import ConfigError
from broker_core.markets import us
from broker_core.markets.venue_market import US_MARKET, market_for
from broker_core.paper.broker import PaperBroker
from broker_core.paper.persistence import PaperStateStore
from broker_core.paper.us_daily import DEFAULT_SEED, UsDailyFeed
from broker_core.paper.us_data import UsData, UsDataNotFound
from broker_core.paper.us_exchange import UsMatchingEngine, UsPaperExchange
from oms.settings import OmsConfig, OmsSettings
from oms.venue import Venue
from trader.paper_wiring import PAPER_ACCOUNT_FILE, later_days

log = logging.getLogger("trader.us")


def data_day_for(sessions: list[date], day: date) -> date:
    """``day`` when the data has it, else the latest data day before it (else the first one)."""
    i = bisect.bisect_right(sessions, day)
    return sessions[i - 1] if i > 0 else sessions[0]


def first_session(settings: OmsSettings, clock: Clock) -> date:
    """``OMS_PAPER_DATE``, else the clock's New York session: today's while it is not over, else the next."""
    if settings.oms_paper_date:
        day = date.fromisoformat(settings.oms_paper_date)
        if not us.is_trading_day(day):
            raise ConfigError(f"OMS_PAPER_DATE={day}: not an XNYS trading day")
        return day
    now = clock.now().astimezone(NEW_YORK)
    today = us.session(now)
    if today is not None and now < today.close:
        return today.day
    return us.next_trading_day(now.date())


def build_us_paper_venue(settings: OmsSettings, config: OmsConfig, clock: Clock) -> Venue:
    data = _us_data()
    sessions = data.sessions()
    day = first_session(settings, clock)
    days = [day, *later_days(clock, day)]
    symbols = [s for s in config.paper.symbols if s in set(data.symbols())] or None
    feeds = [UsDailyFeed(data, data_day_for(sessions, d), symbols, seed=DEFAULT_SEED, session_day=d) for d in days]
    if feeds[0].data_day != day:
        log.info("US paper session %s replays the data's bars of %s (the data ends earlier)", day, feeds[0].data_day)
    store = None
    if config.paper.persist and settings.oms_data_dir:
        store = PaperStateStore(Path(settings.oms_data_dir) / PAPER_ACCOUNT_FILE)
    engine = UsMatchingEngine(cash=config.paper.cash_usd, session_date=day)
    exchange = UsPaperExchange(feeds[0], clock, engine, state_store=store, later_sessions=feeds[1:])
    broker = PaperBroker(
        exchange,
        subscription_capacity=config.paper.subscription_capacity,
        daily_source=data.daily_bars,
    )
    return Venue(
        broker=broker,
        exchange=exchange,
        known_symbols=set(feeds[0].symbols),
        sector_of=data.sector_map(),
        market=US_MARKET,
    )


def _us_data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        raise ConfigError(f"TRADER_US_DATA_DIR: {exc}") from exc


def build_alpaca_venue(settings: OmsSettings, config: OmsConfig, clock: Clock) -> Venue:
    from broker_core.alpaca.adapter import AlpacaBroker
    from broker_core.alpaca.settings import AlpacaConfigError, AlpacaSettings

    try:
        alpaca = AlpacaSettings.from_env()
    except AlpacaConfigError as exc:
        raise ConfigError(str(exc)) from exc
    broker = AlpacaBroker(alpaca, clock=clock)
    log.info("Alpaca %s account at %s", "paper" if alpaca.paper else "LIVE", alpaca.base_url or "Alpaca's host")
    return Venue(broker=broker, market=market_for("us", extended_hours=alpaca.extended_hours))
