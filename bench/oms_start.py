"""OMS cold start, memory and CPU per intent: a table of figures for SQLite and Postgres.

    python bench/oms_start.py [--db sqlite|postgres|both] [--repeats 3] [--intents 10000] [--rate 500]

Per backend (``--db both``: the embedded SQLite file, then a fresh Postgres database on 127.0.0.1:5432,
user postgres, created and dropped here), ``--repeats`` times: start a bench OMS (``trader oms``, paper
broker; ``bench/intents.py --spawn``'s launcher), pinned to the cores the generator does not use, and
measure from the process launch (a warm disk: the first repeat also warms it):

- ``listening``: the first HTTP reply of ``/health`` (still ``starting``): interpreter, imports, app;
- ``start → /health ok``: the state rebuilt, the broker connected, the first reconcile done;
- ``RSS after start``: ``VmRSS`` of ``/proc/PID/status`` once healthy; ``private``: its ``RssAnon`` (without the
  page cache of the memory-mapped replay columns, which the kernel shares and reclaims).

On the first repeat it then sends ``--intents`` intents open loop at ``--rate`` (``bench/intents.py``'s
generator: ENTER 1 share, resting LIMIT, unique idempotency keys) and prints ``RSS after N intents``
(and the peak, ``VmHWM``) and the server CPU per intent: the OMS's ``utime + stime`` (``/proc/PID/stat``)
over those intents divided by their number. Then it stops that OMS (SIGTERM) and starts it again on the same
data directory and database (schema at head, the working orders to rebuild and reconcile): ``restart``.
Start figures: min and median of the repeats.
Figures are printed, never asserted; other work on the machine skews them (the whole machine's busy
cores are printed with the load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import intent_roundtrip as rt  # noqa: E402
import intents  # noqa: E402


def vm_kb(pid: int, field: str) -> int:
    """A ``Vm*`` line of ``/proc/PID/status`` in kB (0 when absent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def restart(sp: intents.Spawned, gen_cpu: int) -> tuple[float, float]:
    """SIGTERM the OMS, start it again on the same data directory and database: (listening, ok) seconds."""
    rt.stop_oms(sp.oms)
    t0 = time.perf_counter()
    again = rt.launch_oms(sp.oms.tmp, sp.oms.db_url, sp.strategies, "INFO", "none")
    try:
        if gen_cpu >= 0:
            intents.pin(again.pid, intents.other_cores(gen_cpu))
        listening, ok = await intents.wait_ok(again)
        launch = time.perf_counter() - t0 - ok
        return launch + listening, launch + ok
    finally:
        rt.stop_oms(again, 60)


async def one_backend(db: str, args: argparse.Namespace) -> dict[str, Any]:
    symbols, limits = rt.limit_prices()
    n_strategies = max(5, -(-args.intents // len(symbols)) + 1)
    starts: list[float] = []
    listening: list[float] = []
    rss_start: list[int] = []
    out: dict[str, Any] = {"db": db}
    for i in range(args.repeats):
        async with intents.spawn(db, n_strategies, args.cpu, "INFO") as sp:
            starts.append(sp.start_s)
            listening.append(sp.listening_s)
            rss_start.append(vm_kb(sp.oms.pid, "VmRSS"))
            out["anon_start_kb"] = vm_kb(sp.oms.pid, "RssAnon")
            print(
                f"  {db} start {i + 1}: listening {sp.listening_s:.2f} s, /health ok {sp.start_s:.2f} s, "
                f"RSS {rss_start[-1] / 1024:.0f} MB (private {out['anon_start_kb'] / 1024:.0f} MB)",
                flush=True,
            )
            if i == 0 and args.intents:
                target = intents.Target(sp.oms.url, sp.strategies, symbols, limits)
                conns = intents.connections(sp.oms.url, 32)
                try:
                    run = await intents.open_loop(
                        target, conns, args.rate, args.intents / args.rate, server_pid=sp.oms.pid
                    )
                finally:
                    for c in conns:
                        c.close()
                run.pop("_replies")
                out["load"] = run
                out["rss_after_kb"] = vm_kb(sp.oms.pid, "VmRSS")
                out["hwm_after_kb"] = vm_kb(sp.oms.pid, "VmHWM")
                out["anon_after_kb"] = vm_kb(sp.oms.pid, "RssAnon")
                out["cpu_us_per_intent"] = run["cpu"]["server_us_per_intent"]
                print(
                    f"  {db}: {run['replies']} intents at {args.rate:g}/s (achieved {run['achieved_rate']:.0f}/s, "
                    f"p99 {run['latency']['p99_ms']:.1f} ms, errors {run['errors'] or 'none'}, "
                    f"replies {run['outcomes']}); server {run['cpu']['server_us_per_intent']:.0f} us CPU/intent; "
                    f"RSS {out['rss_after_kb'] / 1024:.0f} MB (peak {out['hwm_after_kb'] / 1024:.0f} MB); "
                    f"whole machine {run['cpu']['machine_cores']:.2f} cores busy",
                    flush=True,
                )
                out["restart"] = await restart(sp, args.cpu)
                print(
                    f"  {db} restart on the same data (schema at head, {run['replies']} working orders to rebuild "
                    f"and reconcile): listening {out['restart'][0]:.2f} s, /health ok {out['restart'][1]:.2f} s",
                    flush=True,
                )
    out.update(
        start_min=min(starts),
        start_median=statistics.median(starts),
        listening_median=statistics.median(listening),
        rss_start_kb=statistics.median(rss_start),
    )
    return out


def table(results: list[dict[str, Any]], n: int) -> None:
    def row(name: str, fmt: Any) -> None:
        def cell(r: dict[str, Any]) -> str:
            try:
                return str(fmt(r))
            except KeyError:
                return "-"

        print(f"| {name:<36} | " + " | ".join(f"{cell(r):>18}" for r in results) + " |")

    print("\n| figure" + " " * 31 + "| " + " | ".join(f"{r['db']:>18}" for r in results) + " |")
    print("|" + "-" * 38 + "|" + "|".join("-" * 20 for _ in results) + "|")
    row("listening (first /health reply)", lambda r: f"{r['listening_median']:.2f} s")
    row("start -> /health ok, min / median", lambda r: f"{r['start_min']:.2f} / {r['start_median']:.2f} s")
    row("RSS after start", lambda r: f"{r['rss_start_kb'] / 1024:.0f} MB")
    row(
        f"RSS after {n} intents (peak)", lambda r: f"{r['rss_after_kb'] / 1024:.0f} ({r['hwm_after_kb'] / 1024:.0f}) MB"
    )
    row(
        "private (RssAnon) after start / intents",
        lambda r: f"{r['anon_start_kb'] / 1024:.0f} / {r['anon_after_kb'] / 1024:.0f} MB",
    )
    row("server CPU per intent", lambda r: f"{r['cpu_us_per_intent'] / 1000:.2f} ms")
    row(f"restart after {n} intents -> ok", lambda r: f"{r['restart'][1]:.2f} s")


async def main_async(args: argparse.Namespace) -> int:
    if args.cpu >= 0 and intents.pin(os.getpid(), {args.cpu}):
        print(f"generator pinned to core {args.cpu}; the OMS to {sorted(intents.other_cores(args.cpu))}")
    results = []
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        results.append(await one_backend(db, args))
    table(results, args.intents)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--repeats", type=int, default=3, help="starts per backend (default 3)")
    ap.add_argument("--intents", type=int, default=10000, help="intents before the second RSS reading (default 10000)")
    ap.add_argument("--rate", type=float, default=500.0, help="their open-loop rate, intents/s (default 500)")
    ap.add_argument("--cpu", type=int, default=0, help="generator core (-1: no pinning; default 0)")
    args = ap.parse_args()
    if not (1 <= args.repeats <= 20 and 0 <= args.intents <= 200000 and 0 < args.rate <= 20000):
        ap.error("out of range: 1 <= repeats <= 20, 0 <= intents <= 200000, 0 < rate <= 20000")
    return int(intents.run(main_async(args)))


if __name__ == "__main__":
    sys.exit(main())
