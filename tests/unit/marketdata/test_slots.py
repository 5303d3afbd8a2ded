"""Slot arithmetic of the account budget (pure SlotBook, times from a ManualClock)."""

from __future__ import annotations

import random
from datetime import datetime, time

from broker_core.clock import KST, ManualClock
from oms.marketdata.slots import SYSTEM_OWNER, LeasePolicy, SlotBook

DAY = "2026-02-27"


def at(hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hh:02d}:{mm:02d}:{ss:02d}").replace(microsecond=us, tzinfo=KST)


POLICIES = {
    "KMP": LeasePolicy(priority=30, max_slots=20, start=time(9, 15), end=time(10, 0)),
    "NULRIMOK": LeasePolicy(priority=20, max_slots=20, start=time(10, 0)),
    "KPR": LeasePolicy(priority=20, max_slots=20),
    "PCIM": LeasePolicy(priority=0, max_slots=0),
}


class Positions:
    """Ledger stand-in: symbol → strategies holding it; symbol → strategies with working orders."""

    def __init__(self) -> None:
        self.held: dict[str, set[str]] = {}
        self.working: dict[str, set[str]] = {}

    def holders(self, symbol: str) -> set[str]:
        return self.held.get(symbol, set())

    def working_owners(self, symbol: str) -> set[str]:
        return self.working.get(symbol, set())


def book(
    capacity: int = 40, policies: dict[str, LeasePolicy] | None = None, positions: Positions | None = None
) -> tuple[SlotBook, Positions]:
    pos = positions or Positions()
    return SlotBook(
        capacity,
        POLICIES if policies is None else policies,
        LeasePolicy(),
        position_holders=pos.holders,
        working_owners=pos.working_owners,
    ), pos


def syms(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(start, start + n)]


def check_invariants(b: SlotBook) -> None:
    union = set().union(*(b.leases_of(o) for o in b.owners())) if b.owners() else set()
    assert b.used == len(union) == len(b.symbols()), "a shared symbol must count as one slot"
    assert b.used <= b.capacity
    for s in b.symbols():
        assert all(s in b.leases_of(o) for o in b.holders(s))


def test_three_strategies_with_overlapping_symbols_never_exceed_capacity() -> None:
    clock = ManualClock(at(9, 10))
    rng = random.Random(20260227)
    policies = {
        "KMP": LeasePolicy(priority=30, max_slots=20, start=time(9, 15), end=time(10, 0)),
        "NULRIMOK": LeasePolicy(priority=20, max_slots=20, start=time(10, 0)),
        "KPR": LeasePolicy(priority=10, max_slots=25),
    }
    b, pos = book(capacity=40, policies=policies)
    universe = syms("S", 60)  # every strategy draws from the same 60 names: lots of overlap
    for _ in range(3000):
        clock.advance(rng.uniform(0, 3.5))  # 09:10 → ~11:40 over the run
        owner = rng.choice(list(policies))
        r = rng.random()
        if r < 0.55:
            want = rng.sample(universe, rng.randint(1, 8))
            keep = (
                rng.sample(sorted(b.leases_of(owner)), min(2, len(b.leases_of(owner)))) if rng.random() < 0.2 else None
            )
            result = b.request(owner, want, clock.now(), keep=keep)
            for g in result.granted:
                assert g.symbol in b.leases_of(owner)
            for d in result.denied:
                assert d.reason in {"OUTSIDE_WINDOW", "LEASE_FULL", "CAPACITY_FULL"}, d
        elif r < 0.85:
            mine = sorted(b.leases_of(owner))
            b.release(owner, rng.sample(mine, min(len(mine), rng.randint(1, 4))))
        elif r < 0.95:
            s = rng.choice(universe)
            pos.held.setdefault(s, set()).add(owner)
        else:
            s = rng.choice(universe)
            pos.held.pop(s, None)
        check_invariants(b)
        for o in b.owners():
            p = b.policy(o)
            extra = sum(1 for s in b.leases_of(o) if b.holds_position(o, s))
            assert p.max_slots is None or len(b.leases_of(o)) <= p.max_slots + extra
    assert b.max_used == 40, "the run should have filled the budget at some point"
    assert b.max_used <= b.capacity
    snap = b.snapshot(clock.now())
    assert snap["peak_used"] == 40
    for owner, lease in snap["leases"].items():  # type: ignore[union-attr]
        cap = policies[owner].max_slots if owner in policies else None
        assert lease["count"] <= lease["peak"] and (cap is None or lease["peak"] <= 40)


