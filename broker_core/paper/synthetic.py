"""A seeded synthetic KRX session, for when the real data is absent or a scenario needs no data.

Per symbol: an opening gap against the previous close, a random walk whose volatility is higher
near the open and the close, U-shaped minute volume, every price on the KRX tick grid and inside
the ±30% daily limits. Bars 09:00–15:19 plus a single-price closing auction at 15:30 are built
first and then expanded into ticks exactly like replayed bars (``bar_to_ticks``).
The same (day, symbols, seed, base prices) always gives the same tape.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

from broker_core.clock import KST
from broker_core.market_rules import CLOSE, OPEN, price_limits, round_to_tick
from broker_core.models import Bar
from broker_core.paper.replay import BarTapeFeed

DEFAULT_SYMBOLS: tuple[str, ...] = tuple(f"9000{i:02d}" for i in range(1, 11))
CONTINUOUS_MINUTES = 380
"""09:00 through 15:19."""
_STEPS_PER_MINUTE = 6


def _vol_shape(i: int) -> float:
    """Relative volatility of minute ``i``: high after the open, raised again before the close."""
    return 1.0 + 2.0 * math.exp(-i / 15) + 1.0 * math.exp(-(CONTINUOUS_MINUTES - 1 - i) / 25)


def _volume_shape(i: int) -> float:
    """Relative volume of minute ``i`` (U-shaped)."""
    return 1.0 + 4.0 * math.exp(-i / 10) + 2.0 * math.exp(-(CONTINUOUS_MINUTES - 1 - i) / 20)


def synthetic_bars(symbol: str, day: date, prev_close: float, rng: random.Random) -> list[Bar]:
    """One session of 1-minute bars for ``symbol`` drawn from ``rng``."""
    lower, upper = price_limits(prev_close)

    def grid(x: float) -> float:
        return float(min(max(round_to_tick(x), lower), upper))

    daily_sigma = rng.uniform(0.012, 0.035)
    minute_sigma = daily_sigma / math.sqrt(CONTINUOUS_MINUTES)
    step_sigma = minute_sigma / math.sqrt(_STEPS_PER_MINUTE)
    mean_volume = max(20.0, rng.lognormvariate(math.log(1.5e10 / prev_close), 0.6) / CONTINUOUS_MINUTES)

    latent = min(max(prev_close * math.exp(rng.gauss(0.0, 0.01)), lower), upper)
    last = grid(latent)
    start = datetime.combine(day, OPEN, KST)
    bars: list[Bar] = []
    day_volume = 0
    for i in range(CONTINUOUS_MINUTES):
        o = h = lo = last
        sigma = step_sigma * _vol_shape(i)
        for _ in range(_STEPS_PER_MINUTE):
            latent = min(max(latent * math.exp(rng.gauss(0.0, sigma)), lower), upper)
            last = grid(latent)
            h, lo = max(h, last), min(lo, last)
        volume = max(1, int(mean_volume * _volume_shape(i) * rng.lognormvariate(0.0, 0.35)))
        day_volume += volume
        bars.append(Bar(symbol, start + timedelta(minutes=i), o, h, lo, last, volume))
    auction = grid(last * math.exp(rng.gauss(0.0, minute_sigma)))
    auction_volume = max(1, int(day_volume * rng.uniform(0.03, 0.08)))
    bars.append(Bar(symbol, datetime.combine(day, CLOSE, KST), auction, auction, auction, auction, auction_volume))
    return bars


def _base_price(rng: random.Random) -> float:
    return float(round_to_tick(math.exp(rng.uniform(math.log(3_000), math.log(400_000)))))


class SyntheticFeed(BarTapeFeed):
    """A reproducible synthetic session (TickFeed) for ``symbols`` (default ``900001``…``900010``).

    ``base_prices`` gives the previous close per symbol; missing ones are drawn from the seed.
    Each symbol has its own random stream, so adding a symbol does not change the others.
    """

    def __init__(
        self, day: date, symbols: list[str] | None = None, seed: int = 7, base_prices: dict[str, float] | None = None
    ) -> None:
        names = list(dict.fromkeys(symbols)) if symbols else list(DEFAULT_SYMBOLS)
        self.seed = seed
        bars: dict[str, list[Bar]] = {}
        prev: dict[str, float | None] = {}
        for symbol in names:
            rng = random.Random(f"{seed}:{day.isoformat()}:{symbol}")
            base = (base_prices or {}).get(symbol)
            prev_close = float(round_to_tick(base)) if base else _base_price(rng)
            prev[symbol] = prev_close
            bars[symbol] = synthetic_bars(symbol, day, prev_close, rng)
        super().__init__(day, bars, prev)
