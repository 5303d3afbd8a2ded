"""strategies.md §7 PCIM scenarios 1–8, with their numbers."""

from __future__ import annotations

from datetime import date, timedelta

from broker_core.contract.reasons import ReasonCode
from strategies.pcim.approval import ApprovalStatus
from strategies.pcim.config import PcimParams
from strategies.pcim.decisions import EnterAction, ExitAction, ModifyRiskAction
from strategies.pcim.filters import gap_reversal
from strategies.pcim.regime import Regime, from_levels
from strategies.pcim.signals import Bucket, QuoteSnap, VwapBar, bucket_a_signal, bucket_b_at, bucket_of, buy_limit
from strategies.pcim.sizing import SizingInput, size
from tests.unit.pcim._helpers import at, bar, daily, engine, item

P = PcimParams()


def _gap_days(events: int, reversals: int) -> list:
    """61 daily bars: ``events`` gap-ups of +2% (the first ``reversals`` close below their open)."""
    closes, opens = [10_000.0], [10_000.0]
    for i in range(60):
        prev = closes[-1]
        if i < events:
            o = prev * 1.02
            c = o * (0.99 if i < reversals else 1.01)
        else:
            o, c = prev, prev
        opens.append(o)
        closes.append(c)
    return daily(closes, opens=opens)


def test_1_gap_reversal_rate_rejects_and_insufficient_sample_keeps() -> None:
    g = gap_reversal(_gap_days(12, 8), P)
    assert (g.events, g.reversals) == (12, 8) and round(g.rate or 0, 3) == 0.667
    assert not g.insufficient_sample and (g.rate or 0) > P.gap_reversal_max  # → reject
    g9 = gap_reversal(_gap_days(9, 8), P)
    assert (g9.events, g9.reversals) == (9, 8) and g9.insufficient_sample  # filter not applied: kept


def test_2_t3_medium_floor_rejects() -> None:
    # raw = 0.005·NAV / (1.5·ATR20) = 1,000 with NAV ₩300M and ATR 1,000
    inp = SizingInput(
        nav=300e6,
        price=10_000,
        atr20=1_000,
        conviction_mult=0.7,
        soft_mult=0.5,
        tier="T3",
        tier_mult=0.5,
        bucket="",
        regime_cap=1.0,
        pcim_gross=0,
        adtv20=12e9,
    )
    s = size(inp, P)
    assert s.raw == 1_000 and s.pre_cap == 175 and s.floor == 200 and s.rejected


def test_3_buckets() -> None:
    assert bucket_of(10_350, 10_000, P)[0] is Bucket.B
    assert bucket_of(10_720, 10_000, P)[0] is Bucket.D
    assert bucket_of(9_990, 10_000, P)[0] is Bucket.D
    assert bucket_of(10_700, 10_000, P)[0] is Bucket.B  # 7% exactly is still B


def test_4_bucket_a_t1_entry_limit() -> None:
    bars = [
        bar(at(9, 0), 10_050, 10_100, 10_000, 10_080, 40_000),
        bar(at(9, 1), 10_080, 10_200, 10_060, 10_150, 50_000),
        bar(at(9, 2), 10_150, 10_180, 10_100, 10_150, 40_000),
    ]
    sig = bucket_a_signal(bars, 100_000, P)
    assert sig.ok and (sig.high, sig.low, sig.close, sig.volume) == (10_200, 10_000, 10_150, 130_000)
    assert sig.ratio == 1.3 and sig.cpr == 0.75
    assert buy_limit(10_150, P.a_band_t1) == 10_180
    # through the engine: approved T1 item, expected open → A, bars at 09:03 → ENTER at 10,180
    e = engine()
    e.on_account(at(8, 30), 1e9)
    e.start_day(at(8, 30), [item()], {"005930": ApprovalStatus.APPROVED})
    e.set_regime(at(8, 30), from_levels(2_600, 2_500, 40, P))
    e.on_expected_open(at(8, 55), "005930", 10_100)
    e.on_clock(at(9, 1, 2))
    e.on_bars(at(9, 3, 2), "005930", bars)
    e.on_quote(at(9, 3, 2), "005930", QuoteSnap(at(9, 3, 2), 10_150, 10_140, 10_150, 10_000))
    out = e.on_clock(at(9, 3, 2))
    enters = [a for a in out.actions if isinstance(a, EnterAction)]
    assert len(enters) == 1 and enters[0].limit_price == 10_180 and enters[0].cancel_after_sec == 30
    assert enters[0].bucket == "A" and enters[0].confidence == "HIGH" and enters[0].time_horizon == "SWING"
    sig_d = out.first(ReasonCode.PCIM_A_SIGNAL)
    assert sig_d is not None and sig_d.fields["baseline"] == 100_000 and sig_d.fields["ratio"] == 1.3