def test_a_symbol_shared_by_three_strategies_uses_one_slot() -> None:
    b, _ = book(capacity=3)
    now = at(9, 30)
    for owner in ("KMP", "KPR", "X"):
        r = b.request(owner, ["005930"], now)
        assert [g.symbol for g in r.granted] == ["005930"]
    assert b.used == 1 and b.shared() == {"005930": ["KMP", "KPR", "X"]}
    assert b.request("KPR", ["000660", "000270"], now).denied == []
    assert b.used == 3
    r = b.request("KPR", ["035420"], now)
    assert [d.reason for d in r.denied] == ["CAPACITY_FULL"]  # equal-priority slots are not evictable
    b.release("KMP", ["005930"])
    b.release("X", ["005930"])
    assert b.used == 3 and b.holders("005930") == {"KPR"}
    b.release("KPR", ["005930"])
    assert b.used == 2


def test_a_held_position_symbol_is_never_evicted() -> None:
    b, pos = book(capacity=4)
    now = at(9, 20)
    assert not b.request("KPR", ["A", "B", "C", "D"], now).denied
    # KPR's A: position held (by NULRIMOK — any holder protects); B: KPR's working order; C: KPR keeps it.
    pos.held["A"] = {"NULRIMOK"}
    pos.working["B"] = {"KPR"}
    b.set_keep("KPR", ["C"])
    r = b.request("KMP", ["E", "F"], now)  # KMP outranks KPR: only D is evictable
    assert [g.symbol for g in r.granted] == ["E"]
    assert [(x.owner, x.symbol, x.reason) for x in r.released] == [("KPR", "D", "PREEMPTED")]
    assert [(d.symbol, d.reason) for d in r.denied] == [("F", "CAPACITY_FULL")]
    assert b.leases_of("KPR") == {"A", "B", "C"}
    # The OMS's own watch is never evicted either, and the system outranks everyone.
    b.release("KMP", ["E"])
    assert not b.request(SYSTEM_OWNER, ["Z"], now).denied
    pos.working["B"] = set()
    r = b.request(SYSTEM_OWNER, ["Y"], now)  # B is idle now → evicted for the OMS
    assert [x.symbol for x in r.released] == ["B"]
    r = b.request("KMP", ["Q"], now)
    assert [d.reason for d in r.denied] == ["CAPACITY_FULL"]
    assert {"A", "Z", "Y"} <= b.symbols()


def test_eviction_picks_the_lowest_priority_then_the_oldest() -> None:
    policies = {"HI": LeasePolicy(priority=50), "MID": LeasePolicy(priority=20), "LO": LeasePolicy(priority=10)}
    b, _ = book(capacity=3, policies=policies)
    clock = ManualClock(at(9, 30))
    b.request("MID", ["m1"], clock.now())
    clock.advance(1)
    b.request("LO", ["l1"], clock.now())
    clock.advance(1)
    b.request("LO", ["l2"], clock.now())
    r = b.request("HI", ["h1", "h2", "h3"], clock.now())
    assert [x.symbol for x in r.released] == ["l1", "l2", "m1"]
    assert b.symbols() == {"h1", "h2", "h3"}
    # A slot shared with a higher-priority holder is not evictable by a lower one.
    b2, _ = book(capacity=1, policies=policies)
    b2.request("LO", ["s"], clock.now())
    b2.request("HI", ["s"], clock.now())
    assert [d.reason for d in b2.request("MID", ["t"], clock.now()).denied] == ["CAPACITY_FULL"]


