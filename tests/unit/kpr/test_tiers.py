"""P1–P4: tier criteria, immediate promotion within the caps, P4 eviction order, P3 demotion."""

from __future__ import annotations

from datetime import timedelta

from strategies.kpr.config import KprParams
from strategies.kpr.tiers import Tier, TierBook, TierView, hot_reasons, range_expansion, warm_reasons
from tests.unit.kpr._helpers import ts

P = KprParams()


def test_criteria():
    assert hot_reasons(TierView(drop_open=-0.015), P) == ("drop_open",)
    assert hot_reasons(TierView(drop_open=-0.014), P) == ()
    assert hot_reasons(TierView(depth=0.02), P) == ("depth_band",)
    assert hot_reasons(TierView(depth=0.051), P) == ()
    assert hot_reasons(TierView(protected=True, in_position=True), P) == ("position",)
    assert hot_reasons(TierView(protected=True), P) == ("setup",)
    assert warm_reasons(TierView(drop_open=-0.007), P) == ("drop_open",)
    assert warm_reasons(TierView(depth=0.01), P) == ("depth",)
    assert warm_reasons(TierView(drop_open=-0.006, depth=0.009), P) == ()
    assert range_expansion(240, 300, P) and not range_expansion(239, 300, P)  # 0.8 × ATR20
    assert hot_reasons(TierView(range_expansion=True), P) == ("range_expansion",)


def test_promotion_is_immediate_and_demotion_waits():
    book = TierBook(P)
    book.add("A")
    moves = book.observe("A", TierView(drop_open=-0.008), ts(9, 30))
    assert [(m.old, m.new, m.why) for m in moves] == [(Tier.COLD, Tier.WARM, "promote")]
    moves = book.observe("A", TierView(drop_open=-0.02), ts(9, 31))
    assert [(m.old, m.new) for m in moves] == [(Tier.WARM, Tier.HOT)]
    book.observe("A", TierView(drop_open=-0.008), ts(9, 32))  # a WARM criterion only from now
    assert book.sweep(ts(9, 40, 59)) == [] and book.of("A") is Tier.HOT  # < 10 min since the last HOT criterion
    assert [(m.new, m.why) for m in book.sweep(ts(9, 41))] == [(Tier.WARM, "demote")]
    book.observe("A", TierView(drop_open=-0.001), ts(9, 42))
    assert book.sweep(ts(9, 46, 59)) == []  # < 15 min since the last WARM criterion (9:32)
    assert [(m.new, m.why) for m in book.sweep(ts(9, 47))] == [(Tier.COLD, "demote")]


def test_protected_symbols_are_never_demoted():
    book = TierBook(P)
    book.observe("A", TierView(protected=True, in_position=True), ts(9, 30))
    assert book.sweep(ts(11, 0)) == [] and book.of("A") is Tier.HOT


def test_hot_max_eviction_order_outside_band_then_smallest_drop():
    p = KprParams(hot_max=2)
    book = TierBook(p)
    book.observe("IN_BAND", TierView(drop_open=-0.016, depth=0.03), ts(10, 0))
    book.observe("BIG_DROP", TierView(drop_open=-0.04, depth=0.06), ts(10, 0))
    assert book.hot == {"IN_BAND", "BIG_DROP"}
    # a weaker candidate (outside the band, smaller drop than BIG_DROP) does not get in
    moves = book.observe("SMALL", TierView(drop_open=-0.02, depth=0.01), ts(10, 1))
    assert book.of("SMALL") is Tier.WARM and [m.why for m in moves] == ["hot_full"]
    # a stronger one evicts the weakest: outside-band BIG_DROP goes before in-band IN_BAND
    moves = book.observe("NEW", TierView(drop_open=-0.017, depth=0.025), ts(10, 2))
    assert book.hot == {"IN_BAND", "NEW"}
    assert [(m.symbol, m.new, m.why) for m in moves] == [
        ("BIG_DROP", Tier.WARM, "evicted"),
        ("NEW", Tier.HOT, "promote"),
    ]


def test_protected_symbols_beyond_the_lease_stay_hot_and_evict_idle_ones():
    p = KprParams(hot_max=1)
    book = TierBook(p)
    book.observe("IDLE", TierView(drop_open=-0.05), ts(10, 0))
    book.observe("POS1", TierView(protected=True, in_position=True), ts(10, 1))
    assert book.hot == {"POS1"} and book.of("IDLE") is Tier.WARM
    book.observe("POS2", TierView(protected=True, in_position=True), ts(10, 2))
    assert book.hot == {"POS1", "POS2"}  # the excess runs on REST (engine), never evicted


def test_warm_max_keeps_the_largest_drops():
    p = KprParams(warm_max=2)
    book = TierBook(p)
    for sym, d in (("A", -0.008), ("B", -0.009), ("C", -0.0075), ("D", -0.012)):
        book.observe(sym, TierView(drop_open=d), ts(10, 0))
    assert book.warm == {"B", "D"} and book.of("A") is Tier.COLD and book.of("C") is Tier.COLD


def test_sweep_moves_only_hot_and_warm_symbols():
    book = TierBook(P)
    for i in range(400):
        book.add(f"S{i:03d}")
    book.observe("S001", TierView(drop_open=-0.02), ts(10, 0))
    assert book.counts() == {"HOT": 1, "WARM": 0, "COLD": 399}
    moves = book.sweep(ts(10, 0) + timedelta(minutes=10))
    assert [(m.symbol, m.new) for m in moves] == [("S001", Tier.WARM)]
