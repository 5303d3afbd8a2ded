"""KMP killed with SIGKILL while it holds a position, then restarted: it recovers and manages the exit.

The OMS (``python -m trader oms``) and KMP (``python -m trader strategy kmp``) run as separate processes
on one virtual clock over the real session 2026-02-04 from 08:45, 60×, that stands still until KMP
sent its first heartbeat (as ``trader sim`` starts it): KMP catches up its premarket caches with 30
virtual minutes (30 s wall) to spare before the 09:15 scan, however slow the machine is at start-up
(alone the premarket takes ≈ 7 s wall; 08:30 left 45 s, most of it spent waiting).
On that day KMP's default rules (vi_band 0.10) enter 005830 at about 09:19 and the stock reaches
KMP's initial stop at about 09:22 (the session was picked with an offline replay of the KMP engine
over 90 sessions: KMP positions live 1–3 minutes, this one one of the longest).

As soon as the OMS shows a KMP allocation whose stop KMP has published (MODIFY_RISK), the test
SIGKILLs KMP and checks the position is still held; then it starts a new KMP process, which must:

- adopt the allocation from the OMS (``KMP_POSITION_RECOVERED`` with the published stop),
- close it itself (an EXIT intent received after the kill, with the exit's reason code logged),
- never send a second ENTER for that symbol (nor for any other symbol).

Then everything is stopped and the ledger is compared with the paper broker's account file.
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
    intent_keys,
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
START = datetime(2026, 2, 4, 8, 45, tzinfo=KST)
SPEED = 60.0
EXIT_CODES = {
    "KMP_X_STOP",
    "KMP_X_TRAIL",
    "KMP_X_STALL",
    "KMP_X_EARLY_FAIL",
    "KMP_X_EOD",
    "KMP_X_RISK",
    "KMP_EXIT_RETRY",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kmp_killed_in_position_recovers_and_exits(tmp_path: Path) -> None:
    keys = {"admin": secrets.token_hex(12), "read": secrets.token_hex(12), "KMP": secrets.token_hex(12)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    anchor_file = tmp_path / "clock.anchor"
    clock_spec = sim_spec(START, SPEED, f"@{anchor_file}")
    clock = parse_clock(clock_spec)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_CLOCK", "STRATEGY_ID"))}
    base.update(TRADER_CLOCK=clock_spec, OMS_URL=url, TRADER_DATA_DIR=str(resolve_data_dir()))
    oms_env = {
        **base,
        "OMS_BROKER": "paper",
        "OMS_DATA_DIR": str(tmp_path / "oms"),
        "OMS_PAPER_DATE": SESSION,
        "OMS_ADMIN_KEY": keys["admin"],
        "OMS_READ_KEY": keys["read"],
        "OMS_INSTANCE_ID": "e2e-restart",
        "OMS_STRATEGY_KEYS": f"KMP:{keys['KMP']}",
    }
    kmp_env = {**base, "OMS_API_KEY": keys["KMP"]}
    group = ProcessGroup(tmp_path / "logs")
    http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {keys['admin']}"})
    codes_at_stop: dict[str, int] = {}
    try:
        group.start("oms", ["oms", "--port", str(port)], oms_env)
        wait_for(lambda: oms_healthy(http, group), timeout=60, what="OMS /health ok", interval=0.1)
        first = group.start("kmp", ["strategy", "kmp"], kmp_env)
        start_clock_when_registered(http, group, "kmp", "KMP", anchor_file)

        # 1. KMP enters and publishes its stop; kill it at once
        held = wait_for(
            lambda: _published(http, group), timeout=150, what="a KMP allocation with its stop", interval=0.02
        )
        symbol, alloc = held
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        killed_at = clock.now()
        still = http.get("/api/v1/allocations/KMP").json()
        assert still.get(symbol, {}).get("qty", 0) > 0, f"the position closed while KMP was dead: {still}"

        # 2. a new KMP process adopts the allocation and exits it
        group.start("kmp2", ["strategy", "kmp"], kmp_env)
        wait_for(
            lambda: strategy_flat(http, group, "KMP", "kmp2", symbol),
            timeout=120,
            what=f"the restarted KMP to exit {symbol}",
            interval=0.1,
        )
        # ... and, started inside the entry window, catches up its premarket and scan without re-entering
        wait_for(
            lambda: "KMP_SCAN" in codes(decisions(tmp_path / "logs" / "kmp2.log")),
            timeout=60,
            what="the restarted KMP's catch-up scan",
            interval=0.2,
        )
        positions = http.get("/api/v1/positions").json()
        health = http.get("/health").json()
    finally:
        codes_at_stop = group.stop(["kmp2", "kmp"])
        codes_at_stop.update(group.stop(["oms"]))
        http.close()

    # -- the processes ended cleanly and none is left
    assert codes_at_stop["kmp"] == -signal.SIGKILL and codes_at_stop["kmp2"] == 0, codes_at_stop
    assert codes_at_stop["oms"] in (0, -signal.SIGTERM), codes_at_stop
    assert not [p.pid for p in group.procs.values() if alive(p.pid)]
    assert processes_with_env(f"OMS_URL={url}") == []

    # -- the restarted process recovered the position with the stop the first one published
    second = decisions(tmp_path / "logs" / "kmp2.log")
    recovered = [d for d in second if d.code == "KMP_POSITION_RECOVERED" and d.symbol == symbol]
    assert recovered, codes(second)
    assert recovered[0].value("stop") == pytest.approx(alloc["soft_stop_px"])
    assert recovered[0].value("defaulted_stop") is False
    exits = [d for d in second if d.symbol == symbol and d.code in EXIT_CODES]
    assert exits, f"the restarted KMP logged no exit decision for {symbol}: {codes(second, symbol)}"
    closed = [d for d in second if d.code == "KMP_POSITION_CLOSED" and d.symbol == symbol]
    assert closed and closed[0].value("reason") in EXIT_CODES, codes(second, symbol)
    premarket = next(d for d in second if d.code == "KMP_PREMARKET_DATA")
    assert symbol in premarket.value("entered_today"), premarket.line  # K11 across the restart
    scan = next(d for d in second if d.code == "KMP_SCAN")
    assert symbol not in [s for s, _ in scan.value("candidates")], scan.line

    # -- the database: one ENTER per symbol; the EXIT came after the kill; every intent decided
    db = tmp_path / "oms" / "oms.db"
    intents = rows(db, "SELECT * FROM intents WHERE strategy_id = 'KMP' ORDER BY received_at")
    enters = [i for i in intents if i["intent_type"] == "ENTER"]
    assert [i["symbol"] for i in enters].count(symbol) == 1, enters
    assert len({i["symbol"] for i in enters}) == len(enters), f"a second ENTER for a symbol: {enters}"
    exit_rows = [i for i in intents if i["intent_type"] in ("EXIT", "FLATTEN") and i["symbol"] in (symbol, "*")]
    assert exit_rows and all(db_time(i["received_at"]) > killed_at for i in exit_rows), (exit_rows, killed_at)
    assert any(i["status"] in ("ACCEPTED", "EXECUTED") for i in exit_rows), exit_rows
    assert all(i["status"] and i["decided_at"] for i in intents)
    keys_logged = [d.value("key") for d in decisions(tmp_path / "logs" / "kmp.log") + second if d.code == "KMP_ENTRY"]
    assert keys_logged and set(keys_logged) <= intent_keys(intents)
    fills = rows(db, "SELECT side, qty FROM fills WHERE symbol = ? AND strategy_id = 'KMP'", symbol)
    bought = sum(f["qty"] for f in fills if f["side"] == "BUY")
    assert bought >= alloc["qty"] and bought == sum(f["qty"] for f in fills if f["side"] == "SELL"), fills

    # -- ledger = paper broker; reconciliation saw no drift
    api_positions = {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]}
    assert api_positions == db_positions(db) == paper_positions(tmp_path / "oms" / "paper_account.db")
    assert health["recon_status"] == "OK", health


def _published(http: httpx.Client, group: ProcessGroup) -> tuple[str, dict[str, Any]] | None:
    """(symbol, allocation) of a KMP allocation whose stop KMP has published, else None; fails fast
    when KMP's log shows it cannot enter at all (no minute history through the proxy, no candidate)."""
    dead = group.dead()
    assert "kmp" not in dead and "oms" not in dead, f"{dead}:\n{group.log_tail('kmp', 40)}"
    log = group.log_dir / "kmp.log"
    if log.exists():
        for d in decisions(log):
            assert d.code != "KMP_PREMARKET_DATA" or d.value("with_baselines"), (
                f"KMP got no 1m history through the OMS proxy: {d.line}"
            )
            assert d.code != "KMP_SCAN" or d.value("candidates"), f"KMP found no candidate: {d.line}"
    allocations = http.get("/api/v1/allocations/KMP").json()
    for symbol, a in sorted(allocations.items()):
        if a.get("qty", 0) > 0 and a.get("soft_stop_px"):
            return symbol, a
    return None
