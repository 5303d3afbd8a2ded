"""Execution notices of the fake KIS account (H0STCNI0/H0STCNI9 records): order receipts and fills,
handed to the server's sink, which encrypts and delivers them to registered WebSocket sessions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from broker_core.clock import KST
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import num
from broker_core.kis.parsers import H0STCNI_FIELDS, fields_from
from broker_core.models import Fill, Side

if TYPE_CHECKING:
    from broker_core.kis.fake.orders import FakeOrder

NoticeSink = Callable[[str, str, str], None]


class ExecutionNotices:
    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.sink: NoticeSink | None = None
        """Set by the server: (tr_id, tr_key, plaintext record) → deliver to registered sessions."""

    def record(
        self, order: FakeOrder, *, rctf: str, fill: bool, qty: int, price: float, hhmmss: str, refused: bool = False
    ) -> str:
        """The ``^``-joined H0STCNI0 record of a receipt (``fill=False``) or a fill of ``order``."""
        prof = self.venue.profile
        values = {
            "CUST_ID": prof.hts_id,
            "ACNT_NO": prof.account_no + prof.prod_code,
            "ODER_NO": order.odno,
            "OODER_NO": order.orig_odno,
            "SELN_BYOV_CLS": "01" if order.side is Side.SELL else "02",
            "RCTF_CLS": rctf,
            "ODER_KIND": order.ord_dvsn,
            "ODER_COND": "0",
            "STCK_SHRN_ISCD": order.symbol,
            "CNTG_QTY": str(qty),
            "CNTG_UNPR": num(price),
            "STCK_CNTG_HOUR": hhmmss,
            "RFUS_YN": "1" if refused else "0",
            "CNTG_YN": "2" if fill else "1",
            "ACPT_YN": "2" if rctf == "2" else "1",
            "BRNC_NO": order.branch,
            "ODER_QTY": str(order.qty),
            "ACNT_NAME": prof.account_name,
            "ORD_COND_PRC": "",
            "ORD_EXG_GB": "1",
            "POPUP_YN": "N",
            "FILLER": "",
            "CRDT_CLS": "10",
            "CRDT_LOAN_DATE": "",
            "CNTG_ISNM40": self.venue.name(order.symbol),
            "ODER_PRC": num(order.price),
        }
        return "^".join(fields_from(values, H0STCNI_FIELDS))

    def receipt(self, order: FakeOrder, *, rctf: str, qty: int) -> None:
        """The notice that ``order`` was accepted (rctf 0 new, 1 modify, 2 cancel)."""
        hhmmss = self.venue.clock.now().astimezone(KST).strftime("%H%M%S")
        # receipts: positions 9/10 carry the order quantity/price (the official legacy sample's labels)
        self.emit(self.record(order, rctf=rctf, fill=False, qty=qty, price=order.price, hhmmss=hhmmss))

    def fill(self, order: FakeOrder, fill: Fill) -> None:
        """The fill notice (CNTG_YN=2) of an engine fill of one of ``order``'s legs."""
        hhmmss = fill.ts.astimezone(KST).strftime("%H%M%S")
        self.emit(
            self.record(
                order,
                rctf="0" if order.kind == "new" else "1",
                fill=True,
                qty=fill.qty,
                price=fill.price,
                hhmmss=hhmmss,
            )
        )

    def emit(self, record: str) -> None:
        if self.sink is not None:
            self.sink(self.venue.profile.notice_tr_id, self.venue.profile.hts_id, record)


__all__ = ["ExecutionNotices", "NoticeSink"]
