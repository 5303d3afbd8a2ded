"""KprEngine: the whole KPR rule set (§2.2–§2.8) as one deterministic, I/O-free object.

The wiring feeds it data and the clock and sends the returned actions to the OMS; see the package
docstring (:mod:`strategies.kpr`) for the call table. Every method takes the time explicitly
(``now``/``ts``, timezone-aware) and returns an :class:`~strategies.kpr.decisions.Output`.

Costs are bounded per call: a bar or trade touches one symbol (O(1) apart from the tier caps);
:meth:`on_clock` walks only the symbols that are not IDLE/DONE plus, every ``retier_sec``, the
HOT and WARM sets; :meth:`take_due_polls` pops a heap of due times. Nothing scans the whole
universe per second, so a simulated day stays cheap.

**[resolved]** engine-level choices (the rule modules list theirs):

* A bar is evaluated once per minute and symbol (the first final bar of that minute); a later bar
  of the same minute (REST re-fetch, partial stream bar replaced) only updates the series/VWAP.
* OMS replies to ENTER: ACCEPTED/EXECUTED keep ENTRY_PENDING; MODIFIED sets the working qty;
  DEFERRED → ACCEPTING, gates wait for ``cooldown_until`` (``KPR_BLOCK_RETRY_WAIT``), not a try;
  REJECTED/CANCELLED count as a try (P15: one retry), then DONE.
* An entry still open ``order_timeout_sec + order_cancel_grace_sec`` after submission is cancelled
  by KPR (the OMS's own ``cancel_after_sec`` normally ends it first). A partial fill is kept.
* An EXIT/REDUCE rejected with ``NO_ALLOCATION``, or while the OMS shows no KPR allocation left,
  means the position is gone: it is closed (``KPR_X_EXTERNAL``); ``NOTHING_TO_SELL`` with shares
  left means a sell is still working. An exit still open ``exit_retry_sec`` later has its sell cancelled
  (re-sent only if no sell turns out to be working), and is re-sent at once when its sell order ends unfilled;
  no retry after the close (15:30).
* Investor data: provider modes LIVE (today's row arrives intraday), DAILY_ONLY (only completed
  sessions: STALE all session, P9) and UNAVAILABLE (no source); program: REST, WS or UNAVAILABLE
  (two-pillar mode, P11). The wiring probes and reports them through :meth:`set_provider_mode`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from broker_core.contract.reasons import ReasonCode
from broker_core.market_rules import CLOSE as MARKET_CLOSE
from strategies.kpr.confidence import Confidence, confidence, confidence_mult, stale_mult
from strategies.kpr.config import KprParams
from strategies.kpr.decisions import (
    CancelAction,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
    idem_key,
)
from strategies.kpr.exits import (
    ExitKind,
    Position,
    exit_limit_price,
    flow_stop,
    open_position,
    partial_qty,
    price_exit,
    risk_per_share,
    target_r,
    vol_bucket,
)
from strategies.kpr.fsm import ARMED, PROTECTED, Acceptance, Event, State, acceptance_adders, required_closes
from strategies.kpr.gates import GateInputs, check_gates
from strategies.kpr.micro_windows import cold_poll_sec, in_micro_window, stale_limit_sec, warm_poll_sec
from strategies.kpr.minutes import SESSION_OPEN_MINUTE, BarView, MinuteSeries, bar_start
from strategies.kpr.setup import check_setup, lock_setup
from strategies.kpr.signals import (
    InvestorReading,
    InvestorState,
    MarketProgram,
    ProgramState,
    ProgramTracker,
    classify_investor,
    investor_state,
    micro_pressure,
    volume_surge,
)
from strategies.kpr.sizing import entry_limit, position_size, tod_mult
from strategies.kpr.tiers import Move, Tier, TierBook, TierView, in_band, range_expansion
from strategies.kpr.timing import MINUTE, at, kst
from strategies.kpr.universe import SymbolCache, unknown_sector
from strategies.sdk.indicators import TickImbalance

_BUY = ("BUY", "B")
IDLE_STATES = frozenset({State.IDLE, State.DONE})


EXIT_RESENT_WITHIN_S = 1.0
"""A sell ending this soon after the exit was re-sent does not re-send it again (the cancel of an exit's sell
ends every working sell of the symbol at once, and the re-sent exit covers the whole position)."""


class ProviderMode(StrEnum):
    UNKNOWN = "UNKNOWN"
    LIVE = "LIVE"
    """Investor: today's row arrives during the session."""
    DAILY_ONLY = "DAILY_ONLY"
    """Investor: only completed sessions (today's row after the close): STALE all session."""
    REST = "REST"
    WS = "WS"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(slots=True)
class PendingEntry:
    qty: int
    limit: float
    stop: float
    ts: datetime
    key: str
    confidence: str
    filled: int = 0
    cost: float = 0.0
    cancel_sent: bool = False


@dataclass(slots=True)
class SymCtx:
    symbol: str
    sector: str
    market: str
    cache: SymbolCache | None
    series: MinuteSeries
    state: State = State.IDLE
    acc: Acceptance | None = None
    invalidated_at: datetime | None = None
    order: PendingEntry | None = None
    pos: Position | None = None
    retry_after: datetime | None = None
    closes_met: bool = False
    confirmed: bool = False
    last_confidence: str | None = None
    last_eval_minute: int = -1
    source: str | None = None
    streamed: bool = False
    stream_since: datetime | None = None
    imbalance: TickImbalance | None = None
    slot_denied_until: datetime | None = None
    investor: InvestorReading | None = None
    investor_asked: datetime | None = None
    investor_state: InvestorState | None = None
    program: ProgramTracker | None = None
    program_asked: datetime | None = None
    bid: float | None = None
    ask: float | None = None
    quote_ts: datetime | None = None
    degraded: bool = False
    next_poll: datetime | None = None
    last_poll: datetime | None = None
    exits_sent: int = 0
    done_code: ReasonCode | None = None
    proceeds: float = 0.0
    """₩ received from KPR sells of the current position."""


