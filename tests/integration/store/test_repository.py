"""The read side: repository filters, the merged view over database + journal, the rebuild."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.core.types import IntentStatus, OrderState, PositionRecord
from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.repository import MergedReader, Repository

from . import factories as f


@pytest.fixture
def repo(engine: AsyncEngine, instance_id: str) -> Repository:
    return Repository(engine, instance_id)


async def test_repository_filters_and_order(
    repo: Repository, journal: Journal, engine: AsyncEngine, instance_id: str
) -> None:
    journal.append(
        [
            f.intent(
                i,
                strategy="KMP" if i % 2 else "KPR",
                symbol=f"S{i % 3}",
                status=IntentStatus.REJECTED if i % 5 == 0 else IntentStatus.ACCEPTED,
            )
            for i in range(30)
        ]
    )
    journal.append([f.order(i, state=OrderState.FILLED if i < 10 else OrderState.SUBMITTED) for i in range(20)])
    journal.append([f.fill(i, symbol="S1") for i in range(10)])
    await Drainer(journal, engine, instance_id).drain_all()

    got = await repo.list_intents()
    assert [r.intent.intent_id for r in got] == [f"int-{i:06d}" for i in reversed(range(30))]  # newest first
    assert {r.intent.strategy_id for r in await repo.list_intents(strategy_id="KMP")} == {"KMP"}
    rej = await repo.list_intents(status="REJECTED")
    assert [r.intent.intent_id for r in rej] == [f"int-{i:06d}" for i in (25, 20, 15, 10, 5, 0)]
    assert len(await repo.list_intents(symbol="S1", strategy_id="KMP", limit=3)) == 3
    assert len(await repo.list_intents(since=f.ts(20))) == 10
    assert (await repo.get_intent("int-000004")) == f.intent(4, strategy="KPR", symbol="S1")
    assert (await repo.find_intent_by_key("idem-000007")).intent.intent_id == "int-000007"
    assert await repo.get_intent("nope") is None

    assert len(await repo.list_orders()) == 20
    assert {o.order_id for o in await repo.list_orders(open_only=True)} == {f"ord-{i:06d}" for i in range(10, 20)}
    assert (await repo.get_order("ord-000003")).state is OrderState.FILLED
    assert len(await repo.list_fills(symbol="S1", since=f.ts(7))) == 5


async def test_merged_reader_shows_undrained_rows(
    repo: Repository, journal: Journal, engine: AsyncEngine, instance_id: str
) -> None:
    drainer = Drainer(journal, engine, instance_id)
    journal.append([f.intent(i) for i in range(5)] + [f.order(i) for i in range(5)])
    await drainer.drain_all()
    # accepted while the database lags (nothing drained): only the journal has these
    journal.append([f.intent(i) for i in range(5, 8)])
    journal.append([f.order(1, state=OrderState.FILLED, filled=10), f.order(6)])
    reader = MergedReader(repo, journal)

    assert len(await repo.list_intents()) == 5
    intents = await reader.list_intents()
    assert [r.intent.intent_id for r in intents] == [f"int-{i:06d}" for i in reversed(range(8))]
    assert (await reader.get_intent("int-000006")) == f.intent(6)
    assert (await reader.find_intent_by_key("idem-000007")).intent.intent_id == "int-000007"
    assert (await reader.find_intent_by_key("idem-000002")).intent.intent_id == "int-000002"
    assert await reader.get_intent("int-999999") is None

    # journal images win and filters apply after merging
    assert (await reader.get_order("ord-000001")).state is OrderState.FILLED
    open_ids = {o.order_id for o in await reader.list_orders(open_only=True)}
    assert open_ids == {"ord-000000", "ord-000002", "ord-000003", "ord-000004", "ord-000006"}
    assert [o.order_id for o in await reader.list_orders(limit=2)] == ["ord-000006", "ord-000004"]

    await drainer.drain_all()  # after the drain the database alone says the same
    assert [r.intent.intent_id for r in await repo.list_intents()] == [r.intent.intent_id for r in intents]
    assert {o.order_id for o in await repo.list_orders(open_only=True)} == open_ids


async def test_merged_reader_during_an_outage(
    repo: Repository, journal: Journal, engine: AsyncEngine, down_engine: AsyncEngine, instance_id: str
) -> None:
    drainer = Drainer(journal, engine, instance_id)
    journal.append([f.intent(0)])
    await drainer.drain_all()
    drainer.engine = down_engine
    journal.append([f.intent(1)])  # accepted during the outage
    await drainer.drain_once()
    assert not drainer.db_ok

    down_reader = MergedReader(Repository(down_engine, instance_id), journal)  # the read fails
    ids = [r.intent.intent_id for r in await down_reader.list_intents()]
    assert ids == ["int-000001", "int-000000"]  # journal only, incl. drained entries it still holds
    assert down_reader.degraded
    assert (await down_reader.get_intent("int-000001")) == f.intent(1)

    known_down = MergedReader(repo, journal, db_ok=lambda: drainer.db_ok)  # no DB call at all
    assert [r.intent.intent_id for r in await known_down.list_intents()] == ids
    assert known_down.degraded

    drainer.engine = engine
    await drainer.drain_all()
    back = MergedReader(repo, journal, db_ok=lambda: drainer.db_ok)
    assert [r.intent.intent_id for r in await back.list_intents()] == ids and not back.degraded


async def test_load_state_for_rebuild(
    repo: Repository, journal: Journal, engine: AsyncEngine, instance_id: str
) -> None:
    drainer = Drainer(journal, engine, instance_id)
    records = f.one_of_each(1) + f.one_of_each(2)
    journal.append(records)
    journal.append([f.order(9, state=OrderState.CANCELLED), f.intent(3, received=f.ts(-86400))])
    await drainer.drain_all()
    # after the last drain, before the crash: a position change and an order completing
    pos = PositionRecord(symbol="SYM1", real_qty=0, avg_price=0.0, updated_at=f.ts(50))
    journal.append([pos, f.order(2, state=OrderState.FILLED, filled=10), f.intent(4)])

    state = await MergedReader(repo, journal).load_state(trading_day="2026-02-27", intents_since=f.ts(-3600))
    assert {p.symbol: p.real_qty for p in state["positions"]} == {"SYM1": 0, "SYM2": 15}
    assert len(state["allocations"]) == 2
    # working orders and every order of the day (a late fill must find its order)
    assert {o.order_id for o in state["orders"]} == {"ord-000001", "ord-000002", "ord-000009"}
    assert {f.execution_id for f in state["fills"]} == {r.execution_id for r in records if r.TABLE == "fills"}
    assert {r.intent.intent_id for r in state["intents"]} == {"int-000001", "int-000002", "int-000004"}
    assert {s.strategy_id for s in state["strategy_state"]} == {"S1", "S2"}
    assert {s.key for s in state["oms_state"]} == {"state1", "state2"}
    assert {r.strategy_id for r in state["risk_daily_strategy"]} == {"S1", "S2"}
    assert state["risk_daily_portfolio"] == []  # factories use other days
    db_only = await repo.load_state(trading_day="2026-02-27", intents_since=f.ts(-3600))
    assert {o.order_id for o in db_only["orders"]} == {"ord-000001", "ord-000002", "ord-000009"}
    old = await MergedReader(repo, journal).load_state(trading_day="2026-02-27", intents_since=f.ts(86400))
    assert [o.order_id for o in old["orders"]] == ["ord-000001"] and old["fills"] == []  # next day: working only
    assert len(db_only["intents"]) == 2 and all(p.real_qty == 15 for p in db_only["positions"])
    everything = await repo.load_state()
    assert len(everything["intents"]) == 3 and len(everything["risk_daily_portfolio"]) == 2


async def test_counts(repo: Repository, journal: Journal, engine: AsyncEngine, instance_id: str) -> None:
    assert set((await repo.counts()).values()) == {0}
    journal.append(f.one_of_each(1))
    await Drainer(journal, engine, instance_id).drain_all()
    assert set((await repo.counts()).values()) == {1}
