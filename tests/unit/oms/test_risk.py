import copy
from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError

from broker_core.clock import KST
from broker_core.contract.reasons import RISK_REASONS, ReasonCode
from oms.core.risk import (
    DailyLossLatch,
    LossLevel,
    MarketView,
    PortfolioView,
    RiskAction,
    RiskDecision,
    RiskLimits,
    TradingFlags,
    daily_loss_level,
    evaluate,
    spread_bps,
)
from oms.core.types import IntentType

NOW = datetime(2026, 2, 27, 10, 0, tzinfo=KST)
EQ = 100_000_000.0


def pf(**kw) -> PortfolioView:
    base = dict(equity=EQ, buyable_cash=EQ, daily_pnl=0.0, start_equity=EQ)
    base.update(kw)
    return PortfolioView(**base)


def mkt(**kw) -> MarketView:
    base = dict(last=10_000.0, bid=9_990.0, ask=10_000.0)
    base.update(kw)
    return MarketView(**base)


def ev(
    intent=IntentType.ENTER,
    qty=100,
    price=10_000.0,
    limit_price=None,
    portfolio=None,
    market=None,
    flags=None,
    limits=None,
    strategy="KMP",
    symbol="005930",
    now=NOW,
    **kw,
) -> RiskDecision:
    return evaluate(
        intent,
        strategy,
        symbol,
        qty,
        price,
        limit_price,
        portfolio or pf(),
        market or mkt(),
        flags or TradingFlags(),
        limits or RiskLimits(),
        now,
        **kw,
    )


