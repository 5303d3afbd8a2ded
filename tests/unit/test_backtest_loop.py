"""The backtest's event loop: zero-timeout polls skip the kernel, and nothing handed over is lost."""

from __future__ import annotations

import asyncio
import socket
import threading

from trader.backtest.loop import backtest_loop


def test_a_zero_timeout_poll_with_only_the_self_pipe_asks_nothing() -> None:
    loop = backtest_loop()
    try:
        selector = loop._selector  # type: ignore[attr-defined]
        assert len(selector.get_map()) == 1  # the self-pipe
        loop._write_to_self()  # type: ignore[attr-defined]  # its byte is waiting…
        assert selector.select(0) == []  # …but a zero-timeout poll does not read it
        assert selector.select(0.5)  # one that may block does
    finally:
        loop.close()


def test_callbacks_from_other_threads_run_while_the_loop_stays_busy() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        done = asyncio.Event()

        def hand_over() -> None:
            for i in range(50):
                loop.call_soon_threadsafe(got.append, i)
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=hand_over).start()
        while not done.is_set():  # the ready queue is never empty: every poll has a zero timeout
            await asyncio.sleep(0)
        return got

    with asyncio.Runner(loop_factory=backtest_loop) as runner:
        assert runner.run(main()) == list(range(50))


def test_a_socket_registered_on_the_loop_is_still_polled() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            b.send(b"x")
            return await asyncio.wait_for(loop.sock_recv(a, 1), timeout=5)
        finally:
            a.close()
            b.close()

    with asyncio.Runner(loop_factory=backtest_loop) as runner:
        assert runner.run(main()) == b"x"
