"""strategies.md §7, the eight Nulrimok scenarios, with their numbers."""

from __future__ import annotations

import math
from datetime import date, timedelta

from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.features import (
    DailyRow,
    FlowRow,
    SymbolFeatures,
    accepted_on,
    anchor_and_avwap,
    flow_metrics,
    net_days,
)
from strategies.nulrimok.regime import regime_score, tier_of
from strategies.nulrimok.selection import PositionView, SelectionInputs, select
from strategies.nulrimok.signals import Confirm, confirm_check, trigger_check
from strategies.nulrimok.sizing import apply_caps
from tests.unit.nulrimok._helpers import (
    D2,
    D3,
    D4,
    P,
    at,
    bar,
    codes,
    decision,
    engine,
    features,
    history,
    selection,
)

# ---------------------------------------------------------------------------------------- scenario 1


def test_1_two_components_make_tier_b() -> None:
    score = regime_score(True, True, False, False, P)
    assert score == 0.55
    assert tier_of(score, P) == ("B", 0.5)
    assert tier_of(regime_score(True, True, True, False, P), P) == ("A", 1.0)  # ≥ 3 true ⇔ A
    assert tier_of(regime_score(True, False, False, False, P), P) == ("C", 0.0)  # ≤ 1 true ⇔ C


def _index_closes() -> list[float]:
    """300 KOSPI closes: a calm, slowly rising year, then 20 wild sessions ending high (price_ok, not vol_ok)."""
    closes = [2500.0 * (1.0005**i) * (1.001 if i % 2 else 0.999) for i in range(280)]
    for i in range(20):
        closes.append(closes[-1] * (1.05 if i % 2 == 0 else 0.97))
    return closes


def _sector(n: int = 11) -> dict[str, SymbolFeatures]:
    """One sector whose members rank the same on flow and on RS (member i: RS percentile i/10)."""
    out = {}
    for i in range(n):
        sym = f"S{i:02d}"
        out[sym] = features(
            sym,
            r20=0.01 * i,
            r60=0.02 * i,
            persistence=0.7,
            intensity_raw=0.01 * i,
            accel_raw=1e7 * i,
            adv20=1e10 * (n - i),
        )
    return out


def _inputs(fx_last: float) -> SelectionInputs:
    return SelectionInputs(
        session=D4,
        asof=D3,
        features=_sector(),
        index_closes=_index_closes(),
        fx_closes=[1300.0, 1301, 1302, 1303, 1304, fx_last],
    )


def test_1_tier_b_in_the_dse_needs_rs_70th_and_takes_the_top_20_percent() -> None:
    sel = select(_inputs(fx_last=1340.0), P)  # KRW +3.1% in 5 days: fx_ok false
    r = sel.regime
    assert (r.price_ok, r.breadth_ok, r.vol_ok, r.fx_ok) == (True, True, False, False)
    assert (r.score, r.tier, r.risk_mult) == (0.55, "B", 0.5)
    flow_ok = sorted(s for s, row in sel.rows.items() if row.flow_pass)
    assert flow_ok == ["S06", "S07", "S08", "S09", "S10"]  # flow_score above the sector median
    leaders = sorted(s for s, row in sel.rows.items() if row.leader_pass)
    assert leaders == ["S07", "S08", "S09", "S10"]  # RS percentile ≥ 0.70
    assert sel.rows["S06"].drop_reason is not None and sel.rows["S06"].drop_reason.value == "NULRIMOK_DROP_LEADER"
    candidates = [s for s, row in sel.rows.items() if row.candidate]
    assert len(candidates) == 4 and len(sel.tradable) == math.ceil(0.20 * 4) == 1
    assert all(sel.rows[s].recommended_risk_pct <= 0.005 * 1.5 * 0.5 for s in sel.tradable)

    tier_a = select(_inputs(fx_last=1305.0), P)  # fx_ok true: Tier A, RS ≥ 60th, top 30%
    assert tier_a.regime.tier == "A"
    assert sorted(s for s, row in tier_a.rows.items() if row.candidate) == ["S06", "S07", "S08", "S09", "S10"]
    assert len(tier_a.tradable) == math.ceil(0.30 * 5) == 2


# ---------------------------------------------------------------------------------------- scenario 2


def test_2_no_day_near_the_avwap_after_the_anchor_fails_acceptance() -> None:
    after = [
        DailyRow(date(2026, 2, 2) + timedelta(days=i), 10_300, 10_400, 10_101 + i, 10_350, 1_000) for i in range(8)
    ]
    assert accepted_on(after, [10_000.0] * len(after), 0.01) is None
    touching = [*after[:3], DailyRow(date(2026, 2, 20), 10_200, 10_300, 10_100, 10_250, 1_000)]
    assert accepted_on(touching, [10_000.0] * 4, 0.01) == date(2026, 2, 20)


