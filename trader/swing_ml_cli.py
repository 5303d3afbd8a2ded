"""``trader swing-ml``: the swing-ML model lifecycle (strategies.md §5.3, S5).

==========  ==========================================================================================
command     what it does
==========  ==========================================================================================
train       daily bars of the universe from the US data → purged walk-forward validation → fit on the
            whole 18-month window → ``<models dir>/<UTC timestamp>/`` (model.joblib + metadata.json) →
            promotion rule (AUC ≥ 0.52 and ≥ CURRENT − 0.01) → keep the 8 newest versions (+ CURRENT)
models      every saved version: train window, AUC, data hash, code version, created; CURRENT marked
promote     the promotion rule for one version, then CURRENT → it; a version whose ordered feature list
            differs from the code's is always refused (``--force`` skips the AUC rule only)
==========  ==========================================================================================

Where things are:

* configuration: ``--config PATH``, else ``config/swing_ml.yaml`` (``$TRADER_CONFIG_DIR``) when it exists,
  else the shipped defaults (:data:`strategies.swing_ml.config.DEFAULT_CONFIG_YAML`). The universe, the
  train window, the folds and the promotion thresholds come from it.
* models: ``--models-dir``, else the config's ``model.models_dir`` (``models/swing_ml``; a relative path is
  relative to the project root, as the config documents).
* data: ``--data-dir``, else ``$TRADER_US_DATA_DIR``, else ``../shared/data/us``
  (:func:`broker_core.paper.us_data.resolve_us_data_dir`).

Bad input (unknown version, missing data, ``--as-of`` outside the data, an invalid config) is one line on
stderr and exit 2, with nothing written. ``promote`` refused by the AUC rule exits 1 (no change).
The heavy imports (pandas, scikit-learn) happen inside the commands so that ``trader --help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from broker_core.paper.us_data import UsData
    from strategies.swing_ml.config import SwingMlConfig
    from strategies.swing_ml.data import Panel
    from strategies.swing_ml.model import ModelMetadata, RetrainEvent, RetrainReport

app = typer.Typer(
    name="swing-ml",
    help="swing-ML model lifecycle (strategies.md S5): train, list and promote model versions.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DATA_DIR_HELP = "US data directory (default TRADER_US_DATA_DIR or ../shared/data/us)"
MODELS_DIR_HELP = "Model versions directory (default: the config's model.models_dir, models/swing_ml)"
CONFIG_HELP = "swing-ML config YAML (default config/swing_ml.yaml if present, else the built-in defaults)"


class SwingMlInputError(ValueError):
    """Bad input for a ``trader swing-ml`` command; the message is the one line printed."""


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


# -- shared helpers (also used by bench/swing_ml_retrain.py) --------------------------------------


def default_config() -> SwingMlConfig:
    """The shipped defaults (:data:`~strategies.swing_ml.config.DEFAULT_CONFIG_YAML`, mode dry_run): the 97-name
    universe, 18 months, 4 folds, AUC ≥ 0.52, keep 8."""
    import yaml

    from strategies.swing_ml.config import DEFAULT_CONFIG_YAML, SwingMlConfig

    return SwingMlConfig.model_validate(yaml.safe_load(DEFAULT_CONFIG_YAML))


def load_config(path: Path | None) -> SwingMlConfig:
    """``path``, else ``config/swing_ml.yaml`` when it exists, else :func:`default_config`.
    Raises :class:`~broker_core.config_errors.ConfigError` naming the file and key."""
    from strategies.sdk.config import config_path
    from strategies.swing_ml.config import CONFIG_NAME, load_swing_ml_config

    if path is not None:
        return load_swing_ml_config(path)
    default = config_path(CONFIG_NAME)
    if default.is_file():
        return load_swing_ml_config(default)
    return default_config()


def resolve_models_dir(explicit: Path | None, cfg: SwingMlConfig) -> Path:
    """``explicit``, else ``SWING_ML_MODELS_DIR``, else the config's ``model.models_dir`` (relative → under the
    project root): :func:`strategies.swing_ml.config.models_path`, as the strategy reads it."""
    from strategies.swing_ml.config import models_path

    path = explicit if explicit is not None else models_path(cfg)
    if path.exists() and not path.is_dir():
        raise SwingMlInputError(f"models dir {path} exists and is not a directory")
    return path


@dataclass(frozen=True)
class TrainingData:
    data: UsData
    panel: Panel
    symbols: list[str]
    sector_map: dict[str, str]
    first: date
    """First session with a bar of any universe stock."""
    last: date
    """Last session of the panel."""


def load_training_data(data_dir: Path | None, cfg: SwingMlConfig) -> TrainingData:
    """The universe's daily bars plus SPY and the universe's sector ETFs (what the features read).
    Raises :class:`SwingMlInputError` when the directory, a file or a symbol is missing."""
    from broker_core.paper.us_data import DAILY_FILE, UsData, UsDataNotFound
    from strategies.swing_ml.data import BENCHMARK, load_panel

    symbols = list(cfg.universe.symbols)
    sector_map = dict(cfg.universe.sector_map)
    try:
        data = UsData(data_dir)
        available = set(data.symbols())
    except UsDataNotFound as exc:
        raise SwingMlInputError(str(exc)) from exc
    needed = sorted(set(symbols) | {BENCHMARK} | {sector_map[s] for s in symbols})
    missing = [s for s in needed if s not in available]
    if missing:
        raise SwingMlInputError(f"{data.data_dir / DAILY_FILE} has no bars for {', '.join(missing)}")
    panel = load_panel(needed, data=data)
    stocks = panel.close[symbols]
    first_valid = stocks.notna().any(axis=1)
    if not bool(first_valid.any()):
        raise SwingMlInputError(f"{data.data_dir / DAILY_FILE}: no bars of the universe's stocks")
    first = first_valid[first_valid].index[0].date()
    return TrainingData(data, panel, symbols, sector_map, first, panel.dates[-1].date())


def parse_as_of(text: str | None, first: date, last: date) -> date:
    """``--as-of`` (default: the data's last session); must lie within the universe's data."""
    if text is None:
        return last
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise SwingMlInputError(f"--as-of {text!r} is not a date (YYYY-MM-DD)") from exc
    if not first <= day <= last:
        raise SwingMlInputError(f"--as-of {day} is outside the data: the universe's daily bars cover {first} … {last}")
    return day


def _fmt_auc(auc: float | None) -> str:
    return "—" if auc is None else f"{auc:.4f}"


def _short_hash(text: str, n: int = 12) -> str:
    return text.split(":", 1)[-1][:n]


def _feature_difference(model_features: Sequence[str], code_features: Sequence[str]) -> str:
    missing = [f for f in code_features if f not in model_features]
    extra = [f for f in model_features if f not in code_features]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("not in the code " + ", ".join(extra))
    return "; ".join(parts) if parts else "same names in another order"


# -- train ---------------------------------------------------------------------------------------


class _TrainDisplay:
    """Maps :class:`RetrainEvent` to rich progress tasks and one ✓ line per finished stage."""

    LABELS = {"dataset": "build dataset", "validate": "validation folds", "fit": "fit", "save": "save"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def begin(self, stage: str, label: str, total: int) -> None:
        self.started[stage] = time.perf_counter()
        self.tasks[stage] = self.progress.add_task(label, total=max(total, 1))

    def end(self, stage: str, label: str, detail: str) -> None:
        self.seconds[stage] = time.perf_counter() - self.started.get(stage, time.perf_counter())
        task = self.tasks.get(stage)
        if task is not None:
            self.progress.update(task, completed=self.progress.tasks[task].total)
        self.progress.console.print(
            f"[green]✓[/green] {label:<17}{escape(detail)} [dim]({self.seconds[stage]:.1f} s)[/dim]", highlight=False
        )

    def __call__(self, ev: RetrainEvent) -> None:
        label = self.LABELS.get(ev.stage)
        if label is None:  # promote / prune: shown in the summary
            return
        if ev.done == 0:
            self.begin(ev.stage, label, ev.total)
            return
        if ev.stage == "validate":
            self.progress.update(self.tasks[ev.stage], completed=ev.done)
            window = "" if ev.fold is None else f"  train {ev.fold[0]} … {ev.fold[1]}  test {ev.fold[2]} … {ev.fold[3]}"
            self.progress.console.print(
                f"  fold {ev.done}/{ev.total}  AUC {_fmt_auc(ev.auc)}{window}  [dim]{escape(ev.detail)}[/dim]",
                highlight=False,
            )
            if ev.done == ev.total:
                self.end(ev.stage, label, f"{ev.total} folds")
            return
        self.end(ev.stage, label, ev.detail)


@app.command()
def train(
    models_dir: Path | None = typer.Option(None, "--models-dir", help=MODELS_DIR_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Last session of the train window YYYY-MM-DD (default: the data's last)"
    ),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    promote: bool = typer.Option(
        True, "--promote/--no-promote", help="Apply the promotion rule (S5) to the new version"
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="OpenMP threads of the gradient boosting (0 = one per core; 1 is fastest on a busy host)",
    ),
) -> None:
    """Retrain the model on the last 18 months of daily bars and save a new version.

    Purged walk-forward validation (AUC per fold), fit on the whole window, save <models dir>/<UTC timestamp>/
    (model + metadata.json), promote if the S5 rule allows, keep the 8 newest versions (and CURRENT)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from broker_core.config_errors import ConfigError
    from strategies.swing_ml.model import retrain

    started = time.perf_counter()
    now = datetime.now(UTC)
    try:
        cfg = load_config(config)
        root = resolve_models_dir(models_dir, cfg)
        t0 = time.perf_counter()
        with console.status("load data …"):
            td = load_training_data(data_dir, cfg)
        day = parse_as_of(as_of, td.first, td.last)
    except (ConfigError, SwingMlInputError) as exc:
        _fail(str(exc))
    load_seconds = time.perf_counter() - t0
    m = cfg.model
    console.print(
        f"[bold]swing-ML retrain[/bold] as of {day}: {len(td.symbols)} symbols, {m.train_months} months, "
        f"{m.n_splits} purged folds → {escape(str(root))}",
        highlight=False,
    )
    console.print(
        f"[green]✓[/green] {'load data':<17}{len(td.panel.symbols)} series × {len(td.panel.dates)} sessions from "
        f"{escape(str(td.data.data_dir))} [dim]({load_seconds:.1f} s)[/dim]",
        highlight=False,
    )
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<17}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            display = _TrainDisplay(progress)
            report = retrain(
                td.panel,
                td.symbols,
                td.sector_map,
                root,
                now,
                **m.retrain_options(),
                as_of=day,
                promote=promote,
                progress=display,
                n_threads=threads or None,
            )
    except ValueError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write the model under {root}: {exc}")
    _print_train_summary(report, root, len(td.symbols), time.perf_counter() - started)


