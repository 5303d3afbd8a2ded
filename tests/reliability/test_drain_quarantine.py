"""The journal → Postgres drain cannot be poisoned: a row the database refuses is quarantined (kept in the
journal's ``journal_rejects``, counted on ``/health`` and ``/metrics``, logged with reason=DRAIN_REJECTED)
and the rows behind it still reach Postgres, once. A database outage is never mistaken for a refusal.

The refused rows are real journal entries that real Postgres refuses: NUL in a ``text`` column, ``\\u0000``
and ``Infinity`` inside ``jsonb``, an integer beyond ``BIGINT``. The API refuses such input
(tests/reliability/test_bad_input.py); here they are appended to the journal directly, standing for any
future path that lets one through.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from oms.core.types import AuditRecord, ReconRecord
from oms.settings import StrategyConfig, load_config
from oms.store import codec
from oms.store.drain import is_connectivity_error
from tests.support.oms_server import STRATEGY_KEYS, oms_settings, running_oms
from tests.support.pg import create_database, drop_database, fetch_value, pg_url
from tests.support.proxy import SwitchableProxy
from tests.support.wait import until

KMP = STRATEGY_KEYS["KMP"]
NOW = datetime(2026, 2, 27, 0, 30, tzinfo=UTC)


def good(i: int) -> AuditRecord:
    return AuditRecord(f"qa-good-{i}", NOW, "test", "quarantine_probe", f"target-{i}", {"i": i, "note": "정상"})


def refused_rows() -> list[AuditRecord | ReconRecord]:
    """One row per way Postgres refuses a value (each a SQLSTATE class 22 error or a driver DataError)."""
    return [
        AuditRecord("qa-bad-nul-text", NOW, "test", "quarantine_probe", "ta\x00rget"),
        AuditRecord("qa-bad-nul-json", NOW, "test", "quarantine_probe", None, {"note": "a\x00b"}),
        AuditRecord("qa-bad-inf-json", NOW, "test", "quarantine_probe", None, {"pnl": float("inf")}),
        ReconRecord("qa-bad-bigint", NOW, "CYCLE_OK", "005930", broker_qty=2**63),
    ]


def settings_for(tmp_path: Path, url: str) -> tuple[object, object]:
    config = load_config()
    config.strategies = {s: StrategyConfig(max_intents_per_min=100_000) for s in STRATEGY_KEYS}
    return oms_settings(tmp_path, url), config


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


async def pg_count(url: str, sql: str) -> int:
    return int(await fetch_value(url, sql))


async def test_refused_rows_are_quarantined_and_the_rows_behind_them_reach_postgres(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Tried: four rows Postgres refuses (NUL in text, \\u0000 and Infinity in jsonb, an int beyond BIGINT)
    appended in one journal batch between five good rows, then a good intent over HTTP; then a restart.
    Asserts: the four are quarantined — kept byte for byte in journal_rejects, counted on /health
    (journal_quarantined) and /metrics (oms_journal_quarantined_rows), logged with reason=DRAIN_REJECTED —
    and absent from Postgres; every good row and the intent reach Postgres exactly once; the count survives
    a restart and nothing is copied twice."""
    caplog.set_level(logging.ERROR, logger="oms.store.drain")
    name, url = create_database()
    settings, config = settings_for(tmp_path, url)
    bad = refused_rows()
    goods = [good(i) for i in range(5)]
    try:
        async with running_oms(settings, config) as oms:  # type: ignore[arg-type]
            journal = oms.runtime.journal
            assert journal is not None
            assert (await oms.drained())["journal_quarantined"] == 0
            interleaved = [goods[0], bad[0], goods[1], bad[1], goods[2], bad[2], goods[3], bad[3], goods[4]]
            journal.append(interleaved)
            reply = await oms.intent(
                KMP,
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="005930",
                desired_qty=1,
                constraints={"order_type": "MARKETABLE_LIMIT"},
                idempotency_key=uuid.uuid4().hex,
            )
            assert reply.status_code == 200, reply.text
            intent_id = reply.json()["intent_id"]

            health = await oms.drained()
            assert health["journal_quarantined"] == 4, health
            assert health["db"] == "ok" and health["journal_backlog"] == 0, health
            text = (await oms.http.get("/metrics")).text
            assert metric(text, "oms_journal_quarantined_rows") == 4

            parked = {entry.key: (entry.record(), error) for entry, error in journal.rejects()}
            assert set(parked) == {codec.record_key(r) for r in bad}
            for rec in bad:
                kept, error = parked[codec.record_key(rec)]
                assert kept == rec, "a quarantined row is kept as it was journaled"
                assert error, "the database's refusal is kept with it"
            rejected_logs = [r for r in caplog.records if "reason=DRAIN_REJECTED" in r.getMessage()]
            assert len(rejected_logs) == 4, [r.getMessage() for r in rejected_logs]

        good_sql = "SELECT count(*) FROM audit_log WHERE audit_id LIKE 'qa-good-%'"
        assert await pg_count(url, good_sql) == 5
        assert await pg_count(url, "SELECT count(*) FROM audit_log WHERE audit_id LIKE 'qa-bad-%'") == 0
        assert await pg_count(url, "SELECT count(*) FROM recon_log WHERE recon_id LIKE 'qa-bad-%'") == 0
        assert await pg_count(url, f"SELECT count(*) FROM intents WHERE intent_id = '{intent_id}'") == 1
        assert await fetch_value(url, "SELECT payload->>'note' FROM audit_log WHERE audit_id = 'qa-good-3'") == "정상"
        totals = {
            t: await pg_count(url, f"SELECT count(*) FROM {t}") for t in ("intents", "orders", "audit_log", "recon_log")
        }

        async with running_oms(settings, config) as again:  # type: ignore[arg-type]
            health = await again.drained()
            assert health["journal_quarantined"] == 4, "the quarantine is kept across a restart"
            assert metric((await again.http.get("/metrics")).text, "oms_journal_quarantined_rows") == 4
        assert await pg_count(url, good_sql) == 5
        assert await pg_count(url, "SELECT count(*) FROM intents") == totals["intents"]
        assert await pg_count(url, "SELECT count(*) FROM orders") >= totals["orders"]
        assert await pg_count(url, "SELECT count(DISTINCT intent_id) FROM intents") == totals["intents"]
    finally:
        drop_database(name)


