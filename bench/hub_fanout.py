"""Market-data hub fan-out benchmark: ticks/s fanned out to N subscribers and upstream→receipt delay.

    .venv/bin/python bench/hub_fanout.py [--mode inproc|ws|both] [--subscribers 5] [--symbols 20]
        [--seconds 5] [--rate 10000] [--batch 10] [--backlog 10000]

Upstream is a synthetic broker (``BenchBroker``): its ``ticks()`` yields prints of ``--symbols``
symbols in batches of ``--batch`` (one batch ≈ one socket read of a real feed; the reader yields to
the loop between batches). Each tick carries its emission wall time as its timestamp, so every
subscriber computes the delay from upstream emission to its own receipt *after decoding the JSON*.
The real :class:`~oms.marketdata.hub.MarketDataHub` does the fan-out (one JSON encoding per tick,
per-consumer queues with conflation); the subscribers are the hub's own consumers.

Two runs per mode:

- **max**: the broker emits as fast as the loop lets it → throughput (messages delivered / s =
  ticks × subscribers that reached a subscriber; conflated ticks are counted separately, not as
  delivered).
- **paced** at ``--rate`` ticks/s (default 10,000 → 50,000 messages/s to 5 subscribers): delay
  percentiles p50/p99/max at that load, and whether the rate was sustained.

Modes:

- ``inproc``: subscribers are tasks in the same event loop reading ``StreamConsumer.get()``.
- ``ws``: the real ``WS /api/v1/stream`` endpoint (``oms/api/stream.py``) served by uvicorn in this
  process; the subscribers are ``websockets`` clients in a *separate process* (so the figures
  include the server's JSON framing, the socket and the client's decoding, and the client does not
  steal the server's event loop). Delays use wall time across the two processes (same host clock).
  Run twice: one JSON object per frame (the default protocol), then ``?batch=1`` (JSON arrays of
  whatever is queued when the socket is free).

Figures are printed, never asserted. CPU count and load matter: run on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_core.clock import KST, RealClock  # noqa: E402
from broker_core.models import Tick  # noqa: E402
from oms.marketdata import MarketDataHub, StreamBus  # noqa: E402
from oms.settings import MarketDataConfig  # noqa: E402

KEY = "bench-strategy-key-0001"


class BenchBroker:
    name = "bench"
    subscription_capacity = 40

    def __init__(self, symbols: list[str], batch: int) -> None:
        self.symbols = symbols
        self.batch = batch
        self.rate = 0.0
        self.running = asyncio.Event()
        self.stop = False
        self.sent = 0
        self.subscribed: set[str] = set()

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        self.subscribed |= set(symbols)

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        self.subscribed -= set(symbols)

    async def ticks(self) -> AsyncIterator[Tick]:  # type: ignore[override]
        syms = self.symbols
        n = len(syms)
        while True:
            await self.running.wait()
            t0 = time.perf_counter()
            start_sent = self.sent
            while not self.stop:
                if self.rate > 0:  # paced: batch k is due at t0 + k·batch/rate
                    due = t0 + (self.sent - start_sent) / self.rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                now = time.time()
                ts = datetime.fromtimestamp(now, KST)
                for _ in range(self.batch):
                    i = self.sent
                    self.sent += 1
                    yield Tick(symbol=syms[i % n], ts=ts, price=10_000 + i % 100, qty=i)
                if self.rate <= 0:
                    await asyncio.sleep(0)
            self.running.clear()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(
    label: str,
    seconds: float,
    sent: int,
    delivered: int,
    delays: list[float],
    conflated: int,
    subscribers: int,
    rate: float,
    delivered_seconds: float,
) -> dict[str, Any]:
    """ticks/s over the emission window; messages/s over emission start → last receipt."""
    out = {
        "run": label,
        "seconds": round(seconds, 3),
        "ticks_upstream": sent,
        "ticks_per_s": round(sent / seconds),
        "messages_delivered": delivered,
        "messages_per_s": round(delivered / delivered_seconds),
        "conflated": conflated,
        "p50_ms": round(pct(delays, 0.50) * 1e3, 3),
        "p99_ms": round(pct(delays, 0.99) * 1e3, 3),
        "max_ms": round(max(delays) * 1e3, 3) if delays else None,
        "target_ticks_per_s": rate or None,
    }
    print(
        f"  {label:<22} ticks/s {out['ticks_per_s']:>9,}  delivered msgs/s {out['messages_per_s']:>9,} "
        f"(to {subscribers})  conflated {conflated:>7,}  delay p50 {out['p50_ms']:.3f} ms  "
        f"p99 {out['p99_ms']:.3f} ms  max {out['max_ms']} ms",
        flush=True,
    )
    return out


def make_hub(symbols: list[str], batch: int, backlog: int) -> tuple[MarketDataHub, BenchBroker]:
    broker = BenchBroker(symbols, batch)
    config = MarketDataConfig(consumer_backlog=backlog, stale_after_s=3600)
    hub = MarketDataHub(
        broker,
        RealClock(),
        StreamBus(backlog),
        config=config,  # type: ignore[arg-type]
        market_open=lambda now: False,
    )
    return hub, broker


# ---- in-process ---------------------------------------------------------------------------------
async def run_inproc(args: argparse.Namespace) -> list[dict[str, Any]]:
    symbols = [f"{i:06d}" for i in range(args.symbols)]
    hub, broker = make_hub(symbols, args.batch, args.backlog)
    await hub.start()
    delays: list[float] = []
    counts = [0] * args.subscribers
    recording = False
    consumers = []
    for i in range(args.subscribers):
        c = hub.connect(f"S{i}")
        await hub.subscribe(c, symbols, ["trades"])
        consumers.append(c)

    async def read(i: int) -> None:
        c = consumers[i]
        while True:
            msg = json.loads(await c.get())
            if recording:
                counts[i] += 1
                delays.append(time.time() - datetime.fromisoformat(msg["ts"]).timestamp())

    readers = [asyncio.create_task(read(i)) for i in range(args.subscribers)]
    results = []
    print(f"in-process: {args.subscribers} subscribers × {args.symbols} symbols, batch {args.batch}", flush=True)
    for label, rate in (("max", 0.0), (f"paced {args.rate:,.0f} ticks/s", args.rate)):
        delays.clear()
        counts[:] = [0] * args.subscribers
        conflated0 = hub.conflated
        broker.rate, broker.stop = rate, False
        recording = True
        sent0 = broker.sent
        t0 = time.perf_counter()
        broker.running.set()
        await asyncio.sleep(args.seconds)
        broker.stop = True
        sent = broker.sent - sent0
        send_elapsed = time.perf_counter() - t0
        # let the subscribers drain what is queued (bounded by the backlog)
        deadline = time.perf_counter() + 10
        while any(c.market_backlog for c in consumers) and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - t0  # until the last message reached its subscriber
        recording = False
        results.append(
            report(
                label,
                send_elapsed,
                sent,
                sum(counts),
                delays,
                hub.conflated - conflated0,
                args.subscribers,
                rate,
                delivered_seconds=elapsed,
            )
        )
        results[-1]["mode"] = "inproc"
        await asyncio.sleep(0.2)
    for r in readers:
        r.cancel()
    await hub.stop()
    return results


# ---- over the WebSocket endpoint ----------------------------------------------------------------
def ws_clients(url: str, n: int, symbols: list[str], conn: Any, batched: bool, deflate: bool) -> None:
    """Child process: n websocket subscribers; reports counts and delays per run over the pipe."""
    import uvloop
    from websockets.asyncio.client import connect

    async def main() -> None:
        delays: list[float] = []
        counts = [0] * n
        state = {"recording": False}

        async def one(i: int, ready: asyncio.Event) -> None:
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {KEY}"},
                ping_interval=None,
                max_size=None,
                compression="deflate" if deflate else None,
            ) as ws:
                await ws.send(json.dumps({"op": "subscribe", "symbols": symbols, "channels": ["trades"]}))
                async for raw in ws:
                    decoded = json.loads(raw)
                    now = time.time()
                    for msg in decoded if batched else (decoded,):
                        if msg.get("type") == "subscribed":
                            ready.set()
                            continue
                        if state["recording"]:
                            counts[i] += 1
                            delays.append(now - datetime.fromisoformat(msg["ts"]).timestamp())

        readies = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(one(i, readies[i])) for i in range(n)]
        await asyncio.gather(*(r.wait() for r in readies))
        loop = asyncio.get_running_loop()
        conn.send("ready")
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "start":
                delays.clear()
                counts[:] = [0] * n
                state["recording"] = True
                conn.send("started")
            elif cmd == "count":
                conn.send(sum(counts))
            elif cmd == "stop":
                state["recording"] = False
                conn.send({"counts": list(counts), "delays": list(delays)})
            elif cmd == "exit":
                break
        for t in tasks:
            t.cancel()

    uvloop.run(main())


async def run_ws(args: argparse.Namespace, batched: bool) -> list[dict[str, Any]]:
    import uvicorn
    from fastapi import FastAPI

    from oms.api import stream
    from oms.api.auth import KeyRing

    symbols = [f"{i:06d}" for i in range(args.symbols)]
    hub, broker = make_hub(symbols, args.batch, args.backlog)
    await hub.start()
    app = FastAPI()
    app.include_router(stream.router)
    app.state.keys = KeyRing(admin=None, read=None, strategies={KEY: "BENCH"})
    app.state.runtime = SimpleNamespace(hub=hub)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    parent, child = mp.Pipe()
    url = f"ws://127.0.0.1:{port}/api/v1/stream" + ("?batch=1" if batched else "")
    proc = mp.get_context("spawn").Process(
        target=ws_clients,
        args=(url, args.subscribers, symbols, child, batched, args.compression == "deflate"),
        daemon=True,
    )
    proc.start()
    loop = asyncio.get_running_loop()

    async def ask(msg: Any) -> Any:
        parent.send(msg)
        return await loop.run_in_executor(None, parent.recv)

    assert await loop.run_in_executor(None, parent.recv) == "ready"
    print(
        f"websocket{' ?batch=1 (JSON array frames)' if batched else ' (one JSON object per frame)'}: uvicorn, "
        f"loop={type(loop).__module__}; {args.subscribers} subscribers in another process × {args.symbols} "
        f"symbols, upstream batch {args.batch}, compression {args.compression}",
        flush=True,
    )
    results = []
    for label, rate in (("max", 0.0), (f"paced {args.rate:,.0f} ticks/s", args.rate)):
        assert await ask("start") == "started"
        conflated0 = hub.conflated
        broker.rate, broker.stop = rate, False
        sent0 = broker.sent
        t0 = time.perf_counter()
        broker.running.set()
        await asyncio.sleep(args.seconds)
        broker.stop = True
        sent = broker.sent - sent0
        send_elapsed = time.perf_counter() - t0
        expected = sent * args.subscribers - (hub.conflated - conflated0)
        deadline = time.perf_counter() + 10
        while await ask("count") < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - t0  # until the last message reached its subscriber
        got = await ask("stop")
        results.append(
            report(
                label,
                send_elapsed,
                sent,
                sum(got["counts"]),
                got["delays"],
                hub.conflated - conflated0,
                args.subscribers,
                rate,
                delivered_seconds=elapsed,
            )
        )
        results[-1]["mode"] = "ws-batch" if batched else "ws"
    parent.send("exit")
    proc.join(10)
    server.should_exit = True
    await serving
    await hub.stop()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["inproc", "ws", "both"], default="both")
    p.add_argument("--subscribers", type=int, default=5)
    p.add_argument("--symbols", type=int, default=20)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=10_000.0, help="paced run: upstream ticks per second")
    p.add_argument("--batch", type=int, default=10, help="ticks per upstream read")
    p.add_argument("--backlog", type=int, default=10_000, help="marketdata.consumer_backlog")
    p.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="ws clients: offer permessage-deflate (the websockets default, what the SDK does) or not",
    )
    p.add_argument("--json-report", type=Path)
    args = p.parse_args()
    print(f"hub fan-out bench: python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)", flush=True)
    import uvloop

    results: list[dict[str, Any]] = []
    if args.mode in ("inproc", "both"):
        results += uvloop.run(run_inproc(args))
    if args.mode in ("ws", "both"):
        for batched in (False, True):
            results += uvloop.run(run_ws(args, batched))
    if args.json_report:
        args.json_report.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
