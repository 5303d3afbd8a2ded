"""Optional inputs the broker cannot give (strategies.md N1): earnings calendar, quality blacklist, KRW/USD.

Each is a small CSV in ``config/`` (paths in ``files:`` of ``config/nulrimok.yaml``). A file that is
absent (or unreadable) turns its rule off: the DSE skips it, the wiring logs NULRIMOK_RULE_SKIPPED once
and the status lists it under ``skipped_rules``. Lines starting with ``#`` and a header line (a first
line whose date/number column does not parse) are ignored; other malformed lines are reported.

* earnings: ``symbol,date`` — N3 drops a ticker with earnings within the next 3 sessions;
* blacklist: ``symbol[,reason]`` — N3 drops it (quality blacklist, administrative issues);
* krw_usd: ``date,close`` (KRW per USD) — N4 ``fx_ok``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

RULES = {"earnings": "N3 earnings filter", "blacklist": "N3 quality blacklist", "krw_usd": "N4 fx_ok"}


@dataclass
class OptionalInputs:
    earnings: dict[str, list[date]] | None = None
    blacklist: dict[str, str] | None = None
    fx: list[tuple[date, float]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """rule name → why it is skipped (file absent / unreadable)."""
    problems: list[str] = field(default_factory=list)

    def fx_closes(self, asof: date) -> list[float] | None:
        if self.fx is None:
            return None
        return [c for d, c in self.fx if d <= asof]


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [[c.strip() for c in row] for row in csv.reader(fh) if row and not row[0].strip().startswith("#")]


def load_inputs(earnings: Path, blacklist: Path, krw_usd: Path) -> OptionalInputs:
    out = OptionalInputs()
    for name, path in (("earnings", earnings), ("blacklist", blacklist), ("krw_usd", krw_usd)):
        if not path.is_file():
            out.skipped[name] = f"{RULES[name]} skipped: {path} not found"
            continue
        try:
            rows = _rows(path)
        except (OSError, UnicodeDecodeError) as exc:
            out.skipped[name] = f"{RULES[name]} skipped: {path} unreadable ({exc})"
            continue
        if name == "earnings":
            cal: dict[str, list[date]] = {}
            for i, row in enumerate(rows):
                try:
                    day = date.fromisoformat(row[1])
                except (IndexError, ValueError):
                    if i:
                        out.problems.append(f"{path}: line {i + 1} not 'symbol,YYYY-MM-DD': {row}")
                    continue
                cal.setdefault(row[0], []).append(day)
            out.earnings = cal
        elif name == "blacklist":
            out.blacklist = {
                row[0]: (row[1] if len(row) > 1 else "") for row in rows if row[0] and row[0].lower() != "symbol"
            }
        else:
            fx: list[tuple[date, float]] = []
            for i, row in enumerate(rows):
                try:
                    fx.append((date.fromisoformat(row[0]), float(row[1])))
                except (IndexError, ValueError):
                    if i:
                        out.problems.append(f"{path}: line {i + 1} not 'YYYY-MM-DD,close': {row}")
            out.fx = sorted(fx)
    return out
