"""Trading costs charged by the paper exchange.

Defaults model a typical KRX online account in 2026:

- commission 0.015% of notional on each side (common online-brokerage rate; KIS charges about this);
- securities transaction tax 0.20% of notional on sells only (KOSPI 0.05% tax + 0.15% rural special
  tax, KOSDAQ 0.20%, as restored from 2026);
- no minimum commission.

Amounts are truncated to whole won, as brokers and the tax office do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker_core.models import Side

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    commission_rate: float = 0.00015
    sell_tax_rate: float = 0.0020
    min_commission: float = 0.0
    truncate_to_won: bool = True

    def commission(self, notional: float) -> float:
        if notional <= 0:
            return 0.0
        return max(self.min_commission, self._amount(notional * self.commission_rate))

    def tax(self, side: Side, notional: float) -> float:
        if side is not Side.SELL or notional <= 0:
            return 0.0
        return self._amount(notional * self.sell_tax_rate)

    def _amount(self, value: float) -> float:
        return float(math.floor(value + _EPS)) if self.truncate_to_won else value


ZERO_FEES = FeeSchedule(commission_rate=0.0, sell_tax_rate=0.0)