def test_2_an_anchor_never_revisited_is_not_tradable() -> None:
    p = NulrimokParams()
    rows = [DailyRow(date(2025, 12, 1) + timedelta(days=i), 9_800, 9_900, 9_700, 9_800, 100_000) for i in range(30)]
    anchor = DailyRow(date(2026, 1, 5), 9_800, 10_100, 9_800, 10_100, 50_000_000)  # tp 10,000, CPR 1, huge volume
    later = [DailyRow(date(2026, 1, 6) + timedelta(days=i), 10_400, 10_600, 10_150, 10_500, 1_000) for i in range(10)]
    flows = [FlowRow(r.day, 0, 0) for r in rows]
    res = anchor_and_avwap([*rows, anchor, *later], {n.day: n.net for n in net_days(rows, flows)}, p)
    assert res.impulse_anchor == date(2026, 1, 5) and res.anchor_date == date(2026, 1, 5)
    assert res.avwap_ref is not None and abs(res.avwap_ref - 10_000) < 5
    assert res.acceptance_pass is False
    f = features("X", acceptance_pass=False, avwap_ref=res.avwap_ref)
    sel = select(
        SelectionInputs(
            session=D4,
            asof=D3,
            features={"X": f, "Y": features("Y", persistence=0.0, r20=0.0, r60=0.0)},
            index_closes=[],
        ),
        p,
    )
    assert sel.rows["X"].drop_reason is not None and sel.rows["X"].drop_reason.value == "NULRIMOK_DROP_ACCEPTANCE"
    assert sel.rows["X"].tradable is False and "X" not in sel.tradable


# ---------------------------------------------------------------------------------------- scenarios 3, 4


def _trigger_bars() -> list:
    hist = history("A", D4, n=20, close=10_072.5, volume=100_000)
    return [*hist, bar("A", at(D4, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000)]


def test_3_trigger_without_volume_bonus() -> None:
    chk = trigger_check(_trigger_bars(), 9_950, 10_050, P)
    assert chk.in_band and chk.triggered
    assert chk.sma5 == 10_060 and chk.vol_mean == 100_000 and chk.vol_ratio == 0.5
    assert chk.bonus is False  # 50% ≥ 40%


def test_4_confirmation_by_rule_b_or_disarm() -> None:
    trig = _trigger_bars()[-1]
    b1 = bar("A", at(D4, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000)
    assert confirm_check(b1, trig, 1, 10_000, 9_950, 10_050, P) is Confirm.B  # 9,995 ≤ 10,080.15, L 9,990 > 9,980
    low = bar("A", at(D4, 10, 30), 10_000, 10_000, 9_900, 9_920, 40_000)
    assert confirm_check(low, trig, 1, 10_000, 9_950, 10_050, P) is Confirm.DISARM  # 9,920 < 9,930.1


def test_3_4_through_the_engine_trigger_confirm_and_one_limit_buy() -> None:
    e = engine()
    e.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20, 10_072.5, 100_000)})
    out = e.on_bar30("A", _trigger_bars()[-1], at(D4, 10, 30, 5))
    trig = decision(out, "NULRIMOK_TRIGGER")
    assert trig.fields["sma5"] == 10_060 and trig.fields["vol_ratio"] == 0.5 and trig.fields["bonus"] is False
    out = e.on_bar30("A", bar("A", at(D4, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 11, 0, 5))
    assert codes(out)[:2] == ["NULRIMOK_CONFIRM", "NULRIMOK_ENTRY"]
    assert decision(out, "NULRIMOK_CONFIRM").fields["rule"] == "B"
    (enter,) = out.actions
    assert enter.limit_price == 10_000 and enter.order_type == "LIMIT" and enter.time_horizon == "SWING"
    assert enter.stop_px == 9_980  # max(swing low 9,980, 10,000 − 1.2·100)
    assert enter.qty == 15_000  # 5M / 20 = 250,000 shares, cut to the OMS's 15% NAV per position
    assert enter.idempotency_key == "NULRIMOK:A:ENTER:20260227T110000"
    assert 1_795 <= enter.cancel_after_sec <= 1_805  # until the 11:00–11:30 bar closes

    e2 = engine()
    e2.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20, 10_072.5, 100_000)})
    e2.on_bar30("A", _trigger_bars()[-1], at(D4, 10, 30, 5))
    out = e2.on_bar30("A", bar("A", at(D4, 10, 30), 10_000, 10_000, 9_900, 9_920, 40_000), at(D4, 11, 0, 5))
    assert "NULRIMOK_DISARM" in codes(out) and not out.actions
    assert e2.state_of("A").value == "IDLE"


