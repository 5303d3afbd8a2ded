"""The scripted US client's decisions (``trader.scripted_us.decide``), the US run plans of ``trader demo/sim
--market us``, and the report's funnel sentence for the client's decision log. Pure: no OMS, no process."""

from __future__ import annotations

import io
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from broker_core.clock import NEW_YORK
from broker_core.markets import us
from oms.store import models
from trader.demo import US_DEFAULT_DAY, UsInputError, us_day, us_plan
from trader.report.collect import parse_decisions
from trader.report.funnel import build_funnel
from trader.scripted_us import (
    Action,
    Code,
    DayState,
    Script,
    Times,
    decide,
    entry_wanted,
    idempotency_key,
    shares_for,
)
from trader.sim import SimInputError, plan_sim

DAY = date(2024, 11, 26)
SCRIPT = Script()
SESSION = us.session(DAY)
assert SESSION is not None
TIMES = Times.of(SESSION, SCRIPT)
PRICES = {"SPY": 600.0, "AAPL": 235.0, "MSFT": 420.0, "NVDA": 137.5, "AMZN": 201.0}


def ny(hh: int, mm: int, day: date = DAY) -> datetime:
    return datetime.combine(day, dtime(hh, mm), NEW_YORK)


def run(
    now: datetime,
    state: DayState | None = None,
    held: dict[str, int] | None = None,
    open_buys: set[str] | None = None,
    open_sells: set[str] | None = None,
    prices: dict[str, float | None] | None = None,
    times: Times = TIMES,
) -> list[Action]:
    state = state or DayState(now.date())
    held = held or {}
    open_buys = open_buys or set()
    wanted = entry_wanted(now, times, state, held, open_buys, SCRIPT)
    chosen = prices if prices is not None else PRICES
    return decide(now, times, state, held, open_buys, open_sells or set(), {s: chosen.get(s) for s in wanted}, SCRIPT)


def kinds(actions: list[Action]) -> list[tuple[str, str | None, str]]:
    return [(a.kind, a.symbol, str(a.code)) for a in actions]


def test_the_days_times_follow_the_session() -> None:
    assert (TIMES.enter, TIMES.round_trip, TIMES.exit) == (ny(9, 35), ny(10, 0), ny(15, 50))
    early = us.session(date(2024, 11, 29))  # the day after Thanksgiving closes at 13:00
    assert early is not None
    assert Times.of(early, SCRIPT).exit == datetime.combine(date(2024, 11, 29), dtime(12, 50), NEW_YORK)


def test_before_the_entry_time_it_waits_and_says_so_once() -> None:
    actions = run(ny(9, 26))
    assert kinds(actions) == [("note", None, "SCRIPTED_WAIT_OPEN")]
    state = DayState(DAY, noted={"wait"})
    assert run(ny(9, 34), state) == []


def test_after_the_open_it_buys_each_name_for_about_the_notional_in_whole_shares() -> None:
    actions = run(ny(9, 35))
    assert [(a.kind, a.symbol) for a in actions] == [("enter", s) for s in SCRIPT.symbols]
    for a in actions:
        assert a.code == Code.ENTRY and a.qty == shares_for(SCRIPT.notional_usd, PRICES[str(a.symbol)])
        assert a.qty * PRICES[str(a.symbol)] <= SCRIPT.notional_usd < (a.qty + 1) * PRICES[str(a.symbol)]
        assert a.key == f"SCRIPTED:20241126:{a.symbol}:ENTER:1"
    assert {a.symbol: a.qty for a in actions}["SPY"] == 13


def test_idempotency_keys_are_one_per_symbol_day_side_and_try() -> None:
    assert idempotency_key(DAY, "AAPL", "ENTER", 2) == "SCRIPTED:20241126:AAPL:ENTER:2"
    state = DayState(DAY, entry_tries={"AAPL": 1}, entry_last={"AAPL": ny(9, 35)})
    retry = [a for a in run(ny(9, 41), state) if a.symbol == "AAPL"]
    assert [(a.kind, a.key) for a in retry] == [("enter", "SCRIPTED:20241126:AAPL:ENTER:2")]


def test_it_does_not_buy_what_it_holds_has_working_or_already_entered() -> None:
    state = DayState(DAY, entered={"MSFT"})
    actions = run(ny(9, 40), state, held={"SPY": 13}, open_buys={"AAPL"})
    assert [a.symbol for a in actions if a.kind == "enter"] == ["NVDA", "AMZN"]


