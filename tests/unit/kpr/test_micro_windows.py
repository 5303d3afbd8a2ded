"""P20 micro-windows: 180 s from 09:30, 10:00, 11:30, 13:00, 14:30 — stale 30 s, WARM poll 15 s."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from broker_core.contract.reasons import ReasonCode
from strategies.kpr.config import KprParams
from strategies.kpr.micro_windows import cold_poll_sec, in_micro_window, stale_limit_sec, warm_poll_sec
from tests.unit.kpr._helpers import engine, feed, ts

P = KprParams()


@pytest.mark.parametrize(
    ("t", "inside"),
    [
        (time(9, 29, 59), False),
        (time(9, 30), True),
        (time(9, 32, 59), True),
        (time(9, 33), False),
        (time(10, 1), True),
        (time(11, 30, 30), True),
        (time(13, 2, 59), True),
        (time(14, 32), True),
        (time(14, 33), False),
        (time(12, 0), False),
    ],
)
def test_windows(t, inside):
    assert in_micro_window(t, P) is inside
    assert stale_limit_sec(t, P) == (30 if inside else 120)
    assert warm_poll_sec(t, P) == (15 if inside else 30)
    assert cold_poll_sec(t, P) == 180


def test_warm_symbols_poll_every_15s_inside_a_window():
    eng = engine(("A",))
    feed(eng, "A", ts(9, 0), 10_000, 10_000, 10_000, 10_000, 1_000)
    out = feed(eng, "A", ts(9, 19), 9_920, 9_920, 9_920, 9_920, 1_000)  # −0.8% from the open: WARM
    assert [d.fields["reasons"] for d in out.decisions if d.code is ReasonCode.KPR_TIER_WARM] == [["drop_open"]]
    polls = []
    t = ts(9, 20)
    while t < ts(9, 36):
        if eng.take_due_polls(t) == ["A"]:
            polls.append(t)
        t += timedelta(seconds=5)
    gaps = [((b - a).total_seconds(), a) for a, b in zip(polls, polls[1:], strict=False)]
    inside = {g for g, a in gaps if ts(9, 30) <= a < ts(9, 33)}
    outside = {g for g, a in gaps if ts(9, 21) <= a < ts(9, 29)}
    assert inside == {15.0} and outside == {30.0}


def test_a_failed_refresh_in_a_window_degrades_the_symbol_until_the_next_good_one():
    eng = engine(("A",))
    eng.on_data_failure(ts(10, 0, 30), "bars", "A")
    assert eng.syms["A"].degraded
    eng.on_data_failure(ts(10, 20), "bars", "A")  # outside a window: data only stale
    eng.on_bars("A", [], ts(10, 20, 5))
    assert not eng.syms["A"].degraded
    eng.on_data_failure(ts(10, 20), "bars", "A")
    assert not eng.syms["A"].degraded
