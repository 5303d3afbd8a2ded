"""The rotation strategy's account cycle against a real OMS owning a US paper account (in-process, HTTP):
rotation_core on 2024-11-26 (decided on the closes of the sessions before it) sends SET_TARGET intents for its
three sectors, they fill, the audit log has the decision; a rerun of the same day's cycle submits nothing new
(same idempotency keys, same intents); a restart reads the last rebalance back and holds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import NEW_YORK, VirtualClock
from oms.settings import load_config
from strategies.rotation.config import load_rotation_config
from strategies.rotation.strategy import RotationStrategy
from strategies.sdk.client import OmsClient
from tests.integration.alpaca.conftest import SESSION, ny
from tests.support.oms_server import Oms, oms_settings, running_oms
from tests.support.wait import until

KEY = "test-rotation-core-key-01"


@pytest.fixture
async def oms(tmp_path: Path) -> AsyncIterator[Oms]:
    settings = oms_settings(
        tmp_path, oms_market="us", oms_paper_date=str(SESSION), oms_strategy_keys=f"ROTATION_CORE:{KEY}"
    )
    clock = VirtualClock(ny(10, 0), speed=30.0, tz=NEW_YORK)
    async with running_oms(settings, load_config("config/oms.us.yaml"), clock=clock) as running:
        yield running


def strategy(oms: Oms, client: OmsClient, data_dir: Path) -> RotationStrategy:
    return RotationStrategy(
        load_rotation_config(),
        client,
        oms.runtime.clock,
        model="rotation_core",
        budgets={"rotation_core": 1.0},
        data_dir=data_dir,
    )


async def test_a_cycle_trades_its_sectors_and_a_rerun_submits_nothing(oms: Oms, tmp_path: Path) -> None:
    async with OmsClient(oms.url, KEY, "ROTATION_CORE") as client:
        first = strategy(oms, client, tmp_path / "rotation")
        now = oms.runtime.clock.now().astimezone(NEW_YORK)
        await first.cycle(SESSION, now)
        intents: list[dict[str, Any]] = await oms.get("/api/v1/intents", limit=100)
        assert len(intents) == 3 and {i["intent_type"] for i in intents} == {"SET_TARGET"}, intents
        # MODIFIED: the last sector's order trimmed by a share or so when the marketable limits' 0.3 % band
        # would spend more cash than the account has (INSUFFICIENT_CASH) — the OMS's answer, not an error
        assert {i["status"] for i in intents} <= {"ACCEPTED", "EXECUTED", "MODIFIED"}, intents
        symbols = {i["symbol"] for i in intents}
        assert symbols <= set(first.config.universe), symbols
        assert all(i["idempotency_key"].endswith(f":{SESSION}") for i in intents), intents

        async def filled() -> bool:
            held = {s: a.qty for s, a in (await client.allocations()).items() if a.qty > 0}
            return set(held) == symbols

        await until(filled, timeout=60, what="the three sectors filled")
        audit = [json.loads(line) for line in (tmp_path / "rotation" / "audit.jsonl").read_text().splitlines()]
        assert len(audit) == 1 and audit[0]["model"] == "rotation_core" and len(audit[0]["orders"]) == 3, audit

        await first.cycle(SESSION, now)  # the same day's cycle again (a restart mid-cycle, an operator rerun)
        again: list[dict[str, Any]] = await oms.get("/api/v1/intents", limit=100)
        assert sorted(i["intent_id"] for i in again) == sorted(i["intent_id"] for i in intents)

        restarted = strategy(oms, client, tmp_path / "rotation")
        assert restarted.last_rebalance == {"rotation_core": SESSION}
        await restarted.cycle(SESSION.replace(day=27), now)  # the next session: inside 7 days → hold
        held_after: list[dict[str, Any]] = await oms.get("/api/v1/intents", limit=100)
        assert len(held_after) == 3, held_after


async def test_a_strategy_reporting_an_overdue_cycle_degrades_the_account_health(oms: Oms) -> None:
    async with OmsClient(oms.url, KEY, "ROTATION_CORE") as client:
        await client.heartbeat({"health_issue": "cycle_overdue", "errors_today": 0})
        health = await oms.get("/health")
        assert health["status"] == "degraded" and health["degraded_reasons"] == ["strategy:ROTATION_CORE:cycle_overdue"]
        await client.heartbeat({"errors_today": 0})
        assert (await oms.get("/health"))["status"] == "ok"
