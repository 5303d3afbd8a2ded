"""The backtest's progress without a terminal: a plain line with sessions done, the run's figures and an ETA."""

from __future__ import annotations

import io
from datetime import date, datetime

from rich.console import Console

from broker_core.clock import KST
from trader.backtest.progress import progress_bar

DAYS = [date(2026, 2, 2), date(2026, 2, 3), date(2026, 2, 4), date(2026, 2, 5)]


def test_a_plain_line_says_where_the_run_is_and_when_it_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with progress_bar(console, DAYS) as bar:
        line = bar.line(datetime(2026, 2, 4, 9, 0, tzinfo=KST), 2.0, "sessions 2/4 · fills 7", elapsed=120.0)
    assert line.startswith("2026-02-04 09:00 · 2.0/4 sessions (50%) · sessions 2/4 · fills 7")
    assert line.endswith("elapsed 2.0 min · ETA 2.0 min")


def test_no_eta_before_any_progress() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with progress_bar(console, DAYS) as bar:
        assert bar.line(datetime(2026, 2, 2, 8, 0, tzinfo=KST), 0.0, "starting", elapsed=5.0).endswith("ETA ?")
