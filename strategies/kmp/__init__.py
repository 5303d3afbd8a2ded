"""KMP — opening-range momentum breakout (strategies.md §1), pure core.

Everything here is deterministic logic: no I/O, no asyncio, no OMS calls, no clock of its own.
The wiring (a ``Strategy`` subclass on the SDK) fetches data through the OMS, calls
:class:`KmpEngine` with explicit KST-aware times, sends the returned actions as intents and logs
the returned decisions.

Modules (one job each): ``config`` (parameters, ``config/kmp.yaml``), ``universe`` (K1–K2 premarket
caches), ``scanner`` (K3, K8–K10), ``regime`` (K4–K7 incl. program overlay), ``fsm`` (§1.5 states and
acceptance), ``gates`` (K12), ``sizing`` (K13–K15, QualityScore), ``exits`` (K16–K19),
``subscriptions`` (K20), ``decisions`` (reason codes, Decision, actions), ``minutes`` (per-symbol
1m data + VWAP), ``engine`` (the orchestrating :class:`KmpEngine`).

Engine inputs (every method returns an :class:`Output` with ``actions`` and ``decisions``):

=========================================  ====================================================
call                                       when / data
=========================================  ====================================================
``premarket(now, caches, dropped=None)``   08:00–08:59 · caches from ``build_symbol_cache`` over
                                           ``select_universe`` (daily bars ≥ 65 sessions, 1m bars
                                           09:00–09:59 of the last 20 sessions, sector map)
``on_open(now, {symbol: open})``           09:00 (optional: the scan falls back to the 09:00 bar)
``scan(now, {symbol: [1m bars]})``         09:15:00 · REST 1m bars 09:00–09:14, every universe
                                           symbol; then subscribe per ``desired_subscriptions``
``on_trade(sym, px, qty, ts, aggressor,    every trade of a subscribed symbol (``vi_ref``: static-
vi_ref=, bid=, ask=)``                     VI reference if the feed carries it)
``on_quote(sym, ts, bid, ask, vi_ref=)``   every quote (or a REST quote when no quote slot)
``on_bar(sym, bar)``                       each completed 1m bar (SDK ``BarBuilder`` output) and
                                           REST bars of ``breadth_poll_symbols`` (≤ 1/min)
``on_vi(sym, ts, vi_ref=)``                a VI triggered on the symbol
``on_clock(now)``                          ~every 1 s 09:00–15:20 (timeouts, 10:00, 15-s regime,
                                           risk flatten, 14:30 flatten)
``on_account(now, nav, day_pnl_pct,        every ~15 s from ``/state/account`` (day_pnl_pct as a
halt=, flatten_in_progress=)``             fraction; halt = OMS daily-loss halt, not the warn)
``on_index(now, market, last,              every 15 s: KOSPI and KOSDAQ level, prior close, and
prior_close, closes_1m)``                  KOSPI's 1m closes of today (chop test)
``on_program(now, market, buy_cum=,        every 60 s per market; **not available on paper** —
sell_cum= | net_cum=)``                    never call it there (overlay stays ``mixed``, ×1.00)
``on_program_failure(now, market)``        a failed program poll
``on_intent_result(sym, now, status,       the OMS reply to an ENTER (ACCEPTED/MODIFIED/DEFERRED/
modified_qty=, cooldown_until=)``          REJECTED)
``on_order_closed(sym, now, filled_qty)``  the entry order reached a terminal state at the OMS
``on_fill(sym, side, qty, price, ts)``     each KMP fill from the stream (buys and sells)
``on_position_recovered(sym, qty, avg,     at start, per KMP allocation from the OMS (soft/hard
now, stop_px=, hard_stop_px=, entry_ts=)``  stop, entry time)
``on_slots(now, granted, denied)``         the stream's reply to a subscribe
``on_rest_result(now, source, ok)``        optional: REST failure streak alerts
=========================================  ====================================================

Queries: ``desired_subscriptions(now) -> {symbol: frozenset({"trades", "quotes"})}`` (diff it
against the current subscriptions after every call that changes states),
``breadth_poll_symbols(now)``, ``state_of(sym)``, ``position_of(sym)``, ``entry_signal_count``.

Actions → OMS intents (``strategies.kmp.decisions``): ``EnterAction`` → ENTER STOP_LIMIT
(``qty``, ``stop_price``, ``limit_price``, ``cancel_after_sec``, ``risk_payload()``,
``idempotency_key``); ``ExitAction`` → EXIT with a marketable LIMIT at ``limit_price`` (urgency
HIGH); ``FlattenAction`` → FLATTEN; ``CancelAction`` → CANCEL_ORDERS; ``ModifyRiskAction`` →
MODIFY_RISK (stop_px, hard_stop_px, time_stop_ts). Send actions in list order. Use the MODIFIED
qty the OMS returns (feed it back through ``on_intent_result``).

Wiring on the SDK (``strategies.sdk.strategy.Strategy``), suggested:

* hooks: ``on_trade`` → ``engine.on_trade`` (pass ``vi_ref``/bid/ask if the event has them);
  ``on_bar`` → ``engine.on_bar``; ``on_quote`` → ``engine.on_quote``; ``on_fill`` →
  ``engine.on_fill``; ``on_order`` (terminal entry order) → ``engine.on_order_closed``;
  ``on_recover`` → ``engine.on_position_recovered`` per KMP allocation (``soft_stop_px``,
  ``hard_stop_px``, ``entry_ts``).
* scheduler (KST): 08:00 (``premarket_time``) premarket build + ``premarket``; 09:00:00 ``on_open`` (optional);
  09:15:00 ``scan`` (must finish by 09:16); every 1 s 09:00–15:20 ``on_clock``; every 15 s
  ``on_account`` + ``on_index``; every 60 s ``on_program`` (real KIS only); every 60 s 09:15–10:00
  REST 1m bars of ``breadth_poll_symbols`` → ``on_bar``; after each call, subscribe/unsubscribe
  the diff of ``desired_subscriptions(now)``.
* actions → ``OmsClient``: ``EnterAction`` → ``oms.enter(sym, a.qty, stop_price=a.stop_price,
  limit_price=a.limit_price, order_type="STOP_LIMIT", cancel_after_sec=a.cancel_after_sec,
  risk=RiskPayload(**a.risk_payload()), idempotency_key=a.idempotency_key)`` then
  ``on_intent_result`` with the reply; ``ExitAction`` → ``oms.exit(sym, limit_price=a.limit_price,
  order_type="LIMIT", risk=RiskPayload(rationale_code=a.rationale_code),
  idempotency_key=a.idempotency_key)``; ``FlattenAction`` → ``oms.flatten("*", ...)``;
  ``CancelAction`` → ``oms.cancel_orders(sym, ...)``; ``ModifyRiskAction`` →
  ``oms.modify_risk(sym, stop_px=..., hard_stop_px=..., time_stop_ts=...)``.
* decisions → ``Strategy.decision(d.code.value, d.symbol, **d.fields)``; ``d.alert`` marks alerts.
"""

from strategies.kmp.config import KmpConfig, KmpConfigError, KmpParams, UniverseConfig, load_kmp_config
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
from strategies.kmp.fsm import State
from strategies.kmp.universe import SymbolCache, SymbolMeta, build_symbol_cache, select_universe

__all__ = [
    "Action",
    "CancelAction",
    "ReasonCode",
    "Decision",
    "EnterAction",
    "ExitAction",
    "FlattenAction",
    "KmpConfig",
    "KmpConfigError",
    "KmpEngine",
    "KmpParams",
    "ModifyRiskAction",
    "Output",
    "State",
    "SymbolCache",
    "SymbolMeta",
    "UniverseConfig",
    "build_symbol_cache",
    "load_kmp_config",
    "select_universe",
]
