"""K4–K7: risk_off, chop, leader breadth, regime_ok, program overlay (incl. missing data)."""

from __future__ import annotations

import pytest

from strategies.kmp.config import KmpParams
from strategies.kmp.regime import (
    LeaderView,
    ProgramFlow,
    ProgramOverlay,
    ProgramRegime,
    chop_state,
    compute_regime,
    index_change,
    is_leader,
    scaled_count,
)
from tests.unit.kmp._helpers import ts


def _leader(sym="A", surge=4.0, rvol=1.6, last=101.0, vwap=100.0, age=30.0):
    return LeaderView(sym, surge, rvol, last, vwap, age)


def test_k4_risk_off_index_drop_and_oms_flags():
    assert index_change(98.5, 100) == pytest.approx(-0.015)
    kw = dict(kospi_closes=[], leaders=[])
    assert compute_regime(ts(9, 30), kospi_chg=-0.015, kosdaq_chg=0.0, **kw).risk_off
    assert compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=-0.02, **kw).risk_off
    assert not compute_regime(ts(9, 30), kospi_chg=-0.0149, kosdaq_chg=None, **kw).risk_off
    assert compute_regime(ts(9, 30), kospi_chg=None, kosdaq_chg=None, oms_halt=True, **kw).risk_off
    assert compute_regime(ts(9, 30), kospi_chg=None, kosdaq_chg=None, oms_flatten=True, **kw).risk_off
    assert not compute_regime(ts(9, 30), kospi_chg=None, kosdaq_chg=None, **kw).risk_off  # missing data


def test_k4_chop_efficiency_ratio():
    trend = [100 + i for i in range(20)]
    assert chop_state(trend) == (False, pytest.approx(1.0))
    zigzag = [100, 101] * 10  # |101−100| / 19 = 0.0526
    chop, er = chop_state(zigzag)
    assert chop and er == pytest.approx(1 / 19)
    assert chop_state(zigzag[:9]) == (False, None)  # n < 10 → chop false
    # only the last 20 bars count
    long = [100 + i for i in range(30)] + [130, 131] * 10
    assert chop_state(long)[1] == pytest.approx(1 / 19)


def test_k5_leader_conditions_and_staleness():
    assert is_leader(_leader())
    assert is_leader(_leader(last=100.0, vwap=100.0))  # last ≥ VWAP
    assert not is_leader(_leader(rvol=1.49))
    assert not is_leader(_leader(surge=2.9))
    assert not is_leader(_leader(last=99.0))
    assert not is_leader(_leader(age=121))  # data older than 120 s
    assert not is_leader(_leader(age=None))
    assert not is_leader(_leader(rvol=None))


def test_k5_k6_breadth_and_regime_ok():
    leaders = [_leader(f"S{i}") for i in range(8)] + [_leader("X", rvol=1.0)]
    r = compute_regime(
        ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[100 + i for i in range(20)], leaders=leaders
    )
    assert r.breadth == 8 and r.breadth_ok and r.regime_ok
    assert "X" not in r.leaders
    r7 = compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[], leaders=leaders[:7])
    assert r7.breadth == 7 and not r7.breadth_ok and not r7.regime_ok
    chop = compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[100, 101] * 10, leaders=leaders)
    assert chop.chop and not chop.regime_ok


def test_k7_ewma_update_and_reset_rules():
    f = ProgramFlow(alpha=0.35)
    assert f.update(ts(9, 0), 1_000, 900) == "init" and f.ewma == 0
    assert f.update(ts(9, 1), 1_300, 1_000) == "update" and f.ewma == pytest.approx(70)
    assert f.update(ts(9, 2), 1_400, 1_200) == "update"  # Δ = 100 − 200 = −100
    assert f.ewma == pytest.approx(0.35 * -100 + 0.65 * 70)
    assert f.update(ts(9, 3), 1_400, 1_100) == "reset" and f.ewma == 0  # sell series decreased


