"""Open-loop load harness for ``POST /api/v1/intents`` of any OMS.

    python bench/intents.py --url http://127.0.0.1:8000 --key STRATEGY_KEY --strategy-id ID \\
        [--rate 500] [--duration 10] [--saturate] [--connections 64] [--symbols SYM:LIMIT,...]
    python bench/intents.py --spawn sqlite|postgres [--rate 500] [--duration 10] [--saturate]

Arrivals are open loop: request i is due at ``t0 + i/rate`` whatever happened to the others, and its
latency is measured from that *due* time, so a server (or a client) that falls behind shows up as
latency, not as a silently lower rate (no coordinated omission). Requests are pre-encoded before a run
(JSON off the timed path) and sent over ``--connections`` keep-alive HTTP/1.1 connections by a minimal
asyncio client (raw streams, uvloop when installed): a few tens of µs of CPU per request, so one core
of generator drives several thousand intents/s. Each request is an ``ENTER`` of 1 share with a LIMIT
resting 2% under the market, with a unique idempotency key.

Printed per run: latency percentiles p50/p90/p99/p99.9/max from the due time (and the service time
from the send), errors by HTTP status (plus ``NO_REPLY`` and ``DROPPED``: still queued ``--drop-after``
s after the last was due), the reply statuses/reasons, the achieved rate, the generator's own CPU
(``gen`` share of one core: well below 1.0 shows the generator is not the bottleneck) and, when the
server's pid is known (``--spawn`` or ``--server-pid``), the server's CPU per intent; ``--pyspy FILE``
records the server with py-spy during the run (``pip install py-spy``) and prints its top functions.

``--saturate``: a saturation search of open-loop steps (``--step-duration`` s each) at rates growing
by ``--factor`` from ``--rate``, until a step breaks (p99 > ``--max-p99-ms``, errors+drops >
``--max-errors`` of the requests, or achieved < 95% of offered; a broken step is re-run ``--retries``
times first, since on a shared machine another process's burst can break one), stepping down instead
(to ``--min-rate``) when the first step breaks; then ``--refine`` bisection steps between the last good
and the first broken rate. Prints the highest sustained rate.

The workload: (strategy, symbol) pairs, symbol-major. An OMS rejects an ENTER of a strategy already
holding or entering the symbol (ALREADY_IN_POSITION, a short path), so every request takes a pair not
used before in the run while there are fresh ones; once they are used up, pairs are reused (and the
reply counts show the short path). ``--key/--strategy-id`` give one strategy; ``--keys SID:KEY,...``
(the ``OMS_STRATEGY_KEYS`` format) more. ``--symbols SYM:LIMIT,...`` sets symbols and limit prices;
default: the symbols of the local KRX minute data (``TRADER_DATA_DIR``) with a limit of
``round_down(09:59 close × 0.98)`` on 2026-02-27, which is what the paper OMS trades.

``--spawn sqlite|postgres`` starts a bench OMS instead of ``--url`` (``trader oms``, paper broker,
``--strategies`` generated keys, relaxed risk caps: ``bench/intent_roundtrip.py``'s ``launch_oms``;
Postgres: a fresh database on 127.0.0.1:5432, dropped afterwards), pins it to the cores the generator
does not use, waits for ``/health`` ok, warms it up, runs, stops it (SIGTERM) and checks the database
against the replies (every 2xx reply stored once, ``count check: OK``).

Pinning: the generator pins itself to ``--cpu`` (default 0; -1: no pinning) with
``os.sched_setaffinity``; a spawned OMS gets every other core. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import intent_roundtrip as rt  # noqa: E402  (the bench OMS launcher and workload pieces)

INTENTS_PATH = "/api/v1/intents"


# ---- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection; ``request`` sends pre-encoded bytes, returns (status, body)."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ctx = ssl.create_default_context() if self.tls else None
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=ctx)
        return self.reader, self.writer

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            reader, writer = await self._open()
        else:
            reader, writer = self.reader, self.writer
        try:
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            code = int(head[9:12])
            length, chunked, close = -1, False, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
            if chunked:
                parts = []
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    parts.append((await reader.readexactly(size + 2))[:-2])
                await reader.readuntil(b"\r\n")
                body = b"".join(parts)
            elif length >= 0:
                body = await reader.readexactly(length)
            else:
                body, close = await reader.read(), True
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return code, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---- the workload ---------------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    strategies: list[tuple[str, str]]
    """(strategy_id, key)"""
    symbols: list[str]
    limits: dict[str, float]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    next_k: int = 0

    @property
    def pairs(self) -> int:
        return len(self.strategies) * len(self.symbols)

    def encode(self, n: int) -> list[tuple[int, bytes]]:
        """The next ``n`` requests, encoded (k, bytes)."""
        u = urlsplit(self.url)
        host = u.netloc
        path = (u.path.rstrip("/") + INTENTS_PATH).encode()
        out = []
        ns = len(self.symbols)
        for _ in range(n):
            k = self.next_k
            self.next_k += 1
            sid, key = self.strategies[(k // ns) % len(self.strategies)]
            sym = self.symbols[k % ns]
            body = json.dumps(
                {
                    "intent_type": "ENTER",
                    "strategy_id": sid,
                    "symbol": sym,
                    "desired_qty": 1,
                    "constraints": {"order_type": "LIMIT", "limit_price": self.limits[sym]},
                    "risk_payload": {"rationale_code": "BENCH"},
                    "idempotency_key": f"{self.run_id}-{k}",
                },
                separators=(",", ":"),
            ).encode()
            head = (
                f"POST {path.decode()} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            out.append((k, head + body))
        return out


Reply = rt.Result
"""One intent's outcome (the round-trip bench's record): ``code`` is the HTTP status, 0 = no reply."""


def pct(sorted_values: list[float], p: float) -> float:
    return rt.pct(sorted_values, p)


def lat(values_s: list[float]) -> dict[str, float]:
    v = sorted(x * 1000.0 for x in values_s)
    return {
        "n": len(v),
        **{f"p{p:g}_ms": pct(v, p) for p in (50, 90, 99, 99.9)},
        "max_ms": v[-1] if v else float("nan"),
    }


def fmt_lat(s: dict[str, float]) -> str:
    return (
        f"p50 {s['p50_ms']:.2f}  p90 {s['p90_ms']:.2f}  p99 {s['p99_ms']:.2f}  p99.9 {s['p99.9_ms']:.2f}  "
        f"max {s['max_ms']:.2f} ms (n={s['n']})"
    )


# ---- CPU pinning and accounting -------------------------------------------------------------------


def pin(pid: int, cores: set[int]) -> bool:
    """Pin every thread of ``pid`` to ``cores``; False where the OS refuses or has no such call."""
    if not hasattr(os, "sched_setaffinity") or not cores:
        return False
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")] if Path(f"/proc/{pid}/task").exists() else [pid]
        for tid in tids:
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cores)
        return True
    except OSError:
        return False


@dataclass
class Meter:
    """Wall, generator CPU and (when ``server_pid``) server CPU over one run."""

    server_pid: int | None = None
    wall: float = field(default_factory=time.perf_counter)
    gen: float = field(default_factory=time.process_time)
    server: float = 0.0
    machine: float = field(default_factory=rt.machine_busy_s)

    def __post_init__(self) -> None:
        self.server = rt.proc_cpu_s(self.server_pid) if self.server_pid else 0.0

    def stop(self, replies: int) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        out = {"wall_s": wall, "gen_cores": (time.process_time() - self.gen) / wall}
        out["gen_us_per_req"] = 1e6 * (time.process_time() - self.gen) / max(replies, 1)
        out["machine_cores"] = (rt.machine_busy_s() - self.machine) / wall
        if self.server_pid:
            server = rt.proc_cpu_s(self.server_pid) - self.server
            out["server_cores"] = server / wall
            out["server_us_per_intent"] = 1e6 * server / max(replies, 1)
        return out


# ---- one open-loop run ----------------------------------------------------------------------------


async def open_loop(
    target: Target,
    conns: list[Conn],
    rate: float,
    duration: float,
    *,
    drop_after: float = 5.0,
    timeout: float = 30.0,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """``rate × duration`` requests, request i due at ``t0 + i/rate``; latency from the due time."""
    n = max(1, int(round(rate * duration)))
    requests = target.encode(n)
    queue: asyncio.Queue[tuple[int, bytes, float] | None] = asyncio.Queue()
    replies: list[Reply] = []
    dropped = 0
    meter = Meter(server_pid)
    t0 = time.perf_counter() + 0.02
    stop_sending = t0 + duration + drop_after

    async def pacer() -> None:
        i = 0
        while i < n:
            now = time.perf_counter()
            while i < n and t0 + i / rate <= now:
                k, data = requests[i]
                queue.put_nowait((k, data, t0 + i / rate))
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        for _ in conns:
            queue.put_nowait(None)

    async def worker(conn: Conn) -> None:
        nonlocal dropped
        while (item := await queue.get()) is not None:
            k, data, due = item
            sent = time.perf_counter()
            if sent > stop_sending:
                dropped += 1
                continue
            try:
                code, body = await asyncio.wait_for(conn.request(data), timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                replies.append(Reply(k, due, sent, time.perf_counter(), 0, "NO_REPLY", type(exc).__name__, None))
                continue
            done = time.perf_counter()
            if 200 <= code < 300:
                d = json.loads(body)
                replies.append(Reply(k, due, sent, done, code, d["status"], d.get("reason_code"), d.get("intent_id")))
            else:
                replies.append(
                    Reply(k, due, sent, done, code, f"HTTP_{code}", body[:120].decode(errors="replace"), None)
                )

    tasks = [asyncio.create_task(pacer())] + [asyncio.create_task(worker(c)) for c in conns]
    await asyncio.gather(*tasks)
    cpu = meter.stop(len(replies))
    ok = [r for r in replies if r.code]
    last = max((r.done for r in replies), default=t0)
    errors: Counter[str] = Counter()
    for r in replies:
        if not 200 <= r.code < 300:
            errors["NO_REPLY" if r.code == 0 else str(r.code)] += 1
    if dropped:
        errors["DROPPED"] = dropped
    return {
        "rate": rate,
        "duration_s": duration,
        "requests": n,
        "replies": len(ok),
        "achieved_rate": len(ok) / max(1e-9, last - t0),
        "accepted_rate": sum(1 for r in ok if r.status == "ACCEPTED") / max(1e-9, last - t0),
        "errors": dict(errors),
        "error_share": sum(errors.values()) / n,
        "latency": lat([r.done - r.due for r in ok]),
        "service": lat([r.done - r.sent for r in ok]),
        "outcomes": dict(Counter(r.status + (f" {r.reason}" if r.reason else "") for r in ok).most_common()),
        "cpu": cpu,
        "fresh_pairs_left": max(0, target.pairs - target.next_k),
        "_replies": replies,
    }


def report(run: dict[str, Any]) -> None:
    print(
        f"offered {run['rate']:g}/s for {run['duration_s']:g} s: {run['requests']} requests, {run['replies']} replies, "
        f"achieved {run['achieved_rate']:.1f}/s ({run['accepted_rate']:.1f} ACCEPTED/s)"
    )
    print(f"  latency from due: {fmt_lat(run['latency'])}")
    print(f"  service time:     {fmt_lat(run['service'])}")
    print(f"  errors: {run['errors'] or 'none'}; replies: {run['outcomes']}")
    c = run["cpu"]
    line = f"  CPU: generator {c['gen_cores']:.2f} of one core ({c['gen_us_per_req']:.0f} us/request)"
    if "server_cores" in c:
        line += f"; server {c['server_cores']:.2f} cores ({c['server_us_per_intent']:.0f} us/intent)"
    line += f"; whole machine {c['machine_cores']:.2f} of {len(ALL_CORES) or '?'} cores busy"
    print(line, flush=True)
    if run["fresh_pairs_left"] == 0:
        print("  note: fresh (strategy, symbol) pairs used up: later requests reused pairs (short reject paths)")


def step_ok(run: dict[str, Any], max_p99_ms: float, max_errors: float) -> bool:
    return (
        run["latency"]["p99_ms"] <= max_p99_ms
        and run["error_share"] <= max_errors
        and run["achieved_rate"] >= 0.95 * run["rate"]
    )


async def saturate(
    target: Target,
    conns: list[Conn],
    args: argparse.Namespace,
    server_pid: int | None,
    all_replies: list[Reply],
) -> dict[str, Any]:
    """Steps of growing rate until one breaks, then ``--refine`` bisections; the highest good rate."""
    good: dict[str, Any] | None = None
    bad: dict[str, Any] | None = None
    steps = []

    async def step(rate: float) -> dict[str, Any]:
        run = await open_loop(target, conns, rate, args.step_duration, drop_after=2.0, server_pid=server_pid)
        all_replies.extend(run.pop("_replies"))
        ok = step_ok(run, args.max_p99_ms, args.max_errors)
        print(
            f"  step {rate:7.0f}/s: achieved {run['achieved_rate']:7.1f}/s  p50 {run['latency']['p50_ms']:7.2f}  "
            f"p99 {run['latency']['p99_ms']:8.2f} ms  errors {run['error_share'] * 100:5.1f}%  "
            f"gen {run['cpu']['gen_cores']:.2f} core"
            + (f"  server {run['cpu']['server_us_per_intent']:.0f} us/intent" if server_pid else "")
            + f"  machine {run['cpu']['machine_cores']:.2f} cores busy"
            + ("" if ok else "  <- broken"),
            flush=True,
        )
        steps.append({k: v for k, v in run.items() if k != "_replies"})
        await asyncio.sleep(1.0)  # let the server drain before the next step
        return run

    async def judged(rate: float) -> dict[str, Any]:
        """A step, re-run up to ``--retries`` times while broken (on a shared machine one burst of another
        process can break a step the OMS sustains)."""
        run = await step(rate)
        for _ in range(args.retries):
            if step_ok(run, args.max_p99_ms, args.max_errors):
                break
            run = await step(rate)
        return run

    rate = args.rate
    while rate <= args.max_rate:
        run = await judged(rate)
        if not step_ok(run, args.max_p99_ms, args.max_errors):
            bad = run
            break
        good = run
        rate *= args.factor
    rate = args.rate / args.factor
    while good is None and rate >= args.min_rate:  # the first step broke: step down until one holds
        run = await judged(rate)
        if step_ok(run, args.max_p99_ms, args.max_errors):
            good = run
        else:
            bad = run
        rate /= args.factor
    for _ in range(args.refine if bad is not None and good is not None else 0):
        assert good is not None and bad is not None
        mid = (good["rate"] + bad["rate"]) / 2
        run = await judged(mid)
        if step_ok(run, args.max_p99_ms, args.max_errors):
            good = run
        else:
            bad = run
    best = good["achieved_rate"] if good else 0.0
    print(
        f"highest sustained rate: {best:.0f} intents/s (offered {good['rate'] if good else 0:.0f}/s; "
        f"p99 <= {args.max_p99_ms:g} ms, errors <= {args.max_errors * 100:g}%)"
        + ("" if bad else f" — not broken up to --max-rate {args.max_rate:g}")
    )
    return {"sustained_rate": best, "steps": steps}


# ---- a spawned bench OMS --------------------------------------------------------------------------


@dataclass
class Spawned:
    oms: rt.Oms
    strategies: list[tuple[str, str]]
    db: str
    pg_name: str | None
    start_s: float
    """Seconds from process launch to ``/health`` ok."""
    listening_s: float
    """Seconds from process launch to the first HTTP reply (``starting``)."""


ALL_CORES: set[int] = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
"""The cores this process may use at start (before it pins itself)."""


def other_cores(gen_cpu: int) -> set[int]:
    return (ALL_CORES - {gen_cpu}) or ALL_CORES


async def wait_ok(oms: rt.Oms, deadline_s: float = 180.0, poll_s: float = 0.02) -> tuple[float, float]:
    """Seconds from now until ``GET /health`` first answers (the server listens) and until it says ok
    (polled every ``poll_s``)."""
    t0 = time.perf_counter()
    listening = float("nan")
    u = urlsplit(oms.url)
    assert u.hostname is not None and u.port is not None
    req = f"GET /health HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode()
    conn = Conn(u.hostname, u.port, False)
    try:
        while True:
            if oms.proc.poll() is not None:
                raise RuntimeError(f"the OMS exited with code {oms.proc.returncode}:\n{oms.log_tail()}")
            with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
                code, body = await conn.request(req)
                if listening != listening:
                    listening = time.perf_counter() - t0
                if code == 200 and json.loads(body).get("status") == "ok":
                    return listening, time.perf_counter() - t0
            if time.perf_counter() - t0 > deadline_s:
                raise RuntimeError(f"the OMS was not healthy within {deadline_s:.0f} s:\n{oms.log_tail()}")
            await asyncio.sleep(poll_s)
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def spawn(
    db: str, n_strategies: int, gen_cpu: int, log_level: str = "INFO", profile: str = "none"
) -> AsyncIterator[Spawned]:
    """A bench OMS (paper broker; SQLite file or a fresh Postgres database), pinned off ``gen_cpu``,
    healthy; stopped with SIGTERM (journal flushed) on exit, the temporary directory and database removed."""
    tmp = Path(tempfile.mkdtemp(prefix=f"oms-bench-{db}-"))
    strategies = [(f"B{i:03d}", secrets.token_hex(16)) for i in range(n_strategies)]
    pg_name = None
    db_url = ""
    if db == "postgres":
        pg_name = f"bench_oms_{uuid.uuid4().hex[:10]}"
        await rt.pg_admin(f'CREATE DATABASE "{pg_name}"')
        db_url = f"postgresql+asyncpg://{rt.PG_USER}@{rt.PG_HOST}:{rt.PG_PORT}/{pg_name}"
    oms: rt.Oms | None = None
    try:
        t0 = time.perf_counter()
        oms = rt.launch_oms(tmp, db_url, strategies, log_level, profile)
        if gen_cpu >= 0:
            pin(oms.pid, other_cores(gen_cpu))
        listening, ok = await wait_ok(oms)
        launch = time.perf_counter() - t0 - ok  # Popen itself, ~ms
        if gen_cpu >= 0:
            pin(oms.pid, other_cores(gen_cpu))  # threads started since
        yield Spawned(oms, strategies, db, pg_name, launch + ok, launch + listening)
    finally:
        if oms is not None and oms.proc.poll() is None:
            rt.stop_oms(oms, 60)
        if pg_name:
            with contextlib.suppress(Exception):
                await rt.pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


async def count_check(sp: Spawned, replies: list[Reply]) -> bool:
    """Stop the OMS (SIGTERM flushes the journal) and compare its database with the replies."""
    code, _ = rt.stop_oms(sp.oms)
    facts = await rt.db_facts(sp.oms, sp.db, sp.pg_name)
    results = [rt.Result(r.k, r.due, r.sent, r.done, r.code, r.status, r.reason, r.intent_id) for r in replies]
    ok, lines = rt.count_check(results, facts)
    print(f"OMS exit code {code}; " + "; ".join(lines))
    print("count check: OK" if ok else "count check: FAILED", flush=True)
    return ok


# ---- command line ---------------------------------------------------------------------------------


def parse_pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"expected NAME:VALUE, got {item!r}")
        out.append((a.strip(), b.strip()))
    return out


def workload_symbols(spec: str | None) -> tuple[list[str], dict[str, float]]:
    if spec:
        pairs = parse_pairs(spec)
        return [s for s, _ in pairs], {s: float(v) for s, v in pairs}
    return rt.limit_prices()


def connections(url: str, n: int) -> list[Conn]:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise SystemExit(f"--url: expected http(s)://host:port, got {url!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    return [Conn(u.hostname, port, u.scheme == "https") for _ in range(n)]


def pyspy(pid: int, duration: float, out: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` of ``pid`` for ``duration`` s into ``out`` (raw collapsed stacks; the figures of a
    profiled run are not headline figures)."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy") or "py-spy"
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(duration + 0.999)), "--rate", "200"]
    cmd += ["--nonblocking", "--format", "raw", "--threads", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def warm_up(target: Target, conns: list[Conn], n: int, server_pid: int | None) -> list[Reply]:
    if n <= 0:
        return []
    run = await open_loop(target, conns[:8], 200.0, n / 200.0, server_pid=server_pid)
    replies: list[Reply] = run.pop("_replies")
    print(f"warm-up: {len(replies)} intents ({run['outcomes']}), not in the figures", flush=True)
    return replies


async def drive(target: Target, args: argparse.Namespace, server_pid: int | None) -> tuple[dict[str, Any], list[Reply]]:
    conns = connections(target.url, args.connections)
    replies = await warm_up(target, conns, args.warmup, server_pid)
    out: dict[str, Any] = {}
    try:
        if args.saturate:
            print(f"-- saturation search from {args.rate:g}/s, x{args.factor:g} per {args.step_duration:g} s step")
            out["saturation"] = await saturate(target, conns, args, server_pid, replies)
        else:
            spy = pyspy(server_pid, args.duration, Path(args.pyspy)) if args.pyspy and server_pid else None
            run = await open_loop(
                target, conns, args.rate, args.duration, drop_after=args.drop_after, server_pid=server_pid
            )
            replies.extend(run.pop("_replies"))
            report(run)
            out["run"] = run
            if spy is not None:
                spy.wait(60)
                rt.print_profile(rt.summarize_pyspy(Path(args.pyspy), 30))
    finally:
        for c in conns:
            c.close()
    return out, replies


async def main_async(args: argparse.Namespace) -> int:
    symbols, limits = workload_symbols(args.symbols)
    if args.cpu >= 0:
        pinned = pin(os.getpid(), {args.cpu})
        print(
            f"generator pid {os.getpid()} pinned to core {args.cpu}" if pinned else "generator: pinning not available"
        )
    if args.spawn:
        async with spawn(args.spawn, args.strategies, args.cpu, args.oms_log_level) as sp:
            print(
                f"spawned OMS ({args.spawn}) pid {sp.oms.pid} at {sp.oms.url}, "
                f"healthy {sp.start_s:.2f} s after launch; "
                f"cores {os.sched_getaffinity(sp.oms.pid) if hasattr(os, 'sched_getaffinity') else '?'}",
                flush=True,
            )
            target = Target(sp.oms.url, sp.strategies, symbols, limits)
            out, replies = await drive(target, args, sp.oms.pid)
            ok = await count_check(sp, replies)
            out["count_check"] = ok
    else:
        if args.keys:
            strategies = parse_pairs(args.keys)
        elif args.key and args.strategy_id:
            strategies = [(args.strategy_id, args.key)]
        else:
            raise SystemExit("give --url with --key and --strategy-id (or --keys SID:KEY,...), or --spawn")
        target = Target(args.url, strategies, symbols, limits)
        out, _ = await drive(target, args, args.server_pid)
        ok = True
    if args.json_report:
        Path(args.json_report).write_text(json.dumps(out, indent=1, default=str))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", help="the OMS, e.g. http://127.0.0.1:8000")
    ap.add_argument("--key", help="a strategy key of the OMS")
    ap.add_argument("--strategy-id", help="the strategy of --key")
    ap.add_argument("--keys", help="several strategies: SID:KEY,SID:KEY (the OMS_STRATEGY_KEYS format)")
    ap.add_argument("--symbols", help="SYM:LIMIT,... (default: the local KRX minute data's symbols)")
    ap.add_argument("--spawn", choices=("sqlite", "postgres"), help="start a bench OMS instead of --url")
    ap.add_argument("--strategies", type=int, default=1000, help="--spawn: generated strategies (default 1000)")
    ap.add_argument("--oms-log-level", default="INFO", help="--spawn: the OMS's --log-level")
    ap.add_argument("--server-pid", type=int, help="with --url: the OMS's pid, for its CPU per intent")
    ap.add_argument("--rate", type=float, default=500.0, help="intents/s (the first step with --saturate)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up intents, not in the figures (default 200)")
    ap.add_argument(
        "--drop-after", type=float, default=10.0, help="drop requests still queued this long after the last was due"
    )
    ap.add_argument("--cpu", type=int, default=0, help="core the generator is pinned to (-1: none; default 0)")
    ap.add_argument("--saturate", action="store_true", help="run the saturation search")
    ap.add_argument("--step-duration", type=float, default=5.0, help="--saturate: seconds per step (default 5)")
    ap.add_argument("--factor", type=float, default=1.4, help="--saturate: rate growth per step (default 1.4)")
    ap.add_argument("--max-rate", type=float, default=20000.0, help="--saturate: stop there (default 20000)")
    ap.add_argument("--min-rate", type=float, default=50.0, help="--saturate: lowest step down (default 50)")
    ap.add_argument("--refine", type=int, default=2, help="--saturate: bisection steps (default 2)")
    ap.add_argument("--retries", type=int, default=1, help="--saturate: re-runs of a broken step (default 1)")
    ap.add_argument("--max-p99-ms", type=float, default=50.0, help="--saturate: a step breaks above (default 50)")
    ap.add_argument("--max-errors", type=float, default=0.01, help="--saturate: error share that breaks (default 0.01)")
    ap.add_argument("--pyspy", metavar="FILE", help="py-spy record the server (--spawn/--server-pid) into FILE")
    ap.add_argument("--json-report", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if bool(args.url) == bool(args.spawn):
        ap.error("give exactly one of --url and --spawn")
    if not (0 < args.rate <= 100000 and 0 < args.duration <= 3600 and 1 <= args.connections <= 1024):
        ap.error("out of range: 0 < rate <= 100000, 0 < duration <= 3600, 1 <= connections <= 1024")
    return run(main_async(args))


def run(coro: Any) -> Any:
    """``uvloop.run`` when uvloop is installed, else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
