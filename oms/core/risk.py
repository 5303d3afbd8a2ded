"""The risk gateway: approve, reduce, reject or defer an intent — pure and deterministic.

:func:`evaluate` reads only its arguments (limits, a portfolio snapshot, a market snapshot,
the trading switches and ``now``); it never mutates them.

Exits and reductions (``IntentType.reduces_exposure``) are never blocked by risk. ``MODIFY_RISK`` carries no order
and is always approved. Every other intent type (ENTER, SET_TARGET) adds exposure and runs the entry
checks below, **in this fixed order**; the first rejection wins:

 1. INVALID_QTY          qty < 1
 2. SAFE_MODE            flags.safe_mode
 3. HALTED               flags.halt_new_entries
 4. STRATEGY_PAUSED      strategy in flags.paused_strategies
 5. SYMBOL_DISABLED      symbol in flags.disabled_symbols
 6. SYMBOL_FROZEN        symbol in flags.frozen_symbols (e.g. unexplained excess at recon)
 7. DAILY_LOSS_HALT      day loss ≥ daily_loss_halt_pct of start equity (or latched)
 8. DAILY_LOSS_WARN      day loss ≥ daily_loss_warn_pct (or latched: "for the rest of the day")
 9. NO_PRICE             no positive valuation price (``price``, else ``market.last``)
10. NO_EQUITY            equity ≤ 0
11. VI_COOLDOWN          market.vi_cooldown_until > now → **DEFER** with retry_at = that time
12. SPREAD_TOO_WIDE      (ask − bid) / mid > max_spread_bps (skipped when bid or ask is missing)
13. LIMIT_PRICE_BAND     |limit_price / last − 1| > limit_price_band_pct (needs both)
then the caps; each computes the room left and cuts qty to ``floor(room / price)``; a cap that
leaves less than one share rejects with its code, otherwise the decision is REDUCE with the code
of the last (tightest) cap that cut, and later caps see the reduced qty:
14. ORDER_NOTIONAL       qty·price ≤ max_order_notional
15. INSUFFICIENT_CASH    qty·price ≤ buyable_cash
16. POSITION_LIMIT       symbol notional (all strategies, + working buys) + order ≤ max_position_pct·equity
17. MAX_POSITIONS        a new symbol when max_positions symbols are open → reject (no reduce)
18. SECTOR_LIMIT         sector notional (+ working buys) + order ≤ max_sector_pct·equity
19. STRATEGY_BUDGET      strategy notional + order ≤ strategy_budgets[strategy]·equity (if set)
20. GROSS_EXPOSURE       Σ|position notional| + Σ working buys + order ≤ max_gross_exposure_pct·equity
21. NET_EXPOSURE         Σ signed position notional + Σ working buys + order ≤ max_net_exposure_pct·equity
22. REGIME_CAP           gross + order ≤ regime_caps[flags.regime]·equity (when the regime has a cap)

Notes on the numbers:
- ``price`` is the per-share valuation of the new order; the caller passes its worst case
  (the planned limit price for a buy), falling back to ``market.last``.
- Existing positions are valued at the price in ``portfolio.positions`` (symbol → (qty, last)).
- Working buys count as exposure for gross, net, position and sector caps (conservative: the
  exposure once everything working fills). On a long-only book net == gross, so with the
  defaults (net 60% < gross 80%) the net cap is the one that binds; gross matters once short or
  negative quantities exist.
- Day loss is measured on ``start_equity`` (``equity`` if the start is unknown):
  ``loss_pct = -daily_pnl / start_equity``. The caller latches a breach for the rest of the day
  with :class:`DailyLossLatch` and passes it as ``flags.daily_loss_level``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker_core.contract.reasons import ReasonCode
from oms.core.types import IntentType

# Reason codes ---------------------------------------------------------------------------------


DEFAULT_ENTRY_LOCK_SEC: dict[str, float] = {"KMP": 90.0, "KPR": 180.0, "PCIM": 300.0, "NULRIMOK": 60.0}
DEFAULT_REGIME_CAPS: dict[str, float] = {"RISK_OFF": 0.3, "NEUTRAL": 0.6, "RISK_ON": 0.8}
_EPS = 1e-9


class RiskLimits(BaseModel):
    """Account-level risk limits (strategies.md §0.2). Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    daily_loss_warn_pct: float = Field(0.02, gt=0, le=1)
    """Day loss at which new entries are rejected for the rest of the day (ReasonCode.DAILY_LOSS_WARN)."""
    daily_loss_halt_pct: float = Field(0.03, gt=0, le=1)
    """Day loss at which the account halts entries (ReasonCode.DAILY_LOSS_HALT)."""
    flatten_on_halt: bool = False
    """Whether the OMS flattens everything when the halt level is reached (the caller acts)."""
    max_gross_exposure_pct: float = Field(0.80, gt=0)
    max_net_exposure_pct: float = Field(0.60, gt=0)
    max_position_pct: float = Field(0.15, gt=0)
    max_positions: int = Field(10, ge=1)
    max_sector_pct: float = Field(0.30, gt=0)
    max_spread_bps: float = Field(50.0, gt=0)
    vi_cooldown_sec: float = Field(600.0, ge=0)
    max_order_notional: float = Field(50_000_000.0, gt=0)
    limit_price_band_pct: float = Field(0.05, gt=0)
    regime_caps: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_REGIME_CAPS))
    """Regime name → max gross exposure as a share of equity."""
    strategy_budgets: dict[str, float] = Field(default_factory=dict)
    """Strategy → max notional share of equity (no entry = no budget cap)."""
    entry_lock_sec: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ENTRY_LOCK_SEC))
    default_entry_lock_sec: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> RiskLimits:
        if self.daily_loss_warn_pct > self.daily_loss_halt_pct:
            raise ValueError(
                f"daily_loss_warn_pct ({self.daily_loss_warn_pct}) must not exceed "
                f"daily_loss_halt_pct ({self.daily_loss_halt_pct})"
            )
        for name, mapping in (
            ("regime_caps", self.regime_caps),
            ("strategy_budgets", self.strategy_budgets),
            ("entry_lock_sec", self.entry_lock_sec),
        ):
            for key, value in mapping.items():
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{name}[{key!r}] must be a finite number >= 0, got {value}")
        return self

    def entry_lock_for(self, strategy_id: str) -> float:
        """Entry-lock duration (seconds) for a strategy; ``default_entry_lock_sec`` otherwise."""
        return self.entry_lock_sec.get(strategy_id, self.default_entry_lock_sec)


