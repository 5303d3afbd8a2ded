"""OMS intent round-trip benchmark: a real ``trader oms`` process, loaded over HTTP from this one.

    .venv/bin/python bench/intent_roundtrip.py [--db sqlite|postgres|both] [--rate 500] [--duration 10]
        [--concurrency 32] [--strategies 500] [--warmup 100] [--phases latency,saturation[,replay]]
        [--drop-after 10] [--wait-quiet 0] [--profile none|py-spy|cprofile] [--oms-log-level INFO]
        [--json-report FILE] [--keep]

What it does, per backend (``--db both`` runs SQLite, then Postgres, each on a fresh OMS):

1. Writes a bench ``oms.yaml`` into a temporary directory and starts ``trader oms --host 127.0.0.1
   --port P`` as a separate process with ``OMS_BROKER=paper``, ``OMS_PAPER_DATE=2026-02-27``,
   ``TRADER_CLOCK="sim start=2026-02-27T10:00:00+09:00 speed=1 anchor=<time.time() at launch>"``,
   ``OMS_DATA_DIR=<tmp>/oms``, ``OMS_CONFIG=<tmp>/oms.yaml`` and freshly generated admin, read and
   strategy keys. ``--db sqlite`` leaves ``DATABASE_URL`` unset (the default SQLite file
   ``<tmp>/oms/oms.db``); ``--db postgres`` creates a database ``bench_oms_<random>`` on
   127.0.0.1:5432 (user postgres), sets ``DATABASE_URL=postgresql+asyncpg://...`` and drops the
   database afterwards. It waits (with a deadline) until ``GET /health`` says ``ok``.
2. Warm-up: ``--warmup`` intents (closed loop, 4 clients), not in the figures.
3. Phase 1, latency: open loop. Request i is due at ``t0 + i/rate`` whatever happened to the others
   (``rate × duration`` requests); ``--concurrency`` httpx clients (one keep-alive connection each)
   take due requests from a queue. Latency is measured from the *due* time, so a server (or client)
   that falls behind shows up as latency instead of silently lowering the rate (no coordinated
   omission); the service time from the actual send is printed too, and p50/p99 per time window
   (they show the cost growing with the open orders). A request still queued ``--drop-after`` s
   after the last one was due is dropped, not sent, and counted: the target is then not met.
4. Phase 2, saturation: closed loop, ``--concurrency`` clients each sending the next intent as soon
   as the previous reply arrived, for ``--duration`` seconds. Prints sustained intents/s (and per
   second).
   Optional phase 3 (``--phases ...,replay``): closed loop re-sending one decided intent with the same
   idempotency key — answered from the idempotency store, it measures the HTTP floor (HTTP, auth,
   validation, reply) and the load generator's own ceiling, and checks every reply carries one id.
   Each phase prints the CPU used by the OMS, by this client and by the whole machine (other jobs on
   a shared box skew the figures; ``--wait-quiet S`` waits up to S s for an idle machine first).
5. SIGTERM to the OMS and wait for it to exit (its shutdown flushes the journal into the
   database), then the count check: intents in the database (``sqlite3`` on the SQLite file,
   ``asyncpg`` on Postgres) must equal the number of 2xx replies (every decided intent is stored,
   ACCEPTED or not), with no duplicate intent id or idempotency key, the stored ids must be exactly
   the replied ids, stored statuses must match the replies, the orders table must hold one order
   per ACCEPTED reply, and the journal must be fully drained with no rejected rows. Prints
   ``count check: OK`` or the discrepancy (and exits 1).

The workload exercises the whole intent path — HTTP → auth → schema validation → idempotency →
rate limit → arbitration (entry lock, "already holding/entering") → risk gateway → order plan →
journal write → paper-broker submit → reply:

- Every request is an ``ENTER`` of 1 share with a ``LIMIT`` order resting below the market:
  ``limit = market_rules.round_down(close of the 09:59 bar × 0.98)`` from the day's minute data, so
  the paper exchange accepts it and it (nearly always) rests instead of filling. Idempotency keys are
  unique, so no request is answered from the idempotency store.
- The OMS rejects an ENTER by a strategy that already holds or is entering the symbol
  (ALREADY_IN_POSITION) — a short path that never reaches risk or the broker. So each request uses
  a (strategy, symbol) pair never used before in this OMS run: strategies ``B000..`` × the 60 symbols
  of the minute data, symbol-major (consecutive requests hit different symbols, so the per-symbol
  gate and entry lock are not what is measured). ``--strategies`` sets how many strategies (each with
  its own key in ``OMS_STRATEGY_KEYS``); the default 500 gives 30,000 fresh pairs — 50 strategies
  (3,000 pairs) would be used up by phase 1 alone. Phase 1 refuses to start when it needs more pairs
  than are left; phase 2 ends early (and says so) if they run out.
  Side effect worth knowing: the key ring lookup and the log filter that masks secrets both scale
  with the number of keys, which a production OMS with 4-5 strategies does not pay (measured: a few
  per cent of the OMS's CPU at 500 keys; the replay phase with ``--strategies 5`` shows it).
- Orders rest, so open orders accumulate during the run (printed at each phase start): the figures
  are for an OMS holding thousands of working orders, which costs it per intent (see the profile).
- The bench yaml loosens risk so that the pipeline, not the caps, is measured: entry lock 0.001 s for
  every bench strategy (``risk.entry_lock_sec`` per strategy — the ENTER path reads that map, with a
  60 s fallback, not ``default_entry_lock_sec``, which is set too), ``max_positions`` 100000, exposure,
  position, sector and order-notional caps far above what 1-share orders can reach, no regime caps,
  spread and limit-band checks wide, ``paper.cash`` 1e13, ``strategies.<id>.max_intents_per_min`` 10^9.
  Reconcile intervals, the journal drain and paper participation are left at the model defaults
  (the same values as ``config/oms.yaml``); the paper account persistence stays on (its default).
  The reply counts by status and reason code are printed
  per phase, so the reader sees which path was measured.

Notes: client and server share this machine (client, server and whole-machine CPU are printed per
phase). An httpx request costs this client roughly 1 ms of CPU, so one load-generator process tops
out near 1,000 requests/s however fast the OMS is — the replay phase shows that ceiling. Only localhost
traffic. Every phase is bounded in requests (phase 1: rate × duration; the others: the fresh pairs)
and in time (hard deadlines: phase 1 duration + drop-after + 45 s, the others duration + 45 s;
requests cut there count as "no reply", which the count check allows for and reports).
``--profile py-spy`` attaches ``py-spy record`` to the OMS for the saturation phase (``pip install
py-spy`` into the venv) and prints the top functions by own and inclusive share of the samples;
``--profile cprofile`` runs the OMS under ``python -m cProfile`` (slower; whole run). Profiled runs'
figures are not the headline figures. Figures are printed, never asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from broker_core import market_rules  # noqa: E402
from broker_core.paper.data import KrxData, resolve_data_dir  # noqa: E402

SESSION = "2026-02-27"
CLOCK_START = f"{SESSION}T10:00:00+09:00"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
INSTANCE_ID = "bench"
INTENTS_PATH = "/api/v1/intents"
TARGET_P99_MS = 10.0
TARGET_RATE = 500.0
TARGET_SAT = 1500.0


# ---- helpers ---------------------------------------------------------------------------------


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def lat_summary(values_s: list[float]) -> dict[str, float]:
    v = sorted(x * 1000.0 for x in values_s)
    return {
        "n": len(v),
        "p50_ms": pct(v, 50),
        "p90_ms": pct(v, 90),
        "p99_ms": pct(v, 99),
        "max_ms": v[-1] if v else float("nan"),
        "mean_ms": sum(v) / len(v) if v else float("nan"),
    }


def fmt_lat(s: dict[str, float]) -> str:
    return (
        f"p50 {s['p50_ms']:.2f} ms  p90 {s['p90_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
        f"max {s['max_ms']:.2f} ms  (mean {s['mean_ms']:.2f} ms, n={s['n']})"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """user+system CPU seconds of one process (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent busy by the whole machine (all cores) since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def background_load(max_wait_s: float, threshold: float = 0.3) -> float:
    """Cores busy on the machine before the run (2 s sample); with ``max_wait_s`` > 0 wait up to that
    long for it to drop under ``threshold`` (other jobs on a shared box skew every figure)."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        b0, t0 = machine_busy_s(), time.perf_counter()
        await asyncio.sleep(2.0)
        busy = (machine_busy_s() - b0) / (time.perf_counter() - t0)
        if busy < threshold or time.perf_counter() >= deadline:
            return busy


class CpuMeter:
    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.t = time.perf_counter()
        self.server = proc_cpu_s(server_pid)
        self.client = time.process_time()
        self.machine = machine_busy_s()

    def stop(self, n: int) -> dict[str, float]:
        dt = time.perf_counter() - self.t
        server = proc_cpu_s(self.pid) - self.server
        client = time.process_time() - self.client
        machine = machine_busy_s() - self.machine
        return {
            "wall_s": dt,
            "server_cores": server / dt,
            "client_cores": client / dt,
            "machine_cores": machine / dt,
            "server_cpu_us_per_intent": 1e6 * server / max(n, 1),
            "client_cpu_us_per_intent": 1e6 * client / max(n, 1),
        }


def fmt_cpu(c: dict[str, float], cores: int) -> str:
    return (
        f"CPU: OMS {c['server_cores']:.2f} cores ({c['server_cpu_us_per_intent']:.0f} us/intent), "
        f"client {c['client_cores']:.2f} cores ({c['client_cpu_us_per_intent']:.0f} us/intent), "
        f"whole machine {c['machine_cores']:.2f} of {cores} cores busy (other processes "
        f"{max(0.0, c['machine_cores'] - c['server_cores'] - c['client_cores']):.2f}: Postgres, a profiler, "
        f"anything else running)"
    )


# ---- the workload ----------------------------------------------------------------------------


def limit_prices() -> tuple[list[str], dict[str, float]]:
    """Symbols of the minute data and, per symbol, a buy limit 2% under the 09:59 close."""
    data = KrxData()
    day = date.fromisoformat(SESSION)
    symbols, limits = [], {}
    for sym in data.minute_symbols():
        bars = [b for b in data.minute_bars(sym, day) if b.ts.time() <= dtime(9, 59)]
        if not bars:
            continue
        symbols.append(sym)
        limits[sym] = float(market_rules.round_down(bars[-1].close * 0.98))
    if not symbols:
        raise SystemExit(f"no minute bars before 10:00 on {SESSION} in {data.data_dir}")
    return symbols, limits


@dataclass
class Result:
    k: int
    due: float
    sent: float
    done: float
    code: int
    status: str
    reason: str | None
    intent_id: str | None


@dataclass
class Workload:
    run_id: str
    strategies: list[tuple[str, str]]
    """(strategy_id, key)"""
    symbols: list[str]
    limits: dict[str, float]
    next_k: int = 0
    results: list[Result] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return len(self.strategies) * len(self.symbols)

    def left(self) -> int:
        return self.capacity - self.next_k

    def take(self) -> int | None:
        if self.next_k >= self.capacity:
            return None
        k = self.next_k
        self.next_k += 1
        return k

    def request(self, k: int) -> tuple[dict[str, Any], dict[str, str]]:
        n = len(self.symbols)
        sid, key = self.strategies[k // n]
        sym = self.symbols[k % n]
        body = {
            "intent_type": "ENTER",
            "strategy_id": sid,
            "symbol": sym,
            "desired_qty": 1,
            "constraints": {"order_type": "LIMIT", "limit_price": self.limits[sym]},
            "risk_payload": {"rationale_code": "BENCH"},
            "idempotency_key": f"{self.run_id}-{k}",
        }
        return body, {"Authorization": f"Bearer {key}"}

    async def post(self, client: httpx.AsyncClient, k: int, due: float | None = None) -> Result:
        body, headers = self.request(k)
        sent = time.perf_counter()
        try:
            r = await client.post(INTENTS_PATH, json=body, headers=headers)
            code = r.status_code
            if 200 <= code < 300:
                d = r.json()
                status, reason, iid = d["status"], d.get("reason_code"), d.get("intent_id")
            else:
                status, reason, iid = f"HTTP_{code}", r.text[:120], None
        except httpx.HTTPError as exc:
            code, status, reason, iid = 0, "NO_REPLY", type(exc).__name__, None
        except asyncio.CancelledError:  # cut at a phase's hard deadline: the server may still decide it
            self.results.append(
                Result(
                    k,
                    sent if due is None else due,
                    sent,
                    time.perf_counter(),
                    0,
                    "NO_REPLY",
                    "cut at the phase deadline",
                    None,
                )
            )
            raise
        res = Result(k, sent if due is None else due, sent, time.perf_counter(), code, status, reason, iid)
        self.results.append(res)
        return res


def clients(base_url: str, n: int) -> list[httpx.AsyncClient]:
    return [
        httpx.AsyncClient(
            base_url=base_url, timeout=30.0, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        for _ in range(n)
    ]


def outcome_counts(results: list[Result]) -> Counter[str]:
    return Counter(f"{r.status}" + (f" {r.reason}" if r.reason and r.status != "ACCEPTED" else "") for r in results)


def fmt_counts(c: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in c.most_common())


async def warmup(wl: Workload, cl: list[httpx.AsyncClient], n: int) -> list[Result]:
    start = len(wl.results)

    async def worker(c: httpx.AsyncClient) -> None:
        while len(wl.results) - start < n:
            k = wl.take()
            if k is None:
                return
            await wl.post(c, k)

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in cl[:4])), 60 + n / 10)
    return wl.results[start:]


async def phase_latency(
    wl: Workload, cl: list[httpx.AsyncClient], rate: float, duration: float, grace: float
) -> dict[str, Any]:
    """Open loop; a request still queued ``grace`` s after the last one was due is dropped (not sent)
    so that a server that cannot keep up does not make the phase run without end."""
    n = int(round(rate * duration))
    if n > wl.left():
        raise SystemExit(f"phase 1 needs {n} fresh (strategy, symbol) pairs, {wl.left()} left: raise --strategies")
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = len(wl.results)
    t0 = time.perf_counter() + 0.05
    stop_sending = t0 + duration + grace
    dropped: list[int] = []

    async def pacer() -> None:
        i = 0
        while i < n:
            now = time.perf_counter()
            while i < n and t0 + i / rate <= now:
                k = wl.take()
                assert k is not None
                queue.put_nowait((k, t0 + i / rate))
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        for _ in cl:
            queue.put_nowait(None)

    async def worker(c: httpx.AsyncClient) -> None:
        while (item := await queue.get()) is not None:
            if time.perf_counter() > stop_sending:
                dropped.append(item[0])
                continue
            await wl.post(c, item[0], due=item[1])

    tasks = [asyncio.create_task(pacer())] + [asyncio.create_task(worker(c)) for c in cl]
    done, pending = await asyncio.wait(tasks, timeout=duration + grace + 45)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    for t in done:
        t.result()
    res = wl.results[start:]
    last_done = max((r.done for r in res), default=t0)
    out = {
        "target_rate": rate,
        "duration_s": duration,
        "requests": n,
        "sent": len(res),
        "dropped": len(dropped),
        "drop_after_s": grace,
        "replies": sum(1 for r in res if r.code),
        "achieved_rate": sum(1 for r in res if r.code) / max(1e-9, last_done - t0),
        "send_span_s": max((r.due for r in res), default=t0) - t0,
        "latency": lat_summary([r.done - r.due for r in res if r.code]),
        "service": lat_summary([r.done - r.sent for r in res if r.code]),
        "outcomes": dict(outcome_counts(res)),
    }
    windows: dict[int, list[float]] = defaultdict(list)
    step = max(1.0, duration / 5)
    for r in (r for r in res if r.code):
        windows[int((r.due - t0) // step)].append(r.done - r.due)
    out["windows"] = [
        {"from_s": w * step, "to_s": (w + 1) * step, **lat_summary(v)} for w, v in sorted(windows.items())
    ]
    return out


async def phase_saturation(wl: Workload, cl: list[httpx.AsyncClient], duration: float) -> dict[str, Any]:
    start = len(wl.results)
    t0 = time.perf_counter()
    t_end = t0 + duration
    exhausted = False

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal exhausted
        while time.perf_counter() < t_end:
            k = wl.take()
            if k is None:
                exhausted = True
                return
            await wl.post(c, k)

    tasks = [asyncio.create_task(worker(c)) for c in cl]
    done, pending = await asyncio.wait(tasks, timeout=duration + 45)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    for t in done:
        t.result()
    res = wl.results[start:]
    elapsed = max((r.done for r in res), default=t0) - t0
    ok = [r for r in res if 200 <= r.code < 300]
    res = [r for r in res if r.code]
    per_s = Counter(int(r.done - t0) for r in res)
    out = {
        "concurrency": len(cl),
        "duration_s": duration,
        "elapsed_s": elapsed,
        "replies": len(res),
        "replies_2xx": len(ok),
        "rate": len(res) / max(elapsed, 1e-9),
        "rate_2xx": len(ok) / max(elapsed, 1e-9),
        "pairs_exhausted": exhausted,
        "unfinished_clients": len(pending),
        "latency": lat_summary([r.done - r.sent for r in res]),
        "outcomes": dict(outcome_counts(res)),
        "per_second": [per_s.get(s, 0) for s in range(int(elapsed) + 1)],
    }
    return out


async def phase_replay(wl: Workload, cl: list[httpx.AsyncClient], duration: float) -> dict[str, Any]:
    """Closed loop re-sending the first intent (same idempotency key): answered from the idempotency
    store, so it costs the OMS only HTTP + auth + validation + a dict lookup — the HTTP floor, and
    the load generator's own ceiling. Every reply must carry the first intent's id."""
    first = next((r for r in wl.results if r.k == 0 and r.intent_id), None)
    if first is None:
        raise SystemExit("the replay phase needs the first intent decided (keep --warmup > 0)")
    body, headers = wl.request(0)
    lat: list[float] = []
    ids: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    t0 = time.perf_counter()
    t_end = t0 + duration

    async def worker(c: httpx.AsyncClient) -> None:
        while time.perf_counter() < t_end:
            sent = time.perf_counter()
            try:
                r = await c.post(INTENTS_PATH, json=body, headers=headers)
                codes[r.status_code] += 1
                if r.status_code == 200:
                    ids[r.json().get("intent_id")] += 1
            except httpx.HTTPError:
                codes[0] += 1
            lat.append(time.perf_counter() - sent)

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in cl)), duration + 45)
    elapsed = time.perf_counter() - t0
    return {
        "replies": len(lat),
        "rate": len(lat) / elapsed,
        "elapsed_s": elapsed,
        "latency": lat_summary(lat),
        "codes": dict(codes),
        "intent_ids": len(ids),
        "same_intent": set(ids) == {first.intent_id},
    }


# ---- the OMS process -------------------------------------------------------------------------


def bench_yaml(strategy_ids: list[str]) -> str:
    cfg = {
        "risk": {
            "daily_loss_warn_pct": 0.5,
            "daily_loss_halt_pct": 0.9,
            "flatten_on_halt": False,
            "max_gross_exposure_pct": 1000.0,
            "max_net_exposure_pct": 1000.0,
            "max_position_pct": 1000.0,
            "max_positions": 100000,
            "max_sector_pct": 1000.0,
            "max_spread_bps": 100000.0,
            "vi_cooldown_sec": 600,
            "max_order_notional": 1e15,
            "limit_price_band_pct": 0.5,
            "entry_lock_sec": {sid: 0.001 for sid in strategy_ids},
            "default_entry_lock_sec": 0.001,
            "strategy_budgets": {},
            "regime_caps": {},
        },
        "strategies": {sid: {"max_intents_per_min": 1_000_000_000} for sid in strategy_ids},
        "paper": {"cash": 1e13},
    }
    return json.dumps(cfg, indent=1)  # JSON is YAML


@dataclass
class Oms:
    proc: subprocess.Popen[bytes]
    pid: int
    url: str
    tmp: Path
    log_path: Path
    admin_key: str
    read_key: str
    db_url: str
    profile_path: Path | None = None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def launch_oms(tmp: Path, db_url: str, strategies: list[tuple[str, str]], log_level: str, profile: str) -> Oms:
    cfg_path = tmp / "oms.yaml"
    cfg_path.write_text(bench_yaml([sid for sid, _ in strategies]))
    admin, read = secrets.token_hex(24), secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not (k.startswith("OMS_") or k in ("DATABASE_URL", "TRADER_CLOCK"))}
    env.update(
        {
            "OMS_BROKER": "paper",
            "OMS_PAPER_DATE": SESSION,
            "TRADER_CLOCK": f"sim start={CLOCK_START} speed=1 anchor={time.time():.6f}",
            "OMS_DATA_DIR": str(tmp / "oms"),
            "OMS_CONFIG": str(cfg_path),
            "OMS_INSTANCE_ID": INSTANCE_ID,
            "OMS_ADMIN_KEY": admin,
            "OMS_READ_KEY": read,
            "OMS_STRATEGY_KEYS": ",".join(f"{sid}:{key}" for sid, key in strategies),
            "TRADER_DATA_DIR": str(resolve_data_dir()),
        }
    )
    if db_url:
        env["DATABASE_URL"] = db_url
    port = free_port()
    trader = Path(sys.executable).parent / "trader"
    if not trader.exists():
        trader = ROOT / ".venv" / "bin" / "trader"
    args = ["oms", "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level]
    profile_path = None
    if profile == "cprofile":
        profile_path = tmp / "oms.cprofile"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile_path), str(trader), *args]
    else:
        cmd = [str(trader), *args]
    log_path = tmp / "oms.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(tmp))
    return Oms(proc, proc.pid, f"http://127.0.0.1:{port}", tmp, log_path, admin, read, db_url, profile_path)


async def wait_healthy(oms: Oms, deadline_s: float = 120.0) -> float:
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=oms.url, timeout=5.0) as c:
        while True:
            if oms.proc.poll() is not None:
                raise RuntimeError(
                    f"the OMS exited with code {oms.proc.returncode} before it was ready:\n{oms.log_tail()}"
                )
            try:
                body = (await c.get("/health")).json()
                if body.get("status") == "ok":
                    return time.perf_counter() - t0
            except (httpx.HTTPError, ValueError):
                pass
            if time.perf_counter() - t0 > deadline_s:
                raise RuntimeError(f"the OMS was not healthy within {deadline_s:.0f} s:\n{oms.log_tail()}")
            await asyncio.sleep(0.2)


async def health(oms: Oms) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=oms.url, timeout=10.0) as c:
        try:
            return (await c.get("/health")).json()
        except (httpx.HTTPError, ValueError) as exc:
            return {"error": str(exc)}


def stop_oms(oms: Oms, timeout_s: float = 180.0) -> tuple[int | None, float]:
    t0 = time.perf_counter()
    if oms.proc.poll() is None:
        oms.proc.send_signal(signal.SIGTERM)
    try:
        code = oms.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        oms.proc.kill()
        oms.proc.wait()
        return None, time.perf_counter() - t0
    return code, time.perf_counter() - t0


# ---- profiling -------------------------------------------------------------------------------


def start_pyspy(oms: Oms, duration: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        exe_found = shutil.which("py-spy")
        if exe_found is None:
            print("  py-spy not found (pip install py-spy into the venv); no profile")
            return None
        exe = Path(exe_found)
    out = oms.tmp / "oms.pyspy.txt"
    cmd = [
        str(exe),
        "record",
        "--pid",
        str(oms.pid),
        "--duration",
        str(int(duration + 0.999)),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "--threads",
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(oms.tmp / "pyspy.log", "wb"))
    return proc, out


def _frame_name(frame: str) -> str:
    """'handle (oms/core/intents.py:70)' -> 'handle (oms/core/intents.py)' (lines merged)."""
    frame = frame.strip()
    if frame.endswith(")") and "(" in frame:
        func, _, loc = frame.rpartition(" (")
        path = loc[:-1].rsplit(":", 1)[0]
        for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{func} ({path})"
    return frame


IDLE_LEAVES = (
    "Condition.wait (threading.py)",
    "_worker (concurrent/futures/thread.py)",
    "_connection_worker_thread (aiosqlite/core.py)",
    "Runner.run (asyncio/runners.py)",
    "select (selectors.py)",
    "wait (threading.py)",
)
"""Leaf frames of a thread waiting for work (py-spy does not always see these as idle)."""


def summarize_pyspy(path: Path, top: int = 25) -> dict[str, Any]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(": ", 1)[-1]
            thread = "AnyIO worker threads" if thread.startswith("AnyIO worker") else thread
            frames = frames[1:]
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        names = [_frame_name(f) for f in frames]
        if names[-1] in IDLE_LEAVES:
            idle[thread] += n
            continue
        total += n
        threads[thread] += n
        own[names[-1]] += n
        for name in set(names):
            incl[name] += n
    return {
        "samples": total,
        "threads": dict(threads.most_common()),
        "idle_samples": dict(idle.most_common()),
        "own": [(k, v / total) for k, v in own.most_common(top)] if total else [],
        "inclusive": [(k, v / total) for k, v in incl.most_common(top * 3)] if total else [],
    }


def print_profile(summary: dict[str, Any]) -> None:
    print(
        f"  py-spy: {summary['samples']} busy samples; busy samples by thread: {summary['threads']}; "
        f"idle samples dropped: {summary['idle_samples']}"
    )
    print("  top functions by OWN time (share of busy samples, all threads):")
    for name, share in summary["own"]:
        print(f"    {share * 100:5.1f}%  {name}")
    print("  top functions by INCLUSIVE time (share of busy samples, all threads):")
    for name, share in summary["inclusive"]:
        print(f"    {share * 100:5.1f}%  {name}")


def summarize_cprofile(path: Path, top: int = 30) -> None:
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(str(path), stream=buf)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    print(buf.getvalue())


# ---- the database check ----------------------------------------------------------------------


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def db_facts(oms: Oms, db: str, pg_name: str | None) -> dict[str, Any]:
    queries = {
        "intents": "SELECT COUNT(*) FROM intents",
        "distinct_ids": "SELECT COUNT(DISTINCT intent_id) FROM intents",
        "distinct_keys": "SELECT COUNT(DISTINCT idempotency_key) FROM intents",
        "orders": "SELECT COUNT(*) FROM orders",
    }
    facts: dict[str, Any] = {}
    if db == "sqlite":
        conn = sqlite3.connect(str(oms.tmp / "oms" / "oms.db"))
        try:
            for name, sql in queries.items():
                facts[name] = conn.execute(sql).fetchone()[0]
            facts["ids"] = [r[0] for r in conn.execute("SELECT intent_id FROM intents")]
            facts["status"] = dict(conn.execute("SELECT intent_id, status FROM intents").fetchall())
        finally:
            conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}", timeout=10)
        try:
            for name, sql in queries.items():
                facts[name] = await conn.fetchval(sql)
            rows = await conn.fetch("SELECT intent_id, status FROM intents")
            facts["ids"] = [r["intent_id"] for r in rows]
            facts["status"] = {r["intent_id"]: r["status"] for r in rows}
        finally:
            await conn.close()
    j = sqlite3.connect(str(oms.tmp / "oms" / "journal.db"))
    try:
        facts["journal_last_seq"] = j.execute("SELECT MAX(seq) FROM journal").fetchone()[0] or 0
        facts["journal_cursor"] = j.execute("SELECT seq FROM drain_cursor WHERE id = 0").fetchone()[0]
        facts["journal_rejects"] = j.execute("SELECT COUNT(*) FROM journal_rejects").fetchone()[0]
    finally:
        j.close()
    return facts


def count_check(results: list[Result], facts: dict[str, Any]) -> tuple[bool, list[str]]:
    """Database vs replies. Exact when every request got a reply; a request without one (client
    timeout, or cut at a phase deadline) may or may not have been decided, so each such request
    allows one more stored intent (and order) — and is reported."""
    ok_replies = [r for r in results if 200 <= r.code < 300]
    no_reply = sum(1 for r in results if r.code == 0)
    replied_ids = [r.intent_id for r in ok_replies]
    problems: list[str] = []
    lines = [
        f"2xx replies {len(ok_replies)} (non-2xx {sum(1 for r in results if r.code and not 200 <= r.code < 300)}, "
        f"no reply {no_reply}); intents in the database {facts['intents']} "
        f"(distinct ids {facts['distinct_ids']}, distinct idempotency keys {facts['distinct_keys']}); "
        f"orders {facts['orders']}; journal seq {facts['journal_last_seq']} drained to {facts['journal_cursor']}, "
        f"rejects {facts['journal_rejects']}"
    ]
    surplus = facts["intents"] - len(ok_replies)
    if not 0 <= surplus <= no_reply:
        problems.append(
            f"database holds {facts['intents']} intents, {len(ok_replies)} 2xx replies ({surplus:+d})"
            + (f", {no_reply} requests without reply" if no_reply else "")
        )
    if facts["distinct_ids"] != facts["intents"]:
        problems.append(f"{facts['intents'] - facts['distinct_ids']} duplicate intent ids in the database")
    if facts["distinct_keys"] != facts["intents"]:
        problems.append(f"{facts['intents'] - facts['distinct_keys']} duplicate idempotency keys in the database")
    if len(set(replied_ids)) != len(replied_ids):
        problems.append(f"{len(replied_ids) - len(set(replied_ids))} duplicate intent ids among the replies")
    stored = set(facts["ids"])
    missing = set(replied_ids) - stored
    extra = stored - set(replied_ids)
    if missing:
        problems.append(f"{len(missing)} replied intent ids not in the database (e.g. {sorted(missing)[:3]})")
    if len(extra) > no_reply:
        problems.append(f"{len(extra)} stored intent ids never replied (e.g. {sorted(extra)[:3]})")
    mismatched = [r.intent_id for r in ok_replies if facts["status"].get(r.intent_id, r.status) != r.status]
    if mismatched:
        problems.append(f"{len(mismatched)} stored statuses differ from the replies (e.g. {mismatched[:3]})")
    with_order = sum(
        1
        for r in ok_replies
        if r.status in ("ACCEPTED", "EXECUTED", "MODIFIED")
        or (r.status == "REJECTED" and (r.reason or "").startswith("BROKER"))
    )
    if not 0 <= facts["orders"] - with_order <= len(extra):
        problems.append(f"{facts['orders']} orders stored, {with_order} replies that placed an order")
    if facts["journal_cursor"] < facts["journal_last_seq"]:
        problems.append(f"journal not drained: {facts['journal_last_seq'] - facts['journal_cursor']} entries left")
    if facts["journal_rejects"]:
        problems.append(f"{facts['journal_rejects']} journal rows refused by the database")
    if no_reply:
        lines.append(
            f"note: {no_reply} requests got no reply (client timeout or cut at a phase deadline); "
            f"{len(extra)} of them were decided and stored by the OMS, which the check allows"
        )
    return not problems, lines + problems


# ---- one backend -----------------------------------------------------------------------------


async def run_backend(
    db: str, args: argparse.Namespace, symbols: list[str], limits: dict[str, float]
) -> dict[str, Any]:
    print(f"\n=== backend: {db} ===", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"oms-bench-{db}-"))
    strategies = [(f"B{i:03d}", secrets.token_hex(16)) for i in range(args.strategies)]
    wl = Workload(run_id=uuid.uuid4().hex[:10], strategies=strategies, symbols=symbols, limits=limits)
    pg_name = None
    db_url = ""
    report: dict[str, Any] = {
        "db": db,
        "tmp": str(tmp),
        "strategies": args.strategies,
        "symbols": len(symbols),
        "pairs": wl.capacity,
    }
    cores = os.cpu_count() or 1
    if db == "postgres":
        pg_name = f"bench_oms_{uuid.uuid4().hex[:10]}"
        await pg_admin(f'CREATE DATABASE "{pg_name}"')
        db_url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}"
    oms: Oms | None = None
    try:
        idle_busy = await background_load(args.wait_quiet)
        report["background_cores_before"] = idle_busy
        print(
            f"background load before the run: {idle_busy:.2f} cores busy"
            + (" (NOT quiet: other processes are running; figures are skewed)" if idle_busy >= 0.3 else "")
        )
        oms = launch_oms(tmp, db_url, strategies, args.oms_log_level, args.profile)
        ready_s = await wait_healthy(oms)
        print(
            f"OMS pid {oms.pid} healthy after {ready_s:.1f} s at {oms.url}; db "
            f"{'postgres ' + pg_name if pg_name else 'sqlite ' + str(tmp / 'oms' / 'oms.db')}; "
            f"{args.strategies} strategies x {len(symbols)} symbols = {wl.capacity} fresh pairs",
            flush=True,
        )
        cl = clients(oms.url, args.concurrency)
        try:
            if args.warmup:
                w = await warmup(wl, cl, args.warmup)
                print(f"warm-up: {len(w)} intents ({fmt_counts(outcome_counts(w))})", flush=True)
            if "latency" in args.phases:
                h = await health(oms)
                print(
                    f"\n-- phase 1 (latency): open loop at {args.rate:g} intents/s for {args.duration:g} s, "
                    f"{args.concurrency} clients; open orders at start {h.get('open_orders')}",
                    flush=True,
                )
                meter = CpuMeter(oms.pid)
                p1 = await phase_latency(wl, cl, args.rate, args.duration, args.drop_after)
                p1["cpu"] = meter.stop(p1["replies"])
                p1["open_orders_at_start"] = h.get("open_orders")
                report["latency"] = p1
                print(
                    f"due {p1['requests']}, sent {p1['sent']}, replies {p1['replies']}, dropped {p1['dropped']} "
                    f"(still queued {p1['drop_after_s']:g} s after the last was due: the OMS could not keep up); "
                    f"achieved {p1['achieved_rate']:.1f} intents/s"
                )
                print(f"latency from due time: {fmt_lat(p1['latency'])}")
                print(f"service time (from send): {fmt_lat(p1['service'])}")
                print(f"replies: {fmt_counts(Counter(p1['outcomes']))}")
                for wdw in p1["windows"]:
                    print(
                        f"  due {wdw['from_s']:4.1f}-{wdw['to_s']:4.1f} s: p50 {wdw['p50_ms']:.2f} ms  "
                        f"p99 {wdw['p99_ms']:.2f} ms  max {wdw['max_ms']:.2f} ms  (n={wdw['n']})"
                    )
                print(fmt_cpu(p1["cpu"], cores), flush=True)
            if "saturation" in args.phases:
                h = await health(oms)
                print(
                    f"\n-- phase 2 (saturation): closed loop, {args.concurrency} clients for {args.duration:g} s; "
                    f"open orders at start {h.get('open_orders')}",
                    flush=True,
                )
                spy = start_pyspy(oms, args.duration) if args.profile == "py-spy" else None
                meter = CpuMeter(oms.pid)
                p2 = await phase_saturation(wl, cl, args.duration)
                p2["cpu"] = meter.stop(p2["replies"])
                p2["open_orders_at_start"] = h.get("open_orders")
                report["saturation"] = p2
                print(
                    f"replies {p2['replies']} ({p2['replies_2xx']} 2xx) in {p2['elapsed_s']:.2f} s: "
                    f"sustained {p2['rate']:.1f} intents/s"
                    + (" (STOPPED EARLY: pairs used up, raise --strategies)" if p2["pairs_exhausted"] else "")
                )
                print(f"latency: {fmt_lat(p2['latency'])}")
                print(f"replies: {fmt_counts(Counter(p2['outcomes']))}")
                print(f"per second: {p2['per_second']}")
                print(fmt_cpu(p2["cpu"], cores), flush=True)
                if spy is not None:
                    proc, out = spy
                    try:
                        proc.wait(timeout=args.duration + 60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    if out.exists():
                        summary = summarize_pyspy(out, args.profile_top)
                        report["profile"] = summary
                        print_profile(summary)
                    else:
                        print(
                            f"  py-spy wrote no profile: {(oms.tmp / 'pyspy.log').read_text(errors='replace')[-2000:]}"
                        )
            if "replay" in args.phases:
                print(
                    f"\n-- phase 3 (replay): closed loop, {args.concurrency} clients for {args.duration:g} s "
                    "re-sending one decided intent (same idempotency key)",
                    flush=True,
                )
                meter = CpuMeter(oms.pid)
                p3 = await phase_replay(wl, cl, args.duration)
                p3["cpu"] = meter.stop(p3["replies"])
                report["replay"] = p3
                print(
                    f"replays {p3['replies']} in {p3['elapsed_s']:.2f} s: {p3['rate']:.1f} req/s; "
                    f"latency: {fmt_lat(p3['latency'])}"
                )
                print(
                    f"HTTP codes {p3['codes']}; distinct intent ids in the replies: {p3['intent_ids']} "
                    f"({'all = the first intent: idempotent' if p3['same_intent'] else 'NOT IDEMPOTENT'})"
                )
                print(fmt_cpu(p3["cpu"], cores), flush=True)
            report["health_at_end"] = await health(oms)
        finally:
            await asyncio.gather(*(c.aclose() for c in cl), return_exceptions=True)
        code, stop_s = stop_oms(oms)
        print(f"\nOMS stopped (exit code {code}) in {stop_s:.1f} s after SIGTERM", flush=True)
        report["exit_code"] = code
        if oms.profile_path is not None and oms.profile_path.exists():
            summarize_cprofile(oms.profile_path, args.profile_top)
        facts = await db_facts(oms, db, pg_name)
        ok, lines = count_check(wl.results, facts)
        for line in lines:
            print(("  " if lines.index(line) else "") + line)
        print("count check: OK" if ok else "count check: FAILED", flush=True)
        report["count_check"] = {
            "ok": ok,
            "lines": lines,
            **{k: v for k, v in facts.items() if k not in ("ids", "status")},
        }
        report["all_outcomes"] = dict(outcome_counts(wl.results))
        return report
    finally:
        if oms is not None and oms.proc.poll() is None:
            stop_oms(oms, 30)
        if pg_name:
            try:
                await pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                print(f"could not drop database {pg_name}: {exc}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def print_summary(reports: list[dict[str, Any]]) -> None:
    print("\n=== summary ===")
    for r in reports:
        parts = [f"{r['db']:8s}"]
        if "latency" in r:
            p1 = r["latency"]
            met = (
                p1["latency"]["p99_ms"] <= TARGET_P99_MS
                and p1["achieved_rate"] >= 0.98 * p1["target_rate"]
                and not p1["dropped"]
                and p1["replies"] == p1["requests"]
            )
            parts.append(
                f"phase 1 @ {p1['target_rate']:g}/s: achieved {p1['achieved_rate']:.0f}/s"
                + (f" ({p1['dropped']} of {p1['requests']} dropped)" if p1["dropped"] else "")
                + ", "
                f"p50 {p1['latency']['p50_ms']:.2f} p99 {p1['latency']['p99_ms']:.2f} "
                f"max {p1['latency']['max_ms']:.1f} ms"
                + (
                    f" [target p99 <= {TARGET_P99_MS:g} ms at {TARGET_RATE:g}/s: {'MET' if met else 'NOT MET'}]"
                    if p1["target_rate"] == TARGET_RATE
                    else ""
                )
            )
        if "saturation" in r:
            p2 = r["saturation"]
            parts.append(
                f"phase 2: {p2['rate']:.0f} intents/s (p50 {p2['latency']['p50_ms']:.1f} "
                f"p99 {p2['latency']['p99_ms']:.1f} ms) [target >= {TARGET_SAT:g}/s: "
                f"{'MET' if p2['rate'] >= TARGET_SAT else 'NOT MET'}]"
            )
        if "replay" in r:
            p3 = r["replay"]
            parts.append(
                f"replay (HTTP floor): {p3['rate']:.0f} req/s, OMS "
                f"{p3['cpu']['server_cpu_us_per_intent']:.0f} us/req, client "
                f"{p3['cpu']['client_cpu_us_per_intent']:.0f} us/req"
            )
        parts.append(f"count check {'OK' if r.get('count_check', {}).get('ok') else 'FAILED'}")
        print(" | ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--rate", type=float, default=500.0, help="phase 1 target intents/s (default 500)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    ap.add_argument("--concurrency", type=int, default=32, help="httpx clients (default 32)")
    ap.add_argument("--strategies", type=int, default=500, help="bench strategies B000.. (default 500)")
    ap.add_argument(
        "--drop-after",
        type=float,
        default=10.0,
        help="phase 1: drop requests still queued this many s after the last was due (default 10)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many s for the machine to be idle before each backend (default 0)",
    )
    ap.add_argument("--warmup", type=int, default=100, help="warm-up intents, not measured (default 100)")
    ap.add_argument(
        "--phases",
        default="latency,saturation",
        help="comma list of latency, saturation, replay (default latency,saturation)",
    )
    ap.add_argument("--profile", choices=("none", "py-spy", "cprofile"), default="none")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--oms-log-level", default="INFO", help="the OMS's --log-level (default INFO, as deployed)")
    ap.add_argument("--json-report", help="write the figures as JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite files)")
    args = ap.parse_args()
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not args.phases <= {"latency", "saturation", "replay"}:
        ap.error("--phases: a comma list of latency, saturation, replay")
    if not (
        0 < args.rate <= 20000
        and 0 < args.duration <= 600
        and 1 <= args.concurrency <= 512
        and 1 <= args.strategies <= 5000
        and 0 <= args.warmup <= 10000
    ):
        ap.error(
            "out of range: 0<rate<=20000, 0<duration<=600, 1<=concurrency<=512, 1<=strategies<=5000, 0<=warmup<=10000"
        )
    symbols, limits = limit_prices()
    print(
        f"intent round-trip bench: session {SESSION}, clock from {CLOCK_START} speed 1, {len(symbols)} symbols, "
        f"LIMIT buys at round_down(09:59 close x 0.98); rate {args.rate:g}/s, duration {args.duration:g} s, "
        f"concurrency {args.concurrency}, strategies {args.strategies}, cores {os.cpu_count()}"
    )
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    reports = []
    ok = True
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        rep = runner(run_backend(db, args, symbols, limits))
        reports.append(rep)
        ok = ok and bool(rep.get("count_check", {}).get("ok")) and rep.get("replay", {}).get("same_intent", True)
    print_summary(reports)
    if args.json_report:
        Path(args.json_report).write_text(json.dumps(reports, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
