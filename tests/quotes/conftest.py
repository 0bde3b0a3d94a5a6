"""Fixtures for the quote tests: the embedded team config and a clean price cache."""

from __future__ import annotations

import pytest

from schemas.config import load_config
from workers.quoting import prices


@pytest.fixture(scope="session")
def config():
    return load_config(None)


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    # Live prices are cached per process; each test starts without them.
    prices.clear_cache()
    yield
    prices.clear_cache()
