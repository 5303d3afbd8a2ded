"""A run's report from a real SQLite database written by the OMS's own store (migrations, journal,
drainer) with rows made by the OMS's own ledger, plus a KMP decision log."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from oms.core.ledger import Ledger
from oms.core.types import (
    FillRecord,
    Intent,
    IntentRecord,
    IntentResult,
    IntentStatus,
    IntentType,
    OrderRecord,
    OrderState,
    OrderType,
    RiskDailyPortfolioRecord,
)
from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.migrate import make_engine, migrate
from trader.report import ReportPaths, load_benchmark, print_summary, write_run_report
from trader.report.collect import collect_run
from trader.report.equity import build_book

KST = ZoneInfo("Asia/Seoul")
D1, D2 = date(2026, 2, 26), date(2026, 2, 27)
START_EQUITY = 100_000_000.0
PNG = b"\x89PNG\r\n\x1a\n"
BENCHMARK = pd.Series([100.0, 101.0, 99.0], index=[date(2026, 2, 25), D1, D2], name="KOSPI")


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=KST)


@dataclass
class Journaled:
    records: list[Any]
    ledger: Ledger
    n: int = 0

    def intent(
        self,
        strategy: str,
        symbol: str,
        when: datetime,
        status: IntentStatus,
        kind: IntentType = IntentType.ENTER,
        reason: str | None = None,
    ) -> str:
        self.n += 1
        iid = f"int-{self.n}"
        intent = Intent(iid, strategy, symbol, kind, when, f"{strategy}:key-{self.n}", desired_qty=10)
        result = IntentResult(iid, status, "", reason_code=reason)
        self.records.append(IntentRecord(intent, result, when + timedelta(milliseconds=5)))
        return iid

    def order(
        self, iid: str, strategy: str, symbol: str, side: str, qty: int, when: datetime, state: OrderState
    ) -> str:
        oid = iid.replace("int", "ord")
        order = OrderRecord(oid, iid, strategy, symbol, side, qty, OrderType.LIMIT, state, when, when)
        self.records.append(order)
        return oid

    def fill(
        self, oid: str, strategy: str, symbol: str, side: str, qty: int, price: float, when: datetime, **fees: float
    ) -> None:
        self.n += 1
        fill = FillRecord(f"ex-{self.n}", oid, strategy, symbol, side, qty, price, when, **fees)
        change = self.ledger.apply_fill(fill, when)
        self.records += [fill, change.position, change.allocation] + ([change.trade] if change.trade else [])


def write_database(path: Path, build: Any) -> None:
    url = f"sqlite:///{path}"

    async def go() -> None:
        await migrate(url)
        journal = Journal(path.parent / f"{path.stem}-journal.db")
        engine = make_engine(url)
        try:
            j = Journaled([], Ledger())
            build(j)
            journal.append(j.records)
            await Drainer(journal, engine, "demo").drain_all()
        finally:
            journal.close()
            await engine.dispose()

    asyncio.run(go())


def trading_rows(j: Journaled) -> None:
    j.records += [RiskDailyPortfolioRecord(d.isoformat(), START_EQUITY) for d in (D1, D2)]
    # day 1: KMP round trip in 005930: buy 10 @ 70,000 (fee 100), sell 10 @ 71,000 (fees 300) → +9,600
    i = j.intent("KMP", "005930", at(D1, 9, 50), IntentStatus.EXECUTED)
    o = j.order(i, "KMP", "005930", "BUY", 10, at(D1, 9, 50), OrderState.FILLED)
    j.fill(o, "KMP", "005930", "BUY", 10, 70_000.0, at(D1, 9, 50, 3), commission=100.0)
    i = j.intent("KMP", "005930", at(D1, 14, 30), IntentStatus.EXECUTED, IntentType.EXIT)
    o = j.order(i, "KMP", "005930", "SELL", 10, at(D1, 14, 30), OrderState.FILLED)
    j.fill(o, "KMP", "005930", "SELL", 10, 71_000.0, at(D1, 14, 30, 2), commission=100.0, tax=200.0)
    # day 2: two refusals, one entry in two fills (held at the end), one accepted entry never filled
    j.intent("KMP", "000660", at(D2, 9, 40), IntentStatus.REJECTED, reason="MAX_POSITIONS")
    j.intent("KMP", "000660", at(D2, 9, 41), IntentStatus.DEFERRED, reason="VI_COOLDOWN")
    i = j.intent("KMP", "035420", at(D2, 10, 0), IntentStatus.ACCEPTED)
    o = j.order(i, "KMP", "035420", "BUY", 5, at(D2, 10, 0), OrderState.FILLED)
    j.fill(o, "KMP", "035420", "BUY", 2, 200_000.0, at(D2, 10, 0, 1), commission=50.0)
    j.fill(o, "KMP", "035420", "BUY", 3, 201_000.0, at(D2, 10, 0, 2), commission=50.0)
    i = j.intent("KMP", "005380", at(D2, 10, 5), IntentStatus.ACCEPTED)
    j.order(i, "KMP", "005380", "BUY", 4, at(D2, 10, 5), OrderState.CANCELLED)
    # KPR: one refused entry, no decision log
    j.intent("KPR", "051910", at(D2, 11, 0), IntentStatus.REJECTED, reason="STRATEGY_BUDGET")


def decision(code: str, symbol: str | None, when: datetime, **fields: str) -> str:
    parts = [f"code={code}"] + ([f"symbol={symbol}"] if symbol else []) + [f"at={when.isoformat()}"]
    parts += [f"{k}={v}" for k, v in fields.items()]
    return "2026-12-05 08:20:32,199 INFO strategy.KMP: decision " + " ".join(parts)


def trading_log() -> list[str]:
    return [
        decision("KMP_SCAN", None, at(D1, 9, 15), candidates="\"[('005930', 3.1)]\""),
        decision("KMP_CANDIDATE", "005930", at(D1, 9, 15)),
        decision("KMP_ENTRY", "005930", at(D1, 9, 50)),
        decision("KMP_SCAN", None, at(D2, 9, 15), candidates="\"[('000660', 4.2), ('035420', 5.0), ('005380', 4.5)]\""),
        decision("KMP_G_RVOL", "000660", at(D2, 9, 30)),
        decision("KMP_G_RVOL", "000660", at(D2, 9, 31)),
        decision("KMP_ENTRY", "000660", at(D2, 9, 40)),
        decision("KMP_ENTRY", "000660", at(D2, 9, 41)),
        decision("KMP_ENTRY", "035420", at(D2, 10, 0)),
        decision("KMP_ENTRY", "005380", at(D2, 10, 5)),
    ]


@dataclass
class Run:
    db: Path
    paths: ReportPaths
    report: dict[str, Any]


def make_run(root: Path, build: Any, log: list[str], strategies: list[str]) -> Run:
    root.mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "logs" / "kmp.log").write_text("\n".join(log) + "\n")
    db = root / "oms.db"
    write_database(db, build)
    paths = write_run_report(
        root,
        db,
        market="krx",
        start=D1,
        end=D2,
        strategies=strategies,
        logs_dir=root / "logs",
        benchmark=BENCHMARK,
        extra={"kind": "demo", "wall_seconds": 1.5, "market": "not this"},
        oms_instance_id="demo",
    )
    return Run(db, paths, json.loads(paths.json.read_text()))


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return make_run(tmp_path_factory.mktemp("traded") / "run", trading_rows, trading_log(), ["kmp", "kpr"])


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A run where nothing traded: no intents, KMP's candidates all stopped at the gates."""

    def rows(j: Journaled) -> None:
        j.records += [RiskDailyPortfolioRecord(d.isoformat(), START_EQUITY) for d in (D1, D2)]

    log = [decision("KMP_SCAN", None, at(D2, 9, 15), candidates="\"[('032830', 3.3), ('004020', 4.2)]\"")]
    log += [decision("KMP_G_RVOL", "032830", at(D2, 9, 20, i)) for i in range(14)]
    log += [decision("KMP_G_QUALITY", "004020", at(D2, 9, 30, i)) for i in range(3)]
    return make_run(tmp_path_factory.mktemp("idle") / "run", rows, log, ["kmp"])


