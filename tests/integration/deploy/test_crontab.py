"""scripts/crontab.example: the health check runs every 5 minutes 09:00–15:30 KST on weekdays."""

from __future__ import annotations

import re

from tests.integration.deploy.conftest import REPO

CRONTAB = REPO / "scripts" / "crontab.example"


def _expand(field: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in field.split(","):
        rng, _, step = part.partition("/")
        a, b = (lo, hi) if rng == "*" else (int(rng.split("-")[0]), int(rng.split("-")[-1]))
        out.update(range(a, b + 1, int(step or 1)))
    return out


def _entries(host: str) -> list[tuple[set[tuple[int, int]], set[int], str]]:
    out = []
    for line in CRONTAB.read_text().splitlines():
        line = re.sub(r"^#\s*(?=[\d*])", "", line.strip())  # host 2's lines are commented out
        fields = line.split(None, 5)
        if len(fields) < 6 or not re.match(r"^[\d*]", fields[0]) or f"health_check.sh {host}" not in fields[5]:
            continue
        minute, hour, dom, month, dow, cmd = fields
        assert dom == "*" and month == "*"
        times = {(h, m) for h in _expand(hour, 0, 23) for m in _expand(minute, 0, 59)}
        out.append((times, _expand(dow, 0, 6), cmd))
    return out


def test_every_five_minutes_during_the_session() -> None:
    session = {(h, m) for h in range(9, 16) for m in range(0, 60, 5) if (h, m) <= (15, 30)}
    for host in ("VPS1", "VPS2"):
        entries = _entries(host)
        assert entries, f"no health_check.sh {host} line"
        covered = set().union(*(t for t, _, _ in entries))
        assert session <= covered, sorted(session - covered)
        assert all(h < 9 or (h, m) <= (15, 30) for h, m in covered), "nothing after 15:30"
        assert all(d == {1, 2, 3, 4, 5} for _, d, _ in entries), "weekdays only"


def test_backup_line() -> None:
    text = CRONTAB.read_text()
    assert re.search(r"^#?\s*\d+ \d+ \* \* \*\s+.*scripts/backup_db\.sh", text, re.M)
