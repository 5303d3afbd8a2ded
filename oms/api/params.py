"""Query-parameter types that accept exactly what ``/openapi.json`` says they accept.

Pydantic's lax parsing would take ``since=0.5`` (a UNIX timestamp) for a ``date-time`` or ``2026``
for a ``date``; these types demand the ISO text the schema documents (``format: date-time`` /
``format: date``), so a schema-violating value is a 422 naming the parameter. A date-time without
an offset is still taken (routes read it as KST, as documented on them).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?")


def _datetime_text(v: Any) -> Any:
    if isinstance(v, datetime) or (isinstance(v, str) and DATETIME_TEXT.fullmatch(v.strip())):
        return v.strip() if isinstance(v, str) else v
    raise ValueError("must be an ISO 8601 date-time, e.g. 2026-02-27T09:00:00+09:00")


def _date_text(v: Any) -> Any:
    if isinstance(v, date) or (isinstance(v, str) and DATE_TEXT.fullmatch(v.strip())):
        return v.strip() if isinstance(v, str) else v
    raise ValueError("must be an ISO 8601 date, e.g. 2026-02-27")


IsoDateTime = Annotated[datetime, BeforeValidator(_datetime_text)]
IsoDate = Annotated[date, BeforeValidator(_date_text)]


QueryText = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
"""Free text in a query (a strategy id, a symbol): a NUL character is a 422 naming the parameter (Postgres
cannot compare it), and the schema says so."""
