"""``trader sim`` with PCIM over two sessions on the sample transcripts (offline source, auto-approval of
simulations).

Tried: 2026-02-23 → 2026-02-24 until 10:00 at 600×. The multi-day clock skips the nights, so the night's
watchlist build runs at the morning jump and can end after the 08:00 approval opening (a run once traded
nothing: every item stayed PENDING until the freeze). Asserted: the list is auto-approved (labelled), PCIM
enters on day 1 inside 09:01–10:00 only, no intent is refused, it holds no WebSocket slot, the position is still
PCIM's on day 2 with its day-1 entry, and the paper account, the database and the report agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from broker_core.clock import KST
from broker_core.paper.data import resolve_data_dir
from tests.e2e._support import PROJECT_ROOT, db_positions, decisions, paper_positions, rows, wait_for

pytestmark = pytest.mark.e2e
DAY1, DAY2 = "2026-02-23", "2026-02-24"


def test_pcim_trades_its_auto_approved_list_in_the_morning_window_and_holds_overnight(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK"))}
    env["TRADER_RUNS_DIR"] = str(tmp_path / "runs")
    cmd = [sys.executable, "-m", "trader", "sim", "--from", DAY1, "--to", DAY2, "--strategies", "pcim"]
    cmd += ["--until", "10:00", "--speed", "600", "--data-dir", str(resolve_data_dir())]
    cmd += ["--json-report", str(report_path)]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None, timeout=240, what="trader sim to finish", interval=0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert proc.returncode == 0, f"trader sim exited {proc.returncode}:\n{output[-4000:]}"

    report = json.loads(report_path.read_text())
    run_dir, db = Path(report["run_dir"]), Path(report["database"])
    assert report["sessions"] == 2 and report["database_check"]["ok"], report["database_check"]
    ds = decisions(run_dir / "logs" / "pcim.log")
    built = Counter(d.value("session") for d in ds if d.code == "PCIM_WATCHLIST" and "candidates=" in d.line)
    assert built and max(built.values()) == 1, f"a session's watchlist built twice (morning jump race): {built}"
    approved = [d for d in ds if d.code == "PCIM_AUTO_APPROVED"]
    assert approved and all(d.value("approval_mode") == "AUTO_APPROVE(SIMULATION)" for d in approved)

    pcim = report["strategies"]["PCIM"]
    assert pcim["entries"] >= 1 and pcim["rejections"] == {}, (pcim, report.get("why_nothing_traded"))
    enters = rows(db, "SELECT * FROM intents WHERE strategy_id = 'PCIM' AND intent_type = 'ENTER'")
    for i in enters:
        local = _kst(i["received_at"])
        assert time(9, 1) <= local.time() <= time(10, 0), (i["symbol"], local)
        assert i["status"] in ("ACCEPTED", "EXECUTED"), i
    assert report["slots"]["leases"]["PCIM"]["peak"] == 0 and report["slots"]["peak_used"] == 0

    buys = rows(db, "SELECT * FROM fills WHERE strategy_id = 'PCIM' AND side = 'BUY'")
    assert buys and all(_kst(f["ts"]).date().isoformat() == DAY1 for f in buys)
    held = {a["symbol"]: a for a in rows(db, "SELECT * FROM allocations WHERE strategy_id = 'PCIM' AND qty > 0")}
    assert held, "the day-1 position is still PCIM's on day 2"
    for a in held.values():
        assert _kst(a["entry_ts"]).date().isoformat() == DAY1, a
    assert paper_positions(run_dir / "oms" / "paper_account.db") == db_positions(db)


def _kst(stored: object) -> datetime:
    """The database keeps UTC (naive in SQLite)."""
    dt = datetime.fromisoformat(str(stored))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(KST)
