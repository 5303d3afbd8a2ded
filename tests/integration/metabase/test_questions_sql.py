"""Every Metabase question's SQL on the real Postgres, read as ``trading_reader``, after a short run of the
OMS that produced intents (one rejected), fills, a closed trade and heartbeats: each question returns its
declared columns and rows, and the views' numbers equal what the OMS API says.

The reader is emulated with ``SET ROLE trading_reader`` (a NOLOGIN role created when missing, before the
migrations run, so the grants of revision 0002 are what lets it read)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.oms_server import Oms, oms_settings, running_oms
from tests.support.pg import create_database, drop_database
from tests.support.reader import READER, check_questions, ensure_reader_role, reader_connection
from tests.support.trading import ENTRIES, settle, trade_a_little

VIEWS = {
    "v_positions",
    "v_fills",
    "v_intents",
    "v_daily_pnl",
    "v_daily_pnl_account",
    "v_exposure_by_sector",
    "v_heatmap",
    "v_strategy_performance",
    "v_strategy_heartbeats",
    "v_recon_events",
    "v_risk_state",
}


def _close(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


async def _consistent_positions(oms: Oms, conn: asyncpg.Connection) -> tuple[dict[str, Any], list[asyncpg.Record]]:
    """The API's positions and v_positions at one moment: the marks are written from the same prices (retried
    when a tick moved a price in between)."""
    assert oms.runtime.marks is not None
    for _ in range(20):
        api = await oms.get("/api/v1/positions")
        await settle(oms)
        rows = await conn.fetch("SELECT * FROM v_positions WHERE oms_instance_id = 'test' ORDER BY symbol")
        if api == await oms.get("/api/v1/positions"):
            return api, rows
    raise AssertionError("prices kept moving between the API read and the marks")


async def test_every_question_on_postgres_as_the_reader(tmp_path: Path) -> None:
    await ensure_reader_role()
    name, url = create_database()
    try:
        async with running_oms(oms_settings(tmp_path, url)) as oms:
            run = await trade_a_little(oms)
            conn = await reader_connection(url)
            try:
                await _check_views(oms, conn, run)
                await check_questions(conn)
                denied = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.role_table_grants "
                    f"WHERE grantee = '{READER}' AND privilege_type = 'SELECT' AND table_name = ANY($1::text[])",
                    sorted(VIEWS),
                )
                assert denied == len(VIEWS), "SELECT on every view is granted to the reader"
            finally:
                await conn.close()
    finally:
        drop_database(name)


async def _check_views(oms: Oms, conn: asyncpg.Connection, run: dict[str, Any]) -> None:
    api_positions, rows = await _consistent_positions(oms, conn)
    assert [r["symbol"] for r in rows] == sorted(api_positions) == [ENTRIES["KPR"][0]]
    for r in rows:
        p = api_positions[r["symbol"]]
        assert r["qty"] == p["real_qty"] and _close(r["avg_price"], p["avg_price"])
        assert _close(r["last_price"], p["last_price"]), (dict(r), p)
        assert _close(r["market_value"], p["real_qty"] * p["last_price"])
        assert _close(r["unrealized_pnl"], p["real_qty"] * (p["last_price"] - p["avg_price"]))
        assert r["strategies"] == ", ".join(f"{s}:{a['qty']}" for s, a in sorted(p["allocations"].items()))
        assert r["sector"] not in (None, "UNKNOWN"), "the heat map has a sector for every held symbol"
    heat = await conn.fetch("SELECT * FROM v_heatmap WHERE oms_instance_id = 'test'")
    assert {h["symbol"] for h in heat} == set(api_positions)
    assert all(h["sector"] != "UNKNOWN" and h["value"] > 0 and h["day_pnl_pct"] is not None for h in heat)
    exposure = await conn.fetch("SELECT * FROM v_exposure_by_sector WHERE oms_instance_id = 'test'")
    assert _close(sum(e["market_value"] for e in exposure), sum(r["market_value"] for r in rows))
    assert _close(sum(e["share_pct"] for e in exposure), 100.0)

    fills = await oms.get("/api/v1/fills")
    orders = {o["order_id"]: o for o in await oms.get("/api/v1/orders")}
    intents = {i["intent_id"]: i for i in await oms.get("/api/v1/intents")}
    v_fills = {r["execution_id"]: r for r in await conn.fetch("SELECT * FROM v_fills WHERE oms_instance_id = 'test'")}
    assert set(v_fills) == {f["execution_id"] for f in fills} and fills
    first_fill: dict[str, datetime] = {}
    for f in fills:
        ts = datetime.fromisoformat(f["ts"])
        first_fill[f["order_id"]] = min(first_fill.get(f["order_id"], ts), ts)
    for f in fills:
        row = v_fills[f["execution_id"]]
        assert row["qty"] == f["qty"] and _close(row["price"], f["price"]) and row["side"] == f["side"]
        intent = intents[orders[f["order_id"]]["intent_id"]]
        expected = (first_fill[f["order_id"]] - datetime.fromisoformat(str(intent["received_at"]))).total_seconds()
        assert row["first_fill_latency_sec"] >= 0, "fill latency is non-negative"
        assert _close(float(row["first_fill_latency_sec"]), expected, 1e-6), (row["first_fill_latency_sec"], expected)
    assert any(r["slippage_bps"] is not None for r in v_fills.values()), "entries carry their decision price"

    v_intents = {r["intent_id"]: r for r in await conn.fetch("SELECT * FROM v_intents WHERE oms_instance_id = 'test'")}
    assert set(v_intents) == set(intents)
    for iid, i in intents.items():
        assert v_intents[iid]["decision"] == i["status"] and v_intents[iid]["reason_code"] == i["reason_code"]
    rejected = v_intents[run["rejected"]["intent_id"]]
    assert rejected["rejected"] and rejected["reason_code"] and rejected["reason"]

    strategies = await oms.get("/api/v1/strategies")
    daily = {r["strategy_id"]: r for r in await conn.fetch("SELECT * FROM v_daily_pnl WHERE oms_instance_id = 'test'")}
    for sid in ENTRIES:
        assert _close(daily[sid]["realized_pnl"], strategies[sid]["realized_pnl"]), (sid, dict(daily[sid]))
        assert daily[sid]["fills"] == strategies[sid]["fills_today"]
    perf = await conn.fetchrow(
        "SELECT * FROM v_strategy_performance WHERE oms_instance_id = 'test' AND strategy_id = 'KMP'"
    )
    assert perf["trades"] == 1 and _close(perf["total_pnl"], strategies["KMP"]["realized_pnl"])
    assert perf["avg_r"] is not None and perf["max_drawdown"] >= 0

    account = await oms.get("/api/v1/state/account")
    acct = await conn.fetchrow("SELECT * FROM v_daily_pnl_account WHERE oms_instance_id = 'test'")
    assert _close(acct["realized_pnl"], account["realized_pnl"]) and _close(
        acct["start_equity"], account["start_equity"]
    )
    risk = await conn.fetchrow("SELECT * FROM v_risk_state WHERE oms_instance_id = 'test'")
    assert risk["safe_mode"] is account["safe_mode"] is False

    beats = {r["strategy_id"]: r for r in await conn.fetch("SELECT * FROM v_strategy_heartbeats")}
    for sid in ENTRIES:
        assert beats[sid]["last_heartbeat"] == datetime.fromisoformat(strategies[sid]["last_heartbeat"])

    # the old runbook's SQL, as written
    recent = await conn.fetch(
        "SELECT strategy_id, intent_type, status, created_at FROM intents ORDER BY created_at DESC LIMIT 20"
    )
    assert len(recent) == len(intents) and all(r["created_at"] is not None for r in recent)
    trades = await conn.fetch("SELECT * FROM trades WHERE DATE(created_at) = DATE(exit_ts)")
    assert len(trades) == 1 and trades[0]["strategy_id"] == "KMP"
