"""Builds and runs one OMS instance: broker, journal, database copy, state rebuild, loops.

Start order (the durability rule): migrate the database, open the journal, rebuild state from
database + journal, connect the broker, reconcile once (orders, fills, positions), and only then
accept entries. Until then ``/health`` says ``starting``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker_core.broker import Broker
from broker_core.clock import Clock, budget_sleep, budget_time, clock_from_env
from broker_core.markets.venue_market import market_for
from broker_core.ratelimit import RateLimiter
from oms.core.admin import Admin
from oms.core.circuit import CircuitBreaker
from oms.core.execution import Execution
from oms.core.intents import IntentService
from oms.core.ledger import Ledger
from oms.core.marks import MarkWriter
from oms.core.reconciler import Reconciler
from oms.core.risk import LossLevel
from oms.core.rollover import DayRollover
from oms.core.state import OmsState, StateRecorder
from oms.core.types import OrderState
from oms.core.vi import ViWatch
from oms.loops import migrate_until_reachable, risk_watch, try_migrate
from oms.marketdata import HubBrokerView, MarketDataHub, MarketDataProxy, StreamBus
from oms.metrics import OmsMetrics
from oms.rebuild import rebuild_state
from oms.settings import OmsConfig, OmsSettings
from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.migrate import make_engine
from oms.store.repository import MergedReader, Repository
from oms.supervisor import Supervisor
from oms.venue import Venue, VenueFactory

log = logging.getLogger("oms.runtime")
VERSION = "0.1.0"
MARKS_INTERVAL_S = 30.0
"""Clock seconds between two passes of the mark writer (``symbol_marks``, for the dashboard views)."""


class OmsRuntime:
    def __init__(
        self,
        settings: OmsSettings,
        config: OmsConfig,
        *,
        venue: Venue | VenueFactory | None = None,
        broker: Broker | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``venue`` is the broker wiring (or a factory of it, called with the runtime's clock); a bare
        ``broker`` stands for a venue with nothing else."""
        self.settings = settings
        self.config = config
        self.clock: Clock = clock or clock_from_env(market_for(settings.market_code()).tz)
        self.metrics = OmsMetrics()
        md = config.marketdata
        self.bus = StreamBus(market_backlog=md.consumer_backlog)
        clock = self.clock
        self.rate_limiter = RateLimiter(
            md.rest_budget.rate_per_sec,
            md.rest_budget.burst,
            monotonic=lambda: budget_time(clock),
            sleep=lambda seconds: budget_sleep(clock, seconds),
        )
        """The account's broker REST budget on the clock (priorities ORDER > RECONCILE > MARKET_DATA), from
        ``marketdata.rest_budget``; built before the broker so an adapter builder can take it. An adapter that
        brings its own limiter (``broker.limiter``, the KIS adapter) replaces it below: one budget per account.
        The market-data proxy spends it at MARKET_DATA priority unless the adapter meters its own calls on it."""
        self.hub: MarketDataHub | None = None
        self.md_proxy: MarketDataProxy | None = None
        self.state = OmsState(instance_id=settings.oms_instance_id)
        self.sector_of: dict[str, str] = dict(config.sector_map)
        if venue is not None and not isinstance(venue, Venue):
            venue = venue(settings, config, self.clock)
        if venue is None:
            if broker is None:
                raise TypeError("OmsRuntime needs a venue (or a broker): the composition layer picks the adapter")
            venue = Venue(broker=broker)
        self.venue = venue
        self.broker: Broker = venue.broker
        self.exchange = venue.exchange
        self.known_symbols = venue.known_symbols
        self.krx_data = venue.reference
        self.market = venue.market
        self.state.ledger = Ledger(self.market.tz)  # realized P&L by trading day in the market's zone
        for sym, sector in venue.sector_of.items():
            self.sector_of.setdefault(sym, sector)
        adapter_limiter = getattr(self.broker, "limiter", None)
        if isinstance(adapter_limiter, RateLimiter):
            # The adapter meters every REST request itself (KIS: its budget, 20/s real, 2/s paper): that is
            # the account's one budget; the market-data proxy then queues on it instead of a second bucket.
            self.rate_limiter = adapter_limiter
        self.breaker = CircuitBreaker(
            failure_threshold=config.reconcile.breaker_failure_threshold,
            reset_timeout_s=config.reconcile.breaker_reset_s,
            clock=self.clock,
        )
        self.db_url = settings.resolved_database_url()
        self.journal_path = settings.resolved_journal_path()
        self.journal: Journal | None = None
        self.engine: AsyncEngine | None = None
        self.drainer: Drainer | None = None
        self.reader: MergedReader | None = None
        self.execution: Execution | None = None
        self.intents: IntentService | None = None
        self.reconciler: Reconciler | None = None
        self.admin: Admin | None = None
        self.rollover: DayRollover | None = None
        self.marks: MarkWriter | None = None
        lc = config.loops
        self.supervisor = Supervisor(
            self.clock,
            backoff_s=lc.restart_backoff_s,
            backoff_max_s=lc.restart_backoff_max_s,
            lag_factor=lc.lag_factor,
            min_lag_s=lc.min_lag_s,
            on_restart=lambda name: self.metrics.loop_restarts.labels(name).inc(),
        )
        """Runs the background loops (reconciler, order updates, risk watch, journal drain, day rollover):
        restarts a failed one with back-off; ``/health`` is degraded while one is restarting or lagging."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._migrated = asyncio.Event()
        self._started_mono = time.monotonic()
        self.status = "starting"
        self.start_error: str | None = None

    async def start(self) -> None:
        Path(self.journal_path).parent.mkdir(parents=True, exist_ok=True)
        if self.db_url.startswith("sqlite"):
            Path(self.db_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        migrated = await try_migrate(self.db_url)
        if migrated:
            self._migrated.set()
        self.journal = Journal(self.journal_path)
        self.engine = make_engine(self.db_url)
        self.drainer = Drainer(
            self.journal,
            self.engine,
            self.state.instance_id,
            batch_size=self.config.journal.drain_batch,
            interval_s=self.config.journal.drain_interval_s,
        )
        drainer = self.drainer
        self.reader = MergedReader(
            Repository(self.engine, self.state.instance_id), self.journal, db_ok=lambda: self.migrated and drainer.db_ok
        )
        self.recorder = StateRecorder(self.journal, self.state)
        self._build_marketdata()
        assert self.hub is not None
        self.execution = Execution(
            self.state,
            HubBrokerView(self.broker, self.hub),
            self.recorder,
            self.bus,
            self.clock,
            self.breaker,
            self.metrics,
        )
        self.hub.add_tick_hook(self.execution.on_tick)
        self.vi_watch = ViWatch(
            self.state, self.recorder, self.clock, self.config.risk.vi_cooldown_sec, self.hub.publish_symbol_event
        )
        self.hub.add_tick_hook(self.vi_watch.on_tick)  # VI on the feed → risk's cooldown + stream ``vi`` events
        self.intents = IntentService(
            self.state,
            self.execution,
            self.recorder,
            self.broker,
            self.clock,
            self.config.risk,
            self.metrics,
            sector_of=self.sector_of,
            known_symbols=lambda: self.known_symbols,
            intent_rate_per_min=lambda sid: self.config.strategy(sid).max_intents_per_min,
            market=self.market,
        )
        rc = self.config.reconcile
        self.reconciler = Reconciler(
            self.state,
            self.execution,
            self.broker,
            self.recorder,
            self.clock,
            self.breaker,
            self.metrics,
            min_interval_s=rc.min_interval_s,
            max_interval_s=rc.max_interval_s,
            safe_mode_after=rc.safe_mode_after_failed_cycles,
            drift_confirmations=rc.drift_confirmations,
        )
        self.admin = Admin(
            self.state, self.intents, self.execution, self.recorder, self.clock, self.config.risk.vi_cooldown_sec
        )
        self.intents.on_halt = self._on_daily_loss_halt
        self.market.is_trading_day(self.clock.now())  # build the exchange calendar now, not inside the first intent
        await rebuild_state(self.state, self.reader, self.clock, self.intents, self.market.tz)
        if self.state.flags.updated_at is None:
            # the first start of this instance: its switches (all off) get their row now, so the risk views
            # and dashboards show the host before anyone flips one
            assert self.journal is not None
            self.state.flags.updated_at = self.clock.now()
            self.journal.append([self.state.flags])
        if migrated:
            self._start_drain()
        else:
            self.supervisor.add(
                "migrate_retry", lambda _beat: migrate_until_reachable(self.db_url, self._on_migrated), once=True
            )
        await self.broker.connect()
        if self.known_symbols is None:
            self.known_symbols = getattr(self.broker, "tradable_symbols", None)  # Alpaca's asset list
        if self.exchange is not None:
            self._tasks.append(asyncio.create_task(self.exchange.run(), name="paper-exchange"))
        execution = self.execution
        self.supervisor.add("order_updates", lambda _beat: execution.run_updates())
        await self.hub.start()
        for order in list(self.state.working.values()):
            if order.state is OrderState.HELD:
                await self.execution.watch(order.symbol)
        await self.reconciler.run_cycle()
        self.state.ready = True
        self.status = "ok"
        self._start_loops()
        # Everything alive now (modules, config, the rebuilt state, the paper replay data: ~200k objects) leaves
        # the cyclic collector's generations: a full collection then scans only what was created since, instead
        # of pausing the event loop ~100-200 ms every few thousand intents (the p99 of the intent path).
        # Reference counting frees objects as before; ``stop`` unfreezes.
        gc.freeze()
        log.info(
            "OMS %s ready: broker=%s db=%s journal=%s",
            self.state.instance_id,
            self.broker.name,
            _mask_url(self.db_url),
            self.journal_path,
        )

    def _start_loops(self) -> None:
        """The supervised loops that run once the OMS is ready (see ``oms/supervisor.py``)."""
        assert self.reconciler is not None and self.intents is not None and self.journal is not None
        reconciler, intents, journal = self.reconciler, self.intents, self.journal
        rc, jc = self.config.reconcile, self.config.journal
        self.supervisor.add("reconciler", reconciler.run, interval_s=rc.max_interval_s)
        self.supervisor.add(
            "risk_watch",
            lambda beat: risk_watch(intents, journal, self.clock, rc.min_interval_s, jc.keep_drained_days, beat),
            interval_s=rc.min_interval_s,
        )
        proxy = self.md_proxy
        self.rollover = DayRollover(
            self.state,
            self.recorder,
            self.clock,
            intents.loss_latch,
            fallback_equity=lambda: intents.portfolio().equity,
            on_new_day=[
                lambda _day, now: proxy.prune_expired(now) if proxy is not None else 0,
                lambda _day, _now: self.metrics.day_rollovers.inc(),
            ],
            calendar_code=self.market.calendar_code,
        )
        rollover = self.rollover
        self.supervisor.add("day_rollover", rollover.run, interval_s=60.0)
        self.marks = MarkWriter(self.state, self.recorder, self.clock, self.sector_of, self._prev_close)
        marks, marks_interval = self.marks, MARKS_INTERVAL_S
        self.supervisor.add("marks", lambda beat: marks.run(marks_interval, beat), interval_s=marks_interval)

    async def _prev_close(self, symbol: str) -> float | None:
        """The previous close from the broker's quote: asked once per held symbol and day (``MarkWriter`` keeps
        it), outside the market-data proxy's cache."""
        quote = await self.broker.get_quote(symbol)
        return float(quote.prev_close) if quote.prev_close else None

    def _start_drain(self) -> None:
        drainer = self.drainer
        assert drainer is not None
        self.supervisor.add(
            "journal_drain",
            drainer.run,
            interval_s=max(drainer.interval_s, drainer.max_backoff_s),
            on_clock=False,
            on_stop=drainer.request_stop,
        )

    def _on_migrated(self) -> None:
        self._migrated.set()
        self._start_drain()

    def roll_day_if_due(self) -> None:
        """The first event of a new trading day rolls the state over before it is handled."""
        if self.rollover is not None:
            self.rollover.maybe_roll()

    def _on_daily_loss_halt(self) -> None:
        if self.config.risk.flatten_on_halt and self.admin is not None and self.execution is not None:
            log.error("flatten on halt reason=DAILY_LOSS_HALT: exiting every allocation")
            self.execution.spawn(self.admin.flatten_all("system:DAILY_LOSS_HALT"))

    def _build_marketdata(self) -> None:
        """The slot budget + fan-out hub and the REST proxy, over the broker as it is at start."""
        md = self.config.marketdata
        state = self.state
        self.hub = MarketDataHub(
            self.broker,
            self.clock,
            self.bus,
            config=md,
            metrics=self.metrics,
            known_symbols=lambda: self.known_symbols,
            position_holders=state.ledger.holders,
            working_owners=lambda symbol: {o.strategy_id for o in state.working_orders(symbol=symbol)},
            market=self.market,
        )
        data = self.krx_data
        daily_symbols: set[str] = set()

        def known_daily() -> set[str] | None:
            if data is None:
                return self.known_symbols
            if not daily_symbols:
                try:
                    daily_symbols.update(data.daily_symbols())
                except Exception:
                    log.warning("KRX daily data unreadable; daily/investor-flow symbols limited to the feed")
            return daily_symbols | (self.known_symbols or set())

        self.md_proxy = MarketDataProxy(
            self.broker,
            self.clock,
            self.rate_limiter,
            cache=md.cache,
            metrics=self.metrics,
            flow_source=data.investor_flow if data is not None else None,
            known_intraday=lambda: self.known_symbols,
            known_daily=known_daily,
            market=self.market,
        )

    async def stop(self) -> None:
        self.status = "down"
        if self.hub is not None:
            await self.hub.stop()
        await self.supervisor.stop()
        for task in reversed(self._tasks):
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.execution is not None:
            await self.execution.drain_tasks()
        if self.drainer is not None:
            with suppress(Exception):
                await self.drainer.stop(flush=True)
        with suppress(Exception):
            await self.broker.close()
        if self.engine is not None:
            with suppress(Exception):
                await self.engine.dispose()
        if self.journal is not None:
            self.journal.close()
        gc.unfreeze()

    # ---- views ------------------------------------------------------------------------------
    @property
    def migrated(self) -> bool:
        return self._migrated.is_set()

    def uptime(self) -> float:
        return time.monotonic() - self._started_mono

    def health(self) -> dict[str, Any]:
        backlog = self.journal.backlog() if self.journal else 0
        quarantined = self.journal.quarantined() if self.journal else 0
        db_ok = bool(self.migrated and self.drainer and self.drainer.db_ok)
        status = self.status
        loops = self.supervisor.statuses()
        for name, loop_status in loops.items():
            self.metrics.loop_healthy.labels(name).set(1 if loop_status == "ok" else 0)
        reasons = [f"loop:{name}:{st}" for name, st in loops.items() if st != "ok"]
        if self.breaker.state.value != "CLOSED":
            reasons.append(f"circuit_breaker:{self.breaker.state.value}")
        if self.state.recon_status == "FAIL":
            reasons.append("recon:FAIL")
        for sid, rec in sorted(self.state.strategies.items()):
            detail = rec.status_detail if isinstance(rec.status_detail, dict) else {}
            if detail.get("health_issue"):  # a strategy's own schedule: a failed or overdue cycle
                reasons.append(f"strategy:{sid}:{detail['health_issue']}")
        # Trading goes on without the database (the journal keeps every row): reported, not degraded, so a
        # container health check on status stays green and the strategies start (docs/deploy.md).
        notices = [] if db_ok else ["db:unavailable"]
        if status == "ok" and reasons:
            status = "degraded"
        self._export_risk_state()
        self.metrics.journal_backlog.set(backlog)
        self.metrics.journal_quarantined.set(quarantined)
        self.metrics.db_ok.set(1 if db_ok else 0)
        self.metrics.open_orders.set(self.state.open_order_count())
        positions = sum(1 for p in self.state.ledger.positions().values() if p.real_qty)
        self.metrics.positions.set(positions)
        return {
            "status": status,
            "uptime_sec": round(self.uptime(), 3),
            "positions_count": positions,
            "kis_circuit_breaker": self.breaker.state.value,
            "recon_status": self.state.recon_status,
            "broker": self.broker.name,
            "db": "ok" if db_ok else "unavailable",
            "journal_backlog": backlog,
            "journal_quarantined": quarantined,
            "trading_state": self.state.trading_state().value,
            "open_orders": self.state.open_order_count(),
            "instance_id": self.state.instance_id,
            "market": self.market.code,
            "version": VERSION,
            "now": self.clock.now().isoformat(),
            "trading_day": str(self.state.trading_day) if self.state.trading_day else None,
            "loops": loops,
            "loop_restarts": self.supervisor.restarts(),
            "degraded_reasons": reasons if status == "degraded" else [],
            "notices": notices,
            **({"error": self.start_error} if self.start_error else {}),
        }

    def _export_risk_state(self) -> None:
        m, st = self.metrics, self.state
        m.recon_status.set({"OK": 0, "WARN": 1}.get(st.recon_status, 2))
        m.frozen_symbols.set(len(st.frozen_symbols))
        m.safe_mode.set(1 if st.flags.safe_mode else 0)
        m.halt_new_entries.set(1 if st.flags.halt_new_entries else 0)
        halted = self.intents is not None and self.intents.loss_latch.level is LossLevel.HALT
        m.day_loss_halted.set(1 if halted or (st.daily_portfolio is not None and st.daily_portfolio.halted) else 0)
        now = self.clock.now()
        for sid, rec in st.strategies.items():
            if rec.last_heartbeat is not None:
                m.heartbeat_age.labels(sid).set(max(0.0, (now - rec.last_heartbeat).total_seconds()))


def _mask_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