# ---------------------------------------------------------------------------------------- scenario 5


def test_5_avwap_breakdown_on_heavy_volume_exits() -> None:
    e = engine()
    e.on_position_recovered(
        "A", 500, 10_000, at(D4, 8, 0), stop_px=9_000, entry_ts=at(D3, 11, 0), sessions_after=1, avwap_ref=10_000
    )
    e.on_selection(at(D4, 8, 5), selection(D4, [], extra=[features("A")]), {"A": history("A", D4, 20, 10_050, 100_000)})
    quiet = e.on_bar30("A", bar("A", at(D4, 9, 30), 10_000, 10_010, 9_900, 9_920, 150_000), at(D4, 10, 0, 5))
    assert not quiet.actions  # 150,000 is not > 1.5 × 100,000
    e = engine()
    e.on_position_recovered(
        "A", 500, 10_000, at(D4, 8, 0), stop_px=9_000, entry_ts=at(D3, 11, 0), sessions_after=1, avwap_ref=10_000
    )
    e.on_selection(at(D4, 8, 5), selection(D4, [], extra=[features("A")]), {"A": history("A", D4, 20, 10_050, 100_000)})
    out = e.on_bar30("A", bar("A", at(D4, 9, 30), 10_000, 10_010, 9_900, 9_920, 160_000), at(D4, 10, 0, 5))
    assert "NULRIMOK_X_AVWAP_BREAK" in codes(out)
    (ex,) = out.actions
    assert ex.reason.value == "NULRIMOK_X_AVWAP_BREAK" and ex.time_horizon == "SWING"
    assert ex.limit_price == 9_890  # marketable: round_down(9,920 × 0.997) = 9,890 (below 3 ticks: 9,890)


# ---------------------------------------------------------------------------------------- scenario 6


def test_6_sector_cap_numbers() -> None:
    nav, budget_pct = 1_000_000_000, 0.03
    cut = apply_caps(5_000_000, 8_000_000, 8_000_000, nav, 1.0, budget_pct, 0.35, 0.30)
    assert cut.room_sector == 2_500_000 and cut.risk == 2_500_000 and cut.code.value == "NULRIMOK_SIZE_CUT"
    skip = apply_caps(5_000_000, 9_200_000, 9_200_000, nav, 1.0, budget_pct, 0.35, 0.30)
    assert round(skip.room_sector) == 1_300_000 and skip.risk == 0 and skip.code.value == "NULRIMOK_G_SECTOR_RISK"


