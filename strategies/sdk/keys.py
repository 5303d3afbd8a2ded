"""Idempotency keys for intents (strategies.md C3).

The client sets the key *before the first attempt* and reuses it on every retry, so a retried
request can never become a second order (the OMS answers a known key with the stored result).

A *decision key* is deterministic: strategy + symbol + action + the start of the decision's time
bucket (KST), plus an optional tag telling apart two different decisions in one bucket (e.g. a
stop and a target exit). A strategy that crashes and re-derives the same decision for the same
bucket sends the same key and gets the stored answer. Without decision inputs the key is random.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from broker_core.clock import KST

MAX_KEY_LEN = 200
"""The OMS accepts keys up to this length (broker_core/contract/wire.py IntentRequest.idempotency_key)."""
_MAX_TAG_LEN = 48


def bucket_start(ts: datetime, bucket_sec: int) -> datetime:
    """Start (KST) of the ``bucket_sec``-long bucket holding ``ts``; buckets align to KST midnight."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("decision timestamp must be timezone-aware")
    if bucket_sec <= 0:
        raise ValueError(f"bucket_sec must be > 0, got {bucket_sec}")
    local = ts.astimezone(KST)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    into_day = (local - midnight).total_seconds()
    return midnight + timedelta(seconds=(into_day // bucket_sec) * bucket_sec)


def decision_key(
    strategy_id: str, symbol: str, action: str, decision_ts: datetime, *, bucket_sec: int = 60, tag: str | None = None
) -> str:
    """``KMP:005930:ENTER:20260227T091600[:tag]`` — the same inputs always give the same key."""
    start = bucket_start(decision_ts, bucket_sec)
    key = f"{strategy_id.upper()}:{symbol}:{str(action).upper()}:{start:%Y%m%dT%H%M%S}"
    if tag:
        if len(tag) > _MAX_TAG_LEN:
            tag = "h" + hashlib.sha256(tag.encode()).hexdigest()[:32]
        key += f":{tag}"
    if len(key) > MAX_KEY_LEN:
        raise ValueError(f"idempotency key longer than {MAX_KEY_LEN} characters: {key!r}")
    return key


def random_key() -> str:
    """A fresh key for an intent without decision inputs (still reused across its retries)."""
    return f"u:{uuid.uuid4().hex}"
