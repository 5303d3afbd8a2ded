"""The scripted client of ``trader demo --market us`` / ``trader sim --market us``: a stand-in US strategy.

No US strategy exists in this build yet, so this client trades the OMS's paper US account the way one
would, through the same SDK (:class:`strategies.sdk.Strategy`): its own OMS key (strategy id ``SCRIPTED``),
HTTP intents with idempotency keys, heartbeats, a stream, and one ``decision code=... symbol=...`` log
line per action, which the run report reads for its "why nothing traded" funnel.

It runs as its own process (``trader scripted-us``, started by the launcher like a strategy): the launcher
waits for its first heartbeat before the clock starts, stops it with SIGTERM and checks its exit code,
and its log is ``logs/scripted.log`` — a real US strategy will replace it without a change to the launcher.

The script, each New York trading day (:class:`Script`, the times relative to that day's session so an
early close moves them):

* from the open + 5 min: buy each of a handful of liquid names (SPY, AAPL, MSFT, NVDA, AMZN) for about
  ``notional_usd`` in whole shares at the OMS's quote (``SCRIPTED_ENTRY``), retried a few times when the
  OMS refuses (``SCRIPTED_ENTRY_REJECTED``, then ``SCRIPTED_GIVE_UP``);
* at the open + 30 min: sell the round-trip names (SPY), so even a short run closes a trade
  (``SCRIPTED_EXIT reason=ROUND_TRIP``);
* from the close − 10 min: cancel unfilled entries (``SCRIPTED_CANCEL_ENTRY``) and sell everything it
  holds (``SCRIPTED_EXIT reason=BEFORE_CLOSE``), so each day ends flat;
* when it is stopped (``--until`` before the close), what it still holds stays open (``SCRIPTED_LEFT_OPEN``).

:func:`decide` is the pure part (what to do at an instant, from what the client holds); :class:`ScriptedUs`
asks the OMS for those inputs, sends the intents and logs the decisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from broker_core.clock import NEW_YORK, Clock
from broker_core.markets import us
from strategies.sdk import RiskPayload
from strategies.sdk.client import OmsClient
from strategies.sdk.errors import OmsError
from strategies.sdk.strategy import Event, Strategy

STRATEGY_ID = "SCRIPTED"
PROCESS_NAME = "scripted"
"""The launcher's name for the process (its log: ``logs/scripted.log``, what the report reads for SCRIPTED)."""
TICK_SEC = 30.0
"""How often (clock seconds) the client looks at the time and its holdings."""


class Code(StrEnum):
    """The client's decision codes (``decision code=CODE``)."""

    PLAN = "SCRIPTED_PLAN"
    """The day's plan: ``candidates`` (the symbols it will buy), entry and exit times."""
    NO_SESSION = "SCRIPTED_NO_SESSION"
    """Not an XNYS trading day: nothing to do."""
    WAIT_OPEN = "SCRIPTED_WAIT_OPEN"
    """Before the entry time (logged once a day)."""
    ENTRY = "SCRIPTED_ENTRY"
    """An ENTER intent the OMS took."""
    NO_PRICE = "SCRIPTED_NO_PRICE"
    """No quote for the symbol: the entry waits for the next try."""
    TOO_EXPENSIVE = "SCRIPTED_TOO_EXPENSIVE"
    """One share costs more than the notional: no entry that day."""
    ENTRY_REJECTED = "SCRIPTED_ENTRY_REJECTED"
    """The OMS refused the ENTER (``reason_code`` says why)."""
    ENTRY_ERROR = "SCRIPTED_ENTRY_ERROR"
    """The ENTER got no decision (the OMS unreachable or erroring)."""
    GIVE_UP = "SCRIPTED_GIVE_UP"
    """No entry after ``max_attempts`` tries, or too late for a round trip: none that day."""
    EXIT = "SCRIPTED_EXIT"
    """An EXIT intent the OMS took (``reason=ROUND_TRIP`` or ``BEFORE_CLOSE``)."""
    EXIT_REJECTED = "SCRIPTED_EXIT_REJECTED"
    EXIT_ERROR = "SCRIPTED_EXIT_ERROR"
    CANCEL_ENTRY = "SCRIPTED_CANCEL_ENTRY"
    """An entry order still open at the exit time: cancelled."""
    FILL = "SCRIPTED_FILL"
    """One of its orders filled (side, qty, price)."""
    LEFT_OPEN = "SCRIPTED_LEFT_OPEN"
    """Stopped while holding (``--until`` before the exits): the position stays open."""


