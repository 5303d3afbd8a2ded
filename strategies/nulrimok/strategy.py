"""Nulrimok wiring: the LRS, the DSE and :class:`~strategies.nulrimok.engine.NulrimokEngine` on the SDK.

``build(config, oms_client, clock)`` is what ``trader strategy nulrimok`` (``strategies.sdk.runner``)
calls; the config is ``config/nulrimok.yaml`` validated by :data:`CONFIG_MODEL`.

What runs when (KST, on the shared clock; multi-day runs keep the same process and state):

=========================  ==================================================================
at start                   SDK recovery → every Nulrimok allocation adopted (qty, avg, entry_ts
                           and stop from the OMS; tag/post-fill state from the LRS; sessions since
                           entry from the LRS's session dates); then, in the background: LRS
                           refresh when stale, the DSE when started 08:00–15:20 on a session
                           without today's watchlist, the precompute when started after 16:00
08:00 (sessions)           DSE: LRS refresh if stale → features (precomputed or computed) →
                           select → 30m bars of the ranked candidates and held positions (LRS) →
                           select with their ATR30m → watchlist file + table → ``on_selection``
                           (must finish by 08:30, else logged NULRIMOK_DSE_LATE)
every 1 s 09:00–15:30      ``on_clock`` (09:01 flow-reversal exits, order windows, 15:10 time
                           stops and tags, 11:30/13:00/14:30 refresh, inactivity, exit retries);
                           no watchlist yet today (a failed 08:00 run): the DSE again every 5 min
every 60 s 08:00–15:30     ``/state/account`` → ``on_account``
every 60 s 09:00–15:30     REST quotes of held positions without a recent stream trade → ``on_price``
09:30:05 … 15:00:05, 15:20:05  30m bars of ``bar_symbols``: from the stream's 1m bars when the symbol
                           was streamed for the whole bar, else one REST pull of its 1m bars
                           (a REST failure skips that bar: NULRIMOK_BAR_SKIPPED) → ``on_bar30``
16:00 (sessions)           nightly: LRS refresh (today's rows) + N2 precompute for the next session
stream                     trades → ``on_price``; 1m bars → the minute book; own orders →
                           ``on_order_closed`` (terminal buys) / ``on_exit_order_closed`` (terminal
                           sells); fills → ``on_fill``
=========================  ==================================================================

Subscriptions follow ``engine.desired_subscriptions`` (the active monitoring set from 10:00, when the
WebSocket slots KMP held until then are Nulrimok's). Actions become intents in order, under one lock,
every one ``time_horizon`` SWING with the engine's deterministic key: ENTER LIMIT (``cancel_after_sec``),
EXIT / REDUCE with the engine's marketable limit (the OMS's own marketable limit when no price was
known), CANCEL_ORDERS, MODIFY_RISK (stop; the time stop in ``constraints.expiry_ts``). Every reply goes
back through ``on_intent_result``; a transport failure of an ENTER is fed back as REJECTED and logged
NULRIMOK_INTENT_ERROR. The engine's per-position state is saved in the
LRS after every change, so a restart (or the next morning's process) continues where it was.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Coroutine
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from broker_core.clock import KST, Clock
from broker_core.contract.reasons import ReasonCode
from strategies.nulrimok import data as nul_data
from strategies.nulrimok.bars30 import Bar30, MinuteBook, bar_end, bar_starts
from strategies.nulrimok.config import NulrimokConfig
from strategies.nulrimok.decisions import (
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
from strategies.nulrimok.engine import NulrimokEngine, sessions_between
from strategies.nulrimok.lrs.files import OptionalInputs, load_inputs
from strategies.nulrimok.lrs.fill import LrsFiller, RefreshReport, last_complete_session, m30_kind
from strategies.nulrimok.lrs.precompute import atr30m_from_bars, build_inputs, precompute
from strategies.nulrimok.lrs.store import ResearchStore
from strategies.nulrimok.selection import Selection, select
from strategies.sdk.bars import Bar
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import IntentsClosed, OmsError
from strategies.sdk.models import (
    TERMINAL_ORDER_STATES,
    Constraints,
    IntentReply,
    IntentType,
    RiskPayload,
    TimeHorizon,
    Urgency,
)
from strategies.sdk.strategy import Strategy

CONFIG_MODEL = NulrimokConfig

ACCOUNT_START = time(8, 0)
ACTIVE_END = time(15, 30)
WATCHLIST_DIR = "watchlist"
DSE_RETRY_SEC = 300.0
_BUY = ("BUY", "B")
_RESERVED = {"code", "symbol"}
_MINUTE = timedelta(minutes=1)


def build(config: NulrimokConfig, oms_client: OmsClient, clock: Clock) -> NulrimokStrategy:
    """The runner's entry point (``trader strategy nulrimok``)."""
    return NulrimokStrategy(config, oms_client, clock)


