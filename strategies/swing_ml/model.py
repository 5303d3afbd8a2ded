"""S3.3 quant model and S5 model lifecycle.

Classifier: scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (gradient-boosted
trees, as S3.3 asks). Chosen over xgboost because it needs no extra native dependency (scikit-learn
is already a wheel with its own OpenMP runtime), it is fast on CPU (features are binned into ≤ 255
buckets, so a fit on ~50k rows × 13 features takes seconds — the weekly retrain is CPU-only), and it
handles NaN natively (a factor still warming up, e.g. the 120-day return of a stock listed 100 days
ago, needs no imputation). ``early_stopping`` is off: its validation split is random, i.e. it would
mix future rows into training.

Target (label) of row (t, symbol): 1 when the stock's 5-session forward return (adjusted close,
``C_{t+5}/C_t − 1``) is strictly greater than SPY's, else 0; undefined (row dropped) when t+5 is not
yet known. The label looks ahead by construction; the features never do, and validation keeps the
two apart:

Purged walk-forward validation (:func:`walk_forward_splits`): the sessions of the training window
are cut into ``n_splits + 1`` consecutive blocks; fold k tests on block k (k ≥ 1) and trains only on
sessions at least ``purge`` (≥ horizon) sessions before the block's first session, so no training
label (which reads t + horizon) overlaps the test block. Validation AUC = ROC AUC of all out-of-fold
probabilities pooled (per-fold AUCs are kept too). The model that is saved is then fitted on the
whole window.

Lifecycle (S5), under a ``models_dir`` (``models/swing_ml`` in production, a parameter):
``<UTC timestamp>/model.joblib`` + ``metadata.json``; ``CURRENT`` is a text file naming the promoted
version. Promotion needs AUC ≥ 0.52 and ≥ current AUC − 0.01. The 8 newest versions are kept (plus
the CURRENT one, whatever its age). :func:`load_current` refuses a model whose feature list is not
exactly :data:`~strategies.swing_ml.factors.FEATURES`, in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from strategies.swing_ml.data import BENCHMARK, Panel
from strategies.swing_ml.factors import FEATURES, MIN_NAMES, feature_matrix
from strategies.swing_ml.reasons import Reason

HORIZON = 5
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CURRENT_FILE = "CURRENT"
VERSION_FORMAT = "%Y%m%dT%H%M%SZ"
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z$")

DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 150,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 200,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


class ModelError(Exception):
    """No usable model (none promoted, unreadable files)."""


class FeatureMismatchError(ModelError):
    """S5: the saved model's feature list differs from the code's (``SWING_MODEL_FEATURE_MISMATCH``)."""

    reason = Reason.SWING_MODEL_FEATURE_MISMATCH


@dataclass(frozen=True)
class RetrainEvent:
    """Progress of :func:`retrain` / :func:`walk_forward_validate` for a display (``trader swing-ml train``).

    ``stage`` is ``dataset``, ``validate``, ``fit``, ``save``, ``promote`` or ``prune``; each stage reports
    ``done = 0`` when it starts and ``done = total`` when it ends (``validate`` also after each fold, with
    ``auc`` set and ``fold`` = (train first, train last, test first, test last)); ``detail`` is a short text."""

    stage: str
    done: int
    total: int
    detail: str = ""
    auc: float | None = None
    fold: tuple[str, str, str, str] | None = None


ProgressFn = Callable[[RetrainEvent], None]


def _no_progress(_: RetrainEvent) -> None:
    return None


# -- data set ------------------------------------------------------------------------------------


def forward_excess_label(close: pd.DataFrame, benchmark_close: pd.Series, horizon: int = HORIZON) -> pd.DataFrame:
    """1.0 where ``C_{t+h}/C_t − 1 > B_{t+h}/B_t − 1``, 0.0 where not, NaN where t+h is unknown."""
    fwd = close.shift(-horizon) / close - 1.0
    bench = (benchmark_close.shift(-horizon) / benchmark_close - 1.0).reindex(close.index)
    beats = fwd.gt(bench, axis=0).astype(float)
    return beats.where(fwd.notna() & pd.DataFrame({c: bench.notna() for c in fwd.columns}, index=fwd.index))


@dataclass(frozen=True)
class Dataset:
    x: pd.DataFrame
    """index (date, symbol), columns = FEATURES."""
    y: pd.Series
    """0/1 labels aligned with ``x``."""

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.x.index.get_level_values("date").unique()).sort_values()

    def on(self, dates: pd.DatetimeIndex) -> Dataset:
        mask = self.x.index.get_level_values("date").isin(dates)
        return Dataset(self.x[mask], self.y[mask])

    def hash(self) -> str:
        h = hashlib.sha256()
        h.update(",".join(self.x.columns).encode())
        h.update(pd.util.hash_pandas_object(self.x, index=True).to_numpy().tobytes())
        h.update(pd.util.hash_pandas_object(self.y, index=True).to_numpy().tobytes())
        return "sha256:" + h.hexdigest()


def build_dataset(
    panel: Panel,
    symbols: Sequence[str],
    sector_map: Mapping[str, str],
    start: date | pd.Timestamp,
    end: date | pd.Timestamp,
    horizon: int = HORIZON,
    benchmark: str = BENCHMARK,
) -> Dataset:
    """Labelled rows with ``start ≤ date ≤ end``; only data ≤ ``end`` is read (labels of the last
    ``horizon`` sessions are therefore unknown and those rows left out). Feature history before
    ``start`` is used for the warm-up."""
    known = panel.until(end)
    feats = feature_matrix(known, symbols, sector_map, benchmark)
    syms = sorted({str(s) for s in feats.index.get_level_values("symbol")})
    labels = forward_excess_label(known.close[syms], known.close[benchmark], horizon).stack()
    labels.index = labels.index.set_names(["date", "symbol"])
    dates = feats.index.get_level_values("date")
    feats = feats[(dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))]
    y = labels.reindex(feats.index)
    keep = y.notna().to_numpy() & feats.notna().any(axis=1).to_numpy()
    return Dataset(feats[keep], y[keep].astype(int).rename("label"))


# -- fit / predict -------------------------------------------------------------------------------


def make_classifier(hyperparameters: Mapping[str, Any] | None = None) -> HistGradientBoostingClassifier:
    params = dict(DEFAULT_HYPERPARAMETERS)
    params.update(hyperparameters or {})
    return HistGradientBoostingClassifier(**params)


def empty_features(x: pd.DataFrame) -> list[str]:
    """FEATURES without a single value in ``x`` (still warming up over the whole window): scikit-learn's
    binning cannot handle such a column."""
    return [f for f in FEATURES if f in x.columns and not bool(x[f].notna().any())]


def fit(ds: Dataset, hyperparameters: Mapping[str, Any] | None = None) -> HistGradientBoostingClassifier:
    if ds.y.nunique() < 2:
        raise ValueError("the training labels hold a single class")
    empty = empty_features(ds.x)
    if empty:
        raise ValueError(f"feature(s) without any value in the training rows: {', '.join(empty)}")
    clf = make_classifier(hyperparameters)
    clf.fit(ds.x[list(FEATURES)], ds.y.to_numpy())
    return clf


def predict_proba(clf: HistGradientBoostingClassifier, x: pd.DataFrame) -> pd.Series:
    """P(label = 1) per row of ``x`` (columns must include FEATURES; used in that order)."""
    missing = [f for f in FEATURES if f not in x.columns]
    if missing:
        raise ValueError(f"features missing: {missing}")
    if len(x) == 0:
        return pd.Series(dtype=float, name="proba")
    p = clf.predict_proba(x[list(FEATURES)])[:, list(clf.classes_).index(1)]
    return pd.Series(p, index=x.index, name="proba")


def walk_forward_splits(
    dates: Sequence[pd.Timestamp] | pd.DatetimeIndex, n_splits: int = 4, purge: int = HORIZON
) -> Iterator[tuple[pd.DatetimeIndex, pd.DatetimeIndex]]:
    """(train dates, test dates) per fold; ``dates`` are the sessions (sorted, unique). Train ⊂ the
    sessions with index < first test index − ``purge``."""
    d = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(dates))))
    if n_splits < 1 or purge < 0:
        raise ValueError("n_splits must be ≥ 1 and purge ≥ 0")
    bounds = np.linspace(0, len(d), n_splits + 2).astype(int)
    for k in range(1, n_splits + 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        train_end = lo - purge
        if train_end <= 0 or hi <= lo:
            continue
        yield d[:train_end], d[lo:hi]


@dataclass(frozen=True)
class Validation:
    auc: float
    """Pooled out-of-fold ROC AUC (NaN when undefined)."""
    fold_aucs: tuple[float, ...]
    folds: tuple[tuple[str, str, str, str], ...]
    """(train first, train last, test first, test last) per fold, ISO dates."""
    n_oof: int


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def walk_forward_validate(
    ds: Dataset,
    hyperparameters: Mapping[str, Any] | None = None,
    n_splits: int = 4,
    purge: int = HORIZON,
    progress: ProgressFn | None = None,
) -> Validation:
    if purge < HORIZON:
        raise ValueError(f"purge ({purge}) must be ≥ the label horizon ({HORIZON})")
    report = progress or _no_progress
    ys: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    aucs: list[float] = []
    folds: list[tuple[str, str, str, str]] = []
    splits = list(walk_forward_splits(ds.dates, n_splits, purge))
    report(RetrainEvent("validate", 0, len(splits)))
    for k, (train_dates, test_dates) in enumerate(splits, start=1):
        train, test = ds.on(train_dates), ds.on(test_dates)
        window: tuple[str, str, str, str] = tuple(  # type: ignore[assignment]
            str(t.date()) for t in (train_dates[0], train_dates[-1], test_dates[0], test_dates[-1])
        )
        if train.y.nunique() < 2 or len(test.y) == 0 or empty_features(train.x):
            why = "skipped (one class, no test rows or a feature without values)"
            report(RetrainEvent("validate", k, len(splits), why, None, window))
            continue
        clf = fit(train, hyperparameters)
        p = predict_proba(clf, test.x).to_numpy()
        y = test.y.to_numpy()
        ys.append(y)
        ps.append(p)
        aucs.append(_auc(y, p))
        folds.append(window)
        report(
            RetrainEvent("validate", k, len(splits), f"{len(train.y):,} train / {len(y):,} test rows", aucs[-1], window)
        )
    if not ys:
        return Validation(float("nan"), (), (), 0)
    y_all, p_all = np.concatenate(ys), np.concatenate(ps)
    return Validation(_auc(y_all, p_all), tuple(aucs), tuple(folds), len(y_all))


# -- lifecycle -----------------------------------------------------------------------------------


def code_version() -> str:
    """Hash of the sources that define features, labels and the model (this package's data,
    factors and model modules): equal sources ⇒ equal version, without git."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("data.py", "factors.py", "model.py"):
        h.update((here / name).read_bytes())
    return "src-" + h.hexdigest()[:16]


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    train_start: str
    train_end: str
    features: list[str]
    hyperparameters: dict[str, Any]
    validation_auc: float | None
    fold_aucs: list[float | None]
    data_hash: str
    code_version: str
    created_at: str
    n_samples: int
    horizon: int = HORIZON
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        raw = json.loads(text)
        return cls(**raw)


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def version_name(now: datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return now.astimezone(UTC).strftime(VERSION_FORMAT)


def save_model(
    models_dir: str | Path,
    clf: HistGradientBoostingClassifier,
    ds: Dataset,
    validation: Validation,
    hyperparameters: Mapping[str, Any] | None,
    now: datetime,
    code_ver: str | None = None,
    train_window: tuple[date, date] | None = None,
) -> ModelMetadata:
    """Write ``<models_dir>/<UTC timestamp>/`` (model + metadata.json) atomically; returns the metadata."""
    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = version_name(now)
    final = root / version
    if final.exists():
        raise FileExistsError(f"model version {final} already exists")
    params = dict(DEFAULT_HYPERPARAMETERS)
    params.update(hyperparameters or {})
    dates = ds.dates
    start, end = train_window if train_window is not None else (dates[0].date(), dates[-1].date())
    meta = ModelMetadata(
        version=version,
        train_start=start.isoformat(),
        train_end=end.isoformat(),
        features=list(FEATURES),
        hyperparameters=params,
        validation_auc=_finite(validation.auc),
        fold_aucs=[_finite(a) for a in validation.fold_aucs],
        data_hash=ds.hash(),
        code_version=code_ver if code_ver is not None else code_version(),
        created_at=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        n_samples=len(ds.y),
        extra={"validation_folds": [list(f) for f in validation.folds], "n_oof": validation.n_oof},
    )
    tmp = root / f".tmp-{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    joblib.dump(clf, tmp / MODEL_FILE)
    (tmp / METADATA_FILE).write_text(meta.to_json(), encoding="utf-8")
    os.replace(tmp, final)
    return meta


def list_versions(models_dir: str | Path) -> list[str]:
    """Saved version names, oldest first."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name))


def read_metadata(models_dir: str | Path, version: str) -> ModelMetadata:
    path = Path(models_dir) / version / METADATA_FILE
    try:
        return ModelMetadata.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable metadata ({exc})") from exc


def current_version(models_dir: str | Path) -> str | None:
    path = Path(models_dir) / CURRENT_FILE
    if not path.is_file():
        return None
    name = path.read_text(encoding="utf-8").strip()
    return name or None


def set_current(models_dir: str | Path, version: str) -> None:
    root = Path(models_dir)
    if not (root / version / MODEL_FILE).is_file():
        raise ModelError(f"{root / version} holds no {MODEL_FILE}")
    tmp = root / f".{CURRENT_FILE}.tmp-{os.getpid()}"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, root / CURRENT_FILE)


@dataclass(frozen=True)
class Promotion:
    version: str
    promoted: bool
    reason: Reason
    detail: str
    auc: float | None
    previous: str | None
    previous_auc: float | None


def promotion_allowed(
    auc: float | None, current_auc: float | None, min_auc: float = 0.52, max_drop: float = 0.01
) -> tuple[bool, str]:
    """S5: AUC ≥ ``min_auc`` and (no current model or AUC ≥ current − ``max_drop``)."""
    if auc is None or not np.isfinite(auc):
        return False, "validation AUC undefined"
    if auc < min_auc:
        return False, f"AUC {auc:.4f} < {min_auc}"
    if current_auc is not None and auc < current_auc - max_drop - 1e-12:
        return False, f"AUC {auc:.4f} < current {current_auc:.4f} − {max_drop}"
    return True, f"AUC {auc:.4f} ≥ {min_auc}" + ("" if current_auc is None else f", current {current_auc:.4f}")


def _metadata_auc(models_dir: str | Path, version: str) -> float | None:
    try:
        return read_metadata(models_dir, version).validation_auc
    except ModelError:
        return None


def promote_if_better(models_dir: str | Path, version: str, min_auc: float = 0.52, max_drop: float = 0.01) -> Promotion:
    meta = read_metadata(models_dir, version)
    prev = current_version(models_dir)
    prev_auc: float | None = None
    if prev is not None and prev != version:
        prev_auc = _metadata_auc(models_dir, prev)
    ok, why = promotion_allowed(meta.validation_auc, prev_auc, min_auc, max_drop)
    if ok:
        set_current(models_dir, version)
    reason = Reason.SWING_MODEL_PROMOTED if ok else Reason.SWING_MODEL_NOT_PROMOTED
    return Promotion(version, ok, reason, why, meta.validation_auc, prev, prev_auc)


def prune_versions(models_dir: str | Path, keep: int = 8) -> list[str]:
    """Delete all but the ``keep`` newest versions; the CURRENT one is never deleted. Returns the
    deleted names."""
    versions = list_versions(models_dir)
    current = current_version(models_dir)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != current]
    for v in doomed:
        shutil.rmtree(Path(models_dir) / v)
    return doomed


@dataclass(frozen=True)
class LoadedModel:
    version: str
    classifier: HistGradientBoostingClassifier
    metadata: ModelMetadata

    def predict_proba(self, x: pd.DataFrame) -> pd.Series:
        return predict_proba(self.classifier, x)


def load_model(models_dir: str | Path, version: str, expected_features: Sequence[str] = FEATURES) -> LoadedModel:
    """Load one version; :class:`FeatureMismatchError` when its ordered feature list differs."""
    meta = read_metadata(models_dir, version)
    if list(meta.features) != list(expected_features):
        raise FeatureMismatchError(
            f"{Path(models_dir) / version}: model features {meta.features} != code features {list(expected_features)}"
        )
    path = Path(models_dir) / version / MODEL_FILE
    try:
        clf = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means no usable model
        raise ModelError(f"{path}: cannot load ({exc})") from exc
    names = [str(n) for n in getattr(clf, "feature_names_in_", [])]
    if names and names != list(expected_features):
        raise FeatureMismatchError(f"{path}: fitted on {names}, code features {list(expected_features)}")
    return LoadedModel(version, clf, meta)


def load_current(models_dir: str | Path, expected_features: Sequence[str] = FEATURES) -> LoadedModel:
    version = current_version(models_dir)
    if version is None:
        raise ModelError(f"{Path(models_dir) / CURRENT_FILE}: no promoted model")
    return load_model(models_dir, version, expected_features)


# -- retrain job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainReport:
    metadata: ModelMetadata
    validation: Validation
    promotion: Promotion
    pruned: list[str]
    fit_seconds: float


def train_window(last_day: date | pd.Timestamp, months: int = 18) -> tuple[date, date]:
    end = pd.Timestamp(last_day)
    return (end - pd.DateOffset(months=months)).date(), end.date()


def retrain(
    panel: Panel,
    symbols: Sequence[str],
    sector_map: Mapping[str, str],
    models_dir: str | Path,
    now: datetime,
    *,
    train_months: int = 18,
    hyperparameters: Mapping[str, Any] | None = None,
    n_splits: int = 4,
    purge: int = HORIZON,
    min_auc: float = 0.52,
    max_drop: float = 0.01,
    keep: int = 8,
    code_ver: str | None = None,
    as_of: date | pd.Timestamp | None = None,
    promote: bool = True,
    progress: ProgressFn | None = None,
    n_threads: int | None = 1,
) -> RetrainReport:
    """S5 weekly job: the last ``train_months`` of the panel (≤ ``as_of``, default ``now``'s date), purged
    walk-forward validation, fit on the whole window, save as version ``now`` (the next free second when that
    second's version exists), promote if allowed (and ``promote``), prune. ``progress`` receives a
    :class:`RetrainEvent` per stage and fold. Raises ValueError, with nothing written, when the window holds
    no usable rows.

    ``n_threads`` caps the OpenMP threads of the gradient boosting during the job (None: the library's
    default, one per core). 1 by default: on the 2-core hosts, which also run the OMS and the strategies,
    two spinning OpenMP threads lose most of their time waiting for each other (measured on a loaded
    2-core machine: the full retrain took 55 s with 2 threads, 3.8 s with 1; idle, 2.3 s with 2)."""
    limits: AbstractContextManager[object] = (
        threadpool_limits(limits=n_threads, user_api="openmp") if n_threads is not None else nullcontext()
    )
    while (Path(models_dir) / version_name(now)).exists():
        now += timedelta(seconds=1)
    with limits:
        return _retrain(
            panel,
            symbols,
            sector_map,
            models_dir,
            now,
            train_months=train_months,
            hyperparameters=hyperparameters,
            n_splits=n_splits,
            purge=purge,
            min_auc=min_auc,
            max_drop=max_drop,
            keep=keep,
            code_ver=code_ver,
            as_of=as_of,
            promote=promote,
            progress=progress,
        )


def _retrain(
    panel: Panel,
    symbols: Sequence[str],
    sector_map: Mapping[str, str],
    models_dir: str | Path,
    now: datetime,
    *,
    train_months: int,
    hyperparameters: Mapping[str, Any] | None,
    n_splits: int,
    purge: int,
    min_auc: float,
    max_drop: float,
    keep: int,
    code_ver: str | None,
    as_of: date | pd.Timestamp | None,
    promote: bool,
    progress: ProgressFn | None,
) -> RetrainReport:
    report = progress or _no_progress
    t0 = time.perf_counter()
    cutoff = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(now.date())
    sessions = panel.dates[panel.dates <= cutoff]
    if len(sessions) == 0:
        raise ValueError(f"no sessions on or before {cutoff.date()}")
    start, end = train_window(sessions[-1], train_months)
    report(RetrainEvent("dataset", 0, 1, f"{start} … {end}"))
    ds = build_dataset(panel, symbols, sector_map, start, end)
    if len(ds.y) == 0 or ds.y.nunique() < 2:
        what = "no labelled rows with features" if len(ds.y) == 0 else f"{len(ds.y)} rows of a single class"
        raise ValueError(
            f"{what} in the train window {start} … {end} ({len(symbols)} symbols; "
            f"z-scores need ≥ {MIN_NAMES} names with data per day)"
        )
    empty = empty_features(ds.x)
    if empty:
        raise ValueError(
            f"feature(s) {', '.join(empty)} have no value in the train window {start} … {end}: "
            "too little price history before it"
        )
    report(RetrainEvent("dataset", 1, 1, f"{len(ds.y):,} rows, {len(ds.dates)} sessions"))
    validation = walk_forward_validate(ds, hyperparameters, n_splits, purge, progress)
    report(RetrainEvent("fit", 0, 1, f"{len(ds.y):,} rows × {len(FEATURES)} features"))
    clf = fit(ds, hyperparameters)
    fit_seconds = time.perf_counter() - t0
    report(RetrainEvent("fit", 1, 1, f"{len(ds.y):,} rows × {len(FEATURES)} features"))
    report(RetrainEvent("save", 0, 1))
    meta = save_model(models_dir, clf, ds, validation, hyperparameters, now, code_ver, (start, end))
    report(RetrainEvent("save", 1, 1, meta.version))
    if promote:
        promotion = promote_if_better(models_dir, meta.version, min_auc, max_drop)
    else:
        prev = current_version(models_dir)
        prev_auc = _metadata_auc(models_dir, prev) if prev is not None else None
        promotion = Promotion(
            meta.version,
            False,
            Reason.SWING_MODEL_NOT_PROMOTED,
            "promotion not requested",
            meta.validation_auc,
            prev,
            prev_auc,
        )
    report(RetrainEvent("promote", 1, 1, promotion.detail))
    pruned = prune_versions(models_dir, keep)
    report(RetrainEvent("prune", 1, 1, f"{len(pruned)} deleted"))
    return RetrainReport(meta, validation, promotion, pruned, fit_seconds)
