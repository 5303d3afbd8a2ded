"""Crash safety: SIGKILL between append and drain (or in the middle of a drain) loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from oms.store import codec
from oms.store.drain import Drainer
from oms.store.journal import Journal

from . import crash_child
from .test_drain import assert_db_holds

ROOT = Path(__file__).resolve().parents[3]


def run_and_kill(args: list[str], after_lines: int) -> list[tuple[int, int]]:
    """Start the child, SIGKILL it once it reported ``after_lines`` appends; every ``(i, seq)``
    it printed (including lines still in the pipe after the kill)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.store.crash_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < after_lines:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child ended early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    # read through the same text wrapper: communicate() reads the pipe's descriptor and would drop the lines
    # readline() already buffered (the child drained records it had reported there: they went missing)
    lines += proc.stdout.read().splitlines(keepends=True)
    if proc.stderr is not None:
        proc.stderr.close()
    done = [ln.split() for ln in lines if ln.endswith("\n")]  # a torn last line is not a report
    return [(int(i), int(seq)) for i, seq in done]


def test_sigkill_after_appends_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    reported = run_and_kill([str(path)], after_lines=400)
    assert len(reported) >= 400
    journal = Journal(path)
    try:
        entries = {e.seq: e for e in journal.pending(10_000_000)}
        for i, seq in reported:
            recs = crash_child.records(i)
            for k, rec in enumerate(recs):  # a batch's entries end at the reported seq
                e = entries[seq - len(recs) + 1 + k]
                assert e.record() == rec
                assert e.key == codec.record_key(rec)
        assert max(entries) >= reported[-1][1]
        assert journal.cursor() == 0
    finally:
        journal.close()


async def test_sigkill_while_draining_then_resume_copies_everything_once(
    tmp_path: Path, db_url: str, engine: AsyncEngine, instance_id: str
) -> None:
    path = tmp_path / "journal.sqlite"
    reported = run_and_kill([str(path), db_url, instance_id], after_lines=300)
    journal = Journal(path)
    try:
        appended = [r for i, _ in reported for r in crash_child.records(i)]
        assert journal.cursor() > 0  # the child was draining when it died
        # the restarted OMS resumes the drain: whatever the child did not mark is copied again
        extra = [e.record() for e in journal.pending(10_000_000) if e.seq > reported[-1][1]]
        drainer = Drainer(journal, engine, instance_id, batch_size=50)
        await drainer.drain_all()
        assert drainer.db_ok and journal.backlog() == 0
        await assert_db_holds(engine, instance_id, appended + extra)
    finally:
        journal.close()
