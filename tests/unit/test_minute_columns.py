"""The KRX minute columns: decoded once into the cache folder and memory-mapped; the same bars with or without
a usable cache folder, and a day found through the day index as through the day column."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from broker_core.cache import CACHE_ENV
from broker_core.paper.data import KrxData

SYMBOL, DAY = "005930", date(2026, 2, 4)


def test_the_cached_columns_give_the_bars_the_parquet_file_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    in_memory = KrxData().minute_bars(SYMBOL, DAY)
    assert not isinstance(KrxData().minute_arrays(SYMBOL).close, np.memmap)

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first = KrxData()  # decodes and writes the columns
    assert first.minute_bars(SYMBOL, DAY) == in_memory
    files = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache" / "krx-minute").glob(f"{SYMBOL}-*"))
    assert files == ["days.npy", "f8.npy", "i8.npy"]
    mapped = KrxData()  # reads them back
    arrays = mapped.minute_arrays(SYMBOL)
    assert isinstance(arrays.close, np.memmap) and mapped.minute_bars(SYMBOL, DAY) == in_memory
    assert len(in_memory) > 300


@pytest.mark.parametrize("day", [date(2026, 2, 4), date(2026, 2, 7), date(2020, 1, 2), date(2030, 1, 2)])
def test_the_day_index_finds_a_day_as_the_day_column_does(day: date) -> None:
    arrays = KrxData().minute_arrays(SYMBOL)
    d = (day - date(1970, 1, 1)).days
    column = (int(np.searchsorted(arrays.day, d, "left")), int(np.searchsorted(arrays.day, d, "right")))
    assert arrays.day_range(day) == column