CANDIDATE_CODES = frozenset({Code.ENTRY, Code.NO_PRICE, Code.TOO_EXPENSIVE, Code.ENTRY_REJECTED, Code.ENTRY_ERROR})
"""Codes that name a symbol the client tried to buy (the report's funnel counts them as candidates)."""


class Reason(StrEnum):
    AFTER_OPEN = "AFTER_OPEN"
    ROUND_TRIP = "ROUND_TRIP"
    BEFORE_CLOSE = "BEFORE_CLOSE"


@dataclass(frozen=True)
class Script:
    symbols: tuple[str, ...] = ("SPY", "AAPL", "MSFT", "NVDA", "AMZN")
    notional_usd: float = 8_000.0
    enter_after_open: timedelta = timedelta(minutes=5)
    round_trip: tuple[str, ...] = ("SPY",)
    """Symbols sold again at ``open + round_trip_after_open`` (one closed trade early in the day)."""
    round_trip_after_open: timedelta = timedelta(minutes=30)
    exit_before_close: timedelta = timedelta(minutes=10)
    max_attempts: int = 3
    """Tries per symbol and day (entries and exits each)."""
    retry_after: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Times:
    """The day's instants of the script (New York)."""

    open: datetime
    close: datetime
    enter: datetime
    round_trip: datetime
    exit: datetime

    @classmethod
    def of(cls, session: us.Session, script: Script) -> Times:
        return cls(
            open=session.open,
            close=session.close,
            enter=session.open + script.enter_after_open,
            round_trip=session.open + script.round_trip_after_open,
            exit=session.close - script.exit_before_close,
        )


@dataclass
class DayState:
    """What the client did today (reset each New York day)."""

    day: date
    entry_tries: dict[str, int] = field(default_factory=dict)
    entry_last: dict[str, datetime] = field(default_factory=dict)
    entered: set[str] = field(default_factory=set)
    """Symbols whose ENTER the OMS took."""
    given_up: set[str] = field(default_factory=set)
    exit_tries: dict[str, int] = field(default_factory=dict)
    exit_last: dict[str, datetime] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    noted: set[str] = field(default_factory=set)
    """Once-a-day notes already logged (``PLAN``, ``WAIT_OPEN``, ``NO_SESSION``)."""


@dataclass(frozen=True)
class Action:
    kind: str
    """``enter``, ``exit``, ``cancel`` or ``note`` (a decision line only)."""
    code: Code
    symbol: str | None = None
    qty: int = 0
    price: float | None = None
    reason: str | None = None
    key: str | None = None
    """The intent's idempotency key: one per symbol, day, side and try (a resend after a restart is the
    same intent to the OMS)."""
    fields: Mapping[str, Any] = field(default_factory=dict)


def idempotency_key(day: date, symbol: str, side: str, attempt: int) -> str:
    return f"{STRATEGY_ID}:{day:%Y%m%d}:{symbol}:{side}:{attempt}"


def shares_for(notional: float, price: float) -> int:
    """Whole shares worth at most ``notional`` at ``price`` (0 when one share costs more)."""
    if not (price > 0 and math.isfinite(price)):
        return 0
    return int(math.floor(notional / price + 1e-9))