async def test_an_outage_is_not_a_refusal(tmp_path: Path) -> None:
    """Tried: Postgres goes away (a proxy cuts every connection) while the journal holds good rows, one row
    Postgres refuses, and intents sent during the outage; the drain retries several times; then Postgres
    comes back. Asserts: nothing is quarantined while the database is unreachable (every row is kept
    pending); once it is back exactly the one refused row is quarantined and every other row — the good
    ones and the intents — reaches Postgres exactly once."""
    name, _ = create_database()
    proxy = await SwitchableProxy().start()
    url = pg_url(name, port=proxy.port)
    settings, config = settings_for(tmp_path, url)
    bad = refused_rows()[0]
    try:
        async with running_oms(settings, config) as oms:  # type: ignore[arg-type]
            drainer, journal = oms.runtime.drainer, oms.runtime.journal
            assert drainer is not None and journal is not None
            await oms.drained()
            proxy.go_down()
            journal.append([good(10), bad, good(11)])
            replies = [
                await oms.intent(
                    KMP,
                    intent_type="CANCEL_ORDERS",
                    strategy_id="KMP",
                    symbol="*",
                    idempotency_key=f"outage-{i}",
                )
                for i in range(3)
            ]
            assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
            failures = drainer.failures
            await until(lambda: drainer.failures >= failures + 3, timeout=30, what="three failed drain attempts")
            health = (await oms.http.get("/health")).json()
            assert health["db"] == "unavailable" and health["journal_quarantined"] == 0, health
            assert health["journal_backlog"] >= 6, health

            proxy.go_up()
            health = await oms.drained()
            assert health["journal_quarantined"] == 1, health
            [(entry, _error)] = journal.rejects()
            assert entry.record() == bad
            intents = await oms.get("/api/v1/intents", limit=5000)
        assert await pg_count(url, "SELECT count(*) FROM audit_log WHERE audit_id IN ('qa-good-10', 'qa-good-11')") == 2
        assert await pg_count(url, "SELECT count(*) FROM audit_log WHERE audit_id LIKE 'qa-bad-%'") == 0
        assert await pg_count(url, "SELECT count(*) FROM intents") == len(intents)
        assert await pg_count(url, "SELECT count(DISTINCT intent_id) FROM intents") == len(intents)
        keys = await pg_count(url, "SELECT count(*) FROM intents WHERE idempotency_key LIKE '%outage-%'")
        assert keys == 3
    finally:
        await proxy.close()
        drop_database(name)


def test_an_outage_while_handling_a_refusal_is_still_an_outage() -> None:
    """Tried: the exception chains the drain sees — a connection lost while a refused batch is being handled
    (so the refusal rides along as its implicit ``__context__``), and a value the driver cannot encode
    wrapped in a bare DBAPIError. Asserts: the first is an outage (wait, quarantine nothing), the second
    is not (the row is quarantined)."""
    refusal = sa_exc.DBAPIError("INSERT", {}, ValueError("invalid byte sequence for encoding UTF8: 0x00"))
    refusal.orig.sqlstate = "22021"  # type: ignore[union-attr]
    assert not is_connectivity_error(refusal)
    outage: BaseException | None = None
    try:
        raise refusal
    except sa_exc.DBAPIError:
        try:
            raise sa_exc.InterfaceError("INSERT", {}, ConnectionResetError("connection was closed"))
        except sa_exc.InterfaceError as lost:
            outage = lost
    assert outage is not None and outage.__context__ is refusal
    assert is_connectivity_error(outage)
    wrapped = sa_exc.DBAPIError("INSERT", {}, OverflowError("value out of int64 range"))
    assert not is_connectivity_error(wrapped)
