"""What the stream client sends and how it reads slot answers (no socket needed)."""

from __future__ import annotations

from typing import Any

from strategies.sdk.stream import StreamClient


async def _noop(_: dict[str, Any]) -> None:
    return None


async def test_subscribe_carries_keep_and_eviction_moves_symbols_to_denied() -> None:
    client = StreamClient("ws://127.0.0.1:9/api/v1/stream", "k", on_event=_noop, channels=("trades",))
    await client.subscribe(["005930", "000660"], keep=["005930"])
    assert client._subscribe_msg(["005930"]) == {
        "op": "subscribe",
        "symbols": ["005930"],
        "channels": ["trades"],
        "keep": ["005930"],
    }
    client._control({"type": "subscribed", "granted": ["005930", "000660"], "denied": {}})
    assert client.granted == {"005930", "000660"}
    client._control({"type": "evicted", "symbols": ["000660"], "reason": "WINDOW_END"})
    assert client.granted == {"005930"} and client.denied == {"000660": "WINDOW_END"}
    await client.subscribe([], keep=[])
    assert "keep" not in client._subscribe_msg(["005930"])
