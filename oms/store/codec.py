"""Record ⇄ row conversion, shared by the journal and the database.

A *row* is a flat ``dict`` keyed by column name (see ``models``): enums become their string value,
datetimes become aware UTC datetimes, nested ``Intent``/``Constraints``/``RiskPayload`` are
flattened into the ``intents`` columns (constraints and risk payload as JSON objects). The journal
keeps rows as JSON text (``row_to_json``/``row_from_json``); the drainer inserts the same dicts.

Round trips are exact: ``from_row(*to_row(r, i)) == r`` (datetimes compare by instant; they come
back in UTC). Dict/list fields (audit payload, status detail) must hold JSON values; datetimes,
enums, tuples and sets inside them are stored as ISO strings, values and lists.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel

from oms.core.types import (
    RECORD_TYPES,
    Constraints,
    Intent,
    IntentRecord,
    IntentResult,
    IntentStatus,
    IntentType,
    OrderType,
    Record,
    RiskPayload,
    TimeHorizon,
    Urgency,
)
from oms.store import models

Row = dict[str, Any]
RECORD_BY_TABLE: dict[str, type[Record]] = {cls.TABLE: cls for cls in RECORD_TYPES}

_DATETIME_COLUMNS: dict[str, frozenset[str]] = {
    name: frozenset(c.name for c in table.c if isinstance(c.type, models.UTCDateTime))
    for name, table in models.TABLES.items()
}


# --- scalar helpers ---------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: records must carry timezone-aware datetimes")
    return value.astimezone(UTC)


def _utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # SQLite hands back UTC wall time without a zone
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    """A model's field names, read once: ``model_fields`` is a descriptor in pydantic 2.11+ (~0.4 µs an access,
    paid per key of every journal row and every row read back at a restart)."""
    return tuple(model.model_fields)


def _jsonable(value: Any) -> Any:
    """A deep copy made only of JSON types (so journal and database hold the same value)."""
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return _utc(value).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, BaseModel):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(type(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# --- generic flat records ---------------------------------------------------------------------


def _base_type(hint: Any) -> Any:
    """``X | None`` → ``X``; ``dict[str, Any]`` → ``dict``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else object
    return origin or hint


def _decoder(base: Any) -> Callable[[Any], Any]:
    if isinstance(base, type) and issubclass(base, Enum):
        return lambda v: None if v is None else base(v)
    if base is datetime:
        return _parse_dt
    if base is bool:
        return lambda v: None if v is None else bool(v)
    if base is int:
        return lambda v: None if v is None else int(v)
    if base is float:
        return lambda v: None if v is None else float(v)
    if base in (dict, list):
        return lambda v: json.loads(v) if isinstance(v, str) else v
    return lambda v: v


def _encoder(base: Any) -> Callable[[Any], Any]:
    if isinstance(base, type) and issubclass(base, Enum):
        return lambda v: None if v is None else v.value
    if base is datetime:
        return _utc_opt
    if base in (dict, list):
        return _jsonable
    return lambda v: v


