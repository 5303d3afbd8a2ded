"""Filters (I5–I10), sizing caps (I17–I18), exits (I21–I24), regime classes."""

from __future__ import annotations

from datetime import date

from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import PcimParams
from strategies.pcim.exits import PositionState, check, initial_levels, partial_qty, update_trail
from strategies.pcim.filters import (
    Candidate,
    ListingInfo,
    Rejection,
    WatchItem,
    evaluate,
    order_watchlist,
    soft_multipliers,
    tier_of,
)
from strategies.pcim.regime import Regime, classify
from strategies.pcim.signals import QuoteSnap, bucket_a_signal, veto
from strategies.pcim.sizing import SizingInput, priority_key, size
from tests.unit.pcim._helpers import DAY, at, bar, daily

P = PcimParams()


def _cand(conv: str = "HIGH") -> Candidate:
    return Candidate("005930", "삼성전자", conv)


def _uptrend(n: int = 80, volume: int = 2_000_000) -> list:
    return daily([10_000 + 10 * i for i in range(n)], volume=volume)


def test_conviction_other_than_high_medium_is_rejected() -> None:
    r = evaluate(_cand("LOW"), _uptrend(), ListingInfo(), DAY, P)
    assert isinstance(r, Rejection) and r.code is ReasonCode.PCIM_BAD_CONVICTION


def test_trend_gate_rejects_at_or_below_sma20() -> None:
    down = daily([20_000 - 10 * i for i in range(80)], volume=2_000_000)
    r = evaluate(_cand(), down, ListingInfo(), DAY, P)
    assert isinstance(r, Rejection) and r.code is ReasonCode.PCIM_TREND_GATE and r.fields["pass"] is False


def test_adtv_market_cap_and_earnings_rejects() -> None:
    thin = _uptrend(volume=500_000)  # ≈ ₩5.4B a day
    assert evaluate(_cand(), thin, ListingInfo(), DAY, P).code is ReasonCode.PCIM_REJECT_ADTV  # type: ignore[union-attr]
    big = ListingInfo(market_cap=6e12)
    assert evaluate(_cand(), _uptrend(), big, DAY, P).code is ReasonCode.PCIM_REJECT_MARKET_CAP  # type: ignore[union-attr]
    small = ListingInfo(market_cap=40e9)
    assert evaluate(_cand(), _uptrend(), small, DAY, P).code is ReasonCode.PCIM_REJECT_MARKET_CAP  # type: ignore[union-attr]
    earn = ListingInfo(earnings_dates=(date(2026, 3, 4),))
    window = [date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]
    r = evaluate(_cand(), _uptrend(), earn, DAY, P, earnings_days=window)
    assert isinstance(r, Rejection) and r.code is ReasonCode.PCIM_REJECT_EARNINGS
    ok = evaluate(
        _cand(),
        _uptrend(),
        ListingInfo(market_cap=1e12, earnings_dates=(date(2026, 3, 9),)),
        DAY,
        P,
        earnings_days=window,
    )
    assert isinstance(ok, WatchItem)


def test_tiers_soft_multipliers_and_ordering() -> None:
    assert tier_of(30e9, P) == ("T1", 1.0) and tier_of(29.9e9, P) == ("T2", 0.8)
    assert tier_of(12e9, P) == ("T3", 0.5) and tier_of(9e9, P) is None
    assert soft_multipliers(12e9, 0.25, P) == {"soft_adtv": 0.5, "soft_runup": 0.5}
    assert soft_multipliers(40e9, 0.10, P) == {}
    item = evaluate(_cand(), _uptrend(volume=1_100_000), ListingInfo(), DAY, P)  # ≈ ₩11.9B → T3 ×0.5, soft ×0.5
    assert isinstance(item, WatchItem) and item.tier == "T3" and item.soft_mult == 0.5
    assert item.multipliers == {"conviction": 1.0, "tier": 0.5, "soft_adtv": 0.5, "soft": 0.5}
    a = evaluate(Candidate("000001", "a", "MEDIUM"), _uptrend(volume=9_000_000), ListingInfo(), DAY, P)
    b = evaluate(Candidate("000002", "b", "HIGH"), _uptrend(volume=3_000_000), ListingInfo(), DAY, P)
    c = evaluate(Candidate("000003", "c", "HIGH"), _uptrend(volume=6_000_000), ListingInfo(), DAY, P)
    ranked = order_watchlist([a, b, c])  # type: ignore[list-item]
    assert [i.symbol for i in ranked] == ["000003", "000002", "000001"] and [i.rank for i in ranked] == [1, 2, 3]


