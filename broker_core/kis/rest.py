"""The KIS REST transport (httpx, async): headers, the shared rate budget, retries, paging.

Every request takes one token of the account's ``RateLimiter`` (shared by everything in the process
that uses this app key; inject it to share it with e.g. the OMS market-data proxy) with a priority
(orders before reconciliation before market data). Replies are parsed into a ``KisResponse``;
``EGW00201`` (over the per-second limit) backs off on the clock and retries (``rate_retry_limit`` times,
1 s, 2 s, 3 s …). Order submits and cancels (``ambiguous_after_send``) retry only once (after 1 s: enough for
a request that fell into a full second) and then raise ``RateLimited``: KIS did not take the order and the
caller owns the retry (the OMS defers the intent with a cooldown and counts the failure on its circuit
breaker). Retrying them three times held the symbol for 6 s and more, multiplied the requests of a storm by
four, and let the failures reach the breaker so far apart that successes in between (reconciliation) kept
its consecutive count from ever reaching the threshold. An expired/invalid token (``EGW00123``/``EGW00121``)
is reissued once. A failure after the request may have reached the
server (read timeout, dropped connection, a 5xx without a KIS envelope) raises ``OutcomeUnknown``
for calls marked ``ambiguous_after_send`` (order submits, cancels) and ``BrokerUnavailable`` for
the others; a failure before sending is always ``BrokerUnavailable``.

Paging (specs/kis.md §3.3): the reply header ``tr_cont`` F/M means more; the next request sends the
body cursors ``ctx_area_fk100``/``ctx_area_nk100`` back as ``CTX_AREA_FK100``/``CTX_AREA_NK100`` with
the request header ``tr_cont: N``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Mapping
from typing import Any

import httpx

from broker_core.clock import Clock, budget_sleep, budget_time
from broker_core.errors import BrokerError, BrokerUnavailable, OutcomeUnknown, RateLimited
from broker_core.kis.auth import ApprovalKeys, TokenFile, TokenManager
from broker_core.kis.envelope import KisResponse, error_for, is_rate_limited, is_token_error, parse_response
from broker_core.kis.settings import KisCredentials
from broker_core.ratelimit import Priority, RateLimiter

log = logging.getLogger("broker_core.kis.rest")
RATE_HEADROOM = 0.98
"""The limiter runs at 98% of the budget so network jitter does not push two requests into one window."""

_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def clock_limiter(rate_per_sec: float, clock: Clock, *, headroom: float = RATE_HEADROOM) -> RateLimiter:
    """A RateLimiter measuring time on ``clock`` (burst 1: never two requests in the same instant).

    Clock time is read from datetimes (microsecond resolution), so every wait is rounded up to a
    whole microsecond: a shorter wait could not move a manual clock and the limiter would spin."""

    def sleep(seconds: float) -> Awaitable[None]:
        return budget_sleep(clock, max(1e-6, math.ceil(seconds * 1e6) / 1e6))

    return RateLimiter(rate_per_sec * headroom, burst=1, monotonic=lambda: budget_time(clock), sleep=sleep)


class KisRestClient:
    def __init__(
        self,
        base_url: str,
        creds: KisCredentials,
        clock: Clock,
        *,
        limiter: RateLimiter | None = None,
        rate_per_sec: float = 2.0,
        token_file: TokenFile | None = None,
        custtype: str = "P",
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_retry_limit: int = 3,
        order_rate_retry_limit: int = 1,
        rate_backoff_s: float = 1.0,
        label: str = "kis",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.creds = creds
        self.clock = clock
        self.custtype = custtype
        self.label = label
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self.tokens = TokenManager(self.http, creds, clock, token_file=token_file)
        self.approval = ApprovalKeys(self.http, creds)
        self.limiter = limiter if limiter is not None else clock_limiter(rate_per_sec, clock)
        self.rate_retry_limit = rate_retry_limit
        self.order_rate_retry_limit = order_rate_retry_limit
        """EGW00201 retries of an order submit/cancel (``ambiguous_after_send``): one by default."""
        self.rate_backoff_s = rate_backoff_s
        self.sent = 0
        self.rate_limited = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    def _headers(self, token: str, tr_id: str, tr_cont: str) -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token}",
            "appkey": self.creds.app_key,
            "appsecret": self.creds.app_secret,
            "tr_id": tr_id,
            "custtype": self.custtype,
            "tr_cont": tr_cont,
        }

    async def request(
        self,
        method: str,
        path: str,
        tr_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        tr_cont: str = "",
        priority: int = Priority.MARKET_DATA,
        ambiguous_after_send: bool = False,
    ) -> KisResponse:
        """One call; returns the parsed reply (``ok`` or a business error for the caller to map)."""
        rate_attempts = 0
        rate_retries = self.order_rate_retry_limit if ambiguous_after_send else self.rate_retry_limit
        reissued = False
        while True:
            token = await self.tokens.token()
            await self.limiter.acquire(priority)
            headers = self._headers(token, tr_id, tr_cont)
            try:
                self.sent += 1
                if method.upper() == "GET":
                    resp = await self.http.get(
                        path, params={k: str(v) for k, v in (params or {}).items()}, headers=headers
                    )
                else:
                    resp = await self.http.request(
                        method.upper(), path, headers=headers, json={k: str(v) for k, v in (body or {}).items()}
                    )
            except _NOT_SENT as exc:
                raise BrokerUnavailable(f"{self.label} {tr_id}: not sent ({type(exc).__name__}: {exc})") from exc
            except httpx.HTTPError as exc:
                detail = f"{self.label} {tr_id}: no reply after sending ({type(exc).__name__}: {exc})"
                if ambiguous_after_send:
                    raise OutcomeUnknown(detail, client_order_id="") from exc
                raise BrokerUnavailable(detail) from exc
            parsed = parse_response(resp.status_code, resp.headers, resp.content)
            if not parsed.tr_id:
                parsed.tr_id = tr_id
            if is_rate_limited(parsed):
                self.rate_limited += 1
                rate_attempts += 1
                if rate_attempts > rate_retries:
                    raise RateLimited(
                        f"{self.label} {tr_id}: over the per-second limit (EGW00201) after {rate_retries} retries",
                        retry_after=self.rate_backoff_s,
                        code="EGW00201",
                    )
                log.warning(
                    "%s %s: EGW00201 over the rate limit; backing off %.2fs",
                    self.label,
                    tr_id,
                    self.rate_backoff_s * rate_attempts,
                )
                await self.clock.sleep(self.rate_backoff_s * rate_attempts)
                continue
            if is_token_error(parsed) and not reissued:
                reissued = True
                log.warning("%s %s: token rejected (%s); reissuing once", self.label, tr_id, parsed.msg_cd)
                await self.tokens.reissue(token)
                continue
            if parsed.status >= 500 and not parsed.msg_cd:
                detail = f"{self.label} {tr_id}: HTTP {parsed.status} without a KIS reply"
                if ambiguous_after_send:
                    raise OutcomeUnknown(detail, client_order_id="")
                raise BrokerUnavailable(detail, code=f"HTTP_{parsed.status}")
            return parsed

    async def call(self, method: str, path: str, tr_id: str, **kw: Any) -> KisResponse:
        """``request`` that raises the mapped broker error unless the reply is ``ok``."""
        resp = await self.request(method, path, tr_id, **kw)
        if not resp.ok:
            raise error_for(resp, retry_after=self.rate_backoff_s)
        return resp

    async def paged(
        self,
        path: str,
        tr_id: str,
        params: Mapping[str, Any],
        *,
        fk: str = "CTX_AREA_FK100",
        nk: str = "CTX_AREA_NK100",
        max_pages: int = 500,
        priority: int = Priority.RECONCILE,
    ) -> list[KisResponse]:
        """Every page of a continuous query (GET), in order."""
        query = dict(params)
        query.setdefault(fk, "")
        query.setdefault(nk, "")
        pages: list[KisResponse] = []
        tr_cont = ""
        for _ in range(max_pages):
            resp = await self.call("GET", path, tr_id, params=query, tr_cont=tr_cont, priority=priority)
            pages.append(resp)
            if not resp.has_more:
                return pages
            next_fk = _raw_cursor(resp, fk)
            next_nk = _raw_cursor(resp, nk)
            if not next_fk.strip() and not next_nk.strip():
                return pages
            query[fk], query[nk] = next_fk, next_nk
            tr_cont = "N"
        raise BrokerError(f"{self.label} {tr_id}: more than {max_pages} pages", code="TOO_MANY_PAGES")


def _raw_cursor(resp: KisResponse, name: str) -> str:
    for key, value in resp.body.items():
        if key.lower() == name.lower():
            return str(value or "")
    return ""