def test_denials_name_the_reason() -> None:
    b, pos = book(capacity=40)
    r = b.request("PCIM", ["005930"], at(9, 30))
    assert [(d.reason, d.symbol) for d in r.denied] == [("NO_LEASE", "005930")]
    r = b.request("NULRIMOK", ["005930"], at(9, 59, 59))
    assert r.denied[0].reason == "OUTSIDE_WINDOW" and "10:00" in r.denied[0].detail
    r = b.request("KMP", ["005930"], at(9, 14, 59))
    assert r.denied[0].reason == "OUTSIDE_WINDOW"
    r = b.request("KMP", syms("K", 21), at(9, 15))
    assert len(r.granted) == 20 and [d.reason for d in r.denied] == ["LEASE_FULL"]
    # A symbol the strategy holds may be (re)subscribed beyond its window and its max.
    pos.held["K9999"] = {"KMP"}
    assert b.request("KMP", ["K9999"], at(9, 40)).granted[0].symbol == "K9999"
    pos.held["H"] = {"KMP"}
    r = b.request("KMP", ["H", "Z"], at(10, 30))
    assert [g.symbol for g in r.granted] == ["H"] and r.denied[0].reason == "OUTSIDE_WINDOW"


def test_window_expiry_frees_slots_exactly_at_the_edge() -> None:
    clock = ManualClock(at(9, 15))
    b, pos = book(capacity=40)
    b.request("KMP", syms("K", 20), clock.now())
    b.request("KPR", syms("P", 10), clock.now())
    pos.held["K0003"] = {"KMP"}
    pos.working["K0007"] = {"KMP"}
    assert b.next_edge(clock.now()) == at(10, 0)
    clock.set(at(9, 59, 59, 999_999))
    assert b.expire(clock.now()) == [] and b.used == 30
    clock.set(at(10, 0))
    released = b.expire(clock.now())
    assert sorted(r.symbol for r in released) == sorted(set(syms("K", 20)) - {"K0003", "K0007"})
    assert all(r.reason == "WINDOW_END" and r.slot_freed for r in released)
    assert b.leases_of("KMP") == {"K0003", "K0007"} and b.used == 12
    # Held leases stay past the window until the position (and the working order) are gone.
    clock.advance(600)
    assert b.expire(clock.now()) == []
    pos.held.pop("K0003")
    pos.working.pop("K0007")
    assert {r.symbol for r in b.expire(clock.now())} == {"K0003", "K0007"}
    assert b.leases_of("KMP") == set() and b.used == 10
    assert b.next_edge(clock.now()) is None  # nobody with a window end holds leases now


def test_kmp_to_nulrimok_hand_over_at_ten_never_exceeds_capacity() -> None:
    clock = ManualClock(at(9, 15))
    b, pos = book(capacity=40)
    assert not b.request("KMP", syms("K", 20), clock.now()).denied
    assert not b.request("KPR", syms("P", 20), clock.now()).denied
    assert b.used == 40
    pos.held["K0001"] = {"KMP"}
    pos.held["K0002"] = {"KMP", "NULRIMOK"}
    clock.set(at(9, 59, 59))
    early = b.request("NULRIMOK", syms("N", 20), clock.now())
    assert {d.reason for d in early.denied} == {"OUTSIDE_WINDOW"} and b.used == 40
    clock.set(at(10, 0))
    # The request itself applies the window end first: KMP's idle 18 go before NULRIMOK takes any.
    r = b.request("NULRIMOK", syms("N", 20) + ["K0002"], clock.now())
    assert len([x for x in r.released if x.reason == "WINDOW_END"]) == 18
    assert len(r.granted) == 19  # 18 fresh slots + K0002 shared with KMP's held lease
    assert [d.reason for d in r.denied] == ["CAPACITY_FULL", "CAPACITY_FULL"]  # KPR is not evictable by NULRIMOK
    assert b.used == 40 and b.max_used == 40
    assert b.leases_of("KMP") == {"K0001", "K0002"}
    assert b.shared() == {"K0002": ["KMP", "NULRIMOK"]}
