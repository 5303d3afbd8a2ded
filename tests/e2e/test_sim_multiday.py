"""``trader sim --database-url`` over two sessions: one run of the same processes on the multi-day clock,
logging to the real Postgres the dashboards read.

Tried: a swing strategy buys on day 1 and holds; each day it also makes one round trip in another symbol and
sends one entry the OMS's risk refuses; the sim runs through the night (skipped by the clock) into day 2
without restarting any process. Asserted: on day 2 the OMS still allocates the position to the strategy
with the entry time of the day-1 fill; the OMS and the strategy each started exactly once; the paper
account, the database and the report agree; read as ``trading_reader``, every Metabase question returns
rows, the heat map has a sector and a value for every held symbol, and each fill's latency is non-negative
and equals the database's (first fill − intent received).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker_core.paper.data import resolve_data_dir
from tests.e2e._support import PROJECT_ROOT, decisions, paper_positions, wait_for
from tests.support.pg import create_database, drop_database, run_sync
from tests.support.reader import check_questions, ensure_reader_role, reader_connection

pytestmark = pytest.mark.e2e
DAY1, DAY2 = "2026-02-26", "2026-02-27"
HELD, FLIP = "005930", "000660"


def test_position_opened_on_day_one_is_held_on_day_two_and_the_dashboards_read_the_run(tmp_path: Path) -> None:
    run_sync(ensure_reader_role())
    name, url = create_database()
    try:
        _run_and_check(tmp_path, url)
    finally:
        drop_database(name)


def _run_and_check(tmp_path: Path, url: str) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    (config_dir / "hold.yaml").write_text(f"symbol: '{HELD}'\nqty: 3\nflip_symbol: '{FLIP}'\nreject_qty: 10000000\n")
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK", "DATABASE_URL"))}
    env.update(TRADER_STRATEGY_PACKAGES="tests.e2e.fixtures", TRADER_CONFIG_DIR=str(config_dir))
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)  # the form an operator's .env holds
    cmd = [sys.executable, "-m", "trader", "sim", "--from", DAY1, "--to", DAY2, "--strategies", "hold"]
    cmd += ["--start", "08:50", "--until", "10:00", "--speed", "1200", "--data-dir", str(resolve_data_dir())]
    cmd += ["--database-url", plain_url, "--json-report", str(report_path)]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None, timeout=240, what="trader sim to finish", interval=0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert proc.returncode == 0, f"trader sim exited {proc.returncode}:\n{output[-4000:]}"

    report = json.loads(report_path.read_text())
    run_dir = Path(report["run_dir"])
    instance = report["oms_instance_id"]
    assert instance == run_dir.name and report["database_check"]["ok"], report["database_check"]
    assert report["sessions"] == 2 and (report["from"], report["to"]) == (DAY1, DAY2)
    log = run_dir / "logs" / "hold.log"
    ds = decisions(log)
    entered = [d for d in ds if d.code == "HOLD_ENTER"]
    assert len(entered) == 1 and entered[0].value("status") in ("ACCEPTED", "EXECUTED"), [d.line for d in ds]
    assert [d.value("status") for d in ds if d.code == "HOLD_REJECTED"] == ["REJECTED", "REJECTED"]
    reports = {d.value("day"): d for d in ds if d.code == "HOLD_ALLOCATION"}
    assert set(reports) == {DAY1, DAY2}, [d.line for d in ds]
    day1, day2 = reports[DAY1], reports[DAY2]
    assert day1.value("qty") == day2.value("qty") == 3
    entry = datetime.fromisoformat(str(day2.value("entry_ts")))
    assert entry == datetime.fromisoformat(str(day1.value("entry_ts")))
    assert entry.date().isoformat() == DAY1

    db = run_sync(_database_rows(url, instance))
    held_fills = [f for f in db["fills"] if f["symbol"] == HELD]
    assert len(held_fills) == 1 and held_fills[0]["ts"].date().isoformat() == DAY1
    (alloc,) = [a for a in db["allocations"] if a["symbol"] == HELD]
    assert alloc["strategy_id"] == "HOLD" and alloc["qty"] == 3
    assert len({t["trade_id"] for t in db["trades"]}) == 2, "one round trip in the flip symbol per day"
    db_positions = {p["symbol"]: int(p["real_qty"]) for p in db["positions"] if p["real_qty"]}
    assert paper_positions(run_dir / "oms" / "paper_account.db") == db_positions == {HELD: 3}

    # one process each for the whole run: the OMS got ready once, the strategy started once
    oms_log = (run_dir / "logs" / "oms.log").read_text()
    assert oms_log.count(" ready: broker=") == 1
    assert log.read_text().count("HOLD started") == 1

    run_sync(_check_dashboards(url, instance, db))
    shutil.rmtree(run_dir, ignore_errors=True)


async def _database_rows(url: str, instance: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=5)
    try:
        out = {}
        for table in ("fills", "orders", "intents", "allocations", "positions", "trades"):
            rows = await conn.fetch(f"SELECT * FROM {table} WHERE oms_instance_id = $1", instance)
            out[table] = [dict(r) for r in rows]
        return out
    finally:
        await conn.close()


async def _check_dashboards(url: str, instance: str, db: dict[str, list[dict[str, Any]]]) -> None:
    conn = await reader_connection(url)
    try:
        await check_questions(conn)
        heat = await conn.fetch("SELECT * FROM v_heatmap WHERE oms_instance_id = $1", instance)
        assert {h["symbol"] for h in heat} == {HELD}, heat
        assert all(h["sector"] not in (None, "UNKNOWN") and h["value"] > 0 for h in heat), heat
        orders = {o["order_id"]: o for o in db["orders"]}
        received = {i["intent_id"]: i["received_at"] for i in db["intents"]}
        first_fill: dict[str, datetime] = {}
        for f in db["fills"]:
            first_fill[f["order_id"]] = min(first_fill.get(f["order_id"], f["ts"]), f["ts"])
        v_fills = await conn.fetch("SELECT * FROM v_fills WHERE oms_instance_id = $1", instance)
        assert len(v_fills) == len(db["fills"]) >= 5, "the hold, two flips in, two flips out"
        for row in v_fills:
            order = orders[row["order_id"]]
            expected = (first_fill[row["order_id"]] - received[order["intent_id"]]).total_seconds()
            assert row["first_fill_latency_sec"] >= 0, "fill latency is non-negative"
            assert abs(float(row["first_fill_latency_sec"]) - expected) < 1e-6, (dict(row), expected)
    finally:
        await conn.close()
