"""Broker storms: the OMS on the real KIS adapter (OMS_BROKER=kis) against the fake KIS, whose gateway is
switched into a storm over HTTP (``POST /_fake/faults``) while entries arrive.

Storms, each in its own OMS: every REST reply replaced by a bare HTTP 500, or by KIS's over-limit reply
(``EGW00201``, HTTP 500, specs/kis.md §5) — on every REST path, or on order submits only (the inquiries of
reconciliation still answer). During a burst the circuit breaker must open (``/health`` kis_circuit_breaker
OPEN; further entries DEFERRED ``BROKER_CIRCUIT_OPEN``, an exit still tried), move to HALF_OPEN after its
timeout, and close after the storm (a HALF_OPEN trial, then CLOSED). The deferred entries sent again after
their cooldown are decided anew and placed; nothing is placed twice: every KIS order at the fake belongs to
exactly one OMS order and the count of orders at the fake equals the count of distinct order ids the OMS says
reached the broker. Last, refused entries arriving one at a time (a trickle, not a burst) must open it too.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_core.kis.fake import FakeKis
from broker_core.market_rules import up
from oms.settings import load_config
from tests.integration.kis.conftest import fake_kis, make_exchange
from tests.support.oms_server import STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until

SYMBOLS = [
    "005930", "000660", "035720", "005380", "051910", "006400", "035420", "068270", "105560", "055550",
    "012330", "000270", "066570", "003490", "096770", "015760", "017670", "030200", "032830", "086790",
    "009150", "010950", "011170", "018260", "024110", "028260", "033780", "034730",
]  # fmt: skip
HELD = "005930"
"""Bought before the storm, so an exit can be tried while the breaker is open."""
STRATEGIES = ["KMP", "KPR", "NULRIMOK", "PCIM"]
WAVE = 3
MAX_WAVES = 6
ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
SCOPES: dict[str, dict[str, Any]] = {"all": {}, "orders": {"paths": [ORDER_PATH]}}
"""Where the storm blows: every REST path (reconciliation fails too), or only order submits (the inquiries of
reconciliation keep succeeding in between — the case where a success elsewhere could hide the storm)."""


class BreakerWatch:
    """Polls ``/health`` and keeps every change of ``kis_circuit_breaker`` (with the wall time)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.changes: list[tuple[float, str]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return self.changes[-1][1] if self.changes else ""

    def seen(self, *states: str) -> bool:
        """Whether ``states`` were seen in this order (not necessarily adjacent)."""
        i = 0
        for _, s in self.changes:
            if i < len(states) and s == states[i]:
                i += 1
        return i == len(states)

    async def _run(self) -> None:
        while True:
            try:
                state = (await self.http.get("/health")).json()["kis_circuit_breaker"]
            except (httpx.HTTPError, ValueError, KeyError):
                state = ""
            if state and state != self.state:
                self.changes.append((time.monotonic(), state))
            await asyncio.sleep(0.01)

    def start(self) -> BreakerWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def entry(i: int, symbol: str, price: float) -> tuple[str, dict[str, Any]]:
    strategy = STRATEGIES[i % len(STRATEGIES)]
    body = {
        "intent_type": "ENTER",
        "strategy_id": strategy,
        "symbol": symbol,
        "desired_qty": 2 + i % 3,
        "constraints": {"order_type": "LIMIT", "limit_price": float(up(price, 3))},
        "idempotency_key": f"storm-{i}",
    }
    return STRATEGY_KEYS[strategy], body


async def _orders(oms: Oms) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = await oms.get("/api/v1/orders", limit=5000)
    return orders


@asynccontextmanager
async def kis_oms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeKis, Oms, httpx.AsyncClient, BreakerWatch]]:
    """The fake KIS (its exchange running on a clock at 30× speed), an OMS on the KIS adapter pointed at it
    (reconciliation every 2-5 s, breaker: 3 failures, 30 s; safe mode out of the way), an HTTP client for the
    fake's fault control and a watch on the breaker in /health (CLOSED at start)."""
    clock = sim_clock(9, 30, speed=30)
    exchange = make_exchange(clock, SYMBOLS, participation=0.05)
    async with fake_kis(clock=clock, exchange=exchange, run_exchange=True) as fake:
        for key, value in fake.client_env().items():
            monkeypatch.setenv(key, value)
        config = load_config()
        config.reconcile = config.reconcile.model_copy(
            update={
                "min_interval_s": 2,
                "max_interval_s": 5,
                "breaker_failure_threshold": 3,
                "breaker_reset_s": 30,
                "safe_mode_after_failed_cycles": 1000,  # these tests are about the breaker, not safe mode
            }
        )
        settings = oms_settings(tmp_path, oms_broker="kis")
        async with (
            running_oms(settings, config, clock=clock) as oms,
            httpx.AsyncClient(base_url=fake.rest_url, timeout=10) as control,
        ):
            watch = BreakerWatch(oms.http).start()
            try:
                await until(lambda: watch.state == "CLOSED", timeout=10, what="breaker CLOSED at start")
                yield fake, oms, control, watch
            finally:
                await watch.stop()


