"""SIGKILL of the OMS that owns an Alpaca account in the middle of a concurrent burst of intents, a restart on
the same volume, and the client re-sending everything it sent (same idempotency keys).

The broker is a separate process, the fake Alpaca (``python -m trader fake-alpaca``), which the real alpaca-py
inside the OMS talks to over real sockets; it survives the OMS kill as a real broker would. Both processes
run on one virtual clock (the US session of 2024-11-26 from 10:00 New York at 20x). The OMS runs as a real
process (``python -m trader oms``, ``OMS_BROKER=alpaca``), its journal in its data dir and its database on
the real Postgres. The broker's truth is read over its REST API with the real SDK. Afterwards: every reply
received before the kill is still true, no intent has two orders, Alpaca holds each client order id once,
every execution at Alpaca is in the OMS once (no fill lost or doubled), and the ledger equals Alpaca's
positions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from broker_core.clock import NEW_YORK, sim_spec
from broker_core.paper.us_data import UsData
from tests.support.oms_process import healthy, oms_process, terminate
from tests.support.oms_server import ADMIN_KEY, READ_KEY, STRATEGY_KEYS, auth, free_port
from tests.support.pg import create_database, drop_database, fetch_value
from tests.support.wait import until

SESSION = date(2024, 11, 26)
STRATEGIES = ["KMP", "KPR", "NULRIMOK", "PCIM"]
ENTRIES = 40
"""One entry per symbol (strategies in turn), so no entry waits on another strategy's entry lock."""
EXITS = 25
"""Exits of the first 25 entries' (strategy, symbol), in the same burst."""
TOTAL = ENTRIES + EXITS
KILL_AFTER = 23
"""SIGKILL once this many replies have come back (~35% of TOTAL sent at once)."""
OPEN_STATES = ("PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "PENDING_CANCEL", "HELD")
BANNER_LAST = "ALPACA_DATA_STREAM_URL="


def _symbols() -> list[str]:
    """40 symbols of the session's data under $500 (3 shares stay far below the position and notional caps)."""
    data = UsData()
    cheap = []
    for symbol in data.symbols_on(SESSION):
        row = data.row(symbol, SESSION)
        if row is not None and 5 < row.close < 500:
            cheap.append(symbol)
    assert len(cheap) >= ENTRIES, f"the US data has only {len(cheap)} symbols under $500 on {SESSION}"
    return cheap[:ENTRIES]


SYMBOLS = _symbols()


def intent(i: int) -> tuple[str, dict[str, Any]]:
    """Intents 0-39: entries of 1-3 shares, one per symbol; 40-64: exits of entries 0-24 (sent in the same
    burst: some find the entry filled, some cancel it while working, some find nothing to sell yet)."""
    n = i if i < ENTRIES else i - ENTRIES
    strategy = STRATEGIES[n % len(STRATEGIES)]
    body: dict[str, Any] = {
        "strategy_id": strategy,
        "symbol": SYMBOLS[n],
        "idempotency_key": f"kill-us-{i}",
        "risk_payload": {"rationale_code": "SIGKILL"},
    }
    if i < ENTRIES:
        body.update(intent_type="ENTER", desired_qty=1 + i % 3, constraints={"order_type": "MARKETABLE_LIMIT"})
    else:
        body.update(intent_type="EXIT")
    return STRATEGY_KEYS[strategy], body


def write_config(path: Path) -> Path:
    """config/oms.us.yaml with room for the burst: 100 positions, no sector or budget cap, no intent-rate cap."""
    data = yaml.safe_load(Path("config/oms.us.yaml").read_text()) or {}
    data.setdefault("risk", {}).update(max_positions=100, max_sector_pct=1.0, strategy_budgets={})
    data["strategies"] = {s: {"max_intents_per_min": 100_000} for s in STRATEGIES}
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def fake_alpaca(port: int, clock: str, out: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``trader fake-alpaca`` on ``port`` (banner to ``out``, logs to ``log``); SIGTERM, then kill, at exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADER_CLOCK"))}
    env["TRADER_CLOCK"] = clock
    with open(out, "wb") as stdout, open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trader", "fake-alpaca", "--port", str(port)], env=env, stdout=stdout, stderr=stderr
        )
    try:
        yield proc
    finally:
        terminate(proc)


def banner_env(proc: subprocess.Popen[bytes], out: Path, log: Path) -> dict[str, str] | None:
    """The ``NAME=value`` environment the fake's banner prints, once it is all there."""
    if proc.poll() is not None:
        raise AssertionError(f"fake Alpaca exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    lines = out.read_text().splitlines()
    if not any(line.startswith(BANNER_LAST) for line in lines):
        return None
    return dict(line.split("=", 1) for line in lines[1:] if "=" in line and line.split("=", 1)[0].isupper())


def oms_env(data_dir: Path, database_url: str, config: Path, clock: str, alpaca: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "DATABASE_URL", "TRADER_", "ALPACA_"))}
    env.update(
        OMS_ADMIN_KEY=ADMIN_KEY,
        OMS_READ_KEY=READ_KEY,
        OMS_DATA_DIR=str(data_dir),
        OMS_STRATEGY_KEYS=",".join(f"{k}:{v}" for k, v in STRATEGY_KEYS.items()),
        OMS_INSTANCE_ID="sigkill-alpaca",
        OMS_BROKER="alpaca",
        OMS_CONFIG=str(config),
        DATABASE_URL=database_url,
        TRADER_CLOCK=clock,
    )
    env.update(alpaca)
    env.update(ALPACA_PAPER="true", ALPACA_REQUEST_TIMEOUT_S="3", ALPACA_FILL_POLL_S="2")
    return env


