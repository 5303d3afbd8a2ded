"""Run the fake KIS server alone (``trader fake-kis [--profile paper|real] [--port P]``).

The exchange replays the session of the clock's day (``TRADER_CLOCK``; real time by default) from the
KRX data when it has that day, else a synthetic session of the same day, paced on the clock. The
credentials to point an adapter at it are printed (also as KIS_* environment lines). Gateway storms
(HTTP 500, EGW00201) are switched on and off over HTTP at ``/_fake/faults`` (see ``faults.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TextIO

from broker_core.clock import clock_from_env
from broker_core.kis.fake.server import FakeKis
from broker_core.paper.data import DataNotFound, KrxData
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.feed import TickFeed
from broker_core.paper.replay import ReplayFeed
from broker_core.paper.synthetic import SyntheticFeed

log = logging.getLogger("broker_core.kis.fake")


def build_fake(
    profile: str = "paper",
    port: int = 0,
    host: str = "127.0.0.1",
    data_dir: str | None = None,
    symbols: list[str] | None = None,
) -> FakeKis:
    clock = clock_from_env()
    day = clock.now().date()
    data = None
    try:
        data = KrxData(data_dir)
    except DataNotFound as exc:
        log.warning("no KRX data (%s); the fake replays a synthetic session", exc)
    if symbols is None and data is not None:
        symbols = data.minute_symbols() or None
    feed: TickFeed | None = None
    if data is not None and day in set(data.sessions()):
        feed = ReplayFeed(data, day, symbols)
    if feed is None:
        base = {}
        if data is not None:
            for sym in symbols or []:
                close = data.prev_close(sym, day)
                if close:
                    base[sym] = close
        feed = SyntheticFeed(day, symbols, base_prices=base or None)
    exchange = PaperExchange(feed, clock)
    return FakeKis(
        profile,
        exchange=exchange,
        host=host,
        port=port,
        daily_source=data.daily_bars if data is not None else None,
        flow_source=data.investor_flow if data is not None else None,
        pingpong_interval_s=100.0,
    )


def print_banner(fake: FakeKis, out: TextIO = sys.stdout) -> None:
    out.write(
        f"fake KIS ({fake.profile.name}) listening on {fake.rest_url} (WebSocket {fake.ws_url}, also "
        f"{fake.ws_url}/tryitout); session {fake.exchange.feed.session_date}, "
        f"{len(fake.exchange.feed.symbols)} symbols; fault injection: POST {fake.rest_url}/_fake/faults "
        '{"kind": "http_500"|"rate_limit"|"none", "count": N | "until_cleared": true}\n'
    )
    for key, value in fake.client_env().items():
        out.write(f"{key}={value}\n")
    out.flush()


async def serve_fake_kis(profile: str, port: int, host: str) -> None:
    fake = build_fake(profile, port, host)
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


def run_fake_kis(profile: str = "paper", port: int = 29443, host: str = "127.0.0.1") -> None:
    """Serve a fake KIS (REST + WebSocket on one port) until interrupted."""
    if profile not in ("paper", "real"):
        raise SystemExit(f"--profile must be paper or real, got {profile!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_fake_kis(profile, port, host))


if __name__ == "__main__":  # python -m broker_core.kis.fake.cli [paper|real] [port]
    run_fake_kis(sys.argv[1] if len(sys.argv) > 1 else "paper", int(sys.argv[2]) if len(sys.argv) > 2 else 29443)
