from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from broker_core.clock import KST
from broker_core.models import Side
from oms.core.ledger import AllocationShortfall, Ledger, LedgerError
from oms.core.types import UNKNOWN_STRATEGY, AllocationRecord, FillRecord, PositionRecord

T0 = datetime(2026, 2, 27, 9, 30, tzinfo=KST)
DAY1 = date(2026, 2, 27)
_n = 0


def fill(side, qty, price, strategy="KMP", symbol="005930", ts=T0, commission=0.0, tax=0.0) -> FillRecord:
    global _n
    _n += 1
    return FillRecord(
        execution_id=f"x{_n}",
        order_id=f"o{_n}",
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        ts=ts,
        commission=commission,
        tax=tax,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_fills_of_two_strategies_sum_to_real_position():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 60, 10_000.0, "KMP"), T0)
    lg.apply_fill(fill("BUY", 40, 10_050.0, "KMP"), T0)
    ch = lg.apply_fill(fill("BUY", 50, 10_200.0, "KPR"), T0)
    assert ch.position.real_qty == 150
    assert ch.position.avg_price == pytest.approx((60 * 10_000 + 40 * 10_050 + 50 * 10_200) / 150)
    kmp = lg.allocation("005930", "KMP")
    assert kmp.qty == 100 and kmp.cost_basis == pytest.approx(10_020.0)
    assert kmp.entry_ts == T0
    assert lg.allocation("005930", "KPR").qty == 50
    assert sum(a.qty for a in lg.allocations_in("005930").values()) == lg.position("005930").real_qty
    assert lg.check_invariants() == []
    assert lg.holders("005930") == {"KMP", "KPR"}
    # A sell by one strategy leaves the other's allocation intact.
    lg.apply_fill(fill("SELL", 30, 10_300.0, "KPR"), T0)
    assert lg.allocation("005930", "KMP").qty == 100
    assert lg.allocation("005930", "KPR").qty == 20
    assert lg.position("005930").real_qty == 120
    assert lg.check_invariants() == []


def test_round_trip_pnl_with_fees_and_trade_with_r_multiple():
    lg = Ledger()
    assert (
        lg.set_risk_meta("005930", "KMP", entry_px=10_000.0, initial_stop_px=9_500.0, soft_stop_px=9_600.0, now=T0)
        is None
    )  # pending until the first fill
    buy = lg.apply_fill(fill("BUY", 100, 10_000.0, commission=150.0), T0)
    assert buy.realized_pnl == -150.0 and buy.trade is None
    assert buy.allocation.initial_stop_px == 9_500.0 and buy.allocation.soft_stop_px == 9_600.0
    assert buy.allocation.cost_basis == 10_000.0  # fees not capitalised
    sell = lg.apply_fill(
        fill("SELL", 100, 10_500.0, ts=at(30), commission=157.5, tax=1_890.0), at(30), exit_reason="TARGET"
    )
    assert sell.realized_pnl == pytest.approx(50_000 - 157.5 - 1_890)
    assert lg.realized_pnl("KMP") == pytest.approx(50_000 - 150 - 157.5 - 1_890)
    t = sell.trade
    assert (t.strategy_id, t.symbol, t.qty, t.entry_ts, t.exit_ts) == ("KMP", "005930", 100, T0, at(30))
    assert (t.entry_px, t.exit_px, t.exit_reason) == (10_000.0, 10_500.0, "TARGET")
    assert t.pnl == pytest.approx(lg.realized_pnl("KMP"))  # round-trip pnl includes the entry fees
    assert t.r_multiple == pytest.approx(1.0)
    assert t.trade_id.startswith("tr_")
    # Flat: allocation record returned with qty 0 for the store, then dropped from memory.
    assert sell.allocation.qty == 0 and sell.position.real_qty == 0
    assert lg.allocation("005930", "KMP") is None
    assert lg.position("005930") is None and lg.positions() == {}
    assert lg.check_invariants() == []


