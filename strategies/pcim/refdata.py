"""Daily bars and Bucket A baselines from the KRX reference data (``../shared/data/krx``) for the
offline command line and tests; the running strategy reads the same through the OMS proxy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST
from strategies.pcim.signals import a_baseline
from strategies.sdk.bars import Bar


def _sdk_bar(symbol: str, b: Any, interval: str) -> Bar:
    ts = b.ts
    o, h, lo, c, v = b.open, b.high, b.low, b.close, b.volume
    return Bar(symbol, ts.astimezone(KST), o, h, lo, c, int(v), (h + lo + c) / 3 * v, interval=interval)


def reference_daily(symbols: Iterable[str], session: date, days: int = 150) -> dict[str, list[Bar] | None]:
    from broker_core.paper.data import DataNotFound, KrxData

    krx = KrxData()
    out: dict[str, list[Bar] | None] = {}
    for sym in symbols:
        try:
            rows = krx.daily_bars(sym, session - timedelta(days=days), session - timedelta(days=1))
        except (DataNotFound, KeyError, OSError):
            out[sym] = None
            continue
        out[sym] = [_sdk_bar(sym, b, "1d") for b in rows if b.ts.astimezone(KST).date() < session] or None
    return out


def reference_a_baselines(
    symbols: Iterable[str], session: date, sessions: int = 20, minutes: int = 3
) -> dict[str, float | None]:
    from broker_core.paper.data import DataNotFound, KrxData

    krx = KrxData()
    days = [d for d in krx.sessions() if d < session][-sessions:]
    out: dict[str, float | None] = {}
    for sym in symbols:
        vols = []
        try:
            for d in days:
                start = datetime.combine(d, time(9, 0), KST)
                bars = krx.minute_bars(sym, d)
                vols.append(sum(b.volume for b in bars if start <= b.ts < start + timedelta(minutes=minutes)))
        except (DataNotFound, KeyError, OSError):
            out[sym] = None
            continue
        out[sym] = a_baseline(vols) if any(vols) else None
    return out
