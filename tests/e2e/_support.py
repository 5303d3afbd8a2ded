"""Helpers of the end-to-end tests: processes, waiting with deadlines, KMP decision logs, the databases."""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from broker_core.clock import write_anchor
from broker_core.paper.persistence import PaperStateStore
from tests.support.wait import until_sync
from trader.launcher import ProcessGroup

PROJECT_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

_DECISION = re.compile(r"decision code=(\S+)(?: symbol=(\S+))?(.*)$")
_FIELD = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)")


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy result of ``check``; AssertionError naming ``what`` after ``timeout`` wall s."""
    return until_sync(check, timeout=timeout, interval=interval, what=what)


# ---- processes -------------------------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def environ_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def processes_with_env(text: str) -> list[int]:
    """Live PIDs (of this user) whose environment contains ``text``."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and int(p.name) != os.getpid() and environ_has(int(p.name), text) and alive(int(p.name))
    ]


# ---- KMP decision log ------------------------------------------------------------------------------


@dataclass
class Decision:
    code: str
    symbol: str | None
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    def value(self, name: str) -> Any:
        """A field parsed as a Python literal when it is one (numbers, lists, dicts), else the text."""
        raw = self.fields.get(name)
        if raw is None:
            return None
        text = raw[1:-1] if raw[:1] in "'\"" and raw[-1:] == raw[:1] else raw
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def decisions(log_path: Path) -> list[Decision]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = _DECISION.search(line)
        if m:
            out.append(Decision(m.group(1), m.group(2), dict(_FIELD.findall(m.group(3))), line))
    return out


def codes(ds: list[Decision], symbol: str | None = None) -> list[str]:
    return [d.code for d in ds if symbol is None or d.symbol == symbol]


# ---- databases -------------------------------------------------------------------------------------


def rows(db: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def intent_keys(intents: list[dict[str, Any]]) -> set[str]:
    """The strategies' own idempotency keys (the OMS stores them as ``<strategy_id>:<trading day>:<key>``)."""
    out = set()
    for i in intents:
        key = str(i["idempotency_key"])
        prefix = f"{i['strategy_id']}:"
        if key.startswith(prefix):
            key = key[len(prefix) :]
            if re.match(r"^\d{4}-\d{2}-\d{2}:", key):
                key = key[11:]
        out.add(key)
    return out


def paper_positions(path: Path) -> dict[str, int]:
    """Non-zero positions of the paper account file (what the 'broker' holds)."""
    store = PaperStateStore(path)
    try:
        state = store.read_state()
    finally:
        store.close()
    assert state is not None, f"{path}: no paper account stored"
    return {p.symbol: int(p.qty) for p in state.positions if p.qty}


def db_positions(db: Path) -> dict[str, int]:
    return {
        r["symbol"]: int(r["real_qty"]) for r in rows(db, "SELECT symbol, real_qty FROM positions") if r["real_qty"]
    }


def heartbeat_status(db: Path, strategy_id: str) -> dict[str, Any]:
    found = rows(db, "SELECT status_detail FROM strategy_state WHERE strategy_id = ?", strategy_id)
    assert found, f"no strategy_state row for {strategy_id} (no heartbeat reached the database)"
    detail = found[0]["status_detail"]
    return json.loads(detail) if isinstance(detail, str) else detail


def oms_healthy(http: httpx.Client, group: ProcessGroup) -> bool:
    """The OMS of ``group`` answers ``/health`` ok (fails at once when it exited)."""
    assert not group.dead(), f"OMS exited during start:\n{group.log_tail('oms', 40)}"
    try:
        return bool(http.get("/health").json().get("status") == "ok")
    except (httpx.HTTPError, ValueError):
        return False


def strategy_flat(http: httpx.Client, group: ProcessGroup, strategy_id: str, process: str, symbol: str) -> bool:
    """The OMS allocates no more ``symbol`` to ``strategy_id`` (fails at once when ``process`` or the OMS died)."""
    dead = group.dead()
    assert process not in dead and "oms" not in dead, f"{dead}:\n{group.log_tail(process, 40)}"
    return bool(http.get(f"/api/v1/allocations/{strategy_id}").json().get(symbol, {}).get("qty", 0) == 0)


def start_clock_when_registered(
    http: httpx.Client, group: ProcessGroup, process: str, strategy_id: str, anchor_file: Path
) -> None:
    """Write the run's clock anchor once ``strategy_id`` sent its first heartbeat, as ``trader sim`` does:
    the clock stands at its start while the OMS and the strategy start up (the OMS rate budget runs on
    virtual time, so the strategy's premarket work can only begin once the clock runs)."""

    def registered() -> bool:
        dead = group.dead()
        assert process not in dead and "oms" not in dead, f"{dead}:\n{group.log_tail(process, 40)}"
        status = http.get("/api/v1/strategies").json().get(strategy_id, {})
        return bool(status.get("last_heartbeat"))

    wait_for(registered, timeout=120, what=f"{strategy_id}'s first heartbeat", interval=0.1)
    write_anchor(anchor_file)


def db_time(raw: Any) -> datetime:
    """A database time: SQLite keeps them naive in UTC."""
    ts = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
