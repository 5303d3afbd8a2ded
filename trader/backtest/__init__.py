"""``trader backtest``: the live strategy code, OMS core and paper exchange in one process, no sockets,
time driven as fast as the CPU allows, deterministic. Entry points: :func:`backtest_command` (the CLI),
:func:`plan_backtest` + :func:`run_backtest` (programmatic)."""

from trader.backtest.command import backtest_command
from trader.backtest.engine import BacktestResult, run_backtest
from trader.backtest.plan import BacktestInputError, BacktestPlan, plan_backtest

__all__ = ["BacktestInputError", "BacktestPlan", "BacktestResult", "backtest_command", "plan_backtest", "run_backtest"]
