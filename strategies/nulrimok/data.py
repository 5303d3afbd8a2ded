"""Nulrimok's market data besides the LRS: the static listing and sector map (B8), the KOSPI listing used
for the N4 breadth population, REST quotes and the REST 1m bars of one 30m bar (N16).

Market data goes through :class:`~strategies.sdk.client.OmsClient` (the OMS proxy); only static
reference files are read locally (the sector map of the KRX reference data, ``TRADER_DATA_DIR`` or
``../shared/data/krx``), as for KMP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from strategies.nulrimok.bars30 import Bar30, aggregate, bar_end
from strategies.nulrimok.config import UniverseConfig
from strategies.sdk.client import OmsClient


def load_sector_map() -> tuple[dict[str, str], str | None]:
    """Symbol → sector from the static reference file (B8); (map, None) or ({}, why missing)."""
    try:
        from broker_core.paper.data import DataNotFound, KrxData
    except ImportError as exc:  # pragma: no cover - the reader ships with the platform
        return {}, f"reference data reader unavailable: {exc}"
    try:
        return KrxData().sector_map(), None
    except (DataNotFound, OSError) as exc:
        return {}, str(exc)


def listing(universe: UniverseConfig, sectors: dict[str, str]) -> list[str]:
    """The symbols considered before N3: the config's list, else every symbol of the sector map."""
    excluded = set(universe.exclude)
    return [s for s in (list(universe.symbols) or sorted(sectors)) if s not in excluded]


def kospi_members(universe: UniverseConfig, symbols: list[str]) -> list[str]:
    """N4 breadth population: the configured members, else the KOSPI-listed symbols of the listing."""
    if universe.breadth_members:
        return list(universe.breadth_members)
    try:
        from broker_core.paper.index import market_of
    except ImportError:  # pragma: no cover
        return list(symbols)
    return [s for s in symbols if market_of(s) == "KOSPI"]


@dataclass(frozen=True)
class QuoteView:
    symbol: str
    last: float | None
    bid: float | None
    ask: float | None
    ts: datetime | None


async def quote(oms: OmsClient, symbol: str) -> QuoteView:
    data = await oms.quote(symbol)
    raw = data.get("quote") if isinstance(data.get("quote"), dict) else data
    assert isinstance(raw, dict)
    ts = None
    if isinstance(raw.get("ts"), str):
        try:
            ts = datetime.fromisoformat(raw["ts"])
        except ValueError:
            ts = None
    return QuoteView(symbol, _num(raw.get("last") or raw.get("price")), _num(raw.get("bid")), _num(raw.get("ask")), ts)


async def rest_bar30(oms: OmsClient, symbol: str, start: datetime) -> Bar30 | None:
    """The 30m bar starting at ``start`` from one REST pull of its 1m bars; None when it has no trade.

    Raises the SDK's OmsError family (a 404 for the symbol included) — the caller skips the bar (N29)."""
    end = bar_end(start) - timedelta(minutes=1)
    bars = await oms.bars(symbol, start, end)
    inside = [b for b in bars if start <= b.start <= end]
    out = aggregate(symbol, inside)
    return out[0] if out else None


def stream_bar30(symbol: str, minute_bars: list[Any]) -> Bar30 | None:
    out = aggregate(symbol, minute_bars)
    return out[0] if out else None


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None
