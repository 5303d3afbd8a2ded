"""A minimal OMS over HTTP (httpx MockTransport) for the KPR data and wiring tests: the market-data
proxy's shapes (bars, daily, quote, investor flow), intents and the few state reads KPR makes (fills,
allocations, open orders: the recovery's).
It records every request so tests can assert what KPR asked for."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from broker_core.clock import KST
from strategies.sdk import OmsClient


@dataclass
class FakeOms:
    minute_bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """symbol → 1m bars (``ts``, OHLCV), any days."""
    daily_bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    investor: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    """The strategy's fills (``ts`` ISO); ``GET /fills`` filters them by ``symbol`` and ``since``."""
    allocations: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    intent_reply: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: {
        "intent_id": f"i-{body['idempotency_key']}",
        "status": "ACCEPTED",
    }
    no_proxy: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)

    def client(self, strategy_id: str = "KPR") -> OmsClient:
        return OmsClient("http://oms.test", "key", strategy_id, transport=httpx.MockTransport(self.handle), retries=0)

    def calls(self, prefix: str) -> list[dict[str, str]]:
        return [q for m, p, q in self.requests if p.startswith(prefix)]

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = urlparse(str(request.url))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        self.requests.append((request.method, path, query))
        if path.startswith("/api/v1/marketdata/") and self.no_proxy:
            return httpx.Response(404, json={"detail": "Not Found"})
        if path.startswith("/api/v1/marketdata/bars/"):
            sym = path.rsplit("/", 1)[1]
            if sym not in self.minute_bars:
                return httpx.Response(404, json={"detail": f"unknown symbol {sym}"})
            lo, hi = datetime.fromisoformat(query["start"]), datetime.fromisoformat(query["end"])
            rows = [b for b in self.minute_bars[sym] if lo <= b["ts"] <= hi]
            return httpx.Response(200, json={"symbol": sym, "bars": [_jsonable(b) for b in rows]})
        if path.startswith("/api/v1/marketdata/daily/"):
            sym = path.rsplit("/", 1)[1]
            if sym not in self.daily_bars:
                return httpx.Response(404, json={"detail": f"no daily data for {sym}"})
            lo, hi = date.fromisoformat(query["start"]), date.fromisoformat(query["end"])
            rows = [b for b in self.daily_bars[sym] if lo <= b["ts"].date() <= hi]
            return httpx.Response(200, json={"symbol": sym, "bars": [_jsonable(b) for b in rows]})
        if path.startswith("/api/v1/marketdata/investor-flow/"):
            sym = path.rsplit("/", 1)[1]
            return httpx.Response(200, json={"symbol": sym, "rows": [_jsonable(r) for r in self.investor.get(sym, [])]})
        if path.startswith("/api/v1/marketdata/quote/"):
            sym = path.rsplit("/", 1)[1]
            if sym not in self.quotes:
                return httpx.Response(404, json={"detail": f"unknown symbol {sym}"})
            return httpx.Response(200, json=self.quotes[sym])
        if path.startswith("/api/v1/marketdata/"):
            return httpx.Response(404, json={"detail": "Not Found"})  # e.g. program/{symbol}: no such route
        if path == "/api/v1/intents" and request.method == "POST":
            body = json.loads(request.content)
            self.intents.append(body)
            return httpx.Response(200, json=self.intent_reply(body))
        if path == "/api/v1/intents":
            return httpx.Response(200, json=[])
        if path == "/api/v1/fills":
            sym = query.get("symbol")
            since = datetime.fromisoformat(query["since"]) if "since" in query else None
            rows = [
                f
                for f in self.fills
                if (sym is None or f["symbol"] == sym) and (since is None or datetime.fromisoformat(f["ts"]) >= since)
            ]
            return httpx.Response(200, json=rows)
        if path.startswith("/api/v1/allocations/"):
            return httpx.Response(200, json=self.allocations)
        if path == "/api/v1/orders":
            return httpx.Response(200, json=self.orders)
        if path == "/api/v1/state/account":
            return httpx.Response(200, json={"equity": 1e9, "buyable_cash": 1e9, "daily_pnl_pct": 0.0})
        if path == "/api/v1/clock":
            return httpx.Response(200, json={"now": datetime.now(KST).isoformat(), "session_phase": "CONTINUOUS"})
        return httpx.Response(404, json={"detail": "Not Found"})


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in row.items()}
