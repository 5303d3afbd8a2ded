"""Picks and builds the OMS's broker (``OMS_BROKER``): the paper exchange, KIS or Alpaca."""

from __future__ import annotations

from broker_core.clock import Clock
from broker_core.config_errors import ConfigError
from oms.settings import OmsConfig, OmsSettings
from oms.venue import Venue

VENUE_KINDS = ("paper", "kis", "alpaca")
"""The ``OMS_BROKER`` values this build's OMS can own (the paper exchange trades KRX or, with ``OMS_MARKET=us``,
the US data's sessions; KIS is KRX, Alpaca US)."""


def build_venue(settings: OmsSettings, config: OmsConfig, clock: Clock) -> Venue:
    kind = settings.oms_broker
    market = settings.market_code()
    if kind == "paper" and market == "us":
        from trader.us_wiring import build_us_paper_venue

        return build_us_paper_venue(settings, config, clock)
    if kind == "paper":
        from trader.paper_wiring import build_paper_venue

        return build_paper_venue(settings, config, clock)
    if kind == "alpaca":
        from trader.us_wiring import build_alpaca_venue

        return build_alpaca_venue(settings, config, clock)
    if kind == "kis":
        from trader.kis_wiring import build_kis_broker

        return Venue(broker=build_kis_broker(settings, config, clock))
    raise ConfigError(
        f"OMS_BROKER={kind}: the OMS cannot own an account of this broker in this build yet (use one of {VENUE_KINDS})"
    )
