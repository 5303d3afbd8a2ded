"""Suite-wide collection rule: the multi-process runs share one xdist group.

``make test`` runs the suite on two workers (``-n 2 --dist loadgroup``). The end-to-end runs (and the
backtest/sim agreement, which runs a live sim) start several processes on virtual clocks with wall-clock
deadlines; kept in one group they run one after another on one worker while the other worker takes the
rest of the suite, so no two of them compete (their deadlines were set for one demo on a loaded machine,
not two). The in-process backtests are CPU work on a driven clock, with no deadline: they run anywhere.

A module whose tests share an expensive module-scoped fixture (a backtest run, a dashboard's accounts) is its
own group: spread over both workers, each worker built the fixture again (``--durations=0``: 7–15 s each)."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAVY = ("e2e", "integration/backtest/test_agreement.py")
SHARED_FIXTURE_MODULES = (
    "integration/backtest/test_backtest_kmp.py",
    "unit/swing_ml/test_backtest.py",
    "integration/accounts/test_dashboard.py",
    "integration/report/test_run_report.py",
)
_ROOT = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before xdist's own hook, which reads the group markers to name the items of ``--dist loadgroup``
    (after it, a marker added here is never seen and the heavy runs spread over both workers)."""
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(_ROOT.resolve()).as_posix()
        if rel.startswith(HEAVY):
            item.add_marker(pytest.mark.xdist_group("multi_process"))
        elif rel in SHARED_FIXTURE_MODULES:
            item.add_marker(pytest.mark.xdist_group(rel))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """On an xdist worker of ``--dist loadgroup``: a multi-process test fails when xdist did not put its group
    in its name — it would have been sent to either worker, beside another one (pytest 9.2 with xdist 3.8)."""
    on_grouping_worker = getattr(item.config.option, "loadgroup", False)  # set by xdist on its workers only
    if on_grouping_worker and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            f"pytest-xdist did not group this multi-process test with pytest {pytest.__version__}: the heavy runs "
            "would share the machine; pin pytest/pytest-xdist in pyproject.toml to versions where --dist loadgroup "
            "works",
            pytrace=False,
        )
