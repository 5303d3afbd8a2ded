"""Approval (I11), the engine's day (I13–I19, I24), recovery; unapproved items never become intents."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker_core.contract.reasons import ReasonCode
from strategies.pcim.approval import ApprovalStatus, auto_approve_allowed, decide
from strategies.pcim.config import PcimParams
from strategies.pcim.decisions import CancelAction, EnterAction, ExitAction, ModifyRiskAction, Output, ReduceAction
from strategies.pcim.engine import PcimEngine
from strategies.pcim.regime import from_levels
from strategies.pcim.review import review, review_app
from strategies.pcim.signals import QuoteSnap
from strategies.pcim.store import PcimStore
from strategies.pcim.watchlist import WatchlistBuild, load_watchlist, save_watchlist
from tests.unit.pcim._helpers import DAY, at, bar, engine, item

P = PcimParams()
DEADLINE = time(8, 30)


def test_approval_after_the_deadline_is_refused() -> None:
    ok = decide(DAY, "005930", ApprovalStatus.PENDING, True, at(8, 29, 59), DEADLINE)
    assert ok.ok and ok.status is ApprovalStatus.APPROVED and ok.code is ReasonCode.PCIM_APPROVED
    late = decide(DAY, "005930", ApprovalStatus.PENDING, True, at(8, 30), DEADLINE)
    assert not late.ok and late.code is ReasonCode.PCIM_APPROVAL_LATE and late.status is ApprovalStatus.PENDING
    unknown = decide(DAY, "999999", None, True, at(8, 0), DEADLINE)
    assert not unknown.ok
    assert auto_approve_allowed(clock_is_real=False) and not auto_approve_allowed(clock_is_real=True)


def test_store_review_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'pcim.sqlite'}"
    store = PcimStore(url)
    build = WatchlistBuild(DAY, items=[item("005930", rank=1), item("000660", rank=2)])
    save_watchlist(store, build, at(0, 5))
    assert review(store, DAY, "005930", True, at(8, 10), DEADLINE, "tester").ok
    assert not review(store, DAY, "000660", True, at(8, 31), DEADLINE, "tester").ok
    statuses = {i.symbol: st for i, st in load_watchlist(store, DAY)}
    assert statuses == {"005930": ApprovalStatus.APPROVED, "000660": ApprovalStatus.PENDING}
    # a rebuild of the list keeps the approvals already given
    save_watchlist(store, build, at(5, 0))
    assert {i.symbol: st for i, st in load_watchlist(store, DAY)}["005930"] is ApprovalStatus.APPROVED
    monkeypatch.setenv("PCIM_STORE_URL", url)
    runner = CliRunner()
    monkeypatch.setenv("TRADER_CLOCK", "sim start=2026-02-27T08:15:00+09:00 speed=1 anchor=1")
    res = runner.invoke(review_app, ["reject", "000660", "--session", "2026-02-27", "--by", "me"])
    assert res.exit_code == 1 and "PCIM_APPROVAL_LATE" in res.output  # anchor=1: virtual now is far past 08:30
    monkeypatch.setenv("TRADER_CLOCK", "real")
    res = runner.invoke(review_app, ["list", "--session", "2026-02-27"])
    assert res.exit_code == 0 and "005930" in res.output and "APPROVED" in res.output


def _morning(symbols: dict[str, ApprovalStatus]) -> tuple[PcimEngine, Output]:
    e = engine()
    e.on_account(at(8, 30), 1e9)
    items = [item(s, rank=n, adtv20=1e12) for n, s in enumerate(symbols, start=1)]
    out = e.start_day(at(8, 30), items, symbols)
    e.set_regime(at(8, 30), from_levels(2_600, 2_500, 40, P))
    return e, out


def _a_bars(sym: str) -> list:
    return [
        bar(at(9, 0), 10_050, 10_100, 10_000, 10_080, 40_000, sym),
        bar(at(9, 1), 10_080, 10_200, 10_060, 10_150, 50_000, sym),
        bar(at(9, 2), 10_150, 10_180, 10_100, 10_150, 40_000, sym),
    ]


def test_unapproved_items_never_reach_an_intent() -> None:
    e, out = _morning(
        {"005930": ApprovalStatus.APPROVED, "000660": ApprovalStatus.PENDING, "035420": ApprovalStatus.REJECTED}
    )
    assert {d.symbol for d in out.decisions if d.code is ReasonCode.PCIM_NOT_APPROVED} == {"000660", "035420"}
    sent = []
    for sym in ("005930", "000660", "035420"):
        e.on_expected_open(at(8, 55), sym, 10_100)
    e.on_clock(at(9, 1, 2))
    for sym in ("005930", "000660", "035420"):
        e.on_bars(at(9, 3, 2), sym, _a_bars(sym))
        sent += e.on_quote(at(9, 3, 2), sym, QuoteSnap(at(9, 3, 2), 10_150, 10_140, 10_150, 10_000)).actions
    sent += e.on_clock(at(9, 3, 2)).actions
    assert [a.symbol for a in sent if isinstance(a, EnterAction)] == ["005930"]
    assert "000660" not in e.syms and "035420" not in e.syms


def test_no_entry_before_0901_and_fallback_bucket_from_the_0900_bar() -> None:
    e, _ = _morning({"005930": ApprovalStatus.APPROVED})
    assert e.on_clock(at(9, 0, 30)).actions == []
    assert e.syms["005930"].bucket is None
    e.on_bars(at(9, 1, 2), "005930", [bar(at(9, 0), 10_420, 10_450, 10_400, 10_430, 1_000)])
    out = e.on_clock(at(9, 1, 2))
    d = out.first(ReasonCode.PCIM_BUCKET)
    assert d is not None and d.fields["bucket"] == "B" and d.fields["source"] == "open_bar_0900"


def test_bucket_b_entry_then_10_00_cancel_and_entry_missed() -> None:
    e, _ = _morning({"005930": ApprovalStatus.APPROVED})
    e.on_expected_open(at(8, 50), "005930", 10_400)
    e.on_clock(at(9, 1, 2))
    bars = [bar(at(9, m), 10_400, 10_420, 10_380, 10_400, 10_000) for m in range(0, 18)]
    bars.append(bar(at(9, 18), 10_400, 10_405, 10_350, 10_360, 10_000))  # touch, close below VWAP
    bars.append(bar(at(9, 19), 10_360, 10_440, 10_360, 10_430, 10_000))  # reclaim
    e.on_bars(at(9, 20, 2), "005930", bars)
    e.on_quote(at(9, 20, 2), "005930", QuoteSnap(at(9, 20, 2), 10_430, 10_420, 10_430, 10_000))
    out = e.on_clock(at(9, 20, 2))
    enter = next(a for a in out.actions if isinstance(a, EnterAction))
    assert enter.bucket == "B" and enter.limit_price == 10_450 and out.first(ReasonCode.PCIM_B_TRIGGER) is not None
    assert enter.cancel_after_sec == pytest.approx(39 * 60 + 58, abs=1)
    assert enter.qty == int(8_333 * 0.8)
    e.on_intent_result("005930", at(9, 20, 3), "ENTER", "ACCEPTED")
    cut = e.on_clock(at(10, 0))
    assert any(isinstance(a, CancelAction) for a in cut.actions)
    missed = e.on_order_closed("005930", at(10, 0, 3), 0)
    assert missed.first(ReasonCode.PCIM_ENTRY_MISSED) is not None and "005930" not in e.positions


def test_kospi_veto_blocks_entries_for_the_day() -> None:
    e, _ = _morning({"005930": ApprovalStatus.APPROVED})
    e.on_expected_open(at(8, 55), "005930", 10_100)
    e.on_clock(at(9, 1, 2))
    e.on_index(at(9, 2), 2_560, 2_600)
    e.on_bars(at(9, 3, 2), "005930", _a_bars("005930"))
    e.on_quote(at(9, 3, 2), "005930", QuoteSnap(at(9, 3, 2), 10_150, 10_140, 10_150, 10_000))
    out = e.on_clock(at(9, 3, 2))
    assert not any(isinstance(a, EnterAction) for a in out.actions) and out.first(ReasonCode.PCIM_VETO_KOSPI)


def test_fill_profit_take_and_day_15_exit() -> None:
    e = engine()
    e.start_day(at(8, 30), [item(adtv20=1e12)], {"005930": ApprovalStatus.APPROVED})
    out = e.on_fill("005930", "BUY", 1_000, 10_000, at(9, 3, 10))
    mr = next(a for a in out.actions if isinstance(a, ModifyRiskAction))
    assert mr.stop_px == 9_400 and mr.time_stop_ts is not None and mr.time_stop_ts.date() == date(2026, 3, 19)
    pt = e.on_quote(at(10, 30), "005930", QuoteSnap(at(10, 30), 11_000, 10_990, 11_000))
    red = next(a for a in pt.actions if isinstance(a, ReduceAction))
    assert red.qty == 600 and red.reason is ReasonCode.PCIM_X_PROFIT_TAKE
    e.on_fill("005930", "SELL", 600, 10_990, at(10, 30, 5))
    pos = e.positions["005930"]
    assert pos.qty == 400 and pos.partial_done
    e.on_daily_close(at(15, 40), "005930", 11_200, 400, date(2026, 3, 2))
    assert pos.trail == 10_600
    assert e.on_clock(at(15, 10, 0, day=date(2026, 3, 18))).actions == []
    out = e.on_clock(at(15, 10, 0, day=date(2026, 3, 19)))
    ex = [a for a in out.actions if isinstance(a, ExitAction)]
    d15 = out.first(ReasonCode.PCIM_X_DAY15)
    assert len(ex) == 1 and ex[0].reason is ReasonCode.PCIM_X_DAY15 and d15 is not None
    assert d15.fields["holding_day"] == 15


def test_recovery_from_memo_and_defaults() -> None:
    e = engine()
    memo = {
        "symbol": "005930",
        "qty": 400,
        "entry_px": 10_000,
        "entry_day": "2026-02-20",
        "atr_entry": 400,
        "stop": 9_400,
        "target": 11_000,
        "partial_done": True,
        "trail": 10_600,
        "trail_active_from": "2026-02-23",
    }
    out = e.on_position_recovered("005930", 400, 10_000, at(8, 0), memo=memo)
    rec = out.first(ReasonCode.PCIM_POSITION_RECOVERED)
    assert e.positions["005930"].trail == 10_600 and rec is not None and rec.fields["source"] == "store"
    e.on_position_recovered("000660", 10, 20_000, at(8, 0), stop_px=19_000)
    assert e.positions["000660"].stop == 19_000
    e.on_position_recovered("035420", 10, 20_000, at(8, 0))
    assert e.positions["035420"].stop == 19_000  # 5% default
    held = e.start_day(at(8, 30), [item("005930")], {"005930": ApprovalStatus.APPROVED})
    assert held.first(ReasonCode.PCIM_SKIP_ALREADY_HOLDING) is not None and "005930" not in e.syms


def test_approval_http_app(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from strategies.pcim.review import approval_http_app

    store = PcimStore(f"sqlite:///{tmp_path / 'h.sqlite'}")
    save_watchlist(store, WatchlistBuild(DAY, items=[item("005930"), item("000660", rank=2)]), at(0, 5))
    clock = [at(8, 10)]
    client = TestClient(approval_http_app(store, DEADLINE, lambda: clock[0]))
    listed = client.get("/pcim/approvals", params={"session": "2026-02-27"}).json()
    assert [i["symbol"] for i in listed["items"]] == ["005930", "000660"] and listed["deadline"] == "08:30"
    ok = client.post("/pcim/approvals/005930/approve", params={"session": "2026-02-27"}, json={"by": "desk"})
    assert ok.status_code == 200 and ok.json()["status"] == "APPROVED"
    clock[0] = at(8, 30, 1)
    late = client.post("/pcim/approvals/000660/approve", params={"session": "2026-02-27"})
    assert late.status_code == 409 and late.json()["code"] == ReasonCode.PCIM_APPROVAL_LATE.value
    statuses = {i.symbol: st for i, st in load_watchlist(store, DAY)}
    assert statuses == {"005930": ApprovalStatus.APPROVED, "000660": ApprovalStatus.PENDING}
