"""Two sessions back to back in one backtest (the multi-day clock's windows, the exchange's later session on
the same account): the ``hold`` fixture strategy buys on the first day and keeps the position overnight.

Asserted: both sessions ran; on the second morning the OMS still allocates the shares to the strategy with the
first day's entry time; the paper account, the database and the report agree."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from broker_core.paper.data import resolve_data_dir
from oms.settings import PROJECT_ROOT
from tests.e2e._support import decisions, paper_positions
from tests.integration.backtest._support import env_for, report_of, run_trader

DAY1, DAY2 = "2026-02-26", "2026-02-27"


def test_a_position_is_carried_over_the_night(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    (config / "hold.yaml").write_text("symbol: '005930'\nqty: 3\n")
    path = tmp_path / "report.json"
    env = env_for(TRADER_STRATEGY_PACKAGES="tests.e2e.fixtures", TRADER_CONFIG_DIR=str(config))
    proc = run_trader(
        "backtest",
        "hold",
        "--from",
        DAY1,
        "--to",
        DAY2,
        "--until",
        "10:00",
        "--data-dir",
        str(resolve_data_dir()),
        "--json-report",
        str(path),
        env=env,
    )
    report = report_of(proc, path)
    try:
        assert (report["sessions"], report["from"], report["to"]) == (2, DAY1, DAY2)
        ds = decisions(Path(report["run_dir"]) / "logs" / "hold.log")
        assert [d.value("status") for d in ds if d.code == "HOLD_ENTER"] in (["ACCEPTED"], ["EXECUTED"])
        held = {d.value("day"): d for d in ds if d.code == "HOLD_ALLOCATION"}
        assert set(held) == {DAY1, DAY2} and held[DAY1].value("qty") == held[DAY2].value("qty") == 3
        entry = datetime.fromisoformat(str(held[DAY2].value("entry_ts")))
        assert entry == datetime.fromisoformat(str(held[DAY1].value("entry_ts"))) and entry.date().isoformat() == DAY1
        with sqlite3.connect(report["database"]) as db:
            assert db.execute("SELECT symbol, real_qty FROM positions WHERE real_qty != 0").fetchall() == [
                ("005930", 3)
            ]
            assert db.execute("SELECT count(*) FROM fills WHERE strategy_id = 'HOLD'").fetchone()[0] >= 1
        assert report["broker_positions"] == {"005930": 3}
        assert paper_positions(Path(report["run_dir"]) / "oms" / "paper_account.db") == {"005930": 3}
        assert report["strategies"]["HOLD"]["intents"] == 1 and report["database_check"]["ok"]
        assert [day for day, _ in report["oms_equity_daily"]] == [DAY1]  # the run stops at 10:00 on day two
    finally:
        shutil.rmtree(report["run_dir"], ignore_errors=True)
