"""Broker orders the OMS did not place: adopted, so their fills reach the ledger.

An open order at the broker that no OMS order row owns was placed outside the OMS (another client of the
account, HTS), or is the order of a submit the OMS had already declared absent. Dropping its fills
(FILL_UNKNOWN_ORDER) would leave the ledger short of the account until a position drift is confirmed; a
careful OMS instead takes it in as an order row owned by ``_UNKNOWN_`` (state SUBMITTED, no fills
applied yet: every fill then arrives through the usual de-duplicated path and is booked under
``_UNKNOWN_``), journals a ``recon_log`` row ORDER_ADOPTED and freezes the symbol for entries until an
admin corrects the allocation. An open broker order whose OMS row is already final is only reported
(ORDER_SYNC, once): its late fills are applied to that row. So is one whose broker order id belongs to
an OMS order under another client id (an adapter that lost its own order map): never adopted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from broker_core.contract.reasons import ReasonCode
from broker_core.models import BrokerOrder, OrderType
from oms.core import orders as fsm
from oms.core.ids import new_id
from oms.core.state import OmsState
from oms.core.types import UNKNOWN_STRATEGY, OrderRecord, OrderState, ReconRecord

log = logging.getLogger("oms.reconcile")


def adopt_orders(
    state: OmsState, orders: Iterable[BrokerOrder], now: datetime, reported: set[str]
) -> tuple[list[OrderRecord], list[object]]:
    """Adopt the open broker orders ``orders`` that the OMS does not know; returns (adopted orders, rows
    to journal). ``reported`` keeps the ids of final OMS orders already reported as still open."""
    adopted: list[OrderRecord] = []
    rows: list[object] = []
    for b in orders:
        cid = b.client_order_id
        known = state.orders.get(cid)
        if known is None and b.broker_order_id and b.broker_order_id in state.broker_ids:
            known = state.orders.get(state.broker_ids[b.broker_order_id])  # ours, under another client id
        if known is not None:
            if cid not in reported:
                reported.add(cid)
                log.warning(
                    "order %s is %s in the OMS but open at the broker (%s filled %d/%d) reason=ORDER_SYNC",
                    cid,
                    known.state.value,
                    b.status.value,
                    b.filled_qty,
                    b.qty,
                )
                rows.append(_recon(ReasonCode.ORDER_SYNC, b, now, f"OMS {known.state.value}, broker {b.status.value}"))
            continue
        order = OrderRecord(
            order_id=cid,
            intent_id="",
            strategy_id=UNKNOWN_STRATEGY,
            symbol=b.symbol,
            side=b.side.value,
            qty=b.qty,
            order_type=OrderType.MARKET if b.order_type is OrderType.MARKET else OrderType.LIMIT,
            state=OrderState.SUBMITTED,
            created_at=b.created_at,
            updated_at=now,
            limit_price=b.limit_price,
            broker_order_id=b.broker_order_id or None,
            reason=ReasonCode.ORDER_ADOPTED,
        )
        detail = f"broker order {b.broker_order_id or '?'} {b.side.value} {b.qty} {b.symbol} not placed by the OMS"
        rows += [order, fsm.created_event(order, now, ReasonCode.ORDER_ADOPTED, detail)]
        rows.append(_recon(ReasonCode.ORDER_ADOPTED, b, now, detail + f"; adopted under {UNKNOWN_STRATEGY}"))
        if b.broker_order_id:
            state.broker_ids[b.broker_order_id] = cid
        if b.symbol not in state.frozen_symbols:
            state.frozen_symbols[b.symbol] = ReasonCode.ORDER_ADOPTED
            rows.append(state.ledger.set_frozen(b.symbol, True, ReasonCode.ORDER_ADOPTED, now))
        log.warning("%s: adopted as %s under %s, symbol frozen reason=ORDER_ADOPTED", detail, cid, UNKNOWN_STRATEGY)
        adopted.append(order)
    return adopted, rows


def _recon(kind: str, b: BrokerOrder, now: datetime, detail: str) -> ReconRecord:
    return ReconRecord(recon_id=new_id("rc"), ts=now, kind=kind, symbol=b.symbol, detail=detail)
