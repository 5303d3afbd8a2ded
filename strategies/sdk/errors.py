"""Typed errors of the strategy SDK.

A strategy decides what to do from the error type, never from message text:

- :class:`OmsUnavailable` — the OMS could not be reached or kept failing (connect error, timeout,
  5xx, 429) after the bounded retries; the intent may be re-sent later with the *same* key.
- :class:`OmsAuthError` — 401/403: wrong key or acting as another strategy; retrying won't help.
- :class:`OmsBadRequest` — 400/422: the request itself is malformed (a bug in the caller).
- :class:`OmsNotFound` — 404 (e.g. no position in that symbol, or an endpoint the OMS lacks).
- :class:`OmsRejected` — any other 4xx (e.g. 409 conflict), with the OMS's ``detail``.

An intent the OMS *decides* to reject is not an error: it is an ``IntentReply`` with status REJECTED.
"""

from __future__ import annotations

from typing import Any


class SdkError(Exception):
    """Base of every error raised by the strategy SDK."""


class OmsError(SdkError):
    """A call to the OMS failed; ``status`` is the HTTP status (None when no response came)."""

    def __init__(
        self, message: str, *, method: str = "", path: str = "", status: int | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail


class OmsUnavailable(OmsError):
    """Retries exhausted: connection errors, timeouts, 5xx or 429 on every attempt."""


class OmsAuthError(OmsError):
    """401/403: the API key is missing, wrong, or not allowed to act as this strategy."""


class OmsRejected(OmsError):
    """A 4xx answer (other than auth); ``detail`` carries the OMS's explanation."""


class OmsBadRequest(OmsRejected):
    """400/422: the request did not pass the OMS's validation."""


class OmsNotFound(OmsRejected):
    """404: the resource (or the endpoint) does not exist."""


class MarketDataUnavailable(OmsNotFound):
    """A market-data endpoint answered 404: the OMS lacks the endpoint or has no data for the symbol."""


class IntentsClosed(SdkError):
    """The strategy is shutting down: no new intents are sent (in-flight ones still complete)."""


def describe_detail(detail: Any) -> str:
    """One readable line from a FastAPI ``detail`` (a string or a list of field errors)."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                field = item.get("field") or ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = item.get("msg", "")
                parts.append(f"{field}: {msg}" if field else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)
