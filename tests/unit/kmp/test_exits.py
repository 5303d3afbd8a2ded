"""K16–K19 exit rules (pure)."""

from __future__ import annotations

import pytest

from strategies.kmp.exits import (
    early_fail,
    exit_limit_price,
    stall_exit,
    stop_hit,
    trail_active,
    trail_factor,
    trail_hit,
    trail_price,
)


def test_k16_hard_stop():
    assert stop_hit(9_800, 9_800) and stop_hit(9_790, 9_800) and not stop_hit(9_810, 9_800)


def test_k16_early_fail_window_and_conditions():
    assert early_fail(10_150, or_high=10_200, vwap=10_160, held_min=5)
    assert early_fail(10_150, 10_200, 10_160, held_min=15)
    assert not early_fail(10_150, 10_200, 10_160, held_min=15.1)  # after the first 15 min
    assert not early_fail(10_170, 10_200, 10_160, held_min=5)  # above VWAP
    assert not early_fail(10_210, 10_200, 10_100, held_min=5)  # above OR_high
    assert not early_fail(10_150, None, 10_160, held_min=5)  # OR unknown (recovered)


def test_k17_stall():
    assert stall_exit(10_099, 10_000, 200, 8)
    assert not stall_exit(10_100, 10_000, 200, 8)
    assert not stall_exit(9_000, 10_000, 200, 7.99)
    assert stall_exit(9_900, 10_000, 200, 30)


def test_k18_trail_factor_schedule():
    assert trail_factor(0, False) == 0.5 and trail_factor(15, False) == 0.5
    assert trail_factor(16, False) == pytest.approx(0.5167)
    assert trail_factor(40, False) == pytest.approx(0.75)  # capped at +0.25
    assert trail_factor(40, True) == pytest.approx(0.75)  # defensive is a floor, not a cap
    assert trail_factor(5, True) == 0.7


def test_k18_trail_activation_and_floor():
    assert not trail_active(10_099, 10_000, 200)
    assert trail_active(10_100, 10_000, 200)
    assert trail_price(10_000, 10_099, 200, 5, 9_800, False) is None
    assert trail_price(10_000, 10_100, 200, 5, 9_800, False) == pytest.approx(10_050)
    assert trail_price(10_000, 10_100, 200, 5, 10_080, False) == 10_080  # structure stop floor
    assert not trail_hit(1, None)


def test_k19_marketable_limit_sell():
    limit, ref = exit_limit_price(bid=10_000, last=10_050)
    assert ref == 10_000 and limit == 9_970  # max(3 ticks = 30, 0.3% = 30) below the bid
    limit, ref = exit_limit_price(bid=None, last=300_000)
    assert ref == 300_000 and limit == 298_500  # 3 ticks of 500 (1,500) beat 0.3% (900)
    limit, _ = exit_limit_price(bid=1_990, last=None)
    assert limit == 1_984  # 0.3% (5.97 → 1,984.03 ↓) beats 3 ticks of 1
    assert exit_limit_price(None, None) == (None, None)
