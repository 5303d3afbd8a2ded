"""swing-ML backtest speed and figures: the full walk-forward run (``trader backtest swing_ml``'s simulation,
strategies/swing_ml/backtest.py) on the US daily data, 97 stocks, a retrain every 5 sessions.

    .venv/bin/python bench/swing_ml_backtest.py [--from 2023-09-01] [--to 2024-12-31] [--retrain-every 5]
                                                [--threads 1] [--json PATH]

Prints the whole run's wall time (data loading apart), the seconds per retrain (data set + purged walk-forward
validation + final fit; mean, median, max), the regime time, the AUC of every retrain and the results table
(both books, SPY, exits by reason). Targets (not asserted): a retrain < 60 s, the whole run a few minutes on a
2-core machine. Nothing is written unless ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402

from broker_core.paper.us_data import UsData  # noqa: E402
from strategies.swing_ml.backtest import BacktestParams, RetrainRecord, run_backtest, summary  # noqa: E402
from strategies.swing_ml.data import load_panel  # noqa: E402
from strategies.swing_ml.universe import DEFAULT_UNIVERSE  # noqa: E402
from trader.backtest.swing_ml import print_tables  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="start", default="2023-09-01")
    ap.add_argument("--to", dest="end", default="2024-12-31")
    ap.add_argument("--retrain-every", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the summary (report.json's figures) here")
    args = ap.parse_args()
    console = Console(width=170)

    t0 = time.perf_counter()
    data = UsData()
    panel = load_panel(data=data)
    sector_map = data.sector_map()
    load = time.perf_counter() - t0

    def progress(rec: RetrainRecord) -> None:
        auc = "—" if rec.auc is None else f"{rec.auc:.4f}"
        console.print(f"  retrain {rec.session}: AUC {auc}, {rec.rows:,} rows, {rec.seconds:.2f} s", highlight=False)

    params = BacktestParams(retrain_every=args.retrain_every, threads=args.threads)
    t1 = time.perf_counter()
    result = run_backtest(
        panel,
        DEFAULT_UNIVERSE,
        sector_map,
        date.fromisoformat(args.start),
        date.fromisoformat(args.end),
        params=params,
        on_retrain=progress,
    )
    run = time.perf_counter() - t1
    figures = summary(result)
    print_tables(console, figures)
    secs = [r.seconds for r in result.retrains]
    s = result.seconds
    console.print(
        f"\n[bold]{result.start} … {result.end}[/bold]: {len(result.sessions)} sessions, "
        f"{len(DEFAULT_UNIVERSE)} stocks, {len(secs)} retrains (every {args.retrain_every} sessions), "
        f"threads {args.threads}",
        highlight=False,
    )
    console.print(
        f"seconds per retrain: mean {statistics.mean(secs):.2f}, median {statistics.median(secs):.2f}, "
        f"max {max(secs):.2f} (target < 60)",
        highlight=False,
    )
    console.print(
        f"wall: whole run {run:.1f} s = prepare {s['prepare']:.1f} + retrains {s['retrain']:.1f} + regime "
        f"{s['regime']:.1f} + simulation {run - s['prepare'] - s['retrain'] - s['regime']:.1f}; data loading "
        f"{load:.1f} s",
        highlight=False,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
