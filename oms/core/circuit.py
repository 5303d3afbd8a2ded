"""A circuit breaker for broker calls: CLOSED → OPEN → HALF_OPEN → CLOSED.

- CLOSED: calls allowed; ``failure_threshold`` *consecutive* failures open the breaker
  (a success resets the count).
- OPEN: calls refused until ``reset_timeout_s`` has passed since it opened; then the breaker
  is HALF_OPEN (reading ``state`` or calling ``allow()`` performs that move).
- HALF_OPEN: exactly one trial call is allowed at a time. Its success closes the breaker, its
  failure re-opens it (a fresh timeout). If a trial never reports back, another trial is
  allowed after ``reset_timeout_s``, so a lost result cannot wedge the breaker.
- Results reported while OPEN (calls that started before it opened) are ignored.

Time comes from ``clock.now()`` (tests use ``broker_core.clock.ManualClock``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from broker_core.clock import Clock, RealClock


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout_s: float = 30.0,
        clock: Clock | None = None,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must be >= 0, got {reset_timeout_s}")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock or RealClock()
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._reads_failed = False
        """A read failed since the breaker last closed: a read that succeeds may then close it."""
        self._opened_at: datetime | None = None
        self._trial_at: datetime | None = None

    # -- state -----------------------------------------------------------------------------
    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old != new and self._on_change is not None:
            self._on_change(old, new)

    def _timeout(self) -> timedelta:
        return timedelta(seconds=self.reset_timeout_s)

    def _advance(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and self._clock.now() - self._opened_at >= self._timeout()
        ):
            self._trial_at = None
            self._set(BreakerState.HALF_OPEN)

    @property
    def state(self) -> BreakerState:
        self._advance()
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while CLOSED."""
        return self._failures

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    @property
    def retry_at(self) -> datetime | None:
        """When an OPEN breaker lets a trial through (None unless OPEN)."""
        if self.state is BreakerState.OPEN and self._opened_at is not None:
            return self._opened_at + self._timeout()
        return None

    # -- use -------------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a call go out now? In HALF_OPEN, True once per trial."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock.now()
        if self._trial_at is None or now - self._trial_at >= self._timeout():
            self._trial_at = now
            return True
        return False

    def record_success(self, *, resets_count: bool = True) -> None:
        """A call succeeded. ``resets_count=False`` for reads (reconciliation, lookups): they do not wipe the
        consecutive failures of order calls while CLOSED (so refused submits between successful reads still
        open the breaker), and a read is a trial that closes a HALF_OPEN breaker only when reads failed in this
        episode too (a general outage that is over); a breaker opened by refused orders alone closes on an
        order that goes through."""
        state = self.state
        if state is BreakerState.CLOSED:
            if resets_count:
                self._failures = 0
        elif state is BreakerState.HALF_OPEN and (resets_count or self._reads_failed):
            self._failures = 0
            self._reads_failed = False
            self._opened_at = self._trial_at = None
            self._set(BreakerState.CLOSED)

    def record_failure(self, *, order_call: bool = True) -> None:
        """A call failed; ``order_call=False`` for reads (reconciliation, lookups)."""
        if not order_call:
            self._reads_failed = True
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()
        elif state is BreakerState.HALF_OPEN:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._trial_at = None
        self._failures = 0
        self._set(BreakerState.OPEN)

    def trip(self) -> None:
        """Open the breaker now (e.g. an auth failure that retrying cannot fix)."""
        self._open()

    def reset(self) -> None:
        """Close the breaker and clear counters (admin action)."""
        self._failures = 0
        self._opened_at = self._trial_at = None
        self._set(BreakerState.CLOSED)
