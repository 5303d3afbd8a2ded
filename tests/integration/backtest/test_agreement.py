"""The backtest against a live-composed run of the same session: ``trader sim`` (the OMS and each strategy as
processes talking HTTP and WebSocket on a virtual clock at 60×) and ``trader backtest`` (one process, no
socket, driven time), both with KMP and the ``hold`` fixture strategy (``TRADER_STRATEGY_PACKAGES``) on
2026-02-04 until 09:30: KMP breaks out in 005830 at 09:18 and is stopped out at 09:21; hold buys 005930 at
09:05:04.

What must be equal: every intent's strategy, type, symbol, quantities, status and reason; every order's
side, type, prices, state and filled quantity; every fill (time, price, quantity, fees); realized P&L.

What differs, and why: the time an intent *arrives*. In the backtest a decision takes no virtual time, so an
intent arrives at the instant that triggered it (a print, a clock job); in the live run it arrives later by
the processes' latency (event delivery, HTTP round trip) times the clock's speed — typically under a
virtual second at 60×. Asserted: the live arrival is never earlier and at most one print interval (7.5 s,
eight prints a minute) later. Fills are equal as long as that lag leaves an order in front of the same
print, which the one-interval bound guarantees for orders sent right after a print (KMP) and which the
fixture's 09:05:04 (3.75 s after a print) keeps for hold. Same-instant intents (a MODIFY_RISK and a
CANCEL_ORDERS KMP sends on one print) may be recorded in either order: compared as sets.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from broker_core.paper.data import resolve_data_dir
from oms.settings import PROJECT_ROOT
from tests.integration.backtest._support import env_for, report_of, run_trader

DAY, UNTIL = "2026-02-04", "09:30"
MAX_LAG_S = 7.5
INTENT = "strategy_id, intent_type, symbol, desired_qty, target_qty, status, reason_code, modified_qty"
ORDER = "strategy_id, symbol, side, qty, order_type, state, limit_price, stop_price, filled_qty, avg_fill_price"
FILL = "ts, strategy_id, symbol, side, qty, price, commission, tax"


def rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute(sql).fetchall()


def test_backtest_agrees_with_a_live_run(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    (config / "hold.yaml").write_text("symbol: '005930'\nqty: 3\nbuy_at: '09:05:04'\n")
    kmp_yaml = config / "kmp.yaml"  # premarket late and the run started just before it: 45 virtual minutes less
    kmp_yaml.write_text(kmp_yaml.read_text().replace('premarket_time: "08:00"', 'premarket_time: "08:50"', 1))
    env = env_for(TRADER_STRATEGY_PACKAGES="tests.e2e.fixtures", TRADER_CONFIG_DIR=str(config))
    common = ["--from", DAY, "--to", DAY, "--start", "08:45", "--until", UNTIL, "--data-dir", str(resolve_data_dir())]
    live_json, backtest_json = tmp_path / "live.json", tmp_path / "backtest.json"
    live = report_of(
        run_trader(
            "sim", "--strategies", "kmp,hold", "--speed", "60", *common, "--json-report", str(live_json), env=env
        ),
        live_json,
    )
    back = report_of(
        run_trader("backtest", "kmp", "hold", *common, "--json-report", str(backtest_json), env=env), backtest_json
    )
    try:
        lb, bb = live["database"], back["database"]
        assert rows(lb, f"SELECT {FILL} FROM fills ORDER BY ts, symbol") == rows(
            bb, f"SELECT {FILL} FROM fills ORDER BY ts, symbol"
        )
        assert {r[1] for r in rows(bb, "SELECT ts, strategy_id FROM fills")} == {"KMP", "HOLD"}, "both must trade"
        assert Counter(rows(lb, f"SELECT {ORDER} FROM orders")) == Counter(rows(bb, f"SELECT {ORDER} FROM orders"))
        live_intents = rows(lb, f"SELECT received_at, {INTENT} FROM intents ORDER BY received_at")
        back_intents = rows(bb, f"SELECT received_at, {INTENT} FROM intents ORDER BY received_at")
        assert Counter(r[1:] for r in live_intents) == Counter(r[1:] for r in back_intents)
        for (lt, *what), (bt, *same) in zip(_paired(live_intents), _paired(back_intents), strict=True):
            assert what == same
            lag = (datetime.fromisoformat(lt) - datetime.fromisoformat(bt)).total_seconds()
            assert 0 <= lag <= MAX_LAG_S, f"{what}: live {lt}, backtest {bt}"
        for sid in ("KMP", "HOLD"):
            assert round(live["pnl"][sid]["realized"]) == round(back["strategies"][sid]["realized_pnl"]), sid
    finally:
        for report in (live, back):
            shutil.rmtree(report["run_dir"], ignore_errors=True)


def _paired(intents: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Intents in arrival order, ties between same-kind decisions broken by their content (see the docstring)."""
    return sorted(intents, key=lambda r: (r[1], r[3], r[2], r[0], repr(r[4:])))
