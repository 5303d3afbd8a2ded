"""K13–K15 and §1.7: order prices, stops, QualityScore, multipliers, size and caps."""

from __future__ import annotations

import pytest

from strategies.kmp.sizing import (
    QualityInputs,
    confidence_label,
    entry_limit,
    entry_stops,
    liquidity_binds,
    position_size,
    quality_components,
    quality_multiplier,
    quality_score,
    risk_per_share,
    support_level,
    trigger_price,
)


def test_k13_trigger_and_limit():
    assert trigger_price(10_200) == 10_210
    assert trigger_price(19_990) == 20_000
    assert trigger_price(20_000) == 20_050  # tick re-read at the band edge
    assert entry_limit(10_210, spread=10) == 10_240  # cushion max(3 ticks = 30, 2·10 = 20)
    assert entry_limit(10_210, spread=25) == 10_260  # cushion 50
    assert entry_limit(19_990, spread=0) == 20_050  # 19,990 + 30 = 20,020 → round_up in the 50 band


def test_support_level():
    assert support_level(10_100, 10_200) == pytest.approx(0.998 * 10_100)
    assert support_level(10_300, 10_200) == pytest.approx(0.998 * 10_200)
    assert support_level(None, 10_200) == pytest.approx(0.998 * 10_200)


def test_k14_stops():
    s = entry_stops(10_200, 10_240, atr1m=50)
    assert s.structure_stop == 10_180 and s.hard_stop == pytest.approx(10_180)
    assert s.initial_stop == 10_180
    s = entry_stops(10_200, 10_240, atr1m=10)  # hard 10,228 is higher
    assert s.initial_stop == pytest.approx(10_228)
    s = entry_stops(10_200, 10_240, atr1m=None)  # ATR not yet defined → structure only
    assert s.hard_stop is None and s.initial_stop == 10_180
    assert entry_stops(20_000, 20_100, 100).structure_stop == 19_980  # down() uses the band below


def test_risk_per_share_floor():
    assert risk_per_share(10_000, 9_800) == 200
    assert risk_per_share(10_000, 10_000) == 10


def _q(**kw) -> QualityInputs:
    base = dict(
        surge=5.5,
        rvol=3.5,
        imbalance=0.25,
        retest_low=10_150,
        support=10_100,
        or_high=10_200,
        regime_ok=True,
        spread_pct=0.0025,
        liquidity_binds=False,
        same_sector_active=0,
    )
    base.update(kw)
    return QualityInputs(**base)


def test_quality_components_hand_computed():
    c = quality_components(_q())
    assert c == pytest.approx(
        {
            "surge": 10.0,
            "rvol": 10.0,
            "imbalance": 7.5,
            "acceptance": 10.0,
            "regime": 15.0,
            "spread": 2.5,
            "liquidity": 5.0,
            "sector": 0.0,
        }
    )
    assert quality_score(_q()) == pytest.approx(60.0)


def test_quality_clips_and_penalties():
    top = _q(surge=20, rvol=10, imbalance=0.9, retest_low=10_300, spread_pct=0.0)
    assert quality_score(top) == 100.0
    assert quality_components(_q(imbalance=-0.4))["imbalance"] == 0
    assert quality_components(_q(imbalance=None))["imbalance"] == 0  # undefined (< 60 s of ticks)
    assert quality_components(_q(retest_low=10_050))["acceptance"] == 0  # below support
    assert quality_components(_q(spread_pct=0.005))["spread"] == 0
    assert quality_components(_q(liquidity_binds=True))["liquidity"] == 0
    assert quality_components(_q(same_sector_active=2))["sector"] == -10
    assert quality_components(_q(same_sector_active=5))["sector"] == -15
    assert (
        quality_score(
            _q(
                surge=3,
                rvol=2,
                imbalance=None,
                retest_low=10_100,
                regime_ok=False,
                spread_pct=0.004,
                liquidity_binds=True,
                same_sector_active=3,
            )
        )
        == 0.0
    )


@pytest.mark.parametrize(
    "score, mult, label",
    [
        (39.9, 0.0, "RED"),
        (40, 0.5, "RED"),
        (59.9, 0.5, "RED"),
        (60, 1.0, "YELLOW"),
        (79.9, 1.0, "YELLOW"),
        (80, 1.5, "GREEN"),
        (100, 1.5, "GREEN"),
    ],
)
def test_quality_multiplier_bands(score, mult, label):
    assert quality_multiplier(score) == mult
    assert confidence_label(score) == label


def test_k15_liquidity_cap_binds():
    # qty_base = 5,000,000 / 100 = 50,000; ×1.5×1.0×1.10 = 82,500; 5% of ₩1B / 10,000 = 5,000
    s = position_size(1e9, 10_000, 9_900, 1.5, 1.0, 1.10, 1_000_000_000)
    assert s.qty_base == pytest.approx(50_000) and s.qty_after_mult == 82_500
    assert s.liquidity_cap == 5_000 and s.qty == 5_000 and s.capped_by == "liquidity"
    assert liquidity_binds(50_000, 10_000, 1_000_000_000)
    assert not liquidity_binds(100, 10_000, 1_000_000_000)


def test_k15_no_cap_and_degenerate():
    s = position_size(1e8, 10_000, 9_800, 0.5, 0.7, 0.85, 1e12)
    # 500,000/200 = 2,500 → ×0.5×0.7×0.85 = 743.75 → 743
    assert s.qty == 743 and s.capped_by is None
    assert position_size(1e8, 10_000, 10_000, 1, 1, 1, 1e12).qty == 0  # stop not below the limit
    assert position_size(1e8, 10_000, 9_800, 1, 1, 1, 0).qty == 0  # no traded value → cap 0
