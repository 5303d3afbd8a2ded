"""One sector-rotation model of one account as a strategy process (``trader strategy rotation``): the
account cycle of sector_rotation.md §3 on the shared clock, through the account's OMS.

Which model: ``ROTATION_MODEL`` (``trader accounts`` sets it with ``STRATEGY_ID`` = its upper case); the
account's models and budget fractions: ``ACCOUNT_BUDGETS`` (JSON, model → fraction; default this model
alone). Each process computes every account model's decision (pure, cheap) so the M6 budgets are
renormalised over the models active that day, and sends the SET_TARGET intents of its own model only.

Cycle (M5): once a New York trading day, ``cycle_after_open`` after the open; the closes are the completed
sessions before today (daily bars through the OMS proxy). The first cycle after a start validates the data
(≥ 200 closes of SPY and every sector) and trades only if that passes. Holdings, entry prices and entry
times come from the OMS allocations (M4's early exits need nothing from memory); the last rebalance date
of each model is kept in ``STRATEGY_DATA_DIR/state.json``, and the idempotency key
``model:symbol:session-date`` makes a rerun of the same day's cycle submit nothing new (the OMS answers
with the first intent). Every decision is logged with its reason code and appended to ``audit.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from broker_core.clock import NEW_YORK, Clock
from broker_core.config_errors import ConfigError
from broker_core.markets import us
from strategies.rotation.audit import audit_line, audit_records
from strategies.rotation.config import RotationConfig
from strategies.rotation.data import DailyPanels, holding_from_allocation, panels_from_rows
from strategies.rotation.data_check import check_data
from strategies.rotation.models import ModelDecision, decide
from strategies.rotation.orders import OrderIntent, plan_cycle
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import OmsError
from strategies.sdk.strategy import Strategy

CONFIG_MODEL = RotationConfig
TICK_SEC = 60.0
CYCLE_AFTER_OPEN = timedelta(minutes=30)
OVERDUE_AFTER = timedelta(minutes=15)
"""A cycle not done this long after its time is overdue: the heartbeat says so and the OMS /health degrades."""
HISTORY_DAYS = 420
"""Calendar days of daily bars asked for (≥ 200 sessions for the regime and the 175-session momentum)."""


def build(config: RotationConfig, oms_client: OmsClient, clock: Clock) -> RotationStrategy:
    """The runner's entry point (``trader strategy rotation``)."""
    model = os.environ.get("ROTATION_MODEL") or oms_client.strategy_id.lower()
    if model not in config.models:
        raise ConfigError(f"ROTATION_MODEL={model!r}: not a model of config/rotation.yaml ({', '.join(config.models)})")
    raw = os.environ.get("ACCOUNT_BUDGETS") or json.dumps({model: 1.0})
    try:
        budgets = {str(k): float(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"ACCOUNT_BUDGETS: not a JSON object of model → fraction: {raw!r}") from exc
    unknown = [m for m in budgets if m not in config.models]
    if unknown or model not in budgets:
        raise ConfigError(f"ACCOUNT_BUDGETS: unknown models {unknown} or {model!r} missing")
    data_dir = Path(os.environ.get("STRATEGY_DATA_DIR") or f"var/{model}")
    return RotationStrategy(config, oms_client, clock, model=model, budgets=budgets, data_dir=data_dir)


class RotationStrategy(Strategy):
    def __init__(
        self,
        config: RotationConfig,
        oms: OmsClient,
        clock: Clock,
        *,
        model: str,
        budgets: Mapping[str, float],
        data_dir: Path,
    ) -> None:
        super().__init__(oms.strategy_id, oms, clock)
        self.config = config
        self.model = model
        self.budgets = dict(budgets)
        self.data_dir = data_dir
        self.state_path = data_dir / "state.json"
        self.audit_path = data_dir / "audit.jsonl"
        self.data_checked = False
        self.last_cycle: date | None = None
        self.cycles = 0
        self.last_rebalance: dict[str, date] = self._load_state()
        self.cycle_failure: str | None = None
        """Why today's cycle did not run (``cycle_failed:…``, ``data_invalid``); None once it ran."""
        self.errors_today = 0
        self.errors_day: date | None = None
        self.deferred: dict[str, tuple[OrderIntent, date]] = {}
        """Idempotency key → a SET_TARGET the OMS deferred (an entry lock of another model on the symbol, a
        rate limit): sent again, same key, on the next ticks of its session until decided."""

    async def on_start(self) -> None:
        self.decision("ROTATION_START", model=self.model, budgets=self.budgets, account=os.environ.get("ACCOUNT_NAME"))
        self.scheduler.every(TICK_SEC, self.tick, "rotation.tick")

    def health_issue(self, now: datetime) -> str | None:
        """What the OMS's /health should report about this model now (None: nothing wrong)."""
        local = now.astimezone(NEW_YORK)
        session = us.session(local)
        if session is None:
            return None
        if self.cycle_failure is not None and self.errors_day == session.day:
            return self.cycle_failure
        if self.last_cycle == session.day:
            return None
        if session.open + CYCLE_AFTER_OPEN + OVERDUE_AFTER <= local < session.close:
            return "cycle_overdue"
        return None

    def _error(self, what: str, day: date) -> None:
        if self.errors_day != day:
            self.errors_day, self.errors_today = day, 0
        self.errors_today += 1
        self.cycle_failure = what

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        issue = self.health_issue(now)
        today = now.astimezone(NEW_YORK).date()
        return {
            **super().status(),
            **({"health_issue": issue} if issue else {}),
            "errors_today": self.errors_today if self.errors_day == today else 0,
            "rotation": {
                "model": self.model,
                "last_cycle": str(self.last_cycle) if self.last_cycle else None,
                "last_rebalance": {m: str(d) for m, d in self.last_rebalance.items()},
                "cycles": self.cycles,
            },
        }

    async def tick(self) -> None:
        if self.stopping:
            return
        now = self.clock.now().astimezone(NEW_YORK)
        session = us.session(now)
        if session is None or now < session.open + CYCLE_AFTER_OPEN or now >= session.close:
            return
        if self.deferred:
            await self._resend_deferred(session.day)
        if self.last_cycle == session.day:
            return
        try:
            await self.cycle(session.day, now)
        except OmsError as exc:
            self.log.warning("cycle of %s not run (%s); next try in %gs", session.day, exc, TICK_SEC)
            self._error(f"cycle_failed:{type(exc).__name__}", session.day)
            return
        self.last_cycle = session.day  # done for today (an invalid data check stays reported until tomorrow)

    async def cycle(self, day: date, now: datetime) -> None:
        """One account cycle for ``day`` (see the module doc)."""
        self.cycle_failure = None
        panels = await self._panels(day)
        if not self.data_checked:
            problems = check_data(panels.adj_close, day, self.config)
            if problems:
                self.decision("ROTATION_DATA_INVALID", day=str(day), problems=[str(p) for p in problems][:10])
                self._error("data_invalid", day)
                return
            self.data_checked = True
        allocations = await self.oms.allocations()
        held = {s: a.qty for s, a in allocations.items() if a.qty > 0}
        holdings = []
        for symbol, a in allocations.items():
            if a.qty > 0 and a.entry_ts is not None and symbol in panels.close.columns:
                holdings.append(holding_from_allocation(panels, symbol, a.entry_px or a.cost_basis, a.entry_ts))
        decisions: dict[str, ModelDecision] = {}
        for name in self.budgets:
            decisions[name] = decide(
                name,
                panels.adj_close,
                day,
                last_rebalance=self.last_rebalance.get(name),
                holdings=holdings if name == self.model else (),
                config=self.config,
            )
        symbols = set(held) | {s for d in decisions.values() for s in (d.weights or {})}
        prices = {s: p for s in sorted(symbols) if (p := await self._price(s, panels)) is not None}
        account = await self.oms.account()
        plan = plan_cycle(
            decisions,
            equity=float(account.equity),
            prices=prices,
            holdings={self.model: held},
            budget_fractions=self.budgets,
            params=self.config.orders,
            day=day,
        )
        own = decisions[self.model]
        self.decision(
            own.reason.value,
            day=str(day),
            model=self.model,
            action=own.action.value,
            regime=own.regime.regime.value,
            weights=own.weights,
            budget=plan.budgets.get(self.model, 0.0),
        )
        for order in [o for o in plan.orders if o.model == self.model]:
            await self._send(order, day)
        for skipped in [s for s in plan.skipped if s.model == self.model]:
            fields = {k: v for k, v in skipped.as_dict().items() if k not in ("symbol", "reason")}
            self.decision(skipped.reason.value, skipped.symbol, **fields)
        if own.last_rebalance is not None:
            self.last_rebalance[self.model] = own.last_rebalance
        for name, d in decisions.items():
            if name != self.model and d.last_rebalance is not None:
                self.last_rebalance[name] = d.last_rebalance
        self._save_state()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.audit_path.open("a") as audit:
            for record in audit_records(plan, {self.model: own}, os.environ.get("ACCOUNT_NAME")):
                audit.write(audit_line(record) + "\n")
        self.cycles += 1

    async def _send(self, order: OrderIntent, day: date) -> None:
        reply = await self.oms.submit_intent(
            "SET_TARGET",
            order.symbol,
            target_qty=order.target_qty,
            time_horizon="SWING",
            idempotency_key=order.idempotency_key,
        )
        self.decision(
            "ROTATION_ORDER",
            order.symbol,
            side=order.side,
            target_qty=order.target_qty,
            current_qty=order.current_qty,
            key=order.idempotency_key,
            status=reply.status,
            reason_code=reply.reason_code,
        )
        if reply.status == "DEFERRED":
            self.deferred[order.idempotency_key] = (order, day)
        else:
            self.deferred.pop(order.idempotency_key, None)

    async def _resend_deferred(self, today: date) -> None:
        for key, (order, day) in list(self.deferred.items()):
            if day != today:
                del self.deferred[key]
                self.decision("ROTATION_DEFERRED_EXPIRED", order.symbol, key=key, day=str(day))
                continue
            await self._send(order, day)

    async def _panels(self, day: date) -> DailyPanels:
        """Daily panels of the universe, the benchmark and the defensive asset: completed sessions before ``day``."""
        cfg = self.config
        wanted = list(dict.fromkeys([*cfg.universe, cfg.regime.benchmark, cfg.defensive]))
        rows: list[dict[str, Any]] = []
        for symbol in wanted:
            for bar in await self.oms.daily(symbol, day - timedelta(days=HISTORY_DAYS), day - timedelta(days=1)):
                rows.append(
                    {
                        "symbol": symbol,
                        "date": bar.start.astimezone(NEW_YORK).date(),
                        "high": bar.high,
                        "low": bar.low,
                        "close": bar.close,
                        "adj_close": bar.close,  # ETFs: the data's adjusted close is the close
                    }
                )
        frame = pd.DataFrame(rows, columns=["symbol", "date", "high", "low", "close", "adj_close"])
        frame = frame[pd.to_datetime(frame["date"]) < pd.Timestamp(day)]
        return panels_from_rows(frame)

    async def _price(self, symbol: str, panels: DailyPanels) -> float | None:
        try:
            quote = await self.oms.quote(symbol)
        except OmsError:
            quote = {}
        for name in ("last", "ask"):
            value = quote.get(name)
            if isinstance(value, int | float) and value > 0:
                return float(value)
        if symbol in panels.close.columns:
            series = panels.close[symbol].dropna()
            return float(series.iloc[-1]) if len(series) else None
        return None

    def _load_state(self) -> dict[str, date]:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(m): date.fromisoformat(str(d)) for m, d in (raw.get("last_rebalance") or {}).items()}

    def _save_state(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_rebalance": {m: str(d) for m, d in self.last_rebalance.items()}}))
        tmp.replace(self.state_path)
