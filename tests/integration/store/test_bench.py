"""The journal benchmark runs (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import PG_ADMIN_DSN

ROOT = Path(__file__).resolve().parents[3]


def test_journal_throughput_bench_runs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "journal_throughput.py"),
            "--n",
            "300",
            "--batch",
            "20",
            "--drain-batch",
            "50",
            "--pg-admin-dsn",
            PG_ADMIN_DSN,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "appends/s" in out.stdout and "drain → postgres" in out.stdout and "drain → sqlite" in out.stdout
