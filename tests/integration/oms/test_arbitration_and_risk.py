"""Over HTTP against a running OMS (paper broker replaying 2026-02-27), on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from oms.settings import load_config
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms
from tests.support.wait import until

KMP, KPR = STRATEGY_KEYS["KMP"], STRATEGY_KEYS["KPR"]


def enter(strategy: str, symbol: str, qty: int, **extra: object) -> dict[str, object]:
    return {
        "intent_type": "ENTER",
        "strategy_id": strategy,
        "symbol": symbol,
        "desired_qty": qty,
        "constraints": {"order_type": "MARKETABLE_LIMIT"},
        "risk_payload": {"rationale_code": "TEST"},
        **extra,
    }


async def filled_qty(oms: Oms, symbol: str, strategy: str) -> int:
    pos = await oms.get("/api/v1/positions")
    return pos.get(symbol, {}).get("allocations", {}).get(strategy, {}).get("qty", 0)


async def test_second_strategy_deferred_until_entry_lock_expires(tmp_path: Path, database_url: str) -> None:
    async with running_oms(oms_settings(tmp_path, database_url)) as oms:
        first = (await oms.intent(KMP, **enter("KMP", "005930", 5))).json()
        assert first["status"] == "ACCEPTED", first
        second = (await oms.intent(KPR, **enter("KPR", "005930", 5, idempotency_key="kpr-1"))).json()
        assert second["status"] == "DEFERRED" and second["reason_code"] == "ENTRY_LOCKED", second
        until_ts = datetime.fromisoformat(second["cooldown_until"])
        await until(lambda: oms.runtime.clock.now() >= until_ts, timeout=30, what="entry lock expiry")
        retried = (await oms.intent(KPR, **enter("KPR", "005930", 5, idempotency_key="kpr-1"))).json()
        assert retried["status"] in ("ACCEPTED", "EXECUTED"), retried


async def test_exit_always_proceeds_and_safe_mode_blocks_only_entries(tmp_path: Path, database_url: str) -> None:
    async with running_oms(oms_settings(tmp_path, database_url)) as oms:
        assert (await oms.intent(KMP, **enter("KMP", "000660", 3))).json()["status"] == "ACCEPTED"
        await until(lambda: filled_qty(oms, "000660", "KMP"), what="KMP fill on 000660")
        assert (await oms.admin("/api/v1/risk/safe-mode", {"enabled": True})).status_code == 200
        blocked = (await oms.intent(KMP, **enter("KMP", "005930", 3))).json()
        assert blocked["status"] == "REJECTED" and blocked["reason_code"] == "SAFE_MODE", blocked
        exit_ = (await oms.intent(KMP, intent_type="EXIT", strategy_id="KMP", symbol="000660")).json()
        assert exit_["status"] in ("ACCEPTED", "EXECUTED"), exit_
        await until(lambda: _flat(oms, "000660"), what="exit filled")
        account = await oms.get("/api/v1/state/account")
        assert account["safe_mode"] is True and account["trading_state"] == "REDUCING"


async def _flat(oms: Oms, symbol: str) -> bool:
    pos = await oms.get("/api/v1/positions")
    return symbol not in pos or pos[symbol]["real_qty"] == 0


async def test_daily_loss_halt_blocks_entries_but_not_exits(tmp_path: Path) -> None:
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    async with running_oms(oms_settings(tmp_path), config) as oms:
        assert (await oms.intent(KMP, **enter("KMP", "005930", 5))).json()["status"] == "ACCEPTED"
        await until(lambda: filled_qty(oms, "005930", "KMP"), what="entry fill")
        oms.runtime.broker.inject_cash(-4_000_000)
        await until(lambda: _account_below(oms, -0.03), timeout=30, what="the loss seen by reconciliation")
        refused = (await oms.intent(KPR, **enter("KPR", "000660", 1))).json()
        assert refused["status"] == "REJECTED" and refused["reason_code"] == "DAILY_LOSS_HALT", refused
        exit_ = (await oms.intent(KMP, intent_type="EXIT", strategy_id="KMP", symbol="005930")).json()
        assert exit_["status"] in ("ACCEPTED", "EXECUTED"), exit_


async def test_flatten_on_halt_exits_every_allocation_without_any_new_intent(tmp_path: Path) -> None:
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    config.risk = config.risk.model_copy(update={"flatten_on_halt": True, "entry_lock_sec": {"KMP": 1, "KPR": 1}})
    async with running_oms(oms_settings(tmp_path), config) as oms:
        assert (await oms.intent(KMP, **enter("KMP", "005930", 3))).json()["status"] == "ACCEPTED"
        assert (await oms.intent(KPR, **enter("KPR", "000660", 1))).json()["status"] == "ACCEPTED"
        await until(lambda: _both_filled(oms), timeout=30, what="both entries filled")
        oms.runtime.broker.inject_cash(-4_000_000)

        async def flat() -> bool:
            pos = await oms.get("/api/v1/positions")
            return not any(p["real_qty"] for p in pos.values())

        await until(flat, timeout=60, what="flatten on halt")
        audit = oms.runtime.journal.latest_rows(after_seq=0, table="audit_log").get("audit_log", {})
        assert any(r["action"] == "flatten_all" and r["actor"] == "system:DAILY_LOSS_HALT" for r in audit.values())


async def _both_filled(oms: Oms) -> bool:
    return bool(await filled_qty(oms, "005930", "KMP") and await filled_qty(oms, "000660", "KPR"))


async def _account_below(oms: Oms, pct: float) -> bool:
    account = await oms.get("/api/v1/state/account")
    return account["daily_pnl_pct"] <= pct


async def test_same_intent_ten_times_concurrently_is_one_order(tmp_path: Path, database_url: str) -> None:
    async with running_oms(oms_settings(tmp_path, database_url)) as oms:
        body = enter("KMP", "066570", 2, idempotency_key="burst-1")
        replies = await asyncio.gather(*(oms.intent(KMP, **body) for _ in range(10)))
        assert all(r.status_code == 200 for r in replies)
        payloads = [r.json() for r in replies]
        assert payloads[0]["status"] == "ACCEPTED", payloads[0]
        assert len({p["intent_id"] for p in payloads}) == 1 and len({p["order_id"] for p in payloads}) == 1
        engine = oms.runtime.exchange.engine
        assert len([o for o in engine.orders() if o.symbol == "066570"]) == 1
        history = await oms.get("/api/v1/intents", strategy_id="KMP", symbol="066570")
        assert len(history) == 1


async def test_fills_of_two_strategies_are_attributed_and_sum_to_the_position(
    tmp_path: Path, database_url: str
) -> None:
    config = load_config()
    config.risk = config.risk.model_copy(update={"entry_lock_sec": {"KMP": 1, "KPR": 1}})
    async with running_oms(oms_settings(tmp_path, database_url), config) as oms:
        assert (await oms.intent(KMP, **enter("KMP", "012330", 4))).json()["status"] == "ACCEPTED"
        await until(lambda: filled_qty(oms, "012330", "KMP"), what="KMP fill")
        kpr = await until(lambda: _accepted(oms, KPR, enter("KPR", "012330", 6)), timeout=30, what="KPR entry")
        assert kpr["status"] in ("ACCEPTED", "EXECUTED")
        await until(lambda: filled_qty(oms, "012330", "KPR"), what="KPR fill")
        pos = (await oms.get("/api/v1/positions"))["012330"]
        assert pos["allocations"]["KMP"]["qty"] == 4 and pos["allocations"]["KPR"]["qty"] == 6
        assert pos["real_qty"] == sum(a["qty"] for a in pos["allocations"].values()) == 10
        broker = {p.symbol: p.qty for p in await oms.runtime.broker.get_positions()}
        assert broker["012330"] == 10
        fills = await oms.get("/api/v1/fills", symbol="012330")
        assert sum(f["qty"] for f in fills if f["strategy_id"] == "KMP") == 4
        assert sum(f["qty"] for f in fills if f["strategy_id"] == "KPR") == 6


async def _accepted(oms: Oms, key: str, body: dict[str, object]) -> dict[str, object] | None:
    reply = (await oms.intent(key, **body)).json()
    return reply if reply["status"] != "DEFERRED" else None


async def test_drift_goes_to_unknown_freezes_and_correct_allocation_unfreezes(
    tmp_path: Path, database_url: str
) -> None:
    config = load_config()
    config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 1, "max_interval_s": 2})
    async with running_oms(oms_settings(tmp_path, database_url), config) as oms:
        oms.runtime.broker.inject_position("055550", 7, 180_000)
        await until(lambda: _frozen(oms, "055550"), timeout=30, what="drift detected")
        pos = (await oms.get("/api/v1/positions"))["055550"]
        assert pos["allocations"]["_UNKNOWN_"]["qty"] == 7 and pos["real_qty"] == 7
        refused = (await oms.intent(KMP, **enter("KMP", "055550", 1, idempotency_key="while-frozen"))).json()
        assert refused["status"] == "REJECTED" and refused["reason_code"] == "SYMBOL_FROZEN", refused
        resp = await oms.admin(
            "/api/v1/admin/correct-allocation",
            {"symbol": "055550", "from_strategy": "_UNKNOWN_", "to_strategy": "KPR", "qty": 7},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["frozen"] is False
        pos = (await oms.get("/api/v1/positions"))["055550"]
        assert pos["frozen"] is False and pos["allocations"] == {"KPR": pos["allocations"]["KPR"]}
        accepted = (await oms.intent(KMP, **enter("KMP", "055550", 1, idempotency_key="after-fix"))).json()
        assert accepted["status"] in ("ACCEPTED", "EXECUTED"), accepted


async def _frozen(oms: Oms, symbol: str) -> bool:
    pos = await oms.get("/api/v1/positions")
    return bool(pos.get(symbol, {}).get("frozen"))