class NulrimokStrategy(Strategy):
    def __init__(
        self,
        config: NulrimokConfig,
        oms: OmsClient,
        clock: Clock,
        *,
        heartbeat_sec: float = 15.0,
        sectors: dict[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__(oms.strategy_id, oms, clock, channels=("trades",), heartbeat_sec=heartbeat_sec)
        if config.strategy_id.upper() != self.strategy_id:
            self.log.warning(
                "config strategy_id %s differs from the OMS key's %s", config.strategy_id, self.strategy_id
            )
        self.config = config
        self.p = config.params
        self.engine = NulrimokEngine(self.p, self.strategy_id)
        self.data_dir = data_dir or config.data_dir()
        self.store = ResearchStore(self.data_dir / config.lrs.db_file)
        self.filler = LrsFiller(self.store, oms, config.lrs, clock_now=clock.now)
        if sectors is None:
            sectors, self._sector_error = nul_data.load_sector_map()
        else:
            self._sector_error = None
        self.sectors = {**sectors, **config.universe.sector_overrides}
        self.listing = nul_data.listing(config.universe, self.sectors)
        self.book = MinuteBook()
        self._lock = asyncio.Lock()
        self._dse_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fed: dict[str, set[datetime]] = {}
        self._fed_day: date | None = None
        self._stream_from: dict[str, datetime] = {}
        self._granted_seen: set[str] = set()
        self._reported_denied: dict[str, str] = {}
        self._last_trade: dict[str, datetime] = {}
        self._seen_exec: set[str] = set()
        self._last_fill_ts: datetime | None = None
        self._saved_state: dict[str, str] = {}
        self._trading: dict[date, bool] = {}
        self._dse_day: date | None = None
        self._dse_attempt: datetime | None = None
        self._nightly_day: date | None = None
        self._skipped_logged: set[str] = set()
        self.selection: Selection | None = None
        self.lrs_info: dict[str, Any] = {}
        self.dse_info: dict[str, Any] = {}
        self.skipped_rules: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.intent_counts: Counter[str] = Counter()
        self.bar_sources: Counter[str] = Counter()
        p, s = self.p, self.scheduler
        first_bar = (datetime.combine(date(2000, 1, 1), time(9, 30)) + timedelta(seconds=p.bar_delay_sec)).time()
        last_bar = (datetime.combine(date(2000, 1, 1), p.session_end) + timedelta(seconds=p.bar_delay_sec)).time()
        s.at(p.dse_time, self._dse_job, "nulrimok.dse", trading_days_only=True)
        s.at(p.nightly_time, self._nightly_job, "nulrimok.nightly", trading_days_only=True)
        s.every(1.0, self._clock_job, "nulrimok.clock", start=p.session_start, end=ACTIVE_END)
        s.every(p.account_poll_sec, self._account_job, "nulrimok.account", start=ACCOUNT_START, end=ACTIVE_END)
        s.every(p.price_poll_sec, self._poll_job, "nulrimok.prices", start=p.session_start, end=ACTIVE_END)
        s.every(1800.0, self._bars_job, "nulrimok.bars", start=first_bar, end=p.session_end)
        s.at(last_bar, self._bars_job, "nulrimok.bars.last")

    # ================================================================== lifecycle

    async def on_start(self) -> None:
        await self._account_job()
        now = self.clock.now()
        if self._sector_error and not self.config.universe.symbols:
            self._data_unavailable("listing", self._sector_error, now)
        self._spawn(self._startup(), "nulrimok.startup")

    async def _startup(self) -> None:
        """Refresh the LRS if stale, then catch up on a DSE or precompute the start time missed."""
        now = self.clock.now()
        t = now.astimezone(KST).time()
        trading = await self._trading_day(now)
        if trading and self.p.dse_time <= t < self.p.session_end:
            await self._run_dse(now)
            return
        await self._refresh(now)
        if trading and t >= self.p.nightly_time:
            await self._run_nightly(now)

    async def on_stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.store.close()

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
        progress = self.filler.progress
        return {
            **super().status(),
            "nulrimok": {
                "day": str(e.day) if e.day else None,
                "lrs": {
                    **self.lrs_info,
                    "path": str(self.store.path),
                    "filling": progress.snapshot if progress else None,
                },
                "dse": self.dse_info,
                "tier": e.tier,
                "monitor": {
                    "active": list(e.monitor.active),
                    "overflow": len(e.monitor.overflow),
                    "cap": e.monitor.cap,
                },
                "states": e.counts(),
                "positions": {v.symbol: v.qty for v in e.positions()},
                "entries_today": e.entries_today,
                "intents": dict(self.intent_counts),
                "bar_sources": dict(self.bar_sources),
                "skipped_rules": dict(self.skipped_rules),
                "data_unavailable": dict(self.unavailable),
            },
        }

    # ================================================================== output → log + intents

    def _log(self, d: Decision) -> None:
        fields = {(f"{k}_" if k in _RESERVED else k): v for k, v in d.fields.items()}
        if d.alert:
            fields["alert"] = True
        self.decision(d.code.value, d.symbol, at=d.ts.astimezone(KST).isoformat(timespec="seconds"), **fields)

    def _note(self, code: ReasonCode, symbol: str | None = None, **fields: Any) -> None:
        self.decision(code.value, symbol, at=self.clock.now().astimezone(KST).isoformat(timespec="seconds"), **fields)

    async def _apply(self, out: Output) -> None:
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
        if out.decisions or out.actions:
            await self._sync_subscriptions()
            self._persist_positions()

    async def _send(self, a: Action) -> Output:
        kind = intent_type(a)
        try:
            reply = await self._submit(a)
        except IntentsClosed:
            self._note(ReasonCode.NULRIMOK_INTENT_ERROR, a.symbol, intent_type=kind, error="stopping: not sent")
            return Output()
        except OmsError as exc:
            self.intent_counts[f"{kind}:ERROR"] += 1
            self._note(
                ReasonCode.NULRIMOK_INTENT_ERROR, a.symbol, intent_type=kind, error=str(exc), key=a.idempotency_key
            )
            if isinstance(a, EnterAction):
                return self.engine.on_intent_result(a.symbol, self.clock.now(), kind, "REJECTED", message=str(exc))
            return Output()
        self.intent_counts[f"{kind}:{reply.status.value}"] += 1
        return self.engine.on_intent_result(
            a.symbol,
            self.clock.now(),
            kind,
            reply.status.value,
            modified_qty=reply.modified_qty,
            cooldown_until=reply.cooldown_until,
            message=f"{reply.reason_code}: {reply.message}" if reply.reason_code else reply.message,
        )

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
        if isinstance(a, ReduceAction):
            return await oms.reduce(
                a.symbol,
                a.qty,
                limit_price=a.limit_price,
                order_type="LIMIT" if a.limit_price is not None else "MARKETABLE_LIMIT",
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
                urgency=a.urgency,
                time_horizon=a.time_horizon,
            )
        if isinstance(a, CancelAction):
            return await oms.submit_intent(
                IntentType.CANCEL_ORDERS,
                a.symbol,
                urgency=Urgency.HIGH,
                time_horizon=TimeHorizon.SWING,
                risk=RiskPayload(rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
            )
        if isinstance(a, ModifyRiskAction):
            return await oms.submit_intent(
                IntentType.MODIFY_RISK,
                a.symbol,
                time_horizon=TimeHorizon.SWING,
                constraints=Constraints(expiry_ts=a.time_stop_ts),
                risk=RiskPayload(stop_px=a.stop_px if a.stop_px > 0 else None, rationale_code=a.rationale_code),
                idempotency_key=a.idempotency_key,
            )
        raise TypeError(f"unknown Nulrimok action {a!r}")

    def _persist_positions(self) -> None:
        now = self.clock.now()
        held = set(self.engine.held_symbols())
        for sym in held:
            snap = self.engine.position_snapshot(sym)
            if snap is None:
                continue
            text = json.dumps(snap, sort_keys=True, default=str)
            if self._saved_state.get(sym) != text:
                self.store.save_position_state(sym, snap["entry_ts"], snap, now)
                self._saved_state[sym] = text
        for sym in [s for s in self._saved_state if s not in held]:
            self.store.drop_position_state(sym)
            del self._saved_state[sym]

    # ================================================================== subscriptions

    async def _sync_subscriptions(self) -> None:
        if self.stopping:
            return
        now = self.clock.now()
        want = self.engine.desired_subscriptions(now)
        held = set(self.engine.held_symbols())
        current = set(self.stream.symbols)
        if want - current:
            await self.subscribe(sorted(want - current), keep=sorted(want & held))
        drop = current - want - held
        if drop:
            await self.unsubscribe(sorted(drop))
            for s in drop:
                self._stream_from.pop(s, None)

    def _track_grants(self, now: datetime) -> Output:
        granted = set(self.stream.granted)
        nxt = now.astimezone(KST).replace(second=0, microsecond=0) + _MINUTE
        for s in granted - self._granted_seen:
            self._stream_from[s] = nxt
        for s in self._granted_seen - granted:
            self._stream_from.pop(s, None)
        self._granted_seen = granted
        denied = {s: r for s, r in self.stream.denied.items() if self._reported_denied.get(s) != r}
        self._reported_denied = {s: r for s, r in self.stream.denied.items()}
        if not denied:
            return Output()
        return self.engine.on_slots(now, sorted(granted), denied)

    def _covered(self, symbol: str, start: datetime) -> bool:
        """The stream delivered every trade of ``symbol`` since ``start`` (granted, connected, no gap)."""
        since = self._stream_from.get(symbol)
        return self.stream.connected and symbol in self.stream.granted and since is not None and since <= start

    # ================================================================== LRS, DSE, nightly

    async def _trading_day(self, now: datetime) -> bool:
        day = now.astimezone(KST).date()
        if day not in self._trading:
            try:
                self._trading[day] = (await self.oms.clock()).trading_day
            except OmsError as exc:
                self.log.warning("market clock not read (%s); assuming a weekday is a session", exc)
                return day.weekday() < 5
        return self._trading[day]

    async def _refresh(self, now: datetime) -> RefreshReport:
        if self.sectors:
            as_of = self.store.sectors_as_of()
            if as_of is None or (now.date() - as_of).days >= self.config.lrs.sector_refresh_days:
                self.store.set_sectors(self.sectors, now.astimezone(KST).date())
        report = await self.filler.ensure_daily(self.listing, now)
        self.lrs_info = {**report.summary(), "at": now.isoformat(timespec="seconds")}
        self._note(ReasonCode.NULRIMOK_LRS_REFRESH, None, **report.summary())
        if not report.complete:
            self._note(ReasonCode.NULRIMOK_LRS_FAILED, None, failed=report.failed, errors=report.errors[:3])
        for source, why in report.unavailable.items():
            self._data_unavailable(source, why, now)
        return report

    def _optional_inputs(self) -> OptionalInputs:
        f = self.config.files
        inputs = load_inputs(
            self.config.file_path(f.earnings), self.config.file_path(f.blacklist), self.config.file_path(f.krw_usd)
        )
        self.skipped_rules = dict(inputs.skipped)
        for rule, why in inputs.skipped.items():
            if rule not in self._skipped_logged:
                self._skipped_logged.add(rule)
                self._note(ReasonCode.NULRIMOK_RULE_SKIPPED, None, rule=rule, reason=why)
        for problem in inputs.problems:
            self.log.warning("%s", problem)
        return inputs

    async def _dse_job(self) -> None:
        now = self.clock.now()
        if await self._trading_day(now):
            await self._run_dse(now)

    def _retry_dse(self, now: datetime) -> None:
        """No watchlist yet today (the 08:00 run failed or the start came late): try again every 5 minutes."""
        local = now.astimezone(KST)
        if self._dse_day == local.date() or self._dse_lock.locked() or local.time() >= self.p.session_end:
            return
        if self._dse_attempt is not None and (now - self._dse_attempt).total_seconds() < DSE_RETRY_SEC:
            return
        self._spawn(self._run_dse(now), "nulrimok.dse.retry")

    async def _run_dse(self, now: datetime) -> None:
        """N3–N13 for today (once a day), then hand the watchlist to the engine."""
        day = now.astimezone(KST).date()
        self._dse_attempt = now
        async with self._dse_lock:
            if self._dse_day == day or self.stopping:
                return
            try:
                sel, history = await self._select(now)
            except Exception as exc:
                self.log.exception("DSE failed")
                self._note(ReasonCode.NULRIMOK_DSE_FAILED, None, error=f"{type(exc).__name__}: {exc}")
                return
            self._dse_day = day
            self.selection = sel
            done = self.clock.now()
            path = self._write_artifact(sel)
            counts = sel.counts()
            self.dse_info = {
                "session": sel.session.isoformat(),
                "asof": sel.asof.isoformat(),
                "tier": sel.regime.tier,
                "score": sel.regime.score,
                "tradable_symbols": list(sel.tradable),
                "counts": counts,
                "artifact": str(path),
                "finished": done.isoformat(timespec="seconds"),
            }
            self._note(ReasonCode.NULRIMOK_REGIME, None, **sel.regime.to_json())
            for sym, row in sorted(sel.rows.items()):
                code = ReasonCode.NULRIMOK_TRADABLE if row.tradable else row.drop_reason
                if code is not None:
                    self._note(
                        code,
                        sym,
                        sector=row.sector,
                        flow_score=_r(row.flow_score),
                        rs_pct=_r(row.rs_pct),
                        daily_rank=_r(row.daily_rank),
                        bucket=row.bucket,
                    )
            self._note(
                ReasonCode.NULRIMOK_DSE, None, **{k: v for k, v in self.dse_info.items() if k != "counts"}, **counts
            )
            if done.astimezone(KST).time() > self.p.dse_deadline and now.astimezone(KST).time() <= self.p.dse_deadline:
                self._note(ReasonCode.NULRIMOK_DSE_LATE, None, finished=done.isoformat(timespec="seconds"))
            await self._apply(self.engine.on_selection(self.clock.now(), sel, history))

    async def _select(self, now: datetime) -> tuple[Selection, dict[str, list[Bar30]]]:
        await self._refresh(now)
        session = now.astimezone(KST).date()
        asof = self._asof(now)
        optional = self._optional_inputs()
        members = nul_data.kospi_members(self.config.universe, self.listing)
        positions = self.engine.positions()
        inputs = await asyncio.to_thread(
            build_inputs,
            self.store,
            self.listing,
            self.sectors,
            session,
            asof,
            self.p,
            optional,
            breadth_members=members,
            positions=positions,
        )
        first = select(inputs, self.p)
        need = sorted({s for s, r in first.rows.items() if r.daily_rank is not None} | set(self.engine.held_symbols()))
        sessions = self._sessions(asof)[-self.config.lrs.intraday_sessions :]
        history: dict[str, list[Bar30]] = {}
        if need and sessions:
            report = await self.filler.ensure_intraday(need, sessions)
            self.lrs_info["intraday"] = report.summary()
            if not report.complete:
                self._note(ReasonCode.NULRIMOK_LRS_FAILED, None, what="intraday", failed=report.failed)
            history = self.store.bars30_many(need, sessions)
        states = self.store.fetch_states()
        held = set(self.engine.held_symbols())
        no_intraday = frozenset(
            s
            for s in need
            if s not in held
            and sessions
            and all(getattr(states.get((s, m30_kind(d))), "rows", None) == 0 for d in sessions)
        )
        atr30m = atr30m_from_bars(history, self.p.atr30m_period)
        sel = select(replace(inputs, atr30m=atr30m, no_intraday=no_intraday), self.p)
        await asyncio.to_thread(self.store.save_selection, sel)
        return sel, history

    def _asof(self, now: datetime) -> date:
        """The last completed session the data knows (a weekday holiday is not one)."""
        target = last_complete_session(now)
        days = self._sessions(target)
        return days[-1] if days else target

    def _sessions(self, end: date) -> list[date]:
        """Session dates the LRS knows up to ``end``: the regime index's, else the first listed symbol's."""
        days = self.store.sessions(self.p.regime_index, end)
        for sym in self.listing[:5]:
            if days:
                break
            days = self.store.sessions(sym, end)
        return days

    def _write_artifact(self, sel: Selection) -> Path:
        folder = self.data_dir / WATCHLIST_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sel.session.isoformat()}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(sel.to_json(), indent=1, default=str), encoding="utf-8")
        tmp.replace(path)
        return path

    async def _nightly_job(self) -> None:
        now = self.clock.now()
        if await self._trading_day(now):
            await self._run_nightly(now)

    async def _run_nightly(self, now: datetime) -> None:
        """N2 after the close: today's rows into the LRS, then features/regime/sectors/ranks stored."""
        day = now.astimezone(KST).date()
        if self._nightly_day == day or self.stopping:
            return
        async with self._dse_lock:
            report = await self._refresh(now)
            if not report.complete and report.done == 0 and report.units:
                return
            optional = self._optional_inputs()
            asof = self._asof(now)
            try:
                sel = await asyncio.to_thread(
                    precompute,
                    self.store,
                    self.listing,
                    self.sectors,
                    asof,
                    self.p,
                    optional,
                    breadth_members=nul_data.kospi_members(self.config.universe, self.listing),
                    positions=self.engine.positions(),
                )
            except Exception as exc:
                self.log.exception("precompute failed")
                self._note(
                    ReasonCode.NULRIMOK_DSE_FAILED, None, what="precompute", error=f"{type(exc).__name__}: {exc}"
                )
                return
            self._nightly_day = day
            self._note(
                ReasonCode.NULRIMOK_PRECOMPUTE,
                None,
                asof=asof.isoformat(),
                preview_session=sel.session.isoformat(),
                tier=sel.regime.tier,
                **sel.counts(),
            )

    def _data_unavailable(self, source: str, why: str, now: datetime) -> None:
        if self.unavailable.get(source) == why:
            return
        self.unavailable[source] = why
        self._note(ReasonCode.NULRIMOK_DATA_UNAVAILABLE, None, source=source, reason=why)

    # ================================================================== intraday jobs

    async def _clock_job(self) -> None:
        now = self.clock.now()
        if not await self._trading_day(now):
            return
        self._retry_dse(now)
        out = self._track_grants(now)
        out.extend(self.engine.on_clock(now))
        await self._apply(out)

    async def _account_job(self) -> None:
        now = self.clock.now()
        try:
            acct = await self.oms.account()
        except OmsError as exc:
            self.log.warning("account poll failed: %s", exc)
            return
        await self._apply(self.engine.on_account(now, acct.equity))

    async def _poll_job(self) -> None:
        now = self.clock.now()
        if not await self._trading_day(now):
            return
        out = Output()
        for sym in self.engine.held_symbols():
            seen = self._last_trade.get(sym)
            if seen is not None and (now - seen).total_seconds() < self.p.price_poll_sec:
                continue
            try:
                q = await nul_data.quote(self.oms, sym)
            except OmsError as exc:
                self.log.debug("quote %s failed: %s", sym, exc)
                continue
            if q.last:
                out.extend(self.engine.on_price(sym, q.last, self.clock.now()))
        await self._apply(out)

    async def _bars_job(self) -> None:
        """Build every completed 30m bar of today not yet given to the engine, for ``bar_symbols``."""
        now = self.clock.now()
        if not await self._trading_day(now):
            return
        day = now.astimezone(KST).date()
        if self._fed_day != day:
            self._fed_day, self._fed = day, {}
        sem = asyncio.Semaphore(4)
        results: dict[str, list[Bar30]] = {}
        out = Output()

        async def one(sym: str) -> None:
            async with sem:
                fed = self._fed.setdefault(sym, set())
                got: list[Bar30] = []
                for start in bar_starts(day):
                    if start in fed or bar_end(start) > now:
                        continue
                    bar = await self._bar30(sym, start, now, out)
                    fed.add(start)
                    if bar is not None:
                        got.append(bar)
                results[sym] = got

        await asyncio.gather(*(one(s) for s in self.engine.bar_symbols(now)))
        for sym in sorted(results):
            for bar in results[sym]:
                out.extend(self.engine.on_bar30(sym, bar, self.clock.now()))
        await self._apply(out)

    async def _bar30(self, sym: str, start: datetime, now: datetime, out: Output) -> Bar30 | None:
        if self._covered(sym, start):
            self.bar_sources["stream"] += 1
            return nul_data.stream_bar30(sym, self.book.window(sym, start, bar_end(start)))
        try:
            bar = await nul_data.rest_bar30(self.oms, sym, start)
        except OmsError as exc:
            self.bar_sources["skipped"] += 1
            out.extend(self.engine.note_skipped_bar(sym, start, now, str(exc)[:200]))
            return None
        self.bar_sources["rest"] += 1
        return bar

    # ================================================================== stream hooks

    async def on_trade(self, event: dict[str, Any]) -> None:
        sym = event["symbol"]
        ts = _ts(event.get("ts")) or self.clock.now()
        self._last_trade[sym] = self.clock.now()
        await self._apply(self.engine.on_price(sym, float(event["price"]), ts))

    async def on_bar(self, bar: Bar) -> None:
        self.book.add(bar.symbol, bar)
        if bar.partial:
            gap_end = bar.start.astimezone(KST) + _MINUTE
            if self._stream_from.get(bar.symbol, gap_end) < gap_end:
                self._stream_from[bar.symbol] = gap_end

    async def on_order(self, event: dict[str, Any]) -> None:
        side = str(event.get("side", "")).upper()
        state = str(event.get("state", "")).upper()
        if state not in TERMINAL_ORDER_STATES:
            return
        if side in _BUY:
            filled = int(event.get("filled_qty") or 0)
            await self._apply(self.engine.on_order_closed(event["symbol"], self.clock.now(), filled))
        else:
            await self._apply(self.engine.on_exit_order_closed(event["symbol"], self.clock.now(), state))

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
            self.engine.on_fill(event["symbol"], str(event["side"]), int(event["qty"]), float(event["price"]), ts)
        )
        return True

    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "evicted":
            symbols = [s for s in event.get("symbols", []) if isinstance(s, str)]
            for s in symbols:
                self._stream_from.pop(s, None)
            held = set(self.engine.held_symbols())
            await self.unsubscribe([s for s in symbols if s not in held])
            reason = f"EVICTED:{event.get('reason', '')}"
            await self._apply(self.engine.on_slots(self.clock.now(), [], {s: reason for s in symbols}))

    async def on_recover(self) -> None:
        """Adopt Nulrimok allocations (start, stream connections); after a connection replay missed fills first."""
        now = self.clock.now()
        if self.stream.connects > 1:
            nxt = now.astimezone(KST).replace(second=0, microsecond=0) + _MINUTE
            self._stream_from = {s: max(v, nxt) for s, v in self._stream_from.items()}
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
            out.extend(self._recover_one(sym, a.qty, avg, a.soft_stop_px, a.entry_ts, now))
        out.extend(self.engine.sync_allocations(now, {s: a.qty for s, a in self.allocations.items()}, replayed))
        await self._apply(out)

    def _recover_one(
        self, sym: str, qty: int, avg: float, stop_px: float | None, entry_ts: datetime | None, now: datetime
    ) -> Output:
        today = now.astimezone(KST).date()
        entry_day = (entry_ts or now).astimezone(KST).date()
        sessions = self._sessions(today)
        before = [r for r in self.store.daily(sym, None, entry_day - timedelta(days=1))][-self.p.swing_high_sessions :]
        feats: dict[str, Any] = {}
        asof = self.store.get_meta("precomputed_asof")
        if asof:
            f = self.store.load_features(date.fromisoformat(asof)).get(sym)
            if f is not None:
                feats = {"avwap_ref": f.avwap_ref, "atr30m": f.atr30m_est}
        saved = self.store.load_position_state(sym)
        return self.engine.on_position_recovered(
            sym,
            qty,
            avg,
            now,
            stop_px=stop_px,
            entry_ts=entry_ts,
            sector=self.sectors.get(sym),
            sessions_after=sessions_between(sessions, entry_day, today) if sessions else None,
            swing_high=max((r.high for r in before), default=None),
            snapshot=saved[1] if saved else None,
            **feats,
        )


def _r(v: float | None, nd: int = 4) -> float | None:
    return round(v, nd) if v is not None else None


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
