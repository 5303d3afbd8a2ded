"""KMP wiring: the pure :class:`~strategies.kmp.engine.KmpEngine` on the strategy SDK.

``build(config, oms_client, clock)`` is what ``trader strategy kmp`` (``strategies.sdk.runner``)
calls; the config is ``config/kmp.yaml`` validated by :data:`CONFIG_MODEL` (:class:`KmpConfig`).

What runs when (KST, on the shared clock; see the engine's call table in :mod:`strategies.kmp`):

=====================  ======================================================================
at start               SDK recovery → ``on_position_recovered`` per KMP allocation (exits go on);
                       account poll; catch-up: premarket if started after ``premarket_time``, the scan if
                       started between 09:15 and 10:00 (logged ``KMP_SCAN_LATE`` by the engine)
08:00 (KRX sessions)   premarket (``premarket_time``): listing + K1, symbols already entered today excluded (K11 across
                       restarts), caches through the OMS proxy (:func:`strategies.kmp.data.load_premarket`)
09:15                  scan: REST 1m bars 09:00–09:14 → ``scan``; REST quotes of the candidates
                       (static-VI reference, bid/ask) → ``on_quote``
every 1 s 09:00–15:20  ``on_clock`` (timeouts, 10:00, regime, risk flatten, 14:30) + slot answers
every 15 s             ``/state/account`` → ``on_account``; index quotes + KOSPI 1m bars → ``on_index``
                       (paper: derived from the constituents, ``broker_core.paper.index``; a broker
                       without index data answers 404, which turns index polling off for the day)
every 60 s 09:15–10:00 REST 1m bars of ``breadth_poll_symbols`` → ``on_bar`` (K5)
every 5 s 09:15–15:20  REST quotes of symbols that want a quote (K20 priority 2) and of candidates
                       still without a VI reference, unless the stream delivered one recently
stream                 trades → ``on_trade`` (BarBuilder bars → ``on_bar``; a ``partial`` first bar
                       is replaced by the REST bar of that minute), quotes → ``on_quote``, own
                       orders → ``on_order_closed`` (terminal buys), fills → ``on_fill``
=====================  ======================================================================

Subscriptions follow ``engine.desired_subscriptions`` after every change: the stream carries the
``trades`` channel only (the SDK subscribes a symbol with one channel set for all symbols); the
``quotes`` wish is served by REST quotes until the stream can lease quote slots per symbol.

Actions become intents in order, one output at a time (a lock keeps a CANCEL before its EXIT):
``EnterAction`` → ENTER STOP_LIMIT (stop, limit, cancel_after, risk payload, the action's key);
``ExitAction`` → EXIT with the engine's marketable limit (or the OMS's own marketable limit when no
price was known); ``FlattenAction`` → FLATTEN ``*``; ``CancelAction`` → CANCEL_ORDERS;
``ModifyRiskAction`` → MODIFY_RISK. Every reply goes back through ``on_intent_result``. A transport
failure of an ENTER is fed back as REJECTED (the FSM ends the symbol; a fill that still arrives is
adopted by the engine as a late fill) and logged ``KMP_INTENT_ERROR``.

Every engine decision is logged through :meth:`Strategy.decision` with its reason code; the wiring
adds ``KMP_DATA_UNAVAILABLE`` (a data source missing: proxy, index, listing), ``KMP_PREMARKET_DATA``
(what the premarket load got), ``KMP_SCAN_SKIPPED``, ``KMP_INTENT_ERROR``. The heartbeat status
carries a ``kmp`` section: premarket summary, scan summary, FSM state counts, entries, intents.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST, Clock
from strategies.kmp import data as kmp_data
from strategies.kmp.config import KmpConfig
from strategies.kmp.decisions import (
    Action,
    CancelAction,
    Decision,
    EnterAction,
    ExitAction,
    FlattenAction,
    ModifyRiskAction,
    Output,
    ReasonCode,
)
from strategies.kmp.engine import KmpEngine
from strategies.kmp.fsm import ACCEPTING, State
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import IntentsClosed, MarketDataUnavailable, OmsError
from strategies.sdk.models import TERMINAL_ORDER_STATES, IntentReply, RiskPayload
from strategies.sdk.strategy import Strategy

CONFIG_MODEL = KmpConfig

SESSION_END = time(15, 20)
"""End of the continuous session: ``on_clock`` and quote polling stop here."""
ACCOUNT_END = time(15, 30)
ACCOUNT_POLL_SEC = 15.0
BREADTH_POLL_SEC = 60.0
QUOTE_POLL_SEC = 5.0
INDEX_MARKETS = ("KOSPI", "KOSDAQ")
"""Index symbols asked for through the quote proxy (paper: derived paths, labelled ``derived``)."""
_BUY = ("BUY", "B")
_RESERVED = {"code", "symbol"}


def build(config: KmpConfig, oms_client: OmsClient, clock: Clock) -> KmpStrategy:
    """The runner's entry point (``trader strategy kmp``)."""
    return KmpStrategy(config, oms_client, clock)


