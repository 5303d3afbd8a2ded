"""Daily features (N6–N10), the regime's volatility test and 30-minute bars (N16)."""

from __future__ import annotations

from datetime import date, timedelta

from strategies.nulrimok.bars30 import MinuteBook, aggregate, bar_end, bar_start_of, bar_starts, completed_starts
from strategies.nulrimok.features import (
    DailyRow,
    FlowRow,
    SymbolFeatures,
    anchor_and_avwap,
    avwap_through,
    compute_features,
    flow_metrics,
    impulse_anchor,
    net_days,
    proximity,
    quantile,
    run_anchor,
)
from tests.unit.nulrimok._helpers import D4, P, at


def _rows(n: int, start: date = date(2025, 6, 2), close: float = 10_000.0, step: float = 10.0) -> list[DailyRow]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            c = close + step * len(out)
            out.append(DailyRow(d, c - 5, c + 50, c - 50, c, 1_000_000))
        d += timedelta(days=1)
    return out


def test_run_anchor_is_the_first_day_of_the_latest_five_day_run() -> None:
    rows = _rows(20)
    signs = [1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1, -1, 1, 1]
    net = {r.day: float(s) for r, s in zip(rows, signs, strict=True)}
    assert run_anchor(rows, net, 5) == rows[7].day  # the run 7–11; the later 13–16 is only 4 long
    assert run_anchor(rows, {r.day: -1.0 for r in rows}, 5) is None


def test_impulse_anchor_needs_volume_strong_close_and_an_up_day() -> None:
    rows = _rows(40)
    d = rows[30]
    rows[30] = DailyRow(d.day, d.close - 100, d.close + 100, d.close - 100, d.close + 100, 3_000_000)  # CPR 1, V 3×
    assert impulse_anchor(rows, 40, P) == d.day
    rows[30] = DailyRow(d.day, d.close - 100, d.close + 100, d.close - 100, d.close + 30, 3_000_000)  # CPR 0.65
    assert impulse_anchor(rows, 40, P) is None


def test_avwap_is_cumulative_typical_price_by_volume() -> None:
    rows = [DailyRow(date(2026, 1, 5), 0, 110, 90, 100, 100), DailyRow(date(2026, 1, 6), 0, 130, 110, 120, 300)]
    assert avwap_through(rows) == [100.0, (100 * 100 + 120 * 300) / 400]


def test_the_more_recent_anchor_that_passes_acceptance_wins_else_the_other() -> None:
    rows = _rows(80, step=0.0)
    net = {r.day: (1.0 if 45 <= i <= 52 else -1.0) for i, r in enumerate(rows)}  # run from rows[45]
    d = rows[70]
    rows[70] = DailyRow(d.day, 9_900, 10_600, 9_900, 10_600, 5_000_000)  # impulse, tp ≈ 10,367
    for i in range(71, 80):  # after the impulse the price stays above its AVWAP·1.01: not accepted
        r = rows[i]
        rows[i] = DailyRow(r.day, 10_600, 10_700, 10_550, 10_650, 1_000)
    res = anchor_and_avwap(rows, net, P)
    assert res.impulse_anchor == rows[70].day and res.run_anchor == rows[45].day
    assert res.anchor_date == rows[45].day and res.anchor_kind == "RUN" and res.acceptance_pass
    assert res.accepted_on == rows[46].day


def test_flow_components_and_reversal_flag() -> None:
    rows = _rows(25, step=0.0)
    flows = [FlowRow(r.day, 100.0 if i % 3 else -50.0, 0.0) for i, r in enumerate(rows)]
    net = net_days(rows, flows)
    assert net[0].net == -50.0 * rows[0].close and net[1].net == 100.0 * rows[1].close
    m = flow_metrics(net, 1e9, P)
    values = [n.net for n in net]
    assert m["persistence"] == sum(v > 0 for v in values[-10:]) / 10
    assert m["intensity_raw"] == sum(values[-5:]) / 1e9
    assert m["accel_raw"] == sum(values[-5:]) / 5 - sum(values[-20:]) / 20
    assert m["flow_reversal"] is False
    assert flow_metrics(net[:5], 1e9, P).get("persistence") is None  # < 10 flow sessions


