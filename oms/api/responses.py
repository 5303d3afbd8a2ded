"""The error replies of the v1 API, and ``/openapi.json`` declaring exactly those.

Every error body is ``{"detail": "text"}`` except schema errors (422), which name each field:
``{"detail": [{"field": "constraints.limit_price", "msg": "...", "type": "greater_than"}]}`` (the app's
``RequestValidationError`` handler builds that shape). Routes pass ``responses=errors(...)`` with the
codes their handlers and dependencies raise; :func:`install` makes the generated schema declare the
rest: the app's 422 shape instead of FastAPI's ``HTTPValidationError`` (which is never sent) on every
operation with parameters or a body, and 400 (unparseable body) and 413 (body too large) on every
operation with a body. It also makes a 405 list every method the path supports in ``Allow`` (Starlette
names only the methods of the first route of the path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorOut(BaseModel):
    """Any 4xx/5xx other than 422."""

    detail: str


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")
    field: str
    """Dotted location: ``desired_qty``, ``constraints.limit_price``, ``query.start``."""
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: the request does not fit the schema; one entry per offending field."""

    detail: list[FieldError]


DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read as JSON",
    401: "No or an unknown API key (`Authorization: Bearer <key>`)",
    403: "The key may not do this: the read key only reads, a strategy key acts only as its own strategy, "
    "admin routes need the admin key",
    404: "No such object",
    409: "Conflicts with the current state; nothing changed",
    413: "Request body too large",
    422: "Invalid input; each error names its field",
    429: "Broker rate limit; retry after `Retry-After` seconds",
    501: "The broker adapter does not offer this call",
    502: "The broker answered with an error",
    503: "The OMS is starting (`Retry-After`) or the broker is unreachable",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer with ``codes``."""
    return {
        code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": DESCRIPTIONS[code]}
        for code in sorted(set(codes))
    }


READ = (401, 503)
"""Any authenticated route: no/unknown key, or the OMS still starting."""
WRITE = (401, 403, 503)
"""A route the read key may not call (403), nor a strategy key as another strategy."""
ADMIN = (401, 403, 503)
"""An admin route."""

_REF = "#/components/schemas/"
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    """Declare the app's real error replies in its OpenAPI document and fix ``Allow`` on 405."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    conformed: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if id(schema) not in conformed:  # FastAPI caches the document: conform each new one once
            conform(schema)
            conformed[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allowed = sorted({m for methods in _methods_of(app, request.url.path) for m in methods})
            if allowed:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(request, exc)


def _methods_of(app: FastAPI, path: str) -> Iterator[set[str]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion: app.routes is flat
        routes: list[Any] = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    for route in routes:
        regex = getattr(route, "path_regex", None)
        methods = getattr(route, "methods", None)
        if regex is not None and methods and regex.match(path):
            yield set(methods)


def conform(schema: dict[str, Any]) -> None:
    """Rewrite a generated OpenAPI document in place (see the module docstring)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(m, "serialization") for m in (ErrorOut, FieldError, ValidationErrorOut)], ref_template=_REF + "{model}"
    )
    for name, body in defs.get("$defs", {}).items():
        components.setdefault(name, body)
    for item in schema.get("paths", {}).values():
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "options", "head", "trace"):
                continue
            responses = op.setdefault("responses", {})
            if op.get("parameters") or op.get("requestBody"):
                responses.setdefault("422", _reply(422))
            if op.get("requestBody"):
                responses.setdefault("400", _reply(400))
                responses.setdefault("413", _reply(413))
            for code, reply in responses.items():
                media = reply.get("content", {}).get("application/json", {})
                if media.get("schema", {}).get("$ref", "").removeprefix(_REF) in _FASTAPI_422:
                    responses[code] = _reply(422)
    for name in _FASTAPI_422:
        components.pop(name, None)


def _reply(code: int) -> dict[str, Any]:
    model = ValidationErrorOut if code == 422 else ErrorOut
    return {
        "description": DESCRIPTIONS.get(code, "Error"),
        "content": {"application/json": {"schema": {"$ref": _REF + model.__name__}}},
    }
