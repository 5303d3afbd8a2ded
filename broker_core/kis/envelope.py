"""The KIS REST response envelope (specs/kis.md §3.2, §3.3, §5) and its mapping onto broker errors.

Body: ``rt_cd`` ("0" success), ``msg_cd``, ``msg1`` and data in ``output`` or ``output1``/``output2``;
token endpoints answer OAuth-style ``error_code``/``error_description`` instead, which are folded into
``msg_cd``/``msg1`` here. Headers: ``tr_id``, ``tr_cont`` (F/M more, D/E last), ``gt_uid``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker_core.errors import AuthError, BrokerError, BrokerUnavailable, RateLimited

RATE_LIMITED = "EGW00201"
TOKEN_EXPIRED = "EGW00123"
TOKEN_INVALID = "EGW00121"
TOKEN_RATE_LIMITED = "EGW00133"
QUERY_OK = "MCA00000"
ORDER_ACCEPTED = "APBK0013"
MARKET_CLOSED = "APBK0919"
NO_SUCH_PRODUCT = "APBK0656"
AUTH_CODES = frozenset({TOKEN_EXPIRED, TOKEN_INVALID, "EGW00102", "EGW00103", "EGW00105"})
MORE = frozenset({"F", "M"})
LAST = frozenset({"D", "E"})


class KisApiError(BrokerError):
    """A KIS business error (rt_cd ≠ "0") that maps onto no more specific broker error."""

    def __init__(self, message: str = "", *, code: str | None = None, http_status: int = 200, tr_id: str = "") -> None:
        super().__init__(message, code=code or "KIS_ERROR")
        self.http_status = http_status
        self.tr_id = tr_id


@dataclass(slots=True)
class KisResponse:
    status: int
    body: dict[str, Any]
    tr_id: str = ""
    tr_cont: str = ""
    gt_uid: str = ""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def rt_cd(self) -> str:
        return str(self.body.get("rt_cd", "")).strip()

    @property
    def msg_cd(self) -> str:
        return str(self.body.get("msg_cd") or self.body.get("error_code") or "").strip()

    @property
    def msg1(self) -> str:
        return str(self.body.get("msg1") or self.body.get("error_description") or "").strip()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.rt_cd == "0"

    @property
    def output(self) -> Any:
        return self.body.get("output")

    @property
    def output1(self) -> Any:
        return self.body.get("output1")

    @property
    def output2(self) -> Any:
        return self.body.get("output2")

    def rows(self, key: str = "output") -> list[dict[str, Any]]:
        """``key`` as a list of rows (an object becomes one row; missing/empty → [])."""
        value = self.body.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, dict):
            return [value] if value else []
        return [r for r in value if isinstance(r, dict)]

    def obj(self, key: str = "output") -> dict[str, Any]:
        """``key`` as one object (the first row of an array; {} when missing)."""
        rows = self.rows(key)
        return rows[0] if rows else {}

    @property
    def has_more(self) -> bool:
        return self.tr_cont.strip().upper() in MORE

    def cursor(self, name: str) -> str:
        """A continuation cursor (``ctx_area_fk100`` …), looked up case-insensitively, stripped."""
        for key, value in self.body.items():
            if key.lower() == name.lower():
                return str(value or "").strip()
        return ""

    def describe(self) -> str:
        return f"{self.msg_cd or 'HTTP_' + str(self.status)}: {self.msg1 or '(no message)'}"


def parse_response(status: int, headers: Mapping[str, str], content: bytes | str) -> KisResponse:
    """Parse any KIS reply; a body that is not a JSON object becomes ``{}`` (kept in ``_raw``)."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    body: dict[str, Any]
    try:
        parsed = json.loads(text) if text.strip() else {}
        body = parsed if isinstance(parsed, dict) else {"_raw": parsed}
    except ValueError:
        body = {"_raw": text[:500]}
    low = {k.lower(): v for k, v in headers.items()}
    return KisResponse(
        status=status,
        body=body,
        tr_id=low.get("tr_id", ""),
        tr_cont=low.get("tr_cont", ""),
        gt_uid=low.get("gt_uid", ""),
        headers=dict(headers),
    )


def is_rate_limited(resp: KisResponse) -> bool:
    return resp.msg_cd == RATE_LIMITED


def is_token_error(resp: KisResponse) -> bool:
    return resp.msg_cd in (TOKEN_EXPIRED, TOKEN_INVALID)


def error_for(resp: KisResponse, *, retry_after: float = 1.0) -> BrokerError:
    """The broker error for a failed reply (callers decide first whether a send was ambiguous)."""
    code = resp.msg_cd or f"HTTP_{resp.status}"
    text = f"KIS {resp.tr_id or ''} {resp.describe()}".replace("  ", " ")
    if resp.msg_cd == RATE_LIMITED or resp.msg_cd == TOKEN_RATE_LIMITED:
        return RateLimited(text, retry_after=retry_after, code=code)
    if resp.msg_cd in AUTH_CODES or resp.status in (401, 403):
        return AuthError(text, code=code)
    if resp.status >= 500 and not resp.msg_cd:
        return BrokerUnavailable(text, code=code)
    return KisApiError(text, code=code, http_status=resp.status, tr_id=resp.tr_id)


def num(row: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    """A KIS number (a string, maybe blank or signed) as float."""
    value = row.get(key)
    if value is None:
        return default
    text = str(value).strip().replace(",", "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        return default


def integer(row: Mapping[str, Any], key: str, default: int = 0) -> int:
    return int(num(row, key, float(default)))


def text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()
