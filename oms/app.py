"""The OMS application factory and lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from oms.api import control, health, intents, marketdata, orders, positions, responses, stream
from oms.api.auth import KeyRing
from oms.api.fastpath import IntentFastPath
from oms.api.limits import MAX_BODY_BYTES, BodySizeLimit
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings, load_config, load_settings
from oms.venue import Venue, VenueFactory
from oms.web import dashboard
from oms.web.curve import EquityCurve

log = logging.getLogger("oms.app")


def _started(task: asyncio.Task[None], rt: OmsRuntime, on_failure: Callable[[BaseException], None] | None) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    rt.status = "down"
    rt.start_error = f"{type(exc).__name__}: {exc}"
    log.error("OMS start failed reason=START_FAILED: %s", rt.start_error, exc_info=exc)
    if on_failure is not None:
        on_failure(exc)


class OmsApp(FastAPI):
    """The FastAPI app, with ``POST /api/v1/intents`` answered by :class:`IntentFastPath` when well-formed
    (see ``oms/api/fastpath.py``): the one hot route skips the framework's per-request work."""

    intent_fast_path: IntentFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.intent_fast_path
        if fast is not None and fast.matches(scope):
            await fast(scope, receive, send, super().__call__)
            return
        await super().__call__(scope, receive, send)


def keyring(settings: OmsSettings) -> KeyRing:
    return KeyRing(
        admin=settings.oms_admin_key.get_secret_value() if settings.oms_admin_key else None,
        read=settings.oms_read_key.get_secret_value() if settings.oms_read_key else None,
        strategies=settings.strategy_keys(),
    )


def create_app(
    settings: OmsSettings | None = None,
    config: OmsConfig | None = None,
    runtime: OmsRuntime | None = None,
    venue: Venue | VenueFactory | None = None,
    on_start_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app around ``runtime``, or a new runtime on ``venue`` (the broker wiring the caller chose).
    Settings/config come from env and ``config/oms.yaml`` unless given.

    The server answers at once: ``/health`` says ``starting`` (and the API 503) while the runtime rebuilds
    state and reconciles in the background, then ``ok``. A start that fails leaves ``down`` and calls
    ``on_start_failure`` (the ``trader oms`` command stops the process)."""
    settings = settings or (runtime.settings if runtime else load_settings())
    config = config or (runtime.config if runtime else load_config(settings.oms_config))
    rt = runtime or OmsRuntime(settings, config, venue=venue)

    curve = EquityCurve()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        starting = asyncio.create_task(rt.start(), name="oms-start")
        starting.add_done_callback(lambda task: _started(task, rt, on_start_failure))
        sampling = asyncio.create_task(curve.run(rt), name="dashboard-equity-curve")
        try:
            yield
        finally:
            sampling.cancel()
            with suppress(BaseException):
                await sampling
            if not starting.done():
                starting.cancel()
            with suppress(BaseException):
                await starting
            await rt.stop()

    app = OmsApp(title="OMS", version="1", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.state.keys = keyring(settings)
    app.state.runtime = rt
    app.state.equity_curve = curve
    app.intent_fast_path = IntentFastPath(app.state)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    for module in (health, intents, orders, positions, control, marketdata, stream):
        app.include_router(module.router)
    app.include_router(dashboard.router)
    dashboard.mount_static(app)
    responses.install(app)  # /openapi.json declares the replies above; 405 lists every allowed method
    return app
