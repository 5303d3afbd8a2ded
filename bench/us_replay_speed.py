"""Paper-US replay speed: derived sessions from the US daily data through the one matching engine.

    .venv/bin/python bench/us_replay_speed.py [--from 2024-12-02] [--days 5] [--symbols AAPL,SPY] [--data-dir P]

Prints, for the whole universe of each day (all symbols with a bar that day):

- derive: the 1-minute paths of every symbol (days/s);
- replay: the tape of those sessions through ``UsPaperExchange`` (``pace=False``, a manual clock; one
  resting limit buy per symbol per day so the engine matches on every print), with the
  fills and prints per second (days/s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_core.clock import ManualClock  # noqa: E402
from broker_core.markets import us  # noqa: E402
from broker_core.models import OrderRequest, OrderType, Side  # noqa: E402
from broker_core.paper.us_daily import UsDailyFeed  # noqa: E402
from broker_core.paper.us_data import UsData  # noqa: E402
from broker_core.paper.us_exchange import UsMatchingEngine, UsPaperExchange  # noqa: E402


async def replay(feeds: list[UsDailyFeed]) -> tuple[int, int, float]:
    first = feeds[0]
    clock = ManualClock(first.open_at)
    engine = UsMatchingEngine(cash=1e12, session_date=first.session_date)
    exchange = UsPaperExchange(first, clock, engine, pace=True, later_sessions=feeds[1:])
    placed: set[date] = set()
    queue = exchange.subscribe_order_updates()

    def place(feed: UsDailyFeed) -> None:
        for s in feed.symbols:
            last = feed.path(s).open[0] / us.UNITS_PER_DOLLAR
            exchange.submit(OrderRequest(f"{feed.session_date}-{s}", s, Side.BUY, 10, OrderType.LIMIT, last))
        placed.add(feed.session_date)

    async def feeder() -> None:
        while not exchange.done.is_set():
            feed = exchange.feed
            if feed.session_date not in placed and clock.now() >= datetime.combine(
                feed.session_date, datetime.min.time(), us.TZ
            ):
                assert isinstance(feed, UsDailyFeed)
                place(feed)
            await asyncio.sleep(0)
            while not queue.empty():
                queue.get_nowait()

    start = time.perf_counter()
    place(first)
    helper = asyncio.create_task(feeder())
    await exchange.run()
    helper.cancel()
    return exchange.ticks_processed, exchange.fills, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2024, 12, 2))
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--symbols", default=None, help="comma-separated (default: every symbol of each day)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = UsData(args.data_dir)
    data.sessions()
    days = [d for d in data.sessions() if d >= args.first][: args.days]
    if not days:
        raise SystemExit(f"no sessions from {args.first} in {data.data_dir}")
    symbols = args.symbols.split(",") if args.symbols else None
    load = time.perf_counter() - t0

    t0 = time.perf_counter()
    feeds = [UsDailyFeed(data, d, symbols) for d in days]
    derive = time.perf_counter() - t0
    n_symbols = sum(len(f.symbols) for f in feeds) / len(feeds)

    ticks, fills, elapsed = asyncio.run(replay(feeds))
    print(
        f"US paper replay: {len(days)} sessions {days[0]} … {days[-1]}, {n_symbols:.0f} symbols a day "
        f"(data load {load:.2f}s)"
    )
    print(
        f"  derive  {derive:7.2f}s  {len(days) / derive:8.2f} days/s  "
        f"({len(days) * n_symbols / derive:,.0f} symbol-days/s)"
    )
    print(
        f"  replay  {elapsed:7.2f}s  {len(days) / elapsed:8.2f} days/s  "
        f"({ticks / elapsed:,.0f} prints/s, {ticks:,} prints, {fills:,} fills)"
    )
    total = derive + elapsed
    print(f"  total   {total:7.2f}s  {len(days) / total:8.2f} days/s")


if __name__ == "__main__":
    main()
