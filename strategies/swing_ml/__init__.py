"""swing-ML: US equities on Alpaca (strategies.md §5) — pure logic, no HTTP/OMS wiring.

==================  ====================================================================
module              role
==================  ====================================================================
``config``          SwingMlConfig (mode required: live | paper | dry_run), defaults, loader
``reasons``         reason codes (StrEnum)
``data``            daily bars as wide frames (Panel), reference-data loader
``universe``        default 97-stock universe + sector map, S2 liquidity filter
``factors``         S3.3: the 13 factors, cross-sectional z-score + winsorising
``regime``          S3.2: 3-state Gaussian HMM on SPY + sector strength → RISK_ON/NEUTRAL/RISK_OFF
``model``           S3.3 label/fit/predict, purged walk-forward validation, S5 lifecycle
``synthesizer``     S3.3 quartile votes, S3.5 score and BUY/SELL rules, S3.6 SELLs first
``sizing``          S4 half-Kelly capped at 10 % NAV, marketable limit
``risk``            S6 take profit / stop / trail (ATR variant), S7 held days, S8 key and gate
``orders``          decisions → orders, the shared dispatch path (dry_run logs, never sends)
==================  ====================================================================
"""
