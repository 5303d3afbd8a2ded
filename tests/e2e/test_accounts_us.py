"""``trader accounts`` with two Alpaca accounts on two fake-Alpaca servers (different keys), over two New
York sessions on the multi-day clock (2024-11-25 … 11-26, 09:55–10:15 each day, 60×):

- account ``acct-a`` runs rotation_core and rotation_bull, ``acct-b`` rotation_adaptive — each model its own
  process with its own OMS key, the cycle at 10:00 New York;
- each account's broker holds only orders of its own models (every order at fake A is an order of A's OMS
  by an A model, and the same for B);
- acct-a's OMS is SIGKILLed after the first cycle: acct-b keeps serving and trading, the runner restarts
  acct-a's OMS, and acct-a's models run their later cycles against it;
- every model ran one cycle per session (its audit log); a SET_TARGET the OMS deferred (rotation_bull on a
  sector rotation_core entered a moment before: the entry lock) is re-sent until decided;
- SIGTERM stops everything cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from broker_core.clock import NEW_YORK, Windows, parse_clock, sim_spec, write_anchor
from tests.e2e._support import PROJECT_ROOT, alive, rows, wait_for
from tests.support.oms_process import terminate
from tests.support.oms_server import free_ports

pytestmark = pytest.mark.e2e

DAYS = (date(2024, 11, 25), date(2024, 11, 26))
SPEED = 60.0
MODELS = {"acct-a": ["rotation_core", "rotation_bull"], "acct-b": ["rotation_adaptive"]}
BANNER_LAST = "ALPACA_DATA_STREAM_URL="


@contextmanager
def fake_alpaca(port: int, key: str, secret: str, clock: str, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADER_CLOCK", "OMS_"))}
    env.update(TRADER_CLOCK=clock, ALPACA_API_KEY=key, ALPACA_SECRET_KEY=secret)
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trader", "fake-alpaca", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        terminate(proc)


def banner(proc: subprocess.Popen[bytes], out: Path) -> dict[str, str] | None:
    assert proc.poll() is None, out.read_text()[-3000:]
    lines = out.read_text().splitlines() if out.exists() else []
    if not any(line.startswith(BANNER_LAST) for line in lines):
        return None
    return dict(line.split("=", 1) for line in lines if "=" in line and line.split("=", 1)[0].isupper())


def status(state: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return {a["account"]: a for a in data["accounts"]}


def ready(state: Path, runner: subprocess.Popen[bytes], log: Path) -> bool:
    assert runner.poll() is None, log.read_text()[-3000:]
    accounts = status(state)
    return len(accounts) == 2 and all(
        isinstance(a["health"], dict)
        and a["health"].get("status") == "ok"
        and all(p["running"] for p in a["processes"])
        and len(a["processes"]) == 1 + len(MODELS[a["account"]])
        for a in accounts.values()
    )


def broker_orders(env: dict[str, str]) -> list[Any]:
    client = TradingClient(env["ALPACA_API_KEY"], env["ALPACA_SECRET_KEY"], url_override=env["ALPACA_BASE_URL"])
    return list(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)))  # type: ignore[arg-type]


def test_two_accounts_trade_their_own_models_and_survive_one_oms_kill(tmp_path: Path) -> None:
    anchor = tmp_path / "clock.anchor"
    windows = Windows(DAYS[0], DAYS[1], time(9, 55), time(10, 15), "us")
    clock_spec = sim_spec(datetime.combine(DAYS[0], time(9, 55), NEW_YORK), SPEED, f"@{anchor}", windows=windows)
    clock = parse_clock(clock_spec)
    ports = dict(zip(("fake-a", "fake-b", "acct-a", "acct-b"), free_ports(4), strict=True))
    keys = {"acct-a": ("PKACCOUNTA0001", "secret-a-0001"), "acct-b": ("PKACCOUNTB0002", "secret-b-0002")}
    state, log = tmp_path / "state", tmp_path / "accounts.log"
    with (
        fake_alpaca(ports["fake-a"], *keys["acct-a"], clock_spec, tmp_path / "fake-a.out") as fake_a,
        fake_alpaca(ports["fake-b"], *keys["acct-b"], clock_spec, tmp_path / "fake-b.out") as fake_b,
    ):
        fakes = {
            "acct-a": wait_for(lambda: banner(fake_a, tmp_path / "fake-a.out"), timeout=90, what="fake A"),
            "acct-b": wait_for(lambda: banner(fake_b, tmp_path / "fake-b.out"), timeout=90, what="fake B"),
        }
        accounts_file = tmp_path / "accounts.yaml"
        accounts_file.write_text(
            yaml.safe_dump(
                {
                    "accounts": {
                        name: {
                            "broker": "alpaca",
                            "paper": True,
                            "key_env": f"ALPACA_KEY_{name[-1].upper()}",
                            "secret_env": f"ALPACA_SECRET_{name[-1].upper()}",
                            "oms_port": ports[name],
                            "strategies": MODELS[name],
                        }
                        for name in MODELS
                    }
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADER_CLOCK", "OMS_"))}
        env["TRADER_CLOCK"] = clock_spec
        for name, (key, secret) in keys.items():
            env[f"ALPACA_KEY_{name[-1].upper()}"], env[f"ALPACA_SECRET_{name[-1].upper()}"] = key, secret
            for var in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPACA_STREAM_URL", "ALPACA_DATA_STREAM_URL"):
                env[f"{var}_{name.upper().replace('-', '_')}"] = fakes[name][var]
        cmd = [sys.executable, "-m", "trader", "accounts", "--file", str(accounts_file), "--state-dir", str(state)]
        with open(log, "wb") as out:
            runner = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: ready(state, runner, log), timeout=120, what="both accounts up", interval=0.25)
            write_anchor(anchor)

            # day 1: both accounts trade at 10:00 New York
            wait_for(
                lambda: all(broker_orders(fakes[n]) for n in MODELS),
                timeout=90,
                what="orders at both fakes",
                interval=1,
            )
            wait_for(lambda: clock.now().astimezone(NEW_YORK).time() >= time(10, 5), timeout=60, what="10:05")
            victim = next(p for p in status(state)["acct-a"]["processes"] if p["name"] == "acct-a.oms")
            os.kill(victim["pid"], signal.SIGKILL)
            b_health = httpx.get(f"http://127.0.0.1:{ports['acct-b']}/health", timeout=5).json()
            assert b_health["status"] == "ok" and b_health["instance_id"] == "acct-b", b_health

            def restarted() -> bool:
                a = status(state).get("acct-a", {})
                oms = next((p for p in a.get("processes", []) if p["name"] == "acct-a.oms"), {})
                return bool(oms.get("restarts")) and isinstance(a.get("health"), dict) and a["health"]["status"] == "ok"

            wait_for(restarted, timeout=90, what="the runner to restart acct-a's OMS", interval=0.5)

            # the later sessions' cycles run in both accounts (one audit line per model and session)
            def cycles_done() -> bool:
                return all(
                    len(_audit(state, name, model)) >= len(windows.days())
                    for name, models in MODELS.items()
                    for model in models
                )

            wait_for(cycles_done, timeout=180, what="two cycles of every model", interval=1)
        finally:
            runner.send_signal(signal.SIGTERM)
            try:
                code = runner.wait(60)
            except subprocess.TimeoutExpired:
                runner.kill()
                code = runner.wait(10)
        orders = {name: broker_orders(fakes[name]) for name in MODELS}
    assert code == 0, log.read_text()[-3000:]
    final = status(state)
    assert all(a["health"] == "stopped" for a in final.values())
    assert not [p["pid"] for a in final.values() for p in a["processes"] if p["pid"] and alive(p["pid"])]

    for name, models in MODELS.items():
        db = state / name / "oms" / "oms.db"
        oms_orders = {o["order_id"]: o for o in rows(db, "SELECT order_id, strategy_id FROM orders")}
        ids = {str(o.client_order_id) for o in orders[name]}
        assert ids and ids <= set(oms_orders), f"{name}: an order at its broker that its OMS did not place"
        owners = {oms_orders[i]["strategy_id"] for i in ids}
        assert owners <= {m.upper() for m in models}, (name, owners)
        intents = rows(db, "SELECT strategy_id, idempotency_key, status FROM intents")
        assert intents and all(i["status"] != "DEFERRED" for i in intents), intents  # deferrals were re-sent
        assert {i["strategy_id"] for i in intents} <= {m.upper() for m in models}, intents
        assert len({i["idempotency_key"] for i in intents}) == len(intents)
        sessions = {line["session"] for m in models for line in _audit(state, name, m)}
        assert sessions == {"2024-11-25", "2024-11-26"}, sessions


def _audit(state: Path, account: str, model: str) -> list[dict[str, Any]]:
    path = state / account / model / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