class AlpacaTruth:
    """Alpaca's state read over its REST API with the real SDK (blocking calls run off the event loop)."""

    def __init__(self, alpaca: dict[str, str]) -> None:
        self.client = TradingClient(
            alpaca["ALPACA_API_KEY"], alpaca["ALPACA_SECRET_KEY"], paper=True, url_override=alpaca["ALPACA_BASE_URL"]
        )

    async def positions(self) -> dict[str, int]:
        rows: Any = await asyncio.to_thread(self.client.get_all_positions)
        out = {}
        for p in rows:
            qty = int(float(p.qty)) * (-1 if str(getattr(p.side, "value", p.side)) == "short" else 1)
            if qty:
                out[p.symbol] = qty
        return out

    async def orders(self) -> list[Any]:
        request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)
        rows: Any = await asyncio.to_thread(self.client.get_orders, request)
        assert len(rows) < 500, "more orders at Alpaca than one page"
        return list(rows)

    async def fill_activities(self) -> list[dict[str, Any]]:
        after = datetime(SESSION.year, SESSION.month, SESSION.day, tzinfo=NEW_YORK).isoformat()
        rows: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"after": after, "direction": "asc", "page_size": 100}
            if token:
                params["page_token"] = token
            page: Any = await asyncio.to_thread(self.client.get, "/account/activities/FILL", params)
            rows += page
            if len(page) < 100:
                return rows
            token = str(page[-1]["id"])


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    resp = await http.get(path, params=params, headers=auth(READ_KEY))
    assert resp.status_code == 200, resp.text
    return resp.json()


