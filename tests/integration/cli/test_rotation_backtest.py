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


def test_an_accounts_mix_with_its_budgets(runs: Path, tmp_path: Path) -> None:
    """``--account``: the account's models and M6 budgets from accounts.yaml (no credentials needed), each model
    alone and the whole mix; the mix's result differs from an equal split when the budgets differ."""
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        "  growth:\n"
        "    broker: alpaca\n    key_env: NOT_SET_KEY\n    secret_env: NOT_SET_SECRET\n    oms_port: 8111\n"
        "    strategies: [rotation_core, rotation_bear]\n    budgets: {rotation_core: 0.8}\n"
    )
    out = tmp_path / "report.json"
    args = ["backtest", "--account", "growth", "--accounts-file", str(accounts), "--from", "2018-01-02"]
    result = CliRunner().invoke(app, [*args, "--to", "2022-12-30", "--json-report", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["account"] == "growth" and report["budgets"] == pytest.approx(
        {"rotation_core": 0.8, "rotation_bear": 0.2}
    )
    rows = {r["run"]: r for r in report["results"]}
    assert set(rows) == {"rotation_core", "rotation_bear", "growth (mix)", "SPY"}, rows
    equal = CliRunner().invoke(
        app, ["backtest", "rotation_core", "rotation_bear", "--from", "2018-01-02", "--to", "2022-12-30"]
    )
    assert equal.exit_code == 0, equal.output
    equal_path = next(runs.glob("backtest-rotation-rotation_core+rotation_bear-*/report.json"))
    equal_report = json.loads(equal_path.read_text())
    equal_mix = {r["run"]: r for r in equal_report["results"]}["rotation_core+rotation_bear"]
    assert equal_report["budgets"] == pytest.approx({"rotation_core": 0.5, "rotation_bear": 0.5})
    assert rows["growth (mix)"]["final"] != pytest.approx(equal_mix["final"], rel=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rotation_core", "--budgets", "rotation_bull=0.5"], "not one of the models backtested"),
        (["rotation_core", "rotation_bull", "--budgets", "rotation_core=0.9,rotation_bull=0.3"], "more than 1"),
        (["rotation_core", "--budgets", "rotation_core=half"], "not a number"),
        (["--account", "nobody"], "not an account of config/accounts.yaml"),
        (["rotation_core", "--account", "paper-main"], "not both"),
        (["kmp", "--budgets", "kmp=0.5"], "only for the sector-rotation models"),
    ],
)
def test_bad_budgets_or_account_is_one_clear_error(runs: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", *args, "--from", "2018-01-02", "--to", "2018-12-31"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not runs.exists(), "nothing half-written"
