"""A daily simulation of rotation models on the daily data, next to SPY (spec §5, ``trader backtest``).

Each session from ``start`` to ``end``: every model decides on the adjusted closes up to and including
the session (M1–M4), the account plans its orders (M6–M8) at equity = cash + holdings at the close, and
the orders fill at that close: whole shares, no fees, no interest on a negative cash balance (leverage).
Per model the simulation keeps what the OMS would report — shares, cost basis, entry session, and the
ATR at entry (:func:`~strategies.rotation.data.atr_at_entry`) — and feeds it back as M4's holdings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from strategies.rotation.config import DEFAULT_CONFIG, RotationConfig
from strategies.rotation.data import DailyPanels, atr_at_entry
from strategies.rotation.history import DayLike, as_day
from strategies.rotation.models import Action, Holding, ModelDecision, decide
from strategies.rotation.orders import plan_cycle

TRADING_DAYS = 252


@dataclass(frozen=True, slots=True)
class Stats:
    cagr: float
    max_drawdown: float
    """Largest peak-to-trough loss as a positive fraction (0.34 = −34%)."""
    sharpe: float
    """Annualised mean / std of daily returns (risk-free rate 0)."""
    final: float
    years: float


@dataclass(slots=True)
class _Lot:
    qty: int
    cost: float
    entry_day: date
    atr: float | None


@dataclass(frozen=True, slots=True)
class BacktestResult:
    models: dict[str, float]
    """Model → budget fraction as given."""
    equity: pd.Series
    """Account equity at each session's close."""
    benchmark: pd.Series
    """SPY bought at the first close with the same initial equity."""
    stats: Stats
    benchmark_stats: Stats
    rebalances: dict[str, list[date]]
    """Model → sessions on which it rebalanced (M3)."""
    orders: int
    early_exits: int
    actions: dict[str, dict[str, int]] = field(default_factory=dict)
    """Model → action → number of sessions."""


def stats(equity: pd.Series) -> Stats:
    """CAGR over calendar years, max drawdown, Sharpe of daily returns."""
    values = equity.to_numpy(dtype=float)
    if len(values) < 2:
        raise ValueError("need at least two equity points")
    years = (as_day(equity.index[-1]) - as_day(equity.index[0])).days / 365.25
    cagr = (values[-1] / values[0]) ** (1.0 / years) - 1.0 if years > 0 else 0.0
    drawdown = float(np.max(1.0 - values / np.maximum.accumulate(values)))
    returns = values[1:] / values[:-1] - 1.0
    sd = float(np.std(returns, ddof=1))
    sharpe = float(np.mean(returns)) / sd * math.sqrt(TRADING_DAYS) if sd > 0 else 0.0
    return Stats(cagr=cagr, max_drawdown=drawdown, sharpe=sharpe, final=float(values[-1]), years=years)


def benchmark_curve(
    closes: pd.DataFrame, start: DayLike, end: DayLike, initial: float, symbol: str = "SPY"
) -> pd.Series:
    """Buy-and-hold of ``symbol`` from the first close in [start, end] (fractional shares)."""
    s = closes[symbol].loc[as_day(start) : as_day(end)].dropna()
    return (s / s.iloc[0] * initial).rename(symbol)


