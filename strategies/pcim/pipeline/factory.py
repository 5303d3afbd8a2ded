"""Build the night pipeline from ``config/pcim.yaml``: pick the sources and the provider, read keys
from the environment variables the config names (never from the file)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from broker_core.config_errors import ConfigError
from strategies.pcim.config import DiscoveryKind, PcimConfig, ProviderKind, TranscriptKind
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.pipeline.night import Emit, NightPipeline
from strategies.pcim.pipeline.offline import OfflineSource
from strategies.pcim.pipeline.retry import RetryPolicy
from strategies.pcim.pipeline.types import LlmProvider, TranscriptSource, VideoSource


def _key(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"config/pcim.yaml: {what} needs the environment variable {name} (not set)")
    return value


def build_pipeline(
    cfg: PcimConfig,
    store: object,
    *,
    offline_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    emit: Emit | None = None,
    now: Callable[[], datetime] | None = None,
) -> NightPipeline:
    """``offline_dir`` (the ``--offline`` switch) replaces discovery and captions with that folder and,
    unless the config asks for Gemini explicitly with its key present, the provider with the rule-based one."""
    from strategies.pcim.store import PcimStore

    assert isinstance(store, PcimStore)
    env = os.environ if env is None else env
    pc = cfg.pipeline
    listing = ListingMaster.load(pc.path(pc.listing_master))
    folder = Path(offline_dir) if offline_dir is not None else (pc.path(pc.offline_dir) if pc.offline_dir else None)
    offline = OfflineSource(folder) if folder is not None else None
    use_offline = offline_dir is not None
    discovery: VideoSource
    transcripts: TranscriptSource
    if use_offline or pc.discovery is DiscoveryKind.OFFLINE:
        assert offline is not None
        discovery = offline
    elif pc.discovery is DiscoveryKind.YOUTUBE_API:
        from strategies.pcim.pipeline.youtube_api import YoutubeApiSource

        y = pc.youtube_api
        discovery = YoutubeApiSource(
            _key(env, y.api_key_env, "discovery youtube_api"),
            base_url=y.base_url,
            page_size=y.page_size,
            max_pages=y.max_pages,
        )
    else:
        from strategies.pcim.pipeline.rss import RssSource

        discovery = RssSource(pc.rss.base_url)
    if use_offline or pc.transcripts is TranscriptKind.OFFLINE:
        assert offline is not None
        transcripts = offline
    else:
        from strategies.pcim.pipeline.transcripts import YoutubeTranscriptSource

        transcripts = YoutubeTranscriptSource(base_url=pc.transcript.base_url, timeout=pc.transcript.timeout_sec)
    provider: LlmProvider
    gemini_key = env.get(pc.gemini.api_key_env, "")
    if pc.provider is ProviderKind.GEMINI and (not use_offline or gemini_key):
        from strategies.pcim.pipeline.llm import GeminiProvider

        g = pc.gemini
        provider = GeminiProvider(
            _key(env, g.api_key_env, "provider gemini"), g.model, base_url=g.base_url, timeout_sec=g.timeout_sec
        )
    else:
        from strategies.pcim.pipeline.llm import RulesProvider

        provider = RulesProvider(listing)
    r = pc.retry
    return NightPipeline(
        store,
        list(pc.channels),
        discovery,
        transcripts,
        provider,
        listing,
        languages=list(pc.transcript.languages),
        window_start=pc.window_start,
        retry=RetryPolicy(r.attempts, r.base_delay_sec, r.max_delay_sec, sleep=sleep),
        max_transcript_chars=pc.gemini.max_transcript_chars,
        emit=emit,
        now=now,
    )
