"""The fan-out hub over the real WS endpoint of a running OMS (paper exchange replaying 2026-02-27).

No fixed sleeps and no timing assertions: every wait polls a condition with a deadline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broker_core.clock import KST
from broker_core.models import Tick
from broker_core.paper.broker import PaperBroker
from oms.runtime import OmsRuntime
from oms.settings import OmsConfig, load_config
from tests.integration.marketdata.wsclient import WsClient
from tests.support.oms_server import ADMIN_KEY, STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until
from trader.venues import build_venue

SYMS = ["005930", "000660", "000270", "012330", "055550", "066570", "105560", "005380", "035420", "028260"]
LIQUID = ["005930", "000660", "000270"]


def config(**marketdata: Any) -> OmsConfig:
    cfg = load_config()
    cfg.paper = cfg.paper.model_copy(update={"symbols": [s for s in SYMS if _has_minutes(s)]})
    cfg.marketdata = cfg.marketdata.model_copy(update=marketdata)
    return cfg


def _has_minutes(symbol: str) -> bool:
    return (
        Path(__file__).resolve().parents[3].parent / "shared" / "data" / "krx" / "minute" / f"{symbol}.parquet"
    ).is_file()


def tape(oms: Oms, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[tuple[float, int, str]]]:
    ticks: dict[str, list[Tick]] = oms.runtime.exchange.tape._ticks
    return {s: [(t.price, t.qty, t.ts.isoformat()) for t in ticks.get(s, []) if start <= t.ts < end] for s in symbols}


def received(
    client: WsClient, symbols: list[str], start: datetime, end: datetime
) -> dict[str, list[tuple[float, int, str]]]:
    return {
        s: [(m["price"], m["qty"], m["ts"]) for m in client.trades(s) if start <= datetime.fromisoformat(m["ts"]) < end]
        for s in symbols
    }


def minute_after(now: datetime, minutes: int = 1) -> datetime:
    return now.astimezone(KST).replace(second=0, microsecond=0) + timedelta(minutes=minutes)


async def slots(oms: Oms) -> dict[str, Any]:
    return dict(await oms.get("/api/v1/marketdata/slots"))


async def test_five_subscribers_receive_every_trade_of_a_replayed_minute_in_order(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    async with running_oms(settings, config(), clock=sim_clock(9, 30, speed=30)) as oms:
        # the read key may not subscribe (it holds no stream slots): five subscribers of three principals
        keys = [STRATEGY_KEYS["KMP"], STRATEGY_KEYS["KMP"], STRATEGY_KEYS["KPR"], ADMIN_KEY, STRATEGY_KEYS["KPR"]]
        clients = [await WsClient.open(oms.url, k, f"c{i}") for i, k in enumerate(keys)]
        try:
            for c in clients:
                answer = await c.subscribe(LIQUID)
                assert answer == {"type": "subscribed", "granted": LIQUID, "denied": {}}
            snap = await slots(oms)
            assert snap["used"] == 3 and snap["upstream"] == sorted(LIQUID)
            assert snap["shared"] == {s: ["ADMIN", "KMP", "KPR"] for s in sorted(LIQUID)}
            start = minute_after(oms.runtime.clock.now())
            end = start + timedelta(minutes=1)
            for c in clients:
                await until(
                    lambda c=c: (c.last_trade_ts() or start) >= end,
                    timeout=60,
                    what=f"{c.name} past the end of the minute",
                )
            expected = tape(oms, LIQUID, start, end)
            assert sum(len(v) for v in expected.values()) >= 10, expected
            sequences = []
            for c in clients:
                assert received(c, LIQUID, start, end) == expected, c.name
                sequences.append(
                    [
                        (m["symbol"], m["ts"], m["price"])
                        for m in c.trades()
                        if start <= datetime.fromisoformat(m["ts"]) < end
                    ]
                )
            assert all(seq == sequences[0] for seq in sequences)  # one global order for everyone
            assert [ts for _, ts, _ in sequences[0]] == sorted(ts for _, ts, _ in sequences[0])
        finally:
            for c in clients:
                await c.close()
        await until(
            lambda: (
                oms.runtime.hub is not None and oms.runtime.hub.book.used == 0 and not oms.runtime.broker.subscribed
            ),
            what="every lease and subscription released",
        )


async def test_a_subscriber_that_stops_reading_delays_nobody_and_still_gets_its_fills(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    symbols = [s for s in SYMS if _has_minutes(s)]
    cfg = config(consumer_backlog=20)
    async with running_oms(settings, cfg, clock=sim_clock(9, 30, speed=240)) as oms:
        hub = oms.runtime.hub
        assert hub is not None
        fast = [
            await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "fast-kmp"),
            await WsClient.open(oms.url, ADMIN_KEY, "fast-admin"),
        ]
        slow = await WsClient.open(oms.url, STRATEGY_KEYS["KPR"], "slow-kpr", tiny_buffers=True)
        try:
            for c in fast + [slow]:
                assert (await c.subscribe(symbols))["granted"] == symbols
            slow_consumer = next(c for c in hub.consumers if c.owner == "KPR")
            assert slow.choke_server_side()  # a small pipe: a stalled reader pushes back within kilobytes
            slow.ws.transport.pause_reading()  # the KPR strategy stops reading its socket
            await until(
                lambda: slow_consumer.conflated > 0,
                timeout=90,
                what="the server side of the slow socket is backed up and conflating",
            )
            # The feed goes on for the others: a whole minute after the stall began, complete and in order.
            start = minute_after(oms.runtime.clock.now())
            end = start + timedelta(minutes=1)
            reply = (
                await oms.intent(
                    STRATEGY_KEYS["KPR"],
                    intent_type="ENTER",
                    strategy_id="KPR",
                    symbol="005930",
                    desired_qty=2,
                    constraints={"order_type": "MARKETABLE_LIMIT"},
                )
            ).json()
            assert reply["status"] in ("ACCEPTED", "EXECUTED"), reply
            order_id = reply["order_id"]
            for c in fast:
                await until(lambda c=c: (c.last_trade_ts() or start) >= end, timeout=60, what=f"{c.name} fed")
            expected = tape(oms, symbols, start, end)
            for c in fast:
                assert received(c, symbols, start, end) == expected, c.name
            await until(
                lambda: oms.runtime.state.orders[order_id].state.value == "FILLED",
                timeout=60,
                what="KPR's order filled",
            )
            assert slow_consumer.critical_backlog > 0 or slow_consumer.conflated > 0
            assert sum(1 for m in fast[0].msgs if m.get("type") in ("order", "fill")) == 0  # KMP sees none of KPR's
            # KPR resumes: every order event and the fill are there, trades conflated but in order per symbol.
            slow.ws.transport.resume_reading()
            slow.start_reading()
            await until(
                lambda: (
                    any(m.get("type") == "fill" and m.get("order_id") == order_id for m in slow.msgs)
                    and any(
                        m.get("type") == "order" and m.get("order_id") == order_id and m.get("state") == "FILLED"
                        for m in slow.msgs
                    )
                ),
                timeout=60,
                what="KPR's order and fill events after it resumed",
            )
            fills = [m for m in slow.msgs if m.get("type") == "fill" and m.get("order_id") == order_id]
            assert sum(f["qty"] for f in fills) == 2
            for s in symbols:
                ts = [m["ts"] for m in slow.trades(s)]
                assert ts == sorted(ts)
            assert hub.conflated > 0
            metrics = (await oms.http.get("/metrics")).text
            assert "oms_marketdata_conflated_total" in metrics
        finally:
            for c in fast + [slow]:
                await c.close()


async def test_one_strategy_leaving_never_cuts_the_feed_of_another(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    async with running_oms(settings, config(), clock=sim_clock(9, 30, speed=30)) as oms:
        broker = oms.runtime.broker
        assert isinstance(broker, PaperBroker)
        a = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "A")
        b = await WsClient.open(oms.url, STRATEGY_KEYS["KPR"], "B")
        d = await WsClient.open(oms.url, ADMIN_KEY, "D")
        try:
            await a.subscribe(["005930", "000660"])
            await b.subscribe(["005930"])
            await d.subscribe(["005930", "000270"])
            assert broker.subscribed == {"005930", "000660", "000270"}
            # A unsubscribes: its lease goes, B's feed of the same symbol stays.
            await a.unsubscribe(["005930", "000660"])
            assert broker.subscribed == {"005930", "000270"}
            snap = await slots(oms)
            assert snap["leases"]["KMP"]["symbols"] == [] and snap["shared"] == {"005930": ["ADMIN", "KPR"]}
            mark = oms.runtime.clock.now()
            await until(
                lambda: any(datetime.fromisoformat(m["ts"]) > mark for m in b.trades("005930")),
                timeout=60,
                what="B still fed after A unsubscribed",
            )
            # D's socket dies without a close: its leases are released, B keeps its feed.
            d.kill()
            await until(lambda: broker.subscribed == {"005930"}, timeout=30, what="D's leases released")
            snap = await slots(oms)
            assert snap["used"] == 1 and snap["shared"] == {} and "ADMIN" not in snap["leases"]
            mark = oms.runtime.clock.now()
            await until(
                lambda: any(datetime.fromisoformat(m["ts"]) > mark for m in b.trades("005930")),
                timeout=60,
                what="B still fed after D's socket died",
            )
            # B leaves too: nothing leaks.
            await b.close()
            await until(lambda: not broker.subscribed, timeout=30, what="last lease released upstream")
            assert (await slots(oms))["used"] == 0
            metrics = (await oms.http.get("/metrics")).text
            assert (
                'oms_marketdata_slot_events_total{event="release",reason="DISCONNECTED",strategy="ADMIN"} 2.0'
                in metrics
            )
            assert (
                'oms_marketdata_slot_events_total{event="release",reason="UNSUBSCRIBED",strategy="KMP"} 2.0' in metrics
            )
        finally:
            for c in (a, b, d):
                await c.close()


class GoesSilentBroker(PaperBroker):
    """The paper broker whose current tick streams can be made to stop delivering (a dead session).

    A stream opened after :meth:`go_silent` (what a reconnect does) delivers again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._streams_opened = 0
        self._muted_below = 0
        self.sub_calls: list[tuple[str, tuple[str, ...]]] = []

    def go_silent(self) -> None:
        self._muted_below = self._streams_opened

    def ticks(self):  # type: ignore[no-untyped-def]
        inner = super().ticks()
        self._streams_opened += 1
        number = self._streams_opened

        async def stream():  # type: ignore[no-untyped-def]
            try:
                async for tick in inner:
                    if number > self._muted_below:
                        yield tick
            finally:
                await inner.aclose()

        return stream()

    async def subscribe_ticks(self, symbols: list[str]) -> None:
        self.sub_calls.append(("subscribe", tuple(symbols)))
        await super().subscribe_ticks(symbols)

    async def unsubscribe_ticks(self, symbols: list[str]) -> None:
        self.sub_calls.append(("unsubscribe", tuple(symbols)))
        await super().unsubscribe_ticks(symbols)


