"""A short, deterministic bit of trading on an in-process OMS (``tests.support.oms_server``): what the dashboard,
Metabase and alert tests look at. Two strategies enter, one exits (a closed trade with an R multiple), one
entry is rejected by safe mode, both strategies send heartbeats; then the marks are written and the journal is
drained, so the database holds everything the API shows."""

from __future__ import annotations

from typing import Any

from tests.support.oms_server import ADMIN_KEY, STRATEGY_KEYS, Oms, auth
from tests.support.wait import until

ENTRIES = {"KMP": ("005930", 3), "KPR": ("000660", 2)}


async def heartbeat(oms: Oms, strategy: str) -> None:
    resp = await oms.http.post(
        f"/api/v1/strategies/{strategy}/heartbeat",
        json={"status": {"phase": "test"}},
        headers=auth(STRATEGY_KEYS[strategy]),
    )
    assert resp.status_code == 200, resp.text


async def enter(oms: Oms, strategy: str, symbol: str, qty: int, key: str) -> dict[str, Any]:
    last = (await oms.get(f"/api/v1/marketdata/quote/{symbol}"))["last"]
    payload: dict[str, Any] = {"rationale_code": "TEST", "entry_px": last, "stop_px": round(last * 0.97)}
    reply = await oms.intent(
        STRATEGY_KEYS[strategy],
        intent_type="ENTER",
        strategy_id=strategy,
        symbol=symbol,
        desired_qty=qty,
        idempotency_key=key,
        constraints={"order_type": "MARKETABLE_LIMIT"},
        risk_payload=payload,
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def holds(oms: Oms, strategy: str, symbol: str, qty: int) -> bool:
    alloc = oms.runtime.state.ledger.allocation(symbol, strategy)
    return (alloc.qty if alloc is not None else 0) == qty


async def settle(oms: Oms) -> None:
    """Write the marks and copy the journal to the database."""
    assert oms.runtime.marks is not None and oms.runtime.drainer is not None
    await oms.runtime.marks.write_once()
    drainer = oms.runtime.drainer
    await until(lambda: drainer.db_ok and drainer.backlog == 0, timeout=30, what="journal drained")


async def trade_a_little(oms: Oms) -> dict[str, Any]:
    for sid in ENTRIES:
        await heartbeat(oms, sid)
    replies = {sid: await enter(oms, sid, sym, qty, f"t-enter-{sid}") for sid, (sym, qty) in ENTRIES.items()}
    for reply in replies.values():
        assert reply["status"] in ("ACCEPTED", "EXECUTED"), reply
    for sid, (sym, qty) in ENTRIES.items():
        await until(lambda s=sid, y=sym, q=qty: holds(oms, s, y, q), timeout=60, what=f"{sid} filled in {sym}")
    sym, qty = ENTRIES["KMP"]
    exit_reply = await oms.intent(
        STRATEGY_KEYS["KMP"],
        intent_type="EXIT",
        strategy_id="KMP",
        symbol=sym,
        idempotency_key="t-exit-KMP",
        risk_payload={"rationale_code": "TEST_EXIT"},
    )
    assert exit_reply.status_code == 200 and exit_reply.json()["status"] in ("ACCEPTED", "EXECUTED"), exit_reply.text
    await until(lambda: holds(oms, "KMP", sym, 0), timeout=60, what="KMP exited")
    assert (await oms.http.post("/api/v1/risk/safe-mode", json={"enabled": True}, headers=auth(ADMIN_KEY))).is_success
    rejected = await enter(oms, "KMP", "000270", 1, "t-enter-rejected")
    assert rejected["status"] == "REJECTED", rejected
    assert (await oms.http.post("/api/v1/risk/safe-mode", json={"enabled": False}, headers=auth(ADMIN_KEY))).is_success
    for sid in ENTRIES:
        await heartbeat(oms, sid)
    await settle(oms)
    return {"entries": replies, "exit": exit_reply.json(), "rejected": rejected}
