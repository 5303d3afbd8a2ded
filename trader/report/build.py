"""Assemble report.json's dictionary from a :class:`RunData`, its :class:`Book` and the benchmark.

The minimum shape of ARCHITECTURE.md ("Command line") comes first and is never overridden:
``market, from, to, sessions, strategies.{ID}.{intents, entries, fills, realized_pnl, rejections}, equity``.
Definitions of the per-strategy counts:

* ``intents``: every intent the OMS recorded for the strategy (any type, any status);
* ``entries``: BUY orders of the strategy that got at least one fill (positions opened or added to);
* ``fills``: every fill (buys and sells);
* ``realized_pnl``: the ledger's realized P&L, net of fees (see :mod:`trader.report.equity`);
* ``rejections``: intents REJECTED or DEFERRED by the OMS, by reason code (``UNSPECIFIED`` when none).

Everything else sits beside those keys: per-day counts (``days``), intents by status / reason / type,
the funnel and its sentence, orders by state, trades, metrics next to the benchmark's, notes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from trader.report import metrics as m
from trader.report.collect import RunData, text_or_none
from trader.report.equity import EQUITY_METHOD, Book
from trader.report.funnel import build_funnel

REFUSED = ("REJECTED", "DEFERRED")
FIXED_KEYS = ("market", "from", "to", "sessions", "strategies", "equity")


def _r(x: float | None, digits: int = 2) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), digits)


def _days(values: pd.Series, tz: Any) -> pd.Series:
    if values.empty:
        return pd.Series([], dtype=object)
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz).dt.date


def _iso(ts: Any, tz: Any) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)) or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert(tz).isoformat()


def _entry_days(run: RunData) -> pd.DataFrame:
    """One row per entry (BUY order with fills): strategy, order, day of its first fill."""
    buys = run.fills[run.fills["side"].astype(str).str.upper() == "BUY"]
    if buys.empty:
        return pd.DataFrame(columns=["strategy_id", "order_id", "day"])
    first = buys.sort_values("ts").groupby("order_id", as_index=False).first()
    first["day"] = _days(first["ts"], run.tz).to_numpy()
    return first[["strategy_id", "order_id", "day"]]


def _counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    if frame.empty:
        return {}
    return {str(k): int(v) for k, v in Counter(frame[column].astype(str)).most_common()}


def _strategy_block(run: RunData, book: Book, sid: str, entries: pd.DataFrame) -> dict[str, Any]:
    intents = run.intents[run.intents["strategy_id"] == sid]
    orders = run.orders[run.orders["strategy_id"] == sid]
    fills = run.fills[run.fills["strategy_id"] == sid]
    trades = run.trades[run.trades["strategy_id"] == sid]
    refused = intents[intents["status"].isin(REFUSED)]
    rejections = Counter(text_or_none(r) or "UNSPECIFIED" for r in refused["reason_code"])
    with_reason = intents[intents["reason_code"].notna()]
    by_status_reason: dict[str, dict[str, int]] = {}
    for row in intents.itertuples():
        bucket = by_status_reason.setdefault(str(row.status), {})
        key = text_or_none(row.reason_code) or "-"
        bucket[key] = bucket.get(key, 0) + 1
    funnel = build_funnel(sid, run.decisions.get(sid), run.intents, run.orders, run.fills, run.tz)
    decisions = Counter(d.code for d in run.decisions.get(sid, []))
    pnl = trades["pnl"].astype(float) if not trades.empty else pd.Series([], dtype=float)
    return {
        "intents": len(intents),
        "entries": int((entries["strategy_id"] == sid).sum()),
        "fills": len(fills),
        "realized_pnl": _r(book.realized.get(sid, 0.0)) or 0.0,
        "rejections": dict(rejections.most_common()),
        "unrealized_pnl": _r(book.unrealized.get(sid, 0.0)) or 0.0,
        "intents_by_status": _counts(intents, "status"),
        "intents_by_reason": _counts(with_reason, "reason_code"),
        "intents_by_status_reason": by_status_reason,
        "intents_by_type": _counts(intents, "intent_type"),
        "orders": len(orders),
        "orders_by_state": _counts(orders, "state"),
        "trades": len(trades),
        "trade_win_rate": _r(m.win_rate(pnl), 4),
        "open_positions": book.open_positions.get(sid, {}),
        "decisions": dict(decisions.most_common()),
        "decision_log": str(run.logs[sid]) if sid in run.logs else None,
        "funnel": funnel.as_json(),
    }


def _per_day(run: RunData, book: Book, entries: pd.DataFrame) -> list[dict[str, Any]]:
    tz = run.tz
    intent_days = _days(run.intents["received_at"], tz)
    fill_days = _days(run.fills["ts"], tz)
    all_days = sorted(set(run.sessions) | set(intent_days) | set(fill_days) | set(entries["day"]))
    out = []
    previous = book.start_equity
    for day in all_days:
        by_strategy: dict[str, dict[str, Any]] = {}
        for sid in run.strategies:
            realized = book.realized_by_day.get(day, {}).get(sid, 0.0)
            row = {
                "intents": int(((intent_days == day) & (run.intents["strategy_id"] == sid).to_numpy()).sum())
                if len(intent_days)
                else 0,
                "entries": int(((entries["day"] == day) & (entries["strategy_id"] == sid)).sum()),
                "fills": int(((fill_days == day) & (run.fills["strategy_id"] == sid).to_numpy()).sum())
                if len(fill_days)
                else 0,
                "realized_pnl": _r(realized) or 0.0,
            }
            by_strategy[sid] = row
        equity = float(book.daily[day]) if day in book.daily.index else None
        out.append(
            {
                "date": day.isoformat(),
                "session": day in set(run.sessions),
                "intents": sum(r["intents"] for r in by_strategy.values()),
                "entries": sum(r["entries"] for r in by_strategy.values()),
                "fills": sum(r["fills"] for r in by_strategy.values()),
                "realized_pnl": _r(sum(book.realized_by_day.get(day, {}).values())) or 0.0,
                "equity": _r(equity),
                "pnl": _r(equity - previous) if equity is not None else None,
                "by_strategy": by_strategy,
            }
        )
        if equity is not None:
            previous = equity
    return out


def _trades(run: RunData) -> list[dict[str, Any]]:
    tz = run.tz
    out = []
    for t in run.trades.sort_values("exit_ts").to_dict("records") if not run.trades.empty else []:
        entry_ts, exit_ts = t.get("entry_ts"), t["exit_ts"]
        held = None
        if entry_ts is not None and not pd.isna(entry_ts):
            held = (pd.Timestamp(exit_ts) - pd.Timestamp(entry_ts)).total_seconds()
        entry_px, exit_px = float(t["entry_px"]), float(t["exit_px"])
        out.append(
            {
                "strategy": t["strategy_id"],
                "symbol": t["symbol"],
                "qty": int(t["qty"]),
                "entry_ts": _iso(entry_ts, tz),
                "exit_ts": _iso(exit_ts, tz),
                "entry_px": entry_px,
                "exit_px": exit_px,
                "return_pct": _r((exit_px / entry_px - 1.0) * 100.0, 3) if entry_px else None,
                "pnl": _r(float(t["pnl"])),
                "exit_reason": t.get("exit_reason"),
                "r_multiple": _r(t.get("r_multiple"), 3) if t.get("r_multiple") is not None else None,
                "held_seconds": _r(held, 0),
            }
        )
    return out


def benchmark_closes(benchmark: pd.Series, run: RunData) -> tuple[float | None, pd.Series]:
    """(close before the first session or None, closes of the run's days) of a daily close series."""
    index = [pd.Timestamp(i).date() if not isinstance(i, date) else i for i in benchmark.index]
    series = pd.Series(benchmark.to_numpy(dtype=float), index=index).sort_index()
    before = series[[d < run.start for d in series.index]]
    inside = series[[run.start <= d <= run.end for d in series.index]]
    return (float(before.iloc[-1]) if len(before) else None), inside


def _portfolio_metrics(run: RunData, book: Book) -> dict[str, Any]:
    start = book.start_equity
    returns = m.period_returns(book.daily, base=start) if start > 0 else pd.Series([], dtype=float)
    pnl = run.trades["pnl"].astype(float) if not run.trades.empty else pd.Series([], dtype=float)
    end = float(book.curve.iloc[-1]) if len(book.curve) else start
    return {
        "name": "portfolio",
        "start_value": _r(start),
        "end_value": _r(end),
        "total_return": _r(m.total_return(returns), 6),
        "cagr": _r(m.cagr(returns), 6),
        "sharpe": _r(m.sharpe(returns), 4),
        "sortino": _r(m.sortino(returns), 4),
        "max_drawdown": _r(m.max_drawdown(book.curve), 6) if start > 0 else None,
        "win_rate": _r(m.win_rate(pnl), 4),
        "day_win_rate": _r(m.win_rate(returns), 4),
        "exposure": _r(m.exposure(book.in_market, run.session_windows()), 4),
        "turnover": _r(m.turnover(book.traded_value, book.daily), 4) if start > 0 else None,
        "periods": len(returns),
    }


def _benchmark_metrics(benchmark: pd.Series | None, run: RunData) -> dict[str, Any] | None:
    if benchmark is None or len(benchmark) == 0:
        return None
    base, closes = benchmark_closes(benchmark, run)
    returns = m.period_returns(closes, base=base)
    path = pd.concat([pd.Series([base]), closes.reset_index(drop=True)]) if base is not None else closes
    return {
        "name": str(benchmark.name or "benchmark"),
        "start_value": _r(base if base is not None else (closes.iloc[0] if len(closes) else None)),
        "end_value": _r(closes.iloc[-1] if len(closes) else None),
        "total_return": _r(m.total_return(returns), 6),
        "cagr": _r(m.cagr(returns), 6),
        "sharpe": _r(m.sharpe(returns), 4),
        "sortino": _r(m.sortino(returns), 4),
        "max_drawdown": _r(m.max_drawdown(path), 6),
        "win_rate": None,
        "day_win_rate": _r(m.win_rate(returns), 4),
        "exposure": 1.0,
        "turnover": None,
        "periods": len(returns),
    }


def build_report(
    run: RunData,
    book: Book,
    benchmark: pd.Series | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json's dictionary (JSON-ready: no NaN, no infinity, ISO times in the market's zone)."""
    tz = run.tz
    entries = _entry_days(run)
    strategies = {sid: _strategy_block(run, book, sid, entries) for sid in run.strategies}
    bench_block: dict[str, Any] | None = None
    if benchmark is not None and len(benchmark):
        base, closes = benchmark_closes(benchmark, run)
        bench_block = {
            "name": str(benchmark.name or "benchmark"),
            "previous_close": base,
            "closes": [[d.isoformat(), float(v)] for d, v in closes.items()],
        }
    fixed: dict[str, Any] = {
        "market": run.market,
        "from": run.start.isoformat(),
        "to": run.end.isoformat(),
        "sessions": len(run.sessions),
        "strategies": strategies,
        "equity": [[_iso(t, tz), _r(v)] for t, v in book.curve.items()],
    }
    totals = {
        "intents": len(run.intents),
        "orders": len(run.orders),
        "entries": len(entries),
        "fills": len(run.fills),
        "trades": len(run.trades),
        "realized_pnl": _r(sum(book.realized.values())) or 0.0,
        "unrealized_pnl": _r(sum(book.unrealized.values())) or 0.0,
        "traded_value": _r(book.traded_value),
    }
    report: dict[str, Any] = {
        **fixed,
        "currency": run.currency,
        "timezone": str(tz),
        "session_days": [d.isoformat() for d in run.sessions],
        "generated_at": datetime.now(UTC).astimezone(tz).isoformat(timespec="seconds"),
        "database": run.database,
        "start_equity": _r(book.start_equity),
        "end_equity": _r(float(book.curve.iloc[-1])) if len(book.curve) else _r(book.start_equity),
        "equity_daily": [[d.isoformat(), _r(v)] for d, v in book.daily.items()],
        "equity_method": EQUITY_METHOD,
        "totals": totals,
        "metrics": {"portfolio": _portfolio_metrics(run, book), "benchmark": _benchmark_metrics(benchmark, run)},
        "benchmark": bench_block,
        "days": _per_day(run, book, entries),
        "trades": _trades(run),
        "why_nothing_traded": [s["funnel"]["sentence"] for s in strategies.values() if s["fills"] == 0],
        "notes": list(book.notes),
    }
    for key, value in (extra or {}).items():
        if key not in report:
            report[key] = value
    return report
