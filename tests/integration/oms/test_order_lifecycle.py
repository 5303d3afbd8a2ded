"""Order planning over HTTP: held stop-limit entries, cancel_after timeouts, flatten, EOD cleanup."""

from __future__ import annotations

from pathlib import Path

from oms.settings import load_config
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms
from tests.support.wait import until

KMP, KPR = STRATEGY_KEYS["KMP"], STRATEGY_KEYS["KPR"]


async def _order(oms: Oms, order_id: str) -> dict[str, object]:
    return await oms.get(f"/api/v1/orders/{order_id}")


async def _state_is(oms: Oms, order_id: str, *states: str) -> bool:
    return (await _order(oms, order_id))["state"] in states


def _rising_symbol(oms: Oms) -> tuple[str, float]:
    """A symbol and a stop that the replayed tape does not reach in the next 2 minutes but does
    reach within 20 (so the order is seen HELD first, then triggered)."""
    from broker_core.market_rules import up

    now, feed, engine = oms.runtime.clock.now().timestamp(), oms.runtime.exchange.feed, oms.runtime.exchange.engine
    for symbol in feed.symbols:
        last = engine.last_price(symbol)
        near = [b.high for b in feed.bars(symbol) if now - 60 <= b.ts.timestamp() <= now + 120]
        far = [b.high for b in feed.bars(symbol) if now + 120 < b.ts.timestamp() <= now + 1200]
        if last and near and far:
            stop = float(up(max(max(near), last), 1))
            if max(far) >= stop:
                return symbol, stop
    raise AssertionError("no symbol rises in the next 20 minutes of the replay")


async def test_stop_limit_entry_is_held_until_the_trigger_trades(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        from broker_core.market_rules import up

        symbol, stop = _rising_symbol(oms)
        reply = (
            await oms.intent(
                KMP,
                intent_type="ENTER",
                strategy_id="KMP",
                symbol=symbol,
                desired_qty=1,
                constraints={"order_type": "STOP_LIMIT", "stop_price": stop, "limit_price": float(up(stop, 3))},
            )
        ).json()
        assert reply["status"] == "ACCEPTED" and "held" in reply["message"], reply
        order = await _order(oms, reply["order_id"])
        assert order["state"] == "HELD" and order["broker_order_id"] is None
        assert not [o for o in oms.runtime.exchange.engine.orders() if o.client_order_id == reply["order_id"]]
        far = (
            await oms.intent(
                KPR,
                intent_type="ENTER",
                strategy_id="KPR",
                symbol="000660",
                desired_qty=1,
                constraints={
                    "order_type": "STOP_LIMIT",
                    "stop_price": 9_990_000.0,
                    "limit_price": 9_990_000.0,
                    "cancel_after_sec": 60,
                },
            )
        ).json()
        assert far["status"] in ("ACCEPTED", "REJECTED"), far
        await until(
            lambda: _state_is(oms, reply["order_id"], "SUBMITTED", "PARTIALLY_FILLED", "FILLED"),
            timeout=60,
            what="stop to trigger (the tape trades through the stop)",
        )
        sent = await _order(oms, reply["order_id"])
        assert sent["broker_order_id"], sent


async def test_cancel_after_sec_cancels_a_resting_order(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        last = (await oms.runtime.broker.get_quote("000270")).last
        from broker_core.market_rules import round_down

        reply = (
            await oms.intent(
                KMP,
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="000270",
                desired_qty=1,
                constraints={
                    "order_type": "LIMIT",
                    "limit_price": float(round_down(last * 0.97)),
                    "cancel_after_sec": 30,
                },
            )
        ).json()
        assert reply["status"] == "ACCEPTED", reply
        await until(lambda: _state_is(oms, reply["order_id"], "CANCELLED"), timeout=60, what="timeout cancel")
        order = await _order(oms, reply["order_id"])
        assert order["reason"] == "TIMEOUT" and order["filled_qty"] == 0
        broker = oms.runtime.exchange.engine.get_order(reply["order_id"])
        assert broker is not None and broker.status.value == "CANCELLED"


async def test_flatten_all_and_eod_cleanup(tmp_path: Path) -> None:
    config = load_config()
    config.risk = config.risk.model_copy(update={"entry_lock_sec": {"KMP": 1, "KPR": 1}})
    async with running_oms(oms_settings(tmp_path), config) as oms:
        for key, strategy, symbol in ((KMP, "KMP", "005930"), (KPR, "KPR", "000660")):
            r = (
                await oms.intent(
                    key,
                    intent_type="ENTER",
                    strategy_id=strategy,
                    symbol=symbol,
                    desired_qty=1,
                    constraints={"order_type": "MARKETABLE_LIMIT"},
                )
            ).json()
            assert r["status"] == "ACCEPTED", r

        async def both_filled() -> bool:
            pos = await oms.get("/api/v1/positions")
            return all(pos.get(s, {}).get("real_qty") for s in ("005930", "000660"))

        await until(both_filled, timeout=60, what="both entries filled")
        last = (await oms.runtime.broker.get_quote("012330")).last
        from broker_core.market_rules import round_down

        resting = (
            await oms.intent(
                KMP,
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="012330",
                desired_qty=1,
                constraints={"order_type": "LIMIT", "limit_price": float(round_down(last * 0.97))},
            )
        ).json()
        assert resting["status"] == "ACCEPTED", resting
        resp = await oms.admin("/api/v1/admin/flatten-all")
        assert resp.status_code == 200 and len(resp.json()["order_ids"]) == 2, resp.text

        async def flat() -> bool:
            pos = await oms.get("/api/v1/positions")
            return not any(p["real_qty"] for p in pos.values())

        await until(flat, timeout=60, what="flatten-all filled")
        assert await _state_is(oms, resting["order_id"], "CANCELLED")
        cleanup = await oms.admin("/api/v1/admin/eod-cleanup")
        assert cleanup.status_code == 200 and cleanup.json()["cancelled"] == 0
        audit = oms.runtime.journal.latest_rows(after_seq=0, table="audit_log").get("audit_log", {})
        assert {r["action"] for r in audit.values()} >= {"flatten_all", "eod_cleanup"}
