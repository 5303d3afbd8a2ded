"""Morning approval (strategies.md I11). Pure rules; the store persists the statuses.

Each watchlist item of a session is PENDING until a person approves or rejects it (one by one or
all at once). Decisions are accepted until the deadline (08:30 KST of the session) and refused
after it (``PCIM_APPROVAL_LATE``). At the deadline the list freezes: only APPROVED (or, in a
simulation, AUTO_APPROVED) items are traded; everything else is logged ``PCIM_NOT_APPROVED``.

``auto_approve`` exists for simulations only: :func:`auto_approve_allowed` refuses it on a real
clock, and every decision taken while it is on carries ``approval_mode=AUTO_APPROVE(SIMULATION)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum

from broker_core.clock import KST
from broker_core.contract.reasons import ReasonCode

AUTO_LABEL = "AUTO_APPROVE(SIMULATION)"
MANUAL_LABEL = "MANUAL"


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    AUTO_APPROVED = "AUTO_APPROVED"

    @property
    def tradable(self) -> bool:
        return self in (ApprovalStatus.APPROVED, ApprovalStatus.AUTO_APPROVED)


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    symbol: str
    ok: bool
    code: ReasonCode
    status: ApprovalStatus
    message: str


def deadline_of(session: date, deadline: time) -> datetime:
    return datetime.combine(session, deadline, KST)


def decide(
    session: date,
    symbol: str,
    current: ApprovalStatus | None,
    approve: bool,
    now: datetime,
    deadline: time,
) -> ApprovalResult:
    """One reviewer decision on ``symbol`` at ``now``; refused after the deadline or for unknown items."""
    if current is None:
        return ApprovalResult(
            symbol, False, ReasonCode.PCIM_NOT_APPROVED, ApprovalStatus.PENDING, "not on the watchlist"
        )
    if now.astimezone(KST) >= deadline_of(session, deadline):
        return ApprovalResult(
            symbol,
            False,
            ReasonCode.PCIM_APPROVAL_LATE,
            current,
            f"approval refused: after {deadline:%H:%M} KST of {session}",
        )
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    code = ReasonCode.PCIM_APPROVED if approve else ReasonCode.PCIM_REVIEW_REJECTED
    return ApprovalResult(symbol, True, code, status, status.value.lower())


def auto_approve_allowed(clock_is_real: bool) -> bool:
    return not clock_is_real


def tradable(statuses: dict[str, ApprovalStatus]) -> tuple[list[str], list[str]]:
    """(symbols traded, symbols not traded) at the freeze."""
    yes = sorted(s for s, st in statuses.items() if st.tradable)
    no = sorted(s for s, st in statuses.items() if not st.tradable)
    return yes, no
