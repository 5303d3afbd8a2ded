"""swing-ML as a strategy process (``trader strategy swing_ml``): the §5.1 jobs on the shared clock, in New
York time, through the account's OMS.

==============  ===========================================================================================
job             what (times from ``config.schedule``, America/New_York; a job outside a session does nothing)
==============  ===========================================================================================
``decide``      every 15 min 09:45–15:45: holdings from the OMS allocations, regime, model probabilities,
                synthesizer (S3), sizing (S4), then the shared submission path. The first decide without a
                model trains one (bootstrap retrain); a model whose feature list differs from the code's is
                refused (``SWING_MODEL_FEATURE_MISMATCH``) and replaced the same way.
``risk_check``  every 5 min 09:35–15:55: S6 take profit / stop / trail per held allocation (peak since the
                allocation's ``entry_ts`` from daily bars and the last price; ATR14 passed in with
                ``atr_dynamic``), exits through the same path.
``regime``      daily 09:00 on trading days: S3.2 HMM + sector strength (decide computes it itself when it
                runs first); retrains a model older than 8 days (a missed weekly retrain).
``retrain``     weekly (Sunday 12:00): S5 — fit, validate, save ``<models_dir>/<UTC timestamp>/``, promote.
==============  ===========================================================================================

Data. Daily bars of the universe, SPY and the sector ETFs come from the OMS proxy (completed sessions
before today), one request per symbol per New York day, kept in memory for the day; every decide of the day
reuses them (the factors, the regime and so the model's probabilities change once a day — only prices and
holdings change intraday). The rows are read through ``OmsClient.request`` on the proxy's daily path rather
than ``OmsClient.daily``: the SDK's ``Bar`` drops the row's ``adj_close``, which the factors need (a split
would otherwise read as a crash). Without ``adj_close`` (Alpaca's raw bars) the close is used. A symbol
with fewer than 120 sessions, without bars, or whose factor row is all NaN is skipped with a reason code.

Submission (S8). decide and risk_check send through one path, :func:`~strategies.swing_ml.orders.dispatch_async`,
under one per-symbol :class:`asyncio.Lock`: before a SELL the allocation and the working orders are read
again from the OMS (:func:`~strategies.swing_ml.risk.exit_gate`) and a sell already working or an
allocation of 0 is logged ``DUPLICATE_SUPPRESSED``; exits are keyed ``SWING_ML:<symbol>:EXIT:<entry_ts>``
so a second exit of the same holding is a no-op at the OMS anyway. ``dry_run`` logs every intent in full
(``SWING_DRY_RUN``) and sends nothing; the mode is in every decision line. A DEFERRED intent is sent again,
with the same key, by the next run that still decides it.

State: ``state.json`` (last retrain, last regime) under ``STRATEGY_DATA_DIR`` (default ``var/swing_ml``);
the models under ``SWING_ML_MODELS_DIR`` (a container's volume) or ``model.models_dir`` — a relative path is
under the project root — as ``trader swing-ml train`` writes them, so a model trained there is the one the
process loads. Holdings,
entry times and cost bases always come from the OMS, never from memory, so a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote as urlquote

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from broker_core.clock import NEW_YORK, Clock
from broker_core.markets import us
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import OmsError, OmsNotFound, SdkError
from strategies.sdk.models import Allocation, body_of
from strategies.sdk.scheduler import Scheduler
from strategies.sdk.strategy import Strategy
from strategies.swing_ml.config import Mode, SwingMlConfig, models_path
from strategies.swing_ml.data import Panel
from strategies.swing_ml.factors import atr, feature_matrix
from strategies.swing_ml.model import (
    FeatureMismatchError,
    LoadedModel,
    ModelError,
    RetrainReport,
    current_version,
    load_current,
    promotion_allowed,
    retrain,
    set_current,
)
from strategies.swing_ml.orders import (
    DispatchOutcome,
    SwingOrder,
    build_orders,
    dispatch_async,
    exit_order,
    intent_arguments,
)
from strategies.swing_ml.reasons import Code, Reason
from strategies.swing_ml.regime import RegimeReading, regime_on
from strategies.swing_ml.risk import ExitGate, check_exit, exit_gate, exit_levels, peak_since_entry
from strategies.swing_ml.synthesizer import Decision, Holding, Side
from strategies.swing_ml.synthesizer import decide as synthesize
from strategies.swing_ml.universe import liquid_universe

CONFIG_MODEL = SwingMlConfig
MIN_HISTORY_SESSIONS = 120
"""A symbol with fewer completed sessions is skipped (``SWING_SKIP_HISTORY``): its 120-day return is undefined."""
MAX_DAILY_DAYS = 3650
"""The OMS serves at most ~10 years of daily rows per request."""
OVERDUE_AFTER = timedelta(minutes=5)
"""A decide not started this long after its fire time is overdue: the heartbeat says so, the OMS /health degrades."""
STALE_MODEL_AFTER = timedelta(days=8)
"""The regime job retrains a model older than this (the weekly retrain was missed)."""
FETCH_CONCURRENCY = 4
JOBS = ("decide", "risk_check", "regime", "retrain")
T = TypeVar("T")


class DataUnavailable(RuntimeError):
    """The benchmark's daily bars are missing: neither factors nor regime can be computed."""