def test_5_bucket_b_touch_and_reclaim() -> None:
    k = VwapBar(bar(at(9, 19), 10_000, 10_040, 9_995, 9_990, 1_000), 10_000)
    k1 = VwapBar(bar(at(9, 20), 9_990, 10_020, 9_990, 10_010, 1_000), 10_002)
    sig = bucket_b_at([k, k1], 1, P)
    assert sig.ok and sig.reclaim and sig.touch_at == k.bar.start
    assert round(10_002 * 1.0005, 1) == 10_007.0 and sig.close >= 10_007.0


def test_6_sizing_bucket_b_t1_high() -> None:
    inp = SizingInput(
        nav=1e9,
        price=10_000,
        atr20=400,
        conviction_mult=1.0,
        soft_mult=1.0,
        tier="T1",
        tier_mult=1.0,
        bucket="B",
        regime_cap=1.0,
        pcim_gross=0,
        adtv20=1e12,
        tv5m=1e12,
    )
    s = size(inp, P)
    assert s.raw == 8_333 and s.qty == 6_666 and s.binding is None and not s.rejected


def test_7_small_fill_abort() -> None:
    e = engine()
    e.on_account(at(8, 30), 1e9)
    e.start_day(at(8, 30), [item(adtv20=1e12)], {"005930": ApprovalStatus.APPROVED})
    e.set_regime(at(8, 30), from_levels(2_600, 2_500, 40, P))
    e.on_expected_open(at(8, 55), "005930", 10_400)  # g = 4% → B
    e.on_clock(at(9, 1, 2))
    s = e.syms["005930"]
    assert s.bucket is Bucket.B
    from strategies.pcim.engine import EntryOrder

    s.state, s.order = "ENTERING", EntryOrder(1_000, 10_020, at(9, 20), at(10, 0), "B", 10_010)
    e.on_fill("005930", "BUY", 250, 10_020, at(9, 30))
    out = e.on_order_closed("005930", at(10, 0, 5), 250)
    d = out.first(ReasonCode.PCIM_ABORTED_SMALL_FILL)
    assert (
        d is not None and d.fields["intended"] == 1_000 and d.fields["filled"] == 250 and d.fields["fill_pct"] == 0.25
    )
    exits = [a for a in out.actions if isinstance(a, ExitAction)]
    assert (
        len(exits) == 1 and exits[0].reason is ReasonCode.PCIM_ABORTED_SMALL_FILL and e.positions["005930"].qty == 250
    )


def test_8_crisis_regime_and_kospi_veto() -> None:
    r = from_levels(2_500, 2_600, 40, P)
    assert r.x == -2.5 and r.regime is Regime.CRISIS and r.cap == 0.20 and not r.bucket_a
    e = engine()
    e.on_account(at(8, 30), 1e9)
    e.start_day(at(8, 30), [item()], {"005930": ApprovalStatus.APPROVED})
    out = e.set_regime(at(8, 30), r)
    publish = out.actions[0]
    assert isinstance(publish, ModifyRiskAction) and publish.symbol == "*" and "cap=0.20" in (publish.signal_hash or "")
    e.on_expected_open(at(8, 55), "005930", 10_100)  # A bucket, but Crisis → no A
    assert e.on_clock(at(9, 1, 2)).first(ReasonCode.PCIM_SKIP_BUCKET) is not None
    v = e.on_index(at(9, 40), 2_560, 2_600)
    d = v.first(ReasonCode.PCIM_VETO_KOSPI)
    assert d is not None and d.fields["change"] == round(2_560 / 2_600 - 1, 5) and e.kospi_blocked
    assert date(2026, 2, 27) + timedelta(days=0) == e.day
