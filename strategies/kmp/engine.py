"""KmpEngine: the whole KMP rule set (§1.2–§1.10) as one deterministic, I/O-free object.

The wiring feeds it data and the clock and sends the returned actions to the OMS; see the package
docstring (:mod:`strategies.kmp`) for the call schedule. Every method takes the time explicitly
(``now``/``ts``, timezone-aware) and returns an :class:`~strategies.kmp.decisions.Output`.

**[resolved]** engine-level choices (the rule modules list theirs):

* A CANDIDATE becomes WATCH once its OR passes K10 and a static-VI reference is known (from a
  trade, a quote or :meth:`on_vi`); without one ``vi_ref_grace_sec`` (60 s) after the scan it is
  DONE ``KMP_VI_MISSING``.
* A trade-slot denial of a candidate makes it DONE ``KMP_SLOT_DENIED``; candidates are not
  back-filled from rank 21+. A denial or eviction at/after 10:00 or for the lease window's end is
  the window end (``KMP_WINDOW_END``).
* A break counts only inside the entry window (from 09:16): the acceptance clock never starts earlier.
* The K5 leader count (8 for ≈400 names) is scaled to the day's universe N (symbols with a scan
  baseline) by the §6 rule, ``max(1, ceil(8·N/400))``, logged once in ``KMP_PREMARKET``.
* OMS replies to ENTER: ACCEPTED/EXECUTED keep ORDER_WORKING; MODIFIED sets the working qty;
  REJECTED/CANCELLED → DONE ``KMP_ENTRY_REJECTED``; DEFERRED → back to ARMED, gates wait for
  ``cooldown_until`` (``KMP_G_RETRY_WAIT``), still bounded by the 5-min acceptance deadline.
* The first entry fill moves the symbol to IN_POSITION at once (exits apply to a partial fill);
  at the 30-s order timeout the remainder is cancelled and the partial kept.
* risk_off / day P&L ≤ −3% / 14:30 send one FLATTEN per episode (plus CANCEL of working entries);
  positions still open ``exit_retry_sec`` later get a per-symbol marketable EXIT.
* A gate failure of a symbol is logged at most every ``gate_log_throttle_sec`` while unchanged.
* Close-based exits run once per minute per symbol, on the first final bar of that minute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from strategies.kmp.config import KmpParams
from strategies.kmp.decisions import (
    CancelAction,
    EnterAction,
    ExitAction,
    FlattenAction,
    ModifyRiskAction,
    Output,
    ReasonCode,
    idem_key,
)
from strategies.kmp.exits import (
    PositionState,
    early_fail,
    exit_limit_price,
    r_multiple,
    stall_exit,
    stop_hit,
    trail_hit,
    trail_price,
)
from strategies.kmp.fsm import ACCEPTING, OPEN_STATES, PRE_ENTRY, SECTOR_ACTIVE, Acceptance, Event, State
from strategies.kmp.gates import GateInputs, check_gates, entry_rvol, size_time_mult, spread_pct
from strategies.kmp.minutes import MinuteSeries, bar_start, field_of
from strategies.kmp.regime import (
    MARKETS,
    LeaderView,
    ProgramOverlay,
    ProgramRegime,
    RegimeSnapshot,
    compute_regime,
    index_change,
    neutral_regime,
    scaled_count,
)
from strategies.kmp.scanner import OpeningRange, ScanRow, is_gap_skip, opening_range, rank_candidates, surge
from strategies.kmp.sizing import (
    QualityInputs,
    Stops,
    confidence_label,
    entry_limit,
    entry_stops,
    liquidity_binds,
    position_size,
    qty_base,
    quality_components,
    quality_multiplier,
    risk_per_share,
)
from strategies.kmp.subscriptions import SubView, plan_subscriptions
from strategies.kmp.timing import at, kst, minute_key, whole_minutes_since
from strategies.kmp.universe import SymbolCache, unknown_sector
from strategies.sdk.indicators import TickImbalance

_SIDE_BUY = ("BUY", "B")
_IDLE = frozenset({State.UNIVERSE, State.DONE})
"""States with no timer and no subscription wish of their own (a held position or an order still counts)."""


@dataclass(slots=True)
class WorkingOrder:
    qty: int
    submit_ts: datetime
    trig: float
    limit: float
    retest_low: float
    atr: float | None
    stops: Stops
    key: str
    filled: int = 0
    cost: float = 0.0
    open: bool = True

    @property
    def avg(self) -> float:
        return self.cost / self.filled if self.filled else 0.0


@dataclass(slots=True)
class SymbolCtx:
    symbol: str
    sector: str
    cache: SymbolCache | None
    series: MinuteSeries
    imbalance: TickImbalance
    state: State = State.UNIVERSE
    done_code: ReasonCode | None = None
    orng: OpeningRange | None = None
    surge: float | None = None
    in_population: bool = False
    gap_checked: bool = False
    acc: Acceptance | None = None
    candidate_ts: datetime | None = None
    vi_ref: float | None = None
    last_vi: datetime | None = None
    bid: float | None = None
    ask: float | None = None
    quote_ts: datetime | None = None
    order: WorkingOrder | None = None
    pos: PositionState | None = None
    retry_after: datetime | None = None
    exit_reason: ReasonCode | None = None
    exit_sent_ts: datetime | None = None
    exit_cancel_sent: bool = False
    """The unfilled exit was cancelled; the next retry sends a fresh one (never two sells at once)."""
    last_close_minute: int = -1
    last_gate: tuple[ReasonCode, datetime] | None = None
    vi_block_open: bool = False

    @property
    def trig(self) -> float | None:
        return self.acc.trig if self.acc is not None else (self.orng.trig if self.orng else None)


@dataclass(slots=True)
class IndexState:
    last: float | None = None
    prior_close: float | None = None
    closes: list[float] = field(default_factory=list)
    ts: datetime | None = None


class KmpEngine:
    """Pure KMP core. Construct once per session; call :meth:`premarket` before 09:00."""

    def __init__(self, params: KmpParams | None = None, strategy_id: str = "KMP") -> None:
        self.p = params or KmpParams()
        self.strategy_id = strategy_id
        self.day: date | None = None
        self.syms: dict[str, SymbolCtx] = {}
        self.nav: float | None = None
        self.day_pnl_pct: float | None = None
        self.oms_halt = False
        self.oms_flatten = False
        self.index: dict[str, IndexState] = {m: IndexState() for m in MARKETS}
        self.regime: RegimeSnapshot | None = None
        self.universe_size: int | None = None
        """N of §6: universe symbols with a scan baseline (value_base), set by :meth:`premarket`."""
        self.breadth_min = self.p.breadth_min
        """K5 leader count needed, scaled to ``universe_size`` at premarket (:func:`scaled_count`)."""
        self.last_regime_ts: datetime | None = None
        self.program = ProgramOverlay(self.p)
        self.scan_done = False
        self.window_closed = False
        self.eod = False
        self.risk_flatten = False
        self.entries: list[EnterAction] = []
        self._vi_blocks: deque[datetime] = deque()
        self._vi_alert_ts: datetime | None = None
        self._tries = 0
        self._missed = 0
        self._missed_alerted = False
        self._rest_fail: dict[str, int] = {}

    # ================================================================== helpers

    def _key(self, symbol: str, action: str, ts: datetime, suffix: str = "") -> str:
        k = idem_key(symbol, action, ts, self.strategy_id)
        return f"{k}-{suffix}" if suffix else k

    def _new_ctx(self, symbol: str, cache: SymbolCache | None, sector: str | None = None) -> SymbolCtx:
        assert self.day is not None
        return SymbolCtx(
            symbol=symbol,
            sector=(cache.sector if cache else None) or sector or unknown_sector(symbol),
            cache=cache,
            series=MinuteSeries(self.day),
            imbalance=TickImbalance(self.p.imbalance_window_sec, self.p.imbalance_min_sec),
        )

    def _ensure_day(self, now: datetime) -> None:
        if self.day is None:
            self.day = kst(now).date()

    def _t(self, ts: datetime) -> time:
        return kst(ts).time()

    def _at(self, t: time) -> datetime:
        assert self.day is not None
        return at(self.day, t)

    def _done(
        self, ctx: SymbolCtx, code: ReasonCode, ts: datetime, out: Output, log: bool = True, **fields: Any
    ) -> None:
        prev = ctx.state
        ctx.state = State.DONE
        ctx.done_code = code
        if log:
            out.log(code, ctx.symbol, ts, prev_state=prev.value, **fields)

    def _fresh_quote(self, ctx: SymbolCtx, now: datetime) -> tuple[float | None, float | None]:
        if ctx.quote_ts is None or (now - ctx.quote_ts).total_seconds() > self.p.quote_max_age_sec:
            return None, None
        return ctx.bid, ctx.ask

    def _rvol(self, ctx: SymbolCtx, now: datetime) -> float | None:
        m = minute_key(now)
        base = ctx.cache.vol1m_base if ctx.cache else None
        return entry_rvol(ctx.series.volume(m - 1), ctx.series.volume(m), base)

    def _value_last(self, ctx: SymbolCtx, now: datetime) -> float:
        m = minute_key(now)
        return ctx.series.value_between(m - self.p.liquidity_bars, m)

    def _imb(self, ctx: SymbolCtx, now: datetime) -> float | None:
        return ctx.imbalance.value(now)

    def _open_ctxs(self, exclude: str | None = None) -> list[SymbolCtx]:
        return [c for c in self.syms.values() if c.state in OPEN_STATES and c.symbol != exclude]

    def _regime_now(self, now: datetime) -> RegimeSnapshot:
        return self.regime if self.regime is not None else neutral_regime(now)

    def state_of(self, symbol: str) -> State | None:
        ctx = self.syms.get(symbol)
        return ctx.state if ctx else None

    def position_of(self, symbol: str) -> PositionState | None:
        ctx = self.syms.get(symbol)
        return ctx.pos if ctx else None

    # ================================================================== premarket / open / scan

    def premarket(
        self,
        now: datetime,
        caches: Iterable[SymbolCache] | Mapping[str, SymbolCache],
        dropped: Mapping[str, str] | None = None,
    ) -> Output:
        """K1–K2: load the day's universe caches (built by :func:`strategies.kmp.universe.build_symbol_cache`)."""
        out = Output()
        day = kst(now).date()
        if self.day is not None and self.day != day:
            self.__init__(self.p, self.strategy_id)  # type: ignore[misc]  # a new session: start clean
        # symbols handled today (a recovered position, even one closed before this premarket ended) stay as they are
        keep = {s: c for s, c in self.syms.items() if c.pos is not None or c.state is not State.UNIVERSE}
        self.day = day
        self.syms = dict(keep)
        items = caches.values() if isinstance(caches, Mapping) else caches
        n_trend = n_nobase = 0
        for cache in sorted(items, key=lambda c: c.symbol):
            if cache.symbol in self.syms:
                self.syms[cache.symbol].cache = cache
                self.syms[cache.symbol].sector = cache.sector
                continue
            self.syms[cache.symbol] = self._new_ctx(cache.symbol, cache)
            n_trend += cache.trend_ok
            n_nobase += cache.value_base is None or cache.vol1m_base is None
        self.universe_size = sum(c.cache is not None and c.cache.value_base is not None for c in self.syms.values())
        self.breadth_min = scaled_count(self.p.breadth_min, self.universe_size, self.p.breadth_reference_universe)
        out.log(
            ReasonCode.KMP_PREMARKET,
            None,
            now,
            universe=len(self.syms),
            trend_ok=n_trend,
            missing_baselines=n_nobase,
            dropped=len(dropped or {}),
            breadth_universe=self.universe_size,
            breadth_min=self.breadth_min,
            breadth_min_base=self.p.breadth_min,
            breadth_reference_universe=self.p.breadth_reference_universe,
        )
        if dropped:
            out.log(ReasonCode.KMP_UNIVERSE_DROP, None, now, dropped=dict(sorted(dropped.items())))
        return out

    def on_open(self, now: datetime, opens: Mapping[str, float]) -> Output:
        """K3 at 09:00: ``pct(open, prior_close) ≥ 5%`` → DONE ``KMP_GAP_SKIP``."""
        out = Output()
        for sym in sorted(opens):
            ctx = self.syms.get(sym)
            if ctx is None or ctx.state is not State.UNIVERSE or ctx.cache is None:
                continue
            self._gap_check(ctx, opens[sym], now, out)
        return out

    def _gap_check(self, ctx: SymbolCtx, open_price: float | None, now: datetime, out: Output) -> None:
        if open_price is None or ctx.gap_checked:
            return
        ctx.gap_checked = True
        prior = ctx.cache.prior_close if ctx.cache else None
        if is_gap_skip(open_price, prior, self.p.gap_skip_pct):
            self._done(
                ctx,
                ReasonCode.KMP_GAP_SKIP,
                now,
                out,
                open=open_price,
                prior_close=prior,
                gap_pct=open_price / prior - 1 if prior else None,
            )

    def scan(self, now: datetime, bars_by_symbol: Mapping[str, Sequence[Any]]) -> Output:
        """K8–K10 at 09:15 with each universe symbol's REST 1m bars of 09:00–09:14.

        The bars also seed each symbol's session VWAP, ATR and volume history.
        """
        out = Output()
        if self.day is None:
            self._ensure_day(now)
        if self.scan_done:
            out.log(ReasonCode.KMP_DATA_IGNORED, None, now, reason="scan already done")
            return out
        self.scan_done = True
        if self._t(now) >= self.p.scan_deadline:
            out.log(ReasonCode.KMP_SCAN_LATE, None, now, deadline=self.p.scan_deadline.isoformat())
        rows: list[ScanRow] = []
        no_data: list[str] = []
        for sym in sorted(self.syms):
            ctx = self.syms[sym]
            scan_minute = minute_key(now)
            bars = [b for b in bars_by_symbol.get(sym, ()) if minute_key(bar_start(b)) < scan_minute]
            for b in sorted(bars, key=bar_start):
                ctx.series.upsert_bar(b)  # completed minutes only: the in-progress one stays tick-built
            ctx.orng = opening_range(bars, self.p.or_start, self.p.or_end)
            if ctx.orng is None:
                no_data.append(sym)
                continue
            if ctx.state is State.UNIVERSE:
                self._gap_check(ctx, ctx.orng.open_price, now, out)
            ctx.surge = surge(ctx.orng.value15, ctx.cache.value_base if ctx.cache else None)
            ctx.in_population = ctx.surge is not None and ctx.surge >= self.p.leader_surge_min - 1e-12
            if ctx.state is State.UNIVERSE:
                rows.append(ScanRow(sym, ctx.surge, bool(ctx.cache and ctx.cache.trend_ok)))
        chosen = rank_candidates(rows, self.p.surge_min, self.p.candidates_top_n)
        chosen_set = {r.symbol for r in chosen}
        for ctx in self.syms.values():
            if ctx.state is State.UNIVERSE and ctx.symbol not in chosen_set:
                ctx.state = State.DONE  # not selected: silent, summarised in KMP_SCAN
        out.log(
            ReasonCode.KMP_SCAN,
            None,
            now,
            scanned=len(rows),
            no_data=len(no_data),
            trend_ok=sum(r.trend_ok for r in rows),
            surge_ok=sum(1 for r in rows if r.surge is not None and r.surge >= self.p.surge_min),
            population=sum(c.in_population for c in self.syms.values()),
            candidates=[(r.symbol, round(r.surge or 0.0, 3)) for r in chosen],
        )
        for r in chosen:
            ctx = self.syms[r.symbol]
            assert ctx.orng is not None
            ctx.state = State.CANDIDATE
            ctx.candidate_ts = now
            o = ctx.orng
            fields: dict[str, Any] = dict(
                surge=r.surge, or_high=o.or_high, or_low=o.or_low, or_pct=o.or_pct, trig=o.trig, value15=o.value15
            )
            if not self.p.or_range_min - 1e-12 <= o.or_pct <= self.p.or_range_max + 1e-12:
                self._done(ctx, ReasonCode.KMP_OR_RANGE, now, out, **fields)
                continue
            ctx.acc = Acceptance(
                trig=o.trig,
                or_high=o.or_high,
                timeout_sec=self.p.acceptance_timeout_sec,
                support_factor=self.p.support_factor,
                state=State.CANDIDATE,
                not_before=self._at(self.p.entry_start),
            )
            out.log(ReasonCode.KMP_CANDIDATE, r.symbol, now, **fields)
            self._candidate_step(ctx, now, out)
        return out

    def _candidate_step(self, ctx: SymbolCtx, now: datetime, out: Output) -> None:
        if ctx.state is not State.CANDIDATE:
            return
        if ctx.vi_ref is not None:
            ctx.state = State.WATCH
            assert ctx.acc is not None
            ctx.acc.state = State.WATCH
            out.log(ReasonCode.KMP_WATCH, ctx.symbol, now, vi_ref=ctx.vi_ref, trig=ctx.acc.trig)
        elif ctx.candidate_ts is not None and (now - ctx.candidate_ts).total_seconds() >= self.p.vi_ref_grace_sec:
            self._done(ctx, ReasonCode.KMP_VI_MISSING, now, out, waited_sec=(now - ctx.candidate_ts).total_seconds())

    # ================================================================== market data

    def on_trade(
        self,
        symbol: str,
        price: float,
        qty: float,
        ts: datetime,
        aggressor: Any = None,
        *,
        vi_ref: float | None = None,
        bid: float | None = None,
        ask: float | None = None,
    ) -> Output:
        """One trade print (ticks channel). ``vi_ref`` = static-VI reference when the feed carries it."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None or self.day is None:
            return out
        if not ctx.series.add_trade(ts, price, qty):
            return out
        ctx.imbalance.add(ts, price, qty, aggressor)
        if vi_ref is not None and vi_ref > 0:
            ctx.vi_ref = float(vi_ref)
        if bid is not None and ask is not None:
            ctx.bid, ctx.ask, ctx.quote_ts = bid, ask, ts
        self._timers(ctx, ts, out)
        self._on_price(ctx, price, ts, out)
        return out

    def on_quote(
        self, symbol: str, ts: datetime, bid: float | None, ask: float | None, vi_ref: float | None = None
    ) -> Output:
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            return out
        if bid is not None or ask is not None:
            ctx.bid, ctx.ask, ctx.quote_ts = bid, ask, ts
        if vi_ref is not None and vi_ref > 0:
            ctx.vi_ref = float(vi_ref)
        self._timers(ctx, ts, out)
        return out

    def on_vi(self, symbol: str, ts: datetime, vi_ref: float | None = None, kind: str | None = None) -> Output:
        """A VI triggered on the symbol (entries blocked for ``vi_cooldown_sec``)."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            return out
        ctx.last_vi = ts
        if vi_ref is not None and vi_ref > 0:
            ctx.vi_ref = float(vi_ref)
        out.log(ReasonCode.KMP_VI_EVENT, symbol, ts, state=ctx.state.value, kind=kind, vi_ref=ctx.vi_ref)
        self._timers(ctx, ts, out)
        return out

    def on_bar(self, symbol: str, bar: Any) -> Output:
        """A completed 1m bar (SDK BarBuilder or REST). Runs the 1m-close exit rules once per minute."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None or self.day is None:
            return out
        m = ctx.series.upsert_bar(bar)
        if m is None or m <= ctx.last_close_minute:
            return out
        ctx.last_close_minute = m
        bar_end = bar_start(bar).replace(second=0, microsecond=0) + timedelta(minutes=1)
        close = float(field_of(bar, "close"))
        self._on_close(ctx, close, bar_end, out)
        return out

    def _on_close(self, ctx: SymbolCtx, close: float, bar_end: datetime, out: Output) -> None:
        pos = ctx.pos
        if ctx.state is not State.IN_POSITION or pos is None or pos.qty <= 0 or bar_end <= pos.fill_ts:
            return
        held = pos.held_minutes(bar_end)
        vwap = ctx.series.vwap_value
        if early_fail(close, pos.or_high, vwap, held, self.p):
            self._exit(
                ctx,
                ReasonCode.KMP_X_EARLY_FAIL,
                bar_end,
                out,
                bar_close=close,
                or_high=pos.or_high,
                vwap=vwap,
                held_min=held,
            )
        elif stall_exit(close, pos.fill_price, pos.r, held, self.p):
            self._exit(
                ctx,
                ReasonCode.KMP_X_STALL,
                bar_end,
                out,
                bar_close=close,
                fill=pos.fill_price,
                r=pos.r,
                r_multiple=r_multiple(close, pos.fill_price, pos.r),
                held_min=held,
            )

    def _on_price(self, ctx: SymbolCtx, price: float, ts: datetime, out: Output) -> None:
        if ctx.state is State.CANDIDATE:
            self._candidate_step(ctx, ts, out)
        if ctx.state in (State.WATCH, State.WAIT_ACCEPTANCE, State.ARMED):
            if self._t(ts) >= self.p.entry_end:
                self._done(ctx, ReasonCode.KMP_WINDOW_END, ts, out)
                return
            assert ctx.acc is not None
            vwap = ctx.series.vwap_value
            ev = ctx.acc.on_price(price, vwap, ts)
            if ev is Event.TIMEOUT:
                self._done(
                    ctx,
                    ReasonCode.KMP_ACCEPT_TIMEOUT,
                    ts,
                    out,
                    t_break=ctx.acc.t_break.isoformat() if ctx.acc.t_break else None,
                )
            elif ev is Event.BREAK:
                ctx.state = State.WAIT_ACCEPTANCE
                out.log(ReasonCode.KMP_BREAK, ctx.symbol, ts, last=price, trig=ctx.acc.trig, vwap=vwap)
            elif ev is Event.SUPPORT_LOST:
                self._done(
                    ctx,
                    ReasonCode.KMP_SUPPORT_LOST,
                    ts,
                    out,
                    last=price,
                    support=ctx.acc.support(vwap),
                    vwap=vwap,
                    retest_low=ctx.acc.retest_low,
                )
            else:
                if ev is Event.PULLBACK:
                    ctx.state = State.ARMED
                    out.log(ReasonCode.KMP_ARMED, ctx.symbol, ts, last=price, trig=ctx.acc.trig, vwap=vwap)
                if ev is Event.RECLAIM:
                    self._try_enter(ctx, price, ts, out)
        elif ctx.state is State.IN_POSITION and ctx.pos is not None:
            self._position_price(ctx, price, ts, out)

    # ================================================================== entry

    def _sector_counts(self, ctx: SymbolCtx) -> tuple[int, int]:
        """(KMP positions + working entries in this sector, other sector symbols accepting/working)."""
        held = sum(1 for c in self._open_ctxs(ctx.symbol) if c.sector == ctx.sector)
        active = sum(
            1
            for c in self.syms.values()
            if c.symbol != ctx.symbol and c.sector == ctx.sector and c.state in SECTOR_ACTIVE
        )
        return held, active

    def _try_enter(self, ctx: SymbolCtx, price: float, ts: datetime, out: Output) -> None:
        acc = ctx.acc
        assert acc is not None and acc.retest_low is not None
        retest_low = acc.retest_low
        p = self.p
        regime = self._regime_now(ts)
        m = whole_minutes_since(ts, self.day, p.entry_start)  # type: ignore[arg-type]
        vwap = ctx.series.vwap_value
        support = acc.support(vwap)
        bid, ask = self._fresh_quote(ctx, ts)
        minute = minute_key(ts)
        atr1m = ctx.series.atr(p.atr_period, minute)
        value5 = self._value_last(ctx, ts)
        imb = self._imb(ctx, ts)
        sector_held, sector_active = self._sector_counts(ctx)
        program_regime = self.program.regime(ts)
        memo: dict[str, Any] = {}

        def limit() -> float | None:
            if "limit" not in memo:
                memo["limit"] = None if bid is None or ask is None else entry_limit(acc.trig, ask - bid, p)
            return memo["limit"]

        def stops() -> Stops:
            if "stops" not in memo:
                memo["stops"] = entry_stops(acc.retest_low, limit(), atr1m, p)  # type: ignore[arg-type]
            return memo["stops"]

        def quality() -> float:
            if "quality" not in memo:
                lim = limit()
                assert lim is not None and self.nav is not None
                base = qty_base(self.nav, lim, stops().initial_stop, p)
                comps = quality_components(
                    QualityInputs(
                        surge=ctx.surge or 0.0,
                        rvol=memo.get("rvol") or 0.0,
                        imbalance=imb,
                        retest_low=retest_low,
                        support=support,
                        or_high=acc.or_high,
                        regime_ok=regime.regime_ok,
                        spread_pct=memo.get("spread_pct") or 0.0,
                        liquidity_binds=liquidity_binds(base, lim, value5, p),
                        same_sector_active=sector_active,
                    ),
                    p,
                )
                memo["components"] = comps
                memo["quality"] = min(100.0, max(0.0, sum(comps.values())))
            return memo["quality"]

        def qty() -> int:
            lim = limit()
            assert lim is not None and self.nav is not None
            size = position_size(
                self.nav,
                lim,
                stops().initial_stop,
                quality_multiplier(quality(), p),
                size_time_mult(m, p),
                self.program.multiplier(ts),
                value5,
                p,
            )
            memo["size"] = size
            return size.qty

        def rv() -> float | None:
            memo["rvol"] = self._rvol(ctx, ts)
            return memo["rvol"]

        def sp() -> float | None:
            memo["spread_pct"] = spread_pct(bid, ask)
            return memo["spread_pct"]

        gates = GateInputs(
            now=ts,
            time_of_day=self._t(ts),
            open_count=len(self._open_ctxs(ctx.symbol)),
            sector_count=sector_held,
            day_pnl_pct=self.day_pnl_pct,
            risk_off=regime.risk_off or self.risk_flatten,
            surge=ctx.surge,
            m=m,
            rvol=rv,
            spread_pct=sp,
            limit=limit,
            vi_ref=ctx.vi_ref,
            last_vi=ctx.last_vi,
            nav=self.nav,
            quality=quality,
            qty=qty,
            retry_after=ctx.retry_after,
        )
        res = check_gates(gates, p)
        base_fields = dict(
            last=price,
            trig=acc.trig,
            vwap=vwap,
            support=support,
            retest_low=acc.retest_low,
            imbalance=imb,
            regime_ok=regime.regime_ok,
            program=program_regime.value,
            m=m,
        )
        if not res.ok:
            assert res.code is not None
            self._gate_failed(
                ctx, res.code, ts, out, **{**base_fields, **res.detail}, components=memo.get("components")
            )
            return
        ctx.vi_block_open = False
        size = memo["size"]
        st = stops()
        lim = limit()
        assert lim is not None
        q = quality()
        key = self._key(ctx.symbol, "ENTER", ts)
        action = EnterAction(
            symbol=ctx.symbol,
            qty=size.qty,
            stop_price=acc.trig,
            limit_price=lim,
            cancel_after_sec=p.order_timeout_sec,
            stop_px=st.initial_stop,
            hard_stop_px=st.hard_stop,
            confidence=confidence_label(q, p),
            idempotency_key=key,
            ts=ts,
            quality=q,
        )
        out.act(action)
        self.entries.append(action)
        ctx.order = WorkingOrder(
            qty=size.qty,
            submit_ts=ts,
            trig=acc.trig,
            limit=lim,
            retest_low=acc.retest_low,
            atr=atr1m,
            stops=st,
            key=key,
        )
        ctx.state = State.ORDER_WORKING
        ctx.retry_after = None
        ctx.last_gate = None
        self._tries += 1
        out.log(
            ReasonCode.KMP_ENTRY,
            ctx.symbol,
            ts,
            **{**base_fields, **res.detail},
            components=memo.get("components"),
            structure_stop=st.structure_stop,
            hard_stop=st.hard_stop,
            initial_stop=st.initial_stop,
            atr1m=atr1m,
            value_last5=value5,
            size=size.fields(),
            quality_mult=quality_multiplier(q, p),
            size_time_mult=size_time_mult(m, p),
            program_mult=self.program.multiplier(ts),
            key=key,
        )

    def _gate_failed(self, ctx: SymbolCtx, code: ReasonCode, ts: datetime, out: Output, **fields: Any) -> None:
        is_vi = code in (ReasonCode.KMP_VI_WALL, ReasonCode.KMP_VI_RECENT)
        new_vi_block = is_vi and not ctx.vi_block_open
        ctx.vi_block_open = is_vi
        last = ctx.last_gate
        throttle = self.p.gate_log_throttle_sec
        if last is None or last[0] != code or (ts - last[1]).total_seconds() >= throttle:
            ctx.last_gate = (code, ts)
            out.log(code, ctx.symbol, ts, gate_failed=True, **fields)
        if new_vi_block:
            self._vi_block(ts, out)

    def _vi_block(self, ts: datetime, out: Output) -> None:
        w = self.p.vi_block_alert_window_sec
        self._vi_blocks.append(ts)
        while self._vi_blocks and (ts - self._vi_blocks[0]).total_seconds() > w:
            self._vi_blocks.popleft()
        if len(self._vi_blocks) >= self.p.vi_block_alert_count and (
            self._vi_alert_ts is None or (ts - self._vi_alert_ts).total_seconds() >= w
        ):
            self._vi_alert_ts = ts
            out.log(ReasonCode.KMP_ALERT_VI_BLOCKS, None, ts, alert=True, blocks=len(self._vi_blocks), window_sec=w)

    # ================================================================== OMS replies and fills

    def on_intent_result(
        self,
        symbol: str,
        now: datetime,
        status: str,
        *,
        intent_type: str = "ENTER",
        modified_qty: int | None = None,
        cooldown_until: datetime | None = None,
        message: str = "",
    ) -> Output:
        """The OMS's reply (C4) to an intent this engine produced."""
        out = Output()
        ctx = self.syms.get(symbol)
        status = str(status).upper()
        if ctx is None or str(intent_type).upper() != "ENTER":
            out.log(
                ReasonCode.KMP_DATA_IGNORED if ctx is None else ReasonCode.KMP_INTENT_RESULT,
                symbol,
                now,
                intent_type=str(intent_type),
                status=status,
                message=message,
            )
            return out
        order = ctx.order
        if order is None or ctx.state is not State.ORDER_WORKING or order.filled > 0:
            if status == "MODIFIED" and order is not None and modified_qty:
                order.qty = modified_qty
            out.log(
                ReasonCode.KMP_ENTRY_ACK,
                symbol,
                now,
                status=status,
                modified_qty=modified_qty,
                message=message,
                state=ctx.state.value,
            )
            return out
        if status in ("ACCEPTED", "EXECUTED"):
            out.log(ReasonCode.KMP_ENTRY_ACK, symbol, now, status=status, qty=order.qty)
        elif status == "MODIFIED" and modified_qty:
            out.log(
                ReasonCode.KMP_ENTRY_MODIFIED, symbol, now, qty=order.qty, modified_qty=modified_qty, message=message
            )
            order.qty = modified_qty
        elif status == "DEFERRED":
            self._tries -= 1
            ctx.order = None
            ctx.state = State.ARMED
            ctx.retry_after = cooldown_until or now
            out.log(
                ReasonCode.KMP_ENTRY_DEFERRED,
                symbol,
                now,
                cooldown_until=cooldown_until.isoformat() if cooldown_until else None,
                message=message,
            )
        else:  # REJECTED, CANCELLED, MODIFIED to 0
            self._tries -= 1
            ctx.order = None
            self._done(ctx, ReasonCode.KMP_ENTRY_REJECTED, now, out, status=status, message=message)
        return out

    def on_order_closed(self, symbol: str, now: datetime, filled_qty: int | None = None) -> Output:
        """The entry order reached a terminal state at the OMS (cancel-after, cancel, reject)."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None or ctx.order is None:
            return out
        ctx.order.open = False
        if ctx.state is State.ORDER_WORKING and ctx.order.filled == 0 and not filled_qty:
            self._missed_fill(ctx, now, out, cancel=False)
        return out

    def on_fill(self, symbol: str, side: str, qty: int, price: float, ts: datetime) -> Output:
        """An execution of a KMP order in ``symbol`` (entry buys and exit sells)."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            if self.day is None:
                self._ensure_day(ts)
            ctx = self.syms[symbol] = self._new_ctx(symbol, None)
        buy = str(side).upper() in _SIDE_BUY
        if buy:
            self._entry_fill(ctx, int(qty), float(price), ts, out)
        else:
            self._exit_fill(ctx, int(qty), float(price), ts, out)
        return out

    def _entry_fill(self, ctx: SymbolCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        order = ctx.order
        if order is None:
            # a buy we have no record of (e.g. placed before a restart): manage it like a recovery
            pos = ctx.pos
            if pos is None:
                out.extend(self.on_position_recovered(ctx.symbol, qty, price, ts, entry_ts=ts))
            else:
                pos.cost += qty * price
                pos.bought_qty += qty
                pos.qty += qty
                pos.fill_price = pos.cost / pos.bought_qty
                out.log(ReasonCode.KMP_FILL, ctx.symbol, ts, side="BUY", qty=qty, price=price, position=pos.qty)
            return
        late = ctx.state is State.DONE
        order.filled += qty
        order.cost += qty * price
        if order.filled >= order.qty:
            order.open = False
        avg = order.avg
        st = entry_stops(order.retest_low, avg, order.atr, self.p)
        r = risk_per_share(avg, st.initial_stop)
        pos = ctx.pos
        if pos is None:
            pos = ctx.pos = PositionState(
                symbol=ctx.symbol,
                qty=0,
                fill_price=avg,
                fill_ts=ts,
                initial_stop=st.initial_stop,
                structure_stop=st.structure_stop,
                hard_stop=st.hard_stop,
                r=r,
                max_fav=max(avg, price),
                or_high=ctx.orng.or_high if ctx.orng else None,
            )
        pos.qty += qty
        pos.bought_qty += qty
        pos.cost += qty * price
        pos.fill_price, pos.initial_stop, pos.hard_stop, pos.structure_stop, pos.r = (
            avg,
            st.initial_stop,
            st.hard_stop,
            st.structure_stop,
            r,
        )
        pos.max_fav = max(pos.max_fav, avg)
        if ctx.state in (State.ORDER_WORKING, State.DONE):
            ctx.state = State.IN_POSITION
            ctx.done_code = None
        out.log(
            ReasonCode.KMP_FILL,
            ctx.symbol,
            ts,
            side="BUY",
            qty=qty,
            price=price,
            avg=avg,
            filled=order.filled,
            ordered=order.qty,
            initial_stop=st.initial_stop,
            hard_stop=st.hard_stop,
            structure_stop=st.structure_stop,
            r=r,
            late=late,
        )
        out.act(
            ModifyRiskAction(
                symbol=ctx.symbol,
                stop_px=st.initial_stop,
                hard_stop_px=st.hard_stop,
                time_stop_ts=self._at(self.p.flatten_time),
                idempotency_key=self._key(ctx.symbol, "MODIFY_RISK", ts, f"q{order.filled}"),
                ts=ts,
            )
        )

    def _exit_fill(self, ctx: SymbolCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        pos = ctx.pos
        if pos is None:
            out.log(
                ReasonCode.KMP_DATA_IGNORED,
                ctx.symbol,
                ts,
                reason="sell fill without a KMP position",
                qty=qty,
                price=price,
            )
            return
        pos.qty -= qty
        pos.sold_qty += qty
        pos.proceeds += qty * price
        out.log(
            ReasonCode.KMP_FILL,
            ctx.symbol,
            ts,
            side="SELL",
            qty=qty,
            price=price,
            position=pos.qty,
            external=ctx.state is not State.EXITING,
        )
        if pos.qty <= 0:
            reason = ctx.exit_reason or ReasonCode.KMP_X_EXTERNAL
            if ctx.order is not None and ctx.order.open:
                out.act(CancelAction(ctx.symbol, reason, self._key(ctx.symbol, "CANCEL", ts), ts))
                ctx.order.open = False
            avg_exit = pos.proceeds / pos.sold_qty if pos.sold_qty else None
            self._done(ctx, reason, ts, out, log=False)
            out.log(
                ReasonCode.KMP_POSITION_CLOSED,
                ctx.symbol,
                ts,
                reason=reason.value,
                realized_pnl=pos.realized_pnl(),
                avg_exit=avg_exit,
                fill=pos.fill_price,
                r_multiple=r_multiple(avg_exit, pos.fill_price, pos.r) if avg_exit else None,
                held_min=pos.held_minutes(ts),
            )

    def on_position_recovered(
        self,
        symbol: str,
        qty: int,
        avg_price: float,
        now: datetime,
        *,
        stop_px: float | None = None,
        hard_stop_px: float | None = None,
        entry_ts: datetime | None = None,
        or_high: float | None = None,
        sector: str | None = None,
    ) -> Output:
        """Adopt a KMP allocation found at start (OMS ``/allocations/KMP``) and manage its exits."""
        out = Output()
        if qty <= 0:
            return out
        self._ensure_day(now)
        ctx = self.syms.get(symbol)
        if ctx is None:
            ctx = self.syms[symbol] = self._new_ctx(symbol, None, sector)
        defaulted = stop_px is None and hard_stop_px is None
        stop = stop_px if stop_px is not None else hard_stop_px
        if stop is None:
            stop = avg_price * (1.0 - self.p.recovered_stop_pct)
        r = risk_per_share(avg_price, stop)
        last = ctx.series.last_price
        orh = or_high if or_high is not None else (ctx.orng.or_high if ctx.orng else None)
        ctx.pos = PositionState(
            symbol=symbol,
            qty=qty,
            fill_price=avg_price,
            fill_ts=entry_ts or now,
            initial_stop=stop,
            structure_stop=stop,
            hard_stop=hard_stop_px,
            r=r,
            max_fav=max(avg_price, last or avg_price),
            or_high=orh,
            bought_qty=qty,
            cost=qty * avg_price,
            recovered=True,
        )
        ctx.order = None
        ctx.state = State.IN_POSITION
        ctx.done_code = None
        out.log(
            ReasonCode.KMP_POSITION_RECOVERED,
            symbol,
            now,
            qty=qty,
            avg_price=avg_price,
            stop=stop,
            r=r,
            defaulted_stop=defaulted,
            entry_ts=(entry_ts or now).isoformat(),
        )
        if defaulted:
            out.act(
                ModifyRiskAction(
                    symbol=symbol,
                    stop_px=stop,
                    hard_stop_px=None,
                    time_stop_ts=self._at(self.p.flatten_time),
                    idempotency_key=self._key(symbol, "MODIFY_RISK", now, "recovered"),
                    ts=now,
                    rationale_code=ReasonCode.KMP_POSITION_RECOVERED.value,
                )
            )
        return out

    # ================================================================== exits

    def _position_price(self, ctx: SymbolCtx, price: float, ts: datetime, out: Output) -> None:
        pos = ctx.pos
        assert pos is not None
        if pos.qty <= 0:
            return
        pos.max_fav = max(pos.max_fav, price)
        if stop_hit(price, pos.initial_stop):
            self._exit(ctx, ReasonCode.KMP_X_STOP, ts, out, last=price, initial_stop=pos.initial_stop)
            return
        imb = self._imb(ctx, ts)
        outflow = self.program.regime(ts) is ProgramRegime.OUTFLOW
        defensive = outflow or (imb is not None and imb < 0)
        t_min = pos.held_minutes(ts)
        trail = trail_price(pos.fill_price, pos.max_fav, pos.r, t_min, pos.structure_stop, defensive, self.p)
        if trail_hit(price, trail):
            self._exit(
                ctx,
                ReasonCode.KMP_X_TRAIL,
                ts,
                out,
                last=price,
                trail=trail,
                max_fav=pos.max_fav,
                fill=pos.fill_price,
                r=pos.r,
                held_min=t_min,
                imbalance=imb,
                program_outflow=outflow,
            )

    def _exit(
        self, ctx: SymbolCtx, reason: ReasonCode, ts: datetime, out: Output, retry: bool = False, **fields: Any
    ) -> None:
        pos = ctx.pos
        if ctx.order is not None and ctx.order.open:
            out.act(CancelAction(ctx.symbol, reason, self._key(ctx.symbol, "CANCEL", ts), ts))
            ctx.order.open = False
        bid, _ = self._fresh_quote(ctx, ts)
        limit, ref = exit_limit_price(bid, ctx.series.last_price, self.p)
        out.act(
            ExitAction(
                symbol=ctx.symbol,
                reason=reason,
                limit_price=limit,
                ref_price=ref,
                idempotency_key=self._key(ctx.symbol, "EXIT", ts),
                ts=ts,
            )
        )
        ctx.state = State.EXITING
        ctx.exit_reason = ctx.exit_reason if retry and ctx.exit_reason else reason
        ctx.exit_sent_ts = ts
        out.log(
            ReasonCode.KMP_EXIT_RETRY if retry else reason,
            ctx.symbol,
            ts,
            limit=limit,
            ref=ref,
            qty=pos.qty if pos else None,
            **fields,
        )

    def _flatten(self, reason: ReasonCode, ts: datetime, out: Output, everything: bool, **fields: Any) -> None:
        """FLATTEN every KMP allocation; ``everything`` also ends the pre-entry symbols (14:30)."""
        any_open = False
        for ctx in sorted(self.syms.values(), key=lambda c: c.symbol):
            if ctx.order is not None and ctx.order.open and ctx.state in (State.ORDER_WORKING, State.IN_POSITION):
                out.act(CancelAction(ctx.symbol, reason, self._key(ctx.symbol, "CANCEL", ts), ts))
                ctx.order.open = False
            if ctx.state is State.ORDER_WORKING:
                self._done(ctx, reason, ts, out, note="working entry cancelled by flatten")
            elif ctx.state is State.IN_POSITION:
                any_open = True
                ctx.state = State.EXITING
                ctx.exit_reason = reason
                ctx.exit_sent_ts = ts
                out.log(
                    reason,
                    ctx.symbol,
                    ts,
                    flatten=True,
                    qty=ctx.pos.qty if ctx.pos else None,
                    last=ctx.series.last_price,
                )
            elif ctx.state is State.EXITING:
                any_open = True
            elif everything and ctx.state in PRE_ENTRY:
                self._done(ctx, reason, ts, out, log=False)
        out.log(reason, None, ts, flatten=True, positions=any_open, **fields)
        if any_open:
            out.act(FlattenAction(reason, self._key("ALL", "FLATTEN", ts), ts))

    # ================================================================== clock

    def _timers(self, ctx: SymbolCtx, now: datetime, out: Output) -> None:
        st = ctx.state
        if st is State.CANDIDATE:
            self._candidate_step(ctx, now, out)
        elif st in ACCEPTING and ctx.acc is not None and ctx.acc.on_clock(now) is Event.TIMEOUT:
            self._done(
                ctx,
                ReasonCode.KMP_ACCEPT_TIMEOUT,
                now,
                out,
                t_break=ctx.acc.t_break.isoformat() if ctx.acc.t_break else None,
            )
        order = ctx.order
        if (
            order is not None
            and order.open
            and st in (State.ORDER_WORKING, State.IN_POSITION)
            and (now - order.submit_ts).total_seconds() >= self.p.order_timeout_sec
        ):
            if order.filled == 0:
                self._missed_fill(ctx, now, out, cancel=True)
            else:
                order.open = False
                out.act(
                    CancelAction(ctx.symbol, ReasonCode.KMP_PARTIAL_KEPT, self._key(ctx.symbol, "CANCEL", now), now)
                )
                out.log(ReasonCode.KMP_PARTIAL_KEPT, ctx.symbol, now, filled=order.filled, ordered=order.qty)
        if (
            st is State.EXITING
            and ctx.pos is not None
            and ctx.pos.qty > 0
            and ctx.exit_sent_ts is not None
            and (now - ctx.exit_sent_ts).total_seconds() >= self.p.exit_retry_sec
        ):
            if ctx.exit_cancel_sent:
                ctx.exit_cancel_sent = False
                self._exit(ctx, ctx.exit_reason or ReasonCode.KMP_X_EXTERNAL, now, out, retry=True)
            else:
                # The OMS refuses a second sell while one works (NOTHING_TO_SELL): cancel the stale one first,
                # send the re-priced exit one retry period later, when the cancel has settled.
                reason = ctx.exit_reason or ReasonCode.KMP_X_EXTERNAL
                ctx.exit_cancel_sent = True
                ctx.exit_sent_ts = now
                out.act(CancelAction(ctx.symbol, reason, self._key(ctx.symbol, "CANCEL", now), now))
                out.log(ReasonCode.KMP_EXIT_RETRY, ctx.symbol, now, step="cancel", qty=ctx.pos.qty)

    def _missed_fill(self, ctx: SymbolCtx, now: datetime, out: Output, cancel: bool) -> None:
        order = ctx.order
        assert order is not None
        if cancel:
            out.act(CancelAction(ctx.symbol, ReasonCode.KMP_MISSED_FILL, self._key(ctx.symbol, "CANCEL", now), now))
        order.open = False
        self._missed += 1
        self._done(
            ctx,
            ReasonCode.KMP_MISSED_FILL,
            now,
            out,
            ordered=order.qty,
            limit=order.limit,
            waited_sec=(now - order.submit_ts).total_seconds(),
        )
        tries = max(self._tries, 1)
        if (
            not self._missed_alerted
            and self._tries >= self.p.missed_fill_alert_min_tries
            and self._missed / tries > self.p.missed_fill_alert_ratio
        ):
            self._missed_alerted = True
            out.log(ReasonCode.KMP_ALERT_MISSED_FILLS, None, now, alert=True, missed=self._missed, tries=self._tries)

    def on_clock(self, now: datetime) -> Output:
        """Time-driven rules: timeouts, 10:00 window end, 15-s regime, risk flatten, 14:30 flatten.

        Call it about once a second (and at the fixed times) from 09:00 to 15:20.
        """
        out = Output()
        if self.day is None:
            return out
        t = self._t(now)
        for sym in sorted(self.syms):
            ctx = self.syms[sym]
            if ctx.state not in _IDLE:
                self._timers(ctx, now, out)
        if t >= self.p.entry_end:
            self._close_window(now, out)
        if t >= self.p.or_start and (
            self.last_regime_ts is None or (now - self.last_regime_ts).total_seconds() >= self.p.regime_interval_sec
        ):
            self._recompute_regime(now, out)
        self._risk_check(now, out)
        if t >= self.p.flatten_time:
            if not self.eod:
                self.eod = True
                self._flatten(ReasonCode.KMP_X_EOD, now, out, everything=True)
            else:
                for ctx in sorted(self._open_ctxs(), key=lambda c: c.symbol):
                    if ctx.state is State.IN_POSITION:
                        self._exit(ctx, ReasonCode.KMP_X_EOD, now, out)
        return out

    def quiet_until(self, now: datetime) -> datetime | None:
        """When :meth:`on_clock` next has work, if it has none before then: after the 10:00 window closed with
        every symbol idle (no setup, order or position), only the 15-s regime and the 14:30 flatten remain.
        None: it may have work every second. Every other change comes with an output (a decision or an
        action), so the caller looks again after one."""
        if self.day is None or not self.window_closed:
            return None
        for ctx in self.syms.values():
            if ctx.state not in _IDLE or (ctx.pos is not None and ctx.pos.qty > 0) or (ctx.order and ctx.order.open):
                return None
        regime = self.last_regime_ts
        due = now if regime is None else regime + timedelta(seconds=self.p.regime_interval_sec)
        if not self.eod:
            due = min(due, self._at(self.p.flatten_time))
        return due

    def _close_window(self, now: datetime, out: Output) -> None:
        """10:00 (once): every symbol still before entry is DONE ``KMP_WINDOW_END`` (one summary line)."""
        if self.window_closed:
            return
        self.window_closed = True
        ended = []
        for sym in sorted(self.syms):
            ctx = self.syms[sym]
            if ctx.state in PRE_ENTRY:
                self._done(ctx, ReasonCode.KMP_WINDOW_END, now, out, log=False)
                ended.append(sym)
        out.log(ReasonCode.KMP_WINDOW_END, None, now, ended=ended, held=[c.symbol for c in self._open_ctxs()])

    # ================================================================== regime / account / program

    def _leader_views(self, now: datetime) -> list[LeaderView]:
        views = []
        for ctx in self.syms.values():
            if not ctx.in_population:
                continue
            s = ctx.series
            age = None if s.last_ts is None else (now - s.last_ts).total_seconds()
            views.append(LeaderView(ctx.symbol, ctx.surge, self._rvol(ctx, now), s.last_price, s.vwap_value, age))
        return views

    def _recompute_regime(self, now: datetime, out: Output) -> None:
        """K4–K6. Logged on every recompute while entries are possible or KMP holds something, and
        whenever risk_off flips; otherwise (afternoon, flat) computed silently."""
        self.last_regime_ts = now
        was_off = self.regime.risk_off if self.regime is not None else False
        kospi, kosdaq = self.index["KOSPI"], self.index["KOSDAQ"]
        snap = compute_regime(
            now,
            kospi_chg=index_change(kospi.last, kospi.prior_close),
            kosdaq_chg=index_change(kosdaq.last, kosdaq.prior_close),
            kospi_closes=kospi.closes,
            leaders=self._leader_views(now),
            oms_halt=self.oms_halt,
            oms_flatten=self.oms_flatten,
            p=self.p,
            breadth_min=self.breadth_min,
        )
        self.regime = snap
        if self._t(now) < self.p.entry_end or self._open_ctxs() or snap.risk_off != was_off:
            missing = [m for m, s in self.index.items() if s.last is None or s.prior_close is None]
            out.log(
                ReasonCode.KMP_REGIME,
                None,
                now,
                **snap.fields(),
                index_missing=missing,
                program=self.program.fields(now),
            )

    def _risk_check(self, now: datetime, out: Output) -> None:
        regime_off = self.regime.risk_off if self.regime is not None else False
        loss = self.day_pnl_pct is not None and self.day_pnl_pct <= self.p.day_loss_flatten_pct + 1e-12
        if regime_off or loss:
            if not self.risk_flatten:
                self.risk_flatten = True
                self._flatten(
                    ReasonCode.KMP_X_RISK, now, out, everything=False, risk_off=regime_off, day_pnl_pct=self.day_pnl_pct
                )
            else:
                for ctx in sorted(self._open_ctxs(), key=lambda c: c.symbol):
                    if ctx.state is State.IN_POSITION:
                        self._exit(
                            ctx, ReasonCode.KMP_X_RISK, now, out, risk_off=regime_off, day_pnl_pct=self.day_pnl_pct
                        )
        else:
            self.risk_flatten = False

    def on_account(
        self,
        now: datetime,
        nav: float | None,
        day_pnl_pct: float | None,
        *,
        halt: bool = False,
        flatten_in_progress: bool = False,
    ) -> Output:
        """Account state from the OMS (``/state/account``): NAV, day P&L (fraction, −0.02 = −2%),
        and whether the OMS is in its daily-loss halt or flattening (→ risk_off)."""
        out = Output()
        self._ensure_day(now)
        self.nav = nav
        self.day_pnl_pct = day_pnl_pct
        changed = (halt, flatten_in_progress) != (self.oms_halt, self.oms_flatten)
        self.oms_halt, self.oms_flatten = halt, flatten_in_progress
        if changed:
            self._recompute_regime(now, out)
        self._risk_check(now, out)
        return out

    def on_index(
        self,
        now: datetime,
        market: str,
        last: float | None,
        prior_close: float | None,
        closes_1m: Sequence[float] | None = None,
    ) -> Output:
        """KOSPI/KOSDAQ level vs prior close, and (KOSPI) today's 1m closes for the chop test."""
        out = Output()
        key = market.upper()
        if key not in self.index:
            out.log(ReasonCode.KMP_DATA_IGNORED, None, now, reason=f"unknown index {market}")
            return out
        s = self.index[key]
        s.last, s.prior_close, s.ts = last, prior_close, now
        if closes_1m is not None:
            s.closes = [float(c) for c in closes_1m]
        return out

    def on_program(
        self,
        now: datetime,
        market: str,
        *,
        buy_cum: float | None = None,
        sell_cum: float | None = None,
        net_cum: float | None = None,
    ) -> Output:
        """One program-trading sample (K7). Not available on paper: never call it there (→ mixed)."""
        out = Output()
        how = self.program.update(market, now, buy_cum, sell_cum, net_cum)
        self._rest_fail[f"program:{market.upper()}"] = 0
        out.log(
            ReasonCode.KMP_PROGRAM,
            None,
            now,
            market=market.upper(),
            sample=how,
            buy_cum=buy_cum,
            sell_cum=sell_cum,
            net_cum=net_cum,
            **self.program.fields(now),
        )
        return out

    def on_program_failure(self, now: datetime, market: str, error: str = "") -> Output:
        out = Output()
        n = self.program.fail(market)
        out.log(
            ReasonCode.KMP_PROGRAM,
            None,
            now,
            market=market.upper(),
            failed=True,
            failures=n,
            error=error,
            **self.program.fields(now),
        )
        out.extend(self.on_rest_result(now, f"program:{market.upper()}", ok=False))
        return out

    def on_rest_result(self, now: datetime, source: str, ok: bool) -> Output:
        """Count REST failures per source; a streak of 3 raises ``KMP_ALERT_REST_FAILURES``."""
        out = Output()
        if ok:
            self._rest_fail[source] = 0
            return out
        n = self._rest_fail.get(source, 0) + 1
        self._rest_fail[source] = n
        if n == self.p.rest_failure_alert_streak:
            out.log(ReasonCode.KMP_ALERT_REST_FAILURES, None, now, alert=True, source=source, streak=n)
        return out

    # ================================================================== WebSocket plan (K20)

    def desired_subscriptions(self, now: datetime) -> dict[str, frozenset[str]]:
        """{symbol: {"trades"[, "quotes"]}} KMP wants now; the wiring diffs it against what it holds."""
        window_open = (
            self.scan_done and not self.window_closed and self._t(now) < self.p.entry_end
            if self.day is not None
            else False
        )
        views = [
            SubView(
                c.symbol,
                c.state,
                c.series.last_price,
                c.trig,
                held=(c.pos is not None and c.pos.qty > 0) or (c.order is not None and c.order.open),
            )
            for c in self.syms.values()
            if c.state not in _IDLE or c.pos is not None or c.order is not None
        ]
        return plan_subscriptions(views, window_open, self.p)

    def breadth_poll_symbols(self, now: datetime) -> list[str]:
        """Breadth-population symbols without a live trade subscription: poll their REST 1m bars
        (≤ 1/min, K5) from the scan until 10:00 and feed them to :meth:`on_bar`."""
        if self.day is None or not self.scan_done or self._t(now) >= self.p.entry_end:
            return []
        subs = self.desired_subscriptions(now)
        return sorted(
            c.symbol for c in self.syms.values() if c.in_population and "trades" not in subs.get(c.symbol, frozenset())
        )

    def on_slots(
        self, now: datetime, granted: Iterable[str], denied: Mapping[str, str], channel: str = "trades"
    ) -> Output:
        """The OMS stream's answer to a subscribe: log it; a candidate denied its trade slot is DONE.

        A denial or eviction at or after 10:00, or one the OMS gives because KMP's lease window ended
        (``WINDOW_END``), is the end of the entry window (``KMP_WINDOW_END``), not a slot denial."""
        out = Output()
        granted = sorted(granted)
        out.log(ReasonCode.KMP_SLOTS, None, now, channel=channel, granted=granted, denied=dict(sorted(denied.items())))
        if channel == "trades":
            if denied and self.day is not None and self._t(now) >= self.p.entry_end:
                self._close_window(now, out)
            for sym in sorted(denied):
                ctx = self.syms.get(sym)
                if ctx is not None and ctx.state in PRE_ENTRY:
                    window_end = ReasonCode.WINDOW_END.value in str(denied[sym])
                    code = ReasonCode.KMP_WINDOW_END if window_end else ReasonCode.KMP_SLOT_DENIED
                    self._done(ctx, code, now, out, reason=denied[sym])
        return out

    # ================================================================== introspection

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.syms.values():
            out[c.state.value] = out.get(c.state.value, 0) + 1
        return out

    @property
    def entry_signal_count(self) -> int:
        """ENTER intents produced today (compare with the §6 sanity band: 5–15 per 400 tickers)."""
        return len(self.entries)