def spread_positions(n: int, notional_each: float, prefix="P") -> dict[str, tuple[int, float]]:
    return {f"{prefix}{i}": (int(notional_each // 10_000), 10_000.0) for i in range(n)}


# -- limits ---------------------------------------------------------------------------------


def test_default_limits():
    lim = RiskLimits()
    assert lim.daily_loss_warn_pct == 0.02 and lim.daily_loss_halt_pct == 0.03
    assert lim.flatten_on_halt is False
    assert (lim.max_gross_exposure_pct, lim.max_net_exposure_pct, lim.max_position_pct) == (0.80, 0.60, 0.15)
    assert lim.max_positions == 10 and lim.max_sector_pct == 0.30
    assert lim.max_spread_bps == 50 and lim.vi_cooldown_sec == 600
    assert lim.max_order_notional == 50_000_000 and lim.limit_price_band_pct == 0.05
    assert lim.regime_caps == {"RISK_OFF": 0.3, "NEUTRAL": 0.6, "RISK_ON": 0.8}
    assert lim.strategy_budgets == {}
    assert lim.entry_lock_sec == {"KMP": 90, "KPR": 180, "PCIM": 300, "NULRIMOK": 60}
    assert lim.entry_lock_for("KPR") == 180 and lim.entry_lock_for("SWING_ML") == 60


def test_limits_reject_unknown_keys_and_bad_values():
    with pytest.raises(ValidationError, match="max_gros"):
        RiskLimits(max_gros_exposure_pct=0.5)
    with pytest.raises(ValidationError):
        RiskLimits(daily_loss_warn_pct=0.05, daily_loss_halt_pct=0.03)
    with pytest.raises(ValidationError):
        RiskLimits(strategy_budgets={"KMP": -0.1})
    with pytest.raises(ValidationError):
        RiskLimits(max_positions=0)


def test_limits_instances_do_not_share_dicts():
    a, b = RiskLimits(), RiskLimits()
    a.entry_lock_sec["X"] = 1
    assert "X" not in b.entry_lock_sec


# -- approve / basic --------------------------------------------------------------------------


def test_plain_entry_approved():
    d = ev()
    assert d == RiskDecision(RiskAction.APPROVE, 100, None, "approved")
    assert d.allowed


def test_invalid_qty():
    assert ev(qty=0).reason_code == ReasonCode.INVALID_QTY


def test_evaluate_is_pure_and_deterministic():
    p = pf(
        positions={"A": (100, 10_000.0)},
        working_buy_notional={"B": 1e6},
        sector_of={"A": "S"},
        strategy_notional={"KMP": 1e6},
    )
    m, f, lim = mkt(), TradingFlags(paused_strategies={"X"}), RiskLimits(strategy_budgets={"KMP": 0.3})
    before = copy.deepcopy((p, m, f, lim.model_dump()))
    d1 = ev(portfolio=p, market=m, flags=f, limits=lim, qty=3000)
    d2 = ev(portfolio=p, market=m, flags=f, limits=lim, qty=3000)
    assert d1 == d2
    assert (p, m, f, lim.model_dump()) == before


# -- switches -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags,code",
    [
        (TradingFlags(safe_mode=True), ReasonCode.SAFE_MODE),
        (TradingFlags(halt_new_entries=True), ReasonCode.HALTED),
        (TradingFlags(paused_strategies={"KMP"}), ReasonCode.STRATEGY_PAUSED),
        (TradingFlags(disabled_symbols={"005930"}), ReasonCode.SYMBOL_DISABLED),
        (TradingFlags(frozen_symbols={"005930": "UNKNOWN_EXCESS"}), ReasonCode.SYMBOL_FROZEN),
        (TradingFlags(daily_loss_level=LossLevel.WARN), ReasonCode.DAILY_LOSS_WARN),
        (TradingFlags(daily_loss_level=LossLevel.HALT), ReasonCode.DAILY_LOSS_HALT),
    ],
)
def test_switches_reject_entries(flags, code):
    d = ev(flags=flags)
    assert d.action is RiskAction.REJECT and d.reason_code == code and d.qty == 0
    assert not d.allowed
    assert d.message


def test_switch_order_safe_mode_first():
    flags = TradingFlags(
        safe_mode=True, halt_new_entries=True, paused_strategies={"KMP"}, frozen_symbols={"005930": "x"}
    )
    assert ev(flags=flags).reason_code == ReasonCode.SAFE_MODE


def test_switches_for_other_strategy_or_symbol_do_not_apply():
    flags = TradingFlags(paused_strategies={"KPR"}, disabled_symbols={"000660"}, frozen_symbols={"000660": "x"})
    assert ev(flags=flags).action is RiskAction.APPROVE


def test_set_target_is_checked_like_an_entry():
    assert ev(intent=IntentType.SET_TARGET, flags=TradingFlags(safe_mode=True)).reason_code == ReasonCode.SAFE_MODE


def test_modify_risk_always_approved():
    d = ev(intent=IntentType.MODIFY_RISK, qty=0, flags=TradingFlags(safe_mode=True, halt_new_entries=True))
    assert d.action is RiskAction.APPROVE


# -- exits are never blocked (except exit hold) ----------------------------------------------------

BAD_WORLD = dict(
    portfolio=pf(
        daily_pnl=-10_000_000.0, equity=90_000_000.0, buyable_cash=0.0, positions=spread_positions(12, 20_000_000)
    ),
    market=MarketView(last=None, bid=9_000.0, ask=10_000.0, vi_cooldown_until=NOW + timedelta(minutes=5)),
    flags=TradingFlags(
        safe_mode=True,
        halt_new_entries=True,
        paused_strategies={"KMP"},
        disabled_symbols={"005930"},
        frozen_symbols={"005930": "x"},
        regime="RISK_OFF",
        daily_loss_level=LossLevel.HALT,
    ),
    limits=RiskLimits(max_order_notional=1.0),
)


@pytest.mark.parametrize("intent", [IntentType.EXIT, IntentType.REDUCE, IntentType.FLATTEN, IntentType.CANCEL_ORDERS])
def test_exits_pass_every_block(intent):
    d = ev(intent=intent, qty=1_000_000, price=None, limit_price=1.0, **BAD_WORLD)
    assert d.action is RiskAction.APPROVE and d.qty == 1_000_000 and d.reason_code is None


def test_safe_mode_blocks_entries_only():
    flags = TradingFlags(safe_mode=True)
    assert ev(flags=flags).reason_code == ReasonCode.SAFE_MODE
    assert ev(intent=IntentType.EXIT, flags=flags).action is RiskAction.APPROVE


@pytest.mark.parametrize("intent", [IntentType.EXIT, IntentType.REDUCE, IntentType.FLATTEN, IntentType.CANCEL_ORDERS])
def test_exits_pass_every_switch(intent):
    flags = TradingFlags(
        safe_mode=True,
        halt_new_entries=True,
        paused_strategies={"KMP"},
        disabled_symbols={"005930"},
        frozen_symbols={"005930": "x"},
    )
    assert ev(intent=intent, flags=flags).action is RiskAction.APPROVE


# -- daily loss ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pnl,code",
    [
        (-1_999_999.0, None),
        (-2_000_000.0, ReasonCode.DAILY_LOSS_WARN),
        (-2_999_999.0, ReasonCode.DAILY_LOSS_WARN),
        (-3_000_000.0, ReasonCode.DAILY_LOSS_HALT),
        (-5_000_000.0, ReasonCode.DAILY_LOSS_HALT),
        (+5_000_000.0, None),
    ],
)
def test_daily_loss_levels(pnl, code):
    d = ev(portfolio=pf(daily_pnl=pnl, equity=EQ + pnl))
    assert d.reason_code == code
    if code:
        assert d.action is RiskAction.REJECT


def test_daily_loss_measured_on_start_equity():
    # 2.1M loss on a 100M start, equity now 97.9M → 2.1% → WARN.
    assert ev(portfolio=pf(daily_pnl=-2_100_000.0, equity=97_900_000.0)).reason_code == ReasonCode.DAILY_LOSS_WARN
    assert (
        daily_loss_level(pf(daily_pnl=-2_100_000.0, start_equity=0.0, equity=200_000_000.0), RiskLimits()) is None
    )  # falls back to equity: 1.05%


def test_daily_loss_exits_still_allowed():
    d = ev(intent=IntentType.EXIT, portfolio=pf(daily_pnl=-9_000_000.0))
    assert d.action is RiskAction.APPROVE


def test_latch_keeps_warn_for_the_rest_of_the_day():
    lim = RiskLimits()
    latch = DailyLossLatch()
    day = date(2026, 2, 27)
    assert latch.update(day, pf(daily_pnl=-1_000_000.0), lim) is None
    assert latch.update(day, pf(daily_pnl=-2_500_000.0), lim) is LossLevel.WARN
    # Recovered, but the breach stands for the day.
    assert latch.update(day, pf(daily_pnl=+500_000.0), lim) is LossLevel.WARN
    d = ev(portfolio=pf(daily_pnl=500_000.0), flags=TradingFlags(daily_loss_level=latch.level))
    assert d.reason_code == ReasonCode.DAILY_LOSS_WARN
    # A new day starts clear.
    assert latch.update(date(2026, 3, 3), pf(daily_pnl=0.0), lim) is None


def test_latch_halt_signals_once_and_never_downgrades():
    lim = RiskLimits(flatten_on_halt=True)
    latch = DailyLossLatch()
    day = date(2026, 2, 27)
    latch.update(day, pf(daily_pnl=-3_000_000.0), lim)
    assert latch.level is LossLevel.HALT and latch.newly_halted
    latch.update(day, pf(daily_pnl=-2_100_000.0), lim)
    assert latch.level is LossLevel.HALT and not latch.newly_halted
    latch.restore(day, "WARN")
    assert latch.level is LossLevel.WARN


# -- price / market -------------------------------------------------------------------------------


def test_no_price():
    d = ev(price=None, market=mkt(last=None, bid=None, ask=None))
    assert d.action is RiskAction.REJECT and d.reason_code == ReasonCode.NO_PRICE


def test_price_falls_back_to_last():
    assert ev(price=None, market=mkt(last=10_000.0)).action is RiskAction.APPROVE
    assert ev(price=0.0, market=mkt(last=10_000.0)).action is RiskAction.APPROVE


def test_no_equity():
    assert ev(portfolio=pf(equity=0.0, start_equity=0.0)).reason_code == ReasonCode.NO_EQUITY


def test_vi_cooldown_defers_with_retry_at():
    until = NOW + timedelta(seconds=600)
    d = ev(market=mkt(vi_cooldown_until=until))
    assert d.action is RiskAction.DEFER and d.reason_code == ReasonCode.VI_COOLDOWN
    assert d.retry_at == until and d.qty == 100
    assert not d.allowed


def test_vi_cooldown_over_at_its_end():
    assert ev(market=mkt(vi_cooldown_until=NOW)).action is RiskAction.APPROVE
    assert ev(market=mkt(vi_cooldown_until=NOW - timedelta(seconds=1))).action is RiskAction.APPROVE


def test_spread_too_wide():
    assert spread_bps(9_950.0, 10_000.0) == pytest.approx(50.125, rel=1e-3)
    d = ev(market=mkt(bid=9_950.0, ask=10_000.0))  # 50.1 bps > 50
    assert d.reason_code == ReasonCode.SPREAD_TOO_WIDE
    assert ev(market=mkt(bid=9_960.0, ask=10_000.0)).action is RiskAction.APPROVE  # 40 bps


def test_spread_skipped_without_two_sided_quote():
    assert ev(market=mkt(bid=None, ask=10_000.0)).action is RiskAction.APPROVE
    assert spread_bps(None, 1.0) is None and spread_bps(0.0, 1.0) is None


def test_intent_spread_limit_tightens():
    m = mkt(bid=9_970.0, ask=10_000.0)  # 30 bps
    assert ev(market=m).action is RiskAction.APPROVE
    assert ev(market=m, max_spread_bps=20).reason_code == ReasonCode.SPREAD_TOO_WIDE
    assert ev(market=m, max_spread_bps=500).action is RiskAction.APPROVE  # never loosens


def test_limit_price_band():
    assert ev(limit_price=10_600.0).reason_code == ReasonCode.LIMIT_PRICE_BAND
    assert ev(limit_price=9_400.0).reason_code == ReasonCode.LIMIT_PRICE_BAND
    assert ev(limit_price=10_500.0).action is RiskAction.APPROVE  # exactly 5%
    assert ev(limit_price=10_600.0, market=mkt(last=None)).action is RiskAction.APPROVE  # no last: skipped


# -- caps -----------------------------------------------------------------------------------------


def assert_reduced(d, qty, code):
    assert d.action is RiskAction.REDUCE, d
    assert d.qty == qty and d.reason_code == code
    assert d.allowed


def assert_rejected(d, code):
    assert d.action is RiskAction.REJECT, d
    assert d.reason_code == code and d.qty == 0


def test_order_notional_reduce_and_reject():
    assert_reduced(ev(qty=1000, limits=RiskLimits(max_order_notional=5_000_000)), 500, ReasonCode.ORDER_NOTIONAL)
    assert_rejected(ev(qty=1000, limits=RiskLimits(max_order_notional=9_999)), ReasonCode.ORDER_NOTIONAL)


def test_default_order_notional_50m():
    lim = RiskLimits(max_position_pct=1, max_sector_pct=1, max_net_exposure_pct=1, max_gross_exposure_pct=1)
    assert_reduced(
        ev(qty=6_000, limits=lim, portfolio=pf(equity=1e10, start_equity=1e10, buyable_cash=1e10)),
        5_000,
        ReasonCode.ORDER_NOTIONAL,
    )


def test_insufficient_cash():
    assert_reduced(ev(qty=1000, portfolio=pf(buyable_cash=3_000_000.0)), 300, ReasonCode.INSUFFICIENT_CASH)
    assert_rejected(ev(qty=1000, portfolio=pf(buyable_cash=5_000.0)), ReasonCode.INSUFFICIENT_CASH)


def test_position_limit_counts_all_strategies_and_working_buys():
    p = pf(positions={"005930": (1000, 10_000.0)})  # 10M of the 15M cap
    assert_reduced(ev(qty=1000, portfolio=p), 500, ReasonCode.POSITION_LIMIT)
    p = pf(positions={"005930": (1000, 10_000.0)}, working_buy_notional={"005930": 4_000_000.0})
    assert_reduced(ev(qty=1000, portfolio=p), 100, ReasonCode.POSITION_LIMIT)
    assert_rejected(ev(qty=1, portfolio=pf(positions={"005930": (1500, 10_000.0)})), ReasonCode.POSITION_LIMIT)


def test_position_limit_fresh_symbol_15pct():
    assert_reduced(ev(qty=2000), 1500, ReasonCode.POSITION_LIMIT)


def test_max_positions():
    p = pf(positions=spread_positions(10, 10_000))
    assert_rejected(ev(portfolio=p), ReasonCode.MAX_POSITIONS)
    # Adding to a symbol already open is not a new position.
    assert ev(portfolio=p, symbol="P3").action is RiskAction.APPROVE
    # Working buys count as open positions; flat symbols do not.
    p = pf(positions={**spread_positions(9, 10_000), "FLAT": (0, 10_000.0)}, working_buy_notional={"W": 1.0})
    assert_rejected(ev(portfolio=p), ReasonCode.MAX_POSITIONS)
    p = pf(positions={**spread_positions(9, 10_000), "FLAT": (0, 10_000.0)})
    assert ev(portfolio=p).action is RiskAction.APPROVE


def test_sector_limit():
    p = pf(
        positions={"A": (1000, 10_000.0), "B": (1000, 10_000.0)}, sector_of={"A": "SEMI", "B": "SEMI", "005930": "SEMI"}
    )
    assert_reduced(ev(qty=1400, portfolio=p), 1000, ReasonCode.SECTOR_LIMIT)  # 30M − 20M = 10M
    p.working_buy_notional["A"] = 9_000_000.0
    assert_reduced(ev(qty=1400, portfolio=p), 100, ReasonCode.SECTOR_LIMIT)
    p.working_buy_notional["A"] = 10_000_000.0
    assert_rejected(ev(qty=1400, portfolio=p), ReasonCode.SECTOR_LIMIT)


def test_missing_sector_is_its_own_sector():
    p = pf(positions={"A": (2900, 10_000.0), "B": (1000, 10_000.0)})  # no sector map
    assert p.sector("A") == "UNKNOWN:A"
    assert ev(qty=1000, portfolio=p).action is RiskAction.APPROVE


def test_strategy_budget():
    lim = RiskLimits(strategy_budgets={"KMP": 0.3})
    p = pf(strategy_notional={"KMP": 25_000_000.0, "KPR": 50_000_000.0})
    assert_reduced(ev(qty=1000, portfolio=p, limits=lim), 500, ReasonCode.STRATEGY_BUDGET)
    assert ev(qty=1000, portfolio=p, limits=lim, strategy="KPR").action is RiskAction.APPROVE  # no budget
    p = pf(strategy_notional={"KMP": 30_000_000.0})
    assert_rejected(ev(portfolio=p, limits=lim), ReasonCode.STRATEGY_BUDGET)


def test_gross_exposure():
    lim = RiskLimits(max_net_exposure_pct=0.95)
    p = pf(positions=spread_positions(5, 14_000_000), working_buy_notional={"W": 5_000_000.0})  # 75M
    assert_reduced(ev(qty=1000, portfolio=p, limits=lim), 500, ReasonCode.GROSS_EXPOSURE)
    p.working_buy_notional["W"] = 10_000_000.0
    assert_rejected(ev(qty=1000, portfolio=p, limits=lim), ReasonCode.GROSS_EXPOSURE)


def test_gross_counts_short_notional_net_does_not():
    # A negative quantity (e.g. an unresolved deficit) adds to gross, offsets net.
    p = pf(positions={**spread_positions(4, 14_000_000), "S": (-1000, 10_000.0)})
    assert p.gross_exposure() == 66_000_000 and p.net_exposure() == 46_000_000


def test_net_exposure_binds_first_on_long_book():
    p = pf(positions=spread_positions(4, 13_750_000))  # 55M
    assert_reduced(ev(qty=1000, portfolio=p), 500, ReasonCode.NET_EXPOSURE)
    p = pf(positions=spread_positions(4, 15_000_000))
    assert_rejected(ev(portfolio=p), ReasonCode.NET_EXPOSURE)


def test_regime_cap():
    p = pf(positions=spread_positions(2, 12_500_000))  # 25M gross
    d = ev(qty=1000, portfolio=p, flags=TradingFlags(regime="RISK_OFF"))
    assert_reduced(d, 500, ReasonCode.REGIME_CAP)
    assert ev(qty=1000, portfolio=p, flags=TradingFlags(regime="RISK_ON")).action is RiskAction.APPROVE
    assert ev(qty=1000, portfolio=p, flags=TradingFlags(regime="UNLISTED")).action is RiskAction.APPROVE
    p = pf(positions=spread_positions(3, 10_000_000))
    assert_rejected(ev(portfolio=p, flags=TradingFlags(regime="RISK_OFF")), ReasonCode.REGIME_CAP)


def test_reduce_reports_tightest_cap_and_all_steps():
    lim = RiskLimits(max_order_notional=12_000_000, strategy_budgets={"KMP": 0.3})
    p = pf(buyable_cash=11_000_000.0, strategy_notional={"KMP": 22_000_000.0})
    d = ev(qty=5000, portfolio=p, limits=lim)
    assert_reduced(d, 800, ReasonCode.STRATEGY_BUDGET)
    for step in ("ORDER_NOTIONAL → 1200", "INSUFFICIENT_CASH → 1100", "STRATEGY_BUDGET → 800"):
        assert step in d.message


def test_reject_after_reduce_keeps_reject():
    p = pf(buyable_cash=3_000_000.0, positions=spread_positions(10, 10_000))
    assert_rejected(ev(qty=1000, portfolio=p), ReasonCode.MAX_POSITIONS)


def test_reject_precedes_caps():
    # A hard reject wins even if a cap would have cut the qty.
    d = ev(qty=100_000, flags=TradingFlags(disabled_symbols={"005930"}))
    assert_rejected(d, ReasonCode.SYMBOL_DISABLED)


def test_floor_division_is_exact_at_boundary():
    # 0.29 · 1e8 − 1e6 is 27,999,999.999… in floats; room is exactly 2,800 shares at 10,000.
    p = pf(equity=100_000_000.0, positions={"005930": (100, 10_000.0)})
    lim = RiskLimits(max_position_pct=0.29, max_sector_pct=1)
    assert 0.29 * 1e8 - 1e6 < 28_000_000
    assert ev(qty=2800, portfolio=p, limits=lim).action is RiskAction.APPROVE
    assert_reduced(ev(qty=2801, portfolio=p, limits=lim), 2800, ReasonCode.POSITION_LIMIT)


def test_reason_codes_catalogue():
    assert len(set(RISK_REASONS)) == len(RISK_REASONS)
    assert all(c.isupper() for c in RISK_REASONS)
