"""PCIM configuration (strategies.md §4): ``config/pcim.yaml`` validated by :class:`PcimConfig`.

Layout::

    strategy_id: PCIM
    params:   {...}   # PcimParams: every numeric rule of §4.2–§4.7 (defaults = the spec)
    pipeline: {...}   # PipelineConfig: channel whitelist, sources, LLM provider, listing master, retries
    approval: {...}   # ApprovalConfig: the 08:00–08:30 window; auto_approve (simulation only)
    store:    {...}   # StoreConfig: where the strategy's SQLite/SQLAlchemy store lives

Unknown keys are errors naming the file and the key (:class:`broker_core.config_errors.ConfigError`).
Secrets never appear here: API keys are given by the *name* of the environment variable holding
them (``api_key_env: GEMINI_API_KEY``); a value that looks like a key is refused. Times are quoted
``"HH:MM[:SS]"`` KST strings; percentages are fractions (0.006 = 0.6%).
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from strategies.sdk.config import PROJECT_ROOT, StrictModel, load_strategy_config

DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "pcim.yaml"
PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_TRANSCRIPTS_DIR = PACKAGE_DIR / "sample_transcripts"
SAMPLE_LISTING_PATH = PACKAGE_DIR / "sample_listing.yaml"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")


def _no_bare_number(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('a time must be a quoted "HH:MM" string (unquoted YAML 14:30 reads as 870)')
    return v


class PcimParams(StrictModel):
    """The numbers of §4.2–§4.6 (names follow the spec's rule ids in comments)."""

    # ---- I5 conviction
    conviction_mult_high: float = Field(1.0, gt=0)
    conviction_mult_medium: float = Field(0.7, gt=0)
    # ---- I6 trend gate
    trend_sma: int = Field(20, ge=2)
    # ---- I7 hard rejects
    adtv_sessions: int = Field(20, ge=1)
    adtv_min: float = Field(10e9, ge=0)
    market_cap_min: float = Field(50e9, ge=0)
    market_cap_max: float = Field(5e12, gt=0)
    earnings_window_days: int = Field(5, ge=0)
    """Reject when an earnings date falls on the session or the next ``earnings_window_days − 1`` trading days."""
    # ---- I8 gap reversal
    gap_lookback: int = Field(60, ge=1)
    gap_event_pct: float = Field(0.01, gt=0)
    gap_min_events: int = Field(10, ge=1)
    gap_reversal_max: float = Field(0.60, ge=0, le=1)
    # ---- I9 tiers
    tier1_adtv: float = Field(30e9, gt=0)
    tier2_adtv: float = Field(15e9, gt=0)
    tier1_mult: float = Field(1.0, gt=0)
    tier2_mult: float = Field(0.8, gt=0)
    tier3_mult: float = Field(0.5, gt=0)
    # ---- I10 soft multipliers
    soft_adtv_max: float = Field(15e9, gt=0)
    """ADTV in [adtv_min, soft_adtv_max) → ×soft_adtv_mult."""
    soft_adtv_mult: float = Field(0.5, gt=0)
    soft_runup_sessions: int = Field(5, ge=1)
    soft_runup_pct: float = Field(0.20, gt=0)
    soft_runup_mult: float = Field(0.5, gt=0)
    # ---- I12 regime
    regime_sma: int = Field(50, ge=2)
    regime_atr: int = Field(50, ge=2)
    cap_crisis: float = Field(0.20, ge=0, le=1)
    cap_weak: float = Field(0.50, ge=0, le=1)
    cap_normal: float = Field(0.80, ge=0, le=1)
    cap_strong: float = Field(1.00, ge=0, le=1)
    weak_disables_a: bool = True
    regime_fallback: str = Field("WEAK", pattern="^(CRISIS|WEAK|NORMAL|STRONG)$")
    """[resolved] regime used when the KOSPI daily bars are unavailable at 08:30."""
    # ---- I13 buckets
    bucket_a_max: float = Field(0.03, gt=0)
    bucket_b_max: float = Field(0.07, gt=0)
    # ---- I14 universal execution rules
    entry_start: time = time(9, 1)
    entry_end: time = time(10, 0)
    upper_limit_ticks: int = Field(2, ge=0)
    spread_veto_pct: float = Field(0.006, gt=0)
    kospi_veto_pct: float = Field(-0.015, lt=0)
    quote_max_age_sec: float = Field(45.0, gt=0)
    """A quote older than this cannot clear the vetoes (the entry is vetoed ``PCIM_VETO_NO_QUOTE``)."""
    # ---- I15 Bucket A
    a_bars: int = Field(3, ge=1)
    a_cpr_min: float = Field(0.70, ge=0, le=1)
    a_volume_ratio_min: float = Field(1.20, ge=0)
    a_baseline_sessions: int = Field(20, ge=1)
    a_band_t1: float = Field(0.0020, ge=0)
    a_band_t2: float = Field(0.0012, ge=0)
    a_cancel_after_sec: float = Field(30.0, gt=0)
    # ---- I16 Bucket B
    b_eval_start: time = time(9, 10)
    """First 1m *close* evaluated (the bar 09:09–09:10); the last is the close at ``entry_end − 1 min``."""
    b_touch_tol: float = Field(0.001, ge=0)
    b_reclaim_pct: float = Field(0.0005, ge=0)
    b_touch_lookback: int = Field(2, ge=0)
    b_band_t1: float = Field(0.0012, ge=0)
    b_band_t2: float = Field(0.0008, ge=0)
    b_size_mult: float = Field(0.80, gt=0, le=1)
    # ---- I17 sizing
    risk_pct: float = Field(0.005, gt=0)
    atr_period: int = Field(20, ge=1)
    stop_atr_mult: float = Field(1.5, gt=0)
    position_cap_pct: float = Field(0.15, gt=0)
    tv5m_share_t1: float = Field(0.15, gt=0)
    tv5m_share_t2: float = Field(0.12, gt=0)
    tv5m_share_t3: float = Field(0.08, gt=0)
    tv5m_minutes: int = Field(5, ge=1)
    tv5m_proxy_divisor: float = Field(78.0, gt=0)
    floor_frac: float = Field(0.20, ge=0, le=1)
    # ---- I18 / I19 portfolio and fills
    max_positions: int = Field(8, ge=1)
    small_fill_frac: float = Field(0.30, ge=0, le=1)
    # ---- I21–I24 exits
    profit_take_atr: float = Field(2.5, gt=0)
    profit_take_frac: float = Field(0.60, gt=0, le=1)
    trail_atr_mult: float = Field(1.5, gt=0)
    max_hold_days: int = Field(15, ge=1)
    eod_exit_time: time = time(15, 10)
    exit_band_pct: float = Field(0.003, ge=0)
    exit_band_ticks: int = Field(3, ge=0)
    exit_retry_sec: float = Field(60.0, gt=0)
    """[resolved] a marketable exit still unanswered by a fill is re-sent after this long."""
    recovered_stop_pct: float = Field(0.05, gt=0, lt=1)
    """[resolved] stop for a recovered allocation with neither an OMS stop nor a stored one: avg·(1 − this)."""
    # ---- schedule (§4.7)
    poll_interval_sec: float = Field(30.0, gt=0)
    """Exit/veto quote polling interval 09:00–15:20 (REST only, 0 WebSocket slots)."""
    expected_open_start: time = time(8, 40)
    expected_open_poll_sec: float = Field(60.0, gt=0)
    session_open: time = time(9, 0)
    session_end: time = time(15, 20)

    @field_validator("entry_start", "entry_end", "b_eval_start", "eod_exit_time", mode="before")
    @classmethod
    def _times(cls, v: Any) -> Any:
        return _no_bare_number(v)

    @field_validator("expected_open_start", "session_open", "session_end", mode="before")
    @classmethod
    def _times2(cls, v: Any) -> Any:
        return _no_bare_number(v)

    @model_validator(mode="after")
    def _consistent(self) -> PcimParams:
        if not self.expected_open_start < self.session_open < self.entry_start < self.entry_end < self.session_end:
            raise ValueError(
                "times must satisfy expected_open_start < session_open < entry_start < entry_end < session_end"
            )
        if not self.entry_start <= self.b_eval_start < self.entry_end:
            raise ValueError("b_eval_start must lie in [entry_start, entry_end)")
        if not self.tier2_adtv < self.tier1_adtv:
            raise ValueError("tier2_adtv must be below tier1_adtv")
        if not self.bucket_a_max < self.bucket_b_max:
            raise ValueError("bucket_a_max must be below bucket_b_max")
        if self.market_cap_min >= self.market_cap_max:
            raise ValueError("market_cap_min must be below market_cap_max")
        return self

    def conviction_mult(self, conviction: str) -> float | None:
        return {"HIGH": self.conviction_mult_high, "MEDIUM": self.conviction_mult_medium}.get(conviction)

    def regime_cap(self, regime: str) -> float:
        return {
            "CRISIS": self.cap_crisis,
            "WEAK": self.cap_weak,
            "NORMAL": self.cap_normal,
            "STRONG": self.cap_strong,
        }[regime]


class Channel(StrictModel):
    """One whitelisted channel (I1). ``influencer`` keys the EV table (I25)."""

    id: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=100)
    influencer: str | None = Field(None, max_length=100)

    @property
    def label(self) -> str:
        return self.influencer or self.name


