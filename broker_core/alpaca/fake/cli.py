"""Run the fake Alpaca alone: ``python -m broker_core.alpaca.fake [--port P]``; ``run_fake_alpaca`` is what
``trader fake-alpaca`` mounts.

The exchange replays the session of the clock's New York date (``TRADER_CLOCK``; real time by default) —
or the next session when that day's is over or the market is shut — with the path derived from the US
data's bars of that day. When the data has no bars for it (the data ends 2024-12-31), the latest day of the
data before it is replayed on that session, and the banner says so. A multi-day ``TRADER_CLOCK``
(``days=… market=us``) replays each of its days in turn. The keys are ``ALPACA_API_KEY`` /
``ALPACA_SECRET_KEY`` from the environment when set, else generated; the banner prints, one ``NAME=value``
per line, the environment a client needs.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from typing import TextIO

from broker_core.alpaca.fake.server import DEFAULT_KEY, FakeAlpaca
from broker_core.clock import NEW_YORK, Clock, VirtualClock, clock_from_env
from broker_core.markets import us
from broker_core.paper.us_daily import DEFAULT_SEED, UsDailyFeed
from broker_core.paper.us_data import UsData
from broker_core.paper.us_exchange import UsMatchingEngine, UsPaperExchange

log = logging.getLogger("broker_core.alpaca.fake")
DEFAULT_PORT = 28443


def session_day(clock: Clock) -> date:
    """The session the fake serves: today's while it is not over, else the next one."""
    now = clock.now().astimezone(NEW_YORK)
    today = us.session(now)
    if today is not None and now < today.close:
        return today.day
    return us.next_trading_day(now.date())


def data_day_for(data: UsData, day: date) -> date:
    """``day`` when the data has it, else the latest data day before it (else the first one)."""
    sessions = data.sessions()
    i = bisect.bisect_right(sessions, day)
    return sessions[i - 1] if i > 0 else sessions[0]


def build_fake(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    data_dir: str | None = None,
    symbols: list[str] | None = None,
    seed: int = DEFAULT_SEED,
    clock: Clock | None = None,
    api_key: str = DEFAULT_KEY,
    secret_key: str | None = None,
) -> FakeAlpaca:
    clock = clock or clock_from_env(NEW_YORK)
    data = UsData(data_dir)
    day = session_day(clock)
    days = [day]
    if isinstance(clock, VirtualClock) and clock.windows is not None and clock.windows.market == "us":
        days += [d for d in clock.windows.days() if d > day]
    feeds = [UsDailyFeed(data, data_day_for(data, d), symbols, seed=seed, session_day=d) for d in days]
    engine = UsMatchingEngine(session_date=day)
    exchange = UsPaperExchange(feeds[0], clock, engine, later_sessions=feeds[1:])
    return FakeAlpaca(
        exchange,
        data=data,
        host=host,
        port=port,
        api_key=api_key,
        secret_key=secret_key,
        seed=seed,
    )


def print_banner(fake: FakeAlpaca, out: TextIO = sys.stdout) -> None:
    feed = fake.exchange.feed
    data_day = getattr(feed, "data_day", feed.session_date)
    replay = "" if data_day == feed.session_date else f" (replaying the derived path of {data_day})"
    out.write(
        f"fake Alpaca listening on {fake.base_url} (trade_updates {fake.stream_url}, market data "
        f"{fake.data_stream_url}); session {feed.session_date}{replay}, {len(feed.symbols)} symbols; "
        f"fault injection: POST {fake.base_url}/_fake/faults (see broker_core/alpaca/fake/faults.py)\n"
    )
    for key, value in fake.client_env().items():
        out.write(f"{key}={value}\n")
    out.flush()


async def serve_fake_alpaca(port: int, host: str, data_dir: str | None = None) -> None:
    fake = build_fake(
        port,
        host,
        data_dir=data_dir,
        api_key=os.environ.get("ALPACA_API_KEY") or DEFAULT_KEY,
        secret_key=os.environ.get("ALPACA_SECRET_KEY") or None,
    )
    await fake.start()
    print_banner(fake)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await fake.stop()


def run_fake_alpaca(port: int = DEFAULT_PORT, host: str = "127.0.0.1", data_dir: str | None = None) -> None:
    """Serve a fake Alpaca (trading + data REST, trade_updates, market data on one port) until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_fake_alpaca(port, host, data_dir))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m broker_core.alpaca.fake", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", default=None, help="US data directory (default $TRADER_US_DATA_DIR)")
    args = parser.parse_args(argv)
    run_fake_alpaca(args.port, args.host, args.data_dir)


__all__ = ["build_fake", "main", "print_banner", "run_fake_alpaca", "serve_fake_alpaca"]
