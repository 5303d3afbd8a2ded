"""``trader sim`` refuses bad input with one clear error naming the problem, exit 2, and writes nothing."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker_core.paper.data import resolve_data_dir
from trader.cli import app


@functools.cache
def _runs_dir() -> Path:
    """A run-folder root of this module's own (``TRADER_RUNS_DIR``): runs of other tests on the other worker
    must not count as half-written."""
    return Path(tempfile.mkdtemp(prefix="sim-bad-input-runs-"))


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str = ""


def _sim(*args: str, data_dir: str | None = None) -> Ran:
    """``trader sim …`` in this process (the command's own code; refused before any process would start)."""
    cmd = ["sim", *args, "--data-dir", data_dir or str(resolve_data_dir())]
    result = CliRunner().invoke(app, cmd, env={"TRADER_RUNS_DIR": str(_runs_dir())})
    return Ran(result.exit_code, result.output)


def _runs() -> set[str]:
    runs = _runs_dir()
    return {p.name for p in runs.iterdir()} if runs.exists() else set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-02-04", "--to", "2026-02-05", "--strategies", "nosuch"], "unknown strategy nosuch"),
        (["--from", "2030-01-02", "--to", "2030-01-03"], "no session of the minute data lies in 2030-01-02"),
        (["--from", "2026-02-05", "--to", "2026-02-04"], "--from 2026-02-05 is after --to 2026-02-04"),
        (["--from", "2026-02-04", "--to", "2026-02-05", "--until", "25:00"], "--until must be HH:MM"),
        (["--from", "2026-02-04", "--to", "2026-02-05", "--start", "7h"], "--start must be HH:MM"),
        (
            ["--from", "2026-02-04", "--to", "2026-02-04", "--start", "10:00", "--until", "09:00"],
            "is not after the run's",
        ),
        (["--from", "2026-02-04", "--to", "2026-02-05", "--market", "lse"], "--market lse"),
        (["--from", "2026-02-04", "--to", "2026-02-05", "--database-url", "mysql://a@b/c"], "a postgresql:// URL"),
        (
            ["--market", "us", "--from", "2024-11-25", "--to", "2024-11-26", "--strategies", "kmp"],
            "--market us runs scripted, swing_ml",
        ),
        (
            ["--from", "2026-02-04", "--to", "2026-02-05", "--database-url", "postgresql://u:pw-hidden@127.0.0.1:1/x"],
            "--database-url: cannot connect",
        ),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str) -> None:
    before = _runs()
    result = _sim(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join((result.stdout + result.stderr).split()), result.stdout + result.stderr
    assert _runs() == before, "nothing half-written"
    assert "pw-hidden" not in result.stdout + result.stderr, "a database password is never printed"


def test_a_data_dir_without_the_files_is_named(tmp_path: Path) -> None:
    before = _runs()
    result = _sim("--from", "2026-02-04", "--to", "2026-02-05", data_dir=str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(tmp_path) in " ".join((result.stdout + result.stderr).split())
    assert _runs() == before
