"""Panel building (adjusted OHLC) and the S2 liquidity filter."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.swing_ml.data import Panel
from strategies.swing_ml.universe import DEFAULT_UNIVERSE, dollar_volume, liquid_universe


def _rows() -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=3)
    return pd.DataFrame(
        {
            "symbol": ["A"] * 3 + ["B"] * 3,
            "date": list(days) * 2,
            "open": [10.0, 11, 12, 4.0, 4, 4],
            "high": [11.0, 12, 13, 4.5, 4.5, 4.5],
            "low": [9.0, 10, 11, 3.5, 3.5, 3.5],
            "close": [10.0, 11, 12, 4.0, 4, 4],
            "adj_close": [9.0, 11, 12, 4.0, 4, 4],  # A's first row carries a 10% adjustment
            "volume": [3e6, 3e6, 3e6, 1e8, 1e8, 1e8],
        }
    )


def test_from_long_scales_ohlc_to_the_adjusted_close():
    p = Panel.from_long(_rows())
    assert p.symbols == ["A", "B"]
    d0 = pd.Timestamp("2024-01-01")
    assert p.close.loc[d0, "A"] == 9.0 and p.raw_close.loc[d0, "A"] == 10.0
    assert p.high.loc[d0, "A"] == pytest.approx(11 * 0.9) and p.low.loc[d0, "A"] == pytest.approx(9 * 0.9)
    assert p.until("2024-01-02").close.shape == (2, 2)
    assert p.between("2024-01-02", "2024-01-03").select(["B"]).close.shape == (2, 1)


def test_liquid_universe():
    p = Panel.from_long(_rows())
    assert dollar_volume(p, 2).loc[pd.Timestamp("2024-01-03"), "A"] == pytest.approx((11 + 12) / 2 * 3e6)
    # A: price 12 > 5 and ADV 34.5M > 20M; B: ADV 400M but price 4 ≤ 5
    assert liquid_universe(p, "2024-01-03", window=2) == ["A"]
    assert liquid_universe(p, "2024-01-01", window=2) == []  # no ADV yet
    assert liquid_universe(p, "2024-01-06", window=2) == []  # not a session


def test_default_universe_is_liquid_on_real_data(panel):
    assert len(liquid_universe(panel, "2024-12-31", list(DEFAULT_UNIVERSE))) == 97
