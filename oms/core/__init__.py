"""OMS domain logic, free of FastAPI, SQLAlchemy and httpx."""
