"""The OMS owning a US account: on the US paper exchange (``OMS_BROKER=paper OMS_MARKET=us``) and on an Alpaca
account (``OMS_BROKER=alpaca``, the real alpaca-py against the fake Alpaca), over HTTP.

Both replay the derived session of 2024-11-26 from 10:00 New York at 60×. Checked: prices on the US cent grid
(not whole won), ``/api/v1/clock`` in America/New_York with the US phases, the allocation's ``entry_ts`` kept
by the OMS (Alpaca gives none), fills into the ledger equal to the broker's positions, intents refused once
the regular session closed, and the bad-input replies naming the field with nothing sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from broker_core.alpaca.fake import FakeAlpaca
from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.markets.venue_market import US_MARKET
from oms.settings import OmsConfig, load_config
from tests.integration.alpaca.conftest import SESSION, SYMBOLS, engine_orders, ny, posts
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms
from tests.support.wait import until

KMP = STRATEGY_KEYS["KMP"]


def us_config() -> OmsConfig:
    config = load_config("config/oms.us.yaml")
    return config.model_copy(update={"paper": config.paper.model_copy(update={"symbols": SYMBOLS})})


@pytest.fixture
async def paper_oms(tmp_path: Path) -> AsyncIterator[Oms]:
    settings = oms_settings(tmp_path, oms_market="us", oms_paper_date=str(SESSION))
    clock = VirtualClock(ny(10, 0), speed=60.0, tz=NEW_YORK)
    async with running_oms(settings, us_config(), clock=clock) as oms:
        yield oms


@pytest.fixture
async def alpaca_oms(
    tmp_path: Path, fake: FakeAlpaca, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Oms]:
    env = fake.client_env(ALPACA_REQUEST_TIMEOUT_S="3", ALPACA_ORDER_LOOKUP_WINDOW_S="10", ALPACA_FILL_POLL_S="2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = oms_settings(tmp_path, oms_broker="alpaca", oms_paper_date=None)
    async with running_oms(settings, us_config(), clock=clock) as oms:
        yield oms


async def _position(oms: Oms, symbol: str) -> dict[str, Any]:
    positions: dict[str, Any] = await oms.get("/api/v1/positions")
    return positions.get(symbol) or {}


async def _enter_and_exit(oms: Oms, symbol: str, qty: int) -> dict[str, Any]:
    reply = (
        await oms.intent(
            KMP,
            intent_type="ENTER",
            strategy_id="KMP",
            symbol=symbol,
            desired_qty=qty,
            idempotency_key=f"us-{symbol}-enter",
        )
    ).json()
    assert reply["status"] == "ACCEPTED", reply
    order = await oms.get(f"/api/v1/orders/{reply['order_id']}")
    limit = float(order["limit_price"])
    assert US_MARKET.on_tick(limit) and limit == round(limit, 2), f"not a US cent price: {order}"

    async def held() -> bool:
        return int((await _position(oms, symbol)).get("real_qty", 0)) == qty

    await until(held, timeout=60, what=f"{qty} {symbol} filled into the ledger")
    allocation = (await oms.get("/api/v1/allocations/KMP"))[symbol]
    entry_ts = datetime.fromisoformat(allocation["entry_ts"])
    assert entry_ts.astimezone(NEW_YORK).date() == SESSION, allocation
    again = (
        await oms.intent(
            KMP,
            intent_type="ENTER",
            strategy_id="KMP",
            symbol=symbol,
            desired_qty=qty,
            idempotency_key=f"us-{symbol}-enter",
        )
    ).json()
    assert again["order_id"] == reply["order_id"], (again, reply)
    out = (
        await oms.intent(KMP, intent_type="EXIT", strategy_id="KMP", symbol=symbol, idempotency_key=f"us-{symbol}-exit")
    ).json()
    assert out["status"] == "ACCEPTED", out

    async def flat() -> bool:
        return int((await _position(oms, symbol)).get("real_qty", 0)) == 0

    await until(flat, timeout=60, what=f"{symbol} exited")
    return allocation


async def _clock_is_new_york(oms: Oms) -> None:
    clock = await oms.get("/api/v1/clock")
    assert clock["market"] == "us" and clock["currency"] == "USD", clock
    assert clock["session_phase"] == "REGULAR", clock
    now = datetime.fromisoformat(clock["now"])
    assert now.utcoffset() is not None and now.utcoffset().total_seconds() == -5 * 3600, clock  # EST in November
    assert datetime.fromisoformat(clock["next_close"]).astimezone(NEW_YORK).hour == 16, clock


async def _bad_input_names_the_field(oms: Oms, sent_before: int, sent_now: Any) -> None:
    """Malformed quantities are 422 naming ``desired_qty``, an off-tick limit (sub-penny) 422 naming
    ``constraints.limit_price``, a symbol the broker does not list 422 naming ``symbol``; nothing is decided
    and nothing reaches the broker."""
    for i, qty in enumerate((0, 1.5, -2)):
        resp = await oms.intent(
            KMP, intent_type="ENTER", strategy_id="KMP", symbol="AAPL", desired_qty=qty, idempotency_key=f"bad-{i}"
        )
        assert resp.status_code == 422 and "desired_qty" in resp.text, (qty, resp.status_code, resp.text)
    off_tick = await oms.intent(
        KMP,
        intent_type="ENTER",
        strategy_id="KMP",
        symbol="AAPL",
        desired_qty=1,
        constraints={"order_type": "LIMIT", "limit_price": 187.234},
        idempotency_key="bad-tick",
    )
    assert off_tick.status_code == 422 and "constraints.limit_price" in off_tick.text, off_tick.text
    unknown = await oms.intent(KMP, intent_type="ENTER", strategy_id="KMP", symbol="ZZZZ", desired_qty=1)
    assert unknown.status_code == 422 and "body.symbol" in unknown.text, unknown.text
    assert sent_now() == sent_before
    assert await oms.get("/api/v1/intents") == [], "bad input never reaches the journal"


async def test_us_paper_account_trades_on_the_cent_grid_in_new_york_time(paper_oms: Oms) -> None:
    oms = paper_oms
    assert oms.runtime.market.code == "us" and oms.runtime.exchange is not None
    await _clock_is_new_york(oms)
    engine = oms.runtime.exchange.engine
    await _bad_input_names_the_field(oms, len(engine.orders()), lambda: len(engine.orders()))
    await _enter_and_exit(oms, "AAPL", 5)
    broker = {p.symbol: p.qty for p in await oms.runtime.broker.get_positions() if p.qty}
    ledger = {s: p["real_qty"] for s, p in (await oms.get("/api/v1/positions")).items() if p["real_qty"]}
    assert broker == ledger == {}


async def test_alpaca_account_through_the_oms(alpaca_oms: Oms, fake: FakeAlpaca, clock: VirtualClock) -> None:
    oms = alpaca_oms
    assert oms.runtime.broker.name == "alpaca" and oms.runtime.market.code == "us"
    await _clock_is_new_york(oms)
    await _bad_input_names_the_field(oms, len(posts(fake)), lambda: len(posts(fake)))
    await _enter_and_exit(oms, "MSFT", 3)
    assert len(posts(fake)) == 2, posts(fake)
    placed = engine_orders(fake)
    assert len(placed) == 2 and len({o.client_order_id for o in placed}) == 2, placed
    await oms.runtime.reconciler.run_cycle()
    health = await oms.get("/health")
    assert health["recon_status"] == "OK", health
    assert {p.symbol: p.qty for p in await oms.runtime.broker.get_positions() if p.qty} == {}


async def test_us_account_refuses_orders_after_the_close(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path, oms_market="us", oms_paper_date=str(SESSION))
    clock = VirtualClock(ny(15, 59, 50), speed=60.0, tz=NEW_YORK)
    async with running_oms(settings, us_config(), clock=clock) as oms:
        await until(lambda: clock.now() >= ny(16, 0, 30), timeout=60, what="the New York close")
        reply = (await oms.intent(KMP, intent_type="ENTER", strategy_id="KMP", symbol="SPY", desired_qty=1)).json()
        assert reply["status"] == "REJECTED" and reply["reason_code"] == "MARKET_CLOSED", reply
        clock_reply = await oms.get("/api/v1/clock")
        assert clock_reply["session_phase"] == "AFTER_HOURS", clock_reply
