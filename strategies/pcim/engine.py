"""The PCIM engine (strategies.md §4.3–§4.6): pure, explicit ``now``, every call returns an Output.

No I/O, no clock, no OMS: the wiring feeds approved watchlist items, the regime, expected opens,
REST quotes and 1m bars, fills and order ends, and sends the returned actions as intents. PCIM uses
no WebSocket slot: every price is a REST poll.

Per symbol of the day (approved at 08:30): WATCH → (09:01 bucket) ARMED_A / ARMED_B / SKIP →
(signal, vetoes, sizing) ENTERING → HOLDING or DONE. Positions (any day) are managed by the exit
rules until closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from broker_core import calendars
from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode
from broker_core.market_rules import marketable_limit, round_down
from strategies.pcim import exits, signals, sizing
from strategies.pcim.approval import ApprovalStatus
from strategies.pcim.config import PcimParams
from strategies.pcim.decisions import (
    CancelAction,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
    idem_key,
)
from strategies.pcim.exits import PositionState
from strategies.pcim.filters import WatchItem
from strategies.pcim.regime import RegimeState
from strategies.pcim.signals import Bucket, QuoteSnap
from strategies.sdk.bars import Bar

TradingDays = Callable[[date, date], list[date]]
A_GRACE = timedelta(minutes=2)
"""[resolved] Bucket A is evaluated once, at 09:03 when the 09:02 bar is in, else as soon as it arrives within
this grace (a minute without trades has no bar: after the grace the bars there are are used)."""
B_STALE_SEC = 120.0
"""[resolved] a Bucket B bar first seen more than this after its close (a restart, a data gap) is not traded."""
ENTRY_CLOSE_GRACE = timedelta(seconds=20)
"""After an entry's cancel deadline plus this, a missing order end triggers an explicit CANCEL_ORDERS."""


def _kst(ts: datetime) -> datetime:
    return ts.astimezone(KST)


@dataclass(slots=True)
class EntryOrder:
    qty: int
    limit: float
    sent_at: datetime
    deadline: datetime
    bucket: str
    signal_px: float
    accepted: bool = False
    cancel_sent: bool = False
    filled: int = 0


