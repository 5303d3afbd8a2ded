"""``trader dashboard`` over two accounts that ``AccountsRunner`` runs (US paper accounts; acct-a with
rotation_core as a real strategy process, its cycle at 10:00 New York): headless in 80×24 with Textual's
pilot — both accounts listed with their health, the selection follows the keys, the detail shows acct-a's
positions and rotation_core's target weights — and the ``--once`` text capture."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from rich.console import Console

from tests.support.oms_server import free_ports
from trader.accounts import AccountsRunner, load_accounts
from trader.accounts.dashboard import AccountsDashboard, print_once, render
from trader.accounts.views import fetch_view, load_status


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp_path = tmp_path_factory.mktemp("accounts")
    port_a, port_b = free_ports(2)
    accounts = {
        "acct-a": {
            "broker": "paper",
            "oms_port": port_a,
            "strategies": ["rotation_core"],
            "paper_date": "2024-11-26",
        },
        "acct-b": {"broker": "paper", "oms_port": port_b, "strategies": [], "paper_date": "2024-11-26"},
    }
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"accounts": accounts}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "ALPACA_", "DATABASE_URL"))}
    env["TRADER_CLOCK"] = "sim start=2024-11-26T09:59:00-05:00 speed=60"
    runner = AccountsRunner(load_accounts(path, env), tmp_path / "state", env)
    runner.start()
    try:
        deadline = time.monotonic() + 150
        while True:
            runner.tick()
            runner.write_status()
            views = {e["account"]: fetch_view(e, runner.state_dir) for e in load_status(runner.state_dir)}
            if views.get("acct-a") and len(views["acct-a"].positions) == 3 and views["acct-a"].targets:
                break
            assert time.monotonic() < deadline, f"acct-a never showed rotation_core's positions: {views}"
            time.sleep(0.5)
        yield runner
    finally:
        runner.stop()


async def test_the_dashboard_in_80x24(running: AccountsRunner) -> None:
    app = AccountsDashboard(running.state_dir, refresh_s=30)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert [v.name for v in app.views] == ["acct-a", "acct-b"]
        assert all(v.health == "ok" for v in app.views), [(v.name, v.health, v.error) for v in app.views]
        assert app.selected == 0
        a = app.views[0]
        assert a.equity and a.equity > 0 and len(a.positions) == 3, a
        assert a.targets[0][0] == "rotation_core" and a.targets[0][2] == "rebalance", a.targets
        await pilot.press("down")
        await pilot.pause()
        assert app.selected == 1 and app.views[1].positions == []
        await pilot.press("q")


def test_once_prints_every_account(running: AccountsRunner) -> None:
    console = Console(record=True, width=80)
    assert print_once(running.state_dir, console) == 0
    text = console.export_text()
    for needle in ("acct-a", "acct-b", "rotation_core", "rebalance", "equity", "recent orders", "processes:"):
        assert needle in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    view = render(fetch_view(load_status(running.state_dir)[0], running.state_dir))
    capture = Console(record=True, width=80)
    capture.print(view)
    print(capture.export_text())
