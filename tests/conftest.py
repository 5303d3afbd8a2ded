"""Suite-wide collection rule: the multi-process runs share one xdist group.

``make test`` runs the suite on two workers (``-n 2 --dist loadgroup``). The end-to-end and backtest runs each
start several processes and load both cores; kept in one group they run one after another on one worker
while the other worker takes the rest of the suite, so no two of them compete (their deadlines were set for
one demo on a loaded machine, not two)."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAVY = ("e2e", "integration/backtest")
_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(_ROOT.resolve()).as_posix()
        if rel.startswith(HEAVY):
            item.add_marker(pytest.mark.xdist_group("multi_process"))
