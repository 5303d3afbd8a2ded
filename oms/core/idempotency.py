"""Idempotency keys: the same key twice yields the stored result, never a second order.

- A strategy may send its own ``idempotency_key``. Explicit keys are scoped per strategy with
  :func:`scoped_key`, so two strategies using the same text never collide.
- Without one, the OMS derives a key with :func:`derive_idempotency_key` from the fields that
  identify a decision: strategy, symbol, intent type, trading day, signal hash, rationale code
  and quantity. The strategy id is part of the hashed fields, so derived keys are already
  strategy-specific (scoping them again is harmless).

Keys are **per trading day**: a key de-duplicates within the trading day it was first used. Derived
keys contain the day; for an explicit key the OMS forgets the decisions of earlier days at the day
rollover (``oms/core/rollover.py``), as a restart does, so the same key on a later day is a new intent.
``scoped_key(..., trading_day=day)`` puts the day into the stored key as well, so that the later day's
intent does not collide with the earlier one under the database's unique (instance, key) constraint.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

from oms.core.types import IntentType

AUTO_PREFIX = "auto:"


def _canonical(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    return value


def derive_idempotency_key(
    strategy_id: str,
    symbol: str,
    intent_type: IntentType | str,
    trading_day: date,
    signal_hash: str | None,
    rationale_code: str | None,
    qty: int | None,
) -> str:
    """``"auto:" + sha256(canonical JSON of the fields)`` (hex, 64 chars after the prefix).

    Canonical form: a JSON array in fixed field order, strings stripped of surrounding
    whitespace, the intent type by its value, the trading day as ISO date, missing values as
    ``null`` (so "no signal hash" never equals an empty-string hash).
    """
    if isinstance(intent_type, str) and not isinstance(intent_type, IntentType):
        intent_type = IntentType(intent_type.strip().upper())
    if qty is not None and not isinstance(qty, int):
        raise TypeError(f"qty must be an int or None, got {type(qty).__name__}")
    fields = [
        "v1",
        _canonical(strategy_id),
        _canonical(symbol),
        IntentType(intent_type).value,
        trading_day.isoformat(),
        _canonical(signal_hash),
        _canonical(rationale_code),
        qty,
    ]
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return AUTO_PREFIX + hashlib.sha256(payload.encode("ascii")).hexdigest()


def _escape(strategy_id: str) -> str:
    # Injective escaping so a ':' inside a strategy id can't forge another strategy's scope.
    return strategy_id.replace("%", "%25").replace(":", "%3A")


def scoped_key(strategy_id: str, key: str, trading_day: date | None = None) -> str:
    """``"<strategy_id>:<key>"``, or ``"<strategy_id>:<YYYY-MM-DD>:<key>"`` with ``trading_day``
    (``%`` and ``:`` in the strategy id percent-escaped).

    Always prefixes, so the mapping (strategy, key) → scoped key, and (strategy, day, key) → scoped key,
    is injective (the strategy part holds no raw ``:``, the day part is fixed-width).
    """
    if not strategy_id:
        raise ValueError("strategy_id must not be empty")
    if not key:
        raise ValueError("idempotency key must not be empty")
    if trading_day is not None:
        return f"{_escape(strategy_id)}:{trading_day.isoformat()}:{key}"
    return f"{_escape(strategy_id)}:{key}"
