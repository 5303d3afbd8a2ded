"""Per-ticker daily features (strategies.md N2, N6–N10): pure functions over daily bars and investor flow.

Everything is "as of" the last completed session ``asof`` (T−1 for the session T being selected): only
rows with ``day <= asof`` are read. :func:`compute_features` returns one :class:`SymbolFeatures` —
what the nightly precompute stores in the LRS and the DSE (:mod:`strategies.nulrimok.selection`)
ranks across tickers.

**[resolved]** choices:

* Traded value (₩) of a day = close × volume (the daily data has no value column); ADV20 is its mean.
* Net buying (₩) of a day = (foreign_net + inst_net) shares × that day's close (N1); a flow row without
  a daily row that day is left out; a session without a flow row counts as "not positive" in runs.
* ``persistence`` needs ``persistence_days`` flow sessions, else it is None (the flow gate fails).
* Anchor runs (N9a) and impulses (N9b) are searched in the last ``anchor_lookback`` sessions; the
  impulse's 20-day average volume is of the 20 sessions before the day. AVWAP runs from the anchor
  day (included) through T−1; acceptance looks at days strictly after the anchor.
* ATR30m estimate = daily ATR20 × ``atr30m_from_daily`` (1/√13) unless a 30m ATR(14) is known.
* Halted = no daily row on ``asof`` or zero volume that day (administrative issues come through the
  blacklist file).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

from strategies.nulrimok.config import NulrimokParams
from strategies.sdk.indicators import atr, cpr, mean, sma, sma_slope


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def value(self) -> float:
        return self.close * self.volume

    @property
    def tp(self) -> float:
        return (self.high + self.low + self.close) / 3.0


@dataclass(frozen=True, slots=True)
class FlowRow:
    day: date
    foreign_net: float
    inst_net: float


@dataclass(frozen=True, slots=True)
class NetDay:
    """One session's net buying in ₩ (N1: shares × that day's close)."""

    day: date
    net: float
    foreign: float


@dataclass(frozen=True, slots=True)
class AnchorResult:
    anchor_date: date | None
    anchor_kind: str | None
    """``RUN`` (N9a) or ``IMPULSE`` (N9b)."""
    avwap_ref: float | None
    acceptance_pass: bool
    accepted_on: date | None
    run_anchor: date | None
    impulse_anchor: date | None


@dataclass(frozen=True, slots=True)
class SymbolFeatures:
    """Everything the DSE needs about one ticker, as of ``asof``."""

    symbol: str
    sector: str
    asof: date
    history_ok: bool
    sessions: int
    last_day: date | None = None
    close: float | None = None
    halted: bool = False
    adv20: float | None = None
    sma20: float | None = None
    above_sma20: bool | None = None
    sma50: float | None = None
    slope50: float | None = None
    trend_ok: bool = False
    trend_raw: float | None = None
    """C/SMA50 − 1 (N12 trend strength before its percentile)."""
    r20: float | None = None
    r60: float | None = None
    atr20: float | None = None
    atr30m_est: float | None = None
    swing_high10: float | None = None
    """Highest daily H of the last 10 sessions (N27 MOMENTUM's swing high for an entry on the next session)."""
    flow_sessions: int = 0
    persistence: float | None = None
    intensity_raw: float | None = None
    accel_raw: float | None = None
    foreign_sum20: float | None = None
    value_sum20: float | None = None
    net_t1: float | None = None
    net_t2: float | None = None
    flow_reversal: bool = False
    anchor_date: date | None = None
    anchor_kind: str | None = None
    avwap_ref: float | None = None
    acceptance_pass: bool = False
    accepted_on: date | None = None
    band_lower: float | None = None
    band_upper: float | None = None
    prox: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SymbolFeatures:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            if f.name in _DATE_FIELDS and isinstance(v, str):
                v = date.fromisoformat(v)
            kw[f.name] = v
        return cls(**kw)


_DATE_FIELDS = {"asof", "last_day", "anchor_date", "accepted_on"}


def min_sessions(p: NulrimokParams) -> int:
    """Daily rows a ticker needs for every feature (r60 needs 61 closes, SMA50 + slope 55)."""
    return max(p.rs_long + 1, p.trend_sma + p.slope_lag, p.adv_sessions, p.breadth_sma)


def net_days(rows: Sequence[DailyRow], flows: Iterable[FlowRow]) -> list[NetDay]:
    """Net buying in ₩ on the sessions of ``rows`` that have a flow row (oldest first)."""
    by_day = {f.day: f for f in flows}
    out = []
    for r in rows:
        f = by_day.get(r.day)
        if f is not None:
            out.append(NetDay(r.day, (f.foreign_net + f.inst_net) * r.close, f.foreign_net * r.close))
    return out


def flow_metrics(net: Sequence[NetDay], adv20: float | None, p: NulrimokParams) -> dict[str, Any]:
    """N6 raw components (z-scores are cross-sectional, in the DSE) and the N13 reversal flag."""
    values = [n.net for n in net]
    out: dict[str, Any] = {"flow_sessions": len(values)}
    if len(values) >= p.persistence_days:
        out["persistence"] = sum(1 for v in values[-p.persistence_days :] if v > 0) / p.persistence_days
    if len(values) >= p.intensity_days and adv20:
        out["intensity_raw"] = sum(values[-p.intensity_days :]) / adv20
    if len(values) >= p.accel_slow:
        fast, slow = mean(values[-p.accel_fast :]), mean(values[-p.accel_slow :])
        assert fast is not None and slow is not None
        out["accel_raw"] = fast - slow
    if len(values) >= p.sector_flow_days:
        out["foreign_sum20"] = sum(n.foreign for n in net[-p.sector_flow_days :])
    if values:
        out["net_t1"] = values[-1]
    if len(values) >= 2:
        out["net_t2"] = values[-2]
    k = p.flow_reversal_days
    out["flow_reversal"] = len(values) >= k and all(v < 0 for v in values[-k:])
    return out


def avwap_through(rows: Sequence[DailyRow]) -> list[float]:
    """Cumulative AVWAP_d = Σ tp·V / Σ V from the first row through each row (N10); tp if no volume yet."""
    out: list[float] = []
    pv = vol = 0.0
    for r in rows:
        pv += r.tp * r.volume
        vol += r.volume
        out.append(pv / vol if vol > 0 else r.tp)
    return out


def accepted_on(rows_after: Sequence[DailyRow], avwaps_after: Sequence[float], tol: float) -> date | None:
    """N10 acceptance: the first day with L ≤ AVWAP·(1+tol) ∧ H ≥ AVWAP·(1−tol) (AVWAP through that day)."""
    for r, a in zip(rows_after, avwaps_after, strict=True):
        if r.low <= a * (1 + tol) and r.high >= a * (1 - tol):
            return r.day
    return None


def run_anchor(window: Sequence[DailyRow], net_by_day: Mapping[date, float], run_min: int) -> date | None:
    """N9a: first day of the latest run of ≥ ``run_min`` consecutive positive net-buy sessions."""
    best: date | None = None
    start: date | None = None
    length = 0
    for r in window:
        if net_by_day.get(r.day, 0.0) > 0:
            if length == 0:
                start = r.day
            length += 1
            if length >= run_min:
                best = start
        else:
            length = 0
    return best


def impulse_anchor(rows: Sequence[DailyRow], lookback: int, p: NulrimokParams) -> date | None:
    """N9b: the latest day of the window with V > 2·avg20(V before it) ∧ CPR ≥ 0.7 ∧ C > prior C."""
    first = max(1, len(rows) - lookback)
    for i in range(len(rows) - 1, first - 1, -1):
        r, prev = rows[i], rows[i - 1]
        before = rows[max(0, i - p.impulse_avg_days) : i]
        avg = mean(b.volume for b in before)
        if avg is None or len(before) < p.impulse_avg_days:
            continue
        if (
            r.volume > p.impulse_vol_mult * avg
            and cpr(r.close, r.low, r.high) >= p.impulse_cpr_min
            and r.close > prev.close
        ):
            return r.day
    return None


def anchor_and_avwap(rows: Sequence[DailyRow], net_by_day: Mapping[date, float], p: NulrimokParams) -> AnchorResult:
    """N9–N10: the more recent anchor that passes acceptance, else the other; none → not accepted.

    ``rows`` end at T−1; the AVWAP of the chosen (or, when neither passes, the more recent) anchor runs
    through T−1."""
    window = rows[-p.anchor_lookback :]
    ra = run_anchor(window, net_by_day, p.anchor_run_min)
    ia = impulse_anchor(rows, p.anchor_lookback, p)
    found = sorted({d for d in (ra, ia) if d is not None}, reverse=True)
    if not found:
        return AnchorResult(None, None, None, False, None, ra, ia)
    tried: list[tuple[date, float, date | None]] = []
    for anchor in found:
        i = next(k for k, r in enumerate(rows) if r.day == anchor)
        seg = rows[i:]
        avw = avwap_through(seg)
        ok = accepted_on(seg[1:], avw[1:], p.acceptance_tol)
        tried.append((anchor, avw[-1], ok))
        if ok is not None:
            break
    anchor, ref, ok = next((t for t in tried if t[2] is not None), tried[0])
    kind = "RUN" if anchor == ra else "IMPULSE"
    return AnchorResult(anchor, kind, ref, ok is not None, ok, ra, ia)


def proximity(close: float, avwap_ref: float, scale: float) -> float:
    """N11 ``prox = clip01(1 − |C/avwap_ref − 1| / scale)``."""
    return min(1.0, max(0.0, 1.0 - abs(close / avwap_ref - 1.0) / scale))


def compute_features(
    symbol: str,
    sector: str,
    rows: Sequence[DailyRow],
    flows: Iterable[FlowRow],
    asof: date,
    p: NulrimokParams,
    *,
    atr30m: float | None = None,
) -> SymbolFeatures:
    """The features of one ticker from its daily rows and flow rows (any order; rows after ``asof`` ignored)."""
    rows = sorted((r for r in rows if r.day <= asof), key=lambda r: r.day)
    n = len(rows)
    base: dict[str, Any] = {"symbol": symbol, "sector": sector, "asof": asof, "sessions": n}
    if n == 0:
        return SymbolFeatures(history_ok=False, halted=True, **base)
    last = rows[-1]
    closes = [r.close for r in rows]
    halted = last.day < asof or last.volume <= 0
    adv20 = mean(r.value for r in rows[-p.adv_sessions :]) if n >= p.adv_sessions else None
    base.update(last_day=last.day, close=last.close, halted=halted, adv20=adv20)
    if n < min_sessions(p):
        return SymbolFeatures(history_ok=False, **base)
    sma20 = sma(closes, p.breadth_sma)
    sma50 = sma(closes, p.trend_sma)
    slope = sma_slope(closes, p.trend_sma, p.slope_lag)
    assert sma20 is not None and sma50 is not None and slope is not None
    atr20 = atr(rows, p.atr_daily) if n >= p.atr_daily else None
    est = atr30m if atr30m is not None else (atr20 * p.atr30m_from_daily if atr20 is not None else None)
    net = net_days(rows, flows)
    flow = flow_metrics(net, adv20, p)
    anchor = anchor_and_avwap(rows, {x.day: x.net for x in net}, p)
    ref = anchor.avwap_ref
    return SymbolFeatures(
        **base,
        history_ok=True,
        sma20=sma20,
        above_sma20=last.close > sma20,
        sma50=sma50,
        slope50=slope,
        trend_ok=last.close > sma50 and slope >= 0,
        trend_raw=last.close / sma50 - 1.0,
        r20=closes[-1] / closes[-1 - p.rs_short] - 1.0,
        r60=closes[-1] / closes[-1 - p.rs_long] - 1.0,
        atr20=atr20,
        atr30m_est=est,
        swing_high10=max(r.high for r in rows[-p.swing_high_sessions :]),
        value_sum20=sum(r.value for r in rows[-p.sector_flow_days :]),
        anchor_date=anchor.anchor_date,
        anchor_kind=anchor.anchor_kind,
        avwap_ref=ref,
        acceptance_pass=anchor.acceptance_pass,
        accepted_on=anchor.accepted_on,
        band_lower=ref * (1 - p.band_pct) if ref else None,
        band_upper=ref * (1 + p.band_pct) if ref else None,
        prox=proximity(last.close, ref, p.prox_scale) if ref else None,
        **flow,
    )


def realized_vol(closes: Sequence[float], window: int) -> float | None:
    """Standard deviation of the last ``window`` daily log returns (annualised ×√252; the test is a percentile)."""
    if len(closes) < window + 1:
        return None
    rets = [math.log(closes[i] / closes[i - 1]) for i in range(len(closes) - window, len(closes))]
    m = sum(rets) / window
    return math.sqrt(sum((r - m) ** 2 for r in rets) / (window - 1)) * math.sqrt(252)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("quantile of nothing")
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
