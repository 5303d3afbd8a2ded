"""``trader demo`` on its default day at its default speed (120×) until 10:05 (KMP's entry window ends at 10:00),
on a loaded machine.

Two CPU hogs keep both cores busy for the whole run (a new user's laptop doing something else). The
launcher starts the OMS (paper exchange replaying the day, SQLite) and KMP as separate processes on one
virtual clock that starts only once both are ready, stops them at 10:05 and writes its report. Checked:

- the demo TRADED: at least one entry and one fill (a run with no fill is a failure);
- the demo exits 0 and its report matches the database (intents, orders, fills);
- KMP loaded its premarket caches through the OMS proxy before the clock started, scanned at 09:15 (log and
  heartbeat), and
  either sent intents or logged, per candidate, the reason code that ended it;
- every KMP intent is in the database with its decision, and every ENTER KMP logged is among them;
- the ledger equals the paper broker's positions (report ← OMS API, database, paper account file);
- no process of the run is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker_core.paper.data import resolve_data_dir
from tests.e2e._support import (
    PROJECT_ROOT,
    alive,
    children_of,
    codes,
    db_positions,
    decisions,
    heartbeat_status,
    intent_keys,
    paper_positions,
    rows,
    wait_for,
)

pytestmark = pytest.mark.e2e

SESSION = "2026-02-04"
"""The README's default day (``trader.demo.DEFAULT_DAY``); the demo is run without ``--date``."""
ENDING_CODES = {
    "KMP_OR_RANGE",
    "KMP_VI_MISSING",
    "KMP_ACCEPT_TIMEOUT",
    "KMP_SUPPORT_LOST",
    "KMP_SLOT_DENIED",
    "KMP_GAP_SKIP",
    "KMP_ENTRY_REJECTED",
    "KMP_MISSED_FILL",
    "KMP_ENTRY",
    "KMP_WINDOW_END",
    "KMP_X_EOD",
    "KMP_X_RISK",
}
"""Codes that end a candidate's day (or send its entry); gate failures come on top of them."""


def test_demo_runs_kmp_through_its_entry_window(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK"))}
    cmd = [
        sys.executable,
        "-m",
        "trader",
        "demo",
        "--until",
        "10:05",
        "--data-dir",
        str(resolve_data_dir()),
        "--json-report",
        str(report_path),
    ]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _check_demo(proc, report_path)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)


def _check_demo(proc: subprocess.Popen[bytes], report_path: Path) -> None:
    seen: set[int] = set()

    def finished() -> bool:
        seen.update(children_of(proc.pid))
        return proc.poll() is not None

    try:
        wait_for(finished, timeout=170, what="trader demo to finish", interval=0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert proc.returncode == 0, f"trader demo exited {proc.returncode}:\n{output[-4000:]}"
    assert len(seen) >= 2, f"expected the OMS and KMP as child processes, saw {seen}"
    assert not [p for p in seen if alive(p)], "a process of the demo is still running"

    report = json.loads(report_path.read_text())
    run_dir = Path(report["run_dir"])
    db = Path(report["database"])
    kmp_log = run_dir / "logs" / "kmp.log"

    # -- the launcher's own checks: clean exits, report = database
    assert report["session"] == SESSION
    assert report["database_check"]["ok"], report["database_check"]
    assert report["exit_codes"].get("kmp") == 0, report["exit_codes"]
    assert report["exit_codes"].get("oms") in (0, -15), report["exit_codes"]
    counts = report["database_check"]["counts"]
    assert counts == {"intents": report["intent_count"], "orders": report["order_count"], "fills": report["fill_count"]}

    # -- it traded (the fixed report shape of ARCHITECTURE.md, "Command line")
    kmp = report["strategies"]["KMP"]
    assert kmp["entries"] >= 1 and kmp["fills"] >= 1, _no_trade_evidence(kmp, report, kmp_log)
    assert report["market"] == "krx" and report["sessions"] == 1 and report["equity"]
    assert (run_dir / "report.html").is_file() and (run_dir / "equity.png").is_file()

    # -- KMP got its data through the OMS and scanned at 09:15
    ds = decisions(kmp_log)
    pre = [d for d in ds if d.code == "KMP_PREMARKET_DATA"]
    assert pre, f"no KMP_PREMARKET_DATA in {kmp_log}"
    assert pre[0].value("with_baselines") > 0, (
        f"KMP got no 1m history through the OMS proxy ({pre[0].line}); the paper broker must serve past "
        "sessions' minute bars"
    )
    # loaded while the clock stood at its 07:55 start (before KMP's first heartbeat): done before the open
    assert pre[0].value("at") < f"{SESSION}T09:00", pre[0].line
    scans = [d for d in ds if d.code == "KMP_SCAN"]
    assert len(scans) == 1, codes(ds)
    scan = scans[0]
    # the scan's own bar fetches take virtual time at 120×: on a loaded machine it may come late (logged
    # KMP_SCAN_LATE), not never
    assert scan.value("scanned") > 0 and scan.value("at") < f"{SESSION}T10:00", scan.line
    status = heartbeat_status(db, "KMP")
    assert status["kmp"]["scan"]["scanned"] == scan.value("scanned"), status["kmp"]
    assert status["kmp"]["premarket"]["with_baselines"] == pre[0].value("with_baselines")

    # -- intents, or the reason each candidate ended
    intents = rows(db, "SELECT * FROM intents WHERE strategy_id = 'KMP'")
    candidates = [sym for sym, _surge in scan.value("candidates")]
    for sym in candidates:
        ended = ENDING_CODES & set(codes(ds, sym))
        assert ended, f"candidate {sym}: no decision ended it ({codes(ds, sym)})"
    if not intents:
        assert candidates or scan.value("surge_ok") == 0 or scan.value("trend_ok") == 0, scan.line

    # -- every intent is in the database with its decision; every ENTER KMP logged is among them
    assert all(
        i["status"] in ("ACCEPTED", "EXECUTED", "MODIFIED", "REJECTED", "DEFERRED", "CANCELLED") and i["decided_at"]
        for i in intents
    ), intents
    keys = intent_keys(intents)
    logged_entries = [d.value("key") for d in ds if d.code == "KMP_ENTRY"]
    assert set(logged_entries) <= keys, (logged_entries, keys)
    assert report["intents"].get("KMP", {}) == _by_status(intents)

    # -- ledger = paper broker
    paper = paper_positions(run_dir / "oms" / "paper_account.db")
    assert report["open_positions"] == paper == db_positions(db)

    shutil.rmtree(run_dir, ignore_errors=True)


def _no_trade_evidence(kmp: dict[str, object], report: dict[str, object], kmp_log: Path) -> str:
    """What a failed run leaves to diagnose it: the report's why, KMP's premarket/scan lines and every decision
    about a scanned candidate (the run folder is gone with the CI machine)."""
    ds = decisions(kmp_log) if kmp_log.is_file() else []
    scans = [d for d in ds if d.code.startswith(("KMP_SCAN", "KMP_PREMARKET"))]
    cands = {c[0] for d in scans if isinstance(d.value("candidates"), list) for c in d.value("candidates")}
    lines = [d.line for d in scans] + [d.line for d in ds if d.symbol in cands][:80]
    return "\n".join([f"KMP {kmp}", f"why: {report.get('why_nothing_traded')}", *lines])


def _by_status(intents: list[dict[str, object]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in intents:
        out[str(i["status"])] = out.get(str(i["status"]), 0) + 1
    return out
