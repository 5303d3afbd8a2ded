"""A VI on the fake KIS's engine reaches the adapter's ticks (``Tick.vi``) through the H0STCNT0 records."""

from __future__ import annotations

from pathlib import Path

from broker_core.clock import VirtualClock
from broker_core.models import Side, Tick
from tests.integration.kis.conftest import adapter, fake_kis, kst, make_exchange

SYM = "005930"


async def test_prints_during_a_vi_carry_it_to_the_adapters_ticks(tmp_path: Path) -> None:
    clock = VirtualClock(kst(9, 30), speed=1)
    exchange = make_exchange(clock, [SYM], base=10_000.0)
    async with fake_kis(clock=clock, exchange=exchange) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        try:
            await b.subscribe_ticks([SYM])
            stream = b.ticks()
            engine = fake.exchange.engine
            prints = [
                Tick(SYM, kst(9, 30, 1), 10_000.0, 10, Side.BUY),  # the open: static reference 10,000
                Tick(SYM, kst(9, 30, 2), 11_000.0, 10, Side.BUY),  # +10%: static VI for 2 minutes
                Tick(SYM, kst(9, 31, 0), 11_000.0, 10, Side.BUY),  # still in the VI
                Tick(SYM, kst(9, 32, 5), 11_000.0, 10, Side.BUY),  # after its end
            ]
            got = []
            for tick in prints:
                engine.on_tick(tick)
                fake.publish_ticks([tick])
                got.append(await stream.__anext__())
            assert [(t.price, t.vi) for t in got] == [(10_000, False), (11_000, True), (11_000, True), (11_000, False)]
            assert [e.kind.value for e in engine.vi_events] == ["STATIC"]
            last = b.last_trade(SYM)
            assert last is not None and last.hour_cls_code == "0" and not last.in_vi
        finally:
            await b.close()
