"""One Starlette app speaking the wire protocols PCIM's real client libraries use.

=====================================================  =============================================
route                                                  protocol (as the real service answers)
=====================================================  =============================================
GET  /youtube/v3/channels?part&id&key                  channelListResponse; unknown id → ``items: []``
GET  /youtube/v3/playlistItems?playlistId&pageToken    playlistItemListResponse, newest first, paged
GET  /youtube/v3/videos?id&part                        videoListResponse (``liveBroadcastContent``)
GET  /feeds/videos.xml?channel_id                      the channel's Atom feed (yt: namespace); 404
GET  /watch?v=ID                                       watch page HTML with ``INNERTUBE_API_KEY``
POST /youtubei/v1/player?key                           player JSON: playability + caption tracks
GET  /api/timedtext?v&lang[&kind]                      timedtext XML ``<transcript><text ...>``
POST /v1[beta]/models/{model}:generateContent        Gemini GenerateContentResponse
=====================================================  =============================================

Faults: ``state.fail[route] = n`` answers the next ``n`` calls of that route with 429 (in the
service's error shape, ``Retry-After: 0``); every request is recorded in ``state.requests``.
Gemini replies come from ``state.gemini_replies[video_id]`` (one per call, the last repeats) or
``state.gemini_default(prompt)``; the video id is read from the prompt's ``video_id:`` line.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

INNERTUBE_KEY = "FAKEINNERTUBEKEY123"


@dataclass
class FakeVideo:
    video_id: str
    channel_id: str
    title: str
    published_at: datetime
    captions: dict[str, list[str]] = field(default_factory=dict)
    """language → caption lines; an ``asr`` track when ``auto`` is True."""
    auto: bool = False
    live: str = "none"


@dataclass
class FakeState:
    api_key: str = "fake-youtube-key"
    gemini_key: str = "fake-gemini-key"
    channels: dict[str, str] = field(default_factory=dict)
    videos: list[FakeVideo] = field(default_factory=list)
    gemini_replies: dict[str, list[str]] = field(default_factory=dict)
    gemini_default: Callable[[str], str] | None = None
    fail: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    page_size_cap: int = 2
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gemini_calls: dict[str, int] = field(default_factory=dict)

    def count(self, route: str) -> int:
        return sum(1 for r in self.requests if r["route"] == route)

    def should_fail(self, route: str) -> bool:
        with self._lock:
            n = self.fail.get(route, 0)
            if n > 0:
                self.fail[route] = n - 1
                return True
            return False


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _google_error(code: int, reason: str, message: str) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "youtube", "reason": reason}],
        }
    }
    return JSONResponse(body, status_code=code, headers={"Retry-After": "0"} if code == 429 else None)


def fake_google_app(state: FakeState) -> Starlette:
    def record(request: Request, route: str, body: Any = None) -> None:
        with state._lock:
            state.requests.append(
                {"route": route, "path": request.url.path, "query": dict(request.query_params), "body": body}
            )

    def uploads_of(playlist: str) -> str | None:
        for cid in state.channels:
            if "UU" + cid[2:] == playlist:
                return cid
        return None

    async def channels(request: Request) -> Response:
        record(request, "channels")
        if request.query_params.get("key") != state.api_key:
            return _google_error(400, "keyInvalid", "API key not valid.")
        if state.should_fail("channels"):
            return _google_error(429, "rateLimitExceeded", "Too many requests")
        items = [
            {
                "kind": "youtube#channel",
                "id": cid,
                "snippet": {"title": state.channels[cid]},
                "contentDetails": {"relatedPlaylists": {"uploads": "UU" + cid[2:]}},
            }
            for cid in request.query_params.get("id", "").split(",")
            if cid in state.channels
        ]
        return JSONResponse(
            {"kind": "youtube#channelListResponse", "pageInfo": {"totalResults": len(items)}, "items": items}
        )

    async def playlist_items(request: Request) -> Response:
        record(request, "playlistItems")
        if state.should_fail("playlistItems"):
            return (
                _google_error(
                    403, "quotaExceeded", "The request cannot be completed because you have exceeded your quota."
                )
                if state.fail.get("_quota")
                else _google_error(429, "rateLimitExceeded", "Too many requests")
            )
        cid = uploads_of(request.query_params.get("playlistId", ""))
        if cid is None:
            return _google_error(
                404,
                "playlistNotFound",
                "The playlist identified with the request's playlistId parameter cannot be found.",
            )
        vids = sorted((v for v in state.videos if v.channel_id == cid), key=lambda v: v.published_at, reverse=True)
        size = min(int(request.query_params.get("maxResults", "5")), state.page_size_cap)
        start = int(request.query_params.get("pageToken") or 0)
        page = vids[start : start + size]
        items = [
            {
                "kind": "youtube#playlistItem",
                "id": f"PI{v.video_id}",
                "snippet": {
                    "publishedAt": _iso(v.published_at),
                    "channelId": cid,
                    "title": v.title,
                    "resourceId": {"kind": "youtube#video", "videoId": v.video_id},
                },
                "contentDetails": {"videoId": v.video_id, "videoPublishedAt": _iso(v.published_at)},
            }
            for v in page
        ]
        body: dict[str, Any] = {
            "kind": "youtube#playlistItemListResponse",
            "items": items,
            "pageInfo": {"totalResults": len(vids), "resultsPerPage": size},
        }
        if start + size < len(vids):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    async def videos(request: Request) -> Response:
        record(request, "videos")
        if state.should_fail("videos"):
            return _google_error(429, "rateLimitExceeded", "Too many requests")
        ids = request.query_params.get("id", "").split(",")
        items = [
            {
                "kind": "youtube#video",
                "id": v.video_id,
                "snippet": {"title": v.title, "liveBroadcastContent": v.live, "publishedAt": _iso(v.published_at)},
            }
            for v in state.videos
            if v.video_id in ids
        ]
        return JSONResponse({"kind": "youtube#videoListResponse", "items": items})

    async def feed(request: Request) -> Response:
        record(request, "feed")
        if state.should_fail("feed"):
            return Response("Too Many Requests", status_code=429, headers={"Retry-After": "0"})
        cid = request.query_params.get("channel_id", "")
        if cid not in state.channels:
            return Response("Not Found", status_code=404)
        entries = "".join(
            f"""<entry><id>yt:video:{v.video_id}</id><yt:videoId>{v.video_id}</yt:videoId><yt:channelId>{cid}</yt:channelId>
