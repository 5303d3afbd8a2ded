"""The trading universe filter: KRX common shares only (specs/kis.md §4.7).

``rprs_mrkt_kor_name`` of inquire-price names the representative market ("KOSPI200", "KOSPI",
"KOSDAQ", "KSQ150", "ETF", "ETN" …): names starting with KOSPI/KOSDAQ/KSQ are stock markets; ETF and
ETN are rejected, and so is everything else (KONEX, ELW …). Preferred shares are rejected by code
(a common share's 6-digit code ends in 0; preferred lines end in 5/7/9 or a letter) or by a name
ending in 우/우B/…; SPACs by a name containing 스팩/SPAC (the name must be supplied: inquire-price
does not carry it). Pure: the OMS market-data proxy can apply it to any price reply it caches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STOCK_MARKET_PREFIXES = ("KOSPI", "KOSDAQ", "KSQ")
_PREFERRED_NAME = re.compile(r"(\d?우[A-Z]?|\(전환\)|우선주)$")


@dataclass(frozen=True, slots=True)
class UniverseDecision:
    symbol: str
    eligible: bool
    reason: str
    """``OK`` or why not: ETF, ETN, SPAC, PREFERRED, NOT_STOCK_MARKET, INVALID_CODE."""
    market_name: str = ""


def classify(
    symbol: str, market_name: str, *, name: str = "", status_code: str = "", warn_code: str = ""
) -> UniverseDecision:
    code = symbol.strip().upper()
    market = (market_name or "").strip()
    upper = market.upper()

    def no(reason: str) -> UniverseDecision:
        return UniverseDecision(symbol, False, reason, market)

    if code.startswith("Q") or "ETN" in upper:
        return no("ETN")
    if "ETF" in upper:
        return no("ETF")
    if len(code) != 6 or not code[:5].isdigit():
        return no("INVALID_CODE")
    if not upper.startswith(STOCK_MARKET_PREFIXES):
        return no("NOT_STOCK_MARKET")
    clean = name.strip()
    if clean and ("스팩" in clean or "SPAC" in clean.upper()):
        return no("SPAC")
    if code[-1] != "0" or (clean and _PREFERRED_NAME.search(clean)):
        return no("PREFERRED")
    return UniverseDecision(symbol, True, "OK", market)


def is_common_share(symbol: str, market_name: str, name: str = "") -> bool:
    return classify(symbol, market_name, name=name).eligible
