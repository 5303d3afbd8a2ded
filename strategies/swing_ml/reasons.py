"""Reason codes of swing-ML decisions and log lines (strategies.md §5)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # -- S3.5 decide
    SWING_BUY = "SWING_BUY"
    SWING_SELL_SCORE = "SWING_SELL_SCORE"
    SWING_MAX_HOLD = "SWING_MAX_HOLD"
    """S3.5 / S7: held trading days since the OMS allocation's entry_ts ≥ max_hold_days."""
    SWING_SKIP_RISK_OFF = "SWING_SKIP_RISK_OFF"
    SWING_SKIP_MAX_POSITIONS = "SWING_SKIP_MAX_POSITIONS"
    SWING_SKIP_SCORE = "SWING_SKIP_SCORE"
    SWING_SKIP_NOT_TOP_QUARTILE = "SWING_SKIP_NOT_TOP_QUARTILE"
    SWING_SKIP_KELLY = "SWING_SKIP_KELLY"
    """S4: f* ≤ 0 (or a size below one share) → no BUY."""
    # -- S6 risk_check
    SWING_TAKE_PROFIT = "SWING_TAKE_PROFIT"
    SWING_STOP = "SWING_STOP"
    SWING_TRAIL = "SWING_TRAIL"
    # -- S8 submission path
    DUPLICATE_SUPPRESSED = "DUPLICATE_SUPPRESSED"
    SWING_DRY_RUN = "SWING_DRY_RUN"
    """S1: mode dry_run — the intent is logged with full detail and not sent."""
    # -- S5 model lifecycle
    SWING_MODEL_PROMOTED = "SWING_MODEL_PROMOTED"
    SWING_MODEL_NOT_PROMOTED = "SWING_MODEL_NOT_PROMOTED"
    SWING_MODEL_FEATURE_MISMATCH = "SWING_MODEL_FEATURE_MISMATCH"


class Code(StrEnum):
    """The process's own decision codes (next to :class:`~strategies.swing_ml.reasons.Reason`)."""

    SWING_START = "SWING_START"
    SWING_REGIME = "SWING_REGIME"
    SWING_REGIME_UNAVAILABLE = "SWING_REGIME_UNAVAILABLE"
    SWING_SKIP_NO_REGIME = "SWING_SKIP_NO_REGIME"
    """No regime reading today: no BUY (SELLs still go)."""
    SWING_SKIP_NO_DATA = "SWING_SKIP_NO_DATA"
    SWING_SKIP_HISTORY = "SWING_SKIP_HISTORY"
    SWING_SKIP_NO_FACTORS = "SWING_SKIP_NO_FACTORS"
    SWING_SKIP_ILLIQUID = "SWING_SKIP_ILLIQUID"
    SWING_SKIP_NO_PRICE = "SWING_SKIP_NO_PRICE"
    SWING_SKIP_NO_ATR = "SWING_SKIP_NO_ATR"
    SWING_SKIP_NO_ENTRY_TS = "SWING_SKIP_NO_ENTRY_TS"
    SWING_MODEL_LOADED = "SWING_MODEL_LOADED"
    SWING_NO_MODEL = "SWING_NO_MODEL"
    """No promoted model: decide sends no BUY (max-hold SELLs still go)."""
    SWING_RETRAIN = "SWING_RETRAIN"
    SWING_DEFERRED_DROPPED = "SWING_DEFERRED_DROPPED"
    SWING_INTENT_FAILED = "SWING_INTENT_FAILED"
