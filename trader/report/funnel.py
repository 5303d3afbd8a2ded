"""The "why nothing traded" funnel of each strategy.

Stages, in order: **candidates → passed the gates → signals → intents → accepted → filled**. The first
three come from the strategy's decision log and need a :class:`FunnelSpec`; the last three come from
the database (entry intents, the ones the OMS took, and those that got at least one fill), so every
strategy has them. A strategy without a spec or without a log has ``None`` for the log stages.

How each strategy's log maps onto the stages is declared in ONE place, :data:`FUNNELS` below. To add a
strategy (KPR, Nulrimok, PCIM, ...), add a ``FunnelSpec`` with its reason codes:

``candidate_codes``   a decision with this code and a symbol names one candidate (counted once per day and symbol)
``candidate_lists``   code → field holding a list of candidates (symbols, or tuples whose first item is the symbol)
``upstream_codes``    why no candidate came up at all (data missing, gaps, scan skipped)
``drop_codes``        a candidate ended before its entry gates were evaluated
``gate_codes``        an entry gate refused (logged each time it is evaluated, so counts are evaluations)
``signal_codes``      every gate passed: an entry signal (its symbol/day counts as "passed the gates")
``after_signal_codes`` why a signal did not become a filled entry (send errors, rejections, missed fills)
``entry_intent_types`` the intent types that are entries in the database

KMP (strategies/kmp): candidates = symbols of ``KMP_SCAN``'s ``candidates`` list and ``KMP_CANDIDATE``
lines; gates = ``strategies.kmp.decisions.GATE_CODES`` (the ``KMP_G_*`` codes and the VI gates); signals
= ``KMP_ENTRY``.

NULRIMOK (strategies/nulrimok): candidates = every ticker the daily selection judged (``NULRIMOK_TRADABLE`` or a
``NULRIMOK_DROP_*`` reason); drops = the selection's drops, a trigger disarmed or never confirmed, no slot;
gates = the entry gates of §3.5 (``NULRIMOK_G_*``); signals = ``NULRIMOK_ENTRY``.

SWING_ML (strategies/swing_ml): candidates = the symbols decide scored (a BUY or a skip with its reason); upstream
= no promoted model, no regime or data; gates = the regime and the Kelly size; signals = ``SWING_BUY``.

SCRIPTED (``trader.scripted_us``, the US demo's scripted client): candidates = its day plan's symbols;
"gate" = waiting for the entry time; drops = no quote, too expensive, given up; signals = every ENTER it
sent (taken, refused or unanswered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from broker_core.contract.reasons import ReasonCode as R
from strategies.kmp.decisions import GATE_CODES as KMP_GATE_CODES
from strategies.swing_ml.reasons import Code as SWC
from strategies.swing_ml.reasons import Reason as SW
from trader.report.collect import Decision, text_or_none
from trader.scripted_us import CANDIDATE_CODES as SCRIPTED_CANDIDATE_CODES
from trader.scripted_us import Code as S

STAGES = ("candidates", "gates_passed", "signals", "intents", "accepted", "filled")
STAGE_LABELS = {
    "candidates": ("candidate", "candidates"),
    "gates_passed": ("passed the gates", "passed the gates"),
    "signals": ("signal", "signals"),
    "intents": ("intent", "intents"),
    "accepted": ("accepted", "accepted"),
    "filled": ("filled", "filled"),
}
"""stage → (label after 1, label after any other count)."""
TAKEN = frozenset({"ACCEPTED", "EXECUTED", "MODIFIED"})
"""Intent statuses meaning the OMS took the intent (``IntentStatus.taken``)."""
TOP_BLOCKERS = 6


@dataclass(frozen=True)
class FunnelSpec:
    candidate_codes: frozenset[str] = frozenset()
    candidate_lists: Mapping[str, str] = field(default_factory=dict)
    upstream_codes: frozenset[str] = frozenset()
    drop_codes: frozenset[str] = frozenset()
    gate_codes: frozenset[str] = frozenset()
    signal_codes: frozenset[str] = frozenset()
    after_signal_codes: frozenset[str] = frozenset()
    entry_intent_types: tuple[str, ...] = ("ENTER",)


def _codes(*codes: str) -> frozenset[str]:
    return frozenset(str(c) for c in codes)


FUNNELS: dict[str, FunnelSpec] = {
    "KMP": FunnelSpec(
        candidate_codes=_codes(R.KMP_CANDIDATE),
        candidate_lists={R.KMP_SCAN.value: "candidates"},
        upstream_codes=_codes(
            R.KMP_GAP_SKIP, R.KMP_SCAN_SKIPPED, R.KMP_SCAN_LATE, R.KMP_DATA_UNAVAILABLE, R.KMP_UNIVERSE_DROP
        ),
        drop_codes=_codes(
            R.KMP_OR_RANGE,
            R.KMP_VI_MISSING,
            R.KMP_ACCEPT_TIMEOUT,
            R.KMP_SUPPORT_LOST,
            R.KMP_SLOT_DENIED,
            R.KMP_WINDOW_END,
        ),
        gate_codes=_codes(*KMP_GATE_CODES),
        signal_codes=_codes(R.KMP_ENTRY),
        after_signal_codes=_codes(R.KMP_INTENT_ERROR, R.KMP_ENTRY_REJECTED, R.KMP_ENTRY_DEFERRED, R.KMP_MISSED_FILL),
    ),
    "KPR": FunnelSpec(
        candidate_codes=_codes(R.KPR_SETUP_PANIC, R.KPR_SETUP_DRIFT),
        upstream_codes=_codes(R.KPR_DATA_UNAVAILABLE, R.KPR_UNIVERSE_DROP, R.KPR_ENTERED_TODAY),
        drop_codes=_codes(R.KPR_INVALIDATED, R.KPR_SETUP_EXPIRED),
        gate_codes=_codes(
            R.KPR_BLOCK_TIMING,
            R.KPR_BLOCK_SECTOR,
            R.KPR_BLOCK_CONFIDENCE,
            R.KPR_BLOCK_NOCONFIRM,
            R.KPR_BLOCK_RETRY_WAIT,
            R.KPR_BLOCK_SPREAD,
            R.KPR_BLOCK_BUDGET,
            R.KPR_BLOCK_STALE_BAR,
        ),
        signal_codes=_codes(R.KPR_ENTRY),
        after_signal_codes=_codes(R.KPR_INTENT_ERROR, R.KPR_ENTRY_REJECTED, R.KPR_ENTRY_DEFERRED, R.KPR_MISSED_FILL),
    ),
    "NULRIMOK": FunnelSpec(
        candidate_codes=_codes(
            R.NULRIMOK_TRADABLE,
            *(c for c in R if c.value.startswith("NULRIMOK_DROP_")),
        ),
        upstream_codes=_codes(
            R.NULRIMOK_LRS_FAILED, R.NULRIMOK_DATA_UNAVAILABLE, R.NULRIMOK_DSE_LATE, R.NULRIMOK_DSE_FAILED
        ),
        drop_codes=_codes(
            *(c for c in R if c.value.startswith("NULRIMOK_DROP_")),
            R.NULRIMOK_DISARM,
            R.NULRIMOK_NO_CONFIRM,
            R.NULRIMOK_SLOT_DENIED,
        ),
        gate_codes=_codes(
            R.NULRIMOK_G_TIER_C,
            R.NULRIMOK_G_TIME,
            R.NULRIMOK_G_NAV_NA,
            R.NULRIMOK_G_PORTFOLIO_RISK,
            R.NULRIMOK_G_SECTOR_RISK,
            R.NULRIMOK_G_QTY,
        ),
        signal_codes=_codes(R.NULRIMOK_ENTRY),
        after_signal_codes=_codes(
            R.NULRIMOK_INTENT_ERROR,
            R.NULRIMOK_ENTRY_REJECTED,
            R.NULRIMOK_ENTRY_DEFERRED,
            R.NULRIMOK_ENTRY_CANCEL,
            R.NULRIMOK_MISSED_FILL,
        ),
    ),
    "PCIM": FunnelSpec(
        candidate_codes=_codes(R.PCIM_CANDIDATE),
        upstream_codes=_codes(
            R.PCIM_NO_TRANSCRIPT, R.PCIM_EXTRACTION_FAILED, R.PCIM_DATA_UNAVAILABLE, R.PCIM_SOURCE_ERROR, R.PCIM_NO_DATA
        ),
        drop_codes=_codes(
            R.PCIM_TREND_GATE,
            R.PCIM_REJECT_ADTV,
            R.PCIM_REJECT_MARKET_CAP,
            R.PCIM_REJECT_EARNINGS,
            R.PCIM_REJECT_GAP_REVERSAL,
            R.PCIM_NOT_APPROVED,
            R.PCIM_SKIP_BUCKET,
            R.PCIM_A_NO_SIGNAL,
            R.PCIM_B_NO_TRIGGER,
            R.PCIM_SKIP_ALREADY_HOLDING,
        ),
        gate_codes=_codes(
            R.PCIM_VETO_VI,
            R.PCIM_VETO_UPPER_LIMIT,
            R.PCIM_VETO_SPREAD,
            R.PCIM_VETO_NO_QUOTE,
            R.PCIM_VETO_KOSPI,
            R.PCIM_REJECT_FLOOR,
            R.PCIM_CAP_MAX_POSITIONS,
        ),
        signal_codes=_codes(R.PCIM_ENTRY),
        after_signal_codes=_codes(R.PCIM_INTENT_ERROR, R.PCIM_ENTRY_MISSED, R.PCIM_ABORTED_SMALL_FILL),
    ),
    "SWING_ML": FunnelSpec(
        candidate_codes=_codes(
            SW.SWING_BUY,
            SW.SWING_SKIP_SCORE,
            SW.SWING_SKIP_NOT_TOP_QUARTILE,
            SW.SWING_SKIP_MAX_POSITIONS,
            SW.SWING_SKIP_RISK_OFF,
            SW.SWING_SKIP_KELLY,
            SWC.SWING_SKIP_NO_REGIME,
        ),
        upstream_codes=_codes(
            SWC.SWING_NO_MODEL,
            SW.SWING_MODEL_NOT_PROMOTED,
            SW.SWING_MODEL_FEATURE_MISMATCH,
            SWC.SWING_REGIME_UNAVAILABLE,
            SWC.SWING_SKIP_NO_DATA,
            SWC.SWING_SKIP_HISTORY,
            SWC.SWING_SKIP_NO_FACTORS,
            SWC.SWING_SKIP_ILLIQUID,
        ),
        drop_codes=_codes(SW.SWING_SKIP_SCORE, SW.SWING_SKIP_NOT_TOP_QUARTILE, SW.SWING_SKIP_MAX_POSITIONS),
        gate_codes=_codes(SW.SWING_SKIP_RISK_OFF, SWC.SWING_SKIP_NO_REGIME, SW.SWING_SKIP_KELLY),
        signal_codes=_codes(SW.SWING_BUY),
        after_signal_codes=_codes(SWC.SWING_INTENT_FAILED, SW.SWING_DRY_RUN, SWC.SWING_DEFERRED_DROPPED),
    ),
    "SCRIPTED": FunnelSpec(
        candidate_codes=_codes(*SCRIPTED_CANDIDATE_CODES),
        candidate_lists={S.PLAN.value: "candidates"},
        upstream_codes=_codes(S.NO_SESSION),
        drop_codes=_codes(S.NO_PRICE, S.TOO_EXPENSIVE, S.GIVE_UP),
        gate_codes=_codes(S.WAIT_OPEN),
        signal_codes=_codes(S.ENTRY, S.ENTRY_REJECTED, S.ENTRY_ERROR),
        after_signal_codes=_codes(S.ENTRY_REJECTED, S.ENTRY_ERROR, S.CANCEL_ENTRY),
    ),
}
"""strategy id → how its decision log maps onto the funnel (see the module's docstring)."""

DEFAULT_SPEC = FunnelSpec(entry_intent_types=("ENTER", "SET_TARGET"))
"""For a strategy without an entry in :data:`FUNNELS`: database stages only."""


@dataclass
class Funnel:
    strategy: str
    stages: dict[str, int | None]
    blockers: dict[str, int]
    """Codes (log) and reasons (database) that stopped the funnel, most frequent first."""
    sentence: str
    traded: bool
    """At least one entry intent got a fill."""
    log_codes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Every upstream / drop / gate / after-signal code the log holds, by group (whether or not it stopped
    the funnel)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "blockers": self.blockers,
            "sentence": self.sentence,
            "traded": self.traded,
            "log_codes": self.log_codes,
        }