@dataclass(slots=True)
class PortfolioView:
    """What risk needs to know about the account, as of one instant."""

    equity: float
    buyable_cash: float
    daily_pnl: float
    """Realized + unrealized today; negative = loss."""
    start_equity: float
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)
    """symbol → (real qty, last price)."""
    working_buy_notional: dict[str, float] = field(default_factory=dict)
    """symbol → notional of open buy orders (leaves qty · limit)."""
    sector_of: dict[str, str] = field(default_factory=dict)
    strategy_notional: dict[str, float] = field(default_factory=dict)
    """strategy → notional of its allocations (+ its working buys, at the caller's choice)."""

    def sector(self, symbol: str) -> str:
        return self.sector_of.get(symbol) or f"UNKNOWN:{symbol}"

    def position_notional(self, symbol: str) -> float:
        qty, px = self.positions.get(symbol, (0, 0.0))
        return qty * px

    def symbol_exposure(self, symbol: str) -> float:
        return self.position_notional(symbol) + self.working_buy_notional.get(symbol, 0.0)

    def gross_exposure(self) -> float:
        return sum(abs(q * p) for q, p in self.positions.values()) + sum(self.working_buy_notional.values())

    def net_exposure(self) -> float:
        return sum(q * p for q, p in self.positions.values()) + sum(self.working_buy_notional.values())

    def sector_exposure(self, sector: str) -> float:
        symbols = {s for s, (q, _) in self.positions.items() if q != 0}
        symbols |= {s for s, n in self.working_buy_notional.items() if n > 0}
        return sum(self.symbol_exposure(s) for s in symbols if self.sector(s) == sector)

    def open_symbols(self) -> set[str]:
        """Symbols counted as open positions: nonzero qty or a working buy."""
        held = {s for s, (q, _) in self.positions.items() if q != 0}
        return held | {s for s, n in self.working_buy_notional.items() if n > 0}

    def loss_pct(self) -> float:
        """Day loss as a positive share of start equity (0 when the day is flat or up)."""
        base = self.start_equity if self.start_equity > 0 else self.equity
        if base <= 0:
            return 0.0
        return max(0.0, -self.daily_pnl / base)


