"""Fault injection for the fake KIS: gateway storms switched on and off by a test or a ``trader fake-kis`` user.

Control over HTTP on the fake's own port (``/_fake/...`` is not a KIS path, so no client ever hits it by
accident), or in-process with ``FakeKis.faults``:

- ``POST /_fake/faults`` ``{"kind": "http_500" | "rate_limit" | "none", "paths": ["/uapi/..."], "count": N}``
  or ``{..., "until_cleared": true}``: the next ``count`` REST requests under ``paths`` (path prefixes; all of
  ``/uapi/`` when omitted) — or every one until cleared — get the fault *instead of* being served, so the fake
  never acts on them (an order that met a fault was not placed). ``"kind": "none"`` clears the fault.
  Optional ``"status"`` overrides the HTTP status of a ``rate_limit`` reply (e.g. 429).
- ``GET /_fake/faults``: the active fault (or null) and how many replies each kind has replaced so far.
- ``DELETE /_fake/faults``: clears the fault.

Kinds (specs/kis.md §3.2, §5):

- ``http_500``: HTTP 500 with a non-KIS body (``text/plain``), as a failing gateway or back end answers;
  no ``rt_cd``/``msg_cd``, so a client cannot tell whether a POST was acted on.
- ``rate_limit``: the over-limit reply exactly as KIS sends it — HTTP 500 (``status`` to change it) with
  ``{"rt_cd":"1","msg_cd":"EGW00201","msg1":"초당 거래건수를 초과하였습니다."}``.

Every replaced reply is still written to the fake's request log (status, msg_cd) like any other request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from broker_core.kis.fake.wire import envelope

KINDS = ("http_500", "rate_limit")
RATE_LIMIT_BODY = envelope("1", "EGW00201", "초당 거래건수를 초과하였습니다.")
HTTP_500_TEXT = "500 Internal Server Error"


class FaultSpecError(ValueError):
    """A fault request the fake cannot act on (unknown kind, bad count or paths)."""


@dataclass(frozen=True, slots=True)
class Injected:
    """The reply that replaces a request's: ``body`` is a JSON object, or text when ``text`` is set."""

    kind: str
    status: int
    body: dict[str, Any] | None = None
    text: str | None = None
    msg_cd: str = ""


@dataclass(slots=True)
class Fault:
    kind: str
    paths: tuple[str, ...]
    remaining: int | None
    """Replies still to replace; None = until cleared."""
    status: int

    def matches(self, path: str) -> bool:
        return not self.paths or any(path.startswith(p) for p in self.paths)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "paths": list(self.paths),
            "remaining": self.remaining,
            "until_cleared": self.remaining is None,
            "status": self.status,
        }


class FaultPlan:
    """At most one active fault; ``take`` is called for each REST request before the fake serves it."""

    def __init__(self) -> None:
        self.active: Fault | None = None
        self.injected: Counter[str] = Counter()
        """Replies replaced so far, by kind (never reset by ``clear``)."""

    def set(
        self,
        kind: str,
        *,
        paths: list[str] | tuple[str, ...] | None = None,
        count: int | None = None,
        until_cleared: bool = False,
        status: int | None = None,
    ) -> Fault | None:
        """Switch a fault on (``kind`` "none" clears). Exactly one of ``count`` > 0 and ``until_cleared``."""
        if kind == "none":
            self.clear()
            return None
        if kind not in KINDS:
            raise FaultSpecError(f"kind must be one of {', '.join((*KINDS, 'none'))}, got {kind!r}")
        if until_cleared == (count is not None):
            raise FaultSpecError('give either "count" (a positive integer) or "until_cleared": true')
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
            raise FaultSpecError(f"count must be a positive integer, got {count!r}")
        prefixes = tuple(paths or ())
        if not all(isinstance(p, str) and p.startswith("/") for p in prefixes):
            raise FaultSpecError(f"paths must be path prefixes starting with '/', got {list(prefixes)!r}")
        if status is None:
            status = 500
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultSpecError(f"status must be an HTTP error status (400-599), got {status!r}")
        self.active = Fault(kind, prefixes, None if until_cleared else count, status if kind == "rate_limit" else 500)
        return self.active

    def clear(self) -> None:
        self.active = None

    def take(self, path: str) -> Injected | None:
        """The fault's reply for a request to ``path`` (consuming one of its ``count``), or None."""
        fault = self.active
        if fault is None or not fault.matches(path):
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.active = None
        self.injected[fault.kind] += 1
        if fault.kind == "http_500":
            return Injected("http_500", 500, text=HTTP_500_TEXT)
        return Injected("rate_limit", fault.status, body=dict(RATE_LIMIT_BODY), msg_cd="EGW00201")

    def snapshot(self) -> dict[str, Any]:
        return {
            "active": self.active.describe() if self.active else None,
            "injected": {k: self.injected.get(k, 0) for k in KINDS},
        }

    def apply_request(self, data: Any) -> Fault | None:
        """``set`` from a ``POST /_fake/faults`` JSON body."""
        if not isinstance(data, dict):
            raise FaultSpecError("body must be a JSON object")
        unknown = set(data) - {"kind", "paths", "count", "until_cleared", "status"}
        if unknown:
            raise FaultSpecError(f"unknown fields: {sorted(unknown)}")
        paths = data.get("paths")
        if paths is not None and not isinstance(paths, list):
            raise FaultSpecError("paths must be a list of path prefixes")
        until_cleared = data.get("until_cleared", False)
        if not isinstance(until_cleared, bool):
            raise FaultSpecError("until_cleared must be true or false")
        return self.set(
            str(data.get("kind", "")),
            paths=paths,
            count=data.get("count"),
            until_cleared=until_cleared,
            status=data.get("status"),
        )


__all__ = ["KINDS", "Fault", "FaultPlan", "FaultSpecError", "Injected", "RATE_LIMIT_BODY"]
