"""The WebSocket slot budget as a run report shows it."""

from __future__ import annotations

from typing import Any


def slot_summary(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The OMS's slot book (``/api/v1/marketdata/slots``) without the per-symbol lists: capacity, peak, leases."""
    slots = snapshot.get("slots", snapshot)
    keep = ("priority", "max_slots", "window", "count", "peak")
    return {
        "capacity": slots.get("capacity"),
        "used": slots.get("used"),
        "peak_used": slots.get("peak_used"),
        "leases": {o: {k: v for k, v in lease.items() if k in keep} for o, lease in slots.get("leases", {}).items()},
    }
