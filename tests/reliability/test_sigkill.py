"""SIGKILL of the OMS process in the middle of a concurrent burst of intents, a restart on the same volume,
and the client re-sending everything it sent (same idempotency keys) — the strategy's normal reaction to a
dropped connection.

The OMS runs as a real process (``python -m trader oms``) on the paper broker, its journal in its data dir and
its database on the real Postgres; the paper account persists in the data dir too, so the "broker" survives
the kill as a real one would. Afterwards: every reply received before the kill is still true, no intent has
two orders, the paper exchange holds each order once, and the ledger equals the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

from broker_core.paper.data import KrxData
from broker_core.paper.persistence import PaperStateStore
from tests.support.oms_process import healthy, oms_process
from tests.support.oms_server import ADMIN_KEY, READ_KEY, SESSION, STRATEGY_KEYS, auth, free_port
from tests.support.pg import create_database, drop_database, fetch_value
from tests.support.wait import until
from trader.paper_wiring import PAPER_ACCOUNT_FILE

STRATEGIES = ["KMP", "KPR", "NULRIMOK", "PCIM"]
SYMBOLS = KrxData().minute_symbols()
"""The 60 symbols of the replayed session (the paper exchange trades these)."""
ENTRIES = 60
"""One entry per symbol (strategies in turn), so no entry waits on another strategy's entry lock."""
EXITS = 40
"""Exits of the first 40 entries' (strategy, symbol), in the same burst."""
TOTAL = ENTRIES + EXITS
KILL_AFTER = 35
"""SIGKILL once this many replies have come back (of TOTAL sent at once)."""
OPEN_STATES = ("PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "PENDING_CANCEL", "HELD")


def intent(i: int) -> tuple[str, dict[str, Any]]:
    """Intents 0-59: entries, one per symbol; 60-99: exits of entries 0-39 (sent in the same burst: some find
    the entry filled, some cancel it while working, some find nothing to sell yet)."""
    n = i if i < ENTRIES else i - ENTRIES
    strategy = STRATEGIES[n % len(STRATEGIES)]
    symbol = SYMBOLS[n]
    body: dict[str, Any] = {
        "strategy_id": strategy,
        "symbol": symbol,
        "idempotency_key": f"kill-{i}",
        "risk_payload": {"rationale_code": "SIGKILL"},
    }
    if i < ENTRIES:
        body.update(intent_type="ENTER", desired_qty=1 + i % 3, constraints={"order_type": "MARKETABLE_LIMIT"})
    else:
        body.update(intent_type="EXIT")
    return STRATEGY_KEYS[strategy], body


def write_config(path: Path) -> Path:
    """config/oms.yaml with room for the burst: 100 positions, no sector or budget cap, no intent-rate cap."""
    data = yaml.safe_load(Path("config/oms.yaml").read_text()) or {}
    data.setdefault("risk", {}).update(max_positions=100, max_sector_pct=1.0, strategy_budgets={})
    data["strategies"] = {s: {"max_intents_per_min": 100_000} for s in STRATEGIES}
    path.write_text(yaml.safe_dump(data))
    return path


def oms_env(data_dir: Path, database_url: str, config: Path, anchor: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "DATABASE_URL", "TRADER_"))}
    env.update(
        OMS_ADMIN_KEY=ADMIN_KEY,
        OMS_READ_KEY=READ_KEY,
        OMS_DATA_DIR=str(data_dir),
        OMS_STRATEGY_KEYS=",".join(f"{k}:{v}" for k, v in STRATEGY_KEYS.items()),
        OMS_PAPER_DATE=SESSION,
        OMS_INSTANCE_ID="sigkill",
        OMS_CONFIG=str(config),
        DATABASE_URL=database_url,
        TRADER_CLOCK=f"sim start={SESSION}T09:30:00+09:00 speed=20 anchor={anchor!r}",
    )
    return env


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    resp = await http.get(path, params=params, headers=auth(READ_KEY))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_sigkill_mid_burst_then_resend_everything(tmp_path: Path) -> None:
    """Tried: 100 intents sent at once (60 entries, one per symbol, and 40 exits of them; 4 strategies; unique
    keys) to an OMS process on Postgres; SIGKILL after 35 replies; restart on the same data dir/journal/database;
    re-send all 100 (same keys), answered or not. Asserted: 0 acknowledged intents lost — each reply received
    before the kill is found after the restart with the same status and order id, and its re-send returns the
    same intent id, status and order id (so does the re-send of one decided before the kill whose reply was
    lost); 0 duplicate orders — each key has at most one OMS order, each order at
    the paper exchange (by client order id, read from the paper account file) is unique and belongs to one OMS
    order of one intent, and every OMS order the broker took is there; ledger == broker — /api/v1/positions
    real_qty per symbol equals the paper account's positions with no working order left, nothing frozen or
    _UNKNOWN_, reconciliation OK; Postgres holds each intent once (no idempotency key twice), as many as the API
    shows."""
    wall0 = time.monotonic()
    name, url = create_database()
    port, log, anchor = free_port(), tmp_path / "oms.log", time.time()
    data_dir = tmp_path / "var"
    env = oms_env(data_dir, url, write_config(tmp_path / "oms.yaml"), anchor)
    answered: dict[str, dict[str, Any]] = {}
    failed: Counter[str] = Counter()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            with oms_process(env, port, log) as proc:
                await until(lambda: healthy(http, proc, log), timeout=90, what="first OMS healthy")

                async def post(i: int) -> None:
                    key, body = intent(i)
                    try:
                        resp = await http.post("/api/v1/intents", json=body, headers=auth(key))
                    except httpx.HTTPError as exc:
                        failed[type(exc).__name__] += 1
                        return
                    if resp.status_code == 200:
                        answered[body["idempotency_key"]] = resp.json()
                    else:
                        failed[f"HTTP {resp.status_code}"] += 1

                tasks = [asyncio.create_task(post(i)) for i in range(TOTAL)]
                await until(lambda: len(answered) >= KILL_AFTER, timeout=60, what=f"{KILL_AFTER} replies")
                proc.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                proc.wait(10)
                await asyncio.gather(*tasks)
            before_kill = dict(answered)
            assert KILL_AFTER <= len(before_kill) < TOTAL, f"the kill came mid-burst ({len(before_kill)} replies)"
            unanswered = TOTAL - len(before_kill)

            with oms_process(env, port, log) as proc:
                await until(lambda: healthy(http, proc, log), timeout=90, what="restarted OMS healthy")
                restart_s = time.monotonic() - killed_at
                for key, reply in before_kill.items():
                    stored = await get(http, f"/api/v1/intents/{reply['intent_id']}")
                    assert (stored["status"], stored["order_id"]) == (reply["status"], reply["order_id"]), (
                        f"{key}: replied {reply['status']}/{reply['order_id']} before the kill, "
                        f"stored {stored['status']}/{stored['order_id']} after it"
                    )

                journaled = {h["intent_id"]: h for h in await get(http, "/api/v1/intents", limit=5000)}
                reply_lost = set(journaled) - {r["intent_id"] for r in before_kill.values()}
                """Decided (journaled) before the kill, but the client never got the reply."""

                resent: dict[str, dict[str, Any]] = {}
                for i in range(TOTAL):
                    key, body = intent(i)
                    resp = await http.post("/api/v1/intents", json=body, headers=auth(key))
                    assert resp.status_code == 200, resp.text
                    resent[body["idempotency_key"]] = resp.json()
                for key, reply in before_kill.items():
                    again = resent[key]
                    assert again["intent_id"] == reply["intent_id"], (key, reply, again)
                    if reply["status"] != "DEFERRED":  # a DEFERRED one is decided anew after its cooldown
                        assert (again["status"], again["order_id"]) == (reply["status"], reply["order_id"]), (
                            key,
                            reply,
                            again,
                        )

                for again in resent.values():
                    was = journaled.get(again["intent_id"])
                    if again["intent_id"] in reply_lost and was is not None and was["status"] != "DEFERRED":
                        assert (again["status"], again["order_id"]) == (was["status"], was["order_id"]), (was, again)
                assert {r["intent_id"] for r in resent.values()} >= set(journaled), "a journaled intent decided anew"

                async def settled() -> dict[str, int] | None:
                    orders = await get(http, "/api/v1/orders", limit=5000)
                    if any(o["state"] in OPEN_STATES for o in orders):
                        return None
                    positions = await get(http, "/api/v1/positions")
                    ledger = {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]}
                    store = PaperStateStore(data_dir / PAPER_ACCOUNT_FILE)
                    try:
                        account = store.read_state()
                    finally:
                        store.close()
                    assert account is not None
                    broker = {p.symbol: p.qty for p in account.positions if p.qty}
                    return ledger if ledger == broker and ledger else None

                ledger = await until(settled, timeout=90, what="no working order and ledger == the paper account")
                await until(
                    lambda: _recon_ok(http), timeout=60, what="a reconciliation cycle OK after the positions settle"
                )

                oms_orders = await get(http, "/api/v1/orders", limit=5000)
                intents = await get(http, "/api/v1/intents", limit=5000)
                positions = await get(http, "/api/v1/positions")
                store = PaperStateStore(data_dir / PAPER_ACCOUNT_FILE)
                try:
                    account = store.read_state()
                finally:
                    store.close()
                assert account is not None
                at_broker = [o.order.client_order_id for o in account.orders]
                assert len(at_broker) == len(set(at_broker)), "the paper exchange holds each client order id once"
                by_id = {o["order_id"]: o for o in oms_orders}
                assert set(at_broker) <= set(by_id), set(at_broker) - set(by_id)
                taken = {o["order_id"] for o in oms_orders if o["broker_order_id"]}
                assert taken <= set(at_broker), taken - set(at_broker)
                per_intent = Counter(by_id[c]["intent_id"] for c in at_broker)
                assert all(n == 1 for n in per_intent.values()), per_intent.most_common(3)
                key_of = {h["intent_id"]: h for h in intents}
                assert len(intents) == TOTAL and len(key_of) == TOTAL, len(intents)
                orders_per_intent = Counter(o["intent_id"] for o in oms_orders)
                assert all(n == 1 for n in orders_per_intent.values()), orders_per_intent.most_common(3)
                assert not any(p["frozen"] for p in positions.values()), positions
                assert not any("_UNKNOWN_" in p["allocations"] for p in positions.values()), positions
                for p in positions.values():
                    assert p["real_qty"] == sum(a["qty"] for a in p["allocations"].values()), p

                async def drained() -> bool:
                    return (await http.get("/health")).json().get("journal_backlog") == 0

                await until(drained, timeout=60, what="the journal drained to Postgres")
            pg_intents = await fetch_value(url, "SELECT count(*) FROM intents")
            pg_keys = await fetch_value(url, "SELECT count(DISTINCT idempotency_key) FROM intents")
            pg_orders = await fetch_value(url, "SELECT count(*) FROM orders")
            assert pg_intents == pg_keys == TOTAL, (pg_intents, pg_keys)
            assert pg_orders == len(oms_orders), (pg_orders, len(oms_orders))
        decided = Counter(f"{r['status']} {r.get('reason_code') or ''}".strip() for r in resent.values())
        print(
            f"\n[sigkill] intents sent={TOTAL} ({ENTRIES} entries, {EXITS} exits), "
            f"replies before the kill={len(before_kill)}, "
            f"unanswered={unanswered} ({dict(failed)}; {len(reply_lost)} of them decided before the kill); "
            f"restart to healthy {restart_s:.1f}s; after the re-send: "
            f"{dict(decided)}; OMS orders={len(oms_orders)} orders at the paper exchange={len(at_broker)} "
            f"(unique, ≤1 per intent), lost acknowledged=0, duplicate orders=0; positions {len(ledger)} symbols, "
            f"ledger == broker; Postgres intents={pg_intents} orders={pg_orders}; wall {time.monotonic() - wall0:.1f}s"
        )
    finally:
        drop_database(name)


async def _recon_ok(http: httpx.AsyncClient) -> bool:
    health = (await http.get("/health")).json()
    return bool(health.get("recon_status") == "OK" and health.get("status") == "ok")
