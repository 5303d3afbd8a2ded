"""Helpers of the backtest tests: run the command, read a run's trading rows without their ids."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from oms.settings import PROJECT_ROOT

TABLE_COLUMNS = {
    "intents": (
        "received_at, decided_at, strategy_id, symbol, intent_type, desired_qty, target_qty, urgency, time_horizon, "
        "constraints, risk_payload, status, message, reason_code, modified_qty, cooldown_until"
    ),
    "orders": (
        "created_at, updated_at, strategy_id, symbol, side, qty, order_type, state, limit_price, stop_price, "
        "filled_qty, avg_fill_price, cancel_after_ts, reason"
    ),
    "fills": "ts, strategy_id, symbol, side, qty, price, commission, tax",
    "trades": "strategy_id, symbol, qty, entry_ts, exit_ts, entry_px, exit_px, pnl, exit_reason, r_multiple",
}
"""What a run decided and traded, without the ids (ULIDs: wall time and random bits) and copy times."""


def trading_rows(database: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(database) as db:
        return {
            table: sorted(db.execute(f"SELECT {cols} FROM {table}").fetchall(), key=repr)
            for table, cols in TABLE_COLUMNS.items()
        }


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK", "DATABASE_URL"))}
    env.update(extra)
    return env


def run_trader(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trader", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report_of(proc: subprocess.CompletedProcess[str], path: Path) -> dict[str, Any]:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(path.read_text())
    return report
