"""swing-ML configuration (strategies.md §5; the spec's numbers are the defaults).

Layout of ``config/swing_ml.yaml`` (:data:`DEFAULT_CONFIG_YAML` is the shipped text; the lead writes
it to ``config/`` and points :func:`load_swing_ml_config` at it)::

    strategy_id: SWING_ML
    mode: dry_run        # REQUIRED: live | paper | dry_run — there is no default (never silently live)
    decide:   {...}      # DecideParams: synthesizer weights and BUY/SELL thresholds (S3.5, S3.6)
    sizing:   {...}      # SizingParams: half-Kelly and the NAV cap (S4)
    risk:     {...}      # RiskParams: take profit / stop / trail, ATR variant (S6)
    regime:   {...}      # RegimeParams: HMM and sector strength (S3.2)
    model:    {...}      # ModelParams: retrain and promotion (S5)
    universe: {...}      # UniverseConfig: symbols, sector map, liquidity floor (S2)
    schedule: {...}      # ScheduleParams: job times in America/New_York (§5.1)

Unknown keys are rejected with the file and key named (:class:`~broker_core.config_errors.ConfigError`
via :func:`strategies.sdk.config.load_strategy_config`). Times are quoted ``"HH:MM"`` strings (ET).
Percentages are fractions (0.04 = 4 %).
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strategies.sdk.config import load_strategy_config
from strategies.swing_ml.data import BENCHMARK, SECTOR_ETFS
from strategies.swing_ml.model import DEFAULT_HYPERPARAMETERS, HORIZON
from strategies.swing_ml.universe import DEFAULT_SECTOR_MAP, DEFAULT_UNIVERSE

_STRICT = ConfigDict(extra="forbid", frozen=True)
CONFIG_NAME = "swing_ml"
STRATEGY_ID = "SWING_ML"


class Mode(StrEnum):
    """S1: ``live`` (Alpaca live), ``paper`` (Alpaca paper endpoint), ``dry_run`` (log, never send)."""

    LIVE = "live"
    PAPER = "paper"
    DRY_RUN = "dry_run"


def _no_sexagesimal(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('a time must be a quoted "HH:MM" string (unquoted YAML 09:45 reads as 585)')
    return v


class DecideParams(BaseModel):
    model_config = _STRICT
    quant_weight: float = Field(0.6, ge=0)
    regime_weight: float = Field(0.25, ge=0)
    extras_weight: float = Field(0.15, ge=0)
    """Total weight of the optional extra signals, shared equally among those available."""
    top_quantile: float = Field(0.75, gt=0, lt=1)
    """Quant vote +1 for a percentile rank above this (top quartile)."""
    bottom_quantile: float = Field(0.25, gt=0, lt=1)
    """Quant vote −1 for a percentile rank at or below this (bottom quartile)."""
    buy_score_min: float = Field(0.4, ge=-1, le=1)
    sell_score_max: float = Field(-0.2, ge=-1, le=1)
    max_positions: int = Field(10, ge=1)
    max_hold_days: int = Field(10, ge=1)
    """Trading days since the OMS allocation's entry_ts (S3.5, S7)."""
    limit_band_pct: float = Field(0.002, ge=0, lt=0.05)
    """Marketable limit band b (S3.6): buy round_up(ref·(1+b)), sell round_down(ref·(1−b))."""
    decision_bucket_sec: int = Field(900, gt=0)
    """Idempotency bucket of ENTER keys (the decide cadence)."""

    @model_validator(mode="after")
    def _consistent(self) -> DecideParams:
        if self.bottom_quantile >= self.top_quantile:
            raise ValueError("bottom_quantile must be below top_quantile")
        if self.sell_score_max >= self.buy_score_min:
            raise ValueError("sell_score_max must be below buy_score_min")
        if self.quant_weight + self.regime_weight + self.extras_weight <= 0:
            raise ValueError("the synthesizer weights must not all be zero")
        return self


class SizingParams(BaseModel):
    model_config = _STRICT
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    max_position_pct: float = Field(0.10, gt=0, le=1)


