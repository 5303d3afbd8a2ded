"""Several OMS instances (hosts) share one database without colliding."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from oms.core.types import OrderState
from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.repository import Repository

from . import factories as f
from .test_drain import assert_db_holds


async def test_same_natural_keys_in_two_instances(engine: AsyncEngine, tmp_path: Path, instance_id: str) -> None:
    a_id, b_id = f"{instance_id}-vps1", f"{instance_id}-vps2"
    # identical natural keys (intent ids, idempotency keys, execution ids, symbols...) on both hosts
    a_records = [r for i in range(5) for r in f.one_of_each(i)]
    b_records = [r for i in range(5) for r in f.one_of_each(i)]
    b_records[1] = f.order(0, state=OrderState.CANCELLED)  # same key, different image
    ja, jb = Journal(tmp_path / "a.sqlite"), Journal(tmp_path / "b.sqlite")
    try:
        ja.append(a_records)
        jb.append(b_records)
        assert await Drainer(ja, engine, a_id).drain_all() == len(a_records)
        assert await Drainer(jb, engine, b_id).drain_all() == len(b_records)
        await assert_db_holds(engine, a_id, a_records)
        await assert_db_holds(engine, b_id, b_records)
        assert (await Repository(engine, a_id).get_order("ord-000000")).state is OrderState.SUBMITTED
        assert (await Repository(engine, b_id).get_order("ord-000000")).state is OrderState.CANCELLED
        assert (await Repository(engine, a_id).find_intent_by_key("idem-000003")) is not None
        assert len(await Repository(engine, b_id).list_fills()) == 5
    finally:
        ja.close()
        jb.close()