def _side(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()


async def test_sigkill_alpaca_oms_mid_burst_then_resend_everything(tmp_path: Path) -> None:
    """Tried: 65 intents sent at once (40 entries of 1-3 shares MARKETABLE_LIMIT, one per symbol, and 25 exits
    of them; 4 strategies; unique keys) to an OMS process owning an account at the fake Alpaca (a separate
    process that survives); SIGKILL after 23 replies; restart on the same data dir/journal/database; re-send
    all 65 (same keys), answered or not. Asserted: 0 acknowledged intents lost — each reply received before the
    kill is found after the restart with the same status and order id, and its re-send returns the same intent
    id, status and order id (so does the re-send of one decided before the kill whose reply was lost);
    0 duplicate orders — Alpaca (its order list, read with alpaca-py) holds each client order id at most once,
    each is one OMS order of one intent, and every OMS order with a broker id is there with that id;
    0 lost or doubled fills — every FILL activity at Alpaca is one OMS fill (same count, each order's filled
    quantity equal at both ends, per symbol too); ledger == broker — /api/v1/positions real_qty per symbol
    equals Alpaca's positions with no working order left, nothing frozen or _UNKNOWN_, reconciliation OK;
    Postgres holds each intent once, as many as the API shows."""
    wall0 = time.monotonic()
    name, url = create_database()
    clock = sim_spec(datetime(2024, 11, 26, 10, 0, tzinfo=NEW_YORK), 20, time.time())
    oms_port, fake_port = free_port(), free_port()
    log, fake_out, fake_log = tmp_path / "oms.log", tmp_path / "fake.out", tmp_path / "fake.log"
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "oms.us.yaml")
    answered: dict[str, dict[str, Any]] = {}
    failed: Counter[str] = Counter()
    try:
        with fake_alpaca(fake_port, clock, fake_out, fake_log) as fake:
            alpaca = await until(
                lambda: banner_env(fake, fake_out, fake_log), timeout=60, interval=0.1, what="the fake's banner"
            )
            assert alpaca["ALPACA_BASE_URL"] == f"http://127.0.0.1:{fake_port}", alpaca
            truth = AlpacaTruth(alpaca)
            env = oms_env(data_dir, url, config, clock, alpaca)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{oms_port}", timeout=30) as http:
                with oms_process(env, oms_port, log) as proc:
                    await until(lambda: healthy(http, proc, log), timeout=90, what="first OMS healthy")
                    clock_reply = await get(http, "/api/v1/clock")
                    assert clock_reply["market"] == "us" and clock_reply["session_phase"] == "REGULAR", clock_reply

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
                assert fake.poll() is None, "the fake Alpaca survives the OMS's kill"

                with oms_process(env, oms_port, log) as proc:
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
                            assert (again["status"], again["order_id"]) == (was["status"], was["order_id"]), (
                                was,
                                again,
                            )
                    assert {r["intent_id"] for r in resent.values()} >= set(journaled), (
                        "a journaled intent decided anew"
                    )

                    async def settled() -> dict[str, int] | None:
                        orders = await get(http, "/api/v1/orders", limit=5000)
                        if any(o["state"] in OPEN_STATES for o in orders):
                            return None
                        positions = await get(http, "/api/v1/positions")
                        ledger = {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]}
                        broker = await truth.positions()
                        return ledger if ledger == broker and ledger else None

                    ledger = await until(
                        settled, timeout=90, interval=0.25, what="no working order and ledger == Alpaca's positions"
                    )
                    await until(
                        lambda: _recon_ok(http),
                        timeout=60,
                        interval=0.25,
                        what="a reconciliation cycle OK after the positions settle",
                    )

                    oms_orders = await get(http, "/api/v1/orders", limit=5000)
                    intents = await get(http, "/api/v1/intents", limit=5000)
                    positions = await get(http, "/api/v1/positions")
                    oms_fills = await get(http, "/api/v1/fills", limit=10000)
                    broker_orders = await truth.orders()
                    activities = await truth.fill_activities()
                    broker_positions = await truth.positions()

                    # 0 duplicate orders at the broker.
                    at_broker = [o.client_order_id for o in broker_orders]
                    assert len(at_broker) == len(set(at_broker)), Counter(at_broker).most_common(3)
                    by_id = {o["order_id"]: o for o in oms_orders}
                    assert set(at_broker) <= set(by_id), set(at_broker) - set(by_id)
                    broker_id_of = {o.client_order_id: str(o.id) for o in broker_orders}
                    taken = {o["order_id"]: o["broker_order_id"] for o in oms_orders if o["broker_order_id"]}
                    assert set(taken) <= set(at_broker), set(taken) - set(at_broker)
                    assert all(broker_id_of[c] == b for c, b in taken.items()), "an OMS order names another broker id"
                    per_intent = Counter(by_id[c]["intent_id"] for c in at_broker)
                    assert all(n == 1 for n in per_intent.values()), per_intent.most_common(3)
                    key_of = {h["intent_id"]: h for h in intents}
                    assert len(intents) == TOTAL and len(key_of) == TOTAL, len(intents)
                    orders_per_intent = Counter(o["intent_id"] for o in oms_orders)
                    assert all(n == 1 for n in orders_per_intent.values()), orders_per_intent.most_common(3)

                    # 0 lost (or doubled) fills: every execution at Alpaca is one OMS fill.
                    executions = [f["execution_id"] for f in oms_fills]
                    assert len(executions) == len(set(executions)), Counter(executions).most_common(3)
                    assert len(oms_fills) == len(activities), (len(oms_fills), len(activities))
                    oms_filled: Counter[str] = Counter()
                    for f in oms_fills:
                        oms_filled[f["order_id"]] += f["qty"]
                    for o in broker_orders:
                        filled = int(float(o.filled_qty or 0))
                        assert oms_filled[o.client_order_id] == filled, (
                            o.client_order_id,
                            o.symbol,
                            filled,
                            oms_filled,
                        )
                        assert by_id[o.client_order_id]["filled_qty"] == filled, (by_id[o.client_order_id], filled)
                    assert sum(oms_filled.values()) == sum(int(float(a["qty"])) for a in activities)
                    net_oms: Counter[str] = Counter()
                    net_broker: Counter[str] = Counter()
                    for f in oms_fills:
                        net_oms[f["symbol"]] += f["qty"] if _side(f["side"]) == "buy" else -f["qty"]
                    for o in broker_orders:
                        filled = int(float(o.filled_qty or 0))
                        net_broker[o.symbol] += filled if _side(o.side) == "buy" else -filled
                    net_broker_qty = {s: q for s, q in net_broker.items() if q}
                    assert {s: q for s, q in net_oms.items() if q} == net_broker_qty, (net_oms, net_broker)

                    # ledger == broker.
                    assert ledger == broker_positions == net_broker_qty, (ledger, broker_positions, net_broker)
                    assert not any(p["frozen"] for p in positions.values()), positions
                    assert not any("_UNKNOWN_" in p["allocations"] for p in positions.values()), positions
                    for p in positions.values():
                        assert p["real_qty"] == sum(a["qty"] for a in p["allocations"].values()), p

                    async def drained() -> bool:
                        return (await http.get("/health")).json().get("journal_backlog") == 0

                    await until(drained, timeout=60, interval=0.25, what="the journal drained to Postgres")
                pg_intents = await fetch_value(url, "SELECT count(*) FROM intents")
                pg_keys = await fetch_value(url, "SELECT count(DISTINCT idempotency_key) FROM intents")
                pg_orders = await fetch_value(url, "SELECT count(*) FROM orders")
                pg_fills = await fetch_value(url, "SELECT count(*) FROM fills")
                assert pg_intents == pg_keys == TOTAL, (pg_intents, pg_keys)
                assert pg_orders == len(oms_orders), (pg_orders, len(oms_orders))
                assert pg_fills == len(oms_fills), (pg_fills, len(oms_fills))
        decided = Counter(f"{r['status']} {r.get('reason_code') or ''}".strip() for r in resent.values())
        print(
            f"\n[sigkill-alpaca] intents sent={TOTAL} ({ENTRIES} entries, {EXITS} exits), "
            f"replies before the kill={len(before_kill)}, "
            f"unanswered={unanswered} ({dict(failed)}; {len(reply_lost)} of them decided before the kill); "
            f"restart to healthy {restart_s:.1f}s; after the re-send: {dict(decided)}; "
            f"OMS orders={len(oms_orders)} orders at Alpaca={len(at_broker)} (unique, ≤1 per intent), "
            f"fills OMS={len(oms_fills)} Alpaca activities={len(activities)}, lost acknowledged=0, "
            f"duplicate orders=0; positions {len(ledger)} symbols, ledger == Alpaca; "
            f"Postgres intents={pg_intents} orders={pg_orders} fills={pg_fills}; wall {time.monotonic() - wall0:.1f}s"
        )
    finally:
        drop_database(name)


async def _recon_ok(http: httpx.AsyncClient) -> bool:
    health = (await http.get("/health")).json()
    return bool(health.get("recon_status") == "OK" and health.get("status") == "ok")
