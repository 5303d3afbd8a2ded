"""PCIM — influencer post-close momentum (strategies.md §4): swing, REST only, 0 WebSocket slots.

The night pipeline (``strategies.pcim.pipeline``) turns whitelisted channels' videos into candidates
(captions → LLM extraction → listing master), ``filters``/``watchlist`` turn candidates into the
session's watchlist, a person approves it (``approval``, ``review``), and the pure
:class:`PcimEngine` trades the approved items 09:01–10:00 and manages them until exit; ``strategy``
wires it all on the SDK, ``store`` keeps everything (SQLAlchemy 2).

Modules: ``config`` (``config/pcim.yaml``), ``decisions`` (Decision, actions, Output), ``filters``
(I5–I10), ``watchlist`` (I4), ``regime`` (I12, KOSPI veto), ``signals`` (I13 buckets, I15 A, I16 B,
I14 vetoes), ``sizing`` (I17–I18), ``exits`` (I21–I24), ``approval`` (I11), ``engine``, ``store``,
``review`` (``trader pcim review`` sub-app + HTTP), ``refdata`` (reference data for the offline CLI),
``strategy`` (wiring).

Engine calls (every one returns an :class:`Output` of ``actions`` and ``decisions``; ``now`` is explicit):

===============================================  ===================================================
call                                             when / data
===============================================  ===================================================
``start_day(now, items, approvals, label=)``     08:30 freeze: WatchItems + ApprovalStatus by symbol;
                                                 unapproved → PCIM_NOT_APPROVED, held → SKIP (I20)
``set_regime(now, RegimeState)``                 08:30: ``regime.from_daily(KOSPI daily)``; emits
                                                 MODIFY_RISK ``*`` (regime, cap)
``on_expected_open(now, sym, price, source)``    08:40–09:00, every 60 s (call-auction indication)
``on_account(now, nav)``                         every 30 s (OMS equity)
``on_index(now, kospi_last, kospi_prev_close)``  every 30 s from 09:00 (I14 −1.5% veto)
``on_quote(now, sym, QuoteSnap)``                every 30 s: live candidates (vetoes) and positions
                                                 (exits I21–I22)
``on_bars(now, sym, [1m bars since 09:00])``     09:01–10:00 every 60 s (REST)
``on_clock(now)``                                after each poll: 09:01 buckets, A at 09:03, B on each
                                                 close 09:10–09:59, 10:00 cut, 15:10 day 15, retries
``on_intent_result(sym, now, type, status,       each OMS reply (MODIFIED qty is used)
modified_qty=, message=)``
``on_order_closed(sym, now, filled_qty, side)``  an entry order ended (I19 small-fill abort)
``on_fill(sym, side, qty, price, ts)``           each PCIM fill (positions, partial, close)
``on_daily_close(now, sym, close, atr20, next)``  after the close (I23 trail)
``on_position_recovered(sym, qty, avg, now,      at start, per PCIM allocation (store memo, OMS stop,
entry_ts=, stop_px=, memo=, atr20=)``              entry time)
===============================================  ===================================================

Queries: ``poll_symbols(now)``, ``bar_symbols(now)``, ``positions``, ``syms``, ``counts()``, ``time_stop(day)``.
"""

from strategies.pcim.config import PcimConfig, PcimParams, load_pcim_config
from strategies.pcim.decisions import (
    Action,
    CancelAction,
    Decision,
    EnterAction,
    ExitAction,
    ModifyRiskAction,
    Output,
    ReduceAction,
)
from strategies.pcim.engine import PcimEngine
from strategies.pcim.filters import Candidate, CandidateRef, WatchItem

__all__ = [
    "Action",
    "CancelAction",
    "Candidate",
    "CandidateRef",
    "Decision",
    "EnterAction",
    "ExitAction",
    "ModifyRiskAction",
    "Output",
    "PcimConfig",
    "PcimEngine",
    "PcimParams",
    "ReduceAction",
    "WatchItem",
    "load_pcim_config",
]
