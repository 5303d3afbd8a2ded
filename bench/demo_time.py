"""``make demo`` wall time: the README's first command on its default day and speed, timed end to end.

    python bench/demo_time.py [--speed 120] [--date D]

Runs ``trader demo`` (OMS and every KRX strategy as processes, paper exchange + SQLite, the default
session at the default speed unless given) with ``--json-report`` into a temporary file, and prints the
wall time and what the session traded per strategy (the report's fixed keys: intents, entries, fills,
realized P&L).
The run folder is the command's own (``runs/``). The wall time is bounded below by the virtual session
(09:00 → 15:35 at ``--speed``: 197 s at 120×); never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--speed", type=float, default=None, help="virtual-clock speed (default: the demo's)")
    parser.add_argument("--date", default=None, help="session (default: the demo's)")
    args = parser.parse_args()
    trader = Path(sys.executable).parent / "trader"
    cmd = [str(trader if trader.exists() else ROOT / ".venv" / "bin" / "trader"), "demo"]
    if args.speed is not None:
        cmd += ["--speed", str(args.speed)]
    if args.date is not None:
        cmd += ["--date", args.date]
    with tempfile.TemporaryDirectory(prefix="demo-time-") as tmp:
        report_path = Path(tmp) / "report.json"
        cmd += ["--json-report", str(report_path)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    print(f"make demo ({' '.join(cmd[1:-2])}): wall {wall:.1f} s, exit {proc.returncode}")
    if report is None:
        print("  no report written; the command's last lines:")
        print("\n".join("  " + line for line in (proc.stdout + proc.stderr).splitlines()[-20:]))
        return 1
    total_fills = 0
    for sid, s in sorted(report.get("strategies", {}).items()):
        total_fills += int(s.get("fills", 0))
        print(
            f"  {sid}: {s.get('intents', 0)} intents, {s.get('entries', 0)} entries, {s.get('fills', 0)} fills, "
            f"realized P&L {s.get('realized_pnl', 0):,.0f}"
        )
    print(f"  session {report.get('from')} · {total_fills} fills in all")
    return 0 if proc.returncode == 0 and total_fills > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
