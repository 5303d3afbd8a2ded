"""Run reports: report.json, a self-contained report.html and PNG charts written into a run's folder.

``write_run_report(...)`` reads the OMS database and the strategies' decision logs, rebuilds the book
from the fills (:mod:`trader.report.equity`), computes metrics next to a benchmark
(:mod:`trader.report.metrics`, :func:`load_benchmark`) and the per-strategy "why nothing traded" funnel
(:mod:`trader.report.funnel`); ``print_summary`` shows the key figures in the terminal.
"""

from trader.report.benchmark import load_benchmark
from trader.report.collect import ReportInputError
from trader.report.summary import print_summary
from trader.report.write import ReportPaths, write_run_report

__all__ = ["ReportInputError", "ReportPaths", "load_benchmark", "print_summary", "write_run_report"]
