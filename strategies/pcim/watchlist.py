"""The 00:00–06:00 step (strategies.md I4): stats and filters over the night's candidates → the watchlist.

:func:`build_watchlist` is pure (candidates + daily bars + listing master in, a :class:`WatchlistBuild`
out, every verdict a Decision); :func:`save_watchlist` / :func:`load_watchlist` move it through the
store, where the review (``trader pcim review``) approves or rejects each item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from broker_core import calendars
from broker_core.contract.reasons import ReasonCode
from strategies.pcim.approval import ApprovalStatus
from strategies.pcim.config import PcimParams
from strategies.pcim.decisions import Decision
from strategies.pcim.filters import (
    Candidate,
    Rejection,
    WatchItem,
    evaluate,
    item_from_json,
    item_to_json,
    order_watchlist,
)
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.store import PcimStore, WatchRow
from strategies.sdk.bars import Bar


@dataclass
class WatchlistBuild:
    session: date
    items: list[WatchItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    convictions: dict[str, str] = field(default_factory=dict)


def earnings_days(session: date, n: int) -> list[date]:
    """The session and the trading days after it, ``n`` in all (the I7 earnings window)."""
    if n <= 0:
        return []
    return calendars.trading_days(session, session + timedelta(days=n * 3 + 7))[:n]


def build_watchlist(
    session: date,
    cands: Sequence[Candidate],
    daily: Mapping[str, Sequence[Bar] | None],
    listing: ListingMaster,
    params: PcimParams,
    now: datetime,
) -> WatchlistBuild:
    out = WatchlistBuild(session)
    window = earnings_days(session, params.earnings_window_days)
    for c in cands:
        out.names[c.symbol] = c.name
        out.convictions[c.symbol] = c.conviction
        out.decisions.append(
            Decision(
                ReasonCode.PCIM_CANDIDATE,
                c.symbol,
                now,
                {"name": c.name, "conviction": c.conviction, "influencers": c.influencers, "videos": c.video_ids},
            )
        )
        bars = daily.get(c.symbol)
        if bars is None:
            out.rejections.append(Rejection(c.symbol, ReasonCode.PCIM_NO_DATA, {"daily_bars": None}))
            out.decisions.append(Decision(ReasonCode.PCIM_NO_DATA, c.symbol, now, {"daily_bars": None}))
            continue
        res = evaluate(c, bars, listing.info(c.symbol), session, params, earnings_days=window)
        if isinstance(res, Rejection):
            out.rejections.append(res)
            out.decisions.append(Decision(res.code, c.symbol, now, dict(res.fields)))
            continue
        out.decisions.append(Decision(ReasonCode.PCIM_GAP_STATS, c.symbol, now, res.gap.fields()))
        out.decisions.append(
            Decision(
                ReasonCode.PCIM_TREND_GATE,
                c.symbol,
                now,
                {"prior_close": res.prior_close, "sma20": round(res.sma20, 2), "pass": True},
            )
        )
        out.items.append(res)
    out.items = order_watchlist(out.items)
    for item in out.items:
        out.decisions.append(Decision(ReasonCode.PCIM_WATCHLIST_ITEM, item.symbol, now, item.fields()))
    out.decisions.append(
        Decision(
            ReasonCode.PCIM_WATCHLIST,
            None,
            now,
            {
                "session": str(session),
                "candidates": len(cands),
                "listed": [i.symbol for i in out.items],
                "rejected": {r.symbol: r.code.value for r in out.rejections},
                "sample_listing": listing.sample,
            },
        )
    )
    return out


def with_baselines(items: Sequence[WatchItem], baselines: Mapping[str, float | None]) -> list[WatchItem]:
    return [replace(i, a_volume_baseline=baselines.get(i.symbol, i.a_volume_baseline)) for i in items]


def save_watchlist(store: PcimStore, build: WatchlistBuild, now: datetime) -> None:
    rows = [
        WatchRow(
            session=build.session,
            symbol=i.symbol,
            name=i.name,
            conviction=i.conviction,
            status="CANDIDATE",
            reason=None,
            rank=i.rank,
            adtv20=i.adtv20,
            tier=i.tier,
            item=item_to_json(i),
            approval=ApprovalStatus.PENDING.value,
            built_at=now,
        )
        for i in build.items
    ]
    rows += [
        WatchRow(
            session=build.session,
            symbol=r.symbol,
            name=build.names.get(r.symbol, ""),
            conviction=build.convictions.get(r.symbol, ""),
            status="REJECTED",
            reason=r.code.value,
            rank=0,
            item=dict(r.fields),
            approval=ApprovalStatus.REJECTED.value,
            built_at=now,
        )
        for r in build.rejections
    ]
    store.replace_watchlist(build.session, rows)


def load_watchlist(store: PcimStore, session: date) -> list[tuple[WatchItem, ApprovalStatus]]:
    out = []
    for row in store.watchlist(session):
        if row.item:
            out.append((item_from_json(row.item), ApprovalStatus(row.approval)))
    return out