@pytest.mark.parametrize("scope", list(SCOPES))
@pytest.mark.parametrize("kind", ["http_500", "rate_limit"])
async def test_broker_storm_opens_and_closes_the_breaker_without_duplicate_orders(
    kind: str, scope: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried: a storm of ``kind`` (HTTP 500 without a KIS body, or EGW00201 as KIS sends it) on every KIS REST
    path or on order submits only (``scope``), switched on over HTTP while entries arrive in waves of 3 (one
    symbol each, 4 strategies, LIMIT buys; at most 6 waves), plus an exit of a position bought before the storm;
    the storm is held until /health shows HALF_OPEN, then cleared.
    Asserted: the breaker opens during the storm (OPEN in /health; the wave after it DEFERRED
    BROKER_CIRCUIT_OPEN with cooldown_until), the exit is still tried (never BROKER_CIRCUIT_OPEN), /health goes
    CLOSED → OPEN → HALF_OPEN → CLOSED, every submit that met the storm is settled (none left in flight), the
    deferred entries sent again after their cooldown are placed, a duplicate of a decided key places nothing,
    and 0 orders are doubled: KIS order numbers at the fake are unique, each belongs to exactly one OMS order,
    and the count of orders at the fake == the count of distinct OMS order ids that reached the broker."""
    wall0 = time.monotonic()
    async with kis_oms(tmp_path, monkeypatch) as (fake, oms, control, watch):
        broker = oms.runtime.broker
        last = {s: (await broker.get_quote(s)).last for s in SYMBOLS}
        assert all(last.values()), last

        # a position to exit while the breaker is open
        held = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="ENTER",
                strategy_id="KMP",
                symbol=HELD,
                desired_qty=5,
                constraints={"order_type": "LIMIT", "limit_price": float(up(last[HELD], 5))},
                idempotency_key="storm-held",
            )
        ).json()
        assert held["status"] == "ACCEPTED", held

        async def held_filled() -> bool:
            return (await oms.get(f"/api/v1/orders/{held['order_id']}"))["state"] == "FILLED"

        await until(held_filled, timeout=60, what="the pre-storm buy filled")

        # -- the storm, during a burst of entries in waves
        bad = await control.post("/_fake/faults", json={"kind": "bogus", "until_cleared": True})
        assert bad.status_code == 422, bad.text
        on = await control.post("/_fake/faults", json={"kind": kind, "until_cleared": True, **SCOPES[scope]})
        assert on.status_code == 200 and on.json()["active"]["kind"] == kind, on.text
        storm_started = time.monotonic()
        sent: dict[str, tuple[str, dict[str, Any]]] = {}
        replies: dict[str, dict[str, Any]] = {}
        symbols = iter(SYMBOLS[1:])
        i = 0

        async def send_wave() -> list[dict[str, Any]]:
            nonlocal i
            batch = []
            for _ in range(WAVE):
                symbol = next(symbols)
                key, body = entry(i, symbol, last[symbol])
                sent[body["idempotency_key"]] = (key, body)
                batch.append((key, body))
                i += 1
            resps = await asyncio.gather(*(oms.intent(k, **b) for k, b in batch))
            out = []
            for (_, b), r in zip(batch, resps, strict=True):
                assert r.status_code == 200, r.text
                replies[b["idempotency_key"]] = r.json()
                out.append(r.json())
            return out

        waves_before_open = 0
        while watch.state != "OPEN":
            assert waves_before_open < MAX_WAVES, (
                f"the breaker never opened in a {kind} storm on {scope} paths: {len(replies)} entries "
                f"{Counter(r['status'] for r in replies.values())}, breaker {watch.changes}"
            )
            await send_wave()
            waves_before_open += 1
            # the failures of the wave (and of reconciliation cycles) open it, or the next wave goes
            deadline = time.monotonic() + 1.0
            while watch.state != "OPEN" and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        opened_after = time.monotonic() - storm_started
        assert oms.runtime.breaker.state.value == "OPEN"
        open_wave = await send_wave()
        assert all(r["status"] == "DEFERRED" for r in open_wave), open_wave
        assert all(r["cooldown_until"] for r in open_wave), open_wave
        circuit_deferred = [k for k, r in replies.items() if r in open_wave]
        for k in circuit_deferred:
            intent = await oms.get(f"/api/v1/intents/{replies[k]['intent_id']}")
            assert intent["reason_code"] == "BROKER_CIRCUIT_OPEN", intent
        exit_reply = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="EXIT",
                strategy_id="KMP",
                symbol=HELD,
                idempotency_key="storm-exit",
            )
        ).json()
        exit_intent = await oms.get(f"/api/v1/intents/{exit_reply['intent_id']}")
        assert exit_intent["reason_code"] != "BROKER_CIRCUIT_OPEN", exit_intent

        first: Counter[str] = Counter()
        for r in replies.values():
            decided_as = await oms.get(f"/api/v1/intents/{r['intent_id']}")
            first[f"{decided_as['status']} {decided_as['reason_code'] or ''}".strip()] += 1
        await until(lambda: watch.seen("OPEN", "HALF_OPEN"), timeout=30, what="HALF_OPEN during the storm")
        off = await control.post("/_fake/faults", json={"kind": "none"})
        assert off.status_code == 200 and off.json()["active"] is None, off.text
        storm_s = time.monotonic() - storm_started
        injected = fake.faults.injected[kind]
        assert injected > 0
        if scope == "orders":  # opened by refused orders alone: it stays HALF_OPEN until an order goes through
            assert watch.state != "CLOSED", [s for _, s in watch.changes]
        # (on every path, a read that succeeds after the storm may close it first, if a read failed in the storm)

        # every submit that met the storm is settled: nothing left in flight
        async def settled() -> bool:
            return not any(o["state"] == "PENDING_SUBMIT" for o in await _orders(oms))

        await until(settled, timeout=60, what="no order left in flight after the storm")

        # the deferred entries, sent again after their cooldown, are decided anew and placed
        deferred = {k: r for k, r in replies.items() if r["status"] == "DEFERRED"}
        latest = max(datetime.fromisoformat(r["cooldown_until"]) for r in deferred.values())
        await until(lambda: oms.runtime.clock.now() >= latest, timeout=30, what="the deferrals' cooldown")
        # sent together they may meet the gateway's own rate limit (2/s on paper) — deferred again
        # BROKER_RATE_LIMITED, as a strategy would see it — or, on a loaded machine, a gateway reply later than
        # the adapter's deadline (BROKER_UNAVAILABLE); either way they are sent once more after that cooldown
        pending = dict(deferred)
        for _ in range(5):
            again = await asyncio.gather(*(oms.intent(sent[k][0], **sent[k][1]) for k in pending))
            limited = {}
            for k, resp in zip(pending, again, strict=True):
                assert resp.status_code == 200, resp.text
                body = resp.json()
                assert body["intent_id"] == deferred[k]["intent_id"], (k, body)
                replies[k] = body
                if body["status"] == "DEFERRED":
                    intent = await oms.get(f"/api/v1/intents/{body['intent_id']}")
                    assert intent["reason_code"] in ("BROKER_RATE_LIMITED", "BROKER_UNAVAILABLE"), (k, intent)
                    limited[k] = body
                else:
                    assert body["status"] in ("ACCEPTED", "EXECUTED"), (k, body)
            if not limited:
                break
            pending = limited
            until_ = max(datetime.fromisoformat(r["cooldown_until"]) for r in limited.values())
            await until(lambda t=until_: oms.runtime.clock.now() >= t, timeout=30, what="the rate-limit cooldown")
        assert all(replies[k]["status"] in ("ACCEPTED", "EXECUTED") for k in deferred), replies
        await until(lambda: watch.seen("CLOSED", "OPEN", "HALF_OPEN", "CLOSED"), timeout=60, what="breaker CLOSED")
        closed_after = watch.changes[-1][0] - storm_started
        # a duplicate of a decided key places nothing
        decided = {k: r for k, r in replies.items() if r["status"] in ("ACCEPTED", "EXECUTED")}
        dups = await asyncio.gather(*(oms.intent(sent[k][0], **sent[k][1]) for k in decided))
        for k, resp in zip(decided, dups, strict=True):
            assert resp.json()["intent_id"] == decided[k]["intent_id"]
            assert resp.json()["order_id"] == decided[k]["order_id"], (k, resp.json(), decided[k])

        await until(settled, timeout=60, what="re-sent entries at the broker")
        orders = await _orders(oms)
        at_fake = [o for o in fake.state.orders.values() if o.kind == "new"]
        by_broker_id = Counter(o["broker_order_id"] for o in orders if o["broker_order_id"])
        odnos = [o.odno for o in at_fake]
        assert len(odnos) == len(set(odnos)), "KIS order numbers are unique"
        assert all(n == 1 for n in by_broker_id.values()), f"a KIS order shared by OMS orders: {by_broker_id}"
        assert set(by_broker_id) == set(odnos), (sorted(by_broker_id), sorted(odnos))
        reached = {o["order_id"] for o in orders if o["broker_order_id"]}
        not_at_broker = {o["order_id"] for o in orders if o["reason"] == "NOT_AT_BROKER"}
        accepted_ids = {r["order_id"] for r in replies.values() if r["status"] in ("ACCEPTED", "EXECUTED")}
        accepted_ids |= {held["order_id"]}
        if exit_reply["status"] in ("ACCEPTED", "EXECUTED"):
            accepted_ids.add(exit_reply["order_id"])
        assert len(at_fake) == len(reached) == len(accepted_ids - not_at_broker), (
            len(at_fake),
            len(reached),
            sorted(accepted_ids - not_at_broker),
        )
        per_intent = Counter(o["intent_id"] for o in orders if o["broker_order_id"])
        assert all(n == 1 for n in per_intent.values()), f"an intent with two orders at KIS: {per_intent}"
        health = (await oms.http.get("/health")).json()
        assert health["kis_circuit_breaker"] == "CLOSED", health

        refused_posts = len([r for r in fake.request_log if r.path == ORDER_PATH and r.status >= 500])
        refused_submits = len([o for o in orders if o["reason"] in ("BROKER_RATE_LIMITED", "NOT_AT_BROKER")])
        print(
            f"\n[{kind} storm on {scope} paths] order POSTs refused={refused_posts} for {refused_submits} "
            f"refused submits; entries sent={len(sent)} (+1 pre-storm buy, +1 exit while OPEN) "
            f"first decisions={dict(first)} exit={exit_reply['status']}/{exit_intent['reason_code']}; "
            f"storm {storm_s:.2f}s wall, {injected} replies replaced; breaker OPEN after {opened_after:.2f}s "
            f"({waves_before_open} wave(s)), CLOSED {closed_after:.2f}s after the storm began; "
            f"transitions={[s for _, s in watch.changes]}; "
            f"orders at the fake={len(at_fake)} OMS orders at the broker={len(reached)} "
            f"not at broker (settled)={len(not_at_broker)} duplicates=0; wall {time.monotonic() - wall0:.1f}s"
        )


async def test_a_trickle_of_refused_entries_opens_the_breaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tried: KIS refuses every order submit with EGW00201 (inquiries still answer), and entries come one at a
    time — each after the previous reply and one more reconciliation cycle, as from a strategy sending an entry
    every few seconds — up to 6. Asserted: 3 submits refused in a row open the breaker although the reads in
    between succeed; after that only one trial submit per HALF_OPEN reaches the broker (the successful reads do
    not close a breaker that refused orders opened); 0 orders at the fake."""
    wall0 = time.monotonic()
    async with kis_oms(tmp_path, monkeypatch) as (fake, oms, control, watch):
        last = {s: (await oms.runtime.broker.get_quote(s)).last for s in SYMBOLS[:8]}
        on = await control.post("/_fake/faults", json={"kind": "rate_limit", "until_cleared": True, **SCOPES["orders"]})
        assert on.status_code == 200, on.text
        reconciler = oms.runtime.reconciler
        assert reconciler is not None
        refused: list[str] = []
        for i, symbol in enumerate(list(last)[:6]):
            if watch.state == "OPEN":
                break
            key, body = entry(i, symbol, last[symbol])
            reply = (await oms.intent(key, **body)).json()
            reason = (await oms.get(f"/api/v1/intents/{reply['intent_id']}"))["reason_code"]
            assert reply["status"] == "DEFERRED", reply
            refused.append(reason)
            cycles = reconciler.cycles
            await until(lambda c=cycles: reconciler.cycles > c, timeout=10, what="one more reconciliation cycle")
        opened = watch.seen("CLOSED", "OPEN")
        print(
            f"\n[rate_limit trickle on order submits] entries={len(refused)} decisions={refused} "
            f"breaker={[s for _, s in watch.changes]} reconciliation cycles={reconciler.cycles} "
            f"orders at the fake={len([o for o in fake.state.orders.values() if o.kind == 'new'])}; "
            f"wall {time.monotonic() - wall0:.1f}s"
        )
        assert opened, (
            f"{len(refused)} entries refused in a row by the broker ({refused}) and the breaker never opened: "
            "each reconciliation cycle in between succeeded and reset the consecutive-failure count"
        )
        opens = [s for _, s in watch.changes].count("OPEN")
        assert "CLOSED" not in [s for _, s in watch.changes][1:], [s for _, s in watch.changes]
        assert refused.count("BROKER_UNAVAILABLE") <= 2 + opens, (refused, [s for _, s in watch.changes])
        assert not [o for o in fake.state.orders.values() if o.kind == "new"]