async def test_a_silent_upstream_is_reconnected_with_its_subscriptions(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    cfg = config(stale_after_s=20, check_interval_s=2)
    runtime = OmsRuntime(settings, cfg, venue=build_venue, clock=sim_clock(9, 30, speed=30))
    old = runtime.broker
    assert isinstance(old, PaperBroker)
    broker = GoesSilentBroker(old.exchange, subscription_capacity=old.subscription_capacity)
    runtime.broker = broker
    async with running_oms(settings, cfg, runtime=runtime) as oms:
        hub = oms.runtime.hub
        assert hub is not None
        kpr = await WsClient.open(oms.url, STRATEGY_KEYS["KPR"], "kpr")
        kmp = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "kmp")
        try:
            await kpr.subscribe(LIQUID)
            await kmp.subscribe(["005930"])
            await until(lambda: len(kpr.trades()) >= 3, timeout=60, what="first trades")
            before = hub.reconnects
            broker.sub_calls.clear()
            broker.go_silent()
            silent_at = oms.runtime.clock.now()
            await until(lambda: hub.reconnects > before, timeout=60, what="watchdog reconnect")
            assert broker.sub_calls[:2] == [
                ("unsubscribe", tuple(sorted(LIQUID))),
                ("subscribe", tuple(sorted(LIQUID))),
            ]
            assert broker.subscribed == set(LIQUID)
            for c, syms in ((kpr, LIQUID), (kmp, ["005930"])):
                await until(
                    lambda c=c: any(
                        datetime.fromisoformat(m["ts"]) > silent_at + timedelta(seconds=20) for m in c.trades()
                    ),
                    timeout=60,
                    what=f"{c.name} fed after the reconnect",
                )
                gaps = c.of("gap")
                assert gaps and gaps[0]["reason"] == "UPSTREAM_STALE" and gaps[0]["symbols"] == sorted(syms)
            snap = await slots(oms)
            assert snap["reconnects"] >= 1 and snap["upstream"] == sorted(LIQUID)
            assert (
                'oms_marketdata_upstream_reconnects_total{reason="UPSTREAM_STALE"}'
                in (await oms.http.get("/metrics")).text
            )
        finally:
            await kpr.close()
            await kmp.close()


