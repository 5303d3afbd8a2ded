"""What ``trader dashboard`` shows of one account, read from the runner's ``status.json`` and the account's
OMS with its read key (read-only): health, equity and day P&L, positions, target weights per model and the
models' last/next cycle from their audit logs, recent orders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from broker_core.clock import NEW_YORK
from broker_core.markets import us

CYCLE_AFTER_OPEN = timedelta(minutes=30)


@dataclass
class AccountView:
    name: str
    broker: str
    url: str
    health: str = "unknown"
    reasons: list[str] = field(default_factory=list)
    now: datetime | None = None
    equity: float | None = None
    day_pnl: float | None = None
    positions: list[tuple[str, int, float | None, float | None]] = field(default_factory=list)
    """(symbol, shares, last price, value)."""
    targets: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(model, session, action, weights text)."""
    last_cycle: str = "–"
    next_cycle: str = "–"
    orders: list[tuple[str, str, str, str, int, str]] = field(default_factory=list)
    """(time, strategy, symbol, side, qty, state)."""
    processes: list[tuple[str, bool, int]] = field(default_factory=list)
    """(name, running, restarts)."""
    error: str | None = None


def load_status(state_dir: Path) -> list[dict[str, Any]]:
    """The runner's ``status.json`` accounts (empty when the runner has not written it yet)."""
    try:
        return list(json.loads((state_dir / "status.json").read_text())["accounts"])
    except (OSError, ValueError, KeyError):
        return []


def next_cycle(now: datetime) -> datetime:
    """The next rotation cycle (30 min after a New York open) after ``now``."""
    local = now.astimezone(NEW_YORK)
    day = local.date()
    for _ in range(10):
        session = us.session(day)
        if session is not None and local < session.open + CYCLE_AFTER_OPEN:
            return session.open + CYCLE_AFTER_OPEN
        day = us.next_trading_day(day)
    return local


def _audit(state_dir: Path, account: str, models: list[str]) -> list[dict[str, Any]]:
    out = []
    for model in models:
        path = state_dir / account / model / "audit.jsonl"
        if path.exists():
            lines = path.read_text().splitlines()
            if lines:
                out.append(json.loads(lines[-1]))
    return out


def fetch_view(entry: dict[str, Any], state_dir: Path, timeout: float = 2.0) -> AccountView:
    view = AccountView(entry["account"], entry.get("broker", "?"), entry.get("url", ""))
    view.processes = [(p["name"], bool(p["running"]), int(p.get("restarts") or 0)) for p in entry.get("processes", [])]
    health = entry.get("health")
    if isinstance(health, dict):
        view.health = str(health.get("status", "unknown"))
        view.reasons = [str(r) for r in health.get("degraded_reasons") or []]
    elif health:
        view.health = str(health)
    for record in _audit(state_dir, view.name, list(entry.get("strategies") or [])):
        weights = record.get("weights") or {}
        text = ", ".join(f"{s} {w:.0%}" for s, w in sorted(weights.items(), key=lambda kv: -kv[1])) or "–"
        view.targets.append((str(record.get("model")), str(record.get("session")), str(record.get("action")), text))
    if view.targets:
        view.last_cycle = max(t[1] for t in view.targets)
    headers = {"Authorization": f"Bearer {entry.get('read_key', '')}"}
    try:
        with httpx.Client(base_url=view.url, headers=headers, timeout=timeout) as http:
            clock = http.get("/api/v1/clock").json()
            view.now = datetime.fromisoformat(clock["now"])
            view.next_cycle = f"{next_cycle(view.now):%a %m-%d %H:%M} NY"
            account = http.get("/api/v1/state/account").json()
            view.equity, view.day_pnl = float(account["equity"]), float(account.get("daily_pnl") or 0.0)
            for symbol, p in sorted(http.get("/api/v1/positions").json().items()):
                if p.get("real_qty"):
                    last = p.get("last_price")
                    value = last * p["real_qty"] if last else None
                    view.positions.append((symbol, int(p["real_qty"]), last, value))
            recent = sorted(
                http.get("/api/v1/orders", params={"limit": 200}).json(), key=lambda o: o.get("created_at") or ""
            )
            for o in reversed(recent[-8:]):
                at = datetime.fromisoformat(o["created_at"]).astimezone(NEW_YORK) if o.get("created_at") else None
                when = f"{at:%m-%d %H:%M}" if at else ""
                view.orders.append((when, o["strategy_id"], o["symbol"], o["side"], int(o["qty"]), o["state"]))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        view.error = f"{type(exc).__name__}: {exc}"[:120]
    return view
