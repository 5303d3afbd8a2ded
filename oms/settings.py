"""OMS wiring from the environment and behaviour from ``config/oms.yaml``.

Secrets and per-host wiring come from env; limits and schedules from YAML. Both are validated at
start and a bad value stops the start with a message naming the variable or the file and key.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oms.config_errors import ConfigError, describe
from oms.core.risk import RiskLimits

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "oms.yaml"


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_intents_per_min: int = Field(120, gt=0)
    """Intents above this rate are rejected (RATE_LIMITED), never queued."""


class ReconcileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_interval_s: float = Field(5.0, gt=0)
    max_interval_s: float = Field(60.0, gt=0)
    breaker_failure_threshold: int = Field(3, gt=0)
    breaker_reset_s: float = Field(30.0, gt=0)
    safe_mode_after_failed_cycles: int = Field(5, gt=0)


class JournalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drain_batch: int = Field(500, gt=0)
    drain_interval_s: float = Field(0.2, gt=0)


class PaperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cash: float = Field(100_000_000, gt=0)
    participation: float = Field(0.25, gt=0, le=1)
    subscription_capacity: int = Field(40, gt=0)
    symbols: list[str] = Field(default_factory=list)
    """Symbols the paper exchange replays; empty = every ticker with minute data."""
    persist: bool = True
    """Keep the paper account (cash, positions, orders, fills) in ``<OMS_DATA_DIR>/paper_account.db``
    so it survives an OMS restart (``cash`` then only seeds a new account; a new session date
    carries cash and positions over); false: every start opens a fresh account."""


class OmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risk: RiskLimits = Field(default_factory=RiskLimits)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    sector_map: dict[str, str] = Field(default_factory=dict)
    """Symbol → sector overrides; the rest comes from the KRX data's sector_map.parquet."""

    def strategy(self, strategy_id: str) -> StrategyConfig:
        return self.strategies.get(strategy_id, StrategyConfig())


def load_config(path: str | Path | None = None) -> OmsConfig:
    p = Path(path) if path else Path(os.environ.get("OMS_CONFIG", DEFAULT_CONFIG))
    if not p.exists():
        if path is None and "OMS_CONFIG" not in os.environ:
            return OmsConfig()
        raise ConfigError(f"{p}: configuration file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    try:
        return OmsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, str(p))) from exc


class OmsSettings(BaseSettings):
    """Per-host wiring and secrets (environment variables)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    oms_broker: Literal["paper", "kis", "alpaca"] = "paper"
    database_url: str = ""
    oms_journal_path: str = ""
    oms_admin_key: SecretStr | None = None
    oms_read_key: SecretStr | None = None
    oms_strategy_keys: SecretStr | None = None
    oms_instance_id: str = Field(default_factory=lambda: socket.gethostname()[:24] or "oms")
    oms_data_dir: str = "var"
    """Where the default SQLite database and journal live (the OMS's own volume)."""
    oms_paper_date: str | None = None
    oms_config: str | None = None
    trader_clock: str = "real"
    trader_data_dir: str | None = None

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if v and not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{Path(self.oms_data_dir).resolve() / 'oms.db'}"

    def resolved_journal_path(self) -> Path:
        return Path(self.oms_journal_path) if self.oms_journal_path else Path(self.oms_data_dir) / "journal.db"

    def strategy_keys(self) -> dict[str, str]:
        """key → strategy_id, from ``OMS_STRATEGY_KEYS=KMP:key1,KPR:key2``."""
        raw = self.oms_strategy_keys.get_secret_value() if self.oms_strategy_keys else ""
        out: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in raw.split(","))):
            sid, sep, key = item.partition(":")
            if not sep or not sid or not key:
                raise ConfigError("OMS_STRATEGY_KEYS: each entry must be STRATEGY:key (comma-separated)")
            out[key] = sid.strip().upper()
        return out


def load_settings() -> OmsSettings:
    try:
        settings = OmsSettings()
    except ValidationError as exc:
        raise ConfigError(_env_message(exc)) from exc
    if settings.oms_admin_key is None or not settings.oms_admin_key.get_secret_value():
        raise ConfigError("OMS_ADMIN_KEY: not set (the admin API key; generate one with `openssl rand -hex 24`)")
    settings.strategy_keys()
    return settings


def _env_message(exc: ValidationError) -> str:
    return "\n".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