class RiskParams(BaseModel):
    model_config = _STRICT
    take_profit_pct: float = Field(0.04, gt=0)
    stop_loss_pct: float = Field(0.025, gt=0, lt=1)
    trail_arm_pct: float = Field(0.02, ge=0)
    trail_drop_pct: float = Field(0.015, gt=0, lt=1)
    atr_dynamic: bool = False
    atr_period: int = Field(14, ge=1)
    atr_take_profit_mult: float = Field(2.5, gt=0)
    atr_stop_mult: float = Field(1.5, gt=0)
    atr_trail_mult: float = Field(1.5, gt=0)

    @property
    def payoff_ratio(self) -> float:
        """S4's b = take-profit distance / stop-loss distance (1.6 fixed; 2.5/1.5 with ATR)."""
        if self.atr_dynamic:
            return self.atr_take_profit_mult / self.atr_stop_mult
        return self.take_profit_pct / self.stop_loss_pct


class RegimeParams(BaseModel):
    model_config = _STRICT
    benchmark: str = BENCHMARK
    sector_etfs: tuple[str, ...] = SECTOR_ETFS
    vol_window: int = Field(20, ge=2)
    sma_window: int = Field(50, ge=2)
    risk_on_strength_min: float = Field(0.5, ge=0, le=1)
    risk_off_strength_below: float = Field(0.3, ge=0, le=1)
    hmm_random_state: int = 0
    hmm_lookback_sessions: int = Field(2520, ge=250)
    """[resolved] sessions of SPY history the daily HMM refit uses (≈10 years)."""

    @model_validator(mode="after")
    def _consistent(self) -> RegimeParams:
        if self.risk_off_strength_below > self.risk_on_strength_min:
            raise ValueError("risk_off_strength_below must not exceed risk_on_strength_min")
        return self


class ModelParams(BaseModel):
    model_config = _STRICT
    models_dir: str = "models/swing_ml"
    """Relative paths are relative to the project root."""
    train_months: int = Field(18, ge=3)
    horizon: int = Field(HORIZON, ge=1)
    purge_days: int = Field(HORIZON, ge=0)
    n_splits: int = Field(4, ge=1)
    promote_min_auc: float = Field(0.52, ge=0, le=1)
    promote_max_drop: float = Field(0.01, ge=0, le=1)
    keep_versions: int = Field(8, ge=1)
    hyperparameters: dict[str, float | int | bool | str | None] = Field(
        default_factory=lambda: dict(DEFAULT_HYPERPARAMETERS)
    )

    def retrain_options(self) -> dict[str, Any]:
        """These parameters as :func:`strategies.swing_ml.model.retrain`'s keyword arguments."""
        return {
            "train_months": self.train_months,
            "hyperparameters": self.hyperparameters,
            "n_splits": self.n_splits,
            "purge": self.purge_days,
            "min_auc": self.promote_min_auc,
            "max_drop": self.promote_max_drop,
            "keep": self.keep_versions,
        }

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if self.horizon != HORIZON:
            raise ValueError(f"horizon is fixed at {HORIZON} sessions by the model's label")
        if self.purge_days < self.horizon:
            raise ValueError("purge_days must be ≥ horizon (no training label may overlap the test window)")
        return self


class UniverseConfig(BaseModel):
    model_config = _STRICT
    symbols: tuple[str, ...] = DEFAULT_UNIVERSE
    sector_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SECTOR_MAP))
    min_price: float = Field(5.0, ge=0)
    min_adv_usd: float = Field(20e6, ge=0)
    adv_window: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> UniverseConfig:
        missing = [s for s in self.symbols if s not in self.sector_map]
        if missing:
            raise ValueError(f"symbols without a sector ETF in sector_map: {missing}")
        return self


class ScheduleParams(BaseModel):
    """§5.1 job times, America/New_York."""

    model_config = _STRICT
    decide_start: time = time(9, 45)
    decide_end: time = time(15, 45)
    decide_every_min: int = Field(15, ge=1)
    risk_check_start: time = time(9, 35)
    risk_check_end: time = time(15, 55)
    risk_check_every_min: int = Field(5, ge=1)
    regime_at: time = time(9, 0)
    retrain_weekday: int = Field(6, ge=0, le=6)
    """0 = Monday … 6 = Sunday."""
    retrain_at: time = time(12, 0)

    @field_validator(
        "decide_start", "decide_end", "risk_check_start", "risk_check_end", "regime_at", "retrain_at", mode="before"
    )
    @classmethod
    def _time_text(cls, v: Any) -> Any:
        return _no_sexagesimal(v)


