"""A fake Alpaca (trading REST, market-data REST, trade_updates and market-data streams) that the real
alpaca-py SDK talks to, backed by the US paper exchange (specs/alpaca.md §10)."""

from broker_core.alpaca.fake.cli import build_fake, run_fake_alpaca
from broker_core.alpaca.fake.faults import FaultPlan, FaultSpecError
from broker_core.alpaca.fake.server import FakeAlpaca, LoggedRequest

__all__ = ["FakeAlpaca", "FaultPlan", "FaultSpecError", "LoggedRequest", "build_fake", "run_fake_alpaca"]