def test_a_refused_entry_is_retried_after_a_pause_then_given_up() -> None:
    state = DayState(DAY, entry_tries={"NVDA": 1}, entry_last={"NVDA": ny(9, 35)})
    assert "NVDA" not in [a.symbol for a in run(ny(9, 37), state)]  # within retry_after
    state = DayState(DAY, entry_tries={"NVDA": SCRIPT.max_attempts}, entry_last={"NVDA": ny(9, 45)})
    nvda = [a for a in run(ny(9, 55), state) if a.symbol == "NVDA"]
    assert kinds(nvda) == [("note", "NVDA", "SCRIPTED_GIVE_UP")] and nvda[0].reason == "MAX_ATTEMPTS"


def test_no_quote_or_too_expensive_are_decisions_not_intents() -> None:
    prices: dict[str, float | None] = {**PRICES, "AAPL": None, "NVDA": 9_000.0}
    actions = {a.symbol: a for a in run(ny(9, 35), prices=prices)}
    assert actions["AAPL"].kind == "note" and actions["AAPL"].code == Code.NO_PRICE
    assert actions["NVDA"].kind == "note" and actions["NVDA"].code == Code.TOO_EXPENSIVE
    assert shares_for(8_000, 9_000.0) == 0 and shares_for(8_000, 0.0) == 0 and shares_for(8_000, 100.0) == 80


def test_the_round_trip_name_is_sold_after_its_time_and_not_bought_again() -> None:
    held = {"SPY": 13, "AAPL": 34}
    state = DayState(DAY, entered={"SPY", "AAPL", "MSFT", "NVDA", "AMZN"})
    assert [a for a in run(ny(9, 59), state, held=held) if a.kind == "exit"] == []
    exits = [a for a in run(ny(10, 0), state, held=held) if a.kind == "exit"]
    assert [(a.symbol, a.qty, a.reason, a.key) for a in exits] == [
        ("SPY", 13, "ROUND_TRIP", "SCRIPTED:20241126:SPY:EXIT:1")
    ]
    sold = DayState(DAY, entered={"SPY"})
    assert [a.symbol for a in run(ny(10, 30), sold) if a.kind == "enter" and a.symbol == "SPY"] == []
    late = kinds([a for a in run(ny(10, 5)) if a.symbol == "SPY"])
    assert late == [("note", "SPY", "SCRIPTED_GIVE_UP")], "a round trip it could not open is given up"


def test_before_the_close_it_cancels_working_entries_and_exits_everything() -> None:
    state = DayState(DAY, entered=set(SCRIPT.symbols))
    held = {"AAPL": 34, "MSFT": 19, "NVDA": 58}
    actions = run(ny(15, 50), state, held=held, open_buys={"AMZN"}, open_sells={"NVDA"})
    assert [(a.kind, a.symbol) for a in actions] == [("cancel", "AMZN"), ("exit", "AAPL"), ("exit", "MSFT")]
    assert {a.reason for a in actions} == {"BEFORE_CLOSE"}
    again = DayState(DAY, entered=set(SCRIPT.symbols), cancelled={"AMZN"}, exit_tries={"AAPL": 1})
    again.exit_last["AAPL"] = ny(15, 50)
    assert [(a.kind, a.symbol) for a in run(ny(15, 52), again, held=held)] == [("exit", "MSFT"), ("exit", "NVDA")]
    assert run(ny(16, 0), again, held=held) == [], "nothing after the close"


def test_no_entries_in_the_exit_window() -> None:
    assert [a for a in run(ny(15, 55)) if a.kind == "enter"] == []


# ---- run plans ---------------------------------------------------------------------------------------


