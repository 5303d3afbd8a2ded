"""Video discovery through the YouTube Data API v3 (``google-api-python-client``).

A channel's uploads playlist (``channels.list part=contentDetails``) is read newest first
(``playlistItems.list``) until a video older than ``since``; ``videos.list`` then drops live and
upcoming broadcasts (no captions yet). Cost: 1 + pages + 1 quota units per channel and poll.

``base_url`` points the real client at another endpoint (``client_options.api_endpoint``) — the
tests' local fake speaks the same JSON. Quota exhausted (403 ``quotaExceeded``/``rateLimitExceeded``),
429 and 5xx raise :class:`TransientSourceError`; an unknown channel :class:`ChannelNotFound`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from strategies.pcim.pipeline.types import ChannelNotFound, PipelineError, TransientSourceError, VideoRef

_QUOTA_REASONS = {"quotaExceeded", "rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"}


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _reasons(exc: HttpError) -> set[str]:
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return set()
    errors = body.get("error", {}).get("errors", []) if isinstance(body, dict) else []
    return {str(e.get("reason")) for e in errors if isinstance(e, dict)}


def _retry_after(exc: HttpError) -> float | None:
    raw = exc.resp.get("retry-after") if exc.resp is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class YoutubeApiSource:
    name = "youtube_api"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        page_size: int = 50,
        max_pages: int = 4,
        timeout: float = 30.0,
    ) -> None:
        options = {"api_endpoint": base_url.rstrip("/")} if base_url else None
        self._yt = build(
            "youtube",
            "v3",
            developerKey=api_key,
            client_options=options,
            static_discovery=True,
            cache_discovery=False,
            http=httplib2.Http(timeout=timeout),
        )
        self.page_size = page_size
        self.max_pages = max_pages
        self._uploads: dict[str, tuple[str, str]] = {}

    def _execute(self, request: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
            return result
        except HttpError as exc:
            status = int(exc.resp.status) if exc.resp is not None else 0
            reasons = _reasons(exc)
            if status == 429 or status >= 500 or (status == 403 and reasons & _QUOTA_REASONS):
                raise TransientSourceError(f"YouTube API {status} {sorted(reasons)}", _retry_after(exc)) from exc
            if status == 404:
                raise ChannelNotFound(f"YouTube API 404 {sorted(reasons)}") from exc
            raise PipelineError(f"YouTube API {status} {sorted(reasons)}") from exc
        except (TimeoutError, httplib2.HttpLib2Error, OSError) as exc:
            raise TransientSourceError(f"YouTube API unreachable: {exc}") from exc

    def _uploads_of(self, channel_id: str) -> tuple[str, str]:
        if channel_id not in self._uploads:
            resp = self._execute(self._yt.channels().list(part="contentDetails,snippet", id=channel_id))
            items = resp.get("items") or []
            if not items:
                raise ChannelNotFound(f"channel {channel_id} does not exist")
            uploads = items[0].get("contentDetails", {}).get("relatedPlaylists", {}).get("uploads")
            if not uploads:
                raise ChannelNotFound(f"channel {channel_id} has no uploads playlist")
            self._uploads[channel_id] = (uploads, items[0].get("snippet", {}).get("title", ""))
        return self._uploads[channel_id]

    def videos_since(self, channel_id: str, since: datetime) -> list[VideoRef]:
        playlist, channel_title = self._uploads_of(channel_id)
        found: dict[str, VideoRef] = {}
        token: str | None = None
        for _ in range(self.max_pages):
            kwargs: dict[str, Any] = {
                "part": "snippet,contentDetails",
                "playlistId": playlist,
                "maxResults": self.page_size,
            }
            if token:
                kwargs["pageToken"] = token
            resp = self._execute(self._yt.playlistItems().list(**kwargs))
            older = False
            for item in resp.get("items", []):
                snippet, details = item.get("snippet", {}), item.get("contentDetails", {})
                vid = details.get("videoId") or snippet.get("resourceId", {}).get("videoId")
                raw_ts = details.get("videoPublishedAt") or snippet.get("publishedAt")
                if not vid or not raw_ts:
                    continue
                ts = parse_ts(raw_ts)
                if ts < since:
                    older = True
                    continue
                found[vid] = VideoRef(
                    video_id=vid,
                    channel_id=channel_id,
                    title=str(snippet.get("title", "")),
                    published_at=ts,
                    url=f"https://www.youtube.com/watch?v={vid}",
                    channel_title=channel_title,
                    source=self.name,
                )
            token = resp.get("nextPageToken")
            if older or not token:
                break
        if not found:
            return []
        resp = self._execute(self._yt.videos().list(part="snippet", id=",".join(found), maxResults=50))
        live = {
            v.get("id")
            for v in resp.get("items", [])
            if v.get("snippet", {}).get("liveBroadcastContent") in ("live", "upcoming")
        }
        return [v for k, v in found.items() if k not in live]
