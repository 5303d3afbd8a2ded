"""A US session for the paper exchange, derived from daily bars (the US data has no intraday bars).

Each (symbol, day) gets a deterministic 1-minute path over the regular session (390 minutes, 210 on
an early-close day), labelled derived (``SOURCE``; every bar carries ``extra["derived"] = 1.0``):

1. The day's open, high, low and close are put on the US tick grid (nearest; the vendor data holds
   sub-penny prints and dividend-adjusted ETF prices) and the high/low widened to cover open and close
   (a few vendor rows have an open or close outside their own high-low range).
2. Random numbers come from one PCG64 stream per ``(seed, symbol)``, each day at its own fixed place
   (``DayDraws``), so a day's path depends only on the seed, the symbol, the day and its bar. They pick
   which extreme comes first (the high first more often on a down day: P = ½ + ¼·(open − close)/range)
   and the minutes at which the two extremes are touched (arcsine-distributed over the session, so
   extremes fall near the open and the close more often, as they do in real sessions).
3. The minute closes are random-walk bridges pinned at open → first extreme → second extreme → close
   (minute volatility ½·range/√minutes), clipped to [low, high] and put on the grid; each minute's high
   and low add a small clipped wiggle. So the first print is the open, the last the close, and the high
   and low are touched exactly, never passed.
4. The day's volume is spread by a U-shaped intraday profile (×3 at the open and the close vs midday,
   with seeded noise), exactly summing to the day's volume; the minutes that print the open, the high,
   the low and the close get at least 4 shares each so none of those prints is dropped.

The feed expands each minute into up to 4 trade prints (open, low/high in the bar's order, close) at
increasing times inside the minute, as the KRX replay does with real minute bars, so the one matching
engine sees the same kind of tape.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from operator import attrgetter

import numpy as np

from broker_core.markets import us
from broker_core.models import Bar, Side, Tick
from broker_core.paper.us_data import UsData, day_number

SOURCE = "derived-from-daily-ohlc"
DEFAULT_SEED = 0
KEY_MINUTE_MIN_VOLUME = 4
U_SHAPE = 2.0
"""Weight of a minute is 1 + U_SHAPE·x² (x = -1 at the open, +1 at the close): ×3 at the ends."""
VOLUME_NOISE = 0.2
BRIDGE_SCALE = 0.5
"""Minute volatility = BRIDGE_SCALE·(high − low)/√minutes."""
WIGGLE_SCALE = 0.5
DRAWS_PER_DAY = 1 << 11
"""Room for one day's draws (3 + 4 per minute of the longest session) in the per-symbol stream."""
_PCG_PERIOD = 1 << 128
_UNIT_VARIANCE = float(np.sqrt(12.0))
"""(u − ½)·√12 has mean 0 and variance 1 for a uniform u."""
CHUNK_DAYS = 64
"""Days derived together: small enough for the temporaries to stay in the CPU cache."""
_UNITS = us.UNITS_PER_DOLLAR


def snap_units(values: np.ndarray) -> np.ndarray:
    """Nearest grid price in $0.0001 units: whole cents at or above $1, $0.0001 below."""
    cents = np.round(values * (1 / us.PENNY_UNITS))
    cents *= us.PENNY_UNITS
    if values.size and values.min() >= _UNITS - 0.5:
        return cents
    return np.where(values >= _UNITS - 0.5, cents, np.maximum(np.round(values), 1.0))


def grid_ohlc(open_: float, high: float, low: float, close: float) -> tuple[int, int, int, int]:
    """(open, high, low, close) on the tick grid in $0.0001 units, the high/low widened over open and close."""
    o, h, lo, c = (int(v) for v in snap_units(np.array([open_, high, low, close], dtype=float) * _UNITS))
    return o, max(h, o, c), min(lo, o, c), c


class DayDraws:
    """Each day's uniform random numbers at a fixed place of one PCG64 stream per (seed, symbol): day ``d``
    starts at draw ``days since 1970 × DRAWS_PER_DAY``, reached by jumping ahead, so a path never depends
    on which other days are derived or in what order."""

    def __init__(self, seed: int, symbol: str) -> None:
        digest = hashlib.blake2b(f"{seed}|{symbol}".encode(), digest_size=16).digest()
        self._bits = np.random.PCG64(int.from_bytes(digest, "little"))
        self._gen = np.random.Generator(self._bits)
        self._pos = 0

    def draws(self, day: date, count: int) -> np.ndarray:
        if count > DRAWS_PER_DAY:
            raise ValueError(f"{count} draws exceed the {DRAWS_PER_DAY} a day owns")
        target = day_number(day) * DRAWS_PER_DAY
        self._bits.advance((target - self._pos) % _PCG_PERIOD)
        self._pos = target + count
        return self._gen.random(count)


