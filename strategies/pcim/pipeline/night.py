"""The night pipeline (strategies.md I1–I3): discover → store → captions → extraction → names → refs.

Synchronous (the client libraries are): the wiring runs :meth:`NightPipeline.run` in a worker thread.
Every video found is stored with its status; every drop carries its reason code:

==========================  =====================================================================
status                      meaning
==========================  =====================================================================
NEW                         discovered, not processed yet
PENDING                     a source kept failing (quota/429/5xx after back-off): retried next poll
DONE                        extracted; its names are in ``pcim_candidate_refs``
DROPPED                     ``reason``: PCIM_NO_TRANSCRIPT, PCIM_TRANSCRIPT_MALFORMED,
                            PCIM_EXTRACTION_FAILED, PCIM_VIDEO_OUTSIDE_WINDOW, PCIM_SOURCE_ERROR
==========================  =====================================================================

A video is never lost to a transient failure: it stays PENDING (attempts counted) until a later
poll gets through, up to ``max_video_attempts`` polls. A channel that does not exist is logged
``PCIM_CHANNEL_NOT_FOUND`` and the other channels go on. Session windows: videos published from
15:30 of session D to 23:59 feed the next session (I1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core import calendars
from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from strategies.pcim.config import Channel
from strategies.pcim.decisions import Decision
from strategies.pcim.filters import CONVICTIONS, Candidate, CandidateRef
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.pipeline.llm import build_prompt, extract
from strategies.pcim.pipeline.retry import RetryPolicy
from strategies.pcim.pipeline.types import (
    ChannelNotFound,
    LlmError,
    LlmProvider,
    MalformedItem,
    NoTranscript,
    PipelineError,
    TranscriptSource,
    TranscriptText,
    TransientSourceError,
    VideoRef,
    VideoSource,
)
from strategies.pcim.store import ExtractionRow, PcimStore, RefRow, TranscriptRow, VideoRow

Emit = Callable[[Decision], None]


def target_session(now: datetime, window_start: time = time(15, 30)) -> date:
    """The session the night's work at ``now`` is for."""
    local = now.astimezone(KST)
    d = local.date()
    if local.time() >= window_start:
        return calendars.next_trading_day(d)
    return d if calendars.is_trading_day(d) else calendars.next_trading_day(d)


def session_of(published_at: datetime, window_start: time = time(15, 30)) -> date | None:
    """The session a video feeds: published from 15:30 to 23:59 of session D → the next session; else None."""
    local = published_at.astimezone(KST)
    d = local.date()
    if local.time() >= window_start and calendars.is_trading_day(d):
        return calendars.next_trading_day(d)
    return None


def feeding_window(session: date, window_start: time = time(15, 30)) -> tuple[datetime, datetime]:
    """[15:30 of the previous session, the midnight after it) — the videos that feed ``session``."""
    prev = calendars.previous_trading_day(session)
    return datetime.combine(prev, window_start, KST), datetime.combine(prev + timedelta(days=1), time(0), KST)


@dataclass
class PollReport:
    session: date
    discovered: int = 0
    new: int = 0
    processed: int = 0
    done: int = 0
    pending: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    channel_errors: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    malformed: int = 0

    def fields(self) -> dict[str, Any]:
        return {
            "session": str(self.session),
            "discovered": self.discovered,
            "new": self.new,
            "processed": self.processed,
            "done": self.done,
            "pending": self.pending,
            "dropped": dict(self.dropped),
            "channel_errors": dict(self.channel_errors),
            "retries": self.retries,
            "malformed": self.malformed,
        }


