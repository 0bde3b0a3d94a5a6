"""The whole guarded flow on the local provider: worker, beat, monitor and the real agent."""

from tests.support.guard import beat, guard_env, guard_worker, no_worker, worker  # noqa: F401
from tests.support.runner import aws_env, db, db_url, runner_env  # noqa: F401