@cache
def _spec(cls: type) -> tuple[tuple[str, Callable[[Any], Any], Callable[[Any], Any], bool], ...]:
    """(field, encode, decode, has_default) for every dataclass field of ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base = _base_type(hints[f.name])
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        out.append((f.name, _encoder(base), _decoder(base), has_default))
    return tuple(out)


# --- intents ----------------------------------------------------------------------------------


def _intent_to_row(rec: IntentRecord) -> Row:
    i, r = rec.intent, rec.result
    if r.intent_id != i.intent_id:
        raise ValueError(f"IntentRecord: result.intent_id {r.intent_id!r} != intent.intent_id {i.intent_id!r}")
    return {
        "intent_id": i.intent_id,
        "strategy_id": i.strategy_id,
        "symbol": i.symbol,
        "intent_type": i.intent_type.value,
        "desired_qty": i.desired_qty,
        "target_qty": i.target_qty,
        "urgency": i.urgency.value,
        "time_horizon": i.time_horizon.value,
        "idempotency_key": i.idempotency_key,
        "signal_hash": i.signal_hash,
        "constraints": _jsonable(i.constraints),
        "risk_payload": _jsonable(i.risk_payload),
        "status": r.status.value,
        "message": r.message,
        "reason_code": r.reason_code,
        "modified_qty": r.modified_qty,
        "order_id": r.order_id,
        "cooldown_until": _utc_opt(r.cooldown_until),
        "received_at": _utc(i.received_at),
        "decided_at": _utc(rec.decided_at),
    }


def _constraints(d: dict[str, Any] | None) -> Constraints:
    d = _decode_json(d) or {}
    fields = _field_names(Constraints)
    kw = {k: v for k, v in d.items() if k in fields}
    if kw.get("order_type") is not None:
        kw["order_type"] = OrderType(kw["order_type"])
    if kw.get("expiry_ts") is not None:
        kw["expiry_ts"] = _parse_dt(kw["expiry_ts"])
    return Constraints.model_construct(**kw)


def _risk_payload(d: dict[str, Any] | None) -> RiskPayload:
    d = _decode_json(d) or {}
    fields = _field_names(RiskPayload)
    return RiskPayload.model_construct(**{k: v for k, v in d.items() if k in fields})


def _decode_json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def _intent_from_row(row: Row) -> IntentRecord:
    intent = Intent(
        intent_id=row["intent_id"],
        strategy_id=row["strategy_id"],
        symbol=row["symbol"],
        intent_type=IntentType(row["intent_type"]),
        received_at=_parse_dt(row["received_at"]),  # type: ignore[arg-type]
        idempotency_key=row["idempotency_key"],
        desired_qty=row.get("desired_qty"),
        target_qty=row.get("target_qty"),
        urgency=Urgency(row["urgency"]),
        time_horizon=TimeHorizon(row["time_horizon"]),
        constraints=_constraints(row.get("constraints")),
        risk_payload=_risk_payload(row.get("risk_payload")),
        signal_hash=row.get("signal_hash"),
    )
    result = IntentResult(
        intent_id=row["intent_id"],
        status=IntentStatus(row["status"]),
        message=row.get("message") or "",
        reason_code=row.get("reason_code"),
        modified_qty=row.get("modified_qty"),
        order_id=row.get("order_id"),
        cooldown_until=_parse_dt(row.get("cooldown_until")),
    )
    return IntentRecord(intent=intent, result=result, decided_at=_parse_dt(row["decided_at"]))  # type: ignore[arg-type]


# --- public API -------------------------------------------------------------------------------


def to_row(record: Any, instance_id: str | None) -> tuple[str, Row]:
    """``(table, row)`` for one record. With ``instance_id=None`` the row has no
    ``oms_instance_id`` (the journal's form: the drainer stamps its own instance id)."""
    cls = type(record)
    table = getattr(cls, "TABLE", None)
    if cls is IntentRecord:
        row = _intent_to_row(record)
    elif table is not None and RECORD_BY_TABLE.get(table) is cls:
        row = {name: enc(getattr(record, name)) for name, enc, _dec, _d in _spec(cls)}
    else:
        raise TypeError(f"not an OMS record: {cls.__name__}")
    if instance_id is not None:
        row["oms_instance_id"] = instance_id
    return cls.TABLE, row


def from_row(table: str, row: Row | Any) -> Any:
    """The record for a row (a dict or a SQLAlchemy ``Row``); extra columns are ignored."""
    if not isinstance(row, dict):
        row = dict(row._mapping)
    cls = RECORD_BY_TABLE.get(table)
    if cls is None:
        raise KeyError(f"unknown table {table!r}")
    if cls is IntentRecord:
        return _intent_from_row(row)
    kw = {}
    for name, _enc, dec, has_default in _spec(cls):
        if name in row:
            kw[name] = dec(row[name])
        elif not has_default:
            raise KeyError(f"{table}: row has no column {name!r}")
    return cls(**kw)


def key_values(table: str, row: Row) -> tuple[Any, ...]:
    return tuple(row[k] for k in RECORD_BY_TABLE[table].KEY)


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """``json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)`` as one encoder built
    once: ``json.dumps`` with arguments builds a ``JSONEncoder`` and a C encoder on every call, about half
    its cost for a journal row (four rows and four keys per intent). Same text; no circular-reference check
    (rows are trees)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(default=default, separators=(",", ":"), ensure_ascii=False).encode
    encode = make(None, default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda value: "".join(encode(value, 0))


def row_key(table: str, row: Row) -> str:
    """The natural key as text (a JSON list of the ``KEY`` values): the journal's ``key``."""
    return _encode_key(key_values(table, row))


def record_key(record: Any) -> str:
    return row_key(*to_row(record, None))


def key_text(table: str, *values: Any) -> str:
    """The journal key for explicit key values, e.g. ``key_text("orders", order_id)``."""
    if len(values) != len(RECORD_BY_TABLE[table].KEY):
        raise ValueError(f"{table}: key is {RECORD_BY_TABLE[table].KEY}, got {values!r}")
    return _encode_key(list(values))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_encode_key = _compact_encoder(_no_default)
_encode_row = _compact_encoder(_json_default)


def row_to_json(row: Row) -> str:
    return _encode_row(row)


def row_from_json(table: str, text: str) -> Row:
    """The row dict stored by ``row_to_json`` with its datetime columns restored."""
    row: Row = json.loads(text)
    for name in _DATETIME_COLUMNS[table]:
        v = row.get(name)
        if isinstance(v, str):
            row[name] = _parse_dt(v)
    return row


def _sample_intent_row() -> Row:
    now = datetime.now(UTC)
    intent = Intent("i", "S", "X", IntentType.ENTER, now, "k")
    return _intent_to_row(IntentRecord(intent, IntentResult("i", IntentStatus.ACCEPTED), now))


def schema_mismatches() -> list[str]:
    """Differences between the records and the models' columns (empty when in step)."""
    problems = []
    for table, cls in RECORD_BY_TABLE.items():
        cols = {c.name for c in models.TABLES[table].c if not models.is_generated(c)} - models.SERVER_COLUMNS
        fields = set(_sample_intent_row()) if cls is IntentRecord else {name for name, *_ in _spec(cls)}
        if fields != cols:
            problems.append(f"{table}: record-only {sorted(fields - cols)}, column-only {sorted(cols - fields)}")
        pk = tuple(c.name for c in models.TABLES[table].primary_key.columns)
        if pk != ("oms_instance_id", *cls.KEY):
            problems.append(f"{table}: primary key {pk} != (oms_instance_id, *{cls.KEY})")
    return problems
