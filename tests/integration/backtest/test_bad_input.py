"""``trader backtest`` refuses bad input with one message naming the problem, exit code 2, and writes nothing
(no run folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker_core.paper.data import resolve_data_dir
from trader.cli import app


def backtest(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["backtest", *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def no_new_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    runs = tmp_path / "runs"
    monkeypatch.setenv("TRADER_RUNS_DIR", str(runs))
    before = set(runs.glob("*")) if runs.exists() else set()
    yield
    after = set(runs.glob("*")) if runs.exists() else set()
    assert after == before, f"run folder(s) written: {sorted(after - before)}"


@pytest.mark.usefixtures("no_new_run_folder")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch", "--from", "2026-02-04", "--to", "2026-02-04"], "unknown strategy 'nosuch' (this build has: kmp"),
        (["kmp", "--from", "2026-02-05", "--to", "2026-02-04"], "--from 2026-02-05 is after --to 2026-02-04"),
        (["kmp", "--from", "2024-01-02", "--to", "2024-01-03"], "--from 2024-01-02 is outside the data"),
        (["kmp", "--from", "2026-02-04", "--to", "2027-01-04"], "--to 2027-01-04 is outside the data"),
        (["kmp", "--from", "04/02/2026", "--to", "2026-02-04"], "--from '04/02/2026': not a date (use YYYY-MM-DD)"),
        (["kmp", "--from", "2026-02-04", "--to", "2026-02-04", "--until", "late"], "--until must be HH:MM"),
        (["kmp", "--from", "2026-02-07", "--to", "2026-02-08"], "no session between 2026-02-07 and 2026-02-08"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    code, output = backtest(*args)
    assert code == 2, output
    assert message in output, output


@pytest.mark.usefixtures("no_new_run_folder")
def test_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    code, output = backtest("kmp", "--from", "2026-02-04", "--to", "2026-02-04", "--data-dir", str(tmp_path / "none"))
    assert code == 2 and "KRX data directory not found" in output, output


@pytest.mark.usefixtures("no_new_run_folder")
def test_a_data_dir_without_minute_files(tmp_path: Path) -> None:
    (tmp_path / "minute").mkdir()
    code, output = backtest("kmp", "--from", "2026-02-04", "--to", "2026-02-04", "--data-dir", str(tmp_path))
    assert code == 2 and "holds no minute file" in output, output


@pytest.mark.usefixtures("no_new_run_folder")
def test_a_data_dir_without_the_daily_files(tmp_path: Path) -> None:
    source = resolve_data_dir()
    (tmp_path / "minute").mkdir()
    shutil.copy(source / "minute" / "005930.parquet", tmp_path / "minute" / "005930.parquet")
    code, output = backtest("kmp", "--from", "2026-02-04", "--to", "2026-02-04", "--data-dir", str(tmp_path))
    assert code == 2 and "missing daily_ohlcv.parquet, sector_map.parquet" in output, output


@pytest.mark.usefixtures("no_new_run_folder")
def test_a_json_report_into_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "report.json"
    code, output = backtest("kmp", "--from", "2026-02-04", "--to", "2026-02-04", "--json-report", str(target))
    assert code == 2 and "does not exist" in output and not target.exists(), output
