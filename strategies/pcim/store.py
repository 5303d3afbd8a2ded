"""The PCIM store (SQLAlchemy 2; SQLite by default): everything the night fetched and every drop with
its reason, the watchlist and its approvals, position memos for recovery, and analytics (I25).

Tables: ``pcim_videos`` (one row per video, its status and drop reason, attempts), ``pcim_transcripts``,
``pcim_extractions`` (every LLM attempt with the raw reply), ``pcim_candidate_refs`` (every name a
video recommended, resolved or not), ``pcim_events`` (pipeline events: channel errors, retries,
malformed files), ``pcim_watchlist`` (candidates and rejections per session, multipliers, approval),
``pcim_positions`` (the engine's memo of each open position: stop, target, trail, partial),
``pcim_trades`` (one row per entry: bucket, influencers, sizing, slippage, MFE/MAE, outcome).

Short transactions, one per call, so the night pipeline (a worker thread) and the strategy (the
event loop) can share one file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from broker_core.clock import KST
from strategies.pcim.config import StoreConfig
from strategies.sdk.config import PROJECT_ROOT


class Base(DeclarativeBase):
    pass


class VideoRow(Base):
    __tablename__ = "pcim_videos"
    video_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), index=True)
    channel_title: Mapped[str] = mapped_column(String(200), default="")
    influencer: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str] = mapped_column(String(500), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    session: Mapped[date | None] = mapped_column(Date, index=True, nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    discovered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TranscriptRow(Base):
    __tablename__ = "pcim_transcripts"
    video_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="")
    is_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32), default="")
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExtractionRow(Base):
    __tablename__ = "pcim_extractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100), default="")
    raw_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    valid: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    parsed: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RefRow(Base):
    __tablename__ = "pcim_candidate_refs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session: Mapped[date] = mapped_column(Date, index=True)
    video_id: Mapped[str] = mapped_column(String(64), index=True)
    channel_id: Mapped[str] = mapped_column(String(64))
    influencer: Mapped[str] = mapped_column(String(100), default="")
    raw_name: Mapped[str] = mapped_column(String(200))
    symbol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    conviction: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EventRow(Base):
    __tablename__ = "pcim_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(500), default="")
    code: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)


class WatchRow(Base):
    __tablename__ = "pcim_watchlist"
    session: Mapped[date] = mapped_column(Date, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    conviction: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(16))
    """CANDIDATE (on the list) or REJECTED (by a filter, ``reason``)."""
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    adtv20: Mapped[float | None] = mapped_column(Float, nullable=True)
    tier: Mapped[str | None] = mapped_column(String(4), nullable=True)
    item: Mapped[Any] = mapped_column(JSON, nullable=True)
    """The WatchItem (or the rejection's inputs) as JSON."""
    approval: Mapped[str] = mapped_column(String(16), default="PENDING")
    approved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PositionRow(Base):
    __tablename__ = "pcim_positions"
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TradeRow(Base):
    __tablename__ = "pcim_trades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session: Mapped[date] = mapped_column(Date, index=True)
    symbol: Mapped[str] = mapped_column(String(16), index=True)
    bucket: Mapped[str] = mapped_column(String(4))
    tier: Mapped[str] = mapped_column(String(4), default="")
    conviction: Mapped[str] = mapped_column(String(16), default="")
    influencers: Mapped[Any] = mapped_column(JSON)
    intended_qty: Mapped[int] = mapped_column(Integer, default=0)
    filled_qty: Mapped[int] = mapped_column(Integer, default=0)
    signal_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    limit_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    fill_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    slippage_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    mfe: Mapped[float | None] = mapped_column(Float, nullable=True)
    mae: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="SENT")
    exit_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    r_multiple: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)
    """Sizing breakdown, priority outcome, trend/gap stats, VWAP decision, partial-fill outcome."""
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True, slots=True)
class EvRow:
    influencer: str
    bucket: str
    trades: int
    wins: int
    avg_r: float | None
    avg_pnl: float
    ev_pnl: float


