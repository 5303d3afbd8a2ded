"""The night pipeline on the REAL client libraries against local fakes of their services.

google-api-python-client → fake YouTube Data API v3 (``client_options.api_endpoint``), feedparser → fake
channel feed (its URL), youtube-transcript-api → fake watch page / Innertube player / timedtext (a
``requests.Session`` whose adapter sends www.youtube.com to the fake), google-genai → fake
``generateContent`` (``http_options.base_url``). Served by uvicorn on a localhost port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path

import pytest

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import SAMPLE_LISTING_PATH, Channel, PcimParams
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.pipeline.llm import GeminiProvider
from strategies.pcim.pipeline.night import NightPipeline, candidates
from strategies.pcim.pipeline.retry import RetryPolicy
from strategies.pcim.pipeline.rss import RssSource
from strategies.pcim.pipeline.transcripts import YoutubeTranscriptSource
from strategies.pcim.pipeline.types import VideoSource
from strategies.pcim.pipeline.youtube_api import YoutubeApiSource
from strategies.pcim.refdata import reference_daily
from strategies.pcim.store import PcimStore
from strategies.pcim.watchlist import build_watchlist, load_watchlist, save_watchlist
from tests.support.fakes_pcim import FakeState, FakeVideo, ServerThread, fake_google_app

SESSION = date(2026, 2, 27)
NIGHT = datetime.combine(SESSION, time(0, 5), KST)
CH_A, CH_B, CH_GONE = "UCaaaaaaaaaaaaaaaaaaaaaa", "UCbbbbbbbbbbbbbbbbbbbbbb", "UCzzzzzzzzzzzzzzzzzzzzzz"


def _ts(hh: int, mm: int, day: date = date(2026, 2, 26)) -> datetime:
    return datetime.combine(day, time(hh, mm), KST)


def _reply(*recs: tuple[str, str], summary: str = "요약") -> str:
    return json.dumps(
        {"video_summary": summary, "recommendations": [{"ticker_or_name": n, "conviction": c} for n, c in recs]},
        ensure_ascii=False,
    )


@pytest.fixture
def fake() -> Iterator[tuple[FakeState, str]]:
    st = FakeState(channels={CH_A: "채널 A", CH_B: "채널 B"})
    st.videos = [
        FakeVideo("vidA1", CH_A, "시황 1", _ts(20, 10), {"ko": ["삼성생명 적극 매수합니다.", "하이브 관심."]}),
        FakeVideo("vidA2", CH_A, "시황 2", _ts(21, 30), {"ko": ["KB금융 확신."]}, auto=True),
        FakeVideo("vidA0", CH_A, "지난 영상", _ts(14, 0)),  # before 15:30: not asked for
        FakeVideo("vidB1", CH_B, "항공", _ts(22, 0), {"ko": ["대한항공 추천"]}),
        FakeVideo("vidB2", CH_B, "자막 없음", _ts(22, 30), {}),
        FakeVideo("vidB3", CH_B, "영어 자막만", _ts(23, 0), {"en": ["buy Samsung"]}),
    ]
    st.gemini_replies = {
        "vidA1": [_reply(("삼성생명", "HIGH"), ("하이브", "MEDIUM"))],
        "vidA2": [_reply(("105560", "HIGH"), ("테슬라", "HIGH"))],
        "vidB1": [_reply(("대한항공", "MEDIUM"), ("하이브", "HIGH"))],
    }
    with ServerThread(fake_google_app(st)) as srv:
        yield st, srv.url


def _pipe(
    store: PcimStore, url: str, discovery: VideoSource, sleeps: list[float], channels: list[Channel] | None = None
) -> NightPipeline:
    listing = ListingMaster.load(SAMPLE_LISTING_PATH)
    return NightPipeline(
        store,
        channels or [Channel(id=CH_A, name="A", influencer="inf_a"), Channel(id=CH_B, name="B", influencer="inf_b")],
        discovery,
        YoutubeTranscriptSource(base_url=url),
        GeminiProvider("fake-gemini-key", "gemini-2.5-flash", base_url=url),
        listing,
        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, sleep=sleeps.append),
    )


def test_youtube_api_pipeline_produces_the_watchlist(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    st, url = fake
    store = PcimStore(f"sqlite:///{tmp_path / 'p.sqlite'}")
    sleeps: list[float] = []
    pipe = _pipe(store, url, YoutubeApiSource("fake-youtube-key", base_url=url, page_size=2), sleeps)
    report = pipe.run(NIGHT, SESSION)
    assert report.discovered == 5 and report.done == 3 and sleeps == []
    assert report.dropped == {ReasonCode.PCIM_NO_TRANSCRIPT.value: 2}
    assert st.count("playlistItems") >= 3  # paged, newest first, stopped at the first older video
    gen = [r for r in st.requests if r["route"] == "generateContent"]
    cfg = gen[0]["body"]["generationConfig"]
    assert cfg["temperature"] == 0 and cfg["responseMimeType"] == "application/json"
    assert cfg["responseJsonSchema"]["properties"]["recommendations"]["items"]["required"] == [
        "ticker_or_name",
        "conviction",
    ]
    videos = {v.video_id: v for v in store.videos()}
    assert videos["vidB2"].reason == videos["vidB3"].reason == ReasonCode.PCIM_NO_TRANSCRIPT.value
    assert store.transcript("vidA2") is not None and store.transcript("vidA2").is_generated  # type: ignore[union-attr]
    unresolved = [r for r in store.refs(SESSION) if r.reason == ReasonCode.PCIM_UNRESOLVED_TICKER.value]
    assert [r.raw_name for r in unresolved] == ["테슬라"]
    cands = {c.symbol: c for c in candidates(store, SESSION)}
    assert set(cands) == {"032830", "352820", "105560", "003490"}
    assert cands["352820"].conviction == "HIGH" and cands["352820"].influencers == [
        "inf_a",
        "inf_b",
    ]  # highest + all refs
    build = build_watchlist(
        SESSION, list(cands.values()), reference_daily(cands, SESSION), pipe.listing, PcimParams(), NIGHT
    )
    save_watchlist(store, build, NIGHT)
    listed = [i.symbol for i, _ in load_watchlist(store, SESSION)]
    assert listed and set(listed) <= set(cands)
    assert [i.conviction for i, _ in load_watchlist(store, SESSION)] == sorted(
        (i.conviction for i, _ in load_watchlist(store, SESSION)), key=lambda c: c != "HIGH"
    )


def test_rss_discovery_and_a_channel_that_does_not_exist(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    _, url = fake
    store = PcimStore(f"sqlite:///{tmp_path / 'p.sqlite'}")
    channels = [Channel(id=CH_GONE, name="gone"), Channel(id=CH_A, name="A", influencer="inf_a")]
    pipe = _pipe(store, url, RssSource(url + "/feeds/videos.xml"), [], channels)
    report = pipe.run(NIGHT, SESSION)
    assert report.channel_errors == {CH_GONE: ReasonCode.PCIM_CHANNEL_NOT_FOUND.value}
    assert report.done == 2  # channel A went on
    assert [e.key for e in store.events(ReasonCode.PCIM_CHANNEL_NOT_FOUND.value)] == [CH_GONE]
    api = _pipe(
        PcimStore(f"sqlite:///{tmp_path / 'q.sqlite'}"),
        url,
        YoutubeApiSource("fake-youtube-key", base_url=url),
        [],
        channels,
    )
    assert api.run(NIGHT, SESSION).channel_errors == {CH_GONE: ReasonCode.PCIM_CHANNEL_NOT_FOUND.value}


def test_invalid_reply_is_retried_once_then_extraction_failed(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    st, url = fake
    st.gemini_replies["vidA1"] = ["not json at all", _reply(("삼성생명", "HIGH"))]  # retried once → ok
    st.gemini_replies["vidA2"] = ['{"recommendations": [], "confidence": 0.9}']  # extra key, every time
    st.gemini_replies["vidB1"] = [
        '{"recommendations": [{"ticker_or_name": "대한항공", "conviction": "MEDIUM", "reason": "x"}]}'
    ]
    store = PcimStore(f"sqlite:///{tmp_path / 'p.sqlite'}")
    pipe = _pipe(store, url, YoutubeApiSource("fake-youtube-key", base_url=url), [])
    report = pipe.run(NIGHT, SESSION)
    assert report.dropped[ReasonCode.PCIM_EXTRACTION_FAILED.value] == 2 and report.done == 1
    for vid in ("vidA2", "vidB1"):
        attempts = store.extractions(vid)
        assert [a.attempt for a in attempts] == [1, 2] and not any(a.valid for a in attempts)
        assert "unexpected key" in (attempts[0].error or "") or "keys" in (attempts[0].error or "")
        assert store.video(vid).reason == ReasonCode.PCIM_EXTRACTION_FAILED.value  # type: ignore[union-attr]
    a1 = store.extractions("vidA1")
    assert [a.valid for a in a1] == [False, True]
    assert ReasonCode.PCIM_EXTRACTION_RETRY in [d.code for d in pipe.decisions]
    assert [c.symbol for c in candidates(store, SESSION)] == ["032830"]


def test_429_is_retried_with_back_off_and_no_video_is_lost(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    st, url = fake
    st.fail.update({"playlistItems": 2, "player": 1, "timedtext": 1, "generateContent": 2, "channels": 1})
    store = PcimStore(f"sqlite:///{tmp_path / 'p.sqlite'}")
    sleeps: list[float] = []
    pipe = _pipe(store, url, YoutubeApiSource("fake-youtube-key", base_url=url), sleeps)
    report = pipe.run(NIGHT, SESSION)
    assert report.retries == len(sleeps) >= 7 and all(s > 0 for s in sleeps)
    assert report.done == 3 and report.pending == 0
    assert max(sleeps) >= 1.4 * min(sleeps)  # second retries wait about twice as long (exponential, jittered)
    # a service that stays down: the video waits (PENDING), the next poll gets it through
    st.videos.append(FakeVideo("vidA3", CH_A, "늦은 영상", _ts(23, 40), {"ko": ["하이브 강력 추천"]}))
    st.gemini_replies["vidA3"] = [_reply(("하이브", "HIGH"))]
    st.fail["generateContent"] = 4 * 2
    r2 = pipe.run(NIGHT, SESSION)
    assert r2.pending == 1 and store.video("vidA3").status == "PENDING"  # type: ignore[union-attr]
    st.fail["generateContent"] = 0
    r3 = pipe.run(NIGHT, SESSION)
    assert r3.done == 1 and store.video("vidA3").status == "DONE"  # type: ignore[union-attr]
    assert {v.video_id for v in store.videos(session=SESSION)} == {"vidA1", "vidA2", "vidA3", "vidB1", "vidB2", "vidB3"}
