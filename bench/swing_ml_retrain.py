"""swing-ML weekly retrain (strategies.md S5) on the default 97-name universe: how long it takes here.

    .venv/bin/python bench/swing_ml_retrain.py [--as-of 2024-12-31] [--data-dir DIR] [--config PATH]
                                               [--threads 1] [--repeat 1]

Runs the job ``trader swing-ml train`` runs (:func:`strategies.swing_ml.model.retrain`: 18-month window, purged
walk-forward validation with 4 folds, fit on the whole window, save, promotion rule, keep 8) into a temporary
models directory, deleted afterwards. ``--as-of`` defaults to the data's last session; the universe is the
built-in default (97 US large caps) unless ``--config`` names a swing-ML config.

Prints the data load time; per stage (dataset, validation folds, final fit, save + promote + prune) the time;
the retrain job's total; the dataset rows, per-fold and pooled out-of-fold AUCs; the peak RSS of the process
and the load average (the machine is shared: a busy host slows everything). Acceptance (issue, deliverable 3):
one retrain < 60 s on the 2-core machine — the line ``retrain`` says OK or SLOW. ``--threads`` sets the OpenMP
threads of the gradient boosting (default 1, as ``trader swing-ml train``; 0 = one per core) to compare.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trader.swing_ml_cli import default_config, load_config, load_training_data, parse_as_of  # noqa: E402

TARGET_SECONDS = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--as-of", default=None, help="last session of the train window (default: the data's last)")
    ap.add_argument("--data-dir", type=Path, default=None, help="US data directory (default TRADER_US_DATA_DIR)")
    ap.add_argument("--config", type=Path, default=None, help="swing-ML config (default: the built-in defaults)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads of the fit (0 = one per core)")
    ap.add_argument("--repeat", type=int, default=1, help="retrain this many times (min / median shown)")
    args = ap.parse_args()

    from strategies.swing_ml.model import RetrainEvent, RetrainReport, retrain

    cfg = load_config(args.config) if args.config is not None else default_config()
    t0 = time.perf_counter()
    td = load_training_data(args.data_dir, cfg)
    load_s = time.perf_counter() - t0
    day = parse_as_of(args.as_of, td.first, td.last)
    m = cfg.model
    print(
        f"swing-ML retrain bench — as of {day}, {len(td.symbols)} symbols, {m.train_months} months, "
        f"{m.n_splits} folds; {os.cpu_count()} CPUs, OpenMP threads {args.threads or 'one per core'}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"data load        {load_s:6.2f} s  ({len(td.panel.symbols)} series × {len(td.panel.dates)} sessions)")

    totals: list[float] = []
    report: RetrainReport | None = None
    stage_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="swing-ml-bench-") as tmp:
        for _ in range(max(1, args.repeat)):
            marks: dict[str, float] = {}
            stage_s = {}

            def on_event(
                ev: RetrainEvent, marks: dict[str, float] = marks, stage_s: dict[str, float] = stage_s
            ) -> None:
                now = time.perf_counter()
                if ev.done == 0:
                    marks[ev.stage] = now
                elif ev.done == ev.total and ev.stage in marks:
                    stage_s[ev.stage] = now - marks[ev.stage]

            start = time.perf_counter()
            report = retrain(
                td.panel,
                td.symbols,
                td.sector_map,
                tmp,
                datetime.now(UTC),
                **m.retrain_options(),
                as_of=day,
                progress=on_event,
                n_threads=args.threads or None,
            )
            totals.append(time.perf_counter() - start)
    assert report is not None
    meta, val = report.metadata, report.validation
    folds = " ".join("—" if a is None else f"{a:.4f}" for a in meta.fold_aucs)
    mean = statistics.fmean(val.fold_aucs) if val.fold_aucs else float("nan")
    print(
        f"dataset          {stage_s.get('dataset', 0):6.2f} s  ({meta.n_samples:,} rows, {meta.train_start} … "
        f"{meta.train_end}, {len(meta.features)} features)"
    )
    print(f"validation       {stage_s.get('validate', 0):6.2f} s  ({len(val.fold_aucs)} folds, {val.n_oof:,} rows)")
    print(f"final fit        {stage_s.get('fit', 0):6.2f} s")
    save_etc = totals[-1] - sum(stage_s.get(s, 0.0) for s in ("dataset", "validate", "fit"))
    print(f"save+promote+prune {save_etc:4.2f} s  (promoted: {report.promotion.promoted}, {report.promotion.detail})")
    print(f"fold AUCs        {folds}   mean {mean:.4f}   pooled out-of-fold {val.auc:.4f}")
    best, median = min(totals), statistics.median(totals)
    verdict = "OK" if max(totals) < TARGET_SECONDS else "SLOW"
    runs = "" if len(totals) == 1 else f"  (min {best:.2f} s, median {median:.2f} s over {len(totals)} runs)"
    print(f"retrain          {totals[-1]:6.2f} s  — target < {TARGET_SECONDS:.0f} s: {verdict}{runs}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS         {peak_mb:6.0f} MB  (whole process: imports, data, dataset, models)")


if __name__ == "__main__":
    main()
