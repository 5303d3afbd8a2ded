"""Read side: history for the API and the state rebuild after a restart.

``Repository`` reads the database only (rows of one OMS instance). The OMS should read through
``MergedReader``, which overlays the journal's undrained rows on the database rows — the database
may lag behind or be down, yet an intent accepted during an outage must still show in
``GET /api/v1/intents``. The journal's image of a key wins; filters, ordering and limits are
applied after merging.

Consistency of the overlay without locks: read the journal's drain cursor ``C`` first, then the
database, then the journal entries with ``seq > C``. Everything up to ``C`` was committed to the
database before the database read began; everything after ``C`` is in the journal read, which
happens last and so is at least as new as anything the database returned.

Lists are ordered newest first (intents by ``received_at``, orders by ``created_at``, fills by
``ts``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.core.types import FillRecord, IntentRecord, OrderRecord, OrderState
from oms.store import codec, models
from oms.store.drain import is_connectivity_error
from oms.store.journal import Journal

log = logging.getLogger("oms.store.repository")
_R = TypeVar("_R")

Row = dict[str, Any]
TERMINAL_ORDER_STATES: tuple[str, ...] = tuple(s.value for s in OrderState if s.is_terminal)

_T = models.TABLES
_ORDER_BY: dict[str, str] = {"intents": "received_at", "orders": "created_at", "fills": "ts"}
STATE_TABLES: tuple[str, ...] = (
    "positions",
    "allocations",
    "orders",
    "intents",
    "strategy_state",
    "oms_state",
    "risk_daily_strategy",
    "risk_daily_portfolio",
)


def _eq_filters(**eq: Any) -> dict[str, Any]:
    return {k: v for k, v in eq.items() if v is not None}


class Repository:
    """Database reads for one OMS instance. Returns records of ``oms.core.types``."""

    def __init__(self, engine: AsyncEngine, instance_id: str) -> None:
        self.engine = engine
        self.instance_id = instance_id

    # --- generic ------------------------------------------------------------------------------

    async def select_rows(
        self,
        table: str,
        *,
        eq: dict[str, Any] | None = None,
        where: Iterable[sa.ColumnElement[bool]] = (),
        order_desc: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Rows of ``table`` of this instance matching ``eq`` (column = value) and ``where``."""
        t = _T[table]
        q = sa.select(t).where(t.c.oms_instance_id == self.instance_id)
        for col, val in (eq or {}).items():
            q = q.where(t.c[col] == val)
        for cond in where:
            q = q.where(cond)
        if order_desc:
            q = q.order_by(t.c[order_desc].desc(), *[t.c[k].desc() for k in codec.RECORD_BY_TABLE[table].KEY])
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            result = await conn.execute(q)
            keys = tuple(result.keys())
            return [dict(zip(keys, r, strict=True)) for r in result]

    async def get_row(self, table: str, *key: Any) -> Row | None:
        names = codec.RECORD_BY_TABLE[table].KEY
        rows = await self.select_rows(table, eq=dict(zip(names, key, strict=True)), limit=1)
        return rows[0] if rows else None

    async def _records(self, table: str, **kw: Any) -> list[Any]:
        return [codec.from_row(table, r) for r in await self.select_rows(table, **kw)]

    # --- API reads ----------------------------------------------------------------------------

    async def list_intents(
        self,
        strategy_id: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        limit: int = 500,
        since: datetime | None = None,
    ) -> list[IntentRecord]:
        t = _T["intents"]
        where = [t.c.received_at >= since] if since is not None else []
        return await self._records(
            "intents",
            eq=_eq_filters(strategy_id=strategy_id, symbol=symbol, status=_val(status)),
            where=where,
            order_desc="received_at",
            limit=limit,
        )

    async def get_intent(self, intent_id: str) -> IntentRecord | None:
        row = await self.get_row("intents", intent_id)
        return None if row is None else codec.from_row("intents", row)

    async def find_intent_by_key(self, idempotency_key: str) -> IntentRecord | None:
        rows = await self.select_rows("intents", eq={"idempotency_key": idempotency_key}, limit=1)
        return codec.from_row("intents", rows[0]) if rows else None

    async def list_orders(
        self, strategy_id: str | None = None, symbol: str | None = None, open_only: bool = False, limit: int = 500
    ) -> list[OrderRecord]:
        t = _T["orders"]
        where = [t.c.state.not_in(TERMINAL_ORDER_STATES)] if open_only else []
        return await self._records(
            "orders",
            eq=_eq_filters(strategy_id=strategy_id, symbol=symbol),
            where=where,
            order_desc="created_at",
            limit=limit,
        )

    async def get_order(self, order_id: str) -> OrderRecord | None:
        row = await self.get_row("orders", order_id)
        return None if row is None else codec.from_row("orders", row)

    async def list_fills(
        self, strategy_id: str | None = None, symbol: str | None = None, since: datetime | None = None, limit: int = 500
    ) -> list[FillRecord]:
        t = _T["fills"]
        where = [t.c.ts >= since] if since is not None else []
        return await self._records(
            "fills", eq=_eq_filters(strategy_id=strategy_id, symbol=symbol), where=where, order_desc="ts", limit=limit
        )

    # --- rebuild ------------------------------------------------------------------------------

    async def load_state(
        self, trading_day: str | None = None, intents_since: datetime | None = None
    ) -> dict[str, list[Any]]:
        """What the OMS needs to rebuild its state: every position, allocation, strategy_state and
        oms_state row; non-terminal orders and orders created since ``intents_since``; fills since
        then (their execution ids de-duplicate the broker's daily fill list); intents received at or after
        ``intents_since`` (the start of the trading day — for idempotency; all intents when ``None``); risk_daily_* rows
        of ``trading_day`` (all days when ``None``)."""
        day = _eq_filters(trading_day=trading_day)
        t_o, t_i = _T["orders"], _T["intents"]
        t_f = _T["fills"]
        open_or_today: sa.ColumnElement[bool] = t_o.c.state.not_in(TERMINAL_ORDER_STATES)
        if intents_since:
            open_or_today = sa.or_(open_or_today, t_o.c.created_at >= intents_since)
        return {
            "positions": await self._records("positions"),
            "allocations": await self._records("allocations"),
            "orders": await self._records("orders", where=[open_or_today]),
            "fills": await self._records("fills", where=[t_f.c.ts >= intents_since] if intents_since else []),
            "intents": await self._records(
                "intents", where=[t_i.c.received_at >= intents_since] if intents_since else []
            ),
            "strategy_state": await self._records("strategy_state"),
            "oms_state": await self._records("oms_state"),
            "risk_daily_strategy": await self._records("risk_daily_strategy", eq=day),
            "risk_daily_portfolio": await self._records("risk_daily_portfolio", eq=day),
        }

    async def counts(self) -> dict[str, int]:
        """Rows per table for this instance (tests, diagnostics)."""
        out = {}
        async with self.engine.connect() as conn:
            for name, t in _T.items():
                q = sa.select(sa.func.count()).select_from(t).where(t.c.oms_instance_id == self.instance_id)
                out[name] = int((await conn.execute(q)).scalar_one())
        return out


