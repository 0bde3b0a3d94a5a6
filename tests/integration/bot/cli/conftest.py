"""The command line against the runner's databases, store and worker."""

from tests.support.runner import aws_env, db, db_url, runner_env, runner_worker, worker  # noqa: F401
