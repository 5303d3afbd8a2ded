"""Replay of recorded 1-minute bars as a tape of trades.

Each bar becomes a few trade prints that reproduce it exactly: the first print is the open, the
last the close, the highest the high, the lowest the low, and the quantities add up to the
volume. The path inside the minute follows the usual OHLC heuristic (an up bar visits the low
first, a down bar the high first), with intermediate prints on the KRX tick grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from operator import attrgetter
from typing import Any

from broker_core.clock import KST
from broker_core.market_rules import CLOSE, round_to_tick, tick_size
from broker_core.models import Bar, Side, Tick
from broker_core.paper.data import DataNotFound, KrxData

MAX_TICKS_PER_BAR = 8
_BUY, _SELL = Side.BUY, Side.SELL
_BAR_SECONDS = 60
_CHUNK = 30
"""Bars a ``ReplayFeed`` builds at a time per symbol."""


def is_closing_auction(bar: Bar) -> bool:
    """A 15:30 bar with a single price: the closing call auction, one print of the whole volume.

    A 15:30 bar with a range is continuous trading (e.g. 2025-11-13, when the market closed
    late and the data stops at 15:30) and is replayed like any other minute.
    """
    return bar.ts.astimezone(KST).time() == CLOSE and bar.high == bar.low


@lru_cache(maxsize=MAX_TICKS_PER_BAR + 1)
def _offsets(n: int) -> tuple[timedelta, ...]:
    """``n`` instants spread evenly inside the minute, strictly after its start and before its end."""
    return tuple(timedelta(microseconds=round((i + 0.5) * _BAR_SECONDS * 1_000_000 / n)) for i in range(n))


def _key_points(bar: Bar) -> list[float]:
    o, h, lo, c = bar.open, bar.high, bar.low, bar.close
    raw = [o, lo, h, c] if c >= o else [o, h, lo, c]
    points = [raw[0]]
    for p in raw[1:]:
        if p != points[-1]:
            points.append(p)
    return points


def _ticks_between(a: float, b: float) -> int:
    """Approximate number of tick steps between two prices."""
    return int(abs(b - a) // tick_size(min(a, b)))


def _intermediate(a: float, b: float, m: int) -> list[float]:
    """Up to ``m`` grid prices strictly between ``a`` and ``b``, monotone from ``a`` to ``b``."""
    out: list[float] = []
    lo, hi = min(a, b), max(a, b)
    for k in range(1, m + 1):
        p = float(round_to_tick(a + (b - a) * k / (m + 1)))
        if lo < p < hi and (not out or p != out[-1]):
            out.append(p)
    return out


@lru_cache(maxsize=65_536)
def _path_of(o: float, h: float, lo: float, c: float, budget: int) -> tuple[float, ...]:
    """The path of a bar with these prices (memoized: a third of a session's bars repeat a shape)."""
    return tuple(_compute_path(Bar("", datetime.min, o, h, lo, c, 0), budget))


def _compute_path(bar: Bar, budget: int) -> list[float]:
    """Distinct-step price path O → … → C with at most ``budget`` points (``budget`` ≥ 1)."""
    keys = _key_points(bar)
    if len(keys) > budget:
        # Only reachable when volume < number of key prices (never in the KRX data): keep open and
        # close, then whichever extreme fits; a single share keeps the close.
        if budget == 1:
            return [bar.close]
        return keys[: budget - 1] + [keys[-1]]
    spare = budget - len(keys)
    if spare == 0 or len(keys) == 1:
        return keys
    segments = list(pairwise(keys))
    room = [max(0, _ticks_between(a, b) - 1) for a, b in segments]
    if not any(room):
        return keys
    alloc = [0] * len(segments)
    while spare > 0:
        best = _most_room(room, alloc)
        if alloc[best] >= room[best]:
            break
        alloc[best] += 1
        spare -= 1
    path = [keys[0]]
    for (a, b), m in zip(segments, alloc, strict=True):
        if m:
            path.extend(_intermediate(a, b, m))
        path.append(b)
    return path


def _most_room(room: list[int], alloc: list[int]) -> int:
    """The segment with the most room left per point already given to it (the first of equals)."""
    best, best_share = 0, (room[0] - alloc[0]) / (alloc[0] + 1)
    for j in range(1, len(room)):
        share = (room[j] - alloc[j]) / (alloc[j] + 1)
        if share > best_share:
            best, best_share = j, share
    return best


def _split(total: int, n: int) -> list[int]:
    base, rest = divmod(total, n)
    return [base + 1 if i < rest else base for i in range(n)]


def bar_to_ticks(bar: Bar, prev_price: float | None = None) -> list[Tick]:
    """Trade prints reproducing ``bar`` exactly (first = open, max = high, min = low, last = close,
    sum of quantities = volume), at increasing times inside ``[bar.ts, bar.ts + 60s)``.

    At most ``MAX_TICKS_PER_BAR`` prints, and never more than the volume. A bar of volume 0 yields
    no prints. The closing auction (see ``is_closing_auction``) is one print at the bar's start.
    The aggressor follows the tick rule against the previous print (``prev_price`` for the first);
    the auction print and an unchanged first print without history have no aggressor.
    """
    volume = int(bar.volume)
    if volume <= 0:
        return []
    if is_closing_auction(bar):
        return [Tick(bar.symbol, bar.ts, bar.close, volume, None)]
    n = min(volume, MAX_TICKS_PER_BAR)
    prices = _prices_of(float(bar.open), float(bar.high), float(bar.low), float(bar.close), n)
    symbol, start = bar.symbol, bar.ts
    ticks: list[Tick] = []
    last, side = prev_price, None
    for offset, price, qty in zip(_offsets(n), prices, _split(volume, n), strict=True):
        if last is not None and price != last:
            side = _BUY if price > last else _SELL
        ticks.append(Tick(symbol, start + offset, price, qty, side))
        last = price
    return ticks


@lru_cache(maxsize=65_536)
def _prices_of(o: float, h: float, lo: float, c: float, n: int) -> tuple[float, ...]:
    """The ``n`` print prices of a bar: its path, each point repeated to fill ``n`` prints."""
    path = _path_of(o, h, lo, c, n)
    repeats = _split(n, len(path))
    return tuple(p for p, r in zip(path, repeats, strict=True) for _ in range(r))


def _minute_start(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def ticks_to_bars(ticks: Iterable[Tick], interval: str = "1m") -> list[Bar]:
    """1-minute OHLCV bars (labelled by their start minute) rebuilt from ticks, per symbol, in order
    of each bar's first tick."""
    acc: dict[tuple[str, datetime], list[float]] = {}
    for t in ticks:
        key = (t.symbol, _minute_start(t.ts))
        row = acc.get(key)
        if row is None:
            acc[key] = [t.price, t.price, t.price, t.price, t.qty]
        else:
            row[1] = max(row[1], t.price)
            row[2] = min(row[2], t.price)
            row[3] = t.price
            row[4] += t.qty
    return [Bar(sym, ts, o, h, lo, c, int(v), interval) for (sym, ts), (o, h, lo, c, v) in acc.items()]


_TS = attrgetter("ts")


class BarTapeFeed:
    """A TickFeed over per-symbol 1-minute bars, expanded into ticks lazily while iterating.

    A subclass that holds its bars in another form (``ReplayFeed``: column arrays) overrides the four accessors
    ``_count``, ``_bar``, ``_stamps`` and ``_on_grid``, and ``bars``."""

    def __init__(self, session_date: date, bars: dict[str, list[Bar]], prev_closes: dict[str, float | None]) -> None:
        self.session_date = session_date
        self.symbols = list(bars)
        self._bars = bars
        self._prev = prev_closes

    def prev_close(self, symbol: str) -> float | None:
        return self._prev.get(symbol)

    def bars(self, symbol: str) -> list[Bar]:
        """The source bars of ``symbol`` (a copy)."""
        return list(self._bars[symbol])

    def count_bars(self) -> int:
        return sum(self._count(s) for s in self.symbols)

    def _count(self, symbol: str) -> int:
        return len(self._bars[symbol])

    def _bar(self, symbol: str, i: int) -> Bar:
        return self._bars[symbol][i]

    def _stamps(self, symbol: str) -> list[Any]:
        """Each bar's start in a form that sorts and compares as the starts do."""
        return [b.ts for b in self._bars[symbol]]

    def _on_grid(self) -> bool:
        """Every bar starts on a whole minute."""
        return all(b.ts.second == 0 and b.ts.microsecond == 0 for bars in self._bars.values() for b in bars)

    def ticks(self, symbol: str) -> Iterator[Tick]:
        """The tape of one symbol."""
        prev = self._prev.get(symbol)
        for i in range(self._count(symbol)):
            bar = self._bar(symbol, i)
            yield from bar_to_ticks(bar, prev)
            prev = bar.close

    def __iter__(self) -> Iterator[Tick]:
        """All symbols' ticks in time order; simultaneous ticks follow ``symbols`` order.

        Built one bar start at a time: the prints of the bars starting at ``T`` lie in ``[T, T + 60 s)``, so with
        bars on whole minutes a stable sort of each minute's prints (symbols in order) gives the order of merging
        the per-symbol tapes, at a fraction of a lazy merge's per-print cost, and nothing is built ahead (a replay
        starts at once; a bar is built when its minute comes). Bars off the minute grid fall back to sorting the
        whole tape."""
        if self._on_grid():
            return self._by_minute()
        tape = [tick for s in self.symbols for tick in self.ticks(s)]
        tape.sort(key=_TS)
        return iter(tape)

    def _by_minute(self) -> Iterator[Tick]:
        starts: dict[Any, list[tuple[str, int]]] = {}
        for symbol in self.symbols:
            for i, start in enumerate(self._stamps(symbol)):
                starts.setdefault(start, []).append((symbol, i))
        prev = {s: self._prev.get(s) for s in self.symbols}
        for start in sorted(starts):
            minute: list[Tick] = []
            for symbol, i in starts.pop(start):
                bar = self._bar(symbol, i)
                minute.extend(bar_to_ticks(bar, prev[symbol]))
                prev[symbol] = bar.close
            minute.sort(key=_TS)
            yield from minute


class ReplayFeed(BarTapeFeed):
    """Replay of one real KRX session from the minute files.

    ``symbols`` defaults to every ticker with minute bars that day. The day's rows are read up front as column
    arrays (so loading and iterating can be timed apart); each bar is built when the replay reaches its minute,
    and its ticks then (the day's 22,800 bars as objects were 0.13 s of an OMS's start and 6.5 MB it kept).
    """

    def __init__(self, data: KrxData, day: date, symbols: list[str] | None = None) -> None:
        if symbols is None:
            candidates = data.minute_symbols()
        else:
            candidates = list(dict.fromkeys(symbols))
            known = set(data.minute_symbols())
            missing = [s for s in candidates if s not in known]
            if missing:
                raise DataNotFound(f"no minute file for {', '.join(missing)} under {data.data_dir / 'minute'}")
        columns = {s: data.minute_day(s, day) for s in candidates}
        if symbols is None:
            columns = {s: a for s, a in columns.items() if len(a.ts)}
        if not any(len(a.ts) for a in columns.values()):
            sessions = data.sessions()
            span = f"{sessions[0]} … {sessions[-1]}" if sessions else "none"
            raise ValueError(
                f"no minute bars on {day} for {', '.join(candidates) or 'any symbol'} "
                f"(sessions in {data.data_dir}: {span})"
            )
        super().__init__(day, {}, {s: data.prev_close(s, day) for s in columns})
        self.symbols = list(columns)
        self._columns = columns
        self._chunks: dict[str, tuple[int, list[Bar]]] = {}

    def bars(self, symbol: str) -> list[Bar]:
        return self._columns[symbol].bars(symbol)

    def _count(self, symbol: str) -> int:
        return len(self._columns[symbol].ts)

    def _bar(self, symbol: str, i: int) -> Bar:
        """Bars are built ``_CHUNK`` rows at a time (one row at a time doubled the replay's cost)."""
        first, chunk = self._chunks.get(symbol, (0, []))
        if not first <= i < first + len(chunk):
            first, chunk = i, self._columns[symbol].rows(i, i + _CHUNK).bars(symbol)
            self._chunks[symbol] = (first, chunk)
        return chunk[i - first]

    def _stamps(self, symbol: str) -> list[Any]:
        stamps: list[Any] = self._columns[symbol].ts.tolist()
        return stamps

    def _on_grid(self) -> bool:
        """UNIX seconds on whole minutes are KST's whole minutes (KST's offset is whole hours)."""
        return not any((a.ts % _BAR_SECONDS).any() for a in self._columns.values())
