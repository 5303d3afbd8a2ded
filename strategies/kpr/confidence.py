"""P13: the confidence label from the three pillars, and the P14 stale factor.

RED (blocks) if InvestorSignal, TickPressure or ProgramSignal is DISTRIBUTE. Otherwise:

* three-pillar (a program provider is available): GREEN if ≥ 2 of {Investor STRONG, Micro
  ACCUMULATE, Program ACCUMULATE} and Investor ≠ CONFLICT; else YELLOW;
* two-pillar (ProgramSignal UNAVAILABLE): GREEN if Investor STRONG ∧ Micro ACCUMULATE; YELLOW if
  exactly one of them; NONE (no entry, ``KPR_BLOCK_NOCONFIRM``) if neither.

Stale factor: 0.85 if any input was STALE (InvestorSignal or ProgramSignal) or a micro-window
degraded a refresh of the symbol, else 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from strategies.kpr.config import KprParams
from strategies.kpr.signals import InvestorState, Micro, MicroReading, ProgramState


class Confidence(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class ConfidenceResult:
    label: Confidence
    pillars: int
    """3 or 2 (program UNAVAILABLE)."""
    positives: tuple[str, ...]
    red_by: tuple[str, ...]
    stale: bool
    investor: InvestorState
    micro: MicroReading
    program: ProgramState

    def fields(self) -> dict[str, Any]:
        return {
            "confidence": self.label.value,
            "pillars": self.pillars,
            "positives": list(self.positives),
            "red_by": list(self.red_by),
            "stale": self.stale,
            "investor": self.investor.value,
            "micro": self.micro.state.value,
            "micro_source": self.micro.source,
            "micro_detail": self.micro.detail,
            "program": self.program.value,
        }


def confidence(
    investor: InvestorState, micro: MicroReading, program: ProgramState, degraded: bool = False
) -> ConfidenceResult:
    three = program is not ProgramState.UNAVAILABLE
    red_by = tuple(
        name
        for name, bad in (
            ("investor", investor is InvestorState.DISTRIBUTE),
            ("tick_pressure", micro.source == "ticks" and micro.state is Micro.DISTRIBUTE),
            ("program", program is ProgramState.DISTRIBUTE),
        )
        if bad
    )
    positives = tuple(
        name
        for name, good in (
            ("investor", investor is InvestorState.STRONG),
            ("micro", micro.state is Micro.ACCUMULATE),
            ("program", three and program is ProgramState.ACCUMULATE),
        )
        if good
    )
    stale = investor is InvestorState.STALE or program is ProgramState.STALE or degraded
    if red_by:
        label = Confidence.RED
    elif three:
        label = (
            Confidence.GREEN if len(positives) >= 2 and investor is not InvestorState.CONFLICT else Confidence.YELLOW
        )
    elif len(positives) == 2:
        label = Confidence.GREEN
    elif len(positives) == 1:
        label = Confidence.YELLOW
    else:
        label = Confidence.NONE
    return ConfidenceResult(label, 3 if three else 2, positives, red_by, stale, investor, micro, program)


def confidence_mult(label: Confidence, p: KprParams) -> float:
    if label is Confidence.GREEN:
        return p.conf_green_mult
    if label is Confidence.YELLOW:
        return p.conf_yellow_mult
    return 0.0


def stale_mult(stale: bool, p: KprParams) -> float:
    return p.stale_mult if stale else 1.0
