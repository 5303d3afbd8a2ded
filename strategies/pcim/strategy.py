"""PCIM wiring: the night pipeline, the store, the approval and the pure :class:`PcimEngine` on the SDK.

``build(config, oms_client, clock)`` is what ``trader strategy pcim`` (``strategies.sdk.runner``) calls;
the config is ``config/pcim.yaml`` validated by :data:`CONFIG_MODEL`. PCIM holds **no WebSocket
slot**: :meth:`PcimStrategy.subscribe` never leases one; every price is a REST poll through the OMS;
the stream is used only for PCIM's own order and fill events.

What runs when (KST, on the shared clock):

=========================  ====================================================================
at start                   SDK recovery → ``on_position_recovered`` per PCIM allocation (memo from
                           the store: stop, target, trail, partial); catch-up of the day: the
                           watchlist if missing (before 15:20), the 08:30 freeze if past it
every 10 min 20:00–24:00   night poll (worker thread): discover → captions → extraction → refs
00:05                      last poll for the session, then stats + filters → watchlist (I4): daily
                           bars and the Bucket A baselines through the OMS proxy
06:00                      catch-up build when 00:05 did not produce a list
08:00 (trading days)       approval opens: the list is logged; ``auto_approve`` (simulation only)
                           approves every item, labelled in every log line
08:30 (trading days)       freeze: approved items → ``start_day``; KOSPI daily → regime →
                           MODIFY_RISK ``*`` (regime, cap)
every 60 s 08:40–09:00     REST quotes of the approved → ``on_expected_open`` (a field
                           ``expected_open``/``antc_cnpr`` when the broker gives one)
every 30 s 09:00–15:20     account → ``on_account``; KOSPI quote → ``on_index``; quotes of live
                           candidates and positions → ``on_quote``; ``on_clock`` (09:01 buckets,
                           entries, 10:00 cut, 15:10 day-15 exits, exit retries)
every 60 s 09:01–10:00     (at :02) REST 1m bars since 09:00 of the live candidates → ``on_bars``
                           → ``on_clock`` (A at 09:03, B on each close 09:10–09:59)
15:40 (trading days)       daily bars → ``on_daily_close`` (trail, I23); analytics MFE/MAE
Friday 16:00               scorecard: EV by (influencer, bucket) (I25) → ``PCIM_SCORECARD``
stream                     own orders (terminal buys → ``on_order_closed``: I19), fills → ``on_fill``
=========================  ====================================================================

Actions → intents (all SWING): ``EnterAction`` → ENTER LIMIT (cancel_after, risk payload with
confidence HIGH/MEDIUM); ``ExitAction`` → EXIT marketable LIMIT; ``ReduceAction`` → REDUCE;
``CancelAction`` → CANCEL_ORDERS; ``ModifyRiskAction`` → MODIFY_RISK (symbol or ``*``). Replies go back
through ``on_intent_result``. The approval API for the dashboard: :meth:`approval_list`,
:meth:`approve`, :meth:`reject`, :meth:`approve_all` (and :func:`strategies.pcim.review.approval_http_app`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core import calendars
from broker_core.clock import KST, Clock, RealClock
from broker_core.config_errors import ConfigError
from broker_core.contract.reasons import ReasonCode
from strategies.pcim import regime as regime_rules
from strategies.pcim.approval import AUTO_LABEL, MANUAL_LABEL, ApprovalStatus, auto_approve_allowed, decide
from strategies.pcim.config import PcimConfig
from strategies.pcim.decisions import (
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
from strategies.pcim.engine import PcimEngine
from strategies.pcim.pipeline.night import NightPipeline, PollReport, candidates, target_session
from strategies.pcim.signals import QuoteSnap, a_baseline
from strategies.pcim.store import PcimStore, TradeRow
from strategies.pcim.watchlist import build_watchlist, load_watchlist, save_watchlist, with_baselines
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import IntentsClosed, OmsError
from strategies.sdk.indicators import atr
from strategies.sdk.models import TERMINAL_ORDER_STATES, IntentReply, IntentType, RiskPayload
from strategies.sdk.strategy import Strategy

CONFIG_MODEL = PcimConfig
AFTER_CLOSE = time(15, 40)
SCORECARD = time(16, 0)
INDEX = "KOSPI"
DAILY_LOOKBACK_DAYS = 150
_BUY = ("BUY", "B")
_RESERVED = {"code", "symbol"}
_EXPECTED_FIELDS = ("expected_open", "expected_price", "antc_cnpr", "indicative_open")


SIMULATION_ENV = "TRADER_SIMULATION"
"""Set to 1 by ``trader demo``/``sim``/``backtest``: nobody is there to approve the morning list, so it is
auto-approved (still refused on a real clock, and labelled in every log line and report)."""


def build(config: PcimConfig, oms_client: OmsClient, clock: Clock) -> PcimStrategy:
    """The runner's entry point (``trader strategy pcim``)."""
    if os.environ.get(SIMULATION_ENV) == "1" and not config.approval.auto_approve:
        config = config.model_copy(update={"approval": config.approval.model_copy(update={"auto_approve": True})})
    return PcimStrategy(config, oms_client, clock)


