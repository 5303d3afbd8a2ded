"""Nulrimok's recovery on the SDK against a fake OMS over HTTP: fills replayed after a reconnect against the
allocation snapshot read before them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from broker_core.clock import ManualClock
from strategies.nulrimok.config import NulrimokConfig
from strategies.nulrimok.strategy import NulrimokStrategy
from tests.unit.kpr._fake_oms import FakeOms
from tests.unit.nulrimok._helpers import D4, at


def _fill(execution_id: str, symbol: str, side: str, qty: int, ts: datetime) -> dict:
    return {
        "execution_id": execution_id,
        "order_id": f"o-{execution_id}",
        "strategy_id": "NULRIMOK",
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "price": 10_000,
        "ts": ts.isoformat(),
    }


async def test_fills_between_the_reads_of_a_reconnect_are_neither_undone_nor_adopted_again(tmp_path: Path):
    """After a reconnect the allocations are read (A held, no B), then A's exit SELL and a BUY of B fill, then the
    fills are read and replayed: A stays closed and B stays held, whatever the older snapshot says."""
    fake = FakeOms(allocations={"A": {"qty": 100, "cost_basis": 10_000, "entry_ts": at(D4, 10, 0).isoformat()}})
    clock = ManualClock(at(D4, 11, 0))
    strat = NulrimokStrategy(NulrimokConfig(), fake.client("NULRIMOK"), clock, sectors={}, data_dir=tmp_path)
    await strat.recover()  # the start
    assert strat.engine.held_symbols() == ["A"]
    clock.set(at(D4, 11, 5))
    fake.fills = [_fill("e1", "A", "SELL", 100, at(D4, 11, 4)), _fill("e2", "B", "BUY", 10, at(D4, 11, 4, 30))]
    strat.stream.connects = 2
    await strat.recover()
    assert strat.engine.held_symbols() == ["B"]
    pos = strat.engine.position_of("B")
    assert pos is not None and pos.qty == 10
    await strat.oms.aclose()
