"""Issue 19, acceptance "Restart": kill the strategy after day 3 of a sim; on restart it exits on day 10 by
max-hold with the original ``entry_ts``.

One process, one OMS, one clock, eleven consecutive XNYS sessions (2024-11-08 … 2024-11-22). The OMS
(``OMS_BROKER=paper OMS_MARKET=us``, wired by ``trader.venues.build_venue``: the US paper exchange replaying
the US data's derived sessions, the later ones through the clock's windows, account and journal carried over
the nights) runs on the backtest's :class:`~trader.backtest.clock.DrivenClock` with ``trader sim --market
us``'s New York windows (09:25–16:05): the :class:`~trader.backtest.driver.Driver` moves time as fast as the
CPU allows, nights and weekends cost nothing, and a job due in a gap (the 09:00 regime) runs at the jump.

swing-ML runs as its process does (``run()``: its scheduler on the New York clock fires decide, risk_check,
regime, retrain and the heartbeats) on the 18 large caps of ``test_swing_ml_on_the_oms.py``. Day 1's first
decide (09:45) bootstraps a model and buys. After day 3's close the strategy is killed: its task and every
task it started are cancelled together, its ``stop()`` cut at its first await (no final heartbeat). The OMS
runs on. A new :class:`SwingMlStrategy` (its own client and an empty data directory; only the OMS and the
model folder are shared) starts and, on day 11 — the session on which day 1's holdings have been held
``max_hold_days`` = 10 sessions (``held_days`` counts the sessions after the entry day) — its 09:45 decide
sells every one of them by ``SWING_MAX_HOLD`` under the S8 key built from the allocation's ``entry_ts``,
which is the day-1 fill time; none of them was bought again after the restart.

Config against the defaults, and why:

- exits: with the default S6 levels and SELL-on-score no day-1 holding lives to day 11 (on these days
  GOOGL and KO hit the −2.5 % stop on days 5–6, BAC and JPM sell on score on days 3 and 7), so the levels
  are widened to take profit +40 % / stop −25 % (the same 1.6 payoff ratio: S4's sizing is unchanged) and
  the trail arms at +30 %; ``sell_score_max`` is −1.0 (a SELL on score only at the lowest possible score);
- speed (the test runs in well under a minute): ``max_positions`` 4 (day 1 fills them: no churn of
  later entries), risk_check every 15 minutes instead of 5 (each pass recomputes every holding's peak from
  ~650 daily bars), heartbeats every 60 s and no per-second bar flush (swing-ML builds no minute bars);
- ``promote_min_auc`` 0, as in the other swing-ML OMS tests (18 names do not reach the 0.52 bar)."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import NEW_YORK, Windows
from broker_core.markets import us
from oms.settings import load_config
from strategies.swing_ml.config import DecideParams, Mode, RiskParams, ScheduleParams
from strategies.swing_ml.data import BENCHMARK, SECTOR_ETFS
from strategies.swing_ml.risk import exit_key
from strategies.swing_ml.strategy import SwingMlStrategy
from tests.integration.swing_ml.test_swing_ml_on_the_oms import KEY, TAKEN, UNIVERSE, Log, of
from tests.integration.swing_ml.test_swing_ml_on_the_oms import swing_config as base_config
from tests.support.driven_oms import DrivenOms, driven_config, driven_oms, driven_settings
from trader.backtest.clock import DrivenClock
from trader.simulation import US_SIM_WINDOW

SID = "SWING_ML"
DAY_1 = date(2024, 11, 8)
SESSIONS = us.trading_days(DAY_1, date(2024, 12, 31))[:11]
"""Day 1 … day 11: 2024-11-08 … 2024-11-22."""
MAX_HOLD = 10


def ny(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NEW_YORK)


def swing(oms: DrivenOms, data_dir: Path) -> SwingMlStrategy:
    """A swing-ML process's strategy on ``oms``: its own client, its state under ``data_dir``, the shared models."""
    config = base_config(
        data_dir.parent,
        Mode.PAPER,
        decide=DecideParams(max_hold_days=MAX_HOLD, sell_score_max=-1.0, max_positions=4),
        risk=RiskParams(take_profit_pct=0.40, stop_loss_pct=0.25, trail_arm_pct=0.30),
        schedule=ScheduleParams(risk_check_every_min=15),
    )
    strategy = SwingMlStrategy(config, oms.client(SID, KEY), oms.clock, data_dir=data_dir)
    # speed (every job below is a wake-up of the driven clock): swing-ML builds no minute bars (no on_bar), so the
    # SDK's per-second bar flush is a no-op job here; heartbeats once a minute instead of every 15 s
    strategy.bar_flush_sec = 0
    strategy.heartbeat_sec = 60
    return strategy


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> Log:
    caplog.set_level(logging.INFO, logger="strategy.SWING_ML")
    return lambda: [r.decision for r in caplog.records if hasattr(r, "decision")]


