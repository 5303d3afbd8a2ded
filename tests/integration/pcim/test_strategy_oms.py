"""PCIM's wiring against a real OMS (this process, paper exchange replaying 2026-02-27, SQLite).

The watchlist of 2026-02-27 comes from the offline pipeline over the bundled SAMPLE transcripts;
only 352820 is approved before 08:30. Then: the 08:30 freeze publishes the regime (MODIFY_RISK ``*``),
an approval after 08:30 is refused, the approved Bucket A name is entered at 09:03 with a SWING
marketable limit, the unapproved names never reach the OMS, and PCIM holds no WebSocket slot.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from broker_core.clock import KST, VirtualClock
from broker_core.contract.reasons import ReasonCode
from oms.settings import PaperConfig, load_config
from strategies.pcim.config import SAMPLE_LISTING_PATH, SAMPLE_TRANSCRIPTS_DIR, load_pcim_config
from strategies.pcim.pipeline.listing import ListingMaster
from strategies.pcim.pipeline.llm import RulesProvider
from strategies.pcim.pipeline.night import NightPipeline, candidates
from strategies.pcim.pipeline.offline import OfflineSource
from strategies.pcim.refdata import reference_daily
from strategies.pcim.store import PcimStore
from strategies.pcim.strategy import PcimStrategy
from strategies.pcim.watchlist import build_watchlist, save_watchlist
from strategies.sdk import OmsClient
from tests.support.oms_server import READ_KEY, STRATEGY_KEYS, oms_settings, running_oms
from tests.support.wait import until

DAY = date(2026, 2, 27)
APPROVED = "352820"


def _watchlist(store: PcimStore) -> list[str]:
    cfg = load_pcim_config()
    listing = ListingMaster.load(SAMPLE_LISTING_PATH)
    src = OfflineSource(SAMPLE_TRANSCRIPTS_DIR)
    night = datetime.combine(DAY, time(0, 5), KST)
    NightPipeline(store, list(cfg.pipeline.channels), src, src, RulesProvider(listing), listing).run(night, DAY)
    cands = candidates(store, DAY)
    build = build_watchlist(DAY, cands, reference_daily([c.symbol for c in cands], DAY), listing, cfg.params, night)
    build.items = [replace(i, a_volume_baseline=1.0) for i in build.items]  # the A volume test passes on any volume
    save_watchlist(store, build, night)
    store.set_approval(DAY, APPROVED, "APPROVED", "test", datetime.combine(DAY, time(8, 10), KST))
    return [i.symbol for i in build.items]


async def test_pcim_on_a_real_oms(tmp_path: Path) -> None:
    store = PcimStore(f"sqlite:///{tmp_path / 'pcim.sqlite'}")
    listed = _watchlist(store)
    assert APPROVED in listed and len(listed) >= 3
    config = load_config()
    config.paper = PaperConfig.model_validate({**config.paper.model_dump(), "symbols": listed})
    clock = VirtualClock(datetime(2026, 2, 27, 8, 29, 50, tzinfo=KST), 480)
    base = load_pcim_config()
    pcfg = base.model_copy(update={"params": base.params.model_copy(update={"weak_disables_a": False})})
    async with running_oms(oms_settings(tmp_path), config, clock=clock) as oms:
        async with OmsClient(oms.url, STRATEGY_KEYS["PCIM"], "PCIM") as client:
            strat = PcimStrategy(pcfg, client, clock, store=store, heartbeat_sec=60)
            await strat.start()
            try:
                await until(lambda: strat.engine.day == DAY, timeout=20, what="the 08:30 freeze")
                late = strat.approve("105560", by="late reviewer")
                assert late["ok"] is False and late["code"] == ReasonCode.PCIM_APPROVAL_LATE.value

                await until(  # PCIM's entry at 09:03–09:05 virtual (a few wall seconds), filled
                    lambda: (
                        strat.decision_counts[ReasonCode.PCIM_FILL.value] >= 1 and APPROVED in strat.engine.positions
                    ),
                    timeout=60,
                    what="PCIM's approved entry filled",
                )
                intents: list[dict[str, Any]] = await oms.get("/api/v1/intents", READ_KEY, strategy_id="PCIM")
                slots = await oms.get("/api/v1/marketdata/slots", READ_KEY)
            finally:
                await strat.stop()
    symbols = {r["symbol"] for r in intents}
    assert symbols <= {APPROVED, "*"}, symbols  # unapproved watchlist items never reached the OMS
    regime = [r for r in intents if r["intent_type"] == "MODIFY_RISK" and r["symbol"] == "*"]
    assert len(regime) == 1 and regime[0]["status"] == "EXECUTED"
    enters = [r for r in intents if r["intent_type"] == "ENTER"]
    assert len(enters) == 1 and enters[0]["symbol"] == APPROVED, intents
    assert enters[0]["time_horizon"] == "SWING" and enters[0]["urgency"] == "HIGH"
    assert strat.decision_counts[ReasonCode.PCIM_FILL.value] >= 1 and APPROVED in strat.engine.positions
    pcim_leases = [v for v in _dicts(slots) if isinstance(v.get("PCIM"), dict)]
    assert pcim_leases and all(v["PCIM"]["count"] == 0 and v["PCIM"]["symbols"] == [] for v in pcim_leases)
    assert strat.decision_counts[ReasonCode.PCIM_NOT_APPROVED.value] == len(listed) - 1
    assert strat.decision_counts[ReasonCode.PCIM_A_SIGNAL.value] == 1


def _dicts(node: Any) -> list[dict[str, Any]]:
    """Every mapping inside a JSON document (the slot report nests leases by strategy)."""
    if isinstance(node, dict):
        return [node, *(d for v in node.values() for d in _dicts(v))]
    if isinstance(node, list):
        return [d for v in node for d in _dicts(v)]
    return []