def test_sizing_caps_bind_in_turn() -> None:
    base = dict(
        nav=1e9,
        price=10_000,
        atr20=400,
        conviction_mult=1.0,
        soft_mult=1.0,
        tier="T1",
        tier_mult=1.0,
        bucket="A",
        adtv20=1e12,
        tv5m=1e12,
    )
    s = size(SizingInput(regime_cap=0.8, pcim_gross=780e6, **base), P)  # type: ignore[arg-type]
    assert s.binding == "regime_gross" and s.qty == 2_000 and s.caps["regime_gross"] == 2_000 and s.rejected is False
    s = size(SizingInput(regime_cap=0.8, pcim_gross=0, **{**base, "tv5m": 1e8}), P)  # type: ignore[arg-type]
    assert s.binding == "tv5m_share" and s.qty == 1_500 and s.tv5m_source == "observed"
    s = size(SizingInput(regime_cap=0.8, pcim_gross=0, **{**base, "tv5m": None, "adtv20": 78e8}), P)  # type: ignore[arg-type]
    assert s.tv5m_source == "proxy" and s.caps["tv5m_share"] == 1_500
    s = size(SizingInput(regime_cap=0.8, pcim_gross=0, **{**base, "price": 200_000, "atr20": 100}), P)  # type: ignore[arg-type]
    assert s.binding == "position_15pct_nav" and s.qty == 750
    s = size(SizingInput(regime_cap=0.8, pcim_gross=799e6, **base), P)  # type: ignore[arg-type]
    assert s.qty == 100 and s.rejected  # 100 < 0.20 × 8,333


def test_priority_order() -> None:
    keys = [
        priority_key("B", "HIGH", 0.04, 50e9, "b"),
        priority_key("A", "MEDIUM", 0.01, 50e9, "am"),
        priority_key("A", "HIGH", 0.02, 50e9, "ah2"),
        priority_key("A", "HIGH", 0.01, 40e9, "ah1"),
        priority_key("A", "HIGH", 0.01, 90e9, "ah1big"),
    ]
    assert [k[-1] for k in sorted(keys)] == ["ah1big", "ah1", "ah2", "am", "b"]


def test_regime_classes() -> None:
    assert classify(-2.01) is Regime.CRISIS and classify(-2.0) is Regime.WEAK and classify(-0.01) is Regime.WEAK
    assert classify(0.0) is Regime.NORMAL and classify(2.0) is Regime.NORMAL and classify(2.01) is Regime.STRONG


def test_bucket_a_fails_on_flat_bar_and_low_volume() -> None:
    flat = [bar(at(9, 0), 10_000, 10_000, 10_000, 10_000, 500_000)]
    assert bucket_a_signal(flat, 100_000, P).reason == "H_EQUALS_L"
    weak = [bar(at(9, 0), 10_000, 10_200, 10_000, 10_150, 110_000)]
    assert bucket_a_signal(weak, 100_000, P).reason == "VOLUME"


def test_vetoes() -> None:
    now = at(9, 5)
    assert veto(None, now, P) is not None
    vi = veto(QuoteSnap(now, 10_000, 9_990, 10_000, 10_000, 13_000, halted=True), now, P)
    assert vi is not None and vi[0] == "PCIM_VETO_VI"
    near = veto(QuoteSnap(now, 12_980, 12_970, 12_980, 10_000, 13_000), now, P)  # down(13,000, 2) = 12,980
    assert near is not None and near[0] == "PCIM_VETO_UPPER_LIMIT"
    ok = veto(QuoteSnap(now, 12_970, 12_960, 12_970, 10_000, 13_000), now, P)
    assert ok is None
    wide = veto(QuoteSnap(now, 10_000, 9_960, 10_030, 10_000, 13_000), now, P)
    assert wide is not None and wide[0] == "PCIM_VETO_SPREAD"
    stale = veto(QuoteSnap(at(9, 4), 10_000, 9_990, 10_000, 10_000, 13_000), now, P)
    assert stale is not None and stale[0] == "PCIM_VETO_NO_QUOTE"


def test_exits_stop_profit_take_trail() -> None:
    stop, target = initial_levels(10_000, 400, P)
    assert (stop, target) == (9_400, 11_000)
    pos = PositionState("005930", 1_000, 10_000, DAY, 400, stop, target)
    assert check(pos, 9_500, DAY, P) is None
    assert check(pos, 9_400, DAY, P) == (ReasonCode.PCIM_X_STOP, None)
    assert check(pos, 11_000, DAY, P) == (ReasonCode.PCIM_X_PROFIT_TAKE, 600)
    assert partial_qty(1, P) == 0 and partial_qty(3, P) == 1
    assert update_trail(pos, 11_200, 400, DAY, date(2026, 3, 3), P) is None  # before the partial: no trail
    pos.partial_done, pos.qty = True, 400
    assert update_trail(pos, 11_200, 400, DAY, date(2026, 3, 3), P) == 10_600
    assert pos.effective_stop(DAY) == 9_400  # enforced from the next session
    assert pos.effective_stop(date(2026, 3, 3)) == 10_600
    assert update_trail(pos, 10_900, 400, date(2026, 3, 3), date(2026, 3, 4), P) == 10_600  # never lowered
    first = PositionState("000660", 400, 10_000, DAY, 400, 9_400, 11_000, partial_done=True)
    assert update_trail(first, 10_000, 600, DAY, date(2026, 3, 3), P) == 9_400  # floor = initial stop
    assert check(pos, 10_600, date(2026, 3, 3), P) == (ReasonCode.PCIM_X_TRAIL, None)
