"""Run folders: ``TRADER_RUNS_DIR`` chooses the root; two runs started in the same second get two folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader.simulation import runs_root, unique_run_dir


def test_the_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("TRADER_RUNS_DIR")
    assert runs_root().name == "runs"


def test_a_folder_taken_in_the_same_second_gets_a_suffix(tmp_path: Path) -> None:
    first = tmp_path / "sim-2026-02-04-20261205-173032"
    assert unique_run_dir(first) == first
    first.mkdir()
    second = unique_run_dir(first)
    assert second.name == "sim-2026-02-04-20261205-173032-2"
    second.mkdir()
    assert unique_run_dir(first).name == "sim-2026-02-04-20261205-173032-3"
