"""Durability over HTTP: a Postgres outage during a burst of intents loses and doubles nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from oms.settings import StrategyConfig, load_config
from tests.support.oms_server import STRATEGY_KEYS, oms_settings, running_oms
from tests.support.pg import create_database, drop_database, fetch_value, pg_url
from tests.support.proxy import SwitchableProxy
from tests.support.wait import until
from trader.venues import build_venue

SYMBOLS = ["005930", "000660", "000270", "012330", "055550", "066570", "105560", "003490", "096770", "015760"]
STRATEGIES = ["KMP", "KPR", "NULRIMOK", "PCIM"]


def body(i: int) -> dict[str, object]:
    strategy = STRATEGIES[i % len(STRATEGIES)]
    symbol = SYMBOLS[(i // len(STRATEGIES)) % len(SYMBOLS)]
    kind = "ENTER" if (i // 40) % 2 == 0 else "EXIT"
    out: dict[str, object] = {
        "intent_type": kind,
        "strategy_id": strategy,
        "symbol": symbol,
        "idempotency_key": f"burst-{i}",
        "risk_payload": {"rationale_code": "DURABILITY"},
    }
    if kind == "ENTER":
        out.update(desired_qty=1, constraints={"order_type": "MARKETABLE_LIMIT"})
    return out


async def test_postgres_outage_during_500_intents(tmp_path: Path) -> None:
    name, _ = create_database()
    proxy = await SwitchableProxy().start()
    config = load_config()
    config.strategies = {s: StrategyConfig(max_intents_per_min=100_000) for s in STRATEGIES}
    url = pg_url(name, port=proxy.port)
    try:
        async with running_oms(oms_settings(tmp_path, url), config) as oms:
            fills_before = len(oms.runtime.state.seen_executions)
            proxy.go_down()
            accepted: list[str] = []
            for start in range(0, 500, 25):
                replies = await asyncio.gather(
                    *(
                        oms.intent(STRATEGY_KEYS[str(body(i)["strategy_id"])], **body(i))
                        for i in range(start, start + 25)
                    )
                )
                assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
                accepted += [r.json()["intent_id"] for r in replies]
            drainer = oms.runtime.drainer
            await until(lambda: not drainer.db_ok, what="the drainer to notice the outage")
            assert drainer.backlog > 0
            during = await oms.get("/api/v1/intents", limit=5000)
            assert len(during) == 500, "intents accepted during the outage are readable from the journal"
            await until(
                lambda: len(oms.runtime.state.seen_executions) > fills_before,
                timeout=30,
                what="fills while the database is down",
            )
            assert not drainer.db_ok and proxy.up is False, "the fills above happened during the outage"
            fills_during = len(oms.runtime.state.seen_executions) - fills_before
            proxy.go_up()
            await until(lambda: drainer.db_ok and drainer.backlog == 0, timeout=60, what="journal drained")
            expected_orders = len(oms.runtime.state.orders)
        expected_fills = len(oms.runtime.state.seen_executions)
        assert len(set(accepted)) == 500
        assert await fetch_value(url, "SELECT count(*) FROM intents") == 500
        assert await fetch_value(url, "SELECT count(DISTINCT intent_id) FROM intents") == 500
        assert await fetch_value(url, "SELECT count(*) FROM orders") == expected_orders > 0
        assert await fetch_value(url, "SELECT count(*) FROM fills") == expected_fills > 0
        assert await fetch_value(url, "SELECT count(DISTINCT execution_id) FROM fills") == expected_fills
        assert expected_fills >= fills_during > 0, "every fill made during the outage reached Postgres"
        statuses = await fetch_value(url, "SELECT count(*) FROM intents WHERE status IS NULL")
        assert statuses == 0
    finally:
        await proxy.close()
        drop_database(name)


async def test_oms_starts_and_trades_while_its_database_is_down(tmp_path: Path) -> None:
    name, _ = create_database()
    proxy = await SwitchableProxy().start()
    proxy.go_down()
    url = pg_url(name, port=proxy.port)
    from oms.runtime import OmsRuntime
    from tests.support.oms_server import sim_clock

    settings = oms_settings(tmp_path, url)
    runtime = OmsRuntime(settings, load_config(), venue=build_venue, clock=sim_clock())
    try:
        async with running_oms(settings, runtime=runtime, healthy=("ok", "degraded")) as oms:
            health = (await oms.http.get("/health")).json()
            # trading goes on: "ok" for the container health check (strategies start), the database apart
            assert health["status"] == "ok" and health["db"] == "unavailable", health
            assert health["notices"] == ["db:unavailable"] and health["degraded_reasons"] == [], health
            reply = (await oms.intent(STRATEGY_KEYS["KMP"], **body(0))).json()
            assert reply["status"] == "ACCEPTED", reply
            proxy.go_up()
            drainer = oms.runtime.drainer
            await until(lambda: drainer.db_ok and drainer.backlog == 0, timeout=60, what="migrated and drained")
            assert (await oms.http.get("/health")).json()["status"] == "ok"
        assert await fetch_value(url, "SELECT count(*) FROM intents") == 1
        assert await fetch_value(url, "SELECT count(*) FROM orders") == 1
    finally:
        await proxy.close()
        drop_database(name)