def test_k7_new_day_reinitialises():
    f = ProgramFlow()
    f.update(ts(15, 0), 1_000, 900)
    f.update(ts(15, 1), 1_300, 1_000)
    from datetime import timedelta

    assert f.update(ts(9, 0) + timedelta(days=1), 5_000, 100) == "init" and f.ewma == 0


def test_k7_net_only_series_allows_negative_delta():
    f = ProgramFlow()
    assert f.update(ts(9, 0), net_cum=100) == "init"
    assert f.update(ts(9, 1), net_cum=40) == "update"
    assert f.ewma == pytest.approx(0.35 * -60)


def test_k7_missing_feed_is_mixed():
    ov = ProgramOverlay()
    assert ov.regime(ts(9, 30)) is ProgramRegime.MIXED and ov.multiplier(ts(9, 30)) == 1.0


def _inflow() -> ProgramOverlay:
    ov = ProgramOverlay()
    for m in ("KOSPI", "KOSDAQ"):
        ov.update(m, ts(9, 0), 100, 100)
        ov.update(m, ts(9, 1), 200, 100)
    return ov


def test_k7_outflow_and_mixed():
    ov = ProgramOverlay()
    for m in ("KOSPI", "KOSDAQ"):
        ov.update(m, ts(9, 0), 100, 100)
        ov.update(m, ts(9, 1), 100, 200)
    assert ov.regime(ts(9, 1)) is ProgramRegime.OUTFLOW and ov.multiplier(ts(9, 1)) == pytest.approx(0.85)
    ov.update("KOSDAQ", ts(9, 2), 400, 200)
    assert ov.regime(ts(9, 2)) is ProgramRegime.MIXED


def test_k7_three_failures_or_stale_sample_fall_back_to_mixed():
    ov = _inflow()
    assert ov.regime(ts(9, 1)) is ProgramRegime.STRONG_INFLOW
    ov.fail("KOSPI")
    ov.fail("KOSPI")
    assert ov.regime(ts(9, 1, 30)) is ProgramRegime.STRONG_INFLOW
    ov.fail("KOSPI")
    assert ov.regime(ts(9, 1, 30)) is ProgramRegime.MIXED
    ov2 = _inflow()
    assert ov2.regime(ts(9, 4)) is ProgramRegime.STRONG_INFLOW  # 180 s old: still good
    assert ov2.regime(ts(9, 4, 1)) is ProgramRegime.MIXED  # > 180 s


def test_k7_bad_samples_rejected():
    with pytest.raises(ValueError):
        ProgramFlow().update(ts(9, 0))
    with pytest.raises(ValueError):
        ProgramFlow().update(ts(9, 0), buy_cum=1)
    with pytest.raises(ValueError):
        ProgramOverlay().update("NYSE", ts(9, 0), 1, 1)


def test_params_respected():
    p = KmpParams(breadth_min=1, leader_rvol_min=1.0)
    r = compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[], leaders=[_leader(rvol=1.0)], p=p)
    assert r.breadth_ok


def test_count_thresholds_scale_with_the_universe():
    assert scaled_count(8, 400, 400) == 8
    assert scaled_count(8, 60, 400) == 2  # the 60 tickers of the minute data
    assert scaled_count(8, 100, 400) == 2
    assert scaled_count(8, 50, 400) == 1
    assert scaled_count(8, 1, 400) == 1 and scaled_count(8, 0, 400) == 1  # floor 1
    assert scaled_count(8, 401, 400) == 9
    assert scaled_count(0, 60, 400) == 0  # a disabled test stays disabled
    assert scaled_count(8, 60, None) == 8  # no reference: as configured
    leaders = [_leader(f"S{i}") for i in range(2)]
    r = compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[], leaders=leaders, breadth_min=2)
    assert r.breadth_ok and r.breadth_min == 2
    assert not compute_regime(ts(9, 30), kospi_chg=0.0, kosdaq_chg=0.0, kospi_closes=[], leaders=leaders).breadth_ok
