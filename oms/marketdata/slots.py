"""The account's subscription slot budget: leases per strategy, priorities, time windows, eviction.

Pure bookkeeping (no I/O, no clock of its own: every call takes ``now``). One *slot* is one
upstream subscription of one symbol; every strategy that wants the symbol holds a *lease* on that
slot, so a symbol shared by three strategies uses one slot. A strategy's lease policy
(:class:`LeasePolicy`) bounds how many symbols it may lease (``max_slots``), when it may take new
ones (``start``/``end``, market time — KST on KRX — end exclusive) and how hard it holds them (``priority``).

A request for a symbol nobody leases takes a free slot; when the budget is full it evicts the slot
whose holders all have a strictly lower priority than the requester and none of which protects it
(lowest priority first, then the oldest grant), or it is denied with a reason code. A slot is
protected — never evicted — when the account holds a position in the symbol (any strategy), when a
holder has a working order in it, when a holder marked it *keep* (an active setup) or when the OMS
itself watches it (``SYSTEM_OWNER``). At the end of its window a lease releases every symbol
except those its owner holds a position or a working order in (KMP after 10:00 keeps only what it
holds); those stay until the position is gone.

Reason codes: grants ``ALREADY_LEASED``, ``SHARED``, ``FREE_SLOT``, ``EVICTED_LOWER_PRIORITY``;
denials ``NO_LEASE`` (max_slots 0), ``OUTSIDE_WINDOW``, ``LEASE_FULL`` (the strategy's own
max_slots), ``CAPACITY_FULL``; releases ``UNSUBSCRIBED``, ``DISCONNECTED``, ``PREEMPTED``,
``WINDOW_END``, ``UPSTREAM_ERROR``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode

SYSTEM_OWNER = "_OMS"
"""The OMS's own subscriptions (held stop-limit entries watching their trigger): never evicted."""
SYSTEM_PRIORITY = 1_000


@dataclass(frozen=True)
class LeasePolicy:
    priority: int = 0
    max_slots: int | None = None
    start: time | None = None
    end: time | None = None
    tz: ZoneInfo = KST
    """The zone ``start``/``end`` are read in: the market's (KST on KRX, New York on US)."""

    def in_window(self, now: datetime) -> bool:
        t = now.astimezone(self.tz).time()
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def window_text(self) -> str:
        if self.start is None and self.end is None:
            return "all day"
        return f"{self.start.strftime('%H:%M') if self.start else ''}–{self.end.strftime('%H:%M') if self.end else ''}"


SYSTEM_POLICY = LeasePolicy(priority=SYSTEM_PRIORITY)


@dataclass(frozen=True)
class Grant:
    owner: str
    symbol: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Denial:
    owner: str
    symbol: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Release:
    """A lease that ended: ``owner`` no longer leases ``symbol`` (``slot_freed``: nobody does)."""

    owner: str
    symbol: str
    reason: str
    detail: str = ""
    slot_freed: bool = False


@dataclass
class RequestResult:
    granted: list[Grant] = field(default_factory=list)
    denied: list[Denial] = field(default_factory=list)
    released: list[Release] = field(default_factory=list)
    """Leases of other owners that ended to make room (PREEMPTED) or at a window edge (WINDOW_END)."""


@dataclass
class _Lease:
    granted_at: datetime
    seq: int