@dataclass(slots=True)
class Sym:
    item: WatchItem
    approval: str
    state: str = "WATCH"
    bucket: Bucket | None = None
    gap: float | None = None
    expected_open: float | None = None
    eo_ts: datetime | None = None
    eo_source: str | None = None
    quote: QuoteSnap | None = None
    bars: dict[datetime, Bar] = field(default_factory=dict)
    b_evaluated: set[datetime] = field(default_factory=set)
    a_done: bool = False
    order: EntryOrder | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class PcimEngine:
    def __init__(
        self,
        params: PcimParams | None = None,
        strategy_id: str = "PCIM",
        trading_days: TradingDays | None = None,
    ) -> None:
        self.p = params or PcimParams()
        self.sid = strategy_id.upper()
        self._days: TradingDays = trading_days or calendars.trading_days
        self.day: date | None = None
        self.syms: dict[str, Sym] = {}
        self.positions: dict[str, PositionState] = {}
        self.regime: RegimeState | None = None
        self.nav: float | None = None
        self.kospi_blocked = False
        self.entries_today = 0
        self.buckets_done = False
        self.window_closed = False
        self.last_px: dict[str, float] = {}

    # ================================================================== morning

    def start_day(
        self, now: datetime, items: list[WatchItem], approvals: dict[str, ApprovalStatus], *, label: str = "MANUAL"
    ) -> Output:
        """08:30 freeze (I11): only approved items are kept; I20 skips symbols PCIM already holds."""
        out = Output()
        day = _kst(now).date()
        self.day = day
        self.syms = {}
        self.kospi_blocked = False
        self.entries_today = 0
        self.buckets_done = False
        self.window_closed = False
        for item in sorted(items, key=lambda i: i.rank):
            status = approvals.get(item.symbol, ApprovalStatus.PENDING)
            if not status.tradable:
                out.log(ReasonCode.PCIM_NOT_APPROVED, item.symbol, now, approval=status.value, approval_mode=label)
                continue
            if item.symbol in self.positions:
                out.log(
                    ReasonCode.PCIM_SKIP_ALREADY_HOLDING,
                    item.symbol,
                    now,
                    videos=list(item.video_ids),
                    influencers=list(item.influencers),
                )
                continue
            self.syms[item.symbol] = Sym(item, status.value)
        out.log(
            ReasonCode.PCIM_WATCHLIST,
            None,
            now,
            session=str(day),
            approved=sorted(self.syms),
            listed=len(items),
            approval_mode=label,
        )
        return out

    def set_regime(self, now: datetime, state: RegimeState) -> Output:
        """I12 at 08:30: log and publish the regime and PCIM's gross cap (MODIFY_RISK ``*``)."""
        self.regime = state
        out = Output()
        out.log(ReasonCode.PCIM_REGIME, None, now, **state.fields())
        x = "na" if state.x is None else f"{state.x:.3f}"
        out.act(
            ModifyRiskAction(
                symbol="*",
                stop_px=None,
                time_stop_ts=None,
                idempotency_key=idem_key(self.sid, "*", "MODIFY_RISK", now, tag="regime"),
                ts=now,
                rationale_code=ReasonCode.PCIM_REGIME.value,
                confidence=state.regime.value,
                signal_hash=f"regime={state.regime.value};cap={state.cap:.2f};x={x}",
            )
        )
        return out

    def on_expected_open(
        self, now: datetime, symbol: str, price: float | None, source: str = "expected_open"
    ) -> Output:
        """I13: a call-auction indication between 08:40 and 09:00 (the last one before 09:00 counts)."""
        out = Output()
        s = self.syms.get(symbol)
        t = _kst(now).time()
        if s is None or price is None or price <= 0 or not self.p.expected_open_start <= t < self.p.session_open:
            return out
        s.expected_open, s.eo_ts, s.eo_source = float(price), now, source
        out.log(
            ReasonCode.PCIM_EXPECTED_OPEN,
            symbol,
            now,
            expected_open=price,
            prior_close=s.item.prior_close,
            gap=round(signals.gap_of(price, s.item.prior_close), 5),
            source=source,
        )
        return out

    # ================================================================== data feeds

    def on_account(self, now: datetime, nav: float | None) -> Output:
        if nav is not None and nav > 0:
            self.nav = float(nav)
        return Output()

    def on_index(self, now: datetime, last: float | None, prior_close: float | None) -> Output:
        """I14: KOSPI ≤ −1.5% vs its prior close at any time after 09:00 → no new entries today."""
        out = Output()
        if last is None or not prior_close or self.kospi_blocked or _kst(now).time() < self.p.session_open:
            return out
        change = last / prior_close - 1
        if change <= self.p.kospi_veto_pct + 1e-12:
            self.kospi_blocked = True
            out.log(
                ReasonCode.PCIM_VETO_KOSPI,
                None,
                now,
                kospi=last,
                prior_close=prior_close,
                change=round(change, 5),
                threshold=self.p.kospi_veto_pct,
            )
        return out

    def on_quote(self, now: datetime, symbol: str, q: QuoteSnap) -> Output:
        """A REST quote: kept for the vetoes; for a held symbol the exit rules run (I21–I23)."""
        out = Output()
        s = self.syms.get(symbol)
        if s is not None:
            s.quote = q
        if q.last is not None and q.last > 0:
            self.last_px[symbol] = q.last
        pos = self.positions.get(symbol)
        if pos is not None and q.last is not None and q.last > 0:
            out.extend(self._check_exit(now, pos, q))
        return out

    def on_bars(self, now: datetime, symbol: str, bars: list[Bar]) -> Output:
        """Today's completed REST 1m bars since 09:00 (upserted by start minute)."""
        s = self.syms.get(symbol)
        if s is None:
            return Output()
        day = self.day or _kst(now).date()
        for b in bars:
            start = _kst(b.start)
            if start.date() == day and start + timedelta(minutes=1) <= now + timedelta(seconds=1):
                s.bars[start] = b
        if bars:
            self.last_px[symbol] = bars[-1].close
        return Output()

    # ================================================================== the clock

    def on_clock(self, now: datetime) -> Output:
        out = Output()
        t = _kst(now).time()
        if self.day is not None and _kst(now).date() == self.day:
            if t >= self.p.entry_start and not self.buckets_done:
                out.extend(self._assign_buckets(now))
            if self.p.entry_start <= t < self.p.entry_end and not self.window_closed:
                out.extend(self._entries(now))
            out.extend(self._entry_timeouts(now))
            if t >= self.p.entry_end and not self.window_closed:
                out.extend(self._close_window(now))
        if t >= self.p.eod_exit_time:
            out.extend(self._day_limit_exits(now))
        out.extend(self._exit_retries(now))
        return out

    def _assign_buckets(self, now: datetime) -> Output:
        """I13 at 09:01: the last expected-open snapshot, else **[resolved]** the 09:00 bar's open."""
        out = Output()
        pending = False
        for sym, s in sorted(self.syms.items()):
            if s.state != "WATCH":
                continue
            ref, source = s.expected_open, s.eo_source
            if ref is None:
                opening = datetime.combine(self.day or _kst(now).date(), self.p.session_open, KST)
                if opening in s.bars:
                    ref, source = s.bars[opening].open, "open_bar_0900"
            if ref is None:
                if now < datetime.combine(self.day or _kst(now).date(), self.p.entry_start, KST) + timedelta(minutes=4):
                    pending = True
                    continue
                s.state = "DONE"
                out.log(ReasonCode.PCIM_SKIP_BUCKET, sym, now, reason="NO_EXPECTED_OPEN")
                continue
            bucket, g = signals.bucket_of(ref, s.item.prior_close, self.p)
            s.bucket, s.gap = bucket, g
            fields = {"bucket": bucket.value, "gap": round(g, 5), "ref": ref, "source": source, "tier": s.item.tier}
            why = self._bucket_block(s)
            if why is not None:
                s.state = "SKIP"
                out.log(ReasonCode.PCIM_SKIP_BUCKET, sym, now, reason=why, **fields)
                continue
            s.state = "ARMED_A" if bucket is Bucket.A else "ARMED_B"
            out.log(ReasonCode.PCIM_BUCKET, sym, now, **fields)
        self.buckets_done = not pending
        return out

    def _bucket_block(self, s: Sym) -> str | None:
        if s.bucket is Bucket.D:
            return "BUCKET_D"
        reg = self.regime
        if s.bucket is Bucket.A:
            if s.item.tier == "T3":
                return "T3_NEVER_A"
            if reg is not None and not reg.bucket_a:
                return f"REGIME_{reg.regime.value}_NO_A"
        if s.bucket is Bucket.B and reg is not None and not reg.bucket_b:
            return f"REGIME_{reg.regime.value}_NO_B"
        return None

    # ---------------------------------------------------------------- entries (I14–I18)

    def _entries(self, now: datetime) -> Output:
        out = Output()
        triggers: list[tuple[tuple[Any, ...], str, float, dict[str, Any]]] = []
        for sym, s in sorted(self.syms.items()):
            if s.state == "ARMED_A":
                trig = self._eval_a(now, s, out)
            elif s.state == "ARMED_B":
                trig = self._eval_b(now, s, out)
            else:
                continue
            if trig is not None:
                ref, info = trig
                key = sizing.priority_key(
                    s.bucket.value if s.bucket else "B", s.item.conviction, s.gap or 0.0, s.item.adtv20, sym
                )
                triggers.append((key, sym, ref, info))
        if not triggers:
            return out
        for rank, (_, sym, ref, info) in enumerate(sorted(triggers), start=1):
            out.extend(self._enter(now, self.syms[sym], ref, info, rank, len(triggers)))
        return out

    def _eval_a(self, now: datetime, s: Sym, out: Output) -> tuple[float, dict[str, Any]] | None:
        day = self.day or _kst(now).date()
        at = datetime.combine(day, self.p.session_open, KST) + timedelta(minutes=self.p.a_bars)
        if now < at:
            return None
        window = signals.first_minutes(list(s.bars.values()), self.p.session_open, self.p.a_bars)
        last_bar = at - timedelta(minutes=1)
        if (not window or _kst(window[-1].start) < last_bar) and now < at + A_GRACE:
            return None
        s.state = "DONE"
        sig = signals.bucket_a_signal(list(s.bars.values()), s.item.a_volume_baseline, self.p)
        if self.kospi_blocked:
            out.log(ReasonCode.PCIM_VETO_KOSPI, s.item.symbol, now, bucket="A", **sig.fields())
            return None
        if not sig.ok:
            out.log(ReasonCode.PCIM_A_NO_SIGNAL, s.item.symbol, now, **sig.fields())
            return None
        out.log(ReasonCode.PCIM_A_SIGNAL, s.item.symbol, now, **sig.fields())
        assert sig.close is not None
        return sig.close, {"signal": sig.fields()}

    def _eval_b(self, now: datetime, s: Sym, out: Output) -> tuple[float, dict[str, Any]] | None:
        series = signals.with_vwap(list(s.bars.values()))
        for i, vb in enumerate(series):
            if vb.bar.start in s.b_evaluated or not signals.b_eval_window(vb.bar, self.p):
                continue
            s.b_evaluated.add(vb.bar.start)
            if (now - (vb.bar.start + timedelta(minutes=1))).total_seconds() > B_STALE_SEC:
                continue
            sig = signals.bucket_b_at(series, i, self.p)
            if signals.touch(vb, self.p.b_touch_tol):
                out.log(
                    ReasonCode.PCIM_B_TOUCH,
                    s.item.symbol,
                    now,
                    vwap=round(vb.vwap, 3),
                    l=vb.bar.low,
                    h=vb.bar.high,
                    bar=vb.bar.start.strftime("%H:%M"),
                )
            if not sig.ok:
                continue
            b = vb.bar
            if self.kospi_blocked:
                out.log(ReasonCode.PCIM_VETO_KOSPI, s.item.symbol, now, bucket="B", **sig.fields())
                s.state = "DONE"
                return None
            info = {
                "vwap": round(vb.vwap, 3),
                "tol": self.p.b_touch_tol,
                "ohlcv": [b.open, b.high, b.low, b.close, b.volume],
                **sig.fields(),
            }
            out.log(ReasonCode.PCIM_B_TRIGGER, s.item.symbol, now, **info)
            return b.close, {"vwap_decision": info}
        return None

    def _gross(self) -> float:
        g = 0.0
        for sym, pos in self.positions.items():
            g += pos.qty * self.last_px.get(sym, pos.entry_px)
        for s in self.syms.values():
            if s.order is not None and s.state == "ENTERING":
                g += max(0, s.order.qty - s.order.filled) * s.order.limit
        return g

    def _open_count(self) -> int:
        entering = sum(1 for s in self.syms.values() if s.state == "ENTERING" and s.item.symbol not in self.positions)
        return len([p for p in self.positions.values() if p.qty > 0]) + entering

    def _tv5m(self, s: Sym, now: datetime) -> float | None:
        day = self.day or _kst(now).date()
        start = datetime.combine(day, self.p.session_open, KST)
        end = start + timedelta(minutes=self.p.tv5m_minutes)
        if now < end:
            return None
        bars = [b for k, b in s.bars.items() if start <= k < end]
        return sum(b.value for b in bars) if bars else None

    def _enter(self, now: datetime, s: Sym, signal_px: float, info: dict[str, Any], rank: int, of: int) -> Output:
        out = Output()
        sym, item = s.item.symbol, s.item
        bucket = s.bucket.value if s.bucket else "B"
        s.state = "DONE"
        prio = {"priority_rank": rank, "priority_of": of}
        if sym in self.positions:
            out.log(ReasonCode.PCIM_SKIP_ALREADY_HOLDING, sym, now, videos=list(item.video_ids), **prio)
            return out
        v = signals.veto(s.quote, now, self.p, item.prior_close)
        if v is not None:
            code, fields = v
            out.log(ReasonCode(code), sym, now, bucket=bucket, **fields, **prio)
            if bucket == "B" and code != ReasonCode.PCIM_VETO_UPPER_LIMIT.value:
                s.state = "ARMED_B"
            return out
        if self._open_count() >= self.p.max_positions:
            out.log(
                ReasonCode.PCIM_CAP_MAX_POSITIONS, sym, now, open=self._open_count(), max=self.p.max_positions, **prio
            )
            return out
        if self.nav is None:
            out.log(ReasonCode.PCIM_DATA_UNAVAILABLE, sym, now, source="nav", **prio)
            return out
        q = s.quote
        ref: float
        if bucket == "A":
            ref = q.last if q is not None and q.last else signal_px
            band = self.p.a_band_t1 if item.tier == "T1" else self.p.a_band_t2
            limit = float(signals.buy_limit(ref, band))
            style = "MARKETABLE_LIMIT"
            cancel_after = self.p.a_cancel_after_sec
        else:
            if item.tier == "T3":
                ref, limit, style = signal_px, float(round_down(signal_px)), "LIMIT"
            else:
                quoted = (q.ask or q.last) if q is not None else None
                ref = quoted if quoted else signal_px
                band = self.p.b_band_t1 if item.tier == "T1" else self.p.b_band_t2
                limit, style = float(signals.buy_limit(ref, band)), "MARKETABLE_LIMIT"
            end = datetime.combine(self.day or _kst(now).date(), self.p.entry_end, KST)
            cancel_after = max(1.0, (end - now).total_seconds())
        regime_cap = self.regime.cap if self.regime is not None else self.p.regime_cap(self.p.regime_fallback)
        sz = sizing.size(
            sizing.SizingInput(
                nav=self.nav,
                price=limit,
                atr20=item.atr20,
                conviction_mult=item.conviction_mult,
                soft_mult=item.soft_mult,
                tier=item.tier,
                tier_mult=item.tier_mult,
                bucket=bucket,
                regime_cap=regime_cap,
                pcim_gross=self._gross(),
                adtv20=item.adtv20,
                tv5m=self._tv5m(s, now),
            ),
            self.p,
        )
        out.log(
            ReasonCode.PCIM_SIZING,
            sym,
            now,
            bucket=bucket,
            tier=item.tier,
            price=limit,
            nav=self.nav,
            **sz.fields(),
            **prio,
        )
        if sz.rejected:
            out.log(
                ReasonCode.PCIM_REJECT_FLOOR,
                sym,
                now,
                qty=sz.qty,
                floor=round(sz.floor, 2),
                raw=sz.raw,
                binding_cap=sz.binding,
                **prio,
            )
            return out
        stop = limit - self.p.stop_atr_mult * item.atr20
        s.state = "ENTERING"
        s.order = EntryOrder(sz.qty, limit, now, now + timedelta(seconds=cancel_after), bucket, signal_px)
        s.detail = {"sizing": sz.fields(), **info, **prio, "style": style, "ref": ref}
        self.entries_today += 1
        out.act(
            EnterAction(
                symbol=sym,
                qty=sz.qty,
                limit_price=limit,
                cancel_after_sec=round(cancel_after, 1),
                stop_px=round(stop, 2),
                confidence=item.conviction,
                bucket=bucket,
                tier=item.tier,
                idempotency_key=idem_key(self.sid, sym, "ENTER", now, tag=f"bucket{bucket}"),
                ts=now,
                urgency="HIGH" if bucket == "A" else "NORMAL",
            )
        )
        out.log(
            ReasonCode.PCIM_ENTRY,
            sym,
            now,
            bucket=bucket,
            tier=item.tier,
            qty=sz.qty,
            limit=limit,
            style=style,
            ref=ref,
            cancel_after_sec=round(cancel_after, 1),
            stop=round(stop, 2),
            conviction=item.conviction,
            influencers=list(item.influencers),
            **prio,
        )
        return out

    def _entry_timeouts(self, now: datetime) -> Output:
        out = Output()
        for sym, s in sorted(self.syms.items()):
            o = s.order
            if s.state != "ENTERING" or o is None or o.cancel_sent:
                continue
            if now >= o.deadline + ENTRY_CLOSE_GRACE:
                o.cancel_sent = True
                out.act(
                    CancelAction(
                        sym,
                        ReasonCode.PCIM_ENTRY_CANCEL,
                        idem_key(self.sid, sym, "CANCEL_ORDERS", now, tag="timeout"),
                        now,
                    )
                )
                out.log(
                    ReasonCode.PCIM_ENTRY_CANCEL,
                    sym,
                    now,
                    reason="DEADLINE",
                    bucket=o.bucket,
                    intended=o.qty,
                    filled=o.filled,
                )
        return out

    def _close_window(self, now: datetime) -> Output:
        """10:00: working entries are cancelled (I14); armed symbols without a trigger end."""
        out = Output()
        self.window_closed = True
        for sym, s in sorted(self.syms.items()):
            if s.state == "ENTERING" and s.order is not None and not s.order.cancel_sent:
                s.order.cancel_sent = True
                out.act(
                    CancelAction(
                        sym,
                        ReasonCode.PCIM_ENTRY_CANCEL,
                        idem_key(self.sid, sym, "CANCEL_ORDERS", now, tag="1000"),
                        now,
                    )
                )
                out.log(
                    ReasonCode.PCIM_ENTRY_CANCEL,
                    sym,
                    now,
                    reason="WINDOW_END",
                    intended=s.order.qty,
                    filled=s.order.filled,
                )
            elif s.state == "ARMED_B":
                s.state = "DONE"
                out.log(ReasonCode.PCIM_B_NO_TRIGGER, sym, now, bars=len(s.bars))
            elif s.state in ("ARMED_A", "WATCH"):
                code = ReasonCode.PCIM_A_NO_SIGNAL if s.state == "ARMED_A" else ReasonCode.PCIM_SKIP_BUCKET
                s.state = "DONE"
                out.log(code, sym, now, reason="WINDOW_END")
        return out

    # ---------------------------------------------------------------- OMS answers, orders, fills

    def on_intent_result(
        self,
        symbol: str,
        now: datetime,
        intent_type: str,
        status: str,
        *,
        modified_qty: int | None = None,
        message: str = "",
    ) -> Output:
        out = Output()
        out.log(
            ReasonCode.PCIM_INTENT_RESULT,
            symbol,
            now,
            intent_type=intent_type,
            status=status,
            modified_qty=modified_qty,
            message=message,
        )
        s = self.syms.get(symbol)
        if intent_type == "ENTER" and s is not None and s.order is not None and s.state == "ENTERING":
            if status in ("ACCEPTED", "EXECUTED", "MODIFIED"):
                s.order.accepted = True
                if status == "MODIFIED" and modified_qty is not None and modified_qty > 0:
                    s.order.qty = modified_qty
            elif status in ("REJECTED", "CANCELLED", "DEFERRED"):
                s.state = "ARMED_B" if (s.order.bucket == "B" and status == "DEFERRED") else "DONE"
                self.entries_today -= 1
                s.order = None
        pos = self.positions.get(symbol)
        if pos is not None and intent_type in ("EXIT", "REDUCE") and status in ("REJECTED", "CANCELLED"):
            pos.exit_pending, pos.reduce_pending = None, False
        return out

    def on_order_closed(self, symbol: str, now: datetime, filled_qty: int, side: str = "BUY") -> Output:
        """An entry order reached a final state (cancelled by A's 30 s, the 10:00 cut, or filled): I19."""
        out = Output()
        s = self.syms.get(symbol)
        if side.upper() not in ("BUY", "B") or s is None or s.order is None or s.state != "ENTERING":
            return out
        o = s.order
        o.filled = max(o.filled, filled_qty)
        s.state = "DONE"
        frac = o.filled / o.qty if o.qty else 0.0
        fields = {"intended": o.qty, "filled": o.filled, "fill_pct": round(frac, 4), "bucket": o.bucket}
        if o.filled <= 0:
            out.log(ReasonCode.PCIM_ENTRY_MISSED, symbol, now, decision="NONE_FILLED", **fields)
        elif frac < self.p.small_fill_frac - 1e-12:
            out.log(ReasonCode.PCIM_ABORTED_SMALL_FILL, symbol, now, decision="SELL_FILLED_PART", **fields)
            pos = self.positions.get(symbol)
            out.extend(self._exit(now, symbol, ReasonCode.PCIM_ABORTED_SMALL_FILL, pos))
        elif o.filled < o.qty:
            out.log(ReasonCode.PCIM_PARTIAL_KEPT, symbol, now, decision="KEEP", **fields)
        return out

    def on_fill(self, symbol: str, side: str, qty: int, price: float, ts: datetime) -> Output:
        out = Output()
        side = side.upper()
        pos = self.positions.get(symbol)
        s = self.syms.get(symbol)
        if side in ("BUY", "B"):
            if s is not None and s.order is not None:
                s.order.filled += qty
            if pos is None:
                item = s.item if s is not None else None
                atr20 = item.atr20 if item is not None else 0.0
                stop, target = exits.initial_levels(price, atr20, self.p)
                pos = PositionState(
                    symbol=symbol,
                    qty=qty,
                    entry_px=price,
                    entry_day=_kst(ts).date(),
                    atr_entry=atr20,
                    stop=stop,
                    target=target,
                    bucket=s.order.bucket if s is not None and s.order is not None else "",
                    tier=item.tier if item else "",
                    conviction=item.conviction if item else "",
                    influencers=list(item.influencers) if item else [],
                    intended_qty=s.order.qty if s is not None and s.order is not None else qty,
                    signal_px=s.order.signal_px if s is not None and s.order is not None else None,
                )
                self.positions[symbol] = pos
            else:
                total = pos.qty + qty
                pos.entry_px = (pos.entry_px * pos.qty + price * qty) / total
                pos.qty = total
                pos.stop, pos.target = exits.initial_levels(pos.entry_px, pos.atr_entry, self.p)
            pos.mark(price)
            self.last_px[symbol] = price
            out.log(
                ReasonCode.PCIM_FILL,
                symbol,
                ts,
                side="BUY",
                qty=qty,
                price=price,
                position=pos.qty,
                avg=round(pos.entry_px, 2),
                stop=round(pos.stop, 2),
                target=round(pos.target, 2),
            )
            out.act(self._modify_risk(ts, pos))
            return out
        if pos is None:
            out.log(
                ReasonCode.PCIM_FILL, symbol, ts, side="SELL", qty=qty, price=price, position=0, note="no PCIM position"
            )
            return out
        sold = min(qty, pos.qty)
        pos.realized += (price - pos.entry_px) * sold
        pos.qty -= sold
        pos.mark(price)
        if pos.reduce_pending:
            pos.partial_done = True
            pos.partial_day = pos.partial_day or _kst(ts).date()
        out.log(
            ReasonCode.PCIM_FILL,
            symbol,
            ts,
            side="SELL",
            qty=qty,
            price=price,
            position=pos.qty,
            realized=round(pos.realized),
        )
        if pos.qty <= 0:
            mfe, mae = pos.mfe_mae()
            out.log(
                ReasonCode.PCIM_POSITION_CLOSED,
                symbol,
                ts,
                realized=round(pos.realized),
                reason=pos.exit_pending,
                mfe=None if mfe is None else round(mfe, 5),
                mae=None if mae is None else round(mae, 5),
                bucket=pos.bucket,
            )
            del self.positions[symbol]
        elif pos.reduce_pending and pos.exit_pending == ReasonCode.PCIM_X_PROFIT_TAKE.value:
            pos.reduce_pending = False
            pos.exit_pending = None
            out.act(self._modify_risk(ts, pos))
        return out

    # ---------------------------------------------------------------- exits (I21–I24)

    def _modify_risk(self, now: datetime, pos: PositionState) -> ModifyRiskAction:
        today = _kst(now).date()
        return ModifyRiskAction(
            symbol=pos.symbol,
            stop_px=round(pos.effective_stop(today), 2) if pos.effective_stop(today) > 0 else None,
            time_stop_ts=self.time_stop(pos.entry_day),
            idempotency_key=idem_key(self.sid, pos.symbol, "MODIFY_RISK", now, tag=f"q{pos.qty}"),
            ts=now,
            rationale_code=ReasonCode.PCIM_FILL.value,
            confidence=pos.conviction or None,
        )

    def time_stop(self, entry_day: date) -> datetime | None:
        """15:10 of the 15th trading day (entry day = day 1)."""
        days = self._days(entry_day, entry_day + timedelta(days=self.p.max_hold_days * 3))
        days = [d for d in days if d >= entry_day]
        if len(days) < self.p.max_hold_days:
            return None
        return datetime.combine(days[self.p.max_hold_days - 1], self.p.eod_exit_time, KST)

    def holding_day(self, pos: PositionState, today: date) -> int:
        return exits.holding_day(pos.entry_day, today, self._days(pos.entry_day, today))

    def _check_exit(self, now: datetime, pos: PositionState, q: QuoteSnap) -> Output:
        out = Output()
        assert q.last is not None
        pos.mark(q.last)
        if pos.exit_pending is not None and pos.exit_pending != ReasonCode.PCIM_X_PROFIT_TAKE.value:
            return out
        today = _kst(now).date()
        t = _kst(now).time()
        if not self.p.session_open <= t < self.p.session_end:
            return out
        hit = exits.check(pos, q.last, today, self.p)
        if hit is None:
            return out
        code, qty = hit
        ref = q.bid or q.last
        if code is ReasonCode.PCIM_X_PROFIT_TAKE:
            if pos.exit_pending is not None:
                return out
            assert qty is not None
            pos.reduce_pending = True
            pos.exit_pending = code.value
            pos.exit_sent_at = now
            limit = float(marketable_limit(ref, buy=False, band_pct=self.p.exit_band_pct, ticks=self.p.exit_band_ticks))
            out.log(code, pos.symbol, now, last=q.last, target=round(pos.target, 2), qty=qty, of=pos.qty, limit=limit)
            out.act(
                ReduceAction(
                    pos.symbol, qty, code, limit, idem_key(self.sid, pos.symbol, "REDUCE", now, tag="pt60"), now
                )
            )
            return out
        out.log(
            code,
            pos.symbol,
            now,
            last=q.last,
            stop=round(pos.effective_stop(today), 2),
            initial_stop=round(pos.stop, 2),
            trail=pos.trail,
        )
        out.extend(self._exit(now, pos.symbol, code, pos, ref=ref))
        return out

    def _exit(
        self, now: datetime, symbol: str, code: ReasonCode, pos: PositionState | None, ref: float | None = None
    ) -> Output:
        out = Output()
        if pos is not None:
            pos.exit_pending = code.value
            pos.exit_sent_at = now
            pos.reduce_pending = False
        price = ref or self.last_px.get(symbol)
        limit = (
            float(marketable_limit(price, buy=False, band_pct=self.p.exit_band_pct, ticks=self.p.exit_band_ticks))
            if price
            else None
        )
        out.act(
            ExitAction(
                symbol, code, limit, idem_key(self.sid, symbol, "EXIT", now, tag=code.value.removeprefix("PCIM_")), now
            )
        )
        return out

    def _day_limit_exits(self, now: datetime) -> Output:
        """I24: at 15:10 of day 15, whatever is left is exited."""
        out = Output()
        today = _kst(now).date()
        if _kst(now).time() >= self.p.session_end:
            return out
        for sym, pos in sorted(self.positions.items()):
            if pos.qty <= 0 or pos.exit_pending == ReasonCode.PCIM_X_DAY15.value:
                continue
            n = self.holding_day(pos, today)
            if n >= self.p.max_hold_days:
                out.log(ReasonCode.PCIM_X_DAY15, sym, now, holding_day=n, qty=pos.qty)
                q_ref = self.last_px.get(sym)
                out.extend(self._exit(now, sym, ReasonCode.PCIM_X_DAY15, pos, ref=q_ref))
        return out

    def _exit_retries(self, now: datetime) -> Output:
        out = Output()
        for sym, pos in sorted(self.positions.items()):
            if pos.exit_pending is None or pos.exit_sent_at is None or pos.reduce_pending:
                continue
            if (now - pos.exit_sent_at).total_seconds() >= self.p.exit_retry_sec and self.p.session_open <= _kst(
                now
            ).time() < self.p.session_end:
                code = ReasonCode(pos.exit_pending)
                out.extend(self._exit(now, sym, code, pos))
        return out

    def on_daily_close(
        self, now: datetime, symbol: str, close: float, atr20: float | None, next_session: date
    ) -> Output:
        """I23 after the close: the trail of a position whose partial is done; MODIFY_RISK with the new stop."""
        out = Output()
        pos = self.positions.get(symbol)
        if pos is None or pos.qty <= 0:
            return out
        self.last_px[symbol] = close
        pos.mark(close)
        if not pos.partial_done or atr20 is None or atr20 <= 0:
            return out
        before = pos.trail
        trail = exits.update_trail(pos, close, atr20, _kst(now).date(), next_session, self.p)
        out.log(
            ReasonCode.PCIM_TRAIL_UPDATE,
            symbol,
            now,
            close=close,
            atr20=round(atr20, 2),
            previous=before,
            trail=None if trail is None else round(trail, 2),
            from_session=str(next_session),
        )
        stop = pos.effective_stop(next_session)
        out.act(
            ModifyRiskAction(
                symbol=symbol,
                stop_px=round(stop, 2),
                time_stop_ts=self.time_stop(pos.entry_day),
                idempotency_key=idem_key(self.sid, symbol, "MODIFY_RISK", now, tag="trail"),
                ts=now,
                rationale_code=ReasonCode.PCIM_TRAIL_UPDATE.value,
            )
        )
        return out

    def on_position_recovered(
        self,
        symbol: str,
        qty: int,
        avg: float,
        now: datetime,
        *,
        entry_ts: datetime | None = None,
        stop_px: float | None = None,
        memo: dict[str, Any] | None = None,
        atr20: float | None = None,
    ) -> Output:
        """A PCIM allocation at start: the stored memo (stop, target, trail, partial) when it matches,
        else levels rebuilt from the OMS's stop or **[resolved]** ``avg·(1 − recovered_stop_pct)``."""
        out = Output()
        if memo is not None:
            pos = PositionState.from_json(memo)
            pos.qty = qty
            pos.entry_px = avg or pos.entry_px
            pos.exit_pending, pos.exit_sent_at, pos.reduce_pending = None, None, False
            source = "store"
        else:
            stop = stop_px if stop_px and 0 < stop_px < avg else avg * (1 - self.p.recovered_stop_pct)
            atr = atr20 if atr20 and atr20 > 0 else (avg - stop) / self.p.stop_atr_mult
            entry_day = _kst(entry_ts).date() if entry_ts is not None else _kst(now).date()
            pos = PositionState(symbol, qty, avg, entry_day, atr, stop, avg + self.p.profit_take_atr * atr)
            source = "oms" if stop_px else "default"
        self.positions[symbol] = pos
        out.log(
            ReasonCode.PCIM_POSITION_RECOVERED,
            symbol,
            now,
            qty=qty,
            avg=avg,
            stop=round(pos.stop, 2),
            target=round(pos.target, 2),
            trail=pos.trail,
            partial_done=pos.partial_done,
            entry_day=str(pos.entry_day),
            source=source,
        )
        out.act(self._modify_risk(now, pos))
        return out

    # ---------------------------------------------------------------- queries

    def poll_symbols(self, now: datetime) -> list[str]:
        """Symbols whose REST quote is needed now: today's live candidates in the window, and positions."""
        t = _kst(now).time()
        live = {
            s
            for s, st in self.syms.items()
            if st.state in ("WATCH", "ARMED_A", "ARMED_B", "ENTERING") and t < self.p.entry_end
        }
        return sorted(live | {s for s, p in self.positions.items() if p.qty > 0})

    def bar_symbols(self, now: datetime) -> list[str]:
        t = _kst(now).time()
        if not self.p.session_open <= t < self.p.entry_end:
            return []
        return sorted(s for s, st in self.syms.items() if st.state in ("WATCH", "ARMED_A", "ARMED_B", "ENTERING"))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.syms.values():
            out[s.state] = out.get(s.state, 0) + 1
        return out
