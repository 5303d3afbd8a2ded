"""Positions with per-strategy allocations.

Read scoping: a position's account totals — ``real_qty``, ``avg_price``, ``frozen``, working orders,
the entry lock (arbitration state every entering strategy is told about anyway) and the last price —
are visible to every key. ``allocations`` holds every strategy's share for the read and admin keys,
but only the caller's own for a strategy key (an empty map when it holds none of the symbol).
``GET /allocations/{strategy_id}`` is the caller's own for a strategy key (403 for another's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from broker_core.contract.wire import Allocation, Position
from oms.api.auth import Principal, check_strategy, require_reader
from oms.api.deps import runtime
from oms.api.responses import READ, errors
from oms.runtime import OmsRuntime

router = APIRouter(prefix="/api/v1", tags=["positions"])


def _iso(v: Any) -> Any:
    return v.isoformat() if v is not None and hasattr(v, "isoformat") else v


def position_out(rt: OmsRuntime, symbol: str, who: Principal | None = None) -> dict[str, Any]:
    """The position in ``symbol`` as ``who`` may see it (None: everything)."""
    st = rt.state
    pos = st.ledger.position(symbol)
    lock = st.entry_locks.owner(symbol, rt.clock.now())
    own = who.strategy_id if who is not None and who.role == "strategy" else None
    allocations = {
        sid: {
            "qty": a.qty,
            "cost_basis": a.cost_basis,
            "entry_ts": _iso(a.entry_ts),
            "soft_stop_px": a.soft_stop_px,
            "hard_stop_px": a.hard_stop_px,
            "time_stop_ts": _iso(a.time_stop_ts),
        }
        for sid, a in st.ledger.allocations_in(symbol).items()
        if a.qty and (own is None or sid == own)
    }
    return {
        "symbol": symbol,
        "real_qty": pos.real_qty if pos else 0,
        "avg_price": pos.avg_price if pos else 0.0,
        "allocations": allocations,
        "frozen": symbol in st.frozen_symbols,
        "freeze_reason": st.frozen_symbols.get(symbol),
        "working_order_count": len(st.working_orders(symbol=symbol)),
        "entry_lock_owner": lock[0] if lock else None,
        "entry_lock_until": _iso(lock[1]) if lock else None,
        "last_price": st.last_prices.get(symbol),
    }


@router.get("/positions", response_model=dict[str, Position], responses=errors(*READ))
async def positions(rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)) -> dict[str, Any]:
    symbols = {s for s, p in rt.state.ledger.positions().items() if p.real_qty} | set(rt.state.frozen_symbols)
    return {s: position_out(rt, s, who) for s in sorted(symbols)}


@router.get("/positions/{symbol}", response_model=Position, responses=errors(*READ, 404))
async def position(
    symbol: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)
) -> dict[str, Any]:
    if rt.state.ledger.position(symbol) is None and symbol not in rt.state.frozen_symbols:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no position in {symbol}")
    return position_out(rt, symbol, who)


@router.get("/allocations/{strategy_id}", response_model=dict[str, Allocation], responses=errors(*READ, 403))
async def allocations(
    strategy_id: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)
) -> dict[str, Any]:
    check_strategy(who, strategy_id)
    out = {}
    for sym, a in rt.state.ledger.allocations_of(strategy_id.upper()).items():
        if a.qty:
            out[sym] = {
                "qty": a.qty,
                "cost_basis": a.cost_basis,
                "entry_ts": _iso(a.entry_ts),
                "soft_stop_px": a.soft_stop_px,
                "hard_stop_px": a.hard_stop_px,
                "time_stop_ts": _iso(a.time_stop_ts),
                "entry_px": a.entry_px,
                "initial_stop_px": a.initial_stop_px,
            }
    return out
