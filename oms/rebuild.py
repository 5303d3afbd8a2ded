"""State rebuild after a start: the rows of database + journal put back into :class:`OmsState`."""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo

from broker_core.clock import KST, Clock
from oms.core.intents import IntentService
from oms.core.risk import LossLevel
from oms.core.state import OmsState
from oms.core.types import (
    AllocationRecord,
    FillRecord,
    IntentRecord,
    OmsStateRecord,
    OrderRecord,
    PositionRecord,
    RiskDailyPortfolioRecord,
    RiskDailyStrategyRecord,
    StrategyStateRecord,
)
from oms.store.repository import MergedReader

log = logging.getLogger("oms.rebuild")


async def rebuild_state(
    st: OmsState, reader: MergedReader, clock: Clock, intents: IntentService | None, tz: ZoneInfo = KST
) -> None:
    """Load today's view (positions, allocations, orders, fills, today's intents, flags, daily risk); today
    is the date in the market's zone ``tz``."""
    now = clock.now().astimezone(tz)
    day = now.date()
    rows = await reader.load_state(str(day), intents_since=datetime.combine(day, dtime(0, 0), tz))
    if reader.degraded:
        log.warning("state rebuilt from the journal alone (database unavailable) reason=DB_UNAVAILABLE")
    positions = list(rows.get(PositionRecord.TABLE, []))
    allocations = list(rows.get(AllocationRecord.TABLE, []))
    st.ledger.load(positions, allocations)
    for p in positions:
        if p.frozen:
            st.frozen_symbols[p.symbol] = p.freeze_reason or "FROZEN"
    for o in rows.get(OrderRecord.TABLE, []):
        st.track(o)
        if o.broker_order_id:
            st.broker_ids[o.broker_order_id] = o.order_id
    for f in rows.get(FillRecord.TABLE, []):
        st.seen_executions.add(f.execution_id)
    for rec in rows.get(IntentRecord.TABLE, []):
        st.intents_by_key[rec.intent.idempotency_key] = rec
        if rec.result.order_id and rec.intent.intent_type.value == "ENTER":
            st.order_meta[rec.result.order_id] = rec.intent.risk_payload
    for s in rows.get(StrategyStateRecord.TABLE, []):
        st.strategies[s.strategy_id] = s
    for flags in rows.get(OmsStateRecord.TABLE, []):
        st.flags = flags
    today = str(day)
    for d in rows.get(RiskDailyPortfolioRecord.TABLE, []):
        if d.trading_day == today:
            st.daily_portfolio = d
            if d.halted and intents is not None:
                intents.loss_latch.restore(day, LossLevel.HALT)
    for ds in rows.get(RiskDailyStrategyRecord.TABLE, []):
        if ds.trading_day == today:
            st.daily_strategy[ds.strategy_id] = ds
    st.trading_day = day
    log.info(
        "state rebuilt: %d positions, %d allocations, %d orders, %d fills, %d intents",
        len(positions),
        len(allocations),
        len(st.orders),
        len(st.seen_executions),
        len(st.intents_by_key),
    )
