"""swing-ML's strategy process against a real OMS owning a US paper account (in-process, HTTP, the derived
sessions of the US data on a virtual New York clock).

The jobs are called as the scheduler calls them (``decide_job`` / ``risk_check_job``). Universe: 18 of the
default large caps (fast: a bootstrap retrain takes ~2 s). Held positions are made on an earlier session —
an OMS on 2024-11-08 (``DAY_A``) buys, is stopped, and an OMS on the same data directory starts on
2024-11-26 (``DAY_B``, 12 sessions later): the allocation keeps its 2024-11-08 ``entry_ts``, so max-hold is
due, and TGT (−13 % between the two days) is also at its stop.

Promotion: with 18 names the walk-forward AUC on this data is ≈ 0.50, under the 0.52 bar (the default
97-name universe gets 0.503 on 2024-11-26), so the tests lower ``promote_min_auc`` to 0 to have a model to
trade with; the promotion rule itself is unit-tested."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import NEW_YORK, VirtualClock
from broker_core.markets import us
from oms.settings import load_config
from strategies.sdk.client import OmsClient
from strategies.swing_ml.config import Mode, ModelParams, RegimeParams, SwingMlConfig, UniverseConfig
from strategies.swing_ml.factors import FEATURES
from strategies.swing_ml.model import CURRENT_FILE, METADATA_FILE, current_version, list_versions
from strategies.swing_ml.risk import exit_key
from strategies.swing_ml.strategy import SwingMlStrategy
from tests.support.oms_server import Oms, oms_settings, running_oms
from tests.support.wait import until

KEY = "test-swing-ml-key-00001"
DAY_A = date(2024, 11, 8)
DAY_B = date(2024, 11, 26)
UNIVERSE = (
    "AAPL", "BAC", "CAT", "COP", "CVX", "GOOGL", "HD", "JPM", "KO",
    "LLY", "META", "MSFT", "NEE", "NVDA", "TGT", "UNH", "WMT", "AMZN",
)  # fmt: skip
HELD = "TGT"
TAKEN = {"ACCEPTED", "EXECUTED", "MODIFIED"}


def ny(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NEW_YORK)


def swing_config(tmp_path: Path, mode: Mode = Mode.PAPER, **changes: Any) -> SwingMlConfig:
    return SwingMlConfig(
        mode=mode,
        universe=UniverseConfig(symbols=UNIVERSE),
        model=ModelParams(models_dir=str(tmp_path / "models"), promote_min_auc=0.0),
        **changes,
    )


@asynccontextmanager
async def oms_on(
    day: date,
    tmp_path: Path,
    at: tuple[int, int] = (10, 0),
    speed: float = 30.0,
    keys: str = f"SWING_ML:{KEY}",
    entry_locks: dict[str, float] | None = None,
) -> AsyncIterator[Oms]:
    """A real OMS on ``day``'s paper session from ``at`` New York (``speed``× real time); its state (journal, paper
    account) lives in ``tmp_path/oms``, so an OMS on a later day carries the positions over."""
    settings = oms_settings(tmp_path, oms_market="us", oms_paper_date=str(day), oms_strategy_keys=keys)
    config = load_config("config/oms.us.yaml")
    if entry_locks:
        locks = {**config.risk.entry_lock_sec, **entry_locks}
        config.risk = config.risk.model_copy(update={"entry_lock_sec": locks})
    clock = VirtualClock(ny(day, *at), speed=speed, tz=NEW_YORK)
    async with running_oms(settings, config, clock=clock) as running:
        yield running


def strategy(oms: Oms, client: OmsClient, tmp_path: Path, mode: Mode = Mode.PAPER, **changes: Any) -> SwingMlStrategy:
    config = swing_config(tmp_path, mode, **changes)
    return SwingMlStrategy(config, client, oms.runtime.clock, data_dir=tmp_path / "swing_ml")


Log = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> Log:
    """The strategy's decision log so far, as structured records (the ``decision`` extra of each line)."""
    caplog.set_level(logging.INFO, logger="strategy.SWING_ML")
    return lambda: [r.decision for r in caplog.records if hasattr(r, "decision")]


def of(decisions: list[dict[str, Any]], code: str, symbol: str | None = None) -> list[dict[str, Any]]:
    return [d for d in decisions if d["code"] == code and (symbol is None or d["symbol"] == symbol)]