async def kill(task: asyncio.Task[None]) -> None:
    """Kill the strategy as SIGKILL would: its task and every task it started (scheduler jobs, stream) are
    cancelled together, again and again, so its graceful ``stop()`` (entered from ``run()``'s ``finally``) is
    cut at its first await — no final heartbeat, no waiting for jobs."""
    mine = [t for t in asyncio.all_tasks() if t.get_name().startswith(("job:", f"stream:{SID}"))]
    doomed = [task, *mine]
    while not all(t.done() for t in doomed):
        for t in doomed:
            t.cancel()
        await asyncio.sleep(0)
    assert task.cancelled() or isinstance(task.exception(), asyncio.CancelledError)


def first_decide(intent: dict[str, Any], day: date) -> bool:
    """Sent by ``day``'s first decide (09:45; the next one is at 10:00)."""
    return ny(day, 9, 45) <= datetime.fromisoformat(intent["received_at"]) < ny(day, 10, 0)


async def read(oms: DrivenOms, path: str, **params: Any) -> Any:
    async with oms.http() as http:
        resp = await http.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()


async def test_killed_after_day_3_the_restarted_strategy_exits_on_day_11_by_max_hold_with_the_entry_ts(
    tmp_path: Path, decisions: Log
) -> None:
    first_day, last_day = SESSIONS[0], SESSIONS[-1]
    assert len(SESSIONS) == MAX_HOLD + 1 and last_day == date(2024, 11, 22)
    windows = Windows(first_day, last_day, *US_SIM_WINDOW, market="us")
    clock = DrivenClock(ny(first_day, 9, 25), windows=windows, tz=NEW_YORK)
    settings = driven_settings(tmp_path / "oms", {SID: KEY}, oms_market="us", oms_paper_date=str(first_day))
    config = load_config("config/oms.us.yaml")
    paper = config.paper.model_copy(update={"symbols": list(dict.fromkeys([BENCHMARK, *SECTOR_ETFS, *UNIVERSE]))})
    config = driven_config(config.model_copy(update={"paper": paper}))

    async with driven_oms(settings, config, clock) as oms:
        first = swing(oms, tmp_path / "swing.1")
        running = asyncio.create_task(first.run(), name="swing_ml.1")
        await oms.driver.run_until(ny(SESSIONS[2], 16, 1))  # day 3 is over
        assert oms.runtime.exchange.sessions_done == 3
        assert first.jobs["decide"].last_run == ny(SESSIONS[2], 15, 45)  # the scheduler ran to the last decide
        await kill(running)
        killed_at = len(decisions())
        beat = (await read(oms, "/api/v1/strategies"))[SID]["status"]
        assert beat["state"] == "running", beat  # killed: no "stopped" heartbeat reached the OMS
        before = await read(oms, "/api/v1/intents", strategy_id=SID, limit=500)
        assert {i["intent_type"] for i in before} == {"ENTER"}, before  # nothing sold in days 1-3

        # day 1's 09:45 decide bought; the allocations keep the day-1 fill time as entry_ts
        bought = {i["symbol"] for i in before if first_decide(i, first_day)}
        assert bought and all(i["status"] in TAKEN for i in before), before
        fills = await read(oms, "/api/v1/fills", strategy_id=SID)
        allocations = {s: a for s, a in (await read(oms, f"/api/v1/allocations/{SID}")).items() if a["qty"] > 0}
        held = {s: datetime.fromisoformat(a["entry_ts"]) for s, a in allocations.items() if s in bought}
        assert set(held) == bought, (allocations, bought)
        for symbol, entry_ts in held.items():
            first_fill = min(datetime.fromisoformat(f["ts"]) for f in fills if f["symbol"] == symbol)
            assert entry_ts == first_fill and entry_ts.astimezone(NEW_YORK).date() == first_day, (symbol, entry_ts)

        # the OMS runs on; a new process: nothing shared with the killed one but the OMS and the model folder
        second = swing(oms, tmp_path / "swing.2")
        restarted = asyncio.create_task(second.run(), name="swing_ml.2")
        await oms.driver.run_until(ny(last_day, 9, 50))  # day 11, after its first decide (09:45)
        assert oms.runtime.exchange.sessions_done == MAX_HOLD
        assert second.jobs["regime"].last_run == ny(last_day, 9, 25)  # the 09:00 job, in the night: at the jump
        after = decisions()[killed_at:]
        # the Sunday 12:00 retrain of 11-17 lies in the weekend gap: it runs at Monday's jump, once
        retrains = of(after, "SWING_RETRAIN")
        assert [d["why"] for d in retrains] == ["weekly"], retrains
        assert second.jobs["retrain"].outcome == "retrained since 2024-11-17 12:00"  # the daily fires after it
        assert of(after, "SWING_MODEL_LOADED"), "the restarted strategy did not load the model folder's model"
        intents = await read(oms, "/api/v1/intents", strategy_id=SID, limit=500)
        exits = {i["symbol"]: i for i in intents if i["intent_type"] == "EXIT"}
        assert set(exits) == set(held) and len(exits) == len([i for i in intents if i["intent_type"] != "ENTER"])
        for symbol, entry_ts in held.items():
            intent = exits[symbol]
            key = exit_key(symbol, entry_ts)  # SWING_ML:<symbol>:EXIT:<the day-1 fill time>
            assert intent["idempotency_key"] == f"{SID}:{last_day}:{key}", intent  # the OMS scopes keys per day
            assert first_decide(intent, last_day), intent
            assert intent["risk_payload"]["rationale_code"] == "SWING_MAX_HOLD" and intent["status"] in TAKEN, intent
            (line,) = of(after, "SWING_MAX_HOLD", symbol)
            assert (line["job"], line["held_days"], line["sent"]) == ("decide", MAX_HOLD, True), line
            assert line["idempotency_key"] == key and datetime.fromisoformat(line["entry_ts"]) == entry_ts, line
            # entered once, on day 1: the restarted strategy read the holding from the OMS and did not buy it again
            (enter,) = [i for i in intents if i["symbol"] == symbol and i["intent_type"] == "ENTER"]
            assert first_decide(enter, first_day), enter
        assert not [d for d in after if d["symbol"] in held and d["code"] == "SWING_BUY"]
        # no exit before day 11: max-hold is what sold them, on the session held_days reached 10
        assert not [
            d for d in after if d["symbol"] in held and d.get("side") == "SELL" and d["code"] != "SWING_MAX_HOLD"
        ]
        left = {s: a["qty"] for s, a in (await read(oms, f"/api/v1/allocations/{SID}")).items() if s in held}
        assert not any(left.values()), left  # sold at the paper exchange by 09:50

        second.request_stop()
        oms.driver.release()
        await restarted
        oms.driver.freeze()