def _symbols(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    out = []
    for item in value:
        if isinstance(item, list | tuple) and item:
            out.append(str(item[0]))
        elif isinstance(item, str | int):
            out.append(str(item))
    return out


def _log_stages(
    spec: FunnelSpec, decisions: list[Decision], tz: ZoneInfo
) -> tuple[dict[str, int], dict[str, Counter[str]]]:
    candidates: set[tuple[date | None, str]] = set()
    passed: set[tuple[date | None, str]] = set()
    signals = 0
    found: dict[str, Counter[str]] = {k: Counter() for k in ("upstream", "drop", "gate", "after")}
    for d in decisions:
        day = d.day(tz)
        if d.code in spec.candidate_codes and d.symbol:
            candidates.add((day, d.symbol))
        if d.code in spec.candidate_lists:
            candidates |= {(day, s) for s in _symbols(d.value(spec.candidate_lists[d.code]))}
        if d.code in spec.signal_codes:
            signals += 1
            if d.symbol:
                passed.add((day, d.symbol))
        if d.code in spec.upstream_codes:
            found["upstream"][d.code] += 1
        if d.code in spec.drop_codes and d.symbol:
            found["drop"][d.code] += 1
        if d.code in spec.gate_codes:
            found["gate"][d.code] += 1
        if d.code in spec.after_signal_codes:
            found["after"][d.code] += 1
    return {"candidates": len(candidates), "gates_passed": len(passed), "signals": signals}, found


def _rows(frame: pd.DataFrame, **eq: str) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal ``eq`` (an empty frame keeps its columns)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in eq.items():
        mask &= frame[column] == value
    return frame[mask]


def _top(counter: Counter[str]) -> str:
    return ", ".join(f"{code} ×{n}" for code, n in counter.most_common(TOP_BLOCKERS))


def build_funnel(
    strategy: str,
    decisions: list[Decision] | None,
    intents: pd.DataFrame,
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    tz: ZoneInfo,
) -> Funnel:
    """The funnel of one strategy. ``decisions`` None = no log; the frames are the run's whole tables."""
    spec = FUNNELS.get(strategy)
    has_log_stages = spec is not None and decisions is not None
    spec = spec or DEFAULT_SPEC
    stages: dict[str, int | None] = dict.fromkeys(STAGES)
    found: dict[str, Counter[str]] = {k: Counter() for k in ("upstream", "drop", "gate", "after")}
    if has_log_stages:
        assert decisions is not None
        log_stages, found = _log_stages(spec, decisions, tz)
        stages.update(log_stages)
    entries = _rows(intents, strategy_id=strategy)
    entries = entries[entries["intent_type"].isin(spec.entry_intent_types)]
    taken = entries[entries["status"].isin(TAKEN)]
    filled_orders = set(_rows(fills, strategy_id=strategy)["order_id"])
    entry_orders = orders[orders["intent_id"].isin(set(taken["intent_id"]))]
    filled = len(set(entry_orders.loc[entry_orders["order_id"].isin(filled_orders), "intent_id"]))
    stages.update(intents=len(entries), accepted=len(taken), filled=filled)

    refused: Counter[str] = Counter()
    for row in entries[~entries["status"].isin(TAKEN)].itertuples():
        refused[text_or_none(row.reason_code) or str(row.status)] += 1
    unfilled: Counter[str] = Counter()
    for row in entry_orders[~entry_orders["order_id"].isin(filled_orders)].itertuples():
        reason = text_or_none(row.reason)
        unfilled[f"order {row.state}" + (f" {reason}" if reason else "")] += 1

    traded = bool(filled)
    known = [(name, stages[name]) for name in STAGES if stages[name] is not None]
    # The funnel stops at the first zero after which nothing is left (a later non-zero stage means the
    # log and the database disagree, e.g. a truncated log: that zero is passed over, not blamed).
    stop: str | None = None
    for i, (name, value) in enumerate(known):
        if value == 0 and all(v == 0 for _, v in known[i:]):
            stop = name
            break
    shown = known if stop is None else known[: [n for n, _ in known].index(stop) + 1]
    parts = [f"{value} {STAGE_LABELS[name][0 if value == 1 else 1]}" for name, value in shown]
    blockers: Counter[str] = Counter()
    if stop == "candidates":
        blockers = found["upstream"]
    elif stop in ("gates_passed", "signals"):
        blockers = found["gate"] + found["drop"]
    elif stop == "intents":
        blockers = found["after"]
    elif stop == "accepted":
        blockers = refused + found["after"]
    elif stop == "filled":
        blockers = unfilled + found["after"]
    if stop is None:
        sentence = f"{strategy}: " + " → ".join(parts)
    else:
        sentence = f"{strategy}: " + "; ".join(parts)
        if blockers:
            sentence += f": {_top(blockers)}"
        if not has_log_stages and strategy in FUNNELS:
            sentence += " (no decision log)"
    codes = {group: dict(counter.most_common()) for group, counter in found.items() if counter}
    return Funnel(strategy, stages, dict(blockers.most_common()), sentence, traded, codes)
