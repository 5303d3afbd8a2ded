"""Reconciler: one cycle of broker orders, fills, timeouts, positions and account against the OMS.

Real collaborators (see ``_harness.py``). Position drift is asserted only as far as every variant of
the drift rule agrees: the drift is logged to ``recon_log``, the symbol is frozen after at most a few
consecutive sightings, and matching positions never freeze.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from broker_core.contract.reasons import ReasonCode
from broker_core.models import OrderStatus, Tick
from oms.core.circuit import BreakerState
from oms.core.types import UNKNOWN_STRATEGY, IntentType, OrderState, OrderType, ReconRecord
from tests.unit.oms._harness import (
    NOW,
    OTHER,
    SYM,
    LostReplyBroker,
    LostRequestBroker,
    Oms,
    OutageBroker,
    SilentPushBroker,
    oms,
    settle,
)

FEW_CYCLES = 5
"""A confirmed drift freezes its symbol within this many consecutive cycles."""


async def cycles_until(h: Oms, condition: Callable[[], bool], limit: int = FEW_CYCLES) -> int:
    for n in range(1, limit + 1):
        await h.reconciler.run_cycle()
        if condition():
            return n
    raise AssertionError(f"not reached within {limit} cycles")


def recon(h: Oms, kind: str) -> list[ReconRecord]:
    return [r for r in h.journaled("recon_log") if r.kind == kind]


# -- orders ------------------------------------------------------------------------------------------


async def test_a_cycle_settles_an_in_flight_order_from_the_broker(tmp_path: Path) -> None:
    async with oms(tmp_path, LostReplyBroker) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        assert order.state is OrderState.PENDING_SUBMIT
        await h.reconciler.run_cycle()
        assert order.state is OrderState.SUBMITTED and order.broker_order_id
        assert h.broker_as(LostReplyBroker).submits == 1 and len(h.exchange.engine.orders()) == 1
        assert h.state.recon_status == "OK"


async def test_a_cycle_rejects_an_in_flight_order_the_broker_never_got(tmp_path: Path) -> None:
    async with oms(tmp_path, LostRequestBroker) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        await h.reconciler.run_cycle()
        assert order.state is OrderState.REJECTED and order.reason == ReasonCode.NOT_AT_BROKER
        assert h.broker_as(LostRequestBroker).submits == 1 and not h.state.working


async def test_a_cycle_settles_a_working_order_that_ended_at_the_broker(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = h.new_order(limit=9_900)
        await h.execution.submit(order)
        h.exchange.cancel(order.order_id)  # cancelled on the broker's side (HTS), notice never read
        await h.reconciler.run_cycle()
        assert order.state is OrderState.CANCELLED and order.order_id not in h.state.working


async def test_fills_the_push_stream_missed_are_polled_and_applied_once(tmp_path: Path) -> None:
    later = [Tick(SYM, NOW + timedelta(seconds=5), 10_000, 400)]
    async with oms(tmp_path, SilentPushBroker, ticks=later) as h:
        reader = asyncio.create_task(h.execution.run_updates())
        try:
            order = await h.enter("KMP", SYM, 10, key="e1")
            await h.exchange.run()  # the print fills the order; no execution notice arrives
            await asyncio.sleep(0)
            assert order.state is OrderState.SUBMITTED and h.held(SYM, "KMP") == 0
            drift, activity = await h.reconciler.run_cycle()
            assert order.state is OrderState.FILLED and order.filled_qty == 10
            assert h.held(SYM, "KMP") == 10 and h.real_qty(SYM) == 10
            assert (drift, activity) == (False, True)
            assert len(h.journaled("fills")) == 1
            assert await h.reconciler.run_cycle() == (False, False)
            assert len(h.journaled("fills")) == 1 and h.held(SYM, "KMP") == 10
            assert h.state.recon_status == "OK" and not h.state.frozen_symbols
        finally:
            reader.cancel()


async def test_cancel_after_timeout_cancels_a_working_order(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = await h.enter(
            "KMP", SYM, 10, key="e1", order_type=OrderType.LIMIT, limit_price=9_600, cancel_after_sec=30
        )
        assert order.state is OrderState.SUBMITTED and order.cancel_after_ts == NOW + timedelta(seconds=30)
        h.clock.advance(29)
        await h.reconciler.run_cycle()
        assert order.state is OrderState.SUBMITTED
        h.clock.advance(1)
        await h.reconciler.run_cycle()
        assert order.state is OrderState.CANCELLED and order.reason == "TIMEOUT"
        assert h.at_broker(order.order_id).status is OrderStatus.CANCELLED


async def test_cancel_after_timeout_keeps_the_part_already_filled(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = await h.enter(
            "KMP", SYM, 10, key="e1", order_type=OrderType.LIMIT, limit_price=10_000, cancel_after_sec=30
        )
        h.push(h.trade(10_000, qty=20))  # 5 of 10
        assert order.state is OrderState.PARTIALLY_FILLED
        h.clock.advance(30)
        await h.reconciler.run_cycle()
        assert order.state is OrderState.CANCELLED and order.filled_qty == 5
        assert h.held(SYM, "KMP") == 5 and h.state.recon_status == "OK"


async def test_cancel_after_timeout_cancels_a_held_stop_without_the_broker(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = await h.enter(
            "KMP",
            SYM,
            10,
            key="e1",
            order_type=OrderType.STOP_LIMIT,
            stop_price=10_300,
            limit_price=10_400,
            cancel_after_sec=30,
        )
        assert order.state is OrderState.HELD
        h.clock.advance(31)
        await h.reconciler.run_cycle()
        assert order.state is OrderState.CANCELLED and order.reason == "TIMEOUT"
        assert h.exchange.engine.orders() == []


async def test_a_held_stop_triggers_from_the_cycles_quote_when_its_tick_was_missed(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        order = await h.enter(
            "KMP", SYM, 10, key="e1", order_type=OrderType.STOP_LIMIT, stop_price=10_100, limit_price=10_200
        )
        h.trade(10_150, qty=10)  # the print happened; the OMS's tick feed did not deliver it
        assert order.state is OrderState.HELD
        await h.reconciler.run_cycle()
        await h.execution.drain_tasks()
        assert order.state is OrderState.SUBMITTED and order.reason == ReasonCode.STOP_TRIGGERED
        assert [o.client_order_id for o in h.exchange.engine.orders()] == [order.order_id]


# -- failures, breaker, safe mode ---------------------------------------------------------------------


async def test_consecutive_failed_cycles_open_the_breaker_and_are_logged(tmp_path: Path) -> None:
    async with oms(tmp_path, OutageBroker, breaker_failures=3) as h:
        broker = h.broker_as(OutageBroker)
        broker.down = True
        for n in range(1, 4):
            assert await h.reconciler.run_cycle() == (False, False)
            assert h.state.recon_status == "FAIL"
            assert h.breaker.state is (BreakerState.OPEN if n == 3 else BreakerState.CLOSED)
        assert len(recon(h, ReasonCode.CYCLE_FAILED)) == 3
        calls = broker.calls
        await h.reconciler.run_cycle()  # the open breaker keeps the cycle off the broker
        assert broker.calls == calls and h.state.recon_status == "FAIL"


@pytest.mark.parametrize("after", [1, 2, 3])
async def test_safe_mode_switches_on_after_the_configured_number_of_failed_cycles(tmp_path: Path, after: int) -> None:
    async with oms(tmp_path, OutageBroker, breaker_failures=3, safe_mode_after=after) as h:
        h.broker_as(OutageBroker).down = True
        for _ in range(after - 1):
            await h.reconciler.run_cycle()
        assert not h.state.flags.safe_mode and not h.audit("safe_mode_on")
        await h.reconciler.run_cycle()
        assert h.state.flags.safe_mode
        (audit,) = h.audit("safe_mode_on")
        assert audit.actor == "system" and audit.payload["reason"] == ReasonCode.RECON_FAILURES
        assert h.journaled("oms_state")[-1].safe_mode is True
        entry = await h.intents.handle(h.intent(qty=1, key="after-safe-mode"))
        assert entry.order_id is None  # entries blocked, whatever the exact reply


async def test_safe_mode_after_more_failures_than_the_breaker_threshold_comes_through_its_trials(
    tmp_path: Path,
) -> None:
    async with oms(tmp_path, OutageBroker, breaker_failures=3, breaker_reset_s=30, safe_mode_after=5) as h:
        broker = h.broker_as(OutageBroker)
        broker.down = True
        for _ in range(20):  # the reconciler loop: a cycle, then the next one a while later
            await h.reconciler.run_cycle()
            if h.state.flags.safe_mode:
                break
            h.clock.advance(30)
        assert h.state.flags.safe_mode
        assert broker.calls == 5  # five cycles reached the broker and failed; the rest were held off
        assert len(h.audit("safe_mode_on")) == 1


async def test_a_successful_cycle_closes_the_breaker_and_sets_recon_ok(tmp_path: Path) -> None:
    async with oms(tmp_path, OutageBroker, breaker_failures=3, breaker_reset_s=30) as h:
        broker = h.broker_as(OutageBroker)
        broker.down = True
        for _ in range(3):
            await h.reconciler.run_cycle()
        assert h.breaker.state is BreakerState.OPEN and h.state.recon_status == "FAIL"
        broker.down = False
        h.clock.advance(30)
        await h.reconciler.run_cycle()
        assert h.breaker.state is BreakerState.CLOSED
        assert h.state.recon_status == "OK" and h.reconciler.failed_cycles == 0
        assert h.reconciler.last_cycle_at == h.clock.now()


async def test_a_successful_cycle_refreshes_the_account(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="e1")
        await h.reconciler.run_cycle()
        account = h.exchange.engine.account()
        assert h.state.account == account and h.state.cash_estimate == account.cash
        assert h.state.daily_portfolio is not None and h.state.daily_portfolio.start_equity == account.equity
        assert h.journaled("risk_daily_portfolio")[-1].start_equity == account.equity


async def test_run_beats_after_every_cycle_and_waits_on_the_clock(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        beats: list[object] = []
        loop = asyncio.create_task(h.reconciler.run(beat=lambda: beats.append(h.clock.now())))
        try:
            await settle(lambda: len(beats) == 1)
            for _ in range(10):
                await asyncio.sleep(0)
            assert len(beats) == 1  # the next cycle waits for time to pass
            h.clock.advance(h.reconciler.interval.max_s)
            await settle(lambda: len(beats) == 2)
            assert h.reconciler.cycles == 2
        finally:
            loop.cancel()


# -- positions ---------------------------------------------------------------------------------------


async def test_matching_positions_never_freeze(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="e1")
        await h.hold("KPR", OTHER, 3, key="e2")
        for _ in range(FEW_CYCLES + 2):
            assert (await h.reconciler.run_cycle())[0] is False
        assert not h.state.frozen_symbols and h.state.recon_status == "OK"
        assert not [r for r in h.journaled("recon_log") if r.kind.startswith("POSITION_")]
        assert (h.held(SYM, "KMP"), h.held(OTHER, "KPR")) == (10, 3)


async def test_unexplained_broker_shares_are_logged_and_frozen_within_a_few_cycles(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="e1")
        await h.hold("KPR", OTHER, 3, key="e2")
        h.broker.inject_position(SYM, 17, 10_000)  # 7 more bought outside the OMS
        await cycles_until(h, lambda: SYM in h.state.frozen_symbols)
        rows = recon(h, "POSITION_EXCESS")
        assert rows and {(r.symbol, r.broker_qty, r.ledger_qty) for r in rows} == {(SYM, 17, 10)}
        assert h.held(SYM, UNKNOWN_STRATEGY) == 7 and h.held(SYM, "KMP") == 10 and h.real_qty(SYM) == 17
        assert h.state.recon_status == "WARN" and OTHER not in h.state.frozen_symbols
        h.clock.advance(300)  # past KMP's entry lock on the name
        entry = await h.intents.handle(h.intent(qty=1, key="into-frozen", strategy="KPR"))
        assert entry.order_id is None and entry.reason_code == ReasonCode.SYMBOL_FROZEN
        exit_ = await h.intents.handle(h.intent(IntentType.EXIT, qty=None, key="x1"))
        assert exit_.order_id and h.state.orders[exit_.order_id].qty == 10  # exits stay allowed, own shares only


async def test_missing_broker_shares_are_logged_and_frozen_without_touching_strategies(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="e1")
        h.broker.inject_position(SYM, 6, 10_000)  # 4 shares left the account outside the OMS
        await cycles_until(h, lambda: SYM in h.state.frozen_symbols)
        rows = recon(h, "POSITION_DEFICIT")
        assert rows and {(r.symbol, r.broker_qty, r.ledger_qty) for r in rows} == {(SYM, 6, 10)}
        assert h.held(SYM, "KMP") == 10  # a strategy's shares are never taken away by reconciliation
        assert h.state.recon_status == "WARN"