async def test_stream_protocol_errors_and_denials(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    cfg = config()
    async with running_oms(settings, cfg, clock=sim_clock(9, 30, speed=30)) as oms:
        pcim = await WsClient.open(oms.url, STRATEGY_KEYS["PCIM"], "pcim")
        nul = await WsClient.open(oms.url, STRATEGY_KEYS["NULRIMOK"], "nul")
        kmp = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "kmp")
        try:
            answer = await pcim.subscribe(["005930"])
            assert answer["denied"] == {"005930": "NO_LEASE"} and "max_slots 0" in answer["detail"]["005930"]
            answer = await nul.subscribe(["005930", "999999"])
            assert answer["granted"] == [] and answer["denied"] == {
                "005930": "OUTSIDE_WINDOW",
                "999999": "UNKNOWN_SYMBOL",
            }
            answer = await kmp.subscribe(["005930"], keep=["005930"])
            assert answer == {"type": "subscribed", "granted": ["005930"], "denied": {}}
            assert (await slots(oms))["leases"]["KMP"]["keep"] == ["005930"]
            await kmp.send(op="subscribe", symbols=["005930"], channels=["ticks"])
            await kmp.send(op="subscribe", symbols="005930")
            await kmp.send(op="subscribe", symbols=["005930"], keep="005930")
            await until(lambda: len(kmp.of("error")) == 3, what="three protocol errors")
            assert "channels" in kmp.of("error")[0]["detail"] and "keep" in kmp.of("error")[2]["detail"]
            assert (await slots(oms))["used"] == 1
        finally:
            for c in (pcim, nul, kmp):
                await c.close()


