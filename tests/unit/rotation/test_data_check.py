"""M5: the first-cycle data check (SPY and every sector ≥ 200 closes; TLT priced)."""

from __future__ import annotations

from datetime import date

import numpy as np

from strategies.rotation.config import UNIVERSE
from strategies.rotation.data_check import check_data
from strategies.rotation.reasons import RotationReason
from tests.unit.rotation._helpers import panel, real_closes


def full(n: int = 200) -> dict[str, np.ndarray]:
    return {s: np.full(n, 100.0) for s in (*UNIVERSE, "SPY", "TLT")}


def test_200_closes_everywhere_passes():
    c = panel(full(), 200)
    assert check_data(c, c.index[-1]) == []


def test_each_short_or_missing_series_is_named():
    cols = full()
    cols["XLC"] = np.full(150, 100.0)
    del cols["SPY"], cols["TLT"]
    c = panel(cols, 200)
    problems = check_data(c, c.index[-1])
    assert [(p.symbol, p.closes, p.required) for p in problems] == [("SPY", 0, 200), ("XLC", 150, 200), ("TLT", 0, 1)]
    assert {p.reason for p in problems} == {RotationReason.ROTATION_DATA_INVALID}
    assert str(problems[1]) == "XLC: 150 closes, 200 required"


def test_only_closes_up_to_the_day_count():
    c = panel(full(), 200)
    assert [p.symbol for p in check_data(c, c.index[-2])] == ["SPY", *UNIVERSE]  # 199 each; TLT still priced


def test_real_data_passes_in_2024_but_not_before_xlc_has_200_closes():
    closes = real_closes()
    assert check_data(closes, date(2024, 1, 2)) == []
    early = check_data(closes, date(2019, 1, 2))  # XLC listed 2018-06-19
    assert [p.symbol for p in early] == ["XLC"] and 0 < early[0].closes < 200
