"""The OMS application factory and lifespan."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from oms.api import control, health, intents, marketdata, orders, positions, stream
from oms.api.auth import KeyRing
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, OmsSettings, load_config, load_settings
from oms.venue import Venue, VenueFactory

log = logging.getLogger("oms.app")


def keyring(settings: OmsSettings) -> KeyRing:
    return KeyRing(admin=settings.oms_admin_key.get_secret_value() if settings.oms_admin_key else None,
                   read=settings.oms_read_key.get_secret_value() if settings.oms_read_key else None,
                   strategies=settings.strategy_keys())


def create_app(settings: OmsSettings | None = None, config: OmsConfig | None = None,
               runtime: OmsRuntime | None = None, venue: Venue | VenueFactory | None = None) -> FastAPI:
    """Build the app around ``runtime``, or a new runtime on ``venue`` (the broker wiring the caller chose).
    Settings/config come from env and ``config/oms.yaml`` unless given."""
    settings = settings or (runtime.settings if runtime else load_settings())
    config = config or (runtime.config if runtime else load_config(settings.oms_config))
    rt = runtime or OmsRuntime(settings, config, venue=venue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="OMS", version="1", lifespan=lifespan)
    app.state.keys = keyring(settings)
    app.state.runtime = None

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    for module in (health, intents, orders, positions, control, marketdata, stream):
        app.include_router(module.router)
    return app
