"""KPR configuration (strategies.md §2.1 and the constants inside §2.2–§2.8).

``config/kpr.yaml`` layout::

    strategy_id: KPR
    params:   {...}   # KprParams: every numeric rule of §2 (defaults = the spec)
    universe: {...}   # UniverseConfig: which symbols are considered at all

Unknown keys are rejected with the file and key named (:class:`~broker_core.config_errors.ConfigError`,
via :func:`strategies.sdk.config.load_strategy_config`). Times are ``"HH:MM"`` strings in KST and must be
quoted in YAML (unquoted ``14:30`` is the YAML 1.1 integer 870, refused here). Percentages are
fractions (0.03 = 3%).
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strategies.sdk.config import load_strategy_config

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ProgramMode(StrEnum):
    """P11 provider mode of the per-stock ProgramSignal."""

    AUTO = "AUTO"
    FORCE_WS = "FORCE_WS"
    FORCE_REST = "FORCE_REST"
    DISABLED = "DISABLED"


def _no_sexagesimal(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('a time must be a quoted "HH:MM" string (unquoted YAML 14:30 reads as 870)')
    return v


class TimeWindow(BaseModel):
    """``[start, end)`` KST."""

    model_config = _STRICT
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_text(cls, v: Any) -> Any:
        return _no_sexagesimal(v)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if not self.start < self.end:
            raise ValueError("start must be before end")
        return self

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end


class TimeBand(TimeWindow):
    """A time-of-day band with a size multiplier (P14 ``tod``)."""

    mult: float = Field(ge=0)


_TIME_FIELDS = (
    "premarket_time",
    "session_start",
    "session_end",
    "setup_cutoff",
    "late_window_start",
    "flatten_time",
)


class KprParams(BaseModel):
    model_config = _STRICT

    # ---- session (KST)
    premarket_time: time = time(8, 0)
    session_start: time = time(9, 0)
    session_end: time = time(15, 20)
    """REST polling and the clock rules stop here (continuous session end)."""

    # ---- §2.1 setup (P6–P7)
    panic_drop_min: float = Field(0.03, gt=0)
    panic_max_minutes: float = Field(15, ge=0)
    drift_drop_min: float = Field(0.02, gt=0)
    drift_min_minutes: float = Field(60, ge=0)
    depth_min: float = Field(0.02, ge=0)
    depth_max: float = Field(0.05, gt=0)
    reclaim_offset: float = Field(0.003, ge=0)
    """reclaim = setup_low·(1 + offset)"""
    stop_offset: float = Field(0.003, ge=0)
    """stop_level = setup_low·(1 − offset)"""

    # ---- §2.4 state machine (P8)
    base_closes: int = Field(2, ge=1)
    setup_cutoff: time = time(14, 30)
    """No new setups from here; SETUP_DETECTED/ACCEPTING fall back to IDLE."""
    invalidation_on: Literal["low", "close"] = "low"
    invalidation_cooldown_min: float = Field(5, ge=0)
    late_window_start: time = time(14, 0)
    """Adder: time ≥ this."""
    index_unfavourable_pct: float = Field(-0.01, le=0)
    """Adder: the symbol's index ≤ this vs prior close."""
    program_unavailable_adder: bool = False
    max_entry_tries: int = Field(2, ge=1)
    """P15: the first ENTER plus at most one retry on a later qualifying bar."""
    entry_bar_max_age_sec: float = Field(90, gt=0)
    """[resolved] an ENTER is decided only on a bar that ended at most this long ago (REST batches)."""

    # ---- §2.1 / P14 entry windows and time-of-day size
    entry_windows: tuple[TimeWindow, ...] = (
        TimeWindow(start=time(9, 30), end=time(11, 20)),
        TimeWindow(start=time(13, 10), end=time(14, 30)),
    )
    tod_bands: tuple[TimeBand, ...] = (
        TimeBand(start=time(9, 30), end=time(10, 30), mult=1.0),
        TimeBand(start=time(10, 30), end=time(11, 20), mult=0.8),
        TimeBand(start=time(13, 10), end=time(14, 0), mult=0.9),
        TimeBand(start=time(14, 0), end=time(14, 30), mult=0.5),
    )

    # ---- §2.6 confidence and sizing (P12–P15)
    base_risk_pct: float = Field(0.005, gt=0)
    conf_green_mult: float = Field(1.0, ge=0)
    conf_yellow_mult: float = Field(0.65, ge=0)
    stale_mult: float = Field(0.85, ge=0, le=1)
    max_per_sector: int = Field(2, ge=1)
    nav_cap_pct: float = Field(0.15, gt=0)
    """[resolved] per-position notional cap = the OMS default (§0.2), so the OMS never has to cut."""
    strategy_budget_pct: float | None = Field(0.30, gt=0)
    """[resolved] KPR notional (positions + working entries) ≤ this·NAV, the OMS's strategy budget."""
    cap_margin_pct: float = Field(0.005, ge=0)
    """[resolved] NAV fraction kept below the two OMS caps above: KPR values its book from a polled NAV and
    last prices up to 180 s old, the OMS from its own equity and marks of the instant it decides."""
    spread_max_pct: float = Field(0.005, gt=0)
    """[resolved] the OMS's 50 bps spread rule, checked first when a fresh quote is known."""
    quote_max_age_sec: float = Field(15, gt=0)
    entry_ask_ticks: int = Field(2, ge=0)
    entry_last_ticks: int = Field(3, ge=0)
    order_timeout_sec: float = Field(30, gt=0)
    order_cancel_grace_sec: float = Field(10, ge=0)
    """An entry still open this long after ``order_timeout_sec`` is cancelled by KPR itself."""

    # ---- §2.5 signals (P9–P11)
    investor_strong_pct: float = Field(0.02, ge=0)
    investor_conflict_pct: float = Field(0.01, ge=0)
    stale_sec: float = Field(120, gt=0)
    stale_micro_sec: float = Field(30, gt=0)
    tick_window_sec: float = Field(120, gt=0)
    tick_min_sec: float = Field(60, gt=0)
    tick_accumulate: float = Field(0.2, ge=0, le=1)
    tick_distribute: float = Field(-0.2, ge=-1, le=0)
    surge_min: float = Field(1.3, ge=0)
    surge_cpr_min: float = Field(0.6, ge=0, le=1)
    surge_require_up_bar: bool = True
    """P10b: ``C > O`` required (configurable, default on)."""
    bar_strength_cpr_min: float = Field(0.75, ge=0, le=1)
    bar_strength_vol_mult: float = Field(1.3, ge=0)
    bar_strength_lookback: int = Field(20, ge=1)
    bar_strength_min_bars: int = Field(5, ge=1)
    """[resolved] fewer prior bars than this → no BarStrength verdict."""
    program_mode: ProgramMode = ProgramMode.AUTO
    program_net_pct: float = Field(0.01, ge=0)
    program_trend_min: float = Field(5, gt=0)
    market_program_alpha: float = Field(0.35, gt=0, le=1)
    market_program_stale_sec: float = Field(180, gt=0)
    market_program_max_failures: int = Field(3, ge=1)

    # ---- §2.2 tiers (P1–P4)
    hot_max: int = Field(20, ge=0)
    warm_max: int = Field(30, ge=0)
    hot_drop_open: float = Field(-0.015, le=0)
    warm_drop_open: float = Field(-0.007, le=0)
    warm_depth_min: float = Field(0.01, ge=0)
    range_expansion_atr: float = Field(0.8, gt=0)
    hot_demote_min: float = Field(10, ge=0)
    warm_demote_min: float = Field(15, ge=0)
    warm_poll_sec: float = Field(30, gt=0)
    warm_poll_micro_sec: float = Field(15, gt=0)
    cold_poll_sec: float = Field(180, gt=0)
    retier_sec: float = Field(5, gt=0)
    slot_retry_sec: float = Field(120, gt=0)
    """[resolved] a symbol denied a slot runs on REST and is asked for again after this long."""

    # ---- §2.8 micro-windows (P20)
    micro_window_starts: tuple[time, ...] = (time(9, 30), time(10, 0), time(11, 30), time(13, 0), time(14, 30))
    micro_window_sec: float = Field(180, gt=0)

    # ---- §2.7 exits (P16–P19)
    partial_r: float = Field(1.5, gt=0)
    partial_frac: float = Field(0.5, gt=0, lt=1)
    target_r_high: float = Field(2.5, gt=0)
    target_r_normal: float = Field(2.0, gt=0)
    target_r_low: float = Field(1.5, gt=0)
    vol_high_atr_pct: float = Field(0.04, gt=0)
    vol_low_atr_pct: float = Field(0.02, gt=0)
    adaptive_targets: bool = True
    time_stop_min: float = Field(45, gt=0)
    flatten_time: time = time(15, 15)
    flow_reduce: bool = False
    flow_reduce_frac: float = Field(0.5, gt=0, lt=1)
    exit_band_pct: float = Field(0.003, ge=0)
    exit_band_ticks: int = Field(3, ge=0)
    exit_retry_sec: float = Field(20, gt=0)
    recovered_stop_pct: float = Field(0.015, gt=0, lt=1)
    """[resolved] stop of a recovered allocation without one at the OMS: avg·(1 − this)."""

    # ---- §2.2 premarket cache (P1)
    adv_sessions: int = Field(20, ge=1)
    atr_period: int = Field(20, ge=1)
    profile_sessions: int = Field(20, ge=1)
    profile_min_sessions: int = Field(5, ge=1)
    daily_lookback_days: int = Field(90, ge=30)
    """Calendar days of daily bars asked for (≥ atr_period + adv_sessions sessions)."""

    @field_validator(*_TIME_FIELDS, "micro_window_starts", mode="before")
    @classmethod
    def _time_text(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [_no_sexagesimal(x) for x in v]
        return _no_sexagesimal(v)

    @model_validator(mode="after")
    def _consistent(self) -> KprParams:
        if not self.session_start < self.setup_cutoff < self.flatten_time < self.session_end:
            raise ValueError("times must satisfy session_start < setup_cutoff < flatten_time < session_end")
        if self.depth_min >= self.depth_max:
            raise ValueError("depth_min must be below depth_max")
        if self.tick_min_sec > self.tick_window_sec:
            raise ValueError("tick_min_sec must not exceed tick_window_sec")
        if self.vol_low_atr_pct > self.vol_high_atr_pct:
            raise ValueError("vol_low_atr_pct must not exceed vol_high_atr_pct")
        if self.stale_micro_sec > self.stale_sec:
            raise ValueError("stale_micro_sec must not exceed stale_sec")
        if self.profile_min_sessions > self.profile_sessions:
            raise ValueError("profile_min_sessions must not exceed profile_sessions")
        return self


class UniverseConfig(BaseModel):
    """Which symbols KPR considers (P1); the wiring supplies the listing (sector map) otherwise."""

    model_config = _STRICT
    symbols: list[str] = Field(default_factory=list)
    """Explicit universe; empty = every common share of the static sector map."""
    exclude: list[str] = Field(default_factory=list)
    sector_overrides: dict[str, str] = Field(default_factory=dict)
    market_overrides: dict[str, Literal["KOSPI", "KOSDAQ"]] = Field(default_factory=dict)
    """Symbol → listing market (the index of the P8 regime adder); default from the reference data."""


class KprConfig(BaseModel):
    model_config = _STRICT
    strategy_id: str = "KPR"
    params: KprParams = Field(default_factory=KprParams)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)


def load_kpr_config(path: str | Path | None = None) -> KprConfig:
    """Load and validate ``config/kpr.yaml`` (or ``path``); ConfigError names the file and key."""
    return load_strategy_config("kpr", KprConfig, path)
