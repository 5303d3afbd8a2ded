"""The pure swing-ML backtest (strategies/swing_ml/backtest.py) on the real US daily data, a 12-stock universe
and two months: same input → same result; a decision at t reads nothing after t's open; max-hold exits after
exactly N sessions; SELLs fill before BUYs; a BUY is ≤ 10 % of NAV and never more than the cash; exits fill
at their levels; the S5 gate keeps the previous model; the sliced training set equals model.build_dataset."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import pandas as pd
import pytest

from strategies.swing_ml.backtest import (
    NO_GATE_BOOK,
    SPEC_BOOK,
    BacktestParams,
    BacktestResult,
    Fill,
    curve_stats,
    default_config,
    first_feasible_session,
    prepare,
    run_backtest,
    summary,
    training_set,
)
from strategies.swing_ml.config import DecideParams, Mode, ModelParams, RiskParams, SwingMlConfig
from strategies.swing_ml.data import Panel
from strategies.swing_ml.model import build_dataset
from strategies.swing_ml.reasons import Reason

UNIVERSE = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "COP", "KO", "HD", "LLY", "AXP"]
"""HD, LLY and AXP start on 2023-02-07/08: fewer than 120 sessions of history at the start."""
START, END = date(2023, 7, 5), date(2023, 8, 31)
PARAMS = BacktestParams(retrain_every=10)


def _run(panel: Panel, sector_map: dict[str, str], cfg: SwingMlConfig | None = None) -> BacktestResult:
    return run_backtest(panel, UNIVERSE, sector_map, START, END, cfg=cfg, params=PARAMS)


@pytest.fixture(scope="module")
def base(panel: Panel, sector_map: dict[str, str]) -> BacktestResult:
    return _run(panel, sector_map)


@pytest.fixture(scope="module")
def max_hold_run(panel: Panel, sector_map: dict[str, str]) -> BacktestResult:
    """Max hold 3 sessions, levels out of reach, and a gate every model passes (AUC ≥ 0) but the drop rule."""
    cfg = SwingMlConfig(
        mode=Mode.DRY_RUN,
        decide=DecideParams(max_hold_days=3),
        risk=RiskParams(take_profit_pct=5.0, stop_loss_pct=0.9, trail_arm_pct=5.0),
        model=ModelParams(promote_min_auc=0.0),
    )
    return _run(panel, sector_map, cfg)


def _fills(result: BacktestResult, book: str) -> list[Fill]:
    return result.books[book].fills


def test_same_input_same_result(base: BacktestResult, panel: Panel, sector_map: dict[str, str]) -> None:
    again = _run(panel, sector_map)
    assert base.books[NO_GATE_BOOK].trades, "the no-gate book trades in this span"
    for name in (SPEC_BOOK, NO_GATE_BOOK):
        assert _fills(again, name) == _fills(base, name)
        pd.testing.assert_series_equal(again.books[name].equity, base.books[name].equity)
    assert [(r.auc, r.fold_aucs, r.rows, r.promoted) for r in again.retrains] == [
        (r.auc, r.fold_aucs, r.rows, r.promoted) for r in base.retrains
    ]
    assert [s.probs for s in again.session_log] == [s.probs for s in base.session_log]
    a, b = summary(again), summary(base)
    a.pop("seconds"), b.pop("seconds")
    for r in (*a["retrains"], *b["retrains"]):
        r.pop("seconds")
    a["auc_summary"].pop("seconds_mean"), a["auc_summary"].pop("seconds_max")
    b["auc_summary"].pop("seconds_mean"), b["auc_summary"].pop("seconds_max")
    assert a == b


def _perturbed_after(panel: Panel, t: pd.Timestamp) -> Panel:
    """Every price and volume after ``t`` scrambled; on ``t`` itself everything but the open."""
    rng = np.random.default_rng(7)

    def shake(frame: pd.DataFrame, rows: np.ndarray, lo: float, hi: float) -> pd.DataFrame:
        out = frame.copy()
        out.loc[rows] = out.loc[rows].to_numpy() * rng.uniform(lo, hi, size=out.loc[rows].shape)
        return out

    after = np.asarray(panel.close.index > t)
    from_t = np.asarray(panel.close.index >= t)
    return Panel(
        open=shake(panel.open, after, 0.85, 1.15),
        high=shake(panel.high, from_t, 1.0, 1.2),
        low=shake(panel.low, from_t, 0.8, 1.0),
        close=shake(panel.close, from_t, 0.85, 1.15),
        volume=shake(panel.volume, from_t, 0.3, 3.0),
        raw_close=shake(panel.raw_close, from_t, 0.85, 1.15),
    )


def test_a_decision_at_t_uses_nothing_after_t(base: BacktestResult, panel: Panel, sector_map: dict[str, str]) -> None:
    """Scramble every bar after t (and t's high, low, close, volume): the retrain, regime, scores and open
    orders of t, and everything before t, stay the same; what comes later changes."""
    book = base.books[NO_GATE_BOOK]
    candidates = [
        base.sessions[i]
        for i in (10, 20, 30)
        if any(f.day == base.sessions[i] and f.phase == "open" for f in book.fills)
    ]
    assert candidates, "a retrain session with orders at its open"
    t = candidates[0]
    other = _run(_perturbed_after(panel, pd.Timestamp(t)), sector_map)

    def upto(result: BacktestResult) -> list[tuple[object, ...]]:
        return [
            (r.session, r.data_through, r.rows, r.auc, r.fold_aucs, r.promoted)
            for r in result.retrains
            if r.session <= t
        ]

    assert upto(other) == upto(base)
    log = [
        (s.day, s.regime, s.hmm_state, s.hmm_probs, s.sector_strength, s.probs) for s in base.session_log if s.day <= t
    ]
    assert [
        (s.day, s.regime, s.hmm_state, s.hmm_probs, s.sector_strength, s.probs) for s in other.session_log if s.day <= t
    ] == log
    for name in (SPEC_BOOK, NO_GATE_BOOK):
        known = [f for f in _fills(base, name) if f.day < t or (f.day == t and f.phase == "open")]
        assert [f for f in _fills(other, name) if f.day < t or (f.day == t and f.phase == "open")] == known
        before = base.books[name].equity.index < pd.Timestamp(t)
        pd.testing.assert_series_equal(other.books[name].equity[before], base.books[name].equity[before])
    later = [s.probs for s in base.session_log if s.day > t]
    assert [s.probs for s in other.session_log if s.day > t] != later, "the perturbation must reach later decisions"


def test_max_hold_exits_after_exactly_n_sessions(max_hold_run: BacktestResult) -> None:
    for name in (SPEC_BOOK, NO_GATE_BOOK):
        trades = max_hold_run.books[name].trades
        held = [t for t in trades if t.reason == Reason.SWING_MAX_HOLD]
        assert len(held) >= 5, (name, Counter(t.reason for t in trades))
        assert {t.held_sessions for t in held} == {3}
        assert all(t.held_sessions <= 3 for t in trades)
        assert {t.reason for t in trades} <= {Reason.SWING_MAX_HOLD, Reason.SWING_SELL_SCORE}
        exits = {(f.day, f.symbol): f for f in max_hold_run.books[name].fills if f.side == "SELL"}
        assert all(exits[(t.exit_day, t.symbol)].phase == "open" for t in held)
        days = max_hold_run.sessions
        assert all(days.index(t.exit_day) - days.index(t.entry_day) == 3 for t in held)


def test_sells_fill_before_buys_and_cash_never_goes_negative(
    base: BacktestResult, max_hold_run: BacktestResult
) -> None:
    both = 0
    for result in (base, max_hold_run):
        for name, book in result.books.items():
            by_day: dict[date, list[tuple[int, str, str]]] = {}
            for f in book.fills:
                by_day.setdefault(f.day, []).append((f.seq, f.phase, f.side))
            for day, fills in by_day.items():
                seqs = [s for s, _, _ in fills]
                assert seqs == sorted(seqs) == list(range(1, len(fills) + 1)), (name, day)
                opens = [side for _, phase, side in fills if phase == "open"]
                assert opens == sorted(opens, key=lambda s: s != "SELL"), (name, day, opens)
                assert fills[: len(opens)] == [f for f in fills if f[1] == "open"], "open fills before intraday ones"
                both += "SELL" in opens and "BUY" in opens
            assert (book.cash >= -1e-6).all(), name
    assert both >= 5, "sessions with SELLs and BUYs at the open"


def test_buys_are_at_most_ten_percent_of_nav_in_whole_shares(
    base: BacktestResult, max_hold_run: BacktestResult
) -> None:
    fractions = [
        f.qty * f.price / f.nav
        for result in (base, max_hold_run)
        for book in result.books.values()
        for f in book.fills
        if f.side == "BUY"
    ]
    assert len(fractions) >= 20
    assert max(fractions) <= 0.10 + 1e-9
    assert max(fractions) > 0.09, "half-Kelly above the cap is capped at 10 %, not below"
    assert all(isinstance(f.qty, int) and f.qty >= 1 for b in base.books.values() for f in b.fills)


def test_exits_fill_at_their_level_or_at_a_gapping_open(base: BacktestResult, panel: Panel) -> None:
    """Fixed thresholds: stop at fill·0.975, take profit at fill·1.04 (intraday, with the session's low/high
    through them); an exit at the open is at that session's open."""
    book = base.books[NO_GATE_BOOK]
    phase = {(f.day, f.symbol, f.side): f.phase for f in book.fills}
    seen: Counter[str] = Counter()
    for t in book.trades:
        ts = pd.Timestamp(t.exit_day)
        o, h, lo = (
            float(panel.open.at[ts, t.symbol]),
            float(panel.high.at[ts, t.symbol]),
            float(panel.low.at[ts, t.symbol]),
        )
        when = phase[(t.exit_day, t.symbol, "SELL")]
        seen[f"{t.reason}/{when}"] += 1
        if when == "open":
            assert t.exit_price == pytest.approx(o)
            continue
        assert lo - 1e-9 <= t.exit_price <= h + 1e-9
        if t.reason == Reason.SWING_STOP:
            assert t.exit_price == pytest.approx(t.entry_price * 0.975) and lo <= t.exit_price + 1e-9
        elif t.reason == Reason.SWING_TAKE_PROFIT:
            assert t.exit_price == pytest.approx(t.entry_price * 1.04) and h >= t.exit_price - 1e-9
        elif t.reason == Reason.SWING_TRAIL:
            assert t.entry_price * 0.975 < t.exit_price and lo <= t.exit_price + 1e-9
    assert seen["SWING_STOP/intraday"] and seen["SWING_TAKE_PROFIT/intraday"], seen


def test_the_gate_keeps_the_previous_model(max_hold_run: BacktestResult, base: BacktestResult) -> None:
    """A retrain is promoted when AUC ≥ min (0 here) and ≥ the model in use − 0.01; otherwise the book keeps
    using the previous model, while the no-gate book takes every retrain."""
    in_use = None
    in_use_auc = None
    for r in max_hold_run.retrains:
        expected = r.auc is not None and (in_use_auc is None or r.auc >= in_use_auc - 0.01 - 1e-12)
        assert r.promoted == expected, r
        if r.promoted:
            in_use, in_use_auc = r.session, r.auc
        assert r.model_in_use == in_use
    assert not all(r.promoted for r in max_hold_run.retrains), "a retrain kept out by the − 0.01 rule"
    latest: dict[str, date | None] = {SPEC_BOOK: None, NO_GATE_BOOK: None}
    retrains = {r.session: r for r in max_hold_run.retrains}
    for s in max_hold_run.session_log:
        if s.day in retrains:
            latest = {SPEC_BOOK: retrains[s.day].model_in_use, NO_GATE_BOOK: s.day}
        assert s.models == latest
    # the shipped gate (AUC ≥ 0.52): nothing reached it in this span, so the gated book never bought
    assert all(r.auc is not None and r.auc < 0.52 for r in base.retrains)
    assert not base.books[SPEC_BOOK].fills and base.books[SPEC_BOOK].stats.final == 100_000.0


def test_retrains_every_n_sessions_with_the_first_before_the_first_session(base: BacktestResult) -> None:
    sessions = base.sessions
    assert [r.session for r in base.retrains] == sessions[::10]
    first = base.retrains[0]
    assert first.session == START and first.data_through < START
    for r in base.retrains:
        i = sessions.index(r.session)
        assert r.data_through < r.session and r.train_end < r.data_through
        assert r.auc is not None and len(r.fold_aucs) == 4 and r.rows > 1000, r
        assert (i == 0 and r.data_through == date(2023, 7, 3)) or r.data_through == sessions[i - 1]


def test_symbols_without_120_sessions_of_history_are_skipped_with_a_reason(base: BacktestResult) -> None:
    reasons = {s.symbol: s.reason for s in base.skipped_symbols}
    assert set(reasons) == {"AXP", "HD", "LLY"}, reasons
    assert "scored from 2023-08-02" in reasons["AXP"] and "120 sessions of history" in reasons["AXP"]
    probs = {s.day: set(s.probs[NO_GATE_BOOK]) for s in base.session_log}
    assert all("AXP" not in p for d, p in probs.items() if d < date(2023, 8, 2))
    assert all("AXP" in p for d, p in probs.items() if d >= date(2023, 8, 2))


def test_the_sliced_training_set_is_build_dataset(panel: Panel, sector_map: dict[str, str]) -> None:
    last = pd.Timestamp("2023-06-30")
    prep = prepare(panel.until(END), UNIVERSE, sector_map, default_config())
    mine = training_set(prep, date(2022, 12, 30), last, min_history=0)
    ref = build_dataset(panel, UNIVERSE, sector_map, date(2022, 12, 30), last)
    assert len(mine.y) > 1000
    pd.testing.assert_frame_equal(mine.x, ref.x)
    pd.testing.assert_series_equal(mine.y, ref.y, check_dtype=False)
    aged = training_set(prep, date(2022, 12, 30), last, min_history=120)
    assert "AXP" not in set(aged.x.index.get_level_values("symbol")) and "AXP" in set(
        ref.x.index.get_level_values("symbol")
    )
    assert aged.x["ret_120"].notna().all()
    assert first_feasible_session(prep, PARAMS, 18) == date(2023, 3, 14)


def test_curve_stats_by_hand() -> None:
    idx = pd.to_datetime(["2023-01-02", "2023-07-03", "2024-01-02"])
    s = curve_stats(pd.Series([100.0, 80.0, 121.0], index=idx))
    assert s.total_return == pytest.approx(0.21) and s.max_drawdown == pytest.approx(0.2)
    assert s.cagr == pytest.approx(1.21 ** (365.25 / 365) - 1)
