"""Decision logs → the funnel and its "why nothing traded" sentence (no database: empty OMS tables)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from oms.store import models
from trader.report.collect import find_log, parse_decisions
from trader.report.funnel import FUNNELS, build_funnel

KST = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 2, 27, 9, 15, 47, tzinfo=KST)


def line(code: str, symbol: str | None = None, seconds: int = 0, **fields: str) -> str:
    """A decision line as ``strategies.sdk.Strategy.decision`` logs it."""
    parts = [f"code={code}"] + ([f"symbol={symbol}"] if symbol else [])
    parts.append(f"at={(T0 + timedelta(seconds=seconds)).isoformat()}")
    parts += [f"{k}={v}" for k, v in fields.items()]
    return "2026-12-05 08:20:32,199 INFO strategy.KMP: decision " + " ".join(parts)


def empty(table: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[c.name for c in models.TABLES[table].columns])


def kmp_log(tmp_path: Path) -> Path:
    lines = [
        line("KMP_REGIME", regime="mixed"),
        line("KMP_GAP_SKIP", "042700", gap_pct="0.086"),
        line("KMP_SCAN", candidates="\"[('032830', 3.322), ('004020', 4.25)]\"", scanned="56"),
        line("KMP_CANDIDATE", "032830", 1, surge="3.32"),
    ]
    lines += [line("KMP_G_RVOL", "032830", 60 + i, gate_failed="True") for i in range(14)]
    lines += [line("KMP_G_QUALITY", "004020", 120 + i, gate_failed="True") for i in range(3)]
    lines.append("2026-12-05 08:20:40,000 INFO httpx: HTTP Request: GET /api/v1/clock 200 OK")
    path = tmp_path / "kmp.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_decision_lines_are_parsed_with_their_fields_and_time(tmp_path: Path) -> None:
    ds = parse_decisions(kmp_log(tmp_path))
    assert len(ds) == 4 + 14 + 3
    scan = ds[2]
    assert scan.code == "KMP_SCAN" and scan.symbol is None and scan.at == T0
    assert scan.value("candidates") == [("032830", 3.322), ("004020", 4.25)]
    assert scan.value("scanned") == 56
    assert ds[1].symbol == "042700" and ds[1].value("gap_pct") == 0.086


def test_a_reason_field_counts_as_a_decision(tmp_path: Path) -> None:
    path = tmp_path / "kpr.log"
    path.write_text(
        "2026-02-27 10:00:00 INFO strategy.KPR: skip symbol=005930 reason=KPR_NO_SETUP at=2026-02-27T10:00:00+09:00\n"
    )
    (d,) = parse_decisions(path)
    assert (d.code, d.symbol, d.at) == ("KPR_NO_SETUP", "005930", datetime(2026, 2, 27, 10, tzinfo=KST))


def test_the_funnel_says_which_gates_stopped_the_candidates(tmp_path: Path) -> None:
    f = build_funnel("KMP", parse_decisions(kmp_log(tmp_path)), empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.stages == {"candidates": 2, "gates_passed": 0, "signals": 0, "intents": 0, "accepted": 0, "filled": 0}
    assert f.sentence == "KMP: 2 candidates; 0 passed the gates: KMP_G_RVOL ×14, KMP_G_QUALITY ×3"
    assert not f.traded


def test_no_candidates_names_what_happened_upstream(tmp_path: Path) -> None:
    path = tmp_path / "kmp.log"
    path.write_text("\n".join([line("KMP_GAP_SKIP", "042700"), line("KMP_SCAN", candidates="[]")]) + "\n")
    f = build_funnel("KMP", parse_decisions(path), empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.sentence == "KMP: 0 candidates: KMP_GAP_SKIP ×1"


def test_without_a_spec_or_a_log_the_funnel_starts_at_the_intents() -> None:
    assert "NOPE" not in FUNNELS
    f = build_funnel("NOPE", None, empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.stages["candidates"] is None and f.stages["intents"] == 0
    assert f.sentence == "NOPE: 0 intents"
    f = build_funnel("KMP", None, empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.sentence == "KMP: 0 intents (no decision log)"


def test_accepted_entries_that_never_filled_name_their_orders() -> None:
    intents = pd.DataFrame(
        [
            {
                "intent_id": "i1",
                "strategy_id": "SWING_ML",
                "intent_type": "ENTER",
                "status": "ACCEPTED",
                "reason_code": None,
            },
            {
                "intent_id": "i2",
                "strategy_id": "SWING_ML",
                "intent_type": "EXIT",
                "status": "REJECTED",
                "reason_code": "X",
            },
        ]
    )
    orders = pd.DataFrame(
        [{"order_id": "o1", "intent_id": "i1", "strategy_id": "SWING_ML", "state": "CANCELLED", "reason": "EXPIRED"}]
    )
    f = build_funnel("SWING_ML", None, intents, orders, empty("fills"), KST)
    assert f.stages["intents"] == 1 and f.stages["accepted"] == 1 and f.stages["filled"] == 0
    assert f.sentence == "SWING_ML: 1 intent; 1 accepted; 0 filled: order CANCELLED EXPIRED ×1 (no decision log)"


def test_a_log_that_misses_what_the_database_holds_is_not_blamed() -> None:
    intents = pd.DataFrame(
        [{"intent_id": "i1", "strategy_id": "KMP", "intent_type": "ENTER", "status": "EXECUTED", "reason_code": None}]
    )
    orders = pd.DataFrame(
        [{"order_id": "o1", "intent_id": "i1", "strategy_id": "KMP", "state": "FILLED", "reason": None}]
    )
    fills = pd.DataFrame([{"execution_id": "e1", "order_id": "o1", "strategy_id": "KMP"}])
    f = build_funnel("KMP", [], intents, orders, fills, KST)
    assert f.traded
    assert f.sentence == "KMP: 0 candidates → 0 passed the gates → 0 signals → 1 intent → 1 accepted → 1 filled"


def test_a_shared_log_is_split_by_logger(tmp_path: Path) -> None:
    (tmp_path / "oms.log").write_text("2026-12-05 INFO oms.app: started\n")
    (tmp_path / "backtest.log").write_text(
        "\n".join([line("KMP_SCAN", candidates="[]"), line("KPR_X", "005930").replace("strategy.KMP", "strategy.KPR")])
        + "\n"
    )
    path, logger = find_log(tmp_path, "KMP") or (None, None)
    assert path == tmp_path / "backtest.log" and logger == "strategy.KMP"
    assert [d.code for d in parse_decisions(path, logger)] == ["KMP_SCAN"]
    assert find_log(tmp_path, "PCIM") is None
    (tmp_path / "kmp.log").write_text(line("KMP_REGIME") + "\n")
    assert find_log(tmp_path, "KMP") == (tmp_path / "kmp.log", None)


def test_swing_ml_without_a_promoted_model_says_so(tmp_path: Path) -> None:
    path = tmp_path / "swing_ml.log"
    lines = [line("SWING_RETRAIN", why="bootstrap"), line("SWING_MODEL_NOT_PROMOTED", version="v1")]
    lines += [line("SWING_NO_MODEL", seconds=900 * i, job="decide") for i in range(3)]
    path.write_text("\n".join(lines) + "\n")
    f = build_funnel("SWING_ML", parse_decisions(path), empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.stages["candidates"] == 0 and not f.traded
    assert f.sentence == "SWING_ML: 0 candidates: SWING_NO_MODEL ×3, SWING_MODEL_NOT_PROMOTED ×1"


def test_nulrimok_selection_drops_and_entry_gates_make_its_funnel(tmp_path: Path) -> None:
    path = tmp_path / "nulrimok.log"
    lines = [line("NULRIMOK_DROP_FLOW", f"00{i:04d}") for i in range(5)]
    lines += [line("NULRIMOK_DROP_LEADER", "000660"), line("NULRIMOK_TRADABLE", "005930")]
    lines += [line("NULRIMOK_G_SECTOR_RISK", "005930", 1800 + i) for i in range(2)]
    path.write_text("\n".join(lines) + "\n")
    f = build_funnel("NULRIMOK", parse_decisions(path), empty("intents"), empty("orders"), empty("fills"), KST)
    assert f.stages["candidates"] == 7 and f.stages["gates_passed"] == 0
    assert f.sentence == (
        "NULRIMOK: 7 candidates; 0 passed the gates: "
        "NULRIMOK_DROP_FLOW ×5, NULRIMOK_G_SECTOR_RISK ×2, NULRIMOK_DROP_LEADER ×1"
    )
