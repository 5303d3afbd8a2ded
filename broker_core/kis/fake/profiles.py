"""Profiles of the fake KIS server: credentials, account and HTS id, rate and page sizes, token timing.
``paper`` and ``real`` are the two hosts the fake imitates (``profile`` builds one with overrides)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from broker_core.kis import tr_ids as T


@dataclass
class FakeProfile:
    name: str
    app_key: str
    app_secret: str
    account_no: str = "50000000"
    prod_code: str = "01"
    hts_id: str = "fakeuser"
    account_name: str = "홍길동"
    rate_per_sec: float = 2.0
    balance_page: int = 20
    ccld_page: int = 15
    psbl_rvsecncl_page: int = 50
    holiday_page: int = 20
    minute_page: int = 30
    daily_chart_page: int = 100
    daily_price_rows: int = 30
    investor_rows: int = 30
    token_validity_s: float = 86400.0
    token_same_within_s: float = 6 * 3600.0
    token_interval_s: float = 60.0
    max_registrations: int = 41
    pingpong_interval_s: float | None = None
    """Wall-clock seconds between PINGPONG messages (None: only when ``send_pingpong`` is called)."""
    branch: str = "06590"

    @property
    def paper(self) -> bool:
        return self.name == "paper"

    @property
    def notice_tr_id(self) -> str:
        return T.WS_NOTICE_PAPER if self.paper else T.WS_NOTICE_REAL


def profile(name: str = "paper", **overrides: Any) -> FakeProfile:
    """The default profile ``paper`` (2/s, balance 20/page, daily orders 15/page) or ``real``
    (20/s, 50/page, 100/page), with overrides."""
    if name == "paper":
        base = FakeProfile("paper", "PSpaperAppKey0000000000000000000000", "paper-secret-" + "x" * 167)
    elif name == "real":
        base = FakeProfile(
            "real",
            "PSrealAppKey00000000000000000000000",
            "real-secret-" + "y" * 168,
            account_no="60000000",
            rate_per_sec=20.0,
            balance_page=50,
            ccld_page=100,
        )
    else:
        raise ValueError(f"unknown fake KIS profile {name!r} (use paper or real)")
    return replace(base, **overrides)


__all__ = ["FakeProfile", "profile"]
