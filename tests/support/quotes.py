"""Fixtures for the quote tests: the embedded team config and a clean price cache."""

from __future__ import annotations

import pytest

from schemas.config import load_config
from workers.quoting import prices


@pytest.fixture(scope="session")
def config():
    """The embedded defaults, opened as a team that allows command= and reads data from ./data
    and s3://my-bucket (the grammar's tests parse those; tests/integration/security checks the
    closed defaults)."""
    from schemas.config import DataAccess, Security

    return load_config(None).model_copy(update={
        "security": Security(allow_commands=True),
        "data": DataAccess(local_roots=["./data"], s3_prefixes=["s3://my-bucket"])})


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    # Live prices are cached per process; each test starts without them.
    prices.clear_cache()
    yield
    prices.clear_cache()