def _print_train_summary(report: RetrainReport, root: Path, n_symbols: int, total_seconds: float) -> None:
    meta, val, promo = report.metadata, report.validation, report.promotion
    folds = [a for a in meta.fold_aucs if a is not None]
    mean = sum(folds) / len(folds) if folds else None
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("version", f"{meta.version}  ({root / meta.version})")
    table.add_row(
        "train window",
        f"{meta.train_start} … {meta.train_end}: {meta.n_samples:,} rows, {n_symbols} symbols, "
        f"{len(meta.features)} features",
    )
    table.add_row(
        "AUC per fold",
        "  ".join(_fmt_auc(a) for a in meta.fold_aucs) + f"   mean {_fmt_auc(mean)}"
        f"   pooled out-of-fold {_fmt_auc(meta.validation_auc)} (the promotion AUC, {val.n_oof:,} rows)",
    )
    if promo.promoted:
        promoted = f"[green]yes[/green] — {escape(promo.detail)}; CURRENT → {meta.version}"
        if promo.previous and promo.previous != meta.version:
            promoted += f" (was {promo.previous})"
    else:
        promoted = f"[yellow]no[/yellow] — {escape(promo.detail)}; CURRENT stays {promo.previous or '(none)'}"
    table.add_row("promoted", promoted)
    table.add_row("pruned", ", ".join(report.pruned) if report.pruned else "none")
    table.add_row(
        "time",
        f"fit {report.fit_seconds:.1f} s (dataset + validation + final fit), total {total_seconds:.1f} s",
    )
    table.add_row("code / data", f"{meta.code_version} · {meta.data_hash[:19]}")
    console.print(table, highlight=False)


