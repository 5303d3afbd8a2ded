"""The fake KIS account's order book on the paper exchange: cash orders, modify/cancel (each a new
order number, re-booking legs on the engine), KIS rejection codes, and fills mapped back to orders."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import KST
from broker_core.errors import OrderRejected
from broker_core.kis import tr_ids as T
from broker_core.kis.fake.notices import ExecutionNotices
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import FAKE_CODES, Reply, error, ok
from broker_core.models import OrderRequest, OrderStatus, OrderType, Side
from broker_core.paper.matching import RejectCode

ENGINE_REJECT = {
    RejectCode.MARKET_CLOSED: ("APBK0919", "장운영시간이 아닙니다."),
    RejectCode.UNKNOWN_SYMBOL: ("APBK0656", "주문가능한 종목이 아닙니다."),
    RejectCode.OFF_TICK: ("APBK9001", FAKE_CODES["APBK9001"]),
    RejectCode.OUTSIDE_PRICE_LIMIT: ("APBK9002", FAKE_CODES["APBK9002"]),
    RejectCode.INSUFFICIENT_CASH: ("APBK9003", FAKE_CODES["APBK9003"]),
    RejectCode.INSUFFICIENT_SHARES: ("APBK9004", FAKE_CODES["APBK9004"]),
    RejectCode.INVALID_QTY: ("APBK9005", FAKE_CODES["APBK9005"]),
    RejectCode.INVALID_PRICE: ("APBK9006", FAKE_CODES["APBK9006"]),
    RejectCode.NO_REFERENCE_PRICE: ("APBK9006", FAKE_CODES["APBK9006"]),
}
"""Engine rejection → (msg_cd, msg1) of the KIS reply."""
PAPER_ORD_DVSN = frozenset({"00", "01", "02", "03", "04"})
REAL_ORD_DVSN = frozenset({"00", "01", "02", "03", "04", "05", "06", "07", "11", "12", "13", "14", "15", "16"})
SIMULATED_ORD_DVSN = frozenset({"00", "01", "02", "03", "04"})


@dataclass
class FakeOrder:
    odno: str
    branch: str
    ord_dt: str
    ord_tmd: str
    symbol: str
    side: Side
    ord_dvsn: str
    qty: int
    price: float
    kind: str = "new"
    """new, modify (a new order number carrying the rest of ``orig_odno``) or cancel."""
    orig_odno: str = ""
    legs: list[str] = field(default_factory=list)
    """Engine client order ids carrying this order (a partial cancel re-books the rest as a new leg)."""
    cancelled_qty: int = 0
    moved_qty: int = 0
    """Quantity handed to a modify order."""
    rejected_qty: int = 0


class OrderDesk:
    def __init__(self, venue: Venue, notices: ExecutionNotices) -> None:
        self.venue = venue
        self.notices = notices
        self.orders: dict[str, FakeOrder] = {}
        self.leg_owner: dict[str, str] = {}
        self._odno_seq = itertools.count(1)
        self._leg_seq = itertools.count(1)
        self.drop_order_replies = 0
        """Fault: the next N order submits are executed and their replies dropped (connection cut)."""
        self.delay_visibility: list[float] = []
        """Fault: the next orders placed (one entry each, in seconds) stay out of the inquiries (daily
        orders, modifiable orders) that long after they were accepted, as a lagging KIS back office would."""
        self.hidden_until: dict[str, datetime] = {}
        """Order number → when it appears in the inquiries (set by ``delay_visibility``)."""

    # -- legs on the engine ------------------------------------------------------------------

    def filled(self, order: FakeOrder) -> tuple[int, float]:
        """Filled quantity and amount over all legs of ``order``."""
        qty, amount = 0, 0.0
        for leg in order.legs:
            o = self.venue.engine.get_order(leg)
            if o is not None:
                qty += o.filled_qty
                amount += o.filled_qty * o.avg_fill_price
        return qty, amount

    def active_leg(self, order: FakeOrder) -> str | None:
        """The leg of ``order`` still working on the engine, if any."""
        for leg in reversed(order.legs):
            o = self.venue.engine.get_order(leg)
            if o is not None and not o.status.is_terminal:
                return leg
        return None

    def remaining(self, order: FakeOrder) -> int:
        leg = self.active_leg(order)
        o = self.venue.engine.get_order(leg) if leg else None
        return o.qty - o.filled_qty if o is not None else 0

    def _expired_rest(self, order: FakeOrder) -> int:
        """Quantity of legs that expired at the close (KIS keeps it as rmn_qty)."""
        rest = 0
        for leg in order.legs:
            o = self.venue.engine.get_order(leg)
            if o is not None and o.status is OrderStatus.EXPIRED:
                rest += o.qty - o.filled_qty
        return rest

    def visible(self, order: FakeOrder, now: datetime) -> bool:
        """Whether ``order`` shows in the inquiries at ``now`` (see ``delay_visibility``)."""
        until = self.hidden_until.get(order.odno)
        return until is None or now >= until

    def _new_odno(self) -> str:
        return f"{next(self._odno_seq):010d}"

    def _submit_leg(self, order: FakeOrder, qty: int, ord_dvsn: str, price: float) -> None:
        """Book ``qty`` of ``order`` on the engine (raises OrderRejected)."""
        leg = f"{order.odno}#{next(self._leg_seq)}"
        if ord_dvsn == "01":
            req = OrderRequest(leg, order.symbol, order.side, qty, OrderType.MARKET, None)
        else:
            req = OrderRequest(leg, order.symbol, order.side, qty, OrderType.LIMIT, price)
        self.leg_owner[leg] = order.odno
        try:
            self.venue.exchange.submit(req)
        finally:
            order.legs.append(leg)

    def _limit_for(self, symbol: str, side: Side, ord_dvsn: str, price: float) -> float:
        if ord_dvsn in ("03", "04"):
            q = self.venue.engine.quote(symbol, self.venue.clock.now())
            best_opposite = q.ask if side is Side.BUY else q.bid
            best_same = q.bid if side is Side.BUY else q.ask
            return float((best_opposite if ord_dvsn == "03" else best_same) or q.last)
        return price

    # -- orders ------------------------------------------------------------------------------

    def order_cash(self, tr: T.Tr, body: Mapping[str, Any]) -> Reply:
        if not self.venue.account_ok(body):
            return error("APBK9011")
        side = Side.BUY if tr is T.ORDER_BUY else Side.SELL
        symbol = str(body.get("PDNO", "")).strip()
        ord_dvsn = str(body.get("ORD_DVSN", "")).strip()
        allowed = PAPER_ORD_DVSN if self.venue.profile.paper else REAL_ORD_DVSN
        if ord_dvsn not in allowed or ord_dvsn not in SIMULATED_ORD_DVSN:
            return error("APBK9007", f"ORD_DVSN {ord_dvsn!r}: " + FAKE_CODES["APBK9007"])
        qty_s, price_s = str(body.get("ORD_QTY", "")).strip(), str(body.get("ORD_UNPR", "")).strip()
        if not qty_s.isdigit() or int(qty_s) <= 0:
            return error("APBK9005")
        try:
            price = float(price_s or "0")
        except ValueError:
            return error("APBK9006")
        if ord_dvsn in ("00", "02") and price <= 0:
            return error("APBK9006")
        if not self.venue.engine.has_symbol(symbol):
            return error("APBK0656", "주문가능한 종목이 아닙니다.")
        now = self.venue.clock.now()
        order = FakeOrder(
            odno=self._new_odno(),
            branch=self.venue.profile.branch,
            ord_dt=now.strftime("%Y%m%d"),
            ord_tmd=now.astimezone(KST).strftime("%H%M%S"),
            symbol=symbol,
            side=side,
            ord_dvsn=ord_dvsn,
            qty=int(qty_s),
            price=price if ord_dvsn != "01" else 0.0,
        )
        try:
            limit = self._limit_for(symbol, side, ord_dvsn, price)
            self._submit_leg(order, order.qty, ord_dvsn, limit)
        except OrderRejected as exc:
            code, msg = ENGINE_REJECT.get(exc.code, ("APBK9012", exc.message))  # type: ignore[call-overload]
            return error(code, f"{msg} [{exc.message}]")
        except Exception as exc:  # the engine's own validation (e.g. no quote yet)
            return error("APBK9006", f"{FAKE_CODES['APBK9006']} [{exc}]")
        if order.price == 0 and ord_dvsn != "01":
            order.price = limit
        self.orders[order.odno] = order
        if self.delay_visibility:
            self.hidden_until[order.odno] = now + timedelta(seconds=self.delay_visibility.pop(0))
        self.notices.receipt(order, rctf="0", qty=order.qty)
        reply = ok(
            "APBK0013",
            "주문 전송 완료 되었습니다.",
            output={"KRX_FWDG_ORD_ORGNO": order.branch, "ODNO": order.odno, "ORD_TMD": order.ord_tmd},
        )
        if self.drop_order_replies > 0:
            self.drop_order_replies -= 1
            reply.drop = True
        return reply

    def order_rvsecncl(self, body: Mapping[str, Any]) -> Reply:
        if not self.venue.account_ok(body):
            return error("APBK9011")
        orig_no = str(body.get("ORGN_ODNO", "")).strip()
        orig = self.orders.get(orig_no.zfill(10)) if orig_no.isdigit() else None
        if orig is None or orig.kind == "cancel":
            return error("APBK9008")
        if str(body.get("KRX_FWDG_ORD_ORGNO", "")).strip() != orig.branch:
            return error("APBK9010")
        code = str(body.get("RVSE_CNCL_DVSN_CD", "")).strip()
        if code not in ("01", "02"):
            return error("APBK9012", "RVSE_CNCL_DVSN_CD must be 01 or 02")
        all_qty = str(body.get("QTY_ALL_ORD_YN", "")).strip().upper()
        if all_qty not in ("Y", "N"):
            return error("APBK9012", "QTY_ALL_ORD_YN must be Y or N")
        remaining = self.remaining(orig)
        if remaining <= 0:
            return error("APBK9009")
        if all_qty == "Y":
            qty = remaining
        else:
            q = str(body.get("ORD_QTY", "")).strip()
            if not q.isdigit() or not 0 < int(q) <= remaining:
                return error("APBK9009", f"ORD_QTY must be 1..{remaining}")
            qty = int(q)
        now = self.venue.clock.now()
        leg = self.active_leg(orig)
        assert leg is not None
        leg_order = self.venue.engine.get_order(leg)
        assert leg_order is not None
        new = FakeOrder(
            odno=self._new_odno(),
            branch=orig.branch,
            ord_dt=now.strftime("%Y%m%d"),
            ord_tmd=now.astimezone(KST).strftime("%H%M%S"),
            symbol=orig.symbol,
            side=orig.side,
            ord_dvsn=orig.ord_dvsn,
            qty=qty,
            price=0.0,
            kind="cancel" if code == "02" else "modify",
            orig_odno=orig.odno,
        )
        if code == "01":
            ord_dvsn = str(body.get("ORD_DVSN", orig.ord_dvsn)).strip() or orig.ord_dvsn
            try:
                price = float(str(body.get("ORD_UNPR", "0")).strip() or "0")
            except ValueError:
                return error("APBK9006")
            if ord_dvsn in ("00", "02") and price <= 0:
                return error("APBK9006")
            new.ord_dvsn, new.price = ord_dvsn, (price if ord_dvsn != "01" else 0.0)
        self.venue.exchange.cancel(leg)
        keep = remaining - qty
        try:
            if code == "01":
                self._submit_leg(new, qty, new.ord_dvsn, self._limit_for(new.symbol, new.side, new.ord_dvsn, new.price))
        except OrderRejected as exc:
            self._submit_leg(orig, remaining, orig.ord_dvsn, leg_order.limit_price or orig.price)
            code_, msg = ENGINE_REJECT.get(exc.code, ("APBK9012", exc.message))  # type: ignore[call-overload]
            return error(code_, f"{msg} [{exc.message}]")
        if keep > 0:
            self._submit_leg(orig, keep, orig.ord_dvsn, leg_order.limit_price or orig.price)
        if code == "02":
            orig.cancelled_qty += qty
        else:
            orig.moved_qty += qty
        self.orders[new.odno] = new
        self.notices.receipt(new, rctf="2" if code == "02" else "1", qty=qty)
        return ok(
            "APBK0013",
            "주문 전송 완료 되었습니다.",
            output={"krx_fwdg_ord_orgno": new.branch, "odno": new.odno, "ord_tmd": new.ord_tmd},
        )

    # -- engine updates ----------------------------------------------------------------------

    def on_engine_update(self, update: Any) -> None:
        """An engine order update: a fill becomes a fill notice (CNTG_YN=2) of its KIS order."""
        fill = update.fill
        if fill is None:
            return
        odno = self.leg_owner.get(fill.client_order_id)
        order = self.orders.get(odno) if odno else None
        if order is None:
            return
        self.notices.fill(order, fill)


__all__ = ["ENGINE_REJECT", "FakeOrder", "OrderDesk", "PAPER_ORD_DVSN", "REAL_ORD_DVSN", "SIMULATED_ORD_DVSN"]