class KprEngine:
    """Pure KPR core. Construct once; call :meth:`premarket` before (or at) the session start."""

    def __init__(self, params: KprParams | None = None, strategy_id: str = "KPR") -> None:
        self.p = params or KprParams()
        self.strategy_id = strategy_id
        self._reset(None)

    def _reset(self, day: date | None) -> None:
        self.day = day
        self.syms: dict[str, SymCtx] = {}
        self.tiers = TierBook(self.p)
        self.nav: float | None = None
        self.cash: float | None = None
        self.day_pnl_pct: float | None = None
        self.halted = False
        self.index: dict[str, tuple[float | None, float | None]] = {}
        self.market_program = MarketProgram(self.p)
        self.investor_mode = ProviderMode.UNKNOWN
        self.program_mode = ProviderMode.UNKNOWN
        self.entries: list[EnterAction] = []
        self.funnel: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.eod = False
        self._active: set[str] = set()
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = 0
        self._last_sweep: datetime | None = None

    # ================================================================== helpers

    def _key(self, symbol: str, action: str, ts: datetime, tag: str | None = None) -> str:
        return idem_key(self.strategy_id, symbol, action, ts, tag)

    def _ensure_day(self, now: datetime) -> None:
        if self.day is None:
            self.day = kst(now).date()

    def _new_ctx(self, symbol: str, cache: SymbolCache | None, sector: str | None = None) -> SymCtx:
        assert self.day is not None
        ctx = SymCtx(
            symbol=symbol,
            sector=(cache.sector if cache else None) or sector or unknown_sector(symbol),
            market=cache.market if cache else "KOSPI",
            cache=cache,
            series=MinuteSeries(self.day),
        )
        self.syms[symbol] = ctx
        self.tiers.add(symbol)
        return ctx

    def _set_state(self, ctx: SymCtx, state: State) -> None:
        ctx.state = state
        if state in IDLE_STATES:
            self._active.discard(ctx.symbol)
        else:
            self._active.add(ctx.symbol)

    def _done(self, ctx: SymCtx, code: ReasonCode) -> None:
        self._set_state(ctx, State.DONE)
        ctx.done_code = code
        ctx.acc = None

    def state_of(self, symbol: str) -> State | None:
        ctx = self.syms.get(symbol)
        return ctx.state if ctx else None

    def position_of(self, symbol: str) -> Position | None:
        ctx = self.syms.get(symbol)
        return ctx.pos if ctx else None

    def tier_of(self, symbol: str) -> Tier | None:
        return self.tiers.of(symbol) if symbol in self.syms else None

    def _imbalance(self, ctx: SymCtx, now: datetime) -> float | None:
        if not ctx.streamed or ctx.imbalance is None:
            return None
        return ctx.imbalance.value(now)

    def _fresh_quote(self, ctx: SymCtx, now: datetime) -> tuple[float | None, float | None]:
        if ctx.quote_ts is None or (now - ctx.quote_ts).total_seconds() > self.p.quote_max_age_sec:
            return None, None
        return ctx.bid, ctx.ask

    def _index_change(self, market: str) -> float | None:
        last, prior = self.index.get(market, (None, None))
        if last is None or prior is None or prior <= 0:
            return None
        return last / prior - 1.0

    def _investor(self, ctx: SymCtx, now: datetime) -> InvestorState:
        if self.investor_mode is not ProviderMode.LIVE:
            return InvestorState.STALE
        return investor_state(ctx.investor, ctx.series.cum_value, now, stale_limit_sec(now, self.p), self.p)

    def _program(self, ctx: SymCtx, now: datetime) -> ProgramState:
        if self.program_mode in (ProviderMode.UNAVAILABLE, ProviderMode.UNKNOWN):
            return ProgramState.UNAVAILABLE
        if ctx.program is None:
            return ProgramState.STALE
        return ctx.program.state(now, ctx.series.cum_value, stale_limit_sec(now, self.p), self.p)

    def _kpr_notional(self) -> float:
        total = 0.0
        for sym in self._active:
            ctx = self.syms[sym]
            if ctx.pos is not None and ctx.pos.qty > 0:
                total += ctx.pos.qty * (ctx.series.last_price or ctx.pos.fill)
            if ctx.order is not None:
                total += max(0, ctx.order.qty - ctx.order.filled) * ctx.order.limit
        return total

    def _sector_open(self, ctx: SymCtx) -> int:
        return sum(
            1
            for s in self._active
            if s != ctx.symbol
            and self.syms[s].sector == ctx.sector
            and self.syms[s].state in (State.ENTRY_PENDING, State.IN_POSITION)
        )

    # ================================================================== premarket

    def premarket(
        self, now: datetime, caches: Iterable[SymbolCache], dropped: Mapping[str, str] | None = None
    ) -> Output:
        """P1: load the day's universe caches (:func:`strategies.kpr.universe.build_symbol_cache`)."""
        out = Output()
        day = kst(now).date()
        if self.day is not None and self.day != day:
            keep = {s: c for s, c in self.syms.items() if c.pos is not None and c.pos.qty > 0}
            modes = (self.investor_mode, self.program_mode)
            self._reset(day)
            self.investor_mode, self.program_mode = modes
            for sym, c in keep.items():
                c.series = MinuteSeries(day)
                self.syms[sym] = c
                self.tiers.add(sym, Tier.HOT)
                self._active.add(sym)
        self.day = day
        items = sorted(caches, key=lambda c: c.symbol)
        n = max(1, len(items))
        start = max(now, at(day, self.p.session_start))
        for i, cache in enumerate(items):
            ctx = self.syms.get(cache.symbol)
            if ctx is None:
                ctx = self._new_ctx(cache.symbol, cache)
            else:
                ctx.cache, ctx.sector, ctx.market = cache, cache.sector, cache.market
                if ctx.pos is not None and ctx.pos.recovered:
                    ctx.pos.bucket = vol_bucket(cache.atr20, ctx.pos.fill, self.p)
                    ctx.pos.target_r = target_r(ctx.pos.bucket, self.p)
            if ctx.next_poll is None:
                self._schedule(ctx, start + timedelta(seconds=self.p.cold_poll_sec * i / n))
        out.log(
            ReasonCode.KPR_PREMARKET,
            None,
            now,
            universe=len(items),
            dropped=len(dropped or {}),
            hot_max=self.p.hot_max,
            warm_max=self.p.warm_max,
        )
        if dropped:
            out.log(ReasonCode.KPR_UNIVERSE_DROP, None, now, dropped=dict(sorted(dropped.items())))
        return out

    def mark_entered(self, now: datetime, symbols: Iterable[str]) -> Output:
        """Symbols KPR already entered today (before a restart): no re-entry (§2.4 DONE)."""
        out = Output()
        self._ensure_day(now)
        for sym in sorted(symbols):
            ctx = self.syms.get(sym) or self._new_ctx(sym, None)
            if ctx.state is State.IN_POSITION:
                continue
            self._done(ctx, ReasonCode.KPR_ENTERED_TODAY)
            out.log(ReasonCode.KPR_ENTERED_TODAY, sym, now)
        return out

    # ================================================================== providers

    def set_provider_mode(self, now: datetime, pillar: str, mode: ProviderMode, why: str = "") -> Output:
        """The wiring's probe result for ``investor`` or ``program`` (logged when it changes)."""
        out = Output()
        if pillar == "investor":
            changed, self.investor_mode = self.investor_mode is not mode, mode
        elif pillar == "program":
            changed, self.program_mode = self.program_mode is not mode, mode
        else:
            raise ValueError(f"unknown pillar {pillar!r}")
        if changed:
            out.log(
                ReasonCode.KPR_PROVIDER_MODE,
                None,
                now,
                pillar=pillar,
                mode=mode.value,
                why=why,
                investor=self.investor_mode.value,
                program=self.program_mode.value,
                pillars=self.pillars,
            )
            if pillar == "program" and mode is ProviderMode.UNAVAILABLE:
                out.log(ReasonCode.KPR_PROGRAM_UNAVAILABLE, None, now, why=why, pillars=2)
        return out

    @property
    def pillars(self) -> int:
        return 2 if self.program_mode in (ProviderMode.UNAVAILABLE, ProviderMode.UNKNOWN) else 3

    # ================================================================== market data

    def on_bars(self, symbol: str, bars: Iterable[Any], now: datetime, source: str = "rest") -> Output:
        """Several completed 1m bars of one symbol, oldest first (a REST poll)."""
        out = Output()
        for b in sorted(bars, key=bar_start):
            out.extend(self.on_bar(symbol, b, now, source))
        ctx = self.syms.get(symbol)
        if ctx is not None and source == "rest":
            ctx.degraded = False
        return out

    def on_bar(self, symbol: str, bar: Any, now: datetime, source: str = "ws") -> Output:
        """One completed 1m bar (SDK BarBuilder → ``ws``, REST proxy → ``rest``): setups, acceptance,
        entries; exits on its extremes for a REST bar; tier criteria."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None or self.day is None:
            return out
        s = ctx.series
        switched = ctx.source is not None and ctx.source != source
        before = (s.vwap_value, s.last_final_minute)
        m = s.upsert_bar(bar)
        if m is None or m < SESSION_OPEN_MINUTE:
            return out
        if switched:
            self._continuity(ctx, source, before, m, now, out)
        ctx.source = source
        if m <= ctx.last_eval_minute:
            return out
        ctx.last_eval_minute = m
        bv = s.bar(m)
        assert bv is not None
        bar_end = at(self.day, time(0)) + timedelta(minutes=m + 1)
        if ctx.state is State.IN_POSITION and ctx.pos is not None and source == "rest":
            self._position_range(ctx, bv.low, bv.high, now, out)
        self._fsm_bar(ctx, bv, bar_end, now, out)
        self._observe(ctx, now, out)
        return out

    def _continuity(
        self, ctx: SymCtx, source: str, before: tuple[float | None, int | None], m: int, now: datetime, out: Output
    ) -> None:
        vwap_before, last_before = before
        vwap_after = ctx.series.vwap_value
        gap = 0 if last_before is None else max(0, m - last_before - 1)
        out.log(
            ReasonCode.KPR_VWAP_CONTINUITY,
            ctx.symbol,
            now,
            source_from=ctx.source,
            source_to=source,
            vwap_before=vwap_before,
            vwap_after=vwap_after,
            delta_pct=None if not vwap_before or vwap_after is None else round(vwap_after / vwap_before - 1, 6),
            gap_minutes=gap,
            bars=len(ctx.series.final_minutes),
            ok=gap == 0,
        )

    def on_trade(self, symbol: str, price: float, qty: float, ts: datetime, aggressor: Any = None) -> Output:
        """One trade of a streamed (HOT) symbol: in-progress minute, tick pressure, price exits."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None or self.day is None or not ctx.series.add_trade(ts, price, qty):
            return out
        if ctx.streamed and ctx.imbalance is not None:
            ctx.imbalance.add(ts, price, qty, aggressor)
        if ctx.state is State.IN_POSITION and ctx.pos is not None:
            self._position_range(ctx, price, price, ts, out)
        return out

    def on_quote(self, symbol: str, ts: datetime, bid: float | None, ask: float | None) -> Output:
        ctx = self.syms.get(symbol)
        if ctx is not None and (bid is not None or ask is not None):
            ctx.bid, ctx.ask, ctx.quote_ts = bid, ask, ts
        return Output()

    def on_index(self, now: datetime, market: str, last: float | None, prior_close: float | None) -> Output:
        """KOSPI/KOSDAQ level vs prior close (the P8 regime adder)."""
        self.index[market.upper()] = (last, prior_close)
        return Output()

    def on_account(
        self,
        now: datetime,
        nav: float | None,
        day_pnl_pct: float | None = None,
        *,
        buyable_cash: float | None = None,
        halted: bool = False,
    ) -> Output:
        """``/state/account``: NAV, day P&L, buyable cash; ``halted`` = OMS halt / safe mode."""
        self._ensure_day(now)
        self.nav, self.day_pnl_pct, self.cash, self.halted = nav, day_pnl_pct, buyable_cash, halted
        return Output()

    def on_market_program(
        self,
        now: datetime,
        market: str,
        *,
        buy_cum: float | None = None,
        sell_cum: float | None = None,
        net_cum: float | None = None,
    ) -> Output:
        """A market-wide program sample (KMP K7 method) for the P8 outflow adder."""
        out = Output()
        how = self.market_program.update(market, now, buy_cum, sell_cum, net_cum)
        out.log(
            ReasonCode.KPR_MARKET_PROGRAM,
            None,
            now,
            market=market.upper(),
            sample=how,
            **self.market_program.fields(now),
        )
        return out

    def on_market_program_failure(self, now: datetime, market: str) -> Output:
        self.market_program.fail(market)
        self.failures[f"market_program:{market.upper()}"] += 1
        return Output()

    def on_investor(self, symbol: str, now: datetime, foreign_value: float | None, inst_value: float | None) -> Output:
        """Today's foreign/institutional net buy (₩) of ``symbol``; None values = no today's row."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            return out
        ctx.investor_asked = now
        if foreign_value is None or inst_value is None:
            return out
        ctx.investor = InvestorReading(now, float(foreign_value), float(inst_value))
        ctx.degraded = False
        state = classify_investor(ctx.investor.foreign, ctx.investor.inst, ctx.series.cum_value, self.p)
        if state is not ctx.investor_state:
            ctx.investor_state = state
            out.log(
                ReasonCode.KPR_INVESTOR,
                symbol,
                now,
                investor=state.value,
                foreign=foreign_value,
                inst=inst_value,
                tv=ctx.series.cum_value,
            )
        pos = ctx.pos
        if state is InvestorState.DISTRIBUTE and ctx.state is State.IN_POSITION and pos and not pos.flow_raised:
            self._flow_deterioration(ctx, now, out)
        return out

    def on_program(self, symbol: str, now: datetime, net_value: float | None) -> Output:
        """Cumulative program net buy (₩) of ``symbol`` (REST or WS provider)."""
        ctx = self.syms.get(symbol)
        if ctx is not None:
            ctx.program_asked = now
            if net_value is not None:
                if ctx.program is None:
                    ctx.program = ProgramTracker()
                ctx.program.add(now, float(net_value))
        return Output()

    def on_data_failure(self, now: datetime, source: str, symbol: str | None = None) -> Output:
        """A REST call failed or was throttled: the data stays stale; in a micro-window the symbol's
        refresh counts as degraded (0.85 size factor) until its next successful refresh (P20)."""
        self.failures[source] += 1
        ctx = self.syms.get(symbol) if symbol else None
        if ctx is not None:
            if source == "investor":
                ctx.investor_asked = now
            elif source == "program":
                ctx.program_asked = now
            if in_micro_window(now, self.p):
                ctx.degraded = True
        return Output()

    # ================================================================== FSM on a completed bar

    def _fsm_bar(self, ctx: SymCtx, bv: BarView, bar_end: datetime, now: datetime, out: Output) -> None:
        if ctx.state is State.INVALIDATED:
            self._cooldown(ctx, bar_end, out)
        if ctx.state is State.IDLE:
            self._detect(ctx, bv, bar_end, out)
            return
        if ctx.state not in ARMED or ctx.acc is None:
            return
        acc = ctx.acc
        events = acc.on_bar(bv.high, bv.low, bv.close, bar_end, self.p)
        setup = acc.setup
        if Event.INVALIDATED in events:
            self._set_state(ctx, State.INVALIDATED)
            ctx.invalidated_at = bar_end
            ref = bv.low if self.p.invalidation_on == "low" else bv.close
            out.log(
                ReasonCode.KPR_INVALIDATED,
                ctx.symbol,
                bar_end,
                on=self.p.invalidation_on,
                price=ref,
                stop_level=round(setup.stop_level, 4),
                closes=acc.closes,
            )
            return
        if Event.EXPIRED in events:
            self._set_state(ctx, State.IDLE)
            ctx.acc = None
            out.log(ReasonCode.KPR_SETUP_EXPIRED, ctx.symbol, bar_end, closes=acc.closes)
            return
        if Event.ACCEPTING in events:
            self._set_state(ctx, State.ACCEPTING)
            self.funnel["accepting"] += 1
            out.log(ReasonCode.KPR_ACCEPTING, ctx.symbol, bar_end, high=bv.high, reclaim=round(setup.reclaim, 4))
        if Event.CLOSE not in events:
            return
        adders = self._adders(ctx, now)
        need = required_closes(adders, self.p)
        out.log(
            ReasonCode.KPR_ACCEPT_CLOSE,
            ctx.symbol,
            bar_end,
            close=bv.close,
            reclaim=round(setup.reclaim, 4),
            closes=acc.closes,
            required=need,
            adders=adders,
        )
        if acc.closes >= need:
            self._try_enter(ctx, bv, bar_end, now, adders, need, out)

    def _detect(self, ctx: SymCtx, bv: BarView, bar_end: datetime, out: Output) -> None:
        s = ctx.series
        if kst(bar_end).time() >= self.p.setup_cutoff or self.eod:
            return
        vwap = s.vwap_value
        if s.hod is None or s.hod_minute is None or s.lod is None or vwap is None or s.hod <= 0:
            return
        chk = check_setup(s.hod, s.hod_minute, bv.close, vwap, bv.minute, self.p)
        if chk.type is None:
            return
        setup = lock_setup(chk, s.lod, s.hod, vwap, bv.close, bar_end, bv.minute, self.p)
        ctx.acc = Acceptance(setup)
        ctx.closes_met = ctx.confirmed = False
        ctx.last_confidence = None
        ctx.retry_after = None
        self._set_state(ctx, State.SETUP_DETECTED)
        self.funnel["setups"] += 1
        code = ReasonCode.KPR_SETUP_PANIC if setup.type.value == "PANIC" else ReasonCode.KPR_SETUP_DRIFT
        out.log(code, ctx.symbol, bar_end, **setup.fields(), tier=self.tiers.of(ctx.symbol).value)

    def _cooldown(self, ctx: SymCtx, now: datetime, out: Output) -> None:
        if ctx.invalidated_at is None:
            return
        if (now - ctx.invalidated_at).total_seconds() >= self.p.invalidation_cooldown_min * 60 - 1e-6:
            self._set_state(ctx, State.IDLE)
            ctx.acc = None
            ctx.invalidated_at = None
            out.log(ReasonCode.KPR_COOLDOWN_END, ctx.symbol, now)

    def _adders(self, ctx: SymCtx, now: datetime) -> list[str]:
        return acceptance_adders(
            micro_is_proxy=self._imbalance(ctx, now) is None,
            investor_stale=self._investor(ctx, now) is InvestorState.STALE,
            t=kst(now).time(),
            index_change=self._index_change(ctx.market),
            program_outflow=self.market_program.outflow(now),
            program_unavailable=self.pillars == 2,
            p=self.p,
        )

    # ================================================================== entry

    def _try_enter(
        self,
        ctx: SymCtx,
        bv: BarView,
        bar_end: datetime,
        now: datetime,
        adders: list[str],
        need: int,
        out: Output,
    ) -> None:
        p = self.p
        acc = ctx.acc
        assert acc is not None
        setup = acc.setup
        if not ctx.closes_met:
            ctx.closes_met = True
            self.funnel["closes_met"] += 1
        age = (now - bar_end).total_seconds()
        base: dict[str, Any] = {"closes": acc.closes, "required": need, "adders": adders, "bar_close": bv.close}
        if age > p.entry_bar_max_age_sec:
            out.log(ReasonCode.KPR_BLOCK_STALE_BAR, ctx.symbol, now, **base, bar_age_sec=round(age, 1))
            return
        imb = self._imbalance(ctx, now)
        s = ctx.series
        cache = ctx.cache
        surge = volume_surge(
            s.cum_volume, cache.adv20 if cache else None, cache.expected_frac(bv.minute) if cache else None
        )
        med, n_prior = s.median_volume_before(bv.minute, p.bar_strength_lookback)
        micro = micro_pressure(imb, bv, setup.reclaim, surge, med, n_prior, p)
        conf = confidence(self._investor(ctx, now), micro, self._program(ctx, now), ctx.degraded)
        t = kst(now).time()
        bid, ask = self._fresh_quote(ctx, now)
        lim = entry_limit(ask, s.last_price, p)
        spread = (ask - bid) / ((ask + bid) / 2) if bid and ask and ask >= bid else None
        tod = tod_mult(t, p)
        size = None
        if lim is not None and self.nav:
            size = position_size(
                self.nav,
                lim[0],
                setup.stop_level,
                confidence_mult(conf.label, p),
                stale_mult(conf.stale, p),
                tod,
                p,
                kpr_notional=self._kpr_notional(),
                buyable_cash=self.cash,
            )
        res = check_gates(
            GateInputs(
                now=now,
                t=t,
                sector_open=self._sector_open(ctx),
                confidence=conf.label,
                retry_after=ctx.retry_after,
                spread_pct=spread,
                nav=self.nav,
                halted=self.halted or lim is None,
                qty=size.qty if size else 0,
            ),
            p,
        )
        fields = {
            **base,
            **conf.fields(),
            "tod": tod,
            "limit": lim[0] if lim else None,
            "limit_ref": lim[1] if lim else None,
            "stop_level": round(setup.stop_level, 4),
            "spread_pct": None if spread is None else round(spread, 6),
            "size": size.fields() if size else None,
            "sector": ctx.sector,
        }
        if conf.label.value != ctx.last_confidence:
            ctx.last_confidence = conf.label.value
            out.log(
                ReasonCode.KPR_CONFIDENCE,
                ctx.symbol,
                now,
                **conf.fields(),
                provider_investor=self.investor_mode.value,
                provider_program=self.program_mode.value,
            )
        if conf.label in (Confidence.GREEN, Confidence.YELLOW) and not ctx.confirmed:
            ctx.confirmed = True
            self.funnel["confirmed"] += 1
        if not res.ok:
            assert res.code is not None
            out.log(res.code, ctx.symbol, now, blocked=True, **fields, **res.detail)
            return
        assert lim is not None and size is not None
        key = self._key(ctx.symbol, "ENTER", bar_end - MINUTE)
        action = EnterAction(
            symbol=ctx.symbol,
            qty=size.qty,
            limit_price=float(lim[0]),
            stop_px=setup.stop_level,
            confidence=conf.label.value,
            idempotency_key=key,
            ts=now,
            cancel_after_sec=p.order_timeout_sec,
        )
        out.act(action)
        self.entries.append(action)
        self.funnel["entries"] += 1
        ctx.order = PendingEntry(size.qty, float(lim[0]), setup.stop_level, now, key, conf.label.value)
        ctx.retry_after = None
        self._set_state(ctx, State.ENTRY_PENDING)
        out.log(ReasonCode.KPR_ENTRY, ctx.symbol, now, **{**setup.fields(), **fields}, key=key, tries=acc.tries)

    # ================================================================== positions and exits

    def _position_range(self, ctx: SymCtx, low: float, high: float, now: datetime, out: Output) -> None:
        pos = ctx.pos
        if pos is None or pos.qty <= 0 or pos.exit_sent_ts is not None:
            return
        kind = price_exit(pos, low, high, now)
        if kind is None:
            return
        fields: dict[str, Any] = {
            "low": low,
            "high": high,
            "fill": pos.fill,
            "stop": round(pos.stop, 4),
            "r": round(pos.r, 4),
        }
        if kind is ExitKind.STOP:
            self._exit(ctx, ReasonCode.KPR_X_STOP, now, out, **fields)
        elif kind is ExitKind.TARGET:
            self._exit(
                ctx,
                ReasonCode.KPR_X_TARGET,
                now,
                out,
                **fields,
                target=round(pos.target_px, 4),
                target_r=pos.target_r,
                bucket=pos.bucket.value,
            )
        elif kind is ExitKind.PARTIAL:
            pos.partial_done = True
            self._reduce(
                ctx,
                partial_qty(pos.qty, self.p.partial_frac),
                ReasonCode.KPR_X_TARGET_PARTIAL,
                now,
                out,
                **fields,
                partial=round(pos.partial_px, 4),
            )
        else:
            self._exit(ctx, ReasonCode.KPR_X_TIME, now, out, time_stop=pos.time_stop_ts.isoformat(), **fields)

    def _exit(
        self, ctx: SymCtx, reason: ReasonCode, now: datetime, out: Output, *, retry: bool = False, **fields: Any
    ) -> None:
        pos = ctx.pos
        if pos is None or pos.qty <= 0:
            return
        if ctx.order is not None and not ctx.order.cancel_sent:
            ctx.order.cancel_sent = True
            out.act(CancelAction(ctx.symbol, reason, self._key(ctx.symbol, "CANCEL", now, reason.value), now))
        bid, _ = self._fresh_quote(ctx, now)
        limit, ref = exit_limit_price(bid, ctx.series.last_price, self.p)
        ctx.exits_sent += 1
        key = self._key(ctx.symbol, "EXIT", now, f"{reason.value}-{ctx.exits_sent}")
        out.act(ExitAction(ctx.symbol, reason, None if limit is None else float(limit), ref, key, now))
        pos.exit_sent_ts = now
        pos.exit_reason = reason.value
        pos.exit_cancel_sent = False
        out.log(
            ReasonCode.KPR_EXIT_RETRY if retry else reason,
            ctx.symbol,
            now,
            reason=reason.value,
            qty=pos.qty,
            limit=limit,
            ref=ref,
            key=key,
            **fields,
        )

    def _reduce(self, ctx: SymCtx, qty: int, reason: ReasonCode, now: datetime, out: Output, **fields: Any) -> None:
        pos = ctx.pos
        if pos is None or qty < 1 or qty >= pos.qty:
            return
        bid, _ = self._fresh_quote(ctx, now)
        limit, ref = exit_limit_price(bid, ctx.series.last_price, self.p)
        key = self._key(ctx.symbol, "REDUCE", now, reason.value)
        out.act(ReduceAction(ctx.symbol, qty, reason, None if limit is None else float(limit), ref, key, now))
        out.log(reason, ctx.symbol, now, qty=qty, held=pos.qty, limit=limit, ref=ref, key=key, **fields)

    def _flow_deterioration(self, ctx: SymCtx, now: datetime, out: Output) -> None:
        """P19: stop → max(stop, fill); exit at once if last ≤ it; optional REDUCE 50%."""
        pos = ctx.pos
        assert pos is not None
        old = pos.stop
        pos.stop = flow_stop(pos)
        pos.flow_raised = True
        out.log(
            ReasonCode.KPR_X_FLOW,
            ctx.symbol,
            now,
            stop_from=round(old, 4),
            stop_to=round(pos.stop, 4),
            stop_raised=True,
        )
        out.act(
            ModifyRiskAction(
                ctx.symbol,
                pos.stop,
                pos.time_stop_ts,
                self._key(ctx.symbol, "MODIFY_RISK", now, "flow"),
                now,
                ReasonCode.KPR_X_FLOW.value,
            )
        )
        last = ctx.series.last_price
        if last is not None and last <= pos.stop + 1e-9:
            self._exit(ctx, ReasonCode.KPR_X_FLOW, now, out, last=last, stop=pos.stop)
        elif self.p.flow_reduce:
            self._reduce(ctx, partial_qty(pos.qty, self.p.flow_reduce_frac), ReasonCode.KPR_X_FLOW_REDUCE, now, out)

    # ================================================================== OMS replies, orders, fills

    def on_intent_result(
        self,
        symbol: str,
        now: datetime,
        status: str,
        *,
        intent_type: str = "ENTER",
        modified_qty: int | None = None,
        cooldown_until: datetime | None = None,
        reason_code: str | None = None,
        message: str = "",
        allocation_qty: int | None = None,
    ) -> Output:
        """The OMS's reply (C4) to an intent this engine produced. For a rejected EXIT/REDUCE the wiring
        passes KPR's allocation in the symbol as the OMS has it now: 0 (or NO_ALLOCATION) means the
        position is gone; NOTHING_TO_SELL with shares left means a sell is still working — wait for it."""
        out = Output()
        ctx = self.syms.get(symbol)
        status = str(status).upper()
        kind = str(intent_type).upper()
        if ctx is None:
            out.log(ReasonCode.KPR_DATA_IGNORED, symbol, now, intent_type=kind, status=status, message=message)
            return out
        if kind in ("EXIT", "REDUCE"):
            out.log(
                ReasonCode.KPR_INTENT_RESULT,
                symbol,
                now,
                intent_type=kind,
                status=status,
                reason_code=reason_code,
                message=message,
            )
            gone = reason_code == ReasonCode.NO_ALLOCATION.value or allocation_qty == 0
            if status == "REJECTED" and gone and ctx.pos is not None:
                self._close_position(ctx, now, ReasonCode.KPR_X_EXTERNAL, out, why=reason_code)
            return out
        if kind != "ENTER":
            out.log(
                ReasonCode.KPR_INTENT_RESULT,
                symbol,
                now,
                intent_type=kind,
                status=status,
                reason_code=reason_code,
                message=message,
            )
            return out
        order = ctx.order
        if order is None or ctx.state is not State.ENTRY_PENDING or order.filled > 0:
            if status == "MODIFIED" and order is not None and modified_qty:
                order.qty = modified_qty
            out.log(
                ReasonCode.KPR_ENTRY_ACK,
                symbol,
                now,
                status=status,
                modified_qty=modified_qty,
                state=ctx.state.value,
                message=message,
            )
            return out
        if status in ("ACCEPTED", "EXECUTED", "MODIFIED"):
            if status == "MODIFIED" and modified_qty:
                order.qty = modified_qty
            out.log(ReasonCode.KPR_ENTRY_ACK, symbol, now, status=status, qty=order.qty, message=message)
        elif status == "DEFERRED":
            ctx.order = None
            ctx.retry_after = cooldown_until or now + timedelta(seconds=60)
            self._set_state(ctx, State.ACCEPTING)
            out.log(
                ReasonCode.KPR_ENTRY_DEFERRED,
                symbol,
                now,
                retry_after=ctx.retry_after.isoformat(),
                reason_code=reason_code,
                message=message,
            )
        else:
            ctx.order = None
            self._entry_failed(
                ctx, now, ReasonCode.KPR_ENTRY_REJECTED, out, status=status, reason_code=reason_code, message=message
            )
        return out

    def _entry_failed(self, ctx: SymCtx, now: datetime, code: ReasonCode, out: Output, **fields: Any) -> None:
        acc = ctx.acc
        tries = 1 if acc is None else acc.tries + 1
        if acc is not None:
            acc.tries = tries
        final = acc is None or tries >= self.p.max_entry_tries or self.eod
        if final:
            self._done(ctx, code)
        else:
            self._set_state(ctx, State.ACCEPTING)
        out.log(code, ctx.symbol, now, tries=tries, final=final, **fields)

    def on_order_closed(
        self, symbol: str, now: datetime, filled_qty: int, side: str = "BUY", state: str = "FILLED"
    ) -> Output:
        """A KPR order reached a terminal state at the OMS. A buy ends the entry; a sell that ended
        unfilled (cancelled, expired, rejected) while an exit is pending re-sends the exit at once."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            return out
        if str(side).upper() not in _BUY:
            pos = ctx.pos
            ended_unfilled = str(state).upper() != "FILLED" and pos is not None and pos.qty > 0
            if ended_unfilled and pos is not None and pos.exit_sent_ts is not None:
                if (now - pos.exit_sent_ts).total_seconds() < EXIT_RESENT_WITHIN_S:
                    return out  # a second sell (a REDUCE) ended with the first: the exit was just re-sent for all
                reason = ReasonCode(pos.exit_reason) if pos.exit_reason else ReasonCode.KPR_X_EXTERNAL
                pos.exit_sent_ts = None
                self._exit(ctx, reason, now, out, retry=True, sell_order=str(state).upper())
            return out
        if ctx.order is None:
            return out
        order = ctx.order
        ctx.order = None
        if ctx.state is State.ENTRY_PENDING and order.filled == 0 and filled_qty == 0:
            self._entry_failed(
                ctx,
                now,
                ReasonCode.KPR_MISSED_FILL,
                out,
                ordered=order.qty,
                limit=order.limit,
                waited_sec=round((now - order.ts).total_seconds(), 1),
            )
        elif order.filled < order.qty:
            out.log(ReasonCode.KPR_PARTIAL_KEPT, symbol, now, filled=order.filled, ordered=order.qty)
        return out

    def on_fill(self, symbol: str, side: str, qty: int, price: float, ts: datetime) -> Output:
        """A KPR fill from the stream (buys and sells)."""
        out = Output()
        ctx = self.syms.get(symbol)
        if ctx is None:
            self._ensure_day(ts)
            ctx = self._new_ctx(symbol, None)
        if str(side).upper() in _BUY:
            self._buy_fill(ctx, qty, price, ts, out)
        else:
            self._sell_fill(ctx, qty, price, ts, out)
        return out

    def _buy_fill(self, ctx: SymCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        order = ctx.order
        if order is not None:
            order.filled += qty
            order.cost += qty * price
        pos = ctx.pos
        late = order is None
        if pos is None or pos.qty <= 0:
            stop = (
                order.stop
                if order
                else (ctx.acc.setup.stop_level if ctx.acc else price * (1 - self.p.recovered_stop_pct))
            )
            pos = open_position(ctx.symbol, qty, price, ts, stop, ctx.cache.atr20 if ctx.cache else None, self.p)
            pos.bought = qty
            ctx.pos = pos
            ctx.proceeds = 0.0
            self._set_state(ctx, State.IN_POSITION)
            self.funnel["fills"] += 1
            out.log(
                ReasonCode.KPR_FILL,
                ctx.symbol,
                ts,
                side="BUY",
                qty=qty,
                price=price,
                stop=round(stop, 4),
                r=round(pos.r, 4),
                partial=round(pos.partial_px, 4),
                target=round(pos.target_px, 4),
                bucket=pos.bucket.value,
                time_stop=pos.time_stop_ts.isoformat(),
                late=late,
            )
            out.act(
                ModifyRiskAction(
                    ctx.symbol, stop, pos.time_stop_ts, self._key(ctx.symbol, "MODIFY_RISK", ts, "fill"), ts
                )
            )
            self._observe(ctx, ts, out)
        else:
            cost = pos.fill * pos.qty + price * qty
            pos.qty += qty
            pos.bought += qty
            pos.fill = cost / pos.qty
            pos.r = risk_per_share(pos.fill, pos.initial_stop)
            out.log(
                ReasonCode.KPR_FILL,
                ctx.symbol,
                ts,
                side="BUY",
                qty=qty,
                price=price,
                avg=round(pos.fill, 4),
                total=pos.qty,
            )
        if self.eod and pos.exit_sent_ts is None:
            self._exit(ctx, ReasonCode.KPR_X_EOD, ts, out, late_fill=True)

    def _sell_fill(self, ctx: SymCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        pos = ctx.pos
        if pos is None:
            out.log(ReasonCode.KPR_DATA_IGNORED, ctx.symbol, ts, reason="sell fill without a KPR position", qty=qty)
            return
        pos.qty -= qty
        pos.sold += qty
        ctx.proceeds += qty * price
        out.log(
            ReasonCode.KPR_FILL,
            ctx.symbol,
            ts,
            side="SELL",
            qty=qty,
            price=price,
            left=max(0, pos.qty),
            reason=pos.exit_reason,
        )
        if pos.qty <= 0:
            self._close_position(ctx, ts, None, out)

    def _close_position(self, ctx: SymCtx, now: datetime, code: ReasonCode | None, out: Output, **fields: Any) -> None:
        pos = ctx.pos
        assert pos is not None
        pnl = ctx.proceeds - pos.sold * pos.fill
        out.log(
            code or ReasonCode.KPR_POSITION_CLOSED,
            ctx.symbol,
            now,
            reason=pos.exit_reason,
            sold=pos.sold,
            realized_pnl=round(pnl, 2),
            **fields,
        )
        ctx.pos = None
        ctx.order = None
        self._done(ctx, code or ReasonCode.KPR_POSITION_CLOSED)
        self._observe(ctx, now, out)

    def on_position_recovered(
        self,
        symbol: str,
        qty: int,
        avg: float,
        now: datetime,
        *,
        stop_px: float | None = None,
        initial_stop_px: float | None = None,
        entry_ts: datetime | None = None,
        time_stop_ts: datetime | None = None,
        partial_done: bool = False,
        sector: str | None = None,
    ) -> Output:
        """A KPR allocation from the OMS at start: manage its exits (stop, targets, time stop, 15:15)."""
        out = Output()
        self._ensure_day(now)
        ctx = self.syms.get(symbol) or self._new_ctx(symbol, None, sector)
        if ctx.pos is not None and ctx.pos.qty > 0:
            return out
        stop = stop_px or initial_stop_px or avg * (1 - self.p.recovered_stop_pct)
        entered = entry_ts or now
        pos = open_position(
            symbol,
            qty,
            avg,
            entered,
            stop,
            ctx.cache.atr20 if ctx.cache else None,
            self.p,
            initial_stop=initial_stop_px or stop,
            time_stop_ts=time_stop_ts,
        )
        pos.partial_done = partial_done
        pos.recovered = True
        ctx.pos = pos
        ctx.proceeds = 0.0
        ctx.acc = None
        self._set_state(ctx, State.IN_POSITION)
        out.log(
            ReasonCode.KPR_POSITION_RECOVERED,
            symbol,
            now,
            qty=qty,
            avg=avg,
            stop=round(stop, 4),
            stop_from_oms=stop_px is not None,
            r=round(pos.r, 4),
            target=round(pos.target_px, 4),
            time_stop=pos.time_stop_ts.isoformat(),
            partial_done=partial_done,
        )
        if stop_px is None or time_stop_ts is None:
            out.act(
                ModifyRiskAction(
                    symbol,
                    stop,
                    pos.time_stop_ts,
                    self._key(symbol, "MODIFY_RISK", now, "recover"),
                    now,
                    ReasonCode.KPR_POSITION_RECOVERED.value,
                )
            )
        self._observe(ctx, now, out)
        if self.eod:
            self._exit(ctx, ReasonCode.KPR_X_EOD, now, out)
        return out

    # ================================================================== clock

    def on_clock(self, now: datetime) -> Output:
        """Time rules (order timeouts, cooldowns, 14:30 expiry, time stops, exit retries, 15:15) and
        the tier sweep. Call it every few seconds from the session start to 15:20."""
        out = Output()
        if self.day is None:
            return out
        t = kst(now).time()
        if t >= self.p.flatten_time and not self.eod:
            self.eod = True
            self._flatten(now, out)
        for sym in sorted(self._active):
            self._timers(self.syms[sym], now, t, out)
        if self._last_sweep is None or (now - self._last_sweep).total_seconds() >= self.p.retier_sec:
            self._last_sweep = now
            self._log_moves(self.tiers.sweep(now), now, out)
        return out

    def _timers(self, ctx: SymCtx, now: datetime, t: time, out: Output) -> None:
        st = ctx.state
        if st is State.INVALIDATED:
            self._cooldown(ctx, now, out)
        elif st in ARMED and (t >= self.p.setup_cutoff or self.eod):
            closes = ctx.acc.closes if ctx.acc else 0
            self._set_state(ctx, State.IDLE)
            ctx.acc = None
            out.log(ReasonCode.KPR_SETUP_EXPIRED, ctx.symbol, now, closes=closes)
            self._observe(ctx, now, out)
        order = ctx.order
        if order is not None:
            waited = (now - order.ts).total_seconds()
            limit = self.p.order_timeout_sec + self.p.order_cancel_grace_sec
            if not order.cancel_sent and waited >= limit:
                order.cancel_sent = True
                out.act(
                    CancelAction(
                        ctx.symbol, ReasonCode.KPR_MISSED_FILL, self._key(ctx.symbol, "CANCEL", now, "timeout"), now
                    )
                )
            elif order.cancel_sent and waited >= 3 * limit:
                out.extend(self.on_order_closed(ctx.symbol, now, order.filled))
                st = ctx.state
        pos = ctx.pos
        if st is not State.IN_POSITION or pos is None or pos.qty <= 0:
            return
        if pos.exit_sent_ts is not None:
            if (now - pos.exit_sent_ts).total_seconds() >= self.p.exit_retry_sec and kst(now).time() < MARKET_CLOSE:
                self._retry_exit(ctx, pos, now, out)
        elif now >= pos.time_stop_ts:
            self._exit(ctx, ReasonCode.KPR_X_TIME, now, out, time_stop=pos.time_stop_ts.isoformat(), fill=pos.fill)

    def _retry_exit(self, ctx: SymCtx, pos: Any, now: datetime, out: Output) -> None:
        """An exit still open ``exit_retry_sec`` after it was sent: its sell is cancelled first (a second EXIT
        while it works holds no shares to sell: ``NOTHING_TO_SELL``); the sell's end re-sends the exit at a
        fresh price (:meth:`on_order_closed`). Should that end not arrive (nothing was working any more), the
        next timer re-sends the exit itself."""
        reason = ReasonCode(pos.exit_reason) if pos.exit_reason else ReasonCode.KPR_X_EXTERNAL
        if pos.exit_cancel_sent:
            pos.exit_sent_ts = None
            self._exit(ctx, reason, now, out, retry=True)
            return
        pos.exit_cancel_sent = True
        pos.exit_sent_ts = now
        key = self._key(ctx.symbol, "CANCEL", now, f"exit-{ctx.exits_sent}")
        out.act(CancelAction(ctx.symbol, ReasonCode.KPR_EXIT_RETRY, key, now))
        out.log(ReasonCode.KPR_EXIT_RETRY, ctx.symbol, now, reason=reason.value, qty=pos.qty, cancel_sell=True, key=key)

    def _flatten(self, now: datetime, out: Output) -> None:
        """15:15 safety flatten: cancel working entries, exit every position, end open setups."""
        exited = []
        for sym in sorted(self._active):
            ctx = self.syms[sym]
            if ctx.order is not None and not ctx.order.cancel_sent and ctx.state is State.ENTRY_PENDING:
                ctx.order.cancel_sent = True
                out.act(CancelAction(sym, ReasonCode.KPR_X_EOD, self._key(sym, "CANCEL", now, "eod"), now))
            if ctx.state is State.IN_POSITION and ctx.pos is not None and ctx.pos.qty > 0:
                exited.append(sym)
                if ctx.pos.exit_sent_ts is None:  # an exit already working is retried by the timers
                    self._exit(ctx, ReasonCode.KPR_X_EOD, now, out)
        out.log(ReasonCode.KPR_X_EOD, None, now, flatten=True, positions=exited)

    # ================================================================== tiers, polling, stream

    def _view(self, ctx: SymCtx) -> TierView:
        s = ctx.series
        return TierView(
            drop_open=s.drop_from_open(),
            depth=s.depth(),
            range_expansion=range_expansion(s.day_range(), ctx.cache.atr20 if ctx.cache else None, self.p),
            protected=ctx.state in PROTECTED,
            in_position=ctx.state is State.IN_POSITION,
        )

    def _observe(self, ctx: SymCtx, now: datetime, out: Output) -> None:
        self._log_moves(self.tiers.observe(ctx.symbol, self._view(ctx), now), now, out)

    def _log_moves(self, moves: list[Move], now: datetime, out: Output) -> None:
        codes = {
            Tier.HOT: ReasonCode.KPR_TIER_HOT,
            Tier.WARM: ReasonCode.KPR_TIER_WARM,
            Tier.COLD: ReasonCode.KPR_TIER_COLD,
        }
        for mv in moves:
            ctx = self.syms[mv.symbol]
            out.log(
                codes[mv.new],
                mv.symbol,
                now,
                tier_from=mv.old.value,
                why=mv.why,
                reasons=list(mv.reasons),
                vwap=ctx.series.vwap_value,
                state=ctx.state.value,
            )
            if mv.new is Tier.COLD:
                continue
            cadence = warm_poll_sec(now, self.p)
            due = (ctx.last_poll or now) + timedelta(seconds=cadence)
            if mv.old is Tier.HOT:
                due = now
            if ctx.next_poll is None or due < ctx.next_poll:
                self._schedule(ctx, max(due, now))

    def _schedule(self, ctx: SymCtx, due: datetime) -> None:
        ctx.next_poll = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, ctx.symbol))

    def _streams(self, ctx: SymCtx) -> bool:
        return ctx.streamed and self.tiers.of(ctx.symbol) is Tier.HOT

    def take_due_polls(self, now: datetime) -> list[str]:
        """Symbols whose REST 1m bars are due now (WARM, COLD, and HOT without a stream slot);
        each is rescheduled at its tier's cadence (P1, P4, P20)."""
        out: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            due, _, sym = heapq.heappop(self._heap)
            ctx = self.syms.get(sym)
            if ctx is None or ctx.next_poll != due:
                continue
            if self._streams(ctx):
                ctx.next_poll = None
                continue
            out.append(sym)
            ctx.last_poll = now
            tier = self.tiers.of(sym)
            cadence = cold_poll_sec(now, self.p) if tier is Tier.COLD else warm_poll_sec(now, self.p)
            self._schedule(ctx, now + timedelta(seconds=cadence))
        return out

    def rest_start(self, symbol: str) -> datetime | None:
        """Start of the REST window for an incremental poll: the last final bar held (asked again, it may
        have grown), else the session start."""
        ctx = self.syms.get(symbol)
        if ctx is None or self.day is None:
            return None
        m = ctx.series.last_final_minute
        return at(self.day, self.p.session_start) if m is None else at(self.day, time(0)) + timedelta(minutes=m)

    def desired_stream(self, now: datetime) -> list[str]:
        """HOT symbols to hold on the stream (≤ ``hot_max``), best first; those denied a slot recently
        run on REST at the WARM cadence until ``slot_retry_sec`` passed (P4)."""
        ranked = []
        for sym in self.tiers.hot:
            ctx = self.syms[sym]
            if ctx.slot_denied_until is not None and now < ctx.slot_denied_until:
                continue
            order = {State.IN_POSITION: 0, State.ENTRY_PENDING: 1, State.ACCEPTING: 2, State.SETUP_DETECTED: 3}
            v = self.tiers.views.get(sym, TierView())
            ranked.append(
                ((order.get(ctx.state, 4), 0 if in_band(v.depth, self.p) else 1, -abs(v.drop_open or 0.0), sym), sym)
            )
        ranked.sort()
        return [s for _, s in ranked[: self.p.hot_max]]

    def keep_symbols(self) -> list[str]:
        """Streamed symbols in an active setup (the OMS must not evict them for another lease)."""
        return sorted(s for s in self.tiers.hot if self.syms[s].state in PROTECTED)

    def on_slots(self, now: datetime, granted: Iterable[str], denied: Mapping[str, str]) -> Output:
        """The stream's answer to a subscribe (or an eviction: ``denied`` with the OMS's reason)."""
        out = Output()
        granted = sorted(granted)
        for sym in granted:
            ctx = self.syms.get(sym)
            if ctx is None or ctx.streamed:
                continue
            ctx.streamed = True
            ctx.stream_since = now
            ctx.slot_denied_until = None
            ctx.imbalance = TickImbalance(self.p.tick_window_sec, self.p.tick_min_sec)
        for sym in sorted(denied):
            ctx = self.syms.get(sym)
            if ctx is None:
                continue
            self._unstream(ctx, now)
            ctx.slot_denied_until = now + timedelta(seconds=self.p.slot_retry_sec)
            out.log(
                ReasonCode.KPR_SLOT_DENIED,
                sym,
                now,
                reason=denied[sym],
                tier=self.tiers.of(sym).value,
                state=ctx.state.value,
                rest_cadence_sec=warm_poll_sec(now, self.p),
            )
        if granted or denied:
            out.log(
                ReasonCode.KPR_SLOTS,
                None,
                now,
                granted=granted,
                denied=dict(sorted(denied.items())),
                streamed=sum(1 for c in self.syms.values() if c.streamed),
            )
        return out

    def on_unsubscribed(self, now: datetime, symbols: Iterable[str]) -> Output:
        """KPR dropped these symbols from the stream: back to REST polling."""
        for sym in symbols:
            ctx = self.syms.get(sym)
            if ctx is not None:
                self._unstream(ctx, now)
        return Output()

    def _unstream(self, ctx: SymCtx, now: datetime) -> None:
        was = ctx.streamed
        ctx.streamed = False
        ctx.stream_since = None
        ctx.imbalance = None
        if was or ctx.next_poll is None:
            self._schedule(ctx, now)

    # ================================================================== provider polling plans

    def investor_due(self, now: datetime) -> list[str]:
        """HOT symbols whose InvestorSignal needs a refresh (only with a LIVE provider): every half
        stale limit, 60 s (15 s in micro-windows) (P9, P20)."""
        if self.investor_mode is not ProviderMode.LIVE:
            return []
        every = stale_limit_sec(now, self.p) / 2
        return sorted(
            s
            for s in self.tiers.hot
            if (a := self.syms[s].investor_asked) is None or (now - a).total_seconds() >= every
        )

    def program_due(self, now: datetime) -> list[str]:
        """Setup/accepting/position symbols whose ProgramSignal needs a REST refresh (never COLD, never bulk)."""
        if self.program_mode is not ProviderMode.REST:
            return []
        every = stale_limit_sec(now, self.p) / 2
        return sorted(
            s
            for s in self._active
            if self.syms[s].state in PROTECTED
            and ((a := self.syms[s].program_asked) is None or (now - a).total_seconds() >= every)
        )

    def quote_due(self) -> list[str]:
        """Symbols that want a REST quote for the entry limit / exit price: accepting, pending, held."""
        return sorted(
            s for s in self._active if self.syms[s].state in (State.ACCEPTING, State.ENTRY_PENDING, State.IN_POSITION)
        )

    # ================================================================== introspection

    @property
    def entry_signal_count(self) -> int:
        """ENTER intents produced today (§6 band: 3–10 per 400 tickers)."""
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        c: Counter[str] = Counter(ctx.state.value for ctx in self.syms.values())
        return dict(sorted(c.items()))

    def status(self, now: datetime) -> dict[str, Any]:
        return {
            "day": str(self.day) if self.day else None,
            "universe": len(self.syms),
            "tiers": self.tiers.counts(),
            "streamed": sorted(s for s, c in self.syms.items() if c.streamed),
            "states": self.counts(),
            "providers": {
                "investor": self.investor_mode.value,
                "program": self.program_mode.value,
                "pillars": self.pillars,
                "investor_signal": "LIVE" if self.investor_mode is ProviderMode.LIVE else "STALE",
                "market_program": self.market_program.fields(now),
            },
            "micro_window": in_micro_window(now, self.p),
            "funnel": dict(self.funnel),
            "entries": self.entry_signal_count,
            "positions": {
                s: {"qty": c.pos.qty, "fill": round(c.pos.fill, 2), "stop": round(c.pos.stop, 2)}
                for s, c in self.syms.items()
                if c.pos is not None and c.pos.qty > 0
            },
            "data_failures": dict(self.failures),
        }
