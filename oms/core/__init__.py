"""OMS domain logic: intents, risk, arbitration, planning, order state, ledger, reconciliation.
Free of FastAPI, SQLAlchemy, httpx and prometheus (metrics arrive as an object); imports ``broker_core``."""
