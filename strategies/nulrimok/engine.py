"""NulrimokEngine: the intraday and across-session rules of §3.3–§3.6 as one deterministic object.

No I/O, no clock of its own: every method takes the time explicitly (timezone-aware, KST) and returns
an :class:`~strategies.nulrimok.decisions.Output`. The package docstring (:mod:`strategies.nulrimok`)
has the call table; the wiring (:mod:`strategies.nulrimok.strategy`) feeds it the DSE's
:class:`~strategies.nulrimok.selection.Selection`, 30m bars, prices, fills and OMS replies.

**[resolved]** engine-level choices (the rule modules list theirs):

* Setups are evaluated on today's bars only (history bars seed SMA5/SMA10 and the volume means).
  A bar that ends the confirmation window unconfirmed is also checked as a new trigger; a bar that
  disarms (a close under the band) is not.
* One entry per ticker and day: a ticker whose position closed today is not entered again.
* ENTER replies: ACCEPTED/EXECUTED keep the order working; MODIFIED sets its qty (0 = rejected);
  DEFERRED re-sends at ``cooldown_until`` while the order window is open; REJECTED/CANCELLED end it.
* The order window closes at the close of the bar after the confirmation bar (or at ``entry_end``):
  a CANCEL is sent then (``cancel_after_sec`` at the OMS is the backstop).
* An EXIT without a fill for ``exit_retry_sec`` is cancelled and, once its order is closed, sent again
  at a fresh marketable limit (a refused EXIT is re-sent after ``exit_retry_sec``): never two sells.
* Held positions get 30m bars from 09:30 (REST) so N24/N25 and tag exits run before the slots come.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from strategies.nulrimok.bars30 import Bar30, bar_end
from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.decisions import (
    CancelAction,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
    idem_key,
)
from strategies.nulrimok.exits import (
    GRIND,
    MEAN_REVERSION,
    MOMENTUM,
    PositionState,
    avwap_breakdown,
    exit_limit,
    grind_tag,
    mean_reversion_tag,
    momentum_reached,
    no_reclaim,
    stop_hit,
    tag_exit,
    time_stop,
)
from strategies.nulrimok.monitor import Monitor, Rotation
from strategies.nulrimok.selection import PositionView, Selection, TickerRow, unknown_sector
from strategies.nulrimok.signals import ARMED, Confirm, Setup, confirm_check, entry_limit, trigger_check, volume_mean
from strategies.nulrimok.sizing import apply_caps, initial_stop, quantity, risk_budget_won

R = ReasonCode
HISTORY_BARS = 80
_BUY = ("BUY", "B")


@dataclass(slots=True)
class WorkingEntry:
    qty: int
    limit: float
    stop: float
    risk: float
    key: str
    submit_ts: datetime
    cancel_at: datetime
    bonus: bool
    filled: int = 0
    cost: float = 0.0
    open: bool = True
    cancel_sent: bool = False
    retry_at: datetime | None = None
    tries: int = 1


@dataclass(slots=True)
class SymCtx:
    symbol: str
    sector: str
    row: TickerRow | None = None
    bars: list[Bar30] = field(default_factory=list)
    setup: Setup = Setup.IDLE
    trigger_bar: Bar30 | None = None
    since_trigger: int = 0
    swing_low: float | None = None
    bonus: bool = False
    order: WorkingEntry | None = None
    pos: PositionState | None = None
    last_price: float | None = None
    last_ts: datetime | None = None
    closed_today: bool = False

    @property
    def band(self) -> tuple[float, float] | None:
        return self.row.band if self.row is not None else None

    @property
    def avwap_ref(self) -> float | None:
        return self.row.avwap_ref if self.row is not None else None

    def add_bar(self, bar: Bar30) -> bool:
        """Insert ``bar`` by start (a bar already there is replaced); True when it is new."""
        for i in range(len(self.bars) - 1, -1, -1):
            b = self.bars[i]
            if b.start == bar.start:
                self.bars[i] = bar
                return False
            if b.start < bar.start:
                self.bars.insert(i + 1, bar)
                break
        else:
            self.bars.insert(0, bar)
        del self.bars[:-HISTORY_BARS]
        return True

    def bars_through(self, bar: Bar30) -> list[Bar30]:
        return [b for b in self.bars if b.start <= bar.start]


class NulrimokEngine:
    def __init__(self, params: NulrimokParams | None = None, strategy_id: str = "NULRIMOK") -> None:
        self.p = params or NulrimokParams()
        self.sid = strategy_id.upper()
        self.day: date | None = None
        self.selection: Selection | None = None
        self.tier = "C"
        self.risk_mult = 0.0
        self.nav: float | None = None
        self.ctxs: dict[str, SymCtx] = {}
        self.monitor = Monitor(self.p.max_slots)
        self.entries_today = 0
        self.entry_signal_count = 0
        self._flow_exits_done = False
        self._time_stop_done = False
        self._refresh_done: set[time] = set()

    # ================================================================== helpers

    def _t(self, ts: datetime) -> time:
        return ts.astimezone(KST).time()

    def _ctx(self, symbol: str, sector: str | None = None) -> SymCtx:
        ctx = self.ctxs.get(symbol)
        if ctx is None:
            ctx = self.ctxs[symbol] = SymCtx(symbol, sector or unknown_sector(symbol))
        elif sector:
            ctx.sector = sector
        return ctx

    def _ensure_day(self, now: datetime, out: Output) -> None:
        day = now.astimezone(KST).date()
        if self.day == day:
            return
        self.day = day
        self.entries_today = 0
        self._flow_exits_done = False
        self._time_stop_done = False
        self._refresh_done = set()
        for ctx in self.ctxs.values():
            ctx.closed_today = False
            if ctx.pos is None:
                self._reset_setup(ctx)
            elif ctx.pos.seen_day is None or ctx.pos.seen_day < day:
                ctx.pos.sessions_after += 1
                ctx.pos.seen_day = day

    def _reset_setup(self, ctx: SymCtx) -> None:
        ctx.setup = Setup.IN_POSITION if ctx.pos is not None else Setup.IDLE
        ctx.trigger_bar = None
        ctx.since_trigger = 0
        ctx.swing_low = None
        ctx.bonus = False

    def _held(self) -> list[SymCtx]:
        return [c for c in self.ctxs.values() if c.pos is not None and c.pos.qty > 0]

    def _ref_price(self, ctx: SymCtx) -> float | None:
        if ctx.last_price is not None:
            return ctx.last_price
        return ctx.bars[-1].close if ctx.bars else None

    def _rotation(self, rot: Rotation | None, now: datetime, out: Output) -> None:
        if rot is not None and (rot.demoted or rot.promoted):
            out.log(R.NULRIMOK_ROTATE, rot.demoted, now, promoted=rot.promoted, reason=rot.reason)

    def _armed(self) -> set[str]:
        out = {s for s, c in self.ctxs.items() if c.setup in ARMED}
        for s, c in self.ctxs.items():
            band = c.band
            if band is not None and c.last_price is not None and band[0] <= c.last_price <= band[1]:
                out.add(s)
        return out

    # ================================================================== queries

    def state_of(self, symbol: str) -> Setup | None:
        ctx = self.ctxs.get(symbol)
        return ctx.setup if ctx else None

    def position_of(self, symbol: str) -> PositionState | None:
        ctx = self.ctxs.get(symbol)
        return ctx.pos if ctx else None

    def positions(self) -> list[PositionView]:
        """Open positions as the DSE sees them (N13)."""
        return [
            PositionView(
                symbol=c.symbol,
                qty=c.pos.qty,
                avg_price=c.pos.avg,
                entry_ts=c.pos.entry_ts,
                stop=c.pos.stop,
                setup_tag=c.pos.tag,
                sector=c.sector,
                timers={"sessions_after_entry": c.pos.sessions_after, "post_fill_bars": c.pos.post_bars},
            )
            for c in sorted(self._held(), key=lambda c: c.symbol)
            if c.pos is not None
        ]

    def position_snapshot(self, symbol: str) -> dict[str, Any] | None:
        pos = self.position_of(symbol)
        return pos.snapshot() if pos is not None and pos.qty > 0 else None

    def held_symbols(self) -> list[str]:
        return sorted(c.symbol for c in self._held())

    def desired_subscriptions(self, now: datetime) -> set[str]:
        """Stream symbols: from ``entry_start`` the active set (held included); none before (REST only)."""
        if self._t(now) < self.p.entry_start:
            return set()
        return set(self.monitor.active) | set(self.held_symbols())

    def bar_symbols(self, now: datetime) -> list[str]:
        """Symbols that need today's 30m bars now: held from the open, the active set from ``entry_start``."""
        out = set(self.held_symbols())
        if self._t(now) >= self.p.entry_start and self.tier != "C":
            out |= set(self.monitor.active)
        return sorted(out)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.ctxs.values():
            out[c.setup.value] = out.get(c.setup.value, 0) + 1
        return out

    def open_risk(self, sector: str | None = None) -> float:
        """N22 open risk: positions (qty·max(0, avg − stop)) plus working entries' planned risk."""
        total = 0.0
        for c in self.ctxs.values():
            if sector is not None and c.sector != sector:
                continue
            if c.pos is not None and c.pos.qty > 0:
                total += c.pos.open_risk
            if c.order is not None and c.order.open:
                total += max(0, c.order.qty - c.order.filled) * max(0.0, c.order.limit - c.order.stop)
        return total

    # ================================================================== the day's watchlist

    def on_selection(
        self, now: datetime, sel: Selection, history: Mapping[str, Sequence[Bar30]] | None = None
    ) -> Output:
        """The DSE's watchlist for today: tier, tradables, the monitoring set, position directives."""
        out = Output()
        self._ensure_day(now, out)
        self.selection = sel
        self.tier, self.risk_mult = sel.regime.tier, sel.regime.risk_mult
        keep = set(sel.tradable) | set(self.held_symbols())
        for sym in [s for s, c in self.ctxs.items() if s not in keep and c.order is None]:
            del self.ctxs[sym]
        for sym in keep:
            row = sel.rows.get(sym)
            ctx = self._ctx(sym, row.sector if row else None)
            ctx.row = row
            if ctx.pos is None and ctx.order is None:
                self._reset_setup(ctx)
            for b in (history or {}).get(sym, ()):
                ctx.add_bar(b)
        directives = {d.symbol: d for d in sel.positions}
        for ctx in self._held():
            pos = ctx.pos
            assert pos is not None
            row, d = ctx.row, directives.get(ctx.symbol)
            if row is not None:
                if row.avwap_ref:
                    pos.avwap_ref = row.avwap_ref
                if row.atr30m_est and not pos.atr30m:
                    pos.atr30m = row.atr30m_est
                pos.persistence = row.f.persistence
                pos.flow_flag = row.f.flow_reversal
            if d is not None:
                pos.flow_flag = d.flow_reversal_flag
            if pos.flow_flag:
                out.log(
                    R.NULRIMOK_FLOW_REVERSAL,
                    ctx.symbol,
                    now,
                    net_t1=row.f.net_t1 if row else None,
                    net_t2=row.f.net_t2 if row else None,
                    exit_by=self.p.flow_exit_deadline.isoformat("minutes"),
                )
        self.monitor.reset(now, self.held_symbols(), sel.tradable)
        out.log(
            R.NULRIMOK_MONITOR,
            None,
            now,
            session=sel.session.isoformat(),
            tier=self.tier,
            risk_mult=self.risk_mult,
            active=list(self.monitor.active),
            overflow=list(self.monitor.overflow),
            cap=self.monitor.cap,
        )
        return out

    # ================================================================== 30m bars

    def on_bar30(self, symbol: str, bar: Bar30, now: datetime) -> Output:
        out = Output()
        self._ensure_day(now, out)
        ctx = self.ctxs.get(symbol)
        if ctx is None or not ctx.add_bar(bar):
            return out
        if bar.day != self.day:
            return out
        if ctx.pos is not None and ctx.pos.qty > 0:
            self._position_bar(ctx, bar, now, out)
        elif self.monitor.is_active(symbol):
            self._setup_bar(ctx, bar, now, out)
        return out

    def _setup_bar(self, ctx: SymCtx, bar: Bar30, now: datetime, out: Output) -> None:
        band, ref = ctx.band, ctx.avwap_ref
        if band is None or ref is None or self.tier == "C" or ctx.closed_today:
            return
        lower, upper = band
        if ctx.setup is Setup.ORDER_WORKING and ctx.order is not None:
            if bar.close < lower * self.p.disarm_mult:
                out.log(R.NULRIMOK_DISARM, ctx.symbol, now, bar=bar.start.isoformat(), close=bar.close, working=True)
                self._cancel_entry(ctx, now, out, "DISARM")
            elif bar.end >= ctx.order.cancel_at:
                self._cancel_entry(ctx, now, out, "NEXT_BAR")
            return
        if ctx.setup is Setup.TRIGGERED and ctx.trigger_bar is not None:
            ctx.since_trigger += 1
            ctx.swing_low = min(ctx.swing_low if ctx.swing_low is not None else bar.low, bar.low)
            prev = self._prev_bar(ctx, bar)
            if prev is None:
                return
            res = confirm_check(bar, prev, ctx.since_trigger, ref, lower, upper, self.p)
            fields: dict[str, Any] = {
                "bar": bar.start.isoformat(),
                "k": ctx.since_trigger,
                "low": bar.low,
                "close": bar.close,
            }
            if res is Confirm.WAIT:
                return
            if res in (Confirm.A, Confirm.B):
                out.log(R.NULRIMOK_CONFIRM, ctx.symbol, now, rule=res.value, avwap_ref=round(ref, 2), **fields)
                self._try_enter(ctx, bar, now, out)
                return
            code = R.NULRIMOK_DISARM if res is Confirm.DISARM else R.NULRIMOK_NO_CONFIRM
            out.log(code, ctx.symbol, now, floor=round(lower * self.p.disarm_mult, 2), **fields)
            self._reset_setup(ctx)
            if res is Confirm.DISARM:
                return
        if ctx.setup is Setup.IDLE:
            chk = trigger_check(ctx.bars_through(bar), lower, upper, self.p)
            if chk.triggered:
                ctx.setup = Setup.TRIGGERED
                ctx.trigger_bar = bar
                ctx.since_trigger = 0
                ctx.swing_low = bar.low
                ctx.bonus = chk.bonus
                out.log(
                    R.NULRIMOK_TRIGGER,
                    ctx.symbol,
                    now,
                    bar=bar.start.isoformat(),
                    low=bar.low,
                    high=bar.high,
                    close=bar.close,
                    volume=bar.volume,
                    band=[round(lower, 2), round(upper, 2)],
                    **chk.fields(),
                )

    def _prev_bar(self, ctx: SymCtx, bar: Bar30) -> Bar30 | None:
        earlier = [b for b in ctx.bars if b.start < bar.start]
        return earlier[-1] if earlier else None

    def _try_enter(self, ctx: SymCtx, bar: Bar30, now: datetime, out: Output) -> None:
        p, row = self.p, ctx.row
        assert row is not None and row.avwap_ref is not None and row.band is not None
        t = self._t(now)
        cancel_at = min(bar_end(bar.end), datetime.combine(now.astimezone(KST).date(), p.entry_end, KST))
        base: dict[str, Any] = {"bar": bar.start.isoformat()}
        gate: tuple[ReasonCode, dict[str, Any]] | None = None
        if not p.entry_start <= t < p.entry_end or cancel_at <= now:
            gate = (R.NULRIMOK_G_TIME, {"now": t.isoformat("seconds")})
        elif self.tier == "C":
            gate = (R.NULRIMOK_G_TIER_C, {})
        elif self.nav is None or self.nav <= 0:
            gate = (R.NULRIMOK_G_NAV_NA, {})
        if gate is not None:
            out.log(gate[0], ctx.symbol, now, **base, **gate[1])
            self._reset_setup(ctx)
            return
        assert self.nav is not None
        limit = float(entry_limit(row.avwap_ref, row.band[1]))
        stop = initial_stop(ctx.swing_low, row.avwap_ref, row.atr30m_est, limit, p.stop_atr_mult)
        bonus = p.bonus_mult if ctx.bonus else 1.0
        want = risk_budget_won(self.nav, p.base_risk_pct, row.bucket_mult, self.risk_mult, bonus)
        cap = apply_caps(
            want,
            self.open_risk(),
            self.open_risk(ctx.sector),
            self.nav,
            self.risk_mult,
            p.daily_risk_budget_pct,
            p.sector_risk_frac,
            p.min_size_frac,
        )
        sizing: dict[str, Any] = {
            "want_risk": round(want),
            "room_total": round(cap.room_total),
            "room_sector": round(cap.room_sector),
            "sector": ctx.sector,
        }
        if cap.risk <= 0:
            assert cap.code is not None
            out.log(cap.code, ctx.symbol, now, **base, **sizing)
            self._reset_setup(ctx)
            return
        if cap.code is R.NULRIMOK_SIZE_CUT:
            out.log(R.NULRIMOK_SIZE_CUT, ctx.symbol, now, **base, **sizing, cut_to=round(cap.risk))
        qty = quantity(cap.risk, limit, stop, self.nav, p.max_position_pct)
        if qty <= 0:
            out.log(R.NULRIMOK_G_QTY, ctx.symbol, now, **base, limit=limit, stop=round(stop, 2), risk=round(cap.risk))
            self._reset_setup(ctx)
            return
        key = idem_key(self.sid, ctx.symbol, "ENTER", bar.end, bucket_sec=1800)
        cancel_after = max(1.0, (cancel_at - now).total_seconds() + p.entry_cancel_margin_sec)
        ctx.order = WorkingEntry(qty, limit, stop, cap.risk, key, now, cancel_at, ctx.bonus)
        ctx.setup = Setup.ORDER_WORKING
        self.entries_today += 1
        self.entry_signal_count += 1
        out.log(
            R.NULRIMOK_ENTRY,
            ctx.symbol,
            now,
            **base,
            qty=qty,
            limit=limit,
            stop=round(stop, 2),
            risk=round(cap.risk),
            bucket=row.bucket,
            tier=self.tier,
            bonus=ctx.bonus,
            cancel_at=cancel_at.isoformat(),
        )
        out.act(
            EnterAction(
                symbol=ctx.symbol,
                qty=qty,
                limit_price=limit,
                cancel_after_sec=cancel_after,
                stop_px=round(stop, 4),
                confidence=row.bucket or "MID",
                idempotency_key=key,
                ts=now,
                risk_won=cap.risk,
            )
        )

    def _cancel_entry(self, ctx: SymCtx, now: datetime, out: Output, reason: str) -> None:
        order = ctx.order
        if order is None or not order.open or order.cancel_sent:
            return
        order.cancel_sent = True
        out.log(R.NULRIMOK_ENTRY_CANCEL, ctx.symbol, now, reason=reason, filled=order.filled, qty=order.qty)
        out.act(
            CancelAction(
                ctx.symbol,
                R.NULRIMOK_ENTRY_CANCEL,
                idem_key(self.sid, ctx.symbol, "CANCEL_ORDERS", now, tag=reason),
                now,
            )
        )

    # ================================================================== positions: bars, prices, clock

    def _position_bar(self, ctx: SymCtx, bar: Bar30, now: datetime, out: Output) -> None:
        pos = ctx.pos
        assert pos is not None
        if bar.start < pos.entry_ts or (pos.last_bar is not None and bar.start.isoformat() <= pos.last_bar):
            return
        pos.last_bar = bar.start.isoformat()
        earlier = list(pos.post_lows)
        pos.post_bars += 1
        pos.post_lows.append(bar.low)
        pos.post_high = bar.high if pos.post_high is None else max(pos.post_high, bar.high)
        if pos.avwap_ref is not None and bar.close > pos.avwap_ref:
            pos.reclaimed = True
        if momentum_reached(pos, bar.high, self.p):
            self._tag(ctx, MOMENTUM, now, out, high=bar.high, swing_high=pos.swing_high)
        if pos.exit_reason is not None:
            return
        bars = ctx.bars_through(bar)
        vm = volume_mean(bars[:-1], self.p.vol_mean_bars)
        fields: dict[str, Any] = {"bar": bar.start.isoformat(), "close": bar.close, "volume": bar.volume}
        if pos.avwap_ref is not None and avwap_breakdown(bar, pos.avwap_ref, vm, self.p):
            self._exit(
                ctx, R.NULRIMOK_X_AVWAP_BREAK, now, out, avwap_ref=round(pos.avwap_ref, 2), vol_mean=vm, **fields
            )
            return
        if no_reclaim(pos, bar, earlier, self.p):
            self._exit(ctx, R.NULRIMOK_X_NO_RECLAIM, now, out, post_bar=pos.post_bars, prior_low=min(earlier), **fields)
            return
        code = tag_exit(pos, bars, self.p)
        if code is not None:
            self._exit(ctx, code, now, out, tag=pos.tag, **fields)

    def _tag(self, ctx: SymCtx, tag: str, now: datetime, out: Output, **fields: Any) -> None:
        pos = ctx.pos
        assert pos is not None
        pos.tag = tag
        if tag == MEAN_REVERSION and pos.atr30m:
            pos.mr_target = pos.avg + self.p.mr_target_atr * pos.atr30m
            fields["target"] = round(pos.mr_target, 2)
        out.log(R.NULRIMOK_TAG, ctx.symbol, now, tag=tag, sessions_after=pos.sessions_after, **fields)

    def on_price(self, symbol: str, price: float, ts: datetime) -> Output:
        """A trade (stream) or a REST quote's last price."""
        out = Output()
        ctx = self.ctxs.get(symbol)
        if ctx is None or price <= 0:
            return out
        ctx.last_price, ctx.last_ts = price, ts
        self.monitor.note_price(symbol, price, ctx.band, self.p.inactive_band_pct, ts)
        if ctx.setup in ARMED and ctx.swing_low is not None:
            ctx.swing_low = min(ctx.swing_low, price)
        pos = ctx.pos
        if pos is None or pos.qty <= 0:
            return out
        if ts >= pos.entry_ts:
            pos.post_high = price if pos.post_high is None else max(pos.post_high, price)
            if momentum_reached(pos, price, self.p):
                self._tag(ctx, MOMENTUM, ts, out, high=price, swing_high=pos.swing_high)
        if pos.exit_reason is None and stop_hit(price, pos.stop):
            self._exit(ctx, R.NULRIMOK_X_STOP, ts, out, last=price, stop=round(pos.stop, 2))
        elif (
            pos.exit_reason is None
            and pos.tag == MEAN_REVERSION
            and pos.mr_target is not None
            and not pos.mr_reduced
            and not pos.reduce_sent
            and price >= pos.mr_target
        ):
            self._reduce(ctx, ts, out, last=price, target=round(pos.mr_target, 2))
        return out

    def on_clock(self, now: datetime) -> Output:
        out = Output()
        self._ensure_day(now, out)
        p, t = self.p, self._t(now)
        if not self._flow_exits_done and p.flow_exit_time <= t < p.session_end:
            self._flow_exits_done = True
            for ctx in self._held():
                assert ctx.pos is not None
                if ctx.pos.flow_flag and ctx.pos.exit_reason is None:
                    self._exit(
                        ctx, R.NULRIMOK_X_FLOW_REVERSAL, now, out, deadline=p.flow_exit_deadline.isoformat("minutes")
                    )
        for ctx in list(self.ctxs.values()):
            order = ctx.order
            if order is None or not order.open:
                continue
            if now >= order.cancel_at:
                self._cancel_entry(ctx, now, out, "EOD" if t >= p.entry_end else "NEXT_BAR")
            elif order.retry_at is not None and now >= order.retry_at:
                self._resend_entry(ctx, now, out)
        if not self._time_stop_done and p.time_stop_time <= t < p.session_end:
            self._time_stop_done = True
            self._session_close(now, out)
        for rt in p.refresh_times:
            if rt not in self._refresh_done and rt <= t < p.session_end:
                self._refresh_done.add(rt)
                keep = self._armed() | set(self.held_symbols())
                rank = {s: (c.row.daily_rank or 0.0) if c.row else 0.0 for s, c in self.ctxs.items()}
                low = self.monitor.lowest(keep, rank)
                if low is not None:
                    self._rotation(self.monitor.demote(low, now, f"REFRESH_{rt.isoformat('minutes')}"), now, out)
        if p.entry_start <= t < p.session_end and self.monitor.overflow:
            keep = self._armed() | set(self.held_symbols())
            floor = datetime.combine(now.astimezone(KST).date(), p.entry_start, KST)
            for sym in self.monitor.inactive(now, keep, p.inactive_after_min, floor):
                self._rotation(self.monitor.demote(sym, now, "INACTIVE"), now, out)
        if t < p.session_end:
            for ctx in self._held():
                self._exit_watch(ctx, now, out)
        return out

    def _exit_watch(self, ctx: SymCtx, now: datetime, out: Output) -> None:
        """An EXIT without a fill for ``exit_retry_sec`` is cancelled; once its order is closed (or the intent
        was refused) a new EXIT goes out at a fresh marketable limit — never two sells at once."""
        pos = ctx.pos
        assert pos is not None
        if pos.exit_reason is None or pos.exit_sent_ts is None:
            return
        retry = self.p.exit_retry_sec
        if pos.exit_working:
            since = pos.exit_progress_ts or pos.exit_sent_ts
            if not pos.exit_cancel_sent and (now - since).total_seconds() >= retry:
                pos.exit_cancel_sent = True
                out.log(
                    R.NULRIMOK_EXIT_RETRY, ctx.symbol, now, reason=pos.exit_reason.value, stage="cancel", qty=pos.qty
                )
                key = idem_key(self.sid, ctx.symbol, "CANCEL_ORDERS", now, tag=f"EXIT-r{pos.exit_tries}")
                out.act(CancelAction(ctx.symbol, R.NULRIMOK_EXIT_RETRY, key, now))
        elif (now - pos.exit_sent_ts).total_seconds() >= retry:
            self._exit(ctx, pos.exit_reason, now, out, retry=True)

    def on_exit_order_closed(self, symbol: str, now: datetime, state: str) -> Output:
        """A Nulrimok sell order reached a terminal state; the unfilled rest of an EXIT → a new EXIT."""
        out = Output()
        ctx = self.ctxs.get(symbol)
        pos = ctx.pos if ctx is not None else None
        filled = state.upper() == "FILLED"
        if ctx is None or pos is None or pos.exit_reason is None or not pos.exit_working:
            if pos is not None and pos.reduce_sent and not pos.mr_reduced and not filled:
                pos.reduce_sent = False
            return out
        if filled:
            return out
        pos.exit_working = False
        pos.exit_cancel_sent = False
        if pos.qty > 0 and self._t(now) < self.p.session_end:
            self._exit(ctx, pos.exit_reason, now, out, retry=True)
        return out

    def _session_close(self, now: datetime, out: Output) -> None:
        """15:10: cancel working entries, N26 time stops, N27 session-close tags."""
        for ctx in self.ctxs.values():
            if ctx.order is not None and ctx.order.open:
                self._cancel_entry(ctx, now, out, "EOD")
        for ctx in self._held():
            pos = ctx.pos
            assert pos is not None
            if pos.exit_reason is not None:
                continue
            last = self._ref_price(ctx)
            code = time_stop(pos, last, self.p)
            if code is not None:
                self._exit(ctx, code, now, out, pnl=round(pos.pnl(last) or 0.0, 5), sessions_after=pos.sessions_after)
                continue
            if pos.tag is not None:
                continue
            today = [b for b in ctx.bars if b.day == self.day]
            vm = volume_mean([b for b in ctx.bars if b.day != self.day] or ctx.bars, self.p.vol_mean_bars)
            last_close = today[-1].close if today else last
            if last_close is not None and mean_reversion_tag(pos, last_close, [b.volume for b in today], vm, self.p):
                self._tag(ctx, MEAN_REVERSION, now, out, post_high=pos.post_high, atr30m=pos.atr30m)
            elif grind_tag(pos, last, self.p):
                self._tag(ctx, GRIND, now, out, pnl=round(pos.pnl(last) or 0.0, 5), persistence=pos.persistence)

    def _exit(
        self, ctx: SymCtx, reason: ReasonCode, now: datetime, out: Output, retry: bool = False, **fields: Any
    ) -> None:
        pos = ctx.pos
        assert pos is not None
        if pos.exit_reason is not None and not retry:
            return
        ref = self._ref_price(ctx)
        limit = exit_limit(ref, self.p)
        pos.exit_tries = pos.exit_tries + 1 if retry else 1
        pos.exit_reason, pos.exit_sent_ts = reason, now
        pos.exit_working, pos.exit_progress_ts, pos.exit_cancel_sent = True, now, False
        tag = reason.value.removeprefix("NULRIMOK_") + (f"-r{pos.exit_tries - 1}" if retry else "")
        if retry:
            out.log(
                R.NULRIMOK_EXIT_RETRY, ctx.symbol, now, reason=reason.value, tries=pos.exit_tries, ref=ref, limit=limit
            )
        else:
            out.log(reason, ctx.symbol, now, qty=pos.qty, avg=pos.avg, ref=ref, limit=limit, **fields)
        if ctx.order is not None and ctx.order.open:
            self._cancel_entry(ctx, now, out, "EXIT")
        out.act(ExitAction(ctx.symbol, reason, limit, ref, idem_key(self.sid, ctx.symbol, "EXIT", now, tag=tag), now))

    def _reduce(self, ctx: SymCtx, now: datetime, out: Output, **fields: Any) -> None:
        pos = ctx.pos
        assert pos is not None
        qty = int(pos.qty * self.p.mr_reduce_frac)
        if qty <= 0 or qty >= pos.qty:
            pos.mr_reduced = True
            return
        pos.reduce_sent = True
        ref = self._ref_price(ctx)
        limit = exit_limit(ref, self.p)
        out.log(R.NULRIMOK_X_MR_TARGET, ctx.symbol, now, qty=qty, of=pos.qty, ref=ref, limit=limit, **fields)
        key = idem_key(self.sid, ctx.symbol, "REDUCE", now, tag="MR_TARGET")
        out.act(ReduceAction(ctx.symbol, qty, R.NULRIMOK_X_MR_TARGET, limit, ref, key, now))

    # ================================================================== OMS replies, orders, fills

    def on_account(self, now: datetime, nav: float | None) -> Output:
        if nav is not None and nav > 0:
            self.nav = nav
        return Output()

    def on_intent_result(
        self,
        symbol: str,
        now: datetime,
        intent_type: str,
        status: str,
        *,
        modified_qty: int | None = None,
        cooldown_until: datetime | None = None,
        message: str = "",
    ) -> Output:
        out = Output()
        ctx = self.ctxs.get(symbol)
        status = status.upper()
        if intent_type == "ENTER" and ctx is not None and ctx.order is not None and ctx.order.open:
            order = ctx.order
            if status in ("ACCEPTED", "EXECUTED"):
                out.log(R.NULRIMOK_ENTRY_ACK, symbol, now, status=status, qty=order.qty)
            elif status == "MODIFIED" and modified_qty:
                order.qty = int(modified_qty)
                out.log(R.NULRIMOK_ENTRY_MODIFIED, symbol, now, qty=order.qty, message=message)
            elif status == "DEFERRED" and cooldown_until is not None and cooldown_until < order.cancel_at:
                order.retry_at = cooldown_until
                out.log(R.NULRIMOK_ENTRY_DEFERRED, symbol, now, retry_at=cooldown_until.isoformat(), message=message)
            else:
                out.log(R.NULRIMOK_ENTRY_REJECTED, symbol, now, status=status, message=message)
                order.open = False
                if order.filled == 0:
                    ctx.order = None
                    self._reset_setup(ctx)
            return out
        if (
            intent_type in ("EXIT", "REDUCE")
            and ctx is not None
            and ctx.pos is not None
            and status in ("REJECTED", "CANCELLED")
        ):
            if intent_type == "REDUCE":
                ctx.pos.reduce_sent = False
            else:
                ctx.pos.exit_working = False
        out.log(
            R.NULRIMOK_INTENT_RESULT,
            symbol if symbol != "*" else None,
            now,
            intent_type=intent_type,
            status=status,
            message=message,
        )
        return out

    def _resend_entry(self, ctx: SymCtx, now: datetime, out: Output) -> None:
        order = ctx.order
        assert order is not None
        order.retry_at = None
        order.tries += 1
        key = f"{order.key}:r{order.tries - 1}"
        cancel_after = max(1.0, (order.cancel_at - now).total_seconds() + self.p.entry_cancel_margin_sec)
        out.log(R.NULRIMOK_ENTRY, ctx.symbol, now, qty=order.qty, limit=order.limit, retry=order.tries - 1)
        row = ctx.row
        out.act(
            EnterAction(
                ctx.symbol,
                order.qty - order.filled,
                order.limit,
                cancel_after,
                round(order.stop, 4),
                (row.bucket if row else None) or "MID",
                key,
                now,
                order.risk,
            )
        )

    def on_order_closed(self, symbol: str, now: datetime, filled_qty: int | None = None) -> Output:
        """The entry order reached a terminal state at the OMS."""
        out = Output()
        ctx = self.ctxs.get(symbol)
        if ctx is None or ctx.order is None:
            return out
        order = ctx.order
        if order.retry_at is not None:
            return out
        order.open = False
        if order.filled == 0 and not filled_qty:
            out.log(R.NULRIMOK_MISSED_FILL, symbol, now, limit=order.limit, qty=order.qty)
            ctx.order = None
            self._reset_setup(ctx)
        elif ctx.pos is not None:
            ctx.order = None
            ctx.setup = Setup.IN_POSITION
        return out

    def on_fill(self, symbol: str, side: str, qty: int, price: float, ts: datetime) -> Output:
        out = Output()
        self._ensure_day(ts, out)
        ctx = self._ctx(symbol)
        if str(side).upper() in _BUY:
            self._entry_fill(ctx, qty, price, ts, out)
        else:
            self._exit_fill(ctx, qty, price, ts, out)
        return out

    def _entry_fill(self, ctx: SymCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        order, row, p = ctx.order, ctx.row, self.p
        if order is not None:
            order.filled += qty
            order.cost += qty * price
            if order.filled >= order.qty:
                order.open = False
        pos = ctx.pos
        if pos is None or pos.qty <= 0:
            swing = min(x for x in (ctx.swing_low, price) if x is not None)
            ref = row.avwap_ref if row is not None else None
            atr30 = row.atr30m_est if row is not None else None
            limit = order.limit if order is not None else price
            stop = (
                initial_stop(swing, ref, atr30, limit, p.stop_atr_mult) if ref else price * (1 - p.recovered_stop_pct)
            )
            pos = ctx.pos = PositionState(
                symbol=ctx.symbol,
                sector=ctx.sector,
                qty=qty,
                avg=price,
                entry_ts=ts,
                stop=stop,
                avwap_ref=ref,
                atr30m=atr30,
                swing_high=row.f.swing_high10 if row is not None else None,
                seen_day=ts.astimezone(KST).date(),
                persistence=row.f.persistence if row is not None else None,
            )
            self.monitor.add_held(ctx.symbol, ts)
            out.act(
                ModifyRiskAction(
                    ctx.symbol, round(stop, 4), None, idem_key(self.sid, ctx.symbol, "MODIFY_RISK", ts, tag="FILL"), ts
                )
            )
        else:
            pos.avg = (pos.avg * pos.qty + price * qty) / (pos.qty + qty)
            pos.qty += qty
        ctx.setup = Setup.IN_POSITION
        out.log(
            R.NULRIMOK_FILL, ctx.symbol, ts, side="BUY", qty=qty, price=price, position=pos.qty, stop=round(pos.stop, 2)
        )

    def _exit_fill(self, ctx: SymCtx, qty: int, price: float, ts: datetime, out: Output) -> None:
        pos = ctx.pos
        if pos is None:
            out.log(R.NULRIMOK_FILL, ctx.symbol, ts, side="SELL", qty=qty, price=price, position=0)
            return
        pos.qty -= qty
        pos.exit_progress_ts = ts
        if pos.reduce_sent and pos.exit_reason is None:
            pos.mr_reduced = True
        out.log(R.NULRIMOK_FILL, ctx.symbol, ts, side="SELL", qty=qty, price=price, position=max(0, pos.qty))
        if pos.qty <= 0:
            self._closed(ctx, ts, out, pos.exit_reason or R.NULRIMOK_X_EXTERNAL, last_price=price)

    def _closed(self, ctx: SymCtx, now: datetime, out: Output, reason: ReasonCode, **fields: Any) -> None:
        pos = ctx.pos
        assert pos is not None
        out.log(
            R.NULRIMOK_POSITION_CLOSED,
            ctx.symbol,
            now,
            reason=reason.value,
            avg=pos.avg,
            tag=pos.tag,
            sessions_after=pos.sessions_after,
            entry_ts=pos.entry_ts.isoformat(),
            **fields,
        )
        ctx.pos = None
        ctx.closed_today = True
        self._reset_setup(ctx)
        self._rotation(self.monitor.release(ctx.symbol, now, "CLOSED"), now, out)

    # ================================================================== recovery, slots

    def on_position_recovered(
        self,
        symbol: str,
        qty: int,
        avg: float,
        now: datetime,
        *,
        stop_px: float | None = None,
        entry_ts: datetime | None = None,
        sector: str | None = None,
        sessions_after: int | None = None,
        swing_high: float | None = None,
        atr30m: float | None = None,
        avwap_ref: float | None = None,
        snapshot: Mapping[str, Any] | None = None,
    ) -> Output:
        """Adopt a Nulrimok allocation from the OMS (start, reconnect, next morning)."""
        out = Output()
        day = now.astimezone(KST).date()
        if self.day is None:
            self.day = day
        ctx = self._ctx(symbol, sector)
        if ctx.pos is not None and ctx.pos.qty > 0:
            ctx.pos.qty = qty
            return out
        entry = entry_ts.astimezone(KST) if entry_ts is not None else now
        snap = dict(snapshot or {})
        if snap.get("entry_ts") and snap["entry_ts"] != entry.isoformat():
            snap = {}
        stop = snap.get("stop") or stop_px
        if not stop:
            stop = (
                avwap_ref - self.p.stop_atr_mult * atr30m
                if avwap_ref and atr30m
                else avg * (1 - self.p.recovered_stop_pct)
            )
        pos = ctx.pos = PositionState(
            symbol=symbol,
            sector=ctx.sector,
            qty=qty,
            avg=avg,
            entry_ts=entry,
            stop=float(stop),
            avwap_ref=avwap_ref,
            atr30m=atr30m,
            swing_high=swing_high,
            sessions_after=sessions_after if sessions_after is not None else _sessions_from(snap, day),
            seen_day=day,
        )
        pos.restore(snap)
        if avwap_ref:
            pos.avwap_ref = avwap_ref
        ctx.setup = Setup.IN_POSITION
        self.monitor.add_held(symbol, now)
        out.log(
            R.NULRIMOK_POSITION_RECOVERED,
            symbol,
            now,
            qty=qty,
            avg=avg,
            stop=round(pos.stop, 2),
            entry_ts=entry.isoformat(),
            sessions_after=pos.sessions_after,
            tag=pos.tag,
            state_restored=bool(snap),
        )
        if stop_px is None or abs(float(stop_px) - pos.stop) > 1e-6:
            key = idem_key(self.sid, symbol, "MODIFY_RISK", now, tag="RECOVERED")
            out.act(ModifyRiskAction(symbol, round(pos.stop, 4), None, key, now, R.NULRIMOK_POSITION_RECOVERED.value))
        return out

    def sync_allocations(self, now: datetime, qtys: Mapping[str, int], newer: Collection[str] = ()) -> Output:
        """Positions the OMS no longer holds for Nulrimok (closed outside the engine) are dropped; not those in
        ``newer`` (fills applied after ``qtys`` was read)."""
        out = Output()
        for ctx in self._held():
            if qtys.get(ctx.symbol, 0) <= 0 and ctx.symbol not in newer:
                assert ctx.pos is not None
                self._closed(ctx, now, out, ctx.pos.exit_reason or R.NULRIMOK_X_EXTERNAL)
        return out

    def on_slots(self, now: datetime, granted: Iterable[str], denied: Mapping[str, str]) -> Output:
        """A denial inside the monitoring window takes the ticker out of the set (K_cap − 1); outside it (a
        lease window opening or closing: yesterday's slots at the open) it is only logged."""
        out = Output()
        held = set(self.held_symbols())
        inside = self.p.entry_start <= self._t(now) < self.p.session_end
        for sym, why in sorted(denied.items()):
            window = "WINDOW" in why.upper()
            out.log(R.NULRIMOK_SLOT_DENIED, sym, now, reason=why, held=sym in held, counted=inside and not window)
            if sym not in held and inside and not window:
                self._rotation(self.monitor.denied(sym), now, out)
        return out

    def note_skipped_bar(self, symbol: str, start: datetime, now: datetime, why: str) -> Output:
        """N29: a REST failure: that ticker's bar is not evaluated (no action)."""
        out = Output()
        out.log(R.NULRIMOK_BAR_SKIPPED, symbol, now, bar=start.isoformat(), reason=why)
        return out


def _sessions_from(snap: Mapping[str, Any], today: date) -> int:
    """Sessions after entry from a saved state when the LRS cannot tell: +1 when it was saved on an earlier day."""
    n = int(snap.get("sessions_after") or 0)
    seen = snap.get("seen_day")
    return n + 1 if isinstance(seen, str) and date.fromisoformat(seen) < today else n


def sessions_between(sessions: Sequence[date], entry_day: date, today: date, today_is_session: bool = True) -> int:
    """Full sessions after ``entry_day`` up to ``today`` (today counts when it is a session)."""
    n = sum(1 for d in sessions if entry_day < d < today)
    return n + (1 if today_is_session and today > entry_day else 0)
