"""Access token: reuse across restarts, the once-a-minute issuance, expiry, proactive refresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker_core.kis.auth import TOKEN_PATH
from tests.integration.kis.conftest import SteppingClock, adapter, drive, fake_kis, kst, run
from tests.support.wait import until


async def test_token_is_reused_across_an_adapter_restart(tmp_path: Path) -> None:
    clock = SteppingClock(kst(8, 40))
    async with fake_kis(clock=clock) as fake:
        first = adapter(fake, clock, tmp_path)
        await first.connect()
        quote = await first.get_quote("005930")
        await first.close()
        clock.advance(5)
        second = adapter(fake, clock, tmp_path)
        await second.connect()
        assert (await second.get_quote("005930")).last == quote.last
        await second.close()
        tokens = fake.state.requests_to(TOKEN_PATH)
        assert [r.status for r in tokens] == [200], tokens
        assert (first.rest.tokens.issued, second.rest.tokens.issued) == (1, 0)
        assert fake.state.tokens_issued == 1


async def test_second_adapter_within_the_minute_waits_for_the_next_allowed_minute(tmp_path: Path) -> None:
    clock = SteppingClock(kst(8, 40))
    async with fake_kis(clock=clock) as fake:
        a = adapter(fake, clock, tmp_path / "a")
        await a.connect()
        clock.advance(10)
        b = adapter(fake, clock, tmp_path / "b")
        task = asyncio.ensure_future(b.connect())
        await until(lambda: [r.status for r in fake.state.requests_to(TOKEN_PATH)] == [200, 403], what="EGW00133")
        assert fake.state.requests_to(TOKEN_PATH)[1].msg_cd == "EGW00133"
        await drive(clock, task)
        tokens = fake.state.requests_to(TOKEN_PATH)
        assert [r.status for r in tokens] == [200, 403, 200]
        assert (tokens[2].at - tokens[0].at).total_seconds() >= 60
        assert b.rest.tokens.issue_waits == 1
        assert b.rest.tokens.current is not None and a.rest.tokens.current is not None
        assert b.rest.tokens.current.value == a.rest.tokens.current.value  # same token within 6 h
        await run(clock, b.get_quote("005930"), fake=fake, broker=b)
        await a.close()
        await b.close()


async def test_expired_token_is_reissued_once_and_refresh_is_proactive(tmp_path: Path) -> None:
    clock = SteppingClock(kst(8, 40))
    async with fake_kis(clock=clock) as fake:
        b = adapter(fake, clock, tmp_path)
        await b.connect()
        clock.advance(120)
        fake.state.expire_tokens()
        await run(clock, b.get_quote("005930"), fake=fake, broker=b)
        statuses = [(r.path, r.status, r.msg_cd) for r in fake.request_log if r.path != "/oauth2/Approval"]
        assert statuses[-3:] == [
            ("/uapi/domestic-stock/v1/quotations/inquire-price", 500, "EGW00123"),
            (TOKEN_PATH, 200, ""),
            ("/uapi/domestic-stock/v1/quotations/inquire-price", 200, "MCA00000"),
        ]
        assert b.rest.tokens.issued == 2
        # 23h45m later the token has 15 minutes left: the next call renews it first, never sees EGW00123
        clock.advance(23 * 3600 + 45 * 60)
        before = len(fake.request_log)
        await run(clock, b.get_quote("005930"), fake=fake, broker=b)
        after = [(r.path, r.status) for r in fake.request_log[before:]]
        assert after == [(TOKEN_PATH, 200), ("/uapi/domestic-stock/v1/quotations/inquire-price", 200)]
        assert b.rest.tokens.issued == 3
        await b.close()
