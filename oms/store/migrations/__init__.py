"""Alembic environment and revisions of the OMS store (a package so it ships in the wheel)."""