DATA_DIR_ENV = "STRATEGY_DATA_DIR"
"""The strategy's own volume (compose: ``/data``; demo/sim/backtest: the run folder's ``data``)."""


def store_url(cfg: StoreConfig) -> str:
    """``$PCIM_STORE_URL`` (``url_env``), else ``pcim.sqlite`` in ``$STRATEGY_DATA_DIR``, else ``path``."""
    env = os.environ.get(cfg.url_env)
    if env:
        return env
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(data_dir).resolve() / 'pcim.sqlite'}"
    path = Path(cfg.path)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    return f"sqlite:///{path}"


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=KST).astimezone(KST)


class PcimStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        args = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self.url = url
        self.engine: Engine = create_engine(url, connect_args=args)
        Base.metadata.create_all(self.engine)

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> PcimStore:
        return cls(store_url(cfg))

    def close(self) -> None:
        self.engine.dispose()

    def _s(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------------ videos
    def add_video(self, row: VideoRow) -> bool:
        """Insert a newly discovered video; False when it was already known (nothing changes)."""
        with self._s() as s, s.begin():
            if s.get(VideoRow, row.video_id) is not None:
                return False
            s.add(row)
            return True

    def video(self, video_id: str) -> VideoRow | None:
        with self._s() as s:
            return s.get(VideoRow, video_id)

    def videos(self, session: date | None = None, statuses: Iterable[str] | None = None) -> list[VideoRow]:
        with self._s() as s:
            q = select(VideoRow)
            if session is not None:
                q = q.where(VideoRow.session == session)
            if statuses is not None:
                q = q.where(VideoRow.status.in_(list(statuses)))
            return list(s.scalars(q.order_by(VideoRow.published_at, VideoRow.video_id)))

    def set_video(
        self,
        video_id: str,
        now: datetime,
        *,
        status: str | None = None,
        reason: str | None = None,
        error: str | None = None,
        attempt: bool = False,
    ) -> None:
        with self._s() as s, s.begin():
            row = s.get(VideoRow, video_id)
            if row is None:
                return
            if status is not None:
                row.status = status
            if reason is not None or status is not None:
                row.reason = reason
            row.last_error = error
            if attempt:
                row.attempts += 1
            row.updated_at = now

    # ------------------------------------------------------------------ transcripts / extractions / refs
    def save_transcript(self, row: TranscriptRow) -> None:
        with self._s() as s, s.begin():
            s.merge(row)

    def transcript(self, video_id: str) -> TranscriptRow | None:
        with self._s() as s:
            return s.get(TranscriptRow, video_id)

    def add_extraction(self, row: ExtractionRow) -> None:
        with self._s() as s, s.begin():
            s.add(row)

    def extractions(self, video_id: str) -> list[ExtractionRow]:
        with self._s() as s:
            q = select(ExtractionRow).where(ExtractionRow.video_id == video_id).order_by(ExtractionRow.id)
            return list(s.scalars(q))

    def replace_refs(self, video_id: str, rows: list[RefRow]) -> None:
        with self._s() as s, s.begin():
            s.execute(delete(RefRow).where(RefRow.video_id == video_id))
            s.add_all(rows)

    def refs(self, session: date, status: str | None = None) -> list[RefRow]:
        with self._s() as s:
            q = select(RefRow).where(RefRow.session == session)
            if status is not None:
                q = q.where(RefRow.status == status)
            return list(s.scalars(q.order_by(RefRow.id)))

    # ------------------------------------------------------------------ events
    def event(self, ts: datetime, stage: str, code: str, key: str = "", **detail: Any) -> None:
        with self._s() as s, s.begin():
            s.add(EventRow(ts=ts, stage=stage, key=key[:500], code=code, detail=_jsonable(detail)))

    def events(self, code: str | None = None) -> list[EventRow]:
        with self._s() as s:
            q = select(EventRow)
            if code is not None:
                q = q.where(EventRow.code == code)
            return list(s.scalars(q.order_by(EventRow.id)))

    # ------------------------------------------------------------------ watchlist and approval
    def replace_watchlist(self, session: date, rows: list[WatchRow]) -> None:
        """Write the session's list; approvals already given to a symbol still listed are kept."""
        with self._s() as s, s.begin():
            old = {r.symbol: r for r in s.scalars(select(WatchRow).where(WatchRow.session == session))}
            s.execute(delete(WatchRow).where(WatchRow.session == session))
            s.flush()
            for row in rows:
                prev = old.get(row.symbol)
                if prev is not None and row.status == "CANDIDATE" and prev.status == "CANDIDATE":
                    row.approval, row.approved_by, row.approved_at = prev.approval, prev.approved_by, prev.approved_at
                s.add(row)

    def watchlist(self, session: date, include_rejected: bool = False) -> list[WatchRow]:
        with self._s() as s:
            q = select(WatchRow).where(WatchRow.session == session)
            if not include_rejected:
                q = q.where(WatchRow.status == "CANDIDATE")
            return list(s.scalars(q.order_by(WatchRow.status, WatchRow.rank, WatchRow.symbol)))

    def has_watchlist(self, session: date) -> bool:
        with self._s() as s:
            n = s.scalar(select(func.count()).select_from(WatchRow).where(WatchRow.session == session))
            return bool(n)

    def set_approval(self, session: date, symbol: str, status: str, by: str, at: datetime) -> bool:
        with self._s() as s, s.begin():
            row = s.get(WatchRow, (session, symbol))
            if row is None or row.status != "CANDIDATE":
                return False
            row.approval, row.approved_by, row.approved_at = status, by, at
            return True

    # ------------------------------------------------------------------ positions
    def save_position(self, symbol: str, state: dict[str, Any], now: datetime) -> None:
        with self._s() as s, s.begin():
            s.merge(PositionRow(symbol=symbol, state=_jsonable(state), updated_at=now))

    def drop_position(self, symbol: str) -> None:
        with self._s() as s, s.begin():
            s.execute(delete(PositionRow).where(PositionRow.symbol == symbol))

    def positions(self) -> dict[str, dict[str, Any]]:
        with self._s() as s:
            return {r.symbol: dict(r.state) for r in s.scalars(select(PositionRow))}

    # ------------------------------------------------------------------ trades / analytics
    def open_trade(self, row: TradeRow) -> int:
        with self._s() as s, s.begin():
            s.add(row)
            s.flush()
            return int(row.id)

    def update_trade(self, trade_id: int, **values: Any) -> None:
        with self._s() as s, s.begin():
            row = s.get(TradeRow, trade_id)
            if row is None:
                return
            detail = values.pop("detail", None)
            for k, v in values.items():
                setattr(row, k, v)
            if detail:
                row.detail = _jsonable({**(row.detail or {}), **detail})

    def trades(self, session: date | None = None) -> list[TradeRow]:
        with self._s() as s:
            q = select(TradeRow)
            if session is not None:
                q = q.where(TradeRow.session == session)
            return list(s.scalars(q.order_by(TradeRow.id)))

    def last_trade(self, symbol: str) -> TradeRow | None:
        with self._s() as s:
            q = select(TradeRow).where(TradeRow.symbol == symbol).order_by(TradeRow.id.desc()).limit(1)
            return s.scalars(q).first()

    def ev_table(self) -> list[EvRow]:
        """I25: expected value by (influencer, bucket) over closed trades with a fill."""
        groups: dict[tuple[str, str], list[TradeRow]] = {}
        for t in self.trades():
            if t.closed_at is None or t.filled_qty <= 0:
                continue
            for inf in t.influencers or ["?"]:
                groups.setdefault((str(inf), t.bucket), []).append(t)
        out = []
        for (inf, bucket), rows in sorted(groups.items()):
            rs = [r.r_multiple for r in rows if r.r_multiple is not None]
            pnl = [r.realized_pnl for r in rows]
            wins = sum(1 for p in pnl if p > 0)
            avg = sum(pnl) / len(pnl)
            out.append(EvRow(inf, bucket, len(rows), wins, sum(rs) / len(rs) if rs else None, avg, avg))
        return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
