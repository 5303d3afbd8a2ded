"""Record builders for the store tests (one of every kind, with awkward values)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from oms.core.types import (
    AllocationRecord,
    AuditRecord,
    Constraints,
    FillRecord,
    Intent,
    IntentRecord,
    IntentResult,
    IntentStatus,
    IntentType,
    OmsStateRecord,
    OrderEventRecord,
    OrderRecord,
    OrderState,
    OrderType,
    PositionRecord,
    ReconRecord,
    RiskDailyPortfolioRecord,
    RiskDailyStrategyRecord,
    RiskPayload,
    StrategyStateRecord,
    SymbolMarkRecord,
    TimeHorizon,
    TradeRecord,
    Urgency,
)

KST = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 2, 27, 9, 0, 0, 123456, tzinfo=KST)


def ts(seconds: float = 0.0) -> datetime:
    return T0 + timedelta(seconds=seconds)


def intent(
    i: int = 0,
    *,
    strategy: str = "KMP",
    symbol: str = "005930",
    status: IntentStatus = IntentStatus.ACCEPTED,
    key: str | None = None,
    received: datetime | None = None,
) -> IntentRecord:
    iid = f"int-{i:06d}"
    it = Intent(
        intent_id=iid,
        strategy_id=strategy,
        symbol=symbol,
        intent_type=IntentType.ENTER,
        received_at=received or ts(i),
        idempotency_key=key or f"idem-{i:06d}",
        desired_qty=10 + i,
        urgency=Urgency.HIGH,
        time_horizon=TimeHorizon.SWING,
        constraints=Constraints(
            order_type=OrderType.STOP_LIMIT,
            limit_price=71200.0,
            stop_price=71000.0,
            max_slippage_bps=15.5,
            cancel_after_sec=90,
            expiry_ts=ts(i + 600),
        ),
        risk_payload=RiskPayload(
            entry_px=71100.0, stop_px=69800.0, hard_stop_px=69000.0, rationale_code="ORB_BREAK", confidence="HIGH"
        ),
        signal_hash=f"sig-{i}",
    )
    res = IntentResult(
        intent_id=iid,
        status=status,
        message="approved — 승인",
        reason_code=None,
        modified_qty=None,
        order_id=f"ord-{i:06d}",
        cooldown_until=ts(i + 30) if status is IntentStatus.DEFERRED else None,
    )
    return IntentRecord(intent=it, result=res, decided_at=ts(i) + timedelta(milliseconds=3))


def order(
    i: int = 0,
    *,
    state: OrderState = OrderState.SUBMITTED,
    filled: int = 0,
    strategy: str = "KMP",
    symbol: str = "005930",
) -> OrderRecord:
    return OrderRecord(
        order_id=f"ord-{i:06d}",
        intent_id=f"int-{i:06d}",
        strategy_id=strategy,
        symbol=symbol,
        side="BUY",
        qty=10,
        order_type=OrderType.LIMIT,
        state=state,
        created_at=ts(i),
        updated_at=ts(i + filled + 1),
        limit_price=71200.0,
        broker_order_id=f"B{i}",
        filled_qty=filled,
        avg_fill_price=71150.5 if filled else 0.0,
        cancel_after_ts=ts(i + 90),
        reason=None,
    )


def fill(i: int = 0, *, strategy: str = "KMP", symbol: str = "005930") -> FillRecord:
    return FillRecord(
        execution_id=f"exec-{i:06d}",
        order_id=f"ord-{i:06d}",
        strategy_id=strategy,
        symbol=symbol,
        side="BUY",
        qty=5,
        price=71150.5,
        ts=ts(i + 2),
        commission=10.65,
        tax=0.0,
    )


def one_of_each(i: int = 0) -> list[object]:
    """One record of every kind (14), distinct by ``i``."""
    return [
        intent(i),
        order(i),
        OrderEventRecord(
            event_id=f"ev-{i}",
            order_id=f"ord-{i:06d}",
            ts=ts(i),
            from_state=None,
            to_state=OrderState.PENDING_SUBMIT,
            reason="NEW",
            detail='{"x": 1}',
        ),
        fill(i),
        PositionRecord(
            symbol=f"SYM{i}",
            real_qty=15,
            avg_price=71150.5,
            updated_at=ts(i),
            frozen=True,
            freeze_reason="RECON_EXCESS",
        ),
        AllocationRecord(
            symbol=f"SYM{i}",
            strategy_id="KMP",
            qty=15,
            cost_basis=71150.5,
            updated_at=ts(i),
            entry_ts=ts(i - 60),
            soft_stop_px=70000.0,
            hard_stop_px=69000.0,
            time_stop_ts=ts(i + 3600),
            entry_px=71100.0,
            initial_stop_px=69800.0,
        ),
        TradeRecord(
            trade_id=f"tr-{i}",
            strategy_id="KPR",
            symbol=f"SYM{i}",
            qty=7,
            entry_ts=None,
            exit_ts=ts(i),
            entry_px=100.0,
            exit_px=101.5,
            pnl=10.5,
            exit_reason="TIME_STOP",
            r_multiple=-0.25,
        ),
        ReconRecord(
            recon_id=f"rc-{i}",
            ts=ts(i),
            kind="POSITION_EXCESS",
            symbol=f"SYM{i}",
            broker_qty=20,
            ledger_qty=15,
            detail="excess → _UNKNOWN_",
            duration_ms=12.5,
        ),
        AuditRecord(
            audit_id=f"au-{i}",
            ts=ts(i),
            actor="admin",
            action="safe-mode",
            target=None,
            payload={"enabled": True, "nested": {"a": [1, 2.5, None, "x"]}},
        ),
        StrategyStateRecord(
            strategy_id=f"S{i}",
            paused=True,
            last_heartbeat=ts(i),
            status_detail={"phase": "OR", "n": 3},
            updated_at=ts(i),
        ),
        OmsStateRecord(
            key=f"state{i}",
            safe_mode=True,
            halt_new_entries=False,
            flatten_in_progress=True,
            regime="RISK_OFF",
            disabled_symbols=["000660"],
            vi_cooldowns={"005930": ts(i + 120).isoformat()},
            updated_at=ts(i),
        ),
        RiskDailyStrategyRecord(
            trading_day="2026-02-27",
            strategy_id=f"S{i}",
            realized_pnl=-1234.5,
            intents=4,
            rejections=1,
            fills=3,
            updated_at=ts(i),
        ),
        RiskDailyPortfolioRecord(
            trading_day=(date(2020, 1, 1) + timedelta(days=i)).isoformat(),
            start_equity=1e8,
            realized_pnl=-5000.0,
            min_equity=99_990_000.0,
            halted=False,
            updated_at=None,
        ),
        SymbolMarkRecord(symbol=f"SYM{i}", last_price=71300.0, updated_at=ts(i), sector="IT", prev_close=70900.0),
    ]


def utc(d: datetime) -> datetime:
    return d.astimezone(UTC)
