"""S8 / swing-ML scenario 3 end to end against the fake Alpaca: the OMS owns an Alpaca account
(``OMS_BROKER=alpaca``, the real alpaca-py adapter) at the fake Alpaca (``broker_core.alpaca.fake``), both
in-process on one virtual New York clock, and swing-ML's decide and risk_check fire at the same instant on
the same holding — one SELL reaches the fake, the other job logs ``DUPLICATE_SUPPRESSED``.

The holding is made as at a real broker: on 2024-11-08 (``DAY_A``) the OMS buys TGT at the fake and the
fill comes back to it; both stop. On 2024-11-26 (``DAY_B``, 12 sessions later) a new fake serves
the same account (its paper account file, as Alpaca keeps an account overnight: cash and the TGT position
carried over) and an OMS on the same data directory (its journal: the allocation with its 2024-11-08
``entry_ts``, which Alpaca does not give) starts against it. So decide's max-hold (10 sessions) is due, and
TGT (−13 % between the two days) is at risk_check's stop — the same setting as the paper-exchange race in
``test_swing_ml_on_the_oms.py``, with the default swing-ML thresholds. The model is trained before the race
(as the weekly retrain leaves it), so decide takes a fraction of a second and the two jobs overlap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker_core.alpaca.fake import FakeAlpaca
from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.markets import us
from broker_core.paper.persistence import PaperStateStore
from broker_core.paper.us_daily import UsDailyFeed
from broker_core.paper.us_data import UsData, UsDataNotFound
from broker_core.paper.us_exchange import UsMatchingEngine, UsPaperExchange
from oms.settings import load_config
from strategies.sdk.client import OmsClient
from strategies.swing_ml.data import BENCHMARK, SECTOR_ETFS
from strategies.swing_ml.risk import exit_key
from tests.integration.swing_ml.test_swing_ml_on_the_oms import (
    DAY_A,
    DAY_B,
    HELD,
    KEY,
    TAKEN,
    UNIVERSE,
    Log,
    intents,
    ny,
    of,
    strategy,
)
from tests.support.oms_server import Oms, oms_settings, running_oms
from tests.support.wait import until

SPEED = 60.0
ACCOUNT_FILE = "alpaca_account.db"
"""The fake Alpaca's account (cash, positions) between the two days, beside the OMS's own data directory."""


@pytest.fixture(scope="module")
def us_data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for this test: {exc}")


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> Log:
    caplog.set_level(logging.INFO, logger="strategy.SWING_ML")
    for name in ("alpaca", "websockets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return lambda: [r.decision for r in caplog.records if hasattr(r, "decision")]


@asynccontextmanager
async def alpaca_account_on(
    day: date, symbols: list[str], tmp_path: Path, us_data: UsData, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeAlpaca, Oms]]:
    """The fake Alpaca replaying ``day``'s session of ``symbols`` from 10:00 New York (its account kept in
    ``tmp_path``), and a real OMS owning that account through the Alpaca adapter (its journal in
    ``tmp_path/oms``), on one virtual clock."""
    clock = VirtualClock(ny(day, 10, 0), speed=SPEED, tz=NEW_YORK)
    feed = UsDailyFeed(us_data, day, symbols)
    exchange = UsPaperExchange(
        feed, clock, UsMatchingEngine(session_date=day), state_store=PaperStateStore(tmp_path / ACCOUNT_FILE)
    )
    async with FakeAlpaca(exchange, data=us_data) as fake:
        env = fake.client_env(ALPACA_REQUEST_TIMEOUT_S="3", ALPACA_ORDER_LOOKUP_WINDOW_S="10", ALPACA_FILL_POLL_S="2")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = oms_settings(tmp_path, oms_broker="alpaca", oms_paper_date=None, oms_strategy_keys=f"SWING_ML:{KEY}")
        async with running_oms(settings, load_config("config/oms.us.yaml"), clock=clock) as oms:
            assert oms.runtime.broker.name == "alpaca", oms.runtime.broker
            yield fake, oms


def sells(fake: FakeAlpaca, symbol: str) -> list[Any]:
    """The sell orders the fake Alpaca placed for ``symbol`` (its own order book)."""
    return [o for o in fake.book.orders.values() if o.symbol == symbol and o.side == "sell"]


async def test_decide_and_risk_check_racing_at_the_fake_alpaca_send_one_sell(
    tmp_path: Path, us_data: UsData, monkeypatch: pytest.MonkeyPatch, decisions: Log
) -> None:
    qty = 20
    async with (
        alpaca_account_on(DAY_A, [HELD], tmp_path, us_data, monkeypatch) as (fake, oms),
        OmsClient(oms.url, KEY, "SWING_ML") as client,
    ):
        quote = await client.quote(HELD)
        limit = us.marketable_limit(quote["ask"], True, band_pct=0.002, ticks=1)
        reply = await client.enter(
            HELD, qty, limit_price=limit, order_type="LIMIT", time_horizon="SWING", idempotency_key=f"s:{HELD}"
        )
        assert reply.ok, reply

        async def bought() -> bool:
            return {s: a.qty for s, a in (await client.allocations()).items() if a.qty > 0} == {HELD: qty}

        await until(bought, timeout=30, what=f"{qty} {HELD} filled at the fake Alpaca on {DAY_A}")
        assert [(o.side, o.qty) for o in fake.book.orders.values()] == [("buy", qty)]

    symbols = list(dict.fromkeys([BENCHMARK, *SECTOR_ETFS, *UNIVERSE]))  # what swing-ML reads and may trade
    async with (
        alpaca_account_on(DAY_B, symbols, tmp_path, us_data, monkeypatch) as (fake, oms),
        OmsClient(oms.url, KEY, "SWING_ML") as client,
    ):
        held = fake.exchange.engine.position(HELD)
        assert held is not None and held.qty == qty, "the Alpaca account did not keep the position overnight"
        assert fake.book.orders == {}  # a new day at the broker: no order of DAY_A in the book
        allocation = (await client.allocations())[HELD]
        assert allocation.qty == qty and allocation.entry_ts is not None
        assert allocation.entry_ts.astimezone(NEW_YORK).date() == DAY_A, allocation  # the OMS's, not Alpaca's

        swing = strategy(oms, client, tmp_path)
        # a model in place (as the weekly retrain leaves it), the day's bars and regime (as the 09:00 job does)
        await swing.retrain_model(oms.runtime.clock.now(), "setup")
        await swing.regime_job()
        outcomes = await asyncio.gather(swing.decide_job(), swing.risk_check_job())
        assert all(o.startswith("ok:") for o in outcomes), outcomes
        fired = [swing.jobs[job].last_run for job in ("decide", "risk_check")]
        assert fired[0] is not None and fired[1] is not None and abs(fired[0] - fired[1]) < timedelta(seconds=1), fired

        key = exit_key(HELD, allocation.entry_ts)
        exits = [i for i in await intents(oms, strategy_id="SWING_ML", symbol=HELD) if i["intent_type"] != "ENTER"]
        assert [(i["intent_type"], i["idempotency_key"]) for i in exits] == [("EXIT", f"SWING_ML:{DAY_B}:{key}")], exits
        assert exits[0]["status"] in TAKEN, exits

        lines = [d for d in decisions() if d["symbol"] == HELD and d.get("job") in ("decide", "risk_check")]
        assert sorted(d["job"] for d in lines) == ["decide", "risk_check"], lines
        sent = [d for d in lines if d.get("sent")]
        suppressed = of(lines, "DUPLICATE_SUPPRESSED")
        assert len(sent) == 1 and len(suppressed) == 1, lines
        reasons = {"decide": "SWING_MAX_HOLD", "risk_check": "SWING_STOP"}  # 12 sessions held; ~151.5 → ~129
        assert [d["rationale_code"] for d in lines] == [reasons[d["job"]] for d in lines], lines
        assert sent[0]["oms_status"] in TAKEN and sent[0]["idempotency_key"] == key, sent

        (sell,) = sells(fake, HELD)  # one SELL reached the broker
        assert sell.qty == qty and sell.type == "limit", sell
        assert fake.book.refused == 0  # ...and no second one was tried and refused there
        orders = [o for o in await oms.get("/api/v1/orders", symbol=HELD) if o["side"] == "SELL"]
        assert len(orders) == 1 and orders[0]["order_id"] == exits[0]["order_id"], (orders, exits)

        async def sold() -> bool:
            return HELD not in {s for s, a in (await client.allocations()).items() if a.qty > 0}

        await until(sold, timeout=30, what=f"{HELD} sold at the fake Alpaca")
        assert fake.exchange.engine.position(HELD) is None  # flat at the broker too
        assert HELD not in {p.symbol for p in await oms.runtime.broker.get_positions() if p.qty}

        assert (await swing.risk_check_job()).startswith("ok:")  # nothing held any more: nothing sent
        assert len(sells(fake, HELD)) == 1
        assert [i["intent_type"] for i in await intents(oms, strategy_id="SWING_ML", symbol=HELD)] == ["EXIT", "ENTER"]
