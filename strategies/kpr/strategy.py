"""KPR wiring: the pure :class:`~strategies.kpr.engine.KprEngine` on the strategy SDK.

``build(config, oms_client, clock)`` is what ``trader strategy kpr`` (``strategies.sdk.runner``)
calls; the config is ``config/kpr.yaml`` validated by :data:`CONFIG_MODEL` (:class:`KprConfig`).

What runs when (KST, on the shared clock; the engine's call table is in :mod:`strategies.kpr`):

======================  =====================================================================
at start                SDK recovery → ``on_position_recovered`` per KPR allocation (stop, entry
                        time, time stop; partial taken = KPR sold some since entry_ts); account;
                        provider probes → ``set_provider_mode`` (logged once: KPR_PROVIDER_MODE);
                        premarket catch-up when started after 08:30
08:30 (KRX sessions)    premarket: listing, symbols entered today → ``mark_entered``, caches through
                        the OMS proxy (:func:`strategies.kpr.data.load_premarket`) → ``premarket``
every 5 s 09:00–15:20   ``take_due_polls`` → REST 1m bars from ``rest_start`` (the last bar held,
                        again) to the last completed minute → ``on_bars`` (never the whole day)
every 5 s 09:00–15:30   ``on_clock`` + slot answers (``on_slots``) + stream sync
every 15 s              ``/state/account`` → ``on_account``
every 30 s 09:00–15:20  KOSPI/KOSDAQ quotes → ``on_index`` (404 → index off for the day)
every 10 s 09:00–15:20  REST quotes of ``quote_due`` (accepting, pending, held) → ``on_quote``
every 5 s 09:00–15:20   investor flow of ``investor_due`` (LIVE provider only) → ``on_investor``;
                        program of ``program_due`` (REST provider only) → ``on_program``; in
                        DAILY_ONLY mode one re-probe every 10 min
stream                  trades → ``on_trade``; completed bars → ``on_bar`` (a partial first bar is
                        replaced from REST with the minutes since the last bar held), quotes →
                        ``on_quote``, own buy orders ending → ``on_order_closed``, fills → ``on_fill``
======================  =====================================================================

Subscriptions follow ``engine.desired_stream`` (≤ ``hot_max`` HOT symbols, positions first) plus
the symbols KPR holds; symbols in a setup are passed as ``keep``. A denied or evicted symbol is
reported to ``on_slots`` and runs on REST at the WARM cadence until ``slot_retry_sec`` passed (P4).

Actions become intents in order, one output at a time (a lock keeps a CANCEL before its EXIT):
``EnterAction`` → ENTER LIMIT (limit, cancel_after 30 s, risk payload, the action's key);
``ReduceAction``/``ExitAction`` → REDUCE/EXIT with the engine's marketable limit (the OMS's own
marketable limit when no price was known); ``CancelAction`` → CANCEL_ORDERS; ``ModifyRiskAction`` →
MODIFY_RISK. Every reply goes back through ``on_intent_result``; a transport failure of an ENTER is
fed back as REJECTED and logged ``KPR_INTENT_ERROR``.

Paper exchange: the OMS proxy serves investor flow for completed sessions only (today's row after
15:30) and has no per-stock program endpoint, so KPR runs InvestorSignal STALE all session
(DAILY_ONLY) and ProgramSignal UNAVAILABLE (two-pillar mode): said once at start and in the
heartbeat's ``kpr.providers``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST, Clock
from strategies.kpr import data as kpr_data
from strategies.kpr.config import KprConfig, ProgramMode
from strategies.kpr.decisions import (
    Action,
    CancelAction,
    Decision,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
    intent_type,
)
from strategies.kpr.engine import KprEngine, ProviderMode
from strategies.kpr.fsm import State
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import IntentsClosed, MarketDataUnavailable, OmsError
from strategies.sdk.models import TERMINAL_ORDER_STATES, IntentReply, RiskPayload
from strategies.sdk.strategy import Strategy

CONFIG_MODEL = KprConfig

CLOCK_END = time(15, 30)
TICK_SEC = 5.0
ACCOUNT_POLL_SEC = 15.0
INDEX_POLL_SEC = 30.0
QUOTE_POLL_SEC = 10.0
REPROBE_SEC = 600.0
INDEX_MARKETS = ("KOSPI", "KOSDAQ")
_RESERVED = {"code", "symbol"}


def build(config: KprConfig, oms_client: OmsClient, clock: Clock) -> KprStrategy:
    """The runner's entry point (``trader strategy kpr``)."""
    return KprStrategy(config, oms_client, clock)


