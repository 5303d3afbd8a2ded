"""Fill → owning strategy's stream: how long after the OMS learns of a fill its strategy reads it.

    python bench/fill_stream.py [--db sqlite|postgres] [--orders 40] [--timeout 90]

Spawns a bench OMS (``bench/intents.py``'s ``spawn``: paper broker replaying 2026-02-27 from 10:00 at
speed 1, pinned off the generator's core), connects one strategy's WebSocket (``/api/v1/stream``; a
strategy key gets its own order and fill events without subscribing), then sends ``--orders`` ENTERs of
one share with a marketable LIMIT (5% over the 09:59 close), one symbol each, so each fills on that
symbol's next print. For every fill event read from the socket, the latency is the reader's wall time
minus the wall time at which the OMS journaled the fill (the ``ts`` of its row in the OMS's journal,
``journal.db``: the journal append is the OMS's first act on a broker fill, before it publishes it), on
the same host clock. Prints p50/p90/p99/max and the count; never asserted. The journal is read after the
OMS stopped (SIGTERM), so nothing of the reading sits on the measured path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import intent_roundtrip as rt  # noqa: E402
import intents  # noqa: E402

from broker_core import market_rules  # noqa: E402


async def read_fills(ws_url: str, key: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        ready.set()
        async for raw in ws:
            now = time.time()
            for event in _events(raw):
                if event.get("type") == "fill":
                    seen.setdefault(str(event["execution_id"]), now)


def _events(raw: str | bytes) -> list[dict[str, Any]]:
    data = json.loads(raw)
    return data if isinstance(data, list) else [data]


def journaled_fills(journal: Path) -> dict[str, float]:
    """execution_id → wall time of the fill row's first journal append."""
    out: dict[str, float] = {}
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        for row, ts in db.execute("SELECT row, ts FROM journal WHERE tbl = 'fills' ORDER BY seq"):
            execution_id = str(json.loads(row).get("execution_id"))
            out.setdefault(execution_id, float(ts))
    return out


async def run(db: str, orders: int, timeout: float, gen_cpu: int) -> int:
    symbols, limits = rt.limit_prices()
    symbols = symbols[:orders]
    async with intents.spawn(db, 1, gen_cpu) as sp:
        sid, key = sp.strategies[0]
        ws_url = sp.oms.url.replace("http://", "ws://") + "/api/v1/stream"
        seen: dict[str, float] = {}
        ready = asyncio.Event()
        reader = asyncio.create_task(read_fills(ws_url, key, seen, ready))
        await asyncio.wait_for(ready.wait(), 30)
        run_id = uuid.uuid4().hex[:8]
        async with httpx.AsyncClient(base_url=sp.oms.url, headers={"Authorization": f"Bearer {key}"}) as http:
            for k, sym in enumerate(symbols):
                marketable = float(market_rules.round_to_tick(limits[sym] / 0.98 * 1.05))
                reply = await http.post(
                    "/api/v1/intents",
                    json={
                        "intent_type": "ENTER",
                        "strategy_id": sid,
                        "symbol": sym,
                        "desired_qty": 1,
                        "constraints": {"order_type": "LIMIT", "limit_price": marketable},
                        "risk_payload": {"rationale_code": "BENCH"},
                        "idempotency_key": f"fill-stream-{run_id}-{k}",
                    },
                )
                if reply.status_code >= 400:
                    print(f"  {sym}: HTTP {reply.status_code} {reply.text[:200]}")
        deadline = time.monotonic() + timeout
        while len(seen) < len(symbols) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        rt.stop_oms(sp.oms)
        journaled = journaled_fills(sp.oms.tmp / "oms" / "journal.db")
    lat = sorted((seen[x] - journaled[x]) for x in seen if x in journaled)
    print(
        f"fill → strategy stream ({db}): {len(lat)} fills of {len(symbols)} orders ({len(seen)} read, "
        f"{len(journaled)} journaled)"
    )
    if lat:
        print("  latency from the fill's journal append to the strategy's read: " + intents.fmt_lat(intents.lat(lat)))
    return 0 if lat else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--orders", type=int, default=40, help="ENTERs sent, one symbol each (≤ the data's symbols)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the fills")
    parser.add_argument("--cpu", type=int, default=0, help="core of this process (-1: no pinning)")
    args = parser.parse_args()
    if args.cpu >= 0:
        intents.pin(0, {args.cpu})
    return asyncio.run(run(args.db, args.orders, args.timeout, args.cpu))


if __name__ == "__main__":
    raise SystemExit(main())
