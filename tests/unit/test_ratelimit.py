"""Token-bucket limiter driven entirely by a fake monotonic time and a fake async sleep."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable

import pytest

from broker_core.ratelimit import Priority, RateLimiter


async def settle(rounds: int = 30) -> None:
    """Let every ready task run (yields to the loop; no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class AutoTime:
    """Fake time whose ``sleep`` simply advances the clock (as if the wait happened instantly)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        if len(self.sleeps) > 100_000:
            raise AssertionError("limiter pump is spinning without making progress")
        self.t += seconds
        await asyncio.sleep(0)


class GatedTime:
    """Fake time moved only by the test; ``sleep`` blocks until the test advances far enough."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._n = 0
        self.sleep_calls = 0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleep_calls += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._n += 1
        heapq.heappush(self._sleepers, (self.t + seconds, self._n, fut))
        self._wake()
        await fut

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.t:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._wake()


def make(rate: float, burst: float | None, clock: AutoTime | GatedTime) -> RateLimiter:
    return RateLimiter(rate, burst, monotonic=clock.monotonic, sleep=clock.sleep)


class RecordingLimiter(RateLimiter):
    """Notes the fake time of every grant at the instant it is made (``granted`` is bumped in the
    same synchronous step as the refill that allowed it), independent of when the caller resumes."""

    def __init__(self, rate: float, burst: float | None, clock: AutoTime) -> None:
        self._clock = clock
        self._count = 0
        self.grant_times: list[float] = []
        super().__init__(rate, burst, monotonic=clock.monotonic, sleep=clock.sleep)

    @property  # type: ignore[override]
    def granted(self) -> int:
        return self._count

    @granted.setter
    def granted(self, value: int) -> None:
        if value > self._count:
            self.grant_times.append(self._clock.t)
        elif value < self._count:
            self.grant_times.pop()
        self._count = value


def assert_token_bucket_bound(times: Iterable[float], rate: float, burst: float, t0: float) -> None:
    """For every window [a, b] (and every prefix from t0): grants ≤ rate·(b − a) + burst."""
    ts = sorted(times)
    eps = 1e-9
    for j, b in enumerate(ts):
        assert j + 1 <= rate * (b - t0) + burst + eps, (j + 1, b - t0)
        for i in range(j + 1):
            assert j - i + 1 <= rate * (b - ts[i]) + burst + eps, (i, j, ts[i], b)


# --------------------------------------------------------------------------- basics


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(-1)
    with pytest.raises(ValueError):
        RateLimiter(5, burst=0.5)  # could never hold a whole token: every waiter would hang


def test_default_burst() -> None:
    assert RateLimiter(20).capacity == 20
    assert RateLimiter(0.5).capacity == 1
    assert RateLimiter(2, burst=7).capacity == 7


def test_try_acquire_respects_burst_and_refill() -> None:
    ft = AutoTime()
    lim = make(2, 3, ft)
    assert [lim.try_acquire() for _ in range(4)] == [True, True, True, False]
    ft.t += 0.49
    assert not lim.try_acquire()
    ft.t += 0.01  # 0.5 s at 2/s = one token
    assert lim.try_acquire()
    assert not lim.try_acquire()
    ft.t += 100  # refill is capped at burst
    assert [lim.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert lim.granted == 7


def test_a_step_back_in_time_refills_nothing() -> None:
    ft = AutoTime()
    ft.t = 1_000_000.0
    lim = make(2, 1, ft)
    assert lim.try_acquire()
    ft.t = 10.0  # a simulation's clock anchored: its reading moved back
    assert not lim.try_acquire()
    ft.t += 0.5
    assert lim.try_acquire()


async def test_acquire_immediate_when_tokens_available() -> None:
    ft = GatedTime()
    lim = make(10, 2, ft)
    await lim.acquire()
    async with lim:
        pass
    assert lim.granted == 2
    assert ft.sleep_calls == 0


# --------------------------------------------------------------------------- the rate bound


@pytest.mark.parametrize(("rate", "burst", "n"), [(5, 2, 40), (20, 20, 100), (2, 1, 15), (0.5, 1, 6), (3, 4.5, 30)])
async def test_never_grants_more_than_rate_times_elapsed_plus_burst(rate: float, burst: float, n: int) -> None:
    ft = AutoTime()
    t0 = ft.t
    lim = RecordingLimiter(rate, burst, ft)
    prios = [Priority.ORDER, Priority.RECONCILE, Priority.MARKET_DATA]

    await asyncio.gather(*(lim.acquire(prios[i % 3]) for i in range(n)))
    assert lim.granted == n
    assert len(lim.grant_times) == n
    assert_token_bucket_bound(lim.grant_times, rate, burst, t0)
    # and it is not needlessly slow: the last grant happens as soon as the n-th token exists
    assert lim.grant_times[-1] - t0 == pytest.approx(max(0.0, (n - burst) / rate), abs=1e-6)
    # the pump sleeps at most once per grant (no spinning on float dust)
    assert len(ft.sleeps) <= n


async def test_bound_holds_with_staggered_arrivals_and_try_acquire_mixed_in() -> None:
    ft = AutoTime()
    t0 = ft.t
    rate, burst = 4.0, 3.0
    lim = RecordingLimiter(rate, burst, ft)

    tasks = []
    direct = 0
    for wave in range(5):
        for k in range(6):
            tasks.append(asyncio.create_task(lim.acquire(Priority(k % 3))))
        direct += lim.try_acquire()
        await settle(3)
        ft.t += 0.3 * wave  # idle gaps of varying length between waves
    await asyncio.gather(*tasks)
    assert lim.granted == len(tasks) + direct == len(lim.grant_times)
    assert_token_bucket_bound(lim.grant_times, rate, burst, t0)


async def test_try_acquire_does_not_jump_the_queue() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    waiter = asyncio.create_task(lim.acquire(Priority.MARKET_DATA))
    await settle()
    ft.t += 5  # tokens refilled, but the pump has not run yet
    assert not lim.try_acquire()  # a queued waiter goes first
    ft.advance(0)
    await settle()
    assert waiter.done()


# --------------------------------------------------------------------------- priorities


async def test_orders_are_served_before_market_data_regardless_of_arrival() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()  # bucket now empty
    served: list[str] = []

    async def caller(name: str, prio: Priority) -> None:
        await lim.acquire(prio)
        served.append(name)

    arrivals = [
        ("md1", Priority.MARKET_DATA),
        ("md2", Priority.MARKET_DATA),
        ("rec1", Priority.RECONCILE),
        ("ord1", Priority.ORDER),
        ("md3", Priority.MARKET_DATA),
        ("ord2", Priority.ORDER),
    ]
    tasks = []
    for name, prio in arrivals:
        tasks.append(asyncio.create_task(caller(name, prio)))
        await settle()  # each one is queued (and the pump asleep) before the next arrives
    assert served == []
    for expected in (
        ["ord1"],
        ["ord1", "ord2"],
        ["ord1", "ord2", "rec1"],
        ["ord1", "ord2", "rec1", "md1"],
        ["ord1", "ord2", "rec1", "md1", "md2"],
        ["ord1", "ord2", "rec1", "md1", "md2", "md3"],
    ):
        ft.advance(1.0)
        await settle()
        assert served == expected
    await asyncio.gather(*tasks)


async def test_order_arriving_while_pump_sleeps_overtakes_waiting_market_data() -> None:
    ft = GatedTime()
    lim = make(2, 1, ft)
    assert lim.try_acquire()
    served: list[str] = []

    async def caller(name: str, prio: Priority) -> None:
        await lim.acquire(prio)
        served.append(name)

    md = asyncio.create_task(caller("md", Priority.MARKET_DATA))
    await settle()
    ft.advance(0.25)  # half way to the next token
    await settle()
    order = asyncio.create_task(caller("order", Priority.ORDER))
    await settle()
    ft.advance(0.25)
    await settle()
    assert served == ["order"]
    ft.advance(0.5)
    await settle()
    assert served == ["order", "md"]
    await asyncio.gather(md, order)


async def test_same_priority_is_fifo() -> None:
    ft = AutoTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    served: list[int] = []

    async def caller(i: int) -> None:
        await lim.acquire(Priority.RECONCILE)
        served.append(i)

    await asyncio.gather(*(caller(i) for i in range(8)))
    assert served == list(range(8))


# --------------------------------------------------------------------------- cancellation


async def test_cancelled_waiter_does_not_consume_a_token() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    served: list[str] = []

    async def caller(name: str, prio: Priority) -> None:
        await lim.acquire(prio)
        served.append(name)

    a = asyncio.create_task(caller("a", Priority.ORDER))
    b = asyncio.create_task(caller("b", Priority.MARKET_DATA))
    await settle()
    a.cancel()
    await settle()
    assert a.cancelled()
    ft.advance(1.0)  # exactly one token: it must go to b, not to the cancelled a
    await settle()
    assert served == ["b"]
    assert lim.granted == 2
    await b


async def test_cancelled_queued_waiter_does_not_block_try_acquire() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    w = asyncio.create_task(lim.acquire())
    await settle()
    w.cancel()
    await asyncio.gather(w, return_exceptions=True)
    ft.t += 1.0  # a token is due; the pump is still asleep
    assert lim.try_acquire()
    assert lim.granted == 2


async def test_all_waiters_cancelled_then_bucket_refills_fully() -> None:
    ft = GatedTime()
    lim = make(2, 3, ft)
    for _ in range(3):
        assert lim.try_acquire()
    waiters = [asyncio.create_task(lim.acquire(Priority(i % 3))) for i in range(5)]
    await settle()
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    ft.advance(10)
    await settle()
    assert lim.granted == 3
    assert [lim.try_acquire() for _ in range(4)] == [True, True, True, False]


async def test_cancel_after_grant_but_before_resume_returns_the_token() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    a = asyncio.create_task(lim.acquire(Priority.ORDER))
    await settle()
    assert not a.done()
    ft.advance(1.0)  # the pump wakes and grants a's future ...
    while lim.granted < 2:
        await asyncio.sleep(0)
    assert not a.done()  # ... but a has not resumed yet
    a.cancel()  # the caller gives up at that very moment
    with pytest.raises(asyncio.CancelledError):
        await a
    assert lim.granted == 1
    assert lim.try_acquire()  # the token came back: no extra second of waiting
    assert not lim.try_acquire()


async def test_cancel_after_grant_hands_token_to_next_waiter() -> None:
    ft = GatedTime()
    lim = make(1, 1, ft)
    assert lim.try_acquire()
    a = asyncio.create_task(lim.acquire(Priority.ORDER))
    b = asyncio.create_task(lim.acquire(Priority.MARKET_DATA))
    await settle()
    ft.advance(1.0)
    while lim.granted < 2:
        await asyncio.sleep(0)
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    await settle()
    assert b.done() and not b.cancelled()  # b got a's returned token without time moving
    assert lim.granted == 2


# --------------------------------------------------------------------------- default (real) behaviour


async def test_default_sleep_and_monotonic_are_real() -> None:
    import time as real_time

    lim = RateLimiter(1000, 1)
    assert lim._monotonic is real_time.monotonic
    assert lim._sleep is asyncio.sleep
    assert lim.try_acquire()
