"""``POST /api/v1/intents`` without FastAPI's per-request machinery (issue 21: the intent path).

The intent route is the one hot endpoint: strategies send every decision through it. Through FastAPI a
well-formed intent paid about as much CPU for routing, dependency injection, body and response handling and
the middleware stack as for its whole decision (journal and broker included). ``OmsApp.__call__`` hands this
route's requests here first; the answer is built from the same parts the route uses — the key ring,
``IntentRequest``, ``check_intent`` and ``decide_intent`` — and the same reply bytes.

Only the well-formed case is answered here. Anything else — a body that is not plain ``application/json`` of a
declared length within the limit, no or an unknown key, the read key, the OMS still starting, a body that
does not parse or validate, a refused check (403, 422) — is handed, before anything was decided and with
the body it read replayed, to the FastAPI app, which answers it exactly as before. So every error reply,
status and header stays FastAPI's own (and ``/openapi.json`` still documents the route), and nothing here can
answer a request the route would have refused: JSON is parsed by ``json.loads`` and validated by the
same model, as FastAPI does.

Not carried over: FastAPI's native OpenTelemetry spans (no provider is configured in the OMS) and the
exception-telemetry hook. A failure after the decision started answers 500 ``Internal Server Error`` and
is re-raised to the server, like Starlette's ``ServerErrorMiddleware``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker_core.contract.wire import IntentRequest
from oms.api.auth import KeyRing, Principal
from oms.api.intents import check_intent, decide_intent
from oms.api.limits import MAX_BODY_BYTES
from oms.runtime import OmsRuntime

PATH = "/api/v1/intents"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_ERROR_500 = b"Internal Server Error"


def _headers(scope: Scope) -> tuple[int | None, bytes | None, bytes | None]:
    """(content-length, content-type, authorization) of the request: the first of each, as the route reads
    them (Starlette's ``Headers.get``)."""
    length: int | None = None
    ctype: bytes | None = None
    authz: bytes | None = None
    seen_length = False
    for name, value in scope["headers"]:
        if name == b"content-length" and not seen_length:
            seen_length = True
            length = int(value) if value.isdigit() else None
        elif name == b"content-type" and ctype is None:
            ctype = value
        elif name == b"authorization" and authz is None:
            authz = value
        elif name == b"transfer-encoding":
            return None, None, None  # a chunked body: the general path
    return length, ctype, authz


def _principal(keys: KeyRing, authz: bytes | None) -> Principal | None:
    """The writer behind ``Authorization: Bearer <key>``, or None for anything the route would refuse
    (no/unknown key: 401, the read key: 403)."""
    if not authz:
        return None
    scheme, _, key = authz.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return None
    found = keys.lookup(key.strip())
    return None if found is None or found.role == "read" else found


class IntentFastPath:
    """Answers well-formed intents; hands everything else to ``fallback`` (the FastAPI app)."""

    def __init__(self, state: Any, max_body: int = MAX_BODY_BYTES) -> None:
        self.state = state
        """The app's ``state`` (``runtime``, ``keys``), read per request as the route's dependencies do."""
        self.max_body = max_body

    @staticmethod
    def matches(scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"

    async def __call__(self, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp) -> None:
        length, ctype, authz = _headers(scope)
        rt: OmsRuntime | None = getattr(self.state, "runtime", None)
        who = _principal(self.state.keys, authz)
        if (
            length is None
            or length > self.max_body
            or ctype is None
            or ctype.split(b";", 1)[0].strip().lower() != b"application/json"
            or who is None
            or rt is None
            or rt.intents is None
            or rt.status == "starting"
        ):
            await fallback(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                await fallback(scope, _replay(messages, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body or not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            if size > self.max_body:
                raise ValueError("body over the limit")
            request = IntentRequest.model_validate(json.loads(body))
            check_intent(rt, who, request)
        except (Exception, HTTPException):  # bad JSON, a schema error, a refused check: the route's answer
            await fallback(scope, _replay(messages, receive), send)
            return
        started = False
        try:
            reply = await decide_intent(rt, request)
            payload = reply.model_dump_json().encode()
            started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS],
                }
            )
            await send({"type": "http.response.body", "body": payload})
        except Exception:
            if not started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-length", str(len(_ERROR_500)).encode()),
                            (b"content-type", b"text/plain; charset=utf-8"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _ERROR_500})
            raise


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands out ``messages`` (what the fast path already read), then the rest."""
    pending = list(messages)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
