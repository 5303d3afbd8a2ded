#!/usr/bin/env python3
"""Container health probe of a strategy service (stdlib only; copied into the image).

Healthy (exit 0) when the strategy's own heartbeat at its OMS is recent: ``GET /health`` gives the
OMS's "now" (so simulated clocks work too) and ``GET /api/v1/strategies`` (with the strategy's own
key) gives ``last_heartbeat``; the age must be at most ``STRATEGY_HEARTBEAT_MAX_AGE_SEC``
(default 300). Unhealthy (exit 1) when the OMS is unreachable, the strategy has never sent a
heartbeat, or the heartbeat is stale. The strategy runner sends a heartbeat at least once a minute
while it runs (``POST /api/v1/strategies/{id}/heartbeat``).

Environment: ``OMS_URL`` (http://oms:8000), ``OMS_API_KEY`` (the strategy's key), ``STRATEGY_ID``
(KMP, NULRIMOK, ...), ``STRATEGY_HEARTBEAT_MAX_AGE_SEC``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from datetime import datetime
from typing import Any


def _get(url: str, key: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (URL from our own env)
        return json.load(resp)


def probe(env: dict[str, str]) -> tuple[bool, str]:
    base = env.get("OMS_URL", "http://oms:8000").rstrip("/")
    sid = env.get("STRATEGY_ID", "").upper()
    max_age = float(env.get("STRATEGY_HEARTBEAT_MAX_AGE_SEC", "300"))
    if not sid:
        return False, "STRATEGY_ID is not set"
    try:
        now = datetime.fromisoformat(_get(f"{base}/health")["now"])
        strategies = _get(f"{base}/api/v1/strategies", env.get("OMS_API_KEY", ""))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return False, f"OMS at {base} not usable: {type(exc).__name__}: {exc}"
    beat = (strategies.get(sid) or {}).get("last_heartbeat")
    if not beat:
        return False, f"{sid}: no heartbeat at the OMS yet"
    age = (now - datetime.fromisoformat(beat)).total_seconds()
    if age > max_age:
        return False, f"{sid}: last heartbeat {age:.0f}s ago (max {max_age:.0f}s)"
    return True, f"{sid}: heartbeat {age:.0f}s ago"


def main() -> int:
    ok, message = probe(dict(os.environ))
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
