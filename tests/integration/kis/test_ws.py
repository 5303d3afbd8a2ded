"""WebSocket: the 41-registration cap, OPSP0008, reconnect with resubscription, batches, PINGPONG."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker_core.errors import SubscriptionCapacityExceeded
from broker_core.kis import tr_ids as T
from broker_core.models import Side, Tick
from tests.integration.kis.conftest import SteppingClock, adapter, fake_kis, kst, make_exchange
from tests.support.wait import until

SYMBOLS = [f"{200000 + 10 * i:06d}" for i in range(45)]


async def test_45_subscriptions_40_granted_42nd_registration_refused_and_restored_after_a_drop(tmp_path: Path) -> None:
    clock = SteppingClock(kst(9, 30))
    async with fake_kis(clock=clock, exchange=make_exchange(clock, SYMBOLS)) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        granted, refused = [], []
        for sym in SYMBOLS:
            try:
                await b.subscribe_ticks([sym])
                granted.append(sym)
            except SubscriptionCapacityExceeded:
                refused.append(sym)
        assert granted == SYMBOLS[:40] and refused == SYMBOLS[40:]
        assert b.subscription_capacity == 40 and b.subscribed == frozenset(SYMBOLS[:40])
        regs = set(fake.registrations())
        assert len(regs) == 41 and (T.WS_NOTICE_PAPER, fake.profile.hts_id) in regs
        # the 42nd registration, sent past the adapter's own budget, is refused by the server
        with pytest.raises(SubscriptionCapacityExceeded) as info:
            await b.ws.subscribe(T.WS_TRADE, SYMBOLS[40], enforce_cap=False)
        assert info.value.code == "OPSP0008"
        [session] = fake.sessions
        assert session.refused == ["OPSP0008"] and len(session.registrations) == 41
        # a dropped connection is re-established with every registration restored
        assert await fake.close_websockets() == 1
        await until(
            lambda: b.ws.connects == 2 and b.ws.connected.is_set() and len(fake.registrations()) == 41,
            what="reconnect and resubscription",
        )
        assert set(fake.registrations()) == regs and fake.ws_connects == 2
        # unsubscribe frees a slot for another symbol
        await b.unsubscribe_ticks([SYMBOLS[0]])
        await b.subscribe_ticks([SYMBOLS[44]])
        assert (T.WS_TRADE, SYMBOLS[44]) in fake.registrations() and (
            T.WS_TRADE,
            SYMBOLS[0],
        ) not in fake.registrations()
        await b.close()


async def test_multi_record_frame_yields_every_tick_and_pingpong_is_echoed(tmp_path: Path) -> None:
    clock = SteppingClock(kst(9, 30))
    async with fake_kis(clock=clock) as fake:
        b = adapter(fake, clock, tmp_path, ws_url=fake.ws_url + "/tryitout")
        await b.connect()
        [session] = fake.sessions
        assert session.path == "/tryitout"
        await b.subscribe_ticks(["005930"])
        books: list[object] = []
        b.ws.on_book = books.append
        await b.ws.subscribe(T.WS_BOOK, "005930")
        stream = b.ticks()
        t0 = kst(9, 30, 1)
        prints = [
            Tick("005930", t0, 10_000.0, 5, Side.BUY),
            Tick("005930", t0, 10_010.0, 3, Side.BUY),
            Tick("005930", t0 + timedelta(seconds=1), 9_990.0, 7, Side.SELL),
        ]
        frames = b.ws.frames
        fake.publish_ticks(prints)
        got = [await stream.__anext__() for _ in range(3)]
        assert [(t.price, t.qty, t.aggressor) for t in got] == [(p.price, p.qty, p.aggressor) for p in prints]
        assert [t.ts for t in got] == [p.ts for p in prints]
        await until(lambda: len(books) == 1, what="the book record after the prints")
        assert b.ws.frames == frames + 2  # one H0STCNT0 frame with NNN = 003, one H0STASP0 frame
        book = books[0]
        assert book.symbol == "005930" and book.field_count == 59  # type: ignore[attr-defined]
        assert book.asks[0] > book.bids[0] and len(book.bids) == 10  # type: ignore[attr-defined]
        last = b.last_trade("005930")
        assert last is not None and last.cum_volume == 15 and last.vi_ref_price == 10_000
        assert fake.send_pingpong() == 1
        await until(lambda: session.pongs == 1, what="PINGPONG echoed")
        assert b.ws.pingpongs == 1
        await b.close()
