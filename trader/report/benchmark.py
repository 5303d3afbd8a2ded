"""The benchmark a run is compared with: KOSPI for KRX runs, SPY for US runs (daily closes).

KOSPI comes from ``index_ohlcv.parquet`` of the KRX data (``KrxData.index_bars``); SPY from
``daily_ohlcv.parquet`` of the US data (``adj_close``: dividend-adjusted), read from ``data_dir``, else
``$TRADER_US_DATA_DIR``, else ``../shared/data/us`` next to the project root (see that folder's README).
The series holds the closes from a few sessions before ``start`` to ``end`` so the report can measure
the first session's return from the previous close.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from broker_core.paper.data import DataNotFound, KrxData
from oms.settings import PROJECT_ROOT

BENCHMARKS = {"krx": "KOSPI", "us": "SPY"}
US_ENV_VAR = "TRADER_US_DATA_DIR"
LOOKBACK = timedelta(days=14)


def _us_dir(explicit: str | Path | None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(US_ENV_VAR):
        return Path(os.environ[US_ENV_VAR])
    return PROJECT_ROOT.parent / "shared" / "data" / "us"


def load_benchmark(market: str, start: date, end: date, data_dir: str | Path | None = None) -> pd.Series | None:
    """Daily closes (index: session dates, ``name``: KOSPI or SPY) or None when the data is not there."""
    market = market.lower()
    name = BENCHMARKS.get(market)
    if name is None:
        return None
    if market == "krx":
        try:
            bars = KrxData(data_dir).index_bars(name, start - LOOKBACK, end)
        except (DataNotFound, FileNotFoundError):
            return None
        if not bars:
            return None
        return pd.Series([b.close for b in bars], index=[b.ts.date() for b in bars], name=name, dtype=float)
    folder = _us_dir(data_dir)
    path = folder / "daily_ohlcv.parquet" if folder else None
    if path is None or not path.is_file():
        return None
    table = pq.read_table(
        path,
        columns=["date", "adj_close"],
        filters=[("symbol", "=", name), ("date", ">=", start - LOOKBACK), ("date", "<=", end)],
    )
    if table.num_rows == 0:
        return None
    frame = table.to_pandas().sort_values("date")
    return pd.Series(frame["adj_close"].to_numpy(dtype=float), index=list(frame["date"]), name=name)