def test_losing_trade_r_multiple():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 10, 20_000.0), T0)
    lg.set_risk_meta("005930", "KMP", initial_stop_px=19_000.0, now=T0)
    ch = lg.apply_fill(fill("SELL", 10, 18_500.0), T0, exit_reason="STOP")
    assert ch.trade.r_multiple == pytest.approx(-1.5)


def test_r_multiple_none_without_valid_stop():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 10, 20_000.0), T0)
    assert lg.apply_fill(fill("SELL", 5, 21_000.0), T0).trade.r_multiple is None
    lg.set_risk_meta("005930", "KMP", initial_stop_px=20_500.0, now=T0)  # stop above entry: no R
    assert lg.apply_fill(fill("SELL", 5, 21_000.0), T0).trade.r_multiple is None


def test_partial_exits_emit_a_trade_each_with_same_entry_info():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, commission=100.0), T0)
    lg.set_risk_meta("005930", "KMP", initial_stop_px=9_000.0, now=T0)
    c1 = lg.apply_fill(fill("SELL", 40, 11_000.0, ts=at(10), commission=40.0), at(10), exit_reason="PARTIAL")
    c2 = lg.apply_fill(fill("SELL", 60, 12_000.0, ts=at(20), commission=60.0), at(20), exit_reason="TRAIL")
    assert c1.allocation.qty == 60 and c2.allocation.qty == 0
    t1, t2 = c1.trade, c2.trade
    assert (t1.qty, t2.qty) == (40, 60)
    assert t1.entry_ts == t2.entry_ts == T0 and t1.entry_px == t2.entry_px == 10_000.0
    assert t1.pnl == pytest.approx(40 * 1_000 - 40 - 40)  # own sell fees + 40% of the entry fees
    assert t2.pnl == pytest.approx(60 * 2_000 - 60 - 60)
    assert (t1.r_multiple, t2.r_multiple) == (pytest.approx(1.0), pytest.approx(2.0))
    assert t1.pnl + t2.pnl == pytest.approx(lg.realized_pnl("KMP"))
    assert t1.trade_id != t2.trade_id


def test_cost_basis_unchanged_by_partial_sell_and_avg_up():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0), T0)
    lg.apply_fill(fill("SELL", 50, 12_000.0), T0)
    assert lg.allocation("005930", "KMP").cost_basis == 10_000.0
    lg.apply_fill(fill("BUY", 50, 11_000.0), T0)
    assert lg.allocation("005930", "KMP").cost_basis == pytest.approx(10_500.0)


def test_sell_larger_than_allocation_is_an_error_and_changes_nothing():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KPR"), T0)
    before = lg.records(), lg.realized_pnl()
    with pytest.raises(AllocationShortfall, match="KMP sells 150 005930 but its allocation is 100"):
        lg.apply_fill(fill("SELL", 150, 10_000.0, "KMP"), T0)  # the real position (200) would allow it
    with pytest.raises(AllocationShortfall):
        lg.apply_fill(fill("SELL", 1, 10_000.0, "PCIM"), T0)
    assert (lg.records(), lg.realized_pnl()) == before
    assert lg.check_invariants() == []


@pytest.mark.parametrize("bad", [dict(qty=0), dict(qty=-1), dict(price=0.0), dict(side="SHORT")])
def test_bad_fills_rejected(bad):
    f = replace(fill("BUY", 1, 1.0), **bad)
    with pytest.raises(LedgerError):
        Ledger().apply_fill(f, T0)


def test_ledger_errors_are_value_errors():
    assert issubclass(LedgerError, ValueError) and issubclass(AllocationShortfall, LedgerError)


def test_side_enum_accepted():
    lg = Ledger()
    lg.apply_fill(fill(Side.BUY, 10, 1_000.0), T0)
    lg.apply_fill(fill(Side.SELL, 10, 1_100.0), T0)
    assert lg.realized_pnl() == pytest.approx(1_000.0)


