"""S3.3 label / purged walk-forward, S5 lifecycle (save, promote, keep 8, refuse other features), and a
walk-forward fit on the real data (prints the validation AUC; does not assert a high one)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from strategies.swing_ml.factors import FEATURES
from strategies.swing_ml.model import (
    CURRENT_FILE,
    METADATA_FILE,
    Dataset,
    FeatureMismatchError,
    ModelError,
    Validation,
    build_dataset,
    current_version,
    fit,
    forward_excess_label,
    list_versions,
    load_current,
    load_model,
    predict_proba,
    promote_if_better,
    promotion_allowed,
    prune_versions,
    retrain,
    save_model,
    walk_forward_splits,
    walk_forward_validate,
)
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.universe import DEFAULT_UNIVERSE

T0 = datetime(2025, 1, 5, 17, 0, tzinfo=UTC)
FAST = {"max_iter": 10, "min_samples_leaf": 20}


def test_label_by_hand():
    idx = pd.bdate_range("2024-01-01", periods=7)
    spy = pd.Series([100, 100, 100, 100, 100, 105, 101], index=idx, dtype=float)  # +5% then +1% over 5 days
    close = pd.DataFrame({"A": [10, 10, 10, 10, 10, 10.6, 10.0], "B": [10, 10, 10, 10, 10, 10.4, 10.2]}, index=idx)
    y = forward_excess_label(close, spy, 5)
    assert y.loc[idx[0]].tolist() == [1.0, 0.0]  # A +6% > SPY +5%; B +4% < 5%
    assert y.loc[idx[1]].tolist() == [0.0, 1.0]  # A 0% < +1%; B +2% > 1%
    assert y.iloc[2:].isna().all().all()  # t+5 unknown


def test_label_reads_only_t_and_t_plus_5():
    idx = pd.bdate_range("2024-01-01", periods=30)
    rng = np.random.default_rng(3)
    close = pd.DataFrame(rng.uniform(90, 110, (30, 4)), index=idx, columns=list("ABCD"))
    spy = pd.Series(rng.uniform(90, 110, 30), index=idx)
    base = forward_excess_label(close, spy, 5)
    t = 10
    altered = close.copy()
    altered.iloc[t + 6 :] *= 3.0  # after t+5
    altered.iloc[t + 1 : t + 5] *= 0.2  # strictly between t and t+5
    pd.testing.assert_series_equal(base.iloc[t], forward_excess_label(altered, spy, 5).iloc[t])


def test_walk_forward_purges_labels_out_of_the_test_window():
    dates = pd.bdate_range("2023-01-02", periods=300)
    folds = list(walk_forward_splits(dates, n_splits=4, purge=5))
    assert len(folds) == 4
    pos = {d: i for i, d in enumerate(dates)}
    for train, test in folds:
        assert pos[train[-1]] + 5 < pos[test[0]]  # the last training label (t+5) ends before the test block
        assert pos[test[0]] - pos[train[-1]] == 6
        assert train[0] == dates[0]  # expanding window
    tests = [t for _, t in folds]
    assert all(a[-1] < b[0] for a, b in zip(tests, tests[1:], strict=False))
    with pytest.raises(ValueError, match="purge"):
        walk_forward_validate(_synthetic(), FAST, purge=4)


def _synthetic(n_dates: int = 60, n_syms: int = 20, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=n_dates)
    idx = pd.MultiIndex.from_product([dates, [f"S{i}" for i in range(n_syms)]], names=["date", "symbol"])
    x = pd.DataFrame(rng.normal(size=(len(idx), len(FEATURES))), index=idx, columns=list(FEATURES))
    x.iloc[::7, 3] = np.nan  # NaN is handled natively
    y = pd.Series((x["ret_5"] + rng.normal(0, 1, len(idx)) > 0).astype(int), index=idx, name="label")
    return Dataset(x, y)


def _save(root, auc: float | None, when: datetime, ds: Dataset | None = None):
    data = ds if ds is not None else _synthetic()
    clf = fit(data, FAST)
    val = Validation(float("nan") if auc is None else auc, (), (), 0)
    return save_model(root, clf, data, val, FAST, when, code_ver="test")


def test_save_writes_model_and_metadata(tmp_path):
    ds = _synthetic()
    meta = _save(tmp_path, 0.55, T0, ds)
    assert meta.version == "20250105T170000Z"
    folder = tmp_path / meta.version
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.joblib"]
    raw = json.loads((folder / METADATA_FILE).read_text())
    for key in (
        "train_start",
        "train_end",
        "features",
        "hyperparameters",
        "validation_auc",
        "data_hash",
        "code_version",
        "created_at",
    ):
        assert key in raw
    assert raw["features"] == list(FEATURES)
    assert raw["hyperparameters"]["max_iter"] == 10 and raw["validation_auc"] == 0.55
    assert raw["train_start"] == "2024-01-01" and raw["created_at"] == "2025-01-05T17:00:00Z"
    assert raw["data_hash"] == ds.hash() and raw["data_hash"].startswith("sha256:")
    assert current_version(tmp_path) is None  # saving does not promote
    with pytest.raises(FileExistsError):
        _save(tmp_path, 0.55, T0, ds)


def test_promotion_rules(tmp_path):
    assert promotion_allowed(0.52, None) == (True, "AUC 0.5200 ≥ 0.52")
    assert not promotion_allowed(0.519, None)[0]
    assert promotion_allowed(0.55, 0.56)[0]  # exactly current − 0.01 (0.56 − 0.01 is 0.55000000000000004 in floats)
    assert not promotion_allowed(0.549, 0.56)[0]
    assert not promotion_allowed(None, None)[0]

    v1 = _save(tmp_path, 0.51, T0).version
    p1 = promote_if_better(tmp_path, v1)
    assert not p1.promoted and p1.reason is Reason.SWING_MODEL_NOT_PROMOTED and current_version(tmp_path) is None
    v2 = _save(tmp_path, 0.56, T0 + timedelta(days=7)).version
    assert promote_if_better(tmp_path, v2).promoted and current_version(tmp_path) == v2
    v3 = _save(tmp_path, 0.548, T0 + timedelta(days=14)).version
    p3 = promote_if_better(tmp_path, v3)
    assert not p3.promoted and p3.previous == v2 and p3.previous_auc == 0.56 and current_version(tmp_path) == v2
    v4 = _save(tmp_path, 0.551, T0 + timedelta(days=21)).version
    p4 = promote_if_better(tmp_path, v4)
    assert p4.promoted and p4.reason is Reason.SWING_MODEL_PROMOTED
    assert (tmp_path / CURRENT_FILE).read_text().strip() == v4
    loaded = load_current(tmp_path)
    assert loaded.version == v4
    x = _synthetic(seed=9).x.iloc[:50]
    p = loaded.predict_proba(x)
    assert len(p) == 50 and ((p >= 0) & (p <= 1)).all()


def test_keeps_eight_versions_and_never_the_current(tmp_path):
    ds = _synthetic(n_dates=20, n_syms=10)
    versions = [_save(tmp_path, 0.53, T0 + timedelta(days=7 * i), ds).version for i in range(11)]
    promote_if_better(tmp_path, versions[1])  # an old version is CURRENT
    deleted = prune_versions(tmp_path, keep=8)
    assert deleted == [versions[0], versions[2]]
    assert list_versions(tmp_path) == [versions[1], *versions[3:]]
    assert load_current(tmp_path).version == versions[1]


def test_refuses_a_model_with_other_features(tmp_path):
    meta = _save(tmp_path, 0.6, T0)
    promote_if_better(tmp_path, meta.version)
    with pytest.raises(FeatureMismatchError) as err:
        load_current(tmp_path, expected_features=[*FEATURES[1:], FEATURES[0]])
    assert err.value.reason is Reason.SWING_MODEL_FEATURE_MISMATCH
    path = tmp_path / meta.version / METADATA_FILE
    raw = json.loads(path.read_text())
    raw["features"] = [*raw["features"], "new_factor"]
    path.write_text(json.dumps(raw))
    with pytest.raises(FeatureMismatchError):
        load_model(tmp_path, meta.version)
    with pytest.raises(ModelError):
        load_current(tmp_path / "empty")


def test_walk_forward_on_real_data(panel, sector_map, tmp_path):
    """The pipeline on the reference data: 97 stocks, features + labels 2023-01 … 2024-12, purged walk-
    forward (4 folds), a retrain job into tmp_path. Prints the AUC and the times."""
    with threadpool_limits(limits=1, user_api="openmp"):  # as the strategy fits: two threads crawl on a busy 2-core
        _walk_forward_on_real_data(panel, sector_map, tmp_path)


def _walk_forward_on_real_data(panel, sector_map, tmp_path):
    syms = list(DEFAULT_UNIVERSE)
    t0 = time.perf_counter()
    ds = build_dataset(panel, syms, sector_map, "2023-01-01", "2024-12-31")
    t_build = time.perf_counter() - t0
    assert list(ds.x.columns) == list(FEATURES) and set(ds.y.unique()) == {0, 1}
    assert ds.dates[-1] <= pd.Timestamp("2024-12-23")  # the last 5 sessions have no label yet
    t0 = time.perf_counter()
    val = walk_forward_validate(ds)
    t_wf = time.perf_counter() - t0
    assert 0.0 <= val.auc <= 1.0 and len(val.fold_aucs) == 4
    t0 = time.perf_counter()
    report = retrain(panel, syms, sector_map, tmp_path, datetime(2025, 1, 5, 17, tzinfo=UTC))
    t_retrain = time.perf_counter() - t0
    meta = report.metadata
    assert meta.train_start == "2023-06-30" and meta.train_end == "2024-12-31" and meta.features == list(FEATURES)
    assert meta.validation_auc is not None and 0.0 <= meta.validation_auc <= 1.0
    assert report.promotion.promoted == (meta.validation_auc >= 0.52)
    today = build_dataset(panel, syms, sector_map, "2024-12-16", "2024-12-31")  # rows with labels
    assert len(predict_proba(fit(ds), today.x)) == len(today.x)
    print(
        f"\nwalk-forward 2023-01..2024-12: {len(ds.y)} rows, pooled OOS AUC {val.auc:.4f}, "
        f"folds {[round(a, 4) for a in val.fold_aucs]}, build {t_build:.1f}s, 4 folds {t_wf:.1f}s"
        f"\nretrain (18 months to 2024-12-31): {meta.n_samples} rows, AUC {meta.validation_auc:.4f}, "
        f"folds {[None if a is None else round(a, 4) for a in meta.fold_aucs]}, job {t_retrain:.1f}s, "
        f"promoted={report.promotion.promoted} ({report.promotion.detail})"
    )
