"""What every part of the fake KIS shares: the profile, the paper exchange with its engine and clock,
symbol names and markets, the trading day by the fake's clock and the account-number check."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from broker_core.clock import KST, Clock
from broker_core.kis.fake.profiles import FakeProfile
from broker_core.paper.exchange import PaperExchange


class Venue:
    def __init__(
        self,
        prof: FakeProfile,
        exchange: PaperExchange,
        *,
        names: Mapping[str, str] | None = None,
        markets: Mapping[str, str] | None = None,
    ) -> None:
        self.profile = prof
        self.exchange = exchange
        self.engine = exchange.engine
        self.clock: Clock = exchange.clock
        self.names: dict[str, str] = dict(names or {})
        self.markets: dict[str, str] = dict(markets or {})

    def name(self, symbol: str) -> str:
        return self.names.get(symbol, f"FAKE{symbol}")

    def market(self, symbol: str) -> str:
        return self.markets.get(symbol, "KOSPI")

    def day(self) -> date:
        return self.clock.now().astimezone(KST).date()

    def account_ok(self, data: Mapping[str, Any]) -> bool:
        return (
            str(data.get("CANO", "")) == self.profile.account_no
            and str(data.get("ACNT_PRDT_CD", "")) == self.profile.prod_code
        )


__all__ = ["Venue"]
