"""The Daily Selection Engine (N3–N13): universe and event filters, sectors, ranks, buckets, the artifact."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from strategies.nulrimok.config import NulrimokParams
from strategies.nulrimok.lrs.files import load_inputs
from strategies.nulrimok.selection import (
    SelectionInputs,
    bucket_of,
    next_weekdays,
    rank_weight,
    sector_scores,
    select,
)
from tests.unit.nulrimok._helpers import D3, D4, P, features


def _universe() -> dict:
    out = {}
    for i in range(10):
        sym = f"A{i}"
        out[sym] = features(sym, r20=0.01 * i, r60=0.02 * i, persistence=0.7, intensity_raw=0.01 * i, accel_raw=1e7 * i)
    return out


def _select(feats: dict, p: NulrimokParams = P, **kw: object):  # noqa: ANN202
    return select(SelectionInputs(session=D4, asof=D3, features=feats, index_closes=[], **kw), p)


def test_every_listed_ticker_is_tradable_or_has_its_drop_reason() -> None:
    feats = _universe()
    feats["NODATA"] = features("NODATA", history_ok=False, adv20=None)
    feats["HALT"] = features("HALT", halted=True)
    feats["EARN"] = features("EARN")
    feats["EARN_LATER"] = features("EARN_LATER")
    feats["BLACK"] = features("BLACK")
    sel = select(
        SelectionInputs(
            session=D4,
            asof=D3,
            features=feats,
            index_closes=[],
            earnings={"EARN": [date(2026, 3, 3)], "EARN_LATER": [date(2026, 3, 4)]},  # T=Fri 02-27: Fri, Mon, Tue
            blacklist={"BLACK": "audit opinion"},
        ),
        P,
    )
    reasons = {s: (r.drop_reason.value if r.drop_reason else "TRADABLE") for s, r in sel.rows.items()}
    assert reasons["NODATA"] == "NULRIMOK_DROP_NO_DATA"
    assert reasons["HALT"] == "NULRIMOK_DROP_HALTED"
    assert reasons["EARN"] == "NULRIMOK_DROP_EARNINGS"
    assert reasons["EARN_LATER"] != "NULRIMOK_DROP_EARNINGS"
    assert reasons["BLACK"] == "NULRIMOK_DROP_BLACKLIST"
    assert all((r.tradable and r.drop_reason is None) or (not r.tradable and r.drop_reason) for r in sel.rows.values())
    assert set(sel.tradable) == {s for s, v in reasons.items() if v == "TRADABLE"}
    counts = sel.counts()
    assert counts["listing"] == 15 and counts["tradable"] == len(sel.tradable)
    doc = json.loads(json.dumps(sel.to_json(), default=str))
    assert {t["symbol"] for t in doc["tickers"]} == set(feats)
    assert doc["regime"]["skipped"] == ["fx"] and doc["regime"]["missing"] == ["price", "vol"]  # no index, no fx


def test_absent_optional_files_skip_their_rules() -> None:
    feats = _universe()
    sel = _select(feats, skipped_rules={"earnings": "no file"})
    assert all(r.earnings is None and r.blacklisted is None for r in sel.rows.values())
    assert sel.skipped_rules == {"earnings": "no file"}


def test_top_n_by_adv_forms_the_universe() -> None:
    feats = {f"U{i}": features(f"U{i}", adv20=1e9 * (i + 1)) for i in range(6)}
    sel = _select(feats, NulrimokParams(universe_top_n=4))
    dropped = sorted(s for s, r in sel.rows.items() if r.drop_reason and r.drop_reason.value == "NULRIMOK_DROP_ADV")
    assert dropped == ["U0", "U1"] and sel.rows["U5"].adv_rank == 1


def test_tier_c_ranks_but_trades_nothing() -> None:
    sel = _select(_universe())  # no index (price, vol false) and no fx (skipped): 0.30 / 0.80 → C
    assert sel.regime.score == 0.375 and sel.regime.tier == "C" and sel.tradable == []
    ranked = [r for r in sel.rows.values() if r.daily_rank is not None]
    assert ranked and all(r.drop_reason.value == "NULRIMOK_DROP_TIER_C" for r in ranked)


def test_sector_scores_rank_weights_and_baskets() -> None:
    assert [rank_weight(i, P) for i in (1, 2, 3, 4, 9)] == [1.0, 0.8, 0.6, 0.3, 0.3]
    from strategies.nulrimok.selection import TickerRow

    rows = []
    for sec, above, pers in (("X", True, 0.9), ("Y", False, 0.1), ("Z", True, 0.1), ("W", False, 0.9)):
        for i in range(20):
            f = features(f"{sec}{i}", sector=sec, above_sma20=above, persistence=pers, adv20=1e9 * (i + 1))
            rows.append(TickerRow(symbol=f.symbol, sector=sec, f=f))
    scores = sector_scores(rows, P)
    assert len(scores["X"].basket) == 15 and scores["X"].basket[0] == "X19"  # the 15 most liquid
    assert scores["X"].rank == 1 and scores["X"].weight == 1.0
    assert scores["Y"].rank == 4 and scores["Y"].weight == 0.3
    assert scores["X"].breadth == 1.0 and scores["X"].participation == 1.0


def test_conviction_buckets() -> None:
    assert [bucket_of(x, P) for x in (0.8, 0.79, 0.5, 0.2, 0.19)] == [
        ("TOP", 1.5),
        ("MID", 1.0),
        ("MID", 1.0),
        ("LOW", 0.7),
        ("SKIP", 0.0),
    ]
    assert next_weekdays(D4, 3) == [D4, date(2026, 3, 2), date(2026, 3, 3)]


def test_optional_files_are_read_or_reported(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("symbol,date\n005930,2026-03-03\n# comment\n000660,2026-04-01\n")
    (tmp_path / "b.csv").write_text("symbol,reason\n123456,audit\n")
    (tmp_path / "fx.csv").write_text("date,close\n2026-02-20,1400\n2026-02-26,1432.5\nbad,row\n")
    got = load_inputs(tmp_path / "e.csv", tmp_path / "b.csv", tmp_path / "fx.csv")
    assert got.earnings == {"005930": [date(2026, 3, 3)], "000660": [date(2026, 4, 1)]}
    assert got.blacklist == {"123456": "audit"} and got.fx_closes(D3) == [1400.0, 1432.5]
    assert got.skipped == {} and len(got.problems) == 1
    none = load_inputs(tmp_path / "x.csv", tmp_path / "y.csv", tmp_path / "z.csv")
    assert none.earnings is None and none.blacklist is None and none.fx is None
    assert set(none.skipped) == {"earnings", "blacklist", "krw_usd"}
