"""Bad input over HTTP against a real OMS on real Postgres: every request below is refused with a 4xx
naming the field, changes nothing (journal, intents, entry locks, flags, strategies), and never reaches
the journal — so it can never poison the journal → Postgres drain. After each refusal a good intent is
still decided and everything the journal holds reaches Postgres, once.

One OMS (and one Postgres database) serves the whole module; the cases run in order on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from broker_core.contract.bounds import MAX_QTY
from oms.settings import StrategyConfig, load_config
from tests.support.oms_server import ADMIN_KEY, STRATEGY_KEYS, Oms, auth, oms_settings, running_oms
from tests.support.pg import create_database, drop_database, fetch_value

pytestmark = pytest.mark.asyncio(loop_scope="module")

KMP = STRATEGY_KEYS["KMP"]
INT64_MAX = 2**63 - 1
SYMBOLS = ("005930", "000660")
WATCHED_TABLES = ("intents", "orders", "order_events", "allocations", "strategy_state", "oms_state", "audit_log")
"""Journal tables a request could write to."""

ENTER = {
    "intent_type": "ENTER",
    "strategy_id": "KMP",
    "symbol": "005930",
    "desired_qty": 1,
    "constraints": {"order_type": "MARKETABLE_LIMIT"},
}
MODIFY_RISK = {"intent_type": "MODIFY_RISK", "strategy_id": "KMP", "symbol": "005930"}
SET_TARGET = {"intent_type": "SET_TARGET", "strategy_id": "KMP", "symbol": "005930", "target_qty": 1}
INF = "__INF__"
"""Placeholder for a JSON number literal that parses to infinity (``1e309``), which json.dumps cannot write."""


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: Any
    field: str
    key: str = KMP
    status: int = 422

    def content(self) -> bytes:
        text = json.dumps(self.body, allow_nan=True)
        return text.replace(f'"{INF}"', "1e309").encode()


def enter(**over: Any) -> dict[str, Any]:
    return {**ENTER, **over}


def with_constraints(**c: Any) -> dict[str, Any]:
    return enter(constraints={"order_type": "MARKETABLE_LIMIT", **c})


def with_risk(**r: Any) -> dict[str, Any]:
    return enter(risk_payload=r)


INTENTS = "/api/v1/intents"
HEARTBEAT = "/api/v1/strategies/KMP/heartbeat"
CASES = [
    # ---- quantities: integers (no bool, no string, no fraction) within MAX_QTY (< the BigInteger column's int64)
    Case("qty_over_int64", INTENTS, enter(desired_qty=INT64_MAX + 1), "desired_qty"),
    Case("qty_1e30", INTENTS, enter(desired_qty=10**30), "desired_qty"),
    Case("target_qty_over_int64", INTENTS, {**SET_TARGET, "target_qty": INT64_MAX + 1}, "target_qty"),
    Case("qty_string", INTENTS, enter(desired_qty="10"), "desired_qty"),
    Case("qty_true", INTENTS, enter(desired_qty=True), "desired_qty"),
    Case("qty_fraction", INTENTS, enter(desired_qty=10.5), "desired_qty"),
    Case("qty_over_max", INTENTS, enter(desired_qty=MAX_QTY + 1), "desired_qty"),
    Case("target_qty_string", INTENTS, {**SET_TARGET, "target_qty": "1"}, "target_qty"),
    # ---- control characters (and lone surrogates) in strings
    Case("idempotency_key_nul", INTENTS, enter(idempotency_key="k\x00ey"), "idempotency_key"),
    Case("idempotency_key_newline", INTENTS, enter(idempotency_key="key\n"), "idempotency_key"),
    Case("idempotency_key_surrogate", INTENTS, enter(idempotency_key="key\ud800"), "idempotency_key"),
    Case("signal_hash_nul", INTENTS, enter(signal_hash="abc\x00"), "signal_hash"),
    Case("signal_hash_del", INTENTS, enter(signal_hash="abc\x7f"), "signal_hash"),
    Case("symbol_nul", INTENTS, enter(symbol="0059\x0030"), "symbol"),
    Case("strategy_id_nul", INTENTS, enter(strategy_id="KMP\x00"), "strategy_id"),
    Case("rationale_code_nul", INTENTS, with_risk(rationale_code="ORB\x00"), "risk_payload.rationale_code"),
    Case("confidence_escape", INTENTS, with_risk(confidence="HI\x1bGH"), "risk_payload.confidence"),
    # ---- numbers: finite, real numbers (no bool, no string)
    Case("limit_price_inf", INTENTS, with_constraints(order_type="LIMIT", limit_price=INF), "constraints.limit_price"),
    Case("stop_price_nan", INTENTS, with_constraints(stop_price=float("nan")), "constraints.stop_price"),
    Case("entry_px_inf", INTENTS, with_risk(entry_px=INF), "risk_payload.entry_px"),
    Case("stop_px_infinity_literal", INTENTS, with_risk(stop_px=float("inf")), "risk_payload.stop_px"),
    Case("slippage_inf", INTENTS, with_constraints(max_slippage_bps=INF), "constraints.max_slippage_bps"),
    Case("spread_inf", INTENTS, with_constraints(max_spread_bps=INF), "constraints.max_spread_bps"),
    Case("cancel_after_inf", INTENTS, with_constraints(cancel_after_sec=INF), "constraints.cancel_after_sec"),
    Case("cancel_after_1e300", INTENTS, with_constraints(cancel_after_sec=1e300), "constraints.cancel_after_sec"),
    Case(
        "limit_price_string",
        INTENTS,
        with_constraints(order_type="LIMIT", limit_price="71000"),
        "constraints.limit_price",
    ),
    Case(
        "limit_price_true", INTENTS, with_constraints(order_type="LIMIT", limit_price=True), "constraints.limit_price"
    ),
    # ---- expiry: timezone-aware, within 2000..2100 (nothing downstream can overflow)
    Case("expiry_9999", INTENTS, with_constraints(expiry_ts="9999-12-31T23:59:59+00:00"), "constraints.expiry_ts"),
    Case("expiry_9999_west", INTENTS, with_constraints(expiry_ts="9999-12-31T23:59:59-14:00"), "constraints.expiry_ts"),
    Case(
        "expiry_year_1_east", INTENTS, with_constraints(expiry_ts="0001-01-01T00:00:00+14:00"), "constraints.expiry_ts"
    ),
    Case("expiry_2101", INTENTS, with_constraints(expiry_ts="2101-01-01T00:00:00+00:00"), "constraints.expiry_ts"),
    Case(
        "modify_risk_time_stop_9999",
        INTENTS,
        {**MODIFY_RISK, "constraints": {"expiry_ts": "9999-12-31T23:59:59+00:00"}},
        "constraints.expiry_ts",
    ),
    # ---- heartbeat status: bounded, no control characters, finite numbers
    Case("heartbeat_nul_value", HEARTBEAT, {"status": {"state": "run\x00ning"}}, "status"),
    Case("heartbeat_nul_key", HEARTBEAT, {"status": {"st\x00ate": "running"}}, "status"),
    Case("heartbeat_inf", HEARTBEAT, {"status": {"pnl": INF}}, "status"),
    Case("heartbeat_20kb", HEARTBEAT, {"status": {"blob": "x" * 20_000}}, "status"),
    Case("heartbeat_deep", HEARTBEAT, {"status": json.loads('{"a":' * 40 + "1" + "}" * 40)}, "status"),
    Case("heartbeat_many_keys", HEARTBEAT, {"status": {f"k{i}": i for i in range(2_000)}}, "status"),
    Case("heartbeat_big_int", HEARTBEAT, {"status": {"n": 10**30}}, "status"),
    # ---- path parameters that would be journaled
    Case("heartbeat_path_nul", "/api/v1/strategies/KMP%00/heartbeat", {"status": {}}, "strategy_id", ADMIN_KEY),
    Case("pause_path_nul", "/api/v1/admin/pause-strategy/KMP%00", None, "strategy_id", ADMIN_KEY),
    Case("pause_path_long", "/api/v1/admin/pause-strategy/" + "K" * 5_000, None, "strategy_id", ADMIN_KEY),
    Case("disable_symbol_nul", "/api/v1/admin/symbols/0059%0030/disable", None, "symbol", ADMIN_KEY),
    # ---- admin bodies
    Case("regime_nul", "/api/v1/risk/regime", {"regime": "RISK\x00OFF"}, "regime", ADMIN_KEY),
    Case("safe_mode_string", "/api/v1/risk/safe-mode", {"enabled": "true"}, "enabled", ADMIN_KEY),
    Case("safe_mode_int", "/api/v1/risk/safe-mode", {"enabled": 1}, "enabled", ADMIN_KEY),
    Case("vi_seconds_string", "/api/v1/risk/vi-cooldown", {"symbol": "005930", "seconds": "60"}, "seconds", ADMIN_KEY),
    Case("vi_seconds_true", "/api/v1/risk/vi-cooldown", {"symbol": "005930", "seconds": True}, "seconds", ADMIN_KEY),
    Case(
        "correct_allocation_strategy_nul",
        "/api/v1/admin/correct-allocation",
        {"symbol": "005930", "from_strategy": "_UNKNOWN_\x00", "qty": 1},
        "from_strategy",
        ADMIN_KEY,
    ),
    Case(
        "correct_allocation_note_nul",
        "/api/v1/admin/correct-allocation",
        {"symbol": "005930", "from_strategy": "_UNKNOWN_", "qty": 1, "note": "oops\x00"},
        "note",
        ADMIN_KEY,
    ),
    Case(
        "correct_allocation_qty_over_int64",
        "/api/v1/admin/correct-allocation",
        {"symbol": "005930", "from_strategy": "_UNKNOWN_", "qty": INT64_MAX + 1},
        "qty",
        ADMIN_KEY,
    ),
    Case(
        "correct_allocation_qty_string",
        "/api/v1/admin/correct-allocation",
        {"symbol": "005930", "from_strategy": "_UNKNOWN_", "qty": "1"},
        "qty",
        ADMIN_KEY,
    ),
]


@dataclass
class Env:
    oms: Oms
    db_url: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    name, url = create_database()
    config = load_config()
    config.strategies = {s: StrategyConfig(max_intents_per_min=100_000) for s in STRATEGY_KEYS}
    tmp: Path = tmp_path_factory.mktemp("bad_input")
    try:
        async with running_oms(oms_settings(tmp, url), config) as oms:
            yield Env(oms, url)
    finally:
        drop_database(name)


async def snapshot(oms: Oms) -> dict[str, Any]:
    """Everything a request could have changed: journal rows, intents, entry locks, flags, strategies."""
    rt = oms.runtime
    assert rt.journal is not None
    now = rt.clock.now()
    account = await oms.get("/api/v1/state/account")
    strategies = await oms.get("/api/v1/strategies")
    return {
        "journal": {t: rt.journal.count_after(0, t) for t in WATCHED_TABLES},
        "intents": sorted(i["intent_id"] for i in await oms.get("/api/v1/intents", limit=5000)),
        "listed_locks": {s: p["entry_lock_owner"] for s, p in (await oms.get("/api/v1/positions")).items()},
        "locks": {s: rt.state.entry_locks.owner(s, now) for s in SYMBOLS},
        "working_orders": sorted(o.order_id for o in rt.state.working.values()),
        "flags": {k: account[k] for k in ("safe_mode", "regime", "disabled_symbols", "frozen_symbols")},
        "vi_cooldowns": dict(rt.state.flags.vi_cooldowns),
        "strategies": {s: (v["paused"], v["last_heartbeat"], v["status"]) for s, v in strategies.items()},
    }


async def all_in_postgres(env: Env) -> None:
    """Wait until the journal is drained, then check Postgres holds every intent once and nothing was parked."""
    health = await env.oms.drained()
    assert health["journal_quarantined"] == 0, health
    intents = await env.oms.get("/api/v1/intents", limit=5000)
    assert await fetch_value(env.db_url, "SELECT count(*) FROM intents") == len(intents)
    assert await fetch_value(env.db_url, "SELECT count(DISTINCT intent_id) FROM intents") == len(intents)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(env: Env, case: Case) -> None:
    """Tried: one malformed request (see ``case``) — oversized integer, control character, non-finite or
    non-numeric number, out-of-window expiry, unbounded heartbeat status, bad path parameter or admin body.
    Asserts: a 422 whose ``detail`` names the field; no journal row, intent, entry lock, working order, flag
    or strategy state changed; a good intent right after is decided and everything (once, nothing parked)
    reaches Postgres."""
    oms = env.oms
    before = await snapshot(oms)
    resp = await oms.http.post(
        case.path, content=case.content(), headers={**auth(case.key), "content-type": "application/json"}
    )
    assert resp.status_code == case.status, resp.text
    detail = resp.json()["detail"]
    fields = [e["field"] for e in detail]
    assert any(f == case.field or f.endswith("." + case.field) or f.startswith(case.field + ".") for f in fields), (
        case.field,
        detail,
    )
    assert await snapshot(oms) == before, "a refused request must change nothing"

    good = await oms.intent(
        KMP, intent_type="CANCEL_ORDERS", strategy_id="KMP", symbol="*", idempotency_key=uuid.uuid4().hex
    )
    assert good.status_code == 200, good.text
    await all_in_postgres(env)


async def test_body_over_the_size_limit_is_413(env: Env) -> None:
    """Tried: a 10 MB heartbeat (Content-Length given), and a 100 KB intent sent chunked without a
    Content-Length. Asserts: 413 with a JSON ``detail``, nothing changed, and the OMS still decides a good
    intent and drains everything to Postgres."""
    oms = env.oms
    before = await snapshot(oms)
    huge = json.dumps({"status": {"blob": "x" * 10_000_000}}).encode()
    resp = await oms.http.post(HEARTBEAT, content=huge, headers={**auth(KMP), "content-type": "application/json"})
    assert resp.status_code == 413, resp.text[:300]
    assert "detail" in resp.json()

    async def chunks() -> AsyncIterator[bytes]:
        body = json.dumps(enter(idempotency_key="chunked", signal_hash="a" * 100)).encode()
        yield body[:-1] + b"," + b'"pad":"' + b"y" * 100_000 + b'"}'

    chunked = await oms.http.post(INTENTS, content=chunks(), headers={**auth(KMP), "content-type": "application/json"})
    assert chunked.status_code == 413, chunked.text[:300]
    assert "detail" in chunked.json()
    assert await snapshot(oms) == before

    good = await oms.intent(KMP, **enter(idempotency_key=uuid.uuid4().hex))
    assert good.status_code == 200 and good.json()["status"] in ("ACCEPTED", "EXECUTED", "MODIFIED"), good.text
    await all_in_postgres(env)


async def test_bounds_themselves_are_accepted_and_drain(env: Env) -> None:
    """Tried: the largest values that are still valid — desired_qty = MAX_QTY (2**53-1), a 200-character key,
    expiry in 2099, non-ASCII text, a heartbeat just under its bound, integer prices. Asserts: each is
    decided (200, whatever the risk decision), and every row reaches Postgres once with nothing parked."""
    oms = env.oms
    cases: list[tuple[str, dict[str, Any]]] = [
        (INTENTS, enter(symbol="000660", desired_qty=MAX_QTY, idempotency_key="k" * 200)),
        (INTENTS, with_constraints(expiry_ts="2099-12-31T23:59:59+09:00", limit_price=71000, max_slippage_bps=10)),
        (INTENTS, with_risk(rationale_code="돌파 — ORB", confidence="HIGH", entry_px=71000, stop_px=69000.5)),
        (HEARTBEAT, {"status": {"state": "running", "note": "상태 ok", "blob": "x" * 15_000, "n": INT64_MAX}}),
    ]
    for path, body in cases:
        if path == INTENTS:
            body = {**body, "idempotency_key": body.get("idempotency_key", uuid.uuid4().hex)}
        resp = await oms.http.post(path, json=body, headers=auth(KMP))
        assert resp.status_code == 200, (body, resp.text)
    await all_in_postgres(env)
    hb = await fetch_value(env.db_url, "SELECT status_detail->>'note' FROM strategy_state WHERE strategy_id = 'KMP'")
    assert hb == "상태 ok"


async def test_sdk_models_refuse_the_same_values() -> None:
    """Tried: building the SDK's wire models (the ones strategies/sdk sends) with the values above.
    Asserts: the strategy process gets a ValidationError before anything is sent."""
    from pydantic import ValidationError

    from broker_core.contract.wire import Constraints, IntentRequest, RiskPayload

    for build in (
        lambda: Constraints(limit_price=float("inf")),
        lambda: Constraints(limit_price="71000"),
        lambda: Constraints(cancel_after_sec=True),
        lambda: Constraints(expiry_ts="9999-12-31T23:59:59+00:00"),
        lambda: RiskPayload(rationale_code="a\x00b"),
        lambda: RiskPayload(stop_px=float("nan")),
        lambda: IntentRequest(intent_type="ENTER", strategy_id="KMP", symbol="005930", desired_qty=INT64_MAX + 1),
        lambda: IntentRequest(intent_type="ENTER", strategy_id="KMP", symbol="005930", desired_qty="3"),
    ):
        with pytest.raises(ValidationError):
            build()
    # what strategies send today still builds
    Constraints(limit_price=71000, stop_price=70900.5, cancel_after_sec=90, max_slippage_bps=15)
    RiskPayload(entry_px=71000.0, stop_px=69800, rationale_code="ORB_BREAK", confidence="HIGH")
