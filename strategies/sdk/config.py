"""Strategy configuration: ``config/<name>.yaml`` validated by the strategy's pydantic model.

Errors name the file and the key, e.g. ``config/kmp.yaml: params.or_minutes: Input should be a
valid integer``, and are raised as :class:`broker_core.config_errors.ConfigError` (the ``trader`` command
prints them and exits 2). Models should derive from :class:`StrictModel` so unknown keys — usually
typos — are rejected instead of silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from broker_core.config_errors import ConfigError, describe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR_ENV = "TRADER_CONFIG_DIR"
"""Overrides the directory holding ``<name>.yaml`` (default: ``<project>/config``)."""

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors; a loaded config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def config_path(name: str) -> Path:
    base = Path(os.environ[CONFIG_DIR_ENV]) if os.environ.get(CONFIG_DIR_ENV) else PROJECT_ROOT / "config"
    return base / f"{name}.yaml"


def display_path(path: Path) -> str:
    """``config/kmp.yaml`` for files in the project, else the path as given."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def load_strategy_config(name: str, model: type[M], path: str | Path | None = None) -> M:
    """Read and validate the strategy's YAML; raises ConfigError naming the file and key."""
    p = Path(path) if path is not None else config_path(name)
    shown = display_path(p)
    if not p.exists():
        raise ConfigError(f"{shown}: configuration file not found (strategy {name})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: top level must be a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, shown)) from exc
