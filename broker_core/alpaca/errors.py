"""alpaca-py failures mapped onto the broker error taxonomy (``broker_core.errors``).

The SDK raises ``APIError`` for any HTTP error after its own retries; ``str(e)`` is the raw body, and
``e.code`` / ``e.message`` re-parse it and raise on a non-JSON body (a gateway's HTML 504) or a body
without ``code`` (``{"message": "forbidden."}``), so the body is parsed here defensively from ``str(e)``.
Transport failures are ``requests`` exceptions: a connection that could not be opened was never sent
(safe to retry); a read timeout or a dropped connection after sending leaves a mutation's outcome unknown.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from pydantic import ValidationError

from broker_core.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailable,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)

DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
NOT_CANCELABLE = "NOT_CANCELABLE"
MAX_MESSAGE = 300


class InvalidOrder(OrderRejected):
    """Refused by the adapter before anything was sent; ``field`` names the bad field."""

    def __init__(self, field: str, message: str, *, code: str = "INVALID_ORDER") -> None:
        super().__init__(message if message.startswith(f"{field}:") else f"{field}: {message}", code=code)
        self.field = field


def parse_body(text: str) -> tuple[int | None, str]:
    """(Alpaca error code, message) from an error body of any shape (JSON with or without ``code``, HTML, empty)."""
    try:
        data: Any = json.loads(text)
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        raw = data.get("code")
        code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        message = data.get("message")
        return code, str(message) if message is not None else text[:MAX_MESSAGE]
    return None, " ".join(str(text).split())[:MAX_MESSAGE]


def _retry_after(exc: APIError) -> float:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("Retry-After"):
            return max(0.0, float(headers["Retry-After"]))
        if headers.get("X-RateLimit-Reset"):
            return max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
    except (TypeError, ValueError):
        pass
    return 1.0


def _was_sent(exc: requests.RequestException) -> bool:
    """False when the connection could not even be opened (the request never left)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        name = type(inner).__name__
        return name not in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError")
    return True


def map_error(exc: BaseException, what: str, *, client_order_id: str | None = None) -> BrokerError:
    """The taxonomy error for ``exc`` raised by an SDK call doing ``what``. ``client_order_id`` marks a
    mutation (submit, cancel): its outcome is unknown when the failure may have followed the send."""
    mutation = client_order_id is not None

    def unknown(detail: str) -> BrokerError:
        if mutation:
            assert client_order_id is not None
            return OutcomeUnknown(f"{what}: {detail}", client_order_id=client_order_id)
        return BrokerUnavailable(f"{what}: {detail}")

    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, TimeoutError):
        return unknown("no answer before the deadline")
    if isinstance(exc, requests.RequestException):
        if not _was_sent(exc):
            return BrokerUnavailable(f"{what}: cannot connect ({type(exc).__name__})")
        return unknown(f"{type(exc).__name__}: {' '.join(str(exc).split())[:MAX_MESSAGE]}")
    if isinstance(exc, APIError):
        status = exc.status_code or 0
        code, message = parse_body(str(exc))
        text = f"{what}: HTTP {status}" + (f" code {code}" if code else "") + f": {message}"
        if status == 429:
            return RateLimited(text, retry_after=_retry_after(exc))
        if status == 401:
            return AuthError(text)
        if status == 403:
            if code == 40310000:
                low = message.lower()
                kind = "INSUFFICIENT_QTY" if "qty" in low else "INSUFFICIENT_BUYING_POWER"
                if "market is closed" in low:
                    kind = "MARKET_CLOSED"
                return OrderRejected(text, code=kind)
            return AuthError(text)
        if status == 404:
            return OrderNotFound(text)
        if status == 422 or (400 <= status < 500 and mutation):
            low = message.lower()
            if "client_order_id must be unique" in low or "client order id must be unique" in low:
                return OrderRejected(text, code=DUPLICATE_CLIENT_ORDER_ID)
            if "not cancelable" in low or "not replaceable" in low:
                return OrderRejected(text, code=NOT_CANCELABLE)
            return OrderRejected(text, code="INVALID_PRICE" if code == 42210000 else "BROKER_REJECTED")
        if status >= 500:
            return unknown(text)
        return BrokerError(text, code=f"HTTP_{status}")
    if isinstance(exc, ValidationError):
        return unknown(f"unreadable answer: {' '.join(str(exc).split())[:MAX_MESSAGE]}")
    if isinstance(exc, ValueError):
        return OrderRejected(f"{what}: refused by alpaca-py before sending: {exc}", code="INVALID_ORDER")
    return unknown(f"{type(exc).__name__}: {exc}")


__all__ = ["DUPLICATE_CLIENT_ORDER_ID", "NOT_CANCELABLE", "InvalidOrder", "map_error", "parse_body"]
