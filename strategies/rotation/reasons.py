"""Reason codes of the rotation models and of their order planning (member name == value).

To be merged into ``broker_core.contract.reasons.ReasonCode`` by the lead; kept apart until then.
"""

from __future__ import annotations

from enum import StrEnum


class RotationReason(StrEnum):
    # ---- model decisions (M1–M4)
    ROTATION_REBALANCE = "ROTATION_REBALANCE"
    """New target weights from the momentum ranking."""
    ROTATION_DEFENSIVE_TLT = "ROTATION_DEFENSIVE_TLT"
    """A rebalance where no sector qualified (or none had data): TLT = 1.0."""
    ROTATION_HOLD = "ROTATION_HOLD"
    """M3: less than the rebalance interval since the last rebalance; hold the current book."""
    ROTATION_INACTIVE = "ROTATION_INACTIVE"
    """M2: the model is not active in this regime; no weights, its budget goes to the active models."""
    ROTATION_TAKE_PROFIT = "ROTATION_TAKE_PROFIT"
    """M4: price ≥ entry + 3.75·ATR12 → weight 0 before the weekly rebalance."""
    ROTATION_STOP = "ROTATION_STOP"
    """M4: price ≤ entry − 1.46·ATR12 → weight 0 before the weekly rebalance."""
    ROTATION_EXIT_GUARDED = "ROTATION_EXIT_GUARDED"
    """M4: an exit level was hit within the minimum holding sessions of entry (PDT guard); not acted on."""
    # ---- weights → orders (M6–M8)
    ROTATION_LIQUIDATE = "ROTATION_LIQUIDATE"
    """An inactive model's holdings are targeted to 0 (its budget now belongs to the active models)."""
    ROTATION_SYMBOL_CAP = "ROTATION_SYMBOL_CAP"
    """M7: the account weight of a symbol was cut to the per-symbol cap."""
    ROTATION_GROSS_CAP = "ROTATION_GROSS_CAP"
    """M7: all weights scaled down proportionally to the gross cap."""
    ROTATION_POSITION_TOO_SMALL = "ROTATION_POSITION_TOO_SMALL"
    """M7: an account position under the minimum dollar value was dropped (target 0)."""
    ROTATION_DELTA_SKIPPED = "ROTATION_DELTA_SKIPPED"
    """M8: the change is under the minimum fraction of equity; no order."""
    ROTATION_NO_PRICE = "ROTATION_NO_PRICE"
    """No usable price for a symbol with a target; no order."""
    # ---- data (M5)
    ROTATION_DATA_INVALID = "ROTATION_DATA_INVALID"
    """M5: the first-cycle data check failed; the account does not trade."""
