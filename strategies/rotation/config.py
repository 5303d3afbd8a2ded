"""Sector-rotation parameters (specs/sector_rotation.md §1–§3); defaults = the spec.

``config/rotation.yaml`` layout::

    universe: [XLK, XLF, ...]   # the sectors ranked by momentum
    defensive: TLT              # M1 fallback
    regime:   {...}             # RegimeParams: R1–R3 on the benchmark (SPY)
    orders:   {...}             # OrderParams: M7 caps and the M8 skip rule
    models:   {name: {...}}     # ModelParams per model (the §2 table); the registry of model names
                                # (given, it replaces the whole default registry)

Unknown keys are rejected with the file and key named (:class:`~broker_core.config_errors.ConfigError`,
via :func:`strategies.sdk.config.load_strategy_config`). Fractions are fractions (0.40 = 40%).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from strategies.sdk.config import StrictModel, load_strategy_config

UNIVERSE: tuple[str, ...] = ("XLK", "XLF", "XLE", "XLV", "XLI", "XLP", "XLU", "XLY", "XLC", "XLB", "XLRE")
DEFENSIVE = "TLT"
BENCHMARK = "SPY"
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""A model name upper-cased is its OMS strategy id (≤ 32 characters, ``[A-Z0-9_]``)."""


class RegimeParams(StrictModel):
    """R1–R3: the shared regime on the benchmark's closes."""

    benchmark: str = BENCHMARK
    min_closes: int = Field(200, ge=1)
    """R1: fewer closes → neutral."""
    ma_window: int = Field(200, ge=1)
    mom_window: int = Field(126, ge=1)
    band: float = Field(0.02, ge=0)
    """R3: inside ``|close/ma − 1| < band`` the 126-session momentum decides."""

    @model_validator(mode="after")
    def _enough(self) -> RegimeParams:
        if self.min_closes < max(self.ma_window, self.mom_window + 1):
            raise ValueError("min_closes must cover ma_window and mom_window + 1")
        return self


class LegParams(StrictModel):
    """One row of the §2 table for one regime: M1's ranking parameters."""

    period: int = Field(ge=1)
    """Momentum lookback P in sessions."""
    top_n: int = Field(ge=1)
    min_momentum: float
    leverage: float = Field(gt=0)
    """The kept sectors' weights sum to this (× the vol scale for a vol-scaled model)."""


class VolScaling(StrictModel):
    """M4: ``clamp(target / realised vol, floor, cap)``, realised vol of ``symbol``'s last ``window`` returns."""

    symbol: str = "XLK"
    target: float = Field(0.15, gt=0)
    floor: float = Field(0.2, gt=0)
    cap: float = Field(1.5, gt=0)
    window: int = Field(20, ge=2)
    annualisation: int = Field(252, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> VolScaling:
        if self.floor > self.cap:
            raise ValueError("floor must not exceed cap")
        return self


class EarlyExit(StrictModel):
    """M4: exit a held sector at entry + take_profit_atr·ATR or entry − stop_atr·ATR (ATR at entry)."""

    take_profit_atr: float = Field(3.75, gt=0)
    stop_atr: float = Field(1.46, gt=0)
    atr_period: int = Field(12, ge=1)
    min_hold_sessions: int = Field(2, ge=0)
    """PDT guard: an exit needs at least this many XNYS sessions after the entry session."""


class ModelParams(StrictModel):
    """One model of the registry (a row of the §2 table)."""

    active: Literal["always", "bull", "bear"] = "always"
    """M2: the shared regime (R1–R3) in which the model is active; neutral activates only ``always``."""
    regime_symbol: str | None = None
    """None: legs chosen by the shared regime (neutral → bear leg). A symbol (M4: XLK): bull when its close is
    above its own ``regime_ma`` mean, else bear (also with fewer closes than that)."""
    regime_ma: int = Field(200, ge=1)
    bull: LegParams
    bear: LegParams
    vol_scaling: VolScaling | None = None
    early_exit: EarlyExit | None = None
    rebalance_days: int = Field(7, ge=1)
    """M3: at most one rebalance per this many calendar days."""

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if self.regime_symbol is not None and self.active != "always":
            raise ValueError("a model with its own regime_symbol must be active 'always'")
        return self


def _same(period: int, top_n: int, min_momentum: float, leverage: float) -> dict[str, LegParams]:
    leg = LegParams(period=period, top_n=top_n, min_momentum=min_momentum, leverage=leverage)
    return {"bull": leg, "bear": leg}


def default_models() -> dict[str, ModelParams]:
    """The §2 table."""
    return {
        "rotation_core": ModelParams(active="always", **_same(126, 3, 0.00, 1.0)),
        "rotation_bull": ModelParams(active="bull", **_same(80, 4, 0.03, 1.3)),
        "rotation_bear": ModelParams(active="bear", **_same(126, 2, 0.10, 1.0)),
        "rotation_adaptive": ModelParams(
            active="always",
            regime_symbol="XLK",
            bull=LegParams(period=138, top_n=4, min_momentum=0.00, leverage=1.86),
            bear=LegParams(period=175, top_n=3, min_momentum=0.00, leverage=2.0),
            vol_scaling=VolScaling(),
            early_exit=EarlyExit(),
        ),
    }


class OrderParams(StrictModel):
    """M7 account caps and M8's skip rule."""

    symbol_cap: float = Field(0.40, gt=0)
    gross_cap: float = Field(1.25, gt=0)
    min_position_usd: float = Field(100.0, ge=0)
    min_delta_frac: float = Field(0.01, ge=0)
    """A change whose value is under this fraction of equity is skipped (full exits excepted)."""


class RotationConfig(StrictModel):
    universe: tuple[str, ...] = UNIVERSE
    defensive: str = DEFENSIVE
    min_data_closes: int = Field(200, ge=1)
    """M5: SPY and every universe member need this many closes before the first trading cycle."""
    regime: RegimeParams = Field(default_factory=RegimeParams)
    orders: OrderParams = Field(default_factory=OrderParams)
    models: dict[str, ModelParams] = Field(default_factory=default_models)

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, ModelParams]) -> dict[str, ModelParams]:
        for name in v:
            if not _MODEL_NAME.match(name):
                raise ValueError(
                    f"model name {name!r} must match {_MODEL_NAME.pattern} (its upper case is the strategy id)"
                )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RotationConfig:
        if not self.universe:
            raise ValueError("universe must not be empty")
        if len(set(self.universe)) != len(self.universe):
            raise ValueError("universe has duplicates")
        if self.defensive in self.universe:
            raise ValueError("the defensive asset must not be a universe member")
        return self

    def model(self, name: str) -> ModelParams:
        """The registry entry; KeyError names the known models."""
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"unknown rotation model {name!r}; known: {', '.join(sorted(self.models))}") from None


DEFAULT_CONFIG = RotationConfig()


def load_rotation_config(path: str | Path | None = None) -> RotationConfig:
    """Load and validate ``config/rotation.yaml`` (or ``path``); ConfigError names the file and key."""
    return load_strategy_config("rotation", RotationConfig, path)
