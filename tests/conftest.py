"""The suite's root: only fixtures that start nothing until asked for.

tests/unit/ needs no service at all; tests/integration/ and tests/e2e/ start moto, Redis-backed
Celery workers and the databases through the fixtures in tests/support/, imported by each area's
conftest.py.
"""

import os

# Nothing in the suite may download a model or a data set: the Hugging Face libraries read these
# when they are first imported, so they are set before any test module imports them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.support.quotes import _fresh_price_cache, config  # noqa: E402, F401
from tests.support.services import (  # noqa: E402, F401
    aws_endpoint,
    moto_reset,
    moto_server,
    s3_bucket,
)