def entry_wanted(
    now: datetime, times: Times, state: DayState, held: Mapping[str, int], open_buys: set[str], script: Script
) -> list[str]:
    """Symbols the client would buy now (before prices are known), in the script's order."""
    if not times.enter <= now < times.exit:
        return []
    out = []
    for symbol in script.symbols:
        if symbol in state.entered or symbol in state.given_up or held.get(symbol, 0) > 0 or symbol in open_buys:
            continue
        if symbol in script.round_trip and now >= times.round_trip:
            continue  # too late for the round trip (decide() gives up on it)
        last = state.entry_last.get(symbol)
        if last is not None and now - last < script.retry_after:
            continue
        out.append(symbol)
    return out


def decide(
    now: datetime,
    times: Times,
    state: DayState,
    held: Mapping[str, int],
    open_buys: set[str],
    open_sells: set[str],
    prices: Mapping[str, float | None],
    script: Script,
) -> list[Action]:
    """What to do at ``now``. ``held``: the client's allocations (symbol → shares); ``open_buys`` /
    ``open_sells``: symbols with an open order of that side; ``prices``: a price for each symbol of
    :func:`entry_wanted` (None: no quote). Pure: ``state`` is read, never changed."""
    day = state.day
    actions: list[Action] = []
    if now < times.enter:
        if "wait" not in state.noted:
            actions.append(Action("note", Code.WAIT_OPEN, fields={"until": times.enter.isoformat(timespec="minutes")}))
        return actions
    if now >= times.close:
        return actions
    for symbol in script.symbols:
        tries = state.entry_tries.get(symbol, 0)
        if symbol in state.given_up or symbol in state.entered or held.get(symbol, 0) > 0:
            continue
        if symbol in script.round_trip and now >= times.round_trip and symbol not in open_buys:
            actions.append(
                Action("note", Code.GIVE_UP, symbol, reason="ROUND_TRIP_TIME_PASSED", fields={"tries": tries})
            )
        elif tries >= script.max_attempts and symbol not in open_buys:
            actions.append(Action("note", Code.GIVE_UP, symbol, reason="MAX_ATTEMPTS", fields={"tries": tries}))
    wanted = entry_wanted(now, times, state, held, open_buys, script)
    for symbol in wanted:
        if state.entry_tries.get(symbol, 0) >= script.max_attempts:
            continue
        price = prices.get(symbol)
        if price is None:
            actions.append(Action("note", Code.NO_PRICE, symbol, reason=Reason.AFTER_OPEN))
            continue
        qty = shares_for(script.notional_usd, price)
        if qty <= 0:
            actions.append(
                Action("note", Code.TOO_EXPENSIVE, symbol, price=price, fields={"notional": script.notional_usd})
            )
            continue
        attempt = state.entry_tries.get(symbol, 0) + 1
        key = idempotency_key(day, symbol, "ENTER", attempt)
        actions.append(Action("enter", Code.ENTRY, symbol, qty, price, Reason.AFTER_OPEN, key))
    exit_reasons: dict[str, Reason] = {}
    if now >= times.exit:
        for symbol in sorted(open_buys):
            if symbol not in state.cancelled:
                key = idempotency_key(day, symbol, "CANCEL", 1)
                actions.append(Action("cancel", Code.CANCEL_ENTRY, symbol, reason=Reason.BEFORE_CLOSE, key=key))
        exit_reasons = {s: Reason.BEFORE_CLOSE for s, q in held.items() if q > 0}
    elif now >= times.round_trip:
        exit_reasons = {s: Reason.ROUND_TRIP for s in script.round_trip if held.get(s, 0) > 0}
    for symbol, reason in exit_reasons.items():
        tries = state.exit_tries.get(symbol, 0)
        last = state.exit_last.get(symbol)
        if symbol in open_sells or tries >= script.max_attempts:
            continue
        if last is not None and now - last < script.retry_after:
            continue
        key = idempotency_key(day, symbol, "EXIT", tries + 1)
        actions.append(Action("exit", Code.EXIT, symbol, held[symbol], reason=reason, key=key))
    return actions


