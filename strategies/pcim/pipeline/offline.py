"""The ``--offline`` source: a folder of transcript files, one video per ``*.json`` file (any depth).

It plays both parts — discovery and captions — so the night pipeline runs in the demo, simulations
and tests without any key or network. File format::

    {
      "sample": true,                      # optional; bundled samples say so
      "video_id": "SAMPLE0227a",
      "channel_id": "UC_SAMPLE_CHANNEL_A",
      "channel_title": "...",
      "title": "...",
      "published_at": "2026-02-26T20:10:00+09:00",
      "language": "ko",
      "is_generated": false,
      "transcript": "..."                  # "" or null: the video has no captions (NO_TRANSCRIPT)
    }

A file that is not valid JSON or misses a field is reported as a :class:`MalformedItem` (through
:meth:`OfflineSource.drain_problems`) and skipped; the other files go on.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from broker_core.clock import KST
from strategies.pcim.pipeline.types import MalformedItem, NoTranscript, TranscriptText, VideoRef

REQUIRED = ("video_id", "channel_id", "published_at")


class OfflineSource:
    name = "offline"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._problems: list[MalformedItem] = []
        self._reported: set[str] = set()

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.rglob("*.json"))

    def _read(self, path: Path) -> dict[str, Any]:
        key = str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise MalformedItem(f"not a JSON transcript file: {exc}", key) from exc
        if not isinstance(data, dict):
            raise MalformedItem("top level must be an object", key)
        missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise MalformedItem(f"missing or non-text field(s): {', '.join(missing)}", key)
        text = data.get("transcript")
        if text is not None and not isinstance(text, str):
            raise MalformedItem("transcript must be text or null", key)
        try:
            ts = datetime.fromisoformat(data["published_at"])
        except ValueError as exc:
            raise MalformedItem(f"published_at is not an ISO time: {data['published_at']!r}", key) from exc
        data["_published"] = ts if ts.tzinfo else ts.replace(tzinfo=KST)
        return data

    def _records(self) -> list[dict[str, Any]]:
        out = []
        for path in self._files():
            try:
                out.append(self._read(path))
            except MalformedItem as exc:
                if exc.key not in self._reported:
                    self._reported.add(exc.key)
                    self._problems.append(exc)
        return out

    def drain_problems(self) -> list[MalformedItem]:
        out, self._problems = self._problems, []
        return out

    def videos_since(self, channel_id: str, since: datetime) -> list[VideoRef]:
        return [
            VideoRef(
                video_id=r["video_id"],
                channel_id=r["channel_id"],
                title=str(r.get("title", "")),
                published_at=r["_published"],
                url=f"offline:{r['video_id']}",
                channel_title=str(r.get("channel_title", "")),
                source=self.name,
            )
            for r in self._records()
            if r["channel_id"] == channel_id and r["_published"] >= since
        ]

    def channels(self) -> set[str]:
        return {r["channel_id"] for r in self._records()}

    def transcript(self, video_id: str, languages: list[str]) -> TranscriptText:
        for r in self._records():
            if r["video_id"] != video_id:
                continue
            text = r.get("transcript")
            lang = str(r.get("language") or "ko")
            if not text or not text.strip():
                raise NoTranscript("no captions in the offline file")
            if languages and lang not in languages:
                raise NoTranscript(f"offline file language {lang} not in {languages}")
            return TranscriptText(video_id, text, lang, bool(r.get("is_generated", False)), self.name)
        raise NoTranscript("no offline file for this video")
