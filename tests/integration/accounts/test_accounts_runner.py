"""``AccountsRunner``: two accounts, each its own OMS process (US paper accounts here, no keys); killing one
account's OMS leaves the other serving and the runner restarts the killed one after its back-off; stop ends
every process cleanly and the status file names each account with its health."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from tests.e2e._support import alive, processes_with_env
from tests.support.oms_server import free_ports
from tests.support.wait import until_sync
from trader.accounts import AccountsRunner, load_accounts


def health(port: int) -> dict[str, object]:
    try:
        return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json())
    except (httpx.HTTPError, ValueError):
        return {}


def run_until(runner: AccountsRunner, check: Callable[[], object], timeout: float, what: str) -> None:
    """Tick the runner until ``check`` holds."""

    def ticked() -> object:
        runner.tick()
        return check()

    until_sync(ticked, timeout=timeout, interval=0.2, what=what)


def test_one_accounts_oms_dies_the_other_keeps_serving_and_it_comes_back(tmp_path: Path) -> None:
    ports = dict(zip(("acct-a", "acct-b"), free_ports(2), strict=True))
    path = tmp_path / "accounts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "accounts": {
                    name: {"broker": "paper", "oms_port": port, "strategies": [], "paper_date": "2024-11-26"}
                    for name, port in ports.items()
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "ALPACA_", "DATABASE_URL"))}
    env["TRADER_CLOCK"] = "sim start=2024-11-26T10:00:00-05:00 speed=1"
    runner = AccountsRunner(load_accounts(path, env), tmp_path / "state", env)
    runner.start()
    try:
        run_until(
            runner,
            lambda: all(health(p).get("status") == "ok" for p in ports.values()),
            120,
            "both accounts' OMS healthy",
        )
        for name, port in ports.items():
            h = health(port)
            assert h["instance_id"] == name and h["market"] == "us", h
        victim = runner.group.procs["acct-a.oms"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert health(ports["acct-a"]) == {}
        run_until(runner, lambda: runner.runs[0].oms.restarts == 1, 30, "the runner to restart acct-a's OMS")
        assert health(ports["acct-b"]).get("status") == "ok", "the other account kept serving"
        assert runner.group.procs["acct-b.oms"].poll() is None and runner.runs[1].oms.restarts == 0
        run_until(runner, lambda: health(ports["acct-a"]).get("status") == "ok", 120, "acct-a healthy again")
        status = json.loads(runner.write_status().read_text())
        by_name = {a["account"]: a for a in status["accounts"]}
        assert by_name["acct-a"]["processes"][0]["restarts"] == 1
        assert by_name["acct-a"]["processes"][0]["last_exit"] == -signal.SIGKILL
        assert by_name["acct-b"]["health"]["status"] == "ok"
        assert (runner.state_dir / "status.json").stat().st_mode & 0o077 == 0, "status.json holds read keys"
    finally:
        codes = runner.stop()
    assert set(codes) == {"acct-a.oms", "acct-b.oms"} and all(c in (0, -signal.SIGTERM) for c in codes.values())
    assert not [p.pid for p in runner.group.procs.values() if alive(p.pid)]
    assert processes_with_env(f"OMS_DATA_DIR={tmp_path / 'state'}") == []
