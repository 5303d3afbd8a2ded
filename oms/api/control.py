"""Account state, strategies and heartbeats, risk controls and admin actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from broker_core.config_errors import ConfigError
from oms.api.auth import Principal, check_strategy, require_admin, require_reader, require_writer
from oms.api.deps import runtime
from oms.api.schemas import CorrectAllocationIn, HeartbeatIn, RegimeIn, SafeModeIn, ViCooldownIn
from oms.core.admin import AdminError
from oms.runtime import OmsRuntime
from oms.settings import load_config

router = APIRouter(prefix="/api/v1", tags=["control"])


@router.get("/state/account")
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


@router.get("/strategies")
async def strategies(rt: OmsRuntime = Depends(runtime), _: Principal = Depends(require_reader)) -> dict[str, Any]:
    ids = set(rt.state.strategies) | set(rt.state.daily_strategy)
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


@router.post("/strategies/{strategy_id}/heartbeat")
async def heartbeat(
    strategy_id: str,
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


@router.post("/risk/safe-mode")
async def safe_mode(
    body: SafeModeIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.safe_mode(body.enabled, _actor(who))
    return {"safe_mode": rt.state.flags.safe_mode, "trading_state": rt.state.trading_state().value}


@router.post("/risk/regime")
async def regime(
    body: RegimeIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_regime(body.regime.upper(), _actor(who))
    return {"regime": rt.state.flags.regime}


@router.post("/risk/vi-cooldown")
async def vi_cooldown(
    body: ViCooldownIn, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    until = rt.admin.vi_cooldown(body.symbol, body.seconds, _actor(who))
    return {"symbol": body.symbol, "until": until.isoformat()}


@router.post("/admin/flatten-all")
async def flatten_all(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None
    return {"order_ids": await rt.admin.flatten_all(_actor(who))}


@router.post("/admin/pause-strategy/{strategy_id}")
async def pause(
    strategy_id: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_paused(strategy_id.upper(), True, _actor(who))
    return {"strategy_id": strategy_id.upper(), "paused": True}


@router.post("/admin/resume-strategy/{strategy_id}")
async def resume(
    strategy_id: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_paused(strategy_id.upper(), False, _actor(who))
    return {"strategy_id": strategy_id.upper(), "paused": False}


@router.post("/admin/correct-allocation")
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


@router.post("/admin/eod-cleanup")
async def eod_cleanup(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None
    return {"cancelled": await rt.admin.eod_cleanup(_actor(who))}


@router.post("/admin/reload-config")
async def reload_config(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)) -> dict[str, Any]:
    assert rt.admin is not None and rt.intents is not None
    try:
        config = load_config(rt.settings.oms_config)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    rt.config = config
    rt.intents.limits = config.risk
    rt.admin.record(_actor(who), "reload_config", None, {"ok": True})
    return {"reloaded": True}


@router.post("/admin/symbols/{symbol}/disable")
async def disable_symbol(
    symbol: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_symbol_enabled(symbol, False, _actor(who))
    return {"symbol": symbol, "enabled": False}


@router.post("/admin/symbols/{symbol}/enable")
async def enable_symbol(
    symbol: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    assert rt.admin is not None
    rt.admin.set_symbol_enabled(symbol, True, _actor(who))
    return {"symbol": symbol, "enabled": True}