# -- models --------------------------------------------------------------------------------------


@app.command()
def models(
    models_dir: Path | None = typer.Option(None, "--models-dir", help=MODELS_DIR_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """List the saved model versions (CURRENT marked ●)."""
    from broker_core.config_errors import ConfigError
    from strategies.swing_ml.factors import FEATURES
    from strategies.swing_ml.model import ModelError, code_version, current_version, list_versions, read_metadata

    try:
        cfg = load_config(config)
        root = resolve_models_dir(models_dir, cfg)
    except (ConfigError, SwingMlInputError) as exc:
        _fail(str(exc))
    versions = list_versions(root)
    current = current_version(root)
    if not versions:
        console.print(f"no model versions under {root} (train one: trader swing-ml train)", highlight=False)
        return
    this_code = code_version()
    table = Table(
        title=f"swing-ML models — {root} (times UTC)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("version", no_wrap=True, min_width=18)
    table.add_column("train window", min_width=5)
    table.add_column("AUC", justify="right", no_wrap=True, min_width=6)
    table.add_column("data hash", no_wrap=True, min_width=8)
    table.add_column("code", no_wrap=True, min_width=8)
    table.add_column("created", min_width=5)
    table.add_column("feat.", min_width=6)
    other_code = False
    for v in reversed(versions):
        name = f"[green]●[/green] {v}" if v == current else f"  {v}"
        try:
            meta: ModelMetadata = read_metadata(root, v)
        except ModelError as exc:
            table.add_row(name, f"[red]{escape(str(exc))}[/red]", "", "", "", "", "")
            continue
        code = escape(_short_hash(meta.code_version.removeprefix("src-"), 8))
        if meta.code_version != this_code:
            other_code = True
            code = f"[yellow]{code}[/yellow]"
        features = "ok" if list(meta.features) == list(FEATURES) else "[red]DIFFER (refused)[/red]"
        table.add_row(
            name,
            f"{meta.train_start} … {meta.train_end}",
            _fmt_auc(meta.validation_auc),
            _short_hash(meta.data_hash, 8),
            code,
            meta.created_at.replace("T", " ").rstrip("Z")[:16],
            features,
        )
    console.print(table, highlight=False)
    if current is None:
        console.print("CURRENT: none (no promoted model; decide has nothing to load)", highlight=False)
    elif current not in versions:
        console.print(f"[red]CURRENT names {current}, which is not under {root}[/red]", highlight=False)
    else:
        console.print(f"● CURRENT: {current}", highlight=False)
    console.print(
        f"this code: {this_code}" + (" ([yellow]yellow[/yellow]: trained by other code)" if other_code else ""),
        highlight=False,
    )


# -- promote -------------------------------------------------------------------------------------


@app.command("promote")
def promote_version(
    version: str = typer.Argument(..., help="Version to make CURRENT (a folder name, e.g. 20250105T170000Z)"),
    models_dir: Path | None = typer.Option(None, "--models-dir", help=MODELS_DIR_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    force: bool = typer.Option(False, "--force", help="Skip the AUC rule (never the feature-list check)"),
) -> None:
    """Make VERSION the CURRENT model if the S5 promotion rule allows.

    Rule: AUC ≥ 0.52 and ≥ CURRENT − 0.01 (refused: exit 1; --force skips it). A model whose ordered feature
    list differs from the code's is always refused (exit 2)."""
    from broker_core.config_errors import ConfigError
    from strategies.swing_ml.factors import FEATURES
    from strategies.swing_ml.model import (
        FeatureMismatchError,
        ModelError,
        code_version,
        current_version,
        list_versions,
        load_model,
        promotion_allowed,
        read_metadata,
        set_current,
    )

    try:
        cfg = load_config(config)
        root = resolve_models_dir(models_dir, cfg)
    except (ConfigError, SwingMlInputError) as exc:
        _fail(str(exc))
    versions = list_versions(root)
    if version not in versions:
        known = ", ".join(versions[-8:]) if versions else "none"
        _fail(f"unknown model version {version!r} under {root} (versions: {known})")
    try:
        meta = read_metadata(root, version)
        if list(meta.features) != list(FEATURES):
            raise FeatureMismatchError(_feature_difference(meta.features, FEATURES))
        loaded = load_model(root, version)
    except FeatureMismatchError as exc:
        _fail(
            f"refused: model {version} has a feature list that differs from the code's ({exc}); "
            "it cannot be promoted, even with --force — retrain with `trader swing-ml train`"
        )
    except ModelError as exc:
        _fail(f"model {version} is not usable: {exc}")
    current = current_version(root)
    if current == version:
        console.print(f"{version} is already CURRENT", highlight=False)
        return
    current_auc: float | None = None
    if current is not None:
        try:
            current_auc = read_metadata(root, current).validation_auc
        except ModelError:
            current_auc = None
    m = cfg.model
    ok, why = promotion_allowed(loaded.metadata.validation_auc, current_auc, m.promote_min_auc, m.promote_max_drop)
    if not ok and not force:
        err.print(
            f"[yellow]not promoted:[/yellow] {escape(why)} (S5: AUC ≥ {m.promote_min_auc} and ≥ CURRENT − "
            f"{m.promote_max_drop}); CURRENT stays {current or '(none)'}; --force skips the AUC rule",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1)
    set_current(root, version)
    note = f"{why}" if ok else f"forced past the AUC rule: {why}"
    console.print(f"CURRENT → {version} (was {current or 'none'}); {escape(note)}", highlight=False)
    if loaded.metadata.code_version != code_version():
        console.print(
            f"[yellow]note:[/yellow] trained by code {loaded.metadata.code_version}, this code is {code_version()}",
            highlight=False,
        )
