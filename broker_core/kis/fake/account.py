"""The fake KIS account's inquiry views: daily orders/executions, modifiable orders, the balance
(positions and cash summary) and buying power, all read from the order desk and the paper engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker_core.kis.fake.orders import FakeOrder, OrderDesk
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import Reply, error, num, ok, page
from broker_core.models import Side


class AccountViews:
    def __init__(self, venue: Venue, desk: OrderDesk) -> None:
        self.venue = venue
        self.desk = desk

    def _visible(self) -> list[FakeOrder]:
        now = self.venue.clock.now()
        return [o for o in self.desk.orders.values() if self.desk.visible(o, now)]

    def order_rows(self, orders: list[FakeOrder] | None = None) -> list[dict[str, Any]]:
        """One inquire-daily-ccld row per KIS order the inquiries show, in order-number order."""
        rows = []
        for order in self._visible() if orders is None else orders:
            filled, amount = self.desk.filled(order)
            if order.kind == "cancel":
                rmn, cnc, cncl_yn = 0, order.qty, "Y"
            else:
                rmn = max(0, order.qty - filled - order.cancelled_qty - order.moved_qty)
                cnc, cncl_yn = order.cancelled_qty, "N"
            kind_name = {"new": "", "modify": "정정", "cancel": "취소"}[order.kind]
            rows.append(
                {
                    "ord_dt": order.ord_dt,
                    "ord_gno_brno": order.branch,
                    "odno": order.odno,
                    "orgn_odno": order.orig_odno,
                    "ord_dvsn_name": (kind_name + ("시장가" if order.ord_dvsn == "01" else "지정가")),
                    "ord_dvsn_cd": order.ord_dvsn,
                    "sll_buy_dvsn_cd": "01" if order.side is Side.SELL else "02",
                    "sll_buy_dvsn_cd_name": "현금매도" if order.side is Side.SELL else "현금매수",
                    "pdno": order.symbol,
                    "prdt_name": self.venue.name(order.symbol),
                    "ord_qty": str(order.qty),
                    "ord_unpr": num(order.price),
                    "ord_tmd": order.ord_tmd,
                    "tot_ccld_qty": str(filled),
                    "avg_prvs": num(round(amount / filled, 2) if filled else 0),
                    "tot_ccld_amt": num(round(amount)),
                    "cncl_yn": cncl_yn,
                    "cnc_cfrm_qty": str(cnc),
                    "rmn_qty": str(rmn),
                    "rjct_qty": str(order.rejected_qty),
                    "ccld_cndt_name": "없음",
                    "excg_id_dvsn_cd": "KRX",
                    "infm_tmd": "",
                    "ord_orgno": "",
                    "inqr_ip_addr": "",
                    "cpbc_ordp_ord_rcit_dvsn_cd": "",
                }
            )
        return rows

    def daily_ccld(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self.venue.account_ok(params):
            return error("APBK9011")
        start, end = params.get("INQR_STRT_DT", ""), params.get("INQR_END_DT", "")
        if not (len(start) == 8 and start.isdigit() and len(end) == 8 and end.isdigit()):
            return error("APBK9012", "INQR_STRT_DT/INQR_END_DT must be YYYYMMDD")
        rows = [r for r in self.order_rows() if start <= r["ord_dt"] <= end]
        side = params.get("SLL_BUY_DVSN_CD", "00")
        if side in ("01", "02"):
            rows = [r for r in rows if r["sll_buy_dvsn_cd"] == side]
        if params.get("PDNO"):
            rows = [r for r in rows if r["pdno"] == params["PDNO"]]
        if params.get("ODNO"):
            rows = [r for r in rows if r["odno"] == params["ODNO"].strip().zfill(10)]
        ccld = params.get("CCLD_DVSN", "00")
        if ccld == "01":
            rows = [r for r in rows if int(r["tot_ccld_qty"]) > 0]
        elif ccld == "02":
            rows = [r for r in rows if int(r["rmn_qty"]) > 0]
        if params.get("INQR_DVSN", "00") == "00":
            rows.reverse()
        chunk, headers, cursors = page(self.venue.profile, rows, self.venue.profile.ccld_page, params, tr_cont)
        total_q = sum(int(r["ord_qty"]) for r in rows)
        total_c = sum(int(r["tot_ccld_qty"]) for r in rows)
        total_a = sum(float(r["tot_ccld_amt"]) for r in rows)
        return ok(
            headers=headers,
            **cursors,
            output1=chunk,
            output2={
                "tot_ord_qty": str(total_q),
                "tot_ccld_qty": str(total_c),
                "tot_ccld_amt": num(total_a),
                "prsm_tlex_smtl": num(round(self.venue.engine.fees.commission(total_a))),
                "pchs_avg_pric": num(round(total_a / total_c, 2) if total_c else 0),
            },
        )

    def psbl_rvsecncl(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self.venue.account_ok(params):
            return error("APBK9011")
        rows = []
        orders = self._visible()
        for r, order in zip(self.order_rows(orders), orders, strict=True):
            if order.kind == "cancel" or int(r["rmn_qty"]) <= 0 or self.desk.active_leg(order) is None:
                continue
            rows.append(
                {
                    "ord_gno_brno": r["ord_gno_brno"],
                    "odno": r["odno"],
                    "orgn_odno": r["orgn_odno"],
                    "pdno": r["pdno"],
                    "prdt_name": r["prdt_name"],
                    "ord_qty": r["ord_qty"],
                    "ord_unpr": r["ord_unpr"],
                    "ord_tmd": r["ord_tmd"],
                    "tot_ccld_qty": r["tot_ccld_qty"],
                    "tot_ccld_amt": r["tot_ccld_amt"],
                    "psbl_qty": r["rmn_qty"],
                    "sll_buy_dvsn_cd": r["sll_buy_dvsn_cd"],
                    "ord_dvsn_cd": r["ord_dvsn_cd"],
                    "excg_id_dvsn_cd": "KRX",
                }
            )
        chunk, headers, cursors = page(self.venue.profile, rows, self.venue.profile.psbl_rvsecncl_page, params, tr_cont)
        return ok(headers=headers, **cursors, output=chunk)

    def _mark(self, symbol: str, avg: float) -> float:
        last = self.venue.engine.last_price(symbol)
        if last is not None:
            return last
        try:
            return self.venue.engine.quote(symbol, self.venue.clock.now()).last
        except Exception:
            return avg

    def balance(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self.venue.account_ok(params):
            return error("APBK9011")
        engine = self.venue.engine
        rows = []
        bought: dict[str, int] = {}
        sold: dict[str, int] = {}
        for f in engine.fills():
            (bought if f.side is Side.BUY else sold)[f.symbol] = (bought if f.side is Side.BUY else sold).get(
                f.symbol, 0
            ) + f.qty
        positions = {p.symbol: p for p in engine.positions()}
        for symbol in sorted(set(positions) | set(sold)):
            p = positions.get(symbol)
            qty, avg = (p.qty, p.avg_price) if p else (0, 0.0)
            last = self._mark(symbol, avg)
            reserved = engine.reserved_shares(symbol)
            ev = qty * last
            cost = qty * avg
            rows.append(
                {
                    "pdno": symbol,
                    "prdt_name": self.venue.name(symbol),
                    "trad_dvsn_name": "현금",
                    "bfdy_buy_qty": "0",
                    "bfdy_sll_qty": "0",
                    "thdt_buyqty": str(bought.get(symbol, 0)),
                    "thdt_sll_qty": str(sold.get(symbol, 0)),
                    "hldg_qty": str(qty),
                    "ord_psbl_qty": str(max(0, qty - reserved)),
                    "pchs_avg_pric": f"{avg:.4f}",
                    "pchs_amt": num(round(cost)),
                    "prpr": num(last),
                    "evlu_amt": num(round(ev)),
                    "evlu_pfls_amt": num(round(ev - cost)),
                    "evlu_pfls_rt": f"{((ev - cost) / cost * 100) if cost else 0:.2f}",
                    "evlu_erng_rt": f"{((ev - cost) / cost * 100) if cost else 0:.8f}",
                    "fltt_rt": "0.00",
                    "bfdy_cprs_icdc": "0",
                    "loan_dt": "",
                    "loan_amt": "0",
                    "stln_slng_chgs": "0",
                    "expd_dt": "",
                    "grta_rt_name": "",
                    "sbst_pric": "0",
                    "stck_loan_unpr": "0",
                }
            )
        chunk, headers, cursors = page(self.venue.profile, rows, self.venue.profile.balance_page, params, tr_cont)
        account = engine.account()
        cost_total = sum(p.qty * p.avg_price for p in positions.values())
        buy_amt = sum(f.qty * f.price for f in engine.fills() if f.side is Side.BUY)
        sell_amt = sum(f.qty * f.price for f in engine.fills() if f.side is Side.SELL)
        fees = sum(f.commission + f.tax for f in engine.fills())
        summary = {
            "dnca_tot_amt": num(round(account.cash)),
            "nxdy_excc_amt": num(round(account.cash)),
            "prvs_rcdl_excc_amt": num(round(account.cash)),
            "cma_evlu_amt": "0",
            "bfdy_buy_amt": "0",
            "thdt_buy_amt": num(round(buy_amt)),
            "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": "0",
            "thdt_sll_amt": num(round(sell_amt)),
            "d2_auto_rdpt_amt": "0",
            "bfdy_tlex_amt": "0",
            "thdt_tlex_amt": num(round(fees)),
            "tot_loan_amt": "0",
            "scts_evlu_amt": num(round(account.market_value)),
            "tot_evlu_amt": num(round(account.equity)),
            "nass_amt": num(round(account.equity)),
            "fncg_gld_auto_rdpt_yn": "N",
            "pchs_amt_smtl_amt": num(round(cost_total)),
            "evlu_amt_smtl_amt": num(round(account.market_value)),
            "evlu_pfls_smtl_amt": num(round(account.market_value - cost_total)),
            "tot_stln_slng_chgs": "0",
            "bfdy_tot_asst_evlu_amt": num(round(account.equity)),
            "asst_icdc_amt": "0",
            "asst_icdc_erng_rt": "0.00000000",
        }
        return ok(headers=headers, **cursors, output1=chunk, output2=[summary])

    def psbl_order(self, params: Mapping[str, str]) -> Reply:
        if not self.venue.account_ok(params):
            return error("APBK9011")
        engine = self.venue.engine
        account = engine.account()
        symbol = params.get("PDNO", "")
        price = 0.0
        try:
            price = float(params.get("ORD_UNPR") or 0)
        except ValueError:
            return error("APBK9006")
        if not price and symbol and engine.has_symbol(symbol):
            try:
                q = engine.quote(symbol, self.venue.clock.now())
                price = float(q.upper_limit or q.last) if params.get("ORD_DVSN") == "01" else q.last
            except Exception:
                price = 0.0
        cash = account.buyable_cash
        qty = int(cash // (price * (1 + engine.fees.commission_rate))) if price else 0
        return ok(
            output={
                "ord_psbl_cash": num(round(cash)),
                "ord_psbl_sbst": "0",
                "ruse_psbl_amt": "0",
                "fund_rpch_chgs": "0",
                "psbl_qty_calc_unpr": num(price),
                "nrcvb_buy_amt": num(round(cash)),
                "nrcvb_buy_qty": str(qty),
                "max_buy_amt": num(round(cash)),
                "max_buy_qty": str(qty),
                "cma_evlu_amt": "0",
                "ovrs_re_use_amt_wcrc": "0",
                "ord_psbl_frcr_amt_wcrc": "0",
            }
        )


__all__ = ["AccountViews"]
