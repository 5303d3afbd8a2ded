"""Journal and drain throughput.

    .venv/bin/python bench/journal_throughput.py [--n 20000] [--batch 50] [--drain-batch 500]
        [--sqlite-url sqlite+aiosqlite:///PATH] [--pg-url postgresql+asyncpg://postgres@127.0.0.1/DB]

Prints appends/s (and per-append latency percentiles) for single-record and batched appends, and
rows/s for draining the journal into SQLite and into Postgres. ``--pg-url`` defaults to a
temporary database created (and dropped) on the local server at 127.0.0.1:5432; ``--no-pg`` skips
Postgres. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import UTC, datetime, timedelta  # noqa: E402

from oms.core.types import FillRecord, OrderRecord, OrderState, OrderType  # noqa: E402
from oms.store.drain import Drainer  # noqa: E402
from oms.store.journal import Journal  # noqa: E402
from oms.store.migrate import make_engine, migrate  # noqa: E402

T0 = datetime(2026, 2, 27, 0, 0, tzinfo=UTC)


def order(i: int) -> OrderRecord:
    t = T0 + timedelta(milliseconds=i)
    return OrderRecord(
        order_id=f"o{i}",
        intent_id=f"i{i}",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=10,
        order_type=OrderType.LIMIT,
        state=OrderState.SUBMITTED,
        created_at=t,
        updated_at=t,
        limit_price=71200.0,
        broker_order_id=f"B{i}",
    )


def fill(i: int) -> FillRecord:
    return FillRecord(
        execution_id=f"x{i}",
        order_id=f"o{i}",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=10,
        price=71200.0,
        ts=T0 + timedelta(milliseconds=i),
    )


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[round(p * 10) - 1] if len(values) > 1 else values[0]


def bench_appends(path: Path, n: int, batch: int) -> None:
    j = Journal(path)
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        j.append([order(i)])
        lat.append(time.perf_counter() - s)
    dt = time.perf_counter() - t0
    us = [x * 1e6 for x in lat]
    print(
        f"append, 1 record/txn      : {n / dt:10,.0f} appends/s   "
        f"p50 {pct(us, 50):6.1f} µs  p99 {pct(us, 99):6.1f} µs  p99.9 {pct(us, 99.9):7.1f} µs  "
        f"max {max(us):7.1f} µs"
    )
    t0 = time.perf_counter()
    lat = []
    for i in range(0, n, batch):
        s = time.perf_counter()
        j.append([fill(k) for k in range(i, min(n, i + batch))])
        lat.append(time.perf_counter() - s)
    dt = time.perf_counter() - t0
    us = [x * 1e6 for x in lat]
    print(
        f"append, {batch} records/txn    : {n / dt:10,.0f} records/s   "
        f"p50 {pct(us, 50):6.1f} µs/txn  p99 {pct(us, 99):6.1f} µs/txn"
    )
    j.close()


async def bench_drain(journal_path: Path, url: str, label: str, drain_batch: int) -> None:
    await migrate(url)
    engine = make_engine(url)
    j = Journal(journal_path)
    j.rewind(0)
    instance_id = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        for run in ("insert", "re-copy (upsert of existing rows)"):
            j.rewind(0)
            d = Drainer(j, engine, instance_id, batch_size=drain_batch)
            t0 = time.perf_counter()
            copied = await d.drain_all()
            dt = time.perf_counter() - t0
            assert d.db_ok, d.last_error
            print(f"drain → {label:8s} {run:34s}: {copied / dt:10,.0f} rows/s  ({copied} rows, batch {drain_batch})")
    finally:
        j.close()
        await engine.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="records per append run (default 20000)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--drain-batch", type=int, default=500)
    ap.add_argument("--sqlite-url")
    ap.add_argument("--pg-url")
    ap.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        jpath = Path(tmp) / "journal.sqlite"
        print(f"journal: {jpath} (WAL, synchronous=NORMAL); {args.n} records per run")
        bench_appends(jpath, args.n, args.batch)
        await bench_drain(jpath, args.sqlite_url or f"sqlite+aiosqlite:///{tmp}/store.db", "sqlite", args.drain_batch)
        if args.no_pg:
            return
        if args.pg_url:
            await bench_drain(jpath, args.pg_url, "postgres", args.drain_batch)
            return
        import asyncpg

        name = f"trader_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg_admin_dsn, timeout=5)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.pg_admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            await bench_drain(jpath, f"{base}/{name}", "postgres", args.drain_batch)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
