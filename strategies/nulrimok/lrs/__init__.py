"""The Local Research Store (strategies.md §3.1): one SQLite file in the strategy's data directory.

* :mod:`~strategies.nulrimok.lrs.schema` — the tables (unique keys everywhere; every write an upsert);
* :mod:`~strategies.nulrimok.lrs.store` — :class:`ResearchStore` (reads and writes);
* :mod:`~strategies.nulrimok.lrs.fill` — :class:`LrsFiller`: empty → full, stale → incremental, fresh →
  skip, all through the OMS market-data proxy, resumable, with progress;
* :mod:`~strategies.nulrimok.lrs.files` — optional inputs from ``config/`` (earnings, blacklist, KRW/USD);
* :mod:`~strategies.nulrimok.lrs.precompute` — N2 nightly precompute and the DSE's inputs.
"""

from strategies.nulrimok.lrs.files import OptionalInputs, load_inputs
from strategies.nulrimok.lrs.fill import LrsFiller, RefreshReport, last_complete_session, plan_daily
from strategies.nulrimok.lrs.precompute import build_inputs, compute_features_from_store, precompute
from strategies.nulrimok.lrs.store import FetchState, ResearchStore

__all__ = [
    "FetchState",
    "LrsFiller",
    "OptionalInputs",
    "RefreshReport",
    "ResearchStore",
    "build_inputs",
    "compute_features_from_store",
    "last_complete_session",
    "load_inputs",
    "plan_daily",
    "precompute",
]
