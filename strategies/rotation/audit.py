"""M9: one JSON line per model decision of a cycle, appended to the account's audit log by the wiring."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from strategies.rotation.models import ModelDecision
from strategies.rotation.orders import CyclePlan


def audit_records(
    plan: CyclePlan, decisions: Mapping[str, ModelDecision], account: str | None = None
) -> list[dict[str, Any]]:
    """Per decision (sorted by model): the decision (model, action, reason, regime, momentum ranks,
    weights, exits), its budget and capped contribution, its orders and skipped deltas with their
    reasons, and the account-level caps that applied this cycle."""
    records = []
    for m in sorted(decisions):
        rec = decisions[m].as_dict()
        rec.update(
            {
                "account": account,
                "session": plan.day.isoformat(),
                "equity": plan.equity,
                "budget": plan.budgets.get(m, 0.0),
                "contribution": plan.contributions.get(m, {}),
                "orders": [o.as_dict() for o in plan.orders if o.model == m],
                "skipped": [s.as_dict() for s in plan.skipped if s.model == m],
                "caps": [c.as_dict() for c in plan.caps],
            }
        )
        records.append(rec)
    return records


def audit_line(record: Mapping[str, Any]) -> str:
    """The record as one JSON line (keys sorted, no newline inside)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