def test_compute_features_trend_rs_and_band() -> None:
    rows = _rows(120)
    f = compute_features("A", "S", rows, [FlowRow(r.day, 10, 10) for r in rows], rows[-1].day, P)
    closes = [r.close for r in rows]
    assert f.history_ok and not f.halted
    assert f.sma50 == sum(closes[-50:]) / 50 and f.slope50 == 50.0  # +10/day: SMA50 moved 5 × 10
    assert f.trend_ok and f.r20 == closes[-1] / closes[-21] - 1 and f.r60 == closes[-1] / closes[-61] - 1
    assert f.adv20 == sum(r.value for r in rows[-20:]) / 20
    assert f.atr30m_est is not None and f.atr20 is not None and abs(f.atr30m_est - f.atr20 * 0.2774) < 1e-9
    assert f.avwap_ref is not None and f.band_lower == f.avwap_ref * 0.995 and f.band_upper == f.avwap_ref * 1.005
    assert SymbolFeatures.from_json(f.to_json()) == f
    later = compute_features("A", "S", rows, [], rows[-1].day + timedelta(days=3), P)
    assert later.halted  # no row on asof
    short = compute_features("A", "S", rows[:30], [], rows[29].day, P)
    assert not short.history_ok and short.adv20 is not None


def test_proximity_and_quantile() -> None:
    assert abs(proximity(10_250, 10_000, 0.05) - 0.5) < 1e-12 and proximity(11_000, 10_000, 0.05) == 0.0
    assert quantile([1, 2, 3, 4, 5], 0.9) == 4.6


def test_thirty_minute_bars_align_to_nine_and_end_at_15_20() -> None:
    starts = bar_starts(D4)
    assert len(starts) == 13 and starts[0] == at(D4, 9, 0) and starts[-1] == at(D4, 15, 0)
    assert bar_end(at(D4, 14, 30)) == at(D4, 15, 0) and bar_end(at(D4, 15, 0)) == at(D4, 15, 20)
    assert bar_start_of(at(D4, 9, 29)) == at(D4, 9, 0) and bar_start_of(at(D4, 15, 19)) == at(D4, 15, 0)
    assert bar_start_of(at(D4, 15, 20)) is None and bar_start_of(at(D4, 8, 59)) is None
    assert completed_starts(D4, at(D4, 10, 0, 5)) == [at(D4, 9, 0), at(D4, 9, 30)]


def test_aggregate_minutes_and_book_upserts() -> None:
    minutes = [
        {"start": at(D4, 9, 0), "open": 100, "high": 105, "low": 99, "close": 104, "volume": 10, "value": 1_020},
        {"start": at(D4, 9, 17), "open": 104, "high": 110, "low": 101, "close": 108, "volume": 5, "value": 540},
        {"start": at(D4, 9, 30), "open": 108, "high": 108, "low": 90, "close": 95, "volume": 7, "value": 700},
    ]
    b1, b2 = aggregate("A", minutes)
    assert (b1.start, b1.open, b1.high, b1.low, b1.close, b1.volume, b1.value) == (
        at(D4, 9, 0),
        100,
        110,
        99,
        108,
        15,
        1_560,
    )
    assert (b2.start, b2.close, b2.low) == (at(D4, 9, 30), 95, 90)
    book = MinuteBook()
    book.add("A", minutes[0])
    book.add("A", {**minutes[0], "close": 103})  # a REST bar replacing the stream's bar of the same minute
    book.add("A", minutes[1])
    got = book.window("A", at(D4, 9, 0), at(D4, 9, 30))
    assert [m["close"] for m in got] == [103, 108]


def test_fill_progress_counts_symbols_and_estimates_the_rest() -> None:
    from strategies.nulrimok.lrs.progress import FillProgress

    for style in ("rich", "log", "off"):
        p = FillProgress(4, "LRS test fill", style)
        assert p.eta_seconds() is None
        p.advance()
        p.advance()
        snap = p.snapshot
        assert (snap["done"], snap["total"]) == (2, 4) and snap["eta_s"] is not None
        p.stop()