class DiscoveryKind(StrEnum):
    YOUTUBE_API = "youtube_api"
    RSS = "rss"
    OFFLINE = "offline"


class TranscriptKind(StrEnum):
    YOUTUBE = "youtube"
    OFFLINE = "offline"


class ProviderKind(StrEnum):
    GEMINI = "gemini"
    RULES = "rules"
    """Keyless, deterministic extractor over the listing master (demo/tests/offline; not an LLM)."""


class _EnvNamed(StrictModel):
    @field_validator("api_key_env", check_fields=False)
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("give the NAME of an environment variable (e.g. GEMINI_API_KEY), never a key value")
        return v


class YoutubeApiConfig(_EnvNamed):
    api_key_env: str = "YOUTUBE_API_KEY"
    base_url: str | None = None
    """None = Google's endpoint; a local URL points the client at a fake (tests)."""
    page_size: int = Field(50, ge=1, le=50)
    max_pages: int = Field(4, ge=1)


class RssConfig(StrictModel):
    base_url: str = "https://www.youtube.com/feeds/videos.xml"


class TranscriptConfig(StrictModel):
    languages: list[str] = Field(default_factory=lambda: ["ko"])
    base_url: str | None = None
    """None = www.youtube.com; a local URL sends every transcript request there (tests)."""
    timeout_sec: float = Field(20.0, gt=0)