def run_backtest(
    panels: DailyPanels,
    models: Sequence[str] | Mapping[str, float],
    start: DayLike,
    end: DayLike,
    *,
    initial_equity: float = 100_000.0,
    config: RotationConfig = DEFAULT_CONFIG,
) -> BacktestResult:
    """Simulate one account holding ``models`` (names, equal budgets, or name → budget fraction)."""
    fractions = dict(models) if isinstance(models, Mapping) else {m: 1.0 for m in models}
    for m in fractions:
        config.model(m)  # unknown names fail before the loop
    closes = panels.adj_close
    sessions = closes.loc[as_day(start) : as_day(end)].index
    if len(sessions) < 2:
        raise ValueError(f"fewer than two sessions between {start} and {end}")
    cash = initial_equity
    book: dict[str, dict[str, _Lot]] = {m: {} for m in fractions}
    last: dict[str, date | None] = {m: None for m in fractions}
    last_price: dict[str, float] = {}
    rebalances: dict[str, list[date]] = {m: [] for m in fractions}
    actions: dict[str, dict[str, int]] = {m: {} for m in fractions}
    curve: list[float] = []
    n_orders = n_exits = 0
    for ts in sessions:
        row = closes.loc[ts]
        last_price.update({s: float(v) for s, v in row.items() if not math.isnan(v)})
        equity = cash + sum(lot.qty * last_price[s] for lots in book.values() for s, lot in lots.items())
        decisions: dict[str, ModelDecision] = {}
        for m in fractions:
            held = [Holding(s, lot.cost, lot.entry_day, lot.atr) for s, lot in book[m].items()]
            d = decide(m, closes, ts, last_rebalance=last[m], holdings=held, config=config)
            decisions[m] = d
            last[m] = d.last_rebalance
            actions[m][d.action.value] = actions[m].get(d.action.value, 0) + 1
            if d.action is Action.REBALANCE:
                rebalances[m].append(d.day)
            n_exits += len(d.exits)
        plan = plan_cycle(
            decisions,
            equity=equity,
            prices=last_price,
            holdings={m: {s: lot.qty for s, lot in lots.items()} for m, lots in book.items()},
            budget_fractions=fractions,
            params=config.orders,
            day=ts,
        )
        for o in plan.orders:
            lots = book[o.model]
            cash -= o.delta_qty * o.price
            lot = lots.get(o.symbol)
            if o.target_qty == 0:
                lots.pop(o.symbol, None)
            elif lot is None:
                ee = config.model(o.model).early_exit
                atr = atr_at_entry(panels, o.symbol, ts, ee.atr_period) if ee else None
                lots[o.symbol] = _Lot(o.target_qty, o.price, ts.date(), atr)
            else:
                if o.delta_qty > 0:  # cost basis = average price of the shares held, as the OMS keeps it
                    lot.cost = (lot.cost * lot.qty + o.price * o.delta_qty) / o.target_qty
                lot.qty = o.target_qty
            n_orders += 1
        curve.append(cash + sum(lot.qty * last_price[s] for lots in book.values() for s, lot in lots.items()))
    equity_curve = pd.Series(curve, index=sessions, name="equity")
    bench = benchmark_curve(closes, sessions[0], sessions[-1], initial_equity, config.regime.benchmark)
    return BacktestResult(
        models=fractions,
        equity=equity_curve,
        benchmark=bench,
        stats=stats(equity_curve),
        benchmark_stats=stats(bench),
        rebalances=rebalances,
        orders=n_orders,
        early_exits=n_exits,
        actions=actions,
    )


def min_rebalance_gap(days: Sequence[date]) -> int | None:
    """Fewest calendar days between two consecutive rebalances (None with fewer than two)."""
    if len(days) < 2:
        return None
    return min((b - a).days for a, b in zip(days, days[1:], strict=False))


def report(result: BacktestResult) -> str:
    """A small text table: the models' curve next to SPY's."""
    name = "+".join(result.models)
    width = max(len(name), 8)
    lines = [f"{'':{width}} {'CAGR':>8} {'maxDD':>8} {'Sharpe':>7} {'final':>12}"]
    for label, s in ((name, result.stats), (str(result.benchmark.name), result.benchmark_stats)):
        lines.append(f"{label:{width}} {s.cagr:8.2%} {s.max_drawdown:8.2%} {s.sharpe:7.2f} {s.final:12,.0f}")
    rb = ", ".join(f"{m} {len(d)} (min gap {min_rebalance_gap(d)} d)" for m, d in result.rebalances.items())
    lines.append(f"rebalances: {rb}; orders {result.orders}; early exits {result.early_exits}")
    return "\n".join(lines)
