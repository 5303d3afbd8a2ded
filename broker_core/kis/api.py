"""Typed KIS REST calls used by the platform (specs/kis.md §4).

Each method builds the documented request (TR id of the host's profile, upper-case params/body,
string values), pages where the endpoint pages, and parses the reply into small dataclasses with
numbers converted from the KIS strings. TRs the paper host does not offer are served by an optional
real-host client (real credentials, market data only — never orders); without one they return an
``Unavailable`` value instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST
from broker_core.errors import AuthError, BrokerError, BrokerUnavailable, OrderRejected, OutcomeUnknown, RateLimited
from broker_core.kis import tr_ids as T
from broker_core.kis.envelope import KisApiError, KisResponse, error_for, integer, num, text
from broker_core.kis.rest import KisRestClient
from broker_core.logging_setup import register_secret
from broker_core.models import Bar, Side
from broker_core.ratelimit import Priority

MINUTE_PAGE = 30
DAILY_CHART_PAGE = 100


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A call the connected host does not offer (e.g. program trading on the paper host)."""

    what: str
    tr_id: str
    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class OrderReply:
    odno: str
    branch: str
    ord_tmd: str
    msg_cd: str = ""
    msg1: str = ""


@dataclass(frozen=True, slots=True)
class Holding:
    symbol: str
    name: str
    qty: int
    sellable_qty: int
    avg_price: float
    last: float
    eval_amount: float
    pnl: float
    pnl_pct: float
    bought_today: int = 0
    sold_today: int = 0


@dataclass(frozen=True, slots=True)
class BalanceSummary:
    deposit: float
    """``dnca_tot_amt``: cash deposit (before settlement of today's trades)."""
    deposit_d1: float
    deposit_d2: float
    """``prvs_rcdl_excc_amt``: the deposit after settling every trade so far (D+2)."""
    securities_eval: float
    total_eval: float
    net_asset: float
    purchase_total: float
    eval_pnl_total: float
    buy_today: float
    sell_today: float
    fees_today: float


@dataclass(slots=True)
class Balance:
    holdings: list[Holding]
    summary: BalanceSummary
    pages: int = 1


@dataclass(frozen=True, slots=True)
class DailyOrder:
    """One row of inquire-daily-ccld (an order, modify or cancel order, with its fill totals)."""

    ord_dt: str
    branch: str
    odno: str
    orig_odno: str
    side: Side
    symbol: str
    name: str
    ord_dvsn_cd: str
    qty: int
    price: float
    ord_tmd: str
    filled_qty: int
    avg_price: float
    filled_amount: float
    cancel_yn: bool
    cancel_confirmed_qty: int
    remaining_qty: int
    rejected_qty: int
    kind_name: str = ""

    @property
    def is_cancel_order(self) -> bool:
        """A row for a cancel order (points at its original with ``orig_odno``)."""
        return bool(self.orig_odno.strip("0")) and self.cancel_yn and self.filled_qty == 0 and self.remaining_qty == 0

    def time(self, day: date | None = None) -> datetime:
        d = day or _date(self.ord_dt) or datetime.now(KST).date()
        h = (self.ord_tmd or "000000").zfill(6)
        return datetime(d.year, d.month, d.day, int(h[:2]), int(h[2:4]), int(h[4:6]), tzinfo=KST)


@dataclass(frozen=True, slots=True)
class Buyable:
    cash: float
    """``ord_psbl_cash``"""
    no_credit_amount: float
    """``nrcvb_buy_amt``: buyable without credit (the official recommendation)."""
    no_credit_qty: int
    max_amount: float
    max_qty: int