def test_the_us_demo_plan_runs_the_scripted_client_in_new_york_time() -> None:
    plan = us_plan(
        kind="demo", days=[US_DEFAULT_DAY], speed=None, until=None, data_dir=None, json_report=None, serve=False
    )
    assert plan.market == "us" and plan.strategies == ["scripted"]
    assert plan.process_args == {"scripted": ["scripted-us"]}
    assert plan.start == ny(9, 25, US_DEFAULT_DAY) and plan.stop_at == ny(16, 5, US_DEFAULT_DAY)
    assert plan.windows is None and plan.info.currency == "USD"
    minutes = (plan.stop_at - plan.start).total_seconds() / 60
    assert minutes * 60 / plan.speed <= 4 * 60, "a full session in at most 4 minutes of wall time"
    short = us_plan(
        kind="demo", days=[US_DEFAULT_DAY], speed=240, until="10:30", data_dir=None, json_report=None, serve=False
    )
    assert short.stop_at == ny(10, 30, US_DEFAULT_DAY) and short.speed == 240
    with pytest.raises(UsInputError, match="not after the run's start"):
        us_plan(kind="demo", days=[DAY], speed=None, until="09:00", data_dir=None, json_report=None, serve=False)


def test_the_us_demo_day() -> None:
    console = Console(file=io.StringIO())
    assert us_day(None, None, console) == US_DEFAULT_DAY == DAY
    with pytest.raises(UsInputError, match="not an XNYS trading day"):
        us_day("2024-11-28", None, console)  # Thanksgiving
    with pytest.raises(UsInputError, match="YYYY-MM-DD"):
        us_day("26/11/2024", None, console)


def test_a_us_sim_covers_the_xnys_sessions_on_a_new_york_window() -> None:
    plan = plan_sim(
        market="us",
        start="2024-11-25",
        end="2024-12-02",
        strategies=None,
        speed=None,
        data_dir=None,
        json_report=None,
    )
    assert plan.days == us.trading_days(date(2024, 11, 25), date(2024, 12, 2))
    assert date(2024, 11, 28) not in plan.days and len(plan.days) == 5
    windows = plan.windows
    assert windows is not None and windows.market == "us"
    assert windows.days() == plan.days and (windows.open, windows.close) == (dtime(9, 25), dtime(16, 5))
    with pytest.raises(SimInputError, match="--market us runs scripted, swing_ml"):
        plan_sim(
            market="us",
            start="2024-11-25",
            end="2024-11-26",
            strategies=["kmp"],
            speed=None,
            data_dir=None,
            json_report=None,
        )
    with pytest.raises(SimInputError, match="no XNYS session of the US data"):
        plan_sim(
            market="us",
            start="2030-01-02",
            end="2030-01-03",
            strategies=None,
            speed=None,
            data_dir=None,
            json_report=None,
        )


# ---- report funnel -----------------------------------------------------------------------------------


ENTRY_AT = ny(9, 35)


def _line(code: str, symbol: str | None = None, at: datetime = ENTRY_AT, **fields: str) -> str:
    parts = [f"code={code}"] + ([f"symbol={symbol}"] if symbol else []) + [f"{k}={v}" for k, v in fields.items()]
    parts.append(f"at={at.isoformat()}")
    return "2026-12-05 08:20:32,199 INFO strategy.SCRIPTED: decision " + " ".join(parts)


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[c.name for c in models.TABLES[table].columns])


def test_why_nothing_traded_names_the_clients_codes(tmp_path: Path) -> None:
    plan = _line("SCRIPTED_PLAN", at=ny(9, 25), candidates="\"['SPY', 'AAPL']\"")
    log = tmp_path / "scripted.log"
    log.write_text("\n".join([plan, _line("SCRIPTED_WAIT_OPEN", at=ny(9, 25), until="09:35")]) + "\n")
    funnel = build_funnel(
        "SCRIPTED", parse_decisions(log), _empty("intents"), _empty("orders"), _empty("fills"), NEW_YORK
    )
    assert funnel.sentence == "SCRIPTED: 2 candidates; 0 passed the gates: SCRIPTED_WAIT_OPEN ×1"
    log.write_text(
        "\n".join(
            [
                plan,
                _line("SCRIPTED_NO_PRICE", "SPY"),
                _line("SCRIPTED_NO_PRICE", "SPY", ny(9, 40)),
                _line("SCRIPTED_TOO_EXPENSIVE", "AAPL"),
            ]
        )
        + "\n"
    )
    funnel = build_funnel(
        "SCRIPTED", parse_decisions(log), _empty("intents"), _empty("orders"), _empty("fills"), NEW_YORK
    )
    assert funnel.stages["candidates"] == 2 and not funnel.traded
    assert "SCRIPTED_NO_PRICE ×2" in funnel.sentence and "SCRIPTED_TOO_EXPENSIVE ×1" in funnel.sentence