def build(config: SwingMlConfig, oms_client: OmsClient, clock: Clock) -> SwingMlStrategy:
    """The runner's entry point (``trader strategy swing_ml``)."""
    data_dir = Path(os.environ.get("STRATEGY_DATA_DIR") or "var/swing_ml")
    return SwingMlStrategy(config, oms_client, clock, data_dir=data_dir)


@dataclass
class JobRecord:
    last_run: datetime | None = None
    """When the last run started (clock time)."""
    outcome: str | None = None
    failed_day: date | None = None
    """New York day of the last run when it failed; None after a run that did not."""
    errors_day: date | None = None
    errors: int = 0


@dataclass(frozen=True)
class DayData:
    """The completed sessions before ``day`` as the decide pipeline reads them."""

    day: date
    panel: Panel
    bars: dict[str, pd.DataFrame]
    """Traded (raw) daily OHLC per symbol, index = session date: peaks, ATR14, last close."""
    eligible: list[str]
    """Universe symbols with ≥ 120 sessions."""
    skipped: dict[str, tuple[Code, dict[str, Any]]] = field(default_factory=dict)


def _limited(fn: Callable[..., T], *args: Any) -> T:
    # one BLAS/OpenMP thread: on a small shared machine the default pool oversubscribes the cores and a
    # retrain of the 97-name universe took 45-60 s instead of ~6 s
    with threadpool_limits(limits=1):
        return fn(*args)


async def _cpu(fn: Callable[..., T], *args: Any) -> T:
    """CPU work (factors, HMM, fitting) off the event loop: heartbeats and risk_check keep running."""
    return await asyncio.to_thread(_limited, fn, *args)


def _no_result(job: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[None]]:
    """A job for the scheduler (which wants no result) from one that returns its outcome."""

    async def run() -> None:
        await job()

    return run


def _after(t: time, seconds: int = 1) -> time:
    return (datetime.combine(date(2000, 1, 1), t) + timedelta(seconds=seconds)).time()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if np.isfinite(v) and v > 0 else None


def bars_frame(data: Any, before: date) -> pd.DataFrame:
    """Daily rows of the OMS proxy (``{"bars": [...]}`` or a list) → frame indexed by session date (naive),
    columns open/high/low/close/adj_close/volume, only dates before ``before``."""
    rows = data.get("bars", []) if isinstance(data, dict) else list(data or [])
    cols = ["open", "high", "low", "close", "adj_close", "volume"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.DatetimeIndex([], name="date"), dtype=float)
    df = pd.DataFrame(rows)
    stamp = next(c for c in ("ts", "start", "timestamp", "date") if c in df.columns)
    ts = pd.to_datetime(df[stamp], utc=True).dt.tz_convert(NEW_YORK)
    df["date"] = pd.to_datetime(ts.dt.date)
    if "adj_close" not in df.columns:
        df["adj_close"] = df["close"]
    df["adj_close"] = df["adj_close"].fillna(df["close"])
    if "volume" not in df.columns:
        df["volume"] = 0.0
    out = df.set_index("date")[cols].astype(float).sort_index()
    out = out[~out.index.duplicated(keep="last")]
    return out[out.index < pd.Timestamp(before)]


def _panel(frames: Mapping[str, pd.DataFrame]) -> Panel:
    parts = [f.assign(symbol=s).reset_index(names="date") for s, f in frames.items() if len(f)]
    return Panel.from_long(pd.concat(parts, ignore_index=True))


def atr14(bars: pd.DataFrame | None, period: int = 14) -> float | None:
    """Wilder ATR of the traded daily bars (the last value), or None without enough history."""
    if bars is None or len(bars) < period + 1:
        return None
    value = atr(bars["high"], bars["low"], bars["close"], period).iloc[-1]
    return float(value) if pd.notna(value) and value > 0 else None


def retrain_slot(local: datetime, weekday: int, at: time) -> datetime:
    """The latest weekly retrain instant (``weekday`` at ``at``, New York) at or before ``local``."""
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    slot = datetime.combine(day, at, NEW_YORK)
    return slot if slot <= local else slot - timedelta(days=7)


