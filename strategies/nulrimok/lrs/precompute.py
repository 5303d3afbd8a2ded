"""N2 precompute and the DSE's inputs, read from the LRS (synchronous; the wiring runs it in a thread).

:func:`compute_features` turns the stored daily bars and flows into per-ticker features as of a
session; :func:`precompute` (nightly after the close) stores them with the regime, the sector scores
and a preview watchlist for the next session; :func:`build_inputs` assembles the DSE's
:class:`~strategies.nulrimok.selection.SelectionInputs` (stored features when present for ``asof``,
computed otherwise — the two are identical).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

from strategies.nulrimok.bars30 import Bar30
from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.features import SymbolFeatures, compute_features
from strategies.nulrimok.lrs.files import OptionalInputs
from strategies.nulrimok.lrs.store import ResearchStore
from strategies.nulrimok.selection import (
    PositionView,
    Selection,
    SelectionInputs,
    next_weekdays,
    select,
    unknown_sector,
)
from strategies.sdk.indicators import atr

PRECOMPUTED_ASOF = "precomputed_asof"


def compute_features_from_store(
    store: ResearchStore,
    listing: Sequence[str],
    sectors: Mapping[str, str],
    asof: date,
    p: NulrimokParams,
    atr30m: Mapping[str, float] | None = None,
) -> dict[str, SymbolFeatures]:
    daily = store.daily_many(listing, None, asof)
    flows = store.flow_many(listing, None, asof)
    atr30m = atr30m or {}
    return {
        s: compute_features(
            s, sectors.get(s) or unknown_sector(s), daily.get(s, []), flows.get(s, []), asof, p, atr30m=atr30m.get(s)
        )
        for s in listing
    }


def atr30m_from_bars(bars: Mapping[str, Sequence[Bar30]], period: int) -> dict[str, float]:
    """ATR30m(period) of each symbol with more than ``period`` stored 30m bars."""
    out: dict[str, float] = {}
    for sym, series in bars.items():
        if len(series) > period:
            v = atr(sorted(series, key=lambda b: b.start), period)
            if v is not None and v > 0:
                out[sym] = v
    return out


def index_closes(store: ResearchStore, index: str, asof: date) -> list[float]:
    return [r.close for r in store.daily(index, None, asof)]


def build_inputs(
    store: ResearchStore,
    listing: Sequence[str],
    sectors: Mapping[str, str],
    session: date,
    asof: date,
    p: NulrimokParams,
    optional: OptionalInputs,
    *,
    breadth_members: Iterable[str] | None = None,
    positions: Sequence[PositionView] = (),
    atr30m: Mapping[str, float] | None = None,
    features: Mapping[str, SymbolFeatures] | None = None,
) -> SelectionInputs:
    if features is None:
        stored = store.load_features(asof)
        features = (
            stored
            if stored and set(listing) <= set(stored)
            else compute_features_from_store(store, listing, sectors, asof, p)
        )
    feats = {s: features[s] for s in listing if s in features}
    members = frozenset(breadth_members) if breadth_members else None
    return SelectionInputs(
        session=session,
        asof=asof,
        features=feats,
        index_closes=index_closes(store, p.regime_index, asof),
        fx_closes=optional.fx_closes(asof),
        breadth_members=members,
        earnings=optional.earnings,
        blacklist=optional.blacklist,
        positions=positions,
        atr30m=dict(atr30m or {}),
        skipped_rules=dict(optional.skipped),
    )


def next_session_after(asof: date) -> date:
    """The weekday after ``asof`` (the preview watchlist's session; holidays are not known here)."""
    return next_weekdays(asof + timedelta(days=1), 1)[0]


def precompute(
    store: ResearchStore,
    listing: Sequence[str],
    sectors: Mapping[str, str],
    asof: date,
    p: NulrimokParams,
    optional: OptionalInputs,
    *,
    breadth_members: Iterable[str] | None = None,
    positions: Sequence[PositionView] = (),
) -> Selection:
    """Features, regime, sector scores and ranks as of ``asof`` stored in the LRS (N2); returns the preview."""
    feats = compute_features_from_store(store, listing, sectors, asof, p)
    store.save_features(asof, feats.values())
    inputs = build_inputs(
        store,
        listing,
        sectors,
        next_session_after(asof),
        asof,
        p,
        optional,
        breadth_members=breadth_members,
        positions=positions,
        features=feats,
    )
    sel = select(inputs, p)
    store.save_selection(sel)
    store.set_meta(PRECOMPUTED_ASOF, asof.isoformat())
    return sel