@dataclass(slots=True)
class MarketView:
    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    vi_cooldown_until: datetime | None = None
    quote_failed: bool = False
    """The broker's quote call failed: ``last`` is the last price the OMS saw, bid/ask are unknown."""


class LossLevel(StrEnum):
    WARN = "WARN"
    HALT = "HALT"


@dataclass(slots=True)
class TradingFlags:
    safe_mode: bool = False
    halt_new_entries: bool = False
    paused_strategies: set[str] = field(default_factory=set)
    disabled_symbols: set[str] = field(default_factory=set)
    frozen_symbols: dict[str, str] = field(default_factory=dict)
    """symbol → reason."""
    regime: str | None = None
    """Explicit admin hold: blocks exits (and entries) on the symbol."""
    daily_loss_level: LossLevel | None = None
    """Latched day-loss breach (see :class:`DailyLossLatch`); None = not breached today."""


class RiskAction(StrEnum):
    APPROVE = "APPROVE"
    REDUCE = "REDUCE"
    REJECT = "REJECT"
    DEFER = "DEFER"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    action: RiskAction
    qty: int
    reason_code: str | None = None
    message: str = ""
    retry_at: datetime | None = None

    @property
    def allowed(self) -> bool:
        """True when an order may go out (APPROVE or REDUCE)."""
        return self.action in (RiskAction.APPROVE, RiskAction.REDUCE)


def daily_loss_level(portfolio: PortfolioView, limits: RiskLimits) -> LossLevel | None:
    """The day-loss level reached now (not latched)."""
    loss = portfolio.loss_pct()
    if loss >= limits.daily_loss_halt_pct - _EPS:
        return LossLevel.HALT
    if loss >= limits.daily_loss_warn_pct - _EPS:
        return LossLevel.WARN
    return None


def _worse(a: LossLevel | None, b: LossLevel | None) -> LossLevel | None:
    if LossLevel.HALT in (a, b):
        return LossLevel.HALT
    if LossLevel.WARN in (a, b):
        return LossLevel.WARN
    return None


class DailyLossLatch:
    """Remembers the worst day-loss level reached on a trading day ("for the rest of the day").

    ``update`` returns the latched level; a new trading day starts clear. ``newly_halted``
    tells the caller when to act on ``flatten_on_halt`` exactly once.
    """

    def __init__(self) -> None:
        self.trading_day: date | None = None
        self.level: LossLevel | None = None
        self.newly_halted = False

    def update(self, trading_day: date, portfolio: PortfolioView, limits: RiskLimits) -> LossLevel | None:
        if trading_day != self.trading_day:
            self.trading_day, self.level = trading_day, None
        before = self.level
        self.level = _worse(self.level, daily_loss_level(portfolio, limits))
        self.newly_halted = self.level is LossLevel.HALT and before is not LossLevel.HALT
        return self.level

    def restore(self, trading_day: date, level: LossLevel | str | None) -> None:
        """Rebuild after a restart (e.g. from ``RiskDailyPortfolioRecord.halted``)."""
        self.trading_day = trading_day
        self.level = LossLevel(level) if level else None
        self.newly_halted = False