def test_realized_pnl_per_strategy_and_per_day():
    lg = Ledger()
    day2 = T0 + timedelta(days=4)
    lg.apply_fill(fill("BUY", 10, 1_000.0, "KMP"), T0)
    lg.apply_fill(fill("SELL", 10, 1_100.0, "KMP"), T0)
    lg.apply_fill(fill("BUY", 10, 1_000.0, "KPR"), T0)
    lg.apply_fill(fill("SELL", 10, 900.0, "KPR", ts=day2), day2)
    assert lg.realized_pnl("KMP") == 1_000.0 and lg.realized_pnl("KPR") == -1_000.0
    assert lg.realized_pnl() == 0.0
    assert lg.realized_pnl(trading_day=DAY1) == 1_000.0
    assert lg.realized_pnl("KPR", trading_day=day2.date()) == -1_000.0
    assert lg.daily_realized(DAY1) == {"KMP": 1_000.0, "KPR": 0.0}
    assert lg.realized_pnl("NOBODY") == 0.0


def test_trading_day_is_kst_date():
    lg = Ledger()
    # 00:30 KST on the 27th is still the 26th in UTC: the KST date counts.
    early = datetime(2026, 2, 27, 0, 30, tzinfo=KST).astimezone(UTC)
    assert early.date() == date(2026, 2, 26)
    assert lg.trading_day_of(early) == date(2026, 2, 27)


def test_set_risk_meta_updates_only_given_fields():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 10, 1_000.0), T0)
    stop_ts = at(300)
    a = lg.set_risk_meta(
        "005930",
        "KMP",
        entry_px=1_000.0,
        initial_stop_px=950.0,
        soft_stop_px=960.0,
        hard_stop_px=940.0,
        time_stop_ts=stop_ts,
        now=at(1),
    )
    assert (a.entry_px, a.initial_stop_px, a.soft_stop_px, a.hard_stop_px, a.time_stop_ts) == (
        1_000.0,
        950.0,
        960.0,
        940.0,
        stop_ts,
    )
    a = lg.set_risk_meta("005930", "KMP", soft_stop_px=990.0, now=at(2))
    assert a.soft_stop_px == 990.0 and a.initial_stop_px == 950.0 and a.updated_at == at(2)


def test_pending_meta_can_be_cleared():
    lg = Ledger()
    lg.set_risk_meta("005930", "KMP", initial_stop_px=950.0, now=T0)
    lg.clear_pending_meta("005930", "KMP")
    assert lg.apply_fill(fill("BUY", 10, 1_000.0), T0).allocation.initial_stop_px is None


def test_meta_does_not_survive_a_closed_round_trip():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 10, 1_000.0), T0)
    lg.set_risk_meta("005930", "KMP", initial_stop_px=950.0, now=T0)
    lg.apply_fill(fill("SELL", 10, 1_000.0), T0)
    a = lg.apply_fill(fill("BUY", 10, 1_000.0, ts=at(5)), at(5)).allocation
    assert a.initial_stop_px is None and a.entry_ts == at(5)


def test_returned_records_are_copies():
    lg = Ledger()
    ch = lg.apply_fill(fill("BUY", 10, 1_000.0), T0)
    ch.allocation.qty = 999
    ch.position.real_qty = 999
    lg.allocation("005930", "KMP").qty = 555
    assert lg.allocation("005930", "KMP").qty == 10
    assert lg.position("005930").real_qty == 10


# -- unknown shares / corrections ------------------------------------------------------------------


