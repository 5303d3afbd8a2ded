"""Video discovery from a channel's public feed (``feedparser``; no API key, about the last 15 videos).

``https://www.youtube.com/feeds/videos.xml?channel_id=<id>`` (``base_url`` may point elsewhere, e.g. the
tests' local fake). 404 → :class:`ChannelNotFound`; 429/5xx or a network failure →
:class:`TransientSourceError`.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import feedparser

from strategies.pcim.pipeline.types import ChannelNotFound, PipelineError, TransientSourceError, VideoRef

AGENT = "trader-platform-pcim/1.0 (+feedparser)"


def _ts(entry: Any) -> datetime | None:
    raw = entry.get("published") or entry.get("updated")
    if raw:
        try:
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            pass
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


class RssSource:
    name = "rss"

    def __init__(self, base_url: str = "https://www.youtube.com/feeds/videos.xml") -> None:
        self.base_url = base_url

    def videos_since(self, channel_id: str, since: datetime) -> list[VideoRef]:
        url = f"{self.base_url}?{urlencode({'channel_id': channel_id})}"
        feed = feedparser.parse(url, agent=AGENT)
        status = feed.get("status")
        if status is None:
            raise TransientSourceError(f"feed {channel_id} unreachable: {feed.get('bozo_exception')}")
        if status == 404:
            raise ChannelNotFound(f"feed of channel {channel_id}: 404")
        if status == 429 or status >= 500:
            headers = feed.get("headers", {}) or {}
            raw = headers.get("retry-after")
            try:
                retry_after = float(raw) if raw is not None else None
            except ValueError:
                retry_after = None
            raise TransientSourceError(f"feed {channel_id}: HTTP {status}", retry_after)
        if status >= 400:
            raise PipelineError(f"feed {channel_id}: HTTP {status}")
        title = str(feed.get("feed", {}).get("title", ""))
        out = []
        for e in feed.get("entries", []):
            vid = e.get("yt_videoid")
            ts = _ts(e)
            if not vid or ts is None or ts < since:
                continue
            out.append(
                VideoRef(
                    video_id=str(vid),
                    channel_id=str(e.get("yt_channelid") or channel_id),
                    title=str(e.get("title", "")),
                    published_at=ts,
                    url=str(e.get("link") or f"https://www.youtube.com/watch?v={vid}"),
                    channel_title=title,
                    source=self.name,
                )
            )
        return out
