"""The listing master: names (and aliases) → 6-digit codes (I3), plus market cap and earnings dates.

A YAML file (the KIS master file can be converted to it)::

    symbols:
      - code: "005930"
        name: 삼성전자
        aliases: [삼성, Samsung Electronics]
        market: KOSPI
        market_cap: null          # ₩; null = unknown (the I7 market-cap reject is then not applied)
        earnings_dates: []        # YYYY-MM-DD

Matching normalises Unicode (NFKC), case and whitespace; a 6-digit code resolves when listed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from broker_core.config_errors import ConfigError, describe
from strategies.pcim.filters import ListingInfo
from strategies.sdk.config import StrictModel, display_path

_CODE = re.compile(r"^\d{6}$")


class ListingEntry(StrictModel):
    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    market: str | None = None
    market_cap: float | None = Field(None, ge=0)
    earnings_dates: list[date] = Field(default_factory=list)


class ListingFile(StrictModel):
    sample: bool = False
    symbols: list[ListingEntry] = Field(default_factory=list)


def normalise(text: str) -> str:
    return re.sub(r"[\s·\-_.()]+", "", unicodedata.normalize("NFKC", text)).casefold()


@dataclass(frozen=True, slots=True)
class Resolved:
    code: str
    name: str


class ListingMaster:
    def __init__(self, entries: list[ListingEntry], sample: bool = False) -> None:
        self.entries = {e.code: e for e in entries}
        self.sample = sample
        self._by_name: dict[str, str] = {}
        for e in entries:
            for n in (e.name, *e.aliases):
                self._by_name.setdefault(normalise(n), e.code)

    @classmethod
    def load(cls, path: str | Path) -> ListingMaster:
        p = Path(path)
        shown = display_path(p)
        if not p.exists():
            raise ConfigError(f"{shown}: listing master not found")
        try:
            data: Any = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{shown}: not valid YAML ({exc})") from exc
        try:
            parsed = ListingFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, shown)) from exc
        return cls(parsed.symbols, sample=parsed.sample)

    def resolve(self, ticker_or_name: str) -> Resolved | None:
        text = ticker_or_name.strip()
        code = text if _CODE.match(text) else None
        if code is None:
            digits = re.sub(r"\D", "", text)
            if len(digits) == 6 and normalise(text).removeprefix("a") == digits:
                code = digits
        if code is not None:
            e = self.entries.get(code)
            return Resolved(e.code, e.name) if e else None
        hit = self._by_name.get(normalise(text))
        return Resolved(hit, self.entries[hit].name) if hit else None

    def info(self, code: str) -> ListingInfo:
        e = self.entries.get(code)
        if e is None:
            return ListingInfo()
        return ListingInfo(market_cap=e.market_cap, earnings_dates=tuple(e.earnings_dates), market=e.market)

    def names(self) -> list[tuple[str, str]]:
        """(surface form, code) pairs, longest first (for the rule-based extractor)."""
        pairs = [(n, e.code) for e in self.entries.values() for n in (e.name, *e.aliases)]
        return sorted(pairs, key=lambda p: (-len(p[0]), p[0]))