def _sector_engine(used_qty: int):
    e = engine()
    e.on_position_recovered("B", used_qty, 10_000, at(D4, 8, 0), stop_px=9_000, entry_ts=at(D3, 10, 0), sector="S1")
    sel = selection(D4, ["A"], feats={"A": features("A", atr30m=400, asof=D3)}, extra=[features("B")])
    e.on_selection(at(D4, 8, 5), sel, {"A": history("A", D4, 20, 10_072.5, 100_000)})
    e.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_120, 9_500, 10_010, 50_000), at(D4, 10, 30, 5))
    return e, e.on_bar30("A", bar("A", at(D4, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 11, 0, 5))


def test_6_through_the_engine_a_trade_is_cut_to_the_sector_room_or_skipped() -> None:
    e, out = _sector_engine(8_000)  # ₩8M open risk in S1
    cut = decision(out, "NULRIMOK_SIZE_CUT")
    assert cut.fields["want_risk"] == 5_000_000 and cut.fields["cut_to"] == 2_500_000
    (enter,) = out.actions
    assert enter.stop_px == 9_520 and enter.qty == 5_208  # 2.5M / (10,000 − 9,520)
    assert e.open_risk("S1") == 8_000_000 + 5_208 * 480  # the working entry counts with its planned risk
    e, out = _sector_engine(9_200)  # ₩9.2M: room 1.3M = 26% < 30%
    assert "NULRIMOK_G_SECTOR_RISK" in codes(out) and not out.actions


# ---------------------------------------------------------------------------------------- scenario 7


def test_7_failed_at_the_second_full_session_below_one_percent() -> None:
    e = engine()
    sel = selection(D2, ["A"], feats={"A": features("A", asof=D2 - timedelta(days=1))})
    e.on_selection(at(D2, 8, 5), sel, {"A": history("A", D2, 20, 10_072.5, 100_000)})
    e.on_bar30("A", bar("A", at(D2, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D2, 10, 30, 5))
    e.on_bar30("A", bar("A", at(D2, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D2, 11, 0, 5))
    e.on_fill("A", "BUY", 1_000, 10_000, at(D2, 11, 5))
    e.on_order_closed("A", at(D2, 11, 5), 1_000)
    e.on_price("A", 10_050, at(D2, 15, 9))
    out = e.on_clock(at(D2, 15, 10))
    assert not any(a for a in out.actions if a.__class__.__name__ == "ExitAction")  # entry day +0.5%: kept

    e.on_selection(at(D3, 8, 5), selection(D3, [], extra=[features("A", asof=D2)]))
    assert e.position_of("A").sessions_after == 1
    e.on_price("A", 10_050, at(D3, 15, 9))
    out = e.on_clock(at(D3, 15, 10))
    assert "NULRIMOK_X_FAILED" not in codes(out)

    e.on_selection(at(D4, 8, 5), selection(D4, [], extra=[features("A", asof=D3)]))
    assert e.position_of("A").sessions_after == 2
    e.on_price("A", 10_080, at(D4, 15, 9))  # +0.8%
    out = e.on_clock(at(D4, 15, 10))
    failed = decision(out, "NULRIMOK_X_FAILED")
    assert failed.fields["pnl"] == 0.008 and failed.fields["sessions_after"] == 2
    assert [a.reason.value for a in out.actions if hasattr(a, "reason") and a.__class__.__name__ == "ExitAction"] == [
        "NULRIMOK_X_FAILED"
    ]


def test_7_entry_day_loss_exits_at_15_10() -> None:
    e = engine()
    e.on_selection(at(D4, 8, 5), selection(D4, ["A"]), {"A": history("A", D4, 20, 10_072.5, 100_000)})
    e.on_bar30("A", bar("A", at(D4, 10, 0), 10_050, 10_120, 9_980, 10_010, 50_000), at(D4, 10, 30, 5))
    e.on_bar30("A", bar("A", at(D4, 10, 30), 10_000, 10_040, 9_990, 9_995, 40_000), at(D4, 11, 0, 5))
    e.on_fill("A", "BUY", 1_000, 10_000, at(D4, 11, 5))
    e.on_price("A", 9_990, at(D4, 15, 9))
    out = e.on_clock(at(D4, 15, 10))
    assert "NULRIMOK_X_ENTRY_DAY" in codes(out)


# ---------------------------------------------------------------------------------------- scenario 8


def test_8_two_days_of_net_selling_flag_the_position_and_it_exits_by_09_05() -> None:
    rows = [DailyRow(D4 - timedelta(days=30 - i), 10_000, 10_100, 9_900, 10_000, 1e6) for i in range(30)]
    flows = [FlowRow(r.day, 5_000, 1_000) for r in rows[:-2]] + [
        FlowRow(rows[-2].day, -3_000, 1_000),
        FlowRow(rows[-1].day, -100, -200),
    ]
    m = flow_metrics(net_days(rows, flows), 1e10, P)
    assert m["net_t1"] < 0 and m["net_t2"] < 0 and m["flow_reversal"] is True

    f = features("H", flow_reversal=True)
    sel = select(
        SelectionInputs(
            session=D4,
            asof=D3,
            features={"H": f},
            index_closes=[],
            positions=[PositionView("H", 300, 10_000, at(D2, 11, 0), 9_800)],
        ),
        P,
    )
    (d,) = sel.positions
    assert d.flow_reversal_flag is True and d.exit_directive == "EXIT_AT_OPEN"

    e = engine()
    e.on_position_recovered("H", 300, 10_000, at(D4, 7, 55), stop_px=9_800, entry_ts=at(D2, 11, 0), sessions_after=2)
    out = e.on_selection(at(D4, 8, 5), selection(D4, [], extra=[f]))
    assert "NULRIMOK_FLOW_REVERSAL" in codes(out)
    e.on_price("H", 10_100, at(D4, 9, 0, 10))
    assert not e.on_clock(at(D4, 9, 0, 30)).actions
    out = e.on_clock(at(D4, 9, 1))
    (ex,) = out.actions
    assert ex.reason.value == "NULRIMOK_X_FLOW_REVERSAL" and ex.ts <= at(D4, 9, 5)
    assert ex.limit_price == 10_060  # round_down(10,100 × 0.997 = 10,069.7) on the 10-won grid
