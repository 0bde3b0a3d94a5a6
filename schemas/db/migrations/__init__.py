"""Alembic migrations for trainops' tables (run with `trainops db upgrade`)."""
