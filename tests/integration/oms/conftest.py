"""OMS integration fixtures: one migrated database per backend (SQLite file, real Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'oms.db'}"
        return
    name, url = create_database()
    try:
        yield url
    finally:
        drop_database(name)
