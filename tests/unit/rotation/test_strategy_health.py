"""The rotation process's health as its heartbeat reports it (and the OMS's /health then degrades): nothing
between cycles, ``cycle_overdue`` once today's cycle is 15 minutes late, ``cycle_failed:…`` after a failed
attempt until a cycle runs; the error counter is per New York day."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from broker_core.clock import NEW_YORK, ManualClock
from strategies.rotation.config import RotationConfig
from strategies.rotation.strategy import RotationStrategy
from strategies.sdk.client import OmsClient


def at(hh: int, mm: int, day: int = 26) -> datetime:
    return datetime(2024, 11, day, hh, mm, tzinfo=NEW_YORK)


def strategy(tmp_path: Path) -> RotationStrategy:
    clock = ManualClock(at(9, 0))
    oms = OmsClient("http://127.0.0.1:9", "key", "ROTATION_CORE")
    return RotationStrategy(
        RotationConfig(), oms, clock, model="rotation_core", budgets={"rotation_core": 1.0}, data_dir=tmp_path
    )


def test_overdue_failed_and_reset(tmp_path: Path) -> None:
    s = strategy(tmp_path)
    assert s.health_issue(at(9, 0)) is None  # before the cycle time
    assert s.health_issue(at(10, 10)) is None  # the cycle is due, not yet late
    assert s.health_issue(at(10, 16)) == "cycle_overdue"
    assert s.health_issue(at(16, 30)) is None  # after the close: nothing more to do today
    s._error("cycle_failed:OmsUnavailable", date(2024, 11, 26))
    s._error("cycle_failed:OmsUnavailable", date(2024, 11, 26))
    assert s.health_issue(at(10, 5)) == "cycle_failed:OmsUnavailable" and s.errors_today == 2
    s.last_cycle, s.cycle_failure = date(2024, 11, 26), None
    assert s.health_issue(at(11, 0)) is None
    assert s.health_issue(at(10, 20, day=28)) is None  # Thanksgiving: no session
    s._error("data_invalid", date(2024, 11, 29))
    assert s.errors_today == 1 and s.health_issue(at(10, 0, day=29)) == "data_invalid"
    s.clock.set(at(12, 0, day=29))  # type: ignore[attr-defined]
    status = s.status()
    assert status["health_issue"] == "data_invalid" and status["errors_today"] == 1
    s.clock.set(at(12, 0, day=29).replace(month=12, day=2))  # type: ignore[attr-defined]
    assert s.status()["errors_today"] == 0
