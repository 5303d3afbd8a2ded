"""``python -m broker_core.alpaca.fake --port P``: a separate process that prints the client environment and
serves the real SDK; on a day after the data it replays the data's last day on that day's session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from alpaca.trading.client import TradingClient

from broker_core.clock import NEW_YORK

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_fake_runs_as_a_module_and_prints_the_client_environment() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    env["TRADER_CLOCK"] = "sim start=2026-03-03T10:00:00-05:00 speed=60"
    env.update(ALPACA_API_KEY="PKFROMTHEENV01", ALPACA_SECRET_KEY="secret-from-the-env-01")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker_core.alpaca.fake", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("ALPACA_DATA_STREAM_URL=") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline().strip())
        banner = lines[0]
        assert "session 2026-03-03 (replaying the derived path of 2024-12-31)" in banner and "111 symbols" in banner
        printed = dict(line.split("=", 1) for line in lines[1:])
        assert printed["ALPACA_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert (printed["ALPACA_API_KEY"], printed["ALPACA_SECRET_KEY"]) == ("PKFROMTHEENV01", "secret-from-the-env-01")
        assert printed["ALPACA_STREAM_URL"] == f"ws://127.0.0.1:{port}/stream"
        client = TradingClient(
            printed["ALPACA_API_KEY"], printed["ALPACA_SECRET_KEY"], url_override=printed["ALPACA_BASE_URL"]
        )
        clock: Any = client.get_clock()
        account: Any = client.get_account()
        assert clock.is_open and clock.timestamp.astimezone(NEW_YORK).date() == datetime(2026, 3, 3).date()
        assert len(client.get_all_assets()) == 111 and account.cash == "100000.00"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_trader_mounts_the_fake() -> None:
    from typer.testing import CliRunner

    from trader.cli import app

    result = CliRunner().invoke(app, ["fake-alpaca", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--data-dir" in result.output, result.output