<title>{escape(v.title)}</title><link rel="alternate" href="https://www.youtube.com/watch?v={v.video_id}"/>
<author><name>{escape(state.channels[cid])}</name></author><published>{v.published_at.isoformat()}</published>
<updated>{v.published_at.isoformat()}</updated></entry>"""
            for v in sorted(state.videos, key=lambda v: v.published_at, reverse=True)
            if v.channel_id == cid
        )
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
<id>yt:channel:{cid}</id><yt:channelId>{cid}</yt:channelId><title>{escape(state.channels[cid])}</title>{entries}</feed>"""
        return Response(xml, media_type="application/atom+xml; charset=UTF-8")

    def video(vid: str) -> FakeVideo | None:
        return next((v for v in state.videos if v.video_id == vid), None)

    async def watch(request: Request) -> Response:
        record(request, "watch")
        if state.should_fail("watch"):
            return Response("Too Many Requests", status_code=429)
        cfg = json.dumps({"INNERTUBE_API_KEY": INNERTUBE_KEY, "VISITOR_DATA": "x"})
        html = f"<html><head><script>ytcfg.set({cfg});</script></head><body></body></html>"
        return HTMLResponse(html)

    async def player(request: Request) -> Response:
        body = await request.json()
        record(request, "player", body)
        if request.query_params.get("key") != INNERTUBE_KEY:
            return JSONResponse({"error": {"code": 400}}, status_code=400)
        if state.should_fail("player"):
            return JSONResponse({"error": {"code": 429}}, status_code=429)
        v = video(str(body.get("videoId")))
        if v is None:
            return JSONResponse({"playabilityStatus": {"status": "ERROR", "reason": "This video is unavailable"}})
        out: dict[str, Any] = {
            "playabilityStatus": {"status": "OK"},
            "videoDetails": {"videoId": v.video_id, "title": v.title},
        }
        if v.captions:
            tracks = []
            for lang in v.captions:
                url = f"https://www.youtube.com/api/timedtext?v={v.video_id}&lang={lang}" + (
                    "&kind=asr" if v.auto else ""
                )
                track = {
                    "baseUrl": url,
                    "name": {"runs": [{"text": "한국어" if lang == "ko" else lang}]},
                    "languageCode": lang,
                    "isTranslatable": False,
                }
                if v.auto:
                    track["kind"] = "asr"
                tracks.append(track)
            out["captions"] = {"playerCaptionsTracklistRenderer": {"captionTracks": tracks, "translationLanguages": []}}
        return JSONResponse(out)

    async def timedtext(request: Request) -> Response:
        record(request, "timedtext")
        if state.should_fail("timedtext"):
            return Response("Too Many Requests", status_code=429)
        v = video(request.query_params.get("v", ""))
        lines = v.captions.get(request.query_params.get("lang", ""), []) if v else []
        body = "".join(f'<text start="{i * 2.5:.1f}" dur="2.5">{escape(line)}</text>' for i, line in enumerate(lines))
        return Response(
            f'<?xml version="1.0" encoding="utf-8" ?><transcript>{body}</transcript>', media_type="text/xml"
        )

    async def gemini(request: Request) -> Response:
        rest = request.path_params["rest"]
        body = await request.json()
        record(request, "generateContent", body)
        if not rest.endswith(":generateContent"):
            return JSONResponse(
                {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, status_code=404
            )
        if request.headers.get("x-goog-api-key") != state.gemini_key:
            return JSONResponse(
                {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}, status_code=400
            )
        if state.should_fail("generateContent"):
            return JSONResponse(
                {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}},
                status_code=429,
            )
        prompt = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
        m = re.search(r"video_id: (\S+)", prompt)
        vid = m.group(1) if m else ""
        with state._lock:
            n = state._gemini_calls.get(vid, 0)
            state._gemini_calls[vid] = n + 1
        script = state.gemini_replies.get(vid)
        if script:
            text = script[min(n, len(script) - 1)]
        elif state.gemini_default is not None:
            text = state.gemini_default(prompt)
        else:
            text = json.dumps({"recommendations": []})
        model = rest.split(":")[0]
        return JSONResponse(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": len(prompt) // 4,
                    "candidatesTokenCount": len(text) // 4,
                    "totalTokenCount": (len(prompt) + len(text)) // 4,
                },
                "modelVersion": model,
            }
        )

    return Starlette(
        routes=[
            Route("/youtube/v3/channels", channels),
            Route("/youtube/v3/playlistItems", playlist_items),
            Route("/youtube/v3/videos", videos),
            Route("/feeds/videos.xml", feed),
            Route("/watch", watch),
            Route("/youtubei/v1/player", player, methods=["POST"]),
            Route("/api/timedtext", timedtext),
            Route("/v1beta/models/{rest:path}", gemini, methods=["POST"]),
            Route("/v1/models/{rest:path}", gemini, methods=["POST"]),
        ]
    )
