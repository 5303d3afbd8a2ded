"""The LRS tables (SQLAlchemy Core, one SQLite file). Every table has a natural unique key and every
write is an upsert on it, so a fill killed half-way and run again never stores a row twice."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

daily_bars = Table(
    "daily_bars",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
)
"""Daily OHLCV of the listing and of the indices (KOSPI, KOSDAQ)."""

investor_flow = Table(
    "investor_flow",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("foreign_net", Float, nullable=False),
    Column("inst_net", Float, nullable=False),
)
"""Daily net shares bought by foreign and institutional investors."""

bars_30m = Table(
    "bars_30m",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("start", String(32), primary_key=True),
    Column("day", Date, nullable=False, index=True),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("value", Float, nullable=False),
)
"""30-minute bars (start as ISO text with its +09:00 offset, so text order is time order)."""

sectors = Table(
    "sectors",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("sector", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
)

fetch_state = Table(
    "fetch_state",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("first_day", Date, nullable=False),
    Column("through", Date, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
)
"""What has been fetched: ``kind`` daily / flow / ``m30:<session>``; ``[first_day, through]`` = the window
asked for (not the data's), so a symbol without data is not asked again."""

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

features = Table(
    "features",
    metadata,
    Column("asof", Date, primary_key=True),
    Column("symbol", String(16), primary_key=True),
    Column("data", Text, nullable=False),
)
"""N2 per-ticker features (JSON of :class:`~strategies.nulrimok.features.SymbolFeatures`)."""

regime = Table(
    "regime",
    metadata,
    Column("asof", Date, primary_key=True),
    Column("tier", String(1), nullable=False),
    Column("score", Float, nullable=False),
    Column("risk_mult", Float, nullable=False),
    Column("data", Text, nullable=False),
)

sector_scores = Table(
    "sector_scores",
    metadata,
    Column("asof", Date, primary_key=True),
    Column("sector", String(64), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("weight", Float, nullable=False),
    Column("data", Text, nullable=False),
)

watchlist = Table(
    "watchlist",
    metadata,
    Column("session", Date, primary_key=True),
    Column("symbol", String(16), primary_key=True),
    Column("tradable", Boolean, nullable=False),
    Column("drop_reason", String(48)),
    Column("daily_rank", Float),
    Column("overflow_rank", Integer),
    Column("bucket", String(8)),
    Column("data", Text, nullable=False),
)
"""The DSE artifact as a table: one row per ticker of the listing with its scores and drop reason."""

position_state = Table(
    "position_state",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("entry_ts", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)
"""The engine's per-position state beyond what the OMS keeps (tag, post-fill bars, MFE ...)."""
