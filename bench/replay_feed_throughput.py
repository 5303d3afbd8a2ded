"""Throughput of the replay feed: the full merged tape of one KRX session for every minute ticker.

    .venv/bin/python bench/replay_feed_throughput.py [--date 2026-02-27] [--data-dir P] [--repeat 3]

Loading (parquet → bars, prev closes) is timed apart from iterating (bars → ticks, merged in time
order). The synthetic feed over the same symbols is timed too, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_core.paper.data import KrxData  # noqa: E402
from broker_core.paper.replay import ReplayFeed  # noqa: E402
from broker_core.paper.synthetic import SyntheticFeed  # noqa: E402


def _iterate(feed: ReplayFeed | SyntheticFeed) -> tuple[int, float]:
    start = time.perf_counter()
    count = sum(1 for _ in feed)
    return count, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, default=None, help="session (default: latest)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="iterations of the tape (best is reported)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = KrxData(args.data_dir)
    day = args.date or data.latest_session()
    t_sessions = time.perf_counter() - start

    start = time.perf_counter()
    feed = ReplayFeed(data, day)
    t_load = time.perf_counter() - start

    runs = [_iterate(feed) for _ in range(max(1, args.repeat))]
    ticks = runs[0][0]
    best = min(t for _, t in runs)
    print(f"session {day}  symbols {len(feed.symbols)}  bars {feed.count_bars():,}  ticks {ticks:,}")
    print(f"load     sessions index {t_sessions * 1e3:8.1f} ms   minute bars + prev closes {t_load * 1e3:8.1f} ms")
    print(
        f"iterate  best of {len(runs)}: {best * 1e3:8.1f} ms   {ticks / best:12,.0f} ticks/s   "
        f"(runs: {', '.join(f'{t * 1e3:.0f}' for _, t in runs)} ms)"
    )

    start = time.perf_counter()
    synthetic = SyntheticFeed(day, feed.symbols)
    t_synth_load = time.perf_counter() - start
    s_ticks, s_time = min((_iterate(synthetic) for _ in range(max(1, args.repeat))), key=lambda r: r[1])
    print(
        f"synthetic  build {t_synth_load * 1e3:8.1f} ms   iterate {s_time * 1e3:8.1f} ms   "
        f"{s_ticks / s_time:12,.0f} ticks/s   ticks {s_ticks:,}"
    )


if __name__ == "__main__":
    main()
