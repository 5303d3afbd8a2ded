"""Market data the fake KIS serves over REST, read from the paper exchange: price, ten-level asking
price, minute and daily bars, daily prices, investor flow, program trading and the holiday calendar."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.calendars import is_trading_day
from broker_core.clock import KST
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import Reply, error, num, ok, page, sign, ymd
from broker_core.market_rules import SessionPhase, down, price_limits, session_phase, tick_size, up
from broker_core.models import Bar

DailySource = Callable[[str, date, date], list[Bar]]
"""(symbol, first day, last day) → daily bars (today's is added from the exchange's tape when missing)."""
FlowSource = Callable[[str, date, date], list[dict[str, Any]]]
"""(symbol, first day, last day) → investor flow rows: ``date``, ``foreign_net``, ``inst_net``."""


class MarketData:
    def __init__(
        self, venue: Venue, *, daily_source: DailySource | None = None, flow_source: FlowSource | None = None
    ) -> None:
        self.venue = venue
        self.daily_source = daily_source
        self.flow_source = flow_source

    def day_ohlcv(self, symbol: str) -> Bar | None:
        """Today's bar of ``symbol`` so far (None before its first print)."""
        day = self.venue.day()
        start = datetime.combine(day, time(0, 0), KST)
        bars = self.venue.exchange.tape.bars(symbol, start, start, "1440m", now=self.venue.clock.now())
        return bars[0] if bars else None

    def price(self, symbol: str) -> Reply:
        if not self.venue.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        now = self.venue.clock.now()
        try:
            q = self.venue.engine.quote(symbol, now)
        except Exception:
            return error("APBK0656", "시세가 없습니다.")
        inst_base = q.prev_close or q.last
        limits = price_limits(inst_base) if inst_base else None
        day = self.day_ohlcv(symbol)
        last = q.last
        vol = day.volume if day else 0
        vwap = (day.high + day.low + day.close) / 3 if day and vol else last
        value = vwap * vol
        halted = bool(q.halted)
        vi_code = "N"
        if halted and self.venue.engine.vi is not None:
            events = [e for e in self.venue.engine.vi.events if e.symbol == symbol]
            vi_code = "1" if events and events[-1].kind.value == "STATIC" else "2"
        out = {
            "iscd_stat_cls_code": "55",
            "marg_rate": "20.00",
            "rprs_mrkt_kor_name": self.venue.market(symbol),
            "bstp_kor_isnm": "전기.전자",
            "temp_stop_yn": "N",
            "oprc_rang_cont_yn": "N",
            "clpr_rang_cont_yn": "N",
            "crdt_able_yn": "Y",
            "grmn_rate_cls_code": "40",
            "elw_pblc_yn": "N",
            "stck_prpr": num(last),
            "prdy_vrss": num(last - inst_base if inst_base else 0),
            "prdy_vrss_sign": sign(last, inst_base, limits),
            "prdy_ctrt": f"{((last - inst_base) / inst_base * 100) if inst_base else 0:.2f}",
            "acml_tr_pbmn": num(round(value)),
            "acml_vol": str(vol),
            "prdy_vrss_vol_rate": "0.00",
            "stck_oprc": num(day.open if day else 0),
            "stck_hgpr": num(day.high if day else 0),
            "stck_lwpr": num(day.low if day else 0),
            "stck_mxpr": num(limits[1] if limits else 0),
            "stck_llam": num(limits[0] if limits else 0),
            "stck_sdpr": num(inst_base or 0),
            "wghn_avrg_stck_prc": f"{vwap:.2f}",
            "hts_frgn_ehrt": "0.00",
            "frgn_ntby_qty": "0",
            "pgtr_ntby_qty": "0",
            "pvt_scnd_dmrs_prc": "0",
            "pvt_frst_dmrs_prc": "0",
            "pvt_pont_val": "0",
            "pvt_frst_dmsp_prc": "0",
            "pvt_scnd_dmsp_prc": "0",
            "dmrs_val": "0",
            "dmsp_val": "0",
            "cpfn": "0",
            "rstc_wdth_prc": num(limits[1] - inst_base if limits and inst_base else 0),
            "stck_fcam": "100",
            "stck_sspr": num(round(last * 0.7)),
            "aspr_unit": str(tick_size(last)),
            "hts_deal_qty_unit_val": "1",
            "lstn_stcn": "100000000",
            "hts_avls": num(round(last * 1e8 / 1e8)),
            "per": "10.00",
            "pbr": "1.00",
            "stac_month": "12",
            "vol_tnrt": "0.00",
            "eps": "0",
            "bps": "0",
            "d250_hgpr": num(last),
            "d250_hgpr_date": "",
            "d250_hgpr_vrss_prpr_rate": "0.00",
            "d250_lwpr": num(last),
            "d250_lwpr_date": "",
            "d250_lwpr_vrss_prpr_rate": "0.00",
            "stck_dryy_hgpr": num(last),
            "dryy_hgpr_vrss_prpr_rate": "0.00",
            "dryy_hgpr_date": "",
            "stck_dryy_lwpr": num(last),
            "dryy_lwpr_vrss_prpr_rate": "0.00",
            "dryy_lwpr_date": "",
            "w52_hgpr": num(last),
            "w52_hgpr_vrss_prpr_ctrt": "0.00",
            "w52_hgpr_date": "",
            "w52_lwpr": num(last),
            "w52_lwpr_vrss_prpr_ctrt": "0.00",
            "w52_lwpr_date": "",
            "whol_loan_rmnd_rate": "0.00",
            "ssts_yn": "Y",
            "stck_shrn_iscd": symbol,
            "fcam_cnnm": "100",
            "cpfn_cnnm": "0",
            "frgn_hldn_qty": "0",
            "vi_cls_code": vi_code,
            "ovtm_vi_cls_code": "N",
            "last_ssts_cntg_qty": "0",
            "invt_caful_yn": "N",
            "mrkt_warn_cls_code": "00",
            "short_over_yn": "N",
            "sltr_yn": "N",
            "mang_issu_cls_code": "N",
        }
        return ok(output=out)

    def book(self, symbol: str) -> tuple[list[float], list[float], list[int], list[int]]:
        """Ten ask and bid levels around the best quote and their (synthetic) sizes."""
        q = self.venue.engine.quote(symbol, self.venue.clock.now())
        ask1 = q.ask or q.last
        bid1 = q.bid or q.last
        asks, bids = [float(ask1)], [float(bid1)]
        for _ in range(9):
            asks.append(float(up(asks[-1])))
            bids.append(float(max(down(bids[-1]), 1)))
        ask_sizes = [100 * (i + 1) for i in range(10)]
        bid_sizes = [100 * (i + 1) for i in range(10)]
        return asks, bids, ask_sizes, bid_sizes

    def asking_price(self, symbol: str) -> Reply:
        if not self.venue.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        now = self.venue.clock.now()
        try:
            q = self.venue.engine.quote(symbol, now)
            asks, bids, a_sz, b_sz = self.book(symbol)
        except Exception:
            return error("APBK0656", "시세가 없습니다.")
        out1: dict[str, str] = {"aspr_acpt_hour": now.astimezone(KST).strftime("%H%M%S")}
        for i in range(10):
            out1[f"askp{i + 1}"] = num(asks[i])
            out1[f"bidp{i + 1}"] = num(bids[i])
            out1[f"askp_rsqn{i + 1}"] = str(a_sz[i])
            out1[f"bidp_rsqn{i + 1}"] = str(b_sz[i])
            out1[f"askp_rsqn_icdc{i + 1}"] = "0"
            out1[f"bidp_rsqn_icdc{i + 1}"] = "0"
        out1.update(
            {
                "total_askp_rsqn": str(sum(a_sz)),
                "total_bidp_rsqn": str(sum(b_sz)),
                "total_askp_rsqn_icdc": "0",
                "total_bidp_rsqn_icdc": "0",
                "ovtm_total_askp_icdc": "0",
                "ovtm_total_bidp_icdc": "0",
                "ovtm_total_askp_rsqn": "0",
                "ovtm_total_bidp_rsqn": "0",
                "ntby_aspr_rsqn": str(sum(b_sz) - sum(a_sz)),
                "new_mkop_cls_code": "20",
            }
        )
        phase = session_phase(now)
        base = q.prev_close or q.last
        in_auction = phase in (SessionPhase.PRE_OPEN_AUCTION, SessionPhase.CLOSING_AUCTION) or q.halted
        antc = (q.last if phase is not SessionPhase.PRE_OPEN_AUCTION else base) if in_auction else 0.0
        day = self.day_ohlcv(symbol)
        out2 = {
            "antc_mkop_cls_code": "311" if in_auction else "",
            "stck_prpr": num(q.last),
            "stck_oprc": num(day.open if day else 0),
            "stck_hgpr": num(day.high if day else 0),
            "stck_lwpr": num(day.low if day else 0),
            "stck_sdpr": num(base or 0),
            "antc_cnpr": num(antc),
            "antc_cntg_vrss_sign": sign(antc, base, None) if antc else "3",
            "antc_cntg_vrss": num(antc - base if antc and base else 0),
            "antc_cntg_prdy_ctrt": f"{((antc - base) / base * 100) if antc and base else 0:.2f}",
            "antc_vol": str(min(a_sz[0], b_sz[0]) if antc else 0),
            "stck_shrn_iscd": symbol,
            "vi_cls_code": "1" if q.halted else "N",
        }
        return ok(output1=out1, output2=out2)

    def minute_bars(self, symbol: str, params: Mapping[str, str], day: date | None = None) -> Reply:
        if not self.venue.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        hour = str(params.get("FID_INPUT_HOUR_1", "")).strip()
        if not (len(hour) == 6 and hour.isdigit()):
            return error("APBK9012", "FID_INPUT_HOUR_1 must be HHMMSS")
        the_day = day or self.venue.day()
        if the_day != self.venue.exchange.feed.session_date:
            return ok(output1={}, output2=[])
        upto = datetime.combine(the_day, time(int(hour[:2]), int(hour[2:4])), KST)
        start = datetime.combine(the_day, time(0, 0), KST)
        bars = self.venue.exchange.tape.bars(symbol, start, upto, "1m", now=self.venue.clock.now())
        newest = sorted(bars, key=lambda b: b.ts, reverse=True)[: self.venue.profile.minute_page]
        cum_value = 0.0
        rows = []
        cum_by_ts: dict[datetime, float] = {}
        for b in sorted(bars, key=lambda b: b.ts):
            cum_value += sum(t for t in [b.close * b.volume])
            cum_by_ts[b.ts] = cum_value
        for b in newest:
            rows.append(
                {
                    "stck_bsop_date": b.ts.strftime("%Y%m%d"),
                    "stck_cntg_hour": b.ts.strftime("%H%M%S"),
                    "stck_prpr": num(b.close),
                    "stck_oprc": num(b.open),
                    "stck_hgpr": num(b.high),
                    "stck_lwpr": num(b.low),
                    "cntg_vol": str(b.volume),
                    "acml_tr_pbmn": num(round(cum_by_ts.get(b.ts, 0))),
                }
            )
        q = self.venue.engine.quote(symbol, self.venue.clock.now()) if bars else None
        out1 = {
            "prdy_vrss": "0",
            "prdy_vrss_sign": "3",
            "prdy_ctrt": "0.00",
            "stck_prdy_clpr": num(q.prev_close or 0) if q else "0",
            "acml_vol": str(sum(b.volume for b in bars)),
            "acml_tr_pbmn": num(round(cum_value)),
            "hts_kor_isnm": self.venue.name(symbol),
            "stck_prpr": num(q.last) if q else "0",
        }
        return ok(output1=out1, output2=rows)

    def _daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        bars = list(self.daily_source(symbol, start, end)) if self.daily_source else []
        today = self.venue.day()
        if start <= today <= end and not any(b.ts.date() == today for b in bars):
            bar = self.day_ohlcv(symbol)
            if bar is not None:
                bars.append(
                    Bar(
                        symbol,
                        datetime.combine(today, time(0, 0), KST),
                        bar.open,
                        bar.high,
                        bar.low,
                        bar.close,
                        bar.volume,
                        "1d",
                    )
                )
        return sorted(bars, key=lambda b: b.ts)

    def daily_chart(self, symbol: str, params: Mapping[str, str]) -> Reply:
        d1, d2 = ymd(params.get("FID_INPUT_DATE_1", "")), ymd(params.get("FID_INPUT_DATE_2", ""))
        if d1 is None or d2 is None:
            return error("APBK9012", "FID_INPUT_DATE_1/2 must be YYYYMMDD")
        if params.get("FID_PERIOD_DIV_CODE", "D") != "D":
            return error("APBK9012", "the fake serves FID_PERIOD_DIV_CODE=D only")
        bars = self._daily_bars(symbol, d1, d2)
        newest = list(reversed(bars))[: self.venue.profile.daily_chart_page]
        rows = [
            {
                "stck_bsop_date": b.ts.strftime("%Y%m%d"),
                "stck_clpr": num(b.close),
                "stck_oprc": num(b.open),
                "stck_hgpr": num(b.high),
                "stck_lwpr": num(b.low),
                "acml_vol": str(b.volume),
                "acml_tr_pbmn": num(round(b.close * b.volume)),
                "flng_cls_code": "00",
                "prtt_rate": "0.00",
                "mod_yn": "N",
                "prdy_vrss_sign": "3",
                "prdy_vrss": "0",
                "revl_issu_reas": "",
            }
            for b in newest
        ]
        last = bars[-1] if bars else None
        out1 = {
            "hts_kor_isnm": self.venue.name(symbol),
            "stck_shrn_iscd": symbol,
            "stck_prpr": num(last.close) if last else "0",
            "stck_prdy_clpr": "0",
        }
        return ok(output1=out1, output2=rows)

    def daily_price(self, symbol: str) -> Reply:
        today = self.venue.day()
        bars = self._daily_bars(symbol, today - timedelta(days=60), today)
        newest = list(reversed(bars))[: self.venue.profile.daily_price_rows]
        return ok(
            output=[
                {
                    "stck_bsop_date": b.ts.strftime("%Y%m%d"),
                    "stck_oprc": num(b.open),
                    "stck_hgpr": num(b.high),
                    "stck_lwpr": num(b.low),
                    "stck_clpr": num(b.close),
                    "acml_vol": str(b.volume),
                    "prdy_vrss_vol_rate": "0.00",
                    "prdy_vrss": "0",
                    "prdy_vrss_sign": "3",
                    "prdy_ctrt": "0.00",
                    "hts_frgn_ehrt": "0.00",
                    "frgn_ntby_qty": "0",
                    "flng_cls_code": "00",
                    "acml_prtt_rate": "0.00",
                }
                for b in newest
            ]
        )

    def investor(self, symbol: str) -> Reply:
        today = self.venue.day()
        flows = self.flow_source(symbol, today - timedelta(days=60), today) if self.flow_source else []
        closes = {b.ts.date(): b.close for b in self._daily_bars(symbol, today - timedelta(days=60), today)}
        rows = []
        for f in sorted(flows, key=lambda x: x["date"], reverse=True)[: self.venue.profile.investor_rows]:
            frgn, orgn = int(f.get("foreign_net") or 0), int(f.get("inst_net") or 0)
            close = closes.get(f["date"], 0.0)
            rows.append(
                {
                    "stck_bsop_date": f["date"].strftime("%Y%m%d"),
                    "stck_clpr": num(close),
                    "prdy_vrss": "0",
                    "prdy_vrss_sign": "3",
                    "prsn_ntby_qty": str(-(frgn + orgn)),
                    "frgn_ntby_qty": str(frgn),
                    "orgn_ntby_qty": str(orgn),
                    "prsn_ntby_tr_pbmn": num(round(-(frgn + orgn) * close / 1e6)),
                    "frgn_ntby_tr_pbmn": num(round(frgn * close / 1e6)),
                    "orgn_ntby_tr_pbmn": num(round(orgn * close / 1e6)),
                    "prsn_shnu_vol": "0",
                    "frgn_shnu_vol": "0",
                    "orgn_shnu_vol": "0",
                    "prsn_seln_vol": "0",
                    "frgn_seln_vol": "0",
                    "orgn_seln_vol": "0",
                }
            )
        return ok(output=rows)

    def program_trade(self, symbol: str) -> Reply:
        """Per-minute program trading of the day (the fake attributes 10% of each minute to programs)."""
        day = self.venue.day()
        start = datetime.combine(day, time(0, 0), KST)
        bars = self.venue.exchange.tape.bars(
            symbol, start, datetime.combine(day, time(23, 59), KST), "1m", now=self.venue.clock.now()
        )
        rows, net = [], 0
        cum = 0
        for b in bars:
            cum += b.volume
            part = b.volume // 10
            buy = part if b.close >= b.open else part // 2
            sell = part - buy
            net += buy - sell
            rows.append(
                {
                    "bsop_hour": b.ts.strftime("%H%M%S"),
                    "stck_prpr": num(b.close),
                    "prdy_vrss": "0",
                    "prdy_vrss_sign": "3",
                    "prdy_ctrt": "0.00",
                    "acml_vol": str(cum),
                    "whol_smtn_seln_vol": str(sell),
                    "whol_smtn_shnu_vol": str(buy),
                    "whol_smtn_ntby_qty": str(net),
                    "whol_smtn_seln_tr_pbmn": num(round(sell * b.close)),
                    "whol_smtn_shnu_tr_pbmn": num(round(buy * b.close)),
                    "whol_smtn_ntby_tr_pbmn": num(round(net * b.close)),
                    "whol_ntby_vol_icdc": "0",
                    "whol_ntby_tr_pbmn_icdc": "0",
                }
            )
        return ok(output=list(reversed(rows)))

    def holidays(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        base = ymd(params.get("BASS_DT", ""))
        if base is None:
            return error("APBK9012", "BASS_DT must be YYYYMMDD")
        rows = []
        for i in range(60):
            d = base + timedelta(days=i)
            try:
                trading = is_trading_day(d)
            except Exception:
                trading = d.weekday() < 5
            rows.append(
                {
                    "bass_dt": d.strftime("%Y%m%d"),
                    "wday_dvsn_cd": str((d.isoweekday() % 7) + 1).zfill(2),
                    "bzdy_yn": "Y" if trading else "N",
                    "tr_day_yn": "Y" if trading else "N",
                    "opnd_yn": "Y" if trading else "N",
                    "sttl_day_yn": "Y" if trading else "N",
                }
            )
        chunk, headers, cursors = page(
            self.venue.profile,
            rows,
            self.venue.profile.holiday_page,
            params,
            tr_cont,
            fk="CTX_AREA_FK",
            nk="CTX_AREA_NK",
        )
        return ok(headers=headers, **cursors, output=chunk)


__all__ = ["DailySource", "FlowSource", "MarketData"]
