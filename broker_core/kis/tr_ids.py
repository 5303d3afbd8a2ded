"""TR ids of the KIS domestic-stock API, current and legacy, real and paper (specs/kis.md §4, §6).

``Tr.real``/``Tr.paper`` are the current ids; ``legacy_*`` the older ids still used by some clients.
``paper`` is None for TRs the paper host does not offer (program trading, holidays …): callers get a
typed "unavailable on paper" answer instead of a request.
"""

from __future__ import annotations

from dataclasses import dataclass


class TrUnavailable(LookupError):
    """The TR has no variant on this host (e.g. a real-only TR on the paper host)."""


@dataclass(frozen=True, slots=True)
class Tr:
    name: str
    path: str
    method: str
    real: str
    paper: str | None
    legacy_real: str | None = None
    legacy_paper: str | None = None

    def resolve(self, paper: bool, legacy: bool = False) -> str:
        if paper:
            tr = self.legacy_paper if legacy and self.legacy_paper else self.paper
            if tr is None:
                raise TrUnavailable(f"{self.name} ({self.real}) is not offered by the KIS paper host")
            return tr
        return self.legacy_real if legacy and self.legacy_real else self.real

    def ids(self, paper: bool) -> frozenset[str]:
        """Every id a server of this profile accepts for this TR (current and legacy)."""
        vals = (self.paper, self.legacy_paper) if paper else (self.real, self.legacy_real)
        return frozenset(v for v in vals if v)

    @property
    def paper_supported(self) -> bool:
        return self.paper is not None


P = "/uapi/domestic-stock/v1/"

ORDER_BUY = Tr("order_buy", P + "trading/order-cash", "POST", "TTTC0012U", "VTTC0012U", "TTTC0802U", "VTTC0802U")
ORDER_SELL = Tr("order_sell", P + "trading/order-cash", "POST", "TTTC0011U", "VTTC0011U", "TTTC0801U", "VTTC0801U")
ORDER_RVSECNCL = Tr(
    "order_rvsecncl", P + "trading/order-rvsecncl", "POST", "TTTC0013U", "VTTC0013U", "TTTC0803U", "VTTC0803U"
)
PSBL_RVSECNCL = Tr("inquire_psbl_rvsecncl", P + "trading/inquire-psbl-rvsecncl", "GET", "TTTC0084R", None, "TTTC8036R")
BALANCE = Tr("inquire_balance", P + "trading/inquire-balance", "GET", "TTTC8434R", "VTTC8434R")
DAILY_CCLD = Tr(
    "inquire_daily_ccld", P + "trading/inquire-daily-ccld", "GET", "TTTC0081R", "VTTC0081R", "TTTC8001R", "VTTC8001R"
)
DAILY_CCLD_OLD = Tr(
    "inquire_daily_ccld_3m", P + "trading/inquire-daily-ccld", "GET", "CTSC9215R", "VTSC9215R", "CTSC9115R", "VTSC9115R"
)
PSBL_ORDER = Tr("inquire_psbl_order", P + "trading/inquire-psbl-order", "GET", "TTTC8908R", "VTTC8908R")
PSBL_SELL = Tr("inquire_psbl_sell", P + "trading/inquire-psbl-sell", "GET", "TTTC8408R", None)
PRICE = Tr("inquire_price", P + "quotations/inquire-price", "GET", "FHKST01010100", "FHKST01010100")
ASKING_PRICE = Tr(
    "inquire_asking_price", P + "quotations/inquire-asking-price-exp-ccn", "GET", "FHKST01010200", "FHKST01010200"
)
CCNL = Tr("inquire_ccnl", P + "quotations/inquire-ccnl", "GET", "FHKST01010300", "FHKST01010300")
DAILY_PRICE = Tr("inquire_daily_price", P + "quotations/inquire-daily-price", "GET", "FHKST01010400", "FHKST01010400")
INVESTOR = Tr("inquire_investor", P + "quotations/inquire-investor", "GET", "FHKST01010900", "FHKST01010900")
MINUTE_BARS = Tr(
    "inquire_time_itemchartprice", P + "quotations/inquire-time-itemchartprice", "GET", "FHKST03010200", "FHKST03010200"
)
MINUTE_BARS_PAST = Tr(
    "inquire_time_dailychartprice", P + "quotations/inquire-time-dailychartprice", "GET", "FHKST03010230", None
)
DAILY_BARS = Tr(
    "inquire_daily_itemchartprice",
    P + "quotations/inquire-daily-itemchartprice",
    "GET",
    "FHKST03010100",
    "FHKST03010100",
)
PROGRAM_TRADE = Tr("program_trade_by_stock", P + "quotations/program-trade-by-stock", "GET", "FHPPG04650101", None)
PROGRAM_TRADE_DAILY = Tr(
    "program_trade_by_stock_daily", P + "quotations/program-trade-by-stock-daily", "GET", "FHPPG04650201", None
)
VI_STATUS = Tr("inquire_vi_status", P + "quotations/inquire-vi-status", "GET", "FHPST01390000", None)
HOLIDAY = Tr("chk_holiday", P + "quotations/chk-holiday", "GET", "CTCA0903R", None)

ALL: tuple[Tr, ...] = (
    ORDER_BUY,
    ORDER_SELL,
    ORDER_RVSECNCL,
    PSBL_RVSECNCL,
    BALANCE,
    DAILY_CCLD,
    DAILY_CCLD_OLD,
    PSBL_ORDER,
    PSBL_SELL,
    PRICE,
    ASKING_PRICE,
    CCNL,
    DAILY_PRICE,
    INVESTOR,
    MINUTE_BARS,
    MINUTE_BARS_PAST,
    DAILY_BARS,
    PROGRAM_TRADE,
    PROGRAM_TRADE_DAILY,
    VI_STATUS,
    HOLIDAY,
)
BY_NAME = {tr.name: tr for tr in ALL}

# WebSocket TRs (same ids on both hosts except the execution notice)
WS_TRADE = "H0STCNT0"
WS_BOOK = "H0STASP0"
WS_EXPECTED = "H0STANC0"
WS_PROGRAM = "H0STPGM0"
WS_NOTICE_REAL = "H0STCNI0"
WS_NOTICE_PAPER = "H0STCNI9"
WS_NOTICES = frozenset({WS_NOTICE_REAL, WS_NOTICE_PAPER})


def paper_variant(tr_id: str) -> str:
    """The official client's rule: a TR starting with T, J or C is sent as V… on the paper host."""
    return "V" + tr_id[1:] if tr_id[:1] in ("T", "J", "C") else tr_id


def for_path(path: str, tr_id: str, paper: bool) -> Tr | None:
    """The TR that ``tr_id`` names on ``path`` for a server of this profile (None: not accepted)."""
    for tr in ALL:
        if tr.path == path and tr_id in tr.ids(paper):
            return tr
    return None


def trs_on_path(path: str) -> list[Tr]:
    return [tr for tr in ALL if tr.path == path]
