"""Shared fixtures: the US reference data (../shared/data/us or $TRADER_US_DATA_DIR; fails, never skips)."""

from __future__ import annotations

import pytest

from broker_core.paper.us_data import UsData, UsDataNotFound
from strategies.swing_ml.data import Panel, load_panel


@pytest.fixture(scope="session")
def us_data() -> UsData:
    try:
        return UsData()
    except UsDataNotFound as exc:
        pytest.fail(f"the US reference data is required for these tests: {exc}")


@pytest.fixture(scope="session")
def panel(us_data: UsData) -> Panel:
    """Every symbol of the reference data, 2015–2024."""
    return load_panel(data=us_data)


@pytest.fixture(scope="session")
def sector_map(us_data: UsData) -> dict[str, str]:
    return us_data.sector_map()
