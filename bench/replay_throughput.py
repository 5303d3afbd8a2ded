"""Paper-exchange replay throughput: one full KRX session of every minute ticker through the
exchange (tape → ticks → matching engine → tick fan-out), as fast as the machine allows.

    .venv/bin/python bench/replay_throughput.py [--date 2026-02-27] [--resting 0] [--subscribers 1]

``--resting N`` places N resting buy limits (below the market, spread over the symbols) before the
open, so matching has work on every tick; ``--subscribers`` tick consumers drain their queues.
Prints ticks/s; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_core.clock import KST, ManualClock  # noqa: E402
from broker_core.market_rules import round_down  # noqa: E402
from broker_core.models import OrderRequest, OrderType, Side  # noqa: E402
from broker_core.paper.data import KrxData  # noqa: E402
from broker_core.paper.exchange import PaperExchange  # noqa: E402
from broker_core.paper.matching import MatchingEngine  # noqa: E402
from broker_core.paper.replay import ReplayFeed  # noqa: E402


async def run(day: date, resting: int, subscribers: int, data_dir: str | None) -> dict[str, float]:
    data = KrxData(data_dir)
    t0 = time.perf_counter()
    feed = ReplayFeed(data, day)
    load_s = time.perf_counter() - t0
    clock = ManualClock(datetime.combine(day, dtime(8, 59), KST))
    engine = MatchingEngine(cash=1e13, order_window=None)
    exchange = PaperExchange(feed, clock, engine)
    symbols = list(feed.symbols)
    for i in range(resting):
        sym = symbols[i % len(symbols)]
        close = feed.prev_close(sym) or 10_000
        exchange.submit(OrderRequest(f"rest-{i}", sym, Side.BUY, 1, OrderType.LIMIT, float(round_down(close * 0.75))))
    subs = [exchange.subscribe_ticks(None) for _ in range(subscribers)]
    received = [0] * subscribers

    async def drain(k: int) -> None:
        while True:
            await subs[k].queue.get()
            received[k] += 1

    readers = [asyncio.create_task(drain(k)) for k in range(subscribers)]
    t1 = time.perf_counter()
    await exchange.run()
    run_s = time.perf_counter() - t1
    for r in readers:
        r.cancel()
    return {
        "ticks": exchange.ticks_processed,
        "load_s": load_s,
        "run_s": run_s,
        "ticks_per_s": exchange.ticks_processed / run_s,
        "symbols": len(symbols),
        "received": min(received or [0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default=None)
    parser.add_argument("--resting", type=int, default=0)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    day = date.fromisoformat(args.date) if args.date else KrxData(args.data_dir).latest_session()
    for resting in sorted({0, args.resting}):
        r = asyncio.run(run(day, resting, args.subscribers, args.data_dir))
        print(
            f"session {day}: {r['symbols']:.0f} symbols, {r['ticks']:,.0f} ticks, resting orders {resting}, "
            f"subscribers {args.subscribers}: load {r['load_s']:.2f} s, replay {r['run_s']:.2f} s "
            f"→ {r['ticks_per_s']:,.0f} ticks/s"
        )


if __name__ == "__main__":
    main()