def sql(db: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


def test_report_json_has_the_fixed_shape(traded: Run) -> None:
    r = traded.report
    assert (r["market"], r["from"], r["to"], r["sessions"]) == ("krx", "2026-02-26", "2026-02-27", 2)
    assert set(r["strategies"]) == {"KMP", "KPR"}
    for block in r["strategies"].values():
        assert isinstance(block["intents"], int) and isinstance(block["entries"], int)
        assert isinstance(block["fills"], int) and isinstance(block["realized_pnl"], float)
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in block["rejections"].items())
    assert all(isinstance(ts, str) and isinstance(v, float) for ts, v in r["equity"])
    assert r["kind"] == "demo" and r["wall_seconds"] == 1.5  # extra keys beside, never over, the computed ones


def test_counts_equal_the_database(traded: Run) -> None:
    r, db = traded.report, traded.db
    for sid in ("KMP", "KPR"):
        s = r["strategies"][sid]
        assert s["intents"] == sql(db, "SELECT count(*) FROM intents WHERE strategy_id = ?", sid)[0][0]
        assert s["fills"] == sql(db, "SELECT count(*) FROM fills WHERE strategy_id = ?", sid)[0][0]
        assert (
            s["entries"]
            == sql(db, "SELECT count(DISTINCT order_id) FROM fills WHERE strategy_id = ? AND side = 'BUY'", sid)[0][0]
        )
        refused = sql(
            db,
            "SELECT reason_code, count(*) FROM intents WHERE strategy_id = ? AND status IN ('REJECTED', 'DEFERRED') "
            "GROUP BY reason_code",
            sid,
        )
        assert s["rejections"] == dict(refused)
        assert s["intents_by_status"] == dict(
            sql(db, "SELECT status, count(*) FROM intents WHERE strategy_id = ? GROUP BY status", sid)
        )
        assert s["trades"] == sql(db, "SELECT count(*) FROM trades WHERE strategy_id = ?", sid)[0][0]
    kmp = r["strategies"]["KMP"]
    assert (kmp["intents"], kmp["entries"], kmp["fills"]) == (6, 2, 4)
    assert kmp["rejections"] == {"MAX_POSITIONS": 1, "VI_COOLDOWN": 1}
    assert kmp["intents_by_status_reason"] == {
        "EXECUTED": {"-": 2},
        "REJECTED": {"MAX_POSITIONS": 1},
        "DEFERRED": {"VI_COOLDOWN": 1},
        "ACCEPTED": {"-": 2},
    }
    assert kmp["orders_by_state"] == {"FILLED": 3, "CANCELLED": 1}
    assert r["strategies"]["KPR"]["rejections"] == {"STRATEGY_BUDGET": 1}
    assert r["totals"]["intents"] == sql(db, "SELECT count(*) FROM intents")[0][0] == 7


