"""Identifiers: unique across restarts and hosts, sortable by creation time, no counters.

An id is a ULID: 48 bits of UNIX milliseconds followed by 80 random bits, written as 26
characters of Crockford base32 (``0123456789ABCDEFGHJKMNPQRSTVWXYZ``). Lexicographic order of
the text equals numeric order, so ids sort by creation time at millisecond resolution; ids made
in the same millisecond are in random order (no counter is kept, so nothing has to survive a
restart and two hosts never need to coordinate). 80 random bits make a collision within one
millisecond practically impossible (birthday bound ~2^40 ids per ms).

Ids use the *wall* clock (``time.time``), not a virtual simulation clock: uniqueness across
restarts depends on real time moving forward.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from datetime import UTC, datetime
from functools import cache

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}
ULID_LEN = 26
MAX_CLIENT_ORDER_ID_LEN = 32
INSTANCE_TAG_LEN = 5
_TIME_BITS = 48
_RANDOM_BITS = 80


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


_FROM_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD)
"""RFC 4648 base32 → Crockford: the same 5-bit groups, another alphabet."""
_last_time: tuple[int, str] = (-1, "")


def _time_text(ts_ms: int) -> str:
    """The 10 time characters of a ULID; the last one is kept (ids come in bursts within one millisecond)."""
    global _last_time
    if _last_time[0] != ts_ms:
        _last_time = (ts_ms, _encode(ts_ms, ULID_LEN - _RANDOM_BITS // 5))
    return _last_time[1]


def ulid(ts_ms: int | None = None, randomness: int | None = None) -> str:
    """A 26-character ULID. ``ts_ms``/``randomness`` are for tests; normally both are drawn.

    The 80 random bits are exactly 16 characters (80 = 16 × 5), so they are written by ``base64.b32encode``
    (C) with the alphabet translated, and the time part is the same for every id of one millisecond: three
    ids per intent, ~5x cheaper than encoding all 130 bits five at a time in Python."""
    if ts_ms is None:
        ts_ms = time.time_ns() // 1_000_000
    if not 0 <= ts_ms < (1 << _TIME_BITS):
        raise ValueError(f"ULID time must fit 48 bits of milliseconds, got {ts_ms}")
    if randomness is None:
        raw = secrets.token_bytes(_RANDOM_BITS // 8)
    elif 0 <= randomness < (1 << _RANDOM_BITS):
        raw = randomness.to_bytes(_RANDOM_BITS // 8, "big")
    else:
        raise ValueError("ULID randomness must fit 80 bits")
    return _time_text(ts_ms) + base64.b32encode(raw).decode("ascii").translate(_FROM_B32)


def new_id(prefix: str = "") -> str:
    """A new unique id: ``"<prefix>_<ULID>"``, or the bare ULID when ``prefix`` is empty.

    Ids with the same prefix sort by creation time.
    """
    u = ulid()
    return f"{prefix}_{u}" if prefix else u


def ulid_of(identifier: str) -> str:
    """The ULID part of an id made by :func:`new_id` or :func:`new_client_order_id`."""
    tail = identifier[-ULID_LEN:]
    if len(tail) != ULID_LEN or any(c not in _DECODE for c in tail):
        raise ValueError(f"{identifier!r} does not end with a ULID")
    return tail


def id_time(identifier: str) -> datetime:
    """The creation time (UTC, millisecond resolution) encoded in an id."""
    value = 0
    for c in ulid_of(identifier):
        value = (value << 5) | _DECODE[c]
    return datetime.fromtimestamp((value >> _RANDOM_BITS) / 1000, tz=UTC)


@cache  # one per OMS instance; asked for every client order id
def instance_tag(instance_id: str) -> str:
    """A short (≤ 5 chars, upper-case alphanumeric) tag for an OMS instance.

    Short names are kept as they are (``vps1`` → ``VPS1``); longer ones keep their first two
    characters plus three characters of a hash, so distinct long names stay distinguishable.
    """
    clean = re.sub(r"[^A-Za-z0-9]", "", instance_id).upper()
    if not clean:
        clean = "OMS"
    if len(clean) <= INSTANCE_TAG_LEN:
        return clean
    digest = int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:4], "big")
    return clean[:2] + _encode(digest, 3)


def new_client_order_id(instance_id: str) -> str:
    """Client order id ``"<TAG>-<ULID>"`` (≤ 32 chars, ``[A-Z0-9-]``), unique across hosts."""
    cid = f"{instance_tag(instance_id)}-{ulid()}"
    assert len(cid) <= MAX_CLIENT_ORDER_ID_LEN
    return cid
