"""Backtest speed: one full KRX session with every KRX strategy of this build, in one process (``trader
backtest``'s engine), on the 60-ticker minute data; optionally every session of the data.

    .venv/bin/python bench/backtest_speed.py [--date 2026-02-04] [--all | --days N] [--profile N]

Prints seconds per session and sessions per minute (setup — migrations, calendar, data loading — shown
apart), the clock steps, the prints replayed, and what the strategies did. ``--profile N`` runs under
cProfile and prints the N most expensive functions (cumulative and own time). Targets (not asserted):
one session ≤ 5 s; all sessions ≤ 10 min. Run folders go to a temporary directory, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_core.logging_setup import configure  # noqa: E402
from broker_core.paper.data import ENV_VAR, KrxData  # noqa: E402
from trader.backtest import BacktestResult, plan_backtest, run_backtest  # noqa: E402
from trader.backtest.loop import backtest_loop  # noqa: E402
from trader.backtest.report import database_check, minimal_report  # noqa: E402
from trader.launcher import ALL_STRATEGIES, available_strategies  # noqa: E402

KRX_STRATEGIES = ALL_STRATEGIES


def run(days: tuple[str, str], strategies: list[str], data_dir: str | None, profile: int) -> None:
    with tempfile.TemporaryDirectory(prefix="backtest-bench-") as tmp:
        plan = plan_backtest(strategies, start=days[0], end=days[1], data_dir=data_dir, run_dir=Path(tmp) / "run")
        plan.run_dir.mkdir(parents=True)
        os.environ[ENV_VAR] = str(plan.data_dir)
        with (plan.run_dir / "backtest.log").open("w") as log:
            configure("INFO", stream=log)
            logging.getLogger("httpx").setLevel(logging.WARNING)
            profiler = cProfile.Profile() if profile else None
            wall = time.perf_counter()
            with asyncio.Runner(loop_factory=backtest_loop) as runner:
                if profiler is not None:
                    profiler.enable()
                result = runner.run(run_backtest(plan))
                if profiler is not None:
                    profiler.disable()
            total = time.perf_counter() - wall
        _print(plan.days, strategies, result, total, minimal_report(plan, result))
        if profiler is not None:
            _print_profile(profiler, profile)
            if dump := os.environ.get("BACKTEST_PROFILE_DUMP"):
                profiler.dump_stats(dump)


def _print(days: list, strategies: list[str], r: BacktestResult, total: float, report: dict) -> None:
    n = len(days)
    driven = r.wall_seconds - r.setup_seconds
    span = f"{days[0]}" if n == 1 else f"{days[0]} … {days[-1]}"
    print(f"backtest {span}: {n} session(s), strategies {', '.join(strategies)}")
    print(
        f"  wall {total:.2f} s = setup {r.setup_seconds:.2f} s + driven {driven:.2f} s · "
        f"{driven / n:.2f} s/session driven, {total / n:.2f} s/session all in · "
        f"{60 * n / total:.2f} sessions/min"
    )
    print(f"  {r.steps:,} clock steps ({r.steps / max(driven, 1e-9):,.0f}/s) · {r.ticks:,} prints replayed")
    for sid, row in report["strategies"].items():
        print(
            f"  {sid}: {row['intents']} intents, {row['entries']} entries, {row['fills']} fills, "
            f"realized P&L {row['realized_pnl']:,.0f}"
        )
    check = database_check(report, r.database)
    print(f"  database check: {'ok' if check['ok'] else check}")


def _print_profile(profiler: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        print(f"--- profile by {order} ---")
        print("\n".join(out.getvalue().splitlines()[6:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--date", default=None, help="the session of the one-session run (default: the latest)")
    parser.add_argument("--all", action="store_true", help="also every session of the data, back to back")
    parser.add_argument("--days", type=int, default=0, help="also the last N sessions, back to back")
    parser.add_argument("--strategies", default=None, help="comma-separated (default: every KRX strategy built)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", type=int, default=0, help="print the N most expensive functions")
    args = parser.parse_args()
    data = KrxData(args.data_dir)
    sessions = data.sessions()
    strategies = args.strategies.split(",") if args.strategies else available_strategies(KRX_STRATEGIES)
    day = args.date or str(sessions[-1])
    run((day, day), strategies, args.data_dir, args.profile)
    if args.all or args.days:
        first = sessions[0] if args.all else sessions[-args.days]
        run((str(first), str(sessions[-1])), strategies, args.data_dir, args.profile)


if __name__ == "__main__":
    main()