@dataclass(frozen=True, slots=True)
class PriceInfo:
    symbol: str
    last: float
    change: float
    change_sign: str
    change_pct: float
    open: float
    high: float
    low: float
    base: float
    """``stck_sdpr``: the day's base price (≈ previous close)."""
    upper_limit: float
    lower_limit: float
    volume: int
    value: float
    vwap: float
    tick: int
    market_name: str
    """``rprs_mrkt_kor_name`` (KOSPI200, KOSDAQ, ETF …): the universe filter reads it."""
    sector: str
    halted: bool
    vi_cls_code: str
    warn_code: str
    status_code: str
    market_cap_eok: float
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OrderBook:
    symbol: str
    ts: str
    asks: tuple[float, ...]
    bids: tuple[float, ...]
    ask_sizes: tuple[int, ...]
    bid_sizes: tuple[int, ...]
    total_ask_size: int
    total_bid_size: int
    expected_price: float
    """``output2.antc_cnpr``: the expected match price during an auction (0 outside one)."""
    expected_volume: int
    expected_change_pct: float
    expected_market_code: str
    last: float
    base: float
    vi_cls_code: str


@dataclass(frozen=True, slots=True)
class InvestorFlow:
    day: date
    close: float
    individual_net_qty: int
    foreign_net_qty: int
    institution_net_qty: int
    individual_net_value: float
    foreign_net_value: float
    institution_net_value: float


@dataclass(frozen=True, slots=True)
class ProgramTradeRow:
    time: str
    price: float
    volume: int
    sell_qty: int
    buy_qty: int
    net_qty: int
    sell_value: float
    buy_value: float
    net_value: float


@dataclass(frozen=True, slots=True)
class HolidayRow:
    day: date
    weekday: str
    business_day: bool
    trading_day: bool
    opening_day: bool
    """``opnd_yn``: the day orders are allowed."""
    settlement_day: bool


def _date(value: str) -> date | None:
    v = (value or "").strip()
    if len(v) == 8 and v.isdigit():
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    return None


def _yn(row: dict[str, Any], key: str) -> bool:
    return text(row, key).upper() == "Y"


