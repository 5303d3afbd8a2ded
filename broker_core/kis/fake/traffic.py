"""The fake KIS server's request log and its per-app-key rate window (EGW00201 when over
``rate_per_sec``), plus the busiest-window measure a rate-limit test asserts on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from broker_core.clock import Clock
from broker_core.kis.fake.profiles import FakeProfile


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    tr_id: str
    at: datetime
    """When the fake received it, by the fake's clock."""
    status: int = 0
    msg_cd: str = ""
    app_key: str = ""
    tr_cont: str = ""


class Traffic:
    def __init__(self, prof: FakeProfile, clock: Clock) -> None:
        self.profile = prof
        self.clock = clock
        self.requests: list[LoggedRequest] = []
        self._windows: dict[str, deque[datetime]] = {}

    def log(
        self,
        method: str,
        path: str,
        tr_id: str,
        status: int,
        msg_cd: str,
        app_key: str = "",
        tr_cont: str = "",
        at: datetime | None = None,
    ) -> None:
        self.requests.append(
            LoggedRequest(method, path, tr_id, at or self.clock.now(), status, msg_cd, app_key, tr_cont)
        )

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path == path]

    def max_per_window(self, window_s: float = 1.0, paths_prefix: str = "/uapi/") -> int:
        """The most requests (to paths under ``paths_prefix``) the fake received in any window of
        ``window_s`` seconds of its clock — what a rate-limit test asserts on."""
        times = sorted(r.at for r in self.requests if r.path.startswith(paths_prefix))
        best, j = 0, 0
        for i, t in enumerate(times):
            while (t - times[j]).total_seconds() >= window_s:
                j += 1
            best = max(best, i - j + 1)
        return best

    def admit(self, app_key: str, now: datetime) -> bool:
        """The per-second rate window of an app key (fake clock); True if the request may pass."""
        window = self._windows.setdefault(app_key, deque())
        while window and (now - window[0]).total_seconds() >= 1.0:
            window.popleft()
        if len(window) >= self.profile.rate_per_sec:
            return False
        window.append(now)
        return True


__all__ = ["LoggedRequest", "Traffic"]
