"""``trader sim`` over two sessions: one run of the same processes on the multi-day clock.

Tried: a swing strategy buys on day 1 and holds; the sim runs through the night (skipped by the clock)
into day 2 without restarting any process. Asserted: on day 2 the OMS still allocates the position to
the strategy with the entry time of the day-1 fill, the OMS and the strategy each started exactly once,
and the paper account, the database and the report agree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from broker_core.paper.data import resolve_data_dir
from tests.e2e._support import PROJECT_ROOT, db_positions, decisions, paper_positions, rows, wait_for

pytestmark = pytest.mark.e2e
DAY1, DAY2 = "2026-02-26", "2026-02-27"


def test_position_opened_on_day_one_is_held_on_day_two_with_its_entry_time(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    (config_dir / "hold.yaml").write_text("symbol: '005930'\nqty: 3\n")
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK"))}
    env.update(TRADER_STRATEGY_PACKAGES="tests.e2e.fixtures", TRADER_CONFIG_DIR=str(config_dir))
    cmd = [
        sys.executable,
        "-m",
        "trader",
        "sim",
        "--from",
        DAY1,
        "--to",
        DAY2,
        "--strategies",
        "hold",
        "--until",
        "10:00",
        "--speed",
        "1200",
        "--data-dir",
        str(resolve_data_dir()),
        "--json-report",
        str(report_path),
    ]
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
    assert report["sessions"] == 2 and (report["from"], report["to"]) == (DAY1, DAY2)
    log = run_dir / "logs" / "hold.log"
    ds = decisions(log)
    entered = [d for d in ds if d.code == "HOLD_ENTER"]
    assert len(entered) == 1 and entered[0].value("status") in ("ACCEPTED", "EXECUTED"), [d.line for d in ds]
    reports = {d.value("day"): d for d in ds if d.code == "HOLD_ALLOCATION"}
    assert set(reports) == {DAY1, DAY2}, [d.line for d in ds]
    day1, day2 = reports[DAY1], reports[DAY2]
    assert day1.value("qty") == day2.value("qty") == 3
    entry = datetime.fromisoformat(str(day2.value("entry_ts")))
    assert entry == datetime.fromisoformat(str(day1.value("entry_ts")))
    assert entry.date().isoformat() == DAY1

    db = Path(report["database"])
    (fill,) = rows(db, "SELECT * FROM fills WHERE strategy_id = 'HOLD'")
    assert datetime.fromisoformat(str(fill["ts"])).date().isoformat() == DAY1
    (alloc,) = rows(db, "SELECT * FROM allocations WHERE strategy_id = 'HOLD'")
    assert alloc["qty"] == 3

    # one process each for the whole run: the OMS got ready once, the strategy started once
    oms_log = (run_dir / "logs" / "oms.log").read_text()
    assert oms_log.count(" ready: broker=") == 1
    assert log.read_text().count("HOLD started") == 1
    assert paper_positions(run_dir / "oms" / "paper_account.db") == db_positions(db) == {"005930": 3}
    shutil.rmtree(run_dir, ignore_errors=True)