class NightPipeline:
    def __init__(
        self,
        store: PcimStore,
        channels: list[Channel],
        discovery: VideoSource,
        transcripts: TranscriptSource,
        provider: LlmProvider,
        listing: ListingMaster,
        *,
        languages: list[str] | None = None,
        window_start: time = time(15, 30),
        retry: RetryPolicy | None = None,
        max_transcript_chars: int = 60_000,
        max_video_attempts: int = 6,
        emit: Emit | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.id: c for c in channels}
        self.discovery = discovery
        self.transcripts = transcripts
        self.provider = provider
        self.listing = listing
        self.languages = languages or ["ko"]
        self.window_start = window_start
        self.retry = retry or RetryPolicy()
        self.max_chars = max_transcript_chars
        self.max_attempts = max_video_attempts
        self._emit = emit
        self._now = now
        self.decisions: list[Decision] = []
        self._not_whitelisted: set[str] = set()

    # ------------------------------------------------------------------ logging
    def _log(self, code: ReasonCode, symbol: str | None, ts: datetime, **fields: Any) -> None:
        d = Decision(code, symbol, ts, fields)
        self.decisions.append(d)
        if self._emit is not None:
            self._emit(d)

    def _ts(self, fallback: datetime) -> datetime:
        return self._now() if self._now is not None else fallback

    def _retrying(
        self, report: PollReport, what: str, now: datetime
    ) -> Callable[[int, float, TransientSourceError], None]:
        def on_retry(n: int, delay: float, exc: TransientSourceError) -> None:
            report.retries += 1
            self._log(
                ReasonCode.PCIM_SOURCE_RETRY, None, now, what=what, attempt=n, delay_sec=round(delay, 3), error=str(exc)
            )
            self.store.event(
                now, "retry", ReasonCode.PCIM_SOURCE_RETRY.value, what, attempt=n, delay=delay, error=str(exc)
            )

        return on_retry

    # ------------------------------------------------------------------ run
    def run(self, now: datetime, session: date | None = None) -> PollReport:
        """One poll: discovery over the whitelist, then every NEW/PENDING video of the session."""
        session = session or target_session(now, self.window_start)
        report = PollReport(session)
        start, end = feeding_window(session, self.window_start)
        for channel in self.channels.values():
            self._discover(now, session, channel, start, end, report)
        self._problems(now, report)
        self._unlisted_channels(now)
        for video in self.store.videos(session=session, statuses=("NEW", "PENDING")):
            self._process(self._ts(now), session, video, report)
        self._log(
            ReasonCode.PCIM_PIPELINE,
            None,
            self._ts(now),
            **report.fields(),
            window=f"{start.isoformat()}..{end.isoformat()}",
        )
        return report

    def _discover(
        self, now: datetime, session: date, channel: Channel, start: datetime, end: datetime, report: PollReport
    ) -> None:
        try:
            refs = self.retry.call(
                lambda: self.discovery.videos_since(channel.id, start),
                self._retrying(report, f"discover:{channel.id}", now),
            )
        except ChannelNotFound as exc:
            report.channel_errors[channel.id] = ReasonCode.PCIM_CHANNEL_NOT_FOUND.value
            self._log(
                ReasonCode.PCIM_CHANNEL_NOT_FOUND,
                None,
                now,
                channel_id=channel.id,
                channel=channel.name,
                error=str(exc),
            )
            self.store.event(now, "discover", ReasonCode.PCIM_CHANNEL_NOT_FOUND.value, channel.id, error=str(exc))
            return
        except PipelineError as exc:
            report.channel_errors[channel.id] = ReasonCode.PCIM_SOURCE_ERROR.value
            self._log(ReasonCode.PCIM_SOURCE_ERROR, None, now, stage="discover", channel_id=channel.id, error=str(exc))
            self.store.event(now, "discover", ReasonCode.PCIM_SOURCE_ERROR.value, channel.id, error=str(exc))
            return
        for ref in refs:
            report.discovered += 1
            self._store_video(now, session, channel, ref, start, end, report)

    def _store_video(
        self,
        now: datetime,
        session: date,
        channel: Channel,
        ref: VideoRef,
        start: datetime,
        end: datetime,
        report: PollReport,
    ) -> None:
        own = session_of(ref.published_at, self.window_start)
        inside = own is not None
        row = VideoRow(
            video_id=ref.video_id,
            channel_id=ref.channel_id,
            channel_title=ref.channel_title or channel.name,
            influencer=channel.label,
            title=ref.title[:500],
            url=ref.url[:500],
            published_at=ref.published_at.astimezone(KST),
            session=own,
            source=ref.source,
            status="NEW" if inside else "DROPPED",
            reason=None if inside else ReasonCode.PCIM_VIDEO_OUTSIDE_WINDOW.value,
            attempts=0,
            discovered_at=now,
            updated_at=now,
        )
        if not self.store.add_video(row):
            return
        report.new += 1
        code = ReasonCode.PCIM_VIDEO_FOUND if inside else ReasonCode.PCIM_VIDEO_OUTSIDE_WINDOW
        if not inside:
            report.dropped[code.value] += 1
        self._log(
            code,
            None,
            now,
            video_id=ref.video_id,
            channel_id=ref.channel_id,
            published_at=ref.published_at.astimezone(KST).isoformat(),
            session=str(own) if own else None,
            title=ref.title[:120],
            source=ref.source,
        )

    def _problems(self, now: datetime, report: PollReport) -> None:
        for src in {id(self.discovery): self.discovery, id(self.transcripts): self.transcripts}.values():
            drain = getattr(src, "drain_problems", None)
            if drain is None:
                continue
            for problem in drain():
                report.malformed += 1
                self._log(ReasonCode.PCIM_TRANSCRIPT_MALFORMED, None, now, file=problem.key, error=str(problem))
                self.store.event(
                    now, "offline", ReasonCode.PCIM_TRANSCRIPT_MALFORMED.value, problem.key, error=str(problem)
                )

    def _unlisted_channels(self, now: datetime) -> None:
        listed = getattr(self.discovery, "channels", None)
        if listed is None:
            return
        for cid in sorted(set(listed()) - set(self.channels) - self._not_whitelisted):
            self._not_whitelisted.add(cid)
            self._log(ReasonCode.PCIM_CHANNEL_NOT_WHITELISTED, None, now, channel_id=cid)
            self.store.event(now, "discover", ReasonCode.PCIM_CHANNEL_NOT_WHITELISTED.value, cid)

    # ------------------------------------------------------------------ one video
    def _drop(self, now: datetime, video: VideoRow, code: ReasonCode, report: PollReport, **fields: Any) -> None:
        self.store.set_video(
            video.video_id, now, status="DROPPED", reason=code.value, error=fields.get("error"), attempt=True
        )
        report.dropped[code.value] += 1
        self._log(code, None, now, video_id=video.video_id, channel_id=video.channel_id, **fields)

    def _pend(self, now: datetime, video: VideoRow, stage: str, exc: Exception, report: PollReport) -> None:
        if video.attempts + 1 >= self.max_attempts:
            self._drop(
                now,
                video,
                ReasonCode.PCIM_SOURCE_ERROR,
                report,
                stage=stage,
                error=str(exc),
                attempts=video.attempts + 1,
            )
            return
        self.store.set_video(video.video_id, now, status="PENDING", error=f"{stage}: {exc}", attempt=True)
        report.pending += 1
        self._log(
            ReasonCode.PCIM_SOURCE_ERROR,
            None,
            now,
            video_id=video.video_id,
            stage=stage,
            error=str(exc),
            kept="PENDING",
        )

    def _process(self, now: datetime, session: date, video: VideoRow, report: PollReport) -> None:
        report.processed += 1
        ref = VideoRef(
            video.video_id,
            video.channel_id,
            video.title,
            video.published_at,
            video.url,
            video.channel_title,
            video.source,
        )
        stored = self.store.transcript(video.video_id)
        if stored is None:
            try:
                tx = self.retry.call(
                    lambda: self.transcripts.transcript(video.video_id, self.languages),
                    self._retrying(report, f"transcript:{video.video_id}", now),
                )
            except NoTranscript as exc:
                self._drop(now, video, ReasonCode.PCIM_NO_TRANSCRIPT, report, error=str(exc))
                return
            except MalformedItem as exc:
                self._drop(now, video, ReasonCode.PCIM_TRANSCRIPT_MALFORMED, report, error=str(exc), file=exc.key)
                return
            except PipelineError as exc:
                self._pend(now, video, "transcript", exc, report)
                return
            stored = TranscriptRow(
                video_id=video.video_id,
                language=tx.language,
                is_generated=tx.is_generated,
                text=tx.text,
                source=tx.source,
                fetched_at=now,
            )
            self.store.save_transcript(stored)
            self._log(
                ReasonCode.PCIM_TRANSCRIPT,
                None,
                now,
                video_id=video.video_id,
                language=tx.language,
                generated=tx.is_generated,
                chars=len(tx.text),
            )
        text = TranscriptText(video.video_id, stored.text, stored.language, stored.is_generated, stored.source)
        prompt = build_prompt(ref, text, self.max_chars)
        on_retry = self._retrying(report, f"llm:{video.video_id}", now)
        try:
            result = extract(self.provider, prompt, call=lambda ask: self.retry.call(ask, on_retry))
        except (TransientSourceError, LlmError) as exc:
            self._pend(now, video, "extraction", exc, report)
            return
        for a in result.attempts:
            self.store.add_extraction(
                ExtractionRow(
                    video_id=video.video_id,
                    attempt=a.attempt,
                    provider=self.provider.name,
                    model=self.provider.model,
                    raw_reply=a.raw,
                    valid=a.valid,
                    error=a.error,
                    parsed=a.extraction.as_json() if a.extraction else None,
                    created_at=now,
                )
            )
            if not a.valid and result.extraction is not None:
                self._log(
                    ReasonCode.PCIM_EXTRACTION_RETRY,
                    None,
                    now,
                    video_id=video.video_id,
                    attempt=a.attempt,
                    error=a.error,
                )
        if result.extraction is None:
            errors = [a.error for a in result.attempts]
            self._drop(
                now,
                video,
                ReasonCode.PCIM_EXTRACTION_FAILED,
                report,
                error="; ".join(e or "" for e in errors),
                attempts=len(errors),
            )
            return
        ex = result.extraction
        self._log(
            ReasonCode.PCIM_EXTRACTION,
            None,
            now,
            video_id=video.video_id,
            provider=self.provider.name,
            model=self.provider.model,
            attempts=len(result.attempts),
            recommendations=len(ex.recommendations),
        )
        rows = []
        for rec in ex.recommendations:
            resolved = self.listing.resolve(rec.ticker_or_name)
            status, reason = "RESOLVED", None
            if resolved is None:
                status, reason = "DROPPED", ReasonCode.PCIM_UNRESOLVED_TICKER.value
                self._log(
                    ReasonCode.PCIM_UNRESOLVED_TICKER, None, now, video_id=video.video_id, name=rec.ticker_or_name
                )
            elif rec.conviction not in CONVICTIONS:
                status, reason = "DROPPED", ReasonCode.PCIM_BAD_CONVICTION.value
                self._log(
                    ReasonCode.PCIM_BAD_CONVICTION,
                    resolved.code,
                    now,
                    video_id=video.video_id,
                    conviction=rec.conviction,
                )
            rows.append(
                RefRow(
                    session=session,
                    video_id=video.video_id,
                    channel_id=video.channel_id,
                    influencer=video.influencer,
                    raw_name=rec.ticker_or_name[:200],
                    symbol=resolved.code if resolved else None,
                    name=resolved.name if resolved else None,
                    conviction=rec.conviction[:32],
                    status=status,
                    reason=reason,
                )
            )
        self.store.replace_refs(video.video_id, rows)
        self.store.set_video(video.video_id, now, status="DONE", attempt=True)
        report.done += 1


def candidates(store: PcimStore, session: date) -> list[Candidate]:
    """I3: resolved refs of the session merged per ticker — the highest conviction, every ref kept."""
    by_symbol: dict[str, list[RefRow]] = {}
    for r in store.refs(session, status="RESOLVED"):
        if r.symbol:
            by_symbol.setdefault(r.symbol, []).append(r)
    out = []
    for sym, rows in sorted(by_symbol.items()):
        best = min(rows, key=lambda r: CONVICTIONS.index(r.conviction)).conviction
        refs = tuple(CandidateRef(r.video_id, r.channel_id, r.influencer, r.raw_name, r.conviction) for r in rows)
        out.append(Candidate(sym, rows[0].name or sym, best, refs))
    return out
