"""K12: each entry gate, in order."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from strategies.kmp.decisions import ReasonCode
from strategies.kmp.gates import (
    GateInputs,
    check_gates,
    entry_rvol,
    in_entry_window,
    min_surge,
    size_time_mult,
    spread_pct,
    static_up,
    vi_wall,
)
from tests.unit.kmp._helpers import ts

NOW = ts(9, 30)


def passing(**kw) -> GateInputs:
    base = dict(
        now=NOW,
        time_of_day=NOW.time(),
        open_count=0,
        sector_count=0,
        day_pnl_pct=0.0,
        risk_off=False,
        surge=5.0,
        m=14,
        rvol=lambda: 3.0,
        spread_pct=lambda: 0.001,
        limit=lambda: 10_240,
        vi_ref=10_200,
        last_vi=None,
        nav=1e9,
        quality=lambda: 55.0,
        qty=lambda: 100,
    )
    base.update(kw)
    return GateInputs(**base)


def test_all_pass():
    res = check_gates(passing())
    assert res.ok and res.detail["qty"] == 100 and res.detail["vi_wall"] == 10_300


@pytest.mark.parametrize(
    "t, ok", [(time(9, 15, 59), False), (time(9, 16), True), (time(9, 59, 59), True), (time(10, 0), False)]
)
def test_time_window(t, ok):
    assert in_entry_window(t) is ok
    assert (check_gates(passing(time_of_day=t)).code is None) is ok


@pytest.mark.parametrize(
    "kw, code",
    [
        (dict(open_count=4), ReasonCode.KMP_G_MAX_POS),
        (dict(sector_count=1), ReasonCode.KMP_G_SECTOR),
        (dict(day_pnl_pct=-0.02), ReasonCode.KMP_G_DAY_LOSS),
        (dict(risk_off=True), ReasonCode.KMP_G_RISK_OFF),
        (dict(surge=3.55), ReasonCode.KMP_G_TIME_DECAY),  # m = 14 → min 3.56
        (dict(rvol=lambda: 1.99), ReasonCode.KMP_G_RVOL),
        (dict(rvol=lambda: None), ReasonCode.KMP_G_RVOL),
        (dict(spread_pct=lambda: 0.0041), ReasonCode.KMP_G_SPREAD),
        (dict(spread_pct=lambda: None), ReasonCode.KMP_G_SPREAD_NA),
        (dict(limit=lambda: 10_300), ReasonCode.KMP_VI_WALL),
        (dict(last_vi=NOW - timedelta(seconds=599)), ReasonCode.KMP_VI_RECENT),
        (dict(nav=None), ReasonCode.KMP_G_NAV_NA),
        (dict(quality=lambda: 39.9), ReasonCode.KMP_G_QUALITY),
        (dict(qty=lambda: 0), ReasonCode.KMP_G_QTY),
        (dict(retry_after=NOW + timedelta(seconds=5)), ReasonCode.KMP_G_RETRY_WAIT),
    ],
)
def test_each_gate_fails_with_its_code(kw, code):
    assert check_gates(passing(**kw)).code is code


def test_gate_boundaries_pass():
    assert check_gates(
        passing(
            open_count=3,
            day_pnl_pct=-0.0199,
            surge=3.56,
            rvol=lambda: 2.0,
            spread_pct=lambda: 0.004,
            limit=lambda: 10_290,
            last_vi=NOW - timedelta(seconds=600),
            quality=lambda: 40.0,
            qty=lambda: 1,
        )
    ).ok


def test_order_first_failure_wins_and_later_inputs_are_lazy():
    def boom():
        raise AssertionError("must not be evaluated")

    res = check_gates(passing(open_count=4, day_pnl_pct=-0.05, rvol=boom, quality=boom, qty=boom))
    assert res.code is ReasonCode.KMP_G_MAX_POS


def test_helpers():
    assert min_surge(0) == 3.0 and min_surge(10) == pytest.approx(3.4)
    assert size_time_mult(0) == 1.0 and size_time_mult(100) == 0.45
    assert entry_rvol(1_500, 2_500, 1_000) == 2.5
    assert entry_rvol(0, 0, 1_000) == 0  # a minute without bars has volume 0
    assert entry_rvol(5, 5, 0) is None
    assert spread_pct(9_990, 10_010) == pytest.approx(20 / 10_000)
    assert spread_pct(None, 10_010) is None and spread_pct(10_010, 9_990) is None
    assert static_up(10_000, 0.02) == 10_200 and vi_wall(10_000) == 10_100
    assert static_up(50_000, 0.10) == 55_000 and vi_wall(50_000, 0.10) == 54_000
