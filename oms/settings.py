"""OMS wiring from the environment and behaviour from ``config/oms.yaml``.

Secrets and per-host wiring come from env; limits and schedules from YAML. Both are validated at
start and a bad value stops the start with a message naming the variable or the file and key.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker_core.config_errors import ConfigError, describe
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
    drift_confirmations: int = Field(3, ge=1, le=20)
    """A position drift freezes the symbol (excess to ``_UNKNOWN_``) only after it was seen on this many
    consecutive cycles with the same quantities; 1 acts on the first sighting."""


class JournalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drain_batch: int = Field(500, gt=0)
    drain_interval_s: float = Field(0.2, gt=0)
    keep_drained_days: float = Field(7.0, gt=0)
    """Journal entries already in the database are kept this long (the OMS can rebuild from the
    journal alone while the database is away), then pruned."""


class LoopsConfig(BaseModel):
    """Supervision of the background loops (oms/supervisor.py)."""

    model_config = ConfigDict(extra="forbid")
    restart_backoff_s: float = Field(0.5, gt=0)
    """Wall seconds before the first restart of a failed loop; doubles per failure in a row."""
    restart_backoff_max_s: float = Field(30.0, gt=0)
    lag_factor: float = Field(3.0, ge=1)
    """A loop is lagging after this many of its intervals without progress."""
    min_lag_s: float = Field(5.0, gt=0)
    """...and never before this many wall seconds (a fast virtual clock would otherwise flap)."""


class PaperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cash: float = Field(100_000_000, gt=0)
    cash_usd: float = Field(100_000, gt=0)
    """Cash of a new US paper account (``OMS_MARKET=us``); ``cash`` is the KRX account's, in won."""
    participation: float = Field(0.25, gt=0, le=1)
    subscription_capacity: int = Field(40, gt=0)
    symbols: list[str] = Field(default_factory=list)
    """Symbols the paper exchange replays; empty = every ticker with minute data."""
    persist: bool = True
    """Keep the paper account (cash, positions, orders, fills) in ``<OMS_DATA_DIR>/paper_account.db``
    so it survives an OMS restart (``cash`` then only seeds a new account; a new session date
    carries cash and positions over); false: every start opens a fresh account."""


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_hhmm(value: Any) -> dtime | None:
    """``"HH:MM"`` (KST) → time. Unquoted YAML ``09:15`` is read as a base-60 integer, so only strings pass."""
    if value is None or isinstance(value, dtime):
        return value
    if not isinstance(value, str):
        raise ValueError(f'must be a quoted "HH:MM" string (KST), got {value!r} — quote it in YAML: "09:15"')
    m = _HHMM.match(value.strip())
    if not m:
        raise ValueError(f'must be "HH:MM" (KST, 00:00–23:59), got {value!r}')
    return dtime(int(m.group(1)), int(m.group(2)))


class LeaseConfig(BaseModel):
    """A strategy's slot lease: how many WebSocket subscriptions it may hold, when, and how hard it holds them.

    ``max_slots`` None = no own limit (only the account capacity); 0 = no stream subscriptions at all
    (REST only). ``start``/``end`` (KST, ``"HH:MM"``, end exclusive) bound when the lease may take new
    symbols; at ``end`` its slots are released except symbols the strategy holds a position or a working
    order in. A request may evict an idle lease of strictly lower ``priority``.
    """

    model_config = ConfigDict(extra="forbid")
    priority: int = Field(0, ge=0, le=999)
    max_slots: int | None = Field(None, ge=0)
    start: dtime | None = None
    end: dtime | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> dtime | None:
        return _parse_hhmm(v)

    @model_validator(mode="after")
    def _window(self) -> LeaseConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be after start ({self.start:%H:%M})")
        return self


class RestBudgetConfig(BaseModel):
    """The account's broker REST budget (token bucket). The market-data proxy spends it at the lowest
    priority; a broker adapter shares the same limiter (``OmsRuntime.rate_limiter``) for orders and
    reconciliation, which are served first."""

    model_config = ConfigDict(extra="forbid")
    rate_per_sec: float = Field(15.0, gt=0)
    burst: float = Field(15.0, ge=1)


class MarketDataCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quote_ttl_s: float = Field(1.0, ge=0)
    """Quotes are served from cache for this long (clock time)."""
    bars_max_ttl_s: float = Field(60.0, ge=0)
    """Minute bars are cached until the next minute boundary, at most this long."""
    daily_max_ttl_s: float = Field(86_400.0, ge=0)
    """Daily bars and investor flow are cached for the day (until the close, then until midnight), at most this long."""
    max_entries: int = Field(10_000, gt=0)


