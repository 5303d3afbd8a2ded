"""Typed, pluggable parts of the night pipeline (strategies.md I1–I3).

* :class:`VideoSource` — finds a channel's videos published since a time (YouTube Data API v3,
  RSS feed, or an offline folder);
* :class:`TranscriptSource` — the Korean captions of a video, manual or automatic, never by
  downloading media (YouTube's caption tracks, or the offline folder);
* :class:`LlmProvider` — turns a prompt into the raw text of one model reply (Gemini, or the keyless
  rule-based extractor); the pipeline validates the reply, not the provider.

Errors a part may raise: :class:`TransientSourceError` (quota, 429, 5xx, network: retried with
back-off; the item waits for the next poll when retries run out — never lost),
:class:`ChannelNotFound`, :class:`NoTranscript`, :class:`MalformedItem` (a bad offline file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class VideoRef:
    video_id: str
    channel_id: str
    title: str
    published_at: datetime
    """Timezone-aware."""
    url: str
    channel_title: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class TranscriptText:
    video_id: str
    text: str
    language: str
    is_generated: bool
    source: str = ""


class PipelineError(Exception):
    """Base of the pipeline's typed errors."""


class TransientSourceError(PipelineError):
    """Quota, rate limit (429), server error or network failure: try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChannelNotFound(PipelineError):
    """The channel id does not exist (or has no uploads playlist)."""


class NoTranscript(PipelineError):
    """No Korean caption track (manual or automatic) for the video."""


class MalformedItem(PipelineError):
    """An input item (an offline transcript file) cannot be read; ``key`` names it."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class LlmError(PipelineError):
    """The provider refused the request for good (auth, bad request)."""


@runtime_checkable
class VideoSource(Protocol):
    name: str

    def videos_since(self, channel_id: str, since: datetime) -> list[VideoRef]:
        """The channel's videos published at or after ``since`` (newest first or any order)."""
        ...


@runtime_checkable
class TranscriptSource(Protocol):
    name: str

    def transcript(self, video_id: str, languages: list[str]) -> TranscriptText:
        """Captions in the first of ``languages`` available (manual before automatic)."""
        ...


@runtime_checkable
class LlmProvider(Protocol):
    name: str
    model: str

    def generate(self, prompt: str, schema: dict[str, object]) -> str:
        """The raw text of one reply at temperature 0, asked to follow ``schema`` (JSON)."""
        ...
