"""S4 sizing, S6 exit levels and peak since entry, S7 held days, S8 key and gate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import pandas as pd
import pytest

from broker_core.clock import NEW_YORK
from strategies.swing_ml.config import RiskParams, SizingParams
from strategies.swing_ml.reasons import Reason
from strategies.swing_ml.risk import check_exit, exit_gate, exit_key, held_trading_days, peak_since_entry
from strategies.swing_ml.sizing import kelly, marketable_limit, size_buy
from strategies.swing_ml.strategy import retrain_slot


def test_trailing_stop_arms_at_plus_two_percent():
    p = RiskParams()
    assert check_exit(100.0, 100.4, p, peak=101.9).levels.trail is None  # not armed
    armed = check_exit(100.0, 100.5, p, peak=102.0)
    assert armed.levels.trail == pytest.approx(102 * 0.985) and armed.reason is None  # 100.5 > 100.47
    assert check_exit(100.0, 100.47, p, peak=102.0).reason is Reason.SWING_TRAIL
    assert check_exit(100.0, 100.0, p, peak=101.99).reason is None  # never armed
    assert check_exit(100.0, 104.5, p, peak=107.0).reason is Reason.SWING_TRAIL  # 104.5 ≤ 105.395, before TP
    atr = RiskParams(atr_dynamic=True)
    assert check_exit(100.0, 101.5, atr, peak=103.0, atr14=1.0).reason is Reason.SWING_TRAIL  # 103 − 1.5
    assert check_exit(100.0, 102.5, atr, peak=103.0, atr14=2.0).reason is None  # TP 105, trail 100, stop 97
    assert check_exit(100.0, 105.0, atr, peak=105.0, atr14=2.0).reason is Reason.SWING_TAKE_PROFIT


def test_peak_since_entry_from_daily_bars():
    entry = datetime(2024, 12, 2, 10, 30, tzinfo=NEW_YORK)
    bars = pd.DataFrame(
        {"high": [130.0, 120.0, 110.0, 108.0], "close": [101.0, 104.0, 105.0, 107.0]},
        index=pd.to_datetime(["2024-11-29", "2024-12-02", "2024-12-03", "2024-12-04"]),
    )
    # Nov 29 before the entry; Dec 2 (entry day) counts its close only; later days their high
    assert peak_since_entry(entry, 100.0, bars) == 110.0
    assert peak_since_entry(entry, 100.0, bars.iloc[:2]) == 104.0
    assert peak_since_entry(entry, 100.0, bars.iloc[:2], last=106.0) == 106.0
    assert peak_since_entry(entry, 100.0, None) == 100.0
    minute = pd.DataFrame(
        {"high": [150.0, 102.0], "close": [100.5, 101.0]},
        index=pd.DatetimeIndex(
            [
                datetime(2024, 12, 2, 10, 30, tzinfo=NEW_YORK) - timedelta(seconds=30),
                datetime(2024, 12, 2, 10, 31, tzinfo=NEW_YORK),
            ]
        ),
    )
    assert peak_since_entry(entry, 100.0, minute, interval=timedelta(minutes=1)) == 102.0


def test_held_trading_days():
    entry = datetime(2024, 12, 20, 15, 0, tzinfo=NEW_YORK)
    assert held_trading_days(entry, datetime(2024, 12, 20, 15, 30, tzinfo=NEW_YORK)) == 0
    assert held_trading_days(entry, datetime(2024, 12, 23, 10, 0, tzinfo=NEW_YORK)) == 1
    assert held_trading_days(entry, datetime(2024, 12, 27, 10, 0, tzinfo=NEW_YORK)) == 4  # 23, 24, 26, 27
    # an entry_ts in UTC is read as a New York date
    assert (
        held_trading_days(datetime(2024, 12, 21, 1, 0, tzinfo=UTC), datetime(2024, 12, 23, 10, 0, tzinfo=NEW_YORK)) == 1
    )
    assert held_trading_days(entry, datetime(2024, 12, 27, tzinfo=NEW_YORK), [date(2024, 12, 27)]) == 1


def test_exit_key_and_gate():
    entry = datetime(2024, 12, 2, 10, 30, tzinfo=NEW_YORK)
    assert exit_key("AAPL", entry) == "SWING_ML:AAPL:EXIT:2024-12-02T15:30:00Z"
    assert exit_key("AAPL", entry.astimezone(UTC)) == exit_key("AAPL", entry)
    assert exit_key("AAPL", "2024-12-02T15:30:00Z") == "SWING_ML:AAPL:EXIT:2024-12-02T15:30:00Z"
    with pytest.raises(ValueError):
        exit_key("AAPL", datetime(2024, 12, 2, 10, 30))
    assert exit_gate(10, False).submit
    assert exit_gate(10, True).reason is Reason.DUPLICATE_SUPPRESSED
    assert exit_gate(0, False).reason is Reason.DUPLICATE_SUPPRESSED


def test_sizing():
    assert kelly(0.5, 1.6) == pytest.approx(0.5 - 0.5 / 1.6)
    s = size_buy(0.55, 100_000.0, 200.40, SizingParams(), RiskParams())
    assert s.capped and s.fraction == 0.10 and s.qty == 49  # floor(10_000 / 200.40)
    small = size_buy(0.45, 100_000.0, 200.0, SizingParams(), RiskParams())  # f* = 0.45 − 0.55/1.6 = 0.10625
    assert not small.capped and small.fraction == pytest.approx(0.053125) and small.qty == 26
    none = size_buy(0.38, 100_000.0, 200.0, SizingParams(), RiskParams())  # f* < 0
    assert none.qty == 0 and none.reason is Reason.SWING_SKIP_KELLY
    assert size_buy(0.6, 1_000.0, 200.0, SizingParams(), RiskParams()).reason is Reason.SWING_SKIP_KELLY  # < 1 share
    atr = RiskParams(atr_dynamic=True)
    assert size_buy(0.55, 1e5, 100.0, SizingParams(), atr).b == pytest.approx(2.5 / 1.5)


def test_marketable_limit():
    assert marketable_limit(200.0, True) == 200.40
    assert marketable_limit(200.0, False) == 199.60
    assert marketable_limit(100.01, True) == 100.22  # round_up(100.21002)
    assert marketable_limit(5.0, False) == 4.99


def test_the_weekly_retrain_slot_is_the_last_sunday_noon_so_a_fire_held_over_a_weekend_still_retrains() -> None:
    sunday_noon = datetime(2024, 11, 17, 12, 0, tzinfo=NEW_YORK)
    assert retrain_slot(sunday_noon, 6, dtime(12)) == sunday_noon
    assert retrain_slot(datetime(2024, 11, 18, 9, 25, tzinfo=NEW_YORK), 6, dtime(12)) == sunday_noon  # at the jump
    assert retrain_slot(datetime(2024, 11, 17, 11, 59, tzinfo=NEW_YORK), 6, dtime(12)) == datetime(
        2024, 11, 10, 12, 0, tzinfo=NEW_YORK
    )
    assert retrain_slot(datetime(2024, 11, 23, 23, 0, tzinfo=NEW_YORK), 6, dtime(12)) == sunday_noon
