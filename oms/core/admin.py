"""Admin actions on the OMS state; each one journaled with an audit_log row."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import Clock
from broker_core.contract.reasons import ReasonCode
from oms.core.execution import Execution
from oms.core.ids import new_id
from oms.core.intents import IntentService
from oms.core.state import OmsState, Recorder
from oms.core.types import UNKNOWN_STRATEGY, AuditRecord, Intent, IntentType

log = logging.getLogger("oms.admin")


class AdminError(ValueError):
    """An admin request that cannot be applied as asked (→ 409/400 naming the problem)."""


class Admin:
    def __init__(
        self,
        state: OmsState,
        intents: IntentService,
        execution: Execution,
        recorder: Recorder,
        clock: Clock,
        vi_cooldown_sec: float,
    ) -> None:
        self.state = state
        self.intents = intents
        self.execution = execution
        self.recorder = recorder
        self.clock = clock
        self.vi_cooldown_sec = vi_cooldown_sec

    def _audit(self, actor: str, action: str, target: str | None, payload: dict[str, Any], extra: list) -> None:
        rec = AuditRecord(
            audit_id=new_id("au"), ts=self.clock.now(), actor=actor, action=action, target=target, payload=payload
        )
        self.recorder.append([*extra, rec])
        log.info("admin action=%s target=%s actor=%s payload=%s", action, target, actor, payload)

    def _flags_changed(self) -> list:
        self.state.flags.updated_at = self.clock.now()
        return [self.state.flags]

    def safe_mode(self, enabled: bool, actor: str) -> None:
        self.state.flags.safe_mode = enabled
        self._audit(
            actor, "safe_mode_on" if enabled else "safe_mode_off", None, {"enabled": enabled}, self._flags_changed()
        )

    def halt_entries(self, enabled: bool, actor: str, reason: str) -> None:
        self.state.flags.halt_new_entries = enabled
        self._audit(actor, "halt_new_entries", None, {"enabled": enabled, "reason": reason}, self._flags_changed())

    def set_regime(self, regime: str, actor: str) -> None:
        self.state.flags.regime = regime
        self._audit(actor, "set_regime", None, {"regime": regime}, self._flags_changed())

    def vi_cooldown(self, symbol: str, seconds: float | None, actor: str) -> datetime:
        until = self.clock.now() + timedelta(seconds=seconds or self.vi_cooldown_sec)
        self.state.flags.vi_cooldowns[symbol] = until.isoformat()
        self._audit(actor, "vi_cooldown", symbol, {"until": until.isoformat()}, self._flags_changed())
        return until

    def set_symbol_enabled(self, symbol: str, enabled: bool, actor: str) -> None:
        disabled = set(self.state.flags.disabled_symbols)
        disabled.discard(symbol) if enabled else disabled.add(symbol)
        self.state.flags.disabled_symbols = sorted(disabled)
        self._audit(actor, "symbol_enable" if enabled else "symbol_disable", symbol, {}, self._flags_changed())

    def set_paused(self, strategy_id: str, paused: bool, actor: str) -> None:
        rec = self.state.strategy(strategy_id)
        rec.paused = paused
        rec.updated_at = self.clock.now()
        self._audit(actor, "pause_strategy" if paused else "resume_strategy", strategy_id, {}, [rec])

    async def correct_allocation(
        self,
        symbol: str,
        from_strategy: str,
        to_strategy: str | None,
        qty: int,
        unfreeze: bool,
        actor: str,
        note: str | None,
    ) -> dict[str, Any]:
        """Move shares between allocations, or write them off (``to_strategy`` None) when the
        broker's position confirms they are gone."""
        broker_qty = None
        if to_strategy is None:
            positions = {p.symbol: p.qty for p in await self.execution.broker.get_positions()}
            broker_qty = positions.get(symbol, 0)
        try:
            changed = self.state.ledger.correct_allocation(
                symbol, from_strategy, to_strategy, qty, self.clock.now(), broker_qty=broker_qty
            )
        except (ValueError, KeyError) as exc:
            raise AdminError(str(exc)) from exc
        rows: list = list(changed)
        if unfreeze and symbol in self.state.frozen_symbols:
            unknown = self.state.ledger.allocation(symbol, UNKNOWN_STRATEGY)
            if unknown is None or unknown.qty == 0:
                del self.state.frozen_symbols[symbol]
                rows.append(self.state.ledger.set_frozen(symbol, False, None, self.clock.now()))
        self._audit(
            actor,
            "correct_allocation",
            symbol,
            {
                "from": from_strategy,
                "to": to_strategy,
                "qty": qty,
                "note": note,
                "frozen": symbol in self.state.frozen_symbols,
            },
            rows,
        )
        return {"symbol": symbol, "frozen": symbol in self.state.frozen_symbols}

    async def flatten_all(self, actor: str) -> list[str]:
        self.state.flags.flatten_in_progress = True
        self._audit(actor, "flatten_all", None, {}, self._flags_changed())
        order_ids: list[str] = []
        now = self.clock.now()
        for order in [o for o in self.state.working_orders() if o.side == "BUY"]:
            await self.execution.cancel(order, ReasonCode.FLATTEN_ALL)  # every entry, held or not
        for sid in sorted(
            {
                sid
                for sym in self.state.ledger.positions()
                for sid, a in self.state.ledger.allocations_in(sym).items()
                if a.qty
            }
        ):
            intent = Intent(
                intent_id=new_id("in"),
                strategy_id=sid,
                symbol="*",
                intent_type=IntentType.FLATTEN,
                received_at=now,
                idempotency_key=f"admin-flatten:{new_id()}",
            )
            await self.intents.handle(replace(intent))
            order_ids += [
                o.order_id for o in self.state.orders.values() if o.intent_id.startswith(f"{intent.intent_id}:")
            ]
        self.state.flags.flatten_in_progress = False
        self.recorder.append(self._flags_changed())
        return order_ids

    async def eod_cleanup(self, actor: str) -> int:
        working = self.state.working_orders()
        for order in working:
            await self.execution.cancel(order, ReasonCode.EOD_CLEANUP)
        self._audit(actor, "eod_cleanup", None, {"cancelled": len(working)}, [])
        return len(working)

    def record(self, actor: str, action: str, target: str | None, payload: dict[str, Any]) -> None:
        self._audit(actor, action, target, payload, [])