def test_pnl_and_equity_by_hand(traded: Run) -> None:
    r = traded.report
    kmp = r["strategies"]["KMP"]
    # day 1: −100 + (71,000 − 70,000)·10 − 300 = 9,600; day 2: fees −100 on the open 035420 buys
    assert kmp["realized_pnl"] == 9_500.0
    assert kmp["unrealized_pnl"] == 5 * (201_000 - 200_600)  # marked at the last fill, cost basis 200,600
    assert kmp["open_positions"] == {"035420": 5}
    assert r["strategies"]["KPR"]["realized_pnl"] == 0.0
    assert r["equity"][0] == ["2026-02-26T09:00:00+09:00", START_EQUITY]
    assert r["equity"][-1] == ["2026-02-27T15:30:00+09:00", START_EQUITY + 9_500 + 2_000]
    assert r["equity_daily"] == [["2026-02-26", START_EQUITY + 9_600], ["2026-02-27", START_EQUITY + 11_500]]
    (trade,) = r["trades"]
    assert (trade["strategy"], trade["symbol"], trade["qty"], trade["pnl"]) == ("KMP", "005930", 10, 9_600.0)
    assert trade["entry_ts"] == "2026-02-26T09:50:03+09:00"


def test_per_day_counts(traded: Run) -> None:
    day1, day2 = traded.report["days"]
    assert (day1["date"], day1["intents"], day1["entries"], day1["fills"], day1["realized_pnl"]) == (
        "2026-02-26",
        2,
        1,
        2,
        9_600.0,
    )
    assert (day2["intents"], day2["entries"], day2["fills"], day2["realized_pnl"]) == (5, 1, 2, -100.0)
    assert day2["pnl"] == 1_900.0  # equity 100,011,500 − 100,009,600
    assert day2["by_strategy"]["KPR"] == {"intents": 1, "entries": 0, "fills": 0, "realized_pnl": 0.0}