def _val(v: Any) -> Any:
    return getattr(v, "value", v)


class MergedReader:
    """The OMS's read view: database rows overlaid with the journal's undrained rows.

    Same read methods as ``Repository``. While the database is down (``db_ok()`` returns False,
    e.g. ``lambda: drainer.db_ok``, or a read fails with a connectivity error) reads fall back to the
    journal alone — every entry it still holds, drained or not (``Journal.prune`` keeps drained
    entries for some days) — and ``degraded`` is set, so the API keeps answering with what it has.
    """

    def __init__(self, repository: Repository, journal: Journal, db_ok: Callable[[], bool] | None = None) -> None:
        self.repo = repository
        self.journal = journal
        self.db_ok = db_ok or (lambda: True)
        self.degraded = False
        """True when the last read could not use the database."""

    async def _db_read(self, read: Callable[[], Awaitable[_R]]) -> tuple[bool, _R | None]:
        """``(True, await read())``, or ``(False, None)`` when the database is known down or
        unreachable (the caller then reads the whole journal instead)."""
        if not self.db_ok():
            self.degraded = True
            return False, None
        try:
            out = await read()
        except Exception as exc:
            if not is_connectivity_error(exc):
                raise
            log.warning("DB_UNAVAILABLE: read from the journal only (%s: %s)", type(exc).__name__, exc)
            self.degraded = True
            return False, None
        self.degraded = False
        return True, out

    async def _merged(
        self,
        table: str,
        *,
        eq: dict[str, Any],
        where: Iterable[sa.ColumnElement[bool]] = (),
        match: Callable[[Row], bool] = lambda r: True,
        order_desc: str | None = None,
        limit: int | None = None,
        db: bool = True,
    ) -> list[Row]:
        cursor = self.journal.cursor()
        db_ok, db_rows = False, None
        if db:
            # Ask for extra rows: some may be superseded by journal images that no longer match.
            extra = self.journal.count_after(cursor, table) if limit is not None else 0
            db_ok, db_rows = await self._db_read(
                lambda: self.repo.select_rows(
                    table, eq=eq, where=where, order_desc=order_desc, limit=None if limit is None else limit + extra
                )
            )
        else:
            self.degraded = True
        after = cursor if db_ok else 0
        # a long backlog takes a while to decode: off the event loop (journal reads take no lock)
        j_all = await asyncio.to_thread(self.journal.latest_rows, after, table)
        j_rows = j_all.get(table, {})
        merged: dict[str, Row] = {codec.row_key(table, r): r for r in db_rows or ()}
        for key, row in j_rows.items():
            if all(row.get(k) == _val(v) for k, v in eq.items()) and match(row):
                merged[key] = row
            else:
                merged.pop(key, None)  # the newer image no longer matches the filter
        rows = list(merged.values())
        if order_desc:
            keys = codec.RECORD_BY_TABLE[table].KEY
            rows.sort(key=lambda r: (r[order_desc], *(r[k] for k in keys)), reverse=True)
        return rows if limit is None else rows[:limit]

    async def _records(self, table: str, **kw: Any) -> list[Any]:
        return [codec.from_row(table, r) for r in await self._merged(table, **kw)]

    async def _get(self, table: str, *key: Any) -> Any:
        cursor = self.journal.cursor()
        db_ok, db = await self._db_read(lambda: self.repo.get_row(table, *key))
        after = cursor if db_ok else 0
        j = self.journal.latest_row(table, codec.key_text(table, *key), after_seq=after)
        row = j if j is not None else db
        return None if row is None else codec.from_row(table, row)

    # --- API reads ----------------------------------------------------------------------------

    async def list_intents(
        self,
        strategy_id: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        limit: int = 500,
        since: datetime | None = None,
    ) -> list[IntentRecord]:
        t = _T["intents"]
        return await self._records(
            "intents",
            eq=_eq_filters(strategy_id=strategy_id, symbol=symbol, status=_val(status)),
            where=[t.c.received_at >= since] if since else [],
            match=(lambda r: r["received_at"] >= since) if since else (lambda r: True),
            order_desc="received_at",
            limit=limit,
        )

    async def get_intent(self, intent_id: str) -> IntentRecord | None:
        return await self._get("intents", intent_id)

    async def find_intent_by_key(self, idempotency_key: str) -> IntentRecord | None:
        cursor = self.journal.cursor()
        db_ok, db = await self._db_read(
            lambda: self.repo.select_rows("intents", eq={"idempotency_key": idempotency_key}, limit=1)
        )
        after = cursor if db_ok else 0
        j = await asyncio.to_thread(self.journal.find_rows, "intents", "idempotency_key", idempotency_key, after)
        rows = j or db or []
        return codec.from_row("intents", rows[-1]) if rows else None

    async def list_orders(
        self, strategy_id: str | None = None, symbol: str | None = None, open_only: bool = False, limit: int = 500
    ) -> list[OrderRecord]:
        t = _T["orders"]
        return await self._records(
            "orders",
            eq=_eq_filters(strategy_id=strategy_id, symbol=symbol),
            where=[t.c.state.not_in(TERMINAL_ORDER_STATES)] if open_only else [],
            match=(lambda r: r["state"] not in TERMINAL_ORDER_STATES) if open_only else (lambda r: True),
            order_desc="created_at",
            limit=limit,
        )

    async def get_order(self, order_id: str) -> OrderRecord | None:
        return await self._get("orders", order_id)

    async def list_fills(
        self, strategy_id: str | None = None, symbol: str | None = None, since: datetime | None = None, limit: int = 500
    ) -> list[FillRecord]:
        t = _T["fills"]
        return await self._records(
            "fills",
            eq=_eq_filters(strategy_id=strategy_id, symbol=symbol),
            where=[t.c.ts >= since] if since else [],
            match=(lambda r: r["ts"] >= since) if since else (lambda r: True),
            order_desc="ts",
            limit=limit,
        )

    # --- rebuild ------------------------------------------------------------------------------

    async def load_state(
        self, trading_day: str | None = None, intents_since: datetime | None = None, *, db: bool = True
    ) -> dict[str, list[Any]]:
        """``Repository.load_state`` overlaid with the journal. With ``db=False`` (or the database
        down) only the journal is read — every entry it still holds; check ``degraded`` afterwards:
        such a state lacks whatever was pruned from the journal, so the OMS should not trust it for
        entries (positions come back from the broker's reconciliation anyway)."""
        t_o, t_i = _T["orders"], _T["intents"]
        day = _eq_filters(trading_day=trading_day)
        not_terminal: Callable[[Row], bool] = lambda r: r["state"] not in TERMINAL_ORDER_STATES  # noqa: E731
        since_ok: Callable[[Row], bool] = (  # noqa: E731
            (lambda r: r["received_at"] >= intents_since) if intents_since else (lambda r: True)
        )
        t_f = _T["fills"]
        open_or_today: sa.ColumnElement[bool] = t_o.c.state.not_in(TERMINAL_ORDER_STATES)
        order_ok = not_terminal
        fill_ok: Callable[[Row], bool] = lambda r: True  # noqa: E731
        if intents_since:
            open_or_today = sa.or_(open_or_today, t_o.c.created_at >= intents_since)
            order_ok = lambda r: not_terminal(r) or r["created_at"] >= intents_since  # noqa: E731
            fill_ok = lambda r: r["ts"] >= intents_since  # noqa: E731
        queries: dict[str, dict[str, Any]] = {
            "positions": {"eq": {}},
            "allocations": {"eq": {}},
            "orders": {"eq": {}, "where": [open_or_today], "match": order_ok},
            "fills": {"eq": {}, "where": [t_f.c.ts >= intents_since] if intents_since else [], "match": fill_ok},
            "intents": {
                "eq": {},
                "where": [t_i.c.received_at >= intents_since] if intents_since else [],
                "match": since_ok,
            },
            "strategy_state": {"eq": {}},
            "oms_state": {"eq": {}},
            "risk_daily_strategy": {"eq": day},
            "risk_daily_portfolio": {"eq": day},
        }
        out: dict[str, list[Any]] = {}
        degraded = False
        for table, kw in queries.items():
            out[table] = await self._records(table, db=db, **kw)
            degraded = degraded or self.degraded
        self.degraded = degraded
        return out
