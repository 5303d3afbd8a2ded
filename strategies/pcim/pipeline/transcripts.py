"""Korean captions through ``youtube-transcript-api`` (manual first, then automatic; never media).

The library reads ``https://www.youtube.com/watch?v=…``, the Innertube ``player`` endpoint and the
caption track URL it names, all through one ``requests.Session``. With ``base_url`` set, that
session carries an adapter that sends every ``https://www.youtube.com/…`` request to ``base_url``
instead (same path and query) — how the tests point the real library at their local fake.

No Korean track, captions disabled, video unavailable → :class:`NoTranscript` (the reason named);
429/blocked/5xx/network → :class:`TransientSourceError`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from youtube_transcript_api import YouTubeTranscriptApi
from youtube_transcript_api._errors import (
    AgeRestricted,
    CouldNotRetrieveTranscript,
    InvalidVideoId,
    IpBlocked,
    NoTranscriptFound,
    PoTokenRequired,
    RequestBlocked,
    TranscriptsDisabled,
    VideoUnavailable,
    VideoUnplayable,
    YouTubeRequestFailed,
)

from strategies.pcim.pipeline.types import NoTranscript, PipelineError, TranscriptText, TransientSourceError

YOUTUBE = "https://www.youtube.com/"


class _Adapter(HTTPAdapter):
    """Default timeout, and optionally the same path and query on another base URL."""

    def __init__(self, timeout: float, base_url: str | None = None) -> None:
        super().__init__()
        self.timeout = timeout
        self.base = urlsplit(base_url) if base_url else None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.base is not None and request.url:
            u = urlsplit(request.url)
            request.url = urlunsplit((self.base.scheme, self.base.netloc, u.path, u.query, ""))
        return super().send(request, **kwargs)


def session_for(base_url: str | None, timeout: float = 20.0) -> requests.Session:
    s = requests.Session()
    s.mount(YOUTUBE, _Adapter(timeout, base_url))
    if base_url:
        s.mount(base_url.rstrip("/") + "/", _Adapter(timeout))
    return s


class YoutubeTranscriptSource:
    name = "youtube"

    def __init__(self, *, base_url: str | None = None, timeout: float = 20.0) -> None:
        self._api = YouTubeTranscriptApi(http_client=session_for(base_url, timeout))

    def transcript(self, video_id: str, languages: list[str]) -> TranscriptText:
        try:
            found = self._api.list(video_id).find_transcript(languages)
            fetched = found.fetch()
        except (NoTranscriptFound, TranscriptsDisabled) as exc:
            raise NoTranscript(f"{type(exc).__name__}: no {languages} captions") from exc
        except (VideoUnavailable, VideoUnplayable, AgeRestricted, InvalidVideoId, PoTokenRequired) as exc:
            raise NoTranscript(type(exc).__name__) from exc
        except (IpBlocked, RequestBlocked) as exc:
            raise TransientSourceError(f"transcript {video_id}: {type(exc).__name__}") from exc
        except YouTubeRequestFailed as exc:
            m = re.match(r"\s*(\d{3})", exc.reason)
            code = int(m.group(1)) if m else 0
            if code == 429 or code >= 500 or code == 0:
                raise TransientSourceError(f"transcript {video_id}: HTTP {code}") from exc
            raise PipelineError(f"transcript {video_id}: HTTP {code}") from exc
        except CouldNotRetrieveTranscript as exc:
            raise PipelineError(f"transcript {video_id}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise TransientSourceError(f"transcript {video_id}: {type(exc).__name__}: {exc}") from exc
        text = " ".join(s.text.strip() for s in fetched if s.text and s.text.strip())
        if not text:
            raise NoTranscript("empty caption track")
        return TranscriptText(video_id, text, fetched.language_code, fetched.is_generated, self.name)
