"""``trader demo --market us`` until 10:30 New York: the OMS on the paper US market and the scripted client,
as separate processes on one virtual clock, on the default day (2024-11-26) at 180×.

The scripted client buys five names at 09:35 and sells SPY again at 10:00 (its round trip); the run stops
at 10:30, so the other four stay open and the report says so. Checked:

- the demo exits 0, its report matches the database, and no process of the run is left;
- it TRADED: fills in the run's SQLite database, every order and fill price on the US cent grid;
- report.json / report.html / the PNGs are in the run folder, in USD with times in New York;
- the client's decisions (``decision code=SCRIPTED_...``) match the database: each entry's idempotency key is
  an intent, SPY's round trip is a closed trade, the positions left open are the ledger's = the paper
  broker's, named in the report's notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e._support import (
    PROJECT_ROOT,
    alive,
    children_of,
    codes,
    db_positions,
    decisions,
    intent_keys,
    paper_positions,
    rows,
    wait_for,
)

pytestmark = pytest.mark.e2e

SESSION = "2024-11-26"
SYMBOLS = {"SPY", "AAPL", "MSFT", "NVDA", "AMZN"}
SPEED = "180"
"""09:25 → 10:30 is 65 virtual minutes: 22 s of wall time at 180×, plus start-up and the report."""


def on_cent_grid(price: float) -> bool:
    return abs(price * 100 - round(price * 100)) < 1e-6


def test_us_demo_trades_on_the_cent_grid_in_new_york_time(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK"))}
    env["TRADER_RUNS_DIR"] = str(tmp_path / "runs")
    cmd = [sys.executable, "-m", "trader", "demo", "--market", "us", "--until", "10:30", "--speed", SPEED]
    cmd += ["--json-report", str(report_path)]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: set[int] = set()

    def finished() -> bool:
        seen.update(children_of(proc.pid))
        return proc.poll() is not None

    try:
        wait_for(finished, timeout=120, what="trader demo --market us to finish", interval=0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert proc.returncode == 0, f"trader demo --market us exited {proc.returncode}:\n{output[-4000:]}"
    assert len(seen) >= 2, f"expected the OMS and the scripted client as child processes, saw {seen}"
    assert not [p for p in seen if alive(p)], "a process of the demo is still running"

    # -- the launcher's checks: clean exits, report = database
    report = json.loads(report_path.read_text())
    run_dir = Path(report["run_dir"])
    assert run_dir.parent == tmp_path / "runs", run_dir
    db = Path(report["database"])
    assert report["session"] == SESSION and report["market"] == "us" and report["sessions"] == 1
    assert report["database_check"]["ok"], report["database_check"]
    assert report["exit_codes"].get("scripted") == 0 and report["exit_codes"].get("oms") in (0, -15), report

    # -- it traded, on the cent grid
    fills = rows(db, "SELECT * FROM fills")
    orders = rows(db, "SELECT * FROM orders")
    assert fills, f"no fill in {db}: {report.get('why_nothing_traded')}\n{output[-3000:]}"
    assert all(on_cent_grid(float(f["price"])) for f in fills), [f["price"] for f in fills]
    limits = [float(o["limit_price"]) for o in orders if o["limit_price"] is not None]
    assert limits and all(on_cent_grid(p) for p in limits), limits
    assert any(not float(p).is_integer() for p in limits), f"only whole-unit prices, not US cents: {limits}"
    scripted = report["strategies"]["SCRIPTED"]
    assert scripted["entries"] >= 1 and scripted["fills"] == len(fills), scripted

    # -- the report: files, USD, New York
    for name in ("report.json", "report.html", "equity.png", "drawdown.png", "pnl_by_strategy.png", "funnel.png"):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    assert report["currency"] == "USD" and report["timezone"] == "America/New_York", report
    html = (run_dir / "report.html").read_text()
    assert "USD" in html and "America/New_York" in html and "KRW" not in html
    assert "New York" in output and "USD" in output and "KST" not in output, output[-3000:]
    assert all(t[0].endswith("-05:00") for t in report["equity"]), report["equity"][:3]

    # -- the client's decisions = the database
    ds = decisions(run_dir / "logs" / "scripted.log")
    entries = [d for d in ds if d.code == "SCRIPTED_ENTRY"]
    assert {d.symbol for d in entries} == SYMBOLS, codes(ds)
    assert {str(d.value("key")) for d in entries} <= intent_keys(rows(db, "SELECT * FROM intents")), entries
    assert all(d.value("at").startswith(f"{SESSION}T09:3") for d in entries), [d.line for d in entries]
    round_trip = [d for d in ds if d.code == "SCRIPTED_EXIT"]
    assert [(d.symbol, d.value("reason")) for d in round_trip] == [("SPY", "ROUND_TRIP")], codes(ds)
    trades = report["trades"]
    assert [(t["symbol"], t["exit_reason"]) for t in trades] == [("SPY", "SCRIPTED_ROUND_TRIP")], trades
    assert trades[0]["exit_ts"].startswith(f"{SESSION}T10:0") and trades[0]["exit_ts"].endswith("-05:00"), trades

    # -- what the run left open: ledger = paper broker = the report, named in its notes
    left = {d.symbol: d.value("qty") for d in ds if d.code == "SCRIPTED_LEFT_OPEN"}
    assert set(left) == SYMBOLS - {"SPY"}, codes(ds)
    paper = paper_positions(run_dir / "oms" / "paper_account.db")
    assert report["open_positions"] == paper == db_positions(db) == left
    assert any("still open" in note and "AAPL" in note for note in report["notes"]), report["notes"]