class SwingMlConfig(BaseModel):
    model_config = _STRICT
    strategy_id: str = STRATEGY_ID
    mode: Mode
    """Required, no default (S1)."""
    decide: DecideParams = Field(default_factory=DecideParams)
    sizing: SizingParams = Field(default_factory=SizingParams)
    risk: RiskParams = Field(default_factory=RiskParams)
    regime: RegimeParams = Field(default_factory=RegimeParams)
    model: ModelParams = Field(default_factory=ModelParams)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    schedule: ScheduleParams = Field(default_factory=ScheduleParams)

    @property
    def sends_intents(self) -> bool:
        return self.mode is not Mode.DRY_RUN


DEFAULT_CONFIG_YAML = """\
# swing-ML (strategies.md §5). Times are America/New_York and must be quoted.
strategy_id: SWING_ML
mode: dry_run          # required: live | paper | dry_run
decide:
  quant_weight: 0.6
  regime_weight: 0.25
  extras_weight: 0.15
  top_quantile: 0.75
  bottom_quantile: 0.25
  buy_score_min: 0.4
  sell_score_max: -0.2
  max_positions: 10
  max_hold_days: 10
  limit_band_pct: 0.002
  decision_bucket_sec: 900
sizing:
  kelly_fraction: 0.5
  max_position_pct: 0.10
risk:
  take_profit_pct: 0.04
  stop_loss_pct: 0.025
  trail_arm_pct: 0.02
  trail_drop_pct: 0.015
  atr_dynamic: false
  atr_period: 14
  atr_take_profit_mult: 2.5
  atr_stop_mult: 1.5
  atr_trail_mult: 1.5
regime:
  benchmark: SPY
  sector_etfs: [XLB, XLC, XLE, XLF, XLI, XLK, XLP, XLRE, XLU, XLV, XLY]
  vol_window: 20
  sma_window: 50
  risk_on_strength_min: 0.5
  risk_off_strength_below: 0.3
  hmm_random_state: 0
  hmm_lookback_sessions: 2520
model:
  models_dir: models/swing_ml
  train_months: 18
  horizon: 5
  purge_days: 5
  n_splits: 4
  promote_min_auc: 0.52
  promote_max_drop: 0.01
  keep_versions: 8
universe:
  # symbols and sector_map default to the 97 large caps of the US reference data
  min_price: 5.0
  min_adv_usd: 20000000
  adv_window: 20
schedule:
  decide_start: "09:45"
  decide_end: "15:45"
  decide_every_min: 15
  risk_check_start: "09:35"
  risk_check_end: "15:55"
  risk_check_every_min: 5
  regime_at: "09:00"
  retrain_weekday: 6
  retrain_at: "12:00"
"""
"""The shipped ``config/swing_ml.yaml`` (mode dry_run): equal to the defaults apart from ``mode``."""


def load_swing_ml_config(path: str | Path | None = None) -> SwingMlConfig:
    """Load and validate ``config/swing_ml.yaml`` (or ``path``); ConfigError names the file and key."""
    return load_strategy_config(CONFIG_NAME, SwingMlConfig, path)


MODELS_DIR_ENV = "SWING_ML_MODELS_DIR"


def models_path(cfg: SwingMlConfig) -> Path:
    """Where the model versions live: ``SWING_ML_MODELS_DIR`` when set (a container's volume), else the config's
    ``model.models_dir`` (a relative path is under the project root). The strategy and ``trader swing-ml`` agree."""
    import os

    from strategies.sdk.config import PROJECT_ROOT

    configured = Path(os.environ.get(MODELS_DIR_ENV) or cfg.model.models_dir)
    return configured if configured.is_absolute() else PROJECT_ROOT / configured
