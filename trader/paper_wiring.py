"""The embedded default broker: the paper exchange replaying a KRX session on the OMS's clock."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from broker_core.clock import Clock, Windows
from broker_core.config_errors import ConfigError
from broker_core.paper.broker import PaperBroker
from broker_core.paper.data import DataNotFound, KrxData
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.index import INDEX_CODES, DerivedIndex
from broker_core.paper.matching import MatchingEngine
from broker_core.paper.persistence import PaperStateStore
from broker_core.paper.replay import ReplayFeed
from broker_core.paper.synthetic import SyntheticFeed
from oms.settings import OmsConfig, OmsSettings
from oms.venue import Venue

log = logging.getLogger("trader.paper")
PAPER_ACCOUNT_FILE = "paper_account.db"


def open_data(data_dir: str | None) -> KrxData | None:
    """The KRX data directory, or None (with a notice: the feed will be synthetic) when there is none."""
    try:
        return KrxData(data_dir)
    except DataNotFound as exc:
        log.warning("no KRX data (%s); using the synthetic feed", exc)
        return None


def choose_feed(day: date, symbols: list[str] | None, data: KrxData | None) -> Any:
    """A replay of ``day`` from the KRX data, or a synthetic session when there is no data."""
    return SyntheticFeed(day, symbols) if data is None else feed_for(data, day, symbols)


def feed_for(data: KrxData, day: date, symbols: list[str] | None) -> Any:
    if day not in set(data.sessions()):
        log.warning("no KRX minute data for %s in %s; using the synthetic feed", day, data.data_dir)
        return SyntheticFeed(day, symbols, base_prices=_closes(data, day, symbols))
    try:
        return ReplayFeed(data, day, symbols)
    except DataNotFound as exc:
        raise ConfigError(f"config/oms.yaml: paper.symbols: {exc}") from exc


def _closes(data: KrxData, day: date, symbols: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for sym in symbols or []:
        close = data.prev_close(sym, day)
        if close:
            out[sym] = close
    return out


def build_paper_broker(
    settings: OmsSettings, config: OmsConfig, clock: Clock, data: KrxData | None = None
) -> tuple[PaperBroker, PaperExchange, list[str], dict[str, str]]:
    """The paper exchange and its broker on ``data`` (default: opened from ``settings.trader_data_dir``)."""
    day = date.fromisoformat(settings.oms_paper_date) if settings.oms_paper_date else clock.now().date()
    if data is None:
        data = open_data(settings.trader_data_dir)
    feed = choose_feed(day, config.paper.symbols or None, data)
    engine = MatchingEngine(
        cash=config.paper.cash, participation=config.paper.participation, session_date=feed.session_date
    )
    store = None
    if config.paper.persist and settings.oms_data_dir:
        store = PaperStateStore(Path(settings.oms_data_dir) / PAPER_ACCOUNT_FILE)
    later = later_days(clock, feed.session_date)
    if later:
        log.info("multi-day replay: %s, then %d more session(s) to %s", feed.session_date, len(later), later[-1])
    feeds = (
        (feed_for(data, d, config.paper.symbols or None) for d in later)
        if data is not None
        else (SyntheticFeed(d, config.paper.symbols or None) for d in later)
    )
    exchange = PaperExchange(feed, clock, engine, state_store=store, later_sessions=feeds)
    if store is not None:
        log.info(
            "paper account %s: %s", store.path, "restored" if exchange.restored else f"new session {feed.session_date}"
        )
    daily = (lambda sym, start, end: data.daily_bars(sym, start, end)) if data is not None else None
    minutes = data.minute_bars if data is not None else None
    index = _derived_index(data, feed.session_date) if data is not None else None
    broker = PaperBroker(
        exchange,
        subscription_capacity=config.paper.subscription_capacity,
        daily_source=daily,
        minute_source=minutes,
        index_source=index,
    )
    sectors = data.sector_map() if data is not None else {}
    return broker, exchange, list(feed.symbols), sectors


def _derived_index(data: KrxData, first: date) -> DerivedIndex:
    """KOSPI/KOSDAQ derived from the minute data (``broker_core.paper.index``), the first session built
    now (later sessions of a multi-day run on their first request)."""
    index = DerivedIndex(data)
    for code in INDEX_CODES:
        index.path(code, first)
    return index


def later_days(clock: Clock, first: date) -> list[date]:
    """The trading days after ``first`` of a multi-day clock (``days=`` in TRADER_CLOCK, or a backtest's
    driven clock over several sessions), else none."""
    windows = getattr(clock, "windows", None)
    if not isinstance(windows, Windows):
        return []
    return [d for d in windows.days() if d > first]


def build_paper_venue(settings: OmsSettings, config: OmsConfig, clock: Clock) -> Venue:
    """The embedded default: the paper exchange in the OMS process, with the KRX data as reference data."""
    reference = open_data(settings.trader_data_dir)
    broker, exchange, symbols, sectors = build_paper_broker(settings, config, clock, reference)
    return Venue(broker=broker, exchange=exchange, known_symbols=set(symbols), sector_of=sectors, reference=reference)
