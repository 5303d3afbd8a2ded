"""Derived intraday KOSPI and KOSDAQ paths for the paper exchange (the data has daily index bars only).

The KRX reference data (``../shared/data/krx``) holds the real daily bars of both indices
(``index_ohlcv.parquet``) but no intraday index values. For a replayed session this module derives
a 1-minute path of each index from the constituents present in the minute data:

1. **Members.** A ticker belongs to the market it is listed on (:data:`KOSDAQ_LISTED`, else KOSPI;
   the data carries no market column, see below). A member counts on a day when its minute file
   covers that day and it has a real prior close (``daily_ohlcv.parquet``).
2. **Equal-weighted return.** At every bar time ``t`` of the day (the union of the members' bar
   starts) each member's return vs its prior close is ``last close at a bar ≤ t / prior close − 1``
   (no print yet → 0); the raw return ``R(t)`` is their plain mean. There is no market cap in the
   data, so no cap weights. A return beyond the KRX daily limit (±30%) cannot be real (a prior close
   not comparable, e.g. a split) and that member is left out of that minute's mean.
3. **Level.** ``raw(t) = index prior close · (1 + R(t))`` — the real prior daily close of the index.
4. **Anchor.** The residual ``ε = ln(real close / raw(T))`` at the day's last bar ``T`` (15:30, the
   closing auction) is spread linearly over the session in log space:
   ``value(t) = raw(t) · exp(w(t) · ε)`` with ``w = (t − first bar) / (T − first bar)``. The first
   bar therefore starts from the prior close moved by that bar's constituent move, and the 15:30
   value is the real close exactly. A day without a daily index row is left unanchored (``ε = 0``).

Each index bar: close from the members' closes, open from their opens (a member without a bar that
minute contributes its last close), high/low = max/min of that open and close (the true intraminute
extremes of an average are unknown), volume 0 (a derived value has none).

Look-ahead: the constituent average at ``t`` uses only bars starting at or before ``t``. The one
per-session constant ``ε`` is taken from the day's end (that is what makes 15:30 match); the drift
it adds by time ``t`` is ``w(t)·ε`` (at 10:00, w ≈ 0.15). A bar is *served* only once it is complete
(its start + 1 min, the 15:30 auction at 15:30), never earlier.

Listing (why a table): neither the minute files nor ``sector_map.parquet`` say which market a ticker
trades on, and the daily data cannot tell it reliably (a regression of each ticker's daily returns on
KOSPI and the KOSDAQ−KOSPI spread puts the KOSPI-listed biotechs next to the KOSDAQ names: the KOSDAQ
factor is mostly a sector factor). :data:`KOSDAQ_LISTED` is therefore the exchange's listing for the
data period (2025-05 … 2026-02; e.g. LX Semicon 108320 moved to KOSPI in 2022-11); every other ticker
is taken as KOSPI, as the KIS fake does. See ``docs/data.md``.
"""

from __future__ import annotations

import logging
import math
import time as wall
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Protocol

import numpy as np

from broker_core.clock import KST
from broker_core.market_rules import CLOSE
from broker_core.models import Bar, Quote
from broker_core.paper.data import KrxData
from broker_core.paper.exchange import parse_interval

log = logging.getLogger("broker_core.paper.index")

INDEX_CODES = ("KOSPI", "KOSDAQ")
SOURCE = "constituents-equal-weight"
"""The label every derived quote carries (``source``), next to ``derived: true``."""
MAX_ABS_RETURN = 0.30
"""KRX daily price limit: a return beyond it vs the prior close is a data inconsistency, not a move."""
KOSDAQ_LISTED = frozenset({"041510", "053800", "141080", "214370", "240810", "263750", "403870", "950160"})
"""Tickers of the minute data listed on KOSDAQ in 2025-05 … 2026-02 (SM Entertainment, AhnLab,
LigaChem Biosciences, Caregen, Wonik IPS, Pearl Abyss, HPSP, Kolon TissueGene); the rest are KOSPI."""
_BAR_SECONDS = 60
_PRIOR_DAYS = 40
"""How far back the index's prior daily close is looked for (longer than any KRX holiday run)."""


def market_of(ticker: str) -> str:
    """``KOSDAQ`` for a ticker in :data:`KOSDAQ_LISTED`, else ``KOSPI``."""
    return "KOSDAQ" if ticker in KOSDAQ_LISTED else "KOSPI"


@dataclass(frozen=True, slots=True)
class IndexQuote(Quote):
    """A quote of a derived index: ``derived`` and ``source`` say it is not an exchange print."""

    derived: bool = True
    source: str = SOURCE
    constituents: int = 0
    anchored: bool = True
    """False when the day has no real daily index close to anchor the path to."""


@dataclass(frozen=True, slots=True)
class Constituent:
    """One member's bars of one day: bar starts (UNIX s, ascending), opens, closes, and its prior close."""

    symbol: str
    prev_close: float
    ts: np.ndarray
    open: np.ndarray
    close: np.ndarray