class PcimStrategy(Strategy):
    def __init__(
        self,
        config: PcimConfig,
        oms: OmsClient,
        clock: Clock,
        *,
        store: PcimStore | None = None,
        pipeline: NightPipeline | None = None,
        offline_dir: str | None = None,
        heartbeat_sec: float = 15.0,
    ) -> None:
        super().__init__(oms.strategy_id, oms, clock, symbols=(), channels=("trades",), heartbeat_sec=heartbeat_sec)
        self.config = config
        self.p = config.params
        self.engine = PcimEngine(self.p, self.strategy_id)
        self.store = store or PcimStore.from_config(config.store)
        self._pipeline = pipeline
        self._offline_dir = offline_dir
        self._pipeline_error: str | None = None
        self.auto_requested = config.approval.auto_approve
        self.auto_approve = self.auto_requested and auto_approve_allowed(isinstance(clock, RealClock))
        self._lock = asyncio.Lock()
        self._night_lock = asyncio.Lock()
        self._build_lock = asyncio.Lock()
        """One watchlist build at a time: at a multi-day clock's morning jump the 00:05 build and the 06:00
        catch-up fire together, and the catch-up must see the build's list rather than build a second one."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seen_exec: set[str] = set()
        self._frozen: date | None = None
        self._trade_ids: dict[str, int] = {}
        self._index_prev: float | None = None
        self.last_poll: dict[str, Any] = {}
        self.intent_counts: dict[str, int] = {}
        pc, ap, s = config.pipeline, config.approval, self.scheduler
        s.every(pc.poll_interval_sec, self._night_poll, "pcim.night", start=pc.poll_start, end=pc.poll_end)
        s.at(pc.watchlist_time, self._build_job, "pcim.watchlist")
        s.at(pc.watchlist_deadline, self._build_job, "pcim.watchlist.catchup")  # when 00:05 produced none
        s.at(ap.open, self._approval_open_job, "pcim.approval.open", trading_days_only=True)
        s.at(ap.deadline, self._freeze_job, "pcim.freeze", trading_days_only=True)
        s.every(
            self.p.expected_open_poll_sec,
            self._expected_open_job,
            "pcim.expected_open",
            start=self.p.expected_open_start,
            end=self.p.session_open,
        )
        s.every(
            self.p.poll_interval_sec, self._poll_job, "pcim.poll", start=self.p.session_open, end=self.p.session_end
        )
        bars_start = (datetime.combine(date(2000, 1, 1), self.p.entry_start) + timedelta(seconds=2)).time()
        s.every(60.0, self._bars_job, "pcim.bars", start=bars_start, end=self.p.entry_end)
        s.at(self.p.entry_end, self._clock_job, "pcim.window_end", trading_days_only=True)
        s.at(AFTER_CLOSE, self._after_close_job, "pcim.after_close", trading_days_only=True)
        s.at(SCORECARD, self._scorecard_job, "pcim.scorecard")

    # ================================================================== lifecycle

    @property
    def approval_label(self) -> str:
        return AUTO_LABEL if self.auto_approve else MANUAL_LABEL

    async def subscribe(self, symbols: Iterable[str], keep: Iterable[str] | None = None) -> None:
        """PCIM uses 0 WebSocket slots (D2): no market-data subscription is ever requested."""
        return None

    async def on_start(self) -> None:
        now = self.clock.now()
        if self.auto_requested and not self.auto_approve:
            self.decision(
                ReasonCode.PCIM_AUTO_APPROVE_REFUSED.value,
                None,
                reason="auto_approve is for simulations only: real clock",
            )
        await self._account()
        day = now.astimezone(KST).date()
        t = now.astimezone(KST).time()
        if not calendars.is_trading_day(day) or t >= self.p.session_end:
            return
        self._spawn(self._catch_up(day, t), "pcim.catch-up")

    async def _catch_up(self, day: date, t: time) -> None:
        await self._build_if_missing(day)
        if t >= self.config.approval.open:
            await self._approval_open_job()
        if t >= self.config.approval.deadline:
            await self._freeze_job()

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
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> dict[str, Any]:
        e = self.engine
        return {
            **super().status(),
            "pcim": {
                "day": str(e.day) if e.day else None,
                "states": e.counts(),
                "positions": {s: p.qty for s, p in e.positions.items()},
                "entries_today": e.entries_today,
                "regime": e.regime.fields() if e.regime else None,
                "kospi_blocked": e.kospi_blocked,
                "approval_mode": self.approval_label,
                "night": self.last_poll,
                "intents": dict(self.intent_counts),
                "ws_slots": 0,
            },
        }

    # ================================================================== decisions, intents

    def _log(self, d: Decision) -> None:
        fields = {(f"{k}_" if k in _RESERVED else k): v for k, v in d.fields.items()}
        if self.auto_approve:
            fields["approval_mode"] = AUTO_LABEL
        if d.alert:
            fields["alert"] = True
        self.decision(d.code.value, d.symbol, at=d.ts.astimezone(KST).isoformat(timespec="seconds"), **fields)

    async def _apply(self, out: Output) -> None:
        for d in out.decisions:
            self._log(d)
            self._analytics(d)
        if out.actions and not self.stopping:
            async with self._lock:
                for a in out.actions:
                    if self.stopping:
                        break
                    follow = await self._send(a)
                    for d in follow.decisions:
                        self._log(d)
        self._persist_positions()

    async def _send(self, a: Action) -> Output:
        kind = intent_type(a)
        try:
            reply = await self._submit(a)
        except IntentsClosed:
            return Output()
        except OmsError as exc:
            self.intent_counts[f"{kind}:ERROR"] = self.intent_counts.get(f"{kind}:ERROR", 0) + 1
            self.decision(
                ReasonCode.PCIM_INTENT_ERROR.value, a.symbol, intent_type=kind, error=str(exc), key=a.idempotency_key
            )
            if isinstance(a, EnterAction):
                return self.engine.on_intent_result(
                    a.symbol, self.clock.now(), kind, "REJECTED", message=f"not sent: {exc}"
                )
            return Output()
        key = f"{kind}:{reply.status.value}"
        self.intent_counts[key] = self.intent_counts.get(key, 0) + 1
        if isinstance(a, EnterAction) and reply.status.value in ("ACCEPTED", "EXECUTED", "MODIFIED"):
            self._open_trade(a)
        return self.engine.on_intent_result(
            a.symbol,
            self.clock.now(),
            kind,
            reply.status.value,
            modified_qty=reply.modified_qty,
            message=f"{reply.reason_code}: {reply.message}" if reply.reason_code else reply.message,
        )

    async def _submit(self, a: Action) -> IntentReply:
        oms = self.oms
        if isinstance(a, EnterAction):
            rp = a.risk_payload()
            return await oms.enter(
                a.symbol,
                a.qty,
                limit_price=a.limit_price,
                order_type=a.order_type,
                cancel_after_sec=a.cancel_after_sec,
                risk=RiskPayload(
                    entry_px=rp["entry_px"],
                    stop_px=rp["stop_px"] if rp["stop_px"] and rp["stop_px"] > 0 else None,
                    rationale_code=rp["rationale_code"],
                    confidence=rp["confidence"],
                ),
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
        if isinstance(a, CancelAction):
            return await oms.cancel_orders(
                a.symbol, risk=RiskPayload(rationale_code=a.rationale_code), idempotency_key=a.idempotency_key
            )
        assert isinstance(a, ModifyRiskAction)
        if a.symbol == "*":
            return await oms.submit_intent(
                IntentType.MODIFY_RISK,
                "*",
                time_horizon=a.time_horizon,
                risk=RiskPayload(rationale_code=a.rationale_code, confidence=a.confidence),
                signal_hash=a.signal_hash,
                idempotency_key=a.idempotency_key,
            )
        return await oms.modify_risk(
            a.symbol,
            stop_px=a.stop_px,
            time_stop_ts=a.time_stop_ts,
            rationale_code=a.rationale_code,
            confidence=a.confidence,
            idempotency_key=a.idempotency_key,
        )

    # ================================================================== analytics (I25)

    def _open_trade(self, a: EnterAction) -> None:
        s = self.engine.syms.get(a.symbol)
        item = s.item if s else None
        detail: dict[str, Any] = dict(s.detail) if s else {}
        if item is not None:
            detail.update(
                {
                    "trend_gate_pass": True,
                    "gap_reversal": item.gap.fields(),
                    "multipliers": item.multipliers,
                    "gap": s.gap if s else None,
                    "atr20": item.atr20,
                }
            )
        trade_id = self.store.open_trade(
            TradeRow(
                session=a.ts.astimezone(KST).date(),
                symbol=a.symbol,
                bucket=a.bucket,
                tier=a.tier,
                conviction=a.confidence,
                influencers=list(item.influencers) if item else [],
                intended_qty=a.qty,
                signal_px=s.order.signal_px if s and s.order else None,
                limit_px=a.limit_price,
                status="SENT",
                detail=detail,
                opened_at=a.ts.astimezone(KST),
            )
        )
        self._trade_ids[a.symbol] = trade_id

    def _trade_id(self, symbol: str) -> int | None:
        tid = self._trade_ids.get(symbol)
        if tid is None:
            row = self.store.last_trade(symbol)
            tid = row.id if row is not None and row.closed_at is None else None
        return tid

    def _analytics(self, d: Decision) -> None:
        sym = d.symbol
        if sym is None:
            return
        tid = self._trade_id(sym)
        if tid is None:
            return
        f = d.fields
        if d.code is ReasonCode.PCIM_FILL and f.get("side") == "BUY":
            pos = self.engine.positions.get(sym)
            s = self.engine.syms.get(sym)
            signal = s.order.signal_px if s and s.order else None
            avg = float(f.get("avg") or 0)
            slip = (avg / signal - 1) * 1e4 if signal and avg else None
            self.store.update_trade(
                tid,
                filled_qty=pos.qty if pos else int(f.get("qty", 0)),
                fill_px=avg,
                slippage_bps=slip,
                status="FILLED",
            )
        elif d.code in (ReasonCode.PCIM_ABORTED_SMALL_FILL, ReasonCode.PCIM_PARTIAL_KEPT, ReasonCode.PCIM_ENTRY_MISSED):
            self.store.update_trade(
                tid,
                status=d.code.value.removeprefix("PCIM_"),
                detail={"partial_fill": {k: f.get(k) for k in ("intended", "filled", "fill_pct", "decision")}},
                **({"closed_at": d.ts.astimezone(KST)} if d.code is ReasonCode.PCIM_ENTRY_MISSED else {}),
            )
            if d.code is ReasonCode.PCIM_ENTRY_MISSED:
                self._trade_ids.pop(sym, None)
        elif d.code is ReasonCode.PCIM_POSITION_CLOSED:
            row = self.store.last_trade(sym)
            risk = None
            if row is not None and row.fill_px and row.filled_qty:
                atr20 = (row.detail or {}).get("atr20")
                risk = row.filled_qty * self.p.stop_atr_mult * float(atr20) if atr20 else None
            realized = float(f.get("realized") or 0)
            self.store.update_trade(
                tid,
                status="CLOSED",
                exit_reason=f.get("reason"),
                realized_pnl=realized,
                r_multiple=realized / risk if risk else None,
                mfe=f.get("mfe"),
                mae=f.get("mae"),
                closed_at=d.ts.astimezone(KST),
            )
            self._trade_ids.pop(sym, None)

    def _persist_positions(self) -> None:
        now = self.clock.now()
        stored = set(self.store.positions())
        for sym, pos in self.engine.positions.items():
            self.store.save_position(sym, pos.to_json(), now)
        for sym in stored - set(self.engine.positions):
            self.store.drop_position(sym)

    # ================================================================== night

    def pipeline(self) -> NightPipeline | None:
        if self._pipeline is None and self._pipeline_error is None:
            from strategies.pcim.pipeline.factory import build_pipeline

            def emit(d: Decision) -> None:
                loop.call_soon_threadsafe(self._log, d)

            loop = asyncio.get_running_loop()
            try:
                self._pipeline = build_pipeline(
                    self.config, self.store, offline_dir=self._offline_dir, emit=emit, now=self.clock.now
                )
            except ConfigError as exc:
                self._pipeline_error = str(exc)
                self.decision(ReasonCode.PCIM_DATA_UNAVAILABLE.value, None, source="pipeline", reason=str(exc))
        return self._pipeline

    async def _night_poll(self) -> None:
        await self._night_job()

    async def _night_job(self, session: date | None = None) -> PollReport | None:
        pipe = self.pipeline()
        if pipe is None:
            return None
        async with self._night_lock:
            now = self.clock.now()
            report = await asyncio.to_thread(pipe.run, now, session)
        self.last_poll = report.fields()
        return report

    async def _build_job(self) -> None:
        await self._build_if_missing(target_session(self.clock.now(), self.config.pipeline.window_start))

    async def _build_if_missing(self, session: date) -> None:
        """Build the session's watchlist unless it exists: a list is built once (a rebuild could change a list
        the trader is approving), whichever of the 00:05 build, the 06:00 catch-up or a start-up catch-up
        comes first."""
        async with self._build_lock:
            if not await asyncio.to_thread(self.store.has_watchlist, session):
                await self._build_locked(session)

    async def _build_locked(self, session: date) -> None:
        """Last poll for the session, then stats and filters → the watchlist (I4)."""
        await self._night_job(session)
        pipe = self._pipeline
        if pipe is None:
            return
        now = self.clock.now()
        cands = await asyncio.to_thread(candidates, self.store, session)
        daily = {c.symbol: await self._daily(c.symbol, session) for c in cands}
        build = build_watchlist(session, cands, daily, pipe.listing, self.p, now)
        baselines = {
            i.symbol: await self._a_baseline(i.symbol, session, daily.get(i.symbol) or []) for i in build.items
        }
        build.items = with_baselines(build.items, baselines)
        await asyncio.to_thread(save_watchlist, self.store, build, now)
        for d in build.decisions:
            self._log(d)
        if self.auto_approve and self._approval_window_open(session):
            # a list that arrives once the window is open (the multi-day clock skips the night, so the night's
            # build can end after 08:00) is auto-approved on arrival, not left PENDING until the freeze
            await self._approval_open_job()

    def _approval_window_open(self, session: date) -> bool:
        now = self.clock.now().astimezone(KST)
        ap = self.config.approval
        return now.date() == session and ap.open <= now.time() < ap.deadline

    async def _daily(self, symbol: str, session: date) -> list[Bar] | None:
        try:
            bars = await self.oms.daily(
                symbol, session - timedelta(days=DAILY_LOOKBACK_DAYS), session - timedelta(days=1)
            )
        except OmsError as exc:
            self.log.warning("daily bars of %s unavailable: %s", symbol, exc)
            return None
        return [b for b in bars if b.start.astimezone(KST).date() < session] or None

    async def _a_baseline(self, symbol: str, session: date, daily: list[Bar]) -> float | None:
        """Median 09:00–09:03 volume of the last 20 sessions (the daily bars' dates) through the proxy."""
        days = sorted({b.start.astimezone(KST).date() for b in daily})[-self.p.a_baseline_sessions :]
        vols: list[float] = []
        for d in days:
            start = datetime.combine(d, self.p.session_open, KST)
            end = start + timedelta(minutes=self.p.a_bars - 1)
            try:
                bars = await self.oms.bars(symbol, start, end)
            except OmsError:
                continue
            vols.append(float(sum(b.volume for b in bars if start <= b.start <= end)))
        return a_baseline(vols) if vols and any(vols) else None

    # ================================================================== morning

    async def _approval_open_job(self) -> None:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        rows = await asyncio.to_thread(self.store.watchlist, day)
        self.decision(
            ReasonCode.PCIM_APPROVAL_OPEN.value,
            None,
            session=str(day),
            items=[f"{r.rank}:{r.symbol}:{r.name}:{r.conviction}:{r.approval}" for r in rows],
            deadline=self.config.approval.deadline.strftime("%H:%M"),
            approval_mode=self.approval_label,
        )
        if self.auto_approve and now.astimezone(KST).time() < self.config.approval.deadline:
            for r in rows:
                if r.approval == ApprovalStatus.PENDING.value:
                    self.store.set_approval(
                        day, r.symbol, ApprovalStatus.AUTO_APPROVED.value, "auto_approve(simulation)", now
                    )
                    self.decision(ReasonCode.PCIM_AUTO_APPROVED.value, r.symbol, approval_mode=AUTO_LABEL)

    async def _freeze_job(self) -> None:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        if self._frozen == day:
            return
        self._frozen = day
        if self.auto_approve and now.astimezone(KST).time() < self.config.approval.deadline:
            await self._approval_open_job()
        pairs = await asyncio.to_thread(load_watchlist, self.store, day)
        out = self.engine.start_day(
            now, [i for i, _ in pairs], {i.symbol: st for i, st in pairs}, label=self.approval_label
        )
        out.extend(self.engine.set_regime(now, await self._regime(day)))
        await self._apply(out)

    async def _regime(self, day: date) -> regime_rules.RegimeState:
        try:
            bars = await self.oms.daily(INDEX, day - timedelta(days=DAILY_LOOKBACK_DAYS), day - timedelta(days=1))
        except OmsError as exc:
            self.decision(ReasonCode.PCIM_DATA_UNAVAILABLE.value, None, source="kospi_daily", reason=str(exc))
            return regime_rules.fallback(self.p)
        bars = [b for b in bars if b.start.astimezone(KST).date() < day]
        if bars:
            self._index_prev = bars[-1].close
        return regime_rules.from_daily(bars, self.p) or regime_rules.fallback(self.p)

    def approval_list(self, session: date | None = None) -> list[dict[str, Any]]:
        day = session or self.clock.now().astimezone(KST).date()
        return [
            {
                "symbol": r.symbol,
                "name": r.name,
                "rank": r.rank,
                "conviction": r.conviction,
                "tier": r.tier,
                "approval": r.approval,
            }
            for r in self.store.watchlist(day)
        ]

    def _review(self, symbol: str, approve: bool, by: str) -> dict[str, Any]:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        rows = {r.symbol: r for r in self.store.watchlist(day)}
        current = ApprovalStatus(rows[symbol].approval) if symbol in rows else None
        res = decide(day, symbol, current, approve, now, self.config.approval.deadline)
        if res.ok:
            self.store.set_approval(day, symbol, res.status.value, by, now)
        self.decision(res.code.value, symbol, by=by, message=res.message, approval_mode=MANUAL_LABEL)
        return {
            "symbol": symbol,
            "ok": res.ok,
            "status": res.status.value,
            "code": res.code.value,
            "message": res.message,
        }

    def approve(self, symbol: str, by: str = "api") -> dict[str, Any]:
        return self._review(symbol, True, by)

    def reject(self, symbol: str, by: str = "api") -> dict[str, Any]:
        return self._review(symbol, False, by)

    def approve_all(self, by: str = "api") -> list[dict[str, Any]]:
        return [self._review(r["symbol"], True, by) for r in self.approval_list()]

    async def _expected_open_job(self) -> None:
        now = self.clock.now()
        out = Output()
        for sym in sorted(self.engine.syms):
            try:
                q = await self.oms.quote(sym)
            except OmsError:
                continue
            data = q.get("quote", q) if isinstance(q.get("quote"), dict) else q
            price = next((_num(data.get(k)) for k in _EXPECTED_FIELDS if data.get(k)), None)
            if price is not None:
                out.extend(self.engine.on_expected_open(now, sym, price))
        await self._apply(out)

    # ================================================================== session

    async def _account(self) -> None:
        try:
            acct = await self.oms.account()
        except OmsError as exc:
            self.log.warning("account poll failed: %s", exc)
            return
        self.engine.on_account(self.clock.now(), acct.equity)

    async def _quotes(self, symbols: Iterable[str]) -> Output:
        out = Output()
        for sym in symbols:
            try:
                data = await self.oms.quote(sym)
            except OmsError as exc:
                self.log.debug("quote %s failed: %s", sym, exc)
                continue
            out.extend(self.engine.on_quote(self.clock.now(), sym, _snap(data, self.clock.now())))
        return out

    async def _poll_job(self) -> None:
        now = self.clock.now()
        await self._account()
        out = Output()
        try:
            k = await self.oms.quote(INDEX)
            snap = _snap(k, now)
            out.extend(self.engine.on_index(now, snap.last, snap.prev_close or self._index_prev))
        except OmsError:
            pass
        out.extend(await self._quotes(self.engine.poll_symbols(now)))
        out.extend(self.engine.on_clock(self.clock.now()))
        await self._apply(out)

    async def _bars_job(self) -> None:
        now = self.clock.now()
        symbols = self.engine.bar_symbols(now)
        if not symbols:
            return
        day = now.astimezone(KST).date()
        out = await self._quotes(symbols)
        start = datetime.combine(day, self.p.session_open, KST)
        last_done = now.astimezone(KST).replace(second=0, microsecond=0) - timedelta(minutes=1)
        for sym in symbols:
            try:
                bars = await self.oms.bars(sym, start, last_done)
            except OmsError:
                continue
            out.extend(self.engine.on_bars(self.clock.now(), sym, [b for b in bars if start <= b.start <= last_done]))
        out.extend(self.engine.on_clock(self.clock.now()))
        await self._apply(out)

    async def _clock_job(self) -> None:
        await self._apply(self.engine.on_clock(self.clock.now()))

    async def _after_close_job(self) -> None:
        now = self.clock.now()
        day = now.astimezone(KST).date()
        nxt = calendars.next_trading_day(day)
        out = Output()
        for sym in sorted(self.engine.positions):
            try:
                bars = await self.oms.daily(sym, day - timedelta(days=DAILY_LOOKBACK_DAYS), day)
            except OmsError:
                continue
            bars = sorted(bars, key=lambda b: b.start)
            if not bars or bars[-1].start.astimezone(KST).date() != day:
                close = self.engine.last_px.get(sym)
                if close is None:
                    continue
            else:
                close = bars[-1].close
            out.extend(
                self.engine.on_daily_close(now, sym, close, atr(bars[-self.p.atr_period * 3 :], self.p.atr_period), nxt)
            )
            tid = self._trade_id(sym)
            pos = self.engine.positions.get(sym)
            if tid is not None and pos is not None:
                mfe, mae = pos.mfe_mae()
                self.store.update_trade(tid, mfe=mfe, mae=mae)
        await self._apply(out)

    async def _scorecard_job(self) -> None:
        now = self.clock.now()
        if now.astimezone(KST).weekday() != 4:
            return
        rows = await asyncio.to_thread(self.store.ev_table)
        self.decision(
            ReasonCode.PCIM_SCORECARD.value,
            None,
            ev=[
                {
                    "influencer": r.influencer,
                    "bucket": r.bucket,
                    "trades": r.trades,
                    "wins": r.wins,
                    "avg_r": r.avg_r,
                    "ev_pnl": round(r.ev_pnl),
                }
                for r in rows
            ],
        )

    # ================================================================== stream

    async def on_order(self, event: dict[str, Any]) -> None:
        side = str(event.get("side", "")).upper()
        if side in _BUY and str(event.get("state", "")).upper() in TERMINAL_ORDER_STATES:
            await self._apply(
                self.engine.on_order_closed(event["symbol"], self.clock.now(), int(event.get("filled_qty") or 0), side)
            )

    async def on_fill(self, event: dict[str, Any]) -> None:
        exec_id = str(event.get("execution_id", ""))
        if exec_id and exec_id in self._seen_exec:
            return
        if exec_id:
            self._seen_exec.add(exec_id)
        ts = _ts(event.get("ts")) or self.clock.now()
        await self._apply(
            self.engine.on_fill(event["symbol"], str(event["side"]), int(event["qty"]), float(event["price"]), ts)
        )

    async def on_recover(self) -> None:
        now = self.clock.now()
        memos = self.store.positions()
        out = Output()
        for sym, a in sorted(self.allocations.items()):
            if a.qty <= 0 or sym in self.engine.positions:
                continue
            avg = a.cost_basis or a.entry_px or 0.0
            if avg <= 0:
                self.log.warning("allocation %s has no cost basis; not adopted", sym)
                continue
            out.extend(
                self.engine.on_position_recovered(
                    sym, a.qty, avg, now, entry_ts=a.entry_ts, stop_px=a.soft_stop_px, memo=memos.get(sym)
                )
            )
        await self._apply(out)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


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


def _snap(data: dict[str, Any], now: datetime) -> QuoteSnap:
    q = data.get("quote", data) if isinstance(data.get("quote"), dict) else data
    return QuoteSnap(
        ts=now,
        last=_num(q.get("last") or q.get("price")),
        bid=_num(q.get("bid")),
        ask=_num(q.get("ask")),
        prev_close=_num(q.get("prev_close")),
        upper_limit=_num(q.get("upper_limit")),
        halted=bool(q.get("halted")),
        in_vi=bool(q.get("vi") or q.get("in_vi") or q.get("vi_active")),
    )


__all__ = ["CONFIG_MODEL", "PcimStrategy", "build"]
