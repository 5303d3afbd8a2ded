"""SIGKILL of the OMS in the middle of a burst, then a restart on the same volume.

The OMS runs as a real process (``trader oms``); its paper account lives in the data dir too, so
the broker survives the kill like a real one. After the restart: state equals the broker's, every
intent that got a 2xx is there with its decision, and no order was sent twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from broker_core.paper.persistence import PaperStateStore
from tests.support.oms_process import healthy, oms_process
from tests.support.oms_server import ADMIN_KEY, READ_KEY, SESSION, STRATEGY_KEYS, auth, free_port
from tests.support.wait import until

SYMBOLS = ["005930", "000660", "000270", "012330", "055550", "066570", "105560", "003490"]
STRATEGIES = ["KMP", "KPR", "NULRIMOK", "PCIM"]


def _env(data_dir: Path, anchor: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "DATABASE_URL", "TRADER_"))}
    env.update(
        OMS_ADMIN_KEY=ADMIN_KEY,
        OMS_READ_KEY=READ_KEY,
        OMS_DATA_DIR=str(data_dir),
        OMS_STRATEGY_KEYS=",".join(f"{k}:{v}" for k, v in STRATEGY_KEYS.items()),
        OMS_PAPER_DATE=SESSION,
        OMS_INSTANCE_ID="restart",
        TRADER_CLOCK=f"sim start={SESSION}T09:30:00+09:00 speed=20 anchor={anchor!r}",
    )
    return env


def _body(i: int) -> tuple[str, dict[str, object]]:
    strategy = STRATEGIES[i % len(STRATEGIES)]
    symbol = SYMBOLS[(i // len(STRATEGIES)) % len(SYMBOLS)]
    body: dict[str, object] = {
        "intent_type": "ENTER",
        "strategy_id": strategy,
        "symbol": symbol,
        "desired_qty": 1 + i % 3,
        "constraints": {"order_type": "MARKETABLE_LIMIT"},
        "idempotency_key": f"kill-{i}",
    }
    return STRATEGY_KEYS[strategy], body


async def test_sigkill_mid_burst_then_restart(tmp_path: Path) -> None:
    port, log, anchor = free_port(), tmp_path / "oms.log", time.time()
    env = _env(tmp_path / "var", anchor)
    ok: dict[str, dict[str, object]] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        with oms_process(env, port, log) as proc:
            await until(lambda: healthy(http, proc, log), timeout=90, what="first OMS healthy")

            async def post(i: int) -> None:
                key, body = _body(i)
                try:
                    resp = await http.post("/api/v1/intents", json=body, headers=auth(key))
                except httpx.HTTPError:
                    return
                if resp.status_code == 200:
                    ok[str(body["idempotency_key"])] = resp.json()

            tasks = [asyncio.create_task(post(i)) for i in range(120)]
            await until(lambda: len(ok) >= 40, timeout=60, what="40 intents answered")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*tasks)
        answered = dict(ok)
        assert 40 <= len(answered) < 120

        with oms_process(env, port, log) as proc:
            await until(lambda: healthy(http, proc, log), timeout=90, what="restarted OMS healthy")
            history = (await http.get("/api/v1/intents", params={"limit": 5000}, headers=auth(READ_KEY))).json()
            by_id = {h["intent_id"]: h for h in history}
            for key, reply in answered.items():
                assert reply["intent_id"] in by_id, f"intent {key} got a 2xx but is lost after the restart"
                assert by_id[reply["intent_id"]]["status"] is not None

            store = PaperStateStore(tmp_path / "var" / "paper_account.db")
            broker_orders = store.read_state().orders  # type: ignore[union-attr]
            ids = [o.order.client_order_id for o in broker_orders]
            assert len(ids) == len(set(ids))
            oms_orders = (await http.get("/api/v1/orders", params={"limit": 5000}, headers=auth(READ_KEY))).json()
            sent = {o["order_id"] for o in oms_orders if o["broker_order_id"]}
            assert set(ids) <= {o["order_id"] for o in oms_orders}, "every broker order belongs to an OMS order"
            assert sent <= set(ids)

            for i in range(120):
                key, body = _body(i)
                resp = await http.post("/api/v1/intents", json=body, headers=auth(key))
                assert resp.status_code == 200
                if body["idempotency_key"] in answered:
                    assert resp.json()["intent_id"] == answered[str(body["idempotency_key"])]["intent_id"]

            async def converged() -> bool:
                broker = {p.symbol: p.qty for p in store.read_state().positions if p.qty}  # type: ignore[union-attr]
                positions = (await http.get("/api/v1/positions", headers=auth(READ_KEY))).json()
                ledger = {s: p["real_qty"] for s, p in positions.items() if p["real_qty"]}
                working = any(
                    o["state"] not in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")
                    for o in (
                        await http.get("/api/v1/orders", params={"open_only": True}, headers=auth(READ_KEY))
                    ).json()
                )
                return not working and broker == ledger and broker

            await until(converged, timeout=90, what="ledger equal to the broker with no working orders")
            positions = (await http.get("/api/v1/positions", headers=auth(READ_KEY))).json()
            assert not any(p["frozen"] for p in positions.values()), positions
            assert not any("_UNKNOWN_" in p["allocations"] for p in positions.values()), positions
            for p in positions.values():
                assert p["real_qty"] == sum(a["qty"] for a in p["allocations"].values())
            store.close()
