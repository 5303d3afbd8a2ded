"""What the KIS adapter must remember across restarts (a small SQLite file on the OMS volume).

- ``orders``: every client order id with its request and its fate — ``SENDING`` (written before the
  request leaves), ``PLACED`` (KIS order number ``odno`` and branch known), ``UNKNOWN`` (the reply was
  lost: resolved by the daily-orders query before anything else happens), ``REJECTED``,
  ``NOT_SENT`` (failed before sending) and ``NOT_FOUND`` (the lookup proved it never reached KIS).
- ``odnos``: every KIS order number of the day (orders, modify and cancel orders) → client order id.
- ``fills``: the executions handed out, with stable ids ``KIS-<date>-<odno>-<cumulative qty>`` so the
  same fill read from a notice or from the daily query is the same execution for the OMS.
- ``notice_progress``: the quantity per order number already seen in fill notices.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from broker_core.models import Fill, OrderType, Side

SENDING = "SENDING"
PLACED = "PLACED"
UNKNOWN = "UNKNOWN"
REJECTED = "REJECTED"
NOT_SENT = "NOT_SENT"
NOT_FOUND = "NOT_FOUND"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, trade_date TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
  qty INTEGER NOT NULL, order_type TEXT NOT NULL, limit_price REAL, ord_dvsn TEXT NOT NULL, state TEXT NOT NULL,
  odno TEXT, branch TEXT, reason TEXT, sent_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS odnos (
  trade_date TEXT NOT NULL, odno TEXT NOT NULL, client_order_id TEXT NOT NULL, kind TEXT NOT NULL,
  PRIMARY KEY (trade_date, odno));
CREATE TABLE IF NOT EXISTS fills (
  execution_id TEXT PRIMARY KEY, trade_date TEXT NOT NULL, odno TEXT NOT NULL, client_order_id TEXT NOT NULL,
  symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, ts TEXT NOT NULL,
  cum_qty INTEGER NOT NULL, source TEXT NOT NULL, commission REAL NOT NULL, tax REAL NOT NULL,
  seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notice_progress (
  trade_date TEXT NOT NULL, odno TEXT NOT NULL, notice_cum INTEGER NOT NULL, PRIMARY KEY (trade_date, odno));
"""


@dataclass(slots=True)
class StoredOrder:
    client_order_id: str
    trade_date: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: float | None
    ord_dvsn: str
    state: str
    odno: str | None
    branch: str | None
    reason: str | None
    sent_at: datetime
    updated_at: datetime


def execution_id(trade_date: str, odno: str, cum_qty: int) -> str:
    return f"KIS-{trade_date}-{odno}-{cum_qty}"


