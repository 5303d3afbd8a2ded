"""Nulrimok configuration (strategies.md §3; defaults = the spec, **[resolved]** choices marked there).

``config/nulrimok.yaml`` layout::

    strategy_id: NULRIMOK
    params:   {...}   # NulrimokParams: every numeric rule and time of §3
    universe: {...}   # UniverseConfig: the listing considered before N3
    lrs:      {...}   # LrsConfig: where the Local Research Store lives and how much it fetches
    files:    {...}   # FilesConfig: optional inputs the broker cannot give (earnings, blacklist, KRW/USD)

Unknown keys are rejected with the file and the key named (:class:`NulrimokConfigError`, a
:class:`~broker_core.config_errors.ConfigError`). Times are ``"HH:MM[:SS]"`` KST strings and must be
quoted in YAML (unquoted ``14:30`` is the sexagesimal integer 870 for YAML 1.1, refused here).
Percentages are fractions (0.005 = 0.5%).
"""

from __future__ import annotations

import math
import os
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from broker_core.config_errors import ConfigError
from strategies.sdk.config import PROJECT_ROOT, StrictModel, config_path, load_strategy_config

DATA_DIR_ENV = "STRATEGY_DATA_DIR"
"""The strategy's own volume (the compose file mounts ``nulrimok_data`` there)."""
DEFAULT_DATA_DIR = PROJECT_ROOT / "var" / "nulrimok"


class NulrimokConfigError(ConfigError):
    """config/nulrimok.yaml is missing or malformed; the message names the file and the key."""


_TIMES = (
    "dse_time",
    "dse_deadline",
    "nightly_time",
    "session_start",
    "flow_exit_time",
    "flow_exit_deadline",
    "entry_start",
    "entry_end",
    "time_stop_time",
    "session_end",
)


