"""Nulrimok LRS first fill against the fake KIS at its real rate limit (issue 15: "LRS first-fill time").

    .venv/bin/python bench/nulrimok_lrs_fill.py [--profile paper|real] [--symbols N] [--timeout 720]
        [--lrs-dir DIR]

What it does, in this one process (one event loop):

1. The fake KIS exactly as ``trader fake-kis --profile P`` builds it (``broker_core.kis.fake.cli.build_fake``:
   replay of the KRX data's session, daily bars and investor flow from the KRX data) on a clock
   ``TRADER_CLOCK="sim start=2026-02-27T07:30:00+09:00 speed=1"`` — speed 1, so the fake's per-second window
   (``paper`` 2 requests/s per app key, ``real`` 20/s; EGW00201 over it) is wall-clock seconds. The rate is the
   profile's own: nothing here raises it.
2. An OMS (uvicorn on a free localhost port, SQLite, ``config/oms.yaml`` as is) with ``OMS_BROKER=kis``: the
   real KIS adapter pointed at the fake with the ``KIS_*`` variables the fake prints.
3. Nulrimok's strategy from ``config/nulrimok.yaml`` (the full universe: every symbol of the sector map,
   or the first ``--symbols N`` of it) with its LRS in a fresh directory, started at 07:30 (before the DSE):
   the start refreshes the LRS, which is empty, so this is the first fill. Timed from ``run()`` until the
   refresh reports; then the strategy is stopped.
4. A second start on the same LRS the same day: its refresh mode and time ("fresh, skipped").

Printed: wall time of the fill, REST calls the fake received during it (the fill's daily charts and investor
queries, and the OMS's own account queries sharing the budget), calls/s, EGW00201 replies counted by the fake
(its own request log) and its busiest 1-s window, the strategy's client retries (OMS request timeouts: a
daily unit of ~5 pages waits in the account budget's queue), rows per LRS table, units done/failed, the second
start's mode and time, and with ``--symbols N`` below the full universe a linear extrapolation to it.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from broker_core.clock import KST, sim_spec  # noqa: E402
from broker_core.kis.fake.cli import build_fake  # noqa: E402
from broker_core.kis.fake.server import FakeKis  # noqa: E402
from oms.app import create_app  # noqa: E402
from oms.runtime import OmsRuntime  # noqa: E402
from oms.settings import OmsSettings, load_config  # noqa: E402
from strategies.nulrimok import data as nul_data  # noqa: E402
from strategies.nulrimok.config import load_nulrimok_config  # noqa: E402
from strategies.nulrimok.strategy import NulrimokStrategy  # noqa: E402
from strategies.sdk import OmsClient  # noqa: E402
from trader.venues import build_venue  # noqa: E402

START = datetime(2026, 2, 27, 7, 30, tzinfo=KST)
RATE_ERROR = "EGW00201"
CHART = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"
INVESTOR = "/uapi/domestic-stock/v1/quotations/inquire-investor"


class Retries(logging.Handler):
    """Counts the SDK client's retry warnings (``OMS GET ... failed (ReadTimeout); retry``) by cause."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_cause: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "; retry " in msg and "(" in msg:
            self.by_cause[msg[msg.rfind("(", 0, msg.index("; retry")) + 1 : msg.index("; retry") - 1]] += 1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uapi(fake: FakeKis, since: int = 0) -> list[Any]:
    return [r for r in fake.request_log[since:] if r.path.startswith("/uapi/")]


async def start_until_refreshed(s: NulrimokStrategy, timeout: float) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    task = asyncio.create_task(s.run())
    try:
        while "mode" not in s.lrs_info:
            if time.monotonic() - started > timeout:
                p = s.filler.progress
                raise SystemExit(f"fill not done after {timeout:.0f}s: {p.snapshot if p else 'no progress'}")
            if task.done():
                task.result()
                raise SystemExit("the strategy stopped before its LRS refresh reported")
            await asyncio.sleep(0.01)
        wall = time.monotonic() - started
    finally:
        s.request_stop()
        await asyncio.wait_for(task, 60)
    return dict(s.lrs_info), wall