class SlotBook:
    def __init__(
        self,
        capacity: int,
        policies: dict[str, LeasePolicy] | None = None,
        default_policy: LeasePolicy | None = None,
        *,
        position_holders: Callable[[str], Collection[str]] = lambda symbol: (),
        working_owners: Callable[[str], Collection[str]] = lambda symbol: (),
        tz: ZoneInfo = KST,
    ) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.tz = tz
        self.policies = {k.upper(): v for k, v in (policies or {}).items()}
        self.default_policy = default_policy or LeasePolicy()
        self._position_holders = position_holders
        self._working_owners = working_owners
        self._slots: dict[str, dict[str, _Lease]] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._keep: dict[str, set[str]] = {}
        self._seq = itertools.count()
        self.peak_by_owner: dict[str, int] = {}
        self.max_used = 0
        """High-water mark of slots in use (tests assert it never passes ``capacity``)."""

    # ---- views --------------------------------------------------------------------------------
    def policy(self, owner: str) -> LeasePolicy:
        if owner == SYSTEM_OWNER:
            return SYSTEM_POLICY
        return self.policies.get(owner.upper(), self.default_policy)

    @property
    def used(self) -> int:
        return len(self._slots)

    def symbols(self) -> set[str]:
        """Symbols holding a slot (= the upstream subscriptions wanted)."""
        return set(self._slots)

    def holders(self, symbol: str) -> set[str]:
        return set(self._slots.get(symbol, ()))

    def leases_of(self, owner: str) -> set[str]:
        return set(self._by_owner.get(owner, ()))

    def owners(self) -> list[str]:
        return sorted(self._by_owner)

    def keep_of(self, owner: str) -> set[str]:
        return set(self._keep.get(owner, ()))

    def shared(self) -> dict[str, list[str]]:
        return {sym: sorted(h) for sym, h in sorted(self._slots.items()) if len(h) > 1}

    def holds_position(self, owner: str, symbol: str) -> bool:
        return owner in self._position_holders(symbol) or owner in self._working_owners(symbol)

    def protection(self, symbol: str) -> str | None:
        """Why the slot of ``symbol`` may not be evicted, or None."""
        holders = self._slots.get(symbol, {})
        if SYSTEM_OWNER in holders:
            return "watched by the OMS"
        pos = set(self._position_holders(symbol))
        if pos:
            return f"position held by {','.join(sorted(pos))}"
        working = set(self._working_owners(symbol)) & set(holders)
        if working:
            return f"working order of {','.join(sorted(working))}"
        keepers = [o for o in holders if symbol in self._keep.get(o, ())]
        if keepers:
            return f"kept by {','.join(sorted(keepers))} (active setup)"
        return None

    # ---- changes ------------------------------------------------------------------------------
    def set_keep(self, owner: str, symbols: Iterable[str]) -> None:
        """Replace ``owner``'s keep set (symbols in an active setup: never evicted for another strategy)."""
        keep = set(symbols)
        if keep:
            self._keep[owner] = keep
        else:
            self._keep.pop(owner, None)

    def request(
        self, owner: str, symbols: Iterable[str], now: datetime, keep: Iterable[str] | None = None
    ) -> RequestResult:
        """Lease ``symbols`` for ``owner``; window ends are applied first (``now`` is the clock's time)."""
        result = RequestResult(released=self.expire(now))
        if keep is not None:
            self.set_keep(owner, keep)
        policy = self.policy(owner)
        for symbol in dict.fromkeys(symbols):
            self._request_one(owner, symbol, policy, now, result)
        return result

    def _request_one(self, owner: str, symbol: str, policy: LeasePolicy, now: datetime, result: RequestResult) -> None:
        if symbol in self._by_owner.get(owner, ()):
            result.granted.append(Grant(owner, symbol, ReasonCode.ALREADY_LEASED))
            return
        if policy.max_slots == 0:
            result.denied.append(
                Denial(owner, symbol, ReasonCode.NO_LEASE, f"{owner} has no stream slots (max_slots 0)")
            )
            return
        held = self.holds_position(owner, symbol)
        if not policy.in_window(now) and not held:
            result.denied.append(
                Denial(
                    owner,
                    symbol,
                    ReasonCode.OUTSIDE_WINDOW,
                    f"{owner} lease window is {policy.window_text()} {policy.tz.key} "
                    f"(now {now.astimezone(policy.tz):%H:%M:%S}); outside it only held symbols",
                )
            )
            return
        count = len(self._by_owner.get(owner, ()))
        if policy.max_slots is not None and count >= policy.max_slots and not held:
            result.denied.append(
                Denial(
                    owner,
                    symbol,
                    ReasonCode.LEASE_FULL,
                    f"{owner} already leases {count} of its {policy.max_slots} slots",
                )
            )
            return
        if symbol in self._slots:
            others = ",".join(sorted(self._slots[symbol]))
            self._add(owner, symbol, now)
            result.granted.append(Grant(owner, symbol, "SHARED", f"slot shared with {others}"))
            return
        if len(self._slots) < self.capacity:
            self._add(owner, symbol, now)
            result.granted.append(
                Grant(owner, symbol, ReasonCode.FREE_SLOT, f"{len(self._slots)}/{self.capacity} in use")
            )
            return
        victim = self._victim(policy.priority)
        if victim is None:
            result.denied.append(
                Denial(
                    owner,
                    symbol,
                    ReasonCode.CAPACITY_FULL,
                    f"all {self.capacity} slots in use by protected or equal/higher-priority "
                    f"leases (priority {policy.priority})",
                )
            )
            return
        holders = sorted(self._slots[victim])
        detail = f"slot given to {owner} (priority {policy.priority}) for {symbol}"
        for h in holders:
            result.released.append(self._remove(h, victim, ReasonCode.PREEMPTED, detail))
        self._add(owner, symbol, now)
        result.granted.append(
            Grant(owner, symbol, ReasonCode.EVICTED_LOWER_PRIORITY, f"evicted {victim} of {','.join(holders)}")
        )

    def _victim(self, priority: int) -> str | None:
        best: tuple[int, int, str] | None = None
        for symbol, holders in self._slots.items():
            top = max(self.policy(h).priority for h in holders)
            if top >= priority:
                continue
            oldest = min(lease.seq for lease in holders.values())
            cand = (top, oldest, symbol)
            if best is not None and cand >= best:
                continue
            if self.protection(symbol) is not None:
                continue
            best = cand
        return best[2] if best else None

    def _add(self, owner: str, symbol: str, now: datetime) -> None:
        self._slots.setdefault(symbol, {})[owner] = _Lease(now, next(self._seq))
        mine = self._by_owner.setdefault(owner, set())
        mine.add(symbol)
        self.peak_by_owner[owner] = max(self.peak_by_owner.get(owner, 0), len(mine))
        self.max_used = max(self.max_used, len(self._slots))
        assert len(self._slots) <= self.capacity, "slot budget exceeded"

    def _remove(self, owner: str, symbol: str, reason: str, detail: str = "") -> Release:
        holders = self._slots.get(symbol, {})
        holders.pop(owner, None)
        freed = not holders
        if freed:
            self._slots.pop(symbol, None)
        mine = self._by_owner.get(owner)
        if mine is not None:
            mine.discard(symbol)
            if not mine:
                del self._by_owner[owner]
        return Release(owner, symbol, reason, detail, slot_freed=freed)

    def release(self, owner: str, symbols: Iterable[str], reason: str = "UNSUBSCRIBED") -> list[Release]:
        mine = self._by_owner.get(owner, set())
        return [self._remove(owner, s, reason) for s in dict.fromkeys(symbols) if s in mine]

    def release_all(self, owner: str, reason: str = "DISCONNECTED") -> list[Release]:
        return self.release(owner, sorted(self._by_owner.get(owner, ())), reason)

    def expire(self, now: datetime) -> list[Release]:
        """End the leases of owners outside their window, except symbols they hold a position/order in."""
        out: list[Release] = []
        for owner in sorted(self._by_owner):
            policy = self.policy(owner)
            if policy.in_window(now):
                continue
            for symbol in sorted(self._by_owner.get(owner, ())):
                if not self.holds_position(owner, symbol):
                    out.append(
                        self._remove(
                            owner,
                            symbol,
                            ReasonCode.WINDOW_END,
                            f"{owner} lease window {policy.window_text()} {policy.tz.key} ended",
                        )
                    )
        return out

    def next_edge(self, now: datetime) -> datetime | None:
        """The next window end (market time) after ``now`` of any owner holding leases, or None."""
        local = now.astimezone(self.tz)
        best: datetime | None = None
        for owner in self._by_owner:
            end = self.policy(owner).end
            if end is None:
                continue
            edge = datetime.combine(local.date(), end, self.tz)
            if edge <= local:
                edge = datetime.combine(local.date() + timedelta(days=1), end, self.tz)
            if best is None or edge < best:
                best = edge
        return best

    def snapshot(self, now: datetime) -> dict[str, object]:
        leases: dict[str, object] = {}
        owners = set(self._by_owner) | set(self.policies)
        for owner in sorted(owners):
            p = self.policy(owner)
            syms = sorted(self._by_owner.get(owner, ()))
            leases[owner] = {
                "priority": p.priority,
                "max_slots": p.max_slots,
                "window": {
                    "start": p.start.strftime("%H:%M") if p.start else None,
                    "end": p.end.strftime("%H:%M") if p.end else None,
                },
                "in_window": p.in_window(now),
                "count": len(syms),
                "peak": self.peak_by_owner.get(owner, 0),
                "symbols": syms,
                "keep": sorted(self._keep.get(owner, set()) & set(syms)),
                "protected": [s for s in syms if self.holds_position(owner, s)],
            }
        return {
            "capacity": self.capacity,
            "used": len(self._slots),
            "free": self.capacity - len(self._slots),
            "peak_used": self.max_used,
            "leases": leases,
            "shared": self.shared(),
        }