class NulrimokParams(StrictModel):
    # ---- schedule (KST)
    dse_time: time = time(8, 0)
    """N3–N13: the Daily Selection Engine runs at this time (catch-up later when started late)."""
    dse_deadline: time = time(8, 30)
    """A DSE finishing later is logged NULRIMOK_DSE_LATE (its watchlist is still used)."""
    nightly_time: time = time(16, 0)
    """N2: after the close (daily rows are final from 15:30): LRS refresh + precompute."""
    session_start: time = time(9, 0)
    flow_exit_time: time = time(9, 1)
    """N28: flagged positions exit at the first liquid minute ..."""
    flow_exit_deadline: time = time(9, 5)
    """... and by this time (the exit is re-sent until it fills)."""
    entry_start: time = time(10, 0)
    """N17/N20: entries from 10:00 (the WebSocket slots KMP frees); N16: triggers on earlier bars count."""
    entry_end: time = time(15, 10)
    """N20: no entry order at or after this time; working entries are cancelled here."""
    time_stop_time: time = time(15, 10)
    """N26/N27: time stops and the session-close setup tags are evaluated at this time."""
    session_end: time = time(15, 20)

    # ---- N3 universe
    universe_top_n: int = Field(500, ge=1)
    """Top N by 20-day ADV (the spec's range 300–800)."""
    adv_sessions: int = Field(20, ge=1)
    earnings_sessions: int = Field(3, ge=1)
    """Drop a ticker with earnings within the next N sessions (today included; weekdays, holidays ignored)."""

    # ---- N4 regime (index = KOSPI)
    regime_index: str = "KOSPI"
    regime_ma: int = Field(50, ge=2)
    breadth_sma: int = Field(20, ge=2)
    breadth_min: float = Field(0.55, ge=0, le=1)
    vol_window: int = Field(20, ge=2)
    vol_lookback: int = Field(252, ge=20)
    vol_pct_max: float = Field(0.90, gt=0, le=1)
    fx_days: int = Field(5, ge=1)
    fx_max_change: float = Field(0.02)
    w_price: float = Field(0.25, ge=0)
    w_breadth: float = Field(0.30, ge=0)
    w_vol: float = Field(0.25, ge=0)
    w_fx: float = Field(0.20, ge=0)
    tier_a_above: float = Field(0.65, ge=0, le=1)
    """Tier A: score > this."""
    tier_b_from: float = Field(0.40, ge=0, le=1)
    """Tier B: tier_b_from ≤ score ≤ tier_a_above; Tier C below."""
    risk_mult_a: float = Field(1.0, ge=0)
    risk_mult_b: float = Field(0.5, ge=0)
    risk_mult_c: float = Field(0.0, ge=0)

    # ---- N5 sector
    sector_basket: int = Field(15, ge=1)
    sector_flow_days: int = Field(20, ge=1)
    sector_w_flow: float = 0.45
    sector_w_breadth: float = 0.30
    sector_w_participation: float = 0.25
    sector_rank_weights: list[float] = Field(default_factory=lambda: [1.0, 0.8, 0.6])
    sector_other_weight: float = Field(0.3, ge=0)

    # ---- N6 flow
    persistence_days: int = Field(10, ge=1)
    persistence_min: float = Field(0.6, ge=0, le=1)
    intensity_days: int = Field(5, ge=1)
    accel_fast: int = Field(5, ge=1)
    accel_slow: int = Field(20, ge=1)
    flow_w_persistence: float = 0.40
    flow_w_intensity: float = 0.35
    flow_w_accel: float = 0.25

    # ---- N7 leader
    rs_short: int = Field(20, ge=1)
    rs_long: int = Field(60, ge=1)
    leader_pct_a: float = Field(0.60, ge=0, le=1)
    leader_pct_b: float = Field(0.70, ge=0, le=1)
    """Also used under Tier C, where nothing is tradable (**[resolved]**: the artifact still ranks)."""

    # ---- N8 trend
    trend_sma: int = Field(50, ge=2)
    slope_lag: int = Field(5, ge=1)

    # ---- N9–N10 anchor and AVWAP
    anchor_lookback: int = Field(40, ge=2)
    anchor_run_min: int = Field(5, ge=1)
    impulse_vol_mult: float = Field(2.0, gt=0)
    impulse_avg_days: int = Field(20, ge=1)
    impulse_cpr_min: float = Field(0.7, ge=0, le=1)
    acceptance_tol: float = Field(0.01, ge=0)
    """Acceptance: L_d ≤ AVWAP_d·(1 + tol) ∧ H_d ≥ AVWAP_d·(1 − tol)."""
    band_pct: float = Field(0.005, gt=0)

    # ---- N11–N12 rank and conviction
    prox_scale: float = Field(0.05, gt=0)
    rank_w_flow: float = 0.40
    rank_w_rs: float = 0.20
    rank_w_sector: float = 0.20
    rank_w_prox: float = 0.20
    tradable_frac_a: float = Field(0.30, ge=0, le=1)
    tradable_frac_b: float = Field(0.20, ge=0, le=1)
    conv_w_flow: float = 0.35
    conv_w_leader: float = 0.25
    conv_w_sector: float = 0.20
    conv_w_trend: float = 0.20
    bucket_top_pct: float = Field(0.80, ge=0, le=1)
    """Conviction percentile ≥ this → top 20% → ``bucket_top_mult``."""
    bucket_mid_pct: float = Field(0.50, ge=0, le=1)
    bucket_low_pct: float = Field(0.20, ge=0, le=1)
    """Below this → bottom 20% → skip."""
    bucket_top_mult: float = Field(1.5, ge=0)
    bucket_mid_mult: float = Field(1.0, ge=0)
    bucket_low_mult: float = Field(0.7, ge=0)

    # ---- ATRs
    atr_daily: int = Field(20, ge=1)
    atr30m_period: int = Field(14, ge=1)
    atr30m_from_daily: float = Field(round(1 / math.sqrt(13), 4), gt=0)
    """**[resolved]** ATR30m estimate without 30m history: daily ATR20 × 1/√13 (13 bars a session)."""

    # ---- N13 flow reversal
    flow_reversal_days: int = Field(2, ge=1)

    # ---- N14–N15 monitoring
    max_slots: int = Field(20, ge=1)
    inactive_band_pct: float = Field(0.01, ge=0)
    inactive_after_min: float = Field(120.0, gt=0)
    refresh_times: list[time] = Field(default_factory=lambda: [time(11, 30), time(13, 0), time(14, 30)])

    # ---- N18–N20 triggers, confirmation, order
    trigger_sma: int = Field(5, ge=1)
    trigger_vol_frac: float = Field(0.60, gt=0)
    vol_mean_bars: int = Field(20, ge=1)
    confirm_bars: int = Field(2, ge=1)
    confirm_upper_mult: float = Field(1.003, gt=0)
    disarm_mult: float = Field(0.998, gt=0)
    entry_cancel_margin_sec: float = Field(5.0, ge=0)
    """``cancel_after_sec`` = to the close of the next 30m bar plus this (the engine also cancels there)."""

    # ---- N21–N22 sizing and portfolio
    base_risk_pct: float = Field(0.005, gt=0)
    bonus_vol_frac: float = Field(0.40, gt=0)
    bonus_mult: float = Field(1.10, gt=0)
    stop_atr_mult: float = Field(1.2, ge=0)
    daily_risk_budget_pct: float = Field(0.03, gt=0)
    sector_risk_frac: float = Field(0.35, gt=0, le=1)
    min_size_frac: float = Field(0.30, ge=0, le=1)
    max_position_pct: float = Field(0.15, gt=0)
    """The OMS's per-position cap (§0.2), applied first so the OMS does not have to cut the order."""

    # ---- N23–N28 position management
    avwap_break_mult: float = Field(0.993, gt=0)
    avwap_break_vol_mult: float = Field(1.5, gt=0)
    reclaim_first_bar: int = Field(3, ge=1)
    reclaim_last_bar: int = Field(5, ge=1)
    entry_day_min_pnl: float = 0.0
    failed_session: int = Field(2, ge=1)
    failed_min_pnl: float = 0.01
    swing_high_sessions: int = Field(10, ge=1)
    momentum_sessions: int = Field(3, ge=1)
    momentum_sma: int = Field(10, ge=1)
    mr_mfe_atr: float = Field(1.0, ge=0)
    mr_pullback_atr: float = Field(0.5, ge=0)
    mr_target_atr: float = Field(1.5, ge=0)
    mr_reduce_frac: float = Field(0.70, gt=0, le=1)
    mr_sma: int = Field(5, ge=1)
    grind_persistence_min: float = Field(0.6, ge=0, le=1)
    grind_reclaim_bars: int = Field(2, ge=1)
    recovered_stop_pct: float = Field(0.03, gt=0, lt=1)
    """**[resolved]** stop of a recovered position without a stop at the OMS nor an ATR: avg·(1 − this)."""

    # ---- C6 exits, polling
    exit_band_pct: float = Field(0.003, ge=0)
    exit_band_ticks: int = Field(3, ge=0)
    exit_retry_sec: float = Field(30.0, gt=0)
    price_poll_sec: float = Field(60.0, gt=0)
    account_poll_sec: float = Field(60.0, gt=0)
    bar_delay_sec: float = Field(5.0, ge=0)
    """30m bars are built this long after each boundary (the last 1m bar must be complete)."""

    @field_validator(*_TIMES, mode="before")
    @classmethod
    def _time_text(cls, v: Any) -> Any:
        return _no_sexagesimal(v)

    @field_validator("refresh_times", mode="before")
    @classmethod
    def _times_text(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_no_sexagesimal(x) for x in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> NulrimokParams:
        if not self.dse_time <= self.dse_deadline <= self.session_start:
            raise ValueError("times must satisfy dse_time <= dse_deadline <= session_start")
        if not self.session_start <= self.flow_exit_time <= self.flow_exit_deadline < self.entry_start:
            raise ValueError("times must satisfy session_start <= flow_exit_time <= flow_exit_deadline < entry_start")
        if not self.entry_start < self.entry_end <= self.session_end:
            raise ValueError("times must satisfy entry_start < entry_end <= session_end")
        if not self.entry_start < self.time_stop_time <= self.session_end:
            raise ValueError("time_stop_time must lie in (entry_start, session_end]")
        if self.nightly_time <= self.session_end:
            raise ValueError("nightly_time must be after session_end (daily rows are final after the close)")
        if not self.tier_b_from <= self.tier_a_above:
            raise ValueError("tier_b_from must not exceed tier_a_above")
        if not self.bucket_low_pct <= self.bucket_mid_pct <= self.bucket_top_pct:
            raise ValueError("conviction buckets must satisfy bucket_low_pct <= bucket_mid_pct <= bucket_top_pct")
        if self.reclaim_first_bar > self.reclaim_last_bar:
            raise ValueError("reclaim_first_bar must not exceed reclaim_last_bar")
        if self.accel_fast > self.accel_slow:
            raise ValueError("accel_fast must not exceed accel_slow")
        if self.w_price + self.w_breadth + self.w_vol + self.w_fx <= 0:
            raise ValueError("the regime weights must not all be 0")
        return self


class UniverseConfig(StrictModel):
    """The listing considered before N3 (top N by ADV20, event filters)."""

    symbols: list[str] = Field(default_factory=list)
    """Explicit listing; empty = every symbol of the static sector map (B8)."""
    exclude: list[str] = Field(default_factory=list)
    sector_overrides: dict[str, str] = Field(default_factory=dict)
    breadth_members: list[str] = Field(default_factory=list)
    """N4 breadth population (KOSPI200 members); empty = the universe's KOSPI-listed symbols (**[resolved]**)."""


class LrsConfig(StrictModel):
    """The Local Research Store (strategies.md N1–N2)."""

    data_dir: str | None = None
    """None → ``$STRATEGY_DATA_DIR`` → ``var/nulrimok`` under the project."""
    db_file: str = "lrs.sqlite"
    daily_history_days: int = Field(760, ge=120)
    """Calendar days of daily OHLCV (≥ 2 y: SMA50 + slope and a 1-y volatility percentile need ≈ 275 sessions)."""
    flow_history_days: int = Field(400, ge=30)
    """Calendar days of investor flow (≥ 1 y where the broker has it; KIS serves ≈ 30 sessions)."""
    intraday_sessions: int = Field(3, ge=1)
    """N1: last sessions of 30m bars fetched for candidates and held positions."""
    overlap_days: int = Field(7, ge=0)
    """An incremental refresh re-asks this many calendar days before the last fetched one (late revisions)."""
    concurrency: int = Field(4, ge=1)
    """REST calls in flight at once (the OMS proxy budgets them further)."""
    sector_refresh_days: int = Field(30, ge=1)
    progress: Literal["auto", "rich", "log", "off"] = "auto"
    """auto: a rich progress bar on a terminal, log lines (every 10%) otherwise."""
    index_symbols: list[str] = Field(default_factory=lambda: ["KOSPI", "KOSDAQ"])


class FilesConfig(StrictModel):
    """Optional inputs the broker cannot give; relative paths are under the config directory.

    Absent → the rule needing it is skipped, logged once (NULRIMOK_RULE_SKIPPED) and shown in the status.
    """

    earnings: str = "nulrimok_earnings.csv"
    """``symbol,date`` (YYYY-MM-DD) per line: N3 earnings filter."""
    blacklist: str = "nulrimok_blacklist.csv"
    """``symbol[,reason]`` per line: N3 monthly quality blacklist (also administrative issues)."""
    krw_usd: str = "nulrimok_krwusd.csv"
    """``date,close`` (KRW per USD) per line: N4 fx_ok."""


class NulrimokConfig(StrictModel):
    strategy_id: str = "NULRIMOK"
    params: NulrimokParams = Field(default_factory=NulrimokParams)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    lrs: LrsConfig = Field(default_factory=LrsConfig)
    files: FilesConfig = Field(default_factory=FilesConfig)

    def data_dir(self) -> Path:
        """Where the LRS and the watchlist artifacts live."""
        raw = self.lrs.data_dir or os.environ.get(DATA_DIR_ENV)
        return Path(raw).expanduser() if raw else DEFAULT_DATA_DIR

    def file_path(self, name: str) -> Path:
        p = Path(name).expanduser()
        return p if p.is_absolute() else config_path("nulrimok").parent / p


def _no_sexagesimal(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('a time must be a quoted "HH:MM" string (unquoted YAML 14:30 reads as 870)')
    return v


def load_nulrimok_config(path: str | Path | None = None) -> NulrimokConfig:
    """Load and validate ``config/nulrimok.yaml`` (or ``path``); NulrimokConfigError names file and key."""
    try:
        return load_strategy_config("nulrimok", NulrimokConfig, path)
    except NulrimokConfigError:
        raise
    except ConfigError as exc:
        raise NulrimokConfigError(str(exc)) from exc