@dataclass(frozen=True, slots=True)
class DerivedDay:
    """The derived 1-minute path of one symbol on one session; prices in $0.0001 units (int64 arrays)."""

    symbol: str
    day: date
    session_open: datetime
    source_ohlc: tuple[int, int, int, int]
    """The day's (open, high, low, close) on the grid, in units: the path touches each exactly."""
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    seed: int
    high_first: bool
    extreme_minutes: tuple[int, int]
    """The minutes whose close is the first and the second extreme."""

    @property
    def minutes(self) -> int:
        return len(self.close)

    def minute_start(self, k: int) -> datetime:
        return self.session_open + timedelta(minutes=k)

    def bars(self) -> list[Bar]:
        """The path as 1-minute bars (New York time), each labelled ``extra["derived"] = 1.0``."""
        out = []
        for k, (o, h, lo, c, v) in enumerate(
            zip(
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ):
            out.append(
                Bar(
                    self.symbol,
                    self.minute_start(k),
                    o / _UNITS,
                    h / _UNITS,
                    lo / _UNITS,
                    c / _UNITS,
                    int(v),
                    "1m",
                    {"derived": 1.0},
                )
            )
        return out

    def ticks(self, prev_price: float | None = None) -> Iterator[Tick]:
        """Trade prints of the path: per minute up to 4 (open, low/high in the bar's order, close) inside
        ``[minute, minute + 60 s)``; a minute with less volume than prints keeps its first and last prints;
        a minute of volume 0 prints nothing. Aggressor by the tick rule."""
        last = prev_price
        side: Side | None = None
        start = self.session_open
        for k, (o, h, lo, c, v) in enumerate(
            zip(
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ):
            if v <= 0:
                continue
            raw = (o, lo, h, c) if c >= o else (o, h, lo, c)
            points = [raw[0]]
            for p in raw[1:]:
                if p != points[-1]:
                    points.append(p)
            if v < len(points):
                points = points[: v - 1] + [points[-1]] if v > 1 else [points[-1]]
            n = len(points)
            base, extra = divmod(v, n)
            minute = start + timedelta(minutes=k)
            for i, units in enumerate(points):
                price = units / _UNITS
                if last is not None and price != last:
                    side = Side.BUY if price > last else Side.SELL
                ts = minute + timedelta(microseconds=round((i + 0.5) * 60_000_000 / n))
                yield Tick(self.symbol, ts, price, base + (1 if i < extra else 0), side)
                last = price


def derive_days(
    symbol: str,
    days: Sequence[date],
    opens: Sequence[float] | np.ndarray,
    highs: Sequence[float] | np.ndarray,
    lows: Sequence[float] | np.ndarray,
    closes: Sequence[float] | np.ndarray,
    volumes: Sequence[int] | np.ndarray,
    *,
    seed: int = DEFAULT_SEED,
    session_days: Sequence[date] | None = None,
) -> list[DerivedDay]:
    """The derived paths of many daily bars of one symbol, computed together (same result as one by one).

    ``session_days`` (default ``days``): the sessions the paths are laid on, when a bar is replayed on
    another day's session (its length and times; the random numbers stay those of the bar's own day)."""
    sessions = []
    for day in session_days if session_days is not None else days:
        sess = us.session(day)
        if sess is None:
            raise ValueError(f"{day} is not an XNYS trading day")
        sessions.append(sess)
    if len(sessions) != len(days):
        raise ValueError("session_days must name one session per day")
    ohlc = np.column_stack([np.asarray(v, dtype=float) for v in (opens, highs, lows, closes)]) * _UNITS
    grid = snap_units(ohlc) if len(days) else np.zeros((0, 4))
    volume = np.asarray(volumes, dtype=np.int64)
    out: list[DerivedDay | None] = [None] * len(days)
    draws = DayDraws(seed, symbol)
    by_length: dict[int, list[int]] = {}
    for i, sess in enumerate(sessions):
        by_length.setdefault(sess.minutes, []).append(i)
    for n, rows in by_length.items():
        for lo in range(0, len(rows), CHUNK_DAYS):
            chunk = rows[lo : lo + CHUNK_DAYS]
            group = [(days[r], sessions[r].open) for r in chunk]
            idx = np.array(chunk)
            paths = _derive_group(symbol, n, group, grid[idx], volume[idx], seed, draws)
            for i, path in zip(chunk, paths, strict=True):
                out[i] = path
    return [p for p in out if p is not None]


def _derive_group(
    symbol: str,
    n: int,
    days: list[tuple[date, datetime]],
    grid: np.ndarray,
    volume: np.ndarray,
    seed: int,
    draws: DayDraws | None = None,
) -> list[DerivedDay]:
    """Paths of the (day, session open) ``days`` whose sessions all last ``n`` minutes (a row per day)."""
    m = len(days)
    source = draws or DayDraws(seed, symbol)
    raw = np.empty((m, 3 + 4 * n))
    for r, (day, _) in enumerate(days):
        raw[r] = source.draws(day, 3 + 4 * n)
    uniform = raw[:, :3]
    steps, wiggle_hi, wiggle_lo, noise = (raw[:, 3 + k * n : 3 + (k + 1) * n] for k in range(4))
    steps = (steps - 0.5) * _UNIT_VARIANCE
    noise = (noise - 0.5) * _UNIT_VARIANCE
    o, h, lo, c = grid[:, 0], np.maximum.reduce([grid[:, 1], grid[:, 0], grid[:, 3]]), grid[:, 2], grid[:, 3]
    lo = np.minimum.reduce([lo, o, c])
    span = h - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        p_high_first = np.where(span > 0, 0.5 + 0.25 * (o - c) / span, 0.5)
    high_first = uniform[:, 0] < p_high_first
    when = 1 + np.minimum(n - 2, np.floor(np.sin(np.pi * uniform[:, 1:] / 2) ** 2 * (n - 1))).astype(np.int64)
    t1, t2 = when.min(axis=1), when.max(axis=1)
    tie = t1 == t2
    bump = tie & (t2 < n - 1)
    t2 = np.where(bump, t2 + 1, t2)
    t1 = np.where(tie & ~bump, t1 - 1, t1)
    first = np.where(high_first, h, lo)
    second = np.where(high_first, lo, h)
    anchor_t = np.column_stack([np.zeros(m, dtype=np.int64), t1, t2, np.full(m, n, dtype=np.int64)])
    anchor_v = np.column_stack([o, first, second, c])

    # path = σ·walk + the piecewise-linear line through (t_k, v_k − σ·walk[t_k]): a random-walk bridge per segment
    walk = np.concatenate([np.zeros((m, 1)), np.cumsum(steps, axis=1)], axis=1)
    sigma = BRIDGE_SCALE * span / np.sqrt(n)
    knots = anchor_v - sigma[:, None] * np.take_along_axis(walk, anchor_t, axis=1)
    slope = np.diff(knots, axis=1) / np.diff(anchor_t, axis=1)
    level = knots[:, :3] - slope * anchor_t[:, :3]
    t = np.arange(n + 1, dtype=float)[None, :]
    path = sigma[:, None] * walk + level[:, :1] + slope[:, :1] * t
    for k, tk in ((1, t1), (2, t2)):
        past = t >= tk[:, None]
        path += past * ((level[:, k] - level[:, k - 1])[:, None] + (slope[:, k] - slope[:, k - 1])[:, None] * t)
    sigma = sigma[:, None]
    path = snap_units(np.clip(path, lo[:, None], h[:, None]))
    np.put_along_axis(path, anchor_t, anchor_v, axis=1)
    bar_open, bar_close = path[:, :-1], path[:, 1:]
    top = snap_units(np.maximum(bar_open, bar_close) + WIGGLE_SCALE * sigma * wiggle_hi)
    bottom = snap_units(np.minimum(bar_open, bar_close) - WIGGLE_SCALE * sigma * wiggle_lo)
    bar_high = np.minimum(top, h[:, None]).astype(np.int64)
    bar_low = np.maximum(bottom, lo[:, None]).astype(np.int64)

    vol = np.zeros((m, n), dtype=np.int64)
    rest = volume.copy()
    key = np.column_stack([np.zeros(m, dtype=np.int64), np.full(m, n - 1), t1 - 1, t2 - 1])
    floor_rows = rest >= KEY_MINUTE_MIN_VOLUME * 4
    np.put_along_axis(vol, key, np.where(floor_rows, KEY_MINUTE_MIN_VOLUME, 0)[:, None], axis=1)
    rest = rest - vol.sum(axis=1)
    base = np.minimum(KEY_MINUTE_MIN_VOLUME, rest // n)
    vol += base[:, None]
    rest = rest - base * n
    x = (np.arange(n) + 0.5) / n * 2 - 1
    weights = (1 + U_SHAPE * x * x)[None, :] * np.exp(VOLUME_NOISE * noise)
    vol += _spread_rows(rest, weights)

    opens, closes = bar_open.astype(np.int64), bar_close.astype(np.int64)
    anchors = np.column_stack([o, h, lo, c]).astype(np.int64).tolist()
    extremes = np.column_stack([t1 - 1, t2 - 1]).tolist()
    firsts = high_first.tolist()
    return [
        DerivedDay(
            symbol,
            day,
            session_open,
            (anchors[r][0], anchors[r][1], anchors[r][2], anchors[r][3]),
            opens[r],
            bar_high[r],
            bar_low[r],
            closes[r],
            vol[r],
            seed,
            firsts[r],
            (extremes[r][0], extremes[r][1]),
        )
        for r, (day, session_open) in enumerate(days)
    ]


def _spread_rows(totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row: whole numbers proportional to ``weights`` summing exactly to ``totals`` (cumulative rounding)."""
    cum = np.cumsum(weights, axis=1)
    cum *= (np.maximum(totals, 0) / cum[:, -1])[:, None]
    edges = np.floor(cum + 0.5).astype(np.int64)
    return np.diff(edges, axis=1, prepend=0)


def derive_day(
    symbol: str,
    day: date,
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: int,
    *,
    seed: int = DEFAULT_SEED,
    session_day: date | None = None,
) -> DerivedDay:
    """The derived 1-minute path of one daily bar (see the module docstring); same inputs, same path."""
    on = [session_day] if session_day is not None else None
    return derive_days(symbol, [day], [open_], [high], [low], [close], [volume], seed=seed, session_days=on)[0]


class UsDailyFeed:
    """A TickFeed over one US session: every symbol's derived path (see the module docstring).

    ``symbols`` defaults to every symbol with a row that day. Paths are derived up front (so deriving
    and iterating can be timed apart); ticks are generated while iterating. ``session_day`` replays the
    bars of ``day`` on another session (e.g. today's, when the data ends earlier); ``data_day`` says
    which day's bars are replayed.
    """

    derived = True
    source = SOURCE

    def __init__(
        self,
        data: UsData,
        day: date,
        symbols: list[str] | None = None,
        *,
        seed: int = DEFAULT_SEED,
        session_day: date | None = None,
    ) -> None:
        on = session_day or day
        sess = us.session(on)
        if sess is None:
            raise ValueError(f"{on} is not an XNYS trading day")
        available = data.symbols_on(day)
        if symbols is None:
            chosen = available
        else:
            chosen = list(dict.fromkeys(symbols))
            missing = [s for s in chosen if s not in set(available)]
            if missing:
                raise ValueError(f"no daily bar on {day} for {', '.join(missing)} in {data.data_dir}")
        if not chosen:
            raise ValueError(f"no daily bars on {day} in {data.data_dir}")
        self.session_date = on
        self.data_day = day
        self.session = sess
        self.close_at = sess.close
        self.open_at = sess.open
        self.seed = seed
        self.symbols = chosen
        self._paths: dict[str, DerivedDay] = {}
        self._prev: dict[str, float | None] = {}
        for symbol in chosen:
            row = data.row(symbol, day)
            assert row is not None
            self._paths[symbol] = derive_day(
                symbol, day, row.open, row.high, row.low, row.close, row.volume, seed=seed, session_day=on
            )
            prev = data.prev_close(symbol, day)
            self._prev[symbol] = us.round_to_tick(prev) if prev is not None else None

    def prev_close(self, symbol: str) -> float | None:
        """The previous session's close on the grid (None for a symbol's first day in the data)."""
        return self._prev.get(symbol)

    def path(self, symbol: str) -> DerivedDay:
        return self._paths[symbol]

    def bars(self, symbol: str) -> list[Bar]:
        """The derived 1-minute bars of ``symbol`` (the whole session: callers cut at their ``now``)."""
        return self._paths[symbol].bars()

    @cached_property
    def tick_count(self) -> int:
        return sum(1 for _ in self)

    def ticks(self, symbol: str) -> Iterator[Tick]:
        return self._paths[symbol].ticks(self._prev.get(symbol))

    def __iter__(self) -> Iterator[Tick]:
        """All symbols' prints in time order; simultaneous prints follow ``symbols`` order."""
        return heapq.merge(*(self.ticks(s) for s in self.symbols), key=attrgetter("ts"))


__all__ = [
    "DEFAULT_SEED",
    "SOURCE",
    "DerivedDay",
    "UsDailyFeed",
    "derive_day",
    "derive_days",
    "grid_ohlc",
    "snap_units",
]
