"""S2: the default universe (the reference data's 97 US large caps with their SPDR sector ETFs) and
the liquidity filter (traded close > $5, 20-session ADV > $20M)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from strategies.swing_ml.data import Panel

# fmt: off
DEFAULT_SECTOR_MAP: dict[str, str] = {
    # XLB
    "FCX": "XLB", "LIN": "XLB",
    # XLC
    "CMCSA": "XLC", "DIS": "XLC", "GOOGL": "XLC", "META": "XLC", "NFLX": "XLC", "TMUS": "XLC", "VZ": "XLC",
    # XLE
    "COP": "XLE", "CVX": "XLE", "MPC": "XLE",
    # XLF
    "AXP": "XLF", "BAC": "XLF", "BK": "XLF", "BLK": "XLF", "COF": "XLF", "GS": "XLF", "JPM": "XLF", "MA": "XLF",
    "MS": "XLF", "PYPL": "XLF", "V": "XLF", "WFC": "XLF",
    # XLI
    "ADP": "XLI", "BA": "XLI", "CAT": "XLI", "CSX": "XLI", "DAL": "XLI", "GD": "XLI", "GE": "XLI", "HON": "XLI",
    "LMT": "XLI", "ODFL": "XLI", "RTX": "XLI", "UAL": "XLI", "UBER": "XLI", "UNP": "XLI", "UPS": "XLI",
    # XLK
    "AAPL": "XLK", "ADBE": "XLK", "ADI": "XLK", "AMAT": "XLK", "AMD": "XLK", "ASML": "XLK", "AVGO": "XLK",
    "CDNS": "XLK", "CRM": "XLK", "CRWD": "XLK", "CSCO": "XLK", "FTNT": "XLK", "IBM": "XLK", "INTC": "XLK",
    "INTU": "XLK", "KLAC": "XLK", "LRCX": "XLK", "MSFT": "XLK", "MU": "XLK", "NVDA": "XLK", "NXPI": "XLK",
    "ORCL": "XLK", "PANW": "XLK", "QCOM": "XLK", "SNPS": "XLK", "TSM": "XLK", "TXN": "XLK",
    # XLP
    "COST": "XLP", "KO": "XLP", "WMT": "XLP",
    # XLU
    "EXC": "XLU", "NEE": "XLU", "PEG": "XLU", "SO": "XLU",
    # XLV
    "ISRG": "XLV", "LLY": "XLV", "MDT": "XLV", "PFE": "XLV", "REGN": "XLV", "TMO": "XLV", "UNH": "XLV",
    # XLY
    "ABNB": "XLY", "AMZN": "XLY", "BKNG": "XLY", "F": "XLY", "GM": "XLY", "HD": "XLY", "HLT": "XLY", "LOW": "XLY",
    "MAR": "XLY", "MCD": "XLY", "MELI": "XLY", "NKE": "XLY", "RCL": "XLY", "ROST": "XLY", "SBUX": "XLY",
    "TGT": "XLY", "TSLA": "XLY",
}
# fmt: on
"""Stock → SPDR sector ETF, as in the reference data's ``sector_map.parquet``."""

DEFAULT_UNIVERSE: tuple[str, ...] = tuple(sorted(DEFAULT_SECTOR_MAP))


def dollar_volume(panel: Panel, window: int = 20) -> pd.DataFrame:
    """Mean traded value (traded close × volume) over the last ``window`` sessions (ADV in $)."""
    return (panel.raw_close * panel.volume).rolling(window, min_periods=window).mean()


def liquid_universe(
    panel: Panel,
    day: date | pd.Timestamp,
    symbols: list[str] | tuple[str, ...] | None = None,
    min_price: float = 5.0,
    min_adv_usd: float = 20e6,
    window: int = 20,
) -> list[str]:
    """Symbols (default: all of the panel) with a bar on ``day``, traded close > ``min_price`` and
    ADV > ``min_adv_usd``."""
    ts = pd.Timestamp(day)
    sub = panel.select(symbols) if symbols is not None else panel
    if ts not in sub.close.index:
        return []
    price = sub.raw_close.loc[ts]
    adv = dollar_volume(sub, window).loc[ts]
    ok = ((price > min_price) & (adv > min_adv_usd)).fillna(False).astype(bool)
    return sorted(str(s) for s in ok[ok].index)
