"""Bounds of the values the OMS API v1 accepts: what its database columns hold and what nothing downstream
can overflow on (ARCHITECTURE.md, "Bad input never reaches the journal").

A value the journal takes must also be one Postgres takes, or the journal → database drain stops on it:
integers fit a ``BIGINT``, numbers are finite (``Infinity`` is no JSON and no ``jsonb``), strings carry no
control characters (Postgres ``text`` refuses NUL, ``jsonb`` refuses ``\\u0000``) and are valid UTF-8,
timestamps are timezone-aware and within 2000..2099 (so ``+ timedelta`` or a UTC conversion never leaves
``datetime``'s range).

FastAPI validates parsed JSON in pydantic's *python* mode, where lax mode turns ``"10"`` and ``true`` into
quantities; the types below are strict per field instead (a model-wide ``strict=True`` would also refuse
ISO datetime strings and enum names there).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError

INT64_MAX = 2**63 - 1
"""The largest value of a ``BIGINT`` column (quantities)."""
INT64_MIN = -(2**63)
EARLIEST_YEAR = 2000
LATEST_YEAR = 2099
MAX_BPS = 10_000.0
"""100 %: a slippage or spread limit beyond that means nothing."""
MAX_CANCEL_AFTER_SEC = 366 * 86_400.0
"""An order's working time is at most a year."""
STATUS_MAX_BYTES = 16_384
"""A heartbeat ``status`` serialized as JSON (UTF-8)."""
STATUS_MAX_DEPTH = 8
STATUS_MAX_ITEMS = 1_000
"""Keys plus list items over the whole ``status`` document."""
STATUS_MAX_KEY_CHARS = 128

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be stored (a control character or a lone surrogate), or None when it may."""
    bad = _CONTROL.search(value)
    if bad is not None:
        return f"must not contain control characters (found {bad.group()!r} at position {bad.start()})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"must be valid UTF-8 (lone surrogate at position {exc.start})"
    return None


def _clean_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("string_control_character", "{problem}", {"problem": problem})
    return value


def _real_number(value: Any) -> Any:
    """Numbers only: ``true`` and ``"71000"`` are not prices (lax mode would take both)."""
    if isinstance(value, (bool, str, bytes, bytearray)):
        raise PydanticCustomError("number_type", "Input should be a number, not {kind}", {"kind": type(value).__name__})
    return value


def _in_window(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "must include a UTC offset")
    # Checked on the local fields first: comparing or converting year 1 / 9999 with an offset overflows.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise PydanticCustomError(
            "datetime_window",
            "must be within the years {earliest}..{latest}",
            {"earliest": EARLIEST_YEAR, "latest": LATEST_YEAR},
        )
    return value


class _CleanTextSchema:
    """Declares the control-character rule in the JSON schema (so schema-driven clients and fuzzers know it)."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        js = handler(schema)
        js["pattern"] = r"^[^\u0000-\u001f\u007f]*$"
        return js


Text = Annotated[str, AfterValidator(_clean_text), _CleanTextSchema()]
"""A string without control characters (add ``max_length`` on the field)."""
numbers_only = BeforeValidator(_real_number)
"""Refuses bool and str for a float (lax mode takes both). Put it after the float's ``Field(...)`` in
``Annotated``, as below: then the bounds show in the JSON schema too."""
Price = Annotated[float, Field(gt=0, allow_inf_nan=False), numbers_only]
"""A finite price > 0."""
Bps = Annotated[float, Field(ge=0, le=MAX_BPS, allow_inf_nan=False), numbers_only]
"""Basis points within 0..10 000."""
CancelAfterSec = Annotated[float, Field(gt=0, le=MAX_CANCEL_AFTER_SEC, allow_inf_nan=False), numbers_only]
"""An order's working time: > 0 s, at most a year."""
Timestamp = Annotated[datetime, AfterValidator(_in_window), Field(json_schema_extra={"pattern": "^20[0-9]{2}-"})]
"""A timezone-aware datetime within 2000..2099 (the schema states the years as a pattern; ``date-time`` says
the offset)."""
MAX_QTY = 2**53 - 1
"""The largest quantity: every JSON reader holds it exactly (schema validators compare numbers as doubles,
so a bound near 2**63 would let 2**63 + 192 pass the published schema and fail here)."""


def _json_integer(value: Any) -> Any:
    """JSON has one number type and JSON Schema's ``integer`` includes ``10.0``: take an integral number,
    refuse ``10.5``, ``"10"`` and ``true`` (lax mode would take the last two)."""
    if isinstance(value, (bool, str, bytes, bytearray)):
        raise PydanticCustomError("int_type", "Input should be an integer, not {kind}", {"kind": type(value).__name__})
    return value


Quantity = Annotated[int, Field(ge=0, le=MAX_QTY), BeforeValidator(_json_integer)]
"""A share count: an integer (``10.0`` is one) within 0..2**53-1; add ``gt=0`` on the field for a positive one."""


def json_problem(
    value: Any,
    *,
    max_bytes: int = STATUS_MAX_BYTES,
    max_depth: int = STATUS_MAX_DEPTH,
    max_items: int = STATUS_MAX_ITEMS,
) -> str | None:
    """Why a free-form JSON document may not be stored, or None when it may: nested at most ``max_depth``,
    at most ``max_items`` keys and list items, keys and strings clean (``text_problem``), integers within
    int64, numbers finite, at most ``max_bytes`` as UTF-8 JSON."""
    items = 0

    def walk(v: Any, path: str, depth: int) -> str | None:
        nonlocal items
        if depth > max_depth:
            return f"{path}: nested deeper than {max_depth} levels"
        if isinstance(v, dict):
            for k, child in v.items():
                items += 1
                if items > max_items:
                    return f"more than {max_items} keys and items"
                if not isinstance(k, str) or len(k) > STATUS_MAX_KEY_CHARS:
                    return f"{path}: keys are strings of at most {STATUS_MAX_KEY_CHARS} characters"
                problem = text_problem(k)
                if problem is not None:
                    return f"{path}: key {problem}"
                found = walk(child, f"{path}.{k}", depth + 1)
                if found is not None:
                    return found
            return None
        if isinstance(v, list):
            for i, child in enumerate(v):
                items += 1
                if items > max_items:
                    return f"more than {max_items} keys and items"
                found = walk(child, f"{path}[{i}]", depth + 1)
                if found is not None:
                    return found
            return None
        if isinstance(v, str):
            problem = text_problem(v)
            return None if problem is None else f"{path}: {problem}"
        if isinstance(v, bool) or v is None:
            return None
        if isinstance(v, int):
            return None if INT64_MIN <= v <= INT64_MAX else f"{path}: integer outside int64"
        if isinstance(v, float):
            return None if math.isfinite(v) else f"{path}: numbers must be finite"
        return f"{path}: {type(v).__name__} is not a JSON value"

    found = walk(value, "$", 1)
    if found is not None:
        return found
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        return f"{size} bytes of JSON, more than {max_bytes}"
    return None


def _bounded_json(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise PydanticCustomError("json_bounds", "{problem}", {"problem": problem})
    return value


BoundedJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""A free-form JSON object (a heartbeat ``status``) within the ``json_problem`` bounds."""
