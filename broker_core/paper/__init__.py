"""The paper exchange: market feeds (parquet replay, synthetic), matching engine, PaperBroker."""