class SwingMlStrategy(Strategy):
    def __init__(self, config: SwingMlConfig, oms: OmsClient, clock: Clock, *, data_dir: Path) -> None:
        super().__init__(oms.strategy_id, oms, clock)
        self.scheduler = Scheduler(clock, tz=NEW_YORK)  # §5.1: the jobs run in New York time
        self.config = config
        self.data_dir = data_dir
        self.models_dir = models_path(config)  # as `trader swing-ml` reads it
        self.state_path = data_dir / "state.json"
        self.model: LoadedModel | None = None
        self.regime: RegimeReading | None = None
        self.regime_day: date | None = None
        self.jobs: dict[str, JobRecord] = {name: JobRecord() for name in JOBS}
        self.deferred: dict[tuple[str, str], tuple[str, date]] = {}
        """(symbol, intent type) → (idempotency key, day) of an intent the OMS deferred: the next run that
        decides the same intent sends it with this key."""
        self.started_at: datetime | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._bars: dict[str, tuple[date, pd.DataFrame]] = {}
        self._fetch_locks: dict[str, asyncio.Lock] = {}
        self._fetch_slots = asyncio.Semaphore(FETCH_CONCURRENCY)
        self._day_data: DayData | None = None
        self._data_lock = asyncio.Lock()
        self._retrain_lock = asyncio.Lock()
        self._scores: tuple[tuple[date, str], dict[str, float]] | None = None
        self._bootstrap_day: date | None = None
        self._state = self._load_state()

    # ---- lifecycle ------------------------------------------------------------------------------
    async def on_start(self) -> None:
        self.started_at = self.clock.now()
        self._try_load_model()
        s = self.config.schedule
        self.decision(
            Code.SWING_START,
            models_dir=str(self.models_dir),
            universe=len(self.config.universe.symbols),
            model_version=self.model.version if self.model else None,
        )
        self.scheduler.every(
            s.decide_every_min * 60,
            _no_result(self.decide_job),
            "swing_ml.decide",
            start=s.decide_start,
            end=_after(s.decide_end),
        )
        self.scheduler.every(
            s.risk_check_every_min * 60,
            _no_result(self.risk_check_job),
            "swing_ml.risk_check",
            start=s.risk_check_start,
            end=_after(s.risk_check_end),
        )
        self.scheduler.at(s.regime_at, _no_result(self.regime_job), "swing_ml.regime")
        self.scheduler.at(s.retrain_at, _no_result(self.retrain_job), "swing_ml.retrain")

    def decision(self, code: str, symbol: str | None = None, **fields: Any) -> None:
        """Every decision line carries the mode (S1)."""
        mode = fields.pop("mode", str(self.config.mode))
        super().decision(str(code), symbol, mode=mode, **fields)

    # ---- health and status ----------------------------------------------------------------------
    def health_issue(self, now: datetime) -> str | None:
        """What the OMS's /health should report about swing-ML now (None: nothing wrong): a job whose last
        run today failed, or a decide overdue by its own schedule."""
        local = now.astimezone(NEW_YORK)
        for name in JOBS:
            if self.jobs[name].failed_day == local.date():
                return f"{name}_failed"
        due = self._last_decide_due(local)
        if due is None:
            return None
        last = self.jobs["decide"].last_run
        baseline = max((t for t in (last, self.started_at) if t is not None), default=None)
        return "decide_overdue" if baseline is None or baseline < due else None

    def _last_decide_due(self, local: datetime) -> datetime | None:
        """The latest decide fire time at least OVERDUE_AFTER ago, today, while the session is open."""
        session = us.session(local)
        if session is None or local >= session.close:
            return None
        s = self.config.schedule
        first = datetime.combine(session.day, s.decide_start, NEW_YORK)
        last = min(datetime.combine(session.day, s.decide_end, NEW_YORK), session.close - timedelta(microseconds=1))
        ref = min(local - OVERDUE_AFTER, last)
        if ref < first:
            return None
        step = timedelta(minutes=s.decide_every_min)
        return first + ((ref - first) // step) * step

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        issue = self.health_issue(now)
        today = now.astimezone(NEW_YORK).date()
        return {
            **super().status(),
            **({"health_issue": issue} if issue else {}),
            "errors_today": sum(r.errors for r in self.jobs.values() if r.errors_day == today),
            "swing_ml": {
                "mode": str(self.config.mode),
                "model_version": self.model.version if self.model else None,
                "regime": str(self.regime.regime) if self.regime else None,
                "jobs": {
                    name: {"last_run": r.last_run.isoformat() if r.last_run else None, "outcome": r.outcome}
                    for name, r in self.jobs.items()
                },
            },
        }

    # ---- jobs -----------------------------------------------------------------------------------
    async def decide_job(self) -> str:
        return await self._job("decide", self._decide)

    async def risk_check_job(self) -> str:
        return await self._job("risk_check", self._risk_check)

    async def regime_job(self) -> str:
        return await self._job("regime", self._regime_run)

    async def retrain_job(self) -> str:
        return await self._job("retrain", self._weekly_retrain)

    async def _job(self, name: str, run: Callable[[datetime], Any]) -> str:
        """Run one job, record its outcome; a failure is logged and reported by :meth:`health_issue`."""
        if self.stopping:
            return "stopping"
        now = self.clock.now()
        record = self.jobs[name]
        record.last_run = now
        day = now.astimezone(NEW_YORK).date()
        try:
            outcome = str(await run(now))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("job %s failed", name)
            if record.errors_day != day:
                record.errors_day, record.errors = day, 0
            record.errors += 1
            record.failed_day = day
            record.outcome = f"failed: {type(exc).__name__}: {exc}"[:300]
            return record.outcome
        record.failed_day = None
        record.outcome = outcome
        return outcome

    async def _decide(self, now: datetime) -> str:
        """S3: one decide run (see the module doc)."""
        local = now.astimezone(NEW_YORK)
        session = us.session(local)
        if session is None or not session.open <= local < session.close:
            return "no session"
        cfg = self.config
        # S3 step 1: holdings first. Whatever changes while the rest runs is caught where it matters: the exit
        # gate re-reads the OMS before a SELL, and the OMS refuses an ENTER of a symbol held or being bought.
        # Working orders before the allocations: a fill ends the working buy and raises the allocation in one OMS
        # step, so a buy that fills between the two reads is seen pending or held. (The other way round it showed
        # neither, and the synthesizer counted one position too few against max_positions.)
        working = await self.oms.orders(open_only=True)
        holdings = self._holdings(await self.oms.allocations(), "decide")
        pending = {o.symbol for o in working if o.is_open and o.side.upper() == "BUY"}
        data = await self.day_data(session.day)
        reading = await self._regime_for(data, strict=False)
        model = await self._ensure_model(now)
        probs = await self._probabilities(data, model) if model is not None else {}
        result = synthesize(probs, reading.regime if reading else None, holdings, local, cfg.decide, pending=pending)
        if reading is None:  # no regime today: no BUY (the synthesizer would read "not RISK_OFF")
            for d in result.orders:
                if d.side is Side.BUY:
                    self.decision(Code.SWING_SKIP_NO_REGIME, d.symbol, job="decide", proba=d.proba, score=d.score)
            result = replace(result, orders=[d for d in result.orders if d.side is not Side.BUY])
        prices: dict[str, float] = {}
        for d in result.orders:
            price = await self._ref_price(d.symbol, d.side is Side.BUY, session.day)
            if price is not None:
                prices[d.symbol] = price
        nav = float((await self.oms.account()).equity) if any(d.side is Side.BUY for d in result.orders) else 0.0
        orders, skipped = build_orders(result, holdings, nav, prices, local, cfg)
        for d in skipped:
            self._log_decision(d, "decide")
        decided = {(o.symbol, o.intent_type) for o in orders}
        for (symbol, kind), (key, _) in list(self.deferred.items()):
            if kind == "ENTER" and (symbol, kind) not in decided:
                del self.deferred[(symbol, kind)]
                self.decision(Code.SWING_DEFERRED_DROPPED, symbol, key=key, job="decide", why="no longer decided")
        outcomes = await self.submit(orders, "decide", local)
        return (
            f"ok: {_count(outcomes)}; model={model.version if model else None}; "
            f"regime={reading.regime if reading else None}"
        )

    async def _risk_check(self, now: datetime) -> str:
        """S6 for every held allocation; hits go through the shared submission path."""
        local = now.astimezone(NEW_YORK)
        session = us.session(local)
        if session is None or not session.open <= local < session.close:
            return "no session"
        risk = self.config.risk
        holdings = self._holdings(await self.oms.allocations(), "risk_check")
        orders: list[SwingOrder] = []
        for symbol, holding in sorted(holdings.items()):
            bars = await self.symbol_bars(symbol, session.day)
            quote = await self._quote(symbol)
            last = _number(quote.get("last")) or _last_close(bars)
            if last is None:
                self.decision(Code.SWING_SKIP_NO_PRICE, symbol, job="risk_check")
                continue
            peak = peak_since_entry(holding.entry_ts, holding.cost_basis, bars, last)
            atr = atr14(bars, risk.atr_period) if risk.atr_dynamic else None
            if risk.atr_dynamic and atr is None:
                self.decision(Code.SWING_SKIP_NO_ATR, symbol, job="risk_check")
                continue
            check = check_exit(holding.cost_basis, last, risk, peak, atr)
            if check.sell and check.reason is not None:
                ref = _number(quote.get("bid")) or last
                detail = {**check.fields(), "atr14": atr}
                detail.pop("reason", None)
                orders.append(exit_order(holding, ref, check.reason, self.config, detail))
        outcomes = await self.submit(orders, "risk_check", local)
        return f"ok: {len(holdings)} held; {_count(outcomes)}"

    async def _regime_run(self, now: datetime) -> str:
        local = now.astimezone(NEW_YORK)
        if us.session(local) is None:
            return "no session"
        data = await self.day_data(local.date())
        reading = await self._regime_for(data, strict=True)
        assert reading is not None
        if self._model_stale(now):
            await self.retrain_model(now, "stale")
        return f"ok: {reading.regime}"

    async def _weekly_retrain(self, now: datetime) -> str:
        """Due when the model predates this week's retrain slot: a fire held over a gap (a sim's weekend, a
        process down on Sunday) still retrains when it runs, and a second fire in the same week does not."""
        sched = self.config.schedule
        slot = retrain_slot(now.astimezone(NEW_YORK), sched.retrain_weekday, sched.retrain_at)
        if self.model is not None and self._model_created() >= slot:
            return f"retrained since {slot:%Y-%m-%d %H:%M}"
        report = await self.retrain_model(now, "weekly")
        return f"ok: {report.metadata.version} {'promoted' if report.promotion.promoted else 'not promoted'}"

    # ---- the one submission path (S8) -----------------------------------------------------------
    def _lock(self, symbol: str) -> asyncio.Lock:
        lock = self._locks.get(symbol)
        if lock is None:
            lock = self._locks[symbol] = asyncio.Lock()
        return lock

    async def submit(self, orders: list[SwingOrder], job: str, now: datetime) -> list[DispatchOutcome]:
        """decide's and risk_check's one way to the OMS: :func:`dispatch_async` under the per-symbol lock,
        the exit gate re-reading the OMS before every SELL, deferred intents re-sent under their key."""
        if not orders:
            return []
        local = now.astimezone(NEW_YORK)
        session = us.session(local)
        close = session.close if session is not None else local
        cancel_after = max(60.0, (close - local).total_seconds())  # a day order: working until the close
        orders = [self._with_deferred_key(o, local.date()) for o in orders]
        by_key = {o.idempotency_key: o for o in orders}

        async def gate(order: SwingOrder) -> ExitGate:
            # Orders first, then the allocation: a fill ends the working sell and lowers the allocation in one
            # OMS step, so a sell that fills between the two reads is seen either working or in the allocation.
            # (The other way round, a fill between them showed neither, and a second EXIT was sent.)
            working = await self.oms.orders(open_only=True, symbol=order.symbol)
            allocation = (await self.oms.allocations()).get(order.symbol)
            sell_working = any(o.is_open and o.side.upper() == "SELL" for o in working)
            return exit_gate(allocation.qty if allocation is not None else 0, sell_working)

        async def send(order: SwingOrder) -> dict[str, Any]:
            try:
                reply = await self.oms.submit_intent(**self.intent_arguments(order, cancel_after))
            except SdkError as exc:
                return {"status": "ERROR", "error": f"{type(exc).__name__}: {exc}"[:300]}
            slot = (order.symbol, order.intent_type)
            if reply.status == "DEFERRED":
                self.deferred[slot] = (order.idempotency_key, local.date())
            else:
                self.deferred.pop(slot, None)
            return {
                "status": str(reply.status),
                "reason_code": reply.reason_code,
                "intent_id": reply.intent_id,
                "order_id": reply.order_id,
                "modified_qty": reply.modified_qty,
                "cooldown_until": reply.cooldown_until.isoformat() if reply.cooldown_until else None,
            }

        def log(record: dict[str, Any]) -> None:
            self._log_dispatch(record, job, by_key, cancel_after)

        return await dispatch_async(orders, self.config.mode, send, log, gate, self._lock)

    def _with_deferred_key(self, order: SwingOrder, today: date) -> SwingOrder:
        slot = (order.symbol, order.intent_type)
        deferred = self.deferred.get(slot)
        if deferred is None:
            return order
        key, day = deferred
        if day != today:
            del self.deferred[slot]
            return order
        return order if key == order.idempotency_key else replace(order, idempotency_key=key)

    def intent_arguments(self, order: SwingOrder, cancel_after_sec: float) -> dict[str, Any]:
        """``submit_intent`` arguments (ENTER with its initial stop, EXIT of the whole allocation)."""
        stop_px: float | None = None
        if order.side is Side.BUY:
            cached = self._bars.get(order.symbol)
            atr = atr14(cached[1], self.config.risk.atr_period) if cached else None
            if not self.config.risk.atr_dynamic or atr is not None:
                stop_px = round(exit_levels(order.limit_price, order.limit_price, self.config.risk, atr).stop, 2)
        return intent_arguments(order, cancel_after_sec=round(cancel_after_sec), stop_px=stop_px)

    def intent_body(self, order: SwingOrder, cancel_after_sec: float) -> dict[str, Any]:
        """The JSON the OMS would receive for ``order`` (dry_run logs it in full)."""
        args = self.intent_arguments(order, cancel_after_sec)
        body: dict[str, Any] = {
            "intent_type": args["intent_type"],
            "strategy_id": self.strategy_id,
            "symbol": args["symbol"],
            "urgency": str(args["urgency"]),
            "time_horizon": str(args["time_horizon"]),
            "constraints": body_of(args["constraints"]),
            "risk_payload": body_of(args["risk"]),
            "idempotency_key": args["idempotency_key"],
        }
        if args["qty"] is not None:
            body["desired_qty"] = args["qty"]
        return body

    def _log_dispatch(
        self, record: dict[str, Any], job: str, by_key: Mapping[str, SwingOrder], cancel_after: float
    ) -> None:
        fields = dict(record)
        event = str(fields.pop("event"))
        symbol = str(fields.pop("symbol"))
        fields.pop("strategy_id", None)
        if event == "SENT":
            reply = fields.pop("reply") or {}
            code = str(fields["rationale_code"])
            if reply.get("status") == "ERROR":
                code = Code.SWING_INTENT_FAILED
            self.decision(code, symbol, job=job, sent=True, **{f"oms_{k}": v for k, v in reply.items()}, **fields)
        elif event == Reason.SWING_DRY_RUN:
            order = by_key[str(fields["idempotency_key"])]
            self.decision(event, symbol, job=job, intent=self.intent_body(order, cancel_after), **fields)
        else:
            self.decision(event, symbol, job=job, **fields)

    def _log_decision(self, d: Decision, job: str) -> None:
        fields: dict[str, Any] = dict(d.fields())
        fields.pop("symbol", None)
        fields.pop("reason", None)
        self.decision(d.reason, d.symbol, job=job, **fields)

    # ---- holdings and prices --------------------------------------------------------------------
    def _holdings(self, allocations: Mapping[str, Allocation], job: str) -> dict[str, Holding]:
        """SWING_ML allocations with qty > 0 as holdings (cost basis = the allocation's average fill)."""
        out: dict[str, Holding] = {}
        for symbol, a in allocations.items():
            if a.qty <= 0:
                continue
            if a.entry_ts is None:
                self.decision(Code.SWING_SKIP_NO_ENTRY_TS, symbol, job=job, qty=a.qty)
                continue
            fill = a.cost_basis if a.cost_basis > 0 else (a.entry_px or 0.0)
            if fill <= 0:
                self.decision(Code.SWING_SKIP_NO_PRICE, symbol, job=job, qty=a.qty, why="no cost basis")
                continue
            out[symbol] = Holding(symbol, a.qty, fill, a.entry_ts)
        return out

    async def _quote(self, symbol: str) -> dict[str, Any]:
        try:
            return await self.oms.quote(symbol)
        except OmsError as exc:
            self.log.warning("quote of %s unavailable (%s); using the last close", symbol, exc)
            return {}

    async def _ref_price(self, symbol: str, buy: bool, today: date) -> float | None:
        """C6's reference: ask (buy) / bid (sell), else last, else the last completed close."""
        quote = await self._quote(symbol)
        for name in ("ask", "last") if buy else ("bid", "last"):
            value = _number(quote.get(name))
            if value is not None:
                return value
        return _last_close(await self.symbol_bars(symbol, today))

    # ---- data ----------------------------------------------------------------------------------
    def _history_days(self, symbol: str) -> int:
        cfg = self.config
        if symbol == cfg.regime.benchmark:  # the HMM's lookback (≈10 years)
            return min(MAX_DAILY_DAYS, int(cfg.regime.hmm_lookback_sessions * 365 / 252) + 30)
        return min(MAX_DAILY_DAYS, int(cfg.model.train_months * 31) + 400)  # window + factor warm-up

    async def symbol_bars(self, symbol: str, today: date) -> pd.DataFrame | None:
        """The completed daily bars of ``symbol`` before ``today``: one OMS request per symbol per day.
        None when the OMS has none (404, cached for the day) or cannot answer now (not cached)."""
        hit = self._bars.get(symbol)
        if hit is not None and hit[0] == today:
            return hit[1]
        lock = self._fetch_locks.setdefault(symbol, asyncio.Lock())
        async with lock:
            hit = self._bars.get(symbol)
            if hit is not None and hit[0] == today:
                return hit[1]
            start = today - timedelta(days=self._history_days(symbol))
            params = {"start": start.isoformat(), "end": (today - timedelta(days=1)).isoformat()}
            path = f"/api/v1/marketdata/daily/{urlquote(symbol, safe='')}"
            try:
                async with self._fetch_slots:
                    frame = bars_frame(await self.oms.request("GET", path, params=params), today)
            except OmsNotFound as exc:
                self.log.warning("no daily bars of %s: %s", symbol, exc)
                frame = bars_frame([], today)
            except OmsError as exc:
                self.log.warning("daily bars of %s unavailable now: %s", symbol, exc)
                return None
            self._bars[symbol] = (today, frame)
            return frame

    async def day_data(self, today: date) -> DayData:
        """Panel of the universe, the benchmark and the sector ETFs for ``today`` (built once a day)."""
        async with self._data_lock:
            if self._day_data is not None and self._day_data.day == today:
                return self._day_data
            cfg = self.config
            universe = list(dict.fromkeys(cfg.universe.symbols))
            wanted = list(dict.fromkeys([cfg.regime.benchmark, *cfg.regime.sector_etfs, *universe]))
            frames = await asyncio.gather(*(self.symbol_bars(s, today) for s in wanted))
            bars = {s: f for s, f in zip(wanted, frames, strict=True) if f is not None and len(f)}
            if cfg.regime.benchmark not in bars:
                raise DataUnavailable(f"no daily bars of the benchmark {cfg.regime.benchmark} before {today}")
            skipped: dict[str, tuple[Code, dict[str, Any]]] = {}
            eligible: list[str] = []
            for symbol in universe:
                frame = bars.get(symbol)
                sessions = int(frame["adj_close"].notna().sum()) if frame is not None else 0
                if frame is None:
                    skipped[symbol] = (Code.SWING_SKIP_NO_DATA, {})
                elif sessions < MIN_HISTORY_SESSIONS:
                    skipped[symbol] = (Code.SWING_SKIP_HISTORY, {"sessions": sessions, "min": MIN_HISTORY_SESSIONS})
                else:
                    eligible.append(symbol)
            panel = await _cpu(_panel, bars)
            data = DayData(today, panel, bars, eligible, skipped)
            for symbol, (code, fields) in skipped.items():
                self.decision(code, symbol, day=str(today), **fields)
            self._day_data = data
            return data

    # ---- regime --------------------------------------------------------------------------------
    async def _regime_for(self, data: DayData, *, strict: bool) -> RegimeReading | None:
        """Today's regime (computed once a day from the last completed session)."""
        if self.regime is not None and self.regime_day == data.day:
            return self.regime
        cfg = self.config.regime
        spy = data.panel.close[cfg.benchmark].dropna()
        try:
            if spy.empty:
                raise ValueError(f"no {cfg.benchmark} closes")
            reading = await _cpu(
                lambda: regime_on(
                    data.panel,
                    spy.index[-1],
                    lookback_sessions=cfg.hmm_lookback_sessions,
                    vol_window=cfg.vol_window,
                    sma_window=cfg.sma_window,
                    on_min=cfg.risk_on_strength_min,
                    off_below=cfg.risk_off_strength_below,
                    random_state=cfg.hmm_random_state,
                    benchmark=cfg.benchmark,
                    etfs=cfg.sector_etfs,
                )
            )
        except ValueError as exc:
            self.decision(Code.SWING_REGIME_UNAVAILABLE, day=str(data.day), error=str(exc))
            if strict:
                raise
            return None
        self.regime, self.regime_day = reading, data.day
        fields: dict[str, Any] = reading.fields()
        self.decision(Code.SWING_REGIME, **fields)
        self._save_state(regime=reading.fields())
        return reading

    # ---- model ---------------------------------------------------------------------------------
    def _try_load_model(self) -> Exception | None:
        """Load CURRENT into ``self.model``; the error when there is no usable one (a refused feature list
        is logged ``SWING_MODEL_FEATURE_MISMATCH``)."""
        try:
            self.model = load_current(self.models_dir)
        except FeatureMismatchError as exc:
            self.model = None
            self.decision(
                Reason.SWING_MODEL_FEATURE_MISMATCH, version=current_version(self.models_dir), detail=str(exc)
            )
            return exc
        except ModelError as exc:
            self.model = None
            return exc
        self.decision(Code.SWING_MODEL_LOADED, version=self.model.version, auc=self.model.metadata.validation_auc)
        return None

    async def _ensure_model(self, now: datetime) -> LoadedModel | None:
        """The current model; without one, a bootstrap retrain (at most once a day)."""
        if self.model is not None:
            return self.model
        error = self._try_load_model()
        if error is None:
            return self.model
        today = now.astimezone(NEW_YORK).date()
        if self._bootstrap_day == today:
            self.decision(Code.SWING_NO_MODEL, detail=str(error), job="decide")
            return None
        self._bootstrap_day = today
        mismatch = isinstance(error, FeatureMismatchError)
        refused = current_version(self.models_dir) if mismatch else None
        try:
            await self.retrain_model(now, "feature_mismatch" if mismatch else "bootstrap", refused=refused)
        except ValueError as exc:  # no usable training rows: decide goes on without BUYs
            self.decision(Code.SWING_NO_MODEL, detail=f"retrain failed: {exc}", job="decide")
            return None
        if self.model is None:
            self.decision(Code.SWING_NO_MODEL, detail="the retrained model was not promoted", job="decide")
        return self.model

    def _model_stale(self, now: datetime) -> bool:
        if self.model is None:
            return False
        return now - self._model_created() > STALE_MODEL_AFTER

    def _model_created(self) -> datetime:
        """When the current model was trained (the distant past when its metadata cannot say)."""
        assert self.model is not None
        try:
            return datetime.fromisoformat(self.model.metadata.created_at.replace("Z", "+00:00"))
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)

    async def retrain_model(self, now: datetime, why: str, refused: str | None = None) -> RetrainReport:
        """S5 on the completed sessions before today: fit, validate, save, promote, prune. A model refused
        for its feature list does not count as the current one the new model must match."""
        async with self._retrain_lock:
            today = now.astimezone(NEW_YORK).date()
            data = await self.day_data(today)
            m = self.config.model
            self.decision(Code.SWING_RETRAIN, why=why, symbols=len(data.eligible), refused=refused)
            report = await _cpu(
                lambda: retrain(
                    data.panel,
                    data.eligible,
                    self.config.universe.sector_map,
                    self.models_dir,
                    now,
                    **m.retrain_options(),
                )
            )
            promotion = report.promotion
            if not promotion.promoted and refused is not None and promotion.previous == refused:
                ok, detail = promotion_allowed(promotion.auc, None, m.promote_min_auc, m.promote_max_drop)
                if ok:
                    set_current(self.models_dir, promotion.version)
                    promotion = replace(
                        promotion,
                        promoted=True,
                        reason=Reason.SWING_MODEL_PROMOTED,
                        detail=f"{detail}; {refused} refused (feature mismatch)",
                    )
                    report = replace(report, promotion=promotion)
            meta = report.metadata
            self.decision(
                promotion.reason,
                version=meta.version,
                why=why,
                auc=promotion.auc,
                previous=promotion.previous,
                previous_auc=promotion.previous_auc,
                detail=promotion.detail,
                train=f"{meta.train_start}..{meta.train_end}",
                samples=meta.n_samples,
                fit_seconds=round(report.fit_seconds, 2),
                pruned=len(report.pruned),
            )
            self._save_state(last_retrain=now.astimezone(UTC).isoformat(), last_retrain_version=meta.version)
            if promotion.promoted:
                self._scores = None
                self._try_load_model()
            return report

    async def _probabilities(self, data: DayData, model: LoadedModel) -> dict[str, float]:
        """P(5-day return beats SPY) per scored symbol, once a day per model version."""
        key = (data.day, model.version)
        if self._scores is not None and self._scores[0] == key:
            return self._scores[1]
        probs, skipped = await _cpu(self._score, data, model)
        for symbol, code in skipped.items():
            self.decision(code, symbol, day=str(data.day), model=model.version)
        self._scores = (key, probs)
        return probs

    def _score(self, data: DayData, model: LoadedModel) -> tuple[dict[str, float], dict[str, Code]]:
        cfg = self.config
        skipped: dict[str, Code] = {}
        if not data.eligible:
            return {}, skipped
        spy = data.panel.close[cfg.regime.benchmark].dropna()
        last = spy.index[-1]
        feats = feature_matrix(data.panel, data.eligible, cfg.universe.sector_map, cfg.regime.benchmark)
        dates = feats.index.get_level_values("date")
        today_rows = feats[dates == last].droplevel("date")
        scored: list[str] = []
        for symbol in data.eligible:
            if symbol not in today_rows.index or today_rows.loc[symbol].isna().all():
                skipped[symbol] = Code.SWING_SKIP_NO_FACTORS
            else:
                scored.append(symbol)
        u = cfg.universe
        liquid = set(liquid_universe(data.panel, last, scored, u.min_price, u.min_adv_usd, u.adv_window))
        for symbol in scored:
            if symbol not in liquid:
                skipped[symbol] = Code.SWING_SKIP_ILLIQUID
        keep = [s for s in scored if s in liquid]
        if not keep:
            return {}, skipped
        proba = model.predict_proba(today_rows.loc[keep])
        return {str(s): float(p) for s, p in proba.items()}, skipped

    # ---- state ---------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def _save_state(self, **values: Any) -> None:
        self._state.update(values)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=2, sort_keys=True, default=str))
        tmp.replace(self.state_path)


def _last_close(bars: pd.DataFrame | None) -> float | None:
    if bars is None or bars.empty:
        return None
    closes = bars["close"].dropna()
    return float(closes.iloc[-1]) if len(closes) else None


def _count(outcomes: list[DispatchOutcome]) -> str:
    sent = sum(1 for o in outcomes if o.sent)
    suppressed = sum(1 for o in outcomes if o.reason is Reason.DUPLICATE_SUPPRESSED)
    dry = sum(1 for o in outcomes if o.reason is Reason.SWING_DRY_RUN)
    return f"{sent} sent, {suppressed} suppressed, {dry} dry_run"


__all__ = ["CONFIG_MODEL", "Code", "Mode", "SwingMlStrategy", "build"]