async def test_the_paper_brokers_capacity_is_the_budget(tmp_path: Path) -> None:
    settings = oms_settings(tmp_path)
    cfg = config()
    cfg.paper = cfg.paper.model_copy(update={"subscription_capacity": 3})
    async with running_oms(settings, cfg, clock=sim_clock(9, 30, speed=30)) as oms:
        kpr = await WsClient.open(oms.url, STRATEGY_KEYS["KPR"], "kpr")
        kmp = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "kmp")
        try:
            answer = await kpr.subscribe(["005930", "000660", "000270", "012330"])
            assert answer["granted"] == ["005930", "000660", "000270"]
            assert answer["denied"] == {"012330": "CAPACITY_FULL"}
            # KMP (priority 30 in its 09:15–10:00 window) evicts KPR's oldest idle slot; KPR is told.
            answer = await kmp.subscribe(["012330", "000660"])
            assert answer == {"type": "subscribed", "granted": ["012330", "000660"], "denied": {}}
            await until(lambda: kpr.of("evicted"), what="KPR told about the eviction")
            assert kpr.of("evicted")[0]["symbols"] == ["005930"] and kpr.of("evicted")[0]["reason"] == "PREEMPTED"
            snap = await slots(oms)
            assert snap["capacity"] == 3 and snap["used"] == 3 and snap["broker_capacity"] == 3
            assert snap["shared"] == {"000660": ["KMP", "KPR"]}
            assert oms.runtime.broker.subscribed == {"000660", "000270", "012330"}
            metrics = (await oms.http.get("/metrics")).text
            assert 'oms_marketdata_slot_events_total{event="evict",reason="PREEMPTED",strategy="KPR"} 1.0' in metrics
            assert "oms_marketdata_slots_used 3.0" in metrics and "oms_marketdata_slot_capacity 3.0" in metrics
        finally:
            await kpr.close()
            await kmp.close()