def spread_bps(bid: float | None, ask: float | None) -> float | None:
    """(ask − bid) / mid in basis points; None without a two-sided quote."""
    if bid is None or ask is None or bid <= 0 or ask <= 0:
        return None
    mid = (bid + ask) / 2
    return (ask - bid) / mid * 10_000


def _approve(qty: int, message: str = "approved") -> RiskDecision:
    return RiskDecision(RiskAction.APPROVE, qty, None, message)


def _reject(code: str, message: str) -> RiskDecision:
    return RiskDecision(RiskAction.REJECT, 0, code, message)


def evaluate(
    intent_type: IntentType,
    strategy_id: str,
    symbol: str,
    qty: int,
    price: float | None,
    limit_price: float | None,
    portfolio: PortfolioView,
    market: MarketView,
    flags: TradingFlags,
    limits: RiskLimits,
    now: datetime,
    *,
    max_spread_bps: float | None = None,
) -> RiskDecision:
    """Decide on one intent; see the module docstring for the order of checks.

    ``max_spread_bps`` (keyword) is the intent's own spread limit; the tighter of it and
    ``limits.max_spread_bps`` applies.
    """
    intent_type = IntentType(intent_type)

    # Exits / reductions: only an explicit exit hold stops them.
    if intent_type.reduces_exposure:
        return _approve(qty, "exposure-reducing intent")
    if intent_type is IntentType.MODIFY_RISK:
        return _approve(qty, "no order")

    # 1–9: account, strategy and symbol switches.
    if qty < 1:
        return _reject(ReasonCode.INVALID_QTY, f"qty must be >= 1, got {qty}")
    if flags.safe_mode:
        return _reject(ReasonCode.SAFE_MODE, "safe mode: only exposure-reducing intents are accepted")
    if flags.halt_new_entries:
        return _reject(ReasonCode.HALTED, "new entries are halted")
    if strategy_id in flags.paused_strategies:
        return _reject(ReasonCode.STRATEGY_PAUSED, f"strategy {strategy_id} is paused")
    if symbol in flags.disabled_symbols:
        return _reject(ReasonCode.SYMBOL_DISABLED, f"{symbol} is disabled")
    if symbol in flags.frozen_symbols:
        return _reject(ReasonCode.SYMBOL_FROZEN, f"{symbol} is frozen: {flags.frozen_symbols[symbol]}")
    level = _worse(flags.daily_loss_level, daily_loss_level(portfolio, limits))
    loss_pct = portfolio.loss_pct()
    if level is LossLevel.HALT:
        return _reject(
            ReasonCode.DAILY_LOSS_HALT,
            f"day loss {loss_pct:.2%} reached the halt level {limits.daily_loss_halt_pct:.2%}; entries rejected today",
        )
    if level is LossLevel.WARN:
        return _reject(
            ReasonCode.DAILY_LOSS_WARN,
            f"day loss {loss_pct:.2%} reached the warn level {limits.daily_loss_warn_pct:.2%}; entries rejected today",
        )

    # 10–14: prices and market state.
    px = price if price is not None and price > 0 else market.last
    if px is None or not math.isfinite(px) or px <= 0:
        return _reject(ReasonCode.NO_PRICE, f"{symbol}: no price to value the order")
    if portfolio.equity <= 0:
        return _reject(ReasonCode.NO_EQUITY, f"equity is {portfolio.equity}")
    if market.vi_cooldown_until is not None and market.vi_cooldown_until > now:
        return RiskDecision(
            RiskAction.DEFER,
            qty,
            ReasonCode.VI_COOLDOWN,
            f"{symbol}: VI cooldown until {market.vi_cooldown_until.isoformat()}",
            retry_at=market.vi_cooldown_until,
        )
    spread = spread_bps(market.bid, market.ask)
    spread_cap = limits.max_spread_bps if max_spread_bps is None else min(limits.max_spread_bps, max_spread_bps)
    if spread is not None and spread > spread_cap + _EPS:
        return _reject(ReasonCode.SPREAD_TOO_WIDE, f"{symbol}: spread {spread:.1f} bps > {spread_cap:g} bps")
    if limit_price is not None and market.last is not None and market.last > 0:
        dev = abs(limit_price / market.last - 1)
        if dev > limits.limit_price_band_pct + _EPS:
            return _reject(
                ReasonCode.LIMIT_PRICE_BAND,
                f"{symbol}: limit {limit_price:g} is {dev:.2%} from last "
                f"{market.last:g} (band ±{limits.limit_price_band_pct:.2%})",
            )

    # 15–23: caps that can cut the quantity.
    equity = portfolio.equity
    cut: list[tuple[str, int, str]] = []
    cur = qty

    def cap(code: str, room: float, what: str) -> RiskDecision | None:
        nonlocal cur
        allowed = math.floor(max(0.0, room) / px + _EPS)
        if allowed >= cur:
            return None
        if allowed < 1:
            return _reject(code, f"{what}: room {max(0.0, room):,.0f} < one share at {px:,.0f}")
        cut.append((code, allowed, what))
        cur = allowed
        return None

    checks: list[tuple[str, float, str]] = [
        (ReasonCode.ORDER_NOTIONAL, limits.max_order_notional, f"order notional cap {limits.max_order_notional:,.0f}"),
        (ReasonCode.INSUFFICIENT_CASH, portfolio.buyable_cash, "buyable cash"),
        (
            ReasonCode.POSITION_LIMIT,
            limits.max_position_pct * equity - portfolio.symbol_exposure(symbol),
            f"{symbol} position cap {limits.max_position_pct:.0%} of equity",
        ),
    ]
    for code, room, what in checks:
        if (d := cap(code, room, what)) is not None:
            return d

    open_symbols = portfolio.open_symbols()
    if symbol not in open_symbols and len(open_symbols) >= limits.max_positions:
        return _reject(ReasonCode.MAX_POSITIONS, f"{len(open_symbols)} positions open (max {limits.max_positions})")

    sector = portfolio.sector(symbol)
    checks = [
        (
            ReasonCode.SECTOR_LIMIT,
            limits.max_sector_pct * equity - portfolio.sector_exposure(sector),
            f"sector {sector} cap {limits.max_sector_pct:.0%} of equity",
        )
    ]
    budget = limits.strategy_budgets.get(strategy_id)
    if budget is not None:
        checks.append(
            (
                ReasonCode.STRATEGY_BUDGET,
                budget * equity - portfolio.strategy_notional.get(strategy_id, 0.0),
                f"strategy {strategy_id} budget {budget:.0%} of equity",
            )
        )
    gross = portfolio.gross_exposure()
    checks.append(
        (
            ReasonCode.GROSS_EXPOSURE,
            limits.max_gross_exposure_pct * equity - gross,
            f"gross exposure cap {limits.max_gross_exposure_pct:.0%}",
        )
    )
    checks.append(
        (
            ReasonCode.NET_EXPOSURE,
            limits.max_net_exposure_pct * equity - portfolio.net_exposure(),
            f"net exposure cap {limits.max_net_exposure_pct:.0%}",
        )
    )
    if flags.regime is not None and flags.regime in limits.regime_caps:
        regime_cap = limits.regime_caps[flags.regime]
        checks.append(
            (ReasonCode.REGIME_CAP, regime_cap * equity - gross, f"regime {flags.regime} gross cap {regime_cap:.0%}")
        )
    for code, room, what in checks:
        if (d := cap(code, room, what)) is not None:
            return d

    if cur < qty:
        code = cut[-1][0]
        steps = "; ".join(f"{c} → {n}" for c, n, _ in cut)
        return RiskDecision(RiskAction.REDUCE, cur, code, f"qty {qty} reduced to {cur} ({steps})")
    return _approve(qty)
