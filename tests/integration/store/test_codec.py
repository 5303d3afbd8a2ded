"""Codec round trips for every record kind: in memory, through the journal's JSON, through the DB."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.core.types import RECORD_TYPES, IntentStatus, OrderState
from oms.store import codec
from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.repository import Repository

from . import factories as f


def test_models_and_records_agree() -> None:
    assert codec.schema_mismatches() == []


def test_factories_cover_every_record_type() -> None:
    assert {type(r) for r in f.one_of_each()} == set(RECORD_TYPES)


@pytest.mark.parametrize("record", f.one_of_each(3), ids=lambda r: type(r).__name__)
def test_round_trip_in_memory_and_json(record: object) -> None:
    table, row = codec.to_row(record, "inst-A")
    assert row["oms_instance_id"] == "inst-A"
    assert codec.from_row(table, row) == record
    # the journal's form: JSON text without the instance id
    table2, bare = codec.to_row(record, None)
    assert table2 == table and "oms_instance_id" not in bare
    back = codec.from_row(table, codec.row_from_json(table, codec.row_to_json(bare)))
    assert back == record
    assert type(back) is type(record)


def test_datetimes_come_back_aware_utc_and_enums_typed() -> None:
    rec = f.intent(1, status=IntentStatus.DEFERRED)
    table, row = codec.to_row(rec, None)
    back = codec.from_row(table, codec.row_from_json(table, codec.row_to_json(row)))
    assert back.intent.received_at == rec.intent.received_at
    assert back.intent.received_at.utcoffset().total_seconds() == 0
    assert back.intent.constraints.expiry_ts == rec.intent.constraints.expiry_ts
    assert type(back.intent.constraints.order_type).__name__ == "OrderType"
    assert back.result.status is IntentStatus.DEFERRED
    assert back.result.cooldown_until == rec.result.cooldown_until


def test_naive_datetime_is_refused() -> None:
    rec = f.order(1)
    rec.updated_at = datetime(2026, 2, 27, 9, 0)
    with pytest.raises(ValueError, match="naive"):
        codec.to_row(rec, None)


def test_keys() -> None:
    assert codec.record_key(f.order(7)) == codec.key_text("orders", "ord-000007")
    alloc = f.one_of_each(2)[5]
    assert codec.record_key(alloc) == '["SYM2","KMP"]'


async def test_round_trip_through_database(engine: AsyncEngine, journal: Journal, instance_id: str) -> None:
    records = f.one_of_each(5) + [f.order(6, state=OrderState.PARTIALLY_FILLED, filled=4)]
    journal.append(records)
    drainer = Drainer(journal, engine, instance_id)
    assert await drainer.drain_all() == len(records)
    assert drainer.db_ok, drainer.last_error
    repo = Repository(engine, instance_id)
    for rec in records:
        table, row = codec.to_row(rec, None)
        key = codec.key_values(table, row)
        stored = await repo.get_row(table, *key)
        assert stored is not None, (table, key)
        assert stored["oms_instance_id"] == instance_id
        assert stored["copied_at"].tzinfo is not None
        assert codec.from_row(table, stored) == rec, table
