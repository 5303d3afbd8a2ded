"""``trader backtest kmp`` on a session where KMP trades (2026-02-04: an opening-range break of 005830,
stopped out minutes later), until 10:30.

Tried: the same backtest twice, in two processes with different string-hash seeds (set iteration order
differs between them). Asserted: the run exits 0 and traded; both runs hold the same intents, orders,
fills and round trips (every column but the ids), the same equity curve and the same count of clock
steps; the report's counts equal the database's; the report has the keys tools rely on."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broker_core.paper.data import resolve_data_dir
from tests.integration.backtest._support import env_for, report_of, run_trader, trading_rows

DAY = "2026-02-04"


def backtest(tmp_path: Path, name: str, seed: str) -> dict[str, Any]:
    path = tmp_path / f"{name}.json"
    proc = run_trader(
        "backtest",
        "kmp",
        "--from",
        DAY,
        "--to",
        DAY,
        "--until",
        "10:30",
        "--data-dir",
        str(resolve_data_dir()),
        "--json-report",
        str(path),
        env=env_for(PYTHONHASHSEED=seed),
    )
    return report_of(proc, path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("backtest")
    first, second = backtest(tmp, "first", "1"), backtest(tmp, "second", "2")
    yield first, second
    for report in (first, second):
        shutil.rmtree(report["run_dir"], ignore_errors=True)


def test_the_backtest_trades_and_its_report_counts_are_the_databases(
    runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report = runs[0]
    assert {"market", "from", "to", "sessions", "strategies", "equity"} <= set(report)
    assert (report["market"], report["from"], report["to"], report["sessions"]) == ("krx", DAY, DAY, 1)
    kmp = report["strategies"]["KMP"]
    assert {"intents", "entries", "fills", "realized_pnl", "rejections"} <= set(kmp)
    assert kmp["fills"] > 0 and kmp["entries"] >= 1, kmp
    with sqlite3.connect(report["database"]) as db:

        def count(sql: str) -> int:
            return int(db.execute(sql).fetchone()[0])

        assert kmp["intents"] == count("SELECT count(*) FROM intents WHERE strategy_id = 'KMP'")
        assert kmp["fills"] == count("SELECT count(*) FROM fills WHERE strategy_id = 'KMP'")
        rejected = count(
            "SELECT count(*) FROM intents WHERE strategy_id = 'KMP' AND status IN ('REJECTED', 'DEFERRED')"
        )
        assert sum(kmp["rejections"].values()) == rejected
    assert report["database_check"]["ok"], report["database_check"]
    assert report["equity"] and report["failures"] == {}
    run_dir = Path(report["run_dir"])
    assert (run_dir / "logs" / "kmp.log").read_text().count("decision code=KMP_SCAN") == 1
    assert (run_dir / "report.json").is_file()


def test_two_runs_are_identical(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = runs
    a, b = trading_rows(first["database"]), trading_rows(second["database"])
    assert a["fills"], "the run did not trade"
    for table in a:
        assert a[table] == b[table], f"{table} differ between two runs"
    assert first["equity"] == second["equity"] and first["oms_equity"] == second["oms_equity"]
    assert _without_paths(first["strategies"]) == _without_paths(second["strategies"])
    assert first["clock_steps"] == second["clock_steps"]


def _without_paths(strategies: dict[str, Any]) -> dict[str, Any]:
    return {sid: {k: v for k, v in row.items() if k != "decision_log"} for sid, row in strategies.items()}
