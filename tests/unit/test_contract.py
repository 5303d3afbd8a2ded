"""The OMS and the SDK share one contract (``broker_core.contract``): what the OMS emits parses as the
contract's models, and every reason code the code base emits is a member of ``ReasonCode``."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from broker_core.clock import KST
from broker_core.contract import enums, wire
from broker_core.contract.reasons import RISK_REASONS, ReasonCode
from oms.core.execution import fill_event, order_event
from oms.core.types import FillRecord, OrderRecord, OrderState, OrderType
from strategies.sdk import models as sdk_models

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)


def test_sdk_uses_the_contract_not_a_copy() -> None:
    assert sdk_models.IntentType is enums.IntentType
    assert sdk_models.OrderType is enums.OrderType
    assert sdk_models.IntentReply is wire.IntentReply
    assert sdk_models.RiskPayload is wire.RiskPayload


def test_order_and_fill_events_parse_as_the_contract() -> None:
    order = OrderRecord(
        order_id="o1",
        intent_id="i1",
        strategy_id="KMP",
        symbol="005930",
        side="BUY",
        qty=10,
        order_type=OrderType.LIMIT,
        state=OrderState.SUBMITTED,
        created_at=NOW,
        updated_at=NOW,
        limit_price=70_000.0,
    )
    parsed = wire.parse_event(json.loads(json.dumps(order_event(order))))
    assert isinstance(parsed, wire.OrderEvent) and parsed.is_open and parsed.qty == 10
    fill = FillRecord(
        execution_id="e1", order_id="o1", strategy_id="KMP", symbol="005930", side="BUY", qty=10, price=70_000.0, ts=NOW
    )
    parsed_fill = wire.parse_event(json.loads(json.dumps(fill_event(fill))))
    assert isinstance(parsed_fill, wire.FillEvent) and parsed_fill.price == 70_000.0


def test_unknown_event_type_is_not_guessed() -> None:
    assert wire.parse_event({"type": "heartbeat"}) is None


def test_reason_codes_are_their_own_names() -> None:
    assert all(code.name == code.value for code in ReasonCode)
    assert set(RISK_REASONS) <= set(ReasonCode)


_EMITTED = re.compile(r"reason=([A-Z][A-Z0-9_]{2,})")


@pytest.mark.parametrize("room", ["oms", "strategies"])
def test_every_logged_reason_is_a_reason_code(room: str) -> None:
    """``reason=CODE`` in a log line names a member of ReasonCode (a typo would be a silent new code)."""
    members = {c.value for c in ReasonCode}
    unknown = {
        f"{path.relative_to(ROOT)}: {code}"
        for path in (ROOT / room).rglob("*.py")
        for code in _EMITTED.findall(path.read_text())
        if code not in members
    }
    assert unknown == set()
