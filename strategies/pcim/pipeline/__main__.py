"""``python -m strategies.pcim.pipeline``: one night run for a session, then the watchlist.

Example (no keys, bundled SAMPLE transcripts, reference data for the filters)::

    python -m strategies.pcim.pipeline --offline strategies/pcim/sample_transcripts --session 2026-02-27
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time

from broker_core.clock import KST
from broker_core.config_errors import ConfigError
from strategies.pcim.config import load_pcim_config
from strategies.pcim.decisions import Decision
from strategies.pcim.pipeline.factory import build_pipeline
from strategies.pcim.pipeline.night import candidates, feeding_window
from strategies.pcim.refdata import reference_a_baselines, reference_daily
from strategies.pcim.store import PcimStore, store_url
from strategies.pcim.watchlist import build_watchlist, save_watchlist, with_baselines


def _print(d: Decision) -> None:
    print(json.dumps({"code": d.code.value, "symbol": d.symbol, **d.fields}, ensure_ascii=False, default=str))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m strategies.pcim.pipeline", description=__doc__)
    ap.add_argument("--session", required=True, type=date.fromisoformat, help="session the watchlist is for")
    ap.add_argument("--offline", metavar="DIR", help="read transcripts from DIR (no keys, no network)")
    ap.add_argument("--config", help="config file (default config/pcim.yaml)")
    ap.add_argument("--store", help="SQLAlchemy URL of the store (default: the config's)")
    args = ap.parse_args(argv)
    try:
        cfg = load_pcim_config(args.config)
        store = PcimStore(args.store or store_url(cfg.store))
        pipe = build_pipeline(cfg, store, offline_dir=args.offline, emit=_print)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _, end = feeding_window(args.session, cfg.pipeline.window_start)
    now = datetime.combine(end.date(), time(0, 5), KST)
    pipe.run(now, args.session)
    cands = candidates(store, args.session)
    build = build_watchlist(
        args.session, cands, reference_daily([c.symbol for c in cands], args.session), pipe.listing, cfg.params, now
    )
    build.items = with_baselines(build.items, reference_a_baselines([i.symbol for i in build.items], args.session))
    save_watchlist(store, build, now)
    for d in build.decisions:
        _print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
