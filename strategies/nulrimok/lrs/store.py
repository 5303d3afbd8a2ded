"""``ResearchStore``: the LRS SQLite file through SQLAlchemy 2 (Core). Writes are upserts on each table's
natural key and each fetched unit (one symbol × one kind) is stored together with its ``fetch_state`` row
in one transaction, so an interrupted fill resumes exactly where it stopped and never duplicates a row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from broker_core.clock import KST
from strategies.nulrimok.bars30 import Bar30
from strategies.nulrimok.features import DailyRow, FlowRow, SymbolFeatures
from strategies.nulrimok.lrs import schema as t
from strategies.nulrimok.regime import RegimeResult
from strategies.nulrimok.selection import SectorScore, Selection


@dataclass(frozen=True, slots=True)
class FetchState:
    symbol: str
    kind: str
    first_day: date
    through: date
    rows: int


def _upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    )
    conn.execute(stmt, list(rows))


class ResearchStore:
    """One LRS file. Thread-safe for the short transactions it runs (SQLite WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}", connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(self.engine, "connect", _pragmas)
        t.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ---- fetched market data ---------------------------------------------------------------------
    def store_fetch(
        self,
        symbol: str,
        kind: str,
        first_day: date,
        through: date,
        *,
        daily: Iterable[DailyRow] = (),
        flow: Iterable[FlowRow] = (),
        bars30: Iterable[Bar30] = (),
        now: datetime | None = None,
    ) -> int:
        """Upsert one fetched unit and widen its ``fetch_state`` window, atomically; returns rows written."""
        d = [
            {
                "symbol": symbol,
                "day": r.day,
                "open": r.open,
                "high": r.high,
                "low": r.low,
                "close": r.close,
                "volume": r.volume,
            }
            for r in daily
        ]
        f = [{"symbol": symbol, "day": r.day, "foreign_net": r.foreign_net, "inst_net": r.inst_net} for r in flow]
        b = [
            {
                "symbol": symbol,
                "start": x.start.astimezone(KST).isoformat(),
                "day": x.day,
                "open": x.open,
                "high": x.high,
                "low": x.low,
                "close": x.close,
                "volume": x.volume,
                "value": x.value,
            }
            for x in bars30
        ]
        stamp = (now or datetime.now(KST)).isoformat()
        with self.engine.begin() as conn:
            old = conn.execute(
                select(t.fetch_state.c.first_day, t.fetch_state.c.through, t.fetch_state.c.rows).where(
                    t.fetch_state.c.symbol == symbol, t.fetch_state.c.kind == kind
                )
            ).first()
            _upsert(conn, t.daily_bars, d)
            _upsert(conn, t.investor_flow, f)
            _upsert(conn, t.bars_30m, b)
            n = len(d) + len(f) + len(b)
            state = {
                "symbol": symbol,
                "kind": kind,
                "first_day": min(first_day, old.first_day) if old else first_day,
                "through": max(through, old.through) if old else through,
                "rows": (old.rows if old else 0) + n,
                "updated_at": stamp,
            }
            _upsert(conn, t.fetch_state, [state])
        return n

    def fetch_states(self) -> dict[tuple[str, str], FetchState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.fetch_state)).all()
        return {(r.symbol, r.kind): FetchState(r.symbol, r.kind, r.first_day, r.through, r.rows) for r in rows}

    def daily(self, symbol: str, start: date | None = None, end: date | None = None) -> list[DailyRow]:
        return self.daily_many([symbol], start, end).get(symbol, [])

    def daily_many(
        self, symbols: Iterable[str] | None, start: date | None = None, end: date | None = None
    ) -> dict[str, list[DailyRow]]:
        """Daily rows by symbol (oldest first); ``symbols`` None = every symbol stored."""
        c = t.daily_bars.c
        q = select(c.symbol, c.day, c.open, c.high, c.low, c.close, c.volume).order_by(c.symbol, c.day)
        if symbols is not None:
            q = q.where(c.symbol.in_(list(symbols)))
        if start is not None:
            q = q.where(c.day >= start)
        if end is not None:
            q = q.where(c.day <= end)
        out: dict[str, list[DailyRow]] = defaultdict(list)
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out[r.symbol].append(DailyRow(r.day, r.open, r.high, r.low, r.close, r.volume))
        return dict(out)

    def flow_many(
        self, symbols: Iterable[str] | None, start: date | None = None, end: date | None = None
    ) -> dict[str, list[FlowRow]]:
        c = t.investor_flow.c
        q = select(c.symbol, c.day, c.foreign_net, c.inst_net).order_by(c.symbol, c.day)
        if symbols is not None:
            q = q.where(c.symbol.in_(list(symbols)))
        if start is not None:
            q = q.where(c.day >= start)
        if end is not None:
            q = q.where(c.day <= end)
        out: dict[str, list[FlowRow]] = defaultdict(list)
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out[r.symbol].append(FlowRow(r.day, r.foreign_net, r.inst_net))
        return dict(out)

    def sessions(self, symbol: str, end: date | None = None) -> list[date]:
        """Dates with a daily row of ``symbol`` (the index: the session calendar the data knows)."""
        c = t.daily_bars.c
        q = select(c.day).where(c.symbol == symbol).order_by(c.day)
        if end is not None:
            q = q.where(c.day <= end)
        with self.engine.connect() as conn:
            return [r.day for r in conn.execute(q)]

    def bars30_many(self, symbols: Iterable[str], days: Iterable[date]) -> dict[str, list[Bar30]]:
        c = t.bars_30m.c
        q = select(t.bars_30m).where(c.symbol.in_(list(symbols)), c.day.in_(list(days))).order_by(c.symbol, c.start)
        out: dict[str, list[Bar30]] = defaultdict(list)
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out[r.symbol].append(
                    Bar30(r.symbol, datetime.fromisoformat(r.start), r.open, r.high, r.low, r.close, r.volume, r.value)
                )
        return dict(out)

    # ---- reference data ----------------------------------------------------------------------------
    def set_sectors(self, mapping: Mapping[str, str], as_of: date) -> None:
        rows = [{"symbol": s, "sector": sec, "as_of": as_of} for s, sec in mapping.items()]
        with self.engine.begin() as conn:
            _upsert(conn, t.sectors, rows)

    def sectors(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.symbol: r.sector for r in conn.execute(select(t.sectors.c.symbol, t.sectors.c.sector))}

    def sectors_as_of(self) -> date | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(t.sectors.c.as_of))).scalar()

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, t.meta, [{"key": key, "value": value}])

    # ---- N2 precompute and the DSE artifact --------------------------------------------------------
    def save_features(self, asof: date, feats: Iterable[SymbolFeatures]) -> None:
        rows = [{"asof": asof, "symbol": f.symbol, "data": json.dumps(f.to_json())} for f in feats]
        with self.engine.begin() as conn:
            conn.execute(delete(t.features).where(t.features.c.asof == asof))
            _upsert(conn, t.features, rows)

    def load_features(self, asof: date) -> dict[str, SymbolFeatures]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.features.c.data).where(t.features.c.asof == asof)).all()
        out = [SymbolFeatures.from_json(json.loads(r.data)) for r in rows]
        return {f.symbol: f for f in out}

    def save_regime(self, r: RegimeResult) -> None:
        row = {
            "asof": r.asof,
            "tier": r.tier,
            "score": r.score,
            "risk_mult": r.risk_mult,
            "data": json.dumps(r.to_json()),
        }
        with self.engine.begin() as conn:
            _upsert(conn, t.regime, [row])

    def save_sector_scores(self, asof: date, scores: Iterable[SectorScore]) -> None:
        rows = [
            {
                "asof": asof,
                "sector": s.sector,
                "rank": s.rank,
                "score": s.score,
                "weight": s.weight,
                "data": json.dumps(asdict(s)),
            }
            for s in scores
        ]
        with self.engine.begin() as conn:
            conn.execute(delete(t.sector_scores).where(t.sector_scores.c.asof == asof))
            _upsert(conn, t.sector_scores, rows)

    def save_selection(self, sel: Selection) -> None:
        """Regime, sector scores and the watchlist rows of ``sel.session`` (replacing earlier ones)."""
        self.save_regime(sel.regime)
        self.save_sector_scores(sel.asof, sel.sectors.values())
        rows = []
        for sym, r in sorted(sel.rows.items()):
            rows.append(
                {
                    "session": sel.session,
                    "symbol": sym,
                    "tradable": r.tradable,
                    "drop_reason": r.drop_reason.value if r.drop_reason else None,
                    "daily_rank": r.daily_rank,
                    "overflow_rank": r.overflow_rank,
                    "bucket": r.bucket,
                    "data": json.dumps(r.to_json(), default=str),
                }
            )
        with self.engine.begin() as conn:
            conn.execute(delete(t.watchlist).where(t.watchlist.c.session == sel.session))
            _upsert(conn, t.watchlist, rows)

    def watchlist(self, session: date) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.watchlist).where(t.watchlist.c.session == session)).all()
        return [dict(r._mapping) for r in rows]

    # ---- engine position state ---------------------------------------------------------------------
    def save_position_state(self, symbol: str, entry_ts: str, data: Mapping[str, Any], now: datetime) -> None:
        row = {
            "symbol": symbol,
            "entry_ts": entry_ts,
            "data": json.dumps(dict(data), default=str),
            "updated_at": now.isoformat(),
        }
        with self.engine.begin() as conn:
            _upsert(conn, t.position_state, [row])

    def load_position_state(self, symbol: str) -> tuple[str, dict[str, Any]] | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.position_state).where(t.position_state.c.symbol == symbol)).first()
        return (r.entry_ts, json.loads(r.data)) if r else None

    def drop_position_state(self, symbol: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.position_state).where(t.position_state.c.symbol == symbol))

    # ---- inspection ----------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per table (tests, status)."""
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(tbl)).scalar() or 0)
                for name, tbl in t.metadata.tables.items()
            }


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
