"""KPR — VWAP-depth panic/drift reclaim (strategies.md §2), pure core plus SDK wiring.

Everything but ``data`` and ``strategy`` is deterministic logic: no I/O, no asyncio, no OMS calls,
no clock of its own. The wiring (:mod:`strategies.kpr.strategy`, a ``Strategy`` on the SDK) fetches
data through the OMS, calls :class:`KprEngine` with explicit KST-aware times, sends the returned
actions as intents and logs the returned decisions.

Modules (one job each): ``config`` (parameters, ``config/kpr.yaml``), ``timing`` (KST helpers),
``minutes`` (per-symbol 1m bars, B3 VWAP, open/HOD/LOD), ``universe`` (P1 premarket cache: prior
close, ADV20, ATR20, volume profile), ``tiers`` (P1–P4 HOT/WARM/COLD), ``setup`` (P6–P7), ``fsm``
(§2.4, P8 closes and adders), ``signals`` (P9–P11 pillars, market program), ``confidence`` (P13),
``gates`` (P12), ``sizing`` (P14–P15), ``exits`` (P16–P19), ``micro_windows`` (P20), ``decisions``
(Decision, actions, Output), ``engine`` (the orchestrating :class:`KprEngine`), ``data`` (OMS proxy
I/O), ``strategy`` (wiring).

Engine inputs (every method returns an :class:`Output` with ``actions`` and ``decisions``):

==============================================  ===============================================
call                                            when / data
==============================================  ===============================================
``premarket(now, caches, dropped=None)``        08:30 (or at a later start) · caches from
                                                ``data.load_premarket`` (daily bars, 1m bars of
                                                the last 20 sessions, sector map)
``mark_entered(now, symbols)``                  after premarket: symbols KPR entered today before
                                                a restart (no re-entry)
``set_provider_mode(now, pillar, mode, why)``   at start (probes) and on change: ``investor`` LIVE
                                                / DAILY_ONLY / UNAVAILABLE, ``program`` REST / WS
                                                / UNAVAILABLE (logged once per change)
``on_bars(sym, bars, now, "rest")``             each REST poll of ``take_due_polls(now)`` (bars
                                                from ``rest_start(sym)`` to the last completed
                                                minute)
``on_bar(sym, bar, now, source)``               each completed stream bar (``"ws"``)
``on_trade(sym, px, qty, ts, aggressor)``       each trade of a streamed symbol
``on_quote(sym, ts, bid, ask)``                 REST quotes of ``quote_due()`` (or stream quotes)
``on_clock(now)``                               every ~5 s 09:00–15:30 (order timeouts, cooldowns,
                                                14:30, time stops, exit retries, 15:15, tiers)
``on_account(now, nav, day_pnl_pct,             every ~15 s from ``/state/account``
buyable_cash=, halted=)``
``on_index(now, market, last, prior_close)``    every ~30 s, KOSPI and KOSDAQ
``on_investor(sym, now, foreign_value,          ``investor_due(now)`` (LIVE provider only): today's
inst_value)``                                   net buy in ₩; None = no today's row
``on_program(sym, now, net_value)``             ``program_due(now)`` (REST provider only)
``on_market_program(now, market, buy_cum=,      market-wide program flow (no source on paper or
sell_cum= | net_cum=)``                         through the OMS today: never called there)
``on_data_failure(now, source, sym=None)``      a failed/throttled REST call (data stays stale)
``on_slots(now, granted, denied)``              the stream's subscribe answers and evictions
``on_unsubscribed(now, symbols)``               KPR dropped symbols from the stream
``on_intent_result(sym, now, status,            the OMS reply to any KPR intent
intent_type=, modified_qty=, cooldown_until=,
reason_code=)``
``on_order_closed(sym, now, filled_qty)``       a KPR buy order reached a terminal state
``on_fill(sym, side, qty, price, ts)``          each KPR fill (buys and sells)
``on_position_recovered(sym, qty, avg, now,     at start, per KPR allocation from the OMS
stop_px=, initial_stop_px=, entry_ts=,
time_stop_ts=, partial_done=, sector=)``
==============================================  ===============================================

Queries: ``take_due_polls(now)`` (REST 1m-bar polls due: WARM 30 s / 15 s in micro-windows, COLD
180 s, HOT without a slot at the WARM cadence; each symbol rescheduled), ``rest_start(sym)``,
``desired_stream(now)`` (≤ ``hot_max`` HOT symbols, positions first), ``keep_symbols()``,
``investor_due(now)``, ``program_due(now)``, ``quote_due()``, ``state_of``, ``position_of``,
``tier_of``, ``status(now)``, ``entry_signal_count``, ``funnel``.

Actions → OMS intents (:mod:`strategies.kpr.decisions`): ``EnterAction`` → ENTER marketable LIMIT
(``limit_price`` = up(ask, 2) or up(last, 3), ``cancel_after_sec`` 30, ``risk_payload()``,
deterministic ``idempotency_key``); ``ReduceAction`` → REDUCE ``qty`` with a marketable limit;
``ExitAction`` → EXIT with a marketable limit (C6); ``CancelAction`` → CANCEL_ORDERS;
``ModifyRiskAction`` → MODIFY_RISK (stop, time stop). Send actions in list order and feed every
reply back through ``on_intent_result``. Decisions → ``Strategy.decision(d.code.value, d.symbol,
**d.fields)``.
"""

from strategies.kpr.config import KprConfig, KprParams, ProgramMode, UniverseConfig, load_kpr_config
from strategies.kpr.decisions import (
    Action,
    CancelAction,
    Decision,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
)
from strategies.kpr.engine import KprEngine, ProviderMode
from strategies.kpr.fsm import State
from strategies.kpr.tiers import Tier
from strategies.kpr.universe import SymbolCache, SymbolMeta

__all__ = [
    "Action",
    "CancelAction",
    "Decision",
    "EnterAction",
    "ExitAction",
    "KprConfig",
    "KprEngine",
    "KprParams",
    "ModifyRiskAction",
    "Output",
    "ProgramMode",
    "ProviderMode",
    "ReduceAction",
    "State",
    "SymbolCache",
    "SymbolMeta",
    "Tier",
    "UniverseConfig",
    "load_kpr_config",
]
