"""Are two backtest/sim/demo runs the same trading? The exactness check of a speed change.

    .venv/bin/python bench/compare_runs.py RUN_A RUN_B [--same-path /tmp/base=/work/main …]

``RUN_A``/``RUN_B`` are run folders (``runs/backtest-…``, ``runs/sim-…``, ``runs/demo-…``). Compared: the
intents, orders and fills in ``oms/oms.db`` (the columns that carry a decision — strategy, symbol, type,
quantities, prices, status, reason, virtual times; not generated ids or wall-clock copy times), and every
strategy's decision lines (``logs/<strategy>.log``, ``decision code=…``) with wall-time fields and the run
folders' own paths removed (``--same-path OLD=NEW``: also read OLD as NEW in RUN_A's lines, e.g. the two trees'
checkouts when a decision names a config file). Prints a line per table and the first difference; exit 0 when
everything is the same, 1 otherwise, 2 when a folder is not a run folder.

How a speed change was checked in ``bench/RESULTS.md``: the same ``trader backtest …`` command on the tree before
and after (``git worktree add /tmp/base <rev>``, run from that folder so its modules are the ones imported,
``TRADER_RUNS_DIR`` pointing each run somewhere else), then this script on the two run folders.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path

COLUMNS = {
    "intents": "strategy_id, symbol, intent_type, desired_qty, target_qty, urgency, status, reason_code, "
    "modified_qty, received_at, decided_at",
    "orders": "strategy_id, symbol, side, qty, order_type, state, created_at, limit_price, stop_price, filled_qty, "
    "avg_fill_price, reason",
    "fills": "strategy_id, symbol, side, qty, price, ts, commission, tax",
}
_WALL_FIELDS = re.compile(r"\b(wall_seconds|seconds)=[0-9.]+")


def table_rows(run: Path, table: str) -> list[str]:
    with sqlite3.connect(run / "oms" / "oms.db") as db:
        return sorted(repr(row) for row in db.execute(f"SELECT {COLUMNS[table]} FROM {table}"))


def decision_lines(run: Path, same: dict[str, str] | None = None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    root = str(run.resolve())
    for log in sorted((run / "logs").glob("*.log")):
        if log.name in ("backtest.log", "oms.log", "launcher.log"):
            continue
        with log.open(encoding="utf-8") as lines:
            for line in lines:
                if " decision code=" not in line:
                    continue
                text = line.split(" decision ", 1)[1].replace(root, "RUN").replace(str(run), "RUN")
                for old, new in (same or {}).items():
                    text = text.replace(old, new)
                out.append((log.name, _WALL_FIELDS.sub("", text)))
    return out


def compare(a: list, b: list, name: str) -> bool:
    same = a == b
    print(f"{name}: {len(a)} vs {len(b)} {'same' if same else 'DIFFER'}")
    if not same:
        first = next(((x, y) for x, y in zip(a, b, strict=False) if x != y), None)
        if first is not None:
            print(f"  first difference:\n    {first[0]}\n    {first[1]}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--same-path", action="append", default=[], metavar="OLD=NEW", help="read OLD as NEW in RUN_A")
    args = parser.parse_args()
    same = dict(pair.split("=", 1) for pair in args.same_path if "=" in pair)
    for run in (args.run_a, args.run_b):
        if not (run / "oms" / "oms.db").is_file():
            print(f"{run}: not a run folder (no oms/oms.db)", file=sys.stderr)
            return 2
    ok = all([compare(table_rows(args.run_a, t), table_rows(args.run_b, t), t) for t in COLUMNS])
    ok = compare(decision_lines(args.run_a, same), decision_lines(args.run_b), "decision lines") and ok
    print("the same trading" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
