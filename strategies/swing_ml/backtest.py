"""A daily walk-forward backtest of swing-ML (strategies.md §5) on the US daily bars — pure: no HTTP, no OMS.

What it approximates: the live strategy decides every 15 minutes and checks exits every 5 minutes on a live
price; the data has daily bars only, so each session is reduced to **one decision at the open and one
intraday pass over the day's high and low**.

Session t, in this order (no look-ahead: a decision at t reads bars through t−1's close plus t's open only):

1. **Retrain** (every ``retrain_every`` sessions, the first one *before* the first session = warm-up): the
   S3.3 classifier on the labelled rows of the ``train_months`` (18) months that end at t−1 — a label of
   row d reads the close of d+5, so only rows with d+5 ≤ t−1 are used — purged walk-forward validation
   (:func:`~strategies.swing_ml.model.walk_forward_validate`, 4 folds, purge 5), then a fit on the whole
   window (:func:`~strategies.swing_ml.model.fit`). Promotion follows S5
   (:func:`~strategies.swing_ml.model.promotion_allowed`: AUC ≥ 0.52 and ≥ the model in use − 0.01); a
   retrain not promoted keeps the previous model; before the first promotion there is no model and no BUY.
   Models are kept in memory (nothing is written). Training rows need ``min_history`` (120) sessions of
   the symbol's history (so ``ret_120`` is defined; scikit-learn 1.9 cannot fit a column that is NaN on
   every row, which the 120-day return is during a stock's first 120 sessions).
2. **Regime** (S3.2): the HMM is refitted every ``regime_every`` sessions on SPY through t−1 (≤ 10 years);
   every session reads the *filtered* state of t−1 under the current fit and the sector strength of t−1.
3. **Open**: exits whose level the open has already passed (a gap through the stop / trail / take profit,
   :func:`~strategies.swing_ml.risk.check_exit` on the open) fill at the open. Then one decide run
   (:func:`~strategies.swing_ml.synthesizer.decide`): model probabilities of the symbols scored on t−1's
   factors (liquid on t−1: traded close > $5, ADV > $20M; ≥ 120 sessions of history), quartile votes,
   regime vote, max hold from the entry session (S7: held sessions ≥ ``max_hold_days``), BUY/SELL rules;
   orders via :func:`~strategies.swing_ml.orders.build_orders` (half-Kelly capped at 10 % NAV, NAV at the
   open, sized at the marketable limit). **All SELLs fill before any BUY**, at t's open; BUYs fill at the
   open too, whole shares, never more than the cash (no leverage). A symbol exited in session t is not
   bought again in t. SELLs decided in the run do not free a slot in that run (as ``decide`` specifies).
4. **Intraday** (S6): each held lot (incl. those bought at the open) against t's low and high. Levels come
   from :func:`~strategies.swing_ml.risk.exit_levels` with the peak known *before* the session's high (the
   day's high raises the peak and arms the trail from the next session only — its time is unknown) and,
   with ``atr_dynamic``, ATR14 of t−1. On the way down the higher of stop and (armed) trail is crossed first
   and names the exit; when the low reaches stop/trail and the high reaches the take profit in the same
   session, the **stop side is assumed first** (pessimistic). Exits fill at the level.
5. **Close**: the peak becomes max(fill, close) on the entry session, then the session's high
   (as :func:`~strategies.swing_ml.risk.peak_since_entry` reads daily bars); equity = cash + shares × close.

Prices are the vendor-adjusted OHLC (:class:`~strategies.swing_ml.data.Panel`: splits and dividends folded
in, so a split during a holding is no fake loss; whole shares are counted in adjusted units). No fees, no
slippage beyond filling at the open/level. Two books run side by side on the same retrains: ``swing_ml``
(the S5 promotion gate, as specified) and ``swing_ml_no_gate`` (every retrain's model used at once — a
diagnostic of what the model trades when the gate keeps it out). SPY buy & hold is bought at the first
session's open. Deterministic: fixed ``random_state`` everywhere, BLAS/OpenMP limited to ``threads``
(default 1, also much faster than 2 threads on a busy 2-core machine).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from broker_core.clock import NEW_YORK
from strategies.swing_ml import model as ml
from strategies.swing_ml.config import Mode, RiskParams, SwingMlConfig
from strategies.swing_ml.data import Panel
from strategies.swing_ml.factors import FEATURES, MIN_NAMES, atr, feature_matrix
from strategies.swing_ml.orders import build_orders
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.regime import (
    FittedHmm,
    HmmState,
    Regime,
    combine,
    filtered_probs,
    fit_hmm,
    hmm_observations,
    sector_strength,
)
from strategies.swing_ml.risk import check_exit, exit_levels
from strategies.swing_ml.synthesizer import DecideResult, Decision, Holding, Side, decide
from strategies.swing_ml.universe import dollar_volume

TRADING_DAYS = 252
SPEC_BOOK = "swing_ml"
NO_GATE_BOOK = "swing_ml_no_gate"
BOOK_LABELS = {
    SPEC_BOOK: "swing_ml (S5 promotion gate)",
    NO_GATE_BOOK: "swing_ml, every retrain used (no gate)",
}
EXIT_REASONS: tuple[Reason, ...] = (
    Reason.SWING_TAKE_PROFIT,
    Reason.SWING_STOP,
    Reason.SWING_TRAIL,
    Reason.SWING_MAX_HOLD,
    Reason.SWING_SELL_SCORE,
)
COOLDOWN = "SAME_SESSION_REENTRY"
"""Skip reason of a BUY of a symbol already exited in the same session."""
NO_CASH = "NO_CASH"
"""Skip reason of a BUY the cash cannot pay for one share of (no leverage)."""
DECIDE_AT = dtime(9, 45)
_EPS = 1e-9


class BacktestInputError(ValueError):
    """The span cannot be backtested (too little history, too few symbols …); the message says why."""


@dataclass(frozen=True)
class BacktestParams:
    retrain_every: int = 5
    """Sessions between retrains (5 ≈ weekly); the first retrain is before the first session."""
    regime_every: int = 5
    """Sessions between HMM refits (the filtered state is read every session)."""
    min_history: int = 120
    """Sessions of history a symbol needs (bars before the row) to be scored or trained on."""
    min_train_sessions: int = 120
    """A retrain needs labelled rows on at least this many sessions (else it is skipped)."""
    initial_equity: float = 100_000.0
    threads: int = 1
    """BLAS / OpenMP threads (threadpoolctl)."""

    def __post_init__(self) -> None:
        if self.retrain_every < 1 or self.regime_every < 1:
            raise ValueError("retrain_every and regime_every must be ≥ 1")
        if self.min_history < 0 or self.min_train_sessions < 1 or self.threads < 1:
            raise ValueError("min_history ≥ 0, min_train_sessions ≥ 1, threads ≥ 1")


def default_config() -> SwingMlConfig:
    """The shipped defaults (mode dry_run: a backtest sends nothing)."""
    return SwingMlConfig(mode=Mode.DRY_RUN)


# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    total_return: float
    cagr: float
    max_drawdown: float
    """Largest peak-to-trough loss as a positive fraction (0.12 = −12 %)."""
    sharpe: float
    """Annualised mean / std of daily returns (risk-free rate 0)."""
    final: float
    years: float


@dataclass(frozen=True, slots=True)
class Fill:
    day: date
    seq: int
    """Order of the fill within the session (1, 2, …)."""
    phase: str
    """``open`` (gap exits, decide's SELLs then BUYs) or ``intraday`` (S6 levels)."""
    symbol: str
    side: str
    qty: int
    price: float
    reason: str
    nav: float
    """NAV at the open when the order was made (BUY sizing)."""


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    entry_day: date
    exit_day: date
    qty: int
    entry_price: float
    exit_price: float
    reason: str
    held_sessions: int
    """Sessions s with entry < s ≤ exit (S7's count)."""

    @property
    def ret(self) -> float:
        return self.exit_price / self.entry_price - 1.0

    @property
    def pnl(self) -> float:
        return self.qty * (self.exit_price - self.entry_price)


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    entry_day: date
    qty: int
    entry_price: float
    last_close: float


@dataclass(frozen=True, slots=True)
class RetrainRecord:
    session: date
    """First session the retrain serves (it uses data through the session before)."""
    data_through: date
    train_start: date
    train_end: date
    """Last row date with a known label (≤ data_through − 5 sessions)."""
    sessions: int
    rows: int
    symbols: int
    auc: float | None
    """Pooled out-of-fold validation AUC."""
    fold_aucs: tuple[float | None, ...]
    promoted: bool
    """S5 gate decision (the ``swing_ml`` book)."""
    detail: str
    model_in_use: date | None
    """``swing_ml``'s model after this retrain (the session of the retrain that made it), None = none yet."""
    seconds: float
    """Data set + walk-forward validation + final fit."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    day: date
    regime: Regime
    hmm_state: HmmState
    hmm_probs: dict[str, float]
    """Filtered state probabilities of t−1 under the HMM in use."""
    sector_strength: float
    scored: int
    """Symbols scored (liquid, enough history)."""
    models: dict[str, date | None]
    """Book → session of the retrain whose model it used (None = no model)."""
    probs: dict[str, dict[str, float]]
    """Book → symbol → model probability at the decision (empty without a model)."""


@dataclass(frozen=True, slots=True)
class SymbolSkip:
    symbol: str
    reason: str


@dataclass(frozen=True)
class BookResult:
    name: str
    equity: pd.Series
    """Equity at each session's close, with the starting point (initial equity) at the session before."""
    exposure: pd.Series
    """Gross value of the holdings / equity at each session's close."""
    cash: pd.Series
    """Cash at each session's close (never negative: no leverage)."""
    fills: list[Fill]
    trades: list[Trade]
    open_positions: list[OpenPosition]
    skips: dict[str, int]
    """BUY candidates not bought, by reason (decide's and build_orders' reasons, NO_CASH, …)."""
    stats: Stats
    both_sides: int = 0
    """Intraday stop/trail exits on a session whose high also reached the take profit (stop side assumed first)."""

    @property
    def exits_by_reason(self) -> dict[str, int]:
        counts = Counter(t.reason for t in self.trades)
        return {str(r): counts.get(str(r), 0) for r in EXIT_REASONS}

    @property
    def hit_rate(self) -> float | None:
        return sum(t.ret > 0 for t in self.trades) / len(self.trades) if self.trades else None

    @property
    def avg_trade_return(self) -> float | None:
        return float(np.mean([t.ret for t in self.trades])) if self.trades else None

    @property
    def avg_held_sessions(self) -> float | None:
        return float(np.mean([t.held_sessions for t in self.trades])) if self.trades else None


@dataclass(frozen=True)
class BacktestResult:
    start: date
    end: date
    sessions: list[date]
    books: dict[str, BookResult]
    benchmark: pd.Series
    """SPY bought at the first session's open with the same initial equity (starting point as the books)."""
    benchmark_stats: Stats
    retrains: list[RetrainRecord]
    session_log: list[SessionRecord]
    skipped_symbols: list[SymbolSkip]
    params: BacktestParams
    seconds: dict[str, float] = field(default_factory=dict)
    """``prepare``, ``retrain`` (sum), ``regime`` (sum), ``total``."""


# -- statistics ------------------------------------------------------------------------------------


def curve_stats(equity: pd.Series) -> Stats:
    """CAGR over calendar years, max drawdown, Sharpe of daily returns."""
    values = equity.to_numpy(dtype=float)
    if len(values) < 2:
        raise ValueError("need at least two equity points")
    first, last = pd.Timestamp(equity.index[0]), pd.Timestamp(equity.index[-1])
    years = (last - first).days / 365.25
    cagr = (values[-1] / values[0]) ** (1.0 / years) - 1.0 if years > 0 else 0.0
    drawdown = float(np.max(1.0 - values / np.maximum.accumulate(values)))
    returns = values[1:] / values[:-1] - 1.0
    sd = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    sharpe = float(np.mean(returns)) / sd * math.sqrt(TRADING_DAYS) if sd > 1e-15 else 0.0
    return Stats(
        total_return=float(values[-1] / values[0] - 1.0),
        cagr=float(cagr),
        max_drawdown=drawdown,
        sharpe=sharpe,
        final=float(values[-1]),
        years=years,
    )


# -- prepared data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Everything computed once for all dates (each value at date d reads rows ≤ d only)."""

    panel: Panel
    universe: list[str]
    sector_map: dict[str, str]
    dates: pd.DatetimeIndex
    feats: pd.DataFrame
    """Long z-scored features, index (date, symbol)."""
    f_dpos: np.ndarray
    """Row → position of its date in ``dates``."""
    f_label: np.ndarray
    """Row → 5-session excess label (NaN where unknown even at the panel's end)."""
    f_bars: np.ndarray
    """Row → bars of the symbol up to and including the row's date."""
    f_any: np.ndarray
    """Row → at least one feature defined."""
    bars: pd.DataFrame
    liquid: pd.DataFrame
    atr14: pd.DataFrame
    hmm_obs: pd.DataFrame
    strength: pd.Series

    def pos(self, day: date | pd.Timestamp) -> int:
        return int(self.dates.get_loc(pd.Timestamp(day)))

    def eligible_count(self, min_history: int) -> np.ndarray:
        """Per date position: symbols with a known label, a feature and > ``min_history`` bars."""
        ok = ~np.isnan(self.f_label) & self.f_any & (self.f_bars > min_history)
        return np.bincount(self.f_dpos[ok], minlength=len(self.dates))


def prepare(panel: Panel, universe: Sequence[str], sector_map: Mapping[str, str], cfg: SwingMlConfig) -> Prepared:
    """Factors, labels, liquidity, ATR and regime inputs for the whole panel (slice it to ≤ the last
    session first: nothing after it is then even read)."""
    bench = cfg.regime.benchmark
    syms = [s for s in dict.fromkeys(universe) if s in panel.close.columns and panel.close[s].notna().any()]
    if len(syms) < MIN_NAMES:
        raise BacktestInputError(f"{len(syms)} symbols with data: the cross-section needs at least {MIN_NAMES}")
    feats = feature_matrix(panel, syms, sector_map, bench)
    dates = panel.dates
    labels = ml.forward_excess_label(panel.close[syms], panel.close[bench]).stack(future_stack=True)
    bars = panel.close[syms].notna().cumsum()
    f_label = labels.reindex(feats.index).to_numpy(dtype=float)
    f_bars = bars.stack(future_stack=True).reindex(feats.index).to_numpy(dtype=float)
    u = cfg.universe
    price, adv = panel.raw_close[syms], dollar_volume(panel.select(syms), u.adv_window)
    liquid = ((price > u.min_price) & (adv > u.min_adv_usd)).fillna(False).astype(bool)
    rp = cfg.regime
    return Prepared(
        panel=panel,
        universe=syms,
        sector_map=dict(sector_map),
        dates=dates,
        feats=feats,
        f_dpos=dates.get_indexer(feats.index.get_level_values("date")),
        f_label=f_label,
        f_bars=np.nan_to_num(f_bars, nan=0.0).astype(int),
        f_any=feats.notna().any(axis=1).to_numpy(),
        bars=bars,
        liquid=liquid,
        atr14=atr(panel.high[syms], panel.low[syms], panel.close[syms], cfg.risk.atr_period),
        hmm_obs=hmm_observations(panel.close[bench].dropna(), rp.vol_window),
        strength=sector_strength(panel.close, rp.sector_etfs, rp.sma_window),
    )


def training_set(prep: Prepared, first: date | pd.Timestamp, last: date | pd.Timestamp, min_history: int) -> ml.Dataset:
    """The labelled rows with ``first ≤ date ≤ last`` knowable at ``last``'s close (label date + 5 ≤ last),
    of symbols with more than ``min_history`` bars — :func:`~strategies.swing_ml.model.build_dataset` on
    ``panel.until(last)`` (same rows and values), sliced from the features computed once."""
    lo = int(prep.dates.searchsorted(pd.Timestamp(first)))
    hi = prep.pos(last)
    mask = (
        (prep.f_dpos >= lo)
        & (prep.f_dpos + ml.HORIZON <= hi)
        & ~np.isnan(prep.f_label)
        & prep.f_any
        & (prep.f_bars > min_history)
    )
    x = prep.feats[mask]
    y = pd.Series(prep.f_label[mask].astype(int), index=x.index, name="label")
    return ml.Dataset(x, y)


def first_feasible_session(prep: Prepared, params: BacktestParams, months: int) -> date | None:
    """The first session whose warm-up retrain (data through the session before) has labelled rows of at
    least ``MIN_NAMES`` symbols on ≥ ``min_train_sessions`` sessions; None if there is none."""
    enough = (prep.eligible_count(params.min_history) >= MIN_NAMES).astype(int)
    csum = np.concatenate([[0], np.cumsum(enough)])
    for i in range(1, len(prep.dates)):
        prev = prep.dates[i - 1]
        lo = int(prep.dates.searchsorted(pd.Timestamp(ml.train_window(prev, months)[0])))
        hi = i - 1 - ml.HORIZON
        if hi >= lo and csum[hi + 1] - csum[lo] >= params.min_train_sessions:
            return prep.dates[i].date()
    return None


# -- the books -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Lot:
    qty: int
    fill: float
    entry_day: date
    peak: float
    last: float
    """Last known close (values the lot on a session without a bar)."""


@dataclass(slots=True)
class _Model:
    session: date
    clf: Any
    auc: float | None


class _Book:
    def __init__(self, name: str, initial: float, cfg: SwingMlConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.cash = initial
        self.lots: dict[str, _Lot] = {}
        self.model: _Model | None = None
        self.fills: list[Fill] = []
        self.trades: list[Trade] = []
        self.skips: Counter[str] = Counter()
        self.equity: list[float] = []
        self.exposure: list[float] = []
        self.cash_curve: list[float] = []
        self.both_sides = 0
        self._seq = 0
        self._fixed_risk = cfg.risk.model_copy(update={"atr_dynamic": False})

    def _fill(
        self, day: date, phase: str, sym: str, side: str, qty: int, price: float, reason: str, nav: float
    ) -> None:
        self._seq += 1
        self.fills.append(Fill(day, self._seq, phase, sym, side, qty, price, reason, nav))

    def _sell(self, day: date, phase: str, sym: str, price: float, reason: str, nav: float, held: int) -> None:
        lot = self.lots.pop(sym)
        self.cash += lot.qty * price
        self._fill(day, phase, sym, "SELL", lot.qty, price, reason, nav)
        self.trades.append(Trade(sym, lot.entry_day, day, lot.qty, lot.fill, price, reason, held))

    def _risk(self, atr14: float | None) -> tuple[RiskParams, float | None]:
        if not self.cfg.risk.atr_dynamic:
            return self.cfg.risk, None
        if atr14 is None or not atr14 > 0:
            return self._fixed_risk, None  # no ATR (never for a symbol with 120 sessions of history)
        return self.cfg.risk, atr14

    def session(
        self,
        t: date,
        bar: Callable[[str], tuple[float, float, float, float]],
        atr_prev: Callable[[str], float | None],
        probs: Mapping[str, float],
        regime: Regime,
        held_days: Callable[[date, date], int],
        session_days: Sequence[date],
    ) -> None:
        self._seq = 0
        exited: set[str] = set()
        nav_open = self.cash
        for s, lot in self.lots.items():
            o = bar(s)[0]
            nav_open += lot.qty * (o if math.isfinite(o) else lot.last)
        # 1. the open: a gap through a level exits at the open
        for sym in sorted(self.lots):
            o = bar(sym)[0]
            if not math.isfinite(o):
                continue
            lot = self.lots[sym]
            risk, a = self._risk(atr_prev(sym))
            chk = check_exit(lot.fill, o, risk, peak=lot.peak, atr14=a)
            if chk.reason is not None:
                self._sell(t, "open", sym, o, str(chk.reason), nav_open, held_days(lot.entry_day, t))
                exited.add(sym)
        # 2. one decide run at the open: SELLs first, then BUYs
        now = datetime.combine(t, DECIDE_AT, tzinfo=NEW_YORK)
        holdings = {
            s: Holding(s, lot.qty, lot.fill, datetime.combine(lot.entry_day, DECIDE_AT, tzinfo=NEW_YORK))
            for s, lot in self.lots.items()
        }
        result = decide(probs, regime, holdings, now, self.cfg.decide, sessions=session_days)
        for d in result.skipped:
            self.skips[str(d.reason)] += 1
        keep: list[Decision] = []
        for d in result.orders:
            if d.side is Side.BUY and d.symbol in exited:
                self.skips[COOLDOWN] += 1
            else:
                keep.append(d)
        opens = {s: bar(s)[0] for s in {d.symbol for d in keep}}
        ref = {s: o for s, o in opens.items() if math.isfinite(o) and o > 0}
        orders, skipped = build_orders(DecideResult(keep, []), holdings, nav_open, ref, now, self.cfg)
        for d in skipped:
            self.skips[str(d.reason)] += 1
        for order in orders:  # build_orders returns SELLs before BUYs (S3.6)
            price = ref.get(order.symbol)
            if order.side is Side.SELL:
                if price is None:
                    continue  # no bar today: the exit waits for the next session
                lot = self.lots[order.symbol]
                self._sell(t, "open", order.symbol, price, str(order.reason), nav_open, held_days(lot.entry_day, t))
                exited.add(order.symbol)
                continue
            assert price is not None
            qty = min(order.qty, int(self.cash // price))
            if qty < 1:
                self.skips[NO_CASH] += 1
                continue
            self.cash -= qty * price
            self.lots[order.symbol] = _Lot(qty, price, t, price, price)
            self._fill(t, "open", order.symbol, "BUY", qty, price, str(order.reason), nav_open)
        # 3. intraday: S6 levels against the session's low and high
        for sym in sorted(self.lots):
            o, h, lo, _c = bar(sym)
            if not (math.isfinite(h) and math.isfinite(lo)):
                continue
            lot = self.lots[sym]
            peak = lot.fill if lot.entry_day == t else max(lot.peak, o if math.isfinite(o) else lot.peak)
            risk, a = self._risk(atr_prev(sym))
            lv = exit_levels(lot.fill, peak, risk, a)
            down = [(lv.stop, Reason.SWING_STOP)]
            if lv.trail is not None:
                down.append((lv.trail, Reason.SWING_TRAIL))
            hit = [(px, r) for px, r in down if lo <= px + _EPS]
            if hit:
                px, reason = max(hit, key=lambda pr: pr[0])  # the higher level is crossed first
                self.both_sides += h >= lv.take_profit - _EPS  # the take profit was reached too: stop side first
                price = min(px, o) if math.isfinite(o) else px
            elif h >= lv.take_profit - _EPS:
                reason = Reason.SWING_TAKE_PROFIT
                price = max(lv.take_profit, o) if math.isfinite(o) else lv.take_profit
            else:
                continue
            self._sell(t, "intraday", sym, price, str(reason), nav_open, held_days(lot.entry_day, t))
        # 4. the close
        gross = 0.0
        for sym, lot in self.lots.items():
            _o, h, _lo, c = bar(sym)
            if lot.entry_day == t:
                lot.peak = max(lot.fill, c) if math.isfinite(c) else lot.fill
            elif math.isfinite(h):
                lot.peak = max(lot.peak, h)
            if math.isfinite(c):
                lot.last = c
            gross += lot.qty * lot.last
        equity = self.cash + gross
        self.equity.append(equity)
        self.exposure.append(gross / equity if equity > 0 else 0.0)
        self.cash_curve.append(self.cash)


# -- the run ---------------------------------------------------------------------------------------


def _sessions(prep: Prepared, start: date, end: date) -> list[pd.Timestamp]:
    d = prep.dates
    return [pd.Timestamp(x) for x in d[(d >= pd.Timestamp(start)) & (d <= pd.Timestamp(end))]]


def _finite(v: float) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _symbol_skips(
    prep: Prepared, universe: Sequence[str], first: pd.Timestamp, last: pd.Timestamp, need: int
) -> list[SymbolSkip]:
    out: list[SymbolSkip] = []
    prev_pos = prep.pos(first) - 1
    for sym in dict.fromkeys(universe):
        if sym not in prep.universe:
            out.append(SymbolSkip(sym, "no daily bars in the data"))
            continue
        bars = prep.bars[sym]
        if int(bars.iloc[prev_pos]) > need:
            continue
        ok = bars.iloc[prev_pos : prep.pos(last)] > need  # the decision of session i reads row i − 1
        have = int(bars.iloc[prev_pos])
        if ok.any():
            from_day = prep.dates[prev_pos + int(np.argmax(ok.to_numpy())) + 1].date()
            out.append(
                SymbolSkip(
                    sym,
                    f"{have} bars before {first.date()}, {need} sessions of history need {need + 1}: "
                    f"scored from {from_day}",
                )
            )
        else:
            why = f"fewer than {need + 1} bars ({need} sessions of history) before {last.date()}: never scored"
            out.append(SymbolSkip(sym, why))
    return out


def run_backtest(
    panel: Panel,
    universe: Sequence[str],
    sector_map: Mapping[str, str],
    start: date,
    end: date,
    *,
    cfg: SwingMlConfig | None = None,
    params: BacktestParams | None = None,
    on_retrain: Callable[[RetrainRecord], None] | None = None,
) -> BacktestResult:
    """Simulate swing-ML from the first session ≥ ``start`` to the last ≤ ``end`` (see the module text).
    ``panel`` must hold the universe, SPY and the sector ETFs; rows after ``end`` are dropped first."""
    cfg = cfg if cfg is not None else default_config()
    params = params if params is not None else BacktestParams()
    with threadpool_limits(limits=params.threads):
        return _run(panel, universe, sector_map, start, end, cfg, params, on_retrain)


def _run(
    panel: Panel,
    universe: Sequence[str],
    sector_map: Mapping[str, str],
    start: date,
    end: date,
    cfg: SwingMlConfig,
    params: BacktestParams,
    on_retrain: Callable[[RetrainRecord], None] | None,
) -> BacktestResult:
    t_all = time.perf_counter()
    bench = cfg.regime.benchmark
    panel = panel.until(end)
    prep = prepare(panel, universe, sector_map, cfg)
    sessions = _sessions(prep, start, end)
    if len(sessions) < 2:
        raise BacktestInputError(f"fewer than two sessions between {start} and {end}")
    if prep.pos(sessions[0]) < 1:
        raise BacktestInputError(f"no session before {sessions[0].date()} to decide on")
    t_prepare = time.perf_counter() - t_all
    session_days = [d.date() for d in prep.dates]
    books = {
        SPEC_BOOK: _Book(SPEC_BOOK, params.initial_equity, cfg),
        NO_GATE_BOOK: _Book(NO_GATE_BOOK, params.initial_equity, cfg),
    }
    retrains: list[RetrainRecord] = []
    log: list[SessionRecord] = []
    fitted: FittedHmm | None = None
    fit_start: pd.Timestamp | None = None
    t_retrain = t_regime = 0.0
    o_, h_, l_, c_ = prep.panel.open, prep.panel.high, prep.panel.low, prep.panel.close

    for i, ts in enumerate(sessions):
        t = ts.date()
        pi = prep.pos(ts)
        prev = prep.dates[pi - 1]
        # -- retrain (data through prev)
        if i % params.retrain_every == 0:
            t0 = time.perf_counter()
            rec, new = _retrain(prep, t, prev, cfg, params, books[SPEC_BOOK].model)
            if new is not None:
                books[NO_GATE_BOOK].model = new
                if rec.promoted:
                    books[SPEC_BOOK].model = new
            spec_model = books[SPEC_BOOK].model
            rec = replace(rec, model_in_use=spec_model.session if spec_model is not None else None)
            retrains.append(rec)
            t_retrain += time.perf_counter() - t0
            if on_retrain is not None:
                on_retrain(rec)
        # -- regime of prev
        t0 = time.perf_counter()
        if fitted is None or i % params.regime_every == 0:
            obs = prep.hmm_obs.loc[:prev].iloc[-cfg.regime.hmm_lookback_sessions :]
            fitted = fit_hmm(obs, random_state=cfg.regime.hmm_random_state)
            fit_start = pd.Timestamp(obs.index[0])
        window = prep.hmm_obs.loc[fit_start:prev]
        if len(window) == 0 or pd.Timestamp(window.index[-1]) != prev:
            raise BacktestInputError(f"no {bench} regime observation on {prev.date()}")
        filt = filtered_probs(fitted, window).iloc[-1]
        state = HmmState(str(filt.idxmax()))
        hmm_probs = {str(k): float(v) for k, v in filt.items()}
        strength = float(prep.strength.loc[prev])
        if not np.isfinite(strength):
            raise BacktestInputError(f"no sector strength on {prev.date()}")
        regime = combine(state, strength, cfg.regime.risk_on_strength_min, cfg.regime.risk_off_strength_below)
        t_regime += time.perf_counter() - t0
        # -- scores of prev's factors
        eligible = [
            s
            for s in prep.universe
            if prep.bars.at[prev, s] > params.min_history
            and bool(prep.liquid.at[prev, s])
            and np.isfinite(o_.at[ts, s])
        ]
        x = prep.feats.xs(prev, level="date").reindex(eligible) if eligible else pd.DataFrame(columns=list(FEATURES))
        x = x[x.notna().any(axis=1)]
        cache: dict[int, dict[str, float]] = {}
        probs: dict[str, dict[str, float]] = {}
        for name, book in books.items():
            if book.model is None or len(x) == 0:
                probs[name] = {}
                continue
            key = id(book.model)
            if key not in cache:
                p = ml.predict_proba(book.model.clf, x)
                cache[key] = {str(s): float(v) for s, v in p.items()}
            probs[name] = cache[key]
        log.append(
            SessionRecord(
                t,
                regime,
                state,
                hmm_probs,
                strength,
                len(x),
                {n: (b.model.session if b.model is not None else None) for n, b in books.items()},
                probs,
            )
        )

        # -- trade
        def bar(sym: str, ts: pd.Timestamp = ts) -> tuple[float, float, float, float]:
            return (float(o_.at[ts, sym]), float(h_.at[ts, sym]), float(l_.at[ts, sym]), float(c_.at[ts, sym]))

        def atr_prev(sym: str, prev: pd.Timestamp = prev) -> float | None:
            return _finite(float(prep.atr14.at[prev, sym])) if sym in prep.atr14.columns else None

        def held_days(entry: date, day: date) -> int:
            return prep.pos(pd.Timestamp(day)) - prep.pos(pd.Timestamp(entry))

        for name, book in books.items():
            first_entry = min((lot.entry_day for lot in book.lots.values()), default=t)
            days = session_days[prep.pos(pd.Timestamp(first_entry)) : pi + 1]
            book.session(t, bar, atr_prev, probs[name], regime, held_days, days)

    before = prep.dates[prep.pos(sessions[0]) - 1]
    index = pd.DatetimeIndex([before, *sessions])
    last_ts = sessions[-1]
    results: dict[str, BookResult] = {}
    for name, book in books.items():
        equity = pd.Series([params.initial_equity, *book.equity], index=index, name=name)
        results[name] = BookResult(
            name=name,
            equity=equity,
            exposure=pd.Series(book.exposure, index=pd.DatetimeIndex(sessions), name=name),
            cash=pd.Series(book.cash_curve, index=pd.DatetimeIndex(sessions), name=name),
            fills=book.fills,
            trades=book.trades,
            open_positions=[
                OpenPosition(s, lot.entry_day, lot.qty, lot.fill, lot.last) for s, lot in sorted(book.lots.items())
            ],
            skips=dict(sorted(book.skips.items())),
            stats=curve_stats(equity),
            both_sides=book.both_sides,
        )
    spy = c_[bench].loc[sessions[0] : last_ts] / float(o_.at[sessions[0], bench]) * params.initial_equity
    benchmark = pd.concat([pd.Series([params.initial_equity], index=[before]), spy]).rename(bench)
    return BacktestResult(
        start=sessions[0].date(),
        end=last_ts.date(),
        sessions=[s.date() for s in sessions],
        books=results,
        benchmark=benchmark,
        benchmark_stats=curve_stats(benchmark),
        retrains=retrains,
        session_log=log,
        skipped_symbols=_symbol_skips(prep, universe, sessions[0], last_ts, params.min_history),
        params=params,
        seconds={
            "prepare": round(t_prepare, 3),
            "retrain": round(t_retrain, 3),
            "regime": round(t_regime, 3),
            "total": round(time.perf_counter() - t_all, 3),
        },
    )


def _retrain(
    prep: Prepared, t: date, prev: pd.Timestamp, cfg: SwingMlConfig, params: BacktestParams, current: _Model | None
) -> tuple[RetrainRecord, _Model | None]:
    """One walk-forward retrain on data through ``prev``; the new model (None when skipped) and its record
    (``model_in_use`` is filled in by the caller)."""
    t0 = time.perf_counter()
    mp = cfg.model
    first, _ = ml.train_window(prev, mp.train_months)
    ds = training_set(prep, first, prev, params.min_history)
    dates = ds.dates
    n = len(dates)
    rec = RetrainRecord(
        session=t,
        data_through=prev.date(),
        train_start=dates[0].date() if n else first,
        train_end=dates[-1].date() if n else prev.date(),
        sessions=n,
        rows=len(ds.y),
        symbols=int(ds.x.index.get_level_values("symbol").nunique()) if n else 0,
        auc=None,
        fold_aucs=(),
        promoted=False,
        detail="",
        model_in_use=None,
        seconds=0.0,
    )
    if n < params.min_train_sessions or ds.y.nunique() < 2:
        why = f"skipped: labelled rows on {n} sessions < {params.min_train_sessions}"
        if n >= params.min_train_sessions:
            why = "skipped: the labels hold a single class"
        return replace(rec, detail=why, seconds=round(time.perf_counter() - t0, 3)), None
    validation = ml.walk_forward_validate(ds, mp.hyperparameters, mp.n_splits, mp.purge_days)
    clf = ml.fit(ds, mp.hyperparameters)
    auc = _finite(validation.auc)
    current_auc = current.auc if current is not None else None
    ok, why = ml.promotion_allowed(auc, current_auc, mp.promote_min_auc, mp.promote_max_drop)
    rec = replace(
        rec,
        auc=auc,
        fold_aucs=tuple(_finite(a) for a in validation.fold_aucs),
        promoted=ok,
        detail=("promoted: " if ok else "not promoted: ") + why,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return rec, _Model(t, clf, auc)


def rules(cfg: SwingMlConfig, params: BacktestParams) -> list[str]:
    """The simulation's rules in words (the report prints them)."""
    r, d, m = cfg.risk, cfg.decide, cfg.model
    levels = (
        f"fill + {r.atr_take_profit_mult}·ATR14 / fill − {r.atr_stop_mult}·ATR14 / peak − {r.atr_trail_mult}·ATR14 "
        "(ATR14 of t−1)"
        if r.atr_dynamic
        else f"take profit +{r.take_profit_pct:.1%}, stop −{r.stop_loss_pct:.1%}, trail −{r.trail_drop_pct:.1%} "
        f"from the peak once it is +{r.trail_arm_pct:.1%}"
    )
    return [
        "Daily bars only: one decide run per session at the open and one exit pass over the session's high and "
        "low (live: decide every 15 min, risk check every 5 min on a live price).",
        "No look-ahead: the decision of session t reads factors, regime and model of t−1's close and t's open "
        "as the current price; its orders fill at t's open.",
        f"Exits (S6): {levels}. A gap through a level exits at the open. Intraday the higher of stop and armed "
        "trail is crossed first; when the low reaches stop/trail and the high the take profit in one session, "
        "the stop side is assumed first (pessimistic); exits fill at the level. The session's high raises the "
        "peak (and arms the trail) from the next session on.",
        f"Max hold (S7): SELL at the open once the sessions since the entry session reach {d.max_hold_days}.",
        f"Orders: all SELLs fill before any BUY; BUY = half-Kelly of NAV at the open capped at "
        f"{cfg.sizing.max_position_pct:.0%}, whole shares, never more than the cash (no leverage); at most "
        f"{d.max_positions} positions; a symbol exited in a session is not bought again in it.",
        f"Model: retrained every {params.retrain_every} sessions (the first before the first session) on the "
        f"{m.train_months} months through t−1 (labels known by t−1), purged walk-forward validation "
        f"({m.n_splits} folds, purge {m.purge_days}); promoted when AUC ≥ {m.promote_min_auc} and ≥ the model "
        f"in use − {m.promote_max_drop}, else the previous model stays; no promoted model → no BUY. "
        f"'{NO_GATE_BOOK}' uses every retrain's model at once (diagnostic).",
        f"Regime: HMM refitted every {params.regime_every} sessions on SPY through t−1, filtered state and "
        "sector strength of t−1 every session.",
        f"Universe: liquid on t−1 (traded close > ${cfg.universe.min_price:g}, ADV > "
        f"${cfg.universe.min_adv_usd / 1e6:g}M) with ≥ {params.min_history} sessions of history; prices "
        "vendor-adjusted (splits, dividends); no fees or slippage; SPY bought at the first open.",
    ]


# -- summary ---------------------------------------------------------------------------------------


def _r(v: float | None, nd: int = 6) -> float | None:
    return None if v is None else round(float(v), nd)


def book_summary(book: BookResult) -> dict[str, Any]:
    s = book.stats
    return {
        "run": book.name,
        "label": BOOK_LABELS.get(book.name, book.name),
        "total_return": _r(s.total_return),
        "cagr": _r(s.cagr),
        "max_drawdown": _r(s.max_drawdown),
        "sharpe": _r(s.sharpe, 4),
        "final": round(s.final, 2),
        "trades": len(book.trades),
        "open_at_end": len(book.open_positions),
        "hit_rate": _r(book.hit_rate, 4),
        "avg_trade_return": _r(book.avg_trade_return),
        "avg_held_sessions": _r(book.avg_held_sessions, 2),
        "exposure": _r(float(book.exposure.mean()), 4),
        "buys": sum(f.side == "BUY" for f in book.fills),
        "exits_by_reason": book.exits_by_reason,
        "stop_side_first_sessions": book.both_sides,
        "buy_skips": book.skips,
    }


def summary(result: BacktestResult) -> dict[str, Any]:
    """The JSON-able figures of a run (no equity curves)."""
    b = result.benchmark_stats
    aucs = [r.auc for r in result.retrains if r.auc is not None]
    regimes = Counter(str(s.regime) for s in result.session_log)
    return {
        "from": str(result.start),
        "to": str(result.end),
        "sessions": len(result.sessions),
        "results": [book_summary(bk) for bk in result.books.values()]
        + [
            {
                "run": str(result.benchmark.name),
                "label": f"{result.benchmark.name} buy & hold",
                "total_return": _r(b.total_return),
                "cagr": _r(b.cagr),
                "max_drawdown": _r(b.max_drawdown),
                "sharpe": _r(b.sharpe, 4),
                "final": round(b.final, 2),
            }
        ],
        "retrains": [
            {
                "session": str(r.session),
                "data_through": str(r.data_through),
                "train_start": str(r.train_start),
                "train_end": str(r.train_end),
                "sessions": r.sessions,
                "rows": r.rows,
                "symbols": r.symbols,
                "auc": _r(r.auc, 4),
                "fold_aucs": [_r(a, 4) for a in r.fold_aucs],
                "promoted": r.promoted,
                "detail": r.detail,
                "model_in_use": None if r.model_in_use is None else str(r.model_in_use),
                "seconds": round(r.seconds, 2),
            }
            for r in result.retrains
        ],
        "auc_summary": {
            "retrains": len(result.retrains),
            "promoted": sum(r.promoted for r in result.retrains),
            "mean": _r(float(np.mean(aucs)), 4) if aucs else None,
            "min": _r(min(aucs), 4) if aucs else None,
            "max": _r(max(aucs), 4) if aucs else None,
            "at_least_0_52": sum(a >= 0.52 for a in aucs),
            "seconds_mean": round(float(np.mean([r.seconds for r in result.retrains])), 2) if result.retrains else None,
            "seconds_max": round(max(r.seconds for r in result.retrains), 2) if result.retrains else None,
        },
        "regime_sessions": dict(sorted(regimes.items())),
        "skipped_symbols": [{"symbol": s.symbol, "reason": s.reason} for s in result.skipped_symbols],
        "seconds": result.seconds,
        "params": {
            "retrain_every": result.params.retrain_every,
            "regime_every": result.params.regime_every,
            "min_history": result.params.min_history,
            "min_train_sessions": result.params.min_train_sessions,
            "initial_equity": result.params.initial_equity,
            "threads": result.params.threads,
        },
    }