class KisApi:
    def __init__(
        self,
        rest: KisRestClient,
        *,
        cano: str,
        prod: str,
        paper: bool,
        real_rest: KisRestClient | None = None,
        exchange_code: str = "KRX",
        legacy: bool = False,
        market_code: str = "J",
    ) -> None:
        self.rest = rest
        self.real_rest = real_rest
        self.cano = cano
        register_secret(cano)
        self.prod = prod
        self.paper = paper
        self.exchange_code = exchange_code
        self.legacy = legacy
        self.market_code = market_code

    def tr(self, tr: T.Tr) -> str:
        return tr.resolve(self.paper, self.legacy)

    def _account(self) -> dict[str, str]:
        return {"CANO": self.cano, "ACNT_PRDT_CD": self.prod}

    def _real_only(self, tr: T.Tr) -> tuple[KisRestClient, str] | Unavailable:
        """The client and TR id for a TR the paper host may lack."""
        if not self.paper:
            return self.rest, tr.real
        if tr.paper is not None:
            return self.rest, tr.resolve(True, self.legacy)
        if self.real_rest is not None:
            return self.real_rest, tr.real
        return Unavailable(
            tr.name,
            tr.real,
            "not offered by the KIS paper host; set KIS_APP_KEY/KIS_APP_SECRET "
            "(real credentials) to read it from the real host",
        )

    # -- orders ------------------------------------------------------------------------------

    async def order_cash(
        self, side: Side, symbol: str, qty: int, *, ord_dvsn: str = "00", price: float = 0, sll_type: str = "01"
    ) -> OrderReply:
        """POST order-cash. Raises OrderRejected (msg_cd as code), RateLimited, AuthError,
        BrokerUnavailable (not sent) or OutcomeUnknown (sent; no reliable answer)."""
        tr = T.ORDER_BUY if side is Side.BUY else T.ORDER_SELL
        body = {
            **self._account(),
            "PDNO": symbol,
            "ORD_DVSN": ord_dvsn,
            "ORD_QTY": str(int(qty)),
            "ORD_UNPR": str(int(price)) if ord_dvsn != "01" else "0",
            "EXCG_ID_DVSN_CD": self.exchange_code,
            "CNDT_PRIC": "",
        }
        if side is Side.SELL:
            body["SLL_TYPE"] = sll_type
        resp = await self.rest.request(
            "POST", tr.path, self.tr(tr), body=body, priority=Priority.ORDER, ambiguous_after_send=True
        )
        return self._order_reply(resp)

    async def modify_cancel(
        self,
        branch: str,
        orig_odno: str,
        *,
        cancel: bool,
        qty: int = 0,
        all_qty: bool = True,
        price: float = 0,
        ord_dvsn: str = "00",
    ) -> OrderReply:
        body = {
            **self._account(),
            "KRX_FWDG_ORD_ORGNO": branch,
            "ORGN_ODNO": orig_odno,
            "ORD_DVSN": ord_dvsn,
            "RVSE_CNCL_DVSN_CD": "02" if cancel else "01",
            "ORD_QTY": str(int(qty)),
            "ORD_UNPR": "0" if cancel else str(int(price)),
            "QTY_ALL_ORD_YN": "Y" if all_qty else "N",
            "EXCG_ID_DVSN_CD": self.exchange_code,
            "CNDT_PRIC": "",
        }
        resp = await self.rest.request(
            "POST",
            T.ORDER_RVSECNCL.path,
            self.tr(T.ORDER_RVSECNCL),
            body=body,
            priority=Priority.ORDER,
            ambiguous_after_send=True,
        )
        return self._order_reply(resp)

    def _order_reply(self, resp: KisResponse) -> OrderReply:
        if not resp.ok:
            err = error_for(resp)
            if isinstance(err, (RateLimited, AuthError, BrokerUnavailable, OutcomeUnknown)):
                raise err
            raise OrderRejected(f"KIS refused the order: {resp.describe()}", code=resp.msg_cd or "KIS_REJECTED")
        out = resp.obj("output")
        low = {k.lower(): v for k, v in out.items()}
        odno = str(low.get("odno") or "").strip()
        if not odno:
            raise OutcomeUnknown(f"KIS accepted the order but returned no ODNO ({resp.describe()})", client_order_id="")
        return OrderReply(
            odno=odno,
            branch=str(low.get("krx_fwdg_ord_orgno") or "").strip(),
            ord_tmd=str(low.get("ord_tmd") or "").strip(),
            msg_cd=resp.msg_cd,
            msg1=resp.msg1,
        )

    # -- account -----------------------------------------------------------------------------

    async def balance(self) -> Balance:
        params = {
            **self._account(),
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "02",
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
        }
        pages = await self.rest.paged(T.BALANCE.path, self.tr(T.BALANCE), params)
        holdings: list[Holding] = []
        for page in pages:
            for r in page.rows("output1"):
                holdings.append(
                    Holding(
                        symbol=text(r, "pdno"),
                        name=text(r, "prdt_name"),
                        qty=integer(r, "hldg_qty"),
                        sellable_qty=integer(r, "ord_psbl_qty"),
                        avg_price=num(r, "pchs_avg_pric"),
                        last=num(r, "prpr"),
                        eval_amount=num(r, "evlu_amt"),
                        pnl=num(r, "evlu_pfls_amt"),
                        pnl_pct=num(r, "evlu_pfls_rt"),
                        bought_today=integer(r, "thdt_buyqty"),
                        sold_today=integer(r, "thdt_sll_qty"),
                    )
                )
        s = pages[-1].obj("output2") if pages else {}
        summary = BalanceSummary(
            deposit=num(s, "dnca_tot_amt"),
            deposit_d1=num(s, "nxdy_excc_amt"),
            deposit_d2=num(s, "prvs_rcdl_excc_amt"),
            securities_eval=num(s, "scts_evlu_amt"),
            total_eval=num(s, "tot_evlu_amt"),
            net_asset=num(s, "nass_amt"),
            purchase_total=num(s, "pchs_amt_smtl_amt"),
            eval_pnl_total=num(s, "evlu_pfls_smtl_amt"),
            buy_today=num(s, "thdt_buy_amt"),
            sell_today=num(s, "thdt_sll_amt"),
            fees_today=num(s, "thdt_tlex_amt"),
        )
        return Balance(holdings=holdings, summary=summary, pages=len(pages))

    async def daily_orders(
        self,
        start: date,
        end: date | None = None,
        *,
        symbol: str = "",
        odno: str = "",
        side: str = "00",
        ccld: str = "00",
        branch: str = "",
        priority: int = Priority.RECONCILE,
    ) -> list[DailyOrder]:
        """inquire-daily-ccld (≤ 3 months), every page, oldest first."""
        end = end or start
        params = {
            **self._account(),
            "INQR_STRT_DT": start.strftime("%Y%m%d"),
            "INQR_END_DT": end.strftime("%Y%m%d"),
            "SLL_BUY_DVSN_CD": side,
            "INQR_DVSN": "01",
            "PDNO": symbol,
            "CCLD_DVSN": ccld,
            "ORD_GNO_BRNO": branch,
            "ODNO": odno,
            "INQR_DVSN_3": "00",
            "INQR_DVSN_1": "",
            "EXCG_ID_DVSN_CD": self.exchange_code,
        }
        pages = await self.rest.paged(T.DAILY_CCLD.path, self.tr(T.DAILY_CCLD), params, priority=priority)
        out: list[DailyOrder] = []
        for page in pages:
            for r in page.rows("output1"):
                side_cd = text(r, "sll_buy_dvsn_cd")
                out.append(
                    DailyOrder(
                        ord_dt=text(r, "ord_dt"),
                        branch=text(r, "ord_gno_brno"),
                        odno=text(r, "odno"),
                        orig_odno=text(r, "orgn_odno"),
                        side=Side.SELL if side_cd == "01" else Side.BUY,
                        symbol=text(r, "pdno"),
                        name=text(r, "prdt_name"),
                        ord_dvsn_cd=text(r, "ord_dvsn_cd"),
                        qty=integer(r, "ord_qty"),
                        price=num(r, "ord_unpr"),
                        ord_tmd=text(r, "ord_tmd"),
                        filled_qty=integer(r, "tot_ccld_qty"),
                        avg_price=num(r, "avg_prvs"),
                        filled_amount=num(r, "tot_ccld_amt"),
                        cancel_yn=_yn(r, "cncl_yn"),
                        cancel_confirmed_qty=integer(r, "cnc_cfrm_qty"),
                        remaining_qty=integer(r, "rmn_qty"),
                        rejected_qty=integer(r, "rjct_qty"),
                        kind_name=text(r, "ord_dvsn_name"),
                    )
                )
        return out

    async def buyable(self, symbol: str, price: float = 0, ord_dvsn: str = "01") -> Buyable:
        params = {
            **self._account(),
            "PDNO": symbol,
            "ORD_UNPR": str(int(price)) if price else "",
            "ORD_DVSN": ord_dvsn,
            "CMA_EVLU_AMT_ICLD_YN": "Y",
            "OVRS_ICLD_YN": "N",
        }
        resp = await self.rest.call(
            "GET", T.PSBL_ORDER.path, self.tr(T.PSBL_ORDER), params=params, priority=Priority.RECONCILE
        )
        o = resp.obj("output")
        return Buyable(
            cash=num(o, "ord_psbl_cash"),
            no_credit_amount=num(o, "nrcvb_buy_amt"),
            no_credit_qty=integer(o, "nrcvb_buy_qty"),
            max_amount=num(o, "max_buy_amt"),
            max_qty=integer(o, "max_buy_qty"),
        )

    async def modifiable_orders(self) -> list[dict[str, Any]] | Unavailable:
        """inquire-psbl-rvsecncl: an account query of the real host only (never sent to another account)."""
        if self.paper:
            return Unavailable(T.PSBL_RVSECNCL.name, T.PSBL_RVSECNCL.real, "not offered by the KIS paper host")
        params = {**self._account(), "INQR_DVSN_1": "0", "INQR_DVSN_2": "0"}
        pages = await self.rest.paged(T.PSBL_RVSECNCL.path, self.tr(T.PSBL_RVSECNCL), params)
        return [r for p in pages for r in p.rows("output")]

    # -- market data -------------------------------------------------------------------------

    def _md_params(self, symbol: str) -> dict[str, str]:
        return {"FID_COND_MRKT_DIV_CODE": self.market_code, "FID_INPUT_ISCD": symbol}

    async def price(self, symbol: str) -> PriceInfo:
        resp = await self.rest.call("GET", T.PRICE.path, self.tr(T.PRICE), params=self._md_params(symbol))
        o = resp.obj("output")
        return PriceInfo(
            symbol=text(o, "stck_shrn_iscd") or symbol,
            last=num(o, "stck_prpr"),
            change=num(o, "prdy_vrss"),
            change_sign=text(o, "prdy_vrss_sign"),
            change_pct=num(o, "prdy_ctrt"),
            open=num(o, "stck_oprc"),
            high=num(o, "stck_hgpr"),
            low=num(o, "stck_lwpr"),
            base=num(o, "stck_sdpr"),
            upper_limit=num(o, "stck_mxpr"),
            lower_limit=num(o, "stck_llam"),
            volume=integer(o, "acml_vol"),
            value=num(o, "acml_tr_pbmn"),
            vwap=num(o, "wghn_avrg_stck_prc"),
            tick=integer(o, "aspr_unit"),
            market_name=text(o, "rprs_mrkt_kor_name"),
            sector=text(o, "bstp_kor_isnm"),
            halted=_yn(o, "temp_stop_yn"),
            vi_cls_code=text(o, "vi_cls_code"),
            warn_code=text(o, "mrkt_warn_cls_code"),
            status_code=text(o, "iscd_stat_cls_code"),
            market_cap_eok=num(o, "hts_avls"),
            raw=dict(o),
        )

    async def asking_price(self, symbol: str) -> OrderBook:
        resp = await self.rest.call("GET", T.ASKING_PRICE.path, self.tr(T.ASKING_PRICE), params=self._md_params(symbol))
        b, e = resp.obj("output1"), resp.obj("output2")
        return OrderBook(
            symbol=symbol,
            ts=text(b, "aspr_acpt_hour"),
            asks=tuple(num(b, f"askp{i}") for i in range(1, 11)),
            bids=tuple(num(b, f"bidp{i}") for i in range(1, 11)),
            ask_sizes=tuple(integer(b, f"askp_rsqn{i}") for i in range(1, 11)),
            bid_sizes=tuple(integer(b, f"bidp_rsqn{i}") for i in range(1, 11)),
            total_ask_size=integer(b, "total_askp_rsqn"),
            total_bid_size=integer(b, "total_bidp_rsqn"),
            expected_price=num(e, "antc_cnpr"),
            expected_volume=integer(e, "antc_vol"),
            expected_change_pct=num(e, "antc_cntg_prdy_ctrt"),
            expected_market_code=text(e, "antc_mkop_cls_code"),
            last=num(e, "stck_prpr"),
            base=num(e, "stck_sdpr"),
            vi_cls_code=text(e, "vi_cls_code"),
        )

    async def minute_bars(
        self, symbol: str, day: date, start: time = time(9, 0), end: time = time(15, 30), today: date | None = None
    ) -> list[Bar]:
        """1-minute bars of ``day`` with start ≤ bar start ≤ end, oldest first.

        The API answers at most 30 bars per call, newest first, at or before ``FID_INPUT_HOUR_1``; the
        session is read by re-asking with the minute before the oldest bar received. Past days use
        the real-only TR FHKST03010230 (a real-host client in paper mode, else BrokerError)."""
        past = today is not None and day < today
        if past:
            target = self._real_only(T.MINUTE_BARS_PAST)
            if isinstance(target, Unavailable):
                raise BrokerError(f"minute bars of {day}: {target.reason}", code="UNAVAILABLE_ON_PAPER")
            client, tr_id, path = target[0], target[1], T.MINUTE_BARS_PAST.path
        else:
            client, tr_id, path = self.rest, self.tr(T.MINUTE_BARS), T.MINUTE_BARS.path
        bars: dict[datetime, Bar] = {}
        cursor = end
        lo = datetime.combine(day, start, KST)
        for _ in range(2000 // MINUTE_PAGE):
            params = {
                "FID_ETC_CLS_CODE": "",
                **self._md_params(symbol),
                "FID_INPUT_HOUR_1": cursor.strftime("%H%M%S"),
                "FID_PW_DATA_INCU_YN": "Y",
            }
            if past:
                params["FID_INPUT_DATE_1"] = day.strftime("%Y%m%d")
                params["FID_FAKE_TICK_INCU_YN"] = ""
            resp = await client.call("GET", path, tr_id, params=params)
            page = [b for b in (_minute_bar(symbol, r) for r in resp.rows("output2")) if b is not None]
            page = [b for b in page if b.ts.date() == day]
            if not page:
                break
            oldest = min(b.ts for b in page)
            for b in page:
                if lo <= b.ts and b.ts.time() <= end:
                    bars.setdefault(b.ts, b)
            if oldest <= lo:
                break
            nxt = (oldest - timedelta(minutes=1)).time()
            if nxt >= cursor:
                break
            cursor = nxt
        return [bars[k] for k in sorted(bars)]

    async def daily_bars(
        self, symbol: str, start: date, end: date, period: str = "D", adjusted: bool = True
    ) -> list[Bar]:
        """Daily (or W/M/Y) bars in [start, end], oldest first; ≤100 rows per call, paged by end date."""
        bars: dict[date, Bar] = {}
        upto = end
        for _ in range(200):
            params = {
                **self._md_params(symbol),
                "FID_INPUT_DATE_1": start.strftime("%Y%m%d"),
                "FID_INPUT_DATE_2": upto.strftime("%Y%m%d"),
                "FID_PERIOD_DIV_CODE": period,
                "FID_ORG_ADJ_PRC": "0" if adjusted else "1",
            }
            resp = await self.rest.call("GET", T.DAILY_BARS.path, self.tr(T.DAILY_BARS), params=params)
            rows = resp.rows("output2")
            page: list[Bar] = []
            for r in rows:
                d = _date(text(r, "stck_bsop_date"))
                if d is None or not start <= d <= upto:
                    continue
                page.append(
                    Bar(
                        symbol,
                        datetime.combine(d, time(0, 0), KST),
                        num(r, "stck_oprc"),
                        num(r, "stck_hgpr"),
                        num(r, "stck_lwpr"),
                        num(r, "stck_clpr"),
                        integer(r, "acml_vol"),
                        interval="1d" if period == "D" else period,
                        extra={"value": num(r, "acml_tr_pbmn")},
                    )
                )
            for b in page:
                bars.setdefault(b.ts.date(), b)
            if len(rows) < DAILY_CHART_PAGE or not page:
                break
            oldest = min(b.ts.date() for b in page)
            if oldest <= start:
                break
            upto = oldest - timedelta(days=1)
        return [bars[k] for k in sorted(bars)]

    async def investor_flow(self, symbol: str) -> list[InvestorFlow]:
        resp = await self.rest.call("GET", T.INVESTOR.path, self.tr(T.INVESTOR), params=self._md_params(symbol))
        out = []
        for r in resp.rows("output"):
            d = _date(text(r, "stck_bsop_date"))
            if d is None:
                continue
            out.append(
                InvestorFlow(
                    day=d,
                    close=num(r, "stck_clpr"),
                    individual_net_qty=integer(r, "prsn_ntby_qty"),
                    foreign_net_qty=integer(r, "frgn_ntby_qty"),
                    institution_net_qty=integer(r, "orgn_ntby_qty"),
                    individual_net_value=num(r, "prsn_ntby_tr_pbmn"),
                    foreign_net_value=num(r, "frgn_ntby_tr_pbmn"),
                    institution_net_value=num(r, "orgn_ntby_tr_pbmn"),
                )
            )
        return sorted(out, key=lambda x: x.day)

    async def program_trading(self, symbol: str) -> list[ProgramTradeRow] | Unavailable:
        target = self._real_only(T.PROGRAM_TRADE)
        if isinstance(target, Unavailable):
            return target
        client, tr_id = target
        resp = await client.call("GET", T.PROGRAM_TRADE.path, tr_id, params=self._md_params(symbol))
        return [
            ProgramTradeRow(
                time=text(r, "bsop_hour"),
                price=num(r, "stck_prpr"),
                volume=integer(r, "acml_vol"),
                sell_qty=integer(r, "whol_smtn_seln_vol"),
                buy_qty=integer(r, "whol_smtn_shnu_vol"),
                net_qty=integer(r, "whol_smtn_ntby_qty"),
                sell_value=num(r, "whol_smtn_seln_tr_pbmn"),
                buy_value=num(r, "whol_smtn_shnu_tr_pbmn"),
                net_value=num(r, "whol_smtn_ntby_tr_pbmn"),
            )
            for r in resp.rows("output")
        ]

    async def holidays(self, base: date) -> list[HolidayRow] | Unavailable:
        """chk-holiday from ``base`` on (the official warning: call it at most once a day)."""
        target = self._real_only(T.HOLIDAY)
        if isinstance(target, Unavailable):
            return target
        client, tr_id = target
        pages = await client.paged(
            T.HOLIDAY.path,
            tr_id,
            {"BASS_DT": base.strftime("%Y%m%d")},
            fk="CTX_AREA_FK",
            nk="CTX_AREA_NK",
            priority=Priority.MARKET_DATA,
        )
        out = []
        for p in pages:
            for r in p.rows("output"):
                d = _date(text(r, "bass_dt"))
                if d is not None:
                    out.append(
                        HolidayRow(
                            day=d,
                            weekday=text(r, "wday_dvsn_cd"),
                            business_day=_yn(r, "bzdy_yn"),
                            trading_day=_yn(r, "tr_day_yn"),
                            opening_day=_yn(r, "opnd_yn"),
                            settlement_day=_yn(r, "sttl_day_yn"),
                        )
                    )
        return out


def _minute_bar(symbol: str, r: dict[str, Any]) -> Bar | None:
    d = _date(text(r, "stck_bsop_date"))
    h = text(r, "stck_cntg_hour").zfill(6)
    if d is None or not h.isdigit():
        return None
    ts = datetime(d.year, d.month, d.day, int(h[:2]), int(h[2:4]), 0, tzinfo=KST)
    return Bar(
        symbol,
        ts,
        num(r, "stck_oprc"),
        num(r, "stck_hgpr"),
        num(r, "stck_lwpr"),
        num(r, "stck_prpr"),
        integer(r, "cntg_vol"),
        extra={"value": num(r, "acml_tr_pbmn")},
    )


__all__ = [
    "Balance",
    "BalanceSummary",
    "Buyable",
    "DailyOrder",
    "Holding",
    "HolidayRow",
    "InvestorFlow",
    "KisApi",
    "KisApiError",
    "OrderBook",
    "OrderReply",
    "PriceInfo",
    "ProgramTradeRow",
    "Unavailable",
]
