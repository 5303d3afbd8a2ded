"""``trader backtest rotation_core --from 2016-01-04 --to 2024-12-31``: the model against SPY on the US daily
data, a run folder with report.json / report.html / equity.png; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trader.cli import app


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRADER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "160")
    return tmp_path / "runs"


def test_rotation_core_over_nine_years_against_spy(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["backtest", "rotation_core", "--from", "2016-01-04", "--to", "2024-12-31", "--json-report", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    core, spy = report["results"]
    assert core["run"] == "rotation_core" and spy["run"] == "SPY"
    assert core["min_rebalance_gap_days"] >= 7 and core["rebalances"] <= (9 * 365) // 7 + 1, core
    assert core["cagr"] > 0 and 0 < core["max_drawdown"] < 1 and spy["cagr"] > 0, report
    run_dir = Path(report["run_dir"])
    assert {"report.json", "report.html", "equity.png"} <= {p.name for p in run_dir.iterdir()}
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    assert "rotation_core" in result.output and "SPY" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2024-12-31", "--to", "2016-01-04"], "is after --to"),
        (["--from", "2010-01-04", "--to", "2016-01-04"], "the US daily data covers"),
        (["--from", "2016-13-01", "--to", "2017-01-04"], "not a date"),
    ],
)
def test_bad_input_is_one_clear_error(runs: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "rotation_core", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not runs.exists(), "nothing half-written"
