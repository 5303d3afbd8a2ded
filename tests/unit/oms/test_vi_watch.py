"""``ViWatch``: VI state changes on the feed → the cooldown risk reads + ``vi`` stream events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import KST, ManualClock
from broker_core.contract.wire import ViEvent
from broker_core.models import Tick
from oms.core.state import OmsState
from oms.core.types import OmsStateRecord
from oms.core.vi import ViWatch


def at(h: int, m: int, s: int = 0) -> datetime:
    return datetime(2026, 2, 27, h, m, s, tzinfo=KST)


class Journal:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    def append(self, records: list[Any]) -> int:
        self.rows += records
        return len(records)


def watch(cooldown_s: float = 600) -> tuple[ViWatch, OmsState, Journal, list[tuple[str, dict[str, Any]]]]:
    state, journal, pushed = OmsState(instance_id="t"), Journal(), []
    w = ViWatch(state, journal, ManualClock(at(9, 30)), cooldown_s, lambda s, e: pushed.append((s, e)))
    return w, state, journal, pushed


def tick(ts: datetime, vi: bool | None, symbol: str = "A") -> Tick:
    return Tick(symbol, ts, 10_000.0, 1, vi=vi)


def test_start_and_end_set_the_cooldown_and_push_events_once_each() -> None:
    w, state, journal, pushed = watch(cooldown_s=600)
    for t in (tick(at(9, 30, 1), False), tick(at(9, 31), None), tick(at(9, 31, 5), True), tick(at(9, 32), True)):
        w.on_tick(t)
    # while active: until the expected auction end (2 min) + the cooldown
    assert state.flags.vi_cooldowns == {"A": (at(9, 31, 5) + timedelta(minutes=2, seconds=600)).isoformat()}
    w.on_tick(tick(at(9, 33, 2), False))
    w.on_tick(tick(at(9, 33, 7), False))
    assert state.flags.vi_cooldowns == {"A": (at(9, 33, 2) + timedelta(seconds=600)).isoformat()}
    events = [ViEvent.model_validate(e) for _, e in pushed]
    assert [(e.symbol, e.active, e.ts) for e in events] == [("A", True, at(9, 31, 5)), ("A", False, at(9, 33, 2))]
    assert journal.rows and all(isinstance(r, OmsStateRecord) for r in journal.rows) and len(journal.rows) == 2


def test_a_longer_cooldown_set_by_an_admin_is_kept() -> None:
    w, state, _, _ = watch(cooldown_s=60)
    admin_until = at(11, 0).isoformat()
    state.flags.vi_cooldowns["A"] = admin_until
    w.on_tick(tick(at(9, 31), True))
    w.on_tick(tick(at(9, 32), False))
    assert state.flags.vi_cooldowns["A"] == admin_until


def test_a_vi_that_ends_early_is_cooled_from_its_end_and_other_expired_entries_go() -> None:
    w, state, _, _ = watch(cooldown_s=60)
    state.flags.vi_cooldowns["OLD"] = at(9, 0).isoformat()
    w.on_tick(tick(at(9, 31), True))
    w.on_tick(tick(at(9, 31, 30), False))  # shorter than the 2-minute auction the start assumed
    assert state.flags.vi_cooldowns == {"A": at(9, 32, 30).isoformat()}
