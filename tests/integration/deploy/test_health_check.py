"""scripts/health_check.sh against a real OMS (``trader oms`` on a free port), a local webhook
receiver and stub ``docker`` / ``pg_isready`` commands on a temporary PATH; and the strategy
container probe (scripts/strategy_health.py) against the same OMS."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.deploy.conftest import HEALTH_CHECK, REPO, health_check_containers, run
from tests.support.oms_server import free_port
from tests.support.wait import until_sync

TRADER = Path(sys.executable).parent / "trader"
STRATEGY_HEALTH = REPO / "scripts" / "strategy_health.py"
ADMIN_KEY = "deploy-admin-key-0000001"
KMP_KEY = "deploy-kmp-key-00000001"
NUL_KEY = "deploy-nul-key-00000001"
STARTUP_TIMEOUT = 90.0


# ---- a real OMS in a subprocess ---------------------------------------------------------------------
@dataclass
class OmsProcess:
    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def oms(tmp_path: Path) -> Iterator[OmsProcess]:
    port = free_port()
    env = {
        **os.environ,
        "OMS_BROKER": "paper",
        "OMS_ADMIN_KEY": ADMIN_KEY,
        "OMS_READ_KEY": "deploy-read-key-0000001",
        "OMS_STRATEGY_KEYS": f"KMP:{KMP_KEY},NULRIMOK:{NUL_KEY}",
        "OMS_DATA_DIR": str(tmp_path / "oms"),
        "OMS_CONFIG": str(REPO / "config" / "oms.yaml"),
        "OMS_INSTANCE_ID": "deploy-test",
        "TRADER_CLOCK": "real",
    }
    for var in ("DATABASE_URL", "OMS_JOURNAL_PATH"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [str(TRADER), "oms", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = OmsProcess(f"http://127.0.0.1:{port}", proc)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:  # wait for uvicorn's "running" line (printed once the app has started)
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"the OMS did not start within {STARTUP_TIMEOUT}s:\n{''.join(server.log)}")
            if line is None:
                pytest.fail(f"the OMS exited during start (code {proc.wait()}):\n{''.join(server.log)}")
            if "Uvicorn running on" in line:
                break
        _wait_ok(server)  # the server answers at once; /health says "starting" until state is rebuilt
        yield server
    finally:
        server.stop()


def _wait_ok(server: OmsProcess) -> None:
    seen: list[object] = [None]

    def ok() -> bool:
        try:
            seen[0] = httpx.get(f"{server.url}/health", timeout=5).json().get("status")
        except httpx.HTTPError:
            seen[0] = None
        return seen[0] == "ok"

    try:
        until_sync(ok, timeout=STARTUP_TIMEOUT, interval=0.1, what="/health to say ok")
    except AssertionError:
        pytest.fail(f"/health never said ok (last: {seen[0]}):\n{''.join(server.log)}")


# ---- webhook receiver ----------------------------------------------------------------------------
class Webhook:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts.append({"content_type": self.headers.get("Content-Type"), "json": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


# ---- stub docker / pg_isready ------------------------------------------------------------------------
@dataclass
class Stubs:
    bin: Path
    ps_file: Path

    def containers(self, rows: dict[str, str]) -> None:
        """What `docker ps` reports: name → status."""
        self.ps_file.write_text("".join(f"{name}\t{status}\n" for name, status in rows.items()))


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ps_file = tmp_path / "docker_ps.txt"
    (bindir / "docker").write_text(
        f'#!/bin/sh\n[ "$1" = ps ] || {{ echo "stub docker: only ps" >&2; exit 1; }}\ncat "{ps_file}"\n'
    )
    (bindir / "pg_isready").write_text(
        '#!/bin/sh\ncode="${FAKE_PG_EXIT:-0}"\n'
        'if [ "$code" = 0 ]; then echo "127.0.0.1:5432 - accepting connections"; '
        'else echo "127.0.0.1:5432 - no response"; fi\nexit "$code"\n'
    )
    for f in bindir.iterdir():
        f.chmod(0o755)
    s = Stubs(bindir, ps_file)
    s.containers({})
    return s


def _all_up(names: set[str]) -> dict[str, str]:
    return {n: "Up 2 hours (healthy)" for n in sorted(names)}


def health_check(
    host: str, webhook: Webhook, stubs: Stubs, oms_url: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{stubs.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "OMS_URL": oms_url,
        "PYTHON": sys.executable,
        "CURL_TIMEOUT": "10",
        "HEALTH_STATE_FILE": str(stubs.bin.parent / "health.state"),
        **extra,
    }
    return run(["bash", str(HEALTH_CHECK), host, webhook.url], env=env)


def _lines(out: str, tag: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(tag)]


def _assert_alerts(result: subprocess.CompletedProcess[str], webhook: Webhook, host: str) -> None:
    fails = _lines(result.stdout, "[FAIL]")
    assert result.returncode == len(fails), result.stdout
    assert len(webhook.posts) == len(fails), f"one alert per failure: {webhook.posts}\n{result.stdout}"
    for post, line in zip(webhook.posts, fails, strict=True):
        body = post["json"]
        assert post["content_type"] == "application/json"
        assert body["text"] == body["content"], "Slack reads text, Discord reads content"
        assert host in body["text"] and line.removeprefix("[FAIL]").strip() in body["text"]


# ---- tests -------------------------------------------------------------------------------------------
def test_vps1_healthy_then_oms_down(oms: OmsProcess, webhook: Webhook, stubs: Stubs) -> None:
    expected = health_check_containers()["VPS1"]
    stubs.containers(_all_up(expected))

    healthy = health_check("VPS1", webhook, stubs, oms.url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert not _lines(healthy.stdout, "[FAIL]")
    ok = _lines(healthy.stdout, "[OK]")
    assert len(ok) == 5 + len(expected), healthy.stdout  # status, database, breaker, recon, backlog + containers
    assert any("status ok" in ln for ln in ok) and any("circuit breaker CLOSED" in ln for ln in ok)
    assert all(any(name in ln for ln in ok) for name in expected)
    assert webhook.posts == []

    oms.stop()
    stubs.containers({**_all_up(expected), "oms_vps1": "Exited (0) 3 seconds ago"})
    down = health_check("VPS1", webhook, stubs, oms.url)
    fails = _lines(down.stdout, "[FAIL]")
    assert any(ln.startswith("[FAIL] OMS:") and "unreachable" in ln for ln in fails), down.stdout
    assert any("oms_vps1" in ln and "Exited" in ln for ln in fails), down.stdout
    assert down.returncode == len(fails) == 2, down.stdout
    _assert_alerts(down, webhook, "VPS1")


def test_vps2_with_alpaca_profile(oms: OmsProcess, webhook: Webhook, stubs: Stubs) -> None:
    names = health_check_containers()
    expected = names["VPS2"] | names["ALPACA"]
    stubs.containers(_all_up(expected))
    extra = {"COMPOSE_PROFILES": "alpaca", "OMS_ALPACA_URL": oms.url}

    healthy = health_check("VPS2", webhook, stubs, oms.url, **extra)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert len(_lines(healthy.stdout, "[OK]")) == 5 + 5 + 1 + len(expected), healthy.stdout
    assert any(ln.startswith("[OK]") and "postgres" in ln for ln in healthy.stdout.splitlines())
    assert webhook.posts == []

    rows = _all_up(expected)
    rows["strategy_pcim"] = "Up 5 minutes (unhealthy)"
    del rows["metabase"]
    stubs.containers(rows)
    broken = health_check("VPS2", webhook, stubs, oms.url, FAKE_PG_EXIT="2", **extra)
    fails = _lines(broken.stdout, "[FAIL]")
    assert broken.returncode == 3, broken.stdout
    assert any("postgres" in ln for ln in fails) and any("strategy_pcim" in ln for ln in fails)
    assert any("metabase: not found" in ln for ln in fails)
    _assert_alerts(broken, webhook, "VPS2")


class StubOms:
    """A /health (and /api/v1/clock) server answering whatever the test sets."""

    def __init__(self) -> None:
        self.health: dict[str, Any] = {}
        self.clock: dict[str, Any] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps(stub.health if self.path == "/health" else stub.clock).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_oms() -> Iterator[StubOms]:
    s = StubOms()
    try:
        yield s
    finally:
        s.close()


def test_each_health_criterion_fails_on_its_own(stub_oms: StubOms, webhook: Webhook, stubs: Stubs) -> None:
    stubs.containers(_all_up(health_check_containers()["VPS1"]))
    stub_oms.health = {
        "status": "degraded",
        "uptime_sec": 10,
        "positions_count": 0,
        "kis_circuit_breaker": "OPEN",
        "recon_status": "FAIL",
        "db": "unavailable",
        "journal_backlog": 25000,
    }
    result = health_check("VPS1", webhook, stubs, stub_oms.url)
    fails = _lines(result.stdout, "[FAIL]")
    assert result.returncode == 5, result.stdout
    assert any("status degraded" in ln for ln in fails)
    assert any("database unavailable" in ln for ln in fails)
    assert any("circuit breaker OPEN" in ln for ln in fails)
    assert any("reconciliation FAIL" in ln for ln in fails)
    assert any("journal backlog 25000" in ln for ln in fails)
    _assert_alerts(result, webhook, "VPS1")

    webhook.posts.clear()
    stub_oms.health.update(status="ok", kis_circuit_breaker="CLOSED", recon_status="WARN", db="ok", journal_backlog=20)
    assert health_check("VPS1", webhook, stubs, stub_oms.url).returncode == 0  # WARN is not a failure
    assert len(webhook.posts) == 5 and all("[RECOVERED]" in p["json"]["text"] for p in webhook.posts)
    webhook.posts.clear()
    assert health_check("VPS1", webhook, stubs, stub_oms.url, JOURNAL_BACKLOG_MAX="10").returncode == 1
    assert len(webhook.posts) == 1 and "journal backlog 20 (limit 10)" in webhook.posts[0]["json"]["text"]


def test_one_message_per_failure_not_per_run_and_a_recovery(stub_oms: StubOms, webhook: Webhook, stubs: Stubs) -> None:
    """The old script posted every failure on every cron run; now a failure is posted when it starts and a
    recovery when it ends (the state file remembers the failures between runs)."""
    stubs.containers(_all_up(health_check_containers()["VPS1"]))
    stub_oms.health = {
        "status": "ok",
        "kis_circuit_breaker": "CLOSED",
        "recon_status": "OK",
        "db": "unavailable",
        "journal_backlog": 100,
    }
    runs = [health_check("VPS1", webhook, stubs, stub_oms.url) for _ in range(3)]
    assert [r.returncode for r in runs] == [1, 1, 1], runs[0].stdout
    assert [p["json"]["text"] for p in webhook.posts] == [
        f"[trader health] VPS1 {_hostname()}: OMS: database unavailable"
    ], "one message for a failure that lasts three runs"
    assert (stubs.bin.parent / "health.state").read_text().startswith("OMS database\t")

    stub_oms.health["journal_backlog"] = 50_000  # a second failure joins while the first goes on
    assert health_check("VPS1", webhook, stubs, stub_oms.url).returncode == 2
    assert len(webhook.posts) == 2 and "journal backlog 50000" in webhook.posts[1]["json"]["text"]

    stub_oms.health.update(db="ok", journal_backlog=0)
    assert health_check("VPS1", webhook, stubs, stub_oms.url).returncode == 0
    recovered = [p["json"]["text"] for p in webhook.posts[2:]]
    assert len(recovered) == 2 and all("[RECOVERED]" in t for t in recovered), recovered
    assert any("OMS database" in t for t in recovered) and any("OMS journal" in t for t in recovered)
    assert all(p["json"]["text"] == p["json"]["content"] for p in webhook.posts)
    assert health_check("VPS1", webhook, stubs, stub_oms.url).returncode == 0
    assert len(webhook.posts) == 4, "nothing more while healthy"


def _hostname() -> str:
    import socket

    return socket.gethostname()


def test_skips_non_trading_days_when_asked(stub_oms: StubOms, webhook: Webhook, stubs: Stubs) -> None:
    stub_oms.health = {"status": "down"}
    stub_oms.clock = {"trading_day": False}
    skipped = health_check("VPS1", webhook, stubs, stub_oms.url, HEALTH_TRADING_DAYS_ONLY="1", OMS_READ_KEY="k")
    assert skipped.returncode == 0 and "[SKIP]" in skipped.stdout and webhook.posts == []
    stub_oms.clock = {"trading_day": True}
    checked = health_check("VPS1", webhook, stubs, stub_oms.url, HEALTH_TRADING_DAYS_ONLY="1", OMS_READ_KEY="k")
    assert checked.returncode > 0 and "[SKIP]" not in checked.stdout


def test_usage_errors() -> None:
    result = run(["bash", str(HEALTH_CHECK), "VPS3"], env={"PATH": os.environ.get("PATH", "")})
    assert result.returncode == 64 and "usage" in result.stderr


def test_strategy_container_probe(oms: OmsProcess) -> None:
    def probe(sid: str, key: str) -> subprocess.CompletedProcess[str]:
        return run(
            [sys.executable, str(STRATEGY_HEALTH)],
            env={"PATH": os.environ.get("PATH", ""), "OMS_URL": oms.url, "OMS_API_KEY": key, "STRATEGY_ID": sid},
        )

    assert probe("KMP", KMP_KEY).returncode == 1  # no heartbeat yet
    resp = httpx.post(
        f"{oms.url}/api/v1/strategies/KMP/heartbeat",
        json={"status": {"phase": "running"}},
        headers={"Authorization": f"Bearer {KMP_KEY}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    ok = probe("KMP", KMP_KEY)
    assert ok.returncode == 0, ok.stdout
    assert probe("NULRIMOK", NUL_KEY).returncode == 1  # its own heartbeat, not another strategy's
    assert probe("KMP", "wrong-key").returncode == 1
    oms.stop()
    down = probe("KMP", KMP_KEY)
    assert down.returncode == 1 and "not usable" in down.stdout
