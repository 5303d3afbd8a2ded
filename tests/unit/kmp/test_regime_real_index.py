"""KMP's K4 regime fed with the paper exchange's derived KOSPI/KOSDAQ of real sessions (real KRX data:
fails, never skips): the index inputs make the regime non-neutral — risk_off on a real sell-off morning,
a computed chop test on a quiet one."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from broker_core.clock import KST
from broker_core.paper.data import KrxData
from broker_core.paper.index import INDEX_CODES, DerivedIndex
from strategies.kmp.decisions import ReasonCode
from strategies.kmp.engine import KmpEngine
from tests.unit.kmp._helpers import cache


@pytest.fixture(scope="module")
def index() -> DerivedIndex:
    return DerivedIndex(KrxData())


def _regime_at(index: DerivedIndex, day: date, t: time) -> dict:
    """The KMP_REGIME fields after feeding the index as the wiring does (quote + KOSPI 1m closes)."""
    now = datetime.combine(day, t, KST)
    eng = KmpEngine()
    eng.premarket(datetime.combine(day, time(8, 50), KST), [cache("A")])
    for code in INDEX_CODES:
        path = index.path(code, day)
        assert path is not None
        q = path.quote(now)
        closes = [b.close for b in path.bars(datetime.combine(day, time(9, 0), KST), now, now)]
        eng.on_index(now, code, q.last, q.prev_close, closes if code == "KOSPI" else None)
    (d,) = [d for d in eng.on_clock(now).decisions if d.code is ReasonCode.KMP_REGIME]
    return d.fields


def test_a_real_sell_off_morning_is_risk_off(index: DerivedIndex) -> None:
    # 2025-11-21: KOSPI closed −3.8%, KOSDAQ −3.1%; both derived paths are below −1.5% from the open
    r = _regime_at(index, date(2025, 11, 21), time(9, 20))
    assert r["index_missing"] == [] and r["risk_off"] and not r["regime_ok"]
    assert r["kospi_chg"] <= -0.015 and r["kosdaq_chg"] <= -0.015


def test_a_quiet_morning_has_live_index_inputs(index: DerivedIndex) -> None:
    r = _regime_at(index, date(2026, 2, 27), time(9, 30))
    assert r["index_missing"] == [] and not r["risk_off"]
    assert r["kospi_chg"] is not None and r["kosdaq_chg"] is not None
    assert r["efficiency_ratio"] is not None  # the chop test ran on 20 derived KOSPI minutes
    assert r["chop"] == (r["efficiency_ratio"] < 0.25)
