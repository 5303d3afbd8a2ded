"""Fault injection for the fake Alpaca, switched on and off by a test or a ``trader fake-alpaca`` user.

Over HTTP on the fake's own port (``/_fake/...`` is not an Alpaca path, so no client hits it by accident),
or in-process with ``FakeAlpaca.faults``:

- ``POST /_fake/faults`` with one of the kinds below; ``GET /_fake/faults`` shows what is active and how
  many replies, orders and events each kind has affected so far; ``DELETE /_fake/faults`` clears all.

Kinds (several may be active at once, one of each):

``{"kind": "status", "status": 429|500|502|503|504, "count": N | "until_cleared": true,
"paths": ["/v2/orders"], "methods": ["POST"]}``
    A storm: the matching REST requests get the status *instead of* being served (nothing is done). 429
    answers ``{"code": 42910000, "message": "rate limit exceeded"}`` with ``Retry-After``; the 5xx answer
    a non-JSON gateway text. ``paths`` are prefixes (default every ``/v2/`` path), ``methods`` default all.

``{"kind": "after_accept", "status": 504, "count": N | "until_cleared": true, "paths": [...], "methods": [...]}``
    The request *is* served (an order is placed, a cancel done), then the reply is replaced by the status
    with a non-JSON gateway body: the client cannot tell whether it was acted on. Default: POST /v2/orders.

``{"kind": "delay_visibility", "seconds": S, "count": N}``
    The next ``N`` orders placed stay out of every order query (by id, by client order id, lists) for
    ``S`` seconds of the fake's clock; their stream events are still sent.

``{"kind": "drop_stream", "stream": "trade_updates"|"market_data"|"all", "on_event": "fill"|"any", "count": N}``
    Cuts stream connections from the server side. Without ``on_event`` every matching connection is closed
    now. With ``on_event`` the next ``N`` trade_updates events of that kind are not sent: each one closes
    every trade_updates connection instead (the event is lost, as when a socket dies mid-fill).

``{"kind": "none"}`` clears everything, as ``DELETE`` does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

STORM_STATUSES = (429, 500, 502, 503, 504)
STREAMS = ("trade_updates", "market_data", "all")
GATEWAY_TEXT = {
    500: "500 Internal Server Error",
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    503: "503 Service Temporarily Unavailable",
    504: "<html><body><h1>504 Gateway Time-out</h1>The server didn't respond in time.</body></html>",
}
RATE_LIMIT_BODY = {"code": 42910000, "message": "rate limit exceeded"}


class FaultSpecError(ValueError):
    """A fault request the fake cannot act on; the message names the field."""


@dataclass(slots=True)
class HttpFault:
    kind: str
    status: int
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    remaining: int | None
    """Requests still to affect; None = until cleared."""

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method.upper() in self.methods) and any(path.startswith(p) for p in self.paths)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "paths": list(self.paths),
            "methods": list(self.methods),
            "remaining": self.remaining,
            "until_cleared": self.remaining is None,
        }


@dataclass(slots=True)
class StreamDrop:
    stream: str
    on_event: str
    remaining: int


@dataclass(slots=True)
class Injected:
    """The reply replacing a request's: JSON ``body`` or gateway ``text``."""

    status: int
    body: dict[str, Any] | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def injected_reply(status: int) -> Injected:
    if status == 429:
        return Injected(429, body=dict(RATE_LIMIT_BODY), headers={"Retry-After": "1"})
    return Injected(status, text=GATEWAY_TEXT.get(status, f"{status} Error"))


def _count(data: dict[str, Any]) -> int | None:
    until_cleared = data.get("until_cleared", False)
    if not isinstance(until_cleared, bool):
        raise FaultSpecError("until_cleared: must be true or false")
    count = data.get("count")
    if until_cleared == (count is not None):
        raise FaultSpecError('count: give either "count" (a positive integer) or "until_cleared": true')
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
        raise FaultSpecError(f"count: must be a positive integer, got {count!r}")
    return count