def test_assign_unknown_adjusts_real_position():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0), T0)
    ch = lg.assign_unknown("005930", 20, 9_000.0, at(1))
    assert ch.allocation.strategy_id == UNKNOWN_STRATEGY and ch.allocation.qty == 20
    assert ch.position.real_qty == 120 and ch.realized_pnl == 0.0 and ch.trade is None
    assert lg.allocations_of(UNKNOWN_STRATEGY) == {"005930": lg.allocation("005930", UNKNOWN_STRATEGY)}
    assert lg.check_invariants() == []
    ch = lg.assign_unknown("000660", 5, 100_000.0, at(1))  # a symbol the ledger never saw
    assert ch.position.real_qty == 5
    with pytest.raises(LedgerError):
        lg.assign_unknown("000660", 0, 1.0, at(1))


def test_correct_allocation_moves_unknown_to_strategy():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.assign_unknown("005930", 50, 10_300.0, at(1))
    src, dst = lg.correct_allocation("005930", UNKNOWN_STRATEGY, "KMP", 50, at(2))
    assert src.strategy_id == UNKNOWN_STRATEGY and src.qty == 0
    assert dst.strategy_id == "KMP" and dst.qty == 150
    assert dst.cost_basis == pytest.approx((100 * 10_000 + 50 * 10_300) / 150)
    assert lg.position("005930").real_qty == 150
    assert lg.allocation("005930", UNKNOWN_STRATEGY) is None
    assert lg.check_invariants() == []


def test_correct_allocation_partial_move_to_new_strategy_keeps_entry_ts():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    src, dst = lg.correct_allocation("005930", "KMP", "KPR", 30, at(5))
    assert (src.qty, dst.qty, dst.cost_basis, dst.entry_ts) == (70, 30, 10_000.0, T0)
    assert lg.position("005930").real_qty == 100


def test_correct_allocation_errors_change_nothing():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    before = lg.records()
    with pytest.raises(AllocationShortfall):
        lg.correct_allocation("005930", UNKNOWN_STRATEGY, "KMP", 1, T0)
    with pytest.raises(AllocationShortfall):
        lg.correct_allocation("005930", "KMP", "KPR", 101, T0)
    with pytest.raises(LedgerError):
        lg.correct_allocation("005930", "KMP", "KMP", 1, T0)
    with pytest.raises(LedgerError):
        lg.correct_allocation("005930", "KMP", "KPR", 0, T0)
    with pytest.raises(LedgerError, match="needs broker_qty"):
        lg.correct_allocation("005930", "KMP", None, 10, T0)
    with pytest.raises(LedgerError, match="refusing"):
        lg.correct_allocation("005930", "KMP", None, 10, T0, broker_qty=100)
    assert lg.records() == before


def test_write_off_when_broker_agrees():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.assign_unknown("005930", 10, 10_000.0, T0)
    [src] = lg.correct_allocation("005930", UNKNOWN_STRATEGY, None, 10, at(1), broker_qty=100)
    assert src.qty == 0
    assert lg.position("005930").real_qty == 100
    assert lg.realized_pnl() == 0.0
    assert lg.check_invariants() == []


def test_remove_deficit_takes_unknown_first_then_reports():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.assign_unknown("005930", 10, 10_000.0, T0)
    r = lg.remove_deficit("005930", 25, at(1))
    assert (r.removed, r.unresolved) == (10, 15)
    assert r.allocations[0].strategy_id == UNKNOWN_STRATEGY and r.allocations[0].qty == 0
    assert r.position.real_qty == 100
    assert lg.allocation("005930", "KMP").qty == 100  # strategies untouched
    assert list(r) == [r.position, r.allocations[0]]
    r = lg.remove_deficit("005930", 5, at(2))
    assert (r.removed, r.unresolved, r.allocations, r.position, list(r)) == (0, 5, [], None, [])
    assert lg.check_invariants() == []


def test_remove_deficit_partial_unknown():
    lg = Ledger()
    lg.assign_unknown("005930", 10, 10_000.0, T0)
    r = lg.remove_deficit("005930", 4, at(1))
    assert (r.removed, r.unresolved, r.position.real_qty) == (4, 0, 6)


