"""Admin: each action changes the OMS state as documented and is journaled with an audit_log row.

Real collaborators (see ``_harness.py``); the journal is read back to check what an action wrote.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker_core.contract.reasons import ReasonCode
from broker_core.models import OrderStatus
from oms.core.admin import AdminError
from oms.core.types import UNKNOWN_STRATEGY, IntentStatus, IntentType, OrderState, OrderType, TradingState
from tests.unit.oms._harness import NOW, OTHER, SYM, Oms, oms


async def frozen_with_unknown_shares(h: Oms, symbol: str, qty: int, price: float) -> None:
    """The account holds ``qty`` shares bought outside the OMS; reconciliation books them under
    ``_UNKNOWN_`` and freezes the symbol (within a few cycles, whatever the confirmation rule)."""
    h.broker.inject_position(symbol, qty, price)
    for _ in range(5):
        await h.reconciler.run_cycle()
        if symbol in h.state.frozen_symbols:
            break
    assert symbol in h.state.frozen_symbols and h.held(symbol, UNKNOWN_STRATEGY) == qty


# -- switches ----------------------------------------------------------------------------------------


async def test_safe_mode_on_blocks_entries_allows_exits_and_is_audited(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="e1")
        h.admin.safe_mode(True, "ops")
        assert h.state.flags.safe_mode and h.state.trading_state() is TradingState.REDUCING
        (audit,) = h.audit("safe_mode_on")
        assert (audit.actor, audit.payload) == ("ops", {"enabled": True})
        assert h.journaled("oms_state")[-1].safe_mode is True
        entry = await h.intents.handle(h.intent(qty=1, key="e2", symbol=OTHER))
        assert entry.order_id is None and entry.reason_code == ReasonCode.SAFE_MODE
        exit_ = await h.intents.handle(h.intent(IntentType.EXIT, qty=None, key="x"))
        assert exit_.status is IntentStatus.ACCEPTED and exit_.order_id
        h.admin.safe_mode(False, "ops")
        assert not h.state.flags.safe_mode and h.state.trading_state() is TradingState.ACTIVE
        assert h.audit("safe_mode_off")[0].payload == {"enabled": False}
        assert h.journaled("oms_state")[-1].safe_mode is False


async def test_halt_new_entries_halts_and_is_audited_with_its_reason(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        h.admin.halt_entries(True, "ops", "news pending")
        assert h.state.trading_state() is TradingState.HALTED
        (audit,) = h.audit("halt_new_entries")
        assert audit.payload == {"enabled": True, "reason": "news pending"}
        assert h.journaled("oms_state")[-1].halt_new_entries is True
        entry = await h.intents.handle(h.intent(qty=1, key="e1"))
        assert entry.order_id is None and entry.reason_code == ReasonCode.HALTED
        h.admin.halt_entries(False, "ops", "clear")
        assert h.state.trading_state() is TradingState.ACTIVE
        assert (await h.intents.handle(h.intent(qty=1, key="e2"))).order_id


async def test_pause_and_resume_strategy_gate_its_entries_and_are_audited(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        h.admin.set_paused("KMP", True, "ops")
        assert h.state.strategies["KMP"].paused
        assert h.journaled("strategy_state")[-1].paused is True
        assert [(a.action, a.target) for a in h.audit()] == [("pause_strategy", "KMP")]
        paused = await h.intents.handle(h.intent(qty=1, key="e1"))
        assert paused.order_id is None and paused.reason_code == ReasonCode.STRATEGY_PAUSED
        other = await h.intents.handle(h.intent(qty=1, key="e2", strategy="KPR", symbol=OTHER))
        assert other.order_id  # only KMP is paused
        h.admin.set_paused("KMP", False, "ops")
        assert not h.state.strategies["KMP"].paused and h.journaled("strategy_state")[-1].paused is False
        assert h.audit()[-1].action == "resume_strategy"
        assert (await h.intents.handle(h.intent(qty=1, key="e3"))).order_id


async def test_symbol_disable_and_enable_gate_entries_and_are_audited(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        h.admin.set_symbol_enabled(SYM, False, "ops")
        h.admin.set_symbol_enabled(SYM, False, "ops")  # twice: still one entry
        assert h.state.flags.disabled_symbols == [SYM]
        assert h.journaled("oms_state")[-1].disabled_symbols == [SYM]
        assert [(a.action, a.target) for a in h.audit()] == [("symbol_disable", SYM)] * 2
        refused = await h.intents.handle(h.intent(qty=1, key="e1"))
        assert refused.order_id is None and refused.reason_code == ReasonCode.SYMBOL_DISABLED
        h.admin.set_symbol_enabled(SYM, True, "ops")
        assert h.state.flags.disabled_symbols == [] and h.audit()[-1].action == "symbol_enable"
        assert (await h.intents.handle(h.intent(qty=1, key="e2"))).order_id


async def test_vi_cooldown_defers_entries_until_it_ends_and_is_audited(tmp_path: Path) -> None:
    async with oms(tmp_path, vi_cooldown_sec=120) as h:
        until = h.admin.vi_cooldown(SYM, 60, "ops")
        assert until == NOW + timedelta(seconds=60)
        assert h.state.flags.vi_cooldowns[SYM] == until.isoformat()
        (audit,) = h.audit("vi_cooldown")
        assert (audit.target, audit.payload) == (SYM, {"until": until.isoformat()})
        deferred = await h.intents.handle(h.intent(qty=1, key="e1"))
        assert deferred.status is IntentStatus.DEFERRED and deferred.order_id is None
        assert h.admin.vi_cooldown(OTHER, None, "ops") == NOW + timedelta(seconds=120)  # the configured default
        h.clock.advance(61)
        assert (await h.intents.handle(h.intent(qty=1, key="e2"))).order_id


async def test_set_regime_is_kept_and_audited(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        h.admin.set_regime("RISK_OFF", "ops")
        assert h.state.flags.regime == "RISK_OFF" and h.journaled("oms_state")[-1].regime == "RISK_OFF"
        assert h.audit("set_regime")[0].payload == {"regime": "RISK_OFF"}


# -- flatten-all, eod-cleanup ------------------------------------------------------------------------


async def test_flatten_all_exits_every_allocation(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        await h.hold("KMP", OTHER, 5, key="k2")
        h.clock.advance(300)  # past KMP's entry lock on the name
        await h.hold("KPR", SYM, 3, key="p1")
        resting = await h.enter("KPR", OTHER, 2, key="p2", order_type=OrderType.LIMIT, limit_price=19_000)
        h.admin.safe_mode(True, "ops")  # flatten must work when entries are blocked
        await h.admin.flatten_all("ops")
        sells = {(o.strategy_id, o.symbol): o for o in h.state.working.values() if o.side == "SELL"}
        assert {k: o.qty for k, o in sells.items()} == {("KMP", SYM): 10, ("KMP", OTHER): 5, ("KPR", SYM): 3}
        assert resting.state is OrderState.CANCELLED  # a holder's working entry is cancelled first
        assert not h.state.flags.flatten_in_progress
        assert [s.flatten_in_progress for s in h.journaled("oms_state")][-2:] == [True, False]
        assert [a.actor for a in h.audit("flatten_all")] == ["ops"]
        for symbol in (SYM, OTHER):
            h.push(h.trade(10_000 if symbol == SYM else 20_000, qty=1_000, symbol=symbol))
        assert all(o.state is OrderState.FILLED for o in sells.values())
        assert h.state.ledger.positions() == {} and h.exchange.engine.positions() == []


async def test_flatten_all_returns_the_id_of_every_exit_order(tmp_path: Path) -> None:
    """The reply ``{"order_ids": [...]}`` is how an operator follows the flatten: it must name every exit."""
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        await h.hold("KMP", OTHER, 5, key="k2")
        returned = await h.admin.flatten_all("ops")
        exits = [o.order_id for o in h.state.working.values() if o.side == "SELL"]
        assert len(exits) == 2
        assert sorted(returned) == sorted(exits), "only the first exit of each strategy is reported"


async def test_flatten_all_leaves_no_entry_working(tmp_path: Path) -> None:
    """A strategy that holds nothing yet but has an entry resting at the broker would be back in a position
    right after flatten-all (e.g. the daily-loss halt's flatten) if that entry were left working."""
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        resting = await h.enter("KPR", OTHER, 2, key="p1", order_type=OrderType.LIMIT, limit_price=19_000)
        await h.admin.flatten_all("ops")
        assert [o.order_id for o in h.state.working.values() if o.side == "BUY"] == []
        assert resting.state is OrderState.CANCELLED


async def test_flatten_all_exits_unknown_shares_too(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await frozen_with_unknown_shares(h, OTHER, 7, 20_000)
        await h.admin.flatten_all("ops")
        (sell,) = [o for o in h.state.working.values() if o.side == "SELL"]
        assert (sell.strategy_id, sell.symbol, sell.qty) == (UNKNOWN_STRATEGY, OTHER, 7)


async def test_eod_cleanup_cancels_every_working_order_and_is_audited(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        buy = await h.enter("KPR", OTHER, 2, key="p1", order_type=OrderType.LIMIT, limit_price=19_000)
        held = h.new_order(
            limit=20_600, stop=20_500, symbol=OTHER, state=OrderState.HELD, order_type=OrderType.STOP_LIMIT
        )
        sell = h.new_order("SELL", 10, 10_500)
        await h.execution.submit(sell)
        assert (buy.state, held.state, sell.state) == (OrderState.SUBMITTED, OrderState.HELD, OrderState.SUBMITTED)
        assert await h.admin.eod_cleanup("ops") == 3
        assert not h.state.working
        assert {o.state for o in (buy, held, sell)} == {OrderState.CANCELLED}
        assert {o.status for o in h.exchange.engine.orders() if o.client_order_id in (buy.order_id, sell.order_id)} == {
            OrderStatus.CANCELLED
        }
        (audit,) = h.audit("eod_cleanup")
        assert audit.payload == {"cancelled": 3}
        assert h.held(SYM, "KMP") == 10  # positions are not touched


# -- correct-allocation ------------------------------------------------------------------------------


async def test_correct_allocation_moves_unknown_shares_to_a_strategy_and_unfreezes(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await frozen_with_unknown_shares(h, OTHER, 7, 20_000)
        out = await h.admin.correct_allocation(OTHER, UNKNOWN_STRATEGY, "KPR", 7, True, "ops", "bought on HTS")
        assert out == {"symbol": OTHER, "frozen": False}
        assert h.held(OTHER, "KPR") == 7 and h.held(OTHER, UNKNOWN_STRATEGY) == 0
        assert h.allocation(OTHER, "KPR").cost_basis == 20_000
        assert h.real_qty(OTHER) == 7
        assert OTHER not in h.state.frozen_symbols and h.journaled("positions")[-1].frozen is False
        (audit,) = h.audit("correct_allocation")
        assert (audit.actor, audit.target) == ("ops", OTHER)
        assert audit.payload == {
            "from": UNKNOWN_STRATEGY,
            "to": "KPR",
            "qty": 7,
            "note": "bought on HTS",
            "frozen": False,
        }
        for _ in range(5):
            await h.reconciler.run_cycle()
        assert OTHER not in h.state.frozen_symbols and h.state.recon_status == "OK"
        assert (await h.intents.handle(h.intent(qty=1, key="after", symbol=OTHER))).order_id


async def test_correct_allocation_keeps_the_freeze_while_unknown_shares_remain(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await frozen_with_unknown_shares(h, OTHER, 7, 20_000)
        out = await h.admin.correct_allocation(OTHER, UNKNOWN_STRATEGY, "KPR", 3, True, "ops", None)
        assert out == {"symbol": OTHER, "frozen": True}
        assert (h.held(OTHER, "KPR"), h.held(OTHER, UNKNOWN_STRATEGY)) == (3, 4)
        assert OTHER in h.state.frozen_symbols and h.audit("correct_allocation")[0].payload["frozen"] is True


async def test_correct_allocation_between_strategies_keeps_the_position(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        await h.admin.correct_allocation(SYM, "KMP", "KPR", 4, False, "ops", None)
        assert (h.held(SYM, "KMP"), h.held(SYM, "KPR")) == (6, 4)
        assert h.real_qty(SYM) == 10 and h.state.ledger.check_invariants() == []
        moved = {(a.strategy_id, a.qty) for a in h.journaled("allocations")[-2:]}
        assert moved == {("KMP", 6), ("KPR", 4)}


async def test_correct_allocation_writes_off_shares_the_broker_confirms_gone(tmp_path: Path) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        h.broker.inject_position(SYM, 6, 10_000)
        await h.admin.correct_allocation(SYM, "KMP", None, 4, False, "ops", "transferred out")
        assert h.held(SYM, "KMP") == 6 and h.real_qty(SYM) == 6
        assert h.audit("correct_allocation")[0].payload["to"] is None


@pytest.mark.parametrize(
    ("symbol", "src", "dst", "qty", "broker_qty", "problem"),
    [
        (SYM, "KMP", "KPR", 11, None, "KMP holds 10"),
        (SYM, "KMP", "KPR", 0, None, "qty must be >= 1"),
        (SYM, "KMP", "KMP", 1, None, "same"),
        (SYM, "KPR", "KMP", 1, None, "KPR holds 0"),
        (OTHER, "KMP", "KPR", 1, None, "KMP holds 0"),
        (SYM, "KMP", None, 4, 10, "refusing to write off"),
        (SYM, "KMP", None, 3, 6, "refusing to write off"),
    ],
    ids=[
        "more-than-held",
        "zero-qty",
        "same-strategy",
        "strategy-without-shares",
        "symbol-not-held",
        "write-off-broker-still-holds",
        "write-off-wrong-qty",
    ],
)
async def test_bad_correct_allocation_raises_admin_error_naming_the_problem_and_changes_nothing(
    tmp_path: Path, symbol: str, src: str, dst: str | None, qty: int, broker_qty: int | None, problem: str
) -> None:
    async with oms(tmp_path) as h:
        await h.hold("KMP", SYM, 10, key="k1")
        if broker_qty is not None:
            h.broker.inject_position(SYM, broker_qty, 10_000)
        h.state.frozen_symbols[SYM] = "RECON_DEFICIT"  # as reconciliation would leave it
        ledger, seq = h.state.ledger.records(), h.journal.last_seq()
        with pytest.raises(AdminError, match=problem):
            await h.admin.correct_allocation(symbol, src, dst, qty, True, "ops", None)
        assert h.state.ledger.records() == ledger
        assert h.state.frozen_symbols == {SYM: "RECON_DEFICIT"}
        assert h.journal.last_seq() == seq and h.audit("correct_allocation") == []