def _strings(data: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FaultSpecError(f"{name}: must be a list of strings")
    return tuple(value)


class FaultPlan:
    def __init__(self) -> None:
        self.storm: HttpFault | None = None
        self.after_accept: HttpFault | None = None
        self.delay: tuple[float, int] | None = None
        """(seconds, orders still to delay)."""
        self.stream_drop: StreamDrop | None = None
        self.counts: Counter[str] = Counter()
        """How many requests, orders, events or connections each kind affected (never reset by clear)."""

    def clear(self) -> None:
        self.storm = self.after_accept = None
        self.delay = None
        self.stream_drop = None

    # -- taking effect -------------------------------------------------------------------------

    @staticmethod
    def _take(fault: HttpFault | None, method: str, path: str) -> bool:
        if fault is None or not fault.matches(method, path):
            return False
        if fault.remaining is not None:
            fault.remaining -= 1
        return True

    def take_storm(self, method: str, path: str) -> Injected | None:
        """The reply replacing this request's (the request is not served), or None."""
        fault = self.storm
        if not self._take(fault, method, path):
            return None
        assert fault is not None
        if fault.remaining == 0:
            self.storm = None
        self.counts["status"] += 1
        return injected_reply(fault.status)

    def take_after_accept(self, method: str, path: str) -> Injected | None:
        """The reply replacing this request's *after* it was served, or None."""
        fault = self.after_accept
        if not self._take(fault, method, path):
            return None
        assert fault is not None
        if fault.remaining == 0:
            self.after_accept = None
        self.counts["after_accept"] += 1
        return injected_reply(fault.status)

    def take_delay(self) -> float:
        """Seconds a newly placed order stays invisible (0 without the fault)."""
        if self.delay is None:
            return 0.0
        seconds, left = self.delay
        self.delay = (seconds, left - 1) if left > 1 else None
        self.counts["delay_visibility"] += 1
        return seconds

    def take_event_drop(self, event: str) -> bool:
        """True when this trade_updates event is to be lost (and the connections closed)."""
        drop = self.stream_drop
        if drop is None or drop.on_event == "" or drop.stream == "market_data":
            return False
        if drop.on_event not in ("any", event):
            return False
        drop.remaining -= 1
        if drop.remaining <= 0:
            self.stream_drop = None
        self.counts["drop_stream"] += 1
        return True

    # -- control ---------------------------------------------------------------------------------

    def apply(self, data: Any) -> dict[str, Any]:
        """Set a fault from a ``POST /_fake/faults`` body; returns what to do now (``{"drop": stream}``)."""
        if not isinstance(data, dict):
            raise FaultSpecError("body: must be a JSON object")
        kind = data.get("kind")
        allowed = {
            "none": {"kind"},
            "status": {"kind", "status", "count", "until_cleared", "paths", "methods"},
            "after_accept": {"kind", "status", "count", "until_cleared", "paths", "methods"},
            "delay_visibility": {"kind", "seconds", "count"},
            "drop_stream": {"kind", "stream", "on_event", "count"},
        }
        if kind not in allowed:
            raise FaultSpecError(f"kind: must be one of {', '.join(allowed)}, got {kind!r}")
        unknown = set(data) - allowed[kind]
        if unknown:
            raise FaultSpecError(f"{sorted(unknown)[0]}: not a field of a {kind!r} fault")
        if kind == "none":
            self.clear()
            return {}
        if kind in ("status", "after_accept"):
            status = data.get("status", 504)
            if status not in STORM_STATUSES:
                raise FaultSpecError(f"status: must be one of {STORM_STATUSES}, got {status!r}")
            default_paths = ("/v2/",) if kind == "status" else ("/v2/orders",)
            default_methods: tuple[str, ...] = () if kind == "status" else ("POST",)
            fault = HttpFault(
                kind,
                status,
                _strings(data, "paths", default_paths),
                tuple(m.upper() for m in _strings(data, "methods", default_methods)),
                _count(data),
            )
            if not all(p.startswith("/") for p in fault.paths):
                raise FaultSpecError("paths: each must start with '/'")
            if kind == "status":
                self.storm = fault
            else:
                self.after_accept = fault
            return {}
        if kind == "delay_visibility":
            seconds = data.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600:
                raise FaultSpecError(f"seconds: must be a number in (0, 3600], got {seconds!r}")
            count = data.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
                raise FaultSpecError(f"count: must be a positive integer, got {count!r}")
            self.delay = (float(seconds), count)
            return {}
        stream = data.get("stream", "trade_updates")
        if stream not in STREAMS:
            raise FaultSpecError(f"stream: must be one of {', '.join(STREAMS)}, got {stream!r}")
        on_event = data.get("on_event")
        if on_event is None:
            if "count" in data:
                raise FaultSpecError("count: only with on_event")
            self.counts["drop_stream"] += 1
            return {"drop": stream}
        if stream == "market_data" or not isinstance(on_event, str) or not on_event:
            raise FaultSpecError("on_event: a trade_updates event name (e.g. fill) or 'any'")
        count = data.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise FaultSpecError(f"count: must be a positive integer, got {count!r}")
        self.stream_drop = StreamDrop(stream, on_event, count)
        return {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.storm.describe() if self.storm else None,
            "after_accept": self.after_accept.describe() if self.after_accept else None,
            "delay_visibility": {"seconds": self.delay[0], "remaining": self.delay[1]} if self.delay else None,
            "drop_stream": (
                {
                    "stream": self.stream_drop.stream,
                    "on_event": self.stream_drop.on_event,
                    "remaining": self.stream_drop.remaining,
                }
                if self.stream_drop
                else None
            ),
            "affected": dict(self.counts),
        }


__all__ = ["FaultPlan", "FaultSpecError", "HttpFault", "Injected", "injected_reply"]
