"""config/pcim.yaml validation; the offline pipeline on the bundled SAMPLE transcripts; bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path

import pytest

from broker_core.clock import KST
from broker_core.config_errors import ConfigError
from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import SAMPLE_LISTING_PATH, SAMPLE_TRANSCRIPTS_DIR, Channel, load_pcim_config
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.pipeline.llm import InvalidReply, RulesProvider, parse_reply
from strategies.pcim.pipeline.night import NightPipeline, candidates, feeding_window, target_session
from strategies.pcim.pipeline.offline import OfflineSource
from strategies.pcim.pipeline.retry import RetryPolicy
from strategies.pcim.store import PcimStore


def test_shipped_config_loads_and_unknown_keys_name_file_and_key(tmp_path: Path) -> None:
    cfg = load_pcim_config()
    assert cfg.strategy_id == "PCIM" and len(cfg.pipeline.channels) == 3 and not cfg.approval.auto_approve
    bad = tmp_path / "pcim.yaml"
    bad.write_text("params:\n  adtv_minn: 5\n")
    with pytest.raises(ConfigError, match=r"pcim.yaml: params.adtv_minn: unknown key"):
        load_pcim_config(bad)
    bad.write_text("pipeline:\n  gemini:\n    api_key_env: AIzaSyD-not-a-name\n")
    with pytest.raises(ConfigError, match=r"pipeline.gemini.api_key_env"):
        load_pcim_config(bad)
    bad.write_text("approval:\n  deadline: 8:30\n")
    with pytest.raises(ConfigError, match=r"approval.deadline"):
        load_pcim_config(bad)


def test_session_windows() -> None:
    assert target_session(datetime(2026, 2, 26, 20, 0, tzinfo=KST)) == date(2026, 2, 27)
    assert target_session(datetime(2026, 2, 27, 0, 5, tzinfo=KST)) == date(2026, 2, 27)
    assert target_session(datetime(2026, 2, 27, 20, 0, tzinfo=KST)) == date(2026, 3, 3)  # Fri → Tue (03-02 holiday)
    start, end = feeding_window(date(2026, 2, 23))
    assert start == datetime(2026, 2, 20, 15, 30, tzinfo=KST) and end == datetime(2026, 2, 21, 0, 0, tzinfo=KST)


def test_reply_validation_is_strict() -> None:
    ok = parse_reply(
        '{"video_summary": "s", "recommendations": [{"ticker_or_name": "삼성전자", "conviction": "high"}]}'
    )
    assert ok.recommendations[0].conviction == "HIGH"
    assert parse_reply('{"recommendations": []}').recommendations == ()
    for bad in (
        "not json",
        "[]",
        '{"recommendations": [], "extra": 1}',
        '{"recommendations": [{"ticker_or_name": "x", "conviction": "HIGH", "why": "y"}]}',
        '{"recommendations": [{"ticker_or_name": "", "conviction": "HIGH"}]}',
        '{"video_summary": 3, "recommendations": []}',
        '{"summary": "s"}',
    ):
        with pytest.raises(InvalidReply):
            parse_reply(bad)


def _pipeline(store: PcimStore, folder: Path, channels: list[Channel]) -> NightPipeline:
    listing = ListingMaster.load(SAMPLE_LISTING_PATH)
    src = OfflineSource(folder)
    return NightPipeline(
        store, channels, src, src, RulesProvider(listing), listing, retry=RetryPolicy(2, 0, 0, sleep=lambda s: None)
    )


def test_offline_sample_pipeline_and_bad_files(tmp_path: Path) -> None:
    folder = tmp_path / "tx"
    folder.mkdir()
    for f in (SAMPLE_TRANSCRIPTS_DIR / "2026-02-26").glob("*.json"):
        (folder / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "nofield.json").write_text(json.dumps({"channel_id": "UC_SAMPLE_CHANNEL_A"}), encoding="utf-8")
    (folder / "foreign.json").write_text(
        json.dumps(
            {"video_id": "F1", "channel_id": "UC_OTHER", "published_at": "2026-02-26T20:00:00+09:00", "transcript": "x"}
        ),
        encoding="utf-8",
    )
    store = PcimStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    cfg = load_pcim_config()
    pipe = _pipeline(store, folder, list(cfg.pipeline.channels))
    report = pipe.run(datetime.combine(date(2026, 2, 27), time(0, 5), KST), date(2026, 2, 27))
    assert report.malformed == 2 and report.done == 2
    codes = [d.code for d in pipe.decisions]
    assert codes.count(ReasonCode.PCIM_TRANSCRIPT_MALFORMED) == 2 and ReasonCode.PCIM_CHANNEL_NOT_WHITELISTED in codes
    assert [e.code for e in store.events()].count(ReasonCode.PCIM_TRANSCRIPT_MALFORMED.value) == 2
    cands = {c.symbol: c for c in candidates(store, date(2026, 2, 27))}
    assert set(cands) == {"032830", "352820", "003490", "105560"}
    assert cands["032830"].conviction == "HIGH" and cands["352820"].conviction == "MEDIUM"
    assert cands["105560"].influencers == ["sample_c"]


def test_offline_sample_whole_week(tmp_path: Path) -> None:
    store = PcimStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    pipe = _pipeline(store, SAMPLE_TRANSCRIPTS_DIR, list(load_pcim_config().pipeline.channels))
    r = pipe.run(datetime.combine(date(2026, 2, 23), time(0, 5), KST), date(2026, 2, 23))
    assert r.dropped[ReasonCode.PCIM_NO_TRANSCRIPT.value] == 1
    refs = store.refs(date(2026, 2, 23))
    assert all(r.status == "RESOLVED" for r in refs)  # the rule-based extractor only finds listed names
    assert {r.symbol for r in refs if r.status == "RESOLVED"} == {"012450", "064350", "000660"}
    r24 = pipe.run(datetime.combine(date(2026, 2, 24), time(0, 5), KST), date(2026, 2, 24))
    assert r24.done == 2
    assert "035720" not in {r.symbol for r in store.refs(date(2026, 2, 24))}  # 카카오 … 매도: not a recommendation
