"""P16–P19 exit rules and the C6 marketable sell limit."""

from __future__ import annotations

from strategies.kpr.config import KprParams
from strategies.kpr.exits import (
    ExitKind,
    VolBucket,
    exit_limit_price,
    flow_stop,
    open_position,
    price_exit,
    target_r,
    vol_bucket,
)
from tests.unit.kpr._helpers import ts

P = KprParams()


def test_vol_buckets_and_targets():
    assert vol_bucket(400, 10_000, P) is VolBucket.HIGH  # 4%
    assert vol_bucket(399, 10_000, P) is VolBucket.NORMAL
    assert vol_bucket(200, 10_000, P) is VolBucket.NORMAL  # 2%
    assert vol_bucket(199, 10_000, P) is VolBucket.LOW
    assert vol_bucket(None, 10_000, P) is VolBucket.NORMAL
    assert [target_r(b, P) for b in VolBucket] == [2.5, 2.0, 1.5]
    assert target_r(VolBucket.HIGH, KprParams(adaptive_targets=False)) == 2.0


def test_stop_first():
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 300, P)
    assert price_exit(pos, 9_800, 9_800, ts(10, 1)) is ExitKind.STOP
    assert price_exit(pos, 9_801, 9_801, ts(10, 1)) is None
    assert price_exit(pos, 9_790, 10_500, ts(10, 1)) is ExitKind.STOP  # a REST bar through both: stop wins


def test_high_vol_target_2_5r_and_a_bar_through_both_levels_exits_fully():
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 500, P)  # ATR 5%: HIGH
    assert pos.target_px == 10_500
    assert price_exit(pos, 10_000, 10_300, ts(10, 1)) is ExitKind.PARTIAL
    assert price_exit(pos, 10_000, 10_500, ts(10, 1)) is ExitKind.TARGET


def test_low_vol_full_exit_at_1_5r_and_no_partial_of_one_share():
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 100, P)  # ATR 1%: LOW → 1.5R
    assert price_exit(pos, 10_300, 10_300, ts(10, 1)) is ExitKind.TARGET
    one = open_position("B", 1, 10_000, ts(10, 0), 9_800, 300, P)
    assert price_exit(one, 10_300, 10_300, ts(10, 1)) is ExitKind.TARGET


def test_r_is_at_least_one_tick_and_the_stop_is_not_moved_after_the_partial():
    pos = open_position("A", 100, 10_000, ts(10, 0), 10_000, 300, P)
    assert pos.r == 10
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 300, P)
    pos.partial_done = True
    assert pos.stop == 9_800 and price_exit(pos, 9_800, 9_800, ts(10, 5)) is ExitKind.STOP


def test_flow_stop_raises_to_the_fill_only():
    pos = open_position("A", 100, 10_000, ts(10, 0), 9_800, 300, P)
    assert flow_stop(pos) == 10_000
    pos.stop = 10_050
    assert flow_stop(pos) == 10_050


def test_exit_limit_is_a_marketable_sell():
    assert exit_limit_price(10_000, 10_050, P) == (9_970, 10_000)  # bid · (1 − 0.3%) = 9,970 (≥ 3 ticks)
    assert exit_limit_price(None, 2_000, P) == (1_994, 2_000)  # 0.3% = 6 > 3 ticks of 1 below 2,000
    assert exit_limit_price(None, None, P) == (None, None)
