"""Nulrimok — flow-led AVWAP dip buying over days (strategies.md §3).

The pure core (no I/O, no asyncio, explicit times) and the parts around it:

* ``config`` — parameters (``config/nulrimok.yaml``, unknown keys rejected with file and key);
* ``features`` — N6–N10 per-ticker daily features (flow, RS inputs, SMA50/slope, anchors, AVWAP, ATRs);
* ``regime`` — N4; ``selection`` — the Daily Selection Engine N3–N13 (:func:`select` → :class:`Selection`);
* ``bars30`` — 30m bars from 1m bars (N16); ``signals`` — N18–N20; ``sizing`` — N21–N22;
  ``exits`` — N23–N28; ``monitor`` — N14–N15; ``decisions`` — reason codes, Decision, actions;
* ``engine`` — :class:`NulrimokEngine`, the intraday and across-session state;
* ``lrs`` — the Local Research Store (SQLite via SQLAlchemy, filled through the OMS proxy);
* ``data`` — listing, sector map, REST quotes and 30m REST bars; ``strategy`` — the SDK wiring.

Engine inputs (every method returns an :class:`Output` with ``actions`` and ``decisions``):

================================================  =========================================================
call                                              when / data
================================================  =========================================================
``on_selection(now, selection, history)``         after the DSE (08:00–08:30): today's :class:`Selection`
                                                  and the last 3 sessions of 30m bars (``{sym: [Bar30]}``)
                                                  of the ranked candidates and held positions
``on_bar30(sym, bar30, now)``                     each completed 30m bar of ``bar_symbols(now)`` (09:30 …
                                                  15:20; stream 1m bars or one REST pull per bar)
``on_price(sym, price, ts)``                      every stream trade; REST quotes of held positions
                                                  every 60 s without stream (N16)
``on_clock(now)``                                 ~every 1 s 09:00–15:30 (09:01 flow exits, order
                                                  windows, 15:10 time stops/tags, refreshes, retries)
``on_account(now, nav)``                          every 60 s (``/state/account`` equity)
``on_intent_result(sym, now, type, status, ...)`` the OMS reply to each intent (modified_qty,
                                                  cooldown_until, message)
``on_order_closed(sym, now, filled_qty)``         an entry (buy) order reached a terminal state
``on_exit_order_closed(sym, now, state)``         a sell order reached a terminal state (EXIT re-sent)
``on_fill(sym, side, qty, price, ts)``            each Nulrimok fill from the stream (buys and sells)
``on_position_recovered(sym, qty, avg, now, ...)`` at start / reconnect per Nulrimok allocation
                                                  (stop_px, entry_ts, sessions_after from the LRS dates,
                                                  swing_high, avwap_ref, atr30m, the saved ``snapshot``)
``sync_allocations(now, {sym: qty})``             after a recovery: positions closed outside the engine
``on_slots(now, granted, denied)``                the stream's answer to a subscribe (or an eviction)
``note_skipped_bar(sym, start, now, why)``        a 30m bar that could not be built (N29: no action)
================================================  =========================================================

Queries: ``desired_subscriptions(now)``, ``bar_symbols(now)``, ``held_symbols()``, ``positions()`` (for
the DSE), ``position_snapshot(sym)`` (saved in the LRS), ``state_of``, ``position_of``, ``open_risk``,
``entries_today``, ``entry_signal_count``.

Actions → OMS intents (all ``time_horizon`` SWING, deterministic keys): ``EnterAction`` → ENTER LIMIT
(``limit_price``, ``cancel_after_sec``, ``risk_payload()``); ``ExitAction`` → EXIT with the marketable
limit (urgency HIGH); ``ReduceAction`` → REDUCE ``qty`` with the marketable limit; ``CancelAction`` →
CANCEL_ORDERS; ``ModifyRiskAction`` → MODIFY_RISK (stop_px). Send actions in list order; feed the reply
back through ``on_intent_result``.
"""

from strategies.nulrimok.config import NulrimokConfig, NulrimokConfigError, NulrimokParams, load_nulrimok_config
from strategies.nulrimok.decisions import (
    DROP_CODES,
    GATE_CODES,
    Action,
    CancelAction,
    Decision,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
)
from strategies.nulrimok.engine import NulrimokEngine
from strategies.nulrimok.selection import Selection, SelectionInputs, select

__all__ = [
    "DROP_CODES",
    "GATE_CODES",
    "Action",
    "CancelAction",
    "Decision",
    "EnterAction",
    "ExitAction",
    "ModifyRiskAction",
    "NulrimokConfig",
    "NulrimokConfigError",
    "NulrimokEngine",
    "NulrimokParams",
    "Output",
    "ReduceAction",
    "Selection",
    "SelectionInputs",
    "load_nulrimok_config",
    "select",
]
