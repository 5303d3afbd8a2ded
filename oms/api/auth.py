"""The one auth dependency: ``Authorization: Bearer <key>`` → a principal with a role.

Admin may call everything, read may call GETs (and hold no stream subscriptions), a strategy key acts
only as its own strategy and sees only its own allocations, intents, orders, fills and status
(account totals are visible to it). Keys are looked up by their SHA-256 digest (the time taken tells nothing
about how much of a key matched) and never logged. The built-in
dashboard's cookie (``COOKIE_NAME``) stands for the header on GET requests only, so its page can poll the API
while nothing can act with a cookie.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Depends, HTTPException, Request, status

from broker_core.logging_setup import register_secret

Role = Literal["admin", "read", "strategy"]


@dataclass(frozen=True)
class Principal:
    role: Role
    strategy_id: str | None = None

    @property
    def name(self) -> str:
        return self.strategy_id if self.role == "strategy" and self.strategy_id else self.role


@dataclass(frozen=True)
class KeyRing:
    admin: str | None
    read: str | None
    strategies: dict[str, str]
    """key → strategy_id"""
    _by_digest: dict[bytes, Principal] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        register_secret(self.admin, self.read, *self.strategies)
        by_digest: dict[bytes, Principal] = {
            _digest(k): Principal("strategy", sid) for k, sid in self.strategies.items()
        }
        if self.read:
            by_digest[_digest(self.read)] = Principal("read")
        if self.admin:
            by_digest[_digest(self.admin)] = Principal("admin")  # admin, then read, then a strategy, as before
        object.__setattr__(self, "_by_digest", by_digest)

    def lookup(self, key: str) -> Principal | None:
        """The key's principal: one SHA-256 and a dict lookup, whatever the number of keys (a linear scan of
        constant-time compares cost ~30 us at 1,000 strategy keys). The dict compares digests, so its timing
        tells nothing about the keys."""
        return self._by_digest.get(_digest(key))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


COOKIE_NAME = "oms_dashboard_key"
"""The built-in dashboard's login cookie (HttpOnly, SameSite=Strict): accepted for GET requests only."""


async def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header and request.method in ("GET", "HEAD") and request.cookies.get(COOKIE_NAME):
        scheme, key = "bearer", request.cookies[COOKIE_NAME]
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    found = request.app.state.keys.lookup(key.strip())
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return found


async def require_admin(p: Principal = Depends(principal)) -> Principal:
    if p.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin key required")
    return p


async def require_reader(p: Principal = Depends(principal)) -> Principal:
    return p


async def require_writer(p: Principal = Depends(principal)) -> Principal:
    if p.role == "read":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the read key may only call GET endpoints")
    return p


def check_strategy(p: Principal, strategy_id: str) -> None:
    if p.role == "strategy" and p.strategy_id != strategy_id.upper():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"strategy key of {p.strategy_id} may not act as {strategy_id.upper()}"
        )


def scoped(p: Principal, strategy_id: str | None) -> str | None:
    """The strategy filter of a list request: for a strategy key always its own id (403 when it asks
    for another's); for the read and admin keys the requested one, or None for all."""
    if p.role != "strategy":
        return strategy_id.upper() if strategy_id else None
    if strategy_id is not None:
        check_strategy(p, strategy_id)
    return p.strategy_id