class GeminiConfig(_EnvNamed):
    api_key_env: str = "GEMINI_API_KEY"
    model: str = Field("gemini-2.5-flash", min_length=1, max_length=100)
    base_url: str | None = None
    timeout_sec: float = Field(120.0, gt=0)
    max_transcript_chars: int = Field(60_000, ge=1_000)


class RetryConfig(StrictModel):
    """Back-off for quota/429/5xx answers: attempts per call, then the item waits for the next poll."""

    attempts: int = Field(5, ge=1)
    base_delay_sec: float = Field(2.0, ge=0)
    max_delay_sec: float = Field(60.0, ge=0)


class PipelineConfig(StrictModel):
    channels: list[Channel] = Field(default_factory=list)
    discovery: DiscoveryKind = DiscoveryKind.RSS
    transcripts: TranscriptKind = TranscriptKind.YOUTUBE
    provider: ProviderKind = ProviderKind.GEMINI
    offline_dir: str | None = None
    """Folder of transcript files for ``discovery: offline`` / ``transcripts: offline`` (relative: project root)."""
    listing_master: str = str(SAMPLE_LISTING_PATH.relative_to(PROJECT_ROOT))
    youtube_api: YoutubeApiConfig = Field(default_factory=YoutubeApiConfig)
    rss: RssConfig = Field(default_factory=RssConfig)
    transcript: TranscriptConfig = Field(default_factory=TranscriptConfig)
    gemini: GeminiConfig = Field(default_factory=GeminiConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    window_start: time = time(15, 30)
    """Videos published from this time of session D up to midnight feed session D+1 (I1)."""
    poll_start: time = time(20, 0)
    poll_end: time = time(0, 0)
    poll_interval_sec: float = Field(600.0, gt=0)
    watchlist_time: time = time(0, 5)
    watchlist_deadline: time = time(6, 0)

    @field_validator("window_start", "poll_start", "poll_end", "watchlist_time", "watchlist_deadline", mode="before")
    @classmethod
    def _times(cls, v: Any) -> Any:
        return _no_bare_number(v)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        ids = [c.id for c in self.channels]
        if len(ids) != len(set(ids)):
            raise ValueError("channels: a channel id is listed twice")
        offline = DiscoveryKind.OFFLINE in (self.discovery,) or self.transcripts is TranscriptKind.OFFLINE
        if offline and not self.offline_dir:
            raise ValueError("offline_dir is required when discovery or transcripts is offline")
        return self

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else PROJECT_ROOT / p


class ApprovalConfig(StrictModel):
    open: time = time(8, 0)
    deadline: time = time(8, 30)
    auto_approve: bool = False
    """Simulation only: approve every candidate at ``open``; refused on a real clock; labelled in every log line."""

    @field_validator("open", "deadline", mode="before")
    @classmethod
    def _times(cls, v: Any) -> Any:
        return _no_bare_number(v)

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalConfig:
        if not self.open < self.deadline:
            raise ValueError("approval open must be before the deadline")
        return self


class StoreConfig(StrictModel):
    url_env: str = "PCIM_STORE_URL"
    """Environment variable that may hold a SQLAlchemy URL overriding ``path``."""
    path: str = "runs/pcim/pcim.sqlite"

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError("give the NAME of an environment variable")
        return v


class PcimConfig(StrictModel):
    strategy_id: str = "PCIM"
    params: PcimParams = Field(default_factory=PcimParams)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)


def load_pcim_config(path: str | Path | None = None) -> PcimConfig:
    """Load and validate ``config/pcim.yaml`` (or ``path``); ConfigError names the file and key."""
    return load_strategy_config("pcim", PcimConfig, path)