def test_metrics_sit_next_to_the_benchmark(traded: Run) -> None:
    p, b = traded.report["metrics"]["portfolio"], traded.report["metrics"]["benchmark"]
    assert p["total_return"] == pytest.approx(11_500 / START_EQUITY, abs=1e-6)
    assert p["win_rate"] == 1.0 and p["periods"] == 2
    assert p["max_drawdown"] <= 0
    assert 0 < p["exposure"] < 1
    assert b["name"] == "KOSPI" and b["total_return"] == pytest.approx(-0.01)  # 100 → 99
    assert b["max_drawdown"] == pytest.approx(99 / 101 - 1, abs=1e-6)


def test_the_funnel_of_a_strategy_that_traded(traded: Run) -> None:
    f = traded.report["strategies"]["KMP"]["funnel"]
    assert f["stages"] == {"candidates": 4, "gates_passed": 4, "signals": 5, "intents": 5, "accepted": 3, "filled": 2}
    assert f["traded"] and "→" in f["sentence"]
    kpr = traded.report["strategies"]["KPR"]["funnel"]
    assert kpr["sentence"] == "KPR: 1 intent; 0 accepted: STRATEGY_BUDGET ×1 (no decision log)"
    assert traded.report["why_nothing_traded"] == [kpr["sentence"]]


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(path: Path) -> _Checker:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert "http://" not in text and "https://" not in text  # self-contained
    return checker


def test_html_is_valid_and_embeds_its_charts(traded: Run) -> None:
    page = check_html(traded.paths.html)
    assert len(page.images) == 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    text = " ".join(page.text)
    assert "KPR: 1 intent; 0 accepted: STRATEGY_BUDGET ×1" in text
    assert "005930" in text and "KOSPI" in text


def test_pngs_are_written(traded: Run) -> None:
    assert set(traded.paths.charts) == {"equity", "drawdown", "pnl_by_strategy", "funnel"}
    for name, path in traded.paths.charts.items():
        assert path == traded.paths.json.parent / f"{name}.png"
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000


def test_a_run_where_nothing_traded_says_why(idle: Run) -> None:
    r = idle.report
    kmp = r["strategies"]["KMP"]
    assert (kmp["intents"], kmp["fills"], kmp["realized_pnl"]) == (0, 0, 0.0)
    sentence = "KMP: 2 candidates; 0 passed the gates: KMP_G_RVOL ×14, KMP_G_QUALITY ×3"
    assert kmp["funnel"]["sentence"] == sentence and r["why_nothing_traded"] == [sentence]
    assert [v for _, v in r["equity"]] == [START_EQUITY] * 3
    assert r["metrics"]["portfolio"]["total_return"] == 0.0 and r["trades"] == []
    assert sentence in " ".join(check_html(idle.paths.html).text)
    assert all(p.read_bytes().startswith(PNG) for p in idle.paths.charts.values())


def test_print_summary_shows_the_figures_and_the_file(traded: Run) -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    print_summary(console, traded.paths)
    out = console.export_text()
    assert "KMP" in out and "9,500" in out and "KOSPI" in out
    assert "KPR: 1 intent; 0 accepted: STRATEGY_BUDGET ×1" in out
    assert str(traded.paths.html) in out


def test_the_benchmarks_come_from_the_reference_data() -> None:
    kospi = load_benchmark("krx", D1, D2)
    if kospi is None:
        pytest.fail("../shared/data/krx is missing (see its README)")
    assert kospi.name == "KOSPI" and kospi.index[-1] == D2 and kospi.index[0] < D1
    spy = load_benchmark("us", date(2024, 6, 3), date(2024, 6, 7))
    if spy is None:
        pytest.fail("../shared/data/us is missing (see its README)")
    assert spy.name == "SPY" and len(spy) > 5 and spy.index[-1] == date(2024, 6, 7)


def test_session_close_marks_revalue_open_positions(traded: Run) -> None:
    run = collect_run(traded.db, market="krx", start=D1, end=D2, strategies=["KMP"], logs_dir=None)
    assert run.start_equity == START_EQUITY and run.sessions == [D1, D2]
    book = build_book(run, marks=lambda symbol, day: 210_000.0 if symbol == "035420" else None)
    assert book.unrealized == {"KMP": 5 * (210_000 - 200_600), "KPR": 0.0}
    assert book.daily[D2] == START_EQUITY + 9_500 + 47_000
    assert book.daily[D1] == START_EQUITY + 9_600
