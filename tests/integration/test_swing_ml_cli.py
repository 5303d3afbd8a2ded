"""``trader swing-ml train|models|promote`` (strategies.md S5) on the real US daily data (../shared/data/us or
$TRADER_US_DATA_DIR; fails, never skips), through typer's CliRunner.

A config written into tmp_path narrows the universe to 10 large caps (every one has bars from 2022-03-22) so a
train takes about a second; the models go to tmp_path. Nothing of ours is mocked: the commands load the parquet
file, build the dataset, validate, fit and write the version folders for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from broker_core.paper.us_data import UsDataNotFound, resolve_us_data_dir
from strategies.swing_ml.factors import FEATURES
from strategies.swing_ml.model import (
    CURRENT_FILE,
    METADATA_FILE,
    MODEL_FILE,
    code_version,
    current_version,
    list_versions,
)
from trader.swing_ml_cli import app

SYMBOLS = ("AAPL", "MSFT", "NVDA", "JPM", "KO", "CVX", "UNH", "HD", "CAT", "NEE")


@pytest.fixture(scope="module")
def data_dir() -> Path:
    try:
        return resolve_us_data_dir()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for these tests: {exc}")


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _config(tmp_path: Path, name: str = "swing_ml.yaml", model: str = "") -> Path:
    path = tmp_path / name
    path.write_text(
        f"mode: dry_run\nuniverse:\n  symbols: [{', '.join(SYMBOLS)}]\n" + (f"model:\n{model}" if model else ""),
        encoding="utf-8",
    )
    return path


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _train(models: Path, config: Path, *extra: str | Path) -> Result:
    return _invoke("train", "--models-dir", models, "--config", config, *extra)


def _tamper_features(models: Path, version: str) -> None:
    path = models / version / METADATA_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["features"] = [*meta["features"][1:], meta["features"][0]]  # same names, another order
    path.write_text(json.dumps(meta), encoding="utf-8")


def test_train_writes_a_version_that_models_lists(tmp_path: Path, data_dir: Path) -> None:
    models = tmp_path / "models"
    config = _config(tmp_path, model="  promote_min_auc: 0.0\n")  # any AUC passes: this train promotes
    result = _train(models, config, "--data-dir", data_dir, "--as-of", "2024-11-29")
    assert result.exit_code == 0, result.output
    (version,) = list_versions(models)
    folder = models / version
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, METADATA_FILE}
    meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    assert meta["version"] == version
    assert meta["features"] == list(FEATURES), "the code's ordered feature list"
    assert (meta["train_start"], meta["train_end"]) == ("2023-05-29", "2024-11-29")
    assert meta["hyperparameters"]["max_iter"] == 150 and meta["code_version"] == code_version()
    assert meta["data_hash"].startswith("sha256:") and meta["n_samples"] > 1000
    assert len(meta["fold_aucs"]) == 4 and 0.0 <= meta["validation_auc"] <= 1.0
    assert current_version(models) == version
    out = result.output
    for text in ("load data", "build dataset", "fold 1/4", "fold 4/4", "fit", "save", version):
        assert text in out, (text, out)
    assert "2023-05-29 … 2024-11-29" in out and "mean" in out and "promoted" in out and "yes" in out

    listed = _invoke("models", "--models-dir", models, "--config", config)
    assert listed.exit_code == 0, listed.output
    assert f"● {version}" in listed.output  # the train window may wrap in an 80-column terminal
    assert "2023-05-29" in listed.output and "2024-11-29" in listed.output
    assert f"{meta['validation_auc']:.4f}" in listed.output
    assert meta["data_hash"].split(":")[1][:8] in listed.output and f"CURRENT: {version}" in listed.output


def test_promote_applies_the_rule_and_force_skips_only_the_auc_rule(tmp_path: Path) -> None:
    models = tmp_path / "models"
    strict = _config(tmp_path, "strict.yaml", model="  promote_min_auc: 0.99\n")
    trained = _train(models, strict)  # promotion rule applies and refuses (AUC < 0.99)
    assert trained.exit_code == 0, trained.output
    assert "no — AUC" in trained.output and "CURRENT stays (none)" in trained.output
    (version,) = list_versions(models)

    refused = _invoke("promote", version, "--models-dir", models, "--config", strict)
    assert refused.exit_code == 1 and "not promoted" in refused.output and "< 0.99" in refused.output, refused.output
    assert current_version(models) is None

    forced = _invoke("promote", version, "--models-dir", models, "--config", strict, "--force")
    assert forced.exit_code == 0, forced.output
    assert current_version(models) == version and "forced past the AUC rule" in forced.output

    again = _invoke("promote", version, "--models-dir", models, "--config", strict)
    assert again.exit_code == 0 and "already CURRENT" in again.output


def test_promote_refuses_a_model_whose_feature_list_differs(tmp_path: Path) -> None:
    models = tmp_path / "models"
    config = _config(tmp_path, model="  promote_min_auc: 0.0\n")
    assert _train(models, config, "--no-promote").exit_code == 0
    (version,) = list_versions(models)
    _tamper_features(models, version)
    for extra in ((), ("--force",)):  # --force never skips the feature check
        result = _invoke("promote", version, "--models-dir", models, "--config", config, *extra)
        assert result.exit_code == 2, result.output
        assert "feature list that differs from the code's" in result.output and version in result.output
    assert not (models / CURRENT_FILE).exists()
    listed = _invoke("models", "--models-dir", models, "--config", config)
    assert listed.exit_code == 0 and "DIFFER" in listed.output, listed.output


def test_unknown_version_is_one_clear_error(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = _invoke("promote", "20240101T000000Z", "--models-dir", models, "--config", _config(tmp_path))
    assert result.exit_code == 2, result.output
    assert "unknown model version '20240101T000000Z'" in result.output and str(models) in result.output
    assert not models.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--as-of", "2025-03-03"],
            "--as-of 2025-03-03 is outside the data: the universe's daily bars cover 2022-03-22",
        ),
        (["--as-of", "2019-06-03"], "is outside the data"),
        (["--as-of", "2024-02-30"], "--as-of '2024-02-30' is not a date"),
        (["--as-of", "2022-06-01"], "have no value in the train window"),
        (["--data-dir", "{tmp}/no-such-dir"], "US data directory not found"),
        (["--data-dir", "{tmp}"], "daily_ohlcv.parquet is missing"),
        (["--config", "{tmp}/missing.yaml"], "configuration file not found"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    models = tmp_path / "models"
    config = _config(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--config" not in argv:
        argv += ["--config", str(config)]
    result = _invoke("train", "--models-dir", models, *argv)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert not models.exists(), "nothing half-written"


def test_a_symbol_missing_from_the_data_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mode: dry_run\nuniverse:\n  symbols: [AAPL, ZZZZ]\n  sector_map: {AAPL: XLK, ZZZZ: XLK}\n")
    result = _invoke("train", "--models-dir", tmp_path / "models", "--config", config)
    assert result.exit_code == 2 and "has no bars for ZZZZ" in result.output, result.output


def test_retraining_keeps_the_eight_newest_versions(tmp_path: Path) -> None:
    """Nine real trains: the ninth deletes the first (no CURRENT here: --no-promote). A lighter job (6 months,
    2 folds, 30 trees) keeps the nine under 20 s on a busy machine."""
    models = tmp_path / "models"
    light = "  train_months: 6\n  n_splits: 2\n  hyperparameters: {max_iter: 30, min_samples_leaf: 50}\n"
    config = _config(tmp_path, model=light)
    made: list[str] = []
    for _ in range(9):
        result = _train(models, config, "--no-promote", "--as-of", "2024-06-28")
        assert result.exit_code == 0, result.output
        made.append(max(list_versions(models)))
    assert list_versions(models) == made[1:]
    pruned = [line for line in result.output.splitlines() if line.startswith("pruned")]
    assert pruned and pruned[0].split() == ["pruned", made[0]], result.output
    assert not (models / made[0]).exists() and current_version(models) is None