class KmpStrategy(Strategy):
    def __init__(
        self,
        config: KmpConfig,
        oms: OmsClient,
        clock: Clock,
        *,
        heartbeat_sec: float = 15.0,
        sectors: dict[str, str] | None = None,
        quote_poll_sec: float = QUOTE_POLL_SEC,
    ) -> None:
        super().__init__(oms.strategy_id, oms, clock, channels=("trades",), heartbeat_sec=heartbeat_sec)
        self._kept: set[str] = set()
        if config.strategy_id.upper() != self.strategy_id:
            self.log.warning(
                "config strategy_id %s differs from the OMS key's %s; using %s",
                config.strategy_id,
                self.strategy_id,
                self.strategy_id,
            )
        self.config = config
        self.p = config.params
        self.engine = KmpEngine(self.p, self.strategy_id)
        if sectors is None:
            sectors, self._sector_error = kmp_data.load_sector_map()
        else:
            self._sector_error = None
        self.sectors = sectors
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._premarket: dict[date, asyncio.Task[None]] = {}
        self._minute_history = kmp_data.MinuteHistory()
        self._scan_symbols: list[str] = []
        self._quote_syms: set[str] = set()
        self._stream_quote_at: dict[str, datetime] = {}
        self._seen_exec: set[str] = set()
        self._last_fill_ts: datetime | None = None
        self._reported_granted: set[str] = set()
        self._reported_denied: dict[str, str] = {}
        self._index_off: date | None = None
        self._breadth_next: dict[str, datetime] = {}
        self._index_bars: dict[datetime, float] = {}
        """Today's KOSPI 1m closes by bar start, fetched incrementally (the last bar again: it may have grown)."""
        self._index_day: date | None = None
        self.unavailable: dict[str, str] = {}
        self.premarket_info: dict[str, Any] = {}
        self.scan_info: dict[str, Any] = {}
        self.intent_counts: Counter[str] = Counter()
        s = self.scheduler
        s.at(self.p.premarket_time, self._premarket_job, "kmp.premarket", trading_days_only=True)
        s.at(self.p.scan_time, self._scan_job, "kmp.scan", trading_days_only=True)
        s.every(1.0, self._clock_job, "kmp.clock", start=self.p.or_start, end=SESSION_END, due=self._clock_due)
        self.stream.on_answer = self._wake_clock
        s.every(ACCOUNT_POLL_SEC, self._account_job, "kmp.account", start=self.p.premarket_time, end=ACCOUNT_END)
        s.every(BREADTH_POLL_SEC, self._breadth_job, "kmp.breadth", start=self.p.scan_time, end=self.p.entry_end)
        s.every(
            quote_poll_sec, self._quote_job, "kmp.quotes", start=self.p.scan_time, end=SESSION_END, due=self._quotes_due
        )

    # ================================================================== lifecycle

    async def on_start(self) -> None:
        now = self.clock.now()
        await self._account_job()
        t = now.astimezone(KST).time()
        if self._sector_error and not self.config.universe.symbols:
            self._data_unavailable("listing", self._sector_error, now)
        if not await self._trading_day():
            return
        if self.p.premarket_time <= t < SESSION_END:
            self._ensure_premarket(now)
        elif t < self.p.premarket_time and self.clock_waiting:
            await self._ensure_premarket(now)  # before the clock starts: the 09:00 open cannot overtake it
        if self.p.scan_time <= t < self.p.entry_end:
            self._spawn(self._scan_job(), "kmp.scan.catch-up")

    async def on_stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s failed", task.get_name(), exc_info=task.exception())

    def status(self) -> dict[str, Any]:
        e = self.engine
        return {
            **super().status(),
            "kmp": {
                "day": str(e.day) if e.day else None,
                "premarket": self.premarket_info,
                "scan": self.scan_info,
                "states": e.counts(),
                "entries": e.entry_signal_count,
                "intents": dict(self.intent_counts),
                "regime": e.regime.fields() if e.regime is not None else None,
                "data_unavailable": dict(self.unavailable),
                "quote_polled": sorted(self._quote_syms),
            },
        }

    # ================================================================== output → log + intents

    def _log(self, d: Decision) -> None:
        fields = {(f"{k}_" if k in _RESERVED else k): v for k, v in d.fields.items()}
        if d.alert:
            fields["alert"] = True
            self.log.warning("ALERT %s %s %s", d.code.value, d.symbol or "", fields)
        self.decision(d.code.value, d.symbol, at=d.ts.astimezone(KST).isoformat(timespec="seconds"), **fields)

    async def _apply(self, out: Output, *, sync: bool | None = None) -> None:
        if out.decisions or out.actions:
            self._wake_clock()
        for d in out.decisions:
            self._log(d)
        if out.actions and not self.stopping:
            async with self._lock:
                pending: list[Action] = list(out.actions)
                while pending and not self.stopping:
                    follow = await self._send(pending.pop(0))
                    for d in follow.decisions:
                        self._log(d)
                    pending.extend(follow.actions)
        if sync if sync is not None else bool(out.decisions or out.actions):
            await self._sync_subscriptions()

    async def _send(self, a: Action) -> Output:
        kind = _intent_type(a)
        symbol = getattr(a, "symbol", "*")
        try:
            reply = await self._submit(a)
        except IntentsClosed:
            self.decision(
                "KMP_INTENT_ERROR", symbol, intent_type=kind, error="strategy stopping: not sent", key=a.idempotency_key
            )
            return Output()
        except OmsError as exc:
            self.intent_counts[f"{kind}:ERROR"] += 1
            self.decision(
                "KMP_INTENT_ERROR", symbol, intent_type=kind, error=str(exc), status=exc.status, key=a.idempotency_key
            )
            if isinstance(a, EnterAction):
                return self.engine.on_intent_result(
                    symbol, self.clock.now(), "REJECTED", intent_type=kind, message=f"not sent: {exc}"
                )
            return Output()
        self.intent_counts[f"{kind}:{reply.status.value}"] += 1
        if symbol == "*":
            out = Output()
            out.log(
                ReasonCode.KMP_INTENT_RESULT,
                None,
                self.clock.now(),
                intent_type=kind,
                status=reply.status.value,
                message=reply.message,
                reason_code=reply.reason_code,
                intent_id=reply.intent_id,
            )
            return out
        return self.engine.on_intent_result(
            symbol,
            self.clock.now(),
            reply.status.value,
            intent_type=kind,
            modified_qty=reply.modified_qty,
            cooldown_until=reply.cooldown_until,
            message=_reply_text(reply),
        )

    async def _submit(self, a: Action) -> IntentReply:
        oms = self.oms
        if isinstance(a, EnterAction):
            return await oms.enter(
                a.symbol,
                a.qty,
                stop_price=a.stop_price,
                limit_price=a.limit_price,
                order_type=a.order_type,
                cancel_after_sec=a.cancel_after_sec,
                risk=RiskPayload(**_positive(a.risk_payload())),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, ExitAction):
            return await oms.exit(
                a.symbol,
                limit_price=a.limit_price,
                order_type="LIMIT" if a.limit_price is not None else "MARKETABLE_LIMIT",
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, FlattenAction):
            return await oms.flatten(
                a.symbol,
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
            )
        if isinstance(a, CancelAction):
            return await oms.cancel_orders(
                a.symbol, risk=RiskPayload(rationale_code=a.rationale_code), idempotency_key=a.idempotency_key
            )
        if isinstance(a, ModifyRiskAction):
            return await oms.modify_risk(
                a.symbol,
                stop_px=_pos(a.stop_px),
                hard_stop_px=_pos(a.hard_stop_px),
                time_stop_ts=a.time_stop_ts,
                rationale_code=a.rationale_code,
                idempotency_key=a.idempotency_key,
            )
        raise TypeError(f"unknown KMP action {a!r}")

    # ================================================================== subscriptions

    async def _sync_subscriptions(self) -> None:
        if self.stopping:
            return
        desired = self.engine.desired_subscriptions(self.clock.now())
        trades = {s for s, ch in desired.items() if "trades" in ch}
        held = {s for s, a in self.allocations.items() if a.qty > 0} | {o.symbol for o in self.open_orders.values()}
        want = trades | held
        current = set(self.stream.symbols)
        keep = sorted(s for s in want if self.engine.state_of(s) in ACCEPTING)
        if want - current or set(keep) != self._kept:
            self._kept = set(keep)
            await self.subscribe(sorted(want - current), keep=keep)
        if current - want:
            await self.unsubscribe(sorted(current - want))
        self._quote_syms = {s for s, ch in desired.items() if "quotes" in ch}
        if self._quote_syms:
            self.scheduler.poke("kmp.quotes")

    def _unreported_slots(self) -> tuple[set[str], dict[str, str]]:
        """Grants and denials the stream holds that the engine has not been told of yet."""
        granted = set(self.stream.granted) - self._reported_granted
        denied = {s: r for s, r in self.stream.denied.items() if self._reported_denied.get(s) != r}
        return granted, denied

    def _slot_answers(self, now: datetime) -> Output:
        self._reported_granted &= self.stream.granted
        self._reported_denied = {s: r for s, r in self._reported_denied.items() if s in self.stream.denied}
        granted, denied = self._unreported_slots()
        if not granted and not denied:
            return Output()
        self._reported_granted |= granted
        self._reported_denied.update(denied)
        return self.engine.on_slots(now, sorted(granted), denied)

    # ================================================================== scheduled jobs

    def _ensure_premarket(self, now: datetime) -> asyncio.Task[None]:
        day = now.astimezone(KST).date()
        task = self._premarket.get(day)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            self._premarket = {d: t for d, t in self._premarket.items() if d == day}
            task = self._premarket[day] = self._spawn(self._load_premarket(day), f"kmp.premarket.{day}")
        return task

    async def _trading_day(self) -> bool:
        """Today is a KRX session, per the OMS's market clock (no calendar loaded here)."""
        try:
            return (await self.oms.clock()).trading_day
        except OmsError as exc:
            self.log.warning("market clock not read (%s); assuming a weekday is a session", exc)
            return self.clock.now().astimezone(KST).weekday() < 5

    async def _premarket_job(self) -> None:
        if await self._trading_day():
            await asyncio.shield(self._ensure_premarket(self.clock.now()))

    async def _load_premarket(self, day: date) -> None:
        self._breadth_next.clear()
        metas, dropped = kmp_data.universe_of(self.config.universe, self.sectors)
        entered = await self._entered_today(day)
        held = {s for s, a in self.allocations.items() if a.qty > 0}
        for sym in sorted(entered - held):
            dropped[sym] = "ENTERED_TODAY"
        metas = [m for m in metas if m.symbol not in entered]
        result = await kmp_data.load_premarket(
            self.oms, day, metas, self.p, self.config.universe, history=self._minute_history
        )
        now = self.clock.now()
        self.premarket_info = {
            **result.summary(),
            "universe": len(metas),
            "dropped": len(dropped),
            "entered_today": sorted(entered),
        }
        self.decision(
            "KMP_PREMARKET_DATA",
            None,
            at=now.isoformat(timespec="seconds"),
            **self.premarket_info,
            missing_by_reason=dict(Counter(result.missing.values())),
        )
        if result.unavailable:
            self._data_unavailable("premarket", result.unavailable, now)
        self._scan_symbols = [c.symbol for c in result.caches if c.value_base is not None]
        await self._apply(self.engine.premarket(now, result.caches, dropped))

    async def _entered_today(self, day: date) -> set[str]:
        """Symbols KMP already sent an ENTER for today that was not DEFERRED (K11 across restarts)."""
        try:
            rows = await self.oms.request(
                "GET", "/api/v1/intents", params={"strategy_id": self.strategy_id, "limit": 5000}
            )
        except OmsError as exc:
            self.log.warning("intents of today not read (%s): entries of before a restart are not excluded", exc)
            return set()
        out = set()
        for r in rows:
            try:
                received = datetime.fromisoformat(r["received_at"]).astimezone(KST).date()
            except (KeyError, TypeError, ValueError):
                continue
            if r.get("intent_type") == "ENTER" and received == day and r.get("status") != "DEFERRED":
                out.add(r["symbol"])
        return out

    async def _scan_job(self) -> None:
        if not await self._trading_day():
            return
        now = self.clock.now()
        await asyncio.shield(self._ensure_premarket(now))
        if self.engine.scan_done or self.stopping:
            return
        now = self.clock.now()
        if now.astimezone(KST).time() >= self.p.entry_end:
            self.decision(
                "KMP_SCAN_SKIPPED", None, at=now.isoformat(timespec="seconds"), reason="the entry window is over"
            )
            return
        day = now.astimezone(KST).date()
        bars, failures, why = await kmp_data.scan_bars(self.oms, day, self._scan_symbols, self.p)
        now = self.clock.now()
        if why:
            self._data_unavailable("scan", why, now)
        out = self.engine.scan(now, bars)
        scan = next((d for d in out.decisions if d.code is ReasonCode.KMP_SCAN), None)
        self.scan_info = {
            "at": now.isoformat(timespec="seconds"),
            "asked": len(self._scan_symbols),
            "with_bars": len(bars),
            "failures": failures,
            **({k: v for k, v in scan.fields.items()} if scan else {}),
        }
        await self._apply(out, sync=True)
        await self._poll_quotes(self._candidates_without_ref(), force=True)

    def _clock_due(self) -> datetime | None:
        """The clock job runs every second while anything is live; once KMP is quiet (after 10:00, flat, no
        slot answer to report) only when the engine has timed work (``KmpEngine.quiet_until``)."""
        now = self.clock.now()
        if any(self._unreported_slots()):
            return now
        return self.engine.quiet_until(now) or now

    def _wake_clock(self) -> None:
        self.scheduler.poke("kmp.clock")
        self.scheduler.poke("kmp.quotes")

    def _quotes_due(self) -> datetime | None:
        """Quote polling has work only while some symbol wants a quote (a poke comes with every change)."""
        return self.clock.now() if self._quote_syms or self._candidates_without_ref() else None

    async def _clock_job(self) -> None:
        now = self.clock.now()
        out = self._slot_answers(now)
        out.extend(self.engine.on_clock(now))
        await self._apply(out, sync=True)

    async def _account_job(self) -> None:
        now = self.clock.now()
        out = Output()
        try:
            acct = await self.oms.account()
        except OmsError as exc:
            self.log.warning("account poll failed: %s", exc)
            out.extend(self.engine.on_rest_result(now, "account", ok=False))
        else:
            out.extend(self.engine.on_rest_result(now, "account", ok=True))
            out.extend(
                self.engine.on_account(
                    now,
                    acct.equity,
                    acct.daily_pnl_pct,
                    halt=acct.halt_new_entries,
                    flatten_in_progress=acct.flatten_in_progress,
                )
            )
        out.extend(await self._poll_index(now))
        await self._apply(out)

    async def _poll_index(self, now: datetime) -> Output:
        out = Output()
        day = now.astimezone(KST).date()
        if self._index_off == day or now.astimezone(KST).time() < self.p.or_start:
            return out
        for market in INDEX_MARKETS:
            try:
                q = await kmp_data.quote(self.oms, market)
            except MarketDataUnavailable as exc:
                self._index_off = day
                self._data_unavailable("index", f"{market}: {exc}", now)
                return out
            except OmsError as exc:
                out.extend(self.engine.on_rest_result(now, f"index:{market}", ok=False))
                self.log.warning("index %s poll failed: %s", market, exc)
                continue
            closes = await self._index_closes(market, day, now) if market == "KOSPI" else None
            out.extend(self.engine.on_index(now, market, q.last, q.prev_close, closes))
        return out

    async def _index_closes(self, market: str, day: date, now: datetime) -> list[float] | None:
        """Today's 1m closes of ``market`` since the opening range: only bars not seen yet (and the last
        one seen, which may have grown) are asked for, so a poll costs the same at 15:00 as at 09:01."""
        if self._index_day != day:
            self._index_day, self._index_bars = day, {}
        start = max(self._index_bars, default=datetime.combine(day, self.p.or_start, KST))
        bars = await kmp_data.minute_bars(self.oms, market, start, now)
        for b in bars or []:
            self._index_bars[b.start] = b.close
        return [self._index_bars[k] for k in sorted(self._index_bars)] or None

    async def _breadth_job(self) -> None:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        last_done = now.astimezone(KST).replace(second=0, microsecond=0) - timedelta(minutes=1)
        out = Output()
        for sym in self.engine.breadth_poll_symbols(now):
            start = self._breadth_next.get(sym, datetime.combine(day, self.p.or_start, KST))
            if start > last_done:
                continue
            bars = await kmp_data.minute_bars(self.oms, sym, start, last_done)
            out.extend(self.engine.on_rest_result(now, "breadth", ok=bars is not None))
            for b in bars or []:
                out.extend(self.engine.on_bar(sym, b))
                self._breadth_next[sym] = b.start + timedelta(minutes=1)
        await self._apply(out)

    def _candidates_without_ref(self) -> set[str]:
        return {s for s, c in self.engine.syms.items() if c.state is State.CANDIDATE and c.vi_ref is None}

    async def _quote_job(self) -> None:
        await self._poll_quotes(self._quote_syms | self._candidates_without_ref())

    async def _poll_quotes(self, symbols: set[str], force: bool = False) -> None:
        """REST quotes → ``on_quote`` for ``symbols`` lacking a recent stream quote."""
        if not symbols or self.stopping:
            return
        now = self.clock.now()
        fresh = self.p.quote_max_age_sec / 2
        out = Output()
        for sym in sorted(symbols):
            seen = self._stream_quote_at.get(sym)
            if not force and seen is not None and (now - seen).total_seconds() < fresh:
                continue
            try:
                q = await kmp_data.quote(self.oms, sym)
            except OmsError as exc:
                out.extend(self.engine.on_rest_result(now, "quote", ok=False))
                self.log.debug("quote %s failed: %s", sym, exc)
                continue
            out.extend(self.engine.on_rest_result(now, "quote", ok=True))
            out.extend(self.engine.on_quote(sym, self.clock.now(), q.bid, q.ask, vi_ref=q.vi_ref))
        await self._apply(out)

    def _data_unavailable(self, source: str, why: str, now: datetime) -> None:
        if self.unavailable.get(source) == why:
            return
        self.unavailable[source] = why
        self.decision("KMP_DATA_UNAVAILABLE", None, at=now.isoformat(timespec="seconds"), source=source, reason=why)

    # ================================================================== stream hooks

    async def on_trade(self, event: dict[str, Any]) -> None:
        sym = event["symbol"]
        ts = _ts(event.get("ts")) or self.clock.now()
        out = self.engine.on_trade(
            sym,
            float(event["price"]),
            float(event["qty"]),
            ts,
            event.get("side") or event.get("aggressor"),
            vi_ref=_vi_ref(event),
            bid=_num(event.get("bid")),
            ask=_num(event.get("ask")),
        )
        await self._apply(out)

    async def on_bar(self, bar: Bar) -> None:
        if bar.partial:  # trades may be missing (subscribed mid-minute): the REST bar of that minute is whole
            rest = await kmp_data.minute_bars(self.oms, bar.symbol, bar.start, bar.start)
            if rest:
                bar = rest[-1]
        await self._apply(self.engine.on_bar(bar.symbol, bar))

    async def on_quote(self, event: dict[str, Any]) -> None:
        sym = event["symbol"]
        ts = _ts(event.get("ts")) or self.clock.now()
        self._stream_quote_at[sym] = self.clock.now()
        await self._apply(
            self.engine.on_quote(sym, ts, _num(event.get("bid")), _num(event.get("ask")), vi_ref=_vi_ref(event))
        )

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "vi" and event.get("symbol"):
            ts = _ts(event.get("ts")) or self.clock.now()
            await self._apply(self.engine.on_vi(event["symbol"], ts, vi_ref=_vi_ref(event), kind=event.get("kind")))
        elif kind == "evicted":
            # the OMS took slots back (preempted, lease window end): a candidate without ticks is DONE
            symbols = [s for s in event.get("symbols", []) if isinstance(s, str)]
            reason = f"EVICTED:{event.get('reason', '')}"
            self._reported_granted.difference_update(symbols)
            await self.unsubscribe(symbols)
            await self._apply(self.engine.on_slots(self.clock.now(), [], {s: reason for s in symbols}), sync=True)

    async def on_order(self, event: dict[str, Any]) -> None:
        side = str(event.get("side", "")).upper()
        if side in _BUY and str(event.get("state", "")).upper() in TERMINAL_ORDER_STATES:
            await self._apply(
                self.engine.on_order_closed(event["symbol"], self.clock.now(), int(event.get("filled_qty") or 0))
            )

    async def on_fill(self, event: dict[str, Any]) -> None:
        await self._fill(event)

    async def _fill(self, event: dict[str, Any]) -> bool:
        """Apply one fill once (by execution id); False when it was applied before."""
        exec_id = str(event.get("execution_id", ""))
        if exec_id and exec_id in self._seen_exec:
            return False
        if exec_id:
            self._seen_exec.add(exec_id)
        ts = _ts(event.get("ts")) or self.clock.now()
        if self._last_fill_ts is None or ts > self._last_fill_ts:
            self._last_fill_ts = ts
        await self._apply(
            self.engine.on_fill(event["symbol"], str(event["side"]), int(event["qty"]), float(event["price"]), ts),
            sync=True,
        )
        return True

    async def on_recover(self) -> None:
        """Adopt KMP allocations the engine does not manage yet; after a stream (re)connection, replay missed fills."""
        now = self.clock.now()
        # symbols with fills replayed here: the engine is newer than the allocation snapshot (read before the fills)
        replayed: set[str] = set()
        if self.stream.connects > 0 and self._last_fill_ts is not None:
            try:
                fills = await self.oms.fills(since=self._last_fill_ts - timedelta(seconds=1))
            except OmsError as exc:
                self.log.warning("fills since %s not read after a reconnect: %s", self._last_fill_ts, exc)
            else:
                for f in sorted(fills, key=lambda f: f.ts):
                    applied = await self._fill(
                        {
                            "execution_id": f.execution_id,
                            "symbol": f.symbol,
                            "side": f.side,
                            "qty": f.qty,
                            "price": f.price,
                            "ts": f.ts.isoformat(),
                        }
                    )
                    if applied:
                        replayed.add(f.symbol)
        elif self._last_fill_ts is None:
            self._last_fill_ts = now
            # the fills the adopted allocations already hold are not replayed at the first connection
            self._seen_exec.update(f.execution_id for f in await self.snapshot_fills(now - timedelta(seconds=1)))
        out = Output()
        for sym, a in sorted(self.allocations.items()):
            pos = self.engine.position_of(sym)
            if a.qty <= 0 or (pos is not None and pos.qty > 0) or sym in replayed:
                continue
            avg = a.cost_basis or a.entry_px or 0.0
            if avg <= 0:
                self.log.warning("allocation %s has no cost basis; not adopted", sym)
                continue
            out.extend(
                self.engine.on_position_recovered(
                    sym,
                    a.qty,
                    avg,
                    now,
                    stop_px=a.soft_stop_px,
                    hard_stop_px=a.hard_stop_px,
                    entry_ts=a.entry_ts,
                    sector=self.sectors.get(sym),
                )
            )
        await self._apply(out, sync=bool(out.decisions))


# ---- helpers ------------------------------------------------------------------------------------


def _intent_type(a: Action) -> str:
    if isinstance(a, EnterAction):
        return "ENTER"
    if isinstance(a, ExitAction):
        return "EXIT"
    if isinstance(a, FlattenAction):
        return "FLATTEN"
    if isinstance(a, CancelAction):
        return "CANCEL_ORDERS"
    return "MODIFY_RISK"


def _reply_text(reply: IntentReply) -> str:
    return f"{reply.reason_code}: {reply.message}" if reply.reason_code else reply.message


def _ts(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if not raw:
        return None
    try:
        ts = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=KST)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def _pos(v: float | None) -> float | None:
    return v if v is not None and v > 0 else None


def _positive(payload: dict[str, Any]) -> dict[str, Any]:
    """Risk payload without non-positive prices (the OMS requires > 0; None = not given)."""
    return {k: (_pos(v) if k.endswith("_px") else v) for k, v in payload.items()}


def _vi_ref(event: dict[str, Any]) -> float | None:
    return next((_num(event[k]) for k in ("vi_ref", "vi_ref_price", "static_vi_ref") if event.get(k)), None)