# -- freezing, invariants, persistence -------------------------------------------------------------


def test_frozen_flat_position_is_kept_until_unfrozen():
    lg = Ledger()
    p = lg.set_frozen("005930", True, "UNKNOWN_EXCESS", T0)
    assert p.frozen and p.freeze_reason == "UNKNOWN_EXCESS" and p.real_qty == 0
    assert "005930" in lg.positions()
    lg.apply_fill(fill("BUY", 10, 1_000.0), T0)
    lg.apply_fill(fill("SELL", 10, 1_000.0), T0)
    assert lg.position("005930").frozen
    p = lg.set_frozen("005930", False, None, at(1))
    assert not p.frozen and p.freeze_reason is None
    assert lg.positions() == {}


def test_check_invariants_reports_mismatch():
    lg = Ledger()
    problems = lg.load(
        [PositionRecord("005930", 120, 10_000.0, T0), PositionRecord("000660", 5, 1.0, T0)],
        [AllocationRecord("005930", "KMP", 100, 10_000.0, T0), AllocationRecord("035720", "KPR", -3, 1.0, T0)],
    )
    text = " | ".join(problems)
    assert "005930: allocations sum to 100 but real qty is 120" in text
    assert "000660: allocations sum to 0 but real qty is 5" in text
    assert "035720" in text and "not positive" in text
    assert lg.check_invariants() == problems


def test_records_and_load_round_trip():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.apply_fill(fill("BUY", 50, 70_000.0, "KPR", symbol="000660"), T0)
    lg.set_risk_meta("005930", "KMP", initial_stop_px=9_500.0, time_stop_ts=at(60), now=T0)
    lg.assign_unknown("005930", 5, 10_000.0, T0)
    lg.set_frozen("005930", True, "UNKNOWN_EXCESS", T0)
    rows = lg.records()
    positions = [r for r in rows if isinstance(r, PositionRecord)]
    allocations = [r for r in rows if isinstance(r, AllocationRecord)]
    assert [p.symbol for p in positions] == ["000660", "005930"]
    assert len(allocations) == 3
    # Flat rows as the store may hold them are ignored on load.
    stale = [AllocationRecord("035720", "KMP", 0, 0.0, T0)]
    stale_pos = [PositionRecord("035720", 0, 0.0, T0)]
    fresh = Ledger()
    assert fresh.load(positions + stale_pos, allocations + stale, realized={"KMP": 1_234.0}, trading_day=DAY1) == []
    assert fresh.records() == rows
    assert fresh.position("005930").frozen
    assert fresh.allocation("005930", "KMP").initial_stop_px == 9_500.0
    assert fresh.realized_pnl("KMP") == 1_234.0 and fresh.realized_pnl("KMP", DAY1) == 1_234.0
    # Loaded state keeps working.
    ch = fresh.apply_fill(fill("SELL", 100, 10_500.0, "KMP"), T0)
    assert ch.trade.r_multiple == pytest.approx(1.0) and ch.position.real_qty == 5


def test_load_replaces_previous_state():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0), T0)
    lg.load([], [])
    assert lg.records() == [] and lg.realized_pnl() == 0.0


def test_real_qty_and_strategy_notional():
    lg = Ledger()
    lg.apply_fill(fill("BUY", 100, 10_000.0, "KMP"), T0)
    lg.apply_fill(fill("BUY", 10, 70_000.0, "KMP", symbol="000660"), T0)
    lg.apply_fill(fill("BUY", 10, 10_000.0, "KPR"), T0)
    assert lg.real_qty() == {"000660": 10, "005930": 110}
    assert lg.strategy_notional() == {"KMP": 1_700_000.0, "KPR": 100_000.0}
    assert lg.strategy_notional({"005930": 11_000.0})["KMP"] == 1_800_000.0
    assert set(lg.allocations_of("KMP")) == {"000660", "005930"}
