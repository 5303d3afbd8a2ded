"""``trader backtest swing_ml --from D --to D`` (trader/backtest/swing_ml.py, called directly: the lead wires the
CLI): a short real window on 15 stocks with a retrain every 10 sessions → exit 0, a run folder with
report.json / report.html / equity.png, one AUC row per retrain; bad input exits 2 with one clear message and
writes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from trader.backtest.swing_ml import swing_ml_backtest_command

UNIVERSE = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "COP", "UNH", "HD", "KO", "PFE", "CVX", "BA", "F"]


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRADER_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _console() -> Console:
    return Console(record=True, width=180, force_terminal=False)


def test_a_short_window_with_a_retrain_every_ten_sessions(runs: Path, tmp_path: Path) -> None:
    console = _console()
    out = tmp_path / "report.json"
    rc = swing_ml_backtest_command(
        console, start="2024-06-03", end="2024-08-30", json_report=str(out), retrain_every=10, universe=UNIVERSE
    )
    text = console.export_text()
    assert rc == 0, text
    report = json.loads(out.read_text())
    assert report["from"] == "2024-06-03" and report["to"] == "2024-08-30" and report["sessions"] == 63
    assert report["universe"] == UNIVERSE and report["strategies"] == ["swing_ml"]
    rows = {r["run"]: r for r in report["results"]}
    assert set(rows) == {"swing_ml", "swing_ml_no_gate", "SPY"}
    spy = rows["SPY"]
    assert spy["total_return"] == pytest.approx(report["equity"][-1]["SPY"] / 100_000 - 1, abs=1e-6)
    for name in ("swing_ml", "swing_ml_no_gate"):
        r = rows[name]
        for key in ("cagr", "max_drawdown", "sharpe", "trades", "hit_rate", "avg_trade_return", "exposure"):
            assert key in r, (name, key)
        assert set(r["exits_by_reason"]) == {
            "SWING_TAKE_PROFIT",
            "SWING_STOP",
            "SWING_TRAIL",
            "SWING_MAX_HOLD",
            "SWING_SELL_SCORE",
        }
        assert sum(r["exits_by_reason"].values()) == r["trades"] == len(report["trades"][name])
        assert 0 <= r["max_drawdown"] < 1 and 0 <= r["exposure"] <= 1
        wins = sum(t["return"] > 0 for t in report["trades"][name])
        assert r["hit_rate"] == (pytest.approx(wins / r["trades"], abs=1e-4) if r["trades"] else None)
    assert rows["swing_ml_no_gate"]["trades"] > 10
    retrains = report["retrains"]
    assert len(retrains) == math.ceil(63 / 10) == report["auc_summary"]["retrains"]
    days = [e["date"] for e in report["equity"]][1:]
    assert [r["session"] for r in retrains] == days[::10]
    for r in retrains:
        assert r["data_through"] < r["session"] and r["auc"] is not None and len(r["fold_aucs"]) == 4
        assert r["promoted"] == (r["model_in_use"] == r["session"]), r
        assert 0 < r["seconds"] < 60
    assert report["simulation"] and any("No look-ahead" in line for line in report["simulation"])
    run_dir = Path(report["run_dir"])
    assert run_dir.parent == runs
    assert {"report.json", "report.html", "equity.png"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "report.json").read_text())["results"] == report["results"]
    page = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in page and "AUC per retrain" in page and "What is simulated" in page
    assert "AUC per retrain: 7 retrains" in text and "SPY buy & hold" in text and "SWING_STOP" in text


@pytest.mark.parametrize(
    ("start", "end", "extra", "message"),
    [
        ("2024-08-30", "2024-06-03", {}, "--from 2024-08-30 is after --to 2024-06-03"),
        ("2010-01-04", "2024-06-03", {}, "the US daily data covers 2015-01-02 … 2024-12-31"),
        ("2024-06-03", "2025-03-31", {}, "the US daily data covers 2015-01-02 … 2024-12-31"),
        ("2022-06-01", "2022-12-30", {}, "too little history before it"),
        ("2024-06-31", "2024-08-30", {}, "--from '2024-06-31': not a date"),
        ("2024-06-03", "2024-08-30", {"universe": ["AAPL", "XOM", "MSFT"]}, "XOM not among the"),
        ("2024-06-03", "2024-08-30", {"universe": ["AAPL", "MSFT", "NVDA"]}, "need at least 5"),
        ("2024-06-03", "2024-08-30", {"retrain_every": 0}, "--retrain-every 0"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    runs: Path, tmp_path: Path, start: str, end: str, extra: dict[str, object], message: str
) -> None:
    console = _console()
    out = tmp_path / "report.json"
    rc = swing_ml_backtest_command(console, start=start, end=end, json_report=str(out), **extra)  # type: ignore[arg-type]
    text = console.export_text()
    assert rc == 2 and message in " ".join(text.split()), text
    assert not runs.exists() and not out.exists(), "nothing half-written"


def test_the_earliest_start_is_named(runs: Path) -> None:
    console = _console()
    rc = swing_ml_backtest_command(console, start="2023-03-13", end="2023-04-28")
    text = " ".join(console.export_text().split())
    assert rc == 2 and "the earliest --from for this universe is 2023-03-14" in text, text
    assert not runs.exists()
