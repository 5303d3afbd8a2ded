"""KMP configuration (strategies.md §1.1 and the constants inside §1.2–§1.10).

``config/kmp.yaml`` layout::

    strategy_id: KMP
    params:   {...}   # KmpParams: every numeric rule of §1 (defaults = the spec)
    universe: {...}   # UniverseConfig: which symbols are considered at all

Unknown keys are rejected with the file and key named (:class:`KmpConfigError`). Times are
``"HH:MM"`` or ``"HH:MM:SS"`` strings in KST; they must be quoted in YAML (unquoted ``14:30`` is
read by YAML 1.1 as the sexagesimal integer 870, which is refused here rather than misread).
Percentages are fractions (0.012 = 1.2%).
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "kmp.yaml"


class KmpConfigError(ValueError):
    """config/kmp.yaml is missing or malformed; the message names the file and the key."""


_TIME_FIELDS = (
    "premarket_time",
    "or_start",
    "or_end",
    "scan_time",
    "scan_deadline",
    "entry_start",
    "entry_end",
    "flatten_time",
)


class KmpParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # ---- §1.1 session times (KST)
    premarket_time: time = time(8, 0)
    """§1.2 premarket cache build (any time before 09:00; ≈ 1,300 proxied REST calls: start it early)."""
    or_start: time = time(9, 0)
    or_end: time = time(9, 15)
    """Opening range = 1m bars starting in [or_start, or_end) (09:00–09:14)."""
    scan_time: time = time(9, 15)
    scan_deadline: time = time(9, 16)
    """K9: the scan must finish by this time (a later scan still runs and is logged KMP_SCAN_LATE)."""
    entry_start: time = time(9, 16)
    entry_end: time = time(10, 0)
    """Entries are submitted strictly before this time; WATCH/WAIT_ACCEPTANCE/ARMED end here."""
    flatten_time: time = time(14, 30)

    # ---- §1.1 portfolio
    max_positions: int = Field(4, ge=1)
    max_per_sector: int = Field(1, ge=1)

    # ---- §1.2 universe / premarket caches
    sma_fast: int = Field(20, ge=1)
    sma_slow: int = Field(60, ge=1)
    slope_lag: int = Field(5, ge=1)
    value_base_sessions: int = Field(14, ge=1)
    vol_base_sessions: int = Field(20, ge=1)
    vol_base_start: time = time(9, 0)
    vol_base_end: time = time(10, 0)
    """vol1m_base pools the minutes in [vol_base_start, vol_base_end) (09:00–09:59)."""
    gap_skip_pct: float = Field(0.05, gt=0)

    # ---- §1.3 regime and program overlay
    regime_interval_sec: float = Field(15.0, gt=0)
    risk_off_index_drop: float = Field(-0.015, lt=0)
    chop_er_max: float = Field(0.25, ge=0, le=1)
    chop_bars: int = Field(20, ge=2)
    chop_min_bars: int = Field(10, ge=2)
    leader_surge_min: float = Field(3.0, ge=0)
    leader_rvol_min: float = Field(1.5, ge=0)
    leader_stale_sec: float = Field(120.0, gt=0)
    breadth_min: int = Field(8, ge=0)
    """K5 leader count for a universe of ``breadth_reference_universe`` names; the engine scales it to the
    day's universe N (§6 rule): ``max(1, ceil(breadth_min · N / reference))`` (0 disables the test)."""
    breadth_reference_universe: int | None = Field(400, ge=1)
    """Universe size ``breadth_min`` is set for (the spec's ≈400 names); None = use ``breadth_min`` as is."""
    program_poll_sec: float = Field(60.0, gt=0)
    program_ewma_alpha: float = Field(0.35, gt=0, le=1)
    program_stale_sec: float = Field(180.0, gt=0)
    program_max_failures: int = Field(3, ge=1)
    program_inflow_mult: float = Field(1.10, gt=0)
    program_outflow_mult: float = Field(0.85, gt=0)
    program_mixed_mult: float = Field(1.00, gt=0)

    # ---- §1.4 scanner / opening range
    surge_min: float = Field(3.0, ge=0)
    candidates_top_n: int = Field(20, ge=1)
    or_range_min: float = Field(0.012, ge=0)
    or_range_max: float = Field(0.055, gt=0)
    vi_ref_grace_sec: float = Field(60.0, ge=0)
    """[resolved] how long a CANDIDATE waits for a static-VI reference before DONE KMP_VI_MISSING."""

    # ---- §1.5 state machine
    support_factor: float = Field(0.998, gt=0, le=1)
    acceptance_timeout_sec: float = Field(300.0, gt=0)
    order_timeout_sec: float = Field(30.0, gt=0)

    # ---- §1.6 entry gates
    day_loss_entry_block_pct: float = Field(-0.02, lt=0)
    surge_decay_per_min: float = Field(0.04, ge=0)
    rvol_min: float = Field(2.0, ge=0)
    spread_max_pct: float = Field(0.004, gt=0)
    quote_max_age_sec: float = Field(30.0, gt=0)
    """[resolved] a bid/ask older than this counts as missing (spread gate fails KMP_G_SPREAD_NA)."""
    vi_band: float = Field(0.02, gt=0)
    """Static-VI band used for the wall; the exchange's is 0.10 (§1.1 note, flagged)."""
    vi_wall_ticks: int = Field(10, ge=0)
    vi_cooldown_sec: float = Field(600.0, ge=0)
    quality_min: float = Field(40.0, ge=0, le=100)

    # ---- §1.6 K13 order
    cushion_ticks: int = Field(3, ge=0)
    cushion_spread_mult: float = Field(2.0, ge=0)

    # ---- §1.7 quality score and sizing
    quality_mult_low: float = Field(0.5, ge=0)
    """[40, 60)"""
    quality_mult_mid: float = Field(1.0, ge=0)
    """[60, 80)"""
    quality_mult_high: float = Field(1.5, ge=0)
    """[80, 100]"""
    quality_band_mid: float = Field(60.0, ge=0, le=100)
    quality_band_high: float = Field(80.0, ge=0, le=100)
    sector_saturation_penalty: float = Field(5.0, ge=0)
    sector_saturation_min: float = Field(-15.0, le=0)
    base_risk_pct: float = Field(0.005, gt=0)
    size_time_decay: float = Field(0.012, ge=0)
    size_time_floor: float = Field(0.45, ge=0, le=1)
    liquidity_cap_pct: float = Field(0.05, gt=0)
    liquidity_bars: int = Field(5, ge=1)
    nav_cap_pct: float = Field(0.20, gt=0)
    atr_period: int = Field(14, ge=1)
    hard_stop_atr_mult: float = Field(1.2, ge=0)
    structure_stop_ticks: int = Field(2, ge=0)

    # ---- §1.8 exits
    early_fail_min: float = Field(15.0, ge=0)
    stall_min: float = Field(8.0, ge=0)
    stall_r: float = Field(0.5)
    trail_activation_r: float = Field(0.5, ge=0)
    trail_f_base: float = Field(0.5, ge=0, le=1)
    trail_f_start_min: float = Field(15.0, ge=0)
    trail_f_slope: float = Field(0.0167, ge=0)
    trail_f_max_add: float = Field(0.25, ge=0)
    trail_f_defensive: float = Field(0.7, ge=0, le=1)
    day_loss_flatten_pct: float = Field(-0.03, lt=0)
    exit_band_pct: float = Field(0.003, ge=0)
    exit_band_ticks: int = Field(3, ge=0)
    exit_retry_sec: float = Field(20.0, gt=0)
    """[resolved] re-send a marketable exit when the position is still open this long after."""
    recovered_stop_pct: float = Field(0.015, gt=0, lt=1)
    """[resolved] stop for a recovered position when the OMS has none (avg·(1 − this))."""

    # ---- §1.9 WebSocket
    max_slots: int = Field(20, ge=1)
    quote_near_trig_ticks: int = Field(5, ge=0)
    ticks_carry_quotes: bool = False
    """True when the trade channel carries reliable bid/ask: no quote subscriptions (K20)."""

    # ---- §1.10 logging / alerts
    imbalance_window_sec: float = Field(120.0, gt=0)
    imbalance_min_sec: float = Field(60.0, gt=0)
    gate_log_throttle_sec: float = Field(5.0, ge=0)
    """[resolved] the same gate failure of one symbol is logged at most once per this many s."""
    vi_block_alert_count: int = Field(3, ge=1)
    vi_block_alert_window_sec: float = Field(600.0, gt=0)
    missed_fill_alert_ratio: float = Field(0.30, ge=0, le=1)
    missed_fill_alert_min_tries: int = Field(5, ge=1)
    rest_failure_alert_streak: int = Field(3, ge=1)

    @field_validator(*_TIME_FIELDS, "vol_base_start", "vol_base_end", mode="before")
    @classmethod
    def _time_text(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            raise ValueError('a time must be a quoted "HH:MM" string (unquoted YAML 14:30 reads as 870)')
        return v

    @model_validator(mode="after")
    def _consistent(self) -> KmpParams:
        if not self.or_start < self.or_end <= self.scan_time < self.entry_start < self.entry_end < self.flatten_time:
            raise ValueError(
                "times must satisfy or_start < or_end <= scan_time < entry_start < entry_end < flatten_time"
            )
        if self.or_range_min >= self.or_range_max:
            raise ValueError("or_range_min must be below or_range_max")
        if self.imbalance_min_sec > self.imbalance_window_sec:
            raise ValueError("imbalance_min_sec must not exceed imbalance_window_sec")
        if not self.quality_min <= self.quality_band_mid <= self.quality_band_high:
            raise ValueError("quality bands must satisfy quality_min <= quality_band_mid <= quality_band_high")
        if self.chop_min_bars > self.chop_bars:
            raise ValueError("chop_min_bars must not exceed chop_bars")
        return self


class UniverseConfig(BaseModel):
    """Which symbols KMP considers before the K1 filters (the caller supplies the listing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    symbols: list[str] = Field(default_factory=list)
    """Explicit universe; empty = every listed common share the caller supplies."""
    exclude: list[str] = Field(default_factory=list)
    markets: list[str] = Field(default_factory=lambda: ["KOSPI", "KOSDAQ"])
    sector_overrides: dict[str, str] = Field(default_factory=dict)
    """Symbol → sector on top of the static sector map (B8)."""


class KmpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy_id: str = "KMP"
    params: KmpParams = Field(default_factory=KmpParams)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def parse_kmp_config(data: Any, source: str = "kmp config") -> KmpConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KmpConfigError(f"{source}: top level must be a mapping")
    try:
        return KmpConfig.model_validate(data)
    except ValidationError as exc:
        raise KmpConfigError(_describe(exc, source)) from exc


def load_kmp_config(path: str | Path | None = None) -> KmpConfig:
    """Load and validate ``config/kmp.yaml`` (or ``path``)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not p.exists():
        raise KmpConfigError(f"{p}: configuration file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise KmpConfigError(f"{p}: not valid YAML ({exc})") from exc
    return parse_kmp_config(data, str(p))
