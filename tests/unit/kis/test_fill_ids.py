"""Execution ids are stable across the two fill paths: notices (push) and the daily query (poll).

The adapter is built without connecting; notices and daily-query rows are fed to it as the KIS
parsers would produce them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from broker_core.clock import KST, ManualClock
from broker_core.kis.api import DailyOrder
from broker_core.kis.broker import KisBroker
from broker_core.kis.parsers import ExecutionNotice
from broker_core.kis.settings import KisCredentials, KisSettings
from broker_core.kis.store import PLACED
from broker_core.models import OrderStatus, OrderType, OrderUpdate, Side

DAY = "20260227"


def _broker() -> KisBroker:
    settings = KisSettings(
        is_paper=True,
        credentials=KisCredentials("k", "s"),
        account_no="50000000",
        hts_id="me",
        rest_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9",
    )
    broker = KisBroker(settings, clock=ManualClock(datetime(2026, 2, 27, 10, 0, tzinfo=KST)))
    now = broker.clock.now()
    broker.store.record_sending("c1", DAY, "005930", Side.BUY, 10, OrderType.LIMIT, 72000.0, "00", now)
    broker.store.set_placed("c1", "0000000007", "06590", now)
    return broker


def _notice(qty: int, price: float, hhmmss: str) -> ExecutionNotice:
    return ExecutionNotice(
        hts_id="me",
        account="5000000001",
        order_no="0000000007",
        orig_order_no="",
        side=Side.BUY,
        rctf_cls="0",
        order_kind="00",
        symbol="005930",
        fill_qty=qty,
        fill_price=price,
        time=hhmmss,
        refused=False,
        is_fill=True,
        acpt_yn="2",
        branch="06590",
        order_qty=10,
        order_price=72000,
        name="",
    )


def _row(filled: int, amount: float) -> DailyOrder:
    return DailyOrder(
        ord_dt=DAY,
        branch="06590",
        odno="0000000007",
        orig_odno="",
        side=Side.BUY,
        symbol="005930",
        name="",
        ord_dvsn_cd="00",
        qty=10,
        price=72000,
        ord_tmd="095959",
        filled_qty=filled,
        avg_price=amount / filled if filled else 0,
        filled_amount=amount,
        cancel_yn=False,
        cancel_confirmed_qty=0,
        remaining_qty=10 - filled,
        rejected_qty=0,
    )


def _drain(queue: asyncio.Queue[OrderUpdate]) -> list[OrderUpdate]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_notice_then_daily_query_gives_the_same_execution_ids() -> None:
    b = _broker()
    stream = b.order_updates()
    b._on_notice(_notice(4, 72000, "100001"))
    b._on_notice(_notice(6, 71900, "100002"))
    pushed = [u.fill for u in _drain(stream.queue) if u.fill is not None]  # type: ignore[attr-defined]
    assert [(f.execution_id, f.qty, f.price) for f in pushed] == [
        ("KIS-20260227-0000000007-4", 4, 72000),
        ("KIS-20260227-0000000007-10", 6, 71900),
    ]
    assert b._sync_rows(DAY, [_row(10, 4 * 72000 + 6 * 71900)]) == []
    assert [f.execution_id for f in b.store.fills(DAY)] == [f.execution_id for f in pushed]
    order = b._build(b.store.get("c1"), [_row(10, 4 * 72000 + 6 * 71900)])  # type: ignore[arg-type]
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10


async def test_daily_query_first_then_late_notices_never_double_count() -> None:
    b = _broker()
    new = b._sync_rows(DAY, [_row(7, 4 * 72000 + 3 * 71900)])
    assert [(f.execution_id, f.qty) for f in new] == [("KIS-20260227-0000000007-7", 7)]
    assert abs(new[0].price - (4 * 72000 + 3 * 71900) / 7) < 1e-3
    b._on_notice(_notice(4, 72000, "100001"))  # already covered by the query
    b._on_notice(_notice(3, 71900, "100002"))  # already covered
    b._on_notice(_notice(3, 71800, "100003"))  # new: brings the order to 10
    fills = b.store.fills(DAY)
    assert [(f.execution_id, f.qty) for f in fills] == [
        ("KIS-20260227-0000000007-7", 7),
        ("KIS-20260227-0000000007-10", 3),
    ]
    assert sum(f.qty for f in fills) == 10
    assert b._sync_rows(DAY, [_row(10, 4 * 72000 + 3 * 71900 + 3 * 71800)]) == []


async def test_notices_before_the_order_reply_are_replayed_once_it_is_known() -> None:
    b = _broker()
    stream = b.order_updates()
    early = ExecutionNotice(
        hts_id="me",
        account="",
        order_no="0000000009",
        orig_order_no="",
        side=Side.BUY,
        rctf_cls="0",
        order_kind="00",
        symbol="000660",
        fill_qty=2,
        fill_price=150000,
        time="100005",
        refused=False,
        is_fill=True,
        acpt_yn="2",
        branch="06590",
        order_qty=2,
        order_price=150000,
        name="",
    )
    b._on_notice(early)
    assert _drain(stream.queue) == []  # type: ignore[attr-defined]
    now = b.clock.now()
    b.store.record_sending("c2", DAY, "000660", Side.BUY, 2, OrderType.LIMIT, 150000.0, "00", now)
    b.store.set_placed("c2", "0000000009", "06590", now)
    assert b.store.get("c2").state == PLACED  # type: ignore[union-attr]
    b._replay_orphans("0000000009")
    [update] = _drain(stream.queue)  # type: ignore[attr-defined]
    assert update.fill is not None and update.fill.execution_id == "KIS-20260227-0000000009-2"
    assert update.order.status is OrderStatus.FILLED