class ScriptedUs(Strategy):
    """Runs :class:`Script` against the OMS (see the module's docstring)."""

    def __init__(self, oms: OmsClient, clock: Clock, script: Script | None = None) -> None:
        super().__init__(STRATEGY_ID, oms, clock)
        self.script = script or Script()
        self.state: DayState | None = None
        self.times: Times | None = None

    async def on_start(self) -> None:
        self.scheduler.every(TICK_SEC, self.tick, "scripted.tick")

    def status(self) -> dict[str, Any]:
        state = self.state
        scripted = (
            {
                "day": str(state.day),
                "entered": sorted(state.entered),
                "given_up": sorted(state.given_up),
                "exit_tries": dict(state.exit_tries),
            }
            if state is not None
            else {}
        )
        return {**super().status(), "scripted": scripted}

    def _new_day(self, now: datetime) -> DayState | None:
        """Today's state (a new one on a new New York day, with its ``PLAN`` or ``NO_SESSION`` line)."""
        day = now.date()
        if self.state is not None and self.state.day == day:
            return self.state if self.times is not None else None
        self.state = DayState(day)
        session = us.session(day)
        if session is None:
            self.times = None
            self.decision(Code.NO_SESSION, day=str(day), at=now.isoformat())
            return None
        self.times = Times.of(session, self.script)
        self.decision(
            Code.PLAN,
            day=str(day),
            candidates=list(self.script.symbols),
            notional_usd=self.script.notional_usd,
            enter=f"{self.times.enter:%H:%M}",
            round_trip=f"{self.times.round_trip:%H:%M}",
            exit=f"{self.times.exit:%H:%M}",
            close=f"{self.times.close:%H:%M}",
            at=now.isoformat(),
        )
        return self.state

    async def tick(self) -> None:
        if self.stopping:
            return
        now = self.clock.now().astimezone(NEW_YORK)
        state = self._new_day(now)
        if state is None or self.times is None or now >= self.times.close:
            return
        try:
            allocations = await self.oms.allocations()
            orders = await self.oms.orders(open_only=True)
        except OmsError as exc:
            self.log.warning("holdings not read (%s); next try in %gs", exc, TICK_SEC)
            return
        self.allocations = allocations
        held = {s: a.qty for s, a in allocations.items() if a.qty > 0}
        open_buys = {o.symbol for o in orders if o.is_open and o.side.upper() == "BUY"}
        open_sells = {o.symbol for o in orders if o.is_open and o.side.upper() == "SELL"}
        wanted = entry_wanted(now, self.times, state, held, open_buys, self.script)
        prices = {s: await self._price(s) for s in wanted}
        actions = decide(now, self.times, state, held, open_buys, open_sells, prices, self.script)
        for action in actions:
            if self.stopping:
                return
            await self._do(action, state, now, [o for o in orders if o.is_open and o.symbol == action.symbol])

    async def _price(self, symbol: str) -> float | None:
        try:
            quote = await self.oms.quote(symbol)
        except OmsError as exc:
            self.log.info("no quote for %s: %s", symbol, exc)
            return None
        for name in ("ask", "last"):
            value = quote.get(name)
            if isinstance(value, int | float) and value > 0:
                return float(value)
        return None

    async def _do(self, action: Action, state: DayState, now: datetime, open_orders: Sequence[Any]) -> None:
        at = now.isoformat()
        symbol = action.symbol
        if action.kind == "note":
            if action.code == Code.WAIT_OPEN:
                state.noted.add("wait")
            if action.code == Code.GIVE_UP and symbol:
                state.given_up.add(symbol)
            if action.code == Code.NO_PRICE and symbol:
                state.entry_tries[symbol] = state.entry_tries.get(symbol, 0) + 1
                state.entry_last[symbol] = now
            if action.code == Code.TOO_EXPENSIVE and symbol:
                state.given_up.add(symbol)
            extra = {"price": action.price} if action.price is not None else {}
            reason = {"reason": action.reason} if action.reason else {}
            self.decision(action.code, symbol, **reason, **extra, **dict(action.fields), at=at)
            return
        assert symbol is not None
        if action.kind == "cancel":
            state.cancelled.add(symbol)
            ids = [o.order_id for o in open_orders if o.side.upper() == "BUY"]
            try:
                reply = await self.oms.cancel_orders(symbol, idempotency_key=action.key)
            except OmsError as exc:
                self.decision(action.code, symbol, reason=action.reason, error=type(exc).__name__, orders=ids, at=at)
                return
            self.decision(action.code, symbol, reason=action.reason, status=str(reply.status), orders=ids, at=at)
            return
        if action.kind == "enter":
            await self._enter(action, state, now)
        elif action.kind == "exit":
            await self._exit(action, state, now)

    async def _enter(self, action: Action, state: DayState, now: datetime) -> None:
        symbol = action.symbol
        assert symbol is not None
        state.entry_tries[symbol] = state.entry_tries.get(symbol, 0) + 1
        state.entry_last[symbol] = now
        fields = {"qty": action.qty, "price": action.price, "key": action.key, "at": now.isoformat()}
        try:
            reply = await self.oms.enter(symbol, action.qty, idempotency_key=action.key)
        except OmsError as exc:
            self.decision(Code.ENTRY_ERROR, symbol, error=f"{type(exc).__name__}: {exc}", **fields)
            return
        if reply.ok:
            state.entered.add(symbol)
            self.decision(Code.ENTRY, symbol, reason=action.reason, order=reply.order_id, **fields)
        else:
            self.decision(
                Code.ENTRY_REJECTED, symbol, reason_code=reply.reason_code, status=str(reply.status), **fields
            )

    async def _exit(self, action: Action, state: DayState, now: datetime) -> None:
        symbol = action.symbol
        assert symbol is not None
        state.exit_tries[symbol] = state.exit_tries.get(symbol, 0) + 1
        state.exit_last[symbol] = now
        fields = {"qty": action.qty, "key": action.key, "at": now.isoformat()}
        try:
            risk = RiskPayload(rationale_code=f"{STRATEGY_ID}_{action.reason}") if action.reason else None
            reply = await self.oms.exit(symbol, idempotency_key=action.key, risk=risk)
        except OmsError as exc:
            self.decision(Code.EXIT_ERROR, symbol, error=f"{type(exc).__name__}: {exc}", **fields)
            return
        if reply.ok:
            self.decision(Code.EXIT, symbol, reason=action.reason, order=reply.order_id, **fields)
        else:
            self.decision(Code.EXIT_REJECTED, symbol, reason_code=reply.reason_code, status=str(reply.status), **fields)

    async def on_fill(self, event: Event) -> None:
        self.decision(
            Code.FILL,
            event.get("symbol"),
            side=event.get("side"),
            qty=event.get("qty"),
            price=event.get("price"),
            order=event.get("order_id"),
            at=self.clock.now().astimezone(NEW_YORK).isoformat(),
        )

    async def on_stop(self) -> None:
        try:
            self.allocations = await self.oms.allocations()
        except OmsError as exc:
            self.log.warning("allocations not read at stop: %s", exc)
        now = self.clock.now().astimezone(NEW_YORK).isoformat()
        for symbol, allocation in sorted(self.allocations.items()):
            if allocation.qty > 0:
                self.decision(Code.LEFT_OPEN, symbol, qty=allocation.qty, cost_basis=allocation.cost_basis, at=now)


def build(oms: OmsClient, clock: Clock) -> ScriptedUs:
    return ScriptedUs(oms, clock)


def run() -> int:
    """``trader scripted-us``: run the client until SIGTERM (wiring from the environment, as a strategy's)."""
    from strategies.sdk.runner import run_built

    return run_built(build, STRATEGY_ID)