async def intents(oms: Oms, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await oms.get("/api/v1/intents", limit=500, **params)
    return rows


async def hold(tmp_path: Path, positions: dict[str, int]) -> None:
    """Buy ``positions`` for SWING_ML on DAY_A (directly through the OMS) and wait for the fills."""
    async with oms_on(DAY_A, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        for symbol, qty in positions.items():
            quote = await client.quote(symbol)
            limit = us.marketable_limit(quote["ask"], True, band_pct=0.002, ticks=1)
            reply = await client.enter(
                symbol, qty, limit_price=limit, order_type="LIMIT", time_horizon="SWING", idempotency_key=f"s:{symbol}"
            )
            assert reply.ok, reply

        async def filled() -> bool:
            held = {s: a.qty for s, a in (await client.allocations()).items()}
            return held == positions

        await until(filled, timeout=60, what=f"{positions} filled on {DAY_A}")


async def test_a_decide_on_a_real_session_bootstraps_a_model_and_its_entries_are_taken(
    tmp_path: Path, decisions: Log
) -> None:
    async with oms_on(DAY_B, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        swing = strategy(oms, client, tmp_path)
        outcome = await swing.decide_job()
        assert outcome.startswith("ok:"), outcome
        models = tmp_path / "models"
        version = current_version(models)
        assert version is not None and list_versions(models) == [version]
        assert [d["why"] for d in of(decisions(), "SWING_RETRAIN")] == ["bootstrap"]
        assert [d["version"] for d in of(decisions(), "SWING_MODEL_PROMOTED")] == [version]
        (regime,) = of(decisions(), "SWING_REGIME")
        assert regime["day"] == "2024-11-25" and regime["regime"] != "RISK_OFF", regime  # the last completed session

        sent = await intents(oms, strategy_id="SWING_ML")
        assert sent and {i["intent_type"] for i in sent} == {"ENTER"}, sent
        assert {i["status"] for i in sent} <= TAKEN, sent
        buys = {d["symbol"]: d for d in of(decisions(), "SWING_BUY")}
        assert set(buys) == {i["symbol"] for i in sent} and set(buys) <= set(UNIVERSE)
        equity = (await client.account()).equity
        for i in sent:
            buy = buys[i["symbol"]]
            assert buy["sent"] is True and buy["mode"] == "paper" and buy["oms_status"] == i["status"]
            assert i["idempotency_key"].startswith(f"SWING_ML:{DAY_B}:SWING_ML:{i['symbol']}:ENTER:"), i  # OMS-scoped
            assert i["constraints"]["order_type"] == "LIMIT" and i["time_horizon"] == "SWING", i
            notional = i["desired_qty"] * i["constraints"]["limit_price"]
            assert notional <= 0.10 * equity + 1e-6, (i, equity)  # S4: capped at 10 % of NAV
        # one quartile of the scored names at most (S3.3: top quartile only)
        assert len(sent) <= len(UNIVERSE) // 4

        # the same day again: nothing new is sent (held or being bought), and no bar is fetched twice
        again = await swing.decide_job()
        assert again.startswith("ok:") and len(await intents(oms, strategy_id="SWING_ML")) == len(sent), again
        await swing.risk_check_job()
        metrics = (await oms.http.get("/metrics")).text
        assert 'oms_marketdata_rest_requests_total{kind="daily",result="cache"}' not in metrics, "a symbol re-fetched"
        upstream = [k for kind, k, _ in oms.runtime.md_proxy.upstream_log if kind == "daily"]  # type: ignore[union-attr]
        assert len(upstream) == len({k[1] for k in upstream}) == 12 + len(UNIVERSE)  # SPY + 11 ETFs + universe

        status = swing.status()["swing_ml"]
        assert status["mode"] == "paper" and status["model_version"] == version
        assert status["jobs"]["decide"]["outcome"].startswith("ok:") and status["jobs"]["retrain"]["last_run"] is None
        assert swing.health_issue(oms.runtime.clock.now()) is None


@pytest.mark.parametrize(
    "jobs",
    [("decide", "risk_check"), ("risk_check",) * 4],
    ids=["decide-vs-risk_check", "four-risk_checks"],
)
async def test_jobs_racing_on_one_holding_send_one_exit(tmp_path: Path, decisions: Log, jobs: tuple[str, str]) -> None:
    """S8 / scenario 3: the jobs decide to sell TGT at the same moment (decide: max-hold; risk_check: the
    stop); one EXIT reaches the OMS and the broker, every other is DUPLICATE_SUPPRESSED by the re-read of the
    allocation and working orders before the SELL. (Whether the per-symbol lock or the OMS's own ordering
    serialises the re-reads cannot be told apart from outside: the in-process OMS answers in arrival order.)"""
    await hold(tmp_path, {HELD: 20})
    async with oms_on(DAY_B, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        swing = strategy(oms, client, tmp_path)
        allocation = (await client.allocations())[HELD]
        assert allocation.entry_ts is not None and allocation.entry_ts.astimezone(NEW_YORK).date() == DAY_A
        await swing.regime_job()  # the day's bars and regime, as the 09:00 job leaves them
        run = {"decide": swing.decide_job, "risk_check": swing.risk_check_job}
        outcomes = await asyncio.gather(*(run[job]() for job in jobs))
        assert all(o.startswith("ok:") for o in outcomes), outcomes

        exits = [i for i in await intents(oms, strategy_id="SWING_ML", symbol=HELD) if i["intent_type"] != "ENTER"]
        key = exit_key(HELD, allocation.entry_ts)
        assert [(i["intent_type"], i["idempotency_key"]) for i in exits] == [("EXIT", f"SWING_ML:{DAY_B}:{key}")], exits
        orders = [o for o in await oms.get("/api/v1/orders", symbol=HELD) if o["side"] == "SELL"]
        assert len(orders) == 1, orders
        engine = oms.runtime.exchange.engine  # type: ignore[union-attr]
        assert [o.side.value for o in engine.orders() if o.symbol == HELD] == ["SELL"]  # one sell at the broker

        lines = [d for d in decisions() if d["symbol"] == HELD and d.get("job") in ("decide", "risk_check")]
        sent = [d for d in lines if d.get("sent")]
        suppressed = of(lines, "DUPLICATE_SUPPRESSED")
        assert len(sent) == 1 and len(suppressed) == len(jobs) - 1, lines
        assert sorted(d["job"] for d in lines) == sorted(jobs), lines
        reasons = {"decide": "SWING_MAX_HOLD", "risk_check": "SWING_STOP"}  # 12 sessions held; 151.50 → ~129
        assert [d["rationale_code"] for d in lines] == [reasons[d["job"]] for d in lines], lines
        assert sent[0]["oms_status"] in TAKEN and sent[0]["idempotency_key"] == key

        async def sold() -> bool:
            return HELD not in {s for s, a in (await client.allocations()).items() if a.qty > 0}

        await until(sold, timeout=60, what=f"{HELD} sold")
        await swing.risk_check_job()  # nothing held any more: nothing sent
        assert [i["intent_type"] for i in await intents(oms, strategy_id="SWING_ML", symbol=HELD)] == ["EXIT", "ENTER"]


async def test_max_hold_comes_from_the_allocation_after_a_restart(tmp_path: Path, decisions: Log) -> None:
    async with oms_on(DAY_A, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        first = strategy(oms, client, tmp_path)
        assert (await first.decide_job()).startswith("ok:")
        entered = {i["symbol"] for i in await intents(oms, strategy_id="SWING_ML") if i["status"] in TAKEN}
        assert entered, "DAY_A's decide bought nothing"

        async def filled() -> bool:
            return {s for s, a in (await client.allocations()).items() if a.qty > 0} == entered

        await until(filled, timeout=60, what="DAY_A's entries filled")
        version = current_version(tmp_path / "models")
    seen = len(decisions())

    async with oms_on(DAY_B, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        held = {s: a for s, a in (await client.allocations()).items() if a.qty > 0}
        assert set(held) == entered
        restarted = strategy(oms, client, tmp_path)  # a new process: nothing but the OMS and the model files
        assert (await restarted.decide_job()).startswith("ok:")
        after = decisions()[seen:]
        assert not of(after, "SWING_RETRAIN") and [d["version"] for d in of(after, "SWING_MODEL_LOADED")] == [version]
        max_hold = {d["symbol"]: d for d in of(after, "SWING_MAX_HOLD")}
        assert set(max_hold) == entered, after
        assert {d["held_days"] for d in max_hold.values()} == {12}  # sessions after 11-08 up to 11-26
        exits = [i for i in await intents(oms, strategy_id="SWING_ML") if i["intent_type"] == "EXIT"]
        assert {i["symbol"]: i["idempotency_key"] for i in exits} == {
            s: f"SWING_ML:{DAY_B}:{exit_key(s, a.entry_ts)}" for s, a in held.items() if a.entry_ts is not None
        }
        assert {i["status"] for i in exits} <= TAKEN, exits


async def test_dry_run_logs_the_full_intents_and_sends_nothing(tmp_path: Path, decisions: Log) -> None:
    async with oms_on(DAY_B, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        swing = strategy(oms, client, tmp_path, Mode.DRY_RUN)
        assert (await swing.decide_job()).startswith("ok:")
        dry = of(decisions(), "SWING_DRY_RUN")
        assert dry, "no intent decided"
        for d in dry:
            intent = d["intent"]
            assert intent["intent_type"] == "ENTER" and intent["strategy_id"] == "SWING_ML", d
            assert intent["symbol"] == d["symbol"] and intent["desired_qty"] == d["qty"] > 0, d
            assert intent["constraints"]["order_type"] == "LIMIT" and intent["constraints"]["limit_price"] > 0, d
            assert intent["constraints"]["cancel_after_sec"] > 0 and intent["time_horizon"] == "SWING", d
            assert intent["risk_payload"]["rationale_code"] == "SWING_BUY", d
            assert intent["risk_payload"]["stop_px"] < intent["constraints"]["limit_price"], d
            assert intent["idempotency_key"].startswith(f"SWING_ML:{d['symbol']}:ENTER:"), d
        assert {d["mode"] for d in decisions()} == {"dry_run"}
        assert not of(decisions(), "SWING_BUY")
        assert await intents(oms) == [] and await oms.get("/api/v1/orders") == []


async def test_a_model_with_another_feature_list_is_refused_and_replaced(tmp_path: Path, decisions: Log) -> None:
    models = tmp_path / "models"
    async with oms_on(DAY_B, tmp_path) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        first = strategy(oms, client, tmp_path)
        report = await first.retrain_model(oms.runtime.clock.now(), "setup")
        old = report.metadata.version
        assert current_version(models) == old
        meta_path = models / old / METADATA_FILE
        meta = json.loads(meta_path.read_text())
        meta["features"] = [*FEATURES[:-1], "sector_rel_60"]  # a model of another code version
        meta["validation_auc"] = 0.99  # ...that would block any successor under the promotion rule
        meta_path.write_text(json.dumps(meta))

        swing = strategy(oms, client, tmp_path)
        outcome = await swing.decide_job()
        assert outcome.startswith("ok:"), outcome
        (refused,) = of(decisions(), "SWING_MODEL_FEATURE_MISMATCH")
        assert refused["version"] == old and "sector_rel_60" in refused["detail"], refused
        assert [d["why"] for d in of(decisions(), "SWING_RETRAIN")] == ["setup", "feature_mismatch"]
        new = current_version(models)
        assert new is not None and new != old and (models / CURRENT_FILE).read_text().strip() == new
        (promoted,) = [d for d in of(decisions(), "SWING_MODEL_PROMOTED") if d["version"] == new]
        assert old in promoted["detail"], promoted
        assert swing.status()["swing_ml"]["model_version"] == new
        sent = await intents(oms, strategy_id="SWING_ML")
        assert sent and {i["intent_type"] for i in sent} == {"ENTER"}  # the job went on with the new model


async def test_the_jobs_run_on_the_new_york_schedule_and_a_failure_degrades_the_oms_health(
    tmp_path: Path, decisions: Log
) -> None:
    async with oms_on(DAY_B, tmp_path, at=(9, 40), speed=60.0) as oms, OmsClient(oms.url, KEY, "SWING_ML") as client:
        swing = strategy(oms, client, tmp_path)
        await swing.start()
        try:
            await until(lambda: swing.jobs["decide"].outcome is not None, timeout=60, what="the 09:45 decide")
            first = swing.jobs["decide"].last_run
            assert first is not None and first.astimezone(NEW_YORK).strftime("%H:%M") == "09:45", first
            assert swing.jobs["decide"].outcome.startswith("ok:"), swing.jobs["decide"].outcome  # type: ignore[union-attr]
            stats = swing.scheduler.stats
            assert stats["swing_ml.decide"].next_fire == ny(DAY_B, 10, 0)
            assert stats["swing_ml.regime"].next_fire == ny(date(2024, 11, 27), 9, 0)  # 09:00 passed before start
            assert stats["swing_ml.retrain"].next_fire == ny(DAY_B, 12, 0)  # fires daily, retrains on Sundays
            await until(lambda: swing.jobs["risk_check"].last_run is not None, timeout=30, what="a risk_check")
            assert swing.jobs["risk_check"].last_run.astimezone(NEW_YORK).minute % 5 == 0  # type: ignore[union-attr]

            async def reported() -> dict[str, Any] | None:
                status = (await oms.get("/api/v1/strategies"))["SWING_ML"]["status"] or {}
                jobs = status.get("swing_ml", {}).get("jobs", {})
                return status if str((jobs.get("decide") or {}).get("outcome")).startswith("ok:") else None

            status = await until(reported, timeout=30, what="a heartbeat after the decide")
            assert status["swing_ml"]["mode"] == "paper" and status["swing_ml"]["model_version"] is not None
            assert "health_issue" not in status and (await oms.get("/health"))["status"] == "ok"
        finally:
            await swing.stop()
        # stopped before 10:00: the 10:00 decide never starts — overdue once 5 minutes late, by its own schedule
        assert swing.jobs["decide"].last_run == first and oms.runtime.clock.now() < ny(DAY_B, 10, 0)
        assert swing.health_issue(ny(DAY_B, 10, 4)) is None
        assert swing.health_issue(ny(DAY_B, 10, 6)) == "decide_overdue"
        assert swing.health_issue(ny(DAY_B, 16, 30)) is None  # after the close

        broken = strategy(oms, client, tmp_path, regime=RegimeParams(benchmark="NOSUCH"))
        outcome = await broken.decide_job()
        assert outcome.startswith("failed: DataUnavailable"), outcome
        assert broken.health_issue(oms.runtime.clock.now()) == "decide_failed"
        await client.heartbeat(broken.status())
        health = await oms.get("/health")
        assert health["status"] == "degraded" and health["degraded_reasons"] == ["strategy:SWING_ML:decide_failed"]


async def test_a_deferred_entry_is_sent_again_under_its_key_by_the_next_decide(tmp_path: Path, decisions: Log) -> None:
    other_key = "test-rotation-core-key-01"
    keys = f"SWING_ML:{KEY},ROTATION_CORE:{other_key}"
    async with (
        oms_on(DAY_B, tmp_path, at=(10, 5), speed=60.0, keys=keys, entry_locks={"ROTATION_CORE": 240}) as oms,
        OmsClient(oms.url, KEY, "SWING_ML") as client,
    ):
        planner = strategy(oms, client, tmp_path, Mode.DRY_RUN)  # what decide will buy (sends nothing)
        assert (await planner.decide_job()).startswith("ok:")
        target = of(decisions(), "SWING_DRY_RUN")[0]["symbol"]
        async with OmsClient(oms.url, other_key, "ROTATION_CORE") as other:  # another strategy enters first:
            quote = await other.quote(target)  # its entry lock (4 min here) defers SWING_ML's entry (C5)
            limit = us.marketable_limit(quote["ask"], True, band_pct=0.002, ticks=1)
            assert (await other.enter(target, 1, limit_price=limit, order_type="LIMIT", idempotency_key="first")).ok

        swing = strategy(oms, client, tmp_path)  # the planner's model, loaded from disk
        assert (await swing.decide_job()).startswith("ok:")
        (deferred,) = await intents(oms, strategy_id="SWING_ML", symbol=target)
        assert (deferred["status"], deferred["reason_code"]) == ("DEFERRED", "ENTRY_LOCKED"), deferred
        # the next decide is in the next 15-minute key bucket: only the kept key makes it the same intent
        assert datetime.fromisoformat(deferred["received_at"]) < ny(DAY_B, 10, 15), deferred
        resend = max(datetime.fromisoformat(deferred["cooldown_until"]), ny(DAY_B, 10, 15))
        await until(lambda: oms.runtime.clock.now() >= resend, timeout=30, what="the entry lock's end and 10:15")

        assert (await swing.decide_job()).startswith("ok:")
        (taken,) = await intents(oms, strategy_id="SWING_ML", symbol=target)
        assert taken["intent_id"] == deferred["intent_id"] and taken["status"] in TAKEN, taken  # the same intent
        lines = of(decisions(), "SWING_BUY", target)
        assert [d["oms_status"] for d in lines] == ["DEFERRED", taken["status"]], lines
        assert len({d["idempotency_key"] for d in lines}) == 1, lines