class KisOrderStore:
    def __init__(self, path: str | Path | None) -> None:
        """``path`` None keeps everything in memory (tests, or no volume)."""
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(self.path) if self.path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # -- orders ------------------------------------------------------------------------------

    def record_sending(
        self,
        cid: str,
        trade_date: str,
        symbol: str,
        side: Side,
        qty: int,
        order_type: OrderType,
        limit_price: float | None,
        ord_dvsn: str,
        now: datetime,
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,?,?)",
            (
                cid,
                trade_date,
                symbol,
                side.value,
                qty,
                order_type.value,
                limit_price,
                ord_dvsn,
                SENDING,
                now.isoformat(),
                now.isoformat(),
            ),
        )

    def set_state(self, cid: str, state: str, now: datetime, reason: str | None = None) -> None:
        self._exec(
            "UPDATE orders SET state=?, reason=COALESCE(?, reason), updated_at=? WHERE client_order_id=?",
            (state, reason, now.isoformat(), cid),
        )

    def set_placed(self, cid: str, odno: str, branch: str, now: datetime) -> None:
        order = self.get(cid)
        if order is None:
            raise KeyError(cid)
        self._exec(
            "UPDATE orders SET state=?, odno=?, branch=?, updated_at=? WHERE client_order_id=?",
            (PLACED, odno, branch, now.isoformat(), cid),
        )
        self.link(order.trade_date, odno, cid, "ORDER")

    def get(self, cid: str) -> StoredOrder | None:
        row = self._exec("SELECT * FROM orders WHERE client_order_id=?", (cid,)).fetchone()
        return _order(row) if row else None

    def orders(self, trade_date: str | None = None, states: tuple[str, ...] | None = None) -> list[StoredOrder]:
        sql, args = "SELECT * FROM orders WHERE 1=1", []
        if trade_date is not None:
            sql += " AND trade_date=?"
            args.append(trade_date)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        return [_order(r) for r in self._exec(sql + " ORDER BY sent_at", tuple(args)).fetchall()]

    # -- order numbers -----------------------------------------------------------------------

    def link(self, trade_date: str, odno: str, cid: str, kind: str) -> None:
        self._exec("INSERT OR IGNORE INTO odnos VALUES (?,?,?,?)", (trade_date, odno, cid, kind))

    def client_for(self, trade_date: str, odno: str) -> tuple[str, str] | None:
        """(client order id, kind) of a KIS order number of that day."""
        row = self._exec(
            "SELECT client_order_id, kind FROM odnos WHERE trade_date=? AND odno=?", (trade_date, odno)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def odnos_of(self, cid: str) -> list[tuple[str, str]]:
        """(odno, kind) of a client order, in the order they were linked."""
        rows = self._exec("SELECT odno, kind FROM odnos WHERE client_order_id=? ORDER BY rowid", (cid,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def known_odnos(self, trade_date: str) -> set[str]:
        return {r[0] for r in self._exec("SELECT odno FROM odnos WHERE trade_date=?", (trade_date,)).fetchall()}

    # -- fills -------------------------------------------------------------------------------

    def emitted(self, trade_date: str, odno: str) -> tuple[int, float]:
        """(cumulative qty, amount) already handed out for this order number."""
        row = self._exec(
            "SELECT COALESCE(MAX(cum_qty), 0), COALESCE(SUM(qty * price), 0) FROM fills WHERE trade_date=? AND odno=?",
            (trade_date, odno),
        ).fetchone()
        return int(row[0]), float(row[1])

    def add_fill(self, trade_date: str, odno: str, fill: Fill, cum_qty: int, source: str) -> bool:
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM fills").fetchone()[0]
            cur = self._db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    fill.execution_id,
                    trade_date,
                    odno,
                    fill.client_order_id,
                    fill.symbol,
                    fill.side.value,
                    fill.qty,
                    fill.price,
                    fill.ts.isoformat(),
                    cum_qty,
                    source,
                    fill.commission,
                    fill.tax,
                    seq,
                ),
            )
            return cur.rowcount == 1

    def fills(self, trade_date: str | None = None, cid: str | None = None) -> list[Fill]:
        sql, args = "SELECT * FROM fills WHERE 1=1", []
        if trade_date is not None:
            sql += " AND trade_date=?"
            args.append(trade_date)
        if cid is not None:
            sql += " AND client_order_id=?"
            args.append(cid)
        rows = self._exec(sql + " ORDER BY seq", tuple(args)).fetchall()
        return [
            Fill(
                execution_id=r[0],
                client_order_id=r[3],
                broker_order_id=r[2],
                symbol=r[4],
                side=Side(r[5]),
                qty=int(r[6]),
                price=float(r[7]),
                ts=datetime.fromisoformat(r[8]),
                commission=float(r[11]),
                tax=float(r[12]),
            )
            for r in rows
        ]

    def notice_cum(self, trade_date: str, odno: str) -> int:
        row = self._exec(
            "SELECT notice_cum FROM notice_progress WHERE trade_date=? AND odno=?", (trade_date, odno)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_notice_cum(self, trade_date: str, odno: str, value: int) -> None:
        self._exec("INSERT OR REPLACE INTO notice_progress VALUES (?,?,?)", (trade_date, odno, value))


def _order(row: tuple[Any, ...]) -> StoredOrder:
    # sqlite3 rows are untyped (typeshed: Any); the column types are fixed by the schema above.
    return StoredOrder(
        client_order_id=str(row[0]),
        trade_date=str(row[1]),
        symbol=str(row[2]),
        side=Side(str(row[3])),
        qty=int(row[4]),
        order_type=OrderType(str(row[5])),
        limit_price=float(row[6]) if row[6] is not None else None,
        ord_dvsn=str(row[7]),
        state=str(row[8]),
        odno=str(row[9]) if row[9] is not None else None,
        branch=str(row[10]) if row[10] is not None else None,
        reason=str(row[11]) if row[11] is not None else None,
        sent_at=datetime.fromisoformat(str(row[12])),
        updated_at=datetime.fromisoformat(str(row[13])),
    )
