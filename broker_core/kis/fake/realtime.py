"""Real-time records of the fake KIS WebSocket: H0STCNT0 trade prints with running day statistics per
symbol and H0STASP0 ten-level books, plus the batching of consecutive prints into one frame.

While the paper engine holds a symbol in a VI, its prints carry HOUR_CLS_CODE ``C`` (the KIS field
description: "C: 9시이후의 예상가, VI발동") — and, as before, TRHT_YN ``Y`` — else ``0``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker_core.clock import KST
from broker_core.kis.fake.market_data import MarketData
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import num, sign
from broker_core.kis.parsers import H0STASP0_FIELDS, H0STCNT0_FIELDS, VI_HOUR_CLS, fields_from
from broker_core.market_rules import OPEN, price_limits
from broker_core.models import Side, Tick


@dataclass
class _TradeStats:
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    volume: int = 0
    value: float = 0.0
    open_time: str = ""
    high_time: str = ""
    low_time: str = ""
    buy_count: int = 0
    sell_count: int = 0
    buy_volume: int = 0
    sell_volume: int = 0

    def add(self, price: float, qty: int, hhmmss: str, buy: bool) -> None:
        if self.volume == 0 and not self.open:
            self.open = self.high = self.low = price
            self.open_time = self.high_time = self.low_time = hhmmss
        if price > self.high:
            self.high, self.high_time = price, hhmmss
        if price < self.low:
            self.low, self.low_time = price, hhmmss
        self.volume += max(qty, 0)
        self.value += price * max(qty, 0)
        if buy:
            self.buy_count += 1
            self.buy_volume += qty
        else:
            self.sell_count += 1
            self.sell_volume += qty


class RealtimeRecords:
    def __init__(self, venue: Venue, market_data: MarketData) -> None:
        self.venue = venue
        self.market_data = market_data
        self._stats: dict[str, _TradeStats] = {}

    def trade_record(self, tick: Tick) -> list[str]:
        """The 46 H0STCNT0 fields of one print (running day statistics kept per symbol)."""
        st = self._stats.get(tick.symbol)
        if st is None:
            st = self._stats[tick.symbol] = _TradeStats()
        local = tick.ts.astimezone(KST)
        hhmmss = local.strftime("%H%M%S")
        buy = tick.aggressor is not Side.SELL
        st.add(float(tick.price), tick.qty, hhmmss, buy)
        try:
            q = self.venue.engine.quote(tick.symbol, tick.ts)
            base, ask1, bid1, halted = q.prev_close, q.ask, q.bid, q.halted
        except Exception:
            base, ask1, bid1, halted = None, tick.price, tick.price, False
        base = base or st.open
        limits = price_limits(base) if base else None
        price = float(tick.price)
        vi_ref = self.venue.engine.vi.static_ref(tick.symbol) if self.venue.engine.vi is not None else None
        ccld = "3" if local.time() < OPEN else ("5" if tick.aggressor is Side.SELL else "1")
        values = {
            "MKSC_SHRN_ISCD": tick.symbol,
            "STCK_CNTG_HOUR": hhmmss,
            "STCK_PRPR": num(price),
            "PRDY_VRSS_SIGN": sign(price, base, limits),
            "PRDY_VRSS": num(price - base if base else 0),
            "PRDY_CTRT": f"{((price - base) / base * 100) if base else 0:.2f}",
            "WGHN_AVRG_STCK_PRC": f"{(st.value / st.volume) if st.volume else price:.2f}",
            "STCK_OPRC": num(st.open),
            "STCK_HGPR": num(st.high),
            "STCK_LWPR": num(st.low),
            "ASKP1": num(ask1 or price),
            "BIDP1": num(bid1 or price),
            "CNTG_VOL": str(tick.qty),
            "ACML_VOL": str(st.volume),
            "ACML_TR_PBMN": num(round(st.value)),
            "SELN_CNTG_CSNU": str(st.sell_count),
            "SHNU_CNTG_CSNU": str(st.buy_count),
            "NTBY_CNTG_CSNU": str(st.buy_count - st.sell_count),
            "CTTR": f"{(st.buy_volume / st.sell_volume * 100) if st.sell_volume else 100:.2f}",
            "SELN_CNTG_SMTN": str(st.sell_volume),
            "SHNU_CNTG_SMTN": str(st.buy_volume),
            "CCLD_DVSN": ccld,
            "SHNU_RATE": f"{(st.buy_volume / st.volume * 100) if st.volume else 0:.2f}",
            "PRDY_VOL_VRSS_ACML_VOL_RATE": "0.00",
            "OPRC_HOUR": st.open_time,
            "OPRC_VRSS_PRPR_SIGN": sign(price, st.open, None),
            "OPRC_VRSS_PRPR": num(price - st.open),
            "HGPR_HOUR": st.high_time,
            "HGPR_VRSS_PRPR_SIGN": sign(price, st.high, None),
            "HGPR_VRSS_PRPR": num(price - st.high),
            "LWPR_HOUR": st.low_time,
            "LWPR_VRSS_PRPR_SIGN": sign(price, st.low, None),
            "LWPR_VRSS_PRPR": num(price - st.low),
            "BSOP_DATE": local.strftime("%Y%m%d"),
            "NEW_MKOP_CLS_CODE": "20",
            "TRHT_YN": "Y" if halted else "N",
            "ASKP_RSQN1": "100",
            "BIDP_RSQN1": "100",
            "TOTAL_ASKP_RSQN": "5500",
            "TOTAL_BIDP_RSQN": "5500",
            "VOL_TNRT": "0.00",
            "PRDY_SMNS_HOUR_ACML_VOL": "0",
            "PRDY_SMNS_HOUR_ACML_VOL_RATE": "0.00",
            "HOUR_CLS_CODE": VI_HOUR_CLS if halted else "0",
            "MRKT_TRTM_CLS_CODE": "",
            "VI_STND_PRC": num(vi_ref or 0),
        }
        return fields_from(values, H0STCNT0_FIELDS)

    def book_record(self, symbol: str) -> list[str]:
        """The H0STASP0 fields of the ten-level book of ``symbol`` now."""
        now = self.venue.clock.now()
        asks, bids, a_sz, b_sz = self.market_data.book(symbol)
        values: dict[str, str] = {
            "MKSC_SHRN_ISCD": symbol,
            "BSOP_HOUR": now.astimezone(KST).strftime("%H%M%S"),
            "HOUR_CLS_CODE": "0",
        }
        for i in range(10):
            values[f"ASKP{i + 1}"] = num(asks[i])
            values[f"BIDP{i + 1}"] = num(bids[i])
            values[f"ASKP_RSQN{i + 1}"] = str(a_sz[i])
            values[f"BIDP_RSQN{i + 1}"] = str(b_sz[i])
        st = self._stats.get(symbol)
        values.update(
            {
                "TOTAL_ASKP_RSQN": str(sum(a_sz)),
                "TOTAL_BIDP_RSQN": str(sum(b_sz)),
                "OVTM_TOTAL_ASKP_RSQN": "0",
                "OVTM_TOTAL_BIDP_RSQN": "0",
                "ANTC_CNPR": "0",
                "ANTC_CNQN": "0",
                "ANTC_VOL": "0",
                "ANTC_CNTG_VRSS": "0",
                "ANTC_CNTG_VRSS_SIGN": "3",
                "ANTC_CNTG_PRDY_CTRT": "0.00",
                "ACML_VOL": str(st.volume if st else 0),
                "TOTAL_ASKP_RSQN_ICDC": "0",
                "TOTAL_BIDP_RSQN_ICDC": "0",
                "OVTM_TOTAL_ASKP_ICDC": "0",
                "OVTM_TOTAL_BIDP_ICDC": "0",
                "STCK_DEAL_CLS_CODE": "0",
            }
        )
        return fields_from(values, H0STASP0_FIELDS)


def group_by_symbol(ticks: Iterable[Tick]) -> list[tuple[str, list[Tick]]]:
    """Consecutive runs of the same symbol (one multi-record frame each)."""
    out: list[tuple[str, list[Tick]]] = []
    for t in ticks:
        if out and out[-1][0] == t.symbol:
            out[-1][1].append(t)
        else:
            out.append((t.symbol, [t]))
    return out


__all__ = ["RealtimeRecords", "group_by_symbol"]