class KprStrategy(Strategy):
    def __init__(
        self,
        config: KprConfig,
        oms: OmsClient,
        clock: Clock,
        *,
        heartbeat_sec: float = 15.0,
        sectors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(oms.strategy_id, oms, clock, channels=("trades",), heartbeat_sec=heartbeat_sec)
        if config.strategy_id.upper() != self.strategy_id:
            self.log.warning(
                "config strategy_id %s differs from the OMS key's %s", config.strategy_id, self.strategy_id
            )
        self.config = config
        self.p = config.params
        self.engine = KprEngine(self.p, self.strategy_id)
        if sectors is None:
            sectors, self._sector_error = kpr_data.load_sector_map()
        else:
            self._sector_error = None
        self.sectors = sectors
        self.store = kpr_data.ProfileStore()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._premarket: dict[date, asyncio.Task[None]] = {}
        self._kept: set[str] = set()
        self._reported_granted: set[str] = set()
        self._reported_denied: dict[str, str] = {}
        self._seen_exec: set[str] = set()
        self._last_fill_ts: datetime | None = None
        self._index_off: date | None = None
        self._filling: set[str] = set()
        self._investor_probe_at: datetime | None = None
        self.unavailable: dict[str, str] = {}
        self.premarket_info: dict[str, Any] = {}
        self.intent_counts: Counter[str] = Counter()
        self.rest_polls = 0
        s, p = self.scheduler, self.p
        s.at(p.premarket_time, self._premarket_job, "kpr.premarket", trading_days_only=True)
        s.every(TICK_SEC, self._poll_job, "kpr.poll", start=p.session_start, end=p.session_end)
        s.every(TICK_SEC, self._clock_job, "kpr.clock", start=p.session_start, end=CLOCK_END)
        s.every(ACCOUNT_POLL_SEC, self._account_job, "kpr.account", start=p.premarket_time, end=CLOCK_END)
        s.every(INDEX_POLL_SEC, self._index_job, "kpr.index", start=p.session_start, end=p.session_end)
        s.every(QUOTE_POLL_SEC, self._quote_job, "kpr.quotes", start=p.session_start, end=p.session_end)
        s.every(TICK_SEC, self._provider_job, "kpr.providers", start=p.session_start, end=p.session_end)

    # ================================================================== lifecycle

    async def on_start(self) -> None:
        now = self.clock.now()
        await self._account_job()
        if self._sector_error and not self.config.universe.symbols:
            self._data_unavailable("listing", self._sector_error, now)
        await self._probe_providers()
        if not await self._trading_day():
            return
        t = now.astimezone(KST).time()
        if self.p.premarket_time <= t < self.p.session_end:
            self._ensure_premarket(now)
        elif t < self.p.premarket_time and self.clock_waiting:
            await self._ensure_premarket(now)  # before the clock starts: the 09:00 open cannot overtake it

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
        return {
            **super().status(),
            "kpr": {
                **self.engine.status(self.clock.now()),
                "premarket": self.premarket_info,
                "intents": dict(self.intent_counts),
                "rest_polls": self.rest_polls,
                "data_unavailable": dict(self.unavailable),
            },
        }

    # ================================================================== output → log + intents

    def _log(self, d: Decision) -> None:
        fields = {(f"{k}_" if k in _RESERVED else k): v for k, v in d.fields.items()}
        if d.alert:
            fields["alert"] = True
        self.decision(d.code.value, d.symbol, at=d.ts.astimezone(KST).isoformat(timespec="seconds"), **fields)

    async def _apply(self, out: Output, *, sync: bool = False) -> None:
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
            sync = True
        if sync:
            await self._sync_subscriptions()

    async def _send(self, a: Action) -> Output:
        kind = intent_type(a)
        try:
            reply = await self._submit(a)
        except IntentsClosed:
            self.decision("KPR_INTENT_ERROR", a.symbol, intent_type=kind, error="strategy stopping: not sent")
            return Output()
        except OmsError as exc:
            self.intent_counts[f"{kind}:ERROR"] += 1
            self.decision(
                "KPR_INTENT_ERROR", a.symbol, intent_type=kind, error=str(exc), status=exc.status, key=a.idempotency_key
            )
            if isinstance(a, EnterAction):
                return self.engine.on_intent_result(
                    a.symbol, self.clock.now(), "REJECTED", intent_type=kind, message=f"not sent: {exc}"
                )
            return Output()
        self.intent_counts[f"{kind}:{reply.status.value}"] += 1
        held = None
        if kind in ("EXIT", "REDUCE") and reply.status.value == "REJECTED":
            held = await self._allocation_qty(a.symbol)
        return self.engine.on_intent_result(
            a.symbol,
            self.clock.now(),
            reply.status.value,
            intent_type=kind,
            modified_qty=reply.modified_qty,
            cooldown_until=reply.cooldown_until,
            reason_code=reply.reason_code,
            message=reply.message,
            allocation_qty=held,
        )

    async def _allocation_qty(self, symbol: str) -> int | None:
        """KPR's allocation in ``symbol`` as the OMS has it now (None when it cannot be read)."""
        try:
            self.allocations = await self.oms.allocations()
        except OmsError as exc:
            self.log.warning("allocations not read after a rejected sell: %s", exc)
            return None
        a = self.allocations.get(symbol)
        return a.qty if a is not None else 0

    async def _submit(self, a: Action) -> IntentReply:
        oms = self.oms
        if isinstance(a, EnterAction):
            return await oms.enter(
                a.symbol,
                a.qty,
                limit_price=a.limit_price,
                order_type=a.order_type,
                cancel_after_sec=a.cancel_after_sec,
                risk=RiskPayload(**{k: v for k, v in a.risk_payload().items() if v is not None}),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, ReduceAction):
            return await oms.reduce(
                a.symbol,
                a.qty,
                limit_price=a.limit_price,
                order_type="LIMIT" if a.limit_price is not None else None,
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, ExitAction):
            return await oms.exit(
                a.symbol,
                limit_price=a.limit_price,
                order_type="LIMIT" if a.limit_price is not None else None,
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, CancelAction):
            return await oms.cancel_orders(
                a.symbol, risk=RiskPayload(rationale_code=a.rationale_code), idempotency_key=a.idempotency_key
            )
        if isinstance(a, ModifyRiskAction):
            return await oms.modify_risk(
                a.symbol,
                stop_px=a.stop_px if a.stop_px > 0 else None,
                time_stop_ts=a.time_stop_ts,
                rationale_code=a.rationale_code,
                idempotency_key=a.idempotency_key,
            )
        raise TypeError(f"unknown KPR action {a!r}")

    # ================================================================== subscriptions

    async def _sync_subscriptions(self) -> None:
        if self.stopping:
            return
        now = self.clock.now()
        held = {s for s, a in self.allocations.items() if a.qty > 0} | {o.symbol for o in self.open_orders.values()}
        want = set(self.engine.desired_stream(now)) | held
        current = set(self.stream.symbols)
        keep = set(self.engine.keep_symbols()) & want
        if want - current or keep != self._kept:
            self._kept = keep
            await self.subscribe(sorted(want - current), keep=sorted(keep))
        gone = sorted(current - want)
        if gone:
            await self.unsubscribe(gone)
            self._reported_granted.difference_update(gone)
            for s in gone:
                self._reported_denied.pop(s, None)
            await self._apply(self.engine.on_unsubscribed(now, gone))

    def _slot_answers(self, now: datetime) -> Output:
        granted_now = set(self.stream.granted)
        self._reported_granted &= granted_now
        self._reported_denied = {s: r for s, r in self._reported_denied.items() if s in self.stream.denied}
        granted = granted_now - self._reported_granted
        denied = {s: r for s, r in self.stream.denied.items() if self._reported_denied.get(s) != r}
        if not granted and not denied:
            return Output()
        self._reported_granted |= granted
        self._reported_denied.update(denied)
        return self.engine.on_slots(now, sorted(granted), denied)

    # ================================================================== scheduled jobs

    async def _trading_day(self) -> bool:
        try:
            return (await self.oms.clock()).trading_day
        except OmsError as exc:
            self.log.warning("market clock not read (%s); assuming a weekday is a session", exc)
            return self.clock.now().astimezone(KST).weekday() < 5

    def _ensure_premarket(self, now: datetime) -> asyncio.Task[None]:
        day = now.astimezone(KST).date()
        task = self._premarket.get(day)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            self._premarket = {d: t for d, t in self._premarket.items() if d == day}
            task = self._premarket[day] = self._spawn(self._load_premarket(day), f"kpr.premarket.{day}")
        return task

    async def _premarket_job(self) -> None:
        if await self._trading_day():
            await asyncio.shield(self._ensure_premarket(self.clock.now()))

    async def _load_premarket(self, day: date) -> None:
        metas, dropped = kpr_data.universe_of(self.config.universe, self.sectors)
        entered = await self._entered_today(day)
        held = {s for s, a in self.allocations.items() if a.qty > 0}
        metas = [m for m in metas if m.symbol not in entered]
        result = await kpr_data.load_premarket(self.oms, day, metas, self.p, self.store)
        now = self.clock.now()
        dropped.update(result.dropped)
        self.premarket_info = {**result.summary(), "universe": len(result.caches), "entered_today": sorted(entered)}
        self.decision(
            "KPR_PREMARKET_DATA",
            None,
            at=now.isoformat(timespec="seconds"),
            **self.premarket_info,
            dropped_by_reason=dict(Counter(dropped.values())),
        )
        if result.unavailable:
            self._data_unavailable("premarket", result.unavailable, now)
        out = self.engine.premarket(now, result.caches, dropped)
        out.extend(self.engine.mark_entered(now, entered - held))
        await self._apply(out, sync=True)

    async def _entered_today(self, day: date) -> set[str]:
        """Symbols KPR already sent an ENTER for today that was not DEFERRED (no re-entry after a restart)."""
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

    async def _poll_job(self) -> None:
        """REST 1m bars of the symbols due (WARM/COLD, HOT without a slot), incrementally."""
        now = self.clock.now()
        due = self.engine.take_due_polls(now)
        if not due or self.stopping:
            return
        last_done = now.astimezone(KST).replace(second=0, microsecond=0) - timedelta(minutes=1)
        sem = asyncio.Semaphore(kpr_data.CONCURRENCY)

        async def one(sym: str) -> tuple[str, list[Bar] | None]:
            start = self.engine.rest_start(sym)
            if start is None or start > last_done:
                return sym, []
            async with sem:
                self.rest_polls += 1
                return sym, await kpr_data.minute_bars(self.oms, sym, start, last_done)

        results = await asyncio.gather(*(one(s) for s in due))
        out = Output()
        now = self.clock.now()
        for sym, bars in results:
            if bars is None:
                out.extend(self.engine.on_data_failure(now, "bars", sym))
            elif bars:
                out.extend(self.engine.on_bars(sym, bars, now, "rest"))
        await self._apply(out)

    async def _clock_job(self) -> None:
        now = self.clock.now()
        out = self._slot_answers(now)
        out.extend(self.engine.on_clock(now))
        await self._apply(out, sync=True)

    async def _account_job(self) -> None:
        now = self.clock.now()
        try:
            acct = await self.oms.account()
        except OmsError as exc:
            self.log.warning("account poll failed: %s", exc)
            self.engine.on_data_failure(now, "account")
            return
        self.engine.on_account(
            now,
            acct.equity,
            acct.daily_pnl_pct,
            buyable_cash=acct.buyable_cash,
            halted=acct.halt_new_entries or acct.safe_mode,
        )

    async def _index_job(self) -> None:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        if self._index_off == day:
            return
        for market in INDEX_MARKETS:
            try:
                q = await kpr_data.quote(self.oms, market)
            except MarketDataUnavailable as exc:
                self._index_off = day
                self._data_unavailable("index", f"{market}: {exc}", now)
                return
            except OmsError:
                self.engine.on_data_failure(now, f"index:{market}")
                continue
            self.engine.on_index(now, market, q.last, q.prev_close)

    async def _quote_job(self) -> None:
        out = Output()
        for sym in self.engine.quote_due():
            try:
                q = await kpr_data.quote(self.oms, sym)
            except OmsError:
                out.extend(self.engine.on_data_failure(self.clock.now(), "quote", sym))
                continue
            out.extend(self.engine.on_quote(sym, self.clock.now(), q.bid, q.ask))
        await self._apply(out)

    # ================================================================== providers (P9, P11)

    def _probe_symbol(self) -> str | None:
        syms = list(self.config.universe.symbols) or sorted(self.sectors)
        return next((s for s in syms if s not in self.config.universe.exclude), None)

    async def _probe_providers(self) -> None:
        now = self.clock.now()
        out = Output()
        sym = self._probe_symbol()
        out.extend(await self._probe_investor(now, sym))
        mode = self.p.program_mode
        if mode is ProgramMode.DISABLED:
            out.extend(self.engine.set_provider_mode(now, "program", ProviderMode.UNAVAILABLE, "program_mode DISABLED"))
        elif mode is ProgramMode.FORCE_WS:
            why = "FORCE_WS: the OMS stream has no per-stock program channel"
            out.extend(self.engine.set_provider_mode(now, "program", ProviderMode.UNAVAILABLE, why))
        elif mode is ProgramMode.FORCE_REST:
            out.extend(self.engine.set_provider_mode(now, "program", ProviderMode.REST, "FORCE_REST"))
        else:
            out.extend(await self._probe_program(now, sym))
        await self._apply(out)

    async def _probe_program(self, now: datetime, sym: str | None) -> Output:
        """AUTO: (1) WS per-stock program stream — the OMS stream has none; (2) the REST endpoint."""
        if sym is None:
            return self.engine.set_provider_mode(now, "program", ProviderMode.UNAVAILABLE, "no symbol to probe")
        try:
            await kpr_data.program_net(self.oms, sym)
        except MarketDataUnavailable as exc:
            why = f"no WS program channel; REST {kpr_data.PROGRAM_PATH} → {exc.status}"
            return self.engine.set_provider_mode(now, "program", ProviderMode.UNAVAILABLE, why)
        except OmsError as exc:
            return self.engine.set_provider_mode(now, "program", ProviderMode.UNAVAILABLE, f"probe failed: {exc}")
        return self.engine.set_provider_mode(now, "program", ProviderMode.REST, "REST per-stock program endpoint")

    async def _probe_investor(self, now: datetime, sym: str | None) -> Output:
        self._investor_probe_at = now
        if sym is None:
            return self.engine.set_provider_mode(now, "investor", ProviderMode.UNAVAILABLE, "no symbol to probe")
        try:
            rows = await kpr_data.investor_rows(self.oms, sym)
        except MarketDataUnavailable as exc:
            if exc.status == 501 or kpr_data.route_missing(exc):
                return self.engine.set_provider_mode(now, "investor", ProviderMode.UNAVAILABLE, str(exc))
            self.log.warning("investor-flow probe on %s: %s; probing again later", sym, exc)
            return Output()
        except OmsError as exc:
            self.engine.on_data_failure(now, "investor", None)
            self.log.warning("investor-flow probe failed (%s); InvestorSignal stays STALE", exc)
            return Output()
        day = now.astimezone(KST).date()
        if kpr_data.investor_row(rows, day) is not None:
            return self.engine.set_provider_mode(now, "investor", ProviderMode.LIVE, "today's row is served")
        newest = max((str(r.get("date"))[:10] for r in rows), default=None)
        why = f"no row for {day} (newest {newest}): completed sessions only → InvestorSignal STALE all session"
        return self.engine.set_provider_mode(now, "investor", ProviderMode.DAILY_ONLY, why)

    async def _provider_job(self) -> None:
        now = self.clock.now()
        out = Output()
        e = self.engine
        if e.investor_mode in (ProviderMode.DAILY_ONLY, ProviderMode.UNKNOWN) and (
            self._investor_probe_at is None or (now - self._investor_probe_at).total_seconds() >= REPROBE_SEC
        ):
            out.extend(await self._probe_investor(now, self._probe_symbol()))
        day = now.astimezone(KST).date()
        for sym in e.investor_due(now):
            try:
                rows = await kpr_data.investor_rows(self.oms, sym)
            except OmsError:
                out.extend(e.on_data_failure(self.clock.now(), "investor", sym))
                continue
            last = e.syms[sym].series.last_price
            got = kpr_data.investor_today(rows, day, last)
            out.extend(e.on_investor(sym, self.clock.now(), *(got if got else (None, None))))
        for sym in e.program_due(now):
            try:
                net = await kpr_data.program_net(self.oms, sym)
            except OmsError:
                out.extend(e.on_data_failure(self.clock.now(), "program", sym))
                continue
            out.extend(e.on_program(sym, self.clock.now(), net))
        await self._apply(out)

    def _data_unavailable(self, source: str, why: str, now: datetime) -> None:
        if self.unavailable.get(source) == why:
            return
        self.unavailable[source] = why
        self.decision("KPR_DATA_UNAVAILABLE", None, at=now.isoformat(timespec="seconds"), source=source, reason=why)

    # ================================================================== stream hooks

    async def on_trade(self, event: dict[str, Any]) -> None:
        sym = event["symbol"]
        if sym not in self.stream.symbols:
            return
        ts = _ts(event.get("ts")) or self.clock.now()
        await self._apply(self.engine.on_trade(sym, float(event["price"]), float(event["qty"]), ts, event.get("side")))

    async def on_bar(self, bar: Bar) -> None:
        """A stream bar. A partial one (first after subscribing or a reconnect) is replaced by REST bars from
        the last bar held — filling the minutes in between — in a task of its own, so the stream never waits
        on REST (later bars meanwhile only update the series). A minute without trades has no bar (B2)."""
        sym = bar.symbol
        if sym not in self.stream.symbols or sym not in self.engine.syms:
            return
        start = self.engine.rest_start(sym)
        if (bar.partial or self.engine.syms[sym].series.last_final_minute is None) and sym not in self._filling:
            self._filling.add(sym)
            self._spawn(self._fill_then_bar(bar, start), f"kpr.fill.{sym}")
            return
        await self._apply(self.engine.on_bar(sym, bar, self.clock.now(), "ws"))

    async def _fill_then_bar(self, bar: Bar, start: datetime | None) -> None:
        sym = bar.symbol
        try:
            fill_from = start if start is not None and start <= bar.start else bar.start
            rest = await kpr_data.minute_bars(self.oms, sym, fill_from, bar.start)
            out = Output()
            if rest is None:
                out.extend(self.engine.on_data_failure(self.clock.now(), "bars", sym))
            elif rest:
                out.extend(self.engine.on_bars(sym, rest, self.clock.now(), "rest"))
            if not (bar.partial and rest and rest[-1].start == bar.start):
                out.extend(self.engine.on_bar(sym, bar, self.clock.now(), "ws"))
            await self._apply(out)
        finally:
            self._filling.discard(sym)

    async def on_quote(self, event: dict[str, Any]) -> None:
        ts = _ts(event.get("ts")) or self.clock.now()
        await self._apply(self.engine.on_quote(event["symbol"], ts, _num(event.get("bid")), _num(event.get("ask"))))

    async def on_order(self, event: dict[str, Any]) -> None:
        state = str(event.get("state", "")).upper()
        if state in TERMINAL_ORDER_STATES:
            await self._apply(
                self.engine.on_order_closed(
                    event["symbol"],
                    self.clock.now(),
                    int(event.get("filled_qty") or 0),
                    side=str(event.get("side", "")).upper(),
                    state=state,
                )
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
        """Adopt KPR allocations the engine does not manage yet; after a stream (re)connection, replay missed fills."""
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
                    initial_stop_px=a.initial_stop_px,
                    entry_ts=a.entry_ts,
                    time_stop_ts=a.time_stop_ts,
                    partial_done=await self._sold_since(sym, a.entry_ts),
                    sector=self.sectors.get(sym),
                )
            )
        for sym in [s for s, c in self.engine.syms.items() if c.state is State.ENTRY_PENDING]:
            if not any(o.symbol == sym for o in self.open_orders.values()) and self.stream.connects > 1:
                out.extend(self.engine.on_order_closed(sym, now, 0))
        await self._apply(out, sync=bool(out.decisions))

    async def _sold_since(self, symbol: str, entry_ts: datetime | None) -> bool:
        """True when KPR sold part of this allocation since its entry (the P17 partial was taken)."""
        if entry_ts is None:
            return False
        try:
            fills = await self.oms.fills(since=entry_ts, symbol=symbol)
        except OmsError:
            return False
        return any(str(f.side).upper() in ("SELL", "S") for f in fills)


# ---- helpers ------------------------------------------------------------------------------------


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
