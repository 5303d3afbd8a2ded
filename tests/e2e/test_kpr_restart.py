"""KPR killed with SIGKILL while it holds a position, then restarted: it rebuilds its state from the OMS and
manages the exit.

The OMS and KPR run as separate processes on one virtual clock (120×) over the real session 2026-02-04 from
09:40 (KPR builds its premarket caches and today's bars by REST at start). On that day KPR's default rules
enter 003670 on a PANIC reclaim at about 09:56 (found with ``trader demo``/``backtest``); its 45-minute time
stop ends the position by about 10:41 unless a target or the stop comes first.

As soon as the OMS shows a KPR allocation whose stop KPR has published (MODIFY_RISK), the test SIGKILLs KPR and
checks the position is still held; a new KPR process must adopt it (``KPR_POSITION_RECOVERED`` with the
published stop and the original entry time), close it itself (an EXIT/REDUCE after the kill, with an exit
reason), and never send a second ENTER for that symbol. Then the ledger is compared with the paper broker.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_core.clock import KST, parse_clock, sim_spec
from broker_core.paper.data import resolve_data_dir
from tests.e2e._support import (
    alive,
    codes,
    db_positions,
    db_time,
    decisions,
    oms_healthy,
    paper_positions,
    processes_with_env,
    rows,
    start_clock_when_registered,
    strategy_flat,
    wait_for,
)
from trader.launcher import ProcessGroup

pytestmark = pytest.mark.e2e

SESSION = "2026-02-04"
START = datetime(2026, 2, 4, 9, 40, tzinfo=KST)
SPEED = 120.0
EXIT_CODES = {"KPR_X_STOP", "KPR_X_TARGET", "KPR_X_TARGET_PARTIAL", "KPR_X_TIME", "KPR_X_FLOW", "KPR_X_EOD"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kpr_killed_in_position_recovers_and_exits(tmp_path: Path) -> None:
    keys = {"admin": secrets.token_hex(12), "read": secrets.token_hex(12), "KPR": secrets.token_hex(12)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    anchor_file = tmp_path / "clock.anchor"
    clock_spec = sim_spec(START, SPEED, f"@{anchor_file}")
    clock = parse_clock(clock_spec)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK", "STRATEGY_"))}
    base.update(TRADER_CLOCK=clock_spec, OMS_URL=url, TRADER_DATA_DIR=str(resolve_data_dir()))
    oms_env = {
        **base,
        "OMS_BROKER": "paper",
        "OMS_DATA_DIR": str(tmp_path / "oms"),
        "OMS_PAPER_DATE": SESSION,
        "OMS_ADMIN_KEY": keys["admin"],
        "OMS_READ_KEY": keys["read"],
        "OMS_INSTANCE_ID": "e2e-kpr-restart",
        "OMS_STRATEGY_KEYS": f"KPR:{keys['KPR']}",
    }
    kpr_env = {**base, "OMS_API_KEY": keys["KPR"], "STRATEGY_DATA_DIR": str(tmp_path / "kpr")}
    group = ProcessGroup(tmp_path / "logs")
    http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {keys['admin']}"})
    codes_at_stop: dict[str, int] = {}
    try:
        group.start("oms", ["oms", "--port", str(port)], oms_env)
        wait_for(lambda: oms_healthy(http, group), timeout=60, what="OMS /health ok", interval=0.1)
        first = group.start("kpr", ["strategy", "kpr"], kpr_env)
        start_clock_when_registered(http, group, "kpr", "KPR", anchor_file)

        # 1. KPR enters and publishes its stop; kill it at once
        symbol, alloc = wait_for(
            lambda: _published(http, group), timeout=120, what="a KPR allocation with its stop", interval=0.02
        )
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        killed_at = clock.now()
        still = http.get("/api/v1/allocations/KPR").json()
        assert still.get(symbol, {}).get("qty", 0) > 0, f"the position closed while KPR was dead: {still}"

        # 2. a new KPR process adopts the allocation and exits it
        group.start("kpr2", ["strategy", "kpr"], kpr_env)
        wait_for(
            lambda: strategy_flat(http, group, "KPR", "kpr2", symbol),
            timeout=120,
            what=f"the restarted KPR to exit {symbol}",
            interval=0.1,
        )
        wait_for(  # the OMS's ledger is flat at the fill; KPR logs the close when the fill reaches its stream
            lambda: any(
                d.code == "KPR_POSITION_CLOSED" and d.symbol == symbol
                for d in decisions(tmp_path / "logs" / "kpr2.log")
            ),
            timeout=60,
            what=f"the restarted KPR to see {symbol} closed",
            interval=0.1,
        )
        positions = http.get("/api/v1/positions").json()
        health = http.get("/health").json()
    finally:
        codes_at_stop = group.stop(["kpr2", "kpr"])
        codes_at_stop.update(group.stop(["oms"]))
        http.close()

    assert codes_at_stop["kpr"] == -signal.SIGKILL and codes_at_stop["kpr2"] == 0, codes_at_stop
    assert codes_at_stop["oms"] in (0, -signal.SIGTERM), codes_at_stop
    assert not [p.pid for p in group.procs.values() if alive(p.pid)]
    assert processes_with_env(f"OMS_URL={url}") == []

    # -- the restarted process recovered the position with the published stop and closed it itself
    second = decisions(tmp_path / "logs" / "kpr2.log")
    recovered = [d for d in second if d.code == "KPR_POSITION_RECOVERED" and d.symbol == symbol]
    assert recovered, codes(second)
    assert recovered[0].value("stop") == pytest.approx(alloc["soft_stop_px"])
    assert recovered[0].value("stop_from_oms") is True
    exits = [d for d in second if d.symbol == symbol and d.code in EXIT_CODES]
    assert exits, f"the restarted KPR logged no exit decision for {symbol}: {codes(second, symbol)}"
    assert [d for d in second if d.code == "KPR_POSITION_CLOSED" and d.symbol == symbol], codes(second, symbol)

    # -- the database: one ENTER for the symbol; the exit came after the kill; every intent decided
    db = tmp_path / "oms" / "oms.db"
    intents = rows(db, "SELECT * FROM intents WHERE strategy_id = 'KPR' ORDER BY received_at")
    enters = [i for i in intents if i["intent_type"] == "ENTER" and i["status"] != "DEFERRED"]
    assert [i["symbol"] for i in enters].count(symbol) == 1, enters
    sells = [i for i in intents if i["intent_type"] in ("EXIT", "REDUCE", "FLATTEN") and i["symbol"] in (symbol, "*")]
    assert any(db_time(i["received_at"]) > killed_at and i["status"] in ("ACCEPTED", "EXECUTED") for i in sells), sells
    assert all(i["status"] and i["decided_at"] for i in intents)
    fills = rows(db, "SELECT side, qty FROM fills WHERE symbol = ? AND strategy_id = 'KPR'", symbol)
    bought = sum(f["qty"] for f in fills if f["side"] == "BUY")
    assert bought >= alloc["qty"] and bought == sum(f["qty"] for f in fills if f["side"] == "SELL"), fills

    # -- ledger = paper broker; reconciliation saw no drift
    api_positions = {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]}
    assert api_positions == db_positions(db) == paper_positions(tmp_path / "oms" / "paper_account.db")
    assert health["recon_status"] == "OK", health


def _published(http: httpx.Client, group: ProcessGroup) -> tuple[str, dict[str, Any]] | None:
    dead = group.dead()
    assert "kpr" not in dead and "oms" not in dead, f"{dead}:\n{group.log_tail('kpr', 40)}"
    for symbol, a in sorted(http.get("/api/v1/allocations/KPR").json().items()):
        if a.get("qty", 0) > 0 and a.get("soft_stop_px"):
            return symbol, a
    return None