def _prices_at(m: Constituent, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) of ``m`` at each grid minute from its bars starting at or before that minute.

    Close = the last close so far (prior close before the first bar); open = the open of a bar starting
    exactly at that minute, else the last close before it.
    """
    if len(m.ts) == 0:
        flat = np.full(len(grid), m.prev_close)
        return flat, flat
    upto = np.searchsorted(m.ts, grid, "right") - 1
    before = np.searchsorted(m.ts, grid, "left") - 1
    close = np.where(upto >= 0, m.close[np.clip(upto, 0, None)], m.prev_close)
    prior = np.where(before >= 0, m.close[np.clip(before, 0, None)], m.prev_close)
    exact = upto > before
    return np.where(exact, m.open[np.clip(upto, 0, None)], prior), close


def equal_weight_returns(grid: np.ndarray, members: Sequence[Constituent]) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) equal-weighted mean return vs prior close at each grid minute (bar starts, UNIX s).

    The value at a minute depends only on the members' bars starting at or before it. Returns beyond
    :data:`MAX_ABS_RETURN` are left out of that minute's mean; a minute with no usable member is 0.
    """
    if not members or len(grid) == 0:
        zero = np.zeros(len(grid))
        return zero, zero.copy()
    opens = np.empty((len(members), len(grid)))
    closes = np.empty((len(members), len(grid)))
    prev = np.array([m.prev_close for m in members], dtype=float)[:, None]
    for i, m in enumerate(members):
        opens[i], closes[i] = _prices_at(m, grid)
    return _masked_mean(opens / prev - 1.0), _masked_mean(closes / prev - 1.0)


def _masked_mean(returns: np.ndarray) -> np.ndarray:
    ok = np.isfinite(returns) & (np.abs(returns) <= MAX_ABS_RETURN)
    n = ok.sum(axis=0)
    total = np.where(ok, returns, 0.0).sum(axis=0)
    return np.divide(total, n, out=np.zeros(returns.shape[1]), where=n > 0)