async def main(args: argparse.Namespace) -> int:
    os.environ["TRADER_CLOCK"] = sim_spec(START, 1.0)
    fake = build_fake(args.profile)
    clock = fake.clock
    await fake.start()
    keys = {"admin": secrets.token_hex(12), "read": secrets.token_hex(12), "NULRIMOK": secrets.token_hex(12)}
    work = Path(tempfile.mkdtemp(prefix="bench-lrs-"))
    os.environ.update(fake.client_env())
    settings = OmsSettings(
        oms_broker="kis",
        oms_admin_key=keys["admin"],
        oms_read_key=keys["read"],
        oms_strategy_keys=f"NULRIMOK:{keys['NULRIMOK']}",
        oms_data_dir=str(work / "oms"),
        oms_instance_id="bench-lrs",
        database_url="",
    )
    runtime = OmsRuntime(settings, load_config(), venue=build_venue, clock=clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    retries = Retries()
    logging.getLogger("strategies.sdk.client").addHandler(retries)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            t0 = time.monotonic()
            while True:
                try:
                    if (await http.get("/health")).json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 > 60:
                    raise SystemExit("OMS not healthy after 60 s")
                await asyncio.sleep(0.1)
        print(
            f"fake KIS ({fake.profile.name}, {fake.profile.rate_per_sec:g} req/s per app key) and OMS on KIS up "
            f"in {time.monotonic() - t0:.1f}s; {len(uapi(fake))} REST calls so far (OMS start)"
        )

        cfg = load_nulrimok_config()
        sectors, why = nul_data.load_sector_map()
        full = nul_data.listing(cfg.universe, sectors)
        if not full:
            raise SystemExit(f"empty Nulrimok listing ({why})")
        symbols = full[: args.symbols] if args.symbols else full
        lrs_dir = Path(args.lrs_dir) if args.lrs_dir else work / "nulrimok"
        cfg = cfg.model_copy(
            update={
                "universe": cfg.universe.model_copy(update={"symbols": symbols}),
                "lrs": cfg.lrs.model_copy(update={"data_dir": str(lrs_dir), "progress": "log"}),
            }
        )
        print(
            f"universe: {len(symbols)} of {len(full)} symbols (config/nulrimok.yaml) + indices "
            f"{cfg.lrs.index_symbols}; daily {cfg.lrs.daily_history_days} d, flow {cfg.lrs.flow_history_days} d, "
            f"concurrency {cfg.lrs.concurrency}; LRS {lrs_dir}"
        )

        async with OmsClient(url, keys["NULRIMOK"], "NULRIMOK") as client:
            mark = len(fake.request_log)
            s = NulrimokStrategy(cfg, client, clock, sectors=sectors)
            info, wall = await start_until_refreshed(s, args.timeout)
            during = uapi(fake, mark)
            paths = Counter(r.path for r in during)
            fill_calls = paths[CHART] + paths[INVESTOR]
            errors = [r for r in fake.request_log if r.msg_cd == RATE_ERROR]
            counts = s.store.counts()

            print("\n== first fill ==")
            print(
                f"mode {info['mode']}, complete {info['complete']}, units {info['units']} "
                f"(done {info['done']}, failed {info['failed']}), rows {info['rows']}"
            )
            print(f"wall time                 {wall:8.1f} s   (LRS report: {info['seconds']:.1f} s)")
            print(
                f"KIS REST calls at fake    {len(during):8d}     ({paths[CHART]} daily charts, {paths[INVESTOR]} "
                f"investor, {len(during) - fill_calls} OMS account/other)"
            )
            print(f"calls/s                   {len(during) / wall:8.2f}     (fill's own {fill_calls / wall:.2f}/s)")
            print(
                f"EGW00201 at the fake      {len(errors):8d}     (busiest 1-s window: "
                f"{fake.state.max_per_window()} of {fake.profile.rate_per_sec:g} allowed; "
                f"adapter saw {getattr(getattr(runtime.broker, 'rest', None), 'rate_limited', '?')})"
            )
            print(f"client retries            {sum(retries.by_cause.values()):8d}     {dict(retries.by_cause)}")
            print("rows per table            " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            if info["errors"]:
                print(f"errors: {info['errors']}")

            again = NulrimokStrategy(cfg, client, clock, sectors=sectors)
            mark2 = len(fake.request_log)
            info2, wall2 = await start_until_refreshed(again, 60)
            print("\n== second start, same day ==")
            charts2 = sum(1 for r in uapi(fake, mark2) if r.path == CHART)
            print(
                f"mode {info2['mode']}, refresh {info2['seconds'] * 1000:.1f} ms "
                f"(start → report {wall2 * 1000:.0f} ms), chart calls {charts2}"
            )

        if len(symbols) < len(full):
            idx = len(cfg.lrs.index_symbols)
            per_symbol = (fill_calls - idx) / len(symbols)
            est = wall * (per_symbol * len(full) + idx) / fill_calls
            print(
                f"\nextrapolated to the full {len(full)} symbols: ≈ {est:.0f} s ({per_symbol:.1f} fill calls per "
                f"symbol at this run's {len(during) / wall:.2f} calls/s, the OMS's own share included)"
            )
    finally:
        logging.getLogger("strategies.sdk.client").removeHandler(retries)
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await fake.stop()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=("paper", "real"), default="paper", help="fake KIS profile (default paper)")
    ap.add_argument("--symbols", type=int, default=0, help="first N symbols of the universe (0 = all)")
    ap.add_argument("--timeout", type=float, default=720.0, help="give up on the fill after this many seconds")
    ap.add_argument("--lrs-dir", default="", help="LRS directory (default: a fresh temporary one)")
    ap.add_argument("--log-level", default="WARNING")
    a = ap.parse_args()
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("strategies.nulrimok.lrs").setLevel(logging.INFO)
    sys.exit(asyncio.run(main(a)))
