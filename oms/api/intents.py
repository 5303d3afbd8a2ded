"""POST /api/v1/intents and the intent history.

Read scoping: a strategy key sees only its own intents (403 for another's, by ``?strategy_id=`` or by
id); the read and admin keys see all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from broker_core.contract.enums import IntentStatus
from broker_core.contract.wire import IntentReply, IntentRequest
from oms.api.auth import Principal, check_strategy, require_reader, require_writer, scoped
from oms.api.deps import runtime
from oms.api.params import QueryText
from oms.api.replies import IntentOut
from oms.api.responses import READ, WRITE, errors
from oms.api.schemas import intent_record_out, reply_of
from oms.core.ids import new_id
from oms.core.types import Intent
from oms.runtime import OmsRuntime

router = APIRouter(prefix="/api/v1/intents", tags=["intents"])


@router.post("", response_model=IntentReply, responses=errors(*WRITE))
async def post_intent(
    body: IntentRequest, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_writer)
) -> IntentReply:
    # No docstring: it would become the operation's description in /openapi.json. Well-formed requests are
    # answered by oms/api/fastpath.py with the same two steps, without FastAPI's per-request machinery; this
    # route answers every other request (so every error reply) and documents the endpoint.
    check_intent(rt, who, body)
    return await decide_intent(rt, body)


def check_intent(rt: OmsRuntime, who: Principal, body: IntentRequest) -> None:
    """The checks of a schema-valid intent that need no decision: the key may act as ``strategy_id`` (403),
    the market's own rules of bad input (422). Raises ``HTTPException``; changes nothing."""
    check_strategy(who, body.strategy_id)
    _check_market_input(rt, body)


async def decide_intent(rt: OmsRuntime, body: IntentRequest) -> IntentReply:
    """Decide a checked intent (journal, broker) and build its reply."""
    rt.roll_day_if_due()  # the first intent of a new trading day is decided on that day
    intent = Intent(
        intent_id=new_id("in"),
        strategy_id=body.strategy_id,
        symbol=body.symbol,
        intent_type=body.intent_type,
        received_at=rt.clock.now(),
        idempotency_key=body.idempotency_key or "",
        desired_qty=body.desired_qty,
        target_qty=body.target_qty,
        urgency=body.urgency,
        time_horizon=body.time_horizon,
        constraints=body.constraints,
        risk_payload=body.risk_payload,
        signal_hash=body.signal_hash,
    )
    assert rt.intents is not None
    return reply_of(await rt.intents.handle(intent))


SYMBOL_INTENTS = frozenset({"ENTER", "REDUCE", "EXIT", "SET_TARGET"})


def _bad_input(field: str, msg: str, value: Any) -> HTTPException:
    return HTTPException(422, [{"field": field, "msg": msg, "type": "value_error", "input": value}])


def _check_market_input(rt: OmsRuntime, body: IntentRequest) -> None:
    """The market's own rules of bad input (US): a symbol the broker does not list, an off-tick (sub-penny)
    limit — 422 naming the field, nothing decided or sent. KRX decides the first (REJECTED UNKNOWN_SYMBOL) and
    snaps the second onto its grid (B1)."""
    market = rt.market
    known = rt.known_symbols
    kind = str(getattr(body.intent_type, "value", body.intent_type))
    if market.refuses_unknown_symbols and known is not None and kind in SYMBOL_INTENTS and body.symbol not in known:
        raise _bad_input("body.symbol", f"{body.symbol!r} is not in the broker's asset list", body.symbol)
    limit = body.constraints.limit_price
    if limit is None or market.snaps_limit_prices or market.on_tick(limit):
        return
    raise _bad_input(
        "body.constraints.limit_price",
        f"{limit!r} is off the {market.currency} tick grid (e.g. {market.round_down(limit)!r} or "
        f"{market.round_up(limit)!r})",
        limit,
    )


@router.get("", response_model=list[IntentOut], responses=errors(*READ, 403, 422))
async def list_intents(
    strategy_id: QueryText | None = None,
    symbol: QueryText | None = None,
    status_: IntentStatus | None = Query(None, alias="status"),
    limit: int = Query(500, ge=1, le=5000),
    rt: OmsRuntime = Depends(runtime),
    who: Principal = Depends(require_reader),
) -> list[dict[str, Any]]:
    assert rt.reader is not None
    records = await rt.reader.list_intents(
        strategy_id=scoped(who, strategy_id), symbol=symbol, status=status_.value if status_ else None, limit=limit
    )
    return [intent_record_out(r) for r in records]


@router.get("/{intent_id}", response_model=IntentOut, responses=errors(*READ, 403, 404))
async def get_intent(
    intent_id: str, rt: OmsRuntime = Depends(runtime), who: Principal = Depends(require_reader)
) -> dict[str, Any]:
    assert rt.reader is not None
    rec = await rt.reader.get_intent(intent_id)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"intent {intent_id} not found")
    check_strategy(who, rec.intent.strategy_id)
    return intent_record_out(rec)
