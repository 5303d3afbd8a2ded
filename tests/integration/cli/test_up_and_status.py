"""`trader up` runs a host's process set locally; `trader status/positions/safe-mode/health` talk to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.oms_server import free_port
from tests.support.wait import until_sync


def _trader(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trader", *args], env=env, capture_output=True, text=True, timeout=60)


def _wait_ok(url: str, proc: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"trader up exited with {proc.returncode}"
        try:
            return bool(httpx.get(f"{url}/health", timeout=2).json()["status"] in ("ok", "degraded"))
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    until_sync(up, timeout=90, interval=0.2, what="the OMS to come up")


def test_up_profile_then_thin_cli_calls(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TRADER_", "DATABASE_URL"))}
    env.update(
        OMS_ADMIN_KEY="up-admin-key-0000001",
        OMS_READ_KEY="up-read-key-00000001",
        OMS_KEY_KPR="up-kpr-key-000001",
        OMS_KEY_PCIM="up-pcim-key-00001",
        OMS_DATA_DIR=str(tmp_path / "var"),
        STRATEGY_DATA_DIR=str(tmp_path / "strategies"),  # PCIM's store; its default is runs/ under the cwd
        OMS_PAPER_DATE="2026-02-27",
        TRADER_CLOCK="sim start=2026-02-27T10:00:00+09:00 speed=1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "trader", "up", "--profile", "vps2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(url, proc)
        cli_env = {**env, "OMS_URL": url, "OMS_API_KEY": env["OMS_ADMIN_KEY"]}
        assert _trader("health", env=cli_env).returncode == 0
        status = _trader("status", env=cli_env)
        assert status.returncode == 0 and '"equity"' in status.stdout
        assert _trader("safe-mode", "on", env=cli_env).returncode == 0
        account = httpx.get(
            f"{url}/api/v1/state/account", headers={"Authorization": f"Bearer {env['OMS_READ_KEY']}"}
        ).json()
        assert account["safe_mode"] is True
        read_only = {**cli_env, "OMS_API_KEY": env["OMS_READ_KEY"]}
        assert _trader("safe-mode", "off", env=read_only).returncode == 1, "the read key may not switch safe mode"
        assert _trader("positions", env=read_only).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert _trader("health", env={**env, "OMS_URL": url}).returncode != 0, "health fails once the OMS is gone"