class MarketDataConfig(BaseModel):
    """``marketdata:`` — slot budget (leases), fan-out hub and REST proxy."""

    model_config = ConfigDict(extra="forbid")
    capacity: int | None = Field(None, gt=0)
    """Slot budget of the account; None = what the broker adapter declares (KIS 40). A value above the
    adapter's capacity is lowered to it."""
    leases: dict[str, LeaseConfig] = Field(default_factory=dict)
    """Strategy → lease. Strategies not listed get ``default_lease``."""
    default_lease: LeaseConfig = Field(default_factory=LeaseConfig)
    rest_budget: RestBudgetConfig = Field(default_factory=RestBudgetConfig)
    cache: MarketDataCacheConfig = Field(default_factory=MarketDataCacheConfig)
    stale_after_s: float = Field(60.0, gt=0)
    """Watchdog: no tick on any subscribed symbol for this long (clock time, market open) → reconnect."""
    check_interval_s: float = Field(5.0, gt=0)
    """How often (clock time) lease windows and the watchdog are evaluated (window edges are exact)."""
    consumer_backlog: int = Field(10_000, gt=0)
    """Market events queued per stream consumer before quotes/trades are conflated (latest wins)."""

    @field_validator("leases")
    @classmethod
    def _upper(cls, v: dict[str, LeaseConfig]) -> dict[str, LeaseConfig]:
        return {k.upper(): lease for k, lease in v.items()}


class OmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risk: RiskLimits = Field(default_factory=RiskLimits)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    loops: LoopsConfig = Field(default_factory=LoopsConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    marketdata: MarketDataConfig = Field(default_factory=MarketDataConfig)
    sector_map: dict[str, str] = Field(default_factory=dict)
    """Symbol → sector overrides; the rest comes from the KRX data's sector_map.parquet."""

    def strategy(self, strategy_id: str) -> StrategyConfig:
        return self.strategies.get(strategy_id, StrategyConfig())


def load_config(path: str | Path | None = None) -> OmsConfig:
    """``config/oms.yaml`` (or ``OMS_CONFIG``). A file may start from another with ``extends: <file>`` (relative
    to it) and override what differs, mappings merged key by key: a host's file (``config/oms.vps1.yaml``)
    changes its slot leases and keeps everything else of ``oms.yaml``."""
    p = Path(path) if path else Path(os.environ.get("OMS_CONFIG", DEFAULT_CONFIG))
    if not p.exists():
        if path is None and "OMS_CONFIG" not in os.environ:
            return OmsConfig()
        raise ConfigError(f"{p}: configuration file not found")
    data = _read_config(p, ())
    try:
        return OmsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, str(p))) from exc


def _read_config(p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if p.resolve() in seen:
        raise ConfigError(f"{p}: extends itself ({' -> '.join(str(s) for s in (*seen, p))})")
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found (named by extends in {seen[-1]})")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{p}: extends: must be a file name, got {base!r}")
    return _merged(_read_config(p.parent / base, (*seen, p.resolve())), data)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class OmsSettings(BaseSettings):
    """Per-host wiring and secrets (environment variables)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    oms_broker: Literal["paper", "kis", "alpaca"] = "paper"
    oms_market: Literal["krx", "us", ""] = ""
    """The account's market: KIS trades ``krx``, Alpaca ``us``; the paper exchange either (``krx`` by default)."""
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
        """The async driver's form: a plain ``postgresql://``/``postgres://`` (what older ``.env`` files hold) or
        ``sqlite:///`` URL is rewritten to ``postgresql+asyncpg://``/``sqlite+aiosqlite:///``, not ignored."""
        v = v.strip()
        if not v:
            return v
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
            v = "postgresql+asyncpg://" + v.split("://", 1)[1]
        elif scheme in ("sqlite", "sqlite+pysqlite"):
            v = "sqlite+aiosqlite://" + v.split("://", 1)[1]
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must be a postgresql:// (or postgresql+asyncpg://) or sqlite:/// URL")
        return v

    def market_code(self) -> str:
        """``krx`` or ``us``: from ``OMS_MARKET``, else implied by ``OMS_BROKER`` (a contradiction is a ConfigError)."""
        implied = {"kis": "krx", "alpaca": "us"}.get(self.oms_broker)
        chosen = self.oms_market or implied or "krx"
        if implied is not None and chosen != implied:
            raise ConfigError(f"OMS_MARKET={chosen}: OMS_BROKER={self.oms_broker} trades the {implied} market only")
        return chosen

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
