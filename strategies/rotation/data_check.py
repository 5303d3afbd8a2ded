"""M5: the data check before the first trading cycle after start (SPY and every sector ≥ 200 closes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from strategies.rotation.config import DEFAULT_CONFIG, RotationConfig
from strategies.rotation.history import DayLike, history
from strategies.rotation.reasons import RotationReason


@dataclass(frozen=True, slots=True)
class DataProblem:
    symbol: str
    closes: int
    required: int
    reason: RotationReason = RotationReason.ROTATION_DATA_INVALID

    def __str__(self) -> str:
        return f"{self.symbol}: {self.closes} closes, {self.required} required"

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "closes": self.closes, "required": self.required, "reason": self.reason.value}


def check_data(closes: pd.DataFrame, day: DayLike, config: RotationConfig = DEFAULT_CONFIG) -> list[DataProblem]:
    """Problems with the closes dated on or before ``day``; empty = the account may trade.

    SPY and each universe member need ``min_data_closes`` closes; the defensive asset (TLT) needs at least
    one, since every model may fall back to it and an order needs its price."""
    need = [(config.regime.benchmark, config.min_data_closes)]
    need += [(s, config.min_data_closes) for s in config.universe]
    need.append((config.defensive, 1))
    problems = []
    for sym, required in need:
        n = len(history(closes, sym, day))
        if n < required:
            problems.append(DataProblem(sym, n, required))
    return problems
