"""A protocol-faithful fake KIS server backed by the paper exchange (specs/kis.md §9)."""

from broker_core.kis.fake.server import FakeKis
from broker_core.kis.fake.state import FAKE_CODES, FakeKisState, FakeProfile, LoggedRequest, profile

__all__ = ["FAKE_CODES", "FakeKis", "FakeKisState", "FakeProfile", "LoggedRequest", "profile"]
