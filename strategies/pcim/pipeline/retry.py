"""Bounded exponential back-off for quota/429/5xx answers of the night's external services."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from strategies.pcim.pipeline.types import TransientSourceError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        d = min(self.max_delay, self.base_delay * (2**attempt)) * self.rng.uniform(0.75, 1.0)
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_delay))
        return d

    def call(
        self, fn: Callable[[], T], on_retry: Callable[[int, float, TransientSourceError], None] | None = None
    ) -> T:
        """``fn()``; a TransientSourceError is retried after a back-off, the last one is re-raised."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except TransientSourceError as exc:
                if attempt + 1 >= self.attempts:
                    raise
                d = self.delay(attempt, exc.retry_after)
                if on_retry is not None:
                    on_retry(attempt + 1, d, exc)
                self.sleep(d)
        raise AssertionError("unreachable")  # pragma: no cover