@dataclass(frozen=True)
class IndexPath:
    """The derived 1-minute path of one index on one session (arrays aligned on ``ts``)."""

    code: str
    day: date
    prev_close: float
    """The index's real prior daily close."""
    real_close: float | None
    """The day's real daily close the path is anchored to (None: not in the data, unanchored)."""
    ts: np.ndarray
    """Bar starts, UNIX seconds."""
    known_at: np.ndarray
    """When each bar is complete (start + 60 s; the 15:30 closing auction at its start)."""
    opens: np.ndarray
    highs: np.ndarray
    lows: np.ndarray
    closes: np.ndarray
    raw_closes: np.ndarray
    """Closes before the anchor: ``prev_close · (1 + R(t))``."""
    residual: float
    """ε = ln(real close / raw last close): spread linearly over the session."""
    members: tuple[str, ...]
    build_seconds: float = 0.0

    @property
    def anchored(self) -> bool:
        return self.real_close is not None

    def __len__(self) -> int:
        return len(self.ts)

    def value_at(self, now: datetime) -> tuple[float, datetime] | None:
        """(close of the last bar complete at ``now``, that bar's start); None before the first one."""
        i = int(np.searchsorted(self.known_at, now.timestamp(), "right")) - 1
        if i < 0:
            return None
        return float(self.closes[i]), datetime.fromtimestamp(int(self.ts[i]), KST)

    def quote(self, now: datetime) -> IndexQuote:
        """The index as known at ``now``: the prior close until the first bar is complete."""
        seen = self.value_at(now)
        last, _ = seen if seen is not None else (self.prev_close, now)
        return IndexQuote(
            symbol=self.code,
            ts=now,
            last=round(last, 2),
            prev_close=self.prev_close,
            constituents=len(self.members),
            anchored=self.anchored,
        )

    def bars(self, start: datetime, end: datetime, now: datetime | None = None, interval: str = "1m") -> list[Bar]:
        """Bars with start in [start, end], complete at ``now`` (every bar when None), of ``interval``."""
        minutes = parse_interval(interval)
        lo = int(np.searchsorted(self.ts, (start - timedelta(minutes=minutes)).timestamp(), "left"))
        hi = int(np.searchsorted(self.ts, end.timestamp(), "right"))
        if now is not None:
            hi = min(hi, int(np.searchsorted(self.known_at, now.timestamp(), "right")))
        out: list[Bar] = []
        for k in range(lo, hi):
            ts = datetime.fromtimestamp(int(self.ts[k]), KST)
            of_day = ts.hour * 60 + ts.minute
            of_day -= of_day % minutes
            bucket = ts.replace(hour=of_day // 60, minute=of_day % 60)
            o, h, lo_, c = (round(float(a[k]), 2) for a in (self.opens, self.highs, self.lows, self.closes))
            if out and out[-1].ts == bucket:
                b = out[-1]
                out[-1] = Bar(self.code, bucket, b.open, max(b.high, h), min(b.low, lo_), c, 0, interval)
            else:
                out.append(Bar(self.code, bucket, o, h, lo_, c, 0, interval))
        return [b for b in out if start <= b.ts <= end]


def build_path(
    code: str,
    day: date,
    members: Sequence[Constituent],
    prev_close: float,
    real_close: float | None,
    auction: datetime | None = None,
) -> IndexPath:
    """The path of ``code`` on ``day`` from its members' bars (see the module docstring).

    ``auction``: the start of the closing-auction bar (15:30), complete at its start; default 15:30.
    """
    started = wall.perf_counter()
    grid = np.unique(np.concatenate([m.ts for m in members])) if members else np.array([], dtype=np.int64)
    r_open, r_close = equal_weight_returns(grid, members)
    raw_open, raw_close = prev_close * (1.0 + r_open), prev_close * (1.0 + r_close)
    residual = 0.0
    if real_close is not None and len(grid) and raw_close[-1] > 0:
        residual = math.log(real_close / raw_close[-1])
    span = float(grid[-1] - grid[0]) if len(grid) > 1 else 0.0
    weight = (grid - grid[0]) / span if span > 0 else np.ones(len(grid))
    drift = np.exp(weight * residual)
    opens, closes = raw_open * drift, raw_close * drift
    closing = (auction or datetime.combine(day, CLOSE, KST)).timestamp()
    known_at = np.where(grid == closing, grid, grid + _BAR_SECONDS)
    return IndexPath(
        code=code,
        day=day,
        prev_close=prev_close,
        real_close=real_close,
        ts=grid,
        known_at=known_at,
        opens=opens,
        highs=np.maximum(opens, closes),
        lows=np.minimum(opens, closes),
        closes=closes,
        raw_closes=raw_close,
        residual=residual,
        members=tuple(m.symbol for m in members),
        build_seconds=wall.perf_counter() - started,
    )


class IndexSource(Protocol):
    """What the paper broker needs to serve index symbols."""

    codes: tuple[str, ...]

    def path(self, code: str, day: date) -> IndexPath | None: ...

    def daily_bars(self, code: str, start: date, end: date) -> list[Bar]: ...


class DerivedIndex:
    """KOSPI and KOSDAQ paths derived from one :class:`KrxData`, built once per (index, session)."""

    codes: tuple[str, ...] = INDEX_CODES

    def __init__(self, data: KrxData) -> None:
        self.data = data
        self._paths: dict[tuple[str, date], IndexPath | None] = {}
        self._symbols: list[str] | None = None

    def __repr__(self) -> str:
        return f"DerivedIndex({self.data!r})"

    def members(self, code: str, day: date) -> list[Constituent]:
        """The tickers of ``code``'s market listed on ``day`` (minute file covers it) with a prior close."""
        if self._symbols is None:
            self._symbols = self.data.minute_symbols()
        out: list[Constituent] = []
        for sym in self._symbols:
            if market_of(sym) != code:
                continue
            prev = self.data.prev_close(sym, day)
            if not self.data.minute_covers(sym, day) or not prev or prev <= 0:
                continue
            s = self.data.minute_day(sym, day)  # one day read, the file not mapped (kept out of RSS)
            out.append(Constituent(sym, float(prev), s.ts, s.open, s.close))
        return out

    def daily_bars(self, code: str, start: date, end: date) -> list[Bar]:
        """The real daily bars of the index (``index_ohlcv.parquet``)."""
        return self.data.index_bars(code, start, end)

    def path(self, code: str, day: date) -> IndexPath | None:
        """The derived path of ``code`` on ``day``; None without members' bars or a prior index close."""
        key = (code, day)
        if key in self._paths:
            return self._paths[key]
        if code not in self.codes:
            raise KeyError(f"{code!r} is not a derived index ({', '.join(self.codes)})")
        started = wall.perf_counter()
        prior = self.data.index_bars(code, day - timedelta(days=_PRIOR_DAYS), day - timedelta(days=1))
        today = self.data.index_bars(code, day, day)
        members = self.members(code, day)
        built: IndexPath | None = None
        if prior and any(len(m.ts) for m in members):
            path = build_path(code, day, members, float(prior[-1].close), float(today[0].close) if today else None)
            built = replace(path, build_seconds=wall.perf_counter() - started)
            log.info(
                "derived %s %s: %d constituents, %d bars, residual %+.3f%%%s, built in %.1f ms",
                code,
                day,
                len(members),
                len(path),
                path.residual * 100,
                "" if path.anchored else " (no daily index row: unanchored)",
                built.build_seconds * 1000,
            )
        elif any(len(m.ts) for m in members):
            log.warning("derived %s %s: no prior daily index close in the data; not served", code, day)
        else:
            log.debug("derived %s %s: no constituent bars (not a session)", code, day)
        self._paths[key] = built
        return built
