"""Account state, strategies and heartbeats, risk controls and admin actions.

Read scoping: ``/state/account`` holds account totals, visible to every key; ``/strategies`` lists every
strategy for the read and admin keys but only the caller's own for a strategy key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from broker_core.config_errors import ConfigError
from broker_core.contract.wire import Account
from oms.api.auth import Principal, check_strategy, require_admin, require_reader, require_writer
from oms.api.deps import runtime
from oms.api.replies import (
    CorrectedOut,
    EodCleanupOut,
    FlattenOut,
    HeartbeatOut,
    PausedOut,
    RegimeOut,
    ReloadOut,
    SafeModeOut,
    StrategyOut,
    SymbolEnabledOut,
    ViCooldownOut,
)
from oms.api.responses import ADMIN, READ, WRITE, errors
from oms.api.schemas import (
    CorrectAllocationIn,
    HeartbeatIn,
    RegimeIn,
    SafeModeIn,
    StrategyIdPath,
    SymbolPath,
    ViCooldownIn,
)
from oms.core.admin import AdminError
from oms.runtime import OmsRuntime
from oms.settings import load_config

router = APIRouter(prefix="/api/v1", tags=["control"])


@router.get("/state/account", response_model=Account, responses=errors(*READ))
async def account(rt: OmsRuntime = Depends(runtime), _: Principal = Depends(require_reader)) -> dict[str, Any]:
    assert rt.intents is not None
    pv = rt.intents.portfolio()
    flags = rt.state.flags
    return {
        "equity": pv.equity,
        "buyable_cash": pv.buyable_cash,
        "daily_pnl": pv.daily_pnl,
        "daily_pnl_pct": (pv.daily_pnl / pv.start_equity) if pv.start_equity else 0.0,
        "start_equity": pv.start_equity,
        "safe_mode": flags.safe_mode,
        "halt_new_entries": flags.halt_new_entries,
        "flatten_in_progress": flags.flatten_in_progress,
        "regime": flags.regime,
        "trading_state": rt.state.trading_state().value,
        "realized_pnl": rt.state.ledger.realized_pnl(),
        "disabled_symbols": flags.disabled_symbols,
        "frozen_symbols": rt.state.frozen_symbols,
    }


@router.get("/strategies", response_model=dict[str, StrategyOut], responses=errors(*READ))
async def strategies(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)) -> dict[str, Any]:
    ids = set(rt.state.strategies) | set(rt.state.daily_strategy)
    if who.role == "strategy":
        ids &= {who.strategy_id}
    out = {}
    for sid in sorted(ids):
        rec = rt.state.strategy(sid)
        daily = rt.state.daily_strategy.get(sid)
        out[sid] = {
            "strategy_id": sid,
            "paused": rec.paused,
            "last_heartbeat": rec.last_heartbeat.isoformat() if rec.last_heartbeat else None,
            "status": rec.status_detail,
            "realized_pnl": rt.state.ledger.realized_pnl(sid),
            "fills_today": daily.fills if daily else 0,
            "positions": {s: a.qty for s, a in rt.state.ledger.allocations_of(sid).items() if a.qty},
        }
    return out


@router.post("/strategies/{strategy_id}/heartbeat", response_model=HeartbeatOut, responses=errors(*WRITE))
async def heartbeat(
    strategy_id: StrategyIdPath,
    body: HeartbeatIn | None = None,
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_writer),
) -> dict[str, Any]:
    check_strategy(who, strategy_id)
    rec = rt.state.strategy(strategy_id.upper())
    rec.last_heartbeat = rt.clock.now()
    rec.updated_at = rec.last_heartbeat
    if body is not None:
        rec.status_detail = body.status
    assert rt.journal is not None
    rt.journal.append([rec])
    return {
        "strategy_id": rec.strategy_id,
        "paused": rec.paused,
        "ts": rec.last_heartbeat.isoformat(),
        "trading_state": rt.state.trading_state().value,
    }


def _actor(who: Principal) -> str:
    return who.name


@router.post("/risk/safe-mode", response_model=SafeModeOut, responses=errors(*ADMIN, 413, 422))
async def safe_mode(
    body: SafeModeIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.safe_mode(body.enabled, _actor(who))
    return {"safe_mode": rt.state.flags.safe_mode, "trading_state": rt.state.trading_state().value}


@router.post("/risk/regime", response_model=RegimeOut, responses=errors(*ADMIN, 413, 422))
async def regime(
    body: RegimeIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_regime(body.regime.upper(), _actor(who))
    return {"regime": rt.state.flags.regime}


@router.post("/risk/vi-cooldown", response_model=ViCooldownOut, responses=errors(*ADMIN, 413, 422))
async def vi_cooldown(
    body: ViCooldownIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    until = rt.admin.vi_cooldown(body.symbol, body.seconds, _actor(who))
    return {"symbol": body.symbol, "until": until.isoformat()}


@router.post("/admin/flatten-all", response_model=FlattenOut, responses=errors(*ADMIN))
async def flatten_all(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None
    return {"order_ids": await rt.admin.flatten_all(_actor(who))}


@router.post("/admin/pause-strategy/{strategy_id}", response_model=PausedOut, responses=errors(*ADMIN))
async def pause(
    strategy_id: StrategyIdPath, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_paused(strategy_id.upper(), True, _actor(who))
    return {"strategy_id": strategy_id.upper(), "paused": True}


@router.post("/admin/resume-strategy/{strategy_id}", response_model=PausedOut, responses=errors(*ADMIN))
async def resume(
    strategy_id: StrategyIdPath, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_paused(strategy_id.upper(), False, _actor(who))
    return {"strategy_id": strategy_id.upper(), "paused": False}


@router.post("/admin/correct-allocation", response_model=CorrectedOut, responses=errors(*ADMIN, 409, 413, 422))
async def correct_allocation(
    body: CorrectAllocationIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    try:
        return await rt.admin.correct_allocation(
            body.symbol,
            body.from_strategy.upper(),
            body.to_strategy.upper() if body.to_strategy else None,
            body.qty,
            body.unfreeze,
            _actor(who),
            body.note,
        )
    except AdminError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/admin/eod-cleanup", response_model=EodCleanupOut, responses=errors(*ADMIN))
async def eod_cleanup(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None
    return {"cancelled": await rt.admin.eod_cleanup(_actor(who))}


@router.post("/admin/reload-config", response_model=ReloadOut, responses=errors(*ADMIN, 409))
async def reload_config(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None and rt.intents is not None
    try:
        config = load_config(rt.settings.oms_config)
    except ConfigError as exc:  # the file on disk is bad, not the request: nothing reloaded
        raise HTTPException(status.HTTP_409_CONFLICT, f"config not reloaded: {exc}") from exc
    rt.config = config
    rt.intents.limits = config.risk
    rt.admin.record(_actor(who), "reload_config", None, {"ok": True})
    return {"reloaded": True}


@router.post("/admin/symbols/{symbol}/disable", response_model=SymbolEnabledOut, responses=errors(*ADMIN))
async def disable_symbol(
    symbol: SymbolPath, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_symbol_enabled(symbol, False, _actor(who))
    return {"symbol": symbol, "enabled": False}


@router.post("/admin/symbols/{symbol}/enable", response_model=SymbolEnabledOut, responses=errors(*ADMIN))
async def enable_symbol(
    symbol: SymbolPath, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_symbol_enabled(symbol, True, _actor(who))
    return {"symbol": symbol, "enabled": True}
