"""KMP's recovery on the SDK against a fake OMS over HTTP: fills replayed at the first stream connection and
after a reconnect, against the allocation snapshot read before them."""

from __future__ import annotations

from datetime import datetime

from broker_core.clock import ManualClock
from strategies.kmp.config import KmpConfig
from strategies.kmp.strategy import KmpStrategy
from tests.unit.kmp._helpers import ts
from tests.unit.kpr._fake_oms import FakeOms


def _strategy(fake: FakeOms, now: datetime) -> tuple[KmpStrategy, ManualClock]:
    clock = ManualClock(now)
    return KmpStrategy(KmpConfig(), fake.client("KMP"), clock, sectors={"A": "S1"}), clock


def _fill(execution_id: str, side: str, qty: int, at: datetime) -> dict:
    return {
        "execution_id": execution_id,
        "order_id": f"o-{execution_id}",
        "strategy_id": "KMP",
        "symbol": "A",
        "side": side,
        "qty": qty,
        "price": 10_100,
        "ts": at.isoformat(),
    }


def _allocation(qty: int) -> dict:
    return {"qty": qty, "cost_basis": 10_000, "entry_ts": ts(9, 30).isoformat(), "soft_stop_px": 9_800}


async def test_first_connection_replays_the_gap_once_and_not_what_the_start_adopted():
    """The start adopts 10 shares, a BUY half a second old included; a SELL of 4 fills before the stream's first
    connection (never sent on it): that connection brings the position to 6, not 20 − 4."""
    fake = FakeOms(fills=[_fill("e1", "BUY", 10, ts(9, 59, 59.5))], allocations={"A": _allocation(10)})
    strat, clock = _strategy(fake, ts(10, 0))
    await strat.recover()  # the start
    pos = strat.engine.position_of("A")
    assert pos is not None and pos.qty == 10
    fake.fills.append(_fill("e2", "SELL", 4, ts(10, 0, 1)))
    fake.allocations = {"A": _allocation(6)}
    clock.set(ts(10, 0, 2))
    strat.stream.connects = 1
    await strat._on_stream_connect(1)  # what the stream calls once connected
    pos = strat.engine.position_of("A")
    assert pos is not None and pos.qty == 6
    await strat.oms.aclose()


async def test_a_sell_filled_between_the_reads_of_a_reconnect_is_not_adopted_again():
    """After a reconnect the allocations are read (A still held), then the exit's SELL fills, then the fills are
    read and replayed: the position is closed, and the older snapshot must not bring it back."""
    fake = FakeOms(allocations={"A": _allocation(10)})
    strat, clock = _strategy(fake, ts(10, 0))
    await strat.recover()  # the start
    clock.set(ts(10, 5))
    fake.fills = [_fill("e1", "SELL", 10, ts(10, 4))]  # the allocation read above it still shows 10
    strat.stream.connects = 2
    await strat.recover()
    pos = strat.engine.position_of("A")
    assert pos is None or pos.qty == 0
    assert strat.decision_counts["KMP_POSITION_RECOVERED"] == 1
    await strat.oms.aclose()
