"""The request body size limit of the whole API: a body over ``max_bytes`` is answered 413 before any route
(and so any validation, journal write or state change) sees it.

A pure ASGI middleware: the body is read (never more than ``max_bytes`` + one chunk is kept, so a chunked
upload without a ``Content-Length`` is bounded too) and handed to the app as one message. An oversized body
is read on and dropped, up to ``discard_bytes``, before the 413 goes out: the client is still sending and
would otherwise see a reset connection instead of the answer; a body declared larger than that is answered
at once. WebSocket and lifespan traffic pass through untouched.

Having the whole body, it also reads a JSON body sent to ``/api/`` without a JSON content type (the
operators' ``curl -X POST ... -d '{"enabled":true}'``) as JSON instead of answering 422.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker_core.contract.reasons import ReasonCode

log = logging.getLogger("oms.api.limits")

MAX_BODY_BYTES = 64 * 1024
"""The largest request body the API reads (an intent is < 2 KB, a heartbeat status ≤ 16 KB)."""
DISCARD_BYTES = 16 * 1024 * 1024
"""How much of an oversized body is read and dropped so that the client gets its 413."""


class BodySizeLimit:
    """Answer 413 ``{"detail": ...}`` to an HTTP request whose body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, discard_bytes: int = DISCARD_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.discard_bytes = discard_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= self.discard_bytes:
                await self._discard(receive, 0)
            await self._refuse(scope, send, declared)
            return
        body = bytearray()
        pending: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                pending = message
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                if message.get("more_body", False):
                    await self._discard(receive, len(body))
                await self._refuse(scope, send, None)
                return
            if not message.get("more_body", False):
                break
        if pending is None and _json_sent_as_form(scope, body):
            scope = {**scope, "headers": _with_json_content_type(scope)}
        first: Message = pending or {"type": "http.request", "body": bytes(body), "more_body": False}
        handed = False

        async def replay() -> Message:
            nonlocal handed
            if not handed:
                handed = True
                return first
            return await receive()

        await self.app(scope, replay, send)

    async def _discard(self, receive: Receive, seen: int) -> None:
        """Read and drop the rest of the body (up to ``discard_bytes`` in all)."""
        while seen <= self.discard_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, send: Send, declared: int | None) -> None:
        size = f"of {declared} bytes" if declared is not None else "sent past the limit"
        log.warning(
            "request body refused reason=%s: %s %r body %s; the limit is %d bytes",
            ReasonCode.BODY_TOO_LARGE,
            scope.get("method"),
            scope.get("path"),
            size,
            self.max_bytes,
        )
        payload = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})


_FORM_OR_NONE = (b"", b"application/x-www-form-urlencoded")


def _json_sent_as_form(scope: Scope, body: bytes | bytearray) -> bool:
    """A JSON object or list sent to the API without a JSON content type: ``curl -d '{"enabled":true}'`` sends
    ``application/x-www-form-urlencoded``. No API route reads forms, so such a body is read as the JSON it is."""
    if not str(scope.get("path", "")).startswith("/api/"):
        return False
    ctype = b""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
    return ctype in _FORM_OR_NONE and bytes(body).lstrip()[:1] in (b"{", b"[")


def _with_json_content_type(scope: Scope) -> list[tuple[bytes, bytes]]:
    headers = [(n, v) for n, v in scope.get("headers", ()) if n != b"content-type"]
    return [*headers, (b"content-type", b"application/json")]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
