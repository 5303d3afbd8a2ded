"""Access to the running OMS from request handlers."""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from oms.runtime import OmsRuntime


async def runtime(request: Request) -> OmsRuntime:
    rt: OmsRuntime | None = getattr(request.app.state, "runtime", None)
    if rt is None or rt.intents is None or rt.status == "starting":
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "OMS is starting", headers={"Retry-After": "1"})
    return rt
