"""The spend guard with the real worker, beat and monitor (tests/support/guard.py)."""

from tests.support.guard import beat, guard_env, guard_worker, no_worker, worker  # noqa: F401
from tests.support.runner import aws_env, db, db_url, runner_env  # noqa: F401
